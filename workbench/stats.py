"""The comparison's uncertainty: the compared runs' per-example outputs, bootstrapped per dataset.

Each run's saved outputs on the split (``outputs/eval_<split>.parquet``) become per-example statistics
(:func:`unirex.per_example.load_contributions`, kept in a small cache while the file does not change);
the runs of each dataset are bootstrapped together (:func:`unirex.metrics.stats.bootstrap`: examples
shared by the runs, seeds per group), so every interval, NRG's included, and every paired test of two
groups on that dataset comes from the same resamples. A group whose runs lack outputs is named in
:attr:`Uncertainty.left_out` and has no interval and no test (never a zero).
"""

from __future__ import annotations

import os
import threading
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from unirex.errors import UnirexError
from unirex.metrics.registry import direction
from unirex.metrics.stats import (ALPHA, N_RESAMPLES, SEED, BootstrapResult, Estimate, PairTest, adjust, bootstrap,
                                  nrg_replicates, paired, pairwise)
from unirex.per_example import RunExamples, load_contributions
from workbench.records import Uncertainty

_CACHE: OrderedDict[tuple, tuple[tuple, RunExamples | str]] = OrderedDict()
_CACHE_SIZE = 512
_LOCK = threading.Lock()


def _stamp(path: Path) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def run_examples(runs_root: Path, run_id: str, split: str) -> RunExamples | str:
    """A run's per-example statistics on ``split``, or why there are none (no saved outputs, unreadable)."""
    parquet = Path(runs_root) / run_id / "outputs" / f"eval_{split}.parquet"
    stamp = _stamp(parquet)
    if stamp is None:
        return f"no per-example outputs on {split} (outputs/eval_{split}.parquet)"
    key = (str(parquet), split)
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is not None and hit[0] == stamp:
            _CACHE.move_to_end(key)
            return hit[1]
    try:
        value: RunExamples | str = load_contributions(parquet.parent.parent, split)
    except (UnirexError, OSError, ValueError, KeyError) as e:
        value = f"per-example outputs unreadable: {e}"
    with _LOCK:
        _CACHE[key] = (stamp, value)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return value


def _common_examples(runs: Mapping[str, RunExamples]) -> tuple[tuple[str, ...], set[str]]:
    """The example set most runs were scored on (the larger on a tie) and the runs that lack some of it."""
    sets = Counter(frozenset(r.keys) for r in runs.values())
    best = max(sets, key=lambda s: (sets[s], len(s)))
    first = next(r for r in runs.values() if frozenset(r.keys) == best)
    lacking = {rid for rid, r in runs.items() if not best <= set(r.keys)}
    return first.keys, lacking


_RESULTS: OrderedDict[tuple, Uncertainty] = OrderedDict()
_RESULTS_SIZE = 8


def uncertainty(runs_root: Path, cells: Mapping[str, Mapping[str, Sequence[str]]], split: str,
                metrics: Sequence[str], n_resamples: int = N_RESAMPLES, seed: int = SEED,
                stamp: tuple | None = None) -> Uncertainty:
    """Bootstrap each dataset's groups (``cells[dataset][group label] = run ids``) on ``metrics``. With
    ``stamp`` (the index's state), the result is kept while the index and the groups stay the same: a run's
    outputs are written before it is indexed, so a new evaluation changes the stamp."""
    if stamp is None:
        return _uncertainty(runs_root, cells, split, metrics, n_resamples, seed)
    key = (str(runs_root), stamp, split, tuple(metrics), n_resamples, seed,
           tuple((ds, tuple((g, tuple(r)) for g, r in sorted(groups.items()))) for ds, groups in sorted(cells.items())))
    with _LOCK:
        hit = _RESULTS.get(key)
        if hit is not None:
            _RESULTS.move_to_end(key)
            return hit
    value = _uncertainty(runs_root, cells, split, metrics, n_resamples, seed)
    with _LOCK:
        _RESULTS[key] = value
        while len(_RESULTS) > _RESULTS_SIZE:
            _RESULTS.popitem(last=False)
    return value


def _uncertainty(runs_root: Path, cells: Mapping[str, Mapping[str, Sequence[str]]], split: str,
                 metrics: Sequence[str], n_resamples: int, seed: int) -> Uncertainty:
    boots: dict[str, BootstrapResult] = {}
    left_out: dict[str, dict[str, str]] = {}
    for dataset in sorted(cells):
        groups = {label: cells[dataset][label] for label in sorted(cells[dataset])}
        loaded: dict[str, RunExamples] = {}
        why: dict[str, str] = {}
        for label, run_ids in groups.items():
            for rid in run_ids:
                ex = run_examples(runs_root, rid, split)
                if isinstance(ex, str):  # the group is left out: its other runs need not be read
                    why[label] = f"run {rid}: {ex}"
                    break
                loaded[rid] = ex
        if loaded:
            keys, lacking = _common_examples(loaded)
            for label, run_ids in groups.items():
                for rid in run_ids:
                    if rid in lacking:
                        why.setdefault(label, f"run {rid}: evaluated on other examples than the other runs")
        data = {}
        for label, run_ids in groups.items():
            if label in why:
                continue
            data[label] = [{m: c for m, c in loaded[rid].take(keys).metrics.items() if m in metrics}
                           for rid in run_ids]
        if data:
            boots[dataset] = bootstrap(data, n_resamples=n_resamples, seed=seed)
        if why:
            left_out[dataset] = why
    return Uncertainty(n_resamples=n_resamples, seed=seed, alpha=ALPHA, bootstraps=boots, left_out=left_out)


def group_estimate(unc: Uncertainty, parts: Sequence[tuple[str, int]], label: str, metric: str) -> Estimate | None:
    """A group's estimate over its datasets (``parts``: (dataset, number of runs)): the run-weighted mean of
    its per-dataset replicates, as its mean is over its runs; None when a part lacks it."""
    ests, weights = [], []
    for dataset, n in parts:
        e = unc.bootstraps.get(dataset, None)
        est = None if e is None else e.estimates.get(label, {}).get(metric)
        if est is None:
            return None
        ests.append(est)
        weights.append(n)
    if len(ests) == 1:
        return ests[0]
    w = np.asarray(weights, dtype=np.float64) / sum(weights)
    return Estimate(float(sum(wi * e.point for wi, e in zip(w, ests))),
                    sum(wi * e.replicates for wi, e in zip(w, ests)))


def nrg_estimates(unc: Uncertainty, used: Mapping[str, Mapping[str, Sequence[str]]],
                  spec: Mapping[str, Mapping[str, bool]], groups: Mapping[str, Sequence[str]]) -> dict[str, np.ndarray]:
    """NRG replicates per dataset (``used[dataset]``: the metrics its NRG used), only for a dataset where
    every group has outputs (else min-max over a different set of groups than the table's) and every metric
    the NRG used was resampled for every group (else the replicates would be an NRG of fewer metrics than the
    table's: a ``protocol=reference`` run's UNIREX-style metrics, say, which its saved outputs cannot give
    back, would leave the paper convention's NRG to its plausibility alone, with a falsely narrow interval)."""
    out: dict[str, np.ndarray] = {}
    for dataset, labels in groups.items():
        boot = unc.bootstraps.get(dataset)
        if boot is None or unc.left_out.get(dataset) or not used.get(dataset):
            continue
        if any(m not in boot.estimates.get(label, {}) for ms in used[dataset].values() for m in ms for label in labels):
            continue
        sub = {des: {m: spec[des][m] for m in ms} for des, ms in used[dataset].items()}
        for label, reps in nrg_replicates(boot, sub, list(labels)).items():
            out[f"{dataset}\x00{label}"] = reps
    return out


def best_is_significant(boot: BootstrapResult, metric: str, alpha: float = ALPHA) -> str | None:
    """The group best on ``metric`` (its direction) when a paired test finds it better than the runner-up
    (two-sided, at ``alpha``, unadjusted: one planned comparison per column), else None."""
    ests = {g: e[metric] for g, e in boot.estimates.items() if metric in e and np.isfinite(e[metric].point)}
    if len(ests) < 2:
        return None
    sign = 1.0 if direction(metric).higher_is_better else -1.0
    ranked = sorted(ests, key=lambda g: sign * ests[g].point, reverse=True)
    d, _lo, _hi, p = paired(ests[ranked[0]], ests[ranked[1]], alpha)
    return ranked[0] if sign * d > 0 and p < alpha else None


def pair_tests(unc: Uncertainty, metric: str, alpha: float = ALPHA) -> list[PairTest]:
    """Every pair of groups on the same dataset (and the comparison's split) on ``metric``, Holm-adjusted
    over all the pairs returned."""
    tests: list[PairTest] = []
    for dataset, boot in unc.bootstraps.items():
        tests.extend(pairwise(boot, metric, alpha=alpha, dataset=dataset))
    return adjust(tests, alpha)


__all__ = ["best_is_significant", "group_estimate", "nrg_estimates", "pair_tests", "run_examples", "uncertainty"]
