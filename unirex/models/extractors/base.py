"""The one interface every rationale extractor implements.

An extractor maps a batch to one score per subword position::

    scores(batch, task_lm, target=None, **kw) -> [B, L] float tensor

Convention: scores are **0 outside explainable positions** (special tokens, query, padding), never
``-inf``, so they can be fed to losses and saved without NaNs; every consumer restricts itself to
``batch['explainable']`` (the top-k rule in :mod:`unirex.rationale` does). Higher = more important.
Learned extractors' scores are logits (plausibility uses them with ``BCEWithLogits``).
"""

from __future__ import annotations

import torch
from torch import nn


def mask_scores(scores: torch.Tensor, explainable: torch.Tensor) -> torch.Tensor:
    """``scores`` ``[B, L]`` with every non-explainable position set to 0 (gradient kept elsewhere)."""
    return torch.where(explainable.bool(), scores, torch.zeros_like(scores))


def ordinal_scores(logits: torch.Tensor) -> torch.Tensor:
    """Token score of an ordinal ``C``-class head (L2E), as UNIREX's code reads it: the most likely
    class minus ``int(C / 2)`` (``-2 .. 2`` for 5 classes). ``[B, L, C] -> [B, L]`` float, with no
    gradient (an argmax), so a plausibility loss on these scores trains nothing, as in UNIREX."""
    c = logits.shape[-1]
    return (logits.argmax(-1) - int(c / 2)).to(logits.dtype)


class Extractor(nn.Module):
    """Base class. Subclasses set :attr:`kind` and implement :meth:`scores`.

    Attributes:
        kind: the ``model.explainer_type`` value (``attr_algo``, ``lm``, ``self_lm``).
        differentiable: whether :meth:`scores` can carry a gradient to trainable parameters.
    """

    kind: str = ""
    differentiable: bool = False

    def scores(self, batch: dict[str, torch.Tensor], task_lm: nn.Module, target: torch.Tensor | None = None,
               **kwargs) -> torch.Tensor:
        """``[B, L]`` token scores, 0 outside ``batch['explainable']``.

        Args:
            batch: a collated batch (see :mod:`unirex.data.tensors`).
            task_lm: the :class:`~unirex.models.task_lm.TaskLM` being explained.
            target: ``[B]`` class to explain; ``None`` means the task LM's predicted class (what
                evaluation uses). Training passes the gold label. Learned extractors ignore it.
        """
        raise NotImplementedError

    def forward(self, batch, task_lm, target=None, **kwargs):  # noqa: D401 - alias
        return self.scores(batch, task_lm, target, **kwargs)
