"""Removing a rationale at training time: hide the tokens behind the attention mask, or drop them.

Comprehensiveness and sufficiency train the task LM on its input with the top-k rationale removed
(``"remove"``) or kept alone (``"only"``); A2R's predictor reads the rationale alone. Special tokens and
the query are always kept (:func:`unirex.rationale.keep_mask`). ``model.rationale_removal`` picks how:

* ``mask`` (what UNIREX's reference code does): every variant runs at the batch's full length ``L``
  and the removed tokens are hidden by the attention mask;
* ``drop`` (the default): the removed tokens (and the padding) are deleted, the kept ones keep their
  **original position and segment ids**, and the variants of a batch run re-packed in length-sorted
  chunks (:func:`unirex.packing.run_packed`, the evaluator's machinery). Sufficiency keeps few tokens,
  so the 2 x 5 variants cost about 5 full lengths instead of 10.

Why the two agree: in an encoder whose only positional signal is a learned absolute position embedding
added to each token's input embedding, and whose attention is dense (every token may attend to every
kept token), a token that no other token may attend to gets attention weight exactly 0, so it changes
nothing in the other tokens' hidden states, nor in their gradients. Deleting it, and giving every other
token the position id it had, computes the same function of the kept tokens: the same logits and the
same gradients up to floating-point summation order (tests compare them at 1e-5).

Where that does not hold, ``drop`` falls back to ``mask`` and :func:`resolve_removal` says why:

* relative positions (DeBERTa, MPNet) or rotary ones (RoFormer, ModernBERT): deleting a token changes
  the distances between the others;
* attention over windows or blocks chosen by a token's index (Longformer, ModernBERT's local layers,
  BigBird's block-sparse attention on inputs longer than its full-attention limit);
* mixing of neighbouring tokens outside attention (MobileBERT's trigram input, ConvBERT's convolutions):
  there even a masked token still reaches its neighbours;
* an encoder whose forward takes no ``position_ids``, or a model type not listed in
  :data:`DROP_MODEL_TYPES` (unknown is treated as unsafe).

FRESH is not concerned: it trains on its pruned input with the other tokens hidden by the attention
mask in place, as UNIREX's training step does (:func:`unirex.objective.fresh_batch`).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from torch import nn

from unirex.config import RATIONALE_REMOVALS as REMOVALS
from unirex.packing import run_packed
from unirex.rationale import candidates, keep_mask

#: ``config.model_type`` of encoders with learned absolute position embeddings added at the input and
#: dense attention (BigBird only while it attends fully, see :func:`drop_support`)
DROP_MODEL_TYPES = frozenset({
    "albert", "bert", "big_bird", "camembert", "data2vec-text", "distilbert", "electra", "ernie", "roberta",
    "roberta-prelayernorm", "xlm-roberta", "xlm-roberta-xl",
})

#: known model types where dropping is not equivalent to masking, and why
NO_DROP_REASONS = {
    "deberta": "relative position attention (dropping a token changes the distances between the others)",
    "deberta-v2": "relative position attention (dropping a token changes the distances between the others)",
    "mpnet": "relative position bias in attention (dropping a token changes the distances between the others)",
    "roformer": "rotary position embeddings inside attention",
    "modernbert": "rotary positions and local attention windows chosen by token index",
    "longformer": "sliding-window attention chosen by token index",
    "mobilebert": "trigram input embeddings mix each token with its neighbours, masked or not",
    "convbert": "convolutions mix neighbouring tokens outside attention",
    "funnel": "pooling over neighbouring positions",
}


@dataclass(frozen=True)
class RemovalChoice:
    """What a run asked for (``model.rationale_removal``), what it gets, and why."""

    requested: str
    removal: str  # "drop" or "mask"
    reason: str


def _takes_position_ids(encoder: nn.Module) -> bool:
    try:
        return "position_ids" in inspect.signature(encoder.forward).parameters
    except (TypeError, ValueError):  # pragma: no cover - exotic callables
        return False


def drop_support(encoder: nn.Module, seq_len: int | None = None) -> tuple[bool, str]:
    """Whether dropping removed tokens (original positions kept) equals masking them for ``encoder``.

    Args:
        encoder: a Hugging Face encoder (``AutoModel``).
        seq_len: the full length of the batch, when known (decides for BigBird's block-sparse mode).

    Returns:
        ``(supported, reason)``; the reason is a short phrase naming the model type.
    """
    config = getattr(encoder, "config", None)
    mtype = getattr(config, "model_type", None) or type(encoder).__name__
    if mtype in NO_DROP_REASONS:
        return False, f"{mtype}: {NO_DROP_REASONS[mtype]}"
    if mtype not in DROP_MODEL_TYPES:
        return False, f"model type '{mtype}' is not known to use absolute positions with dense attention"
    if not _takes_position_ids(encoder):
        return False, f"{mtype}: its forward takes no position_ids"
    kind = getattr(config, "position_embedding_type", None) or "absolute"
    if kind != "absolute":
        return False, f"{mtype}: position_embedding_type={kind} (relative positions)"
    if mtype == "big_bird" and getattr(encoder, "attention_type", getattr(config, "attention_type", None)) == "block_sparse":
        limit = (5 + 2 * int(config.num_random_blocks)) * int(config.block_size)
        if seq_len is None:
            return True, (f"big_bird: absolute positions; inputs of at most {limit} subwords attend fully, longer "
                          "batches use block-sparse attention and the attention mask")
        if seq_len > limit:
            return False, f"big_bird: block-sparse attention on inputs longer than {limit} subwords"
    return True, f"{mtype}: absolute position embeddings, dense attention"


def resolve_removal(requested: str, encoder: nn.Module, seq_len: int | None = None) -> RemovalChoice:
    """The removal a run gets: ``mask`` when asked, else ``drop`` where :func:`drop_support` allows it."""
    if requested not in REMOVALS:
        raise ValueError(f"rationale removal must be one of {', '.join(REMOVALS)}, not {requested!r}")
    if requested == "mask":
        return RemovalChoice(requested, "mask", "model.rationale_removal=mask")
    ok, why = drop_support(encoder, seq_len)
    return RemovalChoice(requested, "drop" if ok else "mask", why if ok else f"falls back to mask: {why}")


def original_position_ids(encoder: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """``[B, L]`` the position ids ``encoder`` gives the full-length ``input_ids`` by itself: ``0..L-1``
    (BERT and most), or RoBERTa's ``padding_idx + 1 + i`` on non-padding tokens (its embeddings'
    own ``create_position_ids_from_input_ids``)."""
    emb = getattr(encoder, "embeddings", None)
    make = getattr(emb, "create_position_ids_from_input_ids", None)
    padding_idx = getattr(emb, "padding_idx", None)
    if make is not None and padding_idx is not None:
        return make(input_ids, padding_idx)
    b, length = input_ids.shape
    return torch.arange(length, device=input_ids.device).expand(b, length)


def variant_logits(lm: nn.Module, batch: dict[str, torch.Tensor], variants: list[tuple[torch.Tensor, str]],
                   soft: torch.Tensor | None = None, removal: str = "drop",
                   chunk_size: int | None = None) -> list[torch.Tensor]:
    """The task LM's logits on several rationale variants of a batch, all in one go.

    Args:
        lm: a :class:`unirex.models.TaskLM` (``forward(input_ids=, attention_mask=, token_type_ids=,
            position_ids=, inputs_embeds=)``, ``embed``, ``encoder``).
        batch: needs ``input_ids``, ``attention_mask``, ``explainable`` (``token_type_ids`` optional).
        variants: ``[(rationale [B, L] bool, mode), ...]``, mode ``"remove"`` or ``"only"``.
        soft: optional ``[B, L]`` probabilities for the straight-through relaxation: the forward value
            is unchanged, the kept tokens' embeddings are scaled by ``1 + (soft - soft.detach())``
            (``"only"``) or ``1 - (soft - soft.detach())`` (``"remove"``), so a gradient reaches the
            extractor's scores. Works the same on both removals.
        removal: ``"drop"`` (where the arch allows it, see :func:`resolve_removal`) or ``"mask"``.
        chunk_size: ``drop`` only: at most this many sequences per forward pass (None: the length plan
            of :func:`unirex.packing.plan_chunks` alone decides).

    Returns:
        one ``[B, C]`` logits tensor per variant, in order.
    """
    b, length = batch["input_ids"].shape
    n = len(variants)
    am, expl = batch["attention_mask"], candidates(batch)
    keeps = torch.cat([keep_mask(am, expl, r, mode) for r, mode in variants])  # [n*B, L] long
    ids = batch["input_ids"].repeat(n, 1)
    tt = batch.get("token_type_ids")
    tt = tt.repeat(n, 1) if tt is not None else None
    factors = None
    if soft is not None:
        delta = (soft - soft.detach()) * expl.to(soft.dtype)
        factors = torch.cat([1.0 + (1.0 if mode == "only" else -1.0) * delta for _, mode in variants])
    if resolve_removal(removal, lm.encoder, length).removal == "mask":
        if factors is None:
            logits = lm(input_ids=ids, attention_mask=keeps, token_type_ids=tt)
        else:
            logits = lm(inputs_embeds=lm.embed(ids) * factors.unsqueeze(-1), attention_mask=keeps, token_type_ids=tt)
        return list(logits.split(b))

    rows = {"input_ids": ids, "position_ids": original_position_ids(lm.encoder, batch["input_ids"]).repeat(n, 1)}
    if tt is not None:
        rows["token_type_ids"] = tt
    if factors is not None:
        rows["factors"] = factors

    def forward(packed: dict[str, torch.Tensor]) -> torch.Tensor:
        kw = {"attention_mask": packed["attention_mask"], "token_type_ids": packed.get("token_type_ids"),
              "position_ids": packed["position_ids"]}
        if "factors" in packed:
            return lm(inputs_embeds=lm.embed(packed["input_ids"]) * packed["factors"].unsqueeze(-1), **kw)
        return lm(input_ids=packed["input_ids"], **kw)

    logits, _ = run_packed(forward, rows, keeps.bool(), chunk_size, lm.pad_token_id)
    return list(logits.split(b))


__all__ = ["DROP_MODEL_TYPES", "NO_DROP_REASONS", "REMOVALS", "RemovalChoice", "drop_support", "original_position_ids",
           "resolve_removal", "variant_logits"]
