"""The built-in demo dataset: deterministic ERASER-format movie-review sentiment with gold rationales.

Reviews read as people type them: mostly short ("great movie!", "not funny at all, don't bother."), some
longer with neutral sentences around the opinion, punctuation attached to the word before it, a few in the
spaced-out style of the ERASER corpora ("a wonderful film ."). ``R`` is the review label, ``POS`` or ``NEG``;
``~R`` is the other one::

    review      := shuffle(support{1..3} + filler{0..7})       short (45%), medium (45%) or long (10%)
    support     := clause(R) end                                (simple)
                 | phrase(R) [noun] end | noun_phrase(R) end | verdict(R) end   (no subject, as typed)
                 | clause(~R) ", but" clause(R) end             (contrast: the "but" clause decides)
                 | clause(~R) ", yet" clause(R) end
                 | "although" clause(~R) "," clause(R) end      (concession)
                 | clause(R) ", even though" clause(~R) end
                 | adjective(~R) "at first, but" phrase(R) end  ("slow at first, but worth it")
    clause(P)   := subject copula phrase(P) | "i" verb(P) object | "i didn't" verb-base(~P) object
    phrase(P)   := [intensifier] adjective(P)                   adjective of polarity P
                 | negator [intensifier] adjective(~P) ["at all"]   ("not", "never", "wasn't": flips polarity)
    noun_phrase := "a" [intensifier] noun(P)                    ("a total mess", "an absolute gem")
    verdict(P)  := a recommendation ("highly recommend it", "don't bother", "not worth it")
    filler      := a neutral sentence (setting, length, release, who I saw it with, ...)

The gold rationale (ERASER evidences) is every ``phrase(R)`` / verb / noun phrase / verdict that decides
the label, negation and intensifier included; opposite-polarity phrases that a contrast or concession
overrides are *not* rationale, and neither are fillers, subjects or connectives. So the label cannot be read
off a single word: a model must weigh negation and contrast. Every review's rationale is less than half of
its words (a short neutral sentence is added where it would not be).
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

GENERATOR_VERSION = 2  # 2: short typed reviews, more words and phrasings (1: long spaced-out reviews)
DEFAULT_SIZES = {"train": 2000, "val": 300, "test": 300}
LABELS = ("NEG", "POS")

ADJECTIVES = {
    "POS": ["good", "great", "wonderful", "superb", "charming", "moving", "delightful", "brilliant", "engaging",
            "memorable", "funny", "beautiful", "excellent", "enjoyable", "touching", "clever", "amazing", "fantastic",
            "gripping", "stunning", "hilarious", "lovely", "fresh", "powerful", "fun", "thrilling", "solid", "smart",
            "heartwarming", "perfect", "entertaining", "impressive", "awesome", "riveting", "sweet", "witty",
            "compelling", "magical", "outstanding", "satisfying", "nice", "incredible", "gorgeous", "inspiring"],
    "NEG": ["bad", "awful", "dull", "boring", "terrible", "clumsy", "tedious", "lifeless", "painful", "forgettable",
            "weak", "messy", "bland", "predictable", "annoying", "shallow", "horrible", "stupid", "pointless", "slow",
            "confusing", "flat", "lame", "cheesy", "silly", "poor", "disappointing", "dreadful", "unwatchable",
            "mediocre", "lazy", "cheap", "ridiculous", "awkward", "empty", "uninspired", "exhausting", "sloppy",
            "generic", "overrated", "pathetic", "horrendous", "unbearable"],
}
INTENSIFIERS = ["very", "really", "truly", "remarkably", "extremely", "incredibly", "quite", "so", "pretty",
                "absolutely", "totally", "super", "genuinely", "just", "deeply"]
#: negators that flip an adjective (the copula, if any, is in the subject part: "the plot was" + "not dull")
NEGATORS = [["not"], ["never"], ["not", "at", "all"], ["hardly"], ["far", "from"]]
#: a negated copula replaces the subject's verb: "the plot wasn't" + "dull"
NEG_COPULAS = {"was": ["wasn't", "was not", "was never"], "is": ["isn't", "is not", "is never"],
               "were": ["weren't", "were not", "were never"], "are": ["aren't", "are not"],
               "felt": ["never felt", "didn't feel"], "seemed": ["never seemed", "didn't seem"]}
SUBJECTS = ["the acting", "the plot", "the script", "the soundtrack", "the direction", "the dialogue", "the pacing",
            "the cast", "the ending", "the cinematography", "the story", "the humor", "the lead performance",
            "the editing", "the score", "the movie", "this movie", "the film", "this film", "it", "this one",
            "the music", "the villain", "the finale", "the first half", "the whole thing", "overall it", "honestly it"]
PLURAL_SUBJECTS = ["the characters", "the visuals", "the effects", "the jokes", "the action scenes", "the songs",
                   "the actors", "the twists"]
COPULAS = {"one": ["was", "is", "felt", "seemed"], "many": ["were", "are", "felt", "seemed"]}
NOUNS = ["movie", "film", "story", "cast", "ending", "flick", "watch", "sequel", "performance", "script", "show"]
NOUN_PHRASES = {
    "POS": ["masterpiece", "gem", "delight", "treat", "joy to watch", "triumph", "must-see", "classic", "crowd pleaser",
            "pleasure", "blast", "hit"],
    "NEG": ["mess", "disaster", "waste of time", "letdown", "bore", "snoozefest", "failure", "waste of money", "flop",
            "chore", "train wreck", "dud"],
}
NOUN_INTENSIFIERS = ["", "", "total", "complete", "absolute", "real", "true", "pure", "real"]
VERBS = {"POS": ["loved", "enjoyed", "adored", "liked", "really liked", "loved every minute of"],
         "NEG": ["hated", "disliked", "regret watching", "couldn't stand", "could not finish", "walked out of"]}
#: verbs that read the other way when negated ("i didn't like it" is NEG), by the plain verb's polarity
NEGATABLE_VERBS = {"POS": ["like", "enjoy", "love", "care for", "recommend"], "NEG": ["regret"]}
OBJECTS = ["it", "this movie", "the film", "this one", "the whole thing"]
#: how a verb is negated ("i wouldn't recommend it", "you won't regret it"); "" for the others
NEG_AUX = {"recommend": ["wouldn't", "would not", "can't", "don't"], "regret": ["don't", "didn't", "won't"],
           "": ["didn't", "did not", "don't"]}
VERDICTS = {
    "POS": ["highly recommend it", "worth watching", "worth every minute", "go see it", "a must watch",
            "would watch again", "ten out of ten", "five stars", "two thumbs up", "see it on the big screen",
            "worth the ticket", "can't wait to see it again"],
    "NEG": ["would not recommend it", "not worth it", "don't bother", "skip this one", "avoid it", "want my money back",
            "one star", "zero stars", "what a waste", "save your money", "never again", "do not watch it"],
}
PLACES = ["a small town", "new york", "the nineteen fifties", "a space station", "rural france",
          "a boarding school", "the desert", "a fishing village", "london", "the near future"]
FILLERS = [
    "the film runs about {n} minutes",
    "it was released in the {season} of {year}",
    "i saw it with {who} on a {day}",
    "the story is set in {place}",
    "the director has made {k} films before this one",
    "most of it was shot in {place}",
    "the theater was {full} on the night i went",
    "it is based on a novel of the same name",
    "the main character is a {job} who moves to {place}",
    "there is a short scene after the credits",
    "the trailer came out {k} months before the premiere",
    "it is rated for audiences over {age}",
    "the cast includes several newcomers",
    "the music was written by a {job} from {place}",
    "saw it last {day}",
    "watched it with {who}",
    "we streamed it at home",
    "it's about a {job} in {place}",
    "went in knowing nothing about it",
    "it came out in {year}",
    "{who} picked it",
    "first time seeing it",
    "it's about {n} minutes long",
    "i watched it on a {day} night",
]
FILL = {
    "n": ["ninety", "one hundred", "one hundred and twenty", "eighty", "100", "95"],
    "season": ["spring", "summer", "autumn", "winter"],
    "year": ["two thousand", "nineteen ninety", "two thousand and ten", "2019", "2008"],
    "who": ["a friend", "my sister", "my parents", "a colleague", "my kids", "my wife", "my brother"],
    "day": ["tuesday", "friday", "sunday", "rainy monday", "saturday"], "place": PLACES,
    "k": ["two", "three", "four", "several"], "full": ["half full", "almost empty", "packed", "quiet"],
    "job": ["teacher", "detective", "chef", "pilot", "painter", "nurse", "lawyer"],
    "age": ["twelve", "fifteen", "eighteen"],
}
ENDINGS = [".", ".", ".", "!", "!", "", "...", "!!"]
SPACED = 0.2  # share of reviews written as the ERASER corpora are: lower case, punctuation as its own token

Span = tuple[int, int]


def _other(polarity: str) -> str:
    return "NEG" if polarity == "POS" else "POS"


def _words(text: str) -> list[str]:
    return text.split()


def _phrase(rng: random.Random, polarity: str, negatable: bool = True) -> list[str]:
    """An adjective phrase of ``polarity``: ``[intensifier] adjective`` or a negated opposite one."""
    intens = _words(rng.choice(INTENSIFIERS)) if rng.random() < 0.35 else []
    if negatable and rng.random() < 0.3:
        neg = rng.choice(NEGATORS)
        adj = [*intens, rng.choice(ADJECTIVES[_other(polarity)])]
        if neg[-1] == "all":  # "not ... at all" wraps the adjective: "not funny at all"
            return ["not", *adj, "at", "all"]
        return [*neg, *adj]
    return [*intens, rng.choice(ADJECTIVES[polarity])]


def _clause(rng: random.Random, polarity: str) -> tuple[list[str], Span]:
    """Tokens of a clause with a subject and the (start, end) of its deciding words inside it."""
    form = rng.random()
    if form < 0.65:
        number = "many" if rng.random() < 0.2 else "one"
        subject = _words(rng.choice(PLURAL_SUBJECTS if number == "many" else SUBJECTS))
        cop = rng.choice(COPULAS[number])
        if rng.random() < 0.2:  # negated copula: "the plot wasn't dull"
            neg = _words(rng.choice(NEG_COPULAS[cop]))
            head = [*subject, *neg[:-1]] if neg[0] in NEG_COPULAS else subject
            deciding = (neg[-1:] if neg[0] in NEG_COPULAS else neg) + _phrase(rng, _other(polarity), negatable=False)
            return head + deciding, (len(head), len(head) + len(deciding))
        head = [*subject, cop]
        phrase = _phrase(rng, polarity)
        return head + phrase, (len(head), len(head) + len(phrase))
    obj = _words(rng.choice(OBJECTS))
    if form < 0.85:
        verb = _words(rng.choice(VERBS[polarity]))
        return ["i", *verb, *obj], (1, 1 + len(verb))
    verb = _words(rng.choice(NEGATABLE_VERBS[_other(polarity)]))
    neg = _words(rng.choice(NEG_AUX.get(verb[0], NEG_AUX[""])))
    obj = ["it"] if verb == ["regret"] else obj
    return ["i", *neg, *verb, *obj], (1, 1 + len(neg) + len(verb))


def _short(rng: random.Random, polarity: str) -> tuple[list[str], Span]:
    """A sentence without a subject, as typed: "great movie", "a total mess", "don't bother"."""
    form = rng.random()
    if form < 0.4:
        phrase = _phrase(rng, polarity)
        negated = phrase[0] in {n[0] for n in NEGATORS}
        noun = [rng.choice(NOUNS)] if rng.random() < 0.6 and not negated else []
        return phrase + noun, (0, len(phrase))
    if form < 0.7:
        intens = rng.choice(NOUN_INTENSIFIERS)
        words = _words(f"{intens} {rng.choice(NOUN_PHRASES[polarity])}")
        article = "an" if words[0][0] in "aeiou" else "a"
        return [article, *words], (1, 1 + len(words))
    verdict = _words(rng.choice(VERDICTS[polarity]))
    return verdict, (0, len(verdict))


def _support(rng: random.Random, label: str) -> tuple[list[str], list[Span]]:
    """A sentence (without its end mark) supporting ``label`` and the spans of its gold rationale."""
    other = _other(label)
    kind = rng.random()
    if kind < 0.3:
        main, span = _clause(rng, label)
        return main, [span]
    if kind < 0.55:
        main, span = _short(rng, label)
        return main, [span]
    if kind < 0.88:
        main, span = _clause(rng, label)
        opp, _ = _clause(rng, other)
        how = rng.random()
        if how < 0.45:  # "x, but y"
            first, link = opp[:-1] + [opp[-1] + ","], ["but"]
        elif how < 0.6:
            first, link = opp, ["but"]
        elif how < 0.7:
            first, link = opp[:-1] + [opp[-1] + ","], ["yet"]
        else:  # "although x, y"
            first, link = ["although", *opp[:-1], opp[-1] + ","], []
        off = len(first) + len(link)
        return first + link + main, [(span[0] + off, span[1] + off)]
    if kind < 0.95:  # "y, even though x": the main clause comes first
        main, span = _clause(rng, label)
        opp, _ = _clause(rng, other)
        return main[:-1] + [main[-1] + ","] + ["even", "though", *opp], [span]
    first = [rng.choice(ADJECTIVES[other]), "at", "first,", "but"]  # "slow at first, but worth it"
    main, span = _short(rng, label) if rng.random() < 0.5 else _clause(rng, label)
    return first + main, [(span[0] + len(first), span[1] + len(first))]


def _filler(rng: random.Random) -> list[str]:
    template = rng.choice(FILLERS)
    return template.format(**{k: rng.choice(v) for k, v in FILL.items()}).split()


def _typed(tokens: list[str], rng: random.Random, spaced: bool) -> list[str]:
    """A sentence's words with its end mark: attached as typed ("movie!") or spaced ("movie ."), and a
    capital first letter now and then."""
    if spaced:
        return [t.rstrip(",") for t in tokens[:-1]] + [tokens[-1].rstrip(","), "."]
    out = list(tokens)
    end = rng.choice(ENDINGS)
    out[-1] = out[-1] + end
    if rng.random() < 0.3:
        out[0] = out[0][:1].upper() + out[0][1:]
    return out


def generate_review(rng: random.Random, annotation_id: str, label: str):
    """One review: its sentences and the ERASER evidences of its gold rationale."""
    size = rng.random()
    if size < 0.45:  # short
        n_support, n_filler = 1, rng.choice([0, 0, 1])
    elif size < 0.9:  # medium
        n_support, n_filler = rng.randint(1, 2), rng.randint(1, 3)
    else:  # long (a batch pads to its longest review: few long ones keep a training step cheap)
        n_support, n_filler = rng.randint(1, 3), rng.randint(3, 7)
    spaced = rng.random() < SPACED
    kinds = ["s"] * n_support + ["f"] * n_filler
    rng.shuffle(kinds)
    parts: list[tuple[list[str], list[Span]]] = []
    for kind in kinds:
        parts.append(_support(rng, label) if kind == "s" else (_filler(rng), []))
    gold = sum(b - a for _, spans in parts for a, b in spans)
    while 2 * gold >= sum(len(t) + (1 if spaced else 0) for t, _ in parts):  # the rationale stays under half
        parts.append((_filler(rng), []))
    sentences: list[list[str]] = []
    evidences = []
    offset = 0
    for si, (raw, spans) in enumerate(parts):
        toks = _typed(raw, rng, spaced)
        for a, b in spans:
            evidences.append([{
                "docid": annotation_id, "start_token": offset + a, "end_token": offset + b,
                "start_sentence": si, "end_sentence": si + 1, "text": " ".join(toks[a:b]),
            }])
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


