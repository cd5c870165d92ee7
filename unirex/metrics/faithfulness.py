"""Faithfulness metrics (ERASER; DeYoung et al. 2020): comprehensiveness, sufficiency and AOPC.

For an example with predicted label ``y_hat = argmax p(.|x)`` and a rationale ``r`` at ``k`` percent:

* comprehensiveness(k) = p(y_hat | x) - p(y_hat | x without r)    (higher is better)
* sufficiency(k)       = p(y_hat | x) - p(y_hat | r only)          (lower is better)
* AOPC = the mean over the bins k in {1, 5, 10, 20, 50}, averaged over examples: exactly what
  ERASER's scorer computes (``np.average`` over the [N, K] array).
* ``*_aopc_unirex``: UNIREX's code divides the *sum* over bins by ``|K| + 1``; reported under its own
  name so it is never mistaken for ERASER's AOPC.
* log-odds variants: the same differences taken on ``log(p / (1 - p))`` of ``y_hat`` instead of ``p``
  (probabilities clamped to ``[eps, 1 - eps]``).

All functions are pure numpy. Shapes: ``probs [N, C]``, ``variant_probs [N, K, C]`` (one row per bin, in
the order of ``bins``), ``pred [N]``. A select-then-predict model (A2R, FRESH) has one prediction per
bin, the one from that bin's rationale: then ``probs [N, K, C]`` and ``pred [N, K]``, and each bin's
difference is taken from its own prediction.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BINS: tuple[int, ...] = (1, 5, 10, 20, 50)
LOG_ODDS_EPS = 1e-6


def _gather(probs: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """``probs[..., pred]`` per example: ``[N, C] -> [N]`` or ``[N, K, C] -> [N, K]`` (``pred`` ``[N]``,
    or ``[N, K]``: one predicted label per bin)."""
    probs = np.asarray(probs, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.int64)
    if probs.ndim == 2:
        return probs[np.arange(len(pred)), pred]
    idx = pred[:, None, None] if pred.ndim == 1 else pred[:, :, None]
    return np.take_along_axis(probs, idx, axis=2)[..., 0]


def log_odds(p: np.ndarray, eps: float = LOG_ODDS_EPS) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), eps, 1.0 - eps)
    return np.log(p) - np.log1p(-p)


def prob_drop(probs, variant_probs, pred) -> np.ndarray:
    """``p(y_hat|x) - p(y_hat|variant)``: ``[N]`` for ``[N, C]`` variants, ``[N, K]`` for ``[N, K, C]``."""
    base = _gather(probs, pred)
    var = _gather(variant_probs, pred)
    return (base[:, None] - var) if var.ndim == 2 and base.ndim == 1 else base - var


def log_odds_drop(probs, variant_probs, pred, eps: float = LOG_ODDS_EPS) -> np.ndarray:
    """Like :func:`prob_drop` on the log-odds of ``y_hat``."""
    base = log_odds(_gather(probs, pred), eps)
    var = log_odds(_gather(variant_probs, pred), eps)
    return (base[:, None] - var) if var.ndim == 2 and base.ndim == 1 else base - var


def aopc(per_bin: np.ndarray) -> float:
    """ERASER's AOPC: the mean of an ``[N, K]`` array of per-bin differences (0.0 when empty)."""
    per_bin = np.asarray(per_bin, dtype=np.float64)
    return float(np.mean(per_bin)) if per_bin.size else 0.0


def aopc_unirex(per_bin: np.ndarray) -> float:
    """UNIREX's variant: per example ``sum over bins / (|K| + 1)``, averaged over examples."""
    per_bin = np.asarray(per_bin, dtype=np.float64)
    if not per_bin.size:
        return 0.0
    return float(np.mean(per_bin.sum(axis=1) / (per_bin.shape[1] + 1)))


def faithfulness_metrics(probs, comp_probs, suff_probs, pred, bins: Sequence[float] = BINS,
                         log_odds_variants: bool = True) -> dict[str, float]:
    """All faithfulness numbers of a split as a flat dict.

    Keys: ``comp_k{k}`` / ``suff_k{k}`` per bin, ``comp_aopc`` / ``suff_aopc`` (ERASER),
    ``comp_aopc_unirex`` / ``suff_aopc_unirex`` and, with ``log_odds_variants``, ``comp_lo_k{k}``,
    ``suff_lo_k{k}``, ``comp_lo_aopc``, ``suff_lo_aopc``.
    """
    comp = prob_drop(probs, comp_probs, pred)
    suff = prob_drop(probs, suff_probs, pred)
    out: dict[str, float] = {}
    for j, k in enumerate(bins):
        out[f"comp_k{k:g}"] = float(comp[:, j].mean()) if len(comp) else 0.0
        out[f"suff_k{k:g}"] = float(suff[:, j].mean()) if len(suff) else 0.0
    out["comp_aopc"], out["suff_aopc"] = aopc(comp), aopc(suff)
    out["comp_aopc_unirex"], out["suff_aopc_unirex"] = aopc_unirex(comp), aopc_unirex(suff)
    if log_odds_variants:
        comp_lo = log_odds_drop(probs, comp_probs, pred)
        suff_lo = log_odds_drop(probs, suff_probs, pred)
        for j, k in enumerate(bins):
            out[f"comp_lo_k{k:g}"] = float(comp_lo[:, j].mean()) if len(comp_lo) else 0.0
            out[f"suff_lo_k{k:g}"] = float(suff_lo[:, j].mean()) if len(suff_lo) else 0.0
        out["comp_lo_aopc"], out["suff_lo_aopc"] = aopc(comp_lo), aopc(suff_lo)
    return out


__all__ = ["BINS", "aopc", "aopc_unirex", "faithfulness_metrics", "log_odds", "log_odds_drop", "prob_drop"]
