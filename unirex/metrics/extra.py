"""Faithfulness metrics beside ERASER's, from an evaluation's per-example outputs: pure numpy.

Which ones an evaluation computes is the setting ``eval.extra_metrics`` (a comma list of the *groups*
below, :func:`parse_extra_metrics`; none by default: each costs extra passes, :mod:`unirex.extra_eval`
computes their inputs). Each group's metrics, with ``p(.)`` the model's probability of its predicted
label ``y_hat`` on the full input ``x`` and ``r`` the extractor's top-``hard_k`` % rationale:

``soft`` (Zhao & Aletras 2023, "Incorporating attribution importance for improving faithfulness metrics")
    The scores of an example's document tokens are min-max normalised to ``s_i`` in [0, 1] (a constant
    score vector gives ``s_i = 0.5``). Instead of deleting the top-k, every document token's word
    embedding ``e_i`` is scaled: ``(1 - s_i) e_i`` for comprehensiveness, ``s_i e_i`` for sufficiency
    (special tokens and the query keep ``e_i``); a token whose factor is exactly 0 is deleted, as ERASER
    deletes (so at 0/1 scores the inputs *are* ERASER's comp / suff inputs).

    * ``soft_comp`` = mean over examples of ``p(y_hat | x) - p(y_hat | x_(1-s))`` (higher is better)
    * ``soft_suff`` = mean over examples of ``p(y_hat | x) - p(y_hat | x_s)``     (lower is better)

    Aggregated as ERASER's top-level ``comp`` / ``suff`` (one input per example, mean over examples), not
    as an AOPC over bins: at 0/1 scores that mark the top-``hard_k`` % rationale they equal ``comp`` /
    ``suff``. The paper draws a Bernoulli mask with keep probability ``1 - s_i`` (``s_i``) per embedding
    element; the scaling here is that mask's expectation, deterministic, so one pass per input suffices.
    The paper's Soft-NC / Soft-NS further divide by the empty rationale's sufficiency; not done here, so
    the numbers read on ERASER's comp / suff scale.

``sensitivity`` (max-sensitivity, Yeh et al. 2019; Captum's ``sensitivity_max``)
    ``sensitivity_max`` = mean over examples of ``max_t ||a(x + d_t) - a(x)||_2 / ||a(x)||_2`` (lower is
    better): ``a`` the extractor's scores over the document tokens, ``d_t`` (``t = 1..eval.sensitivity_samples``)
    noise drawn uniformly from the L-infinity ball of radius ``eval.sensitivity_radius`` and added to the
    word embeddings of the input's tokens (seeded per example); relative to the norm of the unperturbed
    scores (the absolute norm where that is 0, as Captum does). Precomputed scores have none (None).

``diag`` (diagnosticity against random)
    A random rationale of the same size as ``r`` (the same top-k count over the same candidates, ERASER's
    document tokens, :func:`unirex.rationale.selectable`; seeded per example) is scored as ``r`` is.

    * ``diag_comp`` = the fraction of examples where ``comp(r) > comp(random)`` (higher is better)
    * ``diag_suff`` = the fraction of examples where ``suff(r) < suff(random)`` (higher is better)

    A difference within :data:`DIAG_TIE` is a tie, which does not count as beating the random rationale.

Select-then-predict models (A2R, FRESH) predict from their own hard rationale, so soft and random
rationales have no prediction of theirs to score: ``soft`` and ``diag`` are None for them.

The minimal flip search's metrics (:data:`FLIP_METRICS`, :mod:`unirex.counterfactual`; asked for by
``training.eval_flip``, not by ``eval.extra_metrics``) are kept here too, as per-example fractions:

* ``flip_words`` = mean over examples of the fraction of the read words the extractor's order edited until
  the prediction flipped, 1.0 where it did not flip within the cap (lower is better)
* ``flip_words_random`` = the same in a seeded random order (the control)
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from unirex.errors import UnirexError, did_you_mean, quoted
from unirex.metrics.faithfulness import prob_drop

#: the groups of ``eval.extra_metrics`` and the metric keys each adds
EXTRA_METRIC_GROUPS: dict[str, tuple[str, ...]] = {
    "soft": ("soft_comp", "soft_suff"),
    "sensitivity": ("sensitivity_max",),
    "diag": ("diag_comp", "diag_suff"),
}
#: the minimal flip search's metrics (``training.eval_flip``; :mod:`unirex.counterfactual`), per example in
#: :class:`ExtraOutputs` as the groups' are
FLIP_METRICS: tuple[str, ...] = ("flip_words", "flip_words_random")
#: differences of the predicted label's probability this small count as ties in diagnosticity
DIAG_TIE = 1e-6


def parse_extra_metrics(value: str | None) -> tuple[str, ...]:
    """The groups of an ``eval.extra_metrics`` value (a comma list; empty / None: none), in
    :data:`EXTRA_METRIC_GROUPS` order; a :class:`UnirexError` naming an unknown one (with the closest)."""
    names = [n.strip() for n in str(value or "").strip("'\"").split(",") if n.strip()]
    for name in names:
        if name not in EXTRA_METRIC_GROUPS:
            hint = did_you_mean(name, EXTRA_METRIC_GROUPS, form=" (did you mean {}?)", quote=quoted)
            raise UnirexError(f"eval.extra_metrics: unknown metric {name!r}{hint}; "
                              f"choose from {', '.join(EXTRA_METRIC_GROUPS)}")
    return tuple(g for g in EXTRA_METRIC_GROUPS if g in names)


@dataclass
class ExtraOutputs:
    """Per example (the rows of :class:`unirex.evaluate.EvalOutputs`), what the extra metrics read; a
    field is None when its group was not computed. Probabilities ``[N, C]`` (float64):
    ``soft_comp_probs`` / ``soft_suff_probs`` on the soft inputs, ``random_comp_probs`` /
    ``random_suff_probs`` with the random rationale deleted / kept alone; ``sensitivity`` ``[N]``; the flip
    search's fractions ``flip_words`` / ``flip_words_random`` ``[N]`` (``training.eval_flip``)."""

    soft_comp_probs: np.ndarray | None = None
    soft_suff_probs: np.ndarray | None = None
    random_comp_probs: np.ndarray | None = None
    random_suff_probs: np.ndarray | None = None
    sensitivity: np.ndarray | None = None
    flip_words: np.ndarray | None = None
    flip_words_random: np.ndarray | None = None

    def take(self, order: np.ndarray) -> "ExtraOutputs":
        """The same outputs for the rows ``order``."""
        return ExtraOutputs(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[order]
                               for f in fields(self)})


def _extra(outputs) -> ExtraOutputs | None:
    return getattr(outputs, "extra", None)


def _mean(values: np.ndarray) -> float | None:
    return float(np.mean(values)) if len(values) else None


def per_example(outputs) -> dict[str, np.ndarray]:
    """Each extra metric's per-example values ``[N]`` (their mean is the metric), for those computed."""
    ex = _extra(outputs)
    if ex is None or not len(outputs):
        return {}
    out: dict[str, np.ndarray] = {}
    if ex.soft_comp_probs is not None and ex.soft_suff_probs is not None:
        out["soft_comp"] = prob_drop(outputs.probs, ex.soft_comp_probs, outputs.pred)
        out["soft_suff"] = prob_drop(outputs.probs, ex.soft_suff_probs, outputs.pred)
    if ex.sensitivity is not None:
        out["sensitivity_max"] = np.asarray(ex.sensitivity, dtype=np.float64)
    if ex.random_comp_probs is not None and ex.random_suff_probs is not None:
        comp = prob_drop(outputs.probs, outputs.hard_comp_probs, outputs.pred)
        suff = prob_drop(outputs.probs, outputs.hard_suff_probs, outputs.pred)
        out["diag_comp"] = (comp > prob_drop(outputs.probs, ex.random_comp_probs, outputs.pred) + DIAG_TIE).astype(np.float64)
        out["diag_suff"] = (suff < prob_drop(outputs.probs, ex.random_suff_probs, outputs.pred) - DIAG_TIE).astype(np.float64)
    for key in FLIP_METRICS:
        if getattr(ex, key) is not None:
            out[key] = np.asarray(getattr(ex, key), dtype=np.float64)
    return out


def _metric(key: str):
    def compute(outputs) -> float | None:
        values = per_example(outputs).get(key)
        return None if values is None else _mean(values)

    compute.__name__ = key
    compute.__doc__ = f"``{key}`` of an evaluation's outputs (None when not computed); see :mod:`unirex.metrics.extra`."
    return compute


soft_comp, soft_suff = _metric("soft_comp"), _metric("soft_suff")
sensitivity_max = _metric("sensitivity_max")
diag_comp, diag_suff = _metric("diag_comp"), _metric("diag_suff")
flip_words, flip_words_random = _metric("flip_words"), _metric("flip_words_random")

__all__ = ["DIAG_TIE", "EXTRA_METRIC_GROUPS", "FLIP_METRICS", "ExtraOutputs", "diag_comp", "diag_suff", "flip_words",
           "flip_words_random", "parse_extra_metrics", "per_example", "sensitivity_max", "soft_comp", "soft_suff"]
