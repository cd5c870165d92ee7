"""Counterfactuals behind the workbench facade: an edited text explained beside the original with a word-level
diff (prediction, probabilities and per-word score before/after), and the minimal flip search
(:mod:`unirex.counterfactual`) on a typed text or over a split of the checkpoint's dataset."""

from __future__ import annotations

import difflib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from unirex.config import from_dict
from unirex.flipspec import EXTRACTOR, RANDOM, FlipOptions, FlipResult
from unirex.errors import UnirexError
from workbench.checkpoints import CheckpointCache
from workbench.explain_service import ExplainService
from workbench.records import Explanation
from workbench.safety import PathPolicy

SAME, CHANGED, INSERTED, DELETED = "same", "changed", "inserted", "deleted"


@dataclass(frozen=True)
class WordChange:
    """One step of the word-level diff from the original text to the edited one. ``before``/``after``: the
    word (None where it has no counterpart); ``*_index``: its place in that text's words; ``delta``: the
    score change (after - before) where the word is on both sides (``same`` or ``changed``)."""

    op: str  # same | changed | inserted | deleted
    before: str | None
    after: str | None
    before_index: int | None
    after_index: int | None
    score_before: float | None
    score_after: float | None

    @property
    def delta(self) -> float | None:
        if self.score_before is None or self.score_after is None:
            return None
        return self.score_after - self.score_before


@dataclass(frozen=True)
class ProbChange:
    label: str
    before: float
    after: float

    @property
    def delta(self) -> float:
        return self.after - self.before


@dataclass(frozen=True)
class EditDiff:
    """An edited text against the original, both explained by the same checkpoint and extractor."""

    before: Explanation
    after: Explanation
    changes: list[WordChange]
    probs: list[ProbChange]

    @property
    def prediction_changed(self) -> bool:
        return self.before.predicted != self.after.predicted

    @property
    def n_edited(self) -> int:
        """Words inserted, deleted or changed."""
        return sum(1 for c in self.changes if c.op != SAME)


def word_diff(before_words: list[str], before_scores: list[float], after_words: list[str],
              after_scores: list[float]) -> list[WordChange]:
    """Align two word lists (:class:`difflib.SequenceMatcher`, no junk heuristic) into same / changed /
    inserted / deleted steps, in text order. A replaced run pairs its words one by one as ``changed``; the
    longer side's rest is deleted or inserted."""
    out: list[WordChange] = []

    def step(op, i, j):
        out.append(WordChange(op, before_words[i] if i is not None else None, after_words[j] if j is not None else None,
                              i, j, float(before_scores[i]) if i is not None else None,
                              float(after_scores[j]) if j is not None else None))

    sm = difflib.SequenceMatcher(a=before_words, b=after_words, autojunk=False)
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal":
            for k in range(i2 - i1):
                step(SAME, i1 + k, j1 + k)
            continue
        paired = min(i2 - i1, j2 - j1) if tag == "replace" else 0
        for k in range(paired):
            step(CHANGED, i1 + k, j1 + k)
        for i in range(i1 + paired, i2):
            step(DELETED, i, None)
        for j in range(j1 + paired, j2):
            step(INSERTED, None, j)
    return out


def edit_diff(before: Explanation, after: Explanation) -> EditDiff:
    """The diff of two explanations of the same checkpoint and labels."""
    changes = word_diff(before.words, before.word_scores, after.words, after.word_scores)
    after_p = after.probabilities
    probs = [ProbChange(lab, float(p), float(after_p.get(lab, 0.0))) for lab, p in zip(before.labels, before.probs)]
    return EditDiff(before=before, after=after, changes=changes, probs=probs)


@dataclass(frozen=True)
class FlipPath:
    """One order's search on a typed text, ready to show."""

    order: str  # extractor | random
    flipped: bool
    n_edits: int | None  # None: no flip within the cap
    n_words: int
    cap: int
    fraction: float  # n_edits / n_words, 1.0 when it did not flip
    edited: list[str]  # the words edited, in order
    words: list[tuple[str, bool]]  # the text after the edits: (word shown, edited)
    edited_text: str
    label: str  # the prediction after the edits
    probs: list[float]

    @property
    def summary(self) -> str:
        """``flipped after 2 of 14 words`` / ``no flip within 7 of 14 words``."""
        if self.flipped:
            return f"flipped after {self.n_edits} of {self.n_words} words"
        return f"no flip within {self.cap} of {self.n_words} words"


@dataclass(frozen=True)
class FlipOutcome:
    """The minimal flip search on a typed text (:func:`unirex.textflip.flip_text`)."""

    checkpoint: str
    run_id: str | None
    extractor: str
    edit: str  # remove | mask
    seed: int
    max_fraction: float
    max_words: int
    labels: list[str]
    probs: list[float]  # the unedited text's
    predicted: str
    guided: FlipPath  # the extractor's order
    random: FlipPath  # the random order (control)
    truncated: bool
    seconds: float


@dataclass(frozen=True)
class FlipSplitSummary:
    """The flip search over a split (an evaluation with the search on): the means beside comp/suff."""

    checkpoint: str
    run_id: str | None
    dataset: str
    split: str
    examples: int
    flip_words: float | None  # mean fraction of words edited to flip, extractor's order (no flip = 1.0)
    flip_words_random: float | None  # the same in a random order
    comp_aopc: float | None
    suff_aopc: float | None
    options: FlipOptions
    seconds: float


def _path(tf, r: FlipResult) -> FlipPath:
    return FlipPath(order=r.order, flipped=r.flipped, n_edits=r.n_edits, n_words=r.n_words, cap=r.cap,
                    fraction=r.fraction, edited=[tf.words[i] for i in r.edited], words=tf.edited_words(r),
                    edited_text=tf.edited_text(r), label=tf.label_of(r), probs=list(r.probs))


class CounterfactualService:
    """Edits and flips with the checkpoints of one workspace (the facade's counterfactual methods)."""

    def __init__(self, policy: PathPolicy, checkpoints: CheckpointCache, explainer: ExplainService):
        self.policy, self.checkpoints, self.explainer = policy, checkpoints, explainer

    def explain_edit(self, checkpoint: str, original: str, edited: str, query: str | None = None,
                     extractor: str | None = None, top_k: float = 10.0, second_text: str | None = None,
                     edited_second_text: str | None = None) -> EditDiff:
        """Explain the original text and the edited one with the same checkpoint and extractor, and diff
        them. ``edited_second_text``: the edited second document (default: the original one)."""
        before = self.explainer.explain(checkpoint, original, query, extractor, top_k, second_text)
        after = self.explainer.explain(checkpoint, edited, query, extractor, top_k,
                                       second_text if edited_second_text is None else edited_second_text)
        return edit_diff(before, after)

    def flip(self, checkpoint: str, text: str, query: str | None = None, extractor: str | None = None,
             second_text: str | None = None, options: FlipOptions = FlipOptions()) -> FlipOutcome:
        """The minimal flip search on a typed text, in the extractor's order and a random one."""
        from unirex.textflip import flip_text  # the model code (and torch) load when a text is searched

        t0 = time.perf_counter()
        t = self.explainer.checkpoint_text(checkpoint, text, second_text)
        with t.ck.lock:
            tf = flip_text(t.ck.model, t.ck.tokenizer, t.docs, t.labels, t.ck.max_length, query=query or "",
                           extractor=extractor, options=options)
        return FlipOutcome(checkpoint=str(t.checkpoint), run_id=t.ck.run_id, extractor=tf.extractor, edit=options.edit,
                           seed=options.seed, max_fraction=options.max_fraction, max_words=options.max_words,
                           labels=tf.labels, probs=tf.probs, predicted=tf.predicted, guided=_path(tf, tf.guided),
                           random=_path(tf, tf.random), truncated=tf.truncated, seconds=time.perf_counter() - t0)

    def flip_split(self, checkpoint: str, split: str = "test", extractor: str | None = None,
                   options: FlipOptions = FlipOptions(), limit: int | None = None, batch_size: int = 16,
                   progress: Callable[[int, int], None] | None = None) -> FlipSplitSummary:
        """Evaluate a checkpoint on a split of its dataset with the flip search on (its first ``limit``
        examples): ``flip_words`` and ``flip_words_random`` beside comp/suff AOPC."""
        from unirex.counterfactual import flip_supported
        from unirex.data import load_split
        from unirex.evaluate import evaluate
        from unirex.inference import text_scorer
        from unirex.protocol import input_layout

        t0 = time.perf_counter()
        ref = self.policy.checkpoint(checkpoint)
        folder = self.checkpoints.resolve(ref)
        cfg = from_dict(json.loads((folder / "config.json").read_text()), validate=False)
        if cfg.data_dir and Path(cfg.data_dir).resolve() != self.policy.data_dir.resolve():
            raise UnirexError(f"checkpoint '{checkpoint}' was trained on data outside this workspace's data folder")
        if limit is not None and int(limit) < 1:
            raise UnirexError(f"the number of examples must be >= 1, got {limit}")
        ck = self.checkpoints.get(ref)
        reason = flip_supported(ck.model)
        if reason is not None:
            raise UnirexError(reason)
        ds, built = load_split(self.policy.data_dir, cfg.data.dataset, split, arch=self.policy.arch(cfg.arch),
                               max_length=cfg.data.max_length, layout=input_layout(cfg.protocol, cfg.data.dataset))
        if limit is not None:
            ds = ds.head(int(limit))
        with ck.lock:
            _, scorer = text_scorer(ck.model, extractor)
            result = evaluate(ck.model, ds, lambda batch: scorer(batch)[1], batch_size=batch_size,
                              bins=cfg.model.topk, source=built.summary.get("source"), dataset_name=cfg.data.dataset,
                              progress=progress, flip=options)
        m = result.metrics
        return FlipSplitSummary(checkpoint=str(ref), run_id=ck.run_id, dataset=cfg.data.dataset, split=split,
                                examples=len(ds), flip_words=m.get("flip_words"),
                                flip_words_random=m.get("flip_words_random"), comp_aopc=m.get("comp_aopc"),
                                suff_aopc=m.get("suff_aopc"), options=options, seconds=time.perf_counter() - t0)


__all__ = ["CHANGED", "DELETED", "EXTRACTOR", "INSERTED", "RANDOM", "SAME", "CounterfactualService", "EditDiff",
           "FlipOutcome", "FlipPath", "FlipSplitSummary", "ProbChange", "WordChange", "edit_diff", "word_diff"]
