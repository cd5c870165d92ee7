"""Atomic file writes and the clean-up of what a killed writer leaves behind.

Readers never see half a file or half a folder: a file is written beside its target and renamed over it
(:func:`atomic_write`); a folder is filled beside its target and swapped in (:func:`atomic_dir`,
:func:`replace_dir`).

Every temporary name carries its owner: ``.<base>-tmp-<host>-<pid>-<random>`` (:func:`tmp_prefix`), where
``<host>`` is a short hash of the host name. So a later process can tell a leftover of a dead writer from
the work in progress of a live one, and :func:`clean_leftovers` removes only the former (or anything older
than a limit, for writers on other hosts of a shared workspace, whose pids cannot be checked from here).

A full disk (or quota) is reported as one line that names what was being written, the folder and its file
system (:func:`disk_full_error`, :func:`reporting_disk_full`); an append that fails is cut back to where it
began (:func:`append_whole`), so no write leaves half of itself behind.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable

from unirex.errors import DiskFullError

TMP_MARK = "-tmp-"
LEFTOVER_MAX_AGE_S = 24 * 3600.0  # a temporary entry older than this is a leftover whoever owns it
OLD_SUFFIX = "-old"  # replace_dir moves the previous folder aside as .<name>-old-tmp-...
_OWNED_RE = re.compile(r"^\.(?P<base>.+)-tmp-(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-[A-Za-z0-9_]*$")
_LEGACY_RE = re.compile(r"^\.(?P<base>.+?)-tmp-")


def host_tag() -> str:
    """A short, folder-safe tag of this host (8 hex digits of a hash of its name)."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def tmp_prefix(base: str) -> str:
    """The prefix of a temporary name for ``base``: ``.<base>-tmp-<host>-<pid>-`` (a random part follows)."""
    return f".{base}{TMP_MARK}{host_tag()}-{os.getpid()}-"


def parse_tmp_name(name: str) -> tuple[str, str | None, int | None] | None:
    """``(base, host, pid)`` of a temporary name, ``host``/``pid`` None for a name without an owner (written
    before owners were recorded); None when ``name`` is not a temporary name."""
    m = _OWNED_RE.match(name)
    if m is not None:
        return m.group("base"), m.group("host"), int(m.group("pid"))
    m = _LEGACY_RE.match(name)
    return (m.group("base"), None, None) if m is not None else None


def pid_alive(pid: int) -> bool:
    """Whether a process of this host with that pid exists (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _current_umask() -> int:
    """The process umask, read without changing it (``os.umask`` would, for a moment, for every thread)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def _remove(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def clean_leftovers(folder: Path, older_than_s: float = LEFTOVER_MAX_AGE_S, prefixes: Iterable[str] | None = None,
                    now: float | None = None) -> list[Path]:
    """Remove the temporary files and folders that writers which died left in ``folder`` (not recursive).

    An entry is a candidate when its name is a temporary name (``.<base>-tmp-...``, see :func:`tmp_prefix`)
    and, given ``prefixes``, starts with one of them. It is removed when its owner is a process of this
    host that is gone, or when it is older (modification time) than ``older_than_s``, whoever wrote it:
    that also covers names without a recorded owner and writers on other hosts. An entry of a live owner
    is kept. A previous folder that :func:`replace_dir` had moved aside (``.<name>-old-tmp-...``) when its
    writer died before the new one was in place is renamed back to ``<name>`` instead of being removed.

    Returns the paths removed or restored. Safe to call while other processes write: it only touches
    entries of dead or stale owners, and links are removed, never followed.
    """
    folder = Path(folder)
    now = time.time() if now is None else now
    prefixes = tuple(prefixes) if prefixes is not None else None
    me = host_tag()
    done: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return done
    for entry in entries:
        parsed = parse_tmp_name(entry.name)
        if parsed is None or (prefixes is not None and not entry.name.startswith(prefixes)):
            continue
        base, host, pid = parsed
        if pid is not None and pid == os.getpid() and host == me:
            continue  # our own work in progress
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except FileNotFoundError:
            continue
        dead = host == me and pid is not None and not pid_alive(pid)
        if not (dead or age > older_than_s):
            continue
        path = Path(entry.path)
        if base.endswith(OLD_SUFFIX) and entry.is_dir(follow_symlinks=False):
            target = folder / base[: -len(OLD_SUFFIX)]
            if not target.exists() and not target.is_symlink():
                try:
                    os.rename(path, target)  # the writer died between moving the old folder aside and the swap
                    done.append(target)
                    continue
                except OSError:
                    pass
        _remove(path)
        done.append(path)
    return done


def atomic_write(path: Path, writer: Callable[[str], None]) -> None:
    """Call ``writer(tmp_path)`` on a temporary file in ``path``'s folder, then rename it to ``path``.

    The file keeps the permission bits of the file it replaces (a new file gets the umask's default, as
    ``open`` would give it). Leftovers of earlier writers of ``path`` that died are removed first.
    """
    path = Path(path)
    clean_leftovers(path.parent, prefixes=(f".{path.name}{TMP_MARK}",))
    fd, tmp = tempfile.mkstemp(prefix=tmp_prefix(path.name), dir=path.parent)
    os.close(fd)
    try:
        writer(tmp)
        try:
            mode = path.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o666 & ~_current_umask()
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, obj) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=2, default=str)))


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


_renameat2 = None


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    global _renameat2
    if _renameat2 is None:
        try:
            fn = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True).renameat2
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            fn.restype = ctypes.c_int
            _renameat2 = fn
        except (OSError, AttributeError):
            _renameat2 = False
    if _renameat2 is False:
        return False
    fn = _renameat2
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(b))


def default_dir_mode() -> int:
    """The permission bits ``mkdir`` gives a new folder (``tempfile.mkdtemp`` gives 0o700 instead)."""
    return 0o777 & ~_current_umask()


def replace_dir(src: Path, target: Path) -> None:
    """Move the finished folder ``src`` to ``target`` (same file system), replacing an existing one.

    ``src`` takes the permission bits of the folder it replaces, or those ``mkdir`` would give.
    On Linux the two are swapped in one step, so ``target`` is at every moment the old or the new folder.
    Elsewhere the old folder is renamed aside (``.<name>-old-tmp-...``) first and removed only after the
    new one is in place; a writer killed between the two renames leaves the old folder aside, and
    :func:`clean_leftovers` puts it back.
    """
    src, target = Path(src), Path(target)
    try:
        os.chmod(src, target.stat().st_mode & 0o7777 if target.is_dir() else default_dir_mode())
    except OSError:
        pass
    if target.exists():
        if _exchange(src, target):
            _remove(src)  # src now holds the previous folder
            return
        old = Path(tempfile.mkdtemp(prefix=tmp_prefix(target.name + OLD_SUFFIX), dir=target.parent))
        os.replace(target, old)  # renaming a folder over an empty folder replaces it
        os.replace(src, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, target)


@contextmanager
def atomic_dir(target: Path, prefix: str | None = None):
    """Yield a temporary folder beside ``target``; when the block succeeds it replaces ``target``
    (:func:`replace_dir`), when it fails it is removed and ``target`` is left as it was.

    Leftovers of earlier writers of ``target`` that died (a killed checkpoint save, say) are cleaned up
    first. ``prefix`` names the temporary folder (``.<prefix>-tmp-<host>-<pid>-...``; default: the
    target's name)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    base = (prefix or target.name).strip(".-") or target.name
    clean_leftovers(target.parent, prefixes=(f".{base}{TMP_MARK}", f".{target.name}{OLD_SUFFIX}{TMP_MARK}"))
    tmp = Path(tempfile.mkdtemp(prefix=tmp_prefix(base), dir=target.parent))
    try:
        yield tmp
        replace_dir(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def file_lock(path: Path, on_wait: Callable[[], None] | None = None):
    """An exclusive advisory lock (``flock``) on ``path`` (created if missing) for the block; other
    processes wait. ``on_wait`` is called once when the lock is held by someone else."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no cross-process lock
        yield
        return
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def clean_workspace_leftovers(workspace: Path, data_dir: Path | None = None,
                              older_than_s: float = LEFTOVER_MAX_AGE_S) -> list[Path]:
    """:func:`clean_leftovers` in every folder of a workspace where atomic writes happen: the workspace
    itself, the data folder (``data/``, or ``data_dir``), each dataset and its build folders
    (``<dataset>/<arch>/L<n>/``), ``runs/``, each run folder and its ``outputs/``; a run folder that stayed
    empty for longer than ``older_than_s`` (an id claimed by a writer that died) is removed. Called when a run
    starts (and by the store's rebuild)."""
    ws = Path(workspace)
    data = Path(data_dir) if data_dir is not None else ws / "data"

    def subfolders(folder: Path, skip: tuple[str, ...] = ()) -> list[Path]:
        try:
            with os.scandir(folder) as it:
                return [Path(e.path) for e in it if e.is_dir(follow_symlinks=False)
                        and not e.name.startswith(".") and e.name not in skip]
        except (FileNotFoundError, NotADirectoryError):
            return []

    folders = [ws, data, ws / "runs"]
    for dataset in subfolders(data):
        folders.append(dataset)
        for arch in subfolders(dataset, skip=("docs",)):  # never list the documents
            folders += subfolders(arch)
    done: list[Path] = []
    now = time.time()
    for run in subfolders(ws / "runs"):
        folders += [run, run / "outputs"]
        try:  # a run id claimed by a writer that died (or failed, before it gave ids back) and stayed empty
            if now - run.stat().st_mtime > older_than_s and not any(os.scandir(run)):
                run.rmdir()
                done.append(run)
        except OSError:
            pass
    for f in folders:
        done += clean_leftovers(f, older_than_s)
    return done


# ---------------------------------------------------------------------------------------- a full disk
#: the errno values of a full disk and of a full quota, with their names as the message shows them
DISK_FULL_ERRNOS = {errno.ENOSPC: "ENOSPC", errno.EDQUOT: "EDQUOT"}
_DISK_FULL_WORDS = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded"}
#: how libraries that write in native code (safetensors, DuckDB, polars) spell it in their messages
_DISK_FULL_TEXT = (("no space left on device", errno.ENOSPC), ("os error 28", errno.ENOSPC),
                   ("disk quota exceeded", errno.EDQUOT), ("os error 122", errno.EDQUOT))


def disk_full_errno(exc: BaseException) -> int | None:
    """``errno.ENOSPC`` / ``errno.EDQUOT`` when ``exc`` (or an exception it was raised from) says the disk or the
    quota is full, else None. Native writers (safetensors, DuckDB, polars) say so only in their message."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in DISK_FULL_ERRNOS:
            return e.errno
        text = str(e).lower()
        for words, code in _DISK_FULL_TEXT:
            if words in text:
                return code
        e = e.__cause__ or e.__context__
    return None


def _existing_folder(path: Path) -> Path:
    p = Path(os.path.abspath(path))
    while not p.is_dir() and p != p.parent:
        p = p.parent
    return p


def mount_point(path: Path) -> Path:
    """The mount point of the file system ``path`` (or its nearest existing folder) lies on."""
    p = _existing_folder(path)
    while not os.path.ismount(p) and p != p.parent:
        p = p.parent
    return p


def _device(mount: Path) -> str | None:
    """The device (or file system kind, ``tmpfs``) mounted at ``mount``, from ``/proc/self/mounts``."""
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return None
    found = None
    for line in lines:  # the last mount on a point is the one in use
        parts = line.split()
        if len(parts) >= 3 and parts[1].replace("\\040", " ") == str(mount):
            found = parts[0] if parts[0] not in ("none", "") else parts[2]
    return found


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def disk_full_error(exc: BaseException, path: Path, what: str) -> DiskFullError | None:
    """The one-line :class:`~unirex.errors.DiskFullError` for ``exc`` when it says the disk or quota is full
    (:func:`disk_full_errno`), None otherwise: ``no space left on device (ENOSPC) writing <what> in <folder>
    (file system <device> at <mount point>, <n> free)``. ``path`` is the file or folder being written."""
    if isinstance(exc, DiskFullError):
        return exc
    code = disk_full_errno(exc)
    if code is None:
        return None
    folder = _existing_folder(path)
    mount = mount_point(folder)
    device = _device(mount)
    try:
        free = f", {_size(shutil.disk_usage(folder).free)} free"
    except OSError:
        free = ""
    fs = f"file system {device} at {mount}" if device else f"file system at {mount}"
    return DiskFullError(f"{_DISK_FULL_WORDS[code]} ({DISK_FULL_ERRNOS[code]}) writing {what} in {folder} "
                         f"({fs}{free}); free some space and run again", path=folder)


@contextmanager
def reporting_disk_full(what: str, path: Path):
    """Turn a full disk inside the block into :func:`disk_full_error`'s one line (other errors pass unchanged).
    ``what`` names what the block writes (``the checkpoint``), ``path`` where."""
    try:
        yield
    except DiskFullError:
        raise
    except Exception as e:  # noqa: BLE001 - native writers raise their own types; only a full disk is turned
        err = disk_full_error(e, path, what)
        if err is None:
            raise
        raise err from e


def append_whole(path: Path, text: str) -> None:
    """Append ``text`` to ``path`` (created if missing) in one write; when the write fails (a full disk) the
    file is cut back to its length before, so no partial line is left for the next append to run on from."""
    data = text.encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        start = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except OSError:
            try:
                os.ftruncate(fd, start)  # shrinking needs no space
            except OSError:
                pass
            raise
    finally:
        os.close(fd)
