"""Task metrics: accuracy and macro F1 over label ids.

Both take 1-D integer arrays ``y_true`` and ``y_pred`` of equal length ``N``.
"""

from __future__ import annotations

import numpy as np


def accuracy(y_true, y_pred) -> float:
    """Fraction of examples whose predicted label equals the gold label (0.0 for no examples)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"shapes differ: {y_true.shape} vs {y_pred.shape}")
    return float((y_true == y_pred).mean()) if y_true.size else 0.0


def per_class_f1(y_true, y_pred, labels=None) -> dict[int, float]:
    """F1 of each label (one-vs-rest); a label with no true and no predicted example is left out
    unless named in ``labels``; 0/0 counts as 0 (scikit-learn's ``zero_division=0``)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if labels is None:
        labels = np.union1d(np.unique(y_true), np.unique(y_pred))
    out = {}
    for c in labels:
        tp = int(((y_true == c) & (y_pred == c)).sum())
        fp = int(((y_true != c) & (y_pred == c)).sum())
        fn = int(((y_true == c) & (y_pred != c)).sum())
        denom = 2 * tp + fp + fn
        out[int(c)] = 2 * tp / denom if denom else 0.0
    return out


def macro_f1(y_true, y_pred, labels=None) -> float:
    """Unweighted mean of the per-label F1 over the labels present in ``y_true`` or ``y_pred``
    (scikit-learn's ``f1_score(average='macro')``), or over ``labels`` when given."""
    f1s = per_class_f1(y_true, y_pred, labels)
    return float(np.mean(list(f1s.values()))) if f1s else 0.0


__all__ = ["accuracy", "macro_f1", "per_class_f1"]
