"""FRESH's rationale: the input was pruned to a teacher's binary top-k before the model saw it.

A FRESH run's rows keep only [CLS] and the teacher's top-k tokens (:func:`unirex.objective.fresh_keep`,
applied to whole splits by :func:`unirex.teacher.fresh_table`), so its rationale is that binary
selection, as in UNIREX (``attrs = fresh_rationale``): 1 on every explainable token still in the
input, 0 elsewhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import torch
from torch import nn

from unirex.models.extractors.base import Extractor
from unirex.rationale import candidates

if TYPE_CHECKING:
    from unirex.config import RunConfig


class FreshExtractor(Extractor):
    """Scores ``[B, L]``: 1 on explainable, non-padding positions (the teacher's kept tokens), else 0."""

    kind = "fresh"

    @classmethod
    def from_config(cls, cfg: "RunConfig", task_lm: nn.Module,
                    new_encoder: Callable[[], nn.Module]) -> tuple["FreshExtractor", int]:
        return cls(), 1

    def scores(self, batch: dict[str, torch.Tensor], task_lm=None, target=None, **kwargs) -> torch.Tensor:
        return candidates(batch).float()
