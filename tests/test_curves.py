"""Training curves as TensorBoard and W&B draw them: EMA smoothing (TensorBoard's debiased formula, checked
against values computed by hand), step / time since start / wall clock on x, several runs on one chart."""

from __future__ import annotations

import math

import pytest

from ui import figures
from unirex.errors import UnirexError
from unirex.runs import RunDir
from workbench.curves import CurveReader, ema_smooth, empty_curves


def test_ema_smooth_matches_hand_computed_values():
    # weight 0.5 on [1, 0, 1]: last = 0.5, 0.25, 0.625; debias by 1 - 0.5**n = 0.5, 0.75, 0.875
    assert ema_smooth([1.0, 0.0, 1.0], 0.5) == pytest.approx([1.0, 1 / 3, 5 / 7])
    # weight 0.6 on [2, 4]: last = 0.8, 0.48 + 1.6 = 2.08; debias 0.4, 0.64
    assert ema_smooth([2.0, 4.0], 0.6) == pytest.approx([2.0, 3.25])
    # the first point is the first value (debiased), not pulled towards 0 as a plain EMA would
    assert ema_smooth([10.0, 10.0, 4.0], 0.9)[0] == pytest.approx(10.0)
    # a non-finite value is shown as it is and skipped by the average: [1, nan, 3] at 0.5 -> 1, nan, 1.75 / 0.75
    out = ema_smooth([1.0, math.nan, 3.0], 0.5)
    assert out[0] == pytest.approx(1.0) and math.isnan(out[1]) and out[2] == pytest.approx(7 / 3)
    assert ema_smooth([3.0, 3.0, 3.0], 0.9) == [3.0, 3.0, 3.0]  # a constant series stays exact
    assert ema_smooth([1.0, 5.0], 0.0) == [1.0, 5.0] and ema_smooth([], 0.5) == []
    for bad in (1.0, -0.1):
        with pytest.raises(UnirexError, match=r"smoothing weight must be in \[0, 1\)"):
            ema_smooth([1.0], bad)


def _run(ws, losses_by_step, t0):
    rd = RunDir.create(ws / "runs", {"seed": 0}, {"method": "task_lm", "dataset": "demo", "arch": "x", "seed": 0})
    rd.append_event({"kind": "start", "time": t0})
    for step, (loss, task) in enumerate(losses_by_step, start=1):
        rd.append_event({"kind": "step", "step": step, "epoch": 0, "time": t0 + 10.0 * step,
                         "losses": {"loss": loss, "task_loss": task}})
    return rd


def test_curves_carry_time_and_figures_smooth_and_overlay(tmp_path):
    a = _run(tmp_path, [(1.0, 0.9), (0.0, 0.5), (1.0, 0.4)], t0=1_700_000_000.0)
    b = _run(tmp_path, [(2.0, 1.5), (4.0, 1.0)], t0=1_700_003_600.0)
    reader = CurveReader(tmp_path / "runs")
    ca, cb = reader.curves(a.run_id), reader.curves(b.run_id)
    total = ca.losses.filter(ca.losses["name"] == "loss").sort("step")
    assert total["elapsed"].to_list() == [10.0, 20.0, 30.0]  # seconds since the run's first event
    assert total["time"].to_list() == [1_700_000_010.0, 1_700_000_020.0, 1_700_000_030.0]

    # one run, smoothed: per component a faint raw line (no legend entry) under its smoothed line
    fig = figures.losses(ca, smoothing=0.5, x="time since start")
    loss_traces = [t for t in fig.data if t.legendgroup == "loss"]
    raw, smooth = loss_traces
    assert raw.showlegend is False and raw.opacity == pytest.approx(0.25) and list(raw.y) == [1.0, 0.0, 1.0]
    assert list(smooth.y) == pytest.approx([1.0, 1 / 3, 5 / 7]) and list(smooth.x) == [10.0, 20.0, 30.0]
    assert raw.line.color == smooth.line.color
    assert fig.layout.xaxis.title.text == "seconds since the run started"
    unsmoothed = figures.losses(ca, smoothing=0.0)
    assert len(unsmoothed.data) == 2 and list(unsmoothed.data[0].x) == [1, 2, 3]  # no raw copy; steps on x

    # several runs on one chart: a colour and a legend entry per run, the chosen component only
    over = figures.overlay([ca, cb], loss="task_loss", smoothing=0.6, x="step")
    shown = [t for t in over.data if t.showlegend is not False]
    assert [t.name for t in shown] == [a.run_id, b.run_id]
    assert list(shown[1].y) == pytest.approx([1.5, (0.6 * 0.4 * 1.5 + 0.4 * 1.0) / 0.64])
    assert shown[0].line.color != shown[1].line.color
    wall = figures.overlay([ca, cb], x="wall clock")
    assert str(wall.data[0].x[0]).startswith("2023-11-1")  # Unix seconds drawn as dates (14 or 15 Nov by time zone)
    assert "pick runs" in figures.overlay([]).layout.annotations[0].text
    assert "no comp_loss" in figures.overlay([ca], loss="comp_loss").layout.annotations[0].text
    assert figures.overlay([empty_curves("R-x")]).layout.annotations
    with pytest.raises(UnirexError, match="x axis must be one of step"):
        figures.losses(ca, x="epoch")
