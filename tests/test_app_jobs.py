"""Issue 26 (items 1, 5, 9) without a browser: the whole-run progress estimate folded from events (one bar,
an ETA that includes evaluation, wall time to the end), the queue's order and the job the Train tab follows,
the reproduce line quoted once, epochs counted from 1, why a run has no checkpoint, and a push while offline."""

from __future__ import annotations

import shlex
import threading

import pytest

from unirex.events import (DoneEvent, EvalEvent, EvalProgressEvent, EvalStartEvent, PlanEvent, PlanPhase, StepEvent,
                           event_from_dict)
from unirex.progress import estimate_job

TRAINED_OVERRIDES = ["debug=True", "save_checkpoint=True", "method=task_lm"]


def _plan(epochs=2, steps=10, dev=20, test=40, batch=4, t=0.0) -> PlanEvent:
    phases = []
    for e in range(epochs):
        phases += [PlanPhase("train", steps, e), PlanPhase("eval", dev, e, "dev")]
    phases.append(PlanPhase("eval", test, None, "test"))
    return PlanEvent(phases=phases, epochs=epochs, train_batch_size=batch, time=t)


def _run_events(step_s=1.0, ex_s=0.5, early_stop=False):
    """A run's events with times: 2 epochs of 10 steps, dev of 20 examples each epoch, test of 40 (batches of
    10 examples); ``early_stop``: training ends after epoch 1."""
    evs, t = [_plan()], 0.0
    for epoch in range(1 if early_stop else 2):
        for i in range(10):
            t += step_s
            evs.append(StepEvent(epoch=epoch, epochs=2, step=epoch * 10 + i + 1, total_steps=20, time=t))
        evs.append(EvalStartEvent(split="dev", epoch=epoch, total=20, time=t))
        for done in (10, 20):
            t += 10 * ex_s
            evs.append(EvalProgressEvent(split="dev", done=done, total=20, epoch=epoch, time=t))
        evs.append(EvalEvent(split="dev", epoch=epoch, time=t))
    evs.append(EvalStartEvent(split="test", epoch=None, total=40, time=t))
    for done in (10, 20, 30, 40):
        t += 10 * ex_s
        evs.append(EvalProgressEvent(split="test", done=done, total=40, time=t))
    evs.append(DoneEvent(status="completed", time=t))
    return evs, t


def test_the_eta_counts_evaluation_before_it_starts_and_uses_its_measured_speed():
    evs, end = _run_events()
    # after 5 steps of 1 s: 15 steps left, and 80 examples to evaluate priced at a step's time per example
    # (1 s / 4 examples) until an evaluation is measured: 15 + 80 * 0.25 = 35 s
    est = estimate_job(evs[:6], now=5.0)
    assert est.eta_s == pytest.approx(35.0) and est.phase_label == "train epoch 1/2"
    assert (est.phase_done, est.phase_total, est.phase_unit) == (5, 10, "step")
    # once the first dev evaluation is measured (0.5 s per example), the rest is priced at that speed
    i = next(i for i, e in enumerate(evs) if isinstance(e, EvalEvent))
    est = estimate_job(evs[: i + 1], now=evs[i].time)
    assert est.eta_s == pytest.approx(10 * 1.0 + 20 * 0.5 + 40 * 0.5)
    # at the last training step the ETA still holds both evaluations (the bug: "ETA 9s" then minutes of evaluation)
    last_step = max(i for i, e in enumerate(evs) if isinstance(e, StepEvent))
    est = estimate_job(evs[: last_step + 1], now=evs[last_step].time)
    assert est.eta_s == pytest.approx(20 * 0.5 + 40 * 0.5)


def test_one_bar_over_the_whole_run_never_restarts_and_elapsed_runs_to_the_end():
    evs, end = _run_events()
    fractions = []
    for i in range(1, len(evs) + 1):
        est = estimate_job(evs[:i], now=evs[i - 1].time)
        fractions.append(est.fraction)
    # the share done only grows: evaluating dev, then test, does not start again at 0%
    assert all(b >= a for a, b in zip(fractions, fractions[1:])) and fractions[-1] == 1.0
    i_test = next(i for i, e in enumerate(evs) if isinstance(e, EvalStartEvent) and e.split == "test")
    assert fractions[i_test] > 0.5
    final = estimate_job(evs, now=end + 100)
    assert final.finished and final.eta_s is None
    assert final.elapsed_s == pytest.approx(end)  # wall time to the end: training and every evaluation
    assert [p.label for p in final.phases] == ["train epoch 1/2", "evaluate dev after epoch 1", "train epoch 2/2",
                                               "evaluate dev after epoch 2", "evaluate test"]
    assert all(p.state == "done" for p in final.phases) and sum(p.share for p in final.phases) == pytest.approx(1)


def test_phases_skipped_by_early_stopping_leave_the_estimate():
    evs, end = _run_events(early_stop=True)
    i = next(i for i, e in enumerate(evs) if isinstance(e, EvalStartEvent) and e.split == "test")
    est = estimate_job(evs[: i + 1], now=evs[i].time)
    assert est.eta_s == pytest.approx(40 * 0.5)  # epoch 2 and its dev evaluation will not run
    assert [p.state for p in est.phases] == ["done", "done", "skipped", "skipped", "running"]
    assert est.phase_label == "evaluate test"


def test_the_plan_event_reads_back_from_its_line_and_a_run_without_plan_has_no_estimate():
    plan = _plan()
    back = event_from_dict({"time": 1.0, **plan.to_dict()})
    assert back.phases == plan.phases and back.epochs == 2 and back.train_batch_size == 4
    assert estimate_job([StepEvent(epoch=0, step=1, total_steps=5, time=1.0)]) is None


def test_progress_of_a_run_folds_the_whole_run_and_the_ui_bar_marks_its_phases():
    from ui.train import progress_html
    from workbench.service import progress_from_events

    evs, end = _run_events()
    i_test = next(i for i, e in enumerate(evs) if isinstance(e, EvalProgressEvent) and e.split == "test")
    p = progress_from_events("R-x", "running", evs[: i_test + 1], now=evs[i_test].time)
    assert p.phase == "evaluating" and p.eval_split == "test"
    assert 0.5 < p.fraction < 1.0 and p.eta_s == pytest.approx(30 * 0.5)
    assert p.elapsed_s == pytest.approx(evs[i_test].time)
    html = progress_html(p, "run")
    assert html.count("class='unirex-phase'") == 5 and "phase 5 of 5" in html and "ETA 15s" in html
    done = progress_from_events("R-x", "completed", evs)
    assert done.fraction == 1.0 and done.elapsed_s == pytest.approx(end)
    assert f"elapsed {int(end // 60)}m" in progress_html(done, "run") and "ETA" not in progress_html(done, "run")


def _job(job_id, status, created):
    from workbench import Job

    return Job(job_id=job_id, run_id="R" + job_id[1:], overrides=(), command="", status=status, created_at=created,
               title=job_id)


def test_the_queue_lists_active_jobs_first_and_the_view_never_jumps_to_a_cancelled_job():
    from ui.train import AUTO, _target, queue_order

    jobs = [_job("J-1", "completed", 1), _job("J-2", "cancelled", 2), _job("J-3", "running", 3),
            _job("J-4", "waiting", 4), _job("J-5", "failed", 5)]
    assert [j.job_id for j in queue_order(jobs)] == ["J-3", "J-4", "J-5", "J-2", "J-1"]
    assert _target(AUTO, jobs, None).job_id == "J-3"  # following: the running job
    assert _target("J-4", jobs, "J-3").job_id == "J-4"  # a chosen one
    ended = [_job("J-1", "completed", 1), _job("J-2", "cancelled", 2)]
    # the followed run ended: it stays on screen, not the newest job (cancelled)
    assert _target(AUTO, ended, "J-1").job_id == "J-1"
    assert _target(AUTO, ended, None).job_id == "J-1"  # nothing shown before: the newest that was not cancelled
    # a job launched after the shown one started and ended between two ticks: it is shown, not the older one
    quick = [*ended, _job("J-3", "completed", 3), _job("J-4", "cancelled", 4)]
    assert _target(AUTO, quick, "J-1").job_id == "J-3"
    assert _target(AUTO, quick, "J-3").job_id == "J-3"


def test_the_reproduce_line_quotes_each_word_once_as_a_person_types_it():
    from workbench.service import command_line

    line = command_line(["training=evaluate", "training.ckpt_path=R-1", "training.eval_splits='train,dev,test'",
                         "tags='a b'", "model.note=it's", "model.x=$HOME", "seed=0,1"], sweep=True)
    assert line == ("python -m unirex -m training=evaluate training.ckpt_path=R-1 training.eval_splits=train,dev,test "
                    "\"tags='a b'\" \"model.note=it's\" 'model.x=$HOME' seed=0,1")
    assert shlex.split(line)[4:] == ["training=evaluate", "training.ckpt_path=R-1", "training.eval_splits=train,dev,test",
                                     "tags='a b'", "model.note=it's", "model.x=$HOME", "seed=0,1"]


def test_epochs_count_from_1_and_a_run_without_checkpoint_says_why(trained, tiny_overrides, capsys):
    """A completed run's checkpoint of its first epoch reads "epoch 1" (as the Runs table); a run with
    save_checkpoint=True cancelled before its first epoch ended says so, and Resume is disabled."""
    from cli import main as cli_main
    from ui.runs import detail_md, resume_button
    from unirex.engine import resolve_run_config, run
    from workbench import Workbench

    ws, res = trained
    wb = Workbench(ws)
    d = wb.run(res.run_id)
    assert "Checkpoint: epoch 1," in detail_md(d, wb)
    assert resume_button(d)["interactive"] is True
    cli_main(["show", res.run_id, "--workspace", str(ws)])
    assert "(epoch 1, " in capsys.readouterr().out
    stop = threading.Event()
    stop.set()  # cancelled at its first step
    cancelled = run(resolve_run_config([*tiny_overrides, f"workspace={ws}", "method=task_lm", "save_checkpoint=True"]),
                    cancel=stop)
    assert cancelled.status == "cancelled"
    d = wb.run(cancelled.run_id)
    text = detail_md(d, wb)
    assert "cancelled before its first epoch ended" in text and "trained without save_checkpoint" not in text
    button = resume_button(d)
    assert button["interactive"] is False and "no checkpoint" in button["value"]


def test_a_push_while_offline_names_the_offline_setting(trained, monkeypatch):
    from unirex.errors import UnirexError
    from unirex.hub import push_run

    ws, res = trained
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token_0000")
    with pytest.raises(UnirexError, match="offline mode is on \\(HF_HUB_OFFLINE=1"):
        push_run(res.run_id, "me/model", workspace=ws)


def test_a_run_of_many_epochs_draws_them_as_one_segment_beside_its_final_evaluation():
    from ui.train import MAX_SEGMENTS, progress_html
    from workbench.service import progress_from_events

    plan = _plan(epochs=MAX_SEGMENTS, t=0.0)
    evs = [plan, StepEvent(epoch=0, epochs=MAX_SEGMENTS, step=5, total_steps=10 * MAX_SEGMENTS, time=5.0)]
    html = progress_html(progress_from_events("R-x", "running", evs, now=5.0), "run")
    assert html.count("class='unirex-phase'") == 2 and f"phase 1 of {2 * MAX_SEGMENTS + 1}" in html
    assert f"training: {MAX_SEGMENTS} epochs with their dev evaluations" in html


def test_the_train_tabs_live_losses_are_smoothed_as_the_runs_tab_opens_them(tmp_path, tiny_overrides, wait_until):
    """The followed run's loss chart draws each component twice, as the Runs tab does at its default slider: the
    raw line faint behind, the EMA-smoothed line (TensorBoard's default weight) over it."""
    from ui import figures
    from ui.common import AppDefaults
    from ui.train import AUTO, TrainHandlers
    from workbench import Workbench
    from workbench.curves import ema_smooth

    wb = Workbench(tmp_path / "ws")
    job = wb.submit([*tiny_overrides, "method=task_lm", "training.epochs=1"])[0]
    wb.start_worker()
    try:
        wait_until(lambda: not wb.job(job.job_id).active, what="the job to end")
    finally:
        wb.stop_worker()
    out = TrainHandlers(wb, AppDefaults()).on_tick(AUTO, None)
    chart = out[3]
    total = [t for t in chart.data if t.name == "loss"]
    assert len(total) == 2, [t.name for t in chart.data]
    raw, smooth = sorted(total, key=lambda t: t.opacity or 1.0)
    assert raw.opacity < 1.0 and list(smooth.y) == pytest.approx(ema_smooth(list(raw.y), figures.DEFAULT_SMOOTHING))
    assert list(smooth.y) != pytest.approx(list(raw.y))
