"""Property-based fuzzing (hypothesis) of the two places hostile bytes enter: the ERASER reader
(annotations, evidences, documents in docs/ or docs.jsonl) and the archive unpacker.

Properties:
* the reader either loads the split or raises :class:`UnirexError` (never another exception), and a
  loaded split never holds words of a file outside the dataset's ``docs/`` (canaries are planted around
  it, one reachable through a symbolic link); when it loads, the build (tokenizer, Parquet cache) works too;
* the unpacker either installs the dataset or raises :class:`UnirexError`, and never writes outside its
  target: nothing appears beside it or in a sentinel folder that names in the archive point at, and what
  it installs holds only regular files and folders.

The fast suite runs a few hundred cases of each; ``-m slow`` runs thousands. Each test counts the cases it
ran (printed with ``-s``; the README's reliability section quotes a slow run).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from unirex.data import build_split
from unirex.data.download import unpack_archive
from unirex.data.eraser import read_split
from unirex.data.install import REQUIRED
from unirex.errors import UnirexError

CANARY = "CANARYWORD"
COUNTS: dict[str, int] = {}

# ------------------------------------------------------------------------------------------ the reader
junk = st.one_of(st.none(), st.booleans(), st.integers(-3, 60), st.floats(allow_nan=True, allow_infinity=True),
                 st.text(max_size=6), st.lists(st.integers(0, 3), max_size=2),
                 st.dictionaries(st.text(max_size=3), st.integers(0, 3), max_size=2))
DOCIDS = ["d0", "d1", "d2", "d0_premise", "d0_hypothesis", "link", "inner", "../canary", "../../canary",
          "../../../canary", "../../../../canary", "/etc/hostname", "docs/../d0", "./d1", "d0/..", ".", "..", "",
          "a\x00b", "sub/d3", "d1 ", "D1"]
docid = st.one_of(st.sampled_from(DOCIDS), st.text(max_size=5))
integer = st.one_of(st.integers(-2, 30), st.integers(-2, 30), junk)
evidence = st.fixed_dictionaries(
    {"docid": st.one_of(docid, docid, junk), "start_token": integer, "end_token": integer},
    optional={"start_sentence": integer, "end_sentence": integer,
              "text": st.one_of(st.none(), st.text(alphabet="ab c.\t", max_size=10), junk)})
annotation = st.fixed_dictionaries(
    {"annotation_id": st.one_of(docid, docid, junk), "classification": st.one_of(st.sampled_from(["POS", "NEG", "0"]), junk)},
    optional={"evidences": st.one_of(st.lists(st.one_of(st.lists(st.one_of(evidence, evidence, junk), max_size=3), evidence),
                                              max_size=3), junk),
              "docids": st.one_of(st.none(), st.lists(st.one_of(docid, docid, junk), max_size=3), junk),
              "query": st.one_of(st.none(), st.text(max_size=12), junk),
              "query_type": st.one_of(st.none(), st.text(max_size=3), junk)})
line = st.one_of(annotation.map(json.dumps), annotation.map(json.dumps), annotation.map(json.dumps),
                 junk.map(json.dumps), st.text(max_size=30),
                 st.binary(max_size=30).map(lambda b: b.decode("latin-1")))
doc_text = st.one_of(st.lists(st.sampled_from(list("ab c.\t\n\r\xa0\u2028é") + ["  ", "\n\n", "\x00", "\x1c", "word"]),
                              max_size=40).map("".join),
                     st.binary(max_size=40).map(lambda b: b.decode("latin-1")))
raw_doc = st.one_of(doc_text.map(lambda s: s.encode("utf-8")), st.binary(max_size=40))


def plant_canaries(tmp: Path, data: Path) -> None:
    (data / "ds").mkdir(parents=True)
    for folder in (tmp, data, data / "ds"):
        (folder / "canary").write_text(f"{CANARY} {CANARY}\n")
    (data / "ds" / "docs").mkdir(parents=True, exist_ok=True)
    (data / "ds" / "docs" / "link").symlink_to(tmp / "canary")  # a link out of docs/
    (data / "ds" / "docs" / "inner").symlink_to(data / "ds" / "canary")  # out of docs/, inside the dataset


BASE_DOCS = {"d0": b"a good film .\nreally good .\n", "d1": b"a bad film .\n"}
BASE_ANNS = [
    {"annotation_id": "d0", "classification": "POS", "query": "", "query_type": None, "docids": None,
     "evidences": [[{"docid": "d0", "start_token": 1, "end_token": 2, "start_sentence": 0, "end_sentence": 1,
                     "text": "good"}]]},
    {"annotation_id": "d1", "classification": "NEG", "evidences": [[{"docid": "d1", "start_token": 1, "end_token": 2}]]},
]
FIELDS = [("annotation_id",), ("classification",), ("docids",), ("query",), ("query_type",), ("evidences",),
          ("evidences", 0), ("evidences", 0, 0), ("evidences", 0, 0, "docid"), ("evidences", 0, 0, "start_token"),
          ("evidences", 0, 0, "end_token"), ("evidences", 0, 0, "start_sentence"), ("evidences", 0, 0, "text")]


def _set(obj, path, value):
    cur = obj
    for p in path[:-1]:
        if isinstance(cur, dict) and p in cur:
            cur = cur[p]
        elif isinstance(cur, list) and isinstance(p, int) and p < len(cur):
            cur = cur[p]
        else:
            return
    if isinstance(cur, dict):
        if value is KeyError:
            cur.pop(path[-1], None)
        else:
            cur[path[-1]] = value
    elif isinstance(cur, list) and isinstance(path[-1], int) and path[-1] < len(cur) and value is not KeyError:
        cur[path[-1]] = value


@st.composite
def eraser_folder(draw):
    """A valid two-annotation dataset, then 0-4 mutations: a field set to junk, a path-like docid, another
    integer or label, or removed; a line replaced by junk; a document replaced by hostile text or bytes."""
    anns = json.loads(json.dumps(BASE_ANNS))
    docs = dict(BASE_DOCS)
    raw_lines: dict[int, str] = {}
    extra_jsonl = []
    for _ in range(draw(st.sampled_from([0, 1, 1, 2, 2, 3, 4]))):
        kind = draw(st.sampled_from(["field", "field", "field", "line", "doc", "jsonl"]))
        i = draw(st.integers(0, 1))
        if kind == "field":
            value = draw(st.one_of(junk, docid, integer, st.sampled_from(["POS", "NEG", "0", 0, KeyError])))
            _set(anns[i], draw(st.sampled_from(FIELDS)), value)
        elif kind == "line":
            raw_lines[i] = draw(line)
        elif kind == "doc":
            docs[draw(st.sampled_from(["d0", "d1", "d0_premise", "d0_hypothesis", "d2"]))] = draw(raw_doc)
        else:
            extra_jsonl.append(draw(st.one_of(st.fixed_dictionaries(
                {"docid": st.one_of(docid, junk), "document": st.one_of(doc_text, junk)}).map(json.dumps), st.text(max_size=10))))
    lines = [raw_lines.get(i, json.dumps(a)) for i, a in enumerate(anns)]
    if draw(st.integers(0, 4)) == 0:
        lines.append(draw(line))
    return lines, draw(st.booleans()), docs, extra_jsonl


def check_reader(case, tokenizer_arch: str) -> str:
    """Run the reader (and, when it loads, the build) on ``case``; assert no canary leaks; return the
    outcome: ``"refused: <message>"``, ``"loaded, not built: <message>"`` or ``"built"``."""
    lines, as_jsonl, docs, extra_jsonl = case
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        data = tmp / "data"
        plant_canaries(tmp, data)
        d = data / "ds"
        (d / "train.jsonl").write_bytes("\n".join(lines).encode("utf-8", "surrogatepass") + b"\n")
        for split in ("val", "test"):
            shutil.copy(d / "train.jsonl", d / f"{split}.jsonl")
        if as_jsonl:
            shutil.rmtree(d / "docs")
            body = [json.dumps({"docid": k, "document": v.decode("utf-8", "replace")}) for k, v in docs.items()]
            (d / "docs.jsonl").write_text("\n".join(body + extra_jsonl) + "\n")
        else:
            for k, v in docs.items():
                (d / "docs" / k).write_bytes(v)
        try:
            examples = read_split(d, "train")
        except UnirexError as e:
            assert CANARY not in str(e)
            COUNTS["reader_refused"] = COUNTS.get("reader_refused", 0) + 1
            return f"refused: {e}"
        COUNTS["reader_loaded"] = COUNTS.get("reader_loaded", 0) + 1
        for ex in examples:
            for doc in ex.documents:
                assert CANARY not in doc.words, (doc.docid, "a file outside docs/ was read")
        try:
            build_split(data, "ds", "train", arch=tokenizer_arch, max_length=32)
        except UnirexError as e:
            assert CANARY not in str(e)
            return f"loaded, not built: {e}"  # e.g. a label the train split lacks; one message, never a traceback
        COUNTS["built"] = COUNTS.get("built", 0) + 1
        return "built"


def _reader_property(n: int, tokenizer_arch: str) -> None:
    @settings(max_examples=n, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(eraser_folder())
    def prop(case):
        COUNTS["reader"] = COUNTS.get("reader", 0) + 1
        check_reader(case, tokenizer_arch)

    prop()


def test_fuzz_reader(tiny_arch):
    COUNTS.clear()
    _reader_property(250, tiny_arch)
    print(f"\nreader fuzz: {COUNTS}")
    assert COUNTS["reader"] >= 200 and COUNTS.get("reader_loaded", 0) > 0 and COUNTS.get("reader_refused", 0) > 0
    assert COUNTS.get("built", 0) > 0  # "when it loads, the build works too" was exercised, not only reached


@pytest.mark.slow
def test_fuzz_reader_long(tiny_arch):
    COUNTS.clear()
    _reader_property(2000, tiny_arch)
    print(f"\nreader fuzz (long): {COUNTS}")
    assert COUNTS["reader"] >= 1600


# ---------------------------------------------------------------------------------------- the unpacker
GOOD = {"movies/train.jsonl": json.dumps({"annotation_id": "m1", "classification": "POS", "evidences": []}).encode() + b"\n",
        "movies/val.jsonl": json.dumps({"annotation_id": "m1", "classification": "POS"}).encode() + b"\n",
        "movies/test.jsonl": json.dumps({"annotation_id": "m1", "classification": "POS"}).encode() + b"\n",
        "movies/docs/m1": b"a good film .\n"}
SENTINEL = "@SENTINEL@"  # replaced by the absolute path of a folder outside the target
NAMES = ["movies", "movies/docs", "movies/docs/m1", "movies/train.jsonl", "movies/docs/m1/x", "movies/./docs/m2",
         "../escape", "../../escape", "movies/../../escape", "movies/docs/../../../escape", f"{SENTINEL}/abs",
         "./", ".", "", "a\\..\\escape", "C:/escape", "movies/" + "x" * 120, "//double", "movies//docs//m3",
         "train.jsonl", "docs", "docs/m1", "movies/docs/link"]
member = st.tuples(
    st.one_of(st.sampled_from(NAMES), st.text(alphabet="ab./\\:", max_size=12)),
    st.sampled_from(["file", "file", "file", "dir", "symlink", "hardlink", "chr", "fifo"]),
    st.one_of(st.binary(max_size=80), st.sampled_from([b"../escape", SENTINEL.encode() + b"/x", b"movies/docs/m1", b"/etc/passwd"])))


@st.composite
def archive(draw):
    entries = [(k, "file", v) for k, v in GOOD.items()] if draw(st.booleans()) else []
    extra = draw(st.lists(member, max_size=6))
    pos = draw(st.integers(0, len(entries)))
    entries = entries[:pos] + extra + entries[pos:]
    mode = draw(st.sampled_from(["w:gz", "w:bz2", "w:xz", "w"]))
    damage = draw(st.one_of(st.none(), st.tuples(st.sampled_from(["cut", "flip"]), st.floats(0, 1))))
    return entries, mode, damage


def make_archive(entries, mode, damage, sentinel: Path) -> bytes | None:
    buf = io.BytesIO()
    try:
        with tarfile.open(fileobj=buf, mode=mode, format=tarfile.GNU_FORMAT) as tar:
            for name, kind, payload in entries:
                name = name.replace(SENTINEL, str(sentinel))
                info = tarfile.TarInfo(name)
                if kind == "file":
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
                    continue
                info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                             "chr": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE}[kind]
                if kind in ("symlink", "hardlink"):
                    info.linkname = payload.decode("latin-1").replace(SENTINEL, str(sentinel))
                tar.addfile(info)
    except (ValueError, tarfile.TarError, UnicodeError):
        return None  # tarfile itself cannot write such an entry
    data = bytearray(buf.getvalue())
    if damage and data:
        how, where = damage
        i = min(int(where * len(data)), len(data) - 1)
        if how == "cut":
            del data[i:]
        else:
            data[i] ^= 0xFF
    return bytes(data)


def snapshot(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def check_unpacker(case) -> None:
    entries, mode, damage = case
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        sentinel, root = tmp / "sentinel", tmp / "root" / "data"
        sentinel.mkdir()
        root.mkdir(parents=True)
        (tmp / "root" / "escape").write_text("untouched")
        data = make_archive(entries, mode, damage, sentinel)
        assume(data is not None)
        path = tmp / "archive.bin"
        path.write_bytes(data)
        try:
            unpack_archive(path, root / "movies", name="movies", max_unpacked_bytes=200_000, max_members=50)
            installed = True
            COUNTS["unpacked"] = COUNTS.get("unpacked", 0) + 1
        except UnirexError:
            installed = False
            COUNTS["refused"] = COUNTS.get("refused", 0) + 1
        assert snapshot(sentinel) == [] and (tmp / "root" / "escape").read_text() == "untouched"
        assert sorted(os.listdir(tmp / "root")) == ["data", "escape"]
        # installed: the target and nothing else; refused: nothing (no temporary folder, no half target)
        assert os.listdir(root) == (["movies"] if installed else [])
        if installed:  # what it installs is a dataset: the three splits and the documents
            target = root / "movies"
            assert all(any((target / a).is_file() for a in alts) for alts in REQUIRED), snapshot(target)
            assert (target / "docs").is_dir() or (target / "docs.jsonl").is_file(), snapshot(target)
        for dirpath, dirnames, filenames in os.walk(root):
            for n in dirnames + filenames:
                p = Path(dirpath) / n
                assert not p.is_symlink() and (p.is_dir() or p.is_file()), p


def _unpacker_property(n: int) -> None:
    @settings(max_examples=n, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(archive())
    def prop(case):
        COUNTS["archives"] = COUNTS.get("archives", 0) + 1
        check_unpacker(case)

    prop()


def test_fuzz_unpacker():
    COUNTS.clear()
    _unpacker_property(300)
    print(f"\nunpacker fuzz: {COUNTS}")
    assert COUNTS["archives"] >= 250 and COUNTS.get("unpacked", 0) > 0 and COUNTS.get("refused", 0) > 0


@pytest.mark.slow
def test_fuzz_unpacker_long():
    COUNTS.clear()
    _unpacker_property(2000)
    print(f"\nunpacker fuzz (long): {COUNTS}")
    assert COUNTS["archives"] >= 1600


def test_fuzz_reader_reaches_every_outcome_with_a_seed(tiny_arch):
    """A fixed sample (not hypothesis) that reaches each outcome the properties name: the valid split loads
    and builds (from docs/ and from docs.jsonl); each canary docid (a path out of docs/, a link out of it,
    a link to a file of the dataset outside docs/, an absolute path) is refused with a message that says
    so; a NUL document is refused as binary."""
    base = [json.dumps(a) for a in BASE_ANNS]
    assert check_reader((base, False, dict(BASE_DOCS), []), tiny_arch) == "built"
    assert check_reader((base, True, dict(BASE_DOCS), []), tiny_arch) == "built"
    for target in ("../canary", "../../canary", "link", "inner", "/etc/hostname"):
        case = ([json.dumps({"annotation_id": "d0", "classification": "POS", "docids": [target]})],
                False, {"d0": b"a b"}, [])
        outcome = check_reader(case, tiny_arch)
        assert outcome.startswith("refused: ") and "outside the docs/ folder" in outcome, (target, outcome)
    outcome = check_reader(([json.dumps({"annotation_id": "d0", "classification": "POS"})], False, {"d0": b"\x00"}, []),
                           tiny_arch)
    assert outcome.startswith("refused: ") and "NUL" in outcome, outcome
