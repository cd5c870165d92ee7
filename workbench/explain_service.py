"""Explaining behind the workbench facade: typed text explained with a checkpoint (loaded checkpoints are
cached, :mod:`workbench.checkpoints`), the runs Explain can load and the examples a checkpoint was made for."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from unirex.config import from_dict
from unirex.errors import UnirexError
from unirex.registry import check_extractor, post_hoc_extractors
from unirex.runs import RunDir, RunStatus
from unirex.text_input import check_top_k
from workbench import datasets as _datasets
from workbench.batch_explain import BatchInput, BatchResult, check_output, explained_rows, write_rows
from workbench.checkpoints import CachedCheckpoint, CheckpointCache
from workbench.records import DatasetExample, Explanation, RunSummary, ScoreScale
from workbench.safety import PathPolicy


#: examples of a checkpoint's split whose word scores make its per-dataset colour scale
SCALE_EXAMPLES = 50


@dataclass(frozen=True)
class CheckpointText:
    """A typed text ready for a loaded checkpoint: what explaining it and the flip search on it
    (:meth:`workbench.counterfactual.CounterfactualService.flip`) both start from. Use ``ck`` under
    ``ck.lock``."""

    checkpoint: str  # the reference as the workspace's policy resolved it
    ck: CachedCheckpoint
    docs: list[str]  # the text, and the second document where one was given (not blank)
    labels: list[str]


def class_labels(ck: CachedCheckpoint) -> list[str]:
    """The checkpoint's class names; its class numbers where it has none."""
    return ck.labels or [str(i) for i in range(ck.model.num_classes)]


class ExplainService:
    """Explaining with the checkpoints of one workspace (the facade's explain methods call these).

    ``runs`` lists the workspace's runs (the facade's :meth:`~workbench.Workbench.runs`, newest first)."""

    def __init__(self, policy: PathPolicy, checkpoints: CheckpointCache, runs: Callable[[], list[RunSummary]]):
        self.policy, self.checkpoints, self._runs = policy, checkpoints, runs
        self._scales: dict[tuple, ScoreScale] = {}
        self._scales_lock = threading.Lock()

    @staticmethod
    def extractors() -> tuple[str, ...]:
        """Attribution algorithms :meth:`explain` can run on any checkpoint's task LM (besides ``own``): the
        registry's post-hoc specs, plugins' included."""
        return post_hoc_extractors()

    @staticmethod
    def max_text_chars() -> int:
        """The longest text :meth:`explain` accepts (characters over the documents and the query)."""
        from unirex.text_input import MAX_TEXT_CHARS

        return int(MAX_TEXT_CHARS)

    def explain(self, checkpoint: str, text: str, query: str | None = None, extractor: str | None = None,
                top_k: float = 10.0, second_text: str | None = None) -> Explanation:
        """Explain ``text`` with a checkpoint (run id, folder or Hub id). ``extractor``: ``None``/``own`` (the
        checkpoint's own) or one of :meth:`extractors` (``input-x-gradient``, ... plugins' too) on its task LM.
        ``second_text`` is the second document of two-document tasks (e-SNLI's hypothesis)."""
        from unirex.inference import explain_text  # the model code (and torch) load when a text is explained

        t0 = time.perf_counter()
        t = self.checkpoint_text(checkpoint, text, second_text)
        with t.ck.lock:
            ex = explain_text(t.ck.model, t.ck.tokenizer, t.docs, t.labels, t.ck.max_length, query=query or "",
                              extractor=extractor, top_k=top_k)
        return Explanation(checkpoint=str(t.checkpoint), run_id=t.ck.run_id, seconds=time.perf_counter() - t0,
                           **{f.name: getattr(ex, f.name) for f in dataclasses.fields(ex)})

    def checkpoint_text(self, checkpoint: str, text: str, second_text: str | None = None) -> CheckpointText:
        """Resolve ``checkpoint`` through the workspace's policy, load it (cached) and make ``text`` (and
        ``second_text``, the second document of two-document tasks, unless blank) its documents."""
        ref = self.policy.checkpoint(checkpoint)
        ck = self.checkpoints.get(ref)
        docs = [text] + ([second_text] if second_text and second_text.strip() else [])
        return CheckpointText(checkpoint=ref, ck=ck, docs=docs, labels=class_labels(ck))

    def explain_file(self, checkpoint: str, inputs: list[BatchInput], out: str | Path, extractor: str | None = None,
                     top_k: float = 10.0, batch_size: int = 32, faithfulness: bool = False, overwrite: bool = False,
                     progress: Callable[[int], None] | None = None) -> BatchResult:
        """Explain every input (:func:`workbench.batch_explain.read_inputs`) with one load of the checkpoint,
        in length-sorted packed batches (:func:`unirex.inference.explain_texts`), and write one row per input
        to ``out`` (``.jsonl`` / ``.parquet``, :mod:`workbench.batch_explain`). ``progress(1)`` after each row.
        Everything checkable is checked before the model loads; nothing is left at ``out`` on a failure."""
        from unirex.inference import explain_texts  # the model code (and torch) load here

        out = check_output(out, overwrite)
        name = check_extractor(extractor)
        if not inputs:
            raise UnirexError("no text to explain")
        check_top_k(top_k)
        if int(batch_size) < 1:
            raise UnirexError(f"batch size must be at least 1, got {batch_size}")
        t0 = time.perf_counter()
        ck = self.checkpoints.get(self.policy.checkpoint(checkpoint))
        labels = class_labels(ck)
        t1 = time.perf_counter()
        with ck.lock:
            explained = explain_texts(ck.model, ck.tokenizer, [i.text for i in inputs], labels, ck.max_length,
                                      extractor=extractor, top_k=top_k, batch_size=batch_size,
                                      faithfulness=faithfulness)
            rows = write_rows(out, explained_rows(inputs, explained, faithfulness, progress), faithfulness, overwrite)
        return BatchResult(out=out, rows=rows, seconds=time.perf_counter() - t1, load_seconds=t1 - t0,
                           extractor=name, labels=list(labels))

    def checkpoint_runs(self) -> list[RunSummary]:
        """Runs of the workspace that have a checkpoint (newest first): what Explain can load."""
        return [r for r in self._runs() if r.status != RunStatus.CORRUPT  # a linked or unreadable run folder
                and RunDir(self.policy.workspace / "runs" / r.run_id).has_checkpoint()]

    def checkpoint_examples(self, checkpoint: str, split: str = "test", n: int = 20) -> list[DatasetExample]:
        """The first ``n`` examples of the split a checkpoint's dataset has, built for its arch and max length
        (for trying a checkpoint on data it was made for, with the gold rationale)."""
        ref = self.policy.checkpoint(checkpoint)
        folder = self.checkpoints.resolve(ref)
        cfg = from_dict(json.loads((folder / "config.json").read_text()), validate=False)
        if cfg.data_dir and Path(cfg.data_dir).resolve() != self.policy.data_dir.resolve():
            raise UnirexError(f"checkpoint '{checkpoint}' was trained on data outside this workspace's data folder")
        n_rows = len(_datasets.find_examples(self.policy, cfg.data.dataset, cfg.arch, cfg.data.max_length, split))
        return [_datasets.example(self.policy, cfg.data.dataset, cfg.arch, cfg.data.max_length, split, i)
                for i in range(min(n, n_rows))]

    def score_scale(self, checkpoint: str, extractor: str | None = None, split: str = "test",
                    n: int = SCALE_EXAMPLES, progress: Callable[[int, int], None] | None = None) -> ScoreScale:
        """The range of the word scores ``extractor`` (None/``own``: the checkpoint's) gives on the first ``n``
        examples of the checkpoint's ``split``: computed once per checkpoint (as saved), extractor, split and
        ``n``, then kept for this workbench's life; ``progress(done, total)`` after each example."""
        import numpy as np

        ref = self.policy.checkpoint(checkpoint)
        folder = self.checkpoints.resolve(ref)
        info = folder / "checkpoint.json"
        stamp = info.stat().st_mtime_ns if info.is_file() else None
        key = (str(folder), stamp, extractor or "own", split, int(n))
        with self._scales_lock:
            if key in self._scales:
                return self._scales[key]
        examples = self.checkpoint_examples(checkpoint, split, n)
        if not examples:
            raise UnirexError(f"checkpoint '{checkpoint}': its {split} split has no examples to scale the scores by")
        scores: list[float] = []
        for i, e in enumerate(examples):
            if progress is not None:
                progress(i, len(examples))
            docs: dict[int, list[str]] = {}
            for w, d in zip(e.words, e.word_document):
                docs.setdefault(d, []).append(w)
            texts = [" ".join(docs[d]) for d in sorted(docs)]
            ex = self.explain(checkpoint, texts[0], query=e.query or None, extractor=extractor,
                              second_text=texts[1] if len(texts) > 1 else None)
            scores += ex.word_scores[: e.read_words]  # words past the max length were not read (score 0)
        arr = np.asarray(scores, dtype=float)
        arr = arr[np.isfinite(arr)]
        if arr.size == 0:
            raise UnirexError(f"checkpoint '{checkpoint}': no finite word scores on its {split} split")
        scale = ScoreScale(checkpoint=str(ref), extractor=extractor or "own", split=split, n_examples=len(examples),
                           n_words=int(arr.size), low=float(arr.min()), high=float(arr.max()),
                           scale=float(np.quantile(np.abs(arr), 0.99)))
        with self._scales_lock:
            self._scales[key] = scale
        return scale


__all__ = ["ExplainService", "SCALE_EXAMPLES"]
