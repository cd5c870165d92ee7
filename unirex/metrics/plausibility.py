"""Plausibility metrics against gold rationales, computed the way ERASER's scorer does
(``rationale_benchmark/metrics.py``, DeYoung et al. 2020).

The unit of scoring is an *instance*: one (annotation, document) pair at ERASER word level, or one
example at subword level. Each instance is a :class:`ScoredDocument` holding the gold mask, the soft
scores, the hard (predicted) mask and the gold spans.

* **AUPRC** (``auprc``): per instance, the trapezoidal area under scikit-learn's
  ``precision_recall_curve`` (``auc(recall, precision)``), then the plain mean over *all* instances.
  An instance without any gold token has recall set to 1 at every threshold (scikit-learn >= 1.1), so
  it scores the mean of its precision end points; ERASER keeps such instances, so do we.
* **Average precision** (``ap``): scikit-learn's ``average_precision_score`` per instance, averaged
  over the instances that have both gold and non-gold tokens (ERASER's ``average_precision``).
* **Token P/R/F1** (``token_p``, ``token_r``, ``token_f1``): ERASER's ``token_prf.instance_macro``.
  Instances are those with a gold or a predicted token; per instance P = |g & p| / |p| (0 when
  nothing is predicted), R = |g & p| / |g| (0 when nothing is gold), F1 = 2PR/(P+R) (0 when P or R
  is 0); the three are averaged separately over instances. ``token_micro_*`` pool all tokens.
* **IOU F1** (``iou_f1``): ERASER's ``iou_scores[threshold=0.5].macro.f1``. Predicted spans are the
  maximal runs of the hard mask; each predicted span is a true positive when its best
  intersection-over-union with a gold span of the same instance reaches the threshold (a gold span
  may match several predictions, as in ERASER). Per instance R = TP / #gold spans (averaged over
  instances with gold spans) and P = TP / #predicted spans (averaged over instances with
  predictions); F1 = 2PR/(P+R) of the two averages. ``iou_micro_f1`` pools the counts.

Everything is numpy; the reference is re-implemented here, not imported.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

IOU_THRESHOLD = 0.5


@dataclass(frozen=True)
class ScoredDocument:
    """One instance: gold mask ``truth [n]`` (bool), soft ``scores [n]``, hard mask ``hard [n]`` (bool)
    and ``gold_spans`` ``((start, end), ...)`` (end exclusive; defaults to the runs of ``truth``)."""

    key: tuple
    truth: np.ndarray
    scores: np.ndarray
    hard: np.ndarray
    gold_spans: tuple[tuple[int, int], ...] | None = field(default=None)

    def spans(self) -> tuple[tuple[int, int], ...]:
        return self.gold_spans if self.gold_spans is not None else tuple(spans_from_mask(self.truth))


def spans_from_mask(mask) -> list[tuple[int, int]]:
    """Maximal runs of True as ``[(start, end), ...]`` with ``end`` exclusive."""
    m = np.asarray(mask, dtype=bool).astype(np.int8)
    if m.size == 0:
        return []
    d = np.diff(np.concatenate(([0], m, [0])))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    return [(int(s), int(e)) for s, e in zip(starts, ends)]


def pr_curve(truth, scores) -> tuple[np.ndarray, np.ndarray]:
    """``(precision, recall)`` exactly as ``sklearn.metrics.precision_recall_curve`` (>= 1.1) returns
    them: one point per distinct score, recall decreasing, ending at (precision 1, recall 0)."""
    y = np.asarray(truth, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"truth and scores must be equal-length 1-D arrays, got {y.shape} and {s.shape}")
    order = np.argsort(s, kind="mergesort")[::-1]
    s, y = s[order], y[order]
    idx = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]
    tps = np.cumsum(y)[idx]
    fps = 1 + idx - tps
    precision = tps / (tps + fps)
    recall = np.ones_like(tps) if tps[-1] == 0 else tps / tps[-1]
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0]


def auprc(truth, scores) -> float:
    """ERASER's per-instance AUPRC: ``sklearn.metrics.auc(recall, precision)`` (trapezoids)."""
    if len(truth) == 0:
        return 0.0
    precision, recall = pr_curve(truth, scores)
    return float(-np.trapezoid(precision, recall))  # recall decreases: the area comes out negative


def average_precision(truth, scores) -> float:
    """``sklearn.metrics.average_precision_score`` for one instance (step-wise, no interpolation)."""
    precision, recall = pr_curve(truth, scores)
    return float(-np.sum(np.diff(recall) * precision[:-1]))


def _f1(p: float, r: float) -> float:
    return 0.0 if p == 0 or r == 0 else 2 * p * r / (p + r)


def token_prf(pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """ERASER token-level P/R/F1 over ``(gold_mask, pred_mask)`` pairs (one per instance)."""
    ps, rs, fs = [], [], []
    tp_all = pred_all = gold_all = 0
    for gold, pred in pairs:
        gold, pred = np.asarray(gold, dtype=bool), np.asarray(pred, dtype=bool)
        n_gold, n_pred = int(gold.sum()), int(pred.sum())
        if n_gold == 0 and n_pred == 0:
            continue
        tp = int((gold & pred).sum())
        p = tp / n_pred if n_pred else 0.0
        r = tp / n_gold if n_gold else 0.0
        ps.append(p), rs.append(r), fs.append(_f1(p, r))
        tp_all, pred_all, gold_all = tp_all + tp, pred_all + n_pred, gold_all + n_gold
    micro_p = tp_all / pred_all if pred_all else 0.0
    micro_r = tp_all / gold_all if gold_all else 0.0
    return {
        "token_p": float(np.mean(ps)) if ps else 0.0,
        "token_r": float(np.mean(rs)) if rs else 0.0,
        "token_f1": float(np.mean(fs)) if fs else 0.0,
        "token_micro_p": micro_p, "token_micro_r": micro_r, "token_micro_f1": _f1(micro_p, micro_r),
    }


def best_iou(span: tuple[int, int], gold_spans: Sequence[tuple[int, int]]) -> float:
    """The largest intersection-over-union of ``span`` with any of ``gold_spans`` (token sets)."""
    best = 0.0
    s, e = span
    for gs, ge in gold_spans:
        inter = max(0, min(e, ge) - max(s, gs))
        union = max(0, e - s) + max(0, ge - gs) - inter
        iou = inter / union if union else 0.0
        best = max(best, iou)
    return best


def iou_f1(pairs: Iterable[tuple[Sequence[tuple[int, int]], Sequence[tuple[int, int]]]],
           threshold: float = IOU_THRESHOLD) -> dict[str, float]:
    """ERASER partial-match scores over ``(gold_spans, pred_spans)`` pairs (one per instance)."""
    rs, ps = [], []
    tp_all = n_gold_all = n_pred_all = 0
    for gold, pred in pairs:
        gold, pred = sorted(set(map(tuple, gold))), sorted(set(map(tuple, pred)))
        tp = sum(int(best_iou(p, gold) >= threshold) for p in pred)
        if gold:
            rs.append(tp / len(gold))
        if pred:
            ps.append(tp / len(pred))
        tp_all, n_gold_all, n_pred_all = tp_all + tp, n_gold_all + len(gold), n_pred_all + len(pred)
    macro_r = float(np.mean(rs)) if rs else 0.0
    macro_p = float(np.mean(ps)) if ps else 0.0
    micro_r = tp_all / n_gold_all if n_gold_all else 0.0
    micro_p = tp_all / n_pred_all if n_pred_all else 0.0
    return {"iou_p": macro_p, "iou_r": macro_r, "iou_f1": _f1(macro_r, macro_p),
            "iou_micro_p": micro_p, "iou_micro_r": micro_r, "iou_micro_f1": _f1(micro_r, micro_p)}


def plausibility_metrics(docs: Sequence[ScoredDocument], iou_threshold: float = IOU_THRESHOLD) -> dict[str, float | None]:
    """All plausibility numbers over instances (see the module docstring for each key).

    ``ap`` is None when no instance has both classes; everything is None for no instances.
    """
    if not docs:
        return {k: None for k in ("auprc", "ap", "token_p", "token_r", "token_f1", "iou_f1")}
    out: dict[str, float | None] = {"auprc": float(np.mean([auprc(d.truth, d.scores) for d in docs]))}
    two_class = [d for d in docs if 0 < int(np.asarray(d.truth, bool).sum()) < len(d.truth)]
    out["ap"] = float(np.mean([average_precision(d.truth, d.scores) for d in two_class])) if two_class else None
    out.update(token_prf((d.truth, d.hard) for d in docs))
    out.update(iou_f1(((d.spans(), spans_from_mask(d.hard)) for d in docs), iou_threshold))
    return out


__all__ = ["IOU_THRESHOLD", "ScoredDocument", "auprc", "average_precision", "best_iou", "iou_f1",
           "plausibility_metrics", "pr_curve", "spans_from_mask", "token_prf"]
