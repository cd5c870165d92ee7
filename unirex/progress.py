"""One honest progress estimate over a whole run, folded from its events (the app's bar and the CLI's tqdm
bar read the same numbers).

A run announces its work first (:class:`~unirex.events.PlanEvent`: every training epoch in steps, every
evaluation in examples, in the order they run); :class:`JobTracker` folds the events that follow into a
:class:`JobEstimate`:

* the phase running now and how far it is;
* the measured speed of each kind of work: seconds per training step and seconds per evaluated example,
  each from the wall time between consecutive events of that kind (an evaluation example is priced at a
  training step's time per example until the first evaluation batch is measured);
* the ETA: the steps and examples left (the current phase's rest and every later phase) at those speeds, so
  evaluation is in it from the start;
* the elapsed wall time since the plan, to the run's end (``done``), not only to the end of training;
* the share done: elapsed / (elapsed + ETA), never going back;
* each phase's share of the estimated whole, for a bar with its phases marked.

Phases a run skips (epochs after early stopping) drop out of what is left when a later phase starts. A run
without a plan (written before plans existed) gets no estimate: :meth:`JobTracker.estimate` returns None.
Pure: time comes from each event's ``time`` (``events.jsonl`` stamps it) or from the caller (``now``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from unirex.events import DoneEvent, EvalProgressEvent, EvalStartEvent, Event, PlanEvent, PlanPhase, StepEvent

#: an evaluation example's price, in training-step-seconds per training example, before one is measured
EVAL_COST_PER_TRAIN_EXAMPLE = 1.0


@dataclass(frozen=True)
class PhaseEstimate:
    """One phase of the plan for a bar: ``label`` ("train epoch 1/2", "evaluate dev after epoch 1",
    "evaluate test"), its ``share`` of the whole estimated time, how much of it is ``done`` (0..1), and its
    ``state``: ``done``, ``running``, ``waiting`` or ``skipped``."""

    label: str
    share: float
    done: float
    state: str


@dataclass(frozen=True)
class JobEstimate:
    """Where a run is over its whole plan (see the module docstring)."""

    fraction: float
    elapsed_s: float
    eta_s: float | None
    phase_index: int  # into ``phases`` (-1: none started yet)
    phase_label: str
    phase_done: int
    phase_total: int
    phase_unit: str  # "step" or "example"
    phases: tuple[PhaseEstimate, ...] = ()
    finished: bool = False


def phase_label(p: PlanPhase, epochs: int) -> str:
    """How a person reads a phase (epochs numbered from 1)."""
    if p.kind == "train":
        return f"train epoch {p.epoch + 1}/{epochs}"
    if p.epoch is not None:
        return f"evaluate {p.split} after epoch {p.epoch + 1}"
    return f"evaluate {p.split}"


@dataclass
class JobTracker:
    """Folds a run's events, in order, into a :class:`JobEstimate` (:meth:`update`, then :meth:`estimate`)."""

    plan: PlanEvent | None = None
    t0: float | None = None
    t_last: float | None = None
    t_end: float | None = None
    index: int = -1  # the phase running now
    done: list[int] = field(default_factory=list)  # units done per phase
    skipped: set[int] = field(default_factory=set)
    train_s: float = 0.0
    train_steps: int = 0
    eval_s: float = 0.0
    eval_examples: int = 0
    best_fraction: float = 0.0

    def _find(self, kind: str, split: str | None, epoch: int | None) -> int | None:
        for i, p in enumerate(self.plan.phases):
            if p.kind == kind and (kind == "train" or p.split == split) and p.epoch == epoch and i >= self.index:
                return i
        return None

    def _enter(self, i: int) -> None:
        if i != self.index:
            for j in range(max(self.index, 0), i):  # what was not finished before a later phase began: skipped
                if j != self.index and self.done[j] < self.plan.phases[j].total:
                    self.skipped.add(j)
            if 0 <= self.index < i:
                self.done[self.index] = self.plan.phases[self.index].total
            self.index = i

    def update(self, ev: Event, now: float | None = None) -> None:
        t = ev.time if ev.time is not None else (now if now is not None else time.time())
        if isinstance(ev, PlanEvent):
            self.plan, self.t0, self.t_last = ev, t, t
            self.done = [0] * len(ev.phases)
            return
        if self.plan is None:
            return
        dt = max(0.0, t - self.t_last) if self.t_last is not None else 0.0
        self.t_last = t
        if isinstance(ev, StepEvent):
            i = self._find("train", None, ev.epoch)
            if i is None:
                return
            self._enter(i)
            before = sum(p.total for p in self.plan.phases[:i] if p.kind == "train")
            n = max(0, min(ev.step - before, self.plan.phases[i].total))
            self.train_s += dt
            self.train_steps += max(0, n - self.done[i])
            self.done[i] = n
        elif isinstance(ev, (EvalStartEvent, EvalProgressEvent)):
            i = self._find("eval", ev.split, ev.epoch)
            if i is None:
                return
            self._enter(i)
            n = max(0, min(ev.done if isinstance(ev, EvalProgressEvent) else 0, self.plan.phases[i].total))
            if isinstance(ev, EvalProgressEvent):
                self.eval_s += dt
                self.eval_examples += max(0, n - self.done[i])
            self.done[i] = n
        elif isinstance(ev, DoneEvent):
            self.t_end = t
            if 0 <= self.index:
                self.done[self.index] = self.plan.phases[self.index].total

    def _speeds(self) -> tuple[float | None, float | None]:
        """Seconds per training step and per evaluated example (None: nothing to go by yet)."""
        step_s = self.train_s / self.train_steps if self.train_steps else None
        if self.eval_examples:
            ex_s = self.eval_s / self.eval_examples
        elif step_s is not None:
            ex_s = step_s / max(1, self.plan.train_batch_size) * EVAL_COST_PER_TRAIN_EXAMPLE
        else:
            ex_s = None
        if step_s is None and ex_s is not None:
            step_s = ex_s * max(1, self.plan.train_batch_size)
        return step_s, ex_s

    def estimate(self, now: float | None = None) -> JobEstimate | None:
        if self.plan is None:
            return None
        now = time.time() if now is None else now
        finished = self.t_end is not None
        elapsed = max(0.0, (self.t_end if finished else now) - self.t0)
        step_s, ex_s = self._speeds()
        phases = self.plan.phases

        def cost(i: int, units: int) -> float | None:
            per = step_s if phases[i].kind == "train" else ex_s
            return None if per is None else per * units

        left = [0 if finished or i in self.skipped or i < self.index else phases[i].total - self.done[i]
                for i in range(len(phases))]
        costs = [cost(i, n) for i, n in enumerate(left)]
        eta = None if finished else (None if any(c is None for c in costs) else sum(costs))
        if finished:
            fraction = 1.0
        elif eta is not None:
            fraction = elapsed / (elapsed + eta) if elapsed + eta > 0 else 0.0
        else:
            fraction = 0.0
        self.best_fraction = fraction = max(self.best_fraction, min(fraction, 1.0))
        whole = [cost(i, p.total) for i, p in enumerate(phases)]
        total = sum(c for c in whole if c is not None) or 1.0
        bars = []
        for i, p in enumerate(phases):
            state = ("skipped" if i in self.skipped else "done" if finished or i < self.index
                     else "running" if i == self.index else "waiting")
            share = 0.0 if state == "skipped" or whole[i] is None else whole[i] / total
            if whole[i] is None:  # no speed measured yet: an even split
                share = 0.0 if state == "skipped" else 1.0 / len(phases)
            done = 1.0 if state == "done" else (self.done[i] / p.total if p.total and state == "running" else 0.0)
            bars.append(PhaseEstimate(label=phase_label(p, self.plan.epochs), share=share, done=done, state=state))
        cur = phases[self.index] if self.index >= 0 else None
        return JobEstimate(fraction=fraction, elapsed_s=elapsed, eta_s=eta, phase_index=self.index,
                           phase_label="" if cur is None else phase_label(cur, self.plan.epochs),
                           phase_done=self.done[self.index] if cur is not None else 0,
                           phase_total=cur.total if cur is not None else 0,
                           phase_unit="" if cur is None else ("step" if cur.kind == "train" else "example"),
                           phases=tuple(bars), finished=finished)


def estimate_job(events: list[Event], now: float | None = None) -> JobEstimate | None:
    """The estimate of a run after ``events`` (in order; :func:`unirex.events.parse_events` of its
    ``events.jsonl``) at time ``now`` (default: the clock); None without a plan."""
    tracker = JobTracker()
    for ev in events:
        tracker.update(ev, now)
    return tracker.estimate(now)


__all__ = ["EVAL_COST_PER_TRAIN_EXAMPLE", "JobEstimate", "JobTracker", "PhaseEstimate", "estimate_job", "phase_label"]
