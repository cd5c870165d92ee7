"""A2R's attention predictor: a second task encoder reading the whole input, pooled by the generator.

The hidden states ``[B, L, H]`` are summed with weights ``softmax(token logits)`` over the
non-padding positions (the generator's per-token logits act as attention, special tokens and the
query included), then a linear layer gives logits ``[B, C]`` (no dropout, as UNIREX's
``a2r_task_head``). The main predictor of A2R is the task
LM reading only the top-k rationale; the two are tied by a divergence
(:func:`unirex.losses.a2r_divergence`), which is the only loss this predictor gets, as in UNIREX's
code. The softmax is what carries a gradient from that divergence into the generator.

Softmax domain: UNIREX takes the softmax over every position of its fixed-length rows, padding
included (padding scores 0 there, after ``attrs * attn_mask``). Rows here are padded to the longest
example of their batch, so padding is left out: an example's prediction must not depend on which
examples share its batch.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn


class A2RAttentionPredictor(nn.Module):
    """Args: encoder (its own ``AutoModel``), num_classes."""

    def __init__(self, encoder: nn.Module, num_classes: int):
        super().__init__()
        self.encoder = encoder
        self.classifier = nn.Linear(int(encoder.config.hidden_size), int(num_classes))
        self._takes_token_types = "token_type_ids" in inspect.signature(encoder.forward).parameters

    @staticmethod
    def attention(token_logits: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``[B, L]`` softmax of the generator's ``token_logits`` ``[B, L]`` over the non-padding
        positions (0 on padding)."""
        return token_logits.masked_fill(~attention_mask.bool(), float("-inf")).softmax(-1)

    def forward(self, batch: dict[str, torch.Tensor], token_logits: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, C]`` from ``batch`` and the generator's raw ``token_logits`` ``[B, L]``."""
        kw = {"attention_mask": batch["attention_mask"]}
        if self._takes_token_types and batch.get("token_type_ids") is not None:
            kw["token_type_ids"] = batch["token_type_ids"]
        hidden = self.encoder(input_ids=batch["input_ids"], **kw).last_hidden_state
        weights = self.attention(token_logits, batch["attention_mask"])
        pooled = (weights.unsqueeze(-1) * hidden).sum(1)
        return self.classifier(pooled)
