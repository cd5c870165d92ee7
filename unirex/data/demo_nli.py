"""The built-in NLI demo dataset: deterministic e-SNLI-style premise/hypothesis pairs with gold rationales.

Each example is two ERASER documents, ``<id>_premise`` and ``<id>_hypothesis`` (the pair the reader
resolves for e-SNLI), and one of three labels. The premise describes 2-3 people; the hypothesis makes one
claim about one of them (the *target*), on one *slot*: what they wear or what they do.

Grammar (``E`` is the target, ``S`` the slot of the claim, ``v`` the claimed value)::

    premise     := shuffle(person{2..3}) [scene]             one sentence per line, distinct nouns
    person      := "a" noun "in a" outfit "is" activity "."  (both slots)
                 | "a" noun "is" activity "."                (activity only)
                 | "there is a" noun "in a" outfit "."       (outfit only)
                 | "there is a" noun "."                     (neither)
    outfit      := color garment                            e.g. "red jacket" (after "a" / "an")
    activity    := e.g. "reading a book", "riding a bike"   one activity per person
    scene       := a neutral sentence (time, weather, place)
    hypothesis  := "the" noun(E) [descriptor] "is" claim "."
    descriptor  := "in the" outfit(E) | "who is" activity(E) the target's *other* slot, true in the premise
    claim       := "wearing a" outfit | activity             about slot S, value v

    entailment     the premise gives E's slot S the value v
    contradiction  it gives another value (outfit: same garment, another color; activity: another one)
    neutral        it does not say (E has no value for S, or wears another garment)

The label cannot be read off the hypothesis (every claim occurs under all three labels), nor off word
overlap: in about a third of the contradiction and neutral pairs another person in the premise has exactly
the claimed value (``v`` appears in the premise, bound to the wrong person).

Gold rationale (ERASER evidences, in both documents as e-SNLI marks them): the claim's value in the
hypothesis (``outfit`` or ``activity`` words), and for entailment and contradiction the target's value
for ``S`` in the premise; a neutral pair has hypothesis evidence only (as e-SNLI's annotators mark
neutral pairs). Nothing else is rationale: not the other people, not the target's other slot, not the
hypothesis's descriptor. So the same words ("red jacket", "reading a book") are rationale in one pair
and not in another, depending on which person and slot the other document talks about: plausibility
has to be learned from the pair, not from word identity.
"""

from __future__ import annotations

import random
from pathlib import Path

from unirex.data.demo import ensure_generated
from unirex.data.eraser import write_dataset

GENERATOR_VERSION = 1
DEFAULT_SIZES = {"train": 3000, "val": 300, "test": 300}
LABELS = ("contradiction", "entailment", "neutral")
#: how often a contradiction or neutral pair gives the claimed value to another person in the premise
DISTRACTOR_RATE = 0.3
#: how often the hypothesis names the target by its other slot, when the premise gives one
DESCRIPTOR_RATE = 0.3

NOUNS = ["man", "woman", "boy", "girl", "chef", "nurse", "tourist", "student"]
COLORS = ["red", "blue", "green", "yellow", "black", "white", "orange", "purple"]
GARMENTS = ["jacket", "shirt", "hat", "coat", "scarf", "sweater"]
ACTIVITIES = ["reading a book", "riding a bike", "playing a guitar", "eating a sandwich", "walking a dog",
              "painting a fence", "sleeping on a bench", "flying a kite", "taking a photo", "drinking coffee",
              "talking on a phone", "carrying a box"]
SCENES = [
    "it is a sunny afternoon in the park .", "the street is busy this morning .", "it is raining a little .",
    "they are near the train station .", "music is playing somewhere nearby .", "the market opens at nine .",
    "a few birds sit on the wall .", "it is the first warm day of spring .",
]


def _a(word: str) -> str:
    """The indefinite article before ``word``."""
    return "an" if word[0] in "aeiou" else "a"


def _outfit(rng: random.Random) -> tuple[str, str]:
    return rng.choice(COLORS), rng.choice(GARMENTS)


def _person_sentence(noun: str, wear: tuple[str, str] | None, act: str | None) -> tuple[list[str], dict]:
    """Tokens of one premise sentence and the (start, end) of its outfit / activity inside it."""
    spans = {}
    if wear and act:
        toks = ["a", noun, "in", _a(wear[0]), *wear, "is", *act.split(), "."]
        spans["wear"] = (4, 6)
        spans["act"] = (7, 7 + len(act.split()))
    elif act:
        toks = ["a", noun, "is", *act.split(), "."]
        spans["act"] = (3, 3 + len(act.split()))
    elif wear:
        toks = ["there", "is", "a", noun, "in", _a(wear[0]), *wear, "."]
        spans["wear"] = (6, 8)
    else:
        toks = ["there", "is", "a", noun, "."]
    return toks, spans


def _value_tokens(slot: str, value) -> list[str]:
    return list(value) if slot == "wear" else value.split()


def generate_pair(rng: random.Random, annotation_id: str, label: str):
    """One example: ``(premise sentences, hypothesis sentences, evidences)`` for ``label``."""
    slot = rng.choice(["wear", "act"])
    other_slot = "act" if slot == "wear" else "wear"
    nouns = rng.sample(NOUNS, rng.randint(2, 3))
    target = rng.randrange(len(nouns))
    people = []  # per person: {"wear": (color, garment) | None, "act": str | None}
    for i in range(len(nouns)):
        p = {"wear": _outfit(rng) if rng.random() < 0.6 else None,
             "act": rng.choice(ACTIVITIES) if rng.random() < 0.6 else None}
        if i != target and p["wear"] is None and p["act"] is None:  # a bystander has something to say
            if rng.random() < 0.5:
                p["wear"] = _outfit(rng)
            else:
                p["act"] = rng.choice(ACTIVITIES)
        people.append(p)
    t = people[target]

    # the target's slot S and the claimed value v
    if label == "entailment":
        if t[slot] is None:
            t[slot] = _outfit(rng) if slot == "wear" else rng.choice(ACTIVITIES)
        value = t[slot]
    elif label == "contradiction":
        if t[slot] is None:
            t[slot] = _outfit(rng) if slot == "wear" else rng.choice(ACTIVITIES)
        if slot == "wear":
            value = (rng.choice([c for c in COLORS if c != t["wear"][0]]), t["wear"][1])
        else:
            value = rng.choice([a for a in ACTIVITIES if a != t["act"]])
    else:  # neutral: the premise says nothing about E's value for S
        if slot == "wear":
            if t["wear"] is not None and rng.random() < 0.5:  # E wears another garment
                value = (rng.choice(COLORS), rng.choice([g for g in GARMENTS if g != t["wear"][1]]))
            else:
                t["wear"] = None
                value = _outfit(rng)
        else:
            t["act"] = None
            value = rng.choice(ACTIVITIES)
    if label != "entailment" and rng.random() < DISTRACTOR_RATE:  # the claimed value, on someone else
        others = [i for i in range(len(nouns)) if i != target]
        people[rng.choice(others)][slot] = value

    # premise: one sentence per person, shuffled, and an optional scene sentence anywhere
    order: list[int | None] = list(range(len(nouns)))
    rng.shuffle(order)
    if rng.random() < 0.5:
        order.insert(rng.randint(0, len(order)), None)
    premise, evidences, offset = [], [], 0
    pid, hid = f"{annotation_id}_premise", f"{annotation_id}_hypothesis"
    for si, i in enumerate(order):
        if i is None:
            toks, spans = rng.choice(SCENES).split(), {}
        else:
            toks, spans = _person_sentence(nouns[i], people[i]["wear"], people[i]["act"])
        if i == target and label != "neutral":
            a, b = spans[slot]
            evidences.append({"docid": pid, "start_token": offset + a, "end_token": offset + b,
                              "start_sentence": si, "end_sentence": si + 1, "text": " ".join(toks[a:b])})
        premise.append(toks)
        offset += len(toks)

    # hypothesis: "the <noun> [descriptor] is <claim> ."
    hyp = ["the", nouns[target]]
    if t[other_slot] is not None and rng.random() < DESCRIPTOR_RATE:
        hyp += ["in", "the", *t["wear"]] if other_slot == "wear" else ["who", "is", *t["act"].split()]
    hyp.append("is")
    if slot == "wear":
        hyp += ["wearing", _a(value[0])]
    claim = _value_tokens(slot, value)
    a = len(hyp)
    hyp += claim + ["."]
    evidences.append({"docid": hid, "start_token": a, "end_token": a + len(claim),
                      "start_sentence": 0, "end_sentence": 1, "text": " ".join(claim)})
    return premise, [hyp], evidences


def generate_nli_splits(sizes: dict[str, int] | None = None, seed: int = 0):
    """Build the NLI demo in memory: ``(splits, documents)`` as :func:`write_dataset` takes them."""
    sizes = {**DEFAULT_SIZES, **(sizes or {})}
    splits: dict[str, list[dict]] = {}
    documents: dict[str, list[list[str]]] = {}
    for split, n in sizes.items():
        rng = random.Random(f"unirex-demo-nli-{seed}-{split}")
        labels = [LABELS[i % len(LABELS)] for i in range(n)]  # balanced to one example, in random order
        rng.shuffle(labels)
        anns = []
        for i, label in enumerate(labels):
            ann_id = f"nli_{split}_{i:05d}"
            premise, hypothesis, evidences = generate_pair(rng, ann_id, label)
            documents[f"{ann_id}_premise"] = premise
            documents[f"{ann_id}_hypothesis"] = hypothesis
            anns.append({"annotation_id": ann_id, "classification": label, "evidences": [evidences],
                         "query": "", "query_type": None, "docids": None})
        splits[split] = anns
    return splits, documents


def ensure_demo_nli(dataset_dir: Path, sizes: dict[str, int] | None = None, seed: int = 0) -> Path:
    """Write the NLI demo to ``dataset_dir`` unless an identical one is already there (with no ``sizes``
    given, any NLI demo of this generator version is kept, whatever its sizes).

    Written to a temporary folder beside the target and renamed at the end, so a crash never leaves a
    half-written dataset; a folder there that is not an NLI demo of this generator version (the user's
    own data) is moved aside with a message, never deleted (:func:`unirex.data.demo.ensure_generated`).
    """
    spec = {"generator": "demo_nli", "generator_version": GENERATOR_VERSION,
            "sizes": {**DEFAULT_SIZES, **(sizes or {})}, "seed": seed}

    def write(tmp: Path) -> None:
        write_dataset(tmp, *generate_nli_splits(spec["sizes"], seed))

    return ensure_generated(dataset_dir, "demo_nli.json", spec, sizes is None and seed == 0, write,
                            prefix=".demo_nli-")


__all__ = ["DEFAULT_SIZES", "GENERATOR_VERSION", "LABELS", "ensure_demo_nli", "generate_nli_splits", "generate_pair"]
