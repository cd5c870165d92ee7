"""Minimal flip search: the fewest document words to edit, in a given order, to change a model's prediction.

Words are edited in one of two orders:

* ``extractor``: the rationale's order, highest word score first (subword scores summed per word, as the
  ERASER metrics pool them; ties by position);
* ``random``: a seeded random permutation of the same words, the control.

After each prefix of the order (1, 2, ... words) the prediction is read again; the search stops at the first
prefix whose predicted class differs from the unedited input's. The prefixes run batched with the other
examples' (:func:`unirex.packing.run_packed`: length-sorted chunks of at most ``chunk_size`` rows) in a few
rounds of growing size (the first 8 prefixes, the next 16, 32, ...), an example leaving at its first flip: an
example costs at most ``cap + 1`` sequences, one that flips early far fewer.

An edit is one of (:data:`EDITS`):

* ``remove``: the word's subwords are deleted and the sequence re-packed, exactly as comprehensiveness
  deletes a rationale (:mod:`unirex.evaluate`);
* ``mask``: each of the word's subwords is replaced by the tokenizer's mask token (``[MASK]``; its unknown
  token where it has none). The bundled arch (all-MiniLM-L6-v2) is a sentence encoder shipped without a
  masked-LM head, so no arch is asked for in-context replacements: the one-token "vocabulary" is the mask
  token, which keeps the input's length and positions.

As a faithfulness signal (:func:`unirex.metrics.extra.flip_words`, from the per-example fractions the
evaluator keeps): ``flip_words`` is the mean over examples of the fraction of
the words the model read that the extractor's order had to edit to flip the prediction, an example that
does not flip within the cap counting 1.0 (lower is better: a faithful rationale names the words the
prediction rests on); ``flip_words_random`` is the same with the random order. The cap is
``min(max_words, ceil(max_fraction * words))`` edits per example (:class:`FlipOptions`).

Multiple-choice models (one row per choice) and select-then-predict models (A2R, FRESH: their prediction
comes from their own rationale, which an edit would re-select) are not searched: :func:`flip_supported`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from unirex.errors import UnirexError
from unirex.flipspec import EDITS, EXTRACTOR, MASK, ORDERS, RANDOM, REMOVE, FlipOptions, FlipResult
from unirex.packing import run_packed


def eval_flip_options(cfg) -> FlipOptions | None:
    """The flip search a run's evaluations run (``training.eval_flip`` and its caps; the run's seed orders
    the random control), or None when it is off."""
    t = cfg.training
    if not t.eval_flip:
        return None
    return FlipOptions(max_fraction=float(t.flip_max_fraction), max_words=int(t.flip_max_words), seed=int(cfg.seed))


def flip_supported(model) -> str | None:
    """Why ``model`` cannot be searched (a sentence), or None when it can."""
    if getattr(model, "num_choices", None):
        return "the flip search does not handle multiple-choice models (one row per choice)"
    if getattr(getattr(model, "scoring", None), "select_then_predict", False):
        return ("the flip search does not handle select-then-predict models (A2R, FRESH): their prediction comes "
                "from a rationale each edit would re-select")
    return None


def word_scores(scores: torch.Tensor, word_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Subword ``scores [B, L]`` summed per word: ``([B, W] float64, present [B, W] bool)``, ``W`` the
    batch's largest word id + 1 (``word_ids`` -1: not a document word)."""
    on = word_ids >= 0
    W = int(word_ids.max().item()) + 1 if bool(on.any()) else 0
    idx = torch.where(on, word_ids, torch.full_like(word_ids, W)).long()
    out = torch.zeros((scores.shape[0], W + 1), dtype=torch.float64, device=scores.device)
    out.scatter_add_(1, idx, torch.where(on, scores.double(), torch.zeros_like(scores, dtype=torch.float64)))
    present = torch.zeros((scores.shape[0], W + 1), dtype=torch.bool, device=scores.device)
    present.scatter_(1, idx, on)
    return out[:, :W], present[:, :W]


def word_orders(scores: torch.Tensor, word_ids: torch.Tensor, order: str,
                rng: np.random.Generator | None = None) -> list[list[int]]:
    """Each row's read words in the search order: ``extractor`` (score, highest first; ties by position) or
    ``random`` (a permutation drawn from ``rng``)."""
    if order not in ORDERS:
        raise UnirexError(f"unknown flip order '{order}': use one of {', '.join(ORDERS)}")
    ws, present = word_scores(scores, word_ids)
    out = []
    for b in range(ws.shape[0]):
        words = torch.nonzero(present[b]).flatten()
        if order == EXTRACTOR:
            ranked = torch.argsort(-ws[b, words], stable=True)
            out.append(words[ranked].tolist())
        else:
            rng = rng if rng is not None else np.random.default_rng(0)
            out.append(words[torch.as_tensor(rng.permutation(len(words)), dtype=torch.long)].tolist())
    return out


def _subword_ranks(batch: dict, orders: list[list[int]], caps: list[int]) -> torch.Tensor:
    """``[B, L]`` long: the place of each subword's word in its row's order, ``cap + 1`` for a subword that
    is never edited (not a document word the model reads, or a word past the cap)."""
    wid, am = batch["word_ids"], batch["attention_mask"].bool()
    out = []
    for b, order in enumerate(orders):
        cap = caps[b]
        rank = torch.full((int(wid[b].max().item()) + 2 if wid.shape[1] else 1,), cap + 1, dtype=torch.long,
                          device=wid.device)
        if cap:
            rank[torch.as_tensor(order[:cap], dtype=torch.long, device=wid.device)] = torch.arange(cap, device=wid.device)
        out.append(torch.where((wid[b] >= 0) & am[b], rank[wid[b].clamp(min=0)], torch.full_like(wid[b], cap + 1)))
    return torch.stack(out) if out else torch.zeros_like(wid)


def _run_prefixes(model, batch: dict, ranks: torch.Tensor, prefixes: list[tuple[int, int]], options: FlipOptions,
                  pad_token_id: int, replacement_id: int | None) -> torch.Tensor:
    """``probs [R, C]`` (float64, CPU) of row ``b`` with its first ``m`` words edited, for each ``(b, m)``."""
    ids, am, tt = batch["input_ids"], batch["attention_mask"].bool(), batch.get("token_type_ids")
    tt = torch.zeros_like(ids) if tt is None else tt
    src = torch.as_tensor([b for b, _ in prefixes], dtype=torch.long, device=ids.device)
    m = torch.as_tensor([m for _, m in prefixes], dtype=torch.long, device=ids.device).unsqueeze(1)
    edited = ranks[src] < m
    rows_ids = ids[src]
    if replacement_id is None:
        keep = am[src] & ~edited
    else:
        keep = am[src]
        rows_ids = torch.where(edited, torch.full_like(rows_ids, int(replacement_id)), rows_ids)

    def forward(packed: dict) -> torch.Tensor:
        out = model(input_ids=packed["input_ids"], attention_mask=packed["attention_mask"],
                    token_type_ids=packed["token_type_ids"])
        return getattr(out, "logits", out).float()

    logits, _ = run_packed(forward, {"input_ids": rows_ids, "token_type_ids": tt[src]}, keep, options.chunk_size,
                           pad_token_id)
    return torch.softmax(logits.double(), -1).cpu()


#: prefixes of the first round of :func:`flip_search` (each later round doubles it)
FIRST_ROUND = 8


@torch.no_grad()
def flip_search(model, batch: dict, orders: list[list[int]], options: FlipOptions = FlipOptions(),
                pad_token_id: int = 0, replacement_id: int | None = None, order_name: str = EXTRACTOR,
                ) -> list[FlipResult]:
    """Search every row of ``batch`` (``input_ids``, ``attention_mask``, ``token_type_ids``, ``word_ids``;
    one row per example) for the shortest prefix of its word order (``orders[b]``, :func:`word_orders`)
    whose edit flips ``model``'s prediction (``model(input_ids=, attention_mask=, token_type_ids=) ->
    logits [B, C]``). ``replacement_id``: the token id of a ``mask`` edit (None: ``remove``).

    The prefixes run in a few rounds, each one batch over the rows not decided yet (length-sorted chunks of
    at most ``options.chunk_size`` sequences): the unedited rows and prefixes 1..8, then the next 16, 32, ...
    up to each row's cap; a row leaves the search at its first flip. The result is the same as trying every
    prefix; only the rows that do not flip early cost more passes."""
    B = batch["input_ids"].shape[0]
    if len(orders) != B:
        raise ValueError(f"{len(orders)} word orders for a batch of {B} rows")
    caps = [options.cap(len(o)) for o in orders]
    ranks = _subword_ranks(batch, orders, caps)
    base = _run_prefixes(model, batch, ranks, [(b, 0) for b in range(B)], options, pad_token_id, replacement_id)
    base_y = base.argmax(-1)
    found: dict[int, tuple[int, torch.Tensor]] = {}  # row -> (edits, probs) of its flip, or of its last prefix
    open_rows, lo, width = [b for b in range(B) if caps[b] > 0], 1, FIRST_ROUND
    while open_rows:
        prefixes = [(b, m) for b in open_rows for m in range(lo, min(lo + width - 1, caps[b]) + 1)]
        probs = _run_prefixes(model, batch, ranks, prefixes, options, pad_token_id, replacement_id)
        y, still = probs.argmax(-1), []
        for b in open_rows:
            idx = [i for i, (r, _) in enumerate(prefixes) if r == b]
            flips = [i for i in idx if int(y[i]) != int(base_y[b])]
            if flips:
                found[b] = (prefixes[flips[0]][1], probs[flips[0]])
            elif prefixes[idx[-1]][1] >= caps[b]:
                found[b] = (caps[b], probs[idx[-1]])
            else:
                still.append(b)
        open_rows, lo, width = still, lo + width, width * 2
    results = []
    for b in range(B):
        n, p = found.get(b, (0, base[b]))
        flipped = int(p.argmax()) != int(base_y[b])
        results.append(FlipResult(
            order=order_name, flipped=flipped, n_edits=n if flipped else None, n_words=len(orders[b]), cap=caps[b],
            edited=tuple(int(w) for w in orders[b][:n]), base_label=int(base_y[b]),
            base_probs=tuple(float(x) for x in base[b]), label=int(p.argmax()), probs=tuple(float(x) for x in p)))
    return results


def search_batch(model, batch: dict, scores: torch.Tensor, options: FlipOptions, rng: np.random.Generator,
                 pad_token_id: int = 0, replacement_id: int | None = None) -> dict[str, list[FlipResult]]:
    """Both orders' searches of a batch, given its subword ``scores [B, L]``: ``{order: [FlipResult]}``."""
    wid = batch["word_ids"].masked_fill(~batch["attention_mask"].bool(), -1)
    out = {}
    for order in ORDERS:
        orders = word_orders(scores, wid, order, rng)
        out[order] = flip_search(model, batch, orders, options, pad_token_id, replacement_id, order)
    return out


__all__ = ["EDITS", "EXTRACTOR", "FlipOptions", "FlipResult", "MASK", "ORDERS", "RANDOM", "REMOVE",
           "eval_flip_options", "flip_search", "flip_supported", "search_batch", "word_orders", "word_scores"]
