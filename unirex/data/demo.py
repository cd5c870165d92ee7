"""The built-in demo dataset: deterministic ERASER-format movie-review sentiment with gold rationales.

Grammar (``R`` is the review label, ``POS`` or ``NEG``; ``~R`` is the other one)::

    review      := shuffle(support{1..3} + filler{1..9})     one sentence per line
    support     := clause(R) "."                               (simple)
                 | clause(~R) "," "but" clause(R) "."          (contrast: the "but" clause decides)
                 | "although" clause(~R) "," clause(R) "."     (concession)
    clause(P)   := aspect "was" phrase(P) | "i found it" phrase(P) | "a" phrase(P) "film overall"
    phrase(P)   := [intensifier] adjective(P)                  adjective of polarity P
                 | "not" [intensifier] adjective(~P)           (negation flips polarity)
    filler      := a neutral sentence (setting, length, release, audience, ...)

The gold rationale (ERASER evidences) is every ``phrase(R)`` that supports the label, negation and
intensifier included; opposite-polarity phrases that a contrast or concession overrides are *not*
rationale, and neither are fillers. So the label cannot be read off a single word: a model must weigh
negation and contrast, and a good rationale spans several tokens.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

from unirex.data.eraser import write_dataset
from unirex.fsutil import atomic_dir, file_lock

log = logging.getLogger(__name__)  # a front shows it (the CLI's stderr: Python's last-resort handler)

GENERATOR_VERSION = 1
DEFAULT_SIZES = {"train": 2000, "val": 300, "test": 300}
LABELS = ("NEG", "POS")

ADJECTIVES = {
    "POS": ["good", "great", "wonderful", "superb", "charming", "moving", "delightful", "brilliant",
            "engaging", "memorable", "funny", "beautiful", "excellent", "enjoyable", "touching", "clever"],
    "NEG": ["bad", "awful", "dull", "boring", "terrible", "clumsy", "tedious", "lifeless", "painful",
            "forgettable", "weak", "messy", "bland", "predictable", "annoying", "shallow"],
}
INTENSIFIERS = ["very", "really", "truly", "remarkably", "extremely", "incredibly", "quite", "so"]
ASPECTS = ["the acting", "the plot", "the script", "the soundtrack", "the direction", "the dialogue",
           "the pacing", "the cast", "the ending", "the cinematography", "the story", "the humor",
           "the lead performance", "the editing", "the score"]
PLACES = ["a small town", "new york", "the nineteen fifties", "a space station", "rural france",
          "a boarding school", "the desert", "a fishing village", "london", "the near future"]
FILLERS = [
    "the film runs about {n} minutes .",
    "it was released in the {season} of {year} .",
    "i saw it with {who} on a {day} .",
    "the story is set in {place} .",
    "the director has made {k} films before this one .",
    "most of it was shot in {place} .",
    "the theater was {full} on the night i went .",
    "it is based on a novel of the same name .",
    "the main character is a {job} who moves to {place} .",
    "there is a short scene after the credits .",
    "the trailer came out {k} months before the premiere .",
    "it is rated for audiences over {age} .",
    "the cast includes several newcomers .",
    "the music was written by a {job} from {place} .",
]
FILL = {
    "n": ["ninety", "one hundred", "one hundred and twenty", "eighty"], "season": ["spring", "summer", "autumn", "winter"],
    "year": ["two thousand", "nineteen ninety", "two thousand and ten"], "who": ["a friend", "my sister", "my parents", "a colleague"],
    "day": ["tuesday", "friday", "sunday", "rainy monday"], "place": PLACES, "k": ["two", "three", "four", "several"],
    "full": ["half full", "almost empty", "packed", "quiet"], "job": ["teacher", "detective", "chef", "pilot", "painter"],
    "age": ["twelve", "fifteen", "eighteen"],
}


def _phrase(rng: random.Random, polarity: str) -> list[str]:
    other = "NEG" if polarity == "POS" else "POS"
    intens = [rng.choice(INTENSIFIERS)] if rng.random() < 0.4 else []
    if rng.random() < 0.25:
        return ["not", *intens, rng.choice(ADJECTIVES[other])]
    return [*intens, rng.choice(ADJECTIVES[polarity])]


def _clause(rng: random.Random, polarity: str) -> tuple[list[str], tuple[int, int]]:
    """Tokens of a clause and the (start, end) of its sentiment phrase inside it."""
    phrase = _phrase(rng, polarity)
    form = rng.random()
    if form < 0.6:
        prefix = rng.choice(ASPECTS).split() + ["was"]
        suffix: list[str] = []
    elif form < 0.8:
        prefix, suffix = ["i", "found", "it"], []
    else:
        prefix, suffix = ["a"], ["film", "overall"]
    return prefix + phrase + suffix, (len(prefix), len(prefix) + len(phrase))


def _support(rng: random.Random, label: str) -> tuple[list[str], list[tuple[int, int]]]:
    """A sentence supporting ``label`` and the spans (sentence-relative) of its gold rationale."""
    other = "NEG" if label == "POS" else "POS"
    kind = rng.random()
    main, span = _clause(rng, label)
    if kind < 0.55:
        return main + ["."], [span]
    opp, _ = _clause(rng, other)
    if kind < 0.8:
        off = len(opp) + 2
        return opp + [",", "but"] + main + ["."], [(span[0] + off, span[1] + off)]
    off = 1 + len(opp) + 1
    return ["although"] + opp + [","] + main + ["."], [(span[0] + off, span[1] + off)]


def _filler(rng: random.Random) -> list[str]:
    template = rng.choice(FILLERS)
    return template.format(**{k: rng.choice(v) for k, v in FILL.items()}).split()


def generate_review(rng: random.Random, annotation_id: str, label: str):
    """One review: its sentences and the ERASER evidences of its gold rationale."""
    n_support = rng.randint(1, 3)
    n_filler = rng.randint(1, 9)
    kinds = ["s"] * n_support + ["f"] * n_filler
    rng.shuffle(kinds)
    sentences: list[list[str]] = []
    evidences = []
    offset = 0
    for si, kind in enumerate(kinds):
        if kind == "s":
            toks, spans = _support(rng, label)
            for a, b in spans:
                evidences.append([{
                    "docid": annotation_id, "start_token": offset + a, "end_token": offset + b,
                    "start_sentence": si, "end_sentence": si + 1, "text": " ".join(toks[a:b]),
                }])
        else:
            toks = _filler(rng)
        sentences.append(toks)
        offset += len(toks)
    return sentences, evidences


def generate_demo_splits(sizes: dict[str, int] | None = None, seed: int = 0):
    """Build the demo dataset in memory: ``(splits, documents)`` as :func:`write_dataset` takes them."""
    sizes = {**DEFAULT_SIZES, **(sizes or {})}
    splits: dict[str, list[dict]] = {}
    documents: dict[str, list[list[str]]] = {}
    for split_i, (split, n) in enumerate(sizes.items()):
        rng = random.Random(f"unirex-demo-{seed}-{split}")
        anns = []
        for i in range(n):
            label = LABELS[(i + rng.randint(0, 1)) % 2]
            ann_id = f"demo_{split}_{i:05d}"
            sentences, evidences = generate_review(rng, ann_id, label)
            documents[ann_id] = sentences
            anns.append({"annotation_id": ann_id, "classification": label, "evidences": evidences,
                         "query": "", "query_type": None, "docids": None})
        splits[split] = anns
    return splits, documents


def _marker_spec(marker: Path) -> dict | None:
    """The spec a generator wrote to ``marker`` (a JSON object with ``generator_version``), or None."""
    try:
        found = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and "generator_version" in found else None


def _move_aside(folder: Path) -> Path:
    """Rename a folder the generator did not write to ``<name>.user-<time>`` beside it (never deleted)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = folder.with_name(f"{folder.name}.user-{stamp}")
    n = 1
    while aside.exists() or aside.is_symlink():
        n += 1
        aside = folder.with_name(f"{folder.name}.user-{stamp}-{n}")
    os.rename(folder, aside)
    return aside


def ensure_generated(dataset_dir: Path, marker_name: str, spec: dict, keep_any_size: bool,
                     write: Callable[[Path], None], prefix: str | None = None) -> Path:
    """Write a generated dataset to ``dataset_dir`` (``write(tmp)`` fills a temporary folder, which then
    replaces ``dataset_dir``) unless the one there has ``spec`` in its ``marker_name`` (or, with
    ``keep_any_size``, any spec of this generator and version).

    Only a folder this generator wrote, of the version it writes now, is ever replaced. Anything else
    (no marker, an unreadable one, another generator's, another version's: the user's own data, or a
    folder someone edited) is moved aside to ``<name>.user-<time>`` with a warning (logging) saying
    where, and never deleted. Processes that ask at the same time wait for one another (a lock file in
    ``<data_dir>/.downloads/``).
    """
    dataset_dir = Path(dataset_dir)
    marker = dataset_dir / marker_name

    def ours() -> bool:  # this generator, this version
        found = _marker_spec(marker)
        return (found is not None and found.get("generator_version") == spec["generator_version"]
                and found.get("generator") == spec.get("generator"))

    def current() -> bool:
        return ours() and (_marker_spec(marker) == spec or keep_any_size)

    if dataset_dir.is_dir() and current():
        return dataset_dir
    lock = dataset_dir.parent / ".downloads" / f"{dataset_dir.name}.lock"
    with file_lock(lock):
        if dataset_dir.is_dir() and current():  # another process wrote it while we waited
            return dataset_dir
        if (dataset_dir.exists() or dataset_dir.is_symlink()) and not (dataset_dir.is_dir() and ours()):
            found = _marker_spec(marker) if dataset_dir.is_dir() else None
            why = (f"no {marker_name}" if found is None
                   else f"its {marker_name} is not of this generator's version {spec['generator_version']}")
            aside = _move_aside(dataset_dir)
            log.warning(f"warning: {dataset_dir} was not written by the demo generator ({why}); it was moved "
                        f"to {aside} and the demo dataset is written in its place")
        with atomic_dir(dataset_dir, prefix=prefix) as tmp:
            write(tmp)
            (tmp / marker_name).write_text(json.dumps(spec))
    return dataset_dir


def ensure_demo(dataset_dir: Path, sizes: dict[str, int] | None = None, seed: int = 0) -> Path:
    """Write the demo dataset to ``dataset_dir`` unless an identical one is already there (with no
    ``sizes`` given, any demo of this generator version is kept, whatever its sizes).

    Written to a temporary folder beside the target and swapped in at the end, so a crash never leaves a
    half-written dataset; see :func:`ensure_generated` for what happens to a folder that is there: only
    a demo of this generator version is replaced; anything else (the user's own data, a demo of another
    version) is moved aside to ``<name>.user-<time>`` with a warning (logging), never deleted.
    """
    spec = {"generator_version": GENERATOR_VERSION, "sizes": {**DEFAULT_SIZES, **(sizes or {})}, "seed": seed}

    def write(tmp: Path) -> None:
        write_dataset(tmp, *generate_demo_splits(spec["sizes"], seed))

    return ensure_generated(dataset_dir, "demo.json", spec, sizes is None and seed == 0, write)


