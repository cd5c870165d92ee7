"""Batched ERASER evaluation of a classifier and its rationale scores: task, faithfulness, plausibility.

Per batch of ``B`` examples the evaluator needs ``1 + 2 x |K|`` predictions: the full input, and for
each bin ``k`` the input with the top-k% rationale *deleted* (comprehensiveness) and with *only* the
rationale kept (sufficiency). Deletion follows ERASER: removed subwords are cut out and the sequence is
re-packed (shorter, contiguous positions), never masked and never decoded back to text. For ERASER's
metrics the rationale is of document tokens only and special tokens and the query are always kept,
for every method, under either protocol; under ``protocol=reference`` the UNIREX-style metrics are
scored besides them on the reference's own inputs (:class:`ReferenceScoring`). Plausibility covers
the original input's positions (``input_mask``), also where a method reads a pruned input (FRESH).

How the cost is kept down (``cost`` below counts subword positions through the encoder):

* all ``B x (1 + 2|K|)`` variants of a batch are described by one boolean *keep* matrix ``[R, L]``;
* rows are sorted by their kept length and cut into chunks of at most ``chunk_size`` sequences; each
  chunk is re-packed and padded only to its own longest row, then run in one forward pass
  (:func:`unirex.packing.run_packed`, which training shares for ``model.rationale_removal=drop``);
* the deleted variants of the 5 bins add up to about 5 full lengths (``k`` and ``100 - k`` percent of
  each), so one batch costs about 6 full lengths instead of the 11 of a naive loop, and less again for
  attention, which is quadratic in length.

Memory is bounded by ``batch_size`` (the keep matrix) and ``chunk_size`` (one forward); nothing grows
with the dataset except the per-example outputs kept for the export. Every example's numbers are
independent of which other examples share its batch or chunk (up to floating-point summation order).

The model contract: ``model(input_ids=, attention_mask=, token_type_ids=) -> logits [B, C]`` (an
object with ``.logits`` is accepted too). Rationale scores come from ``explain``: a callable
``explain(batch) -> scores [B, L]`` (higher = more important; only document positions are read), or a
sequence holding, per split-table row, one score per subword of that row (precomputed attributions).

How the model predicts decides what is scored (its ``scoring`` attribute, a
:class:`unirex.rationale.Scoring`): by default the prediction is on the whole input (ERASER's
protocol). A select-then-predict model (A2R, FRESH) predicts from its own rationale, so each bin has
its own prediction, from the rationale-only input (ERASER's: special tokens, query and rationale); its
variants are that input per bin plus one input with no document token, ``V + 1`` rows per example instead of ``1 + 2V``
(:func:`select_then_predict_keep_masks`).

Multiple choice (CoS-E, ``dataset.num_choices``): a batch row is one (example, choice) and the model
gives one logit per row; probabilities are the softmax over an example's choices, for every variant
(each choice row with its own top-k rationale removed or kept, as UNIREX evaluates CoS-E). The
outputs and ERASER's metrics take one row per example, the row of its predicted choice (so the export
has one rationale per annotation); the reference's plausibility (``plaus_ref_*``) and the subword curves
score every row, as UNIREX does.

The metrics beside ERASER's (``extra``, a run's ``eval.extra_metrics``: soft comp / suff, max-sensitivity,
diagnosticity against random; :mod:`unirex.metrics.extra`) run their own passes per batch after ERASER's
(:func:`extra_batch_probs`; what each costs: :mod:`unirex.extra_eval`), none by default.

Outputs are saved per split as ``runs/<run_id>/outputs/eval_<split>.parquet`` plus
``eval_<split>.json`` (see :func:`save_outputs`), which :mod:`unirex.export` turns into ERASER's
results file.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import torch

from unirex.counterfactual import EXTRACTOR, RANDOM, FlipOptions, FlipResult, flip_supported, search_batch
from unirex.data.tensors import input_mask
from unirex.errors import UnirexError
from unirex.extra_eval import (ExtraMetrics, embedding_hook, eraser_candidates, input_embedding_modules, max_sensitivity,
                               random_rationale, scale_embeddings, soft_factors)
from unirex.metrics.extra import FLIP_METRICS, ExtraOutputs
from unirex.metrics.faithfulness import BINS, aopc_unirex, faithfulness_metrics, prob_drop
from unirex.metrics.plausibility import IOU_THRESHOLD, ScoredDocument, plausibility_metrics
from unirex.metrics.reference import (aggregate_plausibility_ref, example_plausibility_ref, reference_task_metric,
                                      task_ref)
from unirex.metrics.registry import computed_metrics
from unirex.metrics.task import accuracy, macro_f1
from unirex.packing import FORWARD_OVERHEAD, plan_chunks, run_packed  # noqa: F401 - re-exported
from unirex.protocol import REFERENCE
from unirex.rationale import Scoring, keep_mask, mark_selectable, selectable, topk_mask

#: k (percent) of the hard rationale scored for token P/R/F1 and IOU F1, and used for the top-level
#: comprehensiveness / sufficiency of the ERASER export.
DEFAULT_HARD_K = 10
OUTPUTS_VERSION = 1


class EvaluationCancelled(Exception):
    """Raised when ``should_stop()`` returns True between batches."""


@dataclass
class EvalOutputs:
    """Per-example outputs, one row per split-table row, in table order (``index`` ascending).

    Shapes: ``N`` examples, ``C`` labels, ``K`` bins. Probabilities are float64 softmaxes of the
    model's logits. ``word_scores[i]`` / ``hard_words[i]`` run over the words of all documents of
    example ``i`` concatenated (``doc_word_counts`` in the split table splits them); truncated words
    score 0 and are never in the hard rationale.
    """

    labels: list[str]
    bins: tuple[float, ...]
    hard_k: float
    index: np.ndarray  # [N] row in the split table
    annotation_id: list[str]
    label: np.ndarray  # [N] gold label ids
    pred: np.ndarray  # [N] predicted label ids (argmax of probs)
    probs: np.ndarray  # [N, C]
    comp_probs: np.ndarray  # [N, K, C] rationale deleted
    suff_probs: np.ndarray  # [N, K, C] only the rationale kept
    hard_comp_probs: np.ndarray  # [N, C] at hard_k
    hard_suff_probs: np.ndarray  # [N, C] at hard_k
    word_scores: list[np.ndarray]  # float64 per word (subword scores summed)
    hard_words: list[np.ndarray]  # bool per word: a subword of it is in the top hard_k %
    subword_scores: list[np.ndarray] | None = None  # float32 per subword of the row, when kept
    #: select-then-predict models only: [N, K, C] the prediction from each bin's rationale (the base
    #: of that bin's comp / suff); ``probs`` / ``pred`` are then the ``hard_k`` bin's prediction
    bin_probs: np.ndarray | None = None
    #: ``protocol=reference`` only, not saved: the reference's inputs' predictions, per bin ``[N, K, C]``
    #: (:class:`ReferenceScoring`), which the UNIREX-style metrics read; None: they read ERASER's
    ref: "ReferenceOutputs | None" = None
    #: UNIREX's per-example plausibility (``plaus_ref_auprc`` / ``plaus_ref_token_f1`` are their means over
    #: the table's rows): [N] each, for the comparison's bootstrap; None in outputs saved before they were kept
    ref_auprc: np.ndarray | None = None
    ref_token_f1: np.ndarray | None = None
    #: what the metrics beside ERASER's read (``eval.extra_metrics``, :mod:`unirex.metrics.extra`); None: none asked
    extra: ExtraOutputs | None = None

    def __len__(self) -> int:
        return len(self.index)


@dataclass
class ReferenceOutputs:
    """Per example (the rows of :class:`EvalOutputs`), per faithfulness bin, ``[N, K, C]``: the predictions on
    the ``reference`` protocol's inputs (:class:`ReferenceScoring`): comp / suff's base, the input without
    the rationale, the rationale alone, and (select-then-predict models) the task prediction."""

    base: np.ndarray
    comp: np.ndarray
    suff: np.ndarray
    task: np.ndarray | None = None


@dataclass
class EvalResult:
    metrics: dict[str, float | None]
    outputs: EvalOutputs
    stats: dict = field(default_factory=dict)  # timing and cost counters


# --- the hot path ---------------------------------------------------------------------------------


def _logits(model, **inputs) -> torch.Tensor:
    out = model(**inputs)
    return getattr(out, "logits", out)


def variant_keep_masks(scores: torch.Tensor, explainable: torch.Tensor, attention_mask: torch.Tensor,
                       bins: Sequence[float]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The keep matrix of all variants of a batch, ``[(1 + 2K) * B, L]`` bool: the full input, then the
    comprehensiveness variants of each bin, then the sufficiency variants; and the top-k masks."""
    am = attention_mask.bool()
    expl = explainable.bool() & am
    sels = [topk_mask(scores, expl, attention_mask, k) for k in bins]
    keeps = [am] + [am & ~s for s in sels] + [am & (~expl | s) for s in sels]
    return torch.cat(keeps, dim=0), sels


def select_then_predict_keep_masks(scores: torch.Tensor, explainable: torch.Tensor, attention_mask: torch.Tensor,
                                   bins: Sequence[float], input_mask: torch.Tensor | None = None,
                                   ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The keep matrix of a select-then-predict model's variants, ``[(K + 1) * B, L]`` bool: for each
    bin, the rationale-only input the model predicts from, then the input with no document token
    (comprehensiveness's input, shared by the bins); and the top-k masks.

    The inputs are ERASER's, as every other method gets them: the special tokens and the query of the
    original input (``input_mask``, default ``attention_mask``; FRESH reads a pruned one) stay, plus the
    rationale. (Before issue 22 A2R and FRESH kept only [CLS] here, a stricter input than the others';
    the strict input is now the ``reference`` protocol's, for every method, :class:`ReferenceScoring`.)"""
    am = attention_mask.bool()
    expl = explainable.bool() & am
    full = (input_mask if input_mask is not None else attention_mask).bool()
    always = full & ~explainable.bool()  # special tokens and the query
    sels = [topk_mask(scores, expl, attention_mask, k) for k in bins]
    only = [always | s for s in sels]
    return torch.cat(only + [always], dim=0), sels


@torch.no_grad()
def variant_probs(model, batch: dict, keep: torch.Tensor, chunk_size: int, pad_token_id: int,
                  num_choices: int | None = None) -> tuple[torch.Tensor, dict]:
    """Run every row of ``keep`` (``[R, L]``, row ``r`` describes batch example ``r % B``) through the
    model, re-packed, in length-sorted chunks of at most ``chunk_size`` sequences (:func:`plan_chunks`).

    Returns ``probs [R, C]`` (float64) and counters (forward passes, positions run incl. padding).
    Multiple choice (``num_choices=C``, one batch row per choice, an example's rows consecutive): the
    model gives one logit per row; each example's ``C`` rows of a variant are soft-maxed together and
    every row gets its example's probabilities over the choices.
    """
    B = batch["input_ids"].shape[0]
    src = torch.arange(keep.shape[0], device=keep.device) % B
    rows = {"input_ids": batch["input_ids"][src], "token_type_ids": batch["token_type_ids"][src]}

    def forward(packed: dict) -> torch.Tensor:
        return _logits(model, input_ids=packed["input_ids"], attention_mask=packed["attention_mask"],
                       token_type_ids=packed["token_type_ids"]).float()

    logits, cost = run_packed(forward, rows, keep, chunk_size, pad_token_id)
    return _grouped_probs(logits, num_choices), {"forward_passes": cost.forward_passes, "positions": cost.positions}


def _batch_scores(explain, batch: dict) -> torch.Tensor:
    if callable(explain):
        with torch.enable_grad():
            scores = explain(batch)
        scores = scores.detach()
    else:
        L = batch["input_ids"].shape[1]
        rows = []
        for i in batch["index"].tolist():
            s = np.asarray(explain[i], dtype=np.float32).reshape(-1)
            rows.append(np.pad(s[:L], (0, max(0, L - len(s)))))
        scores = torch.from_numpy(np.stack(rows))
    if scores.shape != batch["input_ids"].shape:
        raise ValueError(f"rationale scores have shape {tuple(scores.shape)}, expected {tuple(batch['input_ids'].shape)}")
    return scores.to(batch["input_ids"].device).float()


def _pool_words(values: torch.Tensor, word_ids: torch.Tensor, n_words: int) -> torch.Tensor:
    """Sum ``values [B, L]`` into ``[B, n_words]`` by ``word_ids`` (-1 = not a document word)."""
    on = word_ids >= 0
    idx = torch.where(on, word_ids, torch.full_like(word_ids, n_words))
    out = torch.zeros((values.shape[0], n_words + 1), dtype=torch.float64, device=values.device)
    out.scatter_add_(1, idx.long(), torch.where(on, values.double(), torch.zeros_like(values, dtype=torch.float64)))
    return out[:, :n_words]


# --- gold spans -----------------------------------------------------------------------------------


def gold_spans_from_source(source: str | Path | None, table: pl.DataFrame) -> list[list[tuple[int, int, int]]] | None:
    """Gold evidence spans per split-table row as ``[(doc_position, start, end), ...]`` (word offsets
    within the document, end exclusive): the table's ``evidence_spans`` column, or (older builds) read
    from the ERASER annotation file ``source``
    (``BuiltSplit.summary['source']``). None when the file is not available: callers then use the
    maximal runs of the gold word mask, which differ only where two evidences touch or overlap."""
    if "evidence_spans" in table.columns:  # stored by the build (BUILD_VERSION >= 2)
        return [[tuple(int(x) for x in span) for span in spans] for spans in table["evidence_spans"].to_list()]
    if not source or not Path(source).is_file():
        return None
    from unirex.data.eraser import read_annotations

    by_id = {a.annotation_id: a for a in read_annotations(Path(source))}
    out = []
    for ann_id, docids in zip(table["annotation_id"].to_list(), table["docids"].to_list()):
        ann = by_id.get(ann_id)
        pos = {d: j for j, d in enumerate(docids)}
        spans = [] if ann is None else [(pos[e.docid], e.start_token, e.end_token) for e in ann.all_evidences if e.docid in pos]
        out.append(spans)
    return out


# --- word level (ERASER) --------------------------------------------------------------------------


def word_level_documents(outputs: EvalOutputs, table: pl.DataFrame,
                         gold_spans: list[list[tuple[int, int, int]]] | None = None) -> list[ScoredDocument]:
    """One :class:`ScoredDocument` per (annotation, document), as ERASER scores them."""
    ids = table["annotation_id"].to_list()
    counts = table["doc_word_counts"].to_list()
    docids = table["docids"].to_list()
    gold = table["rationale_words"].to_list()
    docs = []
    for j, row in enumerate(outputs.index.tolist()):
        offsets = np.concatenate(([0], np.cumsum(counts[row])))
        g = np.asarray(gold[row], dtype=bool)
        for d, docid in enumerate(docids[row]):
            a, b = int(offsets[d]), int(offsets[d + 1])
            spans = None
            if gold_spans is not None:
                spans = tuple(sorted({(s, e) for (p, s, e) in gold_spans[row] if p == d}))
            docs.append(ScoredDocument(key=(ids[row], docid), truth=g[a:b], scores=outputs.word_scores[j][a:b],
                                       hard=outputs.hard_words[j][a:b], gold_spans=spans))
    return docs


def task_and_faithfulness(outputs: EvalOutputs, log_odds: bool = True, dataset_name: str | None = None) -> dict[str, float]:
    """Task metrics (ERASER's ``acc``, ``macro_f1`` and the reference's ``task_ref`` for ``dataset_name``)
    and faithfulness metrics. A select-then-predict model (``outputs.bin_probs`` set) is scored as
    UNIREX's code scores A2R: task metrics over the predictions of every bin (``N x K`` of them), and
    each bin's comp / suff from that bin's own prediction."""
    if outputs.bin_probs is not None:
        bin_pred = outputs.bin_probs.argmax(-1) if len(outputs) else np.zeros((0, len(outputs.bins)), dtype=np.int64)
        y_true = np.repeat(outputs.label[:, None], bin_pred.shape[1], axis=1).ravel()
        y_pred = bin_pred.ravel()
        m = {"acc": accuracy(y_true, y_pred), "macro_f1": macro_f1(y_true, y_pred)}
        m["task_ref"] = task_ref(y_true, y_pred, dataset_name)[0]
        m.update(faithfulness_metrics(outputs.bin_probs, outputs.comp_probs, outputs.suff_probs, bin_pred,
                                      outputs.bins, log_odds_variants=log_odds))
    else:
        m = {"acc": accuracy(outputs.label, outputs.pred), "macro_f1": macro_f1(outputs.label, outputs.pred)}
        m["task_ref"] = task_ref(outputs.label, outputs.pred, dataset_name)[0]
        m.update(faithfulness_metrics(outputs.probs, outputs.comp_probs, outputs.suff_probs, outputs.pred,
                                      outputs.bins, log_odds_variants=log_odds))
    m["comp"] = float(prob_drop(outputs.probs, outputs.hard_comp_probs, outputs.pred).mean()) if len(outputs) else 0.0
    m["suff"] = float(prob_drop(outputs.probs, outputs.hard_suff_probs, outputs.pred).mean()) if len(outputs) else 0.0
    if outputs.ref is not None:
        m.update(reference_protocol_metrics(outputs, dataset_name))
    return m


def reference_protocol_metrics(outputs: EvalOutputs, dataset_name: str | None = None) -> dict[str, float]:
    """The UNIREX-style metrics on the ``reference`` protocol's inputs (``outputs.ref``):
    ``comp_aopc_unirex`` / ``suff_aopc_unirex`` (each bin's drop from its base's predicted label, the sum
    over bins / ``(|K| + 1)``) and, for a select-then-predict model, ``task_ref`` over the in-place task
    predictions of every bin (a model that predicts from the whole input keeps ERASER's prediction)."""
    ref = outputs.ref
    if not len(outputs):
        return {"comp_aopc_unirex": 0.0, "suff_aopc_unirex": 0.0}
    pred = ref.base.argmax(-1)  # [N, K]
    out = {"comp_aopc_unirex": aopc_unirex(prob_drop(ref.base, ref.comp, pred)),
           "suff_aopc_unirex": aopc_unirex(prob_drop(ref.base, ref.suff, pred))}
    if ref.task is not None:
        task_pred = ref.task.argmax(-1)
        out["task_ref"] = task_ref(np.repeat(outputs.label[:, None], task_pred.shape[1], axis=1).ravel(),
                                   task_pred.ravel(), dataset_name)[0]
    return out


def word_level_plausibility(outputs: EvalOutputs, table: pl.DataFrame, gold_spans=None,
                            iou_threshold: float = IOU_THRESHOLD) -> dict[str, float | None]:
    """ERASER word-level plausibility (``plaus_*`` keys); all None when no example has gold evidence."""
    has = np.asarray(table["has_rationale"].to_list(), dtype=bool)[outputs.index]
    if not has.any():
        return {f"plaus_{k}": None for k in ("auprc", "ap", "token_p", "token_r", "token_f1", "iou_f1")}
    m = plausibility_metrics(word_level_documents(outputs, table, gold_spans), iou_threshold)
    return {f"plaus_{k}": v for k, v in m.items()}


# --- the evaluator: one scoring strategy per way a model predicts ---------------------------------


@dataclass(frozen=True)
class _Bins:
    """The faithfulness bins, and the variant bins: the bins plus ``hard_k`` when it is not one of them."""

    bins: tuple[float, ...]
    hard_k: float

    @property
    def variant_bins(self) -> tuple[float, ...]:
        return self.bins + (() if self.hard_k in self.bins else (self.hard_k,))

    @property
    def hard_j(self) -> int:  # the hard rationale's variant
        return self.variant_bins.index(self.hard_k)


@dataclass
class _BatchProbs:
    """A batch's predictions: on the scored input (``full [B, C]``), per variant bin with the rationale
    deleted (``comp [B, V, C]``) and only the rationale kept (``suff [B, V, C]``); select-then-predict
    models also each bin's own prediction (``bin [B, K, C]``). ``sels``: the top-k mask per variant bin."""

    full: torch.Tensor
    comp: torch.Tensor
    suff: torch.Tensor
    sels: list[torch.Tensor]
    cost: dict
    bin: torch.Tensor | None = None
    ref: "_RefProbs | None" = None


@dataclass
class _RefProbs:
    """A batch's predictions on the ``reference`` protocol's inputs, per faithfulness bin (``[B, K, C]``):
    the base of comp / suff (``base``), the input without the rationale (``comp``), the rationale alone
    (``suff``); select-then-predict models also the task prediction (``task``)."""

    base: torch.Tensor
    comp: torch.Tensor
    suff: torch.Tensor
    task: torch.Tensor | None = None


class EraserScoring:
    """ERASER's protocol, for models that predict from the whole input (a task LM with an attribution
    algorithm, an LM extractor): per example the full input, then each bin's comprehensiveness and
    sufficiency input, ``1 + 2V`` rows (:func:`variant_keep_masks`)."""

    select_then_predict = False

    def batch_probs(self, model, batch: dict, scores: torch.Tensor, bins: _Bins, chunk_size: int, pad_id: int,
                    n_choices: int | None) -> _BatchProbs:
        var_bins = bins.variant_bins
        V, B = len(var_bins), scores.shape[0]
        keep, sels = variant_keep_masks(scores, batch["explainable"], batch["attention_mask"], var_bins)
        probs, cost = variant_probs(model, batch, keep, chunk_size, pad_id, n_choices)
        probs = probs.view(1 + 2 * V, B, -1).cpu()
        comp = probs[1 : 1 + V].transpose(0, 1)  # [B, V, C]
        suff = probs[1 + V :].transpose(0, 1)
        return _BatchProbs(full=probs[0], comp=comp, suff=suff, sels=sels, cost=cost)


class SelectThenPredictScoring:
    """Select-then-predict models (A2R, FRESH): the prediction of bin k is the one from its rationale, so
    per example each bin's rationale-only input plus one input with no document token, ``V + 1`` rows
    (:func:`select_then_predict_keep_masks`); sufficiency is 0 by construction."""

    select_then_predict = True

    def batch_probs(self, model, batch: dict, scores: torch.Tensor, bins: _Bins, chunk_size: int, pad_id: int,
                    n_choices: int | None) -> _BatchProbs:
        var_bins = bins.variant_bins
        V, K, B = len(var_bins), len(bins.bins), scores.shape[0]
        keep, sels = select_then_predict_keep_masks(scores, batch["explainable"], batch["attention_mask"], var_bins,
                                                    input_mask(batch))
        probs, cost = variant_probs(model, batch, keep, chunk_size, pad_id, n_choices)
        probs = probs.view(V + 1, B, -1).cpu()
        suff = probs[:V].transpose(0, 1)  # [B, V, C]
        comp = probs[V].unsqueeze(1).expand_as(suff)
        return _BatchProbs(full=suff[:, bins.hard_j], comp=comp, suff=suff, sels=sels, cost=cost, bin=suff[:, :K])


def _grouped_probs(logits: torch.Tensor, num_choices: int | None) -> torch.Tensor:
    """Float64 probabilities per row from row logits (multiple choice: soft-maxed over an example's rows)."""
    if num_choices:
        from unirex.models.task_lm import group_choices

        return torch.softmax(group_choices(logits.double(), num_choices), dim=-1).repeat_interleave(num_choices, 0)
    return torch.softmax(logits.double(), dim=-1)


@torch.no_grad()
def in_place_probs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor,
                   chunk_size: int, num_choices: int | None = None) -> torch.Tensor:
    """Probabilities ``[R, C]`` of full-length rows masked in place (nothing deleted, every token at its
    original position), ``chunk_size`` rows per forward pass (a multiple of ``num_choices``)."""
    step = max(1, int(chunk_size))
    if num_choices:
        step = max(num_choices, step - step % num_choices)
    out = [_logits(model, input_ids=input_ids[i : i + step], attention_mask=attention_mask[i : i + step],
                   token_type_ids=token_type_ids[i : i + step]).float() for i in range(0, input_ids.shape[0], step)]
    return _grouped_probs(torch.cat(out), num_choices)


class ReferenceScoring:
    """The ``reference`` protocol's inputs (UNIREX's ``expl_forward`` in ``metric`` mode), run besides
    ERASER's for the UNIREX-style metrics (``comp_aopc_unirex``, ``suff_aopc_unirex``, ``task_ref``).

    The rationale of bin ``k`` is the top-k of every token but [CLS] and [SEP] (the query included,
    :func:`unirex.rationale.selectable`); the inputs, deleted and re-packed as the reference does:

    * comprehensiveness: every token but the rationale ([CLS], [SEP] and the rest of the query stay);
    * sufficiency: [CLS] and the rationale, nothing else (no [SEP], no query);
    * select-then-predict models (A2R, FRESH): the base of comp / suff is the prediction from the
      sufficiency input (so sufficiency is 0), comprehensiveness's input is the reference's empty one
      (every position the pad token, attention mask all 0, at the batch's length; the reference pads
      to ``max_length``), and the task prediction (``task_ref``) is from [CLS] + the rationale masked in
      place at the original positions (the reference's training-mode forward, which its task metrics read).
    """

    def batch_probs(self, model, batch: dict, scores: torch.Tensor, bins: _Bins, chunk_size: int, pad_id: int,
                    n_choices: int | None, full: torch.Tensor, select_then_predict: bool) -> tuple[_RefProbs, dict]:
        am = batch["attention_mask"]
        cand = selectable(batch, REFERENCE)
        K, B = len(bins.bins), scores.shape[0]
        sels = [topk_mask(scores, cand, am, k) for k in bins.bins]
        only = [keep_mask(am, cand, s, "only").bool() for s in sels]
        if select_then_predict:
            probs, cost = variant_probs(model, batch, torch.cat(only), chunk_size, pad_id, n_choices)
            base = probs.view(K, B, -1).transpose(0, 1).cpu()
            empty = in_place_probs(model, torch.full_like(batch["input_ids"], pad_id), torch.zeros_like(am),
                                   torch.zeros_like(batch["token_type_ids"]), chunk_size, n_choices)
            ids = batch["input_ids"].repeat(K, 1)
            task = in_place_probs(model, ids, torch.cat(only).long(), batch["token_type_ids"].repeat(K, 1), chunk_size,
                                  n_choices).view(K, B, -1).transpose(0, 1).cpu()
            comp = empty.cpu().unsqueeze(1).expand_as(base)
            n_in_place = -(-ids.shape[0] // max(1, chunk_size)) + -(-B // max(1, chunk_size))  # ceil divisions
            cost = {"forward_passes": cost["forward_passes"] + n_in_place,
                    "positions": cost["positions"] + ids.numel() + batch["input_ids"].numel()}
            return _RefProbs(base=base, comp=comp, suff=base, task=task), cost
        keep = torch.cat([am.bool() & ~s for s in sels] + only)
        probs, cost = variant_probs(model, batch, keep, chunk_size, pad_id, n_choices)
        probs = probs.view(2 * K, B, -1).cpu()
        base = full.unsqueeze(1).expand(B, K, full.shape[-1])
        return _RefProbs(base=base, comp=probs[:K].transpose(0, 1), suff=probs[K:].transpose(0, 1)), cost


def scoring_strategy(scoring: Scoring) -> EraserScoring | SelectThenPredictScoring:
    """The strategy that scores a model that predicts as ``scoring`` says."""
    return SelectThenPredictScoring() if scoring.select_then_predict else EraserScoring()


# --- the metrics beside ERASER's (unirex.metrics.extra): their own passes, per batch ------------------


@dataclass
class _ExtraProbs:
    """A batch's inputs of the extra metrics (:class:`unirex.metrics.extra.ExtraOutputs`, as tensors)."""

    soft_comp: torch.Tensor | None = None
    soft_suff: torch.Tensor | None = None
    random_comp: torch.Tensor | None = None
    random_suff: torch.Tensor | None = None
    sensitivity: torch.Tensor | None = None
    cost: dict = field(default_factory=lambda: {"forward_passes": 0, "positions": 0})
    seconds: float = 0.0


@torch.no_grad()
def scaled_variant_probs(model, batch: dict, keep: torch.Tensor, factors: torch.Tensor | None, chunk_size: int,
                         pad_token_id: int, num_choices: int | None = None) -> tuple[torch.Tensor, dict]:
    """:func:`variant_probs` with each kept token's word embedding multiplied by its ``factors`` ``[R, L]``
    (a forward hook on the model's input-embedding layers, :func:`unirex.extra_eval.embedding_hook`);
    ``factors=None``: no scaling, exactly :func:`variant_probs`."""
    if factors is None:
        return variant_probs(model, batch, keep, chunk_size, pad_token_id, num_choices)
    modules = input_embedding_modules(model)
    if not modules:
        raise UnirexError("eval.extra_metrics=soft scales the input embeddings, and this model has no "
                          "input-embedding layer (get_input_embeddings)")
    B = batch["input_ids"].shape[0]
    src = torch.arange(keep.shape[0], device=keep.device) % B
    rows = {"input_ids": batch["input_ids"][src], "token_type_ids": batch["token_type_ids"][src],
            "factors": factors.float()}

    def forward(packed: dict) -> torch.Tensor:
        with embedding_hook(modules, packed["input_ids"], scale_embeddings(packed["factors"])):
            return _logits(model, input_ids=packed["input_ids"], attention_mask=packed["attention_mask"],
                           token_type_ids=packed["token_type_ids"]).float()

    logits, cost = run_packed(forward, rows, keep, chunk_size, pad_token_id)
    return _grouped_probs(logits, num_choices), {"forward_passes": cost.forward_passes, "positions": cost.positions}


def extra_batch_probs(model, batch: dict, scores: torch.Tensor, full: torch.Tensor, explain, extra: ExtraMetrics,
                      hard_k: float, chunk_size: int, pad_id: int, n_choices: int | None,
                      select_then_predict: bool) -> _ExtraProbs:
    """The extra metrics' inputs for one batch (:mod:`unirex.extra_eval` says what each costs): the soft
    comp / suff inputs' predictions, the random rationale's (of the size of the ``hard_k`` one) deleted and
    kept alone, run together in one packed pass; and the scores' max-sensitivity (``explain`` callable
    only). A select-then-predict model gets no soft or random predictions."""
    t0 = time.perf_counter()
    out = _ExtraProbs()
    am = batch["attention_mask"].bool()
    cand = eraser_candidates(batch)
    B = scores.shape[0]
    names, keeps, factors = [], [], []
    if not select_then_predict:
        if "soft" in extra:
            comp_f, suff_f = soft_factors(scores, cand, am)
            names += ["soft_comp", "soft_suff"]
            keeps += [comp_f > 0, suff_f > 0]
            factors += [comp_f, suff_f]
        if "diag" in extra:
            r = random_rationale(batch["index"], cand, am, hard_k, extra.seed)
            names += ["random_comp", "random_suff"]
            keeps += [am & ~r, am & (~cand | r)]  # ERASER's comp / suff inputs of that rationale
            factors += [am.float(), am.float()]
    if names:
        scaled = "soft" in extra
        probs, out.cost = scaled_variant_probs(model, batch, torch.cat(keeps), torch.cat(factors) if scaled else None,
                                               chunk_size, pad_id, n_choices)
        probs = probs.view(len(names), B, -1).cpu()
        for j, name in enumerate(names):
            setattr(out, name, probs[j])
    if "sensitivity" in extra and callable(explain):
        target = None if n_choices else full.argmax(dim=-1).to(scores.device)
        out.sensitivity = max_sensitivity(model, explain, batch, scores, target, extra)
    out.seconds = time.perf_counter() - t0
    return out


#: the fields of :class:`_ExtraProbs` a :class:`_Collector` keeps per batch
_EXTRA_PROBS = ("soft_comp", "soft_suff", "random_comp", "random_suff", "sensitivity")


class _Collector:
    """What :func:`evaluate` keeps of each batch: predictions, word-level scores and hard rationale, and
    the subword-level documents and reference rows of the plausibility metrics."""

    def __init__(self, table: pl.DataFrame, bins: _Bins, keep_subword_scores: bool):
        self.bins, self.keep_subword_scores = bins, keep_subword_scores
        self.n_words_all = np.asarray([sum(c) for c in table["doc_word_counts"].to_list()], dtype=np.int64)
        self.parts: dict[str, list] = {k: [] for k in ("index", "label", "pred", "probs", "comp", "suff", "hcomp",
                                                       "hsuff", "bin", "rbase", "rcomp", "rsuff", "rtask")}
        self.word_scores, self.hard_words, self.sub_scores, self.sub_docs, self.ref_rows = [], [], [], [], []
        self.n_forward = self.positions = 0
        self.extra_parts: dict[str, list] | None = None
        self.seconds_extra = 0.0

    def _add_extra_part(self, name: str, value: torch.Tensor | None) -> None:
        if self.extra_parts is None:
            self.extra_parts = {n: [] for n in (*_EXTRA_PROBS, *FLIP_METRICS)}
        if value is not None:
            self.extra_parts[name].append(value)

    def add_extra(self, ep: _ExtraProbs) -> None:
        """A batch's :class:`_ExtraProbs` (after :meth:`add` of the same batch)."""
        for name in _EXTRA_PROBS:
            self._add_extra_part(name, getattr(ep, name))
        self.n_forward += ep.cost["forward_passes"]
        self.positions += ep.cost["positions"]
        self.seconds_extra += ep.seconds

    def add_flips(self, results: dict[str, list[FlipResult]]) -> None:
        """A batch's flip search (:meth:`_FlipRun.add`, after :meth:`add` of the same batch): each example's
        fraction per order, kept per example as the extra metrics' inputs are."""
        for key, order in zip(FLIP_METRICS, (EXTRACTOR, RANDOM)):
            if order in results:
                self._add_extra_part(key, torch.tensor([r.fraction for r in results[order]], dtype=torch.float64))

    def _extra_outputs(self, order: np.ndarray) -> ExtraOutputs | None:
        if self.extra_parts is None:
            return None
        cat = {k: (torch.cat(v).numpy().astype(np.float64)[order] if v else None) for k, v in self.extra_parts.items()}
        return ExtraOutputs(soft_comp_probs=cat["soft_comp"], soft_suff_probs=cat["soft_suff"],
                            random_comp_probs=cat["random_comp"], random_suff_probs=cat["random_suff"],
                            sensitivity=cat["sensitivity"], **{k: cat[k] for k in FLIP_METRICS})

    def add(self, batch: dict, scores: torch.Tensor, bp: _BatchProbs) -> None:
        K, hard_j, parts = len(self.bins.bins), self.bins.hard_j, self.parts
        if bp.bin is not None:
            parts["bin"].append(bp.bin)
        if bp.ref is not None:
            parts["rbase"].append(bp.ref.base), parts["rcomp"].append(bp.ref.comp), parts["rsuff"].append(bp.ref.suff)
            if bp.ref.task is not None:
                parts["rtask"].append(bp.ref.task)
        self.n_forward += bp.cost["forward_passes"]
        self.positions += bp.cost["positions"]
        parts["index"].append(batch["index"].cpu())
        parts["label"].append(batch["label"].cpu())
        parts["pred"].append(bp.full.argmax(dim=-1))
        parts["probs"].append(bp.full)
        parts["comp"].append(bp.comp[:, :K])
        parts["suff"].append(bp.suff[:, :K])
        parts["hcomp"].append(bp.comp[:, hard_j])
        parts["hsuff"].append(bp.suff[:, hard_j])
        self._add_words(batch, scores, bp.sels[hard_j])
        self._add_subwords(batch, scores, bp.sels[hard_j])

    def _add_words(self, batch: dict, scores: torch.Tensor, hard_sel: torch.Tensor) -> None:
        """Word level: sum-pooled scores and the hard rationale projected onto words."""
        B = scores.shape[0]
        rows = batch["index"].cpu().numpy()
        nw = self.n_words_all[rows]
        W = int(nw.max()) if len(nw) else 0
        ws = _pool_words(scores, batch["word_ids"], W).cpu().numpy()
        hw = _pool_words(hard_sel.float(), batch["word_ids"], W).cpu().numpy() > 0
        self.word_scores.extend(ws[i, : nw[i]] for i in range(B))
        self.hard_words.extend(hw[i, : nw[i]] for i in range(B))

    def _add_subwords(self, batch: dict, scores: torch.Tensor, hard_sel: torch.Tensor) -> None:
        """Subword level: the document positions of each example, for training-curve plausibility."""
        rows = batch["index"].cpu().numpy()
        # the ORIGINAL input's positions, not the tokens the model read: FRESH's pruned gold tokens are misses
        positions = input_mask(batch)
        expl = (batch["explainable"].bool() & positions).cpu().numpy()
        sc, gold, hard = scores.cpu().numpy(), batch["rationale"].cpu().numpy() > 0, hard_sel.cpu().numpy()
        has = batch["has_rationale"].cpu().numpy()
        lens = positions.sum(dim=1).cpu().numpy()
        am = positions.cpu().numpy()
        for i in range(scores.shape[0]):
            if self.keep_subword_scores:
                self.sub_scores.append(sc[i, : lens[i]].copy())
            # the reference's unit: every non-padding position, special tokens and query included
            self.ref_rows.append((int(rows[i]), *example_plausibility_ref(gold[i][am[i]], sc[i][am[i]], bool(has[i])),
                                  bool(has[i])))
            if has[i]:
                e = expl[i]
                self.sub_docs.append(ScoredDocument(key=(int(rows[i]),), truth=gold[i][e], scores=sc[i][e], hard=hard[i][e]))

    def outputs(self, dataset, select_then_predict: bool) -> EvalOutputs:
        """The per-example outputs in table order (multiple choice: the row of each example's predicted choice)."""
        table = dataset.table
        cat = {k: (torch.cat(v).numpy() if v else None) for k, v in self.parts.items()}
        cat.update({k: np.zeros((0,)) for k in ("index", "label", "pred") if cat[k] is None})
        order = np.argsort(cat["index"], kind="stable")
        if getattr(dataset, "num_choices", None):  # one output per example: the row of its predicted choice
            choice = np.asarray(table["choice"].to_list(), dtype=np.int64)
            order = order[choice[cat["index"][order].astype(np.int64)] == cat["pred"][order]]
        labels = list(getattr(dataset, "labels", None) or [])
        ids = table["annotation_id"].to_list()
        ref = {r[0]: r[1:3] for r in self.ref_rows}
        ref_rows = [ref.get(int(i), (0.0, 0.0)) for i in cat["index"][order]]
        return EvalOutputs(
            labels=labels, bins=self.bins.bins, hard_k=self.bins.hard_k, index=cat["index"][order].astype(np.int64),
            annotation_id=[ids[i] for i in cat["index"][order]],
            label=cat["label"][order].astype(np.int64), pred=cat["pred"][order].astype(np.int64),
            probs=cat["probs"][order], comp_probs=cat["comp"][order], suff_probs=cat["suff"][order],
            hard_comp_probs=cat["hcomp"][order], hard_suff_probs=cat["hsuff"][order],
            word_scores=[self.word_scores[i] for i in order], hard_words=[self.hard_words[i] for i in order],
            subword_scores=[self.sub_scores[i] for i in order] if self.keep_subword_scores else None,
            bin_probs=cat["bin"][order] if select_then_predict else None,
            ref=None if cat["rbase"] is None else ReferenceOutputs(
                base=cat["rbase"][order], comp=cat["rcomp"][order], suff=cat["rsuff"][order],
                task=None if cat["rtask"] is None else cat["rtask"][order]),
            ref_auprc=np.asarray([a for a, _ in ref_rows], dtype=np.float64).reshape(-1),
            ref_token_f1=np.asarray([f for _, f in ref_rows], dtype=np.float64).reshape(-1),
            extra=self._extra_outputs(order),
        )

    def subword_metrics(self, iou_threshold: float) -> dict[str, float | None]:
        """``plaus_sub_*`` (documents with gold evidence) and ``plaus_ref_*`` (every row, the reference's unit)."""
        sub = plausibility_metrics(self.sub_docs, iou_threshold) if self.sub_docs else {}
        out = {f"plaus_sub_{k}": sub.get(k) for k in ("auprc", "ap", "token_p", "token_r", "token_f1", "iou_f1")}
        ref = aggregate_plausibility_ref(r[1:] for r in sorted(self.ref_rows, key=lambda r: r[0]))
        out["plaus_ref_auprc"], out["plaus_ref_token_f1"] = ref["auprc"], ref["token_f1"]
        return out


@dataclass
class _FlipRun:
    """The minimal flip search of an evaluation (``evaluate(flip=...)``), batch by batch; ``searched`` False
    when not asked for or for a model the search does not handle (its metrics are then None). Its per-example
    fractions go to the outputs (:meth:`_Collector.add_flips`), whose means are the metrics."""

    options: FlipOptions | None
    pad_id: int
    searched: bool
    rng: np.random.Generator

    @classmethod
    def start(cls, model, options: FlipOptions | None, scoring: Scoring, n_choices: int | None,
              pad_id: int) -> "_FlipRun":
        searched = (options is not None and not n_choices and not scoring.select_then_predict
                    and flip_supported(model) is None)
        return cls(options, pad_id, searched, np.random.default_rng(options.seed if options is not None else 0))

    def add(self, model, batch: dict, scores: torch.Tensor) -> dict[str, list[FlipResult]]:
        """The batch's results per order (none when not searched)."""
        return search_batch(model, batch, scores, self.options, self.rng, self.pad_id) if self.searched else {}

    def keep(self, computed: dict[str, float | None]) -> dict[str, float | None]:
        """``computed`` (the registry's computed metrics) without ``flip_words`` / ``flip_words_random`` when
        the search was not asked for (None when asked for and not run)."""
        return computed if self.options is not None else {k: v for k, v in computed.items() if k not in FLIP_METRICS}


def _model_device(model) -> torch.device:
    p = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
    return p.device if p is not None else torch.device("cpu")


def evaluate(model, dataset, explain: Callable[[dict], torch.Tensor] | Sequence, *, batch_size: int = 32,
             chunk_size: int = 64, bins: Sequence[float] = BINS, hard_k: float | None = None,
             device: str | torch.device | None = None, source: str | Path | None = None,
             iou_threshold: float = IOU_THRESHOLD, log_odds: bool = True, keep_subword_scores: bool = False,
             dataset_name: str | None = None, progress: Callable[[int, int], None] | None = None,
             should_stop: Callable[[], bool] | None = None, scoring: Scoring | None = None,
             extra: ExtraMetrics | None = None, flip: FlipOptions | None = None) -> EvalResult:
    """Evaluate ``model`` with rationale scores from ``explain`` on every example of ``dataset``.

    Args:
        model: classifier, ``model(input_ids=, attention_mask=, token_type_ids=) -> logits [B, C]``;
            put in eval mode for the call (its mode is restored afterwards).
        dataset: a :class:`unirex.data.SplitDataset` (its ``table``, ``labels``, ``collate``).
        explain: ``explain(batch) -> scores [B, L]`` (called with gradients enabled), or precomputed
            scores: ``explain[row]`` is a 1-D array with one score per subword of that table row.
        batch_size: examples per batch (bounds the variant bookkeeping and the explainer's batch).
        chunk_size: at most this many sequences per forward pass (bounds activation memory).
        bins: the k (percent) of the faithfulness bins.
        hard_k: k (percent) of the hard rationale used for token P/R/F1, IOU F1 and the top-level
            ``comp`` / ``suff`` (added as an extra variant when it is not among ``bins``); None: the
            scoring's ``hard_k``, else :data:`DEFAULT_HARD_K`.
        device: where to run; default: the device of the model's first parameter (else CPU).
        source: the split's ERASER annotation file (``BuiltSplit.summary['source']``) for gold evidence
            spans in IOU F1; without it the runs of the gold word mask are used.
        dataset_name: the dataset's name (``data.dataset``), which picks the reference's task metric
            for ``task_ref`` (:func:`unirex.metrics.reference.reference_task_metric`); default: the
            name of the folder holding ``source`` (``DATA_DIR/NAME/<split>.jsonl``).
        progress: ``progress(done_examples, total_examples)`` after each batch.
        should_stop: checked between batches; True raises :class:`EvaluationCancelled`.
        scoring: how the model predicts (:class:`unirex.rationale.Scoring`); None: the model's
            ``scoring`` attribute, else ERASER's protocol.
        extra: the metrics beside ERASER's to compute (:class:`unirex.extra_eval.ExtraMetrics`:
            ``soft_comp`` / ``soft_suff``, ``sensitivity_max``, ``diag_comp`` / ``diag_suff``,
            :mod:`unirex.metrics.extra`); None or no groups: none (they cost extra passes).
        flip: also the minimal flip search (:mod:`unirex.counterfactual`): ``flip_words``, ``flip_words_random``.

    Returns:
        :class:`EvalResult` with ``metrics`` (keys in :mod:`unirex.metrics`), ``outputs`` (per example)
        and ``stats`` (seconds, examples/s, forward passes, positions run).
    """
    t0 = time.perf_counter()
    if len(dataset) == 0:
        raise UnirexError("nothing to evaluate: the split has no examples")
    if scoring is None:
        scoring = getattr(model, "scoring", None) or Scoring()
    if hard_k is None:
        hard_k = scoring.hard_k if scoring.hard_k is not None else DEFAULT_HARD_K
    bin_spec = _Bins(tuple(bins), hard_k)
    strategy = scoring_strategy(scoring)
    device = torch.device(device if device is not None else _model_device(model))
    table = dataset.table
    n_choices = getattr(dataset, "num_choices", None)
    pad_id = int(getattr(dataset, "pad_token_id", 0) or 0)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=dataset.collate)
    kept, flips = _Collector(table, bin_spec, keep_subword_scores), _FlipRun.start(model, flip, scoring, n_choices, pad_id)
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        done = 0
        for batch in loader:
            if should_stop is not None and should_stop():
                raise EvaluationCancelled("evaluation cancelled")
            batch = mark_selectable({k: v.to(device) for k, v in batch.items()}, scoring.protocol)
            scores = _batch_scores(explain, batch)
            bp = strategy.batch_probs(model, batch, scores, bin_spec, chunk_size, pad_id, n_choices)
            if scoring.protocol == REFERENCE:
                bp.ref, cost = ReferenceScoring().batch_probs(model, batch, scores, bin_spec, chunk_size, pad_id,
                                                              n_choices, bp.full, strategy.select_then_predict)
                bp.cost = {k: bp.cost[k] + cost[k] for k in ("forward_passes", "positions")}
            kept.add(batch, scores, bp)
            if extra is not None and extra.groups:
                kept.add_extra(extra_batch_probs(model, batch, scores, bp.full, explain, extra, bin_spec.hard_k,
                                                 chunk_size, pad_id, n_choices, strategy.select_then_predict))
            kept.add_flips(flips.add(model, batch, scores))
            done += scores.shape[0] // (n_choices or 1)
            if progress is not None:
                progress(done, len(dataset))
    finally:
        if hasattr(model, "train"):
            model.train(was_training)

    outputs = kept.outputs(dataset, strategy.select_then_predict)
    t_forward = time.perf_counter() - t0
    if dataset_name is None and source:
        dataset_name = Path(source).parent.name
    metrics = task_and_faithfulness(outputs, log_odds, dataset_name)
    gold_spans = gold_spans_from_source(source, table)
    metrics.update(word_level_plausibility(outputs, table, gold_spans, iou_threshold))
    metrics.update(kept.subword_metrics(iou_threshold))
    metrics.update(flips.keep(computed_metrics(outputs)))  # metrics of their own compute, the flips' where asked
    seconds = time.perf_counter() - t0
    stats = {"examples": len(outputs), "seconds": seconds, "seconds_model": t_forward,
             "examples_per_s": len(outputs) / seconds if seconds > 0 else math.inf,
             "forward_passes": kept.n_forward, "positions": kept.positions, "with_rationale": len(kept.sub_docs),
             "gold_spans": "evidences" if gold_spans is not None else "mask_runs",
             "task_ref_metric": reference_task_metric(dataset_name), "dataset_name": dataset_name}
    if extra is not None and extra.groups:
        stats.update(extra_metrics=",".join(extra.groups), seconds_extra=kept.seconds_extra)
    return EvalResult(metrics=metrics, outputs=outputs, stats=stats)


# --- saving and loading ---------------------------------------------------------------------------

OUTPUT_COLUMNS = """\
Columns of ``runs/<run_id>/outputs/eval_<split>.parquet`` (one row per split-table row, table order):

===============  ======================  ==============================================================
index            int32                   row in the split table (``BuiltSplit.path``)
annotation_id    str                     ERASER annotation id (checked against the table on load)
label            int32                   gold label id (into ``labels`` of the JSON)
pred             int32                   predicted label id
probs            list<f64> [C]           p(. | x)
comp_probs       list<list<f64>> [K][C]  p(. | x without the top-k% rationale), bins in JSON ``bins``
suff_probs       list<list<f64>> [K][C]  p(. | top-k% rationale only)
hard_comp_probs  list<f64> [C]           comprehensiveness input at ``hard_k``
hard_suff_probs  list<f64> [C]           sufficiency input at ``hard_k``
word_scores      list<f64> [W]           per document word (all documents concatenated), subword sum
hard_words       list<i8> [W]            1 on words of the hard rationale (top ``hard_k`` %)
subword_scores   list<f32> [L]           raw per-subword scores (only when kept)
bin_probs        list<list<f64>> [K][C]  select-then-predict models: the prediction from each bin's rationale
ref_base_probs   list<list<f64>> [K][C]  ``protocol=reference`` only: the predictions on the reference's inputs
ref_comp_probs   list<list<f64>> [K][C]  (:class:`ReferenceOutputs`: comp / suff's base, the input without the
ref_suff_probs   list<list<f64>> [K][C]  rationale, the rationale alone, and for a select-then-predict model
ref_task_probs   list<list<f64>> [K][C]  the task prediction), which ``*_aopc_unirex`` and ``task_ref`` read
ref_auprc        f64                     UNIREX's AUPRC of the row (``plaus_ref_auprc`` is their mean)
ref_token_f1     f64                     UNIREX's token F1 of the row (``plaus_ref_token_f1``)
soft_comp_probs  list<f64> [C]           ``eval.extra_metrics`` only (:class:`unirex.metrics.extra.ExtraOutputs`):
soft_suff_probs  list<f64> [C]           the soft comp / suff inputs' predictions (``soft``), the random
random_comp_...  list<f64> [C]           rationale's comp / suff inputs' (``diag``: ``random_comp_probs``,
random_suff_...  list<f64> [C]           ``random_suff_probs``), the scores' max-sensitivity (``sensitivity``)
sensitivity      f64
flip_words       f64                     ``training.eval_flip`` only: the flip search's fraction of words edited
flip_words_ran.  f64                     in the extractor's / a random order (``flip_words_random``; 1.0: no flip)
===============  ======================  ==============================================================

``eval_<split>.json`` holds ``version``, ``split``, ``labels``, ``bins``, ``hard_k``, ``iou_threshold``,
``metrics``, ``stats`` and where the split table lives: ``dataset``, ``arch``, ``max_length``, ``tag``,
``split_table`` (path of the Parquet), ``source`` (ERASER annotation file), ``fingerprint``.
"""


def outputs_paths(run_dir: str | Path, split: str) -> tuple[Path, Path]:
    from unirex.runs import RunDir

    return RunDir(Path(run_dir)).eval_outputs_paths(split)


def save_outputs(run_dir: str | Path, split: str, result: EvalResult, built=None, extra: dict | None = None) -> Path:
    """Write ``<run_dir>/outputs/eval_<split>.parquet`` and ``eval_<split>.json`` (atomically).

    ``built`` is the :class:`unirex.data.BuiltSplit` evaluated (or its summary dict plus a ``path``
    key); it tells the export where the split table and the ERASER annotations are.
    """
    from unirex.fsutil import atomic_write, reporting_disk_full, write_json_atomic

    o = result.outputs
    parquet, meta_path = outputs_paths(run_dir, split)
    with reporting_disk_full(f"the {split} evaluation outputs", parquet.parent):
        parquet.parent.mkdir(parents=True, exist_ok=True)
    cols = {
        "index": pl.Series(o.index, dtype=pl.Int32), "annotation_id": o.annotation_id,
        "label": pl.Series(o.label, dtype=pl.Int32), "pred": pl.Series(o.pred, dtype=pl.Int32),
        "probs": o.probs.tolist(), "comp_probs": o.comp_probs.tolist(), "suff_probs": o.suff_probs.tolist(),
        "hard_comp_probs": o.hard_comp_probs.tolist(), "hard_suff_probs": o.hard_suff_probs.tolist(),
        "word_scores": [w.tolist() for w in o.word_scores], "hard_words": [h.astype(np.int8).tolist() for h in o.hard_words],
    }
    schema = {"probs": pl.List(pl.Float64), "comp_probs": pl.List(pl.List(pl.Float64)),
              "suff_probs": pl.List(pl.List(pl.Float64)), "hard_comp_probs": pl.List(pl.Float64),
              "hard_suff_probs": pl.List(pl.Float64), "word_scores": pl.List(pl.Float64), "hard_words": pl.List(pl.Int8)}
    if o.subword_scores is not None:
        cols["subword_scores"] = [s.tolist() for s in o.subword_scores]
        schema["subword_scores"] = pl.List(pl.Float32)
    if o.ref_auprc is not None and o.ref_token_f1 is not None:
        cols["ref_auprc"] = pl.Series(o.ref_auprc, dtype=pl.Float64)
        cols["ref_token_f1"] = pl.Series(o.ref_token_f1, dtype=pl.Float64)
    if o.bin_probs is not None:
        cols["bin_probs"] = o.bin_probs.tolist()
        schema["bin_probs"] = pl.List(pl.List(pl.Float64))
    if o.ref is not None:  # protocol=reference: what the UNIREX-style metrics read, so they can be resampled
        for name, value in (("base", o.ref.base), ("comp", o.ref.comp), ("suff", o.ref.suff), ("task", o.ref.task)):
            if value is not None:
                cols[f"ref_{name}_probs"] = value.tolist()
                schema[f"ref_{name}_probs"] = pl.List(pl.List(pl.Float64))
    if o.extra is not None:  # the metrics beside ERASER's (eval.extra_metrics): what they read, per example
        for name in ("soft_comp_probs", "soft_suff_probs", "random_comp_probs", "random_suff_probs"):
            value = getattr(o.extra, name)
            if value is not None:
                cols[name] = value.tolist()
                schema[name] = pl.List(pl.Float64)
        for name in ("sensitivity", *FLIP_METRICS):
            value = getattr(o.extra, name)
            if value is not None:
                cols[name] = pl.Series(value, dtype=pl.Float64)
    df = pl.DataFrame(cols, schema_overrides=schema)
    with reporting_disk_full(f"the {split} evaluation outputs", parquet.parent):
        atomic_write(parquet, lambda tmp: df.write_parquet(tmp))
    summary, table_path = {}, None
    if built is not None:
        summary = dict(getattr(built, "summary", None) or built)
        table_path = getattr(built, "path", None) or summary.get("path")
    meta = {
        "version": OUTPUTS_VERSION, "split": split, "labels": o.labels, "bins": list(o.bins), "hard_k": o.hard_k,
        "iou_threshold": IOU_THRESHOLD, "metrics": result.metrics,
        "stats": {k: v for k, v in result.stats.items() if isinstance(v, (int, float, str))},
        "dataset": summary.get("dataset"), "arch": summary.get("arch"), "max_length": summary.get("max_length"),
        "tag": summary.get("tag", split), "split_table": str(table_path) if table_path else None,
        "source": summary.get("source"), "fingerprint": summary.get("fingerprint"),
        "layout": summary.get("layout", "eraser"),
    }
    meta.update(extra or {})
    try:
        with reporting_disk_full(f"the {split} evaluation outputs", parquet.parent):
            write_json_atomic(meta_path, meta)
    except BaseException:
        parquet.unlink(missing_ok=True)  # the pair is whole or absent: a table without its description is not kept
        raise
    return parquet


def load_outputs(run_dir: str | Path, split: str) -> tuple[EvalOutputs, dict]:
    """Read what :func:`save_outputs` wrote: ``(outputs, meta)``."""
    parquet, meta_path = outputs_paths(run_dir, split)
    if not parquet.is_file() or not meta_path.is_file():
        raise UnirexError(f"{run_dir}: no evaluation outputs for split '{split}' (expected {parquet} and {meta_path.name}); "
                          "evaluate the run on that split first")
    meta = json.loads(meta_path.read_text())
    df = pl.read_parquet(parquet)
    C = len(meta["labels"])

    def arr(col, shape):
        return np.asarray(df[col].to_list(), dtype=np.float64).reshape(shape)

    n, K = df.height, len(meta["bins"])
    outputs = EvalOutputs(
        labels=list(meta["labels"]), bins=tuple(meta["bins"]), hard_k=meta["hard_k"],
        index=df["index"].to_numpy().astype(np.int64), annotation_id=df["annotation_id"].to_list(),
        label=df["label"].to_numpy().astype(np.int64), pred=df["pred"].to_numpy().astype(np.int64),
        probs=arr("probs", (n, C)), comp_probs=arr("comp_probs", (n, K, C)), suff_probs=arr("suff_probs", (n, K, C)),
        hard_comp_probs=arr("hard_comp_probs", (n, C)), hard_suff_probs=arr("hard_suff_probs", (n, C)),
        word_scores=[np.asarray(w, dtype=np.float64) for w in df["word_scores"].to_list()],
        hard_words=[np.asarray(h, dtype=bool) for h in df["hard_words"].to_list()],
        subword_scores=([np.asarray(s, dtype=np.float32) for s in df["subword_scores"].to_list()]
                        if "subword_scores" in df.columns else None),
        bin_probs=arr("bin_probs", (n, K, C)) if "bin_probs" in df.columns else None,
        ref=(ReferenceOutputs(**{name: arr(f"ref_{name}_probs", (n, K, C)) if f"ref_{name}_probs" in df.columns else None
                                 for name in ("base", "comp", "suff", "task")})
             if "ref_base_probs" in df.columns else None),
        ref_auprc=df["ref_auprc"].to_numpy().astype(np.float64) if "ref_auprc" in df.columns else None,
        ref_token_f1=df["ref_token_f1"].to_numpy().astype(np.float64) if "ref_token_f1" in df.columns else None,
        extra=_load_extra(df, arr, (n, C)),
    )
    return outputs, meta


def _load_extra(df: pl.DataFrame, arr, shape: tuple[int, int]) -> ExtraOutputs | None:
    """The saved :class:`ExtraOutputs` columns of an outputs table (None when it has none)."""
    probs = ("soft_comp_probs", "soft_suff_probs", "random_comp_probs", "random_suff_probs")
    per_example = ("sensitivity", *FLIP_METRICS)  # one float per example
    if not any(c in df.columns for c in (*probs, *per_example)):
        return None
    return ExtraOutputs(**{c: arr(c, shape) if c in df.columns else None for c in probs},
                        **{c: df[c].to_numpy().astype(np.float64) if c in df.columns else None for c in per_example})


save_outputs.__doc__ += "\n" + OUTPUT_COLUMNS

__all__ = ["DEFAULT_HARD_K", "EvalOutputs", "EvalResult", "EvaluationCancelled", "ReferenceOutputs", "ReferenceScoring",
           "evaluate", "gold_spans_from_source", "in_place_probs", "load_outputs", "outputs_paths",
           "reference_protocol_metrics", "save_outputs", "select_then_predict_keep_masks", "task_and_faithfulness",
           "extra_batch_probs", "scaled_variant_probs", "variant_keep_masks", "variant_probs", "word_level_documents",
           "word_level_plausibility"]
