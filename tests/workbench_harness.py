"""A sandbox for driving the real command line as separate processes (kill and concurrency tests).

Everything a process may write lives under one root: the workspace ``ws/``, the data folder ``data/``
(a small demo dataset), and ``cwd/``, ``home/``, ``tmp/`` given as its working directory, ``$HOME`` and
``$TMPDIR`` (``$MPLCONFIGDIR`` too: captum imports matplotlib, which otherwise writes its font cache to
``~/.cache``). :meth:`Sandbox.check` asserts the invariants a killed or concurrent writer must keep.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import polars as pl

from unirex.fsutil import parse_tmp_name
from unirex.runs import list_runs

REPO = Path(__file__).resolve().parents[1]
DEMO_FILES = ("train.jsonl", "val.jsonl", "test.jsonl", "demo.json", "docs")


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _holds(marker: Callable[[], bool]) -> bool:
    try:
        return bool(marker())
    except OSError:  # a folder it looked at went away meanwhile (renamed into place, cleaned up)
        return False


def _without_tmp(files: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in files.items() if not any(parse_tmp_name(part) for part in Path(k).parts)}


@dataclass
class Kill:
    phase: str
    killed: bool  # False: the process ended before the kill came
    after_s: float  # seconds from the process start to the kill (or to its end)
    marker_s: float  # seconds from the process start to the marker
    new_runs: list[str] = field(default_factory=list)


class Sandbox:
    def __init__(self, root: Path, arch: str, demo_source: Path, max_length: int = 64):
        self.root, self.arch, self.max_length = Path(root), arch, max_length
        self.ws, self.data = self.root / "ws", self.root / "data"
        self.cwd, self.home, self.tmp = self.root / "cwd", self.root / "home", self.root / "tmp"
        for d in (self.ws, self.data, self.cwd, self.home, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        (self.data / "demo").mkdir()
        for name in DEMO_FILES:  # the ERASER files only, not caches other tests built beside them
            src = Path(demo_source) / name
            (shutil.copytree if src.is_dir() else shutil.copy)(src, self.data / "demo" / name)
        self.demo_source = tree_bytes(self.data / "demo")
        self.env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(self.home), "TMPDIR": str(self.tmp),
                    "MPLCONFIGDIR": str(self.tmp / "mpl"), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                    "UNIREX_WORKSPACE": str(self.ws), "OMP_NUM_THREADS": "1"}
        self.log: list[Kill] = []

    # --- commands -----------------------------------------------------------------------------------
    def cli(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "unirex", *args]

    def train(self, *extra: str, epochs: int = 2, seed: int = 0) -> list[str]:
        return self.cli(f"data=demo", f"arch={self.arch}", f"data.max_length={self.max_length}",
                        f"training.epochs={epochs}", "setup.train_batch_size=8", "setup.eval_batch_size=16",
                        "save_checkpoint=True", f"workspace={self.ws}", f"data_dir={self.data}", f"seed={seed}",
                        "--no-progress", *extra)

    def evaluate(self, run_id: str) -> list[str]:
        return self.cli("training=evaluate", f"training.ckpt_path={run_id}", "training.eval_splits='dev,test'",
                        f"workspace={self.ws}", f"data_dir={self.data}", f"data.max_length={self.max_length}",
                        "--no-progress")

    def build(self) -> list[str]:
        return self.cli("build-dataset", "--data_dir", str(self.data), "--dataset", "demo", "--arch", self.arch,
                        "--max_length", str(self.max_length), "--split", "all", "--force")

    def store(self, action: str) -> list[str]:
        return self.cli("--workspace", str(self.ws), "store", action)

    def popen(self, argv: list[str], **kw) -> subprocess.Popen:
        return subprocess.Popen(argv, cwd=self.cwd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, **kw)

    def run(self, argv: list[str], timeout: float = 900) -> subprocess.CompletedProcess:
        proc = subprocess.run(argv, cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, f"{' '.join(argv[3:])} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
        return proc

    # --- state --------------------------------------------------------------------------------------
    def run_ids(self) -> set[str]:
        return {rd.run_id for rd in list_runs(self.ws / "runs")}

    def new_run_dirs(self, before: set[str]) -> list[Path]:
        """Run folders made since ``before`` (temporary ones, still being filled, left out)."""
        root = self.ws / "runs"
        return [p for p in root.iterdir() if p.is_dir() and p.name not in before and not p.name.startswith(".")] \
            if root.is_dir() else []

    def finished_runs(self) -> dict[str, dict[str, bytes]]:
        """Every file of the runs no process writes any more (completed or interrupted), except the temporary
        entries a killed writer left, which the next start may clean up."""
        return {rd.run_id: _without_tmp(tree_bytes(rd.path)) for rd in list_runs(self.ws / "runs")
                if rd.effective_status() != "running"}

    def build_dir(self) -> Path:
        from unirex.arch import arch_slug

        return self.data / "demo" / arch_slug(self.arch) / f"L{self.max_length}"

    # --- killing ------------------------------------------------------------------------------------
    def kill_at(self, phase: str, argv: list[str], delay_s: float,
                marker: Callable[[], bool] | None = None, timeout: float = 900) -> Kill:
        """Start ``argv``; once ``marker()`` holds (at once without one), wait ``delay_s`` and SIGKILL it."""
        before = {p.name for p in (self.ws / "runs").iterdir()} if (self.ws / "runs").is_dir() else set()
        t0 = time.monotonic()
        proc = self.popen(argv)
        try:
            while marker is not None and not _holds(marker) and proc.poll() is None:
                if time.monotonic() - t0 > timeout:
                    raise AssertionError(f"{phase}: marker never seen")
                time.sleep(0.005)
            marker_s = time.monotonic() - t0
            if delay_s:
                deadline = time.monotonic() + delay_s
                while proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.005)
            killed = proc.poll() is None
            if killed:
                os.kill(proc.pid, signal.SIGKILL)
            after = time.monotonic() - t0
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if not killed:
            assert proc.returncode == 0, f"{phase} ended by itself with {proc.returncode}:\n{err[-2000:]}"
        k = Kill(phase, killed, after, marker_s, sorted(p.name for p in self.new_run_dirs(before)))
        self.log.append(k)
        return k

    # --- invariants ---------------------------------------------------------------------------------
    def check(self, finished_before: dict[str, dict[str, bytes]], kill: Kill | None = None) -> None:
        """What must hold after any kill (or at the end of concurrent writing)."""
        # run folders readable; a dead process's run reads "interrupted"; finished runs byte-identical
        for rd in list_runs(self.ws / "runs"):
            rd.meta(), rd.config(), rd.metrics()
            st = rd.effective_status()
            assert st in ("completed", "interrupted"), (rd.run_id, st, rd.status())
            if kill is not None and kill.killed and rd.run_id in kill.new_runs:
                # the killed process's run: interrupted, unless it had written its end already
                assert st == "interrupted" or rd.status()["status"] == "completed", (rd.run_id, st)
            ck = rd.checkpoint_dir
            if ck.exists():  # a checkpoint is complete or absent, never half
                assert {p.name for p in ck.iterdir()} >= {"task_lm", "extractor.safetensors", "config.json",
                                                         "checkpoint.json"}, sorted(p.name for p in ck.iterdir())
                json.loads((ck / "checkpoint.json").read_text())
        for run_id, files in finished_before.items():
            now = _without_tmp(tree_bytes(self.ws / "runs" / run_id))
            changed = sorted(set(now) ^ set(files) | {k for k in now.keys() & files.keys() if now[k] != files[k]})
            assert not changed, f"finished run {run_id} changed: {changed[:5]}"
        # the dataset's own files untouched; each built split the old or the new complete version
        assert {k: v for k, v in tree_bytes(self.data / "demo").items() if k in self.demo_source} == self.demo_source
        bd = self.build_dir()
        if bd.is_dir():
            for summary_path in bd.glob("*.json"):
                if summary_path.name == "labels.json":
                    assert json.loads(summary_path.read_text())
                    continue
                summary = json.loads(summary_path.read_text())
                parquet = summary_path.with_suffix(".parquet")
                assert pl.read_parquet_metadata(parquet).get("unirex_fingerprint") == summary["fingerprint"]
                assert pl.read_parquet(parquet).height == summary["count"]
        # the store, if there is one, opens and answers
        if (self.ws / "unirex.duckdb").exists():
            from store import index_counts

            index_counts(self.ws)
        # nothing written outside the sandbox's folders
        assert sorted(p.name for p in self.root.iterdir()) == ["cwd", "data", "home", "tmp", "ws"]
        assert list(self.cwd.iterdir()) == [] and list(self.home.iterdir()) == []

    def leftovers(self) -> list[str]:
        """Temporary entries (``.<name>-tmp-...``) anywhere in the workspace and data folder."""
        found = []
        for base in (self.ws, self.data):
            for p in base.rglob(".*"):
                if parse_tmp_name(p.name) is not None:
                    found.append(str(p.relative_to(self.root)))
        return sorted(found)
