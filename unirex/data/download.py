"""Fetch, verify and safely unpack ERASER dataset archives into ``<data_dir>/<name>/``.

The archive of a catalog dataset (:mod:`unirex.data.catalog`; the base address is
``$UNIREX_ERASER_BASE_URL`` or the ERASER site) is downloaded to ``<data_dir>/.downloads/<name>.tar.gz.part``
with a progress bar. An interrupted download is resumed with an HTTP ``Range`` request (guarded by
``If-Range`` on the server's ETag / Last-Modified); a server that ignores the range, or a partial file
whose origin is unknown, restarts the download from zero. A download counts as complete only when it has
as many bytes as the server announced.

The download stops as soon as it passes the dataset's archive-size limit (the announced length is
checked before a byte is written, the received bytes as they come), so a wrong address or a hostile server
cannot fill the disk. Verification: the SHA-256 digest when the catalog pins one (with a mirror too: a
mirror must serve the same bytes), the gzip/bzip2/xz stream read to its end (so a truncated archive is
caught by its checksum), and the layout.

Unpacking is safe by construction: members are streamed one by one into a hidden temporary folder beside
the target, and only regular files and folders whose paths stay below it are written. Absolute paths,
``..``, symbolic and hard links, devices, FIFOs and sparse files make the whole archive refused, and so
does a decompressed stream larger than the dataset's limit (a "zip bomb"). The unpacked tree must hold
``train.jsonl``, ``val.jsonl`` (or ``dev.jsonl``), ``test.jsonl`` and ``docs/`` (or ``docs.jsonl``), at its
top or in one folder (the ERASER archives hold ``<name>/``); that folder is renamed to ``<data_dir>/<name>``
at the end, so an interrupted unpack never leaves a half-written dataset (leftovers are hidden and removed
by the next attempt). A lock file serialises two processes fetching the same dataset.
"""

from __future__ import annotations

import bz2
import datetime as _dt
import gzip
import hashlib
import http.client
import json
import lzma
import os
import shutil
import socket
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from pathlib import Path, PurePosixPath
from typing import Callable

from unirex.data.install import (REQUIRED, SOURCE_MARKER, BadArchive, _clear_leftovers, check_layout, check_records,
                                 dataset_lock, downloads_dir, install_tree, partial_path)
from unirex.data.catalog import CATALOG, ENV_BASE_URL, CatalogEntry, get_entry, unknown_dataset_message
from unirex.errors import UnirexError
from unirex.fsutil import tmp_prefix, write_json_atomic
from unirex.safepath import dataset_path

CHUNK = 1 << 16
TIMEOUT_S = 30.0  # per socket operation, not for the whole download
RETRIES = 3  # further attempts after a dropped connection or a server error, each resuming
BACKOFF_S = 1.0  # first pause between attempts; doubles, at most 10 s
MAX_MEMBERS = 5_000_000  # entries in one archive

ProgressFn = Callable[[int, "int | None"], None]  # (bytes so far, total bytes or None)


class NetworkError(UnirexError):
    """The archive could not be fetched (server unreachable, connection lost on every attempt)."""


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def _parse_content_range(value: str | None) -> tuple[int, int | None] | None:
    """``bytes 100-199/200`` -> (100, 200); ``bytes 100-199/*`` -> (100, None); anything else -> None."""
    if not value or not value.startswith("bytes "):
        return None
    try:
        span, total = value[6:].split("/", 1)
        start = int(span.split("-", 1)[0])
        return start, (None if total.strip() == "*" else int(total))
    except ValueError:
        return None


def _read_meta(path: Path) -> dict:
    try:
        obj = json.loads(path.read_text())
        return obj if isinstance(obj, dict) else {}
    except (OSError, ValueError):
        return {}


class _HttpRedirectsOnly(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to an http:// or https:// address (urllib alone also follows ftp://)."""

    def http_error_302(self, req, fp, code, msg, headers):
        location = headers.get("location") or headers.get("uri")
        scheme = urllib.parse.urlsplit(urllib.parse.urljoin(req.full_url, location or "")).scheme
        if location and scheme not in ("http", "https"):
            fp.close()
            raise UnirexError(f"{req.full_url}: refused: the server redirected to a {scheme}:// address; "
                              "only http:// and https:// addresses are downloaded")
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


_OPENER = urllib.request.build_opener(_HttpRedirectsOnly)


class _Retry(Exception):
    """One attempt failed in a way a further attempt may mend; its message is the attempt's error."""


class _Whole(Exception):
    """The partial file is already whole (the server refused to resume past its end)."""


def _request(url: str, have: int, meta: dict) -> urllib.request.Request:
    """The GET of ``url``; with ``have`` bytes already received, a ``Range`` resume guarded by ``If-Range``."""
    req = urllib.request.Request(url, headers={"User-Agent": "unirex-workbench", "Accept-Encoding": "identity"})
    if have:
        req.add_header("Range", f"bytes={have}-")
        validator = meta.get("etag") or meta.get("last_modified")
        if validator:
            req.add_header("If-Range", validator)
    return req


def _open(url: str, have: int, meta: dict, part: Path, timeout: float):
    """The server's answer; :class:`_Retry` for what a later attempt may mend, UnirexError for what it cannot."""
    try:
        return _OPENER.open(_request(url, have, meta), timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and have and meta.get("total") == have:
            raise _Whole() from None
        if e.code == 416:
            part.unlink(missing_ok=True)
            raise _Retry("the server refused to resume (HTTP 416); restarting") from None
        if e.code >= 500 or e.code in (408, 429):
            raise _Retry(f"HTTP {e.code} {e.reason}") from None
        raise UnirexError(f"{url}: HTTP {e.code} {e.reason}" + (
            " (no such archive: check the dataset name and $" + ENV_BASE_URL + ")" if e.code == 404 else "")) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        error = f"cannot connect ({getattr(e, 'reason', None) or e})"
        if isinstance(getattr(e, "reason", None), socket.gaierror):  # unknown host: retrying will not help
            raise NetworkError(f"download of {url} failed: {error}. Check the network, or set "
                               f"${ENV_BASE_URL} to a mirror.") from None
        raise _Retry(error) from None


def _span(url: str, resp, have: int, meta: dict, part: Path) -> tuple[int, int | None, str]:
    """``(bytes kept, total bytes or None, file mode)``: a resume appends, a full answer starts from zero."""
    if resp.status == 206 and have:
        rng = _parse_content_range(resp.headers.get("Content-Range"))
        if rng is None or rng[0] != have:
            part.unlink(missing_ok=True)
            raise _Retry(f"the server answered the resume with the wrong range ({resp.headers.get('Content-Range')})")
        return have, (rng[1] if rng[1] is not None else meta.get("total")), "ab"
    if resp.status == 200:  # no resume (first attempt, or the server ignores ranges): from zero
        length = resp.headers.get("Content-Length")
        return 0, (int(length) if length and length.isdigit() else None), "wb"
    raise UnirexError(f"{url}: unexpected HTTP status {resp.status}")


def _stream(resp, part: Path, mode: str, have: int, total: int | None, bar_desc: str, progress: bool,
            on_progress: ProgressFn | None, max_bytes: int | None, too_large: Callable[[int, str], Exception]) -> None:
    """Append the body to ``part`` (never past ``max_bytes``); :class:`_Retry` when the connection drops."""
    from tqdm import tqdm

    done = have
    with open(part, mode) as f, tqdm(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                                     desc=bar_desc, disable=not progress, dynamic_ncols=True, leave=False) as bar:
        while True:
            try:
                chunk = resp.read(CHUNK)
            except (OSError, http.client.HTTPException) as e:
                raise _Retry(f"connection lost after {done} bytes ({type(e).__name__}: {e})") from None
            if not chunk:
                return
            if max_bytes is not None and done + len(chunk) > max_bytes:  # never written past the limit
                f.close()
                raise too_large(done + len(chunk), "passed")
            try:
                f.write(chunk)
            except OSError as e:
                raise UnirexError(f"cannot write {part}: {e.strerror or e}") from None
            done += len(chunk)
            bar.update(len(chunk))
            if on_progress is not None:
                on_progress(done, total)


def _check_size(part: Path, total: int | None) -> None:
    size = part.stat().st_size
    if total is not None and size < total:
        raise _Retry(f"connection closed after {size} of {total} bytes")
    if total is not None and size > total:
        part.unlink()
        raise _Retry(f"received {size} bytes where the server announced {total}; restarting")


def download_file(url: str, dest: Path, *, progress: bool = True, retries: int = RETRIES,
                  timeout: float = TIMEOUT_S, on_progress: ProgressFn | None = None, desc: str | None = None,
                  max_bytes: int | None = None) -> Path:
    """Download ``url`` to ``dest`` through ``dest.part`` (resumed when a previous attempt left one).

    Returns ``dest``. Raises :class:`UnirexError` naming the URL and the problem; the partial file is kept
    after a network failure so that the next call resumes. With ``max_bytes``, a body larger than that is
    refused (:class:`BadArchive`) as soon as it is known to be: from the announced length before a byte
    is written, else the moment the bytes received pass the limit; the partial file is deleted.
    """
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise UnirexError(f"{url}: only http:// and https:// addresses can be downloaded (check ${ENV_BASE_URL})")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    meta_path = dest.with_name(dest.name + ".part.json")

    def too_large(size: int, how: str):
        part.unlink(missing_ok=True)
        meta_path.unlink(missing_ok=True)
        return BadArchive(f"{url}: refused: the archive {how} {_human(size)}, over the {_human(max_bytes)} limit for "
                          "this dataset (a wrong address or a hostile server?); nothing was kept")

    meta = _read_meta(meta_path)
    if part.exists() and meta.get("url") != url:  # unknown origin: never append to it
        part.unlink()
    last_error = ""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(min(BACKOFF_S * 2 ** (attempt - 1), 10.0))
        have = part.stat().st_size if part.exists() else 0
        try:
            with _open(url, have, meta, part, timeout) as resp:
                have, total, mode = _span(url, resp, have, meta, part)
                if max_bytes is not None and total is not None and total > max_bytes:
                    raise too_large(total, "announces")
                meta = {"url": url, "etag": resp.headers.get("ETag"),
                        "last_modified": resp.headers.get("Last-Modified"), "total": total}
                write_json_atomic(meta_path, meta)
                _stream(resp, part, mode, have, total, desc or dest.name, progress, on_progress, max_bytes, too_large)
            _check_size(part, total)
        except _Whole:
            break
        except _Retry as e:
            last_error = str(e)
            continue
        break
    else:
        kept = part.stat().st_size if part.exists() else 0
        raise NetworkError(
            f"download of {url} failed after {retries + 1} attempts: {last_error}."
            + (f" The {_human(kept)} received are kept in {part}; running the download again resumes them."
               if kept else " Check the network, or set $" + ENV_BASE_URL + " to a mirror."))
    os.replace(part, dest)
    meta_path.unlink(missing_ok=True)
    return dest


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# -------------------------------------------------------------------------------------------- unpack
class _TooLarge(Exception):
    pass


class _LimitedReader:
    """A read-only stream that fails once more than ``limit`` bytes came out of it."""

    def __init__(self, f, limit: int):
        self.f, self.limit, self.count = f, limit, 0

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.limit - self.count + 1
        data = self.f.read(n)
        self.count += len(data)
        if self.count > self.limit:
            raise _TooLarge()
        return data


def _decompressed(raw):
    """The decompressed stream of a file, chosen by its magic bytes (gzip, bzip2, xz, or plain tar)."""
    magic = raw.read(6)
    raw.seek(0)
    if magic[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if magic[:3] == b"BZh":
        return bz2.BZ2File(raw)
    if magic == b"\xfd7zXZ\x00":
        return lzma.LZMAFile(raw)
    return raw


def _member_kind(m: tarfile.TarInfo) -> str:
    if m.issym():
        return f"a symbolic link (to '{m.linkname}')"
    if m.islnk():
        return f"a hard link (to '{m.linkname}')"
    if m.ischr() or m.isblk():
        return "a device"
    if m.isfifo():
        return "a FIFO"
    if m.issparse():
        return "a sparse file"
    return f"an entry of unsupported type {m.type!r}"


def safe_member_path(name: str) -> PurePosixPath | None:
    """The relative path an archive entry may be written to, or None for the archive root (``./``).

    Raises :class:`ValueError` saying why for an absolute path, a ``..`` component, a Windows drive or
    backslash, or a NUL byte.
    """
    if "\x00" in name:
        raise ValueError("has a NUL byte in its name")
    if "\\" in name:
        raise ValueError("has a backslash in its name")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise ValueError("is an absolute path")
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if ".." in parts:
        raise ValueError("points outside the target folder (..)")
    return PurePosixPath(*parts) if parts else None


def _unpack_into(archive: Path, dest: Path, origin: str, limit: int, max_members: int) -> None:
    """Stream ``archive`` into the existing empty folder ``dest``; raise :class:`BadArchive` on anything unsafe."""
    dest_resolved = dest.resolve()
    members = 0
    declared = 0
    with open(archive, "rb") as raw:
        stream = _LimitedReader(_decompressed(raw), limit)
        try:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for m in tar:
                    members += 1
                    if members > max_members:
                        raise BadArchive(f"{origin}: refused: more than {max_members:,} entries")
                    try:
                        rel = safe_member_path(m.name)
                    except ValueError as e:
                        raise BadArchive(f"{origin}: refused: entry '{m.name}' {e}") from None
                    if not (m.isreg() or m.isdir()):
                        raise BadArchive(f"{origin}: refused: entry '{m.name}' is {_member_kind(m)}; "
                                         "only regular files and folders are unpacked")
                    if rel is None:
                        continue
                    target = dest / rel
                    if not target.resolve().is_relative_to(dest_resolved):  # belt and braces: no links exist
                        raise BadArchive(f"{origin}: refused: entry '{m.name}' points outside the target folder")
                    if m.isdir():
                        _mkdir(target, dest)
                        continue
                    declared += m.size
                    if declared > limit:
                        raise _TooLarge()
                    _mkdir(target.parent, dest)
                    src = tar.extractfile(m)
                    try:
                        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o644)
                    except OSError as e:
                        raise BadArchive(f"{origin}: cannot unpack entry '{m.name}': {e.strerror}") from None
                    written = 0
                    with os.fdopen(fd, "wb") as out:
                        while True:
                            block = src.read(CHUNK)
                            if not block:
                                break
                            try:
                                out.write(block)
                            except OSError as e:
                                raise UnirexError(f"cannot write {target}: {e.strerror or e}") from None
                            written += len(block)
                    if written != m.size:
                        raise BadArchive(f"{origin}: the archive is truncated (entry '{m.name}' is cut short)")
            while stream.read(CHUNK):  # read to the end, so the gzip/bzip2/xz checksum is verified
                pass
        except _TooLarge:
            raise BadArchive(f"{origin}: refused: it unpacks to more than {_human(limit)}, the decompressed-size "
                             "limit for this dataset") from None
        except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError) as e:
            raise BadArchive(f"{origin}: the archive is corrupt or truncated ({type(e).__name__}: {e})") from None
    if members == 0:
        raise BadArchive(f"{origin}: the archive is empty")


def _mkdir(path: Path, root: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BadArchive(f"cannot create folder {path.relative_to(root)} from the archive: {e.strerror}") from None


def find_dataset_root(tree: Path, name: str, origin: str) -> Path:
    """The folder of an unpacked archive that holds the dataset: ``tree`` itself, or the one folder (one or
    two levels down) with a ``train.jsonl`` (``<name>/`` when several have one)."""
    if (tree / "train.jsonl").is_file():
        return tree
    level1 = sorted(p for p in tree.iterdir() if p.is_dir())
    level2 = sorted(q for p in level1 for q in p.iterdir() if q.is_dir())
    found = [p for p in level1 + level2 if (p / "train.jsonl").is_file()]
    if len(found) > 1:
        named = [p for p in found if p.name == name]
        if len(named) == 1:
            return named[0]
        raise BadArchive(f"{origin}: several dataset folders in the archive "
                         f"({', '.join(str(p.relative_to(tree)) for p in found)}); which one is '{name}'?")
    if not found:
        top = sorted(p.name + ("/" if p.is_dir() else "") for p in tree.iterdir())
        raise BadArchive(f"{origin}: not an ERASER dataset: no train.jsonl in the archive (it holds "
                         f"{', '.join(top[:8]) or 'nothing'}{', ...' if len(top) > 8 else ''}); expected train.jsonl, "
                         "val.jsonl, test.jsonl and docs/ or docs.jsonl")
    return found[0]


def unpack_archive(archive: Path, target: Path, *, name: str | None = None, origin: str | None = None,
                   max_unpacked_bytes: int = 4 << 30, max_members: int = MAX_MEMBERS,
                   source: dict | None = None, check_content: bool = False) -> Path:
    """Safely unpack a dataset archive to ``target`` (replaced if it exists); return ``target``.

    Unpacks into a hidden temporary folder beside ``target``, checks the layout (with ``check_content``,
    every record too: :func:`~unirex.data.install.check_records`), writes ``source`` (if given) as
    ``.unirex-source.json`` and renames the dataset folder to ``target``. Raises :class:`BadArchive` for an
    unusable archive.
    """
    target = Path(target)
    name = name or target.name
    origin = origin or f"archive {archive}"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=tmp_prefix(f"{target.name}-unpack"), dir=target.parent))
    try:
        _unpack_into(Path(archive), tmp, origin, max_unpacked_bytes, max_members)
        root = find_dataset_root(tmp, name, origin)
        check_layout(root, origin)
        if check_content:
            check_records(root, origin)
        if source is not None:
            write_json_atomic(root / SOURCE_MARKER, source)
        install_tree(root, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


# ------------------------------------------------------------------------------------------ together
def fetch_archive_dataset(data_dir: Path, entry: CatalogEntry, *, progress: bool = True, force: bool = False,
                          retries: int = RETRIES, timeout: float = TIMEOUT_S, on_progress: ProgressFn | None = None,
                          max_unpacked_bytes: int | None = None, max_archive_bytes: int | None = None) -> Path:
    """Download, verify and unpack the ERASER archive of ``entry`` into ``data_dir/entry.name``."""
    data_dir = Path(data_dir)
    target = dataset_path(data_dir, entry.name)
    url = entry.url
    with dataset_lock(data_dir, entry.name, progress):
        if target.exists() and not force:  # another process finished it while we waited
            return target
        _clear_leftovers(data_dir, entry.name)
        archive = downloads_dir(data_dir) / entry.archive_name
        if not archive.is_file():
            try:
                download_file(url, archive, progress=progress, retries=retries, timeout=timeout,
                              on_progress=on_progress, desc=entry.name,
                              max_bytes=max_archive_bytes or entry.archive_limit)
            except NetworkError as e:
                raise NetworkError(f"{e} Without network: fetch {entry.archive_name} elsewhere and unpack it so that "
                                   f"{target} holds train.jsonl, val.jsonl, test.jsonl and docs/ (or docs.jsonl)"
                                   + ("; or use the Hugging Face copy (--source hf)." if entry.hf_format else ".")) from None
        digest = sha256_of(archive)
        if entry.sha256 and digest != entry.sha256.lower():
            archive.unlink()
            raise UnirexError(f"{url}: SHA-256 mismatch (got {digest}, the catalog pins {entry.sha256}); "
                              "the download was deleted: retry, or check the mirror in $" + ENV_BASE_URL)
        source = {"source": "eraser", "url": url, "sha256": digest, "bytes": archive.stat().st_size,
                  "fetched_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        try:
            unpack_archive(archive, target, name=entry.name, origin=f"{url} (saved as {archive})",
                           max_unpacked_bytes=max_unpacked_bytes or entry.max_unpacked_bytes, source=source)
        except BadArchive as e:
            archive.unlink(missing_ok=True)
            raise BadArchive(f"{e}; the download was deleted") from None
        archive.unlink(missing_ok=True)
    return target


def ensure_downloaded(data_dir: Path, name: str, progress: bool = True, *, source: str = "eraser",
                      force: bool = False, hf_id: str | None = None, on_progress: ProgressFn | None = None,
                      retries: int = RETRIES, max_unpacked_bytes: int | None = None,
                      max_archive_bytes: int | None = None) -> Path:
    """The folder ``data_dir/name``: fetched on first use when ``name`` is a catalog dataset.

    A folder that exists is returned as it is (unless ``force``). Otherwise ``source="eraser"`` downloads
    the ERASER archive (``$UNIREX_ERASER_BASE_URL``), ``source="hf"`` converts the Hugging Face copy
    (:mod:`unirex.data.hf_convert`). Raises :class:`UnirexError` for a name outside the catalog (with
    close names suggested) or any failure, naming the URL and the problem.
    """
    data_dir = Path(data_dir)
    target = dataset_path(data_dir, name)
    if target.exists() and not force:
        return target
    if name not in CATALOG:
        raise UnirexError(unknown_dataset_message(name, data_dir))
    entry = get_entry(name)
    if source == "hf":
        from unirex.data.hf_convert import fetch_hf_dataset

        return fetch_hf_dataset(data_dir, entry, hf_id=hf_id, progress=progress, force=force)
    if source != "eraser":
        raise UnirexError(f"unknown dataset source '{source}': use eraser or hf")
    return fetch_archive_dataset(data_dir, entry, progress=progress, force=force, retries=retries,
                                 on_progress=on_progress, max_unpacked_bytes=max_unpacked_bytes,
                                 max_archive_bytes=max_archive_bytes)


# ------------------------------------------------------------------------------------------ summary
def _count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def describe(folder: Path) -> str:
    """A one-line summary of an ERASER folder: annotations per split and where its documents are."""
    counts = []
    for alts in REQUIRED:
        path = next((folder / a for a in alts if (folder / a).is_file()), None)
        counts.append(str(_count_lines(path)) if path else "-")
    docs = "docs.jsonl" if (folder / "docs.jsonl").is_file() else "docs/"
    return f"{' / '.join(counts)} annotations (train / val / test), documents in {docs}"


__all__ = ["BadArchive", "NetworkError", "describe", "download_file", "ensure_downloaded", "fetch_archive_dataset",
           "find_dataset_root", "check_layout", "partial_path", "SOURCE_MARKER", "dataset_lock", "safe_member_path", "unpack_archive"]
