"""Each compared metric of one evaluation as per-example statistics, for the comparison's bootstrap.

:func:`contributions` turns an evaluation's saved outputs (``outputs/eval_<split>.parquet``,
:func:`unirex.evaluate.load_outputs`) into :class:`unirex.metrics.stats.Contributions` per metric, so that
summing them over all examples gives back the evaluator's number and summing them over a resample gives
that number on the resample:

====================================================  ============================================
acc, comp_aopc, suff_aopc, comp_k*, suff_k*,           a mean over examples (per example: the value)
comp_aopc_unirex, suff_aopc_unirex                     (``protocol=reference``: on the reference's inputs,
                                                       the outputs' ``ref_*_probs``)
plaus_ref_auprc, plaus_ref_token_f1                    a mean over examples (outputs saved since the
                                                       columns ``ref_auprc`` / ``ref_token_f1`` exist)
soft_comp, soft_suff, sensitivity_max,                 a mean over examples, where the evaluation computed
diag_comp, diag_suff                                   them (``eval.extra_metrics``, :mod:`unirex.metrics.extra`)
flip_words, flip_words_random                          a mean over examples, where the evaluation ran the
                                                       flip search (``training.eval_flip``)
macro_f1, task_ref (macro or binary F1)                corpus-level: per-class tp / fp / fn counts,
                                                       F1 recomputed from the summed counts
plaus_auprc                                            a mean over (annotation, document) instances:
                                                       per example the sum and the count
plaus_token_f1                                         a mean over instances with a gold or predicted
                                                       token: per example the sum and the count
plaus_iou_f1                                           corpus-level: F1 of the mean recall (instances
                                                       with gold spans) and mean precision (instances
                                                       with predicted spans), from four sums
====================================================  ============================================

The word-level plausibility metrics need the split table the outputs point at (``split_table`` in
``eval_<split>.json``); without it (or without gold rationales) they are left out. A select-then-predict
model is scored as the evaluator scores it: task metrics over every bin's prediction.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from unirex.evaluate import EvalOutputs, gold_spans_from_source, load_outputs, word_level_documents
from unirex.metrics.extra import per_example as extra_per_example
from unirex.metrics.faithfulness import prob_drop
from unirex.metrics.plausibility import IOU_THRESHOLD, auprc, best_iou, spans_from_mask
from unirex.metrics.reference import reference_task_metric
from unirex.metrics.stats import Contributions, Kind, f1_rows, mean_rows


@dataclass(frozen=True)
class RunExamples:
    """One run's per-example statistics on one split: ``keys`` (one per example: its annotation id) and
    ``metrics`` (``{metric: Contributions}`` with rows in ``keys`` order)."""

    keys: tuple[str, ...]
    metrics: dict[str, Contributions]

    def take(self, keys: Iterable[str]) -> "RunExamples":
        """The same statistics over ``keys`` (a subset of :attr:`keys`), in that order."""
        pos = {k: i for i, k in enumerate(self.keys)}
        idx = np.asarray([pos[k] for k in keys], dtype=np.int64)
        return RunExamples(tuple(keys), {m: Contributions(c.kind, c.rows[idx]) for m, c in self.metrics.items()})


def _task(outputs: EvalOutputs) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(y_true, y_pred, base_probs, base_pred)``: per example, or per example and bin (select-then-predict)."""
    if outputs.bin_probs is not None:
        pred = outputs.bin_probs.argmax(-1)
        return np.repeat(outputs.label[:, None], pred.shape[1], axis=1), pred, outputs.bin_probs, pred
    return outputs.label, outputs.pred, outputs.probs, outputs.pred


def _task_metrics(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int,
                  ref: str | None) -> tuple[Contributions, Contributions, Contributions]:
    """``(acc, macro_f1, task_ref)`` of predictions ``[N]`` or ``[N, K]`` (several per example, all counted);
    ``task_ref`` is the one ``ref`` names (``acc``, ``macro_f1``), else the binary F1 of class 1."""
    correct = (y_true == y_pred).astype(np.float64)
    acc = mean_rows(correct) if correct.ndim == 1 else mean_rows(
        correct.sum(1), np.full(len(correct), correct.shape[1], dtype=np.float64))
    f1 = f1_rows(y_true, y_pred, n_classes)
    return acc, f1, {"acc": acc, "macro_f1": f1}.get(ref) or f1_rows(y_true, y_pred, n_classes, positive=1)


def _unique_keys(ids: list[str]) -> tuple[str, ...]:
    seen: dict[str, int] = {}
    out = []
    for k in ids:
        n = seen.get(k, 0)
        seen[k] = n + 1
        out.append(k if n == 0 else f"{k}#{n}")
    return tuple(out)


def _word_plausibility(outputs: EvalOutputs, table: pl.DataFrame, gold_spans, iou_threshold: float
                       ) -> dict[str, Contributions]:
    has = np.asarray(table["has_rationale"].to_list(), dtype=bool)[outputs.index]
    if not has.any():
        return {}
    docs = word_level_documents(outputs, table, gold_spans)
    per_example = np.asarray([len(d) for d in table["docids"].to_list()], dtype=np.int64)[outputs.index]
    owner = np.repeat(np.arange(len(outputs)), per_example)
    n = len(outputs)
    au, tok, tok_n, r, r_n, p, p_n = (np.zeros(n) for _ in range(7))
    for j, d in zip(owner, docs):
        au[j] += auprc(d.truth, d.scores)
        gold, pred = np.asarray(d.truth, bool), np.asarray(d.hard, bool)
        n_gold, n_pred = int(gold.sum()), int(pred.sum())
        if n_gold or n_pred:
            tp = int((gold & pred).sum())
            pp, rr = (tp / n_pred if n_pred else 0.0), (tp / n_gold if n_gold else 0.0)
            tok[j] += 0.0 if pp == 0 or rr == 0 else 2 * pp * rr / (pp + rr)
            tok_n[j] += 1
        gs, ps = sorted(set(map(tuple, d.spans()))), sorted(set(spans_from_mask(d.hard)))
        hits = sum(int(best_iou(s, gs) >= iou_threshold) for s in ps)
        if gs:
            r[j] += hits / len(gs)
            r_n[j] += 1
        if ps:
            p[j] += hits / len(ps)
            p_n[j] += 1
    return {"plaus_auprc": mean_rows(au, per_example.astype(np.float64)),
            "plaus_token_f1": mean_rows(tok, tok_n),
            "plaus_iou_f1": Contributions(Kind.F1_OF_MEANS, np.stack([r, r_n, p, p_n], axis=1))}


def contributions(outputs: EvalOutputs, meta: dict | None = None, table: pl.DataFrame | None = None,
                  gold_spans=None) -> RunExamples:
    """Per-example statistics of every metric the outputs allow (see the module docstring); ``meta`` is the
    outputs' JSON (its ``stats.task_ref_metric`` / ``dataset`` name the reference task metric), ``table``
    the split table for the word-level plausibility metrics."""
    meta = meta or {}
    y_true, y_pred, base, base_pred = _task(outputs)
    n_classes = max(len(outputs.labels), int(np.max(y_true, initial=0)) + 1, int(np.max(y_pred, initial=0)) + 1)
    ref = (meta.get("stats") or {}).get("task_ref_metric") or reference_task_metric(meta.get("dataset"))
    acc, f1, task_ref = _task_metrics(y_true, y_pred, n_classes, ref)
    out: dict[str, Contributions] = {"acc": acc, "macro_f1": f1, "task_ref": task_ref}
    if outputs.ref is not None and outputs.ref.task is not None and len(outputs):  # in-place task predictions
        ref_pred = outputs.ref.task.argmax(-1)  # [N, K]
        out["task_ref"] = _task_metrics(np.repeat(outputs.label[:, None], ref_pred.shape[1], axis=1), ref_pred,
                                        n_classes, ref)[2]
    if len(outputs):
        comp = prob_drop(base, outputs.comp_probs, base_pred)  # [N, K]
        suff = prob_drop(base, outputs.suff_probs, base_pred)
        K = comp.shape[1]
        for name, arr in (("comp", comp), ("suff", suff)):
            out[f"{name}_aopc"] = mean_rows(arr.mean(axis=1))
            out[f"{name}_aopc_unirex"] = mean_rows(arr.sum(axis=1) / (K + 1))
            for j, k in enumerate(outputs.bins):
                out[f"{name}_k{k:g}"] = mean_rows(arr[:, j])
        if outputs.ref is not None:  # protocol=reference: the UNIREX-style AOPCs on the reference's inputs
            ref_pred = outputs.ref.base.argmax(-1)
            for name, probs in (("comp", outputs.ref.comp), ("suff", outputs.ref.suff)):
                out[f"{name}_aopc_unirex"] = mean_rows(prob_drop(outputs.ref.base, probs, ref_pred).sum(axis=1) / (K + 1))
    if outputs.ref_auprc is not None and outputs.ref_token_f1 is not None:
        out["plaus_ref_auprc"] = mean_rows(outputs.ref_auprc)
        out["plaus_ref_token_f1"] = mean_rows(outputs.ref_token_f1)
    out.update({name: mean_rows(values) for name, values in extra_per_example(outputs).items()})
    if table is not None and len(outputs):
        out.update(_word_plausibility(outputs, table, gold_spans, float(meta.get("iou_threshold") or IOU_THRESHOLD)))
    return RunExamples(_unique_keys(list(outputs.annotation_id)), out)


@functools.lru_cache(maxsize=8)
def _split_table(path: str, source: str | None, stamp: tuple) -> tuple[pl.DataFrame | None, list | None]:
    """The split table at ``path`` and its gold spans, read once per file state (the runs of one dataset
    share it)."""
    table = pl.read_parquet(path)
    if "has_rationale" not in table.columns or "docids" not in table.columns:
        return None, None
    return table, gold_spans_from_source(source, table)


def load_contributions(run_dir: str | Path, split: str) -> RunExamples:
    """:func:`contributions` of a run's saved outputs on ``split`` (a :class:`UnirexError` when it has none),
    with the split table the outputs name when it is still there."""
    outputs, meta = load_outputs(run_dir, split)
    table = gold = None
    path = meta.get("split_table")
    if path and Path(path).is_file():
        st = os.stat(path)
        table, gold = _split_table(str(path), meta.get("source"), (st.st_ino, st.st_size, st.st_mtime_ns))
    return consistent(contributions(outputs, meta, table, gold), meta.get("metrics") or {})


def consistent(ex: RunExamples, recorded: dict) -> RunExamples:
    """``ex`` without the metrics whose per-example sums do not give back the number the evaluation
    recorded (``recorded``: the outputs' ``metrics``): e.g. the UNIREX-style metrics of a ``protocol=reference``
    evaluation, computed on inputs the outputs do not keep. Such a metric gets no interval, never a wrong one."""
    keep = {}
    for name, c in ex.metrics.items():
        want = recorded.get(name)
        if want is not None and not np.isclose(c.value, float(want), rtol=1e-6, atol=1e-9):
            continue
        keep[name] = c
    return RunExamples(ex.keys, keep)


__all__ = ["RunExamples", "consistent", "contributions", "load_contributions"]
