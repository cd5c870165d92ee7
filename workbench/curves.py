"""A run's training curves for live charts: each loss component per step and the dev metrics per epoch.

They come from the run folder's ``events.jsonl`` (step events carry every loss component; eval events of
the dev split during training carry its metrics), read incrementally: a :class:`CurveReader` remembers,
per run, how far it read, so a page polling every second reads only the new lines. A run without an
events log (written before it existed) falls back to its ``metrics.jsonl`` (train rows every 10 steps,
dev rows per epoch).

Each loss row carries the time its event was written (``time``, Unix seconds) and the seconds since the
run's first event (``elapsed``), so a chart can put wall time on x as TensorBoard and W&B do, and
:func:`ema_smooth` smooths a curve as TensorBoard's slider does.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from unirex.errors import UnirexError
from unirex.events import EvalEvent, StepEvent, parse_events
from unirex.runs import RunDir
from workbench.records import RunCurves

#: most points per loss curve handed to a chart (longer runs are thinned evenly, the last step kept)
MAX_POINTS = 2000
_LOSS_SCHEMA = {"step": pl.Int64, "epoch": pl.Int64, "name": pl.Utf8, "value": pl.Float64, "time": pl.Float64,
                "elapsed": pl.Float64}
_DEV_SCHEMA = {"epoch": pl.Int64, "name": pl.Utf8, "value": pl.Float64}


@dataclass
class _State:
    offset: int = 0
    size: int = -1
    start: float | None = None  # time of the run's first event
    losses: list[tuple[int, int, str, float, float | None, float | None]] = field(default_factory=list)
    dev: list[tuple[int, str, float]] = field(default_factory=list)


class CurveReader:
    """Incremental reader of runs' curves (thread-safe; one instance per workbench)."""

    def __init__(self, runs_root: Path):
        self.runs_root = Path(runs_root)
        self._states: dict[str, _State] = {}
        self._lock = threading.Lock()

    def curves(self, run_id: str) -> RunCurves:
        rd = RunDir(self.runs_root / run_id)
        if not rd.events_path.is_file():
            return _from_metrics(rd)
        with self._lock:
            st = self._states.get(run_id)
            size = rd.events_path.stat().st_size
            if st is None or size < st.size:  # new, or the file was replaced: read it again
                st = self._states[run_id] = _State()
            if size != st.size:
                events, st.offset = rd.tail_events(st.offset)
                st.size = st.offset
                for ev in parse_events(events):
                    if st.start is None and ev.time is not None:
                        st.start = float(ev.time)
                    if isinstance(ev, StepEvent):
                        step, epoch = int(ev.step or 0), int(ev.epoch or 0)
                        t = None if ev.time is None else float(ev.time)
                        el = None if t is None or st.start is None else t - st.start
                        for name, value in (ev.losses or {}).items():
                            if value is not None:
                                st.losses.append((step, epoch, name, float(value), t, el))
                    elif isinstance(ev, EvalEvent) and ev.split == "dev" and ev.epoch is not None:
                        for name, value in (ev.metrics or {}).items():
                            if isinstance(value, (int, float)):
                                st.dev.append((int(ev.epoch), name, float(value)))
            losses, dev = list(st.losses), list(st.dev)
        return RunCurves(run_id=run_id, losses=_thin(pl.DataFrame(losses, schema=_LOSS_SCHEMA, orient="row")),
                         dev=pl.DataFrame(dev, schema=_DEV_SCHEMA, orient="row"))

    def forget(self, run_id: str) -> None:
        with self._lock:
            self._states.pop(run_id, None)


def empty_curves(run_id: str) -> RunCurves:
    """The curves of a run that has not written any yet (queued, no folder)."""
    return RunCurves(run_id=str(run_id), losses=pl.DataFrame(schema=_LOSS_SCHEMA), dev=pl.DataFrame(schema=_DEV_SCHEMA))


def ema_smooth(values: Sequence[float], weight: float) -> list[float]:
    """``values`` smoothed by an exponential moving average, debiased as TensorBoard's scalar chart does it:
    ``last = last * weight + (1 - weight) * v``, shown as ``last / (1 - weight ** n)`` after ``n`` finite
    values (so the first point is the first value, not pulled towards 0). ``weight`` 0 keeps the values;
    a constant series and non-finite values are left as they are. ``weight`` must be in [0, 1)."""
    weight = float(weight)
    if not 0.0 <= weight < 1.0:
        raise UnirexError(f"smoothing weight must be in [0, 1), got {weight}")
    vals = [float(v) for v in values]
    if not vals or weight == 0.0 or all(v == vals[0] for v in vals):
        return vals
    out, last, n = [], 0.0, 0
    for v in vals:
        if not math.isfinite(v):
            out.append(v)
            continue
        last = last * weight + (1.0 - weight) * v
        n += 1
        out.append(last / (1.0 - weight ** n))
    return out


def _thin(df: pl.DataFrame) -> pl.DataFrame:
    steps = df["step"].unique().sort()
    if steps.len() <= MAX_POINTS:
        return df
    stride = -(-steps.len() // MAX_POINTS)
    keep = set(steps[::stride].to_list()) | {steps[-1]}
    return df.filter(pl.col("step").is_in(list(keep)))


def _from_metrics(rd: RunDir) -> RunCurves:
    losses, dev = [], []
    rows = rd.metrics()
    times = [float(m["time"]) for m in rows if isinstance(m.get("time"), (int, float))]
    start = min(times) if times else None
    for m in rows:
        epoch, value, name = m.get("epoch"), m.get("value"), m.get("name") or ""
        if epoch is None or value is None:
            continue
        if m.get("split") == "train" and m.get("step") is not None and (name == "loss" or name.endswith("_loss")):
            t = float(m["time"]) if isinstance(m.get("time"), (int, float)) else None
            losses.append((int(m["step"]), int(epoch), name, float(value), t,
                           None if t is None or start is None else t - start))
        elif m.get("split") == "dev":
            dev.append((int(epoch), name, float(value)))
    return RunCurves(run_id=rd.run_id, losses=pl.DataFrame(losses, schema=_LOSS_SCHEMA, orient="row"),
                     dev=pl.DataFrame(dev, schema=_DEV_SCHEMA, orient="row"))


__all__ = ["CurveReader", "MAX_POINTS", "ema_smooth", "empty_curves"]
