"""The Compare tab's charts as a reader meets them: labels that say only what differs between the groups (the
shared part once, in the subtitle), one bar panel per metric family, no error bar for a group of one run, the
legend under the plot rather than over the title; and an empty comparison that still names its columns."""

from __future__ import annotations

import gradio as gr
import pytest

from ui import compare as compare_tab
from ui import figures
from unirex.runs import RunDir
from workbench import Workbench

BY = ("method", "dataset", "arch")
BARS = ["comp_aopc", "suff_aopc", "plaus_auprc", "macro_f1"]


def _group(method: str, n: int, dataset: str = "demo", arch: str = "default", value: float = 0.5) -> dict:
    """A row of the comparison table (``Comparison.table``): one group of ``n`` runs."""
    r = {"method": method, "dataset": dataset, "arch": arch, "n": n, "seeds": list(range(n)), "nrg": value,
         "nrg_faithfulness": value, "nrg_plausibility": 1 - value, "nrg_task": 0.5}
    for key, mean in (("comp_aopc", 0.05), ("suff_aopc", 0.03), ("plaus_auprc", 0.8), ("macro_f1", 0.9),
                      *((f"comp_k{k}", 0.02) for k in (1, 5, 10, 20, 50)),
                      *((f"suff_k{k}", 0.04) for k in (1, 5, 10, 20, 50))):
        r[f"{key}_mean"] = mean * (0.5 + value)
        r[f"{key}_std"] = None if n == 1 else 0.01  # as the table has it: a sample std of one run is null
    return r


@pytest.fixture
def groups() -> list[dict]:
    return [_group("task_lm", 3, value=0.2), _group("slm_plaus_linear", 3, value=0.6), _group("fresh", 1, value=0.9)]


def _charts(rows):
    lab, sub = compare_tab.label_of(BY, rows), compare_tab.common_part(BY, rows)
    return (figures.scatter(rows, "nrg_faithfulness", "nrg_plausibility", lab, "Faithfulness vs plausibility", sub),
            figures.bars(rows, BARS, lab, "Metrics per group", sub),
            figures.bin_curves(rows, lab, "Per bin", sub))


def _legend_names(fig) -> list[str]:
    return [t.name for t in fig.data if t.showlegend is not False and t.name != "Pareto front"]


def test_labels_name_only_what_differs_and_the_shared_part_goes_in_the_subtitle(groups):
    for fig in _charts(groups):
        names = _legend_names(fig)
        assert names == ["task_lm", "slm_plaus_linear", "fresh (n=1)"]  # unique, without "/ demo / default"
        assert fig.layout.title.subtitle.text == "dataset demo, arch default"
        assert not any("text" in (getattr(t, "mode", None) or "") for t in fig.data)  # no text beside points
    scatter = _charts(groups)[0]
    assert [t.hovertext[0].split("<br>")[0] for t in scatter.data[:3]] == ["task_lm", "slm_plaus_linear", "fresh (n=1)"]
    # groups over two datasets: the dataset joins the label, the arch stays in the subtitle
    mixed = [*groups, _group("task_lm", 2, dataset="movies")]
    names = _legend_names(_charts(mixed)[1])
    assert names == ["task_lm / demo", "slm_plaus_linear / demo", "fresh / demo (n=1)", "task_lm / movies"]
    assert len(set(names)) == len(names)
    assert compare_tab.common_part(BY, mixed) == "arch default"
    one = [groups[0]]  # a single group keeps its method as its label
    assert _legend_names(_charts(one)[1]) == ["task_lm"] and compare_tab.common_part(BY, one) == "dataset demo, arch default"


def test_groups_get_distinct_styles_up_to_the_charted_most():
    styles = {(s.color, s.symbol) for s in map(figures.group_style, range(compare_tab.MAX_CHART_GROUPS))}
    assert len(styles) == compare_tab.MAX_CHART_GROUPS


def test_bars_one_panel_per_metric_family_each_with_its_own_axis(groups):
    fig = _charts(groups)[1]
    assert [a.text for a in fig.layout.annotations] == ["faithfulness", "plausibility", "task"]
    axis_of = {}
    for t in fig.data:
        for x in t.x:
            axis_of.setdefault(x, set()).add(t.yaxis)
    assert axis_of == {"comp AOPC ↑": {"y"}, "suff AOPC ↓": {"y"}, "AUPRC": {"y2"}, "macro F1": {"y3"}}
    for name in ("yaxis", "yaxis2", "yaxis3"):  # AOPC near 0.05 is not drawn on AUPRC's scale
        assert fig.layout[name].matches is None
    only = figures.bars(groups, ["comp_aopc", "suff_aopc"], compare_tab.label_of(BY, groups))
    assert [a.text for a in only.layout.annotations] == ["faithfulness"] and "xaxis2" not in only.layout.to_plotly_json()


def test_no_error_bars_for_a_group_of_one_run(groups):
    scatter, bars, bins = _charts(groups)
    by_name = {}
    for t in bars.data:
        by_name.setdefault(t.name, []).append(t)
    assert all(t.error_y.visible is False for t in by_name["fresh (n=1)"])
    assert all(t.error_y.visible and list(t.error_y.array) == [0.01] * len(t.x) for t in by_name["task_lm"])
    assert all(t.error_y.visible is False for t in bins.data if t.name == "fresh (n=1)")
    assert all(t.error_y.visible for t in bins.data if t.name == "task_lm")
    assert "one run: no spread" in scatter.data[2].hovertext[0]
    # a confidence interval, where the table has one, is the bar (asymmetric) instead of the std
    ci = {**groups[0], "plaus_auprc_ci_low": 0.3, "plaus_auprc_ci_high": 0.4, "plaus_auprc_mean": 0.32}
    assert figures.error_of(ci, "plaus_auprc_mean") == pytest.approx((0.08, 0.02))
    assert figures.error_of(groups[2], "plaus_auprc_mean") is None and figures.error_of(groups[0], "nrg") is None


@pytest.mark.parametrize("n_groups", [3, 24])
def test_the_legend_sits_under_the_plot_clear_of_the_title(n_groups):
    rows = [_group(f"method_{i}_with_a_long_name", 1 + i % 3, dataset=f"d{i % 4}", value=i / 30)
            for i in range(n_groups)]
    for i, fig in enumerate(_charts(rows)):
        lay = fig.layout
        assert (lay.title.yref, lay.title.y, lay.title.yanchor) == ("container", 1, "top")  # the title at the top
        assert (lay.legend.orientation, lay.legend.yref, lay.legend.y, lay.legend.yanchor) == (
            "h", "container", 0, "bottom")  # the legend at the bottom of the figure
        entries = len(_legend_names(fig)) + any(t.name == "Pareto front" for t in fig.data)
        width = figures.CHART_WIDTH_PX * (2 if i == 2 else 1)  # the per-bin chart spans the tab
        per_row = max(1, (width - 20) // lay.legend.entrywidth)
        legend_px = -(-entries // per_row) * 20
        assert lay.margin.b >= legend_px + 40  # its rows fit under the plot area, with the axis title above them
        assert lay.legend.maxheight >= legend_px  # and none scrolls away
        assert lay.height - lay.margin.t - lay.margin.b >= 200  # the plot keeps its room
        assert lay.margin.t >= 80  # title and subtitle above the plot area


def test_an_empty_comparison_names_its_columns_and_says_no_runs_match(tmp_path):
    rd = RunDir.create(tmp_path / "runs", {}, {"method": "task_lm", "dataset": "demo", "arch": "default", "seed": 0,
                                               "mode": "train"})
    rd.log_metrics({"acc": 0.5}, "test")
    rd.set_status("completed")
    wb = Workbench(tmp_path)
    wb.sync()
    h = compare_tab.CompareHandlers(wb)
    out = h.show("movies", "any", [], "test", "", list(BY), "eraser", "nrg_faithfulness", "nrg_plausibility", BARS)
    table, note, *_, scatter, bars, bins, pairs = out  # the paired-tests matrix is the tab's last output
    shown = gr.Dataframe(interactive=False).postprocess(table)
    assert shown.headers == compare_tab.table_headers(BY) and shown.headers[:3] == ["method", "dataset", "arch"]
    assert shown.data == []
    assert "No runs match" in note
    assert all(f.layout.annotations[0].text.startswith("no runs") for f in (scatter, bars))
    assert bins.layout.annotations[0].text == "no per-bin metrics"
    assert pairs.layout.annotations[0].text.startswith("no runs")
    full = h.show("any", "any", [], "test", "", ["method"], "eraser", "nrg_faithfulness", "nrg_plausibility", BARS)
    assert full[0]["data"][0][0] == "task_lm" and full[0]["headers"][0] == "method"


def test_user_values_in_labels_subtitle_and_hover_are_text_not_markup(groups):
    evil = '<a href="x">$x$</a>'
    rows = [{**g, "dataset": evil} for g in groups] + [{**_group("bad<b>", 2), "dataset": evil}]
    for fig in _charts(rows):
        assert "<" not in fig.layout.title.subtitle.text and "$" not in fig.layout.title.subtitle.text
        for t in fig.data:
            assert "<" not in t.name and "$" not in t.name
            if getattr(t, "hovertext", None):
                assert all("<" not in h.split("<br>")[0] for h in t.hovertext)


def test_pair_matrix_labels_name_only_what_differs_and_say_the_shared_part_once():
    """Three groups differing in method only: the matrix's labels are the methods, and the dataset, arch and
    split they share are said once, under the title; over two datasets the dataset joins the labels."""
    import polars as pl

    from workbench import Comparison, PairTest, group_labels, pair_labels

    rows = [{"method": m, "dataset": "demo", "arch": "default"} for m in ("task_lm", "slm_plaus_linear", "fresh")]
    gl = group_labels(BY, rows)
    assert [gl.label(r) for r in rows] == ["task_lm", "slm_plaus_linear", "fresh"]
    assert gl.columns == ("method",) and gl.caption == "dataset demo, arch default"
    cmp = Comparison(table=pl.DataFrame(rows), runs=pl.DataFrame(), split="dev", by=BY, metrics=("acc",),
                     convention="eraser", nrg_metrics={})
    key = [" / ".join(r[b] for b in BY) for r in rows]

    def test(i, j, dataset="demo"):
        return PairTest(a=key[i], b=key[j], metric="acc", diff=0.1 * (i + 1), ci_low=0.0, ci_high=0.2, p=0.01,
                        p_adj=0.03, significant=True, dataset=dataset)

    tests = [test(0, 1), test(0, 2), test(1, 2)]
    names = pair_labels(cmp, tests)
    assert [names.of(t) for t in tests] == [("task_lm", "slm_plaus_linear"), ("task_lm", "fresh"),
                                            ("slm_plaus_linear", "fresh")]
    assert names.groups.columns == ("method",)
    assert names.groups.caption == "split dev, dataset demo, arch default"
    labels = ["task_lm", "slm_plaus_linear", "fresh"]
    diffs = {pair: (t.diff, t.significant) for t in tests for pair in (names.of(t),)}
    fig = figures.pair_matrix(labels, diffs, "acc", "Paired differences", subtitle=names.groups.caption)
    assert list(fig.data[0].x) == labels and fig.layout.title.subtitle.text == "split dev, dataset demo, arch default"
    # grouped by method alone, tested on two datasets: the dataset (not in `by`) joins the labels
    by_method = Comparison(table=pl.DataFrame([{"method": r["method"]} for r in rows]), runs=pl.DataFrame(),
                           split="test", by=("method",), metrics=("acc",), convention="eraser", nrg_metrics={})
    key[:] = [r["method"] for r in rows]
    two = pair_labels(by_method, [test(0, 1), test(0, 1, "movies")])
    assert [two.of(t) for t in (test(0, 1), test(0, 1, "movies"))] == [("task_lm / demo", "slm_plaus_linear / demo"),
                                                                      ("task_lm / movies", "slm_plaus_linear / movies")]
    assert two.groups.caption == "split test"
