"""The top-k rationale rule and the attention-mask removal rule, shared by training and metrics.

Top-k (UNIREX's rule): for an example with ``n`` non-padding tokens
(``attention_mask.sum()``, special tokens and query included), a rationale at ``k`` percent keeps

    count(n, k) = max(1, round((n - 1) * k / 100))

tokens. ``n - 1`` discounts the first special token, which UNIREX always keeps. What this module does
beyond the paper's code, precisely:

* Candidates depend on the run's ``protocol`` (:func:`selectable`, the one rule; a batch is marked once
  with :func:`mark_selectable` and everything downstream reads :func:`candidates`): under ``eraser``
  the **explainable** positions only (document subwords, ``batch['explainable']``): special tokens, the
  query of two-input tasks and padding are never selected (and never removed, see :func:`keep_mask`);
  under ``reference`` every token the model reads except [CLS] and the separators, the query included,
  as UNIREX's ``calc_expl`` (which could also pick a separator; we never do).
* The count is capped at the number of candidates; an example with none selects nothing.
* ``round`` is round-half-to-even (Python's ``round`` and ``torch.round`` agree).
* Ties in the scores are broken by position: the earlier token wins (stable sort), so the rule is
  deterministic for constant scores, under either protocol (UNIREX's ``argsort`` leaves ties unordered).

:func:`topk_count` is exposed on its own so the same count can be applied at word level. FRESH's
teacher top-k uses UNIREX's other count, ``max(1, int(k / 100 * (n - 1)))`` (truncated): ``rule="floor"``.

Removal in training (:func:`keep_mask`) follows UNIREX's ``expl_forward`` (mode ``loss``): the
sufficiency input ("only") keeps the first token ([CLS]) and the rationale and masks everything else,
[SEP] and a query included (UNIREX's attention mask is its ``expls``: [CLS] plus the top-k); the
comprehensiveness input ("remove") keeps every non-padding token but the rationale (UNIREX's
``inv_expls``, [CLS] forced on). Evaluation deletes tokens instead; which tokens stay depends on the
metric and the protocol (:mod:`unirex.evaluate`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from unirex.protocol import ERASER, REFERENCE

TOPK_BINS: tuple[int, ...] = (1, 5, 10, 20, 50)


@dataclass(frozen=True)
class Scoring:
    """How a model's prediction relates to its rationale, which decides how it is scored
    (a model's ``scoring`` attribute; :func:`unirex.evaluate.evaluate` reads it).

    Attributes:
        select_then_predict: False (the default, ERASER's protocol): the model predicts from the whole
            input; comprehensiveness and sufficiency compare that prediction with the input without
            the top-k rationale and with the top-k rationale only. True (A2R, FRESH, as UNIREX's code
            scores them): the model predicts from its own top-k rationale, so for each bin ``k`` its
            prediction is the one from the rationale-only input (for ERASER's metrics ERASER's
            sufficiency input, special tokens and query kept as for every method; under
            ``protocol=reference`` also the reference's [CLS] + rationale, :mod:`unirex.evaluate`);
            comprehensiveness compares it with the prediction from the input with no document token
            left, and sufficiency is 0 (the rationale-only input is the prediction's own input).
            Task metrics pool the predictions of every bin, as UNIREX's code does.
        hard_k: the bin (percent) of the hard rationale (token F1, IOU F1, ERASER's top-level comp /
            suff and the export's prediction); None: the evaluator's default. FRESH uses 100: its
            rationale is the whole pruned input.
        protocol: ``"eraser"`` (the default of a bare evaluation) or ``"reference"`` (a run's
            ``protocol``, :func:`unirex.models.builder.model_scoring`): which tokens the UNIREX-style
            metrics' top-k can pick and which inputs they are scored on (:func:`selectable`,
            :mod:`unirex.evaluate`). ERASER's own metrics do not depend on it.
    """

    select_then_predict: bool = False
    hard_k: float | None = None
    protocol: str = "eraser"


COUNT_RULES = ("round", "floor")


def topk_count(n_tokens: torch.Tensor | int, k_percent: float, rule: str = "round") -> torch.Tensor | int:
    """Tokens in a top-k% rationale of ``n`` non-padding tokens (int or long tensor ``[B]``).

    ``rule="round"``: ``max(1, round((n - 1) * k / 100))`` (UNIREX's ``calc_expl``, every loss and
    metric); ``rule="floor"``: ``max(1, int(k / 100 * (n - 1)))`` (UNIREX's FRESH rationale; the float
    expression is evaluated in that order, as UNIREX does, so e.g. ``k=29, n-1=100`` gives 28).
    """
    if rule not in COUNT_RULES:
        raise ValueError(f"rule must be one of {COUNT_RULES}, not {rule!r}")
    if isinstance(n_tokens, torch.Tensor):
        m = n_tokens.to(torch.float64) - 1.0
        raw = torch.round(m * float(k_percent) / 100.0) if rule == "round" else torch.trunc(float(k_percent) / 100.0 * m)
        return raw.long().clamp(min=1)
    m = int(n_tokens) - 1
    raw = round(m * float(k_percent) / 100.0) if rule == "round" else int(float(k_percent) / 100.0 * m)
    return max(1, raw)


def selectable_mask(input_ids: torch.Tensor, attention_mask: torch.Tensor, explainable: torch.Tensor, protocol: str,
                    input_mask: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, L]`` bool: the positions a top-k rationale may pick under ``protocol`` (the one rule, shared by
    training, the baselines, the extractors' score masks and the evaluator).

    * ``"eraser"``: the document tokens (``explainable``) the model reads (``attention_mask``).
    * ``"reference"`` (UNIREX's ``calc_expl``): every token the model reads except the first ([CLS])
      and the separators: the query of a two-input task is a candidate. A separator is a
      non-document token with the id of the row's last token (``[SEP]`` / ``</s>``, which the arch's
      pair encoding always ends on), so no tokenizer is needed; a document token is never one.

    Args:
        input_ids: ``[B, L]``.
        attention_mask: ``[B, L]`` 0/1, what the model reads (FRESH: its pruned input).
        explainable: ``[B, L]`` bool, document tokens.
        protocol: ``"reference"`` or ``"eraser"`` (:mod:`unirex.protocol`).
        input_mask: ``[B, L]`` 0/1 of the original input (to find each row's last token when
            ``attention_mask`` is pruned); default ``attention_mask``.
    """
    if protocol not in (REFERENCE, ERASER):
        raise ValueError(f"protocol must be one of {(REFERENCE, ERASER)}, not {protocol!r}")
    am = attention_mask.bool()
    expl = explainable.bool()
    if protocol == ERASER:
        return expl & am
    full = (input_mask if input_mask is not None else attention_mask).bool()
    last = (full.long().sum(dim=1) - 1).clamp(min=0)  # [B]
    closing = input_ids.gather(1, last.unsqueeze(1))  # [B, 1]
    separator = ~expl & (input_ids == closing)
    first = torch.zeros_like(am)
    first[:, 0] = True
    return am & ~first & ~separator


def selectable(batch: dict[str, torch.Tensor], protocol: str) -> torch.Tensor:
    """:func:`selectable_mask` of a collated batch (its ``input_mask`` gives the original input)."""
    return selectable_mask(batch["input_ids"], batch["attention_mask"], batch["explainable"], protocol,
                           batch.get("input_mask"))


#: the batch entry holding :func:`selectable` under the run's protocol (:func:`mark_selectable`)
SELECTABLE = "selectable"


def mark_selectable(batch: dict[str, torch.Tensor], protocol: str) -> dict[str, torch.Tensor]:
    """``batch`` with ``batch["selectable"]``: the positions a rationale may pick under ``protocol``. Whoever
    owns a run's protocol marks its batches (the engine's training step and attribution pass, the evaluator,
    Explain); everything downstream (extractors' score masks, the baselines, the training top-k and
    removal) reads :func:`candidates`, so the protocol is decided once per batch."""
    return {**batch, SELECTABLE: selectable(batch, protocol)}


def candidates(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """``[B, L]`` bool: the positions a rationale of ``batch`` may pick: its ``selectable`` entry
    (:func:`mark_selectable`), restricted to what the model reads; an unmarked batch (built by hand)
    follows ``eraser``, the document tokens."""
    if SELECTABLE in batch:
        return batch[SELECTABLE].bool() & batch["attention_mask"].bool()
    return selectable(batch, ERASER)


def topk_mask(scores: torch.Tensor, explainable: torch.Tensor, attention_mask: torch.Tensor,
              k_percent: float, rule: str = "round") -> torch.Tensor:
    """Hard top-k% rationale.

    Args:
        scores: ``[B, L]`` token scores (any values; only explainable positions are compared).
        explainable: ``[B, L]`` bool, positions that may belong to a rationale.
        attention_mask: ``[B, L]`` 1 on non-padding tokens; its row sums are the ``n`` of the rule.
        k_percent: ``k`` in percent, e.g. 10.
        rule: the count rule of :func:`topk_count`.

    Returns:
        ``[B, L]`` bool mask, True on the selected tokens (a subset of ``explainable``). No gradient
        flows through it: it is a selection, not a relaxation.
    """
    explainable = explainable.bool() & attention_mask.bool()
    n = attention_mask.long().sum(dim=1)
    count = torch.minimum(topk_count(n, k_percent, rule), explainable.long().sum(dim=1))  # [B]
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
    """Attention mask for a masked forward pass (removal through the attention mask, training-time),
    as UNIREX's ``expl_forward`` builds it (see the module docstring).

    Args:
        attention_mask: ``[B, L]`` 0/1 (a row's first position is its first token, [CLS]).
        explainable: ``[B, L]`` bool.
        rationale: ``[B, L]`` bool (or 0/1) hard rationale.
        mode: ``"only"`` keeps the first token and the rationale, nothing else (sufficiency input,
            A2R's and FRESH's input); ``"remove"`` keeps every non-padding token but the rationale
            (comprehensiveness input; special tokens and the query stay).

    Returns:
        ``[B, L]`` long attention mask.
    """
    am = attention_mask.bool()
    expl = explainable.bool()
    r = rationale.bool() & expl
    if mode == "only":
        first = torch.zeros_like(am)
        first[:, 0] = True
        keep = am & (first | r)
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


def topk_keep(batch: dict[str, torch.Tensor], scores: torch.Tensor, k_percent: float, rule: str = "round") -> torch.Tensor:
    """``[B, L]`` bool: the first token and the top-k% of :func:`candidates` (:func:`keep_mask` "only")."""
    cand = candidates(batch)
    r = topk_mask(scores, cand, batch["attention_mask"], k_percent, rule)
    return keep_mask(batch["attention_mask"], cand, r, "only").bool()


__all__ = ["COUNT_RULES", "SELECTABLE", "Scoring", "TOPK_BINS", "candidates", "keep_mask", "mark_selectable", "repack",
           "selectable", "selectable_mask", "topk_count",
           "topk_keep", "topk_mask", "topk_masks"]
