"""ROAR, remove and retrain (Hooker et al., 2019): copies of a dataset with each document's top-k% words removed.

An importance measure is faithful when removing the words it ranks highest hurts a model *retrained* on the
reduced data more than removing as many words at random does: retraining rules out that the drop comes
from a distribution shift alone. This module makes the reduced datasets; the application layer
(:mod:`workbench.roar`) queues the retraining and collects the accuracies.

**Arms.** One dataset per arm and k (:data:`ARMS`):

* ``extractor``: the words a trained model's own extractor scores highest (its ``predict_and_explain``
  scores for the predicted class, subword scores summed per word as ERASER pools them). Words past the
  model's max length were never read and rank last.
* ``random``: as many words drawn uniformly (seeded), the control.
* ``gold``: the gold rationale's words first (in random order), then random others: the ceiling an
  importance measure that knew the annotators' evidence would reach (datasets with gold evidence only).

**How many.** ``floor(k * n / 100)`` of an example's ``n`` document words (over all its documents), for every
arm alike; a document's last word is never removed (an empty document is no document), so an example
whose documents hold fewer words than that many plus one each loses fewer.

**Recursive ROAR** (Madsen et al., 2022): ``k`` is then cumulative: the dataset of a larger k is the one of
the previous k with the extra words ranked by the model retrained at the previous k
(:func:`removal_masks` with ``already``).

**The copy** (:func:`write_roar_dataset`) is in ERASER layout: ``train.jsonl``, ``val.jsonl``, ``test.jsonl``
and ``docs.jsonl``; every annotation lists its ``docids``, the documents keep their ids unless several
annotations share one (then each gets its own copy, ``<docid>#<annotation_id>``), the query is left as it is
(only document words are ranked and removed), sentences that lose every word are dropped. **Evidence spans are
remapped** to the kept words (an evidence shrinks to its kept words; one with no word left is dropped, as are
its sentence offsets, which no longer hold) and their ``text`` rewritten; so a plausibility loss on the copy
supervises what is left of the gold rationale. ``roar.json`` in the copy records where it came from
(:class:`RoarDatasetInfo`). An existing folder of the same name is never overwritten.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from unirex.data.eraser import SPLITS, Example, read_split
from unirex.errors import UnirexError
from unirex.fsutil import atomic_dir
from unirex.safepath import check_folder_name

EXTRACTOR, RANDOM, GOLD = "extractor", "random", "gold"
ARMS = (EXTRACTOR, RANDOM, GOLD)
DEFAULT_ARMS = (EXTRACTOR, RANDOM)
INFO_FILE = "roar.json"
EVIDENCE_POLICY = "remapped"  # spans shrink to their kept words; a span with none left is dropped


# ------------------------------------------------------------------------------------------ inputs
def parse_ks(value: str | Sequence) -> tuple[int, ...]:
    """``"10,20,50"`` (or a list) -> ``(10, 20, 50)``: whole percentages in 1..99, sorted, repeats dropped."""
    items = value.split(",") if isinstance(value, str) else list(value)
    out: set[int] = set()
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        try:
            k = float(text)
        except ValueError:
            raise UnirexError(f"k '{text[:20]}' is not a number: give percentages in 1..99, e.g. 10,20,50") from None
        if k != int(k) or not 1 <= k <= 99:
            raise UnirexError(f"k {text[:20]} is outside 1..99: a whole percentage of each document's words to remove")
        out.add(int(k))
    if not out:
        raise UnirexError("no k given: percentages in 1..99, e.g. 10,20,50")
    return tuple(sorted(out))


def parse_arms(value: str | Sequence | None) -> tuple[str, ...]:
    """``"extractor,random"`` (or a list; None: :data:`DEFAULT_ARMS`) -> the arms, in :data:`ARMS` order."""
    if value is None:
        return DEFAULT_ARMS
    items = [str(a).strip() for a in (value.split(",") if isinstance(value, str) else value)]
    items = [a for a in items if a]
    for a in items:
        if a not in ARMS:
            raise UnirexError(f"unknown ROAR arm '{a[:40]}': use {', '.join(ARMS)}")
    if not items:
        raise UnirexError(f"no ROAR arm chosen: use {', '.join(ARMS)}")
    return tuple(a for a in ARMS if a in items)


def roar_name(dataset: str, run_id: str, arm: str, k: int, recursive: bool = False) -> str:
    """The copy's folder name: ``<dataset>-roar-<run>-<arm>-k<k>`` (``-rk<k>`` for recursive ROAR)."""
    return check_folder_name(f"{dataset}-roar-{run_id}-{arm}-{'rk' if recursive else 'k'}{int(k)}")


def removal_count(n_words: int, k: int) -> int:
    """Words removed from an example of ``n_words`` document words at ``k`` percent: ``floor(k n / 100)``."""
    return (int(k) * int(n_words)) // 100


# ----------------------------------------------------------------------------------------- choosing
def removal_order(arm: str, n_words: int, rng: random.Random, scores: np.ndarray | None = None,
                  gold: Sequence[int] | None = None) -> list[int]:
    """Word indices (over an example's concatenated documents) most important first, under ``arm``."""
    idx = list(range(n_words))
    rng.shuffle(idx)  # random order; ties of the other arms are broken by it (seeded)
    if arm == RANDOM:
        return idx
    if arm == GOLD:
        g = list(gold or [0] * n_words)
        return sorted(idx, key=lambda i: -int(bool(g[i])))
    if scores is None or len(scores) != n_words:
        raise ValueError("the extractor arm needs one score per word")
    s = np.where(np.isfinite(scores), scores, -np.inf)
    return sorted(idx, key=lambda i: -s[i])


def choose_removal(order: Sequence[int], doc_lengths: Sequence[int], count: int,
                   already: Sequence[bool] | None = None) -> list[bool]:
    """The first ``count`` words of ``order`` not removed ``already``, skipping any that would leave its
    document without a word; a mask over the concatenated documents (``already`` included)."""
    doc_of = [d for d, n in enumerate(doc_lengths) for _ in range(n)]
    removed = list(already) if already is not None else [False] * len(doc_of)
    left = list(doc_lengths)
    for i, r in enumerate(removed):
        if r:
            left[doc_of[i]] -= 1
    todo = count - sum(removed)
    for i in order:
        if todo <= 0:
            break
        if removed[i] or left[doc_of[i]] <= 1:
            continue
        removed[i] = True
        left[doc_of[i]] -= 1
        todo -= 1
    return removed


def removal_masks(arm: str, examples: Sequence[Example], k: int, seed: int = 0,
                  scores: Sequence[np.ndarray] | None = None,
                  already: Sequence[Sequence[bool]] | None = None) -> list[list[bool]]:
    """One removal mask per example (over its concatenated document words) for ``arm`` at ``k`` percent.
    ``scores``: the extractor's word scores per example (the extractor arm); ``already``: words removed
    before (recursive ROAR: they stay removed and count towards k)."""
    rng = random.Random(f"roar:{arm}:{seed}:{k}")
    out = []
    for i, ex in enumerate(examples):
        lengths = [d.n_words for d in ex.documents]
        n = sum(lengths)
        gold = [g for m in ex.gold_word_masks for g in m]
        order = removal_order(arm, n, rng, scores[i] if scores is not None else None, gold)
        out.append(choose_removal(order, lengths, removal_count(n, k), already[i] if already is not None else None))
    return out


# ------------------------------------------------------------------------------------------ scoring
def word_scores(model, tokenizer, examples: Sequence[Example], max_length: int, protocol: str = "eraser",
                drop_query: bool = False, keep_rationale_tail: bool = False, batch_size: int = 16,
                on_progress: Callable[[int, int], None] | None = None) -> list[np.ndarray]:
    """The model's own extractor's word scores for each example (summed over each word's subwords; words the
    model never read, past its max length, get ``-inf``), encoded as a built split encodes them.
    ``on_progress(done, total)`` after each batch."""
    import torch

    from unirex.data.encode import encode_examples
    from unirex.data.tensors import LIST_COLUMNS, collate
    from unirex.rationale import mark_selectable

    if getattr(model, "num_choices", None):
        raise UnirexError("ROAR does not handle multiple-choice datasets (one input per answer choice)")
    rows = encode_examples(list(examples), tokenizer, max_length, drop_query=drop_query,
                           keep_rationale_tail=keep_rationale_tail)
    p = next(iter(model.parameters()), None)
    device = p.device if p is not None else torch.device("cpu")
    pad = tokenizer.pad_token_id or 0
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]["input_ids"]))  # batches of similar length
    out: list[np.ndarray | None] = [None] * len(rows)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            ids = order[start:start + batch_size]
            items = [{**{c: rows[i][c] for c in LIST_COLUMNS}, "label": 0, "has_rationale": False, "index": j}
                     for j, i in enumerate(ids)]
            batch = mark_selectable({k: v.to(device) for k, v in collate(items, pad).items()}, protocol)
            with torch.enable_grad():
                _, scores = model.predict_and_explain(batch)
            scores = scores.detach().float().cpu().numpy()
            for j, i in enumerate(ids):
                wid = np.asarray(rows[i]["word_ids"])
                n = int(sum(rows[i]["doc_word_counts"]))
                ws = np.full(n, -np.inf)
                seen = wid[(wid >= 0) & (wid < n)]
                ws[np.unique(seen)] = 0.0
                np.add.at(ws, seen, scores[j][: len(wid)][(wid >= 0) & (wid < n)])
                out[i] = ws
            if on_progress is not None:
                on_progress(min(start + batch_size, len(order)), len(order))
    finally:
        model.train(was_training)
    return out  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------ writing
@dataclass(frozen=True)
class RoarDatasetInfo:
    """What ``roar.json`` of a copy records."""

    name: str
    source: str  # the dataset it was made from
    run_id: str  # the run whose checkpoint ranked the words (all arms name it: the study it belongs to)
    arm: str
    k: int
    seed: int
    recursive: bool = False
    scored_by: str | None = None  # the run whose model ranked the words (recursive ROAR: the previous k's)
    chain: tuple[int, ...] = ()  # recursive ROAR: every k of the chain this copy is a step of
    evidence: str = EVIDENCE_POLICY
    words: dict[str, int] = field(default_factory=dict)  # split -> document words before removal
    removed: dict[str, int] = field(default_factory=dict)  # split -> words removed
    evidences_dropped: dict[str, int] = field(default_factory=dict)  # split -> evidence spans with no word left


def read_roar_info(dataset_dir: Path) -> RoarDatasetInfo | None:
    """``roar.json`` of a dataset folder (None when it is no ROAR copy or the file cannot be read)."""
    try:
        data = json.loads((Path(dataset_dir) / INFO_FILE).read_text())
        return RoarDatasetInfo(**{**data, "chain": tuple(data.get("chain") or ())})
    except (OSError, ValueError, TypeError):
        return None


def _doc_ids(splits: dict[str, Sequence[Example]]) -> Counter:
    return Counter(d.docid for exs in splits.values() for ex in exs for d in ex.documents)


def _reduce(ex: Example, removed: Sequence[bool], new_ids: list[str]) -> tuple[dict, dict[str, str], int]:
    """``(annotation, {docid: text}, evidences dropped)`` of ``ex`` without the ``removed`` words."""
    ann = ex.annotation
    offsets, o = [], 0
    for d in ex.documents:
        offsets.append(o)
        o += d.n_words
    docs: dict[str, str] = {}
    kept_before: list[list[int]] = []  # per document: kept words before each position (and at its end)
    kept_words: list[list[str]] = []
    for d, new_id, off in zip(ex.documents, new_ids, offsets):
        lines, before, words, pos = [], [], [], 0
        for sentence in d.sentences:
            kept = []
            for w in sentence:
                before.append(len(words))
                if not removed[off + pos]:
                    kept.append(w)
                    words.append(w)
                pos += 1
            if kept:
                lines.append(" ".join(kept))
        before.append(len(words))
        docs[new_id] = "\n".join(lines)
        kept_before.append(before)
        kept_words.append(words)
    index = {d.docid: i for i, d in enumerate(ex.documents)}
    groups, dropped = [], 0
    for group in ann.evidences:
        new_group = []
        for ev in group:
            i = index[ev.docid]
            s, e = kept_before[i][ev.start_token], kept_before[i][ev.end_token]
            if e <= s:
                dropped += 1
                continue
            new_group.append({"docid": new_ids[i], "start_token": s, "end_token": e, "start_sentence": None,
                              "end_sentence": None, "text": " ".join(kept_words[i][s:e])})
        if new_group:
            groups.append(new_group)
    record = {"annotation_id": ann.annotation_id, "classification": ann.classification, "evidences": groups,
              "docids": new_ids, "query": ann.query, "query_type": ann.query_type}
    return record, docs, dropped


def write_roar_dataset(target: Path, splits: dict[str, Sequence[Example]],
                       removed: dict[str, Sequence[Sequence[bool]]], info: RoarDatasetInfo) -> RoarDatasetInfo:
    """Write the copy of ``splits`` (``train``/``dev``/``test`` -> examples) without the ``removed`` words to the
    folder ``target`` (written beside it and moved in whole); :class:`UnirexError` when ``target`` exists.
    Returns ``info`` with the counts filled in."""
    target = Path(target)
    if target.exists():
        raise UnirexError(f"dataset '{target.name}' already exists in {target.parent}: refusing to overwrite it "
                          "(delete that folder to make it again)")
    shared = _doc_ids(splits)
    words, gone, dropped = {}, {}, {}
    with atomic_dir(target) as tmp:
        with open(tmp / "docs.jsonl", "w", encoding="utf-8") as docs_file:
            for split, examples in splits.items():
                masks = removed[split]
                if len(masks) != len(examples):
                    raise ValueError(f"{split}: {len(masks)} removal masks for {len(examples)} examples")
                name = "val" if split == "dev" else split
                words[split] = sum(len(m) for m in masks)
                gone[split] = sum(sum(map(bool, m)) for m in masks)
                dropped[split] = 0
                with open(tmp / f"{name}.jsonl", "w", encoding="utf-8") as f:
                    for ex, mask in zip(examples, masks):
                        ids = [d.docid if shared[d.docid] == 1 else f"{d.docid}#{ex.annotation.annotation_id}"
                               for d in ex.documents]
                        record, docs, n = _reduce(ex, mask, ids)
                        dropped[split] += n
                        f.write(json.dumps(record) + "\n")
                        for docid, text in docs.items():
                            docs_file.write(json.dumps({"docid": docid, "document": text}) + "\n")
        info = RoarDatasetInfo(**{**asdict(info), "words": words, "removed": gone, "evidences_dropped": dropped})
        (tmp / INFO_FILE).write_text(json.dumps(asdict(info), indent=1))
        if target.exists():  # made meanwhile by another process: theirs stands
            raise UnirexError(f"dataset '{target.name}' already exists in {target.parent}: refusing to overwrite it")
    return info


def read_splits(dataset_dir: Path) -> dict[str, list[Example]]:
    """Every split of a dataset (``train``, ``dev``, ``test``), validated."""
    return {s: read_split(dataset_dir, s) for s in SPLITS}


def has_gold(splits: dict[str, Sequence[Example]]) -> bool:
    """Whether any example of ``splits`` has gold evidence."""
    return any(ex.has_rationale for exs in splits.values() for ex in exs)


def mean_fraction(info: RoarDatasetInfo) -> float:
    """The share of document words removed over the copy's splits."""
    n = sum(info.words.values())
    return sum(info.removed.values()) / n if n else math.nan


__all__ = ["ARMS", "DEFAULT_ARMS", "EVIDENCE_POLICY", "EXTRACTOR", "GOLD", "INFO_FILE", "RANDOM", "RoarDatasetInfo",
           "choose_removal", "has_gold", "mean_fraction", "parse_arms", "parse_ks", "read_roar_info", "read_splits",
           "removal_count", "removal_masks", "removal_order", "roar_name", "word_scores", "write_roar_dataset"]
