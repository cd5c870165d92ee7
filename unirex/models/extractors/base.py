"""The one interface every rationale extractor implements.

An extractor maps a batch to one score per subword position::

    scores(batch, task_lm, target=None, **kw) -> [B, L] float tensor

and its callers ask it, not its type, what to do:

* :meth:`Extractor.training_scores` -> :class:`TrainingScores`: the scores a training step's losses read
  (with a graph where the extractor can carry one) and a learned head's raw token logits;
* :meth:`Extractor.explain`: the scores evaluation and Explain read, no graph kept;
* :meth:`Extractor.predict_and_explain`: the task LM's logits and the scores (one pass where it can);
* :meth:`Extractor.from_config`: the extractor a run config asks for (see :mod:`unirex.registry`).

Convention: scores are **0 outside explainable positions** (special tokens, query, padding), never
``-inf``, so they can be fed to losses and saved without NaNs; every consumer restricts itself to
``batch['explainable']`` (the top-k rule in :mod:`unirex.rationale` does). Higher = more important.
Learned extractors' scores are logits (plausibility uses them with ``BCEWithLogits``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import torch
from torch import nn

if TYPE_CHECKING:
    from unirex.config import RunConfig


@dataclass
class TrainingScores:
    """What :meth:`Extractor.training_scores` returns.

    Attributes:
        scores: ``[B, L]``, 0 outside explainable positions.
        token_logits: ``[B, L, out]`` raw outputs of a learned token head (what L2E and A2R read), else None.
        unmasked: ``[B, L]`` an attribution extractor's pooled scores before the explainable mask (what the
            reference protocol's plausibility loss reads on every non-padding token), else None.
    """

    scores: torch.Tensor
    token_logits: torch.Tensor | None = None
    unmasked: torch.Tensor | None = None


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
    """Base class. Subclasses set :attr:`kind` and implement :meth:`from_config` and :meth:`scores`.

    Attributes:
        kind: the extractor type (``attr_algo``, ``lm``, ``self_lm``, ``fresh``).
        differentiable: whether :meth:`scores` can carry a gradient to trainable parameters.
        reads_task_hidden: :meth:`training_scores` reads the task LM's hidden states of the training
            step's own forward pass (``hidden_states``), so the step computes them even when it has no
            full-input loss (A2R).
    """

    kind: str = ""
    differentiable: bool = False
    reads_task_hidden: bool = False

    @classmethod
    def from_config(cls, cfg: "RunConfig", task_lm: nn.Module,
                    new_encoder: Callable[[], nn.Module]) -> tuple["Extractor", int]:
        """The extractor of ``cfg.model`` for ``task_lm`` and its outputs per token (a head's classes, else 1).
        ``new_encoder()`` makes a second encoder of the task LM's arch."""
        raise NotImplementedError

    @property
    def name(self) -> str:
        """What this extractor is called in an explanation (the attribution algorithm, else :attr:`kind`)."""
        return self.kind

    def training_scores(self, batch: dict[str, torch.Tensor], task_lm: nn.Module, target: torch.Tensor | None = None,
                        hidden_states: torch.Tensor | None = None, grad: str | None = None) -> TrainingScores:
        """The scores a training step's losses read, with their graph.

        Args:
            target: the gold label (attribution extractors explain it).
            hidden_states: ``[B, L, H]`` of the step's task-LM forward pass, when it ran one.
            grad: how a loss trains through attributions (``model.attr_grad``), None when none does.
        """
        return TrainingScores(self.scores(batch, task_lm, target))

    def explain(self, batch: dict[str, torch.Tensor], task_lm: nn.Module,
                target: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, L]`` scores for evaluation (target None: the predicted class), no graph kept."""
        with torch.no_grad():
            return self.scores(batch, task_lm, target)

    def predict_and_explain(self, batch: dict[str, torch.Tensor],
                            task_lm: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """The task LM's logits ``[B, C]`` on the full input and :meth:`explain`'s scores, no graph kept."""
        scores = self.explain(batch, task_lm)
        with torch.no_grad():
            return task_lm(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids")), scores

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
