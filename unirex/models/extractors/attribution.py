"""``model.explainer_type=attr_algo``: token scores from an attribution algorithm of the task LM.

``model.attr_algo`` picks the algorithm (:mod:`.captum_algos`, or the baselines ``gold``, ``inv``,
``rand``); ``model.attr_pooling`` reduces the hidden dimension of the ``[B, L, H]`` attributions:
``sum`` (AA-Sum) or ``mlp`` (AA-MLP: a learned MLP ``H -> 1``).

When a loss trains through the attributions (plausibility on AA-Sum / AA-MLP), ``grad`` says how
(``model.attr_grad``):

* ``"detach"`` (UNIREX's behaviour, the presets' default): Captum's attributions with the gradient
  factor a constant and the input factor differentiable, so the loss reaches the word-embedding
  matrix (``input-x-gradient``, ``integrated-gradients``, ``deeplift``) and AA-MLP's MLP, not the
  rest of the task LM (:func:`.captum_algos.captum_attributions` with ``attach_inputs``);
* ``"create_graph"``: ``input-x-gradient`` and ``gradient`` through the hand-written double-backward
  versions in :mod:`.gradients` (numerically equal to Captum's), so the loss reaches every layer of
  the task LM; other algorithms fall back to ``"detach"``.

:data:`GRAD_ALGOS` lists, per mode, the algorithms whose summed scores carry a gradient at all.
"""

from __future__ import annotations

import torch
from torch import nn

from unirex.models.extractors.base import Extractor, mask_scores
from unirex.models.extractors.baselines import gold_scores, inv_scores, rand_scores
from unirex.models.extractors.captum_algos import CAPTUM_ALGOS, captum_attributions
from unirex.models.extractors.gradients import input_x_gradient, predicted_class, saliency
from unirex.models.heads import make_mlp

BASELINES = {"gold": gold_scores, "inv": inv_scores}
DIFFERENTIABLE = {"input-x-gradient": input_x_gradient, "gradient": saliency}
#: per ``model.attr_grad``: the algorithms whose ``sum``-pooled scores carry a gradient
GRAD_ALGOS = {"detach": ("input-x-gradient", "integrated-gradients", "deeplift"),
              "create_graph": ("input-x-gradient", "gradient", "integrated-gradients", "deeplift")}


class AttributionExtractor(Extractor):
    """Attribution-based extractor.

    Args:
        algo: ``model.attr_algo``.
        pooling: ``sum`` or ``mlp``.
        hidden_size: the task LM's ``H`` (needed for ``mlp``).
        mlp_hidden_dim / mlp_hidden_layers: AA-MLP's MLP.
        ig_steps / internal_batch_size / return_convergence_delta: integrated gradients' settings.
        seed: for ``rand`` and ``gradient-shap``.

    After each :meth:`scores` call with ``return_convergence_delta``, :attr:`last_convergence_delta`
    holds the ``[B]`` deltas (else None).
    """

    kind = "attr_algo"

    def __init__(self, algo: str = "input-x-gradient", pooling: str = "sum", hidden_size: int | None = None,
                 mlp_hidden_dim: int = 2048, mlp_hidden_layers: int = 2, ig_steps: int = 3,
                 internal_batch_size: int | None = None, return_convergence_delta: bool = False, seed: int = 0):
        super().__init__()
        if algo not in CAPTUM_ALGOS and algo not in ("gold", "inv", "rand"):
            raise ValueError(f"unknown attribution algorithm {algo!r}")
        self.algo, self.pooling = algo, pooling
        self.ig_steps, self.internal_batch_size = ig_steps, internal_batch_size
        self.return_convergence_delta = return_convergence_delta
        self.seed = seed
        self.last_convergence_delta: torch.Tensor | None = None
        self.pool_mlp: nn.Module | None = None
        if pooling == "mlp":
            if hidden_size is None:
                raise ValueError("attr_pooling=mlp needs hidden_size")
            self.pool_mlp = make_mlp(hidden_size, 1, mlp_hidden_dim, mlp_hidden_layers)
        elif pooling != "sum":
            raise ValueError(f"attr_pooling must be sum or mlp, not {pooling!r}")
        self.differentiable = pooling == "mlp" or algo in DIFFERENTIABLE

    @property
    def is_baseline(self) -> bool:
        return self.algo in ("gold", "inv", "rand")

    def attributions(self, batch: dict[str, torch.Tensor], task_lm: nn.Module, target: torch.Tensor | None = None,
                     grad: str | None = None) -> torch.Tensor:
        """Unpooled attributions ``[B, L, H]`` (not for the baselines).

        ``grad``: None (detached), ``"detach"`` or ``"create_graph"`` (see the module docstring).
        """
        if self.is_baseline:
            raise ValueError(f"attr_algo={self.algo} has no hidden-dimension attributions")
        if grad not in (None, "detach", "create_graph"):
            raise ValueError(f"grad must be None, 'detach' or 'create_graph', not {grad!r}")
        if getattr(task_lm, "num_choices", None):  # multiple choice: each row attributes its own choice's
            target = torch.zeros_like(batch["input_ids"][:, 0])  # single logit, as UNIREX (targets = zeros)
        elif target is None:
            target = predicted_class(task_lm, batch)
        self.last_convergence_delta = None
        if grad == "create_graph" and self.algo in DIFFERENTIABLE:
            return DIFFERENTIABLE[self.algo](task_lm, batch, target, create_graph=True)
        attrs, delta = captum_attributions(self.algo, task_lm, batch, target, self.ig_steps, self.internal_batch_size,
                                           self.return_convergence_delta, self.seed, attach_inputs=grad is not None)
        self.last_convergence_delta = delta
        return attrs

    def scores(self, batch: dict[str, torch.Tensor], task_lm: nn.Module, target: torch.Tensor | None = None,
               grad: str | None = None, **kwargs) -> torch.Tensor:
        """``[B, L]`` scores, 0 outside explainable positions.

        Args:
            grad: None: the attributions are detached (AA-MLP's MLP still gets a gradient);
                ``"detach"`` / ``"create_graph"``: see the module docstring.
        """
        if self.algo in BASELINES:
            return BASELINES[self.algo](batch)
        if self.algo == "rand":
            return rand_scores(batch, self.seed)
        attrs = self.attributions(batch, task_lm, target, grad=grad)
        pooled = attrs.sum(-1) if self.pool_mlp is None else self.pool_mlp(attrs).squeeze(-1)
        return mask_scores(pooled, batch["explainable"])
