"""An example metric plugin: one module that registers a metric, computes it in every evaluation and
has it shown by every front (``runs``, ``show``, ``compare``, the Runs and Compare tabs, the Hub card).

``rationale_gap``: how much more of the predicted label's probability the rationale alone keeps than the
input without it, ``p(ŷ | r) - p(ŷ | x \\ r)``, averaged over the examples and the top-k bins (higher is
better; for a model that predicts from the full input it equals ``comp_aopc - suff_aopc``).

Use it by naming it in ``UNIREX_PLUGINS=tests.plugins.rationale_gap`` (a module on the Python path; the
CLI, the app and the remote workers import it at start), or import it in a script.
"""

from __future__ import annotations

import numpy as np

from unirex.metrics.registry import Direction, Family, Headline
from unirex.registry import MetricSpec, register_metric


def rationale_gap(outputs) -> float | None:
    """From the evaluator's outputs (:class:`unirex.evaluate.EvalOutputs`): ``[N, K, C]`` probabilities
    with only the rationale kept (``suff_probs``) and with it deleted (``comp_probs``), for each bin."""
    if len(outputs) == 0:
        return None
    rows = np.arange(len(outputs))
    only = outputs.suff_probs[rows, :, outputs.pred]  # [N, K]
    without = outputs.comp_probs[rows, :, outputs.pred]
    return float((only - without).mean())


SPEC = register_metric(MetricSpec(
    "rationale_gap", "rationale gap", Family.FAITHFULNESS, Direction.HIGHER, headline=Headline.FULL,
    title="Rationale gap (kept minus deleted)", compute=rationale_gap), replace=True)
