"""Plotly figures of the app (presentation only: they draw the records the workbench returns). Every name a
run or a user controls (loss names, group labels, metric names, axis names) goes through
:func:`ui.common.plot_text`: Plotly reads tags and LaTeX in its labels."""

from __future__ import annotations

import plotly.graph_objects as go

from ui.common import plot_text
from unirex.metrics.faithfulness import BINS
from unirex.metrics.registry import Headline, direction, metric_keys
from workbench import RunCurves

_LAYOUT = dict(template="plotly_white", height=340, margin=dict(l=50, r=20, t=50, b=45),
               legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0))


def empty(title: str, note: str = "no data yet") -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title=title, **_LAYOUT)
    fig.add_annotation(text=note, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5, font=dict(size=14))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def losses(curves: RunCurves, title: str = "Training losses per step") -> go.Figure:
    """One line per loss component (``loss`` is the weighted total)."""
    df = curves.losses
    if df.height == 0:
        return empty(title, "waiting for the first training step")
    fig = go.Figure()
    for name in curves.loss_names:
        sub = df.filter(df["name"] == name).sort("step")
        fig.add_trace(go.Scatter(x=sub["step"].to_list(), y=sub["value"].to_list(), mode="lines",
                                 name=plot_text(name), line=dict(width=3 if name == "loss" else 1.5)))
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="loss", **_LAYOUT)
    return fig


def dev_metrics(curves: RunCurves, title: str = "Dev metrics per epoch") -> go.Figure:
    df = curves.dev
    if df.height == 0:
        return empty(title, "no dev evaluation yet")
    fig = go.Figure()
    for name in metric_keys(headline=Headline.SUMMARY):
        sub = df.filter(df["name"] == name).sort("epoch")
        if sub.height:
            fig.add_trace(go.Scatter(x=[e + 1 for e in sub["epoch"].to_list()], y=sub["value"].to_list(),
                                     mode="lines+markers", name=name))
    fig.update_layout(title=title, xaxis_title="epoch", yaxis_title="value", **_LAYOUT)
    fig.update_xaxes(dtick=1)
    return fig


def pareto_front(points: list[tuple[float, float]], x_higher: bool = True, y_higher: bool = True) -> list[int]:
    """Indices of the points no other point beats on both axes (directions as given), sorted by x."""
    sx, sy = (1 if x_higher else -1), (1 if y_higher else -1)
    idx = []
    for i, (x, y) in enumerate(points):
        dominated = any((sx * x2 >= sx * x and sy * y2 >= sy * y) and (sx * x2 > sx * x or sy * y2 > sy * y)
                        for j, (x2, y2) in enumerate(points) if j != i)
        if not dominated:
            idx.append(i)
    return sorted(idx, key=lambda i: points[i][0])


def scatter(rows: list[dict], x: str, y: str, label_of, title: str) -> go.Figure:
    """Faithfulness vs plausibility (any two columns of the comparison table, ``<metric>_mean`` with its
    ``_std`` as error bars when present), the Pareto front drawn as a line over its points."""
    def std(col, r):
        return r.get(col[: -len("_mean")] + "_std") if col.endswith("_mean") else None

    pts = [(r.get(x), r.get(y), plot_text(label_of(r)), std(x, r), std(y, r)) for r in rows]
    pts = [p for p in pts if p[0] is not None and p[1] is not None]
    if not pts:
        return empty(title, "no runs with both metrics")
    xb, yb = x.replace("_mean", ""), y.replace("_mean", "")
    xd, yd = direction(xb), direction(yb)  # higher is better for NRG's columns, which the registry lacks
    front = pareto_front([(p[0], p[1]) for p in pts], xd.higher_is_better, yd.higher_is_better)
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=[p[0] for p in pts], y=[p[1] for p in pts], mode="markers+text", text=[p[2] for p in pts],
        textposition="top center", name="groups", marker=dict(size=11),
        error_x=dict(type="data", array=[p[3] or 0 for p in pts], visible=any(p[3] for p in pts)),
        error_y=dict(type="data", array=[p[4] or 0 for p in pts], visible=any(p[4] for p in pts))))
    fig.add_trace(go.Scatter(x=[pts[i][0] for i in front], y=[pts[i][1] for i in front], mode="lines+markers",
                             name="Pareto front", line=dict(dash="dash", color="#e0413a"),
                             marker=dict(size=15, symbol="circle-open", color="#e0413a")))
    for axis, vals in (("x", [p[0] for p in pts]), ("y", [p[1] for p in pts])):  # room for the labels
        lo, hi = min(vals), max(vals)
        pad = (hi - lo) * 0.2 or 0.5
        fig.update_layout(**{f"{axis}axis": dict(range=[lo - pad, hi + pad])})
    fig.update_traces(cliponaxis=False, selector=dict(type="scatter"))
    fig.update_layout(title=title, xaxis_title=plot_text(f"{xb} ({xd.arrow} better)"),
                      yaxis_title=plot_text(f"{yb} ({yd.arrow} better)"), **_LAYOUT)
    return fig


def bars(rows: list[dict], metrics: list[str], label_of,
         title: str = "Metrics per method (mean ± std over seeds)") -> go.Figure:
    present = [m for m in metrics if any(r.get(f"{m}_mean") is not None for r in rows)]
    if not rows or not present:
        return empty(title, "no runs match")
    fig = go.Figure()
    for r in rows:
        fig.add_trace(go.Bar(name=plot_text(label_of(r)), x=[plot_text(m) for m in present],
                             y=[r.get(f"{m}_mean") for m in present],
                             error_y=dict(type="data", array=[r.get(f"{m}_std") or 0 for m in present])))
    fig.update_layout(title=title, barmode="group", yaxis_title="value", **_LAYOUT)
    return fig


def bin_curves(rows: list[dict], label_of, title: str = "Comprehensiveness and sufficiency per bin") -> go.Figure:
    """comp_k* and suff_k* against k (percent of tokens in the rationale), one line per group."""
    # lazy: plotly.subplots is heavy: loaded for the first per-bin chart
    from plotly.subplots import make_subplots

    have = [r for r in rows if any(r.get(f"comp_k{k}_mean") is not None for k in BINS)]
    if not have:
        return empty(title, "no per-bin metrics")
    fig = make_subplots(rows=1, cols=2, subplot_titles=tuple(
        f"{name} ({direction(f'{kind}_k{BINS[0]}').arrow} better)"
        for kind, name in (("comp", "comprehensiveness"), ("suff", "sufficiency"))))
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
               "#17becf"]
    for i, r in enumerate(have):
        color, name = palette[i % len(palette)], plot_text(label_of(r))
        for col, kind in ((1, "comp"), (2, "suff")):
            fig.add_trace(go.Scatter(
                x=list(BINS), y=[r.get(f"{kind}_k{k}_mean") for k in BINS], mode="lines+markers", name=name,
                legendgroup=name, showlegend=col == 1, line=dict(color=color),
                error_y=dict(type="data", array=[r.get(f"{kind}_k{k}_std") or 0 for k in BINS])), row=1, col=col)
    fig.update_xaxes(type="log", tickvals=list(BINS), title_text="k (% of tokens)")
    fig.update_layout(title=title, **{**_LAYOUT, "height": 380,
                                      "legend": dict(orientation="h", yanchor="top", y=-0.22, x=0)})
    return fig


__all__ = ["bars", "bin_curves", "dev_metrics", "empty", "losses", "pareto_front", "scatter"]
