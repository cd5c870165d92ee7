"""Normalized relative gain (NRG, UNIREX; Chan et al. 2022) over a set of compared runs.

For each metric: min-max normalise the runs' values to [0, 1], direction-aware (for a metric where
lower is better, such as sufficiency, the best = lowest run gets 1). Average the normalised values
within each desideratum (faithfulness, plausibility, task), then average the desiderata.

Decisions where the paper is silent:

* A metric on which every compared run ties (including a single run) normalises to 1.0 for all runs:
  every run is the best on it.
* A metric is used only when every compared run has a (non-None, finite) value for it; a desideratum
  with no usable metric is left out of the final average and listed in ``missing``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

#: desideratum -> {metric key: higher_is_better}
DEFAULT_NRG_SPEC: dict[str, dict[str, bool]] = {
    "faithfulness": {"comp_aopc": True, "suff_aopc": False},
    "plausibility": {"plaus_auprc": True, "plaus_token_f1": True, "plaus_iou_f1": True},
    "task": {"macro_f1": True},
}


@dataclass(frozen=True)
class NRGResult:
    """``normalized[run][metric]``, ``by_desideratum[run][desideratum]``, ``nrg[run]``; ``used`` lists the
    metrics used per desideratum and ``missing`` the desiderata left out."""

    normalized: dict[str, dict[str, float]]
    by_desideratum: dict[str, dict[str, float]]
    nrg: dict[str, float]
    used: dict[str, list[str]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    def rows(self) -> list[dict]:
        """One flat dict per run: ``run``, ``nrg``, ``nrg_<desideratum>``, ``norm_<metric>``."""
        out = []
        for run, value in self.nrg.items():
            row = {"run": run, "nrg": value}
            row.update({f"nrg_{d}": v for d, v in self.by_desideratum[run].items()})
            row.update({f"norm_{m}": v for m, v in self.normalized[run].items()})
            out.append(row)
        return out


def _ok(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(float(v))


def normalize(values: Mapping[str, float], higher_is_better: bool = True) -> dict[str, float]:
    """Min-max normalise ``{run: value}``; the best run gets 1, the worst 0, all-tied runs 1."""
    lo, hi = min(values.values()), max(values.values())
    if hi == lo:
        return {r: 1.0 for r in values}
    if higher_is_better:
        return {r: (v - lo) / (hi - lo) for r, v in values.items()}
    return {r: (hi - v) / (hi - lo) for r, v in values.items()}


def nrg(runs: Mapping[str, Mapping[str, float]], spec: Mapping[str, Mapping[str, bool]] | None = None) -> NRGResult:
    """NRG of each run in ``runs`` (``{run_id: {metric: value}}``) under ``spec`` (default
    :data:`DEFAULT_NRG_SPEC`)."""
    spec = DEFAULT_NRG_SPEC if spec is None else spec
    run_ids = list(runs)
    normalized = {r: {} for r in run_ids}
    by_des = {r: {} for r in run_ids}
    used, missing = {}, []
    for des, metrics in spec.items():
        cols = []
        for metric, higher in metrics.items():
            if run_ids and all(_ok(runs[r].get(metric)) for r in run_ids):
                norm = normalize({r: float(runs[r][metric]) for r in run_ids}, higher)
                for r in run_ids:
                    normalized[r][metric] = norm[r]
                cols.append(metric)
        if not cols:
            missing.append(des)
            continue
        used[des] = cols
        for r in run_ids:
            by_des[r][des] = sum(normalized[r][m] for m in cols) / len(cols)
    total = {r: (sum(by_des[r].values()) / len(by_des[r]) if by_des[r] else float("nan")) for r in run_ids}
    return NRGResult(normalized, by_des, total, used, missing)


__all__ = ["DEFAULT_NRG_SPEC", "NRGResult", "normalize", "nrg"]
