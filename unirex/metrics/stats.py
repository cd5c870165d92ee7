"""Uncertainty of compared numbers: bootstrap intervals, paired tests and Holm's adjustment (pure numpy).

A metric of one run is written as a function of *sums* of per-example statistics
(:class:`Contributions`): ``value = combine(kind, rows.sum(axis=0))``. A plain mean over examples is
``(value_i, 1)`` summed then divided; macro F1 is the per-class (tp, fp, fn) counts summed, then the F1
of each class; ERASER's IOU F1 is four sums (recall and its count, precision and its count). So a
resample of the examples is one matrix product ``weights @ rows`` (``weights[b, i]``: how often
resample ``b`` draws example ``i``) followed by ``combine``: a corpus-level metric is recomputed on each
resample, never averaged per example.

The bootstrap (:func:`bootstrap`) resamples two units, on every resample ``b``:

* **examples**: one draw of the ``N`` examples with replacement, *shared by every run on the same
  dataset and split*: every run is scored on the same examples (the design is crossed, not nested), so
  an example that is hard for one run is hard for the others, and a comparison of two groups stays
  paired by example;
* **runs (seeds)** of each group: ``S`` of its ``S`` runs with replacement; the group's value is the
  mean over the drawn runs of each run's metric on the drawn examples. With one run the interval is
  over examples only (:attr:`BootstrapResult.seeds`).

Intervals are percentile intervals of the resampled values. A paired test of two groups
(:func:`paired`) takes the resampled differences (same example draws, each group's own run draws): the
interval is their percentiles, and the two-sided p-value that of the centred bootstrap, the share of
resampled differences at least as far from the observed difference as the observed difference is
from 0 (``(1 + #) / (B + 1)``). :func:`holm` adjusts a family of p-values. NRG's interval
(:func:`nrg_replicates`) redoes the whole NRG computation (min-max over the groups, desiderata,
average) on every resample.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum

import zlib

import numpy as np

#: resamples the fronts draw, and the fixed seed that makes their numbers reproducible
N_RESAMPLES = 1000
SEED = 20260
ALPHA = 0.05


class Kind(str, Enum):
    """How a metric is recomputed from summed per-example statistics."""

    MEAN = "mean"  # (value, weight): sum(value) / sum(weight)
    MACRO_F1 = "macro_f1"  # (tp_c..., fp_c..., fn_c...): mean F1 over the classes seen in gold or prediction
    BINARY_F1 = "binary_f1"  # (tp, fp, fn) of the positive class
    F1_OF_MEANS = "f1_of_means"  # (r, n_r, p, n_p): F1 of the two averages (ERASER's IOU F1)


@dataclass(frozen=True)
class Contributions:
    """One metric of one run as per-example statistics: ``rows [N, d]``, summed then :func:`combine`-d."""

    kind: Kind
    rows: np.ndarray

    @property
    def value(self) -> float:
        return float(combine(self.kind, self.rows.sum(axis=0)))


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), 0.0)


def combine(kind: Kind, sums: np.ndarray) -> np.ndarray:
    """The metric from summed statistics ``sums [..., d]`` (any leading shape) -> ``[...]``."""
    sums = np.asarray(sums, dtype=np.float64)
    if kind is Kind.MEAN:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(sums[..., 1] > 0, sums[..., 0] / np.where(sums[..., 1] > 0, sums[..., 1], 1.0), np.nan)
    if kind is Kind.BINARY_F1:
        tp, fp, fn = sums[..., 0], sums[..., 1], sums[..., 2]
        return _div(2 * tp, 2 * tp + fp + fn)
    if kind is Kind.MACRO_F1:
        c = sums.shape[-1] // 3
        tp, fp, fn = sums[..., :c], sums[..., c:2 * c], sums[..., 2 * c:]
        denom = 2 * tp + fp + fn
        seen = denom > 0
        f1 = _div(2 * tp, denom)
        n = seen.sum(axis=-1)
        return _div((f1 * seen).sum(axis=-1), n.astype(np.float64))
    if kind is Kind.F1_OF_MEANS:
        r, p = _div(sums[..., 0], sums[..., 1]), _div(sums[..., 2], sums[..., 3])
        return _div(2 * r * p, r + p)
    raise ValueError(f"unknown kind {kind!r}")


def mean_rows(values: np.ndarray, weight: np.ndarray | None = None) -> Contributions:
    """A mean over examples: ``(value_i, 1)``; with ``weight``, ``values`` are per-example sums over
    ``weight`` units (an example's documents) and the metric is the mean over those units."""
    values = np.asarray(values, dtype=np.float64)
    w = np.ones_like(values) if weight is None else np.asarray(weight, dtype=np.float64)
    return Contributions(Kind.MEAN, np.stack([values, w], axis=1))


def f1_rows(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, positive: int | None = None) -> Contributions:
    """Per-example (tp, fp, fn) of each class (macro F1), or of ``positive`` alone (binary F1). ``y_true``
    and ``y_pred`` are ``[N]`` or ``[N, K]`` (several predictions per example, all counted)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim == 1:
        y_true, y_pred = y_true[:, None], y_pred[:, None]
    classes = [positive] if positive is not None else list(range(n_classes))
    tp = np.stack([((y_true == c) & (y_pred == c)).sum(1) for c in classes], axis=1)
    fp = np.stack([((y_true != c) & (y_pred == c)).sum(1) for c in classes], axis=1)
    fn = np.stack([((y_true == c) & (y_pred != c)).sum(1) for c in classes], axis=1)
    kind = Kind.BINARY_F1 if positive is not None else Kind.MACRO_F1
    return Contributions(kind, np.concatenate([tp, fp, fn], axis=1).astype(np.float64))


def resample_weights(n_examples: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``[B, N]``: how often each resample draws each example (``N`` draws with replacement)."""
    idx = rng.integers(0, n_examples, size=(n_resamples, n_examples))
    idx += (np.arange(n_resamples) * n_examples)[:, None]
    return np.bincount(idx.ravel(), minlength=n_resamples * n_examples).reshape(n_resamples, n_examples).astype(
        np.float64)


@dataclass(frozen=True)
class Estimate:
    """A group's metric: ``point`` (the mean over its runs), ``replicates [B]`` (the bootstrap's values)."""

    point: float
    replicates: np.ndarray

    def interval(self, alpha: float = ALPHA) -> tuple[float, float]:
        return percentile_interval(self.replicates, alpha)


def percentile_interval(replicates: np.ndarray, alpha: float = ALPHA) -> tuple[float, float]:
    r = np.asarray(replicates, dtype=np.float64)
    r = r[np.isfinite(r)]
    if not r.size:
        return float("nan"), float("nan")
    lo, hi = np.quantile(r, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


@dataclass(frozen=True)
class BootstrapResult:
    """The bootstrap of the groups of one dataset and split: ``estimates[group][metric]``, ``seeds[group]``
    (runs per group: 1 means the interval is over examples only)."""

    estimates: dict[str, dict[str, Estimate]]
    seeds: dict[str, int]
    n_examples: int
    n_resamples: int
    seed: int


def bootstrap(groups: Mapping[str, Sequence[Mapping[str, Contributions]]], n_resamples: int = N_RESAMPLES,
              seed: int = SEED, rng: np.random.Generator | None = None) -> BootstrapResult:
    """Hierarchical bootstrap of every group (``{group: [per run {metric: Contributions}]}``; every run's rows
    over the same ``N`` examples in the same order). See the module docstring for the resampling units. The
    example draws come from ``seed`` (or ``rng``), each group's seed draws from ``seed`` and its name.
    A metric is estimated for a group only when every run of the group has it."""
    rng = np.random.default_rng(seed) if rng is None else rng
    sizes = {c.rows.shape[0] for runs in groups.values() for run in runs for c in run.values()}
    if len(sizes) > 1:
        raise ValueError(f"runs on different numbers of examples: {sorted(sizes)}")
    n = sizes.pop() if sizes else 0
    weights = resample_weights(n, n_resamples, rng) if n else np.zeros((n_resamples, 0))
    estimates: dict[str, dict[str, Estimate]] = {}
    for g, runs in groups.items():
        s = len(runs)
        # each group's seed draws from its own stream (the seed and its label): the same whatever other groups
        # are compared, and in whatever order they come
        group_rng = np.random.default_rng([seed, zlib.crc32(str(g).encode())])
        pick = group_rng.integers(0, s, size=(n_resamples, s)) if s > 1 else np.zeros((n_resamples, 1), dtype=np.int64)
        names = [m for m in (runs[0] if runs else {}) if all(m in r for r in runs)]
        estimates[g] = {}
        for m in names:
            per_run = np.stack([combine(r[m].kind, weights @ r[m].rows) for r in runs])  # [S, B]
            reps = per_run[pick, np.arange(n_resamples)[:, None]].mean(axis=1)
            estimates[g][m] = Estimate(float(np.mean([r[m].value for r in runs])), reps)
    return BootstrapResult(estimates, {g: len(r) for g, r in groups.items()}, n, n_resamples, seed)


@dataclass(frozen=True)
class PairTest:
    """``a`` minus ``b`` on one metric: the difference, its interval, the p-value and (after :func:`holm`) the
    adjusted p-value and whether it is significant."""

    a: str
    b: str
    metric: str
    diff: float
    ci_low: float
    ci_high: float
    p: float
    p_adj: float = float("nan")
    significant: bool = False
    dataset: str | None = None
    n_examples: int = 0
    seeds_a: int = 1
    seeds_b: int = 1


def paired(a: Estimate, b: Estimate, alpha: float = ALPHA) -> tuple[float, float, float, float]:
    """``(diff, ci_low, ci_high, p)`` of ``a - b`` from replicates drawn on the same example resamples."""
    d = a.point - b.point
    reps = a.replicates - b.replicates
    reps = reps[np.isfinite(reps)]
    if not reps.size:
        return d, float("nan"), float("nan"), float("nan")
    lo, hi = percentile_interval(reps, alpha)
    p = (1 + np.count_nonzero(np.abs(reps - d) >= abs(d) - 1e-12)) / (reps.size + 1)
    return float(d), lo, hi, float(min(1.0, p))


def holm(p: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN stays NaN and is not counted in the family)."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if not m:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adj, 1.0)
    return out


def pairwise(result: BootstrapResult, metric: str, groups: Sequence[str] | None = None, alpha: float = ALPHA,
             dataset: str | None = None) -> list[PairTest]:
    """Every pair of ``groups`` (default: all with ``metric``) of one bootstrap, unadjusted (see :func:`holm`)."""
    names = [g for g in (groups or result.estimates) if metric in result.estimates.get(g, {})]
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            d, lo, hi, p = paired(result.estimates[a][metric], result.estimates[b][metric], alpha)
            out.append(PairTest(a, b, metric, d, lo, hi, p, dataset=dataset, n_examples=result.n_examples,
                                seeds_a=result.seeds[a], seeds_b=result.seeds[b]))
    return out


def adjust(tests: Sequence[PairTest], alpha: float = ALPHA) -> list[PairTest]:
    """The tests with Holm-adjusted p-values over the family ``tests`` and ``significant`` = ``p_adj < alpha``."""
    adj = holm([t.p for t in tests])
    return [replace(t, p_adj=float(q), significant=bool(np.isfinite(q) and q < alpha)) for t, q in zip(tests, adj)]


def nrg_replicates(result: BootstrapResult, spec: Mapping[str, Mapping[str, bool]],
                   groups: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """NRG of each group on every resample (``{group: [B]}``): min-max over ``groups`` per metric (ties: 1),
    the mean within each desideratum, then over the desiderata, as :func:`unirex.metrics.nrg.nrg` does on the
    point values; a metric is used only when every group has it (else ``{}`` if no desideratum is left)."""
    names = list(groups or result.estimates)
    if not names:
        return {}
    per_des = []
    for metrics in spec.values():
        cols = []
        for metric, higher in metrics.items():
            if not all(metric in result.estimates[g] for g in names):
                continue
            v = np.stack([result.estimates[g][metric].replicates for g in names])  # [G, B]
            lo, hi = v.min(axis=0), v.max(axis=0)
            span = hi - lo
            norm = (v - lo) / np.where(span > 0, span, 1.0) if higher else (hi - v) / np.where(span > 0, span, 1.0)
            cols.append(np.where(span > 0, norm, 1.0))
        if cols:
            per_des.append(np.mean(cols, axis=0))
    if not per_des:
        return {}
    total = np.mean(per_des, axis=0)
    return {g: total[i] for i, g in enumerate(names)}


__all__ = ["ALPHA", "BootstrapResult", "Contributions", "Estimate", "Kind", "N_RESAMPLES", "PairTest",
           "SEED", "adjust", "bootstrap", "combine", "f1_rows", "holm", "mean_rows", "nrg_replicates", "paired",
           "pairwise", "percentile_interval", "resample_weights"]
