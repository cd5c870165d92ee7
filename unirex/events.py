"""The engine's progress events: one typed class per kind, and their one JSON shape.

The engine (:mod:`unirex.engine`) hands every event to its callbacks (:mod:`unirex.callbacks`); one of
them appends it to the run folder's ``events.jsonl`` (every kind but ``start``, whose config is in
``config.json``), which any process follows to show a run's progress. A line of that file is
``{"time": ..., **event.to_dict()}``; :func:`event_from_dict` reads one back (older lines too: a key a
line lacks takes the field's default, a key a class does not know is ignored).

=================  ==========================================================================
``start``          the run folder is open (:class:`StartEvent`: ``run_dir``, ``config``)
``plan``           the work ahead, in order (:class:`PlanEvent`: each training epoch's steps, each evaluation's
                   examples; :mod:`unirex.progress` folds the events into one estimate over the whole run)
``step``           one training batch (:class:`StepEvent`: epoch, step, loss components, lr, ETA)
``eval_start``     an evaluation of a split begins (:class:`EvalStartEvent`: examples to score)
``eval_progress``  after each evaluation batch (:class:`EvalProgressEvent`: done / total, ETA)
``eval``           a split's metrics (:class:`EvalEvent`: per epoch in training, ``epoch=None`` at the end)
``checkpoint``     the best checkpoint was saved (:class:`CheckpointEvent`)
``log``            a message for the user (:class:`LogEvent`)
``done``           the run ended (:class:`DoneEvent`: status, final metrics or the error)
=================  ==========================================================================
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar


@dataclass
class Event:
    """What every event has: its ``kind`` (a class constant), the run it belongs to and, once read back
    from ``events.jsonl``, the time it was written (never part of :meth:`to_dict`: the file stamps it)."""

    kind: ClassVar[str] = ""
    run_id: str | None = None
    time: float | None = field(default=None, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        """``{"kind", "run_id", <the class's own fields in order>}``: the engine's event format."""
        out: dict[str, Any] = {"kind": self.kind}
        for f in fields(self):
            if f.name != "time":
                out[f.name] = getattr(self, f.name)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Event:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class StartEvent(Event):
    kind: ClassVar[str] = "start"
    run_dir: str | None = None
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class PlanPhase:
    """One phase of a run's plan: a training epoch (``kind="train"``, ``total`` steps) or an evaluation of a
    split (``kind="eval"``, ``total`` examples; ``epoch`` None for the final one). Epochs count from 0 here,
    as in every event; people read them from 1."""

    kind: str
    total: int
    epoch: int | None = None
    split: str | None = None


@dataclass
class PlanEvent(Event):
    """The run's work in the order it runs (emitted once, after ``start``)."""

    kind: ClassVar[str] = "plan"
    phases: list[PlanPhase] = field(default_factory=list)
    epochs: int = 0
    train_batch_size: int = 1

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["phases"] = [asdict(p) for p in self.phases]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PlanEvent":
        ev = super().from_dict(d)
        ev.phases = [p if isinstance(p, PlanPhase) else PlanPhase(**{k: v for k, v in p.items()
                                                                       if k in PlanPhase.__dataclass_fields__})
                     for p in ev.phases or []]
        return ev


@dataclass
class StepEvent(Event):
    kind: ClassVar[str] = "step"
    epoch: int = 0
    epochs: int | None = None
    step: int = 0
    total_steps: int = 0
    losses: dict[str, float] = field(default_factory=dict)
    lr: float | None = None
    eta_s: float | None = None
    elapsed_s: float | None = None


@dataclass
class EvalStartEvent(Event):
    kind: ClassVar[str] = "eval_start"
    split: str | None = None
    epoch: int | None = None
    total: int = 0


@dataclass
class EvalProgressEvent(Event):
    kind: ClassVar[str] = "eval_progress"
    split: str | None = None
    done: int = 0
    total: int = 0
    epoch: int | None = None
    elapsed_s: float | None = None
    eta_s: float | None = None


@dataclass
class EvalEvent(Event):
    kind: ClassVar[str] = "eval"
    split: str | None = None
    epoch: int | None = None  # None: the final evaluation
    metrics: dict[str, float] = field(default_factory=dict)
    reused: bool = False  # the final dev evaluation reuses the best epoch's (same weights, same numbers)


@dataclass
class CheckpointEvent(Event):
    kind: ClassVar[str] = "checkpoint"
    epoch: int | None = None
    path: str | None = None
    value: float | None = None


@dataclass
class LogEvent(Event):
    kind: ClassVar[str] = "log"
    message: str = ""


@dataclass
class DoneEvent(Event):
    """The run ended: ``status`` with its final ``metrics`` and ``best_epoch``, or, for a failed run,
    with its ``error`` (the two shapes the events file has always had)."""

    kind: ClassVar[str] = "done"
    status: str = ""
    error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    best_epoch: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "run_id": self.run_id, "status": self.status}
        if self.error is not None:
            out["error"] = self.error
        else:
            out.update(metrics=self.metrics, best_epoch=self.best_epoch)
        return out


#: every kind the engine emits, in the order a run first emits them
EVENT_TYPES: dict[str, type[Event]] = {c.kind: c for c in (StartEvent, PlanEvent, StepEvent, EvalStartEvent,
                                                           EvalProgressEvent, EvalEvent, CheckpointEvent, LogEvent,
                                                           DoneEvent)}


def event_from_dict(d: dict[str, Any]) -> Event | None:
    """The typed event of one ``events.jsonl`` line (or of an event dict); None for a kind no class has."""
    cls = EVENT_TYPES.get(d.get("kind"))
    return cls.from_dict(d) if cls is not None else None


def parse_events(dicts) -> list[Event]:
    """The typed events of a sequence of event dicts (unknown kinds skipped), in order."""
    return [ev for ev in map(event_from_dict, dicts) if ev is not None]


__all__ = ["CheckpointEvent", "DoneEvent", "EVENT_TYPES", "EvalEvent", "EvalProgressEvent", "EvalStartEvent", "Event",
           "LogEvent", "PlanEvent", "PlanPhase", "StartEvent", "StepEvent", "event_from_dict", "parse_events"]
