"""Normalized relative gain (NRG, UNIREX; Chan et al. 2022) over a set of compared runs.

For each metric: min-max normalise the runs' values to [0, 1], direction-aware (for a metric where
lower is better, such as sufficiency, the best = lowest run gets 1). Average the normalised values
within each desideratum (faithfulness, plausibility, task), then average the desiderata.

Two compositions (``convention``), named in :data:`NRG_SPECS`:

* ``paper`` (the default): the composition of the UNIREX paper (Chan et al., ICML 2022: its definition
  of NRG in the evaluation protocol, and the metric columns of its main results table), each metric
  computed as the reference code computes it: faithfulness = comprehensiveness AOPC (higher is better) and sufficiency AOPC
  (lower is better), both as UNIREX's code computes AOPC (``comp_aopc_unirex``, ``suff_aopc_unirex``);
  plausibility = AUPRC (``plaus_ref_auprc``, subword level, the reference's ``calc_plaus``); task = the
  dataset's task metric as the reference reports it (``task_ref``: accuracy or macro F1). UNIREX's
  public code computes no NRG itself; the composition is the paper's.
* ``eraser``: the same three desiderata over the ERASER-convention metrics the project reports by
  default: ``comp_aopc`` / ``suff_aopc`` (mean over bins), AUPRC, token F1 and IOU F1 at ERASER word
  level, and macro F1.

A dividing constant does not move a min-max normalised value, so AOPC as ERASER averages it and as
UNIREX sums it over ``|K| + 1`` give the same NRG; the conventions differ in the plausibility and task
metrics.

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

from unirex.errors import UnirexError
from unirex.metrics.registry import NRG_FAMILIES, Direction
from unirex.metrics.registry import metrics as registered_metrics

#: a spec: desideratum -> {metric key: higher_is_better}
NRGSpec = Mapping[str, Mapping[str, bool]]

#: the compositions, each named by the convention its metrics follow; which metric serves which is
#: declared by the metric itself (``MetricSpec.nrg`` in :mod:`unirex.metrics.registry`)
CONVENTIONS: tuple[str, ...] = ("paper", "eraser")
DEFAULT_CONVENTION = "paper"


def nrg_spec(convention: str = DEFAULT_CONVENTION) -> dict[str, dict[str, bool]]:
    """The composition named ``convention`` (``paper`` or ``eraser``) from the metric registry: per
    desideratum (faithfulness, plausibility, task) the metrics that declare it, with their direction;
    a :class:`UnirexError` for another name."""
    if convention not in CONVENTIONS:
        raise UnirexError(f"unknown NRG convention {convention!r}: choose one of {', '.join(CONVENTIONS)}")
    out: dict[str, dict[str, bool]] = {}
    for family in NRG_FAMILIES:
        specs = registered_metrics(family, nrg=convention)
        if specs:
            out[family.value] = {s.key: s.higher_is_better for s in specs}
    return out


#: the UNIREX paper's composition, on the reference code's metrics (the built-in metrics' declaration)
PAPER_NRG_SPEC: dict[str, dict[str, bool]] = nrg_spec("paper")
#: the same desiderata on the ERASER-convention metrics (the project's default metrics)
ERASER_NRG_SPEC: dict[str, dict[str, bool]] = nrg_spec("eraser")
NRG_SPECS: dict[str, dict[str, dict[str, bool]]] = {"paper": PAPER_NRG_SPEC, "eraser": ERASER_NRG_SPEC}
DEFAULT_NRG_SPEC = NRG_SPECS[DEFAULT_CONVENTION]


@dataclass(frozen=True)
class NRGResult:
    """``normalized[run][metric]``, ``by_desideratum[run][desideratum]``, ``nrg[run]``; ``used`` lists the
    metrics used per desideratum and ``missing`` the desiderata left out."""

    normalized: dict[str, dict[str, float]]
    by_desideratum: dict[str, dict[str, float]]
    nrg: dict[str, float]
    used: dict[str, list[str]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    convention: str | None = None  # the named spec used; None for a caller's own spec

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


def normalize(values: Mapping[str, float], higher_is_better: bool | Direction = True) -> dict[str, float]:
    """Min-max normalise ``{run: value}``; the best run gets 1, the worst 0, all-tied runs 1."""
    if isinstance(higher_is_better, Direction):
        higher_is_better = higher_is_better.higher_is_better
    lo, hi = min(values.values()), max(values.values())
    if hi == lo:
        return {r: 1.0 for r in values}
    if higher_is_better:
        return {r: (v - lo) / (hi - lo) for r, v in values.items()}
    return {r: (hi - v) / (hi - lo) for r, v in values.items()}


def nrg(runs: Mapping[str, Mapping[str, float]], spec: NRGSpec | None = None, *,
        convention: str = DEFAULT_CONVENTION) -> NRGResult:
    """NRG of each run in ``runs`` (``{run_id: {metric: value}}``).

    ``convention`` names the composition (:data:`NRG_SPECS`: ``paper``, the default, or ``eraser``);
    an explicit ``spec`` (desideratum -> {metric: higher_is_better}) overrides it.
    """
    if spec is None:
        spec = nrg_spec(convention)
    else:
        convention = None
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
    return NRGResult(normalized, by_des, total, used, missing, convention)


__all__ = ["CONVENTIONS", "DEFAULT_CONVENTION", "DEFAULT_NRG_SPEC", "ERASER_NRG_SPEC", "NRGResult", "NRGSpec",
           "NRG_SPECS", "PAPER_NRG_SPEC", "normalize", "nrg", "nrg_spec"]
