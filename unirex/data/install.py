"""Where datasets are fetched to and how a finished one is put in place, shared by the archive download
(:mod:`unirex.data.download`) and the Hugging Face conversion (:mod:`unirex.data.hf_convert`).

It sits below both (and below the catalog, which asks it where a partial download lies), so none of the
three imports another in a circle.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

from unirex.data.eraser import SPLITS, read_split
from unirex.errors import UnirexError
from unirex.fsutil import clean_leftovers, file_lock, replace_dir

log = logging.getLogger(__name__)  # a front shows it (the CLI's stderr: Python's last-resort handler)

DOWNLOADS_DIRNAME = ".downloads"
SOURCE_MARKER = ".unirex-source.json"  # written into the dataset folder: where it came from


class BadArchive(UnirexError):
    """The archive's content is unusable (corrupt, unsafe, too large, wrong layout): it is deleted."""


def downloads_dir(data_dir: Path) -> Path:
    return Path(data_dir) / DOWNLOADS_DIRNAME


def partial_path(data_dir: Path, entry: "CatalogEntry") -> Path:
    """Where the archive of ``entry`` is downloaded to before it is complete."""
    return downloads_dir(data_dir) / f"{entry.archive_name}.part"


REQUIRED = (("train.jsonl",), ("val.jsonl", "dev.jsonl"), ("test.jsonl",))


def check_layout(root: Path, origin: str) -> None:
    """Refuse a folder without the ERASER splits and documents, or whose split files are not JSON lines."""
    missing = [" or ".join(alts) for alts in REQUIRED if not any((root / a).is_file() for a in alts)]
    if not ((root / "docs").is_dir() or (root / "docs.jsonl").is_file()):
        missing.append("docs/ or docs.jsonl")
    if missing:
        raise BadArchive(f"{origin}: not an ERASER dataset: missing {', '.join(missing)} "
                         "(expected train.jsonl, val.jsonl, test.jsonl and docs/ or docs.jsonl)")
    for alts in REQUIRED:
        path = next(root / a for a in alts if (root / a).is_file())
        with open(path, "rb") as f:
            first = next((line for line in f if line.strip()), b"")
        try:
            obj = json.loads(first)
            ok = isinstance(obj, dict) and "annotation_id" in obj and "classification" in obj
        except ValueError:
            ok = False
        if not ok:
            raise BadArchive(f"{origin}: not an ERASER dataset: {path.name} does not start with an annotation "
                             "(a JSON object with annotation_id and classification)")


def check_records(root: Path, origin: str) -> None:
    """Read every split as the build will (:func:`unirex.data.eraser.read_split`: each annotation against the
    reader's schema, its documents, its evidence offsets) and refuse the first bad record, named by its file
    (relative to the dataset folder), line and field: ``val.jsonl:3: field 'evidences[0][0].start_token'
    should be an integer, got string 'three'``."""
    prefix = str(Path(root)) + "/"
    for split in SPLITS:
        try:
            read_split(root, split)
        except UnirexError as e:
            raise BadArchive(f"{origin}: {str(e).replace(prefix, '')}") from None


def _clear_leftovers(data_dir: Path, name: str) -> None:
    """Remove hidden temporary folders an interrupted unpack or conversion of ``name`` left behind.

    Called with the dataset's lock held: any such folder belongs to a process that is gone."""
    clean_leftovers(data_dir, older_than_s=0, prefixes=tuple(f".{name}{role}-tmp-" for role in ("", "-unpack", "-hf", "-old")))


def install_tree(tree_root: Path, target: Path) -> None:
    """Move a finished dataset folder to ``target`` (same file system), replacing an existing one."""
    replace_dir(tree_root, target)


@contextlib.contextmanager
def dataset_lock(data_dir: Path, name: str, progress: bool = True):
    """An exclusive lock on fetching ``name`` into ``data_dir`` (other processes wait)."""
    lock = downloads_dir(data_dir) / f"{name}.lock"

    def say():
        if progress:
            log.warning(f"waiting for another process that is fetching '{name}' ({lock})")

    with file_lock(lock, on_wait=say):
        yield


__all__ = ["DOWNLOADS_DIRNAME", "REQUIRED", "SOURCE_MARKER", "BadArchive", "check_layout", "check_records", "dataset_lock", "downloads_dir",
           "install_tree", "partial_path"]
