"""Batching for partial rationale supervision (``data.plaus_frac < 1``), as UNIREX samples it.

UNIREX (``src/data/data.py``) splits the train set into the fixed subset with gold rationales
(``ceil(N x pct / 100)`` examples, :func:`unirex.objective.plausibility_subset`) and the rest. An
epoch runs once over the rest, ``batch_size - int(max(1, batch_size / factor))`` examples per batch
(``factor`` = ``data.train_rationales_batch_factor``, 2 by default: half a batch), and every batch is
filled up to ``batch_size`` with examples drawn at random, without replacement within the batch, from
the supervised subset (the last, shorter batch gets more of them). Only those drawn examples carry
plausibility supervision (``plaus_mask``). So every batch is (about) half supervised however small
the subset is, and a supervised example is seen many times per epoch.

One departure: where the subset is smaller than what a batch asks for, UNIREX's draw fails; here the
batch takes the whole subset.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch

from unirex.errors import UnirexError


class HalfSupervisedBatchSampler(torch.utils.data.Sampler):
    """Batch sampler (``DataLoader(batch_sampler=...)``) yielding lists of dataset indices.

    Args:
        supervised: per example of the split, whether it is in the supervised subset.
        batch_size: ``setup.train_batch_size`` (>= 2).
        factor: ``data.train_rationales_batch_factor`` (> 1).
        shuffle: shuffle the unsupervised examples each epoch (``training.train_shuffle``).
        generator: the epoch's seeded generator (the order and the supervised draws follow it).
        rank / world_size: under ``torchrun``, each process takes its shard of the unsupervised
            examples (padded by wrapping around, as ``DistributedSampler`` does) and its own draws.
    """

    def __init__(self, supervised: Sequence[bool], batch_size: int, factor: float = 2.0, shuffle: bool = True,
                 generator: torch.Generator | None = None, rank: int = 0, world_size: int = 1):
        flags = [bool(x) for x in supervised]
        self.sup = [i for i, s in enumerate(flags) if s]
        self.unsup = [i for i, s in enumerate(flags) if not s]
        if batch_size < 2:
            raise UnirexError("data.plaus_frac < 1 needs setup.train_batch_size >= 2 (half of each batch is supervised)")
        if factor <= 1:
            raise UnirexError(f"data.train_rationales_batch_factor must be > 1, got {factor}")
        if not self.sup:
            raise UnirexError("data.plaus_frac selects no train example for plausibility supervision; raise it")
        if not self.unsup:
            raise UnirexError("data.plaus_frac selects every train example; use data.plaus_frac=1.0")
        self.batch_size = int(batch_size)
        self.per_batch = self.batch_size - int(max(1, self.batch_size / factor))  # unsupervised per batch
        self.shuffle = shuffle
        self.seed = int(generator.initial_seed()) if generator is not None else 0
        self.rank, self.world = int(rank), max(1, int(world_size))
        self.shard_len = math.ceil(len(self.unsup) / self.world)

    def __len__(self) -> int:
        return math.ceil(self.shard_len / self.per_batch)

    def __iter__(self) -> Iterator[list[int]]:
        g = torch.Generator().manual_seed(self.seed)
        order = torch.randperm(len(self.unsup), generator=g).tolist() if self.shuffle else list(range(len(self.unsup)))
        order = (order * (1 + (self.shard_len * self.world) // max(1, len(order))))[: self.shard_len * self.world]
        mine = [self.unsup[j] for j in order[self.rank::self.world]]
        draw = torch.Generator().manual_seed(self.seed * 7919 + 1 + self.rank)
        for start in range(0, len(mine), self.per_batch):
            items = mine[start:start + self.per_batch]
            need = min(int(max(1, self.batch_size - len(items))), len(self.sup))
            picks = torch.randperm(len(self.sup), generator=draw)[:need].tolist()
            yield items + [self.sup[j] for j in picks]


__all__ = ["HalfSupervisedBatchSampler"]
