"""A damaged run folder (a status.json or meta.json that is empty, not JSON, not an object, not UTF-8, or holds a
number no column can hold) is listed as ``corrupt`` with the reason; every other run is listed as before and the
index is rebuilt around it. A run folder that is a link to elsewhere is never read through."""

import json
import shutil

import pytest

from cli import main as cli_main
from store import db
from unirex.checkpoint import resolve_checkpoint
from unirex.errors import UnirexError
from unirex.runs import RunDir, RunStatus
from workbench import Workbench

CORRUPTIONS = {
    "empty": b"",
    "invalid": b"{not json",
    "list": b"[]",
    "null": b"null",
    "not-utf8": b"\xff\xfe",
    "link": None,  # the file is a link to a valid-looking record outside the workspace
    "huge-number": json.dumps({"epoch": 1e23, "seed": 1e23, "created_at": 1e23, "started_at": 1e23}).encode(),
}


def _make_run(ws, seed=0):
    meta = {"method": "aa_sum_comp_suff", "dataset": "demo", "arch": "default", "seed": seed, "mode": "train"}
    rd = RunDir.create(ws / "runs", {"seed": seed, "model": {"comp_wt": 0.5}}, meta)
    rd.log_metrics({"acc": 0.75}, split="test")
    rd.set_status("completed", started_at=1.0, ended_at=3.0)
    return rd


@pytest.fixture
def good(tmp_path):
    return sorted(_make_run(tmp_path, seed=s).run_id for s in (0, 1))


@pytest.mark.parametrize("which", ["status.json", "meta.json"])
@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_a_corrupt_run_is_listed_as_corrupt_and_the_others_as_usual(tmp_path, good, which, kind, capsys):
    bad = _make_run(tmp_path, seed=2)
    if CORRUPTIONS[kind] is None:
        elsewhere = tmp_path / "elsewhere.json"
        elsewhere.write_text(json.dumps({"status": "completed", "method": "SECRET"}))
        (bad.path / which).unlink()
        (bad.path / which).symlink_to(elsewhere)
    else:
        (bad.path / which).write_bytes(CORRUPTIONS[kind])

    report = db.sync(tmp_path)
    assert report.total == 3
    assert [c.run_id for c in report.corrupt] == [bad.run_id]
    assert which in report.corrupt[0].reason and "\n" not in report.corrupt[0].reason
    assert db.rebuild(tmp_path) == 3

    wb = Workbench(tmp_path)
    runs = {r.run_id: r for r in wb.runs()}
    assert sorted(runs) == sorted([*good, bad.run_id])
    assert [runs[g].status for g in good] == ["completed", "completed"]
    assert sorted(runs[g].seed for g in good) == [0, 1]
    assert runs[bad.run_id].status == RunStatus.CORRUPT == "corrupt"
    assert which in runs[bad.run_id].error and "\n" not in runs[bad.run_id].error
    with pytest.raises(UnirexError, match=which):  # show: one line, no traceback
        wb.run(bad.run_id)
    assert wb.run(good[0]).summary.status == "completed"

    capsys.readouterr()
    assert cli_main(["--workspace", str(tmp_path), "runs"]) == 0
    out = capsys.readouterr().out
    assert bad.run_id in out and "corrupt" in out and all(g in out for g in good)
    assert f"corrupt: {bad.run_id}: {runs[bad.run_id].error}" in out  # the reason, on one line
    assert cli_main(["--workspace", str(tmp_path), "store", "rebuild"]) == 0
    out = capsys.readouterr().out
    assert "3 runs indexed" in out and bad.run_id in out and which in out


def test_a_run_folder_linked_out_of_the_workspace_is_not_read(tmp_path, good):
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    elsewhere = _make_run(outside, seed=9)
    (elsewhere.path / "checkpoint").mkdir()  # looks like a checkpoint: it must not be loaded through the link
    (elsewhere.path / "checkpoint" / "checkpoint.json").write_text("{}")
    secret = {"method": "SECRET_METHOD", "dataset": "SECRET", "arch": "default", "seed": 9, "mode": "train"}
    (elsewhere.path / "meta.json").write_text(json.dumps(secret))
    link = tmp_path / "runs" / "R-linked"
    link.symlink_to(elsewhere.path, target_is_directory=True)
    try:
        report = db.sync(tmp_path)
        assert [c.run_id for c in report.corrupt] == ["R-linked"]
        wb = Workbench(tmp_path)
        runs = {r.run_id: r for r in wb.runs()}
        assert sorted(r for r in runs if r != "R-linked") == good
        assert runs["R-linked"].status == "corrupt" and "link" in runs["R-linked"].error
        assert runs["R-linked"].method is None and runs["R-linked"].seed is None  # its content is not shown
        assert "SECRET" not in json.dumps([r.__dict__ for r in runs.values()], default=str)
        assert "R-linked" not in [r.run_id for r in wb.checkpoint_runs()]  # Explain does not offer it
        for call in (lambda: wb.run("R-linked"), lambda: RunDir.open(tmp_path / "runs", "R-linked"),
                     lambda: RunDir.open(tmp_path / "runs", str(link)),
                     lambda: wb.push("R-linked", "someone/model", dry_run_dir=tmp_path / "card"),
                     lambda: wb.explain("R-linked", "a text"), lambda: wb.checkpoint_examples("R-linked"),
                     lambda: resolve_checkpoint("R-linked", runs_root=tmp_path / "runs")):
            with pytest.raises(UnirexError, match="link") as e:
                call()
            assert "\n" not in str(e.value) and "SECRET" not in str(e.value)
        assert cli_main(["--workspace", str(tmp_path), "show", "R-linked"]) != 0
    finally:
        shutil.rmtree(outside)
