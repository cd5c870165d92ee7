"""Run directories: the source of truth for every run (DESIGN.md, "A run directory is the source of truth").

``<workspace>/runs/<run_id>/`` holds:

=================  ==========================================================================
``config.json``    the resolved config (the paper's dotted keys, nested)
``meta.json``      run id, method, dataset, arch, seed, parent run, mode, host, created time
``status.json``    status (running / completed / failed / cancelled), pid, host, start/end,
                   heartbeat, error message; rewritten atomically
``metrics.jsonl``  append-only: one ``{"time", "split", "epoch", "step", "name", "value"}`` per line
``checkpoint/``    the best checkpoint (safetensors; see :mod:`unirex.checkpoint`)
``outputs/``       saved attributions and evaluation outputs (Parquet)
=================  ==========================================================================

A run whose process died is seen as ``interrupted``: its status says ``running`` but its process is gone
(same host) or its heartbeat is older than :data:`STALE_AFTER_S`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from unirex.errors import UnirexError
from unirex.fsutil import default_dir_mode, tmp_prefix, write_json_atomic

STALE_AFTER_S = 600.0
TERMINAL = ("completed", "failed", "cancelled")


def _now() -> float:
    return time.time()


def read_json(path: Path, default=None):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return default
    except json.JSONDecodeError as e:
        raise UnirexError(f"{path}: not valid JSON ({e.msg})") from None


def new_run_id(prefix: str = "R") -> str:
    """Sortable by creation time and unique across processes: ``R-20261125-143211-7f3a9c``."""
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class RunDir:
    path: Path

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoint"

    @property
    def outputs_dir(self) -> Path:
        return self.path / "outputs"

    # --- creation ---------------------------------------------------------------------------------
    @classmethod
    def create(cls, runs_root: Path, config: dict, meta: dict, run_id: str | None = None) -> "RunDir":
        runs_root = Path(runs_root)
        runs_root.mkdir(parents=True, exist_ok=True)
        run_id = run_id or new_run_id()
        path = runs_root / run_id
        path.mkdir(exist_ok=False)  # claims the id; empty until the whole folder is renamed onto it
        # filled beside it and renamed in one step: a process killed meanwhile leaves no run folder without
        # its status (a hidden temporary folder instead, removed by fsutil.clean_leftovers)
        tmp = Path(tempfile.mkdtemp(prefix=tmp_prefix(run_id), dir=runs_root))
        try:
            write_json_atomic(tmp / "config.json", config)
            write_json_atomic(tmp / "meta.json", {"run_id": run_id, "created_at": _now(), "host": socket.gethostname(), **meta})
            (tmp / "metrics.jsonl").touch()
            cls(tmp).set_status("running", started_at=_now())
            os.chmod(tmp, default_dir_mode())  # as mkdir would have made it (mkdtemp makes 0o700)
            os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return cls(path)

    @classmethod
    def open(cls, runs_root: Path, run: str) -> "RunDir":
        """A run by id (under ``runs_root``) or by path."""
        p = Path(run)
        if not (p / "meta.json").is_file():
            p = Path(runs_root) / run
        if not (p / "meta.json").is_file():
            raise UnirexError(f"no run '{run}' (looked for {p}/meta.json)")
        return cls(p)

    # --- status -----------------------------------------------------------------------------------
    def status(self) -> dict:
        return read_json(self.path / "status.json", default={"status": "unknown"})

    def set_status(self, status: str, **fields) -> None:
        current = read_json(self.path / "status.json", default={}) or {}
        current.update(fields)
        current.update(status=status, pid=os.getpid(), host=socket.gethostname(), heartbeat_at=_now())
        if status in TERMINAL:
            current.setdefault("ended_at", _now())
        write_json_atomic(self.path / "status.json", current)

    def heartbeat(self) -> None:
        s = self.status()
        if s.get("status") == "running":
            s["heartbeat_at"] = _now()
            write_json_atomic(self.path / "status.json", s)

    def effective_status(self, now: float | None = None) -> str:
        """The stored status, except that a ``running`` run whose process is gone reads ``interrupted``."""
        s = self.status()
        st = s.get("status", "unknown")
        if st != "running":
            return st
        now = now or _now()
        if s.get("host") == socket.gethostname() and s.get("pid") and not pid_alive(int(s["pid"])):
            return "interrupted"
        if now - float(s.get("heartbeat_at", 0)) > STALE_AFTER_S:
            return "interrupted"
        return "running"

    # --- metrics log ------------------------------------------------------------------------------
    def log_metrics(self, metrics: dict[str, float], split: str, epoch: int | None = None, step: int | None = None) -> None:
        """Append one line per metric; a single write per call so concurrent readers see whole lines."""
        t = _now()
        lines = "".join(
            json.dumps({"time": t, "split": split, "epoch": epoch, "step": step, "name": k, "value": float(v)}) + "\n"
            for k, v in metrics.items() if v is not None
        )
        with open(self.path / "metrics.jsonl", "a") as f:
            f.write(lines)

    def metrics(self) -> list[dict]:
        out = []
        p = self.path / "metrics.jsonl"
        if not p.is_file():
            return out
        for line in p.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a crash mid-write: skip it, keep the rest
                continue
        return out

    def config(self) -> dict:
        return read_json(self.path / "config.json", default={})

    def meta(self) -> dict:
        return read_json(self.path / "meta.json", default={})


def list_runs(runs_root: Path) -> list[RunDir]:
    root = Path(runs_root)
    if not root.is_dir():
        return []
    return [RunDir(p) for p in sorted(root.iterdir()) if (p / "meta.json").is_file()]
