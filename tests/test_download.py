"""Dataset download: the real HTTP path against a loopback server serving archives built here (good,
truncated, unsafe, incomplete, too large, a dropped connection), and the Hugging Face conversion."""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import socket
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cli.download import add_download_parser
from unirex.data import download as dl
from unirex.data.catalog import CATALOG, ENV_BASE_URL
from unirex.data.download import SOURCE_MARKER, ensure_downloaded, partial_path, safe_member_path
from unirex.data.eraser import read_split
from unirex.errors import UnirexError

# ------------------------------------------------------------------------------------------ archives
DOC_M1 = "a truly wonderful film .\nthe ending was unforgettable .\n"
DOC_M2 = "dull and tedious .\ni left early .\n"


def _ann(ann_id, label, spans):
    words = {"m1": DOC_M1.split(), "m2": DOC_M2.split()}[ann_id]
    return {"annotation_id": ann_id, "classification": label, "query": "", "query_type": None, "docids": None,
            "evidences": [[{"docid": ann_id, "start_token": s, "end_token": e, "start_sentence": -1,
                            "end_sentence": -1, "text": " ".join(words[s:e])}] for s, e in spans]}


def dataset_files(docs_jsonl: bool = False, drop: tuple[str, ...] = ()) -> dict[str, bytes]:
    """A tiny movies-like ERASER dataset as {relative path: bytes}."""
    jl = lambda *objs: "".join(json.dumps(o) + "\n" for o in objs).encode()  # noqa: E731
    files = {
        "train.jsonl": jl(_ann("m1", "POS", [(1, 3)]), _ann("m2", "NEG", [(0, 3)])),
        "val.jsonl": jl(_ann("m1", "POS", [])),
        "test.jsonl": jl(_ann("m2", "NEG", [(2, 3)])),
    }
    if docs_jsonl:
        files["docs.jsonl"] = jl({"docid": "m1", "document": DOC_M1}, {"docid": "m2", "document": DOC_M2})
    else:
        files["docs/m1"], files["docs/m2"] = DOC_M1.encode(), DOC_M2.encode()
    return {k: v for k, v in files.items() if k not in drop}


def make_tar(entries: list[tuple], mode: str = "w:gz") -> bytes:
    """entries: (name, kind, payload) with kind file (bytes), dir, symlink/hardlink (target), chr, fifo."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                         "chr": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE}[kind]
            if kind in ("symlink", "hardlink"):
                info.linkname = payload
            tar.addfile(info)
    return buf.getvalue()


def dataset_tar(prefix: str = "movies/", extra: list[tuple] = (), mode: str = "w:gz", **kw) -> bytes:
    entries = [(prefix.rstrip("/"), "dir", None)] if prefix else []
    entries += [(prefix + k, "file", v) for k, v in dataset_files(**kw).items()]
    return make_tar(entries + list(extra), mode)


# ---------------------------------------------------------------------------------- loopback server
class _Handler(BaseHTTPRequestHandler):
    timeout = 10

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):  # noqa: N802
        srv = self.server.owner
        srv.log.append({"path": self.path, "range": self.headers.get("Range"), "if_range": self.headers.get("If-Range")})
        if self.path in srv.streams:
            self._stream(*srv.streams[self.path])
            return
        if self.path in srv.redirects:
            self.send_response(302)
            self.send_header("Location", srv.redirects[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = srv.files.get(self.path)
        if data is None:
            self.send_error(404, "Not Found")
            return
        start, status = 0, 200
        rng = self.headers.get("Range")
        if rng and srv.ranges and self.headers.get("If-Range") in (None, srv.etag):
            start = int(rng.split("=", 1)[1].split("-", 1)[0])
            if start >= len(data):
                self.send_error(416, "Range Not Satisfiable")
                return
            status = 206
        body = data[start:]
        self.send_response(status)
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", srv.etag)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        drops = srv.drops.get(self.path)
        if drops:
            self.wfile.write(body[: drops.pop(0)])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)  # the connection drops mid-way
            return
        self.wfile.write(body)


    def _stream(self, size: int, announce: bool) -> None:
        """Send ``size`` bytes made on the fly (announced with Content-Length or not), counting what the
        client accepted before it hung up."""
        srv = self.server.owner
        self.send_response(200)
        self.send_header("Content-Type", "application/gzip")
        if announce:
            self.send_header("Content-Length", str(size))
        else:
            self.send_header("Connection", "close")
        self.end_headers()
        block = b"\x1f\x8b" + b"\0" * (64 * 1024 - 2)
        try:
            while srv.sent.get(self.path, 0) < size:
                self.wfile.write(block)
                srv.sent[self.path] = srv.sent.get(self.path, 0) + len(block)
        except OSError:  # the client closed the connection
            pass
        self.close_connection = True


class LoopbackServer:
    """An HTTP server on 127.0.0.1 (ephemeral port) serving ``files``; stops at teardown or after 60 s."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.drops: dict[str, list[int]] = {}  # path -> bytes to send before dropping, one per request
        self.streams: dict[str, tuple[int, bool]] = {}  # path -> (bytes to stream, announce the length)
        self.sent: dict[str, int] = {}  # path -> bytes written by a stream
        self.redirects: dict[str, str] = {}  # path -> Location of a 302
        self.ranges = True
        self.etag = '"v1"'
        self.log: list[dict] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/eraser"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.watchdog = threading.Timer(60, self.httpd.shutdown)
        self.watchdog.daemon = True

    def serve(self, name: str, data: bytes) -> None:
        self.files[f"/eraser/{name}.tar.gz"] = data

    def gets(self, name: str = "movies") -> list[dict]:
        return [r for r in self.log if r["path"] == f"/eraser/{name}.tar.gz"]

    def __enter__(self):
        self.thread.start()
        self.watchdog.start()
        return self

    def __exit__(self, *exc):
        self.watchdog.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def server(monkeypatch):
    """A loopback server as the archive base; the catalog's pinned digests are lifted (these archives are
    built here, not the published ones)."""
    for name, entry in list(CATALOG.items()):
        monkeypatch.setitem(CATALOG, name, dataclasses.replace(entry, sha256=None))
    monkeypatch.setattr(dl, "BACKOFF_S", 0.0)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    with LoopbackServer() as srv:
        monkeypatch.setenv(ENV_BASE_URL, srv.url)
        yield srv


def leftovers(data_dir: Path) -> list[str]:
    """Hidden temporary folders or archives that a finished (or failed) fetch must not leave behind."""
    found = [p.name for p in data_dir.iterdir() if p.name.startswith(".") and p.name != ".downloads"]
    found += [p.name for p in (data_dir / ".downloads").glob("*.tar.gz")]
    return found


def assert_movies_readable(path: Path) -> None:
    train = read_split(path, "train")
    assert [e.annotation.annotation_id for e in train] == ["m1", "m2"]
    assert train[0].gold_word_masks[0][:4] == [0, 1, 1, 0]
    assert len(read_split(path, "dev")) == 1 and len(read_split(path, "test")) == 1


# ------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("layout", ["folder+docs", "flat+docs.jsonl"])
def test_good_archive_is_downloaded_verified_and_unpacked(server, tmp_path, layout):
    data = dataset_tar() if layout == "folder+docs" else dataset_tar(prefix="", docs_jsonl=True)
    server.serve("movies", data)
    seen = []
    path = ensure_downloaded(tmp_path, "movies", progress=False, on_progress=lambda n, t: seen.append((n, t)))
    assert path == tmp_path / "movies"
    assert_movies_readable(path)
    marker = json.loads((path / SOURCE_MARKER).read_text())
    assert marker["url"] == f"{server.url}/movies.tar.gz" and marker["bytes"] == len(data) and len(marker["sha256"]) == 64
    assert seen and seen[-1] == (len(data), len(data))
    assert leftovers(tmp_path) == [] and not partial_path(tmp_path, CATALOG["movies"]).exists()
    n = len(server.log)
    assert ensure_downloaded(tmp_path, "movies", progress=False) == path  # present: no network
    assert len(server.log) == n


@pytest.mark.parametrize("cut", ["half", "gzip trailer"])
def test_truncated_archive_is_rejected_and_deleted(server, tmp_path, cut):
    data = dataset_tar()
    # complete over HTTP, but the gzip stream is cut: in the middle, or only its checksum trailer (the tar
    # inside is then whole, and only reading the stream to its end notices)
    server.serve("movies", data[: len(data) // 2] if cut == "half" else data[:-4])
    with pytest.raises(UnirexError, match=r"corrupt or truncated.*deleted") as e:
        ensure_downloaded(tmp_path, "movies", progress=False)
    assert f"{server.url}/movies.tar.gz" in str(e.value)
    assert not (tmp_path / "movies").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("entry, why", [
    (("movies/../evil.txt", "file", b"pwned"), r"'movies/\.\./evil\.txt' points outside"),
    (("../evil.txt", "file", b"pwned"), r"points outside"),
    (("/tmp/unirex-evil.txt", "file", b"pwned"), r"is an absolute path"),
    (("movies/docs/m3", "symlink", "/etc/passwd"), r"'movies/docs/m3' is a symbolic link"),
    (("movies/docs/m3", "hardlink", "movies/docs/m1"), r"is a hard link"),
    (("movies/null", "chr", None), r"is a device"),
    (("movies/pipe", "fifo", None), r"is a FIFO"),
])
def test_unsafe_entries_refuse_the_whole_archive(server, tmp_path, entry, why):
    data_dir = tmp_path / "data"
    server.serve("movies", dataset_tar(extra=[entry]))
    with pytest.raises(UnirexError, match="refused: .*" + why):
        ensure_downloaded(data_dir, "movies", progress=False)
    assert not (data_dir / "movies").exists() and leftovers(data_dir) == []
    assert not (tmp_path / "evil.txt").exists() and not (data_dir / "evil.txt").exists()
    assert not Path("/tmp/unirex-evil.txt").exists()


def test_archive_without_val_split_is_rejected(server, tmp_path):
    server.serve("movies", dataset_tar(drop=("val.jsonl",)))
    with pytest.raises(UnirexError, match=r"not an ERASER dataset: missing val\.jsonl or dev\.jsonl"):
        ensure_downloaded(tmp_path, "movies", progress=False)
    assert not (tmp_path / "movies").exists() and leftovers(tmp_path) == []


def test_archive_without_documents_or_splits_is_rejected(server, tmp_path):
    server.serve("movies", make_tar([("movies/train.jsonl", "file", b'{"annotation_id": "a", "classification": "POS"}\n'),
                                     ("movies/val.jsonl", "file", b"{}\n"), ("movies/test.jsonl", "file", b"{}\n")]))
    with pytest.raises(UnirexError, match=r"missing docs/ or docs\.jsonl"):
        ensure_downloaded(tmp_path, "movies", progress=False)
    server.serve("movies", make_tar([("readme.txt", "file", b"hello")]))
    with pytest.raises(UnirexError, match=r"no train\.jsonl in the archive \(it holds readme\.txt\)"):
        ensure_downloaded(tmp_path, "movies", progress=False)
    assert leftovers(tmp_path) == []


def test_decompressed_size_limit(server, tmp_path):
    bomb = dataset_tar(extra=[("movies/docs/big", "file", b"\0" * 2_000_000)])
    assert len(bomb) < 20_000  # compresses to little: only the decompressed size tells
    server.serve("movies", bomb)
    with pytest.raises(UnirexError, match=r"more than 1000\.0 KiB, the decompressed-size limit"):
        ensure_downloaded(tmp_path, "movies", progress=False, max_unpacked_bytes=1_024_000)
    assert not (tmp_path / "movies").exists() and leftovers(tmp_path) == []
    # the stream itself is bounded too, whatever the headers claim (here: a plain tar bigger than the limit)
    archive = tmp_path / "plain.tar"
    archive.write_bytes(dataset_tar(mode="w", extra=[("movies/docs/big", "file", b"x" * 300_000)]))
    with pytest.raises(dl.BadArchive, match="decompressed-size limit"):
        dl.unpack_archive(archive, tmp_path / "plain", name="movies", max_unpacked_bytes=200_000)
    # a member whose declared size exceeds the limit is refused before a byte of it is written
    dest = tmp_path / "direct"
    dest.mkdir()
    with pytest.raises(dl.BadArchive, match="decompressed-size limit"):
        dl._unpack_into(archive, dest, "test", 250_000, 100)
    assert (dest / "movies" / "train.jsonl").is_file() and not (dest / "movies" / "docs" / "big").exists()


@pytest.mark.parametrize("announce", [True, False], ids=["announced", "not-announced"])
def test_oversized_download_stops_at_the_limit(server, tmp_path, announce):
    """A body far over the dataset's archive limit is refused as soon as that is known: from the announced
    length before a byte is written, else the moment the received bytes pass the limit; nothing is kept."""
    limit = 2 * 1024 * 1024
    size = 3 * 1024 ** 3 if announce else 512 * 1024 * 1024  # 3 GiB announced; 512 MiB streamed without a length
    server.streams["/eraser/movies.tar.gz"] = (size, announce)
    seen = []
    with pytest.raises(dl.BadArchive, match=r"refused: the archive (announces|passed) .* over the 2\.0 MiB limit"):
        dl.fetch_archive_dataset(tmp_path, CATALOG["movies"], progress=False, max_archive_bytes=limit,
                                 on_progress=lambda done, total: seen.append(done))
    written = max(seen, default=0)  # bytes written to the partial file, as reported after each write
    if announce:
        assert written == 0  # refused on the header
    else:
        assert limit - dl.CHUNK < written <= limit  # stopped at the chunk that would have passed the limit
    # the server could push at most what the socket buffers hold beyond what the client read
    assert server.sent.get("/eraser/movies.tar.gz", 0) < limit + 64 * 1024 * 1024 < size
    assert not (tmp_path / "movies").exists() and leftovers(tmp_path) == []
    assert not list((tmp_path / ".downloads").glob("movies.tar.gz*"))  # no partial file kept to resume


def test_catalog_limit_applies_by_default(server, tmp_path, monkeypatch):
    monkeypatch.setitem(CATALOG, "movies", dataclasses.replace(CATALOG["movies"], max_archive_bytes=100_000))
    server.streams["/eraser/movies.tar.gz"] = (10_000_000, False)
    with pytest.raises(UnirexError, match="over the 97.7 KiB limit"):
        ensure_downloaded(tmp_path, "movies", progress=False)
    assert leftovers(tmp_path) == []


def test_dropped_connection_resumes_with_range(server, tmp_path):
    data = dataset_tar(extra=[("movies/docs/pad", "file", bytes(range(256)) * 64)])
    cut = len(data) // 2
    server.serve("movies", data)
    server.drops["/eraser/movies.tar.gz"] = [cut]
    with pytest.raises(UnirexError, match=r"failed after 1 attempts: connection closed after \d+ of \d+ bytes.*resumes"):
        ensure_downloaded(tmp_path, "movies", progress=False, retries=0)
    part = partial_path(tmp_path, CATALOG["movies"])
    assert part.stat().st_size == cut and not (tmp_path / "movies").exists()
    path = ensure_downloaded(tmp_path, "movies", progress=False, retries=0)  # the next call resumes
    last = server.gets()[-1]
    assert last["range"] == f"bytes={cut}-" and last["if_range"] == server.etag
    assert_movies_readable(path)
    assert json.loads((path / SOURCE_MARKER).read_text())["bytes"] == len(data)
    assert not part.exists() and leftovers(tmp_path) == []


def test_dropped_connections_are_retried_within_one_call(server, tmp_path):
    data = dataset_tar()
    server.serve("movies", data)
    server.drops["/eraser/movies.tar.gz"] = [100, 200]  # two drops, then the rest comes through
    path = ensure_downloaded(tmp_path, "movies", progress=False, retries=3)
    assert [r["range"] for r in server.gets()] == [None, "bytes=100-", "bytes=300-"]
    assert_movies_readable(path)


def test_server_without_range_support_restarts_cleanly(server, tmp_path):
    data = dataset_tar()
    server.serve("movies", data)
    server.ranges = False  # answers every request with 200 and the whole file
    server.drops["/eraser/movies.tar.gz"] = [150]
    path = ensure_downloaded(tmp_path, "movies", progress=False, retries=1)
    assert server.gets()[1]["range"] == "bytes=150-"  # asked to resume, got the whole file: no bytes doubled
    assert json.loads((path / SOURCE_MARKER).read_text())["bytes"] == len(data)
    assert_movies_readable(path)


def test_partial_file_of_unknown_origin_is_not_appended_to(server, tmp_path):
    server.serve("movies", dataset_tar())
    part = partial_path(tmp_path, CATALOG["movies"])
    part.parent.mkdir(parents=True)
    part.write_bytes(b"garbage from somewhere else")  # no metadata saying which URL it came from
    path = ensure_downloaded(tmp_path, "movies", progress=False)
    assert server.gets()[0]["range"] is None
    assert_movies_readable(path)


def test_http_errors_and_unreachable_servers_name_the_url(server, tmp_path, monkeypatch):
    with pytest.raises(UnirexError, match=rf"{server.url}/fever\.tar\.gz: HTTP 404.*{ENV_BASE_URL}"):
        ensure_downloaded(tmp_path, "fever", progress=False)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    monkeypatch.setenv(ENV_BASE_URL, f"http://127.0.0.1:{port}")
    with pytest.raises(UnirexError, match=r"failed after 2 attempts: cannot connect"):
        ensure_downloaded(tmp_path, "fever", progress=False, retries=1)
    monkeypatch.setenv(ENV_BASE_URL, "file:///etc")
    with pytest.raises(UnirexError, match="only http"):
        ensure_downloaded(tmp_path, "fever", progress=False)
    assert not (tmp_path / "fever").exists()


def test_a_redirect_is_followed_only_to_http_or_https(server, tmp_path):
    """A 302 to ftp:// (which urllib would follow) or file:// is refused with one line naming the scheme;
    nothing is kept; a redirect to another http:// address is followed as before."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    for target in (f"ftp://127.0.0.1:{port}/eraser/movies.tar.gz", "file:///etc/passwd"):
        server.redirects["/eraser/movies.tar.gz"] = target
        scheme = target.split(":", 1)[0]
        with pytest.raises(UnirexError, match=rf"redirected to a {scheme}:// address; only http:// and https://"):
            ensure_downloaded(tmp_path, "movies", progress=False, retries=0)
        assert not (tmp_path / "movies").exists()
    server.serve("elsewhere/movies", dataset_tar())
    server.redirects["/eraser/movies.tar.gz"] = f"{server.url}/elsewhere/movies.tar.gz"
    assert_movies_readable(ensure_downloaded(tmp_path, "movies", progress=False))


def test_unknown_name_and_existing_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_BASE_URL, "http://127.0.0.1:9")  # never contacted
    with pytest.raises(UnirexError, match=r"unknown dataset 'multirk'.*Did you mean 'multirc'"):
        ensure_downloaded(tmp_path, "multirk", progress=False)
    (tmp_path / "mine").mkdir()
    assert ensure_downloaded(tmp_path, "mine") == tmp_path / "mine"  # a folder of one's own needs no catalog
    (tmp_path / "movies").mkdir()
    assert ensure_downloaded(tmp_path, "movies") == tmp_path / "movies"


def test_interrupted_unpack_leaves_nothing_and_leftovers_are_cleared(server, tmp_path, monkeypatch):
    server.serve("movies", dataset_tar())
    real_mkdir = dl._mkdir

    def crash_on_docs(path, root):
        if path.name == "docs":
            raise KeyboardInterrupt  # the process is stopped in the middle of unpacking
        real_mkdir(path, root)

    monkeypatch.setattr(dl, "_mkdir", crash_on_docs)
    with pytest.raises(KeyboardInterrupt):
        ensure_downloaded(tmp_path, "movies", progress=False)
    assert not (tmp_path / "movies").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".movies")] == []
    monkeypatch.setattr(dl, "_mkdir", real_mkdir)
    (tmp_path / ".movies-tmp-unpack-killed").mkdir()  # what a killed process (no finally) leaves behind
    (tmp_path / ".movies-tmp-unpack-killed" / "train.jsonl").write_text("{}")
    path = ensure_downloaded(tmp_path, "movies", progress=False)
    assert_movies_readable(path)
    assert leftovers(tmp_path) == [] and len(server.gets()) == 1  # the complete archive was kept for the retry


def test_sha256_pin_is_verified(server, tmp_path, monkeypatch):
    server.serve("movies", dataset_tar())
    monkeypatch.setitem(CATALOG, "movies", dataclasses.replace(CATALOG["movies"], sha256="0" * 64))
    with pytest.raises(UnirexError, match="SHA-256 mismatch"):
        ensure_downloaded(tmp_path, "movies", progress=False)
    assert leftovers(tmp_path) == [] and not (tmp_path / "movies").exists()


def test_force_replaces_and_concurrent_callers_download_once(server, tmp_path):
    server.serve("movies", dataset_tar())
    results = []
    threads = [threading.Thread(target=lambda: results.append(ensure_downloaded(tmp_path, "movies", progress=False)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [tmp_path / "movies"] * 3 and len(server.gets()) == 1
    (tmp_path / "movies" / "stale.txt").write_text("old")
    server.serve("movies", dataset_tar(prefix="", docs_jsonl=True))
    path = ensure_downloaded(tmp_path, "movies", progress=False, force=True)
    assert not (path / "stale.txt").exists() and (path / "docs.jsonl").is_file()
    assert_movies_readable(path)
    assert leftovers(tmp_path) == []


def test_safe_member_path():
    assert str(safe_member_path("./movies/./docs/a")) == "movies/docs/a"
    assert safe_member_path("./") is None
    for bad in ("/abs", "a/../../b", "..", "C:/x", "a\\..\\b", "a\x00b"):
        with pytest.raises(ValueError):
            safe_member_path(bad)


def _parser():
    p = argparse.ArgumentParser()
    p.add_argument("--workspace")
    add_download_parser(p.add_subparsers(dest="command", required=True))
    return p


def test_download_dataset_command(server, tmp_path, capsys):
    server.serve("movies", dataset_tar())
    args = _parser().parse_args(["--workspace", str(tmp_path / "ws"), "download-dataset", "movies", "--no-progress"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "2 / 1 / 1 annotations" in out and str(tmp_path / "ws" / "data" / "movies") in out
    assert_movies_readable(tmp_path / "ws" / "data" / "movies")
    args = _parser().parse_args(["download-dataset", "movies", "--data_dir", str(tmp_path / "ws" / "data")])
    assert args.func(args) == 0 and "already present" in capsys.readouterr().out
    args = _parser().parse_args(["download-dataset", "--list", "--data_dir", str(tmp_path / "ws" / "data")])
    assert args.func(args) == 0
    listing = capsys.readouterr().out
    assert "movies" in listing and "present" in listing and "evidence_inference" in listing
    args = _parser().parse_args(["download-dataset", "movis", "--data_dir", str(tmp_path)])
    with pytest.raises(UnirexError, match="Did you mean 'movies'"):
        args.func(args)
    with pytest.raises(SystemExit):
        _parser().parse_args(["download-dataset", "movies", "--source", "kaggle"])


# ------------------------------------------------------------------------------- Hugging Face route
def test_hf_unreachable_says_so_and_how_to_place_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UnirexError) as e:
        ensure_downloaded(tmp_path, "movies", progress=False, source="hf")
    msg = str(e.value)
    try:
        import datasets  # noqa: F401
    except ImportError:
        assert "needs the `datasets` package" in msg
    else:
        assert "Hugging Face Hub is unreachable (HF_HUB_OFFLINE=1 is set)" in msg
        assert str(tmp_path / "movies") in msg and "train.jsonl, val.jsonl, test.jsonl and docs/" in msg
    assert not (tmp_path / "movies").exists()
    with pytest.raises(UnirexError, match="no Hugging Face copy"):
        ensure_downloaded(tmp_path, "fever", progress=False, source="hf")


def _movie_rationales_dd():
    datasets = pytest.importorskip("datasets")
    feats = datasets.Features({"review": datasets.Value("string"),
                               "label": datasets.ClassLabel(names=["NEG", "POS"]),
                               "evidences": datasets.Sequence(datasets.Value("string"))})
    reviews = ["a truly wonderful film .\nthe ending was unforgettable .", "dull and tedious .\ni left early ."]
    mk = lambda rows: datasets.Dataset.from_dict(  # noqa: E731
        {"review": [r[0] for r in rows], "label": [r[1] for r in rows], "evidences": [r[2] for r in rows]}, features=feats)
    return datasets.DatasetDict({
        "train": mk([(reviews[0], 1, ["truly wonderful", "unforgettable", "not in the text"]), (reviews[1], 0, ["Dull and"])]),
        "validation": mk([(reviews[0], 1, [])]),
        "test": mk([(reviews[1], 0, ["i left early"])]),
    })


def test_hf_movie_rationales_conversion_reads_back(tmp_path):
    from unirex.data.hf_convert import convert_to_eraser

    report = convert_to_eraser(_movie_rationales_dd(), "movie_rationales", tmp_path / "movies")
    assert report["annotations"] == {"train": 2, "val": 1, "test": 1} and report["unmatched_evidences"] == 1
    train = read_split(tmp_path / "movies", "train")
    assert [e.annotation.classification for e in train] == ["POS", "NEG"]
    words = train[0].documents[0].words
    marked = [w for w, m in zip(words, train[0].gold_word_masks[0]) if m]
    assert marked == ["truly", "wonderful", "unforgettable"]
    assert [w for w, m in zip(train[1].documents[0].words, train[1].gold_word_masks[0]) if m] == ["dull", "and"]
    assert train[0].documents[0].sentences[1][0] == "the"  # sentence lines kept
    test = read_split(tmp_path / "movies", "test")
    assert sum(test[0].gold_word_masks[0]) == 3 and test[0].annotation.evidences[0][0].start_sentence == 1


def test_hf_other_forms_convert(tmp_path):
    datasets = pytest.importorskip("datasets")
    from unirex.data.hf_convert import convert_to_eraser

    passage = "the sky is blue .\nwater is wet ."
    mrc = datasets.Dataset.from_dict({"passage": [passage, passage], "query_and_answer": ["q1 || a", "q2 || b"],
                                      "label": [1, 0], "evidences": [["water is wet"], []]},
                                     features=datasets.Features({"passage": datasets.Value("string"),
                                                                 "query_and_answer": datasets.Value("string"),
                                                                 "label": datasets.ClassLabel(names=["False", "True"]),
                                                                 "evidences": datasets.Sequence(datasets.Value("string"))}))
    convert_to_eraser({"train": mrc, "validation": mrc, "test": mrc}, "eraser_multi_rc", tmp_path / "multirc")
    docs = (tmp_path / "multirc" / "docs.jsonl").read_text().splitlines()
    assert len(docs) == 1  # one passage shared by every question
    ex = read_split(tmp_path / "multirc", "train")
    assert ex[0].annotation.query == "q1 || a" and ex[0].annotation.classification == "True"
    assert [w for w, m in zip(ex[0].documents[0].words, ex[0].gold_word_masks[0]) if m] == ["water", "is", "wet"]

    nli = datasets.Dataset.from_dict({"premise": ["A man plays a guitar.", "Dogs run."],
                                      "hypothesis": ["A man makes music.", "Cats sleep."], "label": [0, -1]},
                                     features=datasets.Features({"premise": datasets.Value("string"),
                                                                 "hypothesis": datasets.Value("string"),
                                                                 "label": datasets.ClassLabel(names=["entailment", "neutral", "contradiction"])}))
    report = convert_to_eraser({"train": nli, "validation": nli, "test": nli}, "esnli", tmp_path / "esnli")
    assert report["skipped"] == {"no label": 3}  # label -1: no gold label
    ex = read_split(tmp_path / "esnli", "dev")
    assert [d.docid for d in ex[0].documents] == ["validation_000000_premise", "validation_000000_hypothesis"]
    assert ex[0].documents[0].words == ["A", "man", "plays", "a", "guitar", "."]

    cos = datasets.Dataset.from_dict({"id": [str(i) for i in range(10)],
                                      "question": [f"where do you keep item {i} ?" for i in range(10)],
                                      "choices": [["shelf", "box", "car", "bag", "sea"]] * 10, "answer": ["box"] * 10,
                                      "extractive_explanation": ["keep item"] * 10})
    report = convert_to_eraser({"train": cos, "validation": cos.select(range(3))}, "cos_e", tmp_path / "cose")
    assert report["annotations"] == {"train": 9, "val": 1, "test": 3}  # no test split: validation is test
    ex = read_split(tmp_path / "cose", "test")
    assert ex[0].annotation.classification == "B" and ex[0].annotation.query.split(" [sep] ")[1] == "box"
    assert [w for w, m in zip(ex[0].documents[0].words, ex[0].gold_word_masks[0]) if m] == ["keep", "item"]


def test_hf_route_end_to_end_with_parquet_fallback(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    dd = _movie_rationales_dd()
    calls = []

    def fake_load_dataset(path, name=None, revision=None, **kw):
        calls.append((path, name, revision))
        if revision is None:
            raise RuntimeError("Dataset scripts are no longer supported, but found movie_rationales.py")
        return dd

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    path = ensure_downloaded(tmp_path, "movies", progress=False, source="hf")
    assert calls == [("eraser-benchmark/movie_rationales", None, None),
                     ("eraser-benchmark/movie_rationales", None, "refs/convert/parquet")]
    marker = json.loads((path / SOURCE_MARKER).read_text())
    assert marker["source"] == "hf" and marker["report"]["annotations"]["train"] == 2
    assert len(read_split(path, "train")) == 2 and leftovers(tmp_path) == []
