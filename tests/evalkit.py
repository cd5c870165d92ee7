"""Test-local helpers for the evaluator tests: a tiny classifier over the tiny BERT, split loading."""

from __future__ import annotations

import warnings
from collections import defaultdict

import numpy as np
import torch

from unirex.data import SplitDataset, build_split, load_built


class TinyClassifier(torch.nn.Module):
    """``AutoModel`` + a linear head over the mean of the token states: ``logits [B, C]``.

    Mean pooling (not the first token) because a randomly initialised BERT's first-token state barely
    depends on the other tokens, and the tests need probabilities that move when tokens are deleted."""

    def __init__(self, arch: str, num_labels: int = 2, seed: int = 0, head_scale: float = 5.0):
        from transformers import AutoModel

        super().__init__()
        torch.manual_seed(seed)
        self.encoder = AutoModel.from_pretrained(arch)
        self.head = torch.nn.Linear(self.encoder.config.hidden_size, num_labels)
        with torch.no_grad():  # a sharper head: probabilities move when tokens are deleted
            self.head.weight.mul_(head_scale)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        m = attention_mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
        return self.head((out.last_hidden_state * m).sum(1) / m.sum(1).clamp(min=1))


def split_dataset(data_dir, dataset, split, arch, max_length=64, rows=None):
    """A SplitDataset built with ``build_split`` (no demo regeneration), optionally a subset of rows."""
    built = build_split(data_dir, dataset, split, arch=arch, max_length=max_length)
    table = load_built(built.path)
    if rows is not None:
        table = table[list(rows)]
    return SplitDataset(table, built.summary["pad_token_id"], built.labels), built


def random_scores(table, seed=0):
    """Precomputed scores: one float per subword of each row, with ties (quantised)."""
    rng = np.random.default_rng(seed)
    return [np.round(rng.normal(size=len(ids)), 1) for ids in table["input_ids"].to_list()]


# --- an independent implementation of ERASER's formulas (DeYoung et al. 2020, metrics.py) ---------


def ref_auprc(truth, scores):
    from sklearn.metrics import auc, precision_recall_curve

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, r, _ = precision_recall_curve([int(t) for t in truth], list(scores))
    return auc(r, p)


def ref_token_prf(truth_tokens: set, pred_tokens: set):
    """Sets of (instance, token); instance-macro as ERASER's score_hard_rationale_predictions."""
    by_t, by_p = defaultdict(set), defaultdict(set)
    for k, t in truth_tokens:
        by_t[k].add(t)
    for k, t in pred_tokens:
        by_p[k].add(t)
    ps, rs, fs = [], [], []
    for k in set(by_t) | set(by_p):
        tp = len(by_t[k] & by_p[k])
        p = tp / len(by_p[k]) if by_p[k] else 0
        r = tp / len(by_t[k]) if by_t[k] else 0
        ps.append(p), rs.append(r), fs.append(0 if p == 0 or r == 0 else 2 * p * r / (p + r))
    return sum(ps) / len(ps), sum(rs) / len(rs), sum(fs) / len(fs)


def ref_iou_macro_f1(truth_spans: set, pred_spans: set, thr=0.5):
    """Sets of (instance, start, end); ERASER's partial_match_score macro F1."""
    by_t, by_p = defaultdict(set), defaultdict(set)
    for k, s, e in truth_spans:
        by_t[k].add((s, e))
    for k, s, e in pred_spans:
        by_p[k].add((s, e))
    tps = {}
    for k, preds in by_p.items():
        n = 0
        for ps, pe in preds:
            best = 0.0
            for ts, te in by_t.get(k, ()):
                a, b = set(range(ps, pe)), set(range(ts, te))
                best = max(best, len(a & b) / len(a | b))
            n += best >= thr
        tps[k] = n
    mr = [tps.get(k, 0) / len(v) for k, v in by_t.items()]
    mp = [tps.get(k, 0) / len(v) for k, v in by_p.items()]
    r = sum(mr) / len(mr) if mr else 0
    p = sum(mp) / len(mp) if mp else 0
    return 0 if p == 0 or r == 0 else 2 * p * r / (p + r)


def ref_eraser_scores(lines: list[dict], annotations: list[dict], doc_lengths: dict[str, int],
                      thresholds=(0.01, 0.05, 0.1, 0.2, 0.5)) -> dict[str, float]:
    """ERASER's headline numbers from a results file (``lines``) and the split's raw annotation dicts,
    re-derived here: token P/R/F1 (instance macro), IOU F1 (macro, 0.5), AUPRC, comp, suff, AOPC."""
    truth_tok, pred_tok, truth_sp, pred_sp = set(), set(), set(), set()
    gold = {}
    for ann in annotations:
        for group in ann["evidences"]:
            for ev in group:
                key = (ann["annotation_id"], ev["docid"])
                truth_sp.add((key, ev["start_token"], ev["end_token"]))
                mask = gold.setdefault(key, [False] * doc_lengths[ev["docid"]])
                for t in range(ev["start_token"], ev["end_token"]):
                    truth_tok.add((key, t))
                    mask[t] = True
    aucs = []
    for line in lines:
        for rat in line["rationales"]:
            key = (line["annotation_id"], rat["docid"])
            for h in rat["hard_rationale_predictions"]:
                pred_sp.add((key, h["start_token"], h["end_token"]))
                pred_tok.update((key, t) for t in range(h["start_token"], h["end_token"]))
            soft = rat["soft_rationale_predictions"]
            assert len(soft) == doc_lengths[rat["docid"]]
            aucs.append(ref_auprc(gold.get(key, [False] * len(soft)), soft))
    p, r, f1 = ref_token_prf(truth_tok, pred_tok)

    def drop(line, scores):
        c = line["classification"]
        return line["classification_scores"][c] - scores[c]

    per_thr = lambda line, key: [drop(line, s[key]) for s in sorted(line["thresholded_scores"], key=lambda s: s["threshold"])  # noqa: E731
                                 if s["threshold"] in thresholds]
    return {
        "plaus_token_p": p, "plaus_token_r": r, "plaus_token_f1": f1,
        "plaus_iou_f1": ref_iou_macro_f1(truth_sp, pred_sp), "plaus_auprc": float(np.mean(aucs)),
        "comp": float(np.mean([drop(ln, ln["comprehensiveness_classification_scores"]) for ln in lines])),
        "suff": float(np.mean([drop(ln, ln["sufficiency_classification_scores"]) for ln in lines])),
        "comp_aopc": float(np.mean([per_thr(ln, "comprehensiveness_classification_scores") for ln in lines])),
        "suff_aopc": float(np.mean([per_thr(ln, "sufficiency_classification_scores") for ln in lines])),
    }


def ref_verify(lines: list[dict], doc_lengths: dict[str, int]) -> list[str]:
    """The checks of ERASER's verifier that a results file can fail; returns the problems found."""
    problems = []
    ids = [ln["annotation_id"] for ln in lines]
    if len(ids) != len(set(ids)):
        problems.append("duplicate annotation ids")
    thresholds = {s["threshold"] for s in lines[0]["thresholded_scores"]}
    for ln in lines:
        for rat in ln["rationales"]:
            n = doc_lengths[rat["docid"]]
            spans = [(h["start_token"], h["end_token"]) for h in rat["hard_rationale_predictions"]]
            for a, b in spans:
                if not (0 <= a < b <= n):
                    problems.append(f"{ln['annotation_id']}: span {a, b} outside {n}")
            for x, y in [(x, y) for x in spans for y in spans if x < y]:
                if set(range(*x)) & set(range(*y)):
                    problems.append(f"{ln['annotation_id']}: spans {x} {y} overlap")
            if len(rat["soft_rationale_predictions"]) != n:
                problems.append(f"{ln['annotation_id']}: soft length")
        if not isinstance(ln["classification"], str) or ln["classification"] not in ln["classification_scores"]:
            problems.append(f"{ln['annotation_id']}: classification")
        if {s["threshold"] for s in ln["thresholded_scores"]} != thresholds:
            problems.append(f"{ln['annotation_id']}: thresholds differ")
        for s in ln["thresholded_scores"]:
            if "comprehensiveness_classification_scores" not in s or "sufficiency_classification_scores" not in s:
                problems.append(f"{ln['annotation_id']}: thresholded scores incomplete")
    return problems
