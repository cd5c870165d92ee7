"""Atomic writes and the clean-up of what killed writers leave behind (unirex.fsutil)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from unirex import fsutil
from unirex.fsutil import (atomic_dir, atomic_write, clean_leftovers, clean_workspace_leftovers, host_tag,
                           parse_tmp_name, replace_dir, tmp_prefix)


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def make(folder: Path, name: str, age_s: float = 0.0, is_dir: bool = True) -> Path:
    p = folder / name
    if is_dir:
        p.mkdir()
        (p / "part").write_text("half written")
    else:
        p.write_text("half")
    if age_s:
        t = time.time() - age_s
        os.utime(p, (t, t))
    return p


def test_temporary_names_carry_their_owner():
    prefix = tmp_prefix("checkpoint")
    assert prefix == f".checkpoint-tmp-{host_tag()}-{os.getpid()}-"
    assert parse_tmp_name(prefix + "ab_12") == ("checkpoint", host_tag(), os.getpid())
    assert parse_tmp_name(".checkpoint-old-tmp-0123abcd-42-x") == ("checkpoint-old", "0123abcd", 42)
    assert parse_tmp_name(".movies-tmp-unpack-abc") == ("movies", None, None)  # written before owners were recorded
    assert parse_tmp_name("checkpoint") is None and parse_tmp_name(".hidden") is None


def test_clean_leftovers_removes_dead_and_stale_entries_only(tmp_path):
    me, dead = host_tag(), dead_pid()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        gone = [make(tmp_path, f".checkpoint-tmp-{me}-{dead}-a1"),
                make(tmp_path, f".status.json-tmp-{me}-{dead}-b2", is_dir=False),
                make(tmp_path, ".movies-tmp-unpack-old", age_s=2 * 86400),  # no owner, two days old
                make(tmp_path, f".x-tmp-feedbeef-{live.pid}-c3", age_s=2 * 86400)]  # another host, stale
        kept = [make(tmp_path, f".checkpoint-tmp-{me}-{live.pid}-d4"),  # a live writer
                make(tmp_path, f".checkpoint-tmp-{me}-{os.getpid()}-e5"),  # our own
                make(tmp_path, ".movies-tmp-unpack-fresh"),  # no owner, recent: may be in use
                make(tmp_path, f".x-tmp-feedbeef-{dead}-f6"),  # another host: its pids mean nothing here
                make(tmp_path, "checkpoint"), make(tmp_path, ".downloads"), make(tmp_path, "run-tmp-1-2-3")]
        link_target = make(tmp_path, "precious")
        (tmp_path / f".link-tmp-{me}-{dead}-g7").symlink_to(link_target)
        done = clean_leftovers(tmp_path)
        assert sorted(done) == sorted(gone + [tmp_path / f".link-tmp-{me}-{dead}-g7"])
        assert all(not p.exists() for p in gone) and all(p.exists() for p in kept)
        assert (link_target / "part").read_text() == "half written"  # a link is removed, never followed
        assert clean_leftovers(tmp_path, prefixes=(".nothing",)) == []
        time.sleep(0.01)
        # at age 0 everything but our own is stale (for callers that hold a lock on the name)
        assert (tmp_path / f".checkpoint-tmp-{me}-{live.pid}-d4") in clean_leftovers(tmp_path, older_than_s=0)
        assert (tmp_path / f".checkpoint-tmp-{me}-{os.getpid()}-e5").exists()
    finally:
        live.kill()
        live.wait()


def test_a_folder_moved_aside_is_put_back_when_its_writer_died_before_the_swap(tmp_path):
    aside = make(tmp_path, f".checkpoint-old-tmp-{host_tag()}-{dead_pid()}-zz")
    new = make(tmp_path, f".checkpoint-tmp-{host_tag()}-{dead_pid()}-yy")
    clean_leftovers(tmp_path)
    assert (tmp_path / "checkpoint" / "part").read_text() == "half written" and not aside.exists() and not new.exists()


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_replace_dir_swaps_and_leaves_nothing(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(fsutil, "_exchange", lambda a, b: False)
    target = tmp_path / "t"
    target.mkdir()
    (target / "v").write_text("old")
    with atomic_dir(target) as tmp:
        (tmp / "v").write_text("new")
    assert (target / "v").read_text() == "new" and os.listdir(tmp_path) == ["t"]
    src = tmp_path / "src"
    src.mkdir()
    replace_dir(src, tmp_path / "fresh")
    assert (tmp_path / "fresh").is_dir() and not src.exists()


def test_folders_swapped_in_get_the_usual_permissions(tmp_path):
    from unirex.runs import RunDir

    umask = os.umask(0o022)
    os.umask(umask)
    with atomic_dir(tmp_path / "new") as tmp:
        (tmp / "v").write_text("x")
    assert ((tmp_path / "new").stat().st_mode & 0o777) == 0o777 & ~umask  # not mkdtemp's 0o700
    os.chmod(tmp_path / "new", 0o750)
    with atomic_dir(tmp_path / "new") as tmp:
        (tmp / "v").write_text("y")
    assert ((tmp_path / "new").stat().st_mode & 0o777) == 0o750  # the replaced folder's bits are kept
    rd = RunDir.create(tmp_path / "runs", {}, {"method": "lm"})
    assert (rd.path.stat().st_mode & 0o777) == 0o777 & ~umask and rd.status()["status"] == "running"


def test_atomic_dir_failure_keeps_the_target(tmp_path):
    target = tmp_path / "t"
    target.mkdir()
    (target / "v").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "v").write_text("new")
            raise RuntimeError("boom")
    assert (target / "v").read_text() == "old" and os.listdir(tmp_path) == ["t"]


def test_a_killed_save_is_cleaned_up_by_the_next_save(tmp_path):
    """SIGKILL inside atomic_dir (what a killed checkpoint save leaves) and inside atomic_write; the next
    writer of the same target removes the leftover and the target is the old or the new version."""
    target = tmp_path / "checkpoint"
    target.mkdir()
    (target / "weights").write_text("v1")
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from unirex.fsutil import atomic_dir, atomic_write
        with atomic_dir(Path({str(target)!r})) as tmp:
            (tmp / "weights").write_text("v2-partial")
            atomic_write(Path({str(tmp_path / 'status.json')!r}), lambda t: (print("ready", flush=True), time.sleep(60)))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert proc.stdout.readline().strip() == "ready"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
    assert len(left) == 2 and all(parse_tmp_name(n)[2] == proc.pid for n in left)
    assert (target / "weights").read_text() == "v1"  # the old version, whole
    with atomic_dir(target) as tmp:
        (tmp / "weights").write_text("v3")
    atomic_write(tmp_path / "status.json", lambda t: Path(t).write_text("{}"))
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "status.json"]
    assert (target / "weights").read_text() == "v3"


def test_atomic_write_keeps_the_mode_of_the_file_it_replaces(tmp_path):
    p = tmp_path / "f"
    p.write_text("a")
    os.chmod(p, 0o604)
    atomic_write(p, lambda t: Path(t).write_text("b"))
    assert p.read_text() == "b" and (p.stat().st_mode & 0o777) == 0o604
    atomic_write(tmp_path / "new", lambda t: Path(t).write_text("c"))
    umask = os.umask(0o022)
    os.umask(umask)
    assert ((tmp_path / "new").stat().st_mode & 0o777) == 0o666 & ~umask


def test_clean_workspace_leftovers_reaches_runs_and_build_folders(tmp_path):
    ws, dead = tmp_path / "ws", dead_pid()
    spots = [ws, ws / "data", ws / "data" / "demo", ws / "data" / "demo" / "default" / "L64", ws / "runs",
             ws / "runs" / "R-1", ws / "runs" / "R-1" / "outputs"]
    for s in spots:
        s.mkdir(parents=True, exist_ok=True)
    (ws / "data" / "demo" / "docs").mkdir()
    left = [make(s, f".x-tmp-{host_tag()}-{dead}-q") for s in spots]
    docs_tmp = make(ws / "data" / "demo" / "docs", f".y-tmp-{host_tag()}-{dead}-q")  # documents are never listed
    assert sorted(clean_workspace_leftovers(ws)) == sorted(left)
    assert docs_tmp.exists() and all(s.is_dir() for s in spots)
