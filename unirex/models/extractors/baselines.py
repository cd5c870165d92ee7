"""Baseline "attributions" that do not read the model: ``gold``, ``inv``, ``rand`` (``[B, L]``), each
``(batch, seed) -> scores``: the scorers of :mod:`unirex.registry`."""

from __future__ import annotations

import torch

from unirex.models.extractors.base import mask_scores
from unirex.rationale import candidates


def gold_scores(batch: dict[str, torch.Tensor], seed: int = 0) -> torch.Tensor:
    """The gold rationale (1 on rationale subwords, 0 elsewhere); ``seed`` unused (the scorers' common signature)."""
    return mask_scores(batch["rationale"].float(), candidates(batch))


def inv_scores(batch: dict[str, torch.Tensor], seed: int = 0) -> torch.Tensor:
    """The inverse of the gold rationale on the positions a rationale may pick (:func:`unirex.rationale.candidates`:
    the document tokens, or under ``protocol=reference`` every token but [CLS] and [SEP], as UNIREX's
    ``1 - rationale``); ``seed`` unused."""
    return mask_scores(1.0 - batch["rationale"].float(), candidates(batch))


def rand_scores(batch: dict[str, torch.Tensor], seed: int = 0) -> torch.Tensor:
    """Uniform [0, 1) scores, a deterministic function of ``(seed, batch['index'][i], position)``:
    the same example gets the same scores whatever batch it is in."""
    expl = candidates(batch)
    b, length = expl.shape
    index = batch.get("index", torch.arange(b))
    rows = []
    for i in index.tolist():
        g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(i))
        rows.append(torch.rand(length, generator=g))
    return mask_scores(torch.stack(rows).to(expl.device), expl)
