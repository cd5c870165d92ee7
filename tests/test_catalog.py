"""The dataset catalog: names, addresses (and their override), task types, table rows, unknown names."""

from __future__ import annotations

import pytest

from unirex.data import catalog
from unirex.data.catalog import (CATALOG, DEFAULT_BASE_URL, ENV_BASE_URL, QUERY, SINGLE_DOCUMENT, base_url,
                                 catalog_rows, get_entry)
from unirex.data.download import partial_path
from unirex.data.hf_convert import CONVERTERS
from unirex.errors import UnirexError

ISSUE_NAMES = ("movies", "multirc", "esnli", "cose", "fever", "boolq", "evidence_inference")


def test_catalog_holds_the_eraser_datasets_with_official_addresses(monkeypatch):
    monkeypatch.delenv(ENV_BASE_URL, raising=False)
    assert set(ISSUE_NAMES) <= set(CATALOG)
    for name in ISSUE_NAMES:
        e = CATALOG[name]
        assert e.name == name
        assert e.url == f"https://www.eraserbenchmark.com/zipped/{name}.tar.gz"  # https: see catalog.py
        assert e.task_type in (SINGLE_DOCUMENT, QUERY)
        assert len(e.labels) >= 2 and len(set(e.labels)) == len(e.labels)
        assert len(e.sizes) == 3 and all(n > 0 for n in e.sizes)
        assert e.max_unpacked_bytes > 0
        if e.hf_format is not None:
            assert e.hf_id and e.hf_format in CONVERTERS
    assert CATALOG["movies"].task_type == SINGLE_DOCUMENT and CATALOG["movies"].labels == ("NEG", "POS")
    assert CATALOG["multirc"].task_type == QUERY


def test_base_url_is_overridable_by_the_environment(monkeypatch):
    monkeypatch.delenv(ENV_BASE_URL, raising=False)
    assert base_url() == DEFAULT_BASE_URL
    monkeypatch.setenv(ENV_BASE_URL, "http://127.0.0.1:9/mirror/")
    assert base_url() == "http://127.0.0.1:9/mirror"
    assert CATALOG["esnli"].url == "http://127.0.0.1:9/mirror/esnli.tar.gz"
    assert ENV_BASE_URL in catalog.__doc__  # documented where the catalog is defined


def test_unknown_name_suggests_close_names():
    with pytest.raises(UnirexError) as e:
        get_entry("moveis")
    msg = str(e.value)
    assert "unknown dataset 'moveis'" in msg and "'movies'" in msg and "train.jsonl" in msg
    with pytest.raises(UnirexError, match="evidence_inference"):
        get_entry("evidence-inference")


def test_catalog_rows_report_sizes_sources_and_local_status(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_BASE_URL, "http://mirror.test/eraser")
    (tmp_path / "movies").mkdir()
    (tmp_path / "movies" / "train.jsonl").write_text("{}\n")
    (tmp_path / "fever").mkdir()  # a folder without train.jsonl
    part = partial_path(tmp_path, CATALOG["boolq"])
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 10)
    rows = {r["name"]: r for r in catalog_rows(tmp_path)}
    assert list(rows) == list(CATALOG)
    m = rows["movies"]
    assert m["present"] is True and m["status"] == "present" and m["path"] == str(tmp_path / "movies")
    assert m["task_type"] == SINGLE_DOCUMENT and m["labels"] == "NEG, POS"
    assert (m["train"], m["val"], m["test"]) == CATALOG["movies"].sizes and m["sizes"] == "1,600 / 200 / 200"
    assert m["source_url"] == "http://mirror.test/eraser/movies.tar.gz"
    assert rows["fever"]["status"] == "incomplete" and rows["fever"]["present"] is False
    assert rows["boolq"]["status"] == "partial download"
    assert rows["esnli"]["status"] == "absent" and rows["esnli"]["present"] is False
    assert "present" not in catalog_rows()[0]  # no data_dir: no local columns


def test_catalog_says_which_archives_are_pinned():
    rows = {r["name"]: r for r in catalog_rows()}
    # movies and multirc: digests recorded publicly for these very addresses; the others: none to establish
    assert {n for n, r in rows.items() if r["pinned"] == "pinned"} == {"movies", "multirc"}
    assert all(r["pinned"] == "not pinned" and r["sha256"] == "" for n, r in rows.items() if n not in ("movies", "multirc"))
    for name in ("movies", "multirc"):
        digest = rows[name]["sha256"]
        assert len(digest) == 64 and int(digest, 16) >= 0 and CATALOG[name].sha256 == digest
