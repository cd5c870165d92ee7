"""The one encoder from ERASER examples (or raw text) to model inputs, shared by the dataset build and
by explaining typed text, so a sentence typed in the app is tokenised exactly as a built dataset is.

Input layout: ``[CLS] documents [SEP] query [SEP]`` (the arch's own pair encoding); several documents of
one annotation (e-SNLI's premise and hypothesis) are joined by the separator token; a document is its
words split as ERASER splits them. Long inputs are truncated in the documents (the query is kept whole
when it fits), and only as many words as can reach the input are split and tokenised.
Per subword: ``word_ids`` (index of its word in the concatenated documents, -1 for special tokens,
separators and the query) and ``explainable`` (document tokens only).
"""

from __future__ import annotations

from unirex.data.eraser import Annotation, Document, Example


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
    q_len = [len(ids) for ids in tokenizer([ex.annotation.query.split() or [""] for ex in examples],
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
            enc = tokenizer([cand[i][0][: cand[i][2]] for i in cut], is_split_into_words=True, add_special_tokens=False,
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


def encode_examples(examples: list[Example], tokenizer, max_length: int) -> list[dict]:
    """Tokenise examples (documents, + the query as the second segment) and align subwords to words.

    Returns one dict per example with the columns of a built split (see :mod:`unirex.data.build`) except
    ``label`` (the caller maps ``label_name`` to an id), plus ``_line`` (the annotation's line)."""
    sep = tokenizer.sep_token or tokenizer.eos_token
    rows = []
    for start in range(0, len(examples), 512):
        chunk = examples[start : start + 512]
        inputs = _input_words(chunk, tokenizer, max_length, sep)
        firsts = [w for w, _ in inputs]
        seg_maps = [m for _, m in inputs]
        queries = [ex.annotation.query.split() for ex in chunk]
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
        for i, ex in enumerate(chunk):
            enc, j = enc_by_index[i]
            ids = list(enc["input_ids"][j])
            seq_ids, wids = enc.sequence_ids(j), enc.word_ids(j)
            seg_map = seg_maps[i]
            word_ids = [seg_map[w] if (s == 0 and w is not None) else -1 for s, w in zip(seq_ids, wids)]
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
                "truncated": (max(present) + 1 if present else 0) < n_words,
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


__all__ = ["encode_examples", "encode_text"]
