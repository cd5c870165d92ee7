"""The engine's callbacks and the training state they share (as Hugging Face's ``TrainerCallback`` and
``TrainerState``).

:class:`unirex.engine.Engine` runs the loop; everything around it is a :class:`Callback`:

* :class:`EventsFileCallback` appends every event (but ``start``) to the run folder's ``events.jsonl``;
* :class:`ProgressCallback` logs the training losses every 10 steps, beats the run's heartbeat and emits
  one :class:`~unirex.events.StepEvent` per batch (with its ETA);
* :class:`CheckpointCallback` keeps the best epoch's weights (and, with ``save_checkpoint=True``, writes
  them as the run's checkpoint) and puts them back in the model when training ends;
* :class:`EarlyStoppingCallback` counts epochs without improvement of ``training.monitor`` and stops
  training after ``training.patience`` of them;
* :class:`CancellationCallback` turns a cancel token (``is_set()``) into ``state.should_cancel``;
* :class:`ListenerCallback` hands every event to a plain function (``run(cfg, callback=fn)``).

Hooks get the engine and its :class:`TrainerState`; a callback steers the run through the state's
``should_stop`` (training ends after this epoch) and ``should_cancel`` (the run stops at the next
cancellation point: a training step, an evaluation batch, an attribution batch; status ``cancelled``).
Hooks run on every process of a distributed run; :meth:`Callback.on_event` on rank 0 only.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from unirex.arch import load_tokenizer
from unirex.checkpoint import save_checkpoint
from unirex.config import to_dict
from unirex.events import CheckpointEvent, EvalEvent, Event, LogEvent, StepEvent

if TYPE_CHECKING:
    from unirex.engine import Engine

#: train losses are logged to ``metrics.jsonl`` every this many steps (and at the last batch of an epoch)
LOG_EVERY_STEPS = 10


@dataclass
class TrainerState:
    """Where a run's training is; the engine updates it, callbacks read it and set its ``should_*`` flags."""

    epoch: int = 0
    epochs: int = 0
    step: int = 0  # batches trained so far (all epochs)
    total_steps: int = 0
    batches_per_epoch: int = 0
    last_batch: bool = False  # the step just taken was the epoch's last
    losses: dict[str, float] = field(default_factory=dict)  # the last step's loss components
    lr: float | None = None
    t_start: float = field(default_factory=time.perf_counter)
    monitor: str = ""  # training.monitor
    monitor_value: float | None = None  # this epoch's dev value of the monitor (rank 0)
    improved: bool = False  # this epoch's is the best so far
    best_value: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0  # epochs since the last improvement (the patience counter)
    best_dev: Any = None  # the best epoch's dev EvalResult (rank 0): the final dev evaluation reuses it
    best_restored: bool = False  # the model holds the best epoch's weights again (rank 0)
    should_stop: bool = False
    should_cancel: bool = False

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.t_start


class Callback:
    """Base class: every hook does nothing. Subclass and override the ones you need."""

    def on_train_begin(self, engine: Engine, state: TrainerState) -> None:
        """The optimizer is built; no batch has run yet."""

    def on_step_end(self, engine: Engine, state: TrainerState) -> None:
        """A batch was trained (``state.step``, ``state.losses``, ``state.lr``)."""

    def on_epoch_end(self, engine: Engine, state: TrainerState) -> None:
        """The epoch's dev evaluation is done (``state.monitor_value``, ``state.improved``)."""

    def on_evaluate(self, engine: Engine, state: TrainerState, event: EvalEvent) -> None:
        """A split was evaluated (during training: dev, each epoch; at the end: every eval split)."""

    def on_train_end(self, engine: Engine, state: TrainerState) -> None:
        """Training ended normally (its last epoch, or early stopping); the final evaluation follows."""

    def on_event(self, engine: Engine, event: Event) -> None:
        """Any event the engine emits (rank 0), in order."""

    def on_poll(self, engine: Engine, state: TrainerState) -> None:
        """A cancellation point: set ``state.should_cancel`` to stop the run here."""


class EventsFileCallback(Callback):
    """Appends every event but ``start`` (its config is in ``config.json``) to ``events.jsonl``."""

    def on_event(self, engine, event):
        if engine.rd is None or event.kind == "start":
            return
        try:
            engine.rd.append_event(event.to_dict())
        except OSError:  # a full disk must not kill training; metrics.jsonl is the record
            pass


class ProgressCallback(Callback):
    """Per training batch: the losses in ``metrics.jsonl`` (every :data:`LOG_EVERY_STEPS` steps), the
    heartbeat, and a :class:`~unirex.events.StepEvent` with the ETA."""

    def on_step_end(self, engine, state):
        elapsed = state.elapsed_s
        if engine.rank == 0 and (state.step % LOG_EVERY_STEPS == 0 or state.last_batch):
            engine.log({**state.losses, "lr": state.lr}, "train", state.epoch, state.step)
            if engine.rd is not None:
                engine.rd.heartbeat()
        engine.emit(StepEvent(epoch=state.epoch, epochs=state.epochs, step=state.step, total_steps=state.total_steps,
                              losses=state.losses, lr=state.lr, eta_s=elapsed / state.step * (state.total_steps - state.step),
                              elapsed_s=elapsed))


class CheckpointCallback(Callback):
    """Keeps the best epoch's weights (rank 0), writes them as the run's checkpoint when the config says
    ``save_checkpoint=True``, and loads them back into the model when training ends."""

    def __init__(self) -> None:
        self.best_weights: dict | None = None
        self._tokenizer = None

    def on_epoch_end(self, engine, state):
        if not state.improved or engine.rank != 0:
            return
        state.best_dev = engine.last_result  # the final evaluation of dev reuses it: same weights, same numbers
        cfg = engine.cfg
        if cfg.save_checkpoint:
            if self._tokenizer is None:
                self._tokenizer = load_tokenizer(cfg.arch)
            save_checkpoint(engine.model, to_dict(cfg), engine.rd.checkpoint_dir, self._tokenizer,
                            {"epoch": state.epoch, "monitor": cfg.training.monitor, "value": state.monitor_value,
                             "labels": engine.labels, "run_id": engine.run_id, "step": state.step})
            engine.emit(CheckpointEvent(epoch=state.epoch, path=str(engine.rd.checkpoint_dir), value=state.monitor_value))
        self.best_weights = copy.deepcopy({k: v.detach().cpu() for k, v in engine.model.state_dict().items()})

    def on_train_end(self, engine, state):
        if self.best_weights is not None and engine.rank == 0:
            engine.model.load_state_dict(self.best_weights)
            state.best_restored = True


class EarlyStoppingCallback(Callback):
    """Stops training after more than ``patience`` epochs in a row without improvement (``stop_at_patience``:
    after ``patience`` of them, as Lightning's ``EarlyStopping`` in the UNIREX reference)."""

    def __init__(self, patience: int, stop_at_patience: bool = False):
        self.patience = patience
        self.stop_at_patience = stop_at_patience

    def on_epoch_end(self, engine, state):
        if state.improved:
            state.bad_epochs = 0
            return
        state.bad_epochs += 1
        if state.bad_epochs > self.patience or (self.stop_at_patience and state.bad_epochs >= self.patience):
            engine.emit(LogEvent(message=f"early stop after epoch {state.epoch + 1}: no gain in {state.monitor} "
                                         f"for {state.bad_epochs} epochs"))
            state.should_stop = True


class CancellationCallback(Callback):
    """Cancels the run when ``token.is_set()`` (a :class:`threading.Event`, a job queue's cancel token)."""

    def __init__(self, token):
        self.token = token

    def on_poll(self, engine, state):
        if self.token.is_set():
            state.should_cancel = True


class ListenerCallback(Callback):
    """Hands every event to ``fn(event)``; a broken listener must not kill training (its errors are dropped)."""

    def __init__(self, fn: Callable[[Event], None]):
        self.fn = fn

    def on_event(self, engine, event):
        try:
            self.fn(event)
        except Exception:  # noqa: BLE001
            pass


def default_callbacks(patience: int, cancel=None, listener: Callable[[Event], None] | None = None,
                      stop_at_patience: bool = False) -> list[Callback]:
    """The callbacks every run has, in the order they are called."""
    out: list[Callback] = [EventsFileCallback(), ProgressCallback(), CheckpointCallback(),
                           EarlyStoppingCallback(patience, stop_at_patience)]
    if cancel is not None:
        out.append(CancellationCallback(cancel))
    if listener is not None:
        out.append(ListenerCallback(listener))
    return out


__all__ = ["Callback", "CancellationCallback", "CheckpointCallback", "EarlyStoppingCallback", "EventsFileCallback",
           "LOG_EVERY_STEPS", "ListenerCallback", "ProgressCallback", "TrainerState", "default_callbacks"]
