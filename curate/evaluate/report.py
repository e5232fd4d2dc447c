"""Console tables for ``curate eval``: one run's metrics, and two runs compared with their paired tests.

Consumes a ``summary.json`` dict (``summary_table``) or a comparison dict from ``compare_runs``
(``comparison_table``); produces ``rich`` Tables. Numbers are shown as the summary holds them: value, the bootstrap
interval in brackets, n, and for comparisons the paired difference, its interval, the test and its p-value.
"""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from curate.paths import shown


def _value(m: dict | None) -> str:
    if not m or m.get("value") is None:
        return "-"
    return f"{m['value']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]"


def _model(info: dict) -> str:
    adapter = f" + {shown(info['adapter'])}" if info.get("adapter") else ""
    model = shown(info["model"]) if info.get("model") else info.get("model")
    return escape(f"{info.get('backend')}:{model}{adapter}")


def _choices(settings: dict) -> str:
    return f" ({settings['choices']} choices)" if settings.get("choices") else ""


def _skipped(counts: dict) -> str:
    skipped = counts.get("reference_nll_skipped")
    return f", reference NLL skipped {skipped}" if skipped else ""


def _lower_note(metrics: dict) -> str:
    return "\nreference_nll (nats per token) and reference_perplexity: lower is better" if (
        "reference_nll" in metrics) else ""


def summary_table(summary: dict) -> Table:
    s, model, counts = summary["settings"], summary["model"], summary["counts"]
    level = next(iter(summary["metrics"].values()), {}).get("level", 0.95)
    table = Table(title=f"eval {summary['set']['name']} ({summary['set']['n']} items): {_model(model)}",
                  title_justify="left")
    for col, justify in (("metric", "left"), (f"value [{level:.0%} CI]", "left"), ("n", "right")):
        table.add_column(col, justify=justify)
    for name, m in summary["metrics"].items():
        table.add_row(name, _value(m), str(m["n"]))
    verdicts = ", ".join(f"{k}: {v}" for k, v in sorted(counts["verdicts"].items())) or "-"
    precision = " ".join(map(str, s["precision"].values()))
    table.caption = escape(f"prompt {s['prompt']['name']} ({s['prompt']['style']}, {s['prompt']['shots']} shots), "
                           f"scoring {s['scoring']}{_choices(s)}, precision {precision}; errors {counts['errors']}, "
                           f"unparsed {counts['unparsed']}, verdicts {verdicts}{_skipped(counts)}; "
                           f"{summary['seconds']:.1f} s" + _lower_note(summary["metrics"]))
    return table


def _test(t: dict) -> str:
    if t["test"] == "mcnemar_exact":
        return f"McNemar exact: only A {t['only_a']}, only B {t['only_b']}, p={t['p_value']:.4g}"
    return f"sign test: B higher {t['b_higher']}, lower {t['b_lower']}, ties {t['ties']}, p={t['p_value']:.4g}"


def comparison_table(comparison: dict) -> Table:
    a, b = comparison["a"], comparison["b"]
    table = Table(title=f"{comparison['set']}: {comparison['n_paired']} paired items", title_justify="left")
    for col in ("metric", f"A {_model(a['model'])}", f"B {_model(b['model'])}", "B - A [CI]", "paired test"):
        table.add_column(col, overflow="fold")
    for name, m in comparison["metrics"].items():
        table.add_row(name, _value(m["a"]), _value(m["b"]), _value(m["difference"]), _test(m["test"]))
    notes = [f"A: {shown(a['run'])}", f"B: {shown(b['run'])}", *([_lower_note(comparison["metrics"]).strip()]
                                                  if "reference_nll" in comparison["metrics"] else []),
             f"{comparison['bootstrap']['resamples']:,} {comparison['bootstrap']['method']} bootstrap resamples, "
             f"seed {comparison['bootstrap']['seed']}"]
    if comparison["forced"]:
        notes.append("FORCED despite differences: " + "; ".join(comparison["differences"]))
    table.caption = escape("\n".join(notes))
    return table
