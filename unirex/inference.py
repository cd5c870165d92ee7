"""Explain one typed text with a trained model: prediction, word scores, top-k% rationale, and the
comprehensiveness and sufficiency of that rationale for this one input.

The text is encoded exactly as a built dataset row (:func:`unirex.data.encode.encode_text`), scored by
the model's own extractor or by an attribution algorithm on its task LM, and the faithfulness of the
top-k% rationale is measured the way the evaluator measures it (the rationale deleted / kept alone, the
sequence re-packed: :func:`unirex.evaluate.variant_keep_masks` and :func:`unirex.evaluate.variant_probs`).
Subword scores are pooled to words by summing, as the ERASER metrics do.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from unirex.data.align import pool_to_words
from unirex.data.catalog import split_choices
from unirex.data.encode import encode_text
from unirex.data.tensors import LIST_COLUMNS, collate
from unirex.errors import UnirexError
from unirex.rationale import mark_selectable
from unirex.registry import attribution_names

#: longest text :func:`explain_text` accepts (characters over all documents and the query); the model
#: reads at most its max length in subwords anyway, the rest is reported as truncated
MAX_TEXT_CHARS = 20_000
OWN_EXTRACTOR = "own"


def post_hoc_extractors() -> tuple[str, ...]:
    """The attribution algorithms that can explain any checkpoint's task LM (besides the checkpoint's own):
    the registered specs with ``post_hoc`` (:mod:`unirex.registry`; plugins add theirs)."""
    return attribution_names(post_hoc=True)


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


def text_scorer(model, extractor: str | None, ig_steps: int = 50, seed: int = 0):
    """``(name, score(batch) -> (logits [B, C] or None, scores [B, L]))`` for the checkpoint's own extractor
    (``None`` / ``"own"``: logits of the full input come with it) or a post-hoc attribution algorithm on its
    task LM (logits None: the caller runs the full input with the variants)."""
    if extractor in (None, "", OWN_EXTRACTOR):
        return f"own ({model.extractor.name or 'own'})", model.predict_and_explain
    from unirex.models.extractors import AttributionExtractor

    if extractor not in post_hoc_extractors():
        raise UnirexError(f"unknown extractor '{extractor}': use '{OWN_EXTRACTOR}' (the checkpoint's own) or one of "
                          f"{', '.join(post_hoc_extractors())}")
    attr = AttributionExtractor(extractor, "sum", ig_steps=ig_steps, seed=seed).to(_model_device(model))
    return extractor, lambda batch: (None, attr.scores(batch, model.task_lm, None).detach())


def explain_text(model, tokenizer, documents: list[str] | str, labels: list[str], max_length: int,
                 query: str = "", extractor: str | None = None, top_k: float = 10.0,
                 ig_steps: int = 50) -> TextExplanation:
    """Explain ``documents`` (one text, or several for multi-document tasks) with ``model`` (a
    :class:`~unirex.models.UnirexModel` in eval mode), ``labels`` its label names.

    Raises:
        UnirexError: empty or too long text, ``top_k`` outside (0, 100], an unknown extractor.
    """
    from unirex.evaluate import select_then_predict_keep_masks, variant_keep_masks, variant_probs

    docs = [documents] if isinstance(documents, str) else list(documents)
    size = sum(len(d or "") for d in docs) + len(query or "")
    if not any((d or "").split() for d in docs):
        raise UnirexError("nothing to explain: the text is empty")
    if size > MAX_TEXT_CHARS:
        raise UnirexError(f"the text has {size:,} characters; at most {MAX_TEXT_CHARS:,} can be explained at once")
    if not 0 < float(top_k) <= 100:
        raise UnirexError(f"top-k must be a percentage in (0, 100], got {top_k}")
    name, scorer = text_scorer(model, extractor, ig_steps)
    n_choices = getattr(model, "num_choices", None)
    if n_choices:  # multiple choice (CoS-E): one row per choice, the choices given as ERASER writes them
        choices = split_choices(query)
        if len(choices) != n_choices or not all(choices):
            raise UnirexError(f"this model answers multiple choice with {n_choices} choices: give them as the query, "
                              f"separated by ' [sep] ' (got {len([c for c in choices if c])})")
        encoded = [encode_text(docs, tokenizer, max_length, query=c) for c in choices]
    else:
        encoded = [encode_text(docs, tokenizer, max_length, query=query)]
    n = len(encoded)  # rows per variant
    items = [{**{c: r[c] for c in LIST_COLUMNS}, "label": 0, "has_rationale": False, "index": i}
             for i, r in enumerate(encoded)]
    device = _model_device(model)
    protocol = getattr(getattr(model, "scoring", None), "protocol", "eraser")  # scores as evaluation scores them
    batch = mark_selectable({k: v.to(device) for k, v in collate(items, tokenizer.pad_token_id or 0).items()}, protocol)
    was_training = model.training
    model.eval()
    select_then_predict = bool(getattr(getattr(model, "scoring", None), "select_then_predict", False))
    try:
        with torch.enable_grad():
            logits, scores = scorer(batch)
        scores = scores.float()
        pad = tokenizer.pad_token_id or 0
        if select_then_predict:  # A2R, FRESH: the model predicts from its own top-k rationale (as evaluated)
            keep, sels = select_then_predict_keep_masks(scores, batch["explainable"], batch["attention_mask"],
                                                        [float(top_k)])
            only, empty = variant_probs(model, batch, keep, 2 * n, pad, n_choices)[0].view(2, n, -1)[:, 0]
            probs = torch.stack([only, empty, only])  # prediction, rationale deleted (nothing left), rationale only
        else:
            keep, sels = variant_keep_masks(scores, batch["explainable"], batch["attention_mask"], [float(top_k)])
            if logits is not None:  # the full input already ran: only the two variants are left
                keep = keep[n:]
            probs, _ = variant_probs(model, batch, keep, 3 * n, pad, n_choices)
            probs = probs.view(-1, n, probs.shape[-1])[:, 0]  # one row per variant (the choices share theirs)
            if logits is not None:
                full = torch.softmax(model.task_lm.group_choices(logits).double(), -1)  # [1, C]
                probs = torch.cat([full[:1].to(probs.device), probs])
    finally:
        model.train(was_training)
    probs = probs.cpu().numpy()  # [3, C]: the prediction's, rationale deleted, rationale only
    pred = int(probs[0].argmax())
    r = pred if n_choices else 0  # multiple choice: the rationale of the predicted choice's row
    row = encoded[r]
    n_words = sum(row["doc_word_counts"])
    word_ids = row["word_ids"]
    ws = pool_to_words(scores[r][: len(word_ids)].cpu().numpy(), word_ids, n_words, "sum")
    hard = pool_to_words(sels[0][r][: len(word_ids)].float().cpu().numpy(), word_ids, n_words, "max") > 0
    words, doc_of = [], []
    for d, text in enumerate(docs):
        w = [t for line in str(text).splitlines() for t in line.split()]
        words += w
        doc_of += [d] * len(w)
    return TextExplanation(
        words=words, word_document=doc_of, word_scores=[float(x) for x in ws], rationale=[bool(x) for x in hard],
        labels=list(labels), probs=[float(p) for p in probs[0]], predicted=labels[pred] if pred < len(labels) else str(pred),
        top_k=float(top_k), comprehensiveness=float(probs[0, pred] - probs[1, pred]),
        sufficiency=float(probs[0, pred] - probs[2, pred]), extractor=name, truncated=bool(row["truncated"]),
        n_subwords=len(row["input_ids"]))


__all__ = ["MAX_TEXT_CHARS", "OWN_EXTRACTOR", "TextExplanation", "explain_text", "post_hoc_extractors", "text_scorer"]
