"""The minimal flip search (:mod:`unirex.counterfactual`) on one typed text: the text is encoded as Explain
encodes it (:func:`unirex.inference.explain_text`), scored by the checkpoint's own extractor or a post-hoc
attribution algorithm, then searched in the extractor's order and in a seeded random order."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from unirex.counterfactual import EXTRACTOR, MASK, RANDOM, FlipOptions, FlipResult, flip_supported, search_batch
from unirex.data.encode import encode_text
from unirex.data.tensors import LIST_COLUMNS, collate
from unirex.errors import UnirexError
from unirex.inference import text_scorer
from unirex.rationale import mark_selectable
from unirex.text_input import check_text


@dataclass(frozen=True)
class TextFlip:
    """What :func:`flip_text` returns: the text's words and prediction, and the search in both orders."""

    words: list[str]  # the documents' words, concatenated
    word_document: list[int]
    labels: list[str]
    probs: list[float]  # p(label | text), ``labels`` order
    predicted: str
    extractor: str
    options: FlipOptions
    mask_token: str | None  # what a ``mask`` edit writes in a word's place (None: ``remove``)
    guided: FlipResult  # the extractor's order
    random: FlipResult  # the seeded random order (the control)
    truncated: bool  # words past the model's max length were not read (nor edited)

    def result(self, order: str) -> FlipResult:
        if order not in (EXTRACTOR, RANDOM):
            raise UnirexError(f"unknown flip order '{order}'")
        return self.guided if order == EXTRACTOR else self.random

    def label_of(self, result: FlipResult) -> str:
        """The label name the edited text is predicted as."""
        return self.labels[result.label] if result.label < len(self.labels) else str(result.label)

    def edited_words(self, result: FlipResult) -> list[tuple[str, bool]]:
        """``(word, edited)`` over the text after ``result``'s edits: a removed word is kept with
        ``edited`` True (the fronts strike it out), a masked one shows the mask token."""
        gone = set(result.edited)
        return [((self.mask_token or w) if i in gone and self.mask_token else w, i in gone)
                for i, w in enumerate(self.words)]

    def edited_text(self, result: FlipResult) -> str:
        """The edited text as plain words (removed words left out, masked ones as the mask token), the
        documents separated by `` | ``."""
        out, gone = [], set(result.edited)
        for i, w in enumerate(self.words):
            if i and self.word_document[i] != self.word_document[i - 1]:
                out.append("|")
            if i in gone:
                if self.mask_token:
                    out.append(self.mask_token)
                continue
            out.append(w)
        return " ".join(out)


def text_words(documents: list[str]) -> tuple[list[str], list[int]]:
    """The documents' words, concatenated, and which document each is in (as :func:`encode_text` splits them:
    whitespace, line breaks as sentence breaks)."""
    words, doc_of = [], []
    for d, text in enumerate(documents):
        w = [t for line in str(text).splitlines() for t in line.split()]
        words += w
        doc_of += [d] * len(w)
    return words, doc_of


def _device(model) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def flip_text(model, tokenizer, documents: list[str] | str, labels: list[str], max_length: int, query: str = "",
              extractor: str | None = None, options: FlipOptions = FlipOptions(), ig_steps: int = 50) -> TextFlip:
    """Search ``documents`` (one text or several) for the fewest words whose edit flips ``model``'s
    prediction, in ``extractor``'s order (None / ``own``: the checkpoint's own) and a random one.

    Raises:
        UnirexError: empty or too long text, an unknown extractor, a model the search does not handle
            (multiple choice, select-then-predict), a ``mask`` edit with a tokenizer without a mask token.
    """
    docs = [documents] if isinstance(documents, str) else list(documents)
    check_text(docs, query)
    reason = flip_supported(model)
    if reason is not None:
        raise UnirexError(reason)
    replacement_id, mask_token = None, None
    if options.edit == MASK:
        replacement_id = tokenizer.mask_token_id if tokenizer.mask_token_id is not None else tokenizer.unk_token_id
        if replacement_id is None:
            raise UnirexError("this checkpoint's tokenizer has no mask or unknown token: use the 'remove' edit")
        mask_token = tokenizer.convert_ids_to_tokens(int(replacement_id))
    name, scorer = text_scorer(model, extractor, ig_steps)
    row = encode_text(docs, tokenizer, max_length, query=query)
    pad = tokenizer.pad_token_id or 0
    item = {**{c: row[c] for c in LIST_COLUMNS}, "label": 0, "has_rationale": False, "index": 0}
    protocol = getattr(getattr(model, "scoring", None), "protocol", "eraser")
    batch = mark_selectable({k: v.to(_device(model)) for k, v in collate([item], pad).items()}, protocol)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            _, scores = scorer(batch)
        found = search_batch(model, batch, scores.detach().float(), options, np.random.default_rng(options.seed), pad,
                             replacement_id)
    finally:
        model.train(was_training)
    guided, rnd = found[EXTRACTOR][0], found[RANDOM][0]
    words, doc_of = text_words(docs)
    pred = guided.base_label
    return TextFlip(words=words, word_document=doc_of, labels=list(labels), probs=list(guided.base_probs),
                    predicted=labels[pred] if pred < len(labels) else str(pred), extractor=name, options=options,
                    mask_token=mask_token, guided=guided, random=rnd, truncated=bool(row["truncated"]))


__all__ = ["TextFlip", "flip_text"]
