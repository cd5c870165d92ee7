"""Explain typed text with a trained model: prediction, word and subword scores, top-k% rationale, and the
comprehensiveness and sufficiency of that rationale for each input: one text (:func:`explain_text`) or
many, batched by length with the evaluator's packing plan (:func:`explain_texts`).

The text is encoded exactly as a built dataset row (:func:`unirex.data.encode.encode_text`), scored by
the model's own extractor or by an attribution algorithm on its task LM, and the faithfulness of the
top-k% rationale is measured the way the evaluator measures it (the rationale deleted / kept alone, the
sequence re-packed: :func:`unirex.evaluate.variant_keep_masks` and :func:`unirex.evaluate.variant_probs`).
Subword scores are pooled to words by summing, as the ERASER metrics do.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from unirex.data.align import pool_to_words
from unirex.data.catalog import split_choices
from unirex.data.encode import encode_text
from unirex.data.tensors import LIST_COLUMNS, collate
from unirex.errors import UnirexError
from unirex.rationale import candidates, mark_selectable
from unirex.registry import OWN_EXTRACTOR, check_extractor, post_hoc_extractors
from unirex.text_input import MAX_TEXT_CHARS, TextInput, check_text, check_top_k

@dataclass(frozen=True)
class TextExplanation:
    """What :func:`explain_text` returns. Word lists run over the documents' words, concatenated."""

    words: list[str]
    word_document: list[int]  # which document each word is in
    word_scores: list[float]  # subword scores summed per word (0 for truncated words)
    rationale: list[bool]  # the word is in the top-k% rationale
    labels: list[str]
    probs: list[float]  # p(label | text), in ``labels`` order
    predicted: str
    top_k: float
    comprehensiveness: float  # p(pred | x) - p(pred | x without the rationale)
    sufficiency: float  # p(pred | x) - p(pred | the rationale only); select-then-predict models (A2R, FRESH)
    # predict from their rationale: comprehensiveness is then against the input with no document token left,
    # and sufficiency is 0, as the evaluator scores them
    extractor: str
    truncated: bool  # words past the model's max length were not read
    n_subwords: int

    @property
    def scores(self) -> list[float]:
        """The word scores (alias of ``word_scores``)."""
        return self.word_scores

    @property
    def label(self) -> str:
        """The predicted label (alias of ``predicted``)."""
        return self.predicted

    @property
    def probabilities(self) -> dict[str, float]:
        return dict(zip(self.labels, self.probs))


def _model_device(model) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def text_scorer(model, extractor: str | None, ig_steps: int = 50, seed: int = 0,
                internal_batch_size: int | None = None):
    """``(name, score(batch) -> (logits [B, C], scores [B, L]))`` for the checkpoint's own extractor (``None`` /
    ``"own"``) or a post-hoc attribution algorithm on its task LM: the logits of the full input come with the
    scores either way (a post-hoc algorithm explains the class those logits predict, so the full input runs
    once). ``internal_batch_size`` bounds the sequences of one pass of the algorithms that expand their input
    (integrated gradients' steps)."""
    if extractor in (None, "", OWN_EXTRACTOR):
        return f"own ({model.extractor.name or 'own'})", model.predict_and_explain
    from unirex.models.extractors import AttributionExtractor
    from unirex.models.extractors.base import mask_scores
    from unirex.models.extractors.gradients import FROM_EMBEDDING_GRADIENT, predicted_embedding_gradient

    check_extractor(extractor)
    attr = AttributionExtractor(extractor, "sum", ig_steps=ig_steps, internal_batch_size=internal_batch_size,
                                seed=seed).to(_model_device(model))
    from_gradient = FROM_EMBEDDING_GRADIENT.get(extractor)

    def score(batch):
        if from_gradient is not None and not getattr(model, "num_choices", None):
            # a gradient of the predicted class: its forward pass gives the prediction too (one pass, not two)
            logits, embeds, grad = predicted_embedding_gradient(model.task_lm, batch)
            return logits, mask_scores(from_gradient(embeds, grad).sum(-1), candidates(batch))
        with torch.no_grad():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           token_type_ids=batch["token_type_ids"])
        # multiple choice: the extractor attributes each row's own single logit (target None)
        target = None if getattr(model, "num_choices", None) else logits.argmax(-1)
        return logits, attr.scores(batch, model.task_lm, target).detach()

    return extractor, score


@dataclass(frozen=True)
class SubwordScores:
    """The subwords the model read for one explained text (multiple choice: the predicted choice's row)."""

    tokens: list[str]
    input_ids: list[int]
    scores: list[float]  # the extractor's score of each subword (0 where no rationale may be: specials, query)


@dataclass(frozen=True)
class ExplainedText:
    """One text of :func:`explain_texts`: the word-level explanation and the subword scores under it."""

    explanation: TextExplanation
    subwords: SubwordScores


def _encode(model, tokenizer, text: TextInput, max_length: int) -> list[dict]:
    """The rows of one text: one, or one per choice for a multiple-choice model."""
    n_choices = getattr(model, "num_choices", None)
    if n_choices:  # multiple choice (CoS-E): one row per choice, the choices given as ERASER writes them
        choices = split_choices(text.query)
        if len(choices) != n_choices or not all(choices):
            raise UnirexError(f"this model answers multiple choice with {n_choices} choices: give them as the query, "
                              f"separated by ' [sep] ' (got {len([c for c in choices if c])})")
        return [encode_text(list(text.documents), tokenizer, max_length, query=c) for c in choices]
    return [encode_text(list(text.documents), tokenizer, max_length, query=text.query)]


def _explain_encoded(model, tokenizer, texts: list[TextInput], encoded: list[list[dict]], labels: list[str],
                     scorer: tuple, top_k: float, faithfulness: bool, chunk_size: int | None) -> list[ExplainedText]:
    """Explain texts already encoded (``encoded[g]``: text ``g``'s rows) in one scoring pass; the variants
    (rationale deleted, rationale alone) run re-packed in length-sorted chunks of ``chunk_size`` rows."""
    from unirex.evaluate import select_then_predict_keep_masks, variant_keep_masks, variant_probs

    name, score = scorer
    n_choices = getattr(model, "num_choices", None)
    G, n = len(encoded), len(encoded[0])  # texts, rows per text
    B = G * n
    items = [{**{c: r[c] for c in LIST_COLUMNS}, "label": 0, "has_rationale": False, "index": i}
             for i, r in enumerate(r for rows in encoded for r in rows)]
    device = _model_device(model)
    pad = tokenizer.pad_token_id or 0
    protocol = getattr(getattr(model, "scoring", None), "protocol", "eraser")  # scores as evaluation scores them
    batch = mark_selectable({k: v.to(device) for k, v in collate(items, pad).items()}, protocol)
    was_training = model.training
    model.eval()
    select_then_predict = bool(getattr(getattr(model, "scoring", None), "select_then_predict", False))
    chunk = chunk_size or 3 * B
    try:
        with torch.enable_grad():
            logits, scores = score(batch)
        scores = scores.float()
        if select_then_predict:  # A2R, FRESH: the model predicts from its own top-k rationale (as evaluated)
            keep, sels = select_then_predict_keep_masks(scores, batch["explainable"], batch["attention_mask"],
                                                        [float(top_k)])
            only, empty = variant_probs(model, batch, keep, chunk, pad, n_choices)[0].view(2, G, n, -1)[:, :, 0]
            probs = torch.stack([only, empty, only])  # prediction, rationale deleted (nothing left), rationale only
        else:
            keep, sels = variant_keep_masks(scores, batch["explainable"], batch["attention_mask"], [float(top_k)])
            full = torch.softmax(model.task_lm.group_choices(logits).double(), -1)  # [G, C]
            probs = full[None]
            if faithfulness:  # the full input already ran: the two variants are left
                var, _ = variant_probs(model, batch, keep[B:], chunk, pad, n_choices)
                var = var.view(2, G, n, var.shape[-1])[:, :, 0]  # one row per text (the choices share theirs)
                probs = torch.cat([probs.to(var.device), var])
    finally:
        model.train(was_training)
    probs = probs.cpu().numpy()  # [V, G, C]: the prediction's, then rationale deleted and rationale only
    scores, hard_all = scores.cpu(), sels[0].cpu()
    out = []
    for g, text in enumerate(texts):
        pred = int(probs[0, g].argmax())
        r = pred if n_choices else 0  # multiple choice: the rationale of the predicted choice's row
        row, b = encoded[g][r], g * n + r
        n_words = sum(row["doc_word_counts"])
        word_ids = row["word_ids"]
        sub = scores[b][: len(word_ids)].numpy()
        ws = pool_to_words(sub, word_ids, n_words, "sum")
        hard = pool_to_words(hard_all[b][: len(word_ids)].float().numpy(), word_ids, n_words, "max") > 0
        words, doc_of = [], []
        for d, doc in enumerate(text.documents):
            w = [t for line in str(doc).splitlines() for t in line.split()]
            words += w
            doc_of += [d] * len(w)
        comp = float(probs[0, g, pred] - probs[1, g, pred]) if probs.shape[0] > 1 else float("nan")
        suff = float(probs[0, g, pred] - probs[2, g, pred]) if probs.shape[0] > 1 else float("nan")
        ex = TextExplanation(
            words=words, word_document=doc_of, word_scores=[float(x) for x in ws], rationale=[bool(x) for x in hard],
            labels=list(labels), probs=[float(p) for p in probs[0, g]],
            predicted=labels[pred] if pred < len(labels) else str(pred), top_k=float(top_k),
            comprehensiveness=comp, sufficiency=suff, extractor=name, truncated=bool(row["truncated"]),
            n_subwords=len(row["input_ids"]))
        ids = [int(i) for i in row["input_ids"]]
        out.append(ExplainedText(ex, SubwordScores(tokenizer.convert_ids_to_tokens(ids), ids,
                                                   [float(x) for x in sub[: len(ids)]])))
    return out


def explain_text(model, tokenizer, documents: list[str] | str, labels: list[str], max_length: int,
                 query: str = "", extractor: str | None = None, top_k: float = 10.0,
                 ig_steps: int = 50) -> TextExplanation:
    """Explain ``documents`` (one text, or several for multi-document tasks) with ``model`` (a
    :class:`~unirex.models.UnirexModel` in eval mode), ``labels`` its label names.

    Raises:
        UnirexError: empty or too long text, ``top_k`` outside (0, 100], an unknown extractor.
    """
    docs = [documents] if isinstance(documents, str) else list(documents)
    check_text(docs, query)
    check_top_k(top_k)
    scorer = text_scorer(model, extractor, ig_steps)
    text = TextInput(tuple(docs), query or "")
    return _explain_encoded(model, tokenizer, [text], [_encode(model, tokenizer, text, max_length)], labels, scorer,
                            top_k, faithfulness=True, chunk_size=None)[0].explanation


#: texts encoded, sorted by length and explained at a time by :func:`explain_texts` (results come in input order)
BATCH_WINDOW = 512


def explain_texts(model, tokenizer, texts: Sequence[TextInput], labels: list[str], max_length: int,
                  extractor: str | None = None, top_k: float = 10.0, ig_steps: int = 50, batch_size: int = 32,
                  faithfulness: bool = False, window: int = BATCH_WINDOW) -> Iterator[ExplainedText]:
    """Explain many texts with one model, in input order, as :func:`explain_text` explains one.

    The texts are taken ``window`` at a time, encoded, sorted by subword length and cut into chunks by the
    evaluator's packing plan (:func:`unirex.packing.plan_chunks`: at most ``batch_size`` rows a forward pass,
    padding as little as the lengths allow); integrated gradients' steps run ``batch_size`` sequences a pass.
    ``faithfulness``: also the comprehensiveness and sufficiency of each rationale (two more forward passes a
    text; without it they are NaN). Select-then-predict models (A2R, FRESH) predict from their rationale, so
    its variants run either way. Scores and probabilities equal :func:`explain_text`'s up to the float
    rounding that padding in a batch brings (about 1e-6).

    Raises:
        UnirexError: an empty or too long text (named by its position), ``top_k`` outside (0, 100], an
            unknown extractor, ``batch_size`` < 1.
    """
    from unirex.packing import plan_chunks

    check_top_k(top_k)
    if int(batch_size) < 1:
        raise UnirexError(f"batch size must be at least 1, got {batch_size}")
    for i, t in enumerate(texts):
        try:
            check_text(t.documents, t.query)
        except UnirexError as e:
            raise UnirexError(f"text {i + 1}: {e}") from None
    scorer = text_scorer(model, extractor, ig_steps, internal_batch_size=int(batch_size))
    n_rows = getattr(model, "num_choices", None) or 1
    per_chunk = max(1, int(batch_size) // n_rows)
    for start in range(0, len(texts), max(1, int(window))):
        part = list(texts[start:start + max(1, int(window))])
        encoded = [_encode(model, tokenizer, t, max_length) for t in part]
        lengths = np.array([max(len(r["input_ids"]) for r in rows) for rows in encoded])
        order = np.argsort(lengths, kind="stable")
        done: dict[int, ExplainedText] = {}
        for a, b in plan_chunks(lengths[order], per_chunk):
            idx = [int(i) for i in order[a:b]]
            res = _explain_encoded(model, tokenizer, [part[i] for i in idx], [encoded[i] for i in idx], labels, scorer,
                                   top_k, faithfulness, chunk_size=int(batch_size))
            done.update(zip(idx, res))
        for i in range(len(part)):
            yield done.pop(i)


__all__ = ["BATCH_WINDOW", "MAX_TEXT_CHARS", "OWN_EXTRACTOR", "ExplainedText", "SubwordScores", "TextExplanation",
           "TextInput", "check_text", "explain_text", "explain_texts", "post_hoc_extractors", "text_scorer"]
