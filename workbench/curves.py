"""A run's training curves for live charts: each loss component per step and the dev metrics per epoch.

They come from the run folder's ``events.jsonl`` (step events carry every loss component; eval events of
the dev split during training carry its metrics), read incrementally: a :class:`CurveReader` remembers,
per run, how far it read, so a page polling every second reads only the new lines. A run without an
events log (written before it existed) falls back to its ``metrics.jsonl`` (train rows every 10 steps,
dev rows per epoch).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from unirex.events import EvalEvent, StepEvent, parse_events
from unirex.runs import RunDir
from workbench.records import RunCurves

#: most points per loss curve handed to a chart (longer runs are thinned evenly, the last step kept)
MAX_POINTS = 2000
_LOSS_SCHEMA = {"step": pl.Int64, "epoch": pl.Int64, "name": pl.Utf8, "value": pl.Float64}
_DEV_SCHEMA = {"epoch": pl.Int64, "name": pl.Utf8, "value": pl.Float64}


@dataclass
class _State:
    offset: int = 0
    size: int = -1
    losses: list[tuple[int, int, str, float]] = field(default_factory=list)
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
                    if isinstance(ev, StepEvent):
                        step, epoch = int(ev.step or 0), int(ev.epoch or 0)
                        for name, value in (ev.losses or {}).items():
                            if value is not None:
                                st.losses.append((step, epoch, name, float(value)))
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


def _thin(df: pl.DataFrame) -> pl.DataFrame:
    steps = df["step"].unique().sort()
    if steps.len() <= MAX_POINTS:
        return df
    stride = -(-steps.len() // MAX_POINTS)
    keep = set(steps[::stride].to_list()) | {steps[-1]}
    return df.filter(pl.col("step").is_in(list(keep)))


def _from_metrics(rd: RunDir) -> RunCurves:
    losses, dev = [], []
    for m in rd.metrics():
        epoch, value, name = m.get("epoch"), m.get("value"), m.get("name") or ""
        if epoch is None or value is None:
            continue
        if m.get("split") == "train" and m.get("step") is not None and (name == "loss" or name.endswith("_loss")):
            losses.append((int(m["step"]), int(epoch), name, float(value)))
        elif m.get("split") == "dev":
            dev.append((int(epoch), name, float(value)))
    return RunCurves(run_id=rd.run_id, losses=pl.DataFrame(losses, schema=_LOSS_SCHEMA, orient="row"),
                     dev=pl.DataFrame(dev, schema=_DEV_SCHEMA, orient="row"))


__all__ = ["CurveReader", "MAX_POINTS"]
