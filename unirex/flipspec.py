"""The flip search's settings and results (:mod:`unirex.counterfactual` runs it): plain records, no torch,
so the application layer can name them without loading the model code."""

from __future__ import annotations

import math
from dataclasses import dataclass

from unirex.errors import UnirexError

EXTRACTOR, RANDOM = "extractor", "random"
ORDERS = (EXTRACTOR, RANDOM)
REMOVE, MASK = "remove", "mask"
EDITS = (REMOVE, MASK)


@dataclass(frozen=True)
class FlipOptions:
    """How the flip search runs. ``max_fraction`` and ``max_words`` cap the edits per example (the
    smaller wins, at least one word); ``seed`` seeds the random order; ``edit``: :data:`EDITS`."""

    max_fraction: float = 0.5
    max_words: int = 64
    seed: int = 0
    edit: str = REMOVE
    chunk_size: int = 64

    def __post_init__(self):
        if not 0 < float(self.max_fraction) <= 1:
            raise UnirexError(f"the flip search's word fraction cap must be in (0, 1], got {self.max_fraction}")
        if int(self.max_words) < 1:
            raise UnirexError(f"the flip search's word cap must be >= 1, got {self.max_words}")
        if self.edit not in EDITS:
            raise UnirexError(f"unknown flip edit '{self.edit}': use one of {', '.join(EDITS)}")

    def cap(self, n_words: int) -> int:
        """The most words edited in an example of ``n_words`` words."""
        if n_words <= 0:
            return 0
        return max(1, min(n_words, int(self.max_words), math.ceil(float(self.max_fraction) * n_words)))


@dataclass(frozen=True)
class FlipResult:
    """One example's search in one order. Word indices run over the concatenated documents' words."""

    order: str  # extractor | random
    flipped: bool
    n_edits: int | None  # words edited when the prediction flipped (None: no flip within the cap)
    n_words: int  # document words the model read (the candidates)
    cap: int  # the most words tried
    edited: tuple[int, ...]  # the words edited, in order (all ``cap`` tried ones when it did not flip)
    base_label: int  # the unedited input's predicted class
    base_probs: tuple[float, ...]
    label: int  # the predicted class after the edits (``base_label`` when it did not flip)
    probs: tuple[float, ...]  # after the edits (the last tried prefix when it did not flip)

    @property
    def fraction(self) -> float:
        """Edited words over read words when it flipped; 1.0 when it did not (the metric's convention)."""
        return self.n_edits / self.n_words if self.flipped and self.n_words else 1.0


__all__ = ["EDITS", "EXTRACTOR", "FlipOptions", "FlipResult", "MASK", "ORDERS", "RANDOM", "REMOVE"]
