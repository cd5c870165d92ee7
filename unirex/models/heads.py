"""Token heads for the learned extractors (``model.expl_head_type=linear|mlp``) and the MLP builder
shared with AA-MLP (``model.attr_pooling=mlp``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from unirex.config import ModelConfig


def make_mlp(in_dim: int, out_dim: int, hidden_dim: int, hidden_layers: int, dropout: float = 0.0) -> nn.Sequential:
    """``hidden_layers`` x (Linear -> ReLU -> Dropout) of width ``hidden_dim``, then Linear to ``out_dim``
    (``hidden_layers=0`` is a single linear layer)."""
    layers: list[nn.Module] = []
    d = in_dim
    for _ in range(hidden_layers):
        layers += [nn.Linear(d, hidden_dim), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        d = hidden_dim
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


class TokenHead(nn.Module):
    """Per-token scores: ``[B, L, H] -> [B, L, out_dim]``.

    Args:
        in_dim: ``H``.
        out_dim: 1 (a score, used as a logit) or ``model.l2e_num_classes`` (L2E's ordinal classes).
        head_type: ``linear`` or ``mlp``.
        hidden_dim / hidden_layers / dropout: of the MLP.
    """

    def __init__(self, in_dim: int, out_dim: int = 1, head_type: str = "linear", hidden_dim: int = 2048,
                 hidden_layers: int = 2, dropout: float = 0.0):
        super().__init__()
        self.head_type = head_type
        if head_type == "linear":
            self.net = nn.Sequential(nn.Linear(in_dim, out_dim))
        elif head_type == "mlp":
            self.net = make_mlp(in_dim, out_dim, hidden_dim, hidden_layers, dropout)
        else:
            raise ValueError(f"head_type must be linear or mlp, not {head_type!r}")

    @classmethod
    def from_config(cls, m: "ModelConfig", in_dim: int) -> "TokenHead":
        """The head ``model.expl_head_*`` asks for, with ``model.l2e_num_classes`` outputs for L2E, else 1."""
        return cls(in_dim, m.l2e_num_classes if m.l2e else 1, m.expl_head_type, m.expl_head_mlp_hidden_dim,
                   m.expl_head_mlp_hidden_layers, m.expl_head_mlp_dropout)

    @property
    def out_dim(self) -> int:
        return self.net[-1].out_features

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.net(hidden)
