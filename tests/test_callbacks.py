"""The engine's callbacks and typed events on real tiny runs: a custom callback sees every event kind in
order, early stopping, cancellation from a callback, and the events file keeps its format."""

from __future__ import annotations

import dataclasses
import json

import pytest

from unirex.callbacks import Callback
from unirex.engine import resolve_run_config, run
from unirex.events import (EVENT_TYPES, CheckpointEvent, DoneEvent, EvalEvent, EvalProgressEvent, EvalStartEvent,
                           LogEvent, PlanEvent, StartEvent, StepEvent, event_from_dict, parse_events)
from unirex.runs import RunDir

#: the keys, in order, of each kind's line in events.jsonl as the engine wrote them before events were typed
OLD_FORMAT = {
    "plan": ["time", "kind", "run_id", "phases", "epochs", "train_batch_size"],  # new in issue 26
    "step": ["time", "kind", "run_id", "epoch", "epochs", "step", "total_steps", "losses", "lr", "eta_s", "elapsed_s"],
    "eval_start": ["time", "kind", "run_id", "split", "epoch", "total"],
    "eval_progress": ["time", "kind", "run_id", "split", "done", "total", "epoch", "elapsed_s", "eta_s"],
    "eval": ["time", "kind", "run_id", "split", "epoch", "metrics", "reused"],
    "checkpoint": ["time", "kind", "run_id", "epoch", "path", "value"],
    "log": ["time", "kind", "run_id", "message"],
    "done": ["time", "kind", "run_id", "status", "metrics", "best_epoch"],
    "done_failed": ["time", "kind", "run_id", "status", "error"],
}


@pytest.fixture
def base(tmp_path, tiny_arch, small_demo_dir):
    return [f"arch={tiny_arch}", f"data_dir={small_demo_dir}", "data.max_length=64", "setup.train_batch_size=8",
            "setup.eval_batch_size=16", f"workspace={tmp_path}"]


class Recorder(Callback):
    """Writes down every hook call and every event, in order."""

    def __init__(self):
        self.calls: list[str] = []
        self.events = []
        self.epoch_ends: list[tuple[int, float | None, bool, int]] = []

    def on_train_begin(self, engine, state):
        self.calls.append("train_begin")

    def on_step_end(self, engine, state):
        self.calls.append("step_end")

    def on_epoch_end(self, engine, state):
        self.calls.append("epoch_end")
        self.epoch_ends.append((state.epoch, state.monitor_value, state.improved, state.bad_epochs))

    def on_evaluate(self, engine, state, event):
        self.calls.append(f"evaluate:{event.split}:{event.epoch}")

    def on_train_end(self, engine, state):
        self.calls.append("train_end")

    def on_event(self, engine, event):
        self.events.append(event)


def test_a_custom_callback_gets_every_event_kind_in_order(base):
    rec, listened = Recorder(), []
    res = run(resolve_run_config(base + ["debug=True", "save_checkpoint=True", "model.measure_attrs_runtime=True",
                                         "training.eval_splits='dev,test'"]),
              callback=listened.append, callbacks=[rec])
    assert res.status == "completed"
    kinds = [e.kind for e in rec.events]
    assert set(kinds) == set(EVENT_TYPES) and len(EVENT_TYPES) == 9
    assert kinds[0] == "start" and kinds[-1] == "done" and kinds.count("start") == kinds.count("done") == 1
    assert [type(e) for e in listened] == [type(e) for e in rec.events]  # the listener sees the same, typed
    assert all(e.run_id == res.run_id for e in rec.events)
    # training's steps, then the epoch's dev evaluation and its checkpoint, then the final evaluations
    first = {k: kinds.index(k) for k in EVENT_TYPES}
    assert first["start"] < first["plan"] < first["step"] < first["eval_start"] < first["eval_progress"] < first["eval"] < first["checkpoint"]
    steps = [e for e in rec.events if isinstance(e, StepEvent)]
    assert [e.step for e in steps] == list(range(1, len(steps) + 1)) and steps[-1].total_steps == len(steps)
    evals = [(e.split, e.epoch, e.reused) for e in rec.events if isinstance(e, EvalEvent)]
    assert evals == [("dev", 0, False), ("dev", None, True), ("test", None, False)]
    # the plan announced that work: the epoch's steps, its dev evaluation, the test evaluation (dev's is reused)
    [plan] = [e for e in rec.events if isinstance(e, PlanEvent)]
    starts = {(e.split, e.epoch): e.total for e in rec.events if isinstance(e, EvalStartEvent)}
    assert [(p.kind, p.total, p.epoch, p.split) for p in plan.phases] == [
        ("train", len(steps), 0, None), ("eval", starts[("dev", 0)], 0, "dev"), ("eval", starts[("test", None)], None, "test")]
    ck = [e for e in rec.events if isinstance(e, CheckpointEvent)]
    assert len(ck) == 1 and ck[0].epoch == 0 and ck[0].path == str(RunDir(res.run_dir).checkpoint_dir)
    assert any("ms/example" in e.message for e in rec.events if isinstance(e, LogEvent))
    done = rec.events[-1]
    assert isinstance(done, DoneEvent) and done.status == "completed" and done.metrics == res.metrics
    assert isinstance(rec.events[0], StartEvent) and rec.events[0].run_dir == str(res.run_dir)
    # the hooks: train begins, a step_end per step, the epoch ends after its dev evaluation, then training ends
    assert rec.calls == (["train_begin"] + ["step_end"] * len(steps) + ["evaluate:dev:0", "epoch_end", "train_end",
                                                                         "evaluate:dev:None", "evaluate:test:None"])
    [(epoch, value, improved, bad)] = rec.epoch_ends
    assert (epoch, improved, bad) == (0, True, 0) and value is not None


def test_the_events_file_keeps_the_format_it_had(base):
    rec = Recorder()
    res = run(resolve_run_config(base + ["debug=True", "save_checkpoint=True", "model.measure_attrs_runtime=True"]),
              callbacks=[rec])
    rd = RunDir(res.run_dir)
    lines = rd.events_path.read_text().splitlines()
    written = [json.loads(line) for line in lines]
    # every event but start (its config is in config.json), in the order the callbacks got them
    assert [d["kind"] for d in written] == [e.kind for e in rec.events if e.kind != "start"]
    for line, d in zip(lines, written):
        assert list(d) == OLD_FORMAT[d["kind"]], d["kind"]
        ev = event_from_dict(d)
        assert ev.time == d["time"]
        # the typed event writes back the very same line
        assert json.dumps({"time": d["time"], **ev.to_dict()}, default=str) == line
    assert parse_events(rd.events()) == [event_from_dict(d) for d in written]


def test_early_stopping_stops_after_patience_epochs_without_improvement(base):
    """With a learning rate too small to move any prediction, dev never improves after epoch 0: patience 1
    stops training after epoch 2 (two epochs without gain), not after the 5 epochs asked for."""
    rec = Recorder()
    # protocol=eraser: its count (the reference stops one epoch sooner: tests/test_protocol_train.py)
    res = run(resolve_run_config(base + ["protocol=eraser", "training.epochs=5", "training.patience=1",
                                         "model.optimizer.lr=1e-12", "data.num_train=16", "training.eval_splits=dev"]),
              callbacks=[rec])
    assert res.status == "completed" and res.best_epoch == 0
    assert [(epoch, improved, bad) for epoch, _, improved, bad in rec.epoch_ends] == [(0, True, 0), (1, False, 1),
                                                                                     (2, False, 2)]
    assert len({value for _, value, _, _ in rec.epoch_ends}) == 1  # the same dev value every epoch
    dev_epochs = [e.epoch for e in rec.events if isinstance(e, EvalEvent) and e.epoch is not None]
    assert dev_epochs == [0, 1, 2]
    stop = [e.message for e in rec.events if isinstance(e, LogEvent) and e.message.startswith("early stop")]
    assert stop == [f"early stop after epoch 3: no gain in {res_monitor(res)} for 2 epochs"]  # counted from 1
    assert rec.calls[-2:] == ["train_end", "evaluate:dev:None"]


def res_monitor(res) -> str:
    return RunDir(res.run_dir).config()["training"]["monitor"]


class CancelAtStep(Callback):
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, engine, state):
        if state.step == self.step:
            state.should_cancel = True


def test_a_callback_cancels_the_run(base):
    rec = Recorder()
    res = run(resolve_run_config(base + ["training.epochs=3", "save_checkpoint=True"]),
              callbacks=[CancelAtStep(2), rec])
    assert res.status == "cancelled"
    rd = RunDir(res.run_dir)
    assert rd.status()["status"] == "cancelled" and rd.effective_status() == "cancelled"
    assert [e.step for e in rec.events if isinstance(e, StepEvent)] == [1, 2]
    assert "train_end" not in rec.calls and not any(isinstance(e, EvalEvent) for e in rec.events)
    done = rec.events[-1]
    assert isinstance(done, DoneEvent) and done.status == "cancelled"
    assert dataclasses.replace(parse_events(rd.events())[-1], time=None) == done
    assert not list(rd.path.glob(".*"))  # no half-written temporary files


def test_events_read_back_from_partial_and_unknown_lines():
    """Older or hand-written lines lack keys (they take the defaults) or carry unknown ones (ignored);
    an unknown kind is skipped."""
    ev = event_from_dict({"kind": "step", "step": 1, "epoch": 0, "losses": {"loss": 1.0}, "future": 1, "time": 5.0})
    assert ev == StepEvent(step=1, epoch=0, losses={"loss": 1.0}, time=5.0) and ev.total_steps == 0
    assert event_from_dict({"kind": "no-such-kind"}) is None
    assert parse_events([{"kind": "log", "message": "hi"}, {"kind": "x"}]) == [LogEvent(message="hi")]
    failed = DoneEvent(run_id="R", status="failed", error="boom")
    assert failed.to_dict() == {"kind": "done", "run_id": "R", "status": "failed", "error": "boom"}
    assert list(failed.to_dict()) == OLD_FORMAT["done_failed"][1:]
    for cls in (StartEvent, StepEvent, EvalStartEvent, EvalProgressEvent, EvalEvent, CheckpointEvent, LogEvent, DoneEvent):
        ev = cls(run_id="R")
        assert event_from_dict(ev.to_dict()) == ev and ev.to_dict()["kind"] == cls.kind


class StopAfterFirstDev(Callback):
    """The README's example: stop training from ``on_evaluate``."""

    def on_evaluate(self, engine, state, event):
        if event.split == "dev" and event.epoch is not None:
            state.should_stop = True


def test_a_callback_stops_training_and_the_final_evaluation_still_runs(base):
    rec = Recorder()
    res = run(resolve_run_config(base + ["training.epochs=3", "data.num_train=16", "training.eval_splits=dev"]),
              callbacks=[StopAfterFirstDev(), rec])
    assert res.status == "completed" and res.best_epoch == 0 and "dev_acc" in res.metrics
    assert [(e.epoch, e.reused) for e in rec.events if isinstance(e, EvalEvent)] == [(0, False), (None, True)]
    assert rec.calls.count("epoch_end") == 1 and rec.calls[-2:] == ["train_end", "evaluate:dev:None"]
