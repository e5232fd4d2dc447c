"""The run report as a console table: rows in/out, drops by reason, seconds and tokens per stage."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from curate.paths import shown


def report_table(report: dict) -> Table:
    """A rich Table for a report dict (as written to ``report.json``)."""
    table = Table(title=f"{report['pipeline']}  ({shown(report['run_dir'])})", title_justify="left")
    for col, justify in [("stage", "left"), ("status", "left"), ("rows in", "right"), ("rows out", "right"),
                         ("dropped (reason: rows)", "left"), ("seconds", "right"), ("tokens", "right")]:
        table.add_column(col, justify=justify, overflow="fold")
    for s in report["stages"]:
        dropped = ", ".join(f"{k}: {v}" for k, v in sorted(s["dropped"].items(), key=lambda kv: -kv[1])) or "-"
        counters = s.get("counters", {})
        tokens = counters.get("tokens_generated") or counters.get("tokens_trained")
        table.add_row(s["stage"], "cached" if s["cached"] else "ran", f"{s['rows_in']:,}", f"{s['rows_out']:,}",
                      dropped, f"{s.get('wall_seconds') or s['seconds']:.1f}", f"{tokens:,}" if tokens else "-")
    table.caption = f"{report['rows_out']:,} rows in {shown(report['final_dir'])}  ·  {report['seconds']:.1f} s"
    return table


def answers_table(answers: list[dict]) -> Table:
    """Base and tuned model's answers to the same questions, side by side; for held-out pairs also the reference
    answer with its source, and its NLL per token under each model (lower: the model finds it likelier)."""
    table = Table(title="before / after fine-tuning", title_justify="left", show_lines=True)
    referenced = any("reference" in a for a in answers)
    for col in ("question", "base model", "fine-tuned", *(("reference (source)", "reference NLL base -> tuned")
                                                          if referenced else ())):
        table.add_column(col, overflow="fold")
    for a in answers:
        extra = (f"{a['reference']} ({a['source']})", f"{a['base_reference_nll']:.2f} -> {a['tuned_reference_nll']:.2f}"
                 ) if "reference" in a else ("-", "-")
        table.add_row(a["question"], a["base"], a["tuned"], *(extra if referenced else ()))
    if referenced:
        table.caption = ("reference NLL: each model under the prompt it is asked with (a completion prompt for the "
                         "base model, Gemma turns for the tuned one)")
    return table


def evaluation_verdict(comparison: dict) -> str:
    """One sentence on what a base-vs-tuned comparison can show: which metrics' 95% intervals exclude 0."""
    n = comparison["n_paired"]
    clear = [name for name, m in comparison["metrics"].items() if m["difference"]["ci_low"] is not None
             and (m["difference"]["ci_low"] > 0 or m["difference"]["ci_high"] < 0)]
    if not clear:
        return (f"On {n} held-out items no difference between the base and the tuned model is significant (every "
                "interval includes 0): this run shows the pipeline working end to end, not a better model "
                "(benchmarks/curation_value.py trains with several seeds on held-out sets for that).")
    return (f"On {n} held-out items the interval of tuned - base excludes 0 for {', '.join(clear)} (one training "
            "seed: a rerun with another seed may differ).")


def print_report(report: dict, console: Console | None = None) -> None:
    console = console or Console()
    console.print(report_table(report))
    if report.get("answers"):
        console.print(answers_table(report["answers"]))
    if report.get("evaluation"):
        from curate.evaluate.report import comparison_table

        console.print(comparison_table(report["evaluation"]))
        console.print(evaluation_verdict(report["evaluation"]), markup=False)
