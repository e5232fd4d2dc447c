"""Inline SVG charts drawn from numbers (no script, no external asset): the run's funnel and a loss curve."""

from __future__ import annotations

from curate.view.html import Html, el, join
from curate.view.runfolder import StepView

KEPT = "#2e7d32"
# Distinct colours for drop reasons, in order of first appearance across the run.
PALETTE = ("#d32f2f", "#f9a825", "#6a1b9a", "#1565c0", "#ef6c00", "#00838f", "#ad1457", "#5d4037", "#9e9d24",
           "#283593", "#00695c", "#c2185b", "#4e342e", "#455a64")


def reason_colours(steps: list[StepView]) -> dict[str, str]:
    colours: dict[str, str] = {}
    for step in steps:
        for reason in step.dropped:
            colours.setdefault(reason, PALETTE[len(colours) % len(PALETTE)])
    return colours


def _seconds(s: float) -> str:
    return f"{s:,.1f} s" if s < 120 else f"{s / 60:,.1f} min"


def funnel(steps: list[StepView], link=None) -> Html:
    """Every step as a bar: rows kept (green) then dropped by reason (one colour each), a tick at rows in; the
    numbers, seconds and tokens beside it. ``link(step)`` gives each label's href."""
    colours = reason_colours(steps)
    widest = max([max(s.rows_in, s.rows_out + sum(s.dropped.values())) for s in steps] + [1])
    label_w, bar_w, info_w, row_h = 190, 560, 330, 34
    height = row_h * len(steps) + 20
    parts = []
    for i, s in enumerate(steps):
        y = 10 + i * row_h
        name = el("text", f"{s.dirname}" + ("" if s.status == "done" else f" ({s.status})"), x=4, y=y + 20,
                  class_=f"label {s.status}")
        parts.append(el("a", name, href=link(s)) if link and s.status != "pending" else name)
        x = label_w
        segments = [(s.rows_out, KEPT, f"kept {s.rows_out:,}")] + [
            (n, colours[r], f"{r}: {n:,}") for r, n in sorted(s.dropped.items(), key=lambda kv: -kv[1])]
        for n, colour, title in segments:
            w = bar_w * n / widest
            if n:
                parts.append(el("rect", el("title", title), x=f"{x:.1f}", y=y + 4, width=f"{max(w, 1):.1f}",
                                height=22, fill=colour, stroke="#ffffff" if s.status == "done" else "#000000",
                                stroke_dasharray=None if s.status == "done" else "4 2"))
            x += w
        if s.rows_in:
            tick = label_w + bar_w * s.rows_in / widest
            parts.append(el("line", x1=f"{tick:.1f}", x2=f"{tick:.1f}", y1=y, y2=y + 30, stroke="#212121",
                            stroke_width=2))
        info = "not started" if s.status == "pending" else \
            f"{s.rows_in:,} in → {s.rows_out:,} out · {_seconds(s.seconds)}" + (
                f" · {s.tokens:,} tokens" if s.tokens else "")
        parts.append(el("text", info, x=label_w + bar_w + 12, y=y + 20, class_="info"))
    chart = el("svg", *parts, xmlns="http://www.w3.org/2000/svg", width=label_w + bar_w + info_w, height=height,
               viewBox=f"0 0 {label_w + bar_w + info_w} {height}", role="img", class_="funnel",
               aria_label="rows in and out of every step, drops by reason")
    legend = el("ul", el("li", el("span", "■", class_="swatch kept"), " kept"),
                *[el("li", el("span", "■", class_=f"swatch r{PALETTE.index(c)}"), f" {r}")
                  for r, c in colours.items()],
                class_="legend")
    return join([chart, legend])


def loss_curve(history: dict) -> Html:
    """Train (and eval) loss by step as polylines with axes, from ``loss_history.json``."""
    series = {name: [(h["step"], h["loss"]) for h in history.get(name, []) if h.get("loss") is not None]
              for name in ("train", "eval")}
    points = [p for s in series.values() for p in s]
    if not points:
        return el("p", "no loss was logged")
    w, h, pad = 640, 260, 48
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y0, y1 = min(p[1] for p in points), max(p[1] for p in points)

    def sx(v: float) -> float:
        return pad + (w - 2 * pad) * ((v - x0) / (x1 - x0) if x1 > x0 else 0.5)

    def sy(v: float) -> float:
        return h - pad - (h - 2 * pad) * ((v - y0) / (y1 - y0) if y1 > y0 else 0.5)

    parts = [el("line", x1=pad, x2=w - pad, y1=h - pad, y2=h - pad, stroke="#212121"),
             el("line", x1=pad, x2=pad, y1=pad, y2=h - pad, stroke="#212121"),
             el("text", f"step {x0}", x=pad, y=h - pad + 18, class_="info"),
             el("text", f"step {x1}", x=w - pad, y=h - pad + 18, class_="info", text_anchor="end"),
             el("text", f"{y1:.3f}", x=pad - 4, y=pad + 4, class_="info", text_anchor="end"),
             el("text", f"{y0:.3f}", x=pad - 4, y=h - pad, class_="info", text_anchor="end")]
    for name, colour in (("train", "#1565c0"), ("eval", "#ef6c00")):
        pts = series[name]
        if pts:
            parts.append(el("polyline", fill="none", stroke=colour, stroke_width=2,
                            points=" ".join(f"{sx(a):.1f},{sy(b):.1f}" for a, b in pts)))
            parts += [el("circle", el("title", f"{name} step {a}: {b:.4f}"), cx=f"{sx(a):.1f}", cy=f"{sy(b):.1f}",
                         r=3, fill=colour) for a, b in pts]
            parts.append(el("text", f"{name} loss", x=w - pad, y=pad - 10 - (14 if name == "eval" else 0),
                            fill=colour, text_anchor="end", class_="info"))
    return el("svg", *parts, xmlns="http://www.w3.org/2000/svg", width=w, height=h, viewBox=f"0 0 {w} {h}",
              role="img", class_="loss", aria_label="loss by training step")
