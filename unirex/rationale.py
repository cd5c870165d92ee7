"""The top-k rationale rule and the attention-mask removal rule, shared by training and metrics.

Top-k (UNIREX's rule, DESIGN.md): for an example with ``n`` non-padding tokens
(``attention_mask.sum()``, special tokens and query included), a rationale at ``k`` percent keeps

    count(n, k) = max(1, round((n - 1) * k / 100))

tokens. ``n - 1`` discounts the first special token, which UNIREX always keeps. What this module does
beyond the paper's code, precisely:

* Candidates are the **explainable** positions only (document subwords, ``batch['explainable']``);
  special tokens, the query of two-input tasks and padding are never selected (and never removed, see
  :func:`keep_mask`). In UNIREX's code the count is taken over all non-padding tokens and the separator
  could be picked; here the count is the same but is spent on explainable positions only.
* The count is capped at the number of explainable positions; an example with none selects nothing.
* ``round`` is round-half-to-even (Python's ``round`` and ``torch.round`` agree).
* Ties in the scores are broken by position: the earlier token wins (stable sort), so the rule is
  deterministic for constant scores.

:func:`topk_count` is exposed on its own so the same count can be applied at word level.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

TOPK_BINS: tuple[int, ...] = (1, 5, 10, 20, 50)


def topk_count(n_tokens: torch.Tensor | int, k_percent: float) -> torch.Tensor | int:
    """``max(1, round((n - 1) * k / 100))`` for ``n`` non-padding tokens (int or long tensor ``[B]``)."""
    if isinstance(n_tokens, torch.Tensor):
        raw = torch.round((n_tokens.to(torch.float64) - 1.0) * float(k_percent) / 100.0).long()
        return raw.clamp(min=1)
    return max(1, round((int(n_tokens) - 1) * float(k_percent) / 100.0))


def topk_mask(scores: torch.Tensor, explainable: torch.Tensor, attention_mask: torch.Tensor,
              k_percent: float) -> torch.Tensor:
    """Hard top-k% rationale.

    Args:
        scores: ``[B, L]`` token scores (any values; only explainable positions are compared).
        explainable: ``[B, L]`` bool, positions that may belong to a rationale.
        attention_mask: ``[B, L]`` 1 on non-padding tokens; its row sums are the ``n`` of the rule.
        k_percent: ``k`` in percent, e.g. 10.

    Returns:
        ``[B, L]`` bool mask, True on the selected tokens (a subset of ``explainable``). No gradient
        flows through it: it is a selection, not a relaxation.
    """
    explainable = explainable.bool() & attention_mask.bool()
    n = attention_mask.long().sum(dim=1)
    count = torch.minimum(topk_count(n, k_percent), explainable.long().sum(dim=1))  # [B]
    s = scores.detach().to(torch.float32).masked_fill(~explainable, float("-inf"))
    order = torch.sort(s, dim=1, descending=True, stable=True).indices  # [B, L]
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(s.shape[1], device=s.device).expand_as(order))
    return (rank < count.unsqueeze(1)) & explainable


def topk_masks(scores: torch.Tensor, explainable: torch.Tensor, attention_mask: torch.Tensor,
               bins: Sequence[float] = TOPK_BINS) -> dict[float, torch.Tensor]:
    """:func:`topk_mask` for every bin: ``{k: [B, L] bool}``."""
    return {k: topk_mask(scores, explainable, attention_mask, k) for k in bins}


def keep_mask(attention_mask: torch.Tensor, explainable: torch.Tensor, rationale: torch.Tensor,
              mode: str) -> torch.Tensor:
    """Attention mask for a masked forward pass (removal through the attention mask, training-time).

    Positions with ``attention_mask=1`` and ``explainable=False`` (special tokens, query) are always
    kept; padding stays masked.

    Args:
        attention_mask: ``[B, L]`` 0/1.
        explainable: ``[B, L]`` bool.
        rationale: ``[B, L]`` bool (or 0/1) hard rationale.
        mode: ``"only"`` keeps the rationale (sufficiency input); ``"remove"`` drops it
            (comprehensiveness input).

    Returns:
        ``[B, L]`` long attention mask.
    """
    am = attention_mask.bool()
    expl = explainable.bool()
    r = rationale.bool() & expl
    if mode == "only":
        keep = am & (~expl | r)
    elif mode == "remove":
        keep = am & ~r
    else:
        raise ValueError(f"mode must be 'only' or 'remove', not {mode!r}")
    return keep.long()


TOKEN_PAD_VALUES = {"word_ids": -1}


def repack(batch: dict[str, torch.Tensor], keep: torch.Tensor, pad_token_id: int = 0) -> dict[str, torch.Tensor]:
    """Delete the tokens where ``keep`` is False and re-pack each row to the left (evaluation-style
    removal, and FRESH's input). Every ``[B, L]`` tensor of ``batch`` is packed the same way; padding
    gets ``pad_token_id`` (``input_ids``), -1 (``word_ids``) or 0; the new length is the longest kept
    row. Other entries (``label``, ``index``, ...) are copied.

    Args:
        batch: a collated batch (see :mod:`unirex.data.tensors`).
        keep: ``[B, L]`` bool; padding positions should be False.
    """
    keep = keep.bool()
    b, length = keep.shape
    order = torch.sort((~keep).to(torch.int8), dim=1, stable=True).indices  # kept first, in order
    counts = keep.sum(1)
    new_len = max(int(counts.max().item()) if b else 0, 1)
    valid = torch.arange(new_len, device=keep.device).unsqueeze(0) < counts.unsqueeze(1)
    idx = order[:, :new_len]
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor) and value.dim() == 2 and value.shape == (b, length):
            pad = pad_token_id if key == "input_ids" else TOKEN_PAD_VALUES.get(key, 0)
            packed = value.gather(1, idx)
            out[key] = torch.where(valid, packed, torch.full_like(packed, pad))
        else:
            out[key] = value
    return out


def topk_keep(batch: dict[str, torch.Tensor], scores: torch.Tensor, k_percent: float) -> torch.Tensor:
    """``[B, L]`` bool: non-padding tokens that are not explainable, plus the top-k% explainable ones
    (what FRESH and sufficiency-by-deletion keep)."""
    r = topk_mask(scores, batch["explainable"], batch["attention_mask"], k_percent)
    return keep_mask(batch["attention_mask"], batch["explainable"], r, "only").bool()


__all__ = ["TOPK_BINS", "keep_mask", "repack", "topk_count", "topk_keep", "topk_mask", "topk_masks"]
