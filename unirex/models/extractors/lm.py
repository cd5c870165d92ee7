"""``model.explainer_type=lm`` (DLM): a dedicated second encoder of the task LM's arch with a token head."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Callable

import torch
from torch import nn

from unirex.models.extractors.base import Extractor, TrainingScores, mask_scores, ordinal_scores
from unirex.models.heads import TokenHead
from unirex.rationale import candidates

if TYPE_CHECKING:
    from unirex.config import RunConfig


class LMExtractor(Extractor):
    """Encoder + :class:`~unirex.models.heads.TokenHead`.

    Args:
        encoder: a Hugging Face ``AutoModel`` (its own weights, not shared with the task LM).
        head: ``[B, L, H] -> [B, L, out_dim]``; ``out_dim > 1`` is L2E's ordinal classes.
    """

    kind = "lm"
    differentiable = True

    def __init__(self, encoder: nn.Module, head: TokenHead):
        super().__init__()
        self.encoder = encoder
        self.head = head
        self._takes_token_types = "token_type_ids" in inspect.signature(encoder.forward).parameters

    @classmethod
    def from_config(cls, cfg: "RunConfig", task_lm: nn.Module,
                    new_encoder: Callable[[], nn.Module]) -> tuple["LMExtractor", int]:
        encoder = new_encoder()  # before the head: the seeded order of new weights
        head = TokenHead.from_config(cfg.model, task_lm.hidden_size)
        return cls(encoder, head), head.out_dim

    def token_logits(self, batch: dict[str, torch.Tensor], task_lm: nn.Module | None = None, **kwargs) -> torch.Tensor:
        """Raw head outputs ``[B, L, out_dim]`` (not masked)."""
        kw = {"attention_mask": batch["attention_mask"]}
        if self._takes_token_types and batch.get("token_type_ids") is not None:
            kw["token_type_ids"] = batch["token_type_ids"]
        hidden = self.encoder(input_ids=batch["input_ids"], **kw).last_hidden_state
        return self.head(hidden)

    def scores(self, batch, task_lm=None, target=None, token_logits: torch.Tensor | None = None, **kwargs):
        """``[B, L]`` logits (``out_dim=1``) or centred expected class (L2E), 0 outside explainable."""
        out = self.token_logits(batch, task_lm) if token_logits is None else token_logits
        s = out.squeeze(-1) if out.shape[-1] == 1 else ordinal_scores(out)
        return mask_scores(s, candidates(batch))

    def training_scores(self, batch, task_lm, target=None, hidden_states=None, grad=None) -> TrainingScores:
        tl = self.token_logits(batch)
        return TrainingScores(self.scores(batch, task_lm, token_logits=tl), tl)
