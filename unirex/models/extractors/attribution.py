"""``model.explainer_type=attr_algo``: token scores from an attribution algorithm of the task LM.

``model.attr_algo`` picks the algorithm: a spec of :mod:`unirex.registry` (a Captum class run by
:mod:`.captum_algos`, a model-free scorer: the baselines ``gold``, ``inv``, ``rand``, or a token explainer
that reads the model and gives token scores itself: ``lime``, ``kernel-shap``, ``occlusion`` in
:mod:`.perturbation`, ``attention``, ``attention-rollout`` in :mod:`.attention`); ``model.attr_pooling``
reduces the hidden dimension of a Captum class's ``[B, L, H]`` attributions: ``sum`` (AA-Sum) or ``mlp``
(AA-MLP: a learned MLP ``H -> 1``); scorers and token explainers take ``sum`` only.

When a loss trains through the attributions (plausibility on AA-Sum / AA-MLP), ``grad`` says how
(``model.attr_grad``):

* ``"detach"`` (UNIREX's behaviour, the presets' default): Captum's attributions with the gradient
  factor a constant and the input factor differentiable, so the loss reaches the word-embedding
  matrix (``input-x-gradient``, ``integrated-gradients``, ``deeplift``) and AA-MLP's MLP, not the
  rest of the task LM (:func:`.captum_algos.captum_attributions` with ``attach_inputs``);
* ``"create_graph"``: the algorithms whose spec has a ``double_backward`` (``input-x-gradient`` and
  ``gradient``: the hand-written versions in :mod:`.gradients`, numerically equal to Captum's), so the
  loss reaches every layer of the task LM; other algorithms fall back to ``"detach"``.

Each spec's ``differentiable`` lists the modes in which its summed scores carry a gradient at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import torch
from torch import nn

from unirex.models.extractors.base import Extractor, TrainingScores, mask_scores
from unirex.models.extractors.captum_algos import captum_attributions
from unirex.models.extractors.gradients import predicted_class
from unirex.models.heads import make_mlp
from unirex.protocol import is_reference
from unirex.rationale import candidates
from unirex.registry import ExplainerSettings, get_attribution

if TYPE_CHECKING:
    from unirex.config import RunConfig


class AttributionExtractor(Extractor):
    """Attribution-based extractor.

    Args:
        algo: ``model.attr_algo``.
        pooling: ``sum`` or ``mlp``.
        hidden_size: the task LM's ``H`` (needed for ``mlp``).
        mlp_hidden_dim / mlp_hidden_layers: AA-MLP's MLP.
        ig_steps / internal_batch_size / return_convergence_delta: integrated gradients' settings.
        seed: for ``rand``, ``gradient-shap``, ``lime`` and ``kernel-shap``.
        n_samples: ``model.attr_n_samples`` (LIME, KernelSHAP, and a Captum class whose ``attribute()`` takes
            ``n_samples`` unless its spec fixes it); None: the algorithm's default.
        occlusion_window: ``model.occlusion_window``, in words.
        baseline: which positions the pad baseline of integrated gradients (and the other baseline algorithms)
            keeps: ``explainable`` (``eraser``) or ``reference`` (:data:`.captum_algos.BASELINES`).

    After each :meth:`scores` call with ``return_convergence_delta``, :attr:`last_convergence_delta`
    holds the ``[B]`` deltas (else None).
    """

    kind = "attr_algo"

    def __init__(self, algo: str = "input-x-gradient", pooling: str = "sum", hidden_size: int | None = None,
                 mlp_hidden_dim: int = 2048, mlp_hidden_layers: int = 2, ig_steps: int = 3,
                 internal_batch_size: int | None = None, return_convergence_delta: bool = False, seed: int = 0,
                 baseline: str = "explainable", n_samples: int | None = None, occlusion_window: int = 1):
        super().__init__()
        self.baseline = baseline  # which positions the baseline keeps (captum_algos.BASELINES)
        self.spec = get_attribution(algo)
        self.algo, self.pooling = algo, pooling
        self.ig_steps, self.internal_batch_size = ig_steps, internal_batch_size
        self.return_convergence_delta = return_convergence_delta
        self.seed = seed
        self.n_samples, self.occlusion_window = n_samples, occlusion_window
        self.last_convergence_delta: torch.Tensor | None = None
        self.pool_mlp: nn.Module | None = None
        if pooling == "mlp":
            if hidden_size is None:
                raise ValueError("attr_pooling=mlp needs hidden_size")
            self.pool_mlp = make_mlp(hidden_size, 1, mlp_hidden_dim, mlp_hidden_layers)
        elif pooling != "sum":
            raise ValueError(f"attr_pooling must be sum or mlp, not {pooling!r}")
        if pooling == "mlp" and self.spec.token_level:
            raise ValueError(f"attr_algo={algo} gives token scores directly: attr_pooling must be sum")
        self.differentiable = (pooling == "mlp" or self.spec.double_backward is not None
                               or (self.spec.token_explainer is not None and bool(self.spec.differentiable)))

    @classmethod
    def from_config(cls, cfg: "RunConfig", task_lm: nn.Module,
                    new_encoder: Callable[[], nn.Module]) -> tuple["AttributionExtractor", int]:
        m = cfg.model
        return cls(m.attr_algo, m.attr_pooling, task_lm.hidden_size, m.attr_mlp_hidden_dim, m.attr_mlp_hidden_layers,
                   m.ig_steps, m.internal_batch_size, m.return_convergence_delta, seed=cfg.seed,
                   baseline="reference" if is_reference(cfg) else "explainable", n_samples=m.attr_n_samples,
                   occlusion_window=m.occlusion_window), 1

    @property
    def name(self) -> str:
        return self.algo

    @property
    def is_baseline(self) -> bool:
        """A model-free scorer (``gold``, ``inv``, ``rand``)."""
        return self.spec.model_free

    def attributions(self, batch: dict[str, torch.Tensor], task_lm: nn.Module, target: torch.Tensor | None = None,
                     grad: str | None = None) -> torch.Tensor:
        """Unpooled attributions ``[B, L, H]`` (not for the baselines).

        ``grad``: None (detached), ``"detach"`` or ``"create_graph"`` (see the module docstring).
        """
        if self.spec.token_level:
            raise ValueError(f"attr_algo={self.algo} has no hidden-dimension attributions")
        if grad not in (None, "detach", "create_graph"):
            raise ValueError(f"grad must be None, 'detach' or 'create_graph', not {grad!r}")
        target = self._target(batch, task_lm, target)
        self.last_convergence_delta = None
        twice = self.spec.twice_differentiable()
        if grad == "create_graph" and twice is not None:
            return twice(task_lm, batch, target, create_graph=True)
        attrs, delta = captum_attributions(self.algo, task_lm, batch, target, self.ig_steps, self.internal_batch_size,
                                           self.return_convergence_delta, self.seed, attach_inputs=grad is not None,
                                           baseline=self.baseline, n_samples=self.n_samples)
        self.last_convergence_delta = delta
        return attrs

    @staticmethod
    def _target(batch, task_lm, target):
        """``[B]`` class to explain: ``target``, else the predicted class; multiple choice: each row explains
        its own choice's single logit, as UNIREX (targets = zeros)."""
        if getattr(task_lm, "num_choices", None):
            return torch.zeros_like(batch["input_ids"][:, 0])
        return predicted_class(task_lm, batch) if target is None else target

    def _token_scores(self, batch, task_lm, target, grad) -> torch.Tensor:
        """``[B, L]`` scores of a token explainer; the graph is kept only when a loss trains through them
        and the algorithm is differentiable. ``target`` None reaches it as None (the attention maps need no
        class: no extra forward pass for them)."""
        settings = ExplainerSettings(n_samples=self.n_samples, internal_batch_size=self.internal_batch_size,
                                     window=self.occlusion_window, seed=self.seed,
                                     keep_graph=grad is not None and grad in self.spec.differentiable)
        if getattr(task_lm, "num_choices", None):
            target = self._target(batch, task_lm, target)
        return self.spec.explain_tokens(task_lm, batch, target, settings)  # None: the explainer predicts if it needs to

    def scores(self, batch: dict[str, torch.Tensor], task_lm: nn.Module, target: torch.Tensor | None = None,
               grad: str | None = None, **kwargs) -> torch.Tensor:
        """``[B, L]`` scores, 0 outside explainable positions.

        Args:
            grad: None: the attributions are detached (AA-MLP's MLP still gets a gradient);
                ``"detach"`` / ``"create_graph"``: see the module docstring.
        """
        if self.spec.model_free:
            return self.spec.score(batch, self.seed)
        if self.spec.token_explainer is not None:
            return mask_scores(self._token_scores(batch, task_lm, target, grad), candidates(batch))
        return mask_scores(self._pooled(batch, task_lm, target, grad), candidates(batch))

    def _pooled(self, batch, task_lm, target, grad) -> torch.Tensor:
        """``[B, L]`` pooled attributions at every position (no mask)."""
        attrs = self.attributions(batch, task_lm, target, grad=grad)
        return attrs.sum(-1) if self.pool_mlp is None else self.pool_mlp(attrs).squeeze(-1)

    def training_scores(self, batch, task_lm, target=None, hidden_states=None, grad=None) -> TrainingScores:
        if self.spec.model_free:
            return TrainingScores(self.spec.score(batch, self.seed))
        if self.spec.token_explainer is not None:
            return TrainingScores(self.scores(batch, task_lm, target, grad))
        pooled = self._pooled(batch, task_lm, target, grad)
        return TrainingScores(mask_scores(pooled, candidates(batch)), unmasked=pooled)

    def explain(self, batch, task_lm, target=None) -> torch.Tensor:
        """Attributions need gradients: computed with them, returned detached."""
        return self.scores(batch, task_lm, target).detach()
