"""A full disk (issue 21, item 11): one line naming the disk, the run failed with that reason, nothing half
written, the index readable.

The disk is a real one: a small ``tmpfs`` mounted for the test (``mount -t tmpfs -o size=...``), filled up
the way a disk fills up, so every writer (Python's files, safetensors' and polars' native code, DuckDB's
write-ahead log) meets the kernel's own ``ENOSPC``. Mounting needs root (or ``CAP_SYS_ADMIN``); where the
tests cannot mount they are skipped, as nothing short of a real file system makes the native writers fail as
they do on a full disk (``RLIMIT_FSIZE`` gives ``EFBIG``, and patching Python's ``open`` never reaches them).
The recognising of the error itself (:func:`unirex.fsutil.disk_full_errno`) is tested without a mount.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from cli import main as cli_main
from unirex.errors import DiskFullError, UnirexError
from unirex.evaluate import EvalResult, load_outputs, save_outputs
from unirex.fsutil import append_whole, disk_full_errno, disk_full_error, parse_tmp_name
from unirex.runs import RunDir, list_runs

REPO = Path(__file__).resolve().parents[1]
ENOSPC_LINE = "no space left on device (ENOSPC) writing "


# ------------------------------------------------------------------------------------- the disk
class SmallDisk:
    """A tmpfs of ``size`` bytes mounted at ``path``; :meth:`fill` takes every free byte, :meth:`free` gives
    them back."""

    def __init__(self, path: Path, size: int):
        self.path, self.size = path, size
        self.filler = path / "filler"

    def fill(self, leave: int = 0) -> None:
        """Write a file until the disk is full (``leave`` bytes of it given back), as another process might."""
        with open(self.filler, "ab", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError as e:
                assert e.errno == errno.ENOSPC
        if leave:
            with open(self.filler, "r+b") as f:
                f.truncate(max(self.filler.stat().st_size - leave, 0))

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)


def _mount(path: Path, size: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True,
                       text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {r.stderr.strip()[:120]}")


@pytest.fixture
def small_disk(tmp_path):
    """``small_disk(size)``: a fresh tmpfs of ``size`` bytes (unmounted after the test)."""
    mounted: list[Path] = []

    def make(size: int, name: str = "disk") -> SmallDisk:
        path = tmp_path / name
        _mount(path, size)
        mounted.append(path)
        return SmallDisk(path, size)

    yield make
    for p in mounted:
        subprocess.run(["umount", "-l", str(p)], capture_output=True)


def _leftovers(folder: Path) -> list[Path]:
    """Temporary entries (a write's hidden beginnings) anywhere under ``folder``."""
    return [p for p in folder.rglob("*") if parse_tmp_name(p.name)]


def _one_line(msg: str) -> None:
    assert "\n" not in msg and "Traceback" not in msg and msg.startswith(ENOSPC_LINE), msg


# -------------------------------------------------------------------------- recognising it (no mount)
class _NativeError(Exception):
    """Stands for a native writer's own error type, which says ENOSPC in its message only."""


@pytest.mark.parametrize("exc, code", [
    (OSError(errno.ENOSPC, "No space left on device"), errno.ENOSPC),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), errno.EDQUOT),
    (_NativeError("Error while serializing: I/O error: No space left on device (os error 28)"), errno.ENOSPC),
    (_NativeError('Failed to commit: Could not write file "x.duckdb.wal": No space left on device'), errno.ENOSPC),
    (OSError(errno.EACCES, "Permission denied"), None),
    (ValueError("no such metric"), None),
])
def test_a_full_disk_is_recognised_by_errno_or_by_a_native_writers_message(exc, code):
    assert disk_full_errno(exc) == code


def test_a_full_disk_raised_from_another_error_is_recognised_and_named(tmp_path):
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("saving failed") from inner
    except RuntimeError as e:
        err = disk_full_error(e, tmp_path / "x" / "file.bin", "the checkpoint")
    assert isinstance(err, DiskFullError) and isinstance(err, UnirexError)
    _one_line(str(err))
    assert f"the checkpoint in {tmp_path}" in str(err) and "file system" in str(err)
    assert disk_full_error(ValueError("x"), tmp_path, "y") is None


# ------------------------------------------------------------------------------------ a real full disk
def test_a_checkpoint_that_does_not_fit_fails_the_run_with_one_line_and_leaves_no_part(small_disk, common):
    """The tiny BERT's checkpoint (about 4.6 MiB) on a 3 MiB disk: the run folder fits, the checkpoint does
    not. The run reads failed with the one line, no part of the checkpoint stays, the index lists it."""
    from unirex.engine import resolve_run_config, run
    from workbench import Workbench

    disk = small_disk(3 * 2**20)
    ws = disk.path / "ws"
    cfg = resolve_run_config([*common, f"workspace={ws}", "training.epochs=1", "save_checkpoint=True"])
    with pytest.raises(DiskFullError) as ei:
        run(cfg)
    msg = str(ei.value)
    _one_line(msg)
    assert "the checkpoint" in msg and str(disk.path) in msg and "tmpfs" in msg
    (rd,) = list_runs(ws / "runs")
    assert rd.status()["status"] == "failed" and rd.status()["error"] == msg
    assert not rd.checkpoint_dir.exists() and not rd.has_checkpoint()
    assert _leftovers(ws) == []
    assert all(isinstance(m["value"], float) for m in rd.metrics())  # every line whole
    assert "SafetensorError" in rd.error_path.read_text()  # the traceback keeps the native writer's words
    wb = Workbench(ws)
    assert wb.refresh_index() is None
    df = wb.runs_frame()
    assert df["run_id"].to_list() == [rd.run_id] and df["status"].to_list() == ["failed"]


def test_a_full_disk_before_the_run_folder_leaves_no_run_folder(small_disk, common):
    from unirex.engine import resolve_run_config, run

    disk = small_disk(1 * 2**20)
    ws = disk.path / "ws"
    (ws / "runs").mkdir(parents=True)
    disk.fill()
    cfg = resolve_run_config([*common, f"workspace={ws}", "training.epochs=1"])
    with pytest.raises(DiskFullError) as ei:
        run(cfg)
    _one_line(str(ei.value))
    assert "the run folder R-" in str(ei.value) and f"{ws / 'runs'} " in str(ei.value)
    assert list((ws / "runs").iterdir()) == []  # no empty run folder, no hidden beginnings of one


def test_a_full_disk_mid_run_marks_the_run_failed_with_the_reason(small_disk, common):
    """The disk fills up (another process, say) while the run trains: the next write of the run fails, the
    run reads failed with the one line; as long as the disk stays full only what fits is written."""
    from unirex.engine import resolve_run_config, run
    from unirex.events import EvalStartEvent

    disk = small_disk(2 * 2**20)
    ws = disk.path / "ws"

    def fill_at_final_eval(ev):
        if isinstance(ev, EvalStartEvent) and ev.epoch is None:
            disk.fill()

    cfg = resolve_run_config([*common, f"workspace={ws}", "training.epochs=1"])
    with pytest.raises(DiskFullError) as ei:
        run(cfg, callback=fill_at_final_eval)
    _one_line(str(ei.value))
    (rd,) = list_runs(ws / "runs")
    # the disk is still full: the status could not be rewritten (its temporary file needs a page), so it still
    # reads running, and interrupted once this process is gone; never half written
    st = rd.status()
    assert st["status"] in ("failed", "running") and _leftovers(ws) == []
    assert st.get("error") in (None, str(ei.value))
    assert not rd.eval_outputs_paths("test")[0].exists()  # the split evaluated once the disk was full
    for parquet in rd.outputs_dir.glob("*.parquet"):  # what was written before: whole, with its description
        assert pl.read_parquet(parquet).height > 0 and parquet.with_suffix(".json").is_file()
    disk.free()
    assert all(isinstance(m["value"], float) for m in rd.metrics())
    for line in rd.events_path.read_text().splitlines():
        json.loads(line)  # every event whole


def test_evaluation_outputs_are_whole_or_absent_on_a_full_disk(small_disk, trained):
    """``save_outputs`` of a real evaluation into a run folder on a full disk: one line, no parquet of it
    (no half of one, no table without its description), and the earlier pair stays as it was."""
    _, res = trained
    outputs, meta = load_outputs(res.run_dir, "test")
    result = EvalResult(metrics=meta["metrics"], outputs=outputs, stats=meta["stats"])
    disk = small_disk(2**20)
    run_dir = disk.path / "R-x"
    save_outputs(run_dir, "dev", result)  # an earlier evaluation's pair
    before = {p.name: p.read_bytes() for p in (run_dir / "outputs").iterdir()}
    disk.fill()
    with pytest.raises(DiskFullError) as ei:
        save_outputs(run_dir, "test", result)
    _one_line(str(ei.value))
    assert "the test evaluation outputs" in str(ei.value)
    assert {p.name: p.read_bytes() for p in (run_dir / "outputs").iterdir()} == before
    disk.free()
    assert pl.read_parquet(run_dir / "outputs" / "eval_dev.parquet").height == len(outputs.index)


TRAINED_OVERRIDES = ("debug=True", "save_checkpoint=False")


def test_an_append_cut_short_by_a_full_disk_is_undone(small_disk):
    disk = small_disk(64 * 1024)
    rd = RunDir(disk.path / "R-x")
    rd.path.mkdir()
    rd.log_metrics({"loss": 1.0}, "train", 0, 1)
    before = rd.metrics_path.read_bytes()
    disk.fill(leave=4096)  # room for part of the next write only
    with pytest.raises(DiskFullError) as ei:
        rd.log_metrics({f"m{i}": float(i) for i in range(2000)}, "train", 0, 2)
    _one_line(str(ei.value))
    assert "the run's metrics" in str(ei.value)
    assert rd.metrics_path.read_bytes() == before  # not a partial line for the next append to run on from
    with pytest.raises(OSError) as ei2:
        append_whole(rd.events_path, "x" * 200_000)
    assert ei2.value.errno == errno.ENOSPC and rd.events_path.read_bytes() == b""


def _run_folder(ws: Path, i: int) -> RunDir:
    rd = RunDir.create(ws / "runs", {"seed": i}, {"method": "task_lm", "dataset": "demo", "seed": i},
                       run_id=f"R-20260101-000000-{i:06x}")
    rd.log_metrics({f"m{k}": float(k) for k in range(50)}, "test")
    rd.set_status("completed")
    return rd


def test_an_index_write_on_a_full_disk_is_one_line_and_the_index_stays_readable(small_disk, capsys):
    from workbench import Workbench

    disk = small_disk(4 * 2**20)
    ws = disk.path / "ws"
    first = _run_folder(ws, 1)
    wb = Workbench(ws)
    assert wb.refresh_index() is None
    later = [_run_folder(ws, i) for i in range(2, 40)]
    disk.fill()
    warning = wb.refresh_index()  # DuckDB cannot log the new rows: nothing is committed
    assert warning is not None and "\n" not in warning and ENOSPC_LINE in warning and "unirex.duckdb" in warning
    assert wb.runs_frame()["run_id"].to_list() == [first.run_id]  # what the index held, read as before
    capsys.readouterr()
    assert cli_main(["runs", "--workspace", str(ws)]) == 0
    out, err = capsys.readouterr()
    assert first.run_id in out and err.count("\n") == 1 and err.startswith("warning: ") and ENOSPC_LINE in err
    disk.free()
    assert wb.refresh_index() is None
    assert len(wb.runs_frame()) == 1 + len(later)


def _cli(ws: Path, tiny_overrides, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "unirex", *tiny_overrides, "data=demo", f"workspace={ws}",
                           "training.epochs=1", "--no-progress", *extra], capture_output=True, text=True, env=env,
                          timeout=600)


def test_the_cli_on_a_full_disk_prints_one_line_and_exits_1(small_disk, tiny_overrides):
    disk = small_disk(3 * 2**20)
    ws = disk.path / "ws"
    r = _cli(ws, tiny_overrides, "save_checkpoint=True")  # the checkpoint does not fit
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert lines[-1].startswith(f"error: {ENOSPC_LINE}the checkpoint"), r.stderr[-2000:]
    assert sum(ENOSPC_LINE in ln for ln in lines) == 1
    (rd,) = list_runs(ws / "runs")
    assert rd.status()["status"] == "failed" and not rd.checkpoint_dir.exists()
    disk.fill()
    r = _cli(ws, tiny_overrides)  # not even a run folder fits
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1].startswith(f"error: {ENOSPC_LINE}the run folder ")
    assert [p.name for p in (ws / "runs").iterdir()] == [rd.run_id]


def test_a_job_on_a_full_disk_fails_with_the_line_and_the_worker_goes_on(small_disk, common, wait_until):
    from workbench import Workbench

    disk = small_disk(3 * 2**20)
    wb = Workbench(disk.path / "ws", start_worker=True)
    try:
        full = wb.submit(common + ["debug=True", "save_checkpoint=True"])[0]  # its checkpoint does not fit
        fits = wb.submit(common + ["debug=True", "seed=1"])[0]
        wait_until(lambda: wb.job(fits.job_id).status in ("completed", "failed"), what="the second job")
        job = wb.job(full.job_id)
        assert job.status == "failed" and job.error.startswith(f"{ENOSPC_LINE}the checkpoint"), job.error
        assert wb.job(fits.job_id).status == "completed"
        assert wb.refresh_index() is None
        assert dict(zip(*wb.runs_frame()[["run_id", "status"]].to_dict(as_series=False).values())) == {
            full.run_id: "failed", fits.run_id: "completed"}
    finally:
        wb.stop_worker()


def test_an_empty_run_folder_left_by_an_older_version_is_removed_at_the_next_start(tmp_path):
    """Before this fix a run that failed to fill its folder left the claimed folder empty; the next start removes
    such a folder once it is older than a claim in progress can be, and keeps a fresh one and any with files."""
    from unirex.fsutil import LEFTOVER_MAX_AGE_S, clean_workspace_leftovers

    runs = tmp_path / "runs"
    old, fresh, kept = runs / "R-old", runs / "R-fresh", runs / "R-kept"
    for p in (old, fresh, kept):
        p.mkdir(parents=True)
    (kept / "logs").mkdir()
    past = os.stat(old).st_mtime - LEFTOVER_MAX_AGE_S - 60
    for p in (old, kept):
        os.utime(p, (past, past))
    assert old in clean_workspace_leftovers(tmp_path)
    assert not old.exists() and fresh.is_dir() and kept.is_dir()
