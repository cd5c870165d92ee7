"""How far annotators agree on the rationale: token-level Cohen's kappa and pairwise F1.

For two annotators ``a`` and ``b`` who marked the same example's words (``1`` rationale, ``0`` not):

* **kappa** ``= (p_o - p_e) / (1 - p_e)`` with ``p_o`` the share of words both marked alike and
  ``p_e = p_a p_b + (1 - p_a)(1 - p_b)`` the share chance would give (``p_a``: the share ``a`` marked).
  When ``p_e = 1`` (both marked every word, or none) the two agree on every word and kappa is 1.
  This is scikit-learn's ``cohen_kappa_score`` on the two word masks.
* **F1** ``= 2 |a ∩ b| / (|a| + |b|)`` (symmetric: either may be the reference); 1 when neither marked a word.

Per example: the mean over the pairs of annotators who both annotated it. Overall, per pair: kappa and
F1 over the words of every example both annotated (pooled), then the mean over the pairs. Examples are
listed with the most disagreement first (lowest kappa, then lowest F1). Only examples with two or more
annotators count (``n_examples``).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

from unirex.data.annotations import AnnotationSet


@dataclass(frozen=True)
class PairAgreement:
    a: str
    b: str
    kappa: float
    f1: float
    n_examples: int
    n_words: int


@dataclass(frozen=True)
class ExampleAgreement:
    example_id: str
    annotators: tuple[str, ...]
    kappa: float
    f1: float
    labels: tuple[str, ...]  # each annotator's class label, in ``annotators`` order
    n_words: int
    preview: str  # the example's first words

    @property
    def labels_agree(self) -> bool:
        return len(set(self.labels)) == 1


@dataclass(frozen=True)
class Agreement:
    kappa: float | None  # None: no example has two annotators
    f1: float | None
    n_examples: int
    annotators: tuple[str, ...]
    pairs: tuple[PairAgreement, ...]
    examples: tuple[ExampleAgreement, ...]  # most disagreement first

    def to_json(self) -> dict:
        return {"kappa": self.kappa, "f1": self.f1, "n_examples": self.n_examples, "annotators": list(self.annotators),
                "pairs": [p.__dict__ for p in self.pairs],
                "examples": [{**e.__dict__, "annotators": list(e.annotators), "labels": list(e.labels)}
                             for e in self.examples]}


def kappa(a: list[bool] | tuple[bool, ...], b: list[bool] | tuple[bool, ...]) -> float:
    """Cohen's kappa of two equally long 0/1 masks (1 when chance agreement is total)."""
    n = len(a)
    if n == 0 or n != len(b):
        raise ValueError("two masks of the same, non-zero length")
    po = sum(1 for x, y in zip(a, b) if bool(x) == bool(y)) / n
    pa, pb = sum(map(bool, a)) / n, sum(map(bool, b)) / n
    pe = pa * pb + (1 - pa) * (1 - pb)
    return 1.0 if pe >= 1.0 else (po - pe) / (1 - pe)


def f1(a, b) -> float:
    both = sum(1 for x, y in zip(a, b) if x and y)
    total = sum(map(bool, a)) + sum(map(bool, b))
    return 1.0 if total == 0 else 2 * both / total


def agreement(s: AnnotationSet) -> Agreement:
    """Agreement between the annotators of a set (see the module note)."""
    pooled: dict[tuple[str, str], tuple[list[bool], list[bool], int]] = {}
    examples = []
    for ex_id, anns in s.examples.items():
        anns = sorted(anns, key=lambda x: x.annotator)
        if len(anns) < 2:
            continue
        ks, fs = [], []
        for x, y in combinations(anns, 2):
            ks.append(kappa(x.rationale, y.rationale))
            fs.append(f1(x.rationale, y.rationale))
            ma, mb, n = pooled.setdefault((x.annotator, y.annotator), ([], [], 0))
            ma += x.rationale
            mb += y.rationale
            pooled[(x.annotator, y.annotator)] = (ma, mb, n + 1)
        words = anns[0].item.words
        examples.append(ExampleAgreement(ex_id, tuple(a.annotator for a in anns), sum(ks) / len(ks), sum(fs) / len(fs),
                                         tuple(a.label for a in anns), len(words), " ".join(words[:12])))
    pairs = tuple(PairAgreement(a, b, kappa(ma, mb), f1(ma, mb), n, len(ma)) for (a, b), (ma, mb, n) in sorted(pooled.items()))
    examples.sort(key=lambda e: (e.kappa, e.f1, e.example_id))
    return Agreement(
        kappa=sum(p.kappa for p in pairs) / len(pairs) if pairs else None,
        f1=sum(p.f1 for p in pairs) / len(pairs) if pairs else None,
        n_examples=len(examples), annotators=s.annotators, pairs=pairs, examples=tuple(examples))


__all__ = ["Agreement", "ExampleAgreement", "PairAgreement", "agreement", "f1", "kappa"]
