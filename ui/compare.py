"""Compare tab: the methods dashboard from the run store. Filter by dataset, arch, methods, split, seeds, tags
and runs picked in the Runs tab; one evaluation per trained model (the latest evaluation of a checkpoint
stands for it), debug runs left out unless ticked; mean ± half-width of the 95% interval per group (★ where
significantly best); ERASER metrics with NRG (per dataset) and its three components; faithfulness vs
plausibility with the Pareto front, a bar per metric per method with its interval, the per-bin
comprehensiveness and sufficiency curves, and a method x method matrix of paired tests; the table exported
as CSV or Parquet (intervals and marks included)."""

from __future__ import annotations

import gradio as gr

from ui import figures
from ui.common import Handlers, choice_or_none, code, handler, html_text, md, plot_text
from unirex.errors import UnirexError
from unirex.metrics.registry import Family, metric_keys, metrics, on_request
from workbench import Comparison, GroupLabels, RunFilter, Workbench, group_labels, pair_labels

MAX_CHART_GROUPS = 24  # the charts draw the best groups by NRG (a chart of hundreds of bars says nothing)
#: the scatter's axes after NRG's: headline metrics, faithfulness and plausibility first (the chart's question)
AXIS_FAMILIES = (Family.FAITHFULNESS, Family.PLAUSIBILITY, Family.TASK, Family.EFFICIENCY)
#: the bar chart's first selection
BAR_DEFAULT = ["comp_aopc", "suff_aopc", "plaus_auprc", "macro_f1"]
#: the table's first grouping
BY_DEFAULT = ("method", "dataset", "arch")
#: the paired-tests matrix's first metric
PAIR_DEFAULT = "macro_f1"


def shown_metrics(cmp: Comparison | None = None) -> list[tuple[str, str]]:
    """(key, heading) of the table's metric columns: the registry's headline metrics, then those computed on
    request (``eval.extra_metrics``) that ``cmp`` holds (:func:`unirex.metrics.registry.on_request`)."""
    shown = metrics(headline=True) + (on_request(cmp.metrics) if cmp is not None else [])
    return [(m.key, m.heading) for m in shown]


def axes() -> list[str]:
    """The columns the scatter can plot: NRG and its components, then each headline metric's mean."""
    return ["nrg_faithfulness", "nrg_plausibility", "nrg_task", "nrg",
            *[f"{k}_mean" for family in AXIS_FAMILIES for k in metric_keys(family, headline=True)]]


def bar_metrics() -> list[str]:
    return list(metric_keys(headline=True))


def parse_seeds(text: str | None) -> tuple[int, ...]:
    out = []
    for s in str(text or "").replace(" ", ",").split(","):
        if s.strip():
            if not s.strip().lstrip("-").isdigit():
                raise UnirexError(f"seeds must be whole numbers separated by commas, got '{text}'")
            out.append(int(s))
    return tuple(out)


def _pm(mean, std) -> str:
    if mean is None:
        return ""
    return f"{mean:.3f}" + (f" ± {std:.3f}" if std is not None else "")


def _pm_ci(mean, low, high, std=None, best: bool = False) -> str:
    """``mean ± half-width`` of the 95% interval, ``★`` on the group significantly best on the column; a group
    without an interval (no per-example outputs) shows ``mean (sd std)``."""
    if mean is None:
        return ""
    if low is not None and high is not None:
        return f"{mean:.3f} ± {(high - low) / 2:.3f}" + (" ★" if best else "")
    return f"{mean:.3f}" + (f" (sd {std:.3f})" if std is not None else "")


def label_of(by, rows: list[dict] | None = None):
    """A group's label: its ``by`` values joined by " / "; given the charted ``rows``, only the columns whose
    value differs between them (what the groups share goes in the title once: :func:`common_part`)."""
    return (group_labels(by, rows) if rows else GroupLabels(tuple(by))).label


def varying(by, rows: list[dict]) -> list[str]:
    """The ``by`` columns whose value differs between ``rows`` (the first column when none does: one group)."""
    return list(group_labels(by, rows).columns) if rows else list(by)


def common_part(by, rows: list[dict]) -> str:
    """What every charted group shares, for the charts' titles: ``dataset demo, arch default``."""
    return group_labels(by, rows).caption if rows else ""


def table_headers(by, cmp: Comparison | None = None) -> list[str]:
    """The table's column names when one row is a group of ``by`` (of ``cmp``: see :func:`shown_metrics`)."""
    return [*by, "runs", "seeds", "NRG", "NRG faith.", "NRG plaus.", "NRG task", *[h for _, h in shown_metrics(cmp)]]


def table_view(cmp: Comparison) -> tuple[list[str], list[list]]:
    """The comparison as the dashboard shows it: groups, runs, seeds, NRG (and components), mean ± std."""
    by = list(cmp.by)
    shown = shown_metrics(cmp)
    headers = table_headers(by, cmp)
    rows = []
    for r in cmp.table.iter_rows(named=True):
        rows.append([*[r[b] for b in by], r["n"], ",".join(str(s) for s in (r["seeds"] or [])),
                     _pm_ci(r.get("nrg"), r.get("nrg_ci_low"), r.get("nrg_ci_high")),
                     *[None if r.get(c) is None else round(r[c], 3)
                       for c in ("nrg_faithfulness", "nrg_plausibility", "nrg_task")],
                     *[_pm_ci(r.get(f"{m}_mean"), r.get(f"{m}_ci_low"), r.get(f"{m}_ci_high"), r.get(f"{m}_std"),
                              bool(r.get(f"{m}_best"))) for m, _ in shown]])
    return headers, rows


def table_value(headers: list[str], rows: list[list]) -> dict:
    """The table's value: its column names even with no rows (a bare None showed Gradio's headers 1 2 3)."""
    return {"headers": headers, "data": rows}


def chart_rows(cmp: Comparison) -> tuple[list[dict], str]:
    """The groups the charts draw (the best :data:`MAX_CHART_GROUPS` by NRG) and a title note when cut."""
    recs = list(cmp.table.head(MAX_CHART_GROUPS).iter_rows(named=True))
    n = cmp.table.height
    return recs, (f" — best {MAX_CHART_GROUPS} of {n} by NRG" if n > MAX_CHART_GROUPS else "")


def dashboard(wb: Workbench, dataset=None, arch=None, methods=(), split="test", seeds="", by=("method",),
              convention="eraser", include_debug=False, tags=(), run_ids=()) -> tuple[Comparison, list[str], list[list], str]:
    """The dashboard's query and table: ``(comparison, headers, rows, note)`` (what bench/dashboard_speed.py times).
    ``tags``: only runs holding all of them; ``run_ids``: only these runs (picked in the Runs tab)."""
    flt = RunFilter(status="completed", dataset=choice_or_none(dataset), arch=choice_or_none(arch),
                    methods=tuple(methods or ()), seeds=parse_seeds(seeds), tags=tuple(tags or ()),
                    run_ids=tuple(run_ids or ()))
    by = tuple(by) or ("method",)
    cmp = wb.compare(flt, split=split, by=by, convention=convention, include_debug=bool(include_debug))
    headers, rows = table_view(cmp)
    used = "; ".join(f"{k}: {', '.join(v)}" for k, v in cmp.nrg_metrics.items())
    if not rows:
        note = (f"No runs match: no completed run has final metrics on the **{md(split)}** split with these "
                "filters" + ("" if include_debug else " (debug runs left out)") + ". Clear a filter, or train or "
                "evaluate runs on this split.")
    else:
        datasets = cmp.runs["dataset"].n_unique() if cmp.runs.height else 0
        where = ("the groups of each dataset (never across datasets)" + ("; a group over several datasets: the mean "
                 "of its per-dataset NRGs" if "dataset" not in by else "") if datasets > 1 else "these rows")
        note = (f"{len(rows)} group(s) on the **{md(split)}** split; NRG ({md(convention)}) over {where}"
                + (f" from {md(used)}" if used else "") + ". One evaluation per trained model"
                + ("" if include_debug else "; debug runs left out")
                + (f"; only the {len(run_ids)} picked run(s)" if run_ids else "") + ". " + uncertainty_note(cmp))
    return cmp, headers, rows, note


def uncertainty_note(cmp: Comparison) -> str:
    """What the ± means, which groups' intervals are over examples only, and which groups have none (why)."""
    unc = cmp.uncertainty
    if unc is None or cmp.table.height == 0:
        return ""
    lab = label_of(cmp.by)
    one = [lab(r) for r in cmp.table.iter_rows(named=True) if r.get("ci_over") == "examples"]
    out = (f"Mean ± half-width of the 95% interval (bootstrap, {unc.n_resamples} resamples of the examples, and of the "
           "seeds where a group has several); ★: best on the column, significantly better than the runner-up "
           "(paired test); (sd …): no interval.")
    if one:
        out += f" One seed, interval over examples only: {md(', '.join(one))}."
    if note := cmp.nrg_interval_note():
        out += f" {md(note)}."
    left = [f"{label}: {why}" for why_ds in unc.left_out.values() for label, why in why_ds.items()]
    if left:
        out += " No interval and no test for " + md("; ".join(left)) + "."
    return out


def pair_view(wb: Workbench, cmp: Comparison, metric: str | None):
    """The paired-tests matrix of ``metric`` over the comparison's groups (:func:`figures.pair_matrix`)."""
    title = f"Paired differences on {metric} (row − column; * significant, Holm-adjusted)"
    if cmp.table.height == 0:
        return figures.empty(plot_text(title), "no runs match")
    if not metric or cmp.uncertainty is None:
        return figures.empty(plot_text(title), "no per-example outputs to test")
    try:
        tests = wb.pairwise(metric, cmp=cmp)
    except UnirexError as e:
        return figures.empty(plot_text(title), plot_text(str(e)))
    names = pair_labels(cmp, tests)  # only what differs between the groups; what they share goes under the title
    labels: list[str] = []
    diffs: dict[tuple[str, str], tuple[float, bool]] = {}
    for t in tests:
        a, b = names.of(t)
        labels.extend(x for x in (a, b) if x not in labels)
        diffs[(a, b)] = (t.diff, t.significant)
        diffs[(b, a)] = (-t.diff, t.significant)
    return figures.pair_matrix(labels[:MAX_CHART_GROUPS], diffs, metric, title, subtitle=names.groups.caption)


class CompareHandlers(Handlers):
    """The Compare tab's event handlers."""

    def show(self, ds, ar, ms, sp, sd, b, conv, x, y, bm, dbg=False, tg=(), picked=(), pm=None):
        cmp, headers, rows, msg = dashboard(self.wb, ds, ar, ms, sp, sd, b, conv, dbg, tg, picked)
        choices = self.wb.compare_choices(sp)

        def opts(col):
            return choices.get(col, [])

        recs, more = chart_rows(cmp)
        lab = label_of(cmp.by, recs)
        sub = "; ".join(p for p in (common_part(cmp.by, recs), more.removeprefix(" — ")) if p)
        return (table_value(headers, rows), msg,
                gr.update(choices=["any", *opts("dataset")]), gr.update(choices=["any", *opts("arch")]),
                gr.update(choices=opts("method")), gr.update(choices=opts("tags")),
                gr.update(choices=list(picked or [])),
                figures.scatter(recs, x, y, lab, "Faithfulness vs plausibility (Pareto front dashed)", sub),
                figures.bars(recs, list(bm or bar_metrics()), lab, "Metrics per group (mean and 95% interval)", sub),
                figures.bin_curves(recs, lab, "Comprehensiveness and sufficiency per bin", sub),
                pair_view(self.wb, cmp, pm or PAIR_DEFAULT))

    @handler
    def on_refresh(self, *values):
        stale = self.wb.refresh_index()  # runs of the CLI and other processes too
        if stale:  # a full disk: compare what the index holds, and say why it is not newer
            gr.Warning(html_text(stale))  # a path is text, never markup
        return self.show(*values)

    @handler
    def on_filter(self, *values):
        return self.show(*values)  # the store is read again only when it changed

    @handler
    def on_export(self, fmt, ds, ar, ms, sp, sd, b, conv, dbg=False, tg=(), picked=()):
        cmp, *_ = dashboard(self.wb, ds, ar, ms, sp, sd, b, conv, dbg, tg, picked)
        f = self.wb.export_comparison(cmp, fmt)
        return str(f.path), f"Wrote {code(f.path.name)}: {md(f.description)}."


def build_tab(wb: Workbench):
    """Build the tab; returns the refresh event ``(fn, inputs, outputs)`` run when the tab is shown."""
    h = CompareHandlers(wb)
    with gr.Row():
        dataset = gr.Dropdown(["any"], value="any", label="Dataset", allow_custom_value=True)
        arch = gr.Dropdown(["any"], value="any", label="Arch", allow_custom_value=True)
        methods = gr.Dropdown([], value=[], multiselect=True, label="Methods (none = all)")
        split = gr.Radio(["test", "dev", "train"], value="test", label="Split")
    with gr.Row():
        seeds = gr.Textbox(label="Seeds (e.g. 0,1,2; empty = all)")
        by = gr.CheckboxGroup(["method", "dataset", "arch", "protocol"], value=list(BY_DEFAULT), label="One row per")
        convention = gr.Dropdown(list(wb.conventions()), value=wb.conventions()[0], label="NRG convention")
        refresh = gr.Button("Refresh", variant="primary")
    with gr.Row():
        include_debug = gr.Checkbox(value=False, label="include debug runs", elem_id="compare-debug")
        tags = gr.Dropdown([], value=[], multiselect=True, label="Tags (runs with all of them)", elem_id="compare-tags")
        picked = gr.Dropdown([], value=[], multiselect=True, allow_custom_value=True, elem_id="compare-picked",
                             label="Only these runs (picked in the Runs tab; none = all)")
    note = gr.Markdown()
    table = gr.Dataframe(interactive=False, wrap=True, label="Methods compared (completed runs)", max_height=420,
                         elem_id="compare-table", headers=table_headers(BY_DEFAULT))
    with gr.Row():
        x_axis = gr.Dropdown(axes(), value="nrg_faithfulness", label="Scatter x (faithfulness)")
        y_axis = gr.Dropdown(axes(), value="nrg_plausibility", label="Scatter y (plausibility)")
        bar_picker = gr.Dropdown(bar_metrics(), value=BAR_DEFAULT, multiselect=True, label="Bar chart metrics")
    with gr.Row(elem_id="compare-charts"):
        # no label badge: it sat over the figure's own title (which says the same)
        scatter = gr.Plot(label="Faithfulness vs plausibility", show_label=False)
        bars = gr.Plot(label="Metrics per method", show_label=False)
    bins = gr.Plot(label="Per-bin comprehensiveness and sufficiency", elem_id="compare-bins", show_label=False)
    with gr.Row():
        pair_metric = gr.Dropdown(bar_metrics(), value=PAIR_DEFAULT, label="Paired tests on")
    pairs = gr.Plot(label="Paired tests between groups", elem_id="compare-pairs")
    with gr.Row():
        csv_btn = gr.Button("Export CSV")
        parquet_btn = gr.Button("Export Parquet")
        export_file = gr.File(label="Download", interactive=False)
    export_md = gr.Markdown()

    # the filters of which runs count, then the paired tests' metric, last: the API's first parameters stay
    inputs = [dataset, arch, methods, split, seeds, by, convention, x_axis, y_axis, bar_picker, include_debug, tags, picked,
              pair_metric]
    outputs = [table, note, dataset, arch, methods, tags, picked, scatter, bars, bins, pairs]
    refresh.click(h.on_refresh, inputs, outputs, api_name="compare")
    for comp in inputs:
        comp.input(h.on_filter, inputs, outputs, api_visibility="private")
    export_inputs = inputs[:7] + [include_debug, tags, picked]
    csv_btn.click(lambda *a: h.on_export("csv", *a), export_inputs, [export_file, export_md], api_visibility="private")
    parquet_btn.click(lambda *a: h.on_export("parquet", *a), export_inputs, [export_file, export_md],
                      api_visibility="private")
    return h.on_refresh, inputs, outputs, picked


__all__ = ["build_tab", "chart_rows", "common_part", "dashboard", "label_of", "pair_view", "parse_seeds",
           "table_headers", "table_value", "table_view", "uncertainty_note", "varying"]
