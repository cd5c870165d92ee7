"""UNIREX's own conventions for plausibility and task performance, reported beside ERASER's.

The project's default metrics follow ERASER's scorer (:mod:`.plausibility`, :mod:`.task`) and the ERASER
export is verified against it. UNIREX's reference code (facebookresearch/UNIREX, ``src/utils/metrics.py``
``calc_plaus`` and ``src/utils/data.py``; the numbers of the paper come from it) scores differently; its
variants are computed here, re-implemented from its semantics, and reported under their own names so the
two are never mixed up:

* **Unit: one example at subword level, every non-padding position.** The reference scores the first
  ``attention_mask.sum()`` positions of the model input: special tokens (``[CLS]``, ``[SEP]``), the
  separator between premise and hypothesis and a query all count, with gold 0 there. (The project's
  extractors return 0 outside document tokens, so those positions enter with score 0; in the reference
  they carry whatever the extractor gave them.)
* **AUPRC** (``plaus_ref_auprc``): per example, scikit-learn's ``precision_recall_curve`` and
  ``auc(recall, precision)`` (the same trapezoid as ERASER's :func:`.plausibility.auprc`) over those
  positions; an example without a gold rationale counts as **0.0**; the mean over all examples.
* **Token F1** (``plaus_ref_token_f1``): per example, scikit-learn's ``f1_score(average='macro')`` of
  the gold mask against the *soft scores thresholded at > 0* (not a top-k hard rationale): the unweighted
  mean of the F1 of class "rationale" and of class "not rationale", over the classes present in gold or
  prediction; an example without a gold rationale counts as 0.0; the mean over all examples.
* The reference averages per batch, then over batches; this module averages over examples (the same
  when every batch is full, and independent of the evaluation batch size).
* **Task metric** (``task_ref``): the metric the reference selects checkpoints with and reports as the
  dataset's performance (its ``monitor_dict``): accuracy for CoS-E, SST, Amazon and Yelp, binary F1 of
  the positive class for StormFront and Irony, macro F1 for e-SNLI, Movies, MultiRC and OLID. Datasets
  the reference does not know (the built-in demos, FEVER, BoolQ, Evidence Inference, your own) use macro
  F1. :func:`reference_task_metric` names the choice.
* **AOPC**: the reference divides the sum over bins by ``|K| + 1``: reported by the evaluator as
  ``comp_aopc_unirex`` / ``suff_aopc_unirex`` (:mod:`.faithfulness`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from unirex.metrics.plausibility import auprc
from unirex.metrics.task import accuracy, macro_f1, per_class_f1

#: the reference's task metric per dataset name (its ``monitor_dict``); anything else: ``macro_f1``
REFERENCE_TASK_METRICS: dict[str, str] = {
    "cose": "acc", "sst": "acc", "amazon": "acc", "yelp": "acc",
    "esnli": "macro_f1", "movies": "macro_f1", "multirc": "macro_f1", "olid": "macro_f1",
    "stf": "binary_f1", "irony": "binary_f1",
}
DEFAULT_REFERENCE_TASK_METRIC = "macro_f1"
#: soft scores above this count as rationale in the reference's token F1
REFERENCE_THRESHOLD = 0.0


def reference_task_metric(dataset: str | None) -> str:
    """``'acc'``, ``'macro_f1'`` or ``'binary_f1'``: the task metric UNIREX's code reports for ``dataset``
    (its folder name, e.g. ``sst``, ``esnli``); ``macro_f1`` for a dataset it does not list."""
    return REFERENCE_TASK_METRICS.get((dataset or "").lower(), DEFAULT_REFERENCE_TASK_METRIC)


def binary_f1(y_true, y_pred, positive: int = 1) -> float:
    """F1 of label id ``positive`` alone (the reference's micro F1 with class 0 ignored, on two classes)."""
    return per_class_f1(y_true, y_pred, labels=[positive])[positive]


def task_ref(y_true, y_pred, dataset: str | None) -> tuple[float, str]:
    """``(value, metric name)`` of the reference's task metric for ``dataset`` (see
    :func:`reference_task_metric`)."""
    name = reference_task_metric(dataset)
    fn = {"acc": accuracy, "macro_f1": macro_f1, "binary_f1": binary_f1}[name]
    return fn(y_true, y_pred), name


def token_f1_ref(truth, scores, threshold: float = REFERENCE_THRESHOLD) -> float:
    """One example's token F1 as the reference computes it: scikit-learn's macro F1 of ``truth`` (0/1 per
    position) against ``scores > threshold``, over the classes present in either."""
    truth = np.asarray(truth).astype(bool).astype(np.int64)
    pred = (np.asarray(scores, dtype=np.float64) > threshold).astype(np.int64)
    if truth.shape != pred.shape or truth.ndim != 1:
        raise ValueError(f"truth and scores must be equal-length 1-D arrays, got {truth.shape} and {pred.shape}")
    return macro_f1(truth, pred)


def example_plausibility_ref(truth, scores, has_rationale: bool,
                             threshold: float = REFERENCE_THRESHOLD) -> tuple[float, float]:
    """``(auprc, token_f1)`` of one example as the reference scores it; ``truth`` and ``scores`` run over
    the example's non-padding positions; ``(0.0, 0.0)`` for an example without a gold rationale."""
    if not has_rationale:
        return 0.0, 0.0
    return auprc(np.asarray(truth, dtype=np.float64), scores), token_f1_ref(truth, scores, threshold)


def aggregate_plausibility_ref(per_example: Iterable[tuple[float, float, bool]]) -> dict[str, float | None]:
    """``{'auprc', 'token_f1'}``: the means over ``(auprc, token_f1, has_rationale)`` per example (those
    without a rationale included, as 0.0); both None when no example has a rationale (the reference
    then logs nothing)."""
    rows = list(per_example)
    if not any(has for _, _, has in rows):
        return {"auprc": None, "token_f1": None}
    return {"auprc": float(np.mean([a for a, _, _ in rows])), "token_f1": float(np.mean([f for _, f, _ in rows]))}


def reference_plausibility(examples: Iterable[tuple[np.ndarray, np.ndarray, bool]],
                           threshold: float = REFERENCE_THRESHOLD) -> dict[str, float | None]:
    """``{'auprc', 'token_f1'}`` over ``(truth, scores, has_rationale)`` per example, where ``truth`` and
    ``scores`` run over the example's non-padding positions (:func:`example_plausibility_ref`, then
    :func:`aggregate_plausibility_ref`)."""
    return aggregate_plausibility_ref((*example_plausibility_ref(t, s, h, threshold), bool(h)) for t, s, h in examples)


__all__ = ["DEFAULT_REFERENCE_TASK_METRIC", "REFERENCE_TASK_METRICS", "REFERENCE_THRESHOLD", "aggregate_plausibility_ref",
           "binary_f1", "example_plausibility_ref", "reference_plausibility", "reference_task_metric", "task_ref", "token_f1_ref"]
