"""Plotly figures of the app (presentation only: they draw the records the workbench returns). Every name a
run or a user controls (loss names, group labels, metric names, axis names) goes through
:func:`ui.common.plot_text`: Plotly reads tags and LaTeX in its labels."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import plotly.graph_objects as go

from ui.common import plot_text
from unirex.errors import UnirexError
from unirex.metrics.faithfulness import BINS
from unirex.metrics.registry import Headline, MetricSpec, direction, get_metric, metric_keys
from workbench import RunCurves
from workbench.curves import ema_smooth

_LAYOUT = dict(template="plotly_white", height=340, margin=dict(l=50, r=20, t=50, b=45),
               legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0))


def metric_spec(key: str) -> MetricSpec | None:
    """The registry's spec of ``key``, None for a column it does not hold (NRG's)."""
    try:
        return get_metric(key)
    except UnirexError:
        return None


def heading_of(key: str) -> str:
    """A metric's column heading (with its direction where stated), the key itself when unregistered."""
    spec = metric_spec(key)
    return spec.heading if spec else key


def empty(title: str, note: str = "no data yet") -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title=title, **_LAYOUT)
    fig.add_annotation(text=note, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5, font=dict(size=14))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


#: the x axes a loss chart offers (TensorBoard's STEP / RELATIVE / WALL): the choice's label -> its column
X_AXES = {"step": "step", "time since start": "elapsed", "wall clock": "time"}
_X_TITLES = {"step": "step", "elapsed": "seconds since the run started", "time": "wall clock time"}
#: TensorBoard's default smoothing weight
DEFAULT_SMOOTHING = 0.6
_RAW_OPACITY = 0.25  # the unsmoothed line behind a smoothed one


def _x_column(x: str) -> str:
    if x in X_AXES:
        return X_AXES[x]
    if x in X_AXES.values():
        return x
    raise UnirexError(f"x axis must be one of {', '.join(X_AXES)}, got {x!r}")


def _xs(sub, col: str) -> list:
    vals = sub[col].to_list()
    if col == "time":  # Unix seconds -> datetimes Plotly draws as a date axis
        return [None if v is None else dt.datetime.fromtimestamp(v) for v in vals]
    return vals


def _add_curve(fig: go.Figure, xs: list, ys: list[float], name: str, color: str, smoothing: float,
               width: float, hover: str) -> None:
    """One curve: with smoothing, the raw values faint behind the smoothed line (same colour, one legend
    entry for both, as TensorBoard and W&B draw them)."""
    group = name
    if smoothing > 0:
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=name, legendgroup=group, showlegend=False,
                                 opacity=_RAW_OPACITY, line=dict(color=color, width=1), hoverinfo="skip"))
        ys = ema_smooth(ys, smoothing)
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=name, legendgroup=group,
                             line=dict(color=color, width=width), hovertemplate=hover))


def _frame_xy(df, name: str, col: str):
    sub = df.filter((df["name"] == name) & df[col].is_not_null()).sort("step")
    return _xs(sub, col), sub["value"].to_list()


def losses(curves: RunCurves, title: str = "Training losses per step", smoothing: float = 0.0,
           x: str = "step") -> go.Figure:
    """One line per loss component (``loss`` is the weighted total). ``smoothing``: TensorBoard's EMA
    weight in [0, 1) (:func:`workbench.curves.ema_smooth`; the raw line stays faint behind); ``x``: one of
    :data:`X_AXES`."""
    col = _x_column(x)
    df = curves.losses
    if df.height == 0:
        return empty(title, "waiting for the first training step")
    fig = go.Figure()
    for i, name in enumerate(curves.loss_names):
        xs, ys = _frame_xy(df, name, col)
        _add_curve(fig, xs, ys, plot_text(name), PALETTE[i % len(PALETTE)], smoothing,
                   3 if name == "loss" else 1.5, "%{y:.4g}<extra>%{fullData.name}</extra>")
    fig.update_layout(title=title, xaxis_title=_X_TITLES[col], yaxis_title="loss", **_LAYOUT)
    return fig


def overlay(runs: list[RunCurves], loss: str = "loss", smoothing: float = 0.0, x: str = "step",
            title: str | None = None) -> go.Figure:
    """One loss component of several runs on one chart, a colour per run (named by its run id), smoothed
    and on the x axis as :func:`losses` draws them."""
    col = _x_column(x)
    title = title or f"{plot_text(loss)} of {len(runs)} runs"
    fig = go.Figure()
    for i, c in enumerate(runs):
        df = c.losses
        if df.height == 0 or loss not in c.loss_names:
            continue
        xs, ys = _frame_xy(df, loss, col)
        _add_curve(fig, xs, ys, plot_text(c.run_id), group_style(i).color, smoothing, 2,
                   "%{y:.4g}<extra>%{fullData.name}</extra>")
    if not fig.data:
        return empty(title, "pick runs above to draw their curves" if not runs else f"no {plot_text(loss)} logged yet")
    fig.update_layout(title=title, xaxis_title=_X_TITLES[col], yaxis_title=plot_text(loss), **_LAYOUT)
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


#: a group's colour and marker symbol (24 groups, the charts' most, get distinct pairs)
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "triangle-down", "star", "hexagon", "cross")
PATTERNS = ("", "/", "x", ".", "\\", "+", "-", "|")  # bar fill patterns: to a bar what the symbol is to a marker
#: the width a chart of the Compare tab's side-by-side row gets at a 1024 px window (legend rows are laid out for it)
CHART_WIDTH_PX = 440
_LEGEND_ROW_PX = 20
_AXIS_TITLE_PX = 50  # below the plot area: tick labels and the x axis title


@dataclass(frozen=True)
class GroupStyle:
    """How one group is drawn in every chart of a comparison."""

    color: str
    symbol: str  # a marker's symbol (scatter, per-bin lines)
    pattern: str  # a bar's fill pattern


def group_style(i: int) -> GroupStyle:
    """The style of the ``i``-th group: ten colours, then the next symbol and pattern with them."""
    j = (i // len(PALETTE)) % len(SYMBOLS)
    return GroupStyle(color=PALETTE[i % len(PALETTE)], symbol=SYMBOLS[j], pattern=PATTERNS[j])


def n_note(r: dict) -> str:
    """`` (n=1)`` after the label of a group of one run: it has no spread, so no error bar."""
    return " (n=1)" if r.get("n") == 1 else ""


def error_of(r: dict, col: str) -> tuple[float, float] | None:
    """``(up, down)`` error bar lengths of column ``col`` (``<metric>_mean``) of group ``r``: its confidence
    interval where the row holds one (``<metric>_ci_low`` / ``_ci_high``), else ± the standard deviation over
    seeds; None for a group of one run (its std is undefined: no bar, rather than a bar of zero) and for
    columns without a spread (NRG)."""
    if not col.endswith("_mean") or r.get(col) is None:
        return None
    base, mean = col[: -len("_mean")], r[col]
    lo, hi = r.get(f"{base}_ci_low"), r.get(f"{base}_ci_high")
    if lo is not None and hi is not None:
        return hi - mean, mean - lo
    std = r.get(f"{base}_std")
    if std is None or r.get("n") == 1:
        return None
    return std, std


def _error_bars(errs: list[tuple[float, float] | None]) -> dict:
    """Plotly ``error_x`` / ``error_y`` of one trace: hidden where no point has a bar (NaN where one lacks it)."""
    if all(e is None for e in errs):
        return dict(visible=False)
    nan = float("nan")
    return dict(type="data", symmetric=False, visible=True, array=[e[0] if e else nan for e in errs],
                arrayminus=[e[1] if e else nan for e in errs])


def legend_below(fig: go.Figure, labels: list[str], height: int, width_px: int = CHART_WIDTH_PX,
                 subtitle: str = "") -> go.Figure:
    """Lay the legend out in rows under the plot, inside a bottom margin grown to hold them, so it can cover
    neither the title (at the top, with ``subtitle`` in smaller type under it) nor the data; the figure grows
    by the legend's height."""
    longest = max((len(s) for s in labels), default=0)
    entry = 48 + int(6.5 * longest)  # the symbol, then the text (about 6 px a character at 12 px)
    per_row = max(1, (width_px - 20) // entry)
    rows = -(-len(labels) // per_row)
    legend_px = rows * _LEGEND_ROW_PX + 8
    fig.update_layout(
        height=height + legend_px, margin=dict(l=55, r=20, t=86 if subtitle else 60, b=_AXIS_TITLE_PX + legend_px),
        title=dict(y=1, yref="container", yanchor="top", pad=dict(t=12), subtitle=dict(text=plot_text(subtitle))),
        legend=dict(orientation="h", xref="container", yref="container", x=0, y=0, xanchor="left", yanchor="bottom",
                    entrywidth=entry, entrywidthmode="pixels", font=dict(size=12), tracegroupgap=0,
                    maxheight=legend_px + _LEGEND_ROW_PX))
    return fig


def scatter(rows: list[dict], x: str, y: str, label_of, title: str, subtitle: str = "") -> go.Figure:
    """Faithfulness vs plausibility (any two columns of the comparison table, ``<metric>_mean`` with its
    interval or ``_std`` as error bars when present, none for a group of one run), the Pareto front drawn as a
    line over its points. Each group is a marker of its own (colour and symbol) named in the legend under the
    plot and in its hover text, rather than a text label beside it: labels of close points overlapped."""
    pts = [(r.get(x), r.get(y), plot_text(label_of(r)) + n_note(r), error_of(r, x), error_of(r, y), i)
           for i, r in enumerate(rows)]
    pts = [p for p in pts if p[0] is not None and p[1] is not None]
    if not pts:
        return empty(title, "no runs with both metrics")
    xb, yb = x.replace("_mean", ""), y.replace("_mean", "")
    xd, yd = direction(xb), direction(yb)  # higher is better for NRG's columns, which the registry lacks
    front = pareto_front([(p[0], p[1]) for p in pts], xd.higher_is_better, yd.higher_is_better)
    traces = []
    for px, py, label, ex, ey, i in pts:
        style = group_style(i)
        spread = "" if ex or ey else ("; one run: no spread" if rows[i].get("n") == 1 else "")
        traces.append(dict(
            type="scatter", x=[px], y=[py], mode="markers", name=label, legendgroup=label,
            marker=dict(size=11, color=style.color, symbol=style.symbol),
            hovertext=[f"{label}<br>{plot_text(xb)} {px:.3f}, {plot_text(yb)} {py:.3f}{spread}"], hoverinfo="text",
            error_x=_error_bars([ex]), error_y=_error_bars([ey])))
    traces.append(dict(type="scatter", x=[pts[i][0] for i in front], y=[pts[i][1] for i in front],
                       mode="lines+markers", name="Pareto front", line=dict(dash="dash", color="#e0413a"),
                       hoverinfo="skip", marker=dict(size=17, symbol="circle-open", color="#e0413a")))
    # one constructor call: adding traces one at a time re-validates the figure each time
    fig = go.Figure(data=traces, layout=dict(template="plotly_white", title=dict(text=title),
                                             xaxis=dict(title=dict(text=plot_text(f"{xb} ({xd.arrow} better)"))),
                                             yaxis=dict(title=dict(text=plot_text(f"{yb} ({yd.arrow} better)")))))
    return legend_below(fig, [p[2] for p in pts] + ["Pareto front"], height=360, subtitle=subtitle)


def _family_of(metric: str) -> str:
    spec = metric_spec(metric)
    return spec.family.value if spec else "other"


def panels(titles: list[str], widths: list[float] | None = None, spacing: float = 0.1, **xaxis) -> dict:
    """Layout of one row of side-by-side panels, each with its own x and y axes (``x``/``y``, ``x2``/``y2``,
    ...; y axes not matched, so each panel is scaled to its own values) and its title above it: what
    ``plotly.subplots.make_subplots`` builds, in one layout dict (a third of a chart's drawing time went to
    make_subplots and to adding traces one at a time); ``xaxis``: settings of every x axis."""
    widths = widths or [1.0] * len(titles)
    room = 1 - spacing * (len(titles) - 1)
    layout, left, notes = {}, 0.0, []
    for i, (title, w) in enumerate(zip(titles, widths), start=1):
        right = left + room * w / sum(widths)
        sfx = "" if i == 1 else str(i)
        layout[f"xaxis{sfx}"] = dict(domain=[left, right], anchor=f"y{sfx}", **xaxis)
        layout[f"yaxis{sfx}"] = dict(domain=[0.0, 1.0], anchor=f"x{sfx}")
        notes.append(dict(text=title, x=(left + right) / 2, y=1.0, xref="paper", yref="paper", xanchor="center",
                          yanchor="bottom", showarrow=False, font=dict(size=16)))
        left = right + spacing
    return {**layout, "annotations": notes}


def _axis_refs(col: int) -> dict:
    return dict(xaxis="x" if col == 1 else f"x{col}", yaxis="y" if col == 1 else f"y{col}")


def bars(rows: list[dict], metrics: list[str], label_of,
         title: str = "Metrics per method (mean ± std over seeds)", subtitle: str = "") -> go.Figure:
    """A bar per metric per group, one panel (with its own y axis) per metric family, so AOPCs near 0.05 are
    not flattened beside AUPRC and F1 near 1; error bars as in :func:`error_of` (none for a group of one run,
    whose legend entry says n=1); the legend under the panels."""
    present = [m for m in metrics if any(r.get(f"{m}_mean") is not None for r in rows)]
    if not rows or not present:
        return empty(title, "no runs match")
    families: dict[str, list[str]] = {}
    for m in present:
        families.setdefault(_family_of(m), []).append(m)
    labels, traces = [], []
    for i, r in enumerate(rows):
        label, style = plot_text(label_of(r)) + n_note(r), group_style(i)
        labels.append(label)
        for col, ms in enumerate(families.values(), start=1):
            traces.append(dict(
                type="bar", name=label, legendgroup=label, showlegend=col == 1, x=[plot_text(heading_of(m)) for m in ms],
                y=[r.get(f"{m}_mean") for m in ms], marker=dict(color=style.color, pattern=dict(shape=style.pattern)),
                error_y=_error_bars([error_of(r, f"{m}_mean") for m in ms]), **_axis_refs(col)))
    layout = panels([plot_text(f) for f in families], [len(ms) for ms in families.values()])
    layout["yaxis"]["title"] = dict(text="value")
    fig = go.Figure(data=traces, layout=dict(template="plotly_white", title=dict(text=title), barmode="group",
                                             **layout))
    return legend_below(fig, labels, height=360, subtitle=subtitle)


def pair_matrix(labels: list[str], diffs: dict[tuple[str, str], tuple[float, bool]], metric: str,
                title: str, subtitle: str = "") -> go.Figure:
    """A method x method matrix of paired differences on ``metric`` (row minus column), coloured by sign (blue
    where the row is higher), ``*`` where the difference is significant after Holm's adjustment; ``subtitle``
    (under the title): what every group shares, said once rather than in each label."""
    if len(labels) < 2 or not diffs:
        return empty(title, "fewer than two groups with per-example outputs on one dataset")
    z, text = [], []
    for a in labels:
        zr, tr = [], []
        for b in labels:
            d = diffs.get((a, b))
            zr.append(None if d is None else d[0])
            tr.append("" if d is None else f"{d[0]:+.3f}{'*' if d[1] else ''}")
        z.append(zr)
        text.append(tr)
    shown = [plot_text(lab) for lab in labels]  # group labels are user values: Plotly reads tags in them
    fig = go.Figure(go.Heatmap(z=z, x=shown, y=shown, text=text, texttemplate="%{text}", colorscale="RdBu",
                               zmid=0, colorbar=dict(title="row - col"), hoverongaps=False))
    fig.update_layout(title=dict(text=plot_text(title), subtitle=dict(text=plot_text(subtitle))),
                      xaxis_title=plot_text(f"{metric}: column"), yaxis_title="row",
                      **{**_LAYOUT, "height": max(340, 60 + 40 * len(labels))})
    if subtitle:  # room for the subtitle's line under the title
        fig.update_layout(margin=dict(t=86))
    fig.update_yaxes(autorange="reversed")
    return fig


def bin_curves(rows: list[dict], label_of, title: str = "Comprehensiveness and sufficiency per bin",
               subtitle: str = "") -> go.Figure:
    """comp_k* and suff_k* against k (percent of tokens in the rationale), one line per group (error bars as
    in :func:`error_of`: none for a group of one run)."""
    have = [(i, r) for i, r in enumerate(rows) if any(r.get(f"comp_k{k}_mean") is not None for k in BINS)]
    if not have:
        return empty(title, "no per-bin metrics")
    labels, traces = [], []
    for i, r in have:
        style, label = group_style(i), plot_text(label_of(r)) + n_note(r)
        labels.append(label)
        for col, kind in ((1, "comp"), (2, "suff")):
            traces.append(dict(
                type="scatter", x=list(BINS), y=[r.get(f"{kind}_k{k}_mean") for k in BINS], mode="lines+markers",
                name=label, legendgroup=label, showlegend=col == 1, line=dict(color=style.color),
                marker=dict(symbol=style.symbol),
                error_y=_error_bars([error_of(r, f"{kind}_k{k}_mean") for k in BINS]), **_axis_refs(col)))
    layout = panels([f"{name} ({direction(f'{kind}_k{BINS[0]}').arrow} better)"
                     for kind, name in (("comp", "comprehensiveness"), ("suff", "sufficiency"))],
                    spacing=0.08, type="log", tickvals=list(BINS), title=dict(text="k (% of tokens)"))
    fig = go.Figure(data=traces, layout=dict(template="plotly_white", title=dict(text=title), **layout))
    return legend_below(fig, labels, height=380, width_px=2 * CHART_WIDTH_PX, subtitle=subtitle)


__all__ = ["CHART_WIDTH_PX", "DEFAULT_SMOOTHING", "GroupStyle", "PALETTE", "PATTERNS", "SYMBOLS", "X_AXES", "bars",
           "bin_curves", "dev_metrics", "empty", "error_of", "group_style", "heading_of", "legend_below", "losses",
           "metric_spec", "n_note", "overlay", "pair_matrix", "panels", "pareto_front", "scatter"]
