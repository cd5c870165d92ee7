"""Attention maps as token scores: ``attention`` and ``attention-rollout`` (token explainers of
:mod:`unirex.registry`, ``(task_lm, batch, target, settings) -> [B, L]``).

* ``attention``: the last layer's attention of the first token ([CLS]) to every token, averaged over the
  heads: ``mean_h A_L[h, 0, :]``.
* ``attention-rollout`` (Abnar & Zuidema, 2020, "Quantifying Attention Flow in Transformers"): each layer's
  attention averaged over the heads, the residual connection added as the identity and the rows
  re-normalised, ``Â_l = norm(0.5 * mean_h A_l + 0.5 * I)``; the layers multiplied from the first,
  ``R = Â_L ... Â_2 Â_1``; the scores are the [CLS] row ``R[0, :]``.

Both explain the model, not a class (``target`` is unused), and both are differentiable w.r.t. the task
LM's parameters: with ``settings.keep_graph`` a loss (plausibility) trains through them, as attention
supervision does. Positions that are not rationale candidates score 0 (:func:`unirex.models.extractors.base.mask_scores`).
"""

from __future__ import annotations

import torch
from torch import nn

from unirex.models.extractors.base import mask_scores
from unirex.rationale import candidates
from unirex.registry import ExplainerSettings


def _attentions(task_lm: nn.Module, batch: dict[str, torch.Tensor], keep_graph: bool) -> tuple[torch.Tensor, ...]:
    with torch.enable_grad() if keep_graph else torch.no_grad():
        return task_lm.attentions(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))


def rollout(attentions: tuple[torch.Tensor, ...] | list[torch.Tensor]) -> torch.Tensor:
    """``[B, L, L]`` attention rollout of per-layer attentions ``[B, heads, L, L]`` (module docstring)."""
    eye = torch.eye(attentions[0].shape[-1], dtype=attentions[0].dtype, device=attentions[0].device)
    out = None
    for a in attentions:
        a = 0.5 * a.mean(1) + 0.5 * eye
        a = a / a.sum(-1, keepdim=True)
        out = a if out is None else a @ out
    return out


def attention_scores(task_lm: nn.Module, batch: dict[str, torch.Tensor], target: torch.Tensor | None,
                     settings: ExplainerSettings) -> torch.Tensor:
    """``attention``: the last layer's [CLS] row averaged over the heads."""
    last = _attentions(task_lm, batch, settings.keep_graph)[-1]
    return mask_scores(last.mean(1)[:, 0].float(), candidates(batch))


def rollout_scores(task_lm: nn.Module, batch: dict[str, torch.Tensor], target: torch.Tensor | None,
                   settings: ExplainerSettings) -> torch.Tensor:
    """``attention-rollout``: the [CLS] row of :func:`rollout`."""
    atts = _attentions(task_lm, batch, settings.keep_graph)
    return mask_scores(rollout([a.float() for a in atts])[:, 0], candidates(batch))


__all__ = ["attention_scores", "rollout", "rollout_scores"]
