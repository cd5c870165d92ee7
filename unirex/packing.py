"""Run many token subsets of a batch, each at its own length: delete, sort by length, chunk, re-pack.

Both the evaluator (ERASER's comprehensiveness / sufficiency inputs) and training (the comp/suff
variants with ``model.rationale_removal=drop``, A2R's rationale-only input) describe the inputs they
need as rows of token tensors ``[R, L]`` plus a boolean *keep* matrix ``[R, L]``: row ``r`` is the
input made of the tokens where ``keep[r]`` is True. :func:`run_packed` runs them all:

1. rows are sorted by their kept length (stable);
2. :func:`plan_chunks` cuts the sorted rows into contiguous chunks minimising the padded cost
   ``sum(overhead + rows * longest)`` (at most ``chunk_size`` rows each);
3. each chunk is re-packed with :func:`unirex.rationale.repack` (the deleted tokens cut out, the kept
   ones shifted left, padded to the chunk's own longest row) and handed to ``forward``;
4. the outputs are put back in row order (``torch.cat`` + an index: differentiable, so training
   back-propagates through it).

What travels with the tokens is whatever the caller puts in ``rows``: the evaluator passes
``input_ids`` and ``token_type_ids`` only (the re-packed sequence gets fresh, contiguous positions, as
ERASER defines removal); training adds the original ``position_ids`` (the dropped tokens leave gaps,
which makes the pass equal to the attention-masked full-length one, see
:mod:`unirex.models.removal`) and, for the straight-through relaxation, per-token float factors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from unirex.rationale import repack

#: fixed cost of one forward pass, in padded positions, used to choose chunk boundaries
FORWARD_OVERHEAD = 32


@dataclass(frozen=True)
class PackedCost:
    """What :func:`run_packed` ran: forward passes, and positions through the encoder (padding included)."""

    forward_passes: int
    positions: int


def plan_chunks(sorted_lengths: np.ndarray, chunk_size: int, overhead: int = FORWARD_OVERHEAD) -> list[tuple[int, int]]:
    """Cut rows sorted by ascending length into contiguous chunks ``[(start, end), ...]`` of at most
    ``chunk_size`` rows minimising ``sum(overhead + rows * longest)`` over chunks (exact, by dynamic
    programming): the padded cost follows the tokens actually present. Depends only on the lengths."""
    n = len(sorted_lengths)
    chunk_size = max(1, int(chunk_size))
    lengths = np.asarray(sorted_lengths, dtype=np.float64)
    best = np.full(n + 1, np.inf)
    best[0] = 0.0
    cut = np.zeros(n + 1, dtype=np.int64)
    for j in range(1, n + 1):
        i = np.arange(max(0, j - chunk_size), j)
        cost = best[i] + overhead + (j - i) * lengths[j - 1]
        a = int(np.argmin(cost))
        best[j], cut[j] = cost[a], i[a]
    out, j = [], n
    while j > 0:
        out.append((int(cut[j]), j))
        j = int(cut[j])
    return out[::-1]


def run_packed(forward: Callable[[dict[str, torch.Tensor]], torch.Tensor], rows: dict[str, torch.Tensor],
               keep: torch.Tensor, chunk_size: int | None = None, pad_token_id: int = 0,
               overhead: int = FORWARD_OVERHEAD) -> tuple[torch.Tensor, PackedCost]:
    """Run every row of ``keep`` through ``forward``, deleted and re-packed, in length-sorted chunks.

    Args:
        forward: ``forward(packed) -> [n, ...]`` for one chunk of ``n`` rows; ``packed`` holds every
            entry of ``rows`` re-packed to ``[n, l]`` (``l`` = the chunk's longest kept row) and
            ``attention_mask`` (1 on the kept tokens, 0 on the padding).
        rows: ``{name: [R, L] tensor}``, one row per input (``input_ids`` is padded with
            ``pad_token_id``, every other entry with 0, see :func:`unirex.rationale.repack`).
        keep: ``[R, L]`` bool, the tokens of each input (padding must be False).
        chunk_size: at most this many rows per forward pass (None: no bound, the plan alone decides).
        pad_token_id: padding of ``input_ids``.
        overhead: fixed cost of a forward pass in positions, for :func:`plan_chunks`.

    Returns:
        the outputs ``[R, ...]`` in row order, and the :class:`PackedCost`.
    """
    keep = keep.bool()
    R = keep.shape[0]
    if R == 0:
        raise ValueError("run_packed needs at least one row")
    sorted_lengths, order = torch.sort(keep.sum(dim=1), stable=True)
    outs, n_forward, positions = [], 0, 0
    for start, end in plan_chunks(sorted_lengths.cpu().numpy(), chunk_size or R, overhead):
        idx = order[start:end]
        k = keep[idx]
        packed = repack({**{name: value[idx] for name, value in rows.items()}, "attention_mask": k.long()}, k,
                        pad_token_id)
        outs.append(forward(packed))
        n_forward += 1
        positions += packed["attention_mask"].numel()
    out = torch.cat(outs)
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(R, device=order.device)
    return out[inverse.to(out.device)], PackedCost(n_forward, positions)


__all__ = ["FORWARD_OVERHEAD", "PackedCost", "plan_chunks", "run_packed"]
