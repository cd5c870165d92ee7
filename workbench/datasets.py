"""Datasets through the application layer: names, building, summaries, the example browser, uploads and
the ERASER catalog with archive sizes.

Every function takes a :class:`~workbench.safety.PathPolicy`, so a dataset is always a folder name under
``<workspace>/data`` (never ``../x`` or an absolute path) and an arch passes the policy's check.

Uploads: a ``.zip`` or a tar archive (``.tar.gz``, ``.tgz``, ``.tar.bz2``, ``.tar.xz``, ``.tar``) of an ERASER
folder goes through the catalog's safe unpacker (:func:`unirex.data.download.unpack_archive`: no ``..``,
absolute paths, links or devices, a decompressed-size limit, the layout check, a hidden temporary folder
renamed at the end). A zip is first re-packed, entry by entry and under the same limit, into a plain tar
in ``<workspace>/data/.uploads`` (its entry names checked by the unpacker's own
:func:`~unirex.data.download.safe_member_path`, links and special files refused), then unpacked the same
way. An upload never replaces a dataset that exists.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tarfile
import tempfile
import threading
import time
import urllib.request
import zipfile
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import polars as pl

from unirex.arch import load_tokenizer
from unirex.errors import UnirexError
from unirex.fsutil import write_json_atomic
from workbench.records import CatalogRow, DatasetExample, DatasetSummary
from workbench.safety import PathPolicy, check_name

SPLITS = ("train", "dev", "test")
DEMO = "demo"
UPLOADS_DIRNAME = ".uploads"
#: decompressed-size limit of an uploaded archive (``UNIREX_UPLOAD_MAX_BYTES`` changes it)
DEFAULT_UPLOAD_MAX_BYTES = 2 << 30
ENV_UPLOAD_MAX_BYTES = "UNIREX_UPLOAD_MAX_BYTES"
SIZES_FILE = "archive_sizes.json"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar", ".zip")

ProgressFn = Callable[[int, int, str], None]  # (done, total, what)


# ------------------------------------------------------------------------------------------- names
def dataset_names(policy: PathPolicy) -> list[str]:
    """Dataset folders of the workspace (any non-hidden folder of ``data/``), plus ``demo``."""
    d = policy.data_dir
    found = {p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")} if d.is_dir() else set()
    return sorted(found | {DEMO})


def _summary(s: dict, path: Path, cache_hit: bool | None = None) -> DatasetSummary:
    return DatasetSummary(
        dataset=s.get("dataset") or "", split=s.get("tag") or s.get("split") or "", arch=s.get("arch") or "",
        max_length=int(s.get("max_length") or 0), count=int(s.get("count") or 0), labels=list(s.get("labels") or []),
        label_distribution=dict(s.get("label_distribution") or {}), truncated=int(s.get("truncated") or 0),
        mean_subwords=float(s.get("mean_subwords") or 0.0), with_rationale=int(s.get("with_rationale") or 0),
        rationale_coverage=s.get("rationale_coverage_word"), path=path, cache_hit=cache_hit, stored=dict(s))


def built_summaries(policy: PathPolicy, name: str) -> list[DatasetSummary]:
    """Every split of ``name`` already built (any arch and max length), without building anything."""
    folder = policy.dataset_dir(name)
    out = []
    for p in sorted(folder.glob("*/L*/*.json")):
        if p.name == "labels.json":
            continue
        try:
            s = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if "fingerprint" in s:
            out.append(_summary(s, p.with_suffix(".parquet")))
    order = {s: i for i, s in enumerate(SPLITS)}
    return sorted(out, key=lambda s: (s.arch, s.max_length, order.get(s.split, 9), s.split))


def build(policy: PathPolicy, name: str, arch: str, max_length: int | None = None,
          on_progress: ProgressFn | None = None) -> list[DatasetSummary]:
    """Build (or find in the cache) the train, dev and test splits of ``name`` for ``arch``. The demo is
    generated and a catalog dataset downloaded on first use."""
    folder = policy.dataset_dir(name)
    arch = policy.arch(arch)
    prepare(policy, folder.name)
    out = []
    for i, split in enumerate(SPLITS):
        if on_progress is not None:
            on_progress(i, len(SPLITS), f"building {folder.name}/{split}")
        out.append(build_one(policy, folder.name, split, arch, max_length, data_dir=policy.data_dir))
    return out


def _data_dir(policy: PathPolicy, data_dir: Path | None) -> Path:
    if data_dir is None:
        return policy.data_dir
    return policy.path(data_dir, "data_dir") if policy.confine else Path(data_dir)


def prepare(policy: PathPolicy, name: str, data_dir: Path | None = None) -> Path:
    """The ERASER folder of ``name`` in ``data_dir`` (default the workspace's ``data/``): the built-in datasets
    are generated and catalog datasets downloaded on first use; the name is checked by
    :func:`unirex.data.ensure_source`."""
    from unirex.data import ensure_source  # unirex.data loads torch: only when a dataset is built

    return ensure_source(_data_dir(policy, data_dir), name)


def build_one(policy: PathPolicy, name: str, split: str, arch: str = "default", max_length: int | None = None,
              num_train: int | None = None, num_train_seed: int = 0, force: bool = False,
              data_dir: Path | None = None) -> DatasetSummary:
    """Build (or find in the cache) one split of ``name`` (``num_train``: a subsample of train) in ``data_dir``
    (default the workspace's ``data/``; confined, it must lie inside the workspace), whose source
    :func:`prepare` has made."""
    from unirex.data import build_split

    built = build_split(_data_dir(policy, data_dir), name, split, arch=policy.arch(arch), max_length=max_length or None,
                        num_train=num_train, num_train_seed=num_train_seed, force=force)
    return _summary(built.summary, built.path, built.cache_hit)


# ------------------------------------------------------------------------------------ the browser
class _Tables:
    """Built tables and document stores kept for the example browser (keyed by file and mtime)."""

    def __init__(self, size: int = 6):
        self.size = size
        self._items: OrderedDict[tuple, object] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple, load: Callable[[], object]):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = load()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value


_TABLES = _Tables()


def _default_max_length(arch: str) -> int:
    # lazy: pulls torch, which this module does not otherwise load
    from unirex.data.build import DEFAULT_MAX_LENGTH

    return int(min(DEFAULT_MAX_LENGTH, load_tokenizer(arch).model_max_length))


def split_table(policy: PathPolicy, name: str, arch: str, max_length: int | None, split: str) -> tuple[pl.DataFrame, int]:
    """The built table of one split (built first if needed) and its max length."""
    # lazy: pulls torch, which this module does not otherwise load
    from unirex.data import build_split, ensure_source
    from unirex.data.build import build_dir

    if split not in SPLITS:
        raise UnirexError(f"split '{split}' is not one of {', '.join(SPLITS)}")
    folder = policy.dataset_dir(name)
    arch = policy.arch(arch)
    max_length = int(max_length or _default_max_length(arch))
    parquet = build_dir(policy.data_dir, folder.name, arch, max_length) / f"{split}.parquet"
    if not parquet.is_file():
        ensure_source(policy.data_dir, folder.name)
        parquet = build_split(policy.data_dir, folder.name, split, arch=arch, max_length=max_length).path
    key = ("table", str(parquet), parquet.stat().st_mtime_ns)
    return _TABLES.get(key, lambda: _per_example(pl.read_parquet(parquet))), max_length


def _per_example(table: pl.DataFrame) -> pl.DataFrame:
    """One row per example: a multiple-choice table (CoS-E, one row per choice) as its first choice's rows
    with ``query`` holding all the choices joined by ``' [sep] '``, as the ERASER file writes them and as
    explaining a typed text takes them; any other table unchanged."""
    if "choice" not in table.columns or table.height == 0:
        return table
    # lazy: pulls torch, which this module does not otherwise load
    from unirex.data.catalog import CHOICE_SEP

    n = int(table["choice"].max()) + 1
    queries = table["query"].to_list()
    joined = [f" {CHOICE_SEP} ".join(queries[i:i + n]) for i in range(0, len(queries), n)]
    return table.filter(pl.col("choice") == 0).with_columns(pl.Series("query", joined, dtype=pl.String))


def find_examples(policy: PathPolicy, name: str, arch: str, max_length: int | None, split: str,
                  label: str | None = None, has_rationale: bool | None = None,
                  truncated: bool | None = None) -> list[int]:
    """Rows of a built split matching the filter (``None``: any)."""
    table, _ = split_table(policy, name, arch, max_length, split)
    cond = pl.lit(True)
    if label not in (None, ""):
        cond = cond & (pl.col("label_name") == label)
    if has_rationale is not None:
        cond = cond & (pl.col("has_rationale") == has_rationale)
    if truncated is not None:
        cond = cond & (pl.col("truncated") == truncated)
    return table.with_row_index("_i").filter(cond)["_i"].to_list()


def _documents(folder: Path):
    # lazy: pulls torch, which this module does not otherwise load
    from unirex.data.eraser import DocumentStore

    docs_jsonl = folder / "docs.jsonl"
    stamp = docs_jsonl.stat().st_mtime_ns if docs_jsonl.is_file() else 0
    return _TABLES.get(("docs", str(folder), stamp), lambda: DocumentStore(folder))


def example(policy: PathPolicy, name: str, arch: str, max_length: int | None, split: str, index: int) -> DatasetExample:
    """Row ``index`` of a built split with its words, gold rationale and where the model's input ends."""
    table, max_length = split_table(policy, name, arch, max_length, split)
    index = int(index)
    if not 0 <= index < table.height:
        raise UnirexError(f"example {index} is out of range: {split} has {table.height} examples")
    row = table.row(index, named=True)
    docs = _documents(policy.dataset_dir(name))
    words, doc_of = [], []
    for d, docid in enumerate(row["docids"]):
        w = list(docs.get(docid, needed_by=row["annotation_id"]).words)
        words += w
        doc_of += [d] * len(w)
    gold = [bool(m) for m in row["rationale_words"]]
    gold += [False] * (len(words) - len(gold))
    read = [w for w in row["word_ids"] if w >= 0]
    return DatasetExample(
        dataset=name, split=split, index=index, annotation_id=row["annotation_id"], label=row["label_name"],
        query=row["query"] or "", words=words, word_document=doc_of, gold=gold[:len(words)],
        has_rationale=bool(row["has_rationale"]), truncated=bool(row["truncated"]),
        read_words=(max(read) + 1) if read else 0, max_length=max_length)


def labels_of(policy: PathPolicy, name: str, arch: str, max_length: int | None, split: str) -> list[str]:
    table, _ = split_table(policy, name, arch, max_length, split)
    return sorted(set(table["label_name"].to_list()))


# ------------------------------------------------------------------------------------------ uploads
def upload_limit() -> int:
    raw = os.environ.get(ENV_UPLOAD_MAX_BYTES)
    if not raw:
        return DEFAULT_UPLOAD_MAX_BYTES
    try:
        return max(1, int(raw))
    except ValueError:
        raise UnirexError(f"{ENV_UPLOAD_MAX_BYTES}={raw!r} is not a number of bytes") from None


def name_from_archive(filename: str) -> str:
    low = filename.lower()
    for suf in ARCHIVE_SUFFIXES:
        if low.endswith(suf):
            return filename[: -len(suf)]
    return Path(filename).stem


def zip_to_tar(zip_path: Path, tar_path: Path, limit: int, origin: str) -> None:
    """Re-pack a zip archive into a plain tar, refusing unsafe entries (see the module docstring)."""
    # lazy: pulls torch, which this module does not otherwise load
    from unirex.data.download import safe_member_path

    total = 0
    try:
        with zipfile.ZipFile(zip_path) as zf, tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
            for info in zf.infolist():
                try:
                    rel = safe_member_path(info.filename)
                except ValueError as e:
                    raise UnirexError(f"{origin}: refused: entry '{info.filename}' {e}") from None
                kind = stat.S_IFMT(info.external_attr >> 16)
                if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                    what = "a symbolic link" if kind == stat.S_IFLNK else "a special file"
                    raise UnirexError(f"{origin}: refused: entry '{info.filename}' is {what}; only regular files "
                                      "and folders are unpacked")
                if rel is None:
                    continue
                ti = tarfile.TarInfo(str(rel))
                ti.mtime = int(time.time())
                if info.is_dir():
                    ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(ti)
                    continue
                total += info.file_size
                if total > limit:
                    raise UnirexError(f"{origin}: refused: it unpacks to more than {limit / 2**20:.0f} MiB, the "
                                      f"upload limit (${ENV_UPLOAD_MAX_BYTES})")
                ti.size, ti.mode = info.file_size, 0o644
                with zf.open(info) as src:  # zipfile stops at the declared size and checks the CRC
                    tar.addfile(ti, src)
    except UnirexError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, RuntimeError, NotImplementedError, OSError, EOFError,
            ValueError) as e:
        raise UnirexError(f"{origin}: the zip archive is corrupt, encrypted or uses an unsupported compression "
                          f"({type(e).__name__}: {e})") from None


def upload(policy: PathPolicy, archive: Path, name: str | None = None) -> tuple[str, Path, str]:
    """Unpack an uploaded ERASER archive into ``<workspace>/data/<name>`` (default name: the archive's).

    Returns ``(name, folder, one-line description)``. Refuses an existing dataset, the name ``demo``
    (generated by the project) and any unsafe or non-ERASER archive, or one with a record the reader refuses
    (named by file, line and field), writing nothing in those cases."""
    # lazy: pulls torch, which this module does not otherwise load
    from unirex.data.download import dataset_lock, describe, unpack_archive

    archive = Path(archive)
    if not archive.is_file():
        raise UnirexError("no archive was uploaded")
    name = check_name(name or name_from_archive(archive.name))
    if name == DEMO:
        raise UnirexError("'demo' is the generated demo dataset; upload under another name")
    target = policy.dataset_dir(name)
    origin = f"uploaded archive '{archive.name}'"
    limit = upload_limit()
    policy.data_dir.mkdir(parents=True, exist_ok=True)
    with dataset_lock(policy.data_dir, name, progress=False):
        if target.exists():
            raise UnirexError(f"dataset '{name}' already exists; choose another name (or delete "
                              f"data/{name} first)")
        source = {"source": "upload", "archive": archive.name, "bytes": archive.stat().st_size,
                  "uploaded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        if zipfile.is_zipfile(archive):
            tmp_dir = policy.data_dir / UPLOADS_DIRNAME
            tmp_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f"{name}-", suffix=".tar", dir=tmp_dir)
            os.close(fd)
            try:
                zip_to_tar(archive, Path(tmp), limit, origin)
                unpack_archive(Path(tmp), target, name=name, origin=origin, max_unpacked_bytes=limit, source=source,
                               check_content=True)
            finally:
                Path(tmp).unlink(missing_ok=True)
        else:
            unpack_archive(archive, target, name=name, origin=origin, max_unpacked_bytes=limit, source=source,
                           check_content=True)
    return name, target, describe(target)


# ------------------------------------------------------------------------------------------ catalog
def _sizes_path(policy: PathPolicy) -> Path:
    # lazy: pulls torch, which this module does not otherwise load
    from unirex.data.download import downloads_dir

    return downloads_dir(policy.data_dir) / SIZES_FILE


def _read_sizes(policy: PathPolicy) -> dict:
    try:
        return json.loads(_sizes_path(policy).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def catalog(policy: PathPolicy) -> list[CatalogRow]:
    """The ERASER catalog with each dataset's local state and archive size (see :class:`CatalogRow`)."""
    # lazy: pulls torch, which this module does not otherwise load
    from unirex.data.catalog import CATALOG, local_status
    from unirex.data.download import SOURCE_MARKER

    checked = _read_sizes(policy)
    rows = []
    for e in CATALOG.values():
        size, where_ = getattr(e, "archive_bytes", None), "catalog"
        if size is None:
            try:
                marker = json.loads((policy.data_dir / e.name / SOURCE_MARKER).read_text())
                size, where_ = marker.get("bytes"), "downloaded"
            except (OSError, json.JSONDecodeError):
                pass
        if size is None and checked.get(e.name, {}).get("url") == e.url:
            size, where_ = checked[e.name].get("bytes"), "server"
        rows.append(CatalogRow(
            name=e.name, title=e.title, task_type=e.task_type, labels=", ".join(e.labels), sizes=tuple(e.sizes),
            status=local_status(policy.data_dir, e.name), source_url=e.url, hf_id=e.hf_id or "", notes=e.notes,
            archive_bytes=int(size) if size is not None else None, archive_size_source=where_ if size is not None else "",
            unpacked_limit_bytes=int(e.max_unpacked_bytes)))
    return rows


def check_archive_sizes(policy: PathPolicy, timeout_s: float = 5.0) -> tuple[list[CatalogRow], list[str]]:
    """Ask the archive host for the size of every catalog archive (HTTP HEAD, in parallel) and remember the
    answers in ``data/.downloads/archive_sizes.json``. Returns the catalog rows and the failures."""
    # lazy: pulls torch, which this module does not otherwise load
    from unirex.data.catalog import CATALOG

    def head(entry):
        req = urllib.request.Request(entry.url, method="HEAD", headers={"User-Agent": "unirex-workbench"})
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as r:  # noqa: S310 - the catalog's own http(s) URLs
                n = r.headers.get("Content-Length")
                return entry, (int(n) if n and n.isdigit() else None), None
        except Exception as e:  # noqa: BLE001 - reported per archive
            return entry, None, f"{entry.archive_name}: {getattr(e, 'reason', None) or e}"

    with ThreadPoolExecutor(max_workers=len(CATALOG)) as pool:
        answers = list(pool.map(head, CATALOG.values()))
    sizes = _read_sizes(policy)
    failures = []
    for entry, n, err in answers:
        if n is not None:
            sizes[entry.name] = {"url": entry.url, "bytes": n, "checked_at": time.time()}
        else:
            failures.append(err or f"{entry.archive_name}: the server gave no size")
    path = _sizes_path(policy)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, sizes)
    return catalog(policy), failures


def download(policy: PathPolicy, name: str, source: str = "eraser",
             on_progress: Callable[[int, int | None], None] | None = None) -> Path:
    """Fetch a catalog dataset into the workspace's data folder (safely unpacked)."""
    # lazy: pulls torch, which this module does not otherwise load
    from unirex.data.download import ensure_downloaded

    folder = policy.dataset_dir(name)
    return ensure_downloaded(policy.data_dir, folder.name, progress=False, source=source, on_progress=on_progress)


def clear_upload_leftovers(policy: PathPolicy) -> None:
    """Remove re-packed zips an interrupted upload left in ``data/.uploads``."""
    shutil.rmtree(policy.data_dir / UPLOADS_DIRNAME, ignore_errors=True)


__all__ = ["ARCHIVE_SUFFIXES", "DEMO", "SPLITS", "build", "built_summaries", "catalog", "check_archive_sizes",
           "dataset_names", "download", "example", "find_examples", "labels_of", "name_from_archive",
           "split_table", "upload", "upload_limit", "zip_to_tar"]
