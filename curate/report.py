"""The run report as a console table: rows in/out, drops by reason, seconds and tokens per stage."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def report_table(report: dict) -> Table:
    """A rich Table for a report dict (as written to ``report.json``)."""
    table = Table(title=f"{report['pipeline']}  ({report['run_dir']})", title_justify="left")
    for col, justify in [("stage", "left"), ("status", "left"), ("rows in", "right"), ("rows out", "right"),
                         ("dropped (reason: rows)", "left"), ("seconds", "right"), ("tokens", "right")]:
        table.add_column(col, justify=justify, overflow="fold")
    for s in report["stages"]:
        dropped = ", ".join(f"{k}: {v}" for k, v in sorted(s["dropped"].items(), key=lambda kv: -kv[1])) or "-"
        counters = s.get("counters", {})
        tokens = counters.get("tokens_generated") or counters.get("tokens_trained")
        table.add_row(s["stage"], "cached" if s["cached"] else "ran", f"{s['rows_in']:,}", f"{s['rows_out']:,}",
                      dropped, f"{s.get('wall_seconds') or s['seconds']:.1f}", f"{tokens:,}" if tokens else "-")
    table.caption = f"{report['rows_out']:,} rows in {report['final_dir']}  ·  {report['seconds']:.1f} s"
    return table


def answers_table(answers: list[dict]) -> Table:
    """Base and tuned model's answers to the same questions, side by side."""
    table = Table(title="before / after fine-tuning", title_justify="left", show_lines=True)
    for col in ("question", "base model", "fine-tuned"):
        table.add_column(col, overflow="fold")
    for a in answers:
        table.add_row(a["question"], a["base"], a["tuned"])
    return table


def print_report(report: dict, console: Console | None = None) -> None:
    console = console or Console()
    console.print(report_table(report))
    if report.get("answers"):
        console.print(answers_table(report["answers"]))
    if report.get("evaluation"):
        from curate.evaluate.report import comparison_table

        console.print(comparison_table(report["evaluation"]))
