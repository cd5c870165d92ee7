"""The catalog of ERASER datasets: where each archive lives, what task it is, its labels and sizes.

Archives are fetched from ``<base>/<name>.tar.gz``, the base being the ERASER site
(``https://www.eraserbenchmark.com/zipped``) unless the environment variable

    ``UNIREX_ERASER_BASE_URL``

names another one (a mirror, a folder served over HTTP, or the loopback server of the tests), e.g.
``UNIREX_ERASER_BASE_URL=http://mirror.example.org/eraser`` fetches ``.../eraser/movies.tar.gz``.

Sizes are the example counts (train / val / test) that the ERASER paper (DeYoung et al., 2020,
Table 1) reports; they are shown to the user, never checked, since a mirror may hold another release.
The catalog also names, where one exists, a Hugging Face dataset holding the same task in a close
form (:mod:`unirex.data.hf_convert` converts it to the ERASER layout).

**https.** The ERASER site is addressed over https: the project's own pages and README link
``http://www.eraserbenchmark.com/zipped/...``, but public code that fetches these archives (dataset
builders, download scripts) uses ``https://www.eraserbenchmark.com/zipped/...``, and the movies archive
recorded over http by one and over https by another has the same SHA-256, so the host serves the same
files on both. This machine cannot reach the host to check it again; a user whose network only passes
plain http sets ``UNIREX_ERASER_BASE_URL=http://www.eraserbenchmark.com/zipped``.

**Pinned digests.** The ERASER authors publish no checksums. A digest is pinned here only where an
independent public record of the archive at that very address gives it: the ``download_checksums`` the
Hugging Face ``datasets`` library recorded for its ``movie_rationales`` and ``eraser_multi_rc`` builders
(movies: 3,899,487 bytes; multirc: 1,667,550 bytes), the movies one confirmed by a second project's
pinned manifest. The other archives are *not pinned* (``sha256=None``): their bytes are checked by the
gzip checksum, the safe unpacker and the layout check only, and the catalog says so (``pinned``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from unirex.errors import UnirexError, close_matches, suggest

ENV_BASE_URL = "UNIREX_ERASER_BASE_URL"
DEFAULT_BASE_URL = "https://www.eraserbenchmark.com/zipped"
SINGLE_DOCUMENT = "single-document"
QUERY = "query"
GiB = 1 << 30


def base_url() -> str:
    """The archive base address: ``$UNIREX_ERASER_BASE_URL`` or the ERASER site, without a trailing slash."""
    return (os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL).rstrip("/")


@dataclass(frozen=True)
class CatalogEntry:
    name: str  # the folder name under data_dir and the archive stem
    title: str
    task_type: str  # SINGLE_DOCUMENT or QUERY
    labels: tuple[str, ...]
    sizes: tuple[int, int, int]  # train, val, test examples, as published
    notes: str = ""
    sha256: str | None = None  # pinned digest of the archive; None: not pinned (no record to establish one)
    max_unpacked_bytes: int = 4 * GiB  # decompressed-size limit while unpacking
    max_archive_bytes: int | None = None  # download-size limit; None: max_unpacked_bytes
    hf_id: str | None = None  # a Hugging Face dataset with the same task (``--source hf``)
    hf_config: str | None = None
    hf_format: str | None = None  # the converter in unirex.data.hf_convert
    #: one input row per answer choice (question + choice), one logit each, softmax over the choices; the
    #: query holds the choices joined by ' [sep] ' and the label is the answer's letter (or its text)
    multiple_choice: bool = False

    @property
    def archive_limit(self) -> int:
        """The most bytes a download of the archive may take before it is refused."""
        return self.max_archive_bytes or self.max_unpacked_bytes

    @property
    def pinned(self) -> bool:
        return bool(self.sha256)

    @property
    def archive_name(self) -> str:
        return f"{self.name}.tar.gz"

    @property
    def url(self) -> str:
        """The archive address under the current base (read at call time, so the variable may change)."""
        return f"{base_url()}/{self.archive_name}"


CATALOG: dict[str, CatalogEntry] = {e.name: e for e in [
    CatalogEntry(
        "movies", "Movie Reviews (Zaidan et al., 2007)", SINGLE_DOCUMENT, ("NEG", "POS"), (1600, 200, 200),
        notes="sentiment of a full review; many rationale spans per document",
        sha256="66e18d4e6c9df9e9f5544572b0bfe92a39673f74ecbfc3859b46cedb2f5b2dee",
        max_unpacked_bytes=1 * GiB, hf_id="eraser-benchmark/movie_rationales", hf_format="movie_rationales"),
    CatalogEntry(
        "multirc", "MultiRC (Khashabi et al., 2018)", QUERY, ("False", "True"), (24029, 3214, 4848),
        notes="query = question || candidate answer; label: is the answer correct",
        sha256="7d3364fad630d0949b40cc5c4b9fd7fac0ec9ebb3a31ffa92a491e3883edd826",
        max_unpacked_bytes=1 * GiB, hf_id="CogComp/eraser_multi_rc", hf_format="eraser_multi_rc"),
    CatalogEntry(
        "esnli", "e-SNLI (Camburu et al., 2018)", QUERY, ("contradiction", "entailment", "neutral"),
        (911938, 16449, 16429),
        notes="premise and hypothesis are two documents (<id>_premise, <id>_hypothesis); the Hugging Face "
              "copy has free-text explanations only, so it converts without gold rationales",
        max_unpacked_bytes=8 * GiB, hf_id="esnli", hf_config="plain_text", hf_format="esnli"),
    CatalogEntry(
        "cose", "CoS-E (Rajani et al., 2019)", QUERY, ("A", "B", "C", "D", "E"), (8733, 1092, 1092),
        notes="document = question; query = the five choices joined by ' [sep] '; label = the letter of "
              "the answer; modelled as multiple choice (one input and one logit per choice)",
        multiple_choice=True,
        max_unpacked_bytes=1 * GiB, hf_id="Salesforce/cos_e", hf_config="v1.11", hf_format="cos_e"),
    CatalogEntry(
        "fever", "FEVER (Thorne et al., 2018)", QUERY, ("REFUTES", "SUPPORTS"), (97957, 6122, 6111),
        notes="query = claim; documents = Wikipedia pages",
        max_unpacked_bytes=8 * GiB),
    CatalogEntry(
        "boolq", "BoolQ (Clark et al., 2019)", QUERY, ("False", "True"), (6363, 1491, 2817),
        notes="query = yes/no question; documents = Wikipedia passages (long)",
        max_unpacked_bytes=4 * GiB),
    CatalogEntry(
        "evidence_inference", "Evidence Inference (Lehman et al., 2019)", QUERY,
        ("no significant difference", "significantly decreased", "significantly increased"), (7958, 972, 959),
        notes="query = intervention | comparator | outcome; documents = full-text clinical trial articles (long)",
        max_unpacked_bytes=8 * GiB),
]}


CHOICE_SEP = "[sep]"


def split_choices(query: str) -> list[str]:
    """The answer choices of a multiple-choice query (joined by ``' [sep] '`` as ERASER's CoS-E writes
    them), each with its whitespace normalised; empty choices stay, for the caller to refuse."""
    return [" ".join(c.split()) for c in str(query or "").split(CHOICE_SEP)]


def is_multiple_choice(dataset: str) -> bool:
    """Whether ``dataset`` (a folder name) is built and modelled as multiple choice: a catalog entry
    that says so (CoS-E), as UNIREX's code decides by the dataset's name."""
    entry = CATALOG.get(dataset)
    return bool(entry and entry.multiple_choice)


def names() -> list[str]:
    return list(CATALOG)


def unknown_dataset_message(name: str, data_dir: Path | None = None) -> str:
    """One message for a name that is neither a folder under ``data_dir`` nor in the catalog."""
    close = close_matches(name, [*CATALOG, "demo"], n=3, cutoff=0.5)
    if not close:
        close = [n for n in CATALOG if n.lower() == name.lower() or name.lower() in n.lower()]
    hint = suggest(close, " Did you mean {}?")
    where_ = f" and there is no folder {Path(data_dir) / name}" if data_dir is not None else ""
    return (f"unknown dataset '{name}': it is not in the catalog ({', '.join(CATALOG)}){where_}.{hint} "
            f"A dataset of your own goes in <data_dir>/{name}/ with train.jsonl, val.jsonl, test.jsonl and "
            "docs/ (or docs.jsonl) in ERASER layout.")


def get_entry(name: str, data_dir: Path | None = None) -> CatalogEntry:
    """The catalog entry of ``name``; an unknown name is a :class:`UnirexError` suggesting close names."""
    entry = CATALOG.get(name)
    if entry is None:
        raise UnirexError(unknown_dataset_message(name, data_dir))
    return entry


def local_status(data_dir: Path, name: str) -> str:
    """``present`` (the folder holds train.jsonl), ``incomplete`` (a folder without it), ``partial download``
    (an interrupted download waits to be resumed) or ``absent``."""
    folder = Path(data_dir) / name
    if folder.is_dir():
        return "present" if (folder / "train.jsonl").is_file() else "incomplete"
    from unirex.data.install import partial_path

    entry = CATALOG.get(name)
    if entry is not None and partial_path(Path(data_dir), entry).is_file():
        return "partial download"
    return "absent"


def catalog_rows(data_dir: Path | None = None) -> list[dict]:
    """One flat dict per catalog dataset, for a table: name, title, task type, labels, sizes, source URL,
    whether its archive's SHA-256 is pinned (``pinned``: ``"pinned"`` or ``"not pinned"``) and the digest,
    Hugging Face id, notes, and (given ``data_dir``) whether it is present locally and where."""
    rows = []
    for e in CATALOG.values():
        row = {
            "name": e.name, "title": e.title, "task_type": e.task_type, "labels": ", ".join(e.labels),
            "train": e.sizes[0], "val": e.sizes[1], "test": e.sizes[2],
            "sizes": f"{e.sizes[0]:,} / {e.sizes[1]:,} / {e.sizes[2]:,}",
            "source_url": e.url, "pinned": "pinned" if e.pinned else "not pinned", "sha256": e.sha256 or "",
            "hf_id": e.hf_id or "", "notes": e.notes,
        }
        if data_dir is not None:
            status = local_status(Path(data_dir), e.name)
            row.update(present=status == "present", status=status, path=str(Path(data_dir) / e.name))
        rows.append(row)
    return rows
