"""ERASER metrics (task, faithfulness, plausibility), UNIREX's own variants and NRG: pure functions.

ERASER's conventions are the default and the export's; the reference code's variants (UNIREX's
``calc_plaus`` and per-dataset task metric, :mod:`.reference`) are reported beside them under names of
their own (``*_ref*``, ``*_aopc_unirex``). Metric keys the evaluator reports
(:func:`unirex.evaluate.evaluate`):

=====================================  ==================================================================
acc, macro_f1                          task (:mod:`unirex.metrics.task`)
task_ref                               UNIREX's task metric for the dataset: acc (CoS-E, SST), macro F1
                                       (e-SNLI, movies, MultiRC, anything else), ...; which one is
                                       :func:`.reference.reference_task_metric` (and the evaluation's
                                       ``stats['task_ref_metric']``)
comp_k{k}, suff_k{k}                   comprehensiveness / sufficiency at bin k (:mod:`.faithfulness`)
comp_aopc, suff_aopc                   AOPC, mean over bins (ERASER's scorer)
comp_aopc_unirex, suff_aopc_unirex     UNIREX's sum / (|K| + 1)
comp_lo_*, suff_lo_*                   the same on log-odds of the predicted label
comp, suff                             at the hard rationale (top ``hard_k`` %): ERASER's top-level fields
plaus_auprc, plaus_ap                  ERASER word level (:mod:`.plausibility`)
plaus_token_p/r/f1, plaus_iou_f1       ERASER word level (instance macro), + ``*_micro_*``
plaus_sub_*                            the same computed at subword level (training curves)
plaus_ref_auprc                        UNIREX's AUPRC: subword level over every non-padding position
                                       (special tokens, query included), examples without gold count 0
plaus_ref_token_f1                     UNIREX's token F1: macro F1 over the two classes (rationale, not)
                                       of the soft scores thresholded at > 0, subword level, as above
soft_comp, soft_suff                   beside ERASER's, when ``eval.extra_metrics`` asks (:mod:`.extra`):
sensitivity_max, diag_comp, diag_suff  soft comprehensiveness / sufficiency, max-sensitivity of the
                                       scores, diagnosticity against a random rationale
flip_words, flip_words_random          when ``training.eval_flip`` asks (:mod:`unirex.counterfactual`): the
                                       fraction of words edited to flip the prediction (lower is better)
=====================================  ==================================================================

Which of them each front shows, their labels and directions, is one table: :mod:`.registry`
(:func:`register_metric` adds one).

NRG (:mod:`.nrg`) composes them by convention: ``paper`` (default; comp/suff AOPC, ``plaus_ref_auprc``,
``task_ref``) or ``eraser`` (comp/suff AOPC, word-level AUPRC / token F1 / IOU F1, macro F1).

Intervals, paired tests and Holm's adjustment over compared methods: :mod:`.stats` (a bootstrap over the
examples and seeds; each metric as per-example sums, :mod:`unirex.per_example`).
"""

from unirex.metrics.faithfulness import BINS, aopc, aopc_unirex, faithfulness_metrics, log_odds_drop, prob_drop
from unirex.metrics.nrg import CONVENTIONS, DEFAULT_NRG_SPEC, NRG_SPECS, NRGResult, nrg, nrg_spec
from unirex.metrics.plausibility import (ScoredDocument, auprc, average_precision, iou_f1, plausibility_metrics,
                                         pr_curve, spans_from_mask, token_prf)
from unirex.metrics.registry import (Direction, Family, Headline, MetricSpec, get_metric, metric_keys, metrics,
                                     register_metric)
from unirex.metrics.reference import reference_plausibility, reference_task_metric, task_ref, token_f1_ref
from unirex.metrics.task import accuracy, macro_f1

__all__ = ["BINS", "CONVENTIONS", "DEFAULT_NRG_SPEC", "Direction", "Family", "Headline", "MetricSpec", "NRG_SPECS",
           "NRGResult", "get_metric", "metric_keys", "metrics", "register_metric", "ScoredDocument", "accuracy", "aopc",
           "aopc_unirex", "auprc", "average_precision", "faithfulness_metrics", "iou_f1", "log_odds_drop", "macro_f1",
           "nrg", "nrg_spec", "plausibility_metrics", "pr_curve", "prob_drop", "reference_plausibility",
           "reference_task_metric", "spans_from_mask", "task_ref", "token_f1_ref", "token_prf"]
