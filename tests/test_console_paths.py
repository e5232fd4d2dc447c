"""Console tables never print the machine's directory layout: paths under the working directory are shown relative to
it, others as their last two parts."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from curate.evaluate.report import comparison_table
from curate.paths import shown
from curate.report import report_table


def text(table) -> str:
    console = Console(record=True, width=400)
    console.print(table)
    return console.export_text()


def test_paths_are_shown_relative_to_the_working_directory_or_by_their_last_parts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert shown(tmp_path / "runs" / "demo" / "09-dedup") == "runs/demo/09-dedup"
    assert shown("/home/someone/models/tuned/adapter") == "…/tuned/adapter"
    assert shown("runs/demo") == "runs/demo" and shown("google/gemma-3-270m") == "google/gemma-3-270m"


def test_run_and_comparison_tables_print_no_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "runs" / "demo"
    report = {"pipeline": "demo", "run_dir": str(run), "final_dir": str(run / "09-dedup"), "rows_out": 36,
              "seconds": 200.9, "stages": [{"stage": "dedup", "cached": False, "rows_in": 36, "rows_out": 36,
                                            "dropped": {}, "seconds": 0.1}]}
    metric = {"value": 0.5, "ci_low": 0.3, "ci_high": 0.7}
    comparison = {
        "set": "eval", "n_paired": 20, "forced": False, "differences": [],
        "a": {"run": str(run / "evaluate" / "base"), "model": {"backend": "transformers", "model": "embedded"}},
        "b": {"run": str(run / "evaluate" / "tuned"),
              "model": {"backend": "transformers", "model": "embedded", "adapter": str(run / "finetune")}},
        "metrics": {"accuracy": {"a": metric, "b": metric, "difference": metric,
                                 "test": {"test": "mcnemar_exact", "only_a": 1, "only_b": 8, "p_value": 0.039}}},
        "bootstrap": {"resamples": 10000, "method": "percentile", "seed": 0}}
    printed = text(report_table(report)) + text(comparison_table(comparison))
    assert str(tmp_path) not in printed and str(Path.cwd()) not in printed
    assert "runs/demo/09-dedup" in printed and "runs/demo/evaluate/base" in printed and "runs/demo/finetune" in printed
