"""``model.explainer_type=self_lm`` (SLM): a token head on the task LM's own encoder.

One forward pass of the task LM gives both the prediction and the rationale: pass the hidden states
of that pass as ``hidden_states`` (what :func:`unirex.objective.compute_losses` does); without them
the extractor runs the task LM's encoder itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import torch
from torch import nn

from unirex.models.extractors.base import Extractor, TrainingScores, mask_scores, ordinal_scores
from unirex.models.heads import TokenHead
from unirex.rationale import candidates

if TYPE_CHECKING:
    from unirex.config import RunConfig


class SelfLMExtractor(Extractor):
    """A :class:`~unirex.models.heads.TokenHead` over the task LM's last hidden states."""

    kind = "self_lm"
    differentiable = True
    reads_task_hidden = True

    def __init__(self, head: TokenHead):
        super().__init__()
        self.head = head

    @classmethod
    def from_config(cls, cfg: "RunConfig", task_lm: nn.Module,
                    new_encoder: Callable[[], nn.Module]) -> tuple["SelfLMExtractor", int]:
        head = TokenHead.from_config(cfg.model, task_lm.hidden_size)
        return cls(head), head.out_dim

    def token_logits(self, batch: dict[str, torch.Tensor], task_lm: nn.Module,
                     hidden_states: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        """Raw head outputs ``[B, L, out_dim]``; ``hidden_states`` ``[B, L, H]`` from ``task_lm.encode``."""
        if hidden_states is None:
            hidden_states = task_lm.encode(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
        return self.head(hidden_states)

    def scores(self, batch, task_lm, target=None, hidden_states: torch.Tensor | None = None,
               token_logits: torch.Tensor | None = None, **kwargs):
        """``[B, L]`` logits (``out_dim=1``) or centred expected class (L2E), 0 outside explainable."""
        out = self.token_logits(batch, task_lm, hidden_states) if token_logits is None else token_logits
        s = out.squeeze(-1) if out.shape[-1] == 1 else ordinal_scores(out)
        return mask_scores(s, candidates(batch))

    def training_scores(self, batch, task_lm, target=None, hidden_states=None, grad=None) -> TrainingScores:
        tl = self.token_logits(batch, task_lm, hidden_states=hidden_states)
        return TrainingScores(self.scores(batch, task_lm, token_logits=tl), tl)

    def predict_and_explain(self, batch, task_lm) -> tuple[torch.Tensor, torch.Tensor]:
        """One pass of the task LM gives both the logits and the hidden states the head reads."""
        with torch.no_grad():
            hidden = task_lm.encode(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
            return task_lm.classify(hidden), self.scores(batch, task_lm, hidden_states=hidden)
