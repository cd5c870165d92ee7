"""A2R's attention predictor: a second task encoder reading the whole input, pooled by the extractor.

The hidden states ``[B, L, H]`` are averaged with weights ``softmax(scores)`` over the explainable
positions (the extractor's scores act as attention), then dropout + linear give logits ``[B, C]``.
The main predictor of A2R is the task LM reading only the top-k rationale; the two are tied by a
Jensen-Shannon divergence (:func:`unirex.losses.js_divergence`). The softmax is what carries a
gradient from the A2R losses into the extractor.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn


class A2RAttentionPredictor(nn.Module):
    """Args: encoder (its own ``AutoModel``), num_classes, dropout."""

    def __init__(self, encoder: nn.Module, num_classes: int, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(int(encoder.config.hidden_size), int(num_classes))
        self._takes_token_types = "token_type_ids" in inspect.signature(encoder.forward).parameters

    def attention(self, scores: torch.Tensor, explainable: torch.Tensor) -> torch.Tensor:
        """``[B, L]`` softmax of ``scores`` over explainable positions (the first token for an example
        with none)."""
        expl = explainable.bool().clone()
        expl[:, 0] |= ~expl.any(1)
        return scores.masked_fill(~expl, float("-inf")).softmax(-1)

    def forward(self, batch: dict[str, torch.Tensor], scores: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, C]`` from ``batch`` and extractor ``scores`` ``[B, L]``."""
        kw = {"attention_mask": batch["attention_mask"]}
        if self._takes_token_types and batch.get("token_type_ids") is not None:
            kw["token_type_ids"] = batch["token_type_ids"]
        hidden = self.encoder(input_ids=batch["input_ids"], **kw).last_hidden_state
        weights = self.attention(scores, batch["explainable"])
        pooled = (weights.unsqueeze(-1) * hidden).sum(1)
        return self.classifier(self.dropout(pooled))
