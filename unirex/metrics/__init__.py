"""ERASER metrics (task, faithfulness, plausibility) and UNIREX's NRG: pure functions over arrays.

Metric keys the evaluator reports (:func:`unirex.evaluate.evaluate`):

=====================================  ==================================================================
acc, macro_f1                          task (:mod:`unirex.metrics.task`)
comp_k{k}, suff_k{k}                   comprehensiveness / sufficiency at bin k (:mod:`.faithfulness`)
comp_aopc, suff_aopc                   AOPC, mean over bins (ERASER's scorer)
comp_aopc_unirex, suff_aopc_unirex     UNIREX's sum / (|K| + 1)
comp_lo_*, suff_lo_*                   the same on log-odds of the predicted label
comp, suff                             at the hard rationale (top ``hard_k`` %): ERASER's top-level fields
plaus_auprc, plaus_ap                  ERASER word level (:mod:`.plausibility`)
plaus_token_p/r/f1, plaus_iou_f1       ERASER word level (instance macro), + ``*_micro_*``
plaus_sub_*                            the same computed at subword level (training curves)
=====================================  ==================================================================
"""

from unirex.metrics.faithfulness import BINS, aopc, aopc_unirex, faithfulness_metrics, log_odds_drop, prob_drop
from unirex.metrics.nrg import DEFAULT_NRG_SPEC, NRGResult, nrg
from unirex.metrics.plausibility import (ScoredDocument, auprc, average_precision, iou_f1, plausibility_metrics,
                                         pr_curve, spans_from_mask, token_prf)
from unirex.metrics.task import accuracy, macro_f1

__all__ = ["BINS", "DEFAULT_NRG_SPEC", "NRGResult", "ScoredDocument", "accuracy", "aopc", "aopc_unirex",
           "auprc", "average_precision", "faithfulness_metrics", "iou_f1", "log_odds_drop", "macro_f1", "nrg",
           "plausibility_metrics", "pr_curve", "prob_drop", "spans_from_mask", "token_prf"]
