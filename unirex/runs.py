"""Run directories: the source of truth for every run, and the one owner of their layout.

``<workspace>/runs/<run_id>/`` holds (every path comes from a :class:`RunDir` property; no other module
spells these names):

=================  ==========================================================================
``config.json``    the resolved config (the paper's dotted keys, nested)
``meta.json``      run id, method, dataset, arch, seed, parent run, mode (the run's kind: train, evaluate,
                   finetune), ``debug`` (a debug run, :func:`debug_of`), ``tags`` (free-form names,
                   :func:`parse_tags`; editable), host, created time, and the command line that reproduces
                   the run (``command``: ``python -m unirex ...``)
``status.json``    status (:class:`RunStatus`: running / completed / failed / cancelled / interrupted), pid, host, start/end,
                   heartbeat, error message, final metrics; rewritten atomically
``metrics.jsonl``  append-only: one ``{"time", "split", "epoch", "step", "name", "value"}`` per line
``events.jsonl``   append-only progress: one engine event per line (step with loss components and ETA,
                   eval_start, eval_progress, eval, checkpoint, log, done: :mod:`unirex.events`, whose
                   ``event_from_dict`` reads a line back), so any process can follow a run
``error.txt``      the traceback of a failed run
``checkpoint/``    the best checkpoint (safetensors; its inside belongs to :mod:`unirex.checkpoint`)
``outputs/``       ``eval_<split>.parquet`` + ``.json`` (evaluation outputs, :mod:`unirex.evaluate`) and
                   ``attrs_<split>.parquet`` (saved attributions for FRESH / L2E teachers)
``logs/``          stdout/stderr of cluster launchers (Slurm, Ray), when one ran the job
=================  ==========================================================================

A run whose process died is seen as ``interrupted``: its status says ``running`` but its process is gone
(same host) or its heartbeat is older than :data:`STALE_AFTER_S`.
"""

from __future__ import annotations

import enum
import json
import math
import os
import re
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from unirex.errors import DiskFullError, UnirexError, scrub_secrets
from unirex.fsutil import (append_whole, atomic_write, default_dir_mode, disk_full_error, file_lock, pid_alive,
                           reporting_disk_full, tmp_prefix, write_json_atomic)

STALE_AFTER_S = 600.0


class RunStatus(enum.StrEnum):
    """Where a run (and the job that makes it) stands. Str-valued: ``RunStatus.COMPLETED == "completed"``, and
    ``status.json``, the store and JSON output hold the same strings as before the enum."""

    WAITING = "waiting"  # a queued job whose run has not started (no run folder yet)
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # its process died, its worker was lost or its cluster job ended unfinished
    UNKNOWN = "unknown"  # a folder without a status file
    CORRUPT = "corrupt"  # a status.json or meta.json that cannot be read, or a run folder that is a link

    @property
    def final(self) -> bool:
        """The run will not change any more (an interrupted run is resumed as a new run, never in place)."""
        return self in TERMINAL


#: the splits a final evaluation reports, in order
FINAL_SPLITS = ("train", "dev", "test")


def flat_metrics(final: dict[str, dict[str, float]]) -> dict[str, float]:
    """``{split: {metric: value}}`` as ``{"<split>_<metric>": value}`` (the engine's ``RunResult.metrics``)."""
    return {f"{split}_{name}": value for split, values in final.items() for name, value in values.items()}


#: the final states, for runs and jobs alike: ``interrupted`` is one (every writer of it also stamps
#: ``ended_at``, the queue's ``finish`` accepts it, and a resume makes a new run)
TERMINAL = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.INTERRUPTED)


def _now() -> float:
    return time.time()


def read_json(path: Path, default=None):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return default
    except json.JSONDecodeError as e:
        raise UnirexError(f"{path}: not valid JSON ({e.msg})") from None


class CorruptRun(UnirexError):
    """A run folder whose ``status.json`` or ``meta.json`` cannot be read as a run's record (not UTF-8, not JSON,
    not an object, a number no index column holds), or that is a link to elsewhere. The message is one line
    naming the file; ``reason`` is that line without the run's id."""

    def __init__(self, run_id: str, reason: str):
        super().__init__(f"run {run_id} is corrupt: {reason}")
        self.run_id, self.reason = run_id, reason


#: the largest magnitude a number of status.json / meta.json may have (times, pid, epoch: far below it;
#: a bigger one cannot be held by the index's columns)
_MAX_NUMBER = 2.0 ** 53
#: the fields of the records that the index and the app read, by the type they must have (or be null)
_NUMBER_FIELDS = ("created_at", "started_at", "ended_at", "heartbeat_at", "pid", "epoch")
_INT32_FIELDS = ("seed",)  # an INTEGER column of the index
_TEXT_FIELDS = ("run_id", "status", "method", "dataset", "arch", "mode", "parent_run", "command", "launcher",
                "error", "host")
_BOOL_FIELDS = ("debug",)  # a BOOLEAN column of the index
_TAGS_FIELD = "tags"  # a list of text (a VARCHAR[] column of the index)

#: a run's tags: at most MAX_TAGS, each at most TAG_MAX_CHARS letters, digits or ``_ . : + @ / -``, starting
#: with a letter or digit (so a tag is one short name: no spaces, commas or control characters)
MAX_TAGS = 16
TAG_MAX_CHARS = 32
_TAG = re.compile(r"[^\W_][\w.:+@/-]*")


def parse_tags(value) -> tuple[str, ...]:
    """A run's tags from ``a,b`` (the launch key ``tags=a,b``, the CLI, the app's tag box) or a list of names:
    each stripped, empties and repeats dropped, in order. :class:`UnirexError` (one line) for a tag that is
    not a short printable name, or too many."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise UnirexError(f"tags: expected names separated by commas, got {type(value).__name__}")
    out: list[str] = []
    for item in items:
        tag = str(item).strip() if isinstance(item, (str, int)) and not isinstance(item, bool) else None
        if tag is None:
            raise UnirexError(f"tags: {str(item)[:40]!r} is not a name")
        if not tag:
            continue
        if len(tag) > TAG_MAX_CHARS or not _TAG.fullmatch(tag):
            raise UnirexError(f"tag {tag[:40]!r} refused: a tag is 1-{TAG_MAX_CHARS} letters, digits or _ . : + @ / - "
                              "starting with a letter or digit")
        if tag not in out:
            out.append(tag)
    if len(out) > MAX_TAGS:
        raise UnirexError(f"tags: {len(out)} given, at most {MAX_TAGS}")
    return tuple(out)


def _check_record(data, name: str) -> str | None:
    """Why ``data`` (a parsed ``status.json`` / ``meta.json``) is not a run's record, or None."""
    if not isinstance(data, dict):
        return f"{name} holds {type(data).__name__ if data is not None else 'null'}, not an object"
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if (isinstance(value, float) and not math.isfinite(value)) or abs(value) > _MAX_NUMBER:
            return f"{name}: '{str(key)[:40]}' is out of range"
    for key in _NUMBER_FIELDS:
        if data.get(key) is not None and (isinstance(data[key], bool) or not isinstance(data[key], (int, float))):
            return f"{name}: '{key}' is not a number"
    for key in _INT32_FIELDS:
        v = data.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not -2**31 <= v < 2**31):
            return f"{name}: '{key}' is not a whole number of 32 bits"
    for key in _TEXT_FIELDS:
        if data.get(key) is not None and not isinstance(data[key], str):
            return f"{name}: '{key}' is not text"
    for key in _BOOL_FIELDS:
        if data.get(key) is not None and not isinstance(data[key], bool):
            return f"{name}: '{key}' is not true or false"
    tags = data.get(_TAGS_FIELD)
    if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
        return f"{name}: '{_TAGS_FIELD}' is not a list of text"
    st = data.get("status") if name == RunDir.STATUS else None
    if st is not None and st not in RunStatus.__members__.values():
        return f"{name}: unknown status {str(st)[:40]!r}"
    return None


#: why a linked run folder is refused
LINKED_RUN = ("the run folder is a link to elsewhere: refused (run folders are real folders of the workspace; "
              "links are not followed)")


def refuse_linked_run(runs_root: Path, run_id: str) -> None:
    """:class:`CorruptRun` (one line) when ``runs_root/run_id`` is a link: run folders are real folders of the
    workspace, as dataset folders are; a link out of it is never followed (listed, explained, shown or pushed)."""
    if (Path(runs_root) / run_id).is_symlink():
        raise CorruptRun(run_id, LINKED_RUN)


def new_run_id(prefix: str = "R") -> str:
    """Sortable by creation time and unique across processes: ``R-20261125-143211-7f3a9c``."""
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


@dataclass
class RunDir:
    path: Path

    CONFIG = "config.json"
    META = "meta.json"
    META_LOCK = ".meta.lock"  # held while meta.json is read, changed and written back (RunDir.change_meta)
    STATUS = "status.json"
    METRICS = "metrics.jsonl"
    EVENTS = "events.jsonl"
    ERROR = "error.txt"
    CHECKPOINT = "checkpoint"
    OUTPUTS = "outputs"
    LOGS = "logs"

    def __post_init__(self):
        self.path = Path(self.path)

    # --- layout -----------------------------------------------------------------------------------
    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / self.CONFIG

    @property
    def meta_path(self) -> Path:
        return self.path / self.META

    @property
    def status_path(self) -> Path:
        return self.path / self.STATUS

    @property
    def metrics_path(self) -> Path:
        return self.path / self.METRICS

    @property
    def events_path(self) -> Path:
        return self.path / self.EVENTS

    @property
    def error_path(self) -> Path:
        return self.path / self.ERROR

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / self.CHECKPOINT

    @property
    def outputs_dir(self) -> Path:
        return self.path / self.OUTPUTS

    @property
    def logs_dir(self) -> Path:
        return self.path / self.LOGS

    def eval_outputs_paths(self, split: str) -> tuple[Path, Path]:
        """``(outputs/eval_<split>.parquet, outputs/eval_<split>.json)``: what the evaluator saves."""
        return self.outputs_dir / f"eval_{split}.parquet", self.outputs_dir / f"eval_{split}.json"

    def attrs_path(self, split: str) -> Path:
        """``outputs/attrs_<split>.parquet``: saved attributions (FRESH / L2E teachers)."""
        return self.outputs_dir / f"attrs_{split}.parquet"

    def has_checkpoint(self) -> bool:
        return (self.checkpoint_dir / "checkpoint.json").is_file()

    # --- creation ---------------------------------------------------------------------------------
    @classmethod
    def create(cls, runs_root: Path, config: dict, meta: dict, run_id: str | None = None) -> "RunDir":
        runs_root = Path(runs_root)
        run_id = run_id or new_run_id()
        path = runs_root / run_id
        try:
            with reporting_disk_full(f"the run folder {run_id}", runs_root):
                runs_root.mkdir(parents=True, exist_ok=True)
                path.mkdir()  # claims the id; empty until the whole folder is renamed onto it
            premade = False
        except FileExistsError:
            # a cluster launcher may have made logs/ for the job's output before the run started (its open
            # log files follow the folder when it is moved); anything else means the run id is taken
            if any(p.name != cls.LOGS for p in path.iterdir()):
                raise
            premade = True
        # filled beside it and renamed in one step: a process killed meanwhile leaves no run folder without
        # its status (a hidden temporary folder instead, removed by fsutil.clean_leftovers)
        tmp = None
        try:
            tmp = Path(tempfile.mkdtemp(prefix=tmp_prefix(run_id), dir=runs_root))
            write_json_atomic(tmp / "config.json", config)
            write_json_atomic(tmp / "meta.json", {"run_id": run_id, "created_at": _now(), "host": socket.gethostname(), **meta})
            (tmp / "metrics.jsonl").touch()
            cls(tmp).set_status("running", started_at=_now())
            os.chmod(tmp, default_dir_mode())  # as mkdir would have made it (mkdtemp makes 0o700)
            if premade:
                if (path / cls.LOGS).is_dir():
                    os.replace(path / cls.LOGS, tmp / cls.LOGS)
                path.rmdir()
            os.replace(tmp, path)
        except BaseException as e:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            if not premade:  # give the id back: no empty run folder is left behind (a full disk, say)
                try:
                    path.rmdir()
                except OSError:
                    pass
            # named by the run folder, not the hidden one it was being filled in
            cause = e.__cause__ if isinstance(e, DiskFullError) and e.__cause__ is not None else e
            err = disk_full_error(cause, runs_root, f"the run folder {run_id}") if isinstance(cause, Exception) else None
            if err is not None:
                raise err from e
            raise
        return cls(path)

    @classmethod
    def open(cls, runs_root: Path, run: str) -> "RunDir":
        """A run by id (under ``runs_root``) or by path."""
        p = Path(run)
        if not (p / cls.META).is_file():
            p = Path(runs_root) / run
        refuse_linked_run(p.parent, p.name)
        if not (p / cls.META).is_file():
            raise UnirexError(f"no run '{run}' (looked for {p}/{cls.META})")
        return cls(p)

    # --- the run's records --------------------------------------------------------------------------
    def _record(self, name: str, default: dict) -> dict:
        """``status.json`` / ``meta.json`` as a dict, checked; :class:`CorruptRun` (one line) when unreadable."""
        if self.path.is_symlink():
            raise CorruptRun(self.run_id, LINKED_RUN)
        path = self.path / name
        if path.is_symlink():
            raise CorruptRun(self.run_id, f"{name} is a link to elsewhere: not followed")
        try:
            text = path.read_bytes().decode("utf-8")
        except FileNotFoundError:
            return dict(default)
        except UnicodeDecodeError:
            raise CorruptRun(self.run_id, f"{name} is not UTF-8 text") from None
        except OSError as e:
            raise CorruptRun(self.run_id, f"{name} cannot be read ({e.strerror or type(e).__name__})") from None
        if not text.strip():
            raise CorruptRun(self.run_id, f"{name} is empty")
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as e:
            msg = e.msg if isinstance(e, json.JSONDecodeError) else "nested too deep"
            raise CorruptRun(self.run_id, f"{name} is not valid JSON ({msg})") from None
        problem = _check_record(data, name)
        if problem:
            raise CorruptRun(self.run_id, problem)
        return data

    def corrupt_reason(self) -> str | None:
        """Why this run folder cannot be read (one line naming the file), or None when it can."""
        try:
            self.meta()
            self.status()
        except CorruptRun as e:
            return e.reason
        return None

    # --- status -----------------------------------------------------------------------------------
    def status(self) -> dict:
        return self._record(self.STATUS, {"status": RunStatus.UNKNOWN.value})

    def set_status(self, status: str, **fields) -> None:
        current = read_json(self.status_path, default={}) or {}
        current.update(fields)
        if current.get("error"):  # what the app and the CLI show: never a secret of the environment
            current["error"] = scrub_secrets(str(current["error"]))
        current.update(status=str(status), pid=os.getpid(), host=socket.gethostname(), heartbeat_at=_now())
        if status in TERMINAL:
            current.setdefault("ended_at", _now())
        with reporting_disk_full("the run's status", self.path):
            write_json_atomic(self.status_path, current)

    def write_error(self, text: str) -> None:
        """``error.txt`` (a failed run's traceback), written whole or not at all."""
        with reporting_disk_full("the run's error report", self.path):
            atomic_write(self.error_path, lambda tmp: Path(tmp).write_text(text))

    def heartbeat(self) -> None:
        s = self.status()
        if s.get("status") == RunStatus.RUNNING:
            s["heartbeat_at"] = _now()
            with reporting_disk_full("the run's status", self.path):
                write_json_atomic(self.status_path, s)

    def effective_status(self, now: float | None = None) -> str:
        """The stored status, except that a ``running`` run whose process is gone reads ``interrupted``."""
        s = self.status()
        st = s.get("status", RunStatus.UNKNOWN.value)
        if st != RunStatus.RUNNING:
            return st
        now = now or _now()
        if s.get("host") == socket.gethostname() and s.get("pid") and not pid_alive(int(s["pid"])):
            return RunStatus.INTERRUPTED.value
        if now - float(s.get("heartbeat_at", 0)) > STALE_AFTER_S:
            return RunStatus.INTERRUPTED.value
        return RunStatus.RUNNING.value

    # --- metrics log ------------------------------------------------------------------------------
    def log_metrics(self, metrics: dict[str, float], split: str, epoch: int | None = None, step: int | None = None) -> None:
        """Append one line per metric; a single write per call so concurrent readers see whole lines (and a
        write cut short by a full disk is undone)."""
        t = _now()
        lines = "".join(
            json.dumps({"time": t, "split": split, "epoch": epoch, "step": step, "name": k, "value": float(v)}) + "\n"
            for k, v in metrics.items() if v is not None
        )
        with reporting_disk_full("the run's metrics", self.path):
            append_whole(self.metrics_path, lines)

    def metrics(self) -> list[dict]:
        return _read_jsonl(self.metrics_path)

    def final_metrics(self) -> dict[str, dict[str, float]]:
        """``{split: {metric: value}}`` of the final evaluation (splits in train, dev, test order): the
        ``metrics.jsonl`` rows without an epoch (the last value wins when a split was evaluated more than
        once), else ``status.json``'s ``final_metrics``. The one shape of a run's final metrics
        (:func:`flat_metrics` gives the engine's ``<split>_<name>`` keys)."""
        out: dict[str, dict[str, float]] = {}
        for m in self.metrics():
            if m.get("epoch") is None and m.get("split") in FINAL_SPLITS and isinstance(m.get("value"), (int, float)):
                out.setdefault(m["split"], {})[str(m["name"])] = float(m["value"])
        if not out:
            for key, value in (self.status().get("final_metrics") or {}).items():
                split, _, name = str(key).partition("_")
                if split in FINAL_SPLITS and name and isinstance(value, (int, float)):
                    out.setdefault(split, {})[name] = float(value)
        return {s: out[s] for s in FINAL_SPLITS if s in out}

    # --- events -----------------------------------------------------------------------------------
    def append_event(self, event: dict) -> None:
        """Append one progress event (a JSON object) to ``events.jsonl``, stamped with the time."""
        line = json.dumps({"time": _now(), **event}, default=str) + "\n"
        with reporting_disk_full("the run's events", self.path):
            append_whole(self.events_path, line)

    def events(self) -> list[dict]:
        """Every event so far."""
        return _read_jsonl(self.events_path)

    def tail_events(self, offset: int = 0) -> tuple[list[dict], int]:
        """Events written after byte ``offset`` and the offset to pass next time (whole lines only), so a
        follower reads each event once however long the run."""
        try:
            with open(self.events_path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            return [], offset
        end = data.rfind(b"\n") + 1
        out = []
        for line in data[:end].splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out, offset + end

    def config(self) -> dict:
        return read_json(self.config_path, default={})

    def meta(self) -> dict:
        return self._record(self.META, {})

    def change_meta(self, change: Callable[[dict], None]) -> dict:
        """Read ``meta.json``, apply ``change`` to it and write it back (atomically), all under the run's meta
        lock (an ``flock`` on ``.meta.lock`` in the run folder: threads and processes editing the same run take
        turns, so no edit is lost to another's read-modify-write); returns the meta written. An error raised by
        ``change`` writes nothing."""
        if not self.meta_path.is_file():
            raise UnirexError(f"no run '{self.run_id}' (looked for {self.meta_path})")
        with reporting_disk_full("the run's meta.json", self.path), file_lock(self.path / self.META_LOCK):
            meta = self.meta()
            change(meta)
            write_json_atomic(self.meta_path, meta)
        return meta

    def update_meta(self, **fields) -> None:
        self.change_meta(lambda meta: meta.update(fields))

    # --- kind, debug, tags -------------------------------------------------------------------------
    def tags(self) -> tuple[str, ...]:
        """The run's tags (``meta.json``; none for a run recorded before tags existed)."""
        return tuple(self.meta().get(_TAGS_FIELD) or ())

    def set_tags(self, tags) -> tuple[str, ...]:
        """Replace the run's tags (:func:`parse_tags`: ``a,b`` or a list; empty clears them); returns them."""
        parsed = parse_tags(tags)
        self.update_meta(**{_TAGS_FIELD: list(parsed)})
        return parsed

    def edit_tags(self, add=(), remove=()) -> tuple[str, ...]:
        """Add ``add`` to the run's tags and take ``remove`` from them (each :func:`parse_tags`), reading and
        writing under the meta lock (:meth:`change_meta`), so edits made at the same time all land; returns the
        tags. Too many tags in the end: :class:`UnirexError`, nothing written."""
        add, remove = parse_tags(add), set(parse_tags(remove))
        meta = self.change_meta(lambda m: m.update({_TAGS_FIELD: list(parse_tags(
            [*(t for t in (m.get(_TAGS_FIELD) or ()) if t not in remove), *add]))}))
        return tuple(meta[_TAGS_FIELD])


def debug_of(rd: RunDir, meta: dict | None = None) -> bool:
    """Whether ``rd`` is a debug run: ``meta.json``'s ``debug`` (recorded by the engine: the config's ``debug``,
    or an evaluation of a debug run's checkpoint); for a run recorded before that field, its config's
    ``debug`` or, for an evaluation, that of the run whose checkpoint it evaluated (read from that run's folder)."""
    meta = rd.meta() if meta is None else meta
    if isinstance(meta.get("debug"), bool):
        return meta["debug"]
    if _config_debug(rd):
        return True
    parent = meta.get("parent_run")
    if meta.get("mode") == "evaluate" and isinstance(parent, str) and parent and "/" not in parent \
            and not parent.startswith(".") and not (rd.path.parent / parent).is_symlink():
        return _config_debug(RunDir(rd.path.parent / parent))
    return False


def _config_debug(rd: RunDir) -> bool:
    try:
        config = rd.config()
    except (UnirexError, OSError, UnicodeDecodeError):
        return False
    return isinstance(config, dict) and config.get("debug") is True


def _read_jsonl(path: Path) -> list[dict]:
    out = []
    try:
        text = Path(path).read_text(errors="replace")  # a damaged byte spoils its line only
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a crash mid-write: skip it, keep the rest
            continue
    return out


def list_runs(runs_root: Path) -> list[RunDir]:
    root = Path(runs_root)
    if not root.is_dir():
        return []
    return [RunDir(p) for p in sorted(root.iterdir()) if (p / RunDir.META).is_file()]
