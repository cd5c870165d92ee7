"""The one encoder from ERASER examples (or raw text) to model inputs, shared by the dataset build and
by explaining typed text, so a sentence typed in the app is tokenised exactly as a built dataset is.

Input layout: ``[CLS] documents [SEP] query [SEP]`` (the arch's own pair encoding); several documents of
one annotation (e-SNLI's premise and hypothesis) are joined by the separator token; a document is its
words split as ERASER splits them. Long inputs are truncated in the documents (the query is kept whole
when it fits), and only as many words as can reach the input are split and tokenised.

A word longer than :func:`word_char_cap` characters (a single 50 MB word, or text of a script written
without spaces, which ERASER's split keeps as one word) is tokenised from its first that many characters
only, since no more of it can reach the input: the cost is bounded by the model's input for any word
length and any script. Words are never re-split (ERASER's evidence offsets count whitespace words), so
such a word stays one word; its row counts as ``truncated``, as does a row whose last word lost subwords.

Per subword: ``word_ids`` (index of its word in the concatenated documents, -1 for special tokens,
separators and the query) and ``explainable`` (document tokens only).
"""

from __future__ import annotations

import dataclasses

from unirex.data.eraser import Annotation, Document, Example

#: characters of a word tokenised per subword of the input: a word is cut to ``max_length`` times this
#: (:func:`word_char_cap`, at least 256): where subwords average 16 characters or fewer (natural text of
#: any script) the cut part could not have reached the input anyway; a row with a cut word is ``truncated``
CHARS_PER_SUBWORD = 16


def word_char_cap(max_length: int) -> int:
    """The most characters of one word that are tokenised for an input of ``max_length`` subwords."""
    return max(256, CHARS_PER_SUBWORD * int(max_length))


def _capped(words: list[str], cap: int) -> list[str]:
    return [w if len(w) <= cap else w[:cap] for w in words]


def _document_words(ex: Example, budget: int, sep: str | None) -> tuple[list[str], list[int], int | None]:
    """The first words of each document of ``ex`` (at most ``budget`` per document), the map from their
    position to the word index in the concatenated documents (-1 for the separator), and, when a
    document was cut here, how many of the words come up to the end of the first cut one."""
    words, seg_map, offset, cut = [], [], 0, None
    for d_i, doc in enumerate(ex.documents):
        if d_i > 0 and sep:  # documents of one annotation (e-SNLI premise / hypothesis) split by a separator
            words.append(sep)
            seg_map.append(-1)
        dw = doc.prefix(budget)
        words.extend(dw)
        seg_map.extend(range(offset, offset + len(dw)))
        offset += doc.n_words
        if cut is None and len(dw) < doc.n_words:
            cut = len(words)
    return words, seg_map, cut


def _input_words(examples: list[Example], tokenizer, max_length: int, sep: str | None):
    """Per example, the document words to tokenise: only as many as can reach the model's input.

    A document is cut once the words kept up to its end make at least ``max_length`` + (the query's
    subwords) subwords. Every truncation the build uses then gives the same input as the whole documents
    would: ``only_first`` keeps a prefix of the first segment, and ``longest_first`` (used when the query
    alone does not fit) trims the first segment down to the query's length before it trims the query, so
    it never looks further than that. The budget starts at ``max_length`` + (query words) words per
    document and grows while words that make no subword (a lone tab, say) leave it short. The cost is
    bounded by the input, not by the document's length.
    """
    cap = word_char_cap(max_length)
    q_len = [len(ids) for ids in tokenizer([_capped(ex.annotation.query.split(), cap) or [""] for ex in examples],
                                           is_split_into_words=True, add_special_tokens=False, verbose=False)["input_ids"]]
    need = [max_length + q for q in q_len]
    budgets = [max_length + len(ex.annotation.query.split()) for ex in examples]
    out: list[tuple[list[str], list[int]] | None] = [None] * len(examples)
    todo = list(range(len(examples)))
    while todo:
        cand = {i: _document_words(examples[i], budgets[i], sep) for i in todo}
        cut = [i for i in todo if cand[i][2] is not None]
        counts = {}
        if cut:  # subwords of the words up to the end of the first cut document
            enc = tokenizer([_capped(cand[i][0][: cand[i][2]], cap) for i in cut], is_split_into_words=True, add_special_tokens=False,
                            verbose=False)
            counts = {i: len(ids) for i, ids in zip(cut, enc["input_ids"])}
        again = []
        for i in todo:
            if cand[i][2] is not None and counts[i] < need[i]:
                budgets[i] *= 4
                again.append(i)
            else:
                out[i] = cand[i][:2]
        todo = again
    return out


def _lost_subwords(firsts: list[list[str]], seg_maps: list[list[int]], word_ids_of: dict[int, list[int]],
                   tokenizer) -> set[int]:
    """The examples whose last word in the input lost some of its subwords to truncation (a long word, or
    CJK text without spaces: one ERASER word of many subwords). Only that one word is tokenised again."""
    last = {}
    for i, word_ids in word_ids_of.items():
        present = [w for w in word_ids if w >= 0]
        if present:
            w = max(present)
            pos = len(seg_maps[i]) - 1 - seg_maps[i][::-1].index(w)
            last[i] = (w, firsts[i][pos], word_ids.count(w))
    if not last:
        return set()
    order = list(last)
    enc = tokenizer([[last[i][1]] for i in order], is_split_into_words=True, add_special_tokens=False, verbose=False)
    return {i for i, ids in zip(order, enc["input_ids"]) if len(ids) > last[i][2]}


def _tail_row(ex: Example, tokenizer, max_length: int, row: dict) -> dict:
    """``row`` re-encoded from the *last* subwords of ``ex``'s single document that fit: ``[CLS]`` + the
    tail + ``[SEP]``, as the UNIREX reference keeps a review whose gold rationale lies past the cut."""
    words = _capped(ex.documents[0].words, word_char_cap(max_length))
    side = tokenizer.truncation_side
    tokenizer.truncation_side = "left"  # cut the head: the last subwords stay
    try:
        enc = tokenizer([words], is_split_into_words=True, max_length=max_length, truncation=True, verbose=False)
    finally:
        tokenizer.truncation_side = side
    full = list(enc["input_ids"][0])
    word_ids = [-1 if w is None else w for w in enc.word_ids(0)]
    gold = row["rationale_words"]
    out = dict(row)
    out.update(input_ids=list(full), attention_mask=[1] * len(full), token_type_ids=[0] * len(full),
               word_ids=word_ids, explainable=[int(w >= 0) for w in word_ids],
               rationale=[gold[w] if w >= 0 else 0 for w in word_ids], truncated=True)
    return out


def encode_examples(examples: list[Example], tokenizer, max_length: int, drop_query: bool = False,
                    keep_rationale_tail: bool = False) -> list[dict]:
    """Tokenise examples (documents, + the query as the second segment) and align subwords to words.

    Returns one dict per example with the columns of a built split (see :mod:`unirex.data.build`) except
    ``label`` (the caller maps ``label_name`` to an id), plus ``_line`` (the annotation's line).

    The reference protocol's layouts (:func:`unirex.protocol.reference_layout`): ``drop_query`` leaves the
    query out of the input (the row still records it); ``keep_rationale_tail``: a single-document example
    cut to fit, whose gold rationale has no subword in the kept head, keeps the document's last subwords
    instead (:func:`_tail_row`)."""
    if drop_query:
        queries = [ex.annotation.query for ex in examples]
        stripped = [dataclasses.replace(ex, annotation=dataclasses.replace(ex.annotation, query="")) for ex in examples]
        rows = encode_examples(stripped, tokenizer, max_length, keep_rationale_tail=keep_rationale_tail)
        for r, q in zip(rows, queries):
            r["query"] = q
        return rows
    rows = _encode(examples, tokenizer, max_length)
    if keep_rationale_tail:
        for i, (ex, r) in enumerate(zip(examples, rows)):
            if (r["truncated"] and len(ex.documents) == 1 and not ex.annotation.query and any(r["rationale_words"])
                    and not any(r["rationale"])):
                rows[i] = _tail_row(ex, tokenizer, max_length, r)
    return rows


def _encode(examples: list[Example], tokenizer, max_length: int) -> list[dict]:
    sep = tokenizer.sep_token or tokenizer.eos_token
    cap = word_char_cap(max_length)
    rows = []
    for start in range(0, len(examples), 512):
        chunk = examples[start : start + 512]
        inputs = _input_words(chunk, tokenizer, max_length, sep)
        firsts = [_capped(w, cap) for w, _ in inputs]
        seg_maps = [m for _, m in inputs]
        cut_words = [{m[p] for p, w in enumerate(ws) if len(w) > cap} for ws, m in inputs]  # words whose text was cut
        queries = [_capped(ex.annotation.query.split(), cap) for ex in chunk]
        has_query = [bool(q) for q in queries]
        enc_by_index = {}
        for flag in (False, True):
            idx = [i for i, h in enumerate(has_query) if h == flag]
            if not idx:
                continue
            kwargs = dict(is_split_into_words=True, max_length=max_length, truncation="only_first" if flag else True)
            pair = [queries[i] for i in idx] if flag else None
            try:
                enc = tokenizer([firsts[i] for i in idx], pair, **kwargs)
            except Exception:  # the query alone exceeds max_length: cut both segments
                kwargs["truncation"] = "longest_first"
                enc = tokenizer([firsts[i] for i in idx], pair, **kwargs)
            for j, i in enumerate(idx):
                enc_by_index[i] = (enc, j)
        word_ids_of = {}
        for i in range(len(chunk)):
            enc, j = enc_by_index[i]
            seg_map = seg_maps[i]
            word_ids_of[i] = [seg_map[w] if (s == 0 and w is not None) else -1
                              for s, w in zip(enc.sequence_ids(j), enc.word_ids(j))]
        lost = _lost_subwords(firsts, seg_maps, word_ids_of, tokenizer)
        for i, ex in enumerate(chunk):
            enc, j = enc_by_index[i]
            ids = list(enc["input_ids"][j])
            word_ids = word_ids_of[i]
            gold_words = [m for mask in ex.gold_word_masks for m in mask]
            d_pos = {d.docid: p for p, d in enumerate(ex.documents)}
            n_words = len(gold_words)
            present = [w for w in word_ids if w >= 0]
            tt = enc.get("token_type_ids")
            rows.append({
                "annotation_id": ex.annotation.annotation_id,
                "docids": [d.docid for d in ex.documents],
                "doc_word_counts": [d.n_words for d in ex.documents],
                "query": ex.annotation.query,
                "label_name": ex.annotation.classification,
                "input_ids": ids,
                "attention_mask": [1] * len(ids),
                "token_type_ids": list(tt[j]) if tt is not None else [0] * len(ids),
                "word_ids": word_ids,
                "explainable": [int(w >= 0) for w in word_ids],
                "rationale": [gold_words[w] if w >= 0 else 0 for w in word_ids],
                "rationale_words": gold_words,
                "has_rationale": any(gold_words),
                "evidence_spans": [[d_pos[e.docid], e.start_token, e.end_token] for e in ex.annotation.all_evidences],
                "truncated": ((max(present) + 1 if present else 0) < n_words or i in lost
                              or not cut_words[i].isdisjoint(present)),
                "_line": ex.annotation.line,
            })
    return rows


def encode_text(documents: list[str] | str, tokenizer, max_length: int, query: str = "") -> dict:
    """Encode raw text as a built dataset row would be: ``documents`` (one string, or several for a
    multi-document task such as e-SNLI's premise and hypothesis; each split into whitespace words, line
    breaks as sentence breaks) and an optional ``query`` (second segment). No gold rationale."""
    docs = [documents] if isinstance(documents, str) else list(documents)
    parsed = []
    for i, text in enumerate(docs):
        lines = [" ".join(line.split()) for line in str(text).splitlines() if line.split()]
        parsed.append(Document(f"text_{i}", lines))
    ann = Annotation(annotation_id="text", classification="", evidences=(), docids=tuple(d.docid for d in parsed),
                     query=" ".join(str(query or "").split()))
    ex = Example(annotation=ann, documents=parsed, gold_word_masks=[[0] * d.n_words for d in parsed])
    row = encode_examples([ex], tokenizer, max_length)[0]
    row.pop("_line", None)
    return row


__all__ = ["CHARS_PER_SUBWORD", "encode_examples", "encode_text", "word_char_cap"]
