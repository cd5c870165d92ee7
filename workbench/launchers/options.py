"""Launcher options: which engine runs a sweep's jobs, and what each job asks of it.

On the command line they are ``launcher=...`` and ``launcher.<key>=...`` next to the run's own overrides
(``python -m unirex -m seed=0,1,2 launcher=ray launcher.gpus_per_job=1``); they are not run-config keys:
:func:`split_launcher_overrides` takes them out before the runs are resolved, so they never reach a run's
config nor the command line recorded to reproduce it. The app passes the same keys, without the
``launcher.`` prefix, as ``launcher_options`` (``{"gpus_per_job": 1, "ray.address": "auto"}``).

:data:`FIELDS` lists every key with its type, default and help (:func:`launcher_fields` gives those of one
launcher, for a form). Nothing here imports Ray or submitit.

Settings that run a command or name a folder or a cluster on the server (:data:`SERVER_ONLY_KEYS`:
``slurm.setup``, ``slurm.folder``, ``ray.address``) cannot come from the app's users: the app refuses them
in its forms and overrides (:func:`refuse_server_keys`) and takes them from the environment of whoever
starts it, ``UNIREX_APP_LAUNCHER_SLURM_SETUP``, ``UNIREX_APP_LAUNCHER_SLURM_FOLDER`` and
``UNIREX_APP_LAUNCHER_RAY_ADDRESS`` (:func:`server_launcher_values`). On every front ``slurm.folder`` stays
inside the workspace (a relative folder is taken inside it: :func:`check_launcher_folder`), and no text
value holds a control character (a line break would be a new line of the Slurm job script).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from unirex.errors import UnirexError, close_matches, did_you_mean, suggest

#: every launcher a job can name; ``local`` is the app's own worker thread (the CLI: in the foreground)
LAUNCHERS = ("local", "ray", "slurm")
REMOTE_LAUNCHERS = ("ray", "slurm")
SLURM_CLUSTERS = ("slurm", "local")


@dataclass(frozen=True)
class LauncherField:
    """One launcher option: ``key`` as the app passes it (``ray.address``), ``cli_key`` as typed on the
    command line (``launcher.ray.address``); ``launcher`` is the launcher it applies to (None: ray and slurm)."""

    key: str
    type: str  # int | float | str | choice
    default: Any
    help: str
    launcher: str | None = None
    choices: tuple[str, ...] = ()

    @property
    def cli_key(self) -> str:
        return f"launcher.{self.key}"

    @property
    def attr(self) -> str:
        return self.key.replace(".", "_")


FIELDS: tuple[LauncherField, ...] = (
    LauncherField("gpus_per_job", "float", 0.0, "GPUs each job asks for (Ray: num_gpus, may be fractional; "
                  "Slurm: gpus_per_node, a whole number). 0 runs on CPU."),
    LauncherField("cpus_per_job", "int", 1, "CPU cores each job asks for (Ray: num_cpus; Slurm: cpus_per_task)."),
    LauncherField("cancel_grace_s", "float", 30.0, "after a cancel, seconds a job has to stop cleanly (its "
                  "worker sees the request within a training step) before the launcher's own cancel kills it."),
    LauncherField("ray.address", "str", None, "Ray cluster to use: empty starts a local Ray instance on this "
                  "machine; 'auto' joins the cluster this machine is a node of (ray start); HOST:6379 a cluster's "
                  "head; 'ray://HOST:10001' connects through Ray Client (pip install 'ray[client]').", "ray"),
    LauncherField("ray.num_cpus", "int", None, "CPUs of the local Ray instance (default: all cores); ignored "
                  "with an address.", "ray"),
    LauncherField("slurm.partition", "str", None, "Slurm partition (sbatch --partition).", "slurm"),
    LauncherField("slurm.timeout_min", "int", 240, "time limit of each job in minutes (sbatch --time); a job "
                  "that reaches it reads interrupted and can be resumed from its checkpoint.", "slurm"),
    LauncherField("slurm.mem_gb", "float", None, "memory of each job in GB (sbatch --mem).", "slurm"),
    LauncherField("slurm.account", "str", None, "Slurm account (sbatch --account).", "slurm"),
    LauncherField("slurm.qos", "str", None, "Slurm quality of service (sbatch --qos).", "slurm"),
    LauncherField("slurm.constraint", "str", None, "node features (sbatch --constraint).", "slurm"),
    LauncherField("slurm.setup", "str", None, "one shell line run before each job (e.g. 'module load cuda').",
                  "slurm"),
    LauncherField("slurm.folder", "str", None, "submitit's folder (job scripts, pickles, stdout/stderr), inside "
                  "the workspace (a relative folder is taken inside it); default: the run folder's logs/. %j is "
                  "the Slurm job id.", "slurm"),
    LauncherField("slurm.cluster", "choice", "slurm", "'slurm' submits with sbatch; 'local' runs each job as a "
                  "process on this machine through submitit's local executor (no Slurm needed).", "slurm",
                  SLURM_CLUSTERS),
)
_BY_KEY = {f.key: f for f in FIELDS}
#: keys that run a command (slurm.setup), name a folder (slurm.folder) or a cluster to connect to (ray.address)
#: on the machine that submits: the app takes them only from its own environment (:func:`server_launcher_values`)
SERVER_ONLY_KEYS = ("slurm.setup", "slurm.folder", "ray.address")
SERVER_ENV_PREFIX = "UNIREX_APP_LAUNCHER_"
_SERVER_WHAT = {"slurm.setup": "runs a shell command", "slurm.folder": "names a folder",
                "ray.address": "names the cluster to connect to"}


def server_env_name(key: str) -> str:
    """``slurm.setup`` -> ``UNIREX_APP_LAUNCHER_SLURM_SETUP``."""
    return SERVER_ENV_PREFIX + key.replace(".", "_").upper()


def server_launcher_values(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The server-only settings (:data:`SERVER_ONLY_KEYS`) set in the environment of whoever starts the app."""
    env = os.environ if environ is None else environ
    out = {}
    for key in SERVER_ONLY_KEYS:
        value = (env.get(server_env_name(key)) or "").strip()
        if value:
            out[key] = value
    return out


def _given(overrides: Sequence[str], values: Mapping[str, Any] | Sequence[str] | "LauncherOptions" | None
           ) -> list[tuple[str, Any]]:
    """``(key without launcher., value)`` of every launcher key a caller gave, blank ones left out."""
    pairs: list[tuple[str, Any]] = []
    for o in overrides:
        key, sep, value = str(o).partition("=")
        if sep and is_launcher_key(key):
            pairs.append((key.strip().lstrip("+"), value))
    if isinstance(values, LauncherOptions):
        pairs += list(values.values().items())
    elif isinstance(values, Mapping):
        pairs += [(str(k), v) for k, v in values.items()]
    elif values is not None:
        for item in values:
            key, _, value = str(item).partition("=")
            pairs.append((key.strip().lstrip("+"), value))
    return [(k.removeprefix("launcher."), v) for k, v in pairs
            if k != "launcher" and not (v is None or (isinstance(v, str) and not _unquote(v)))]


def refuse_server_keys(overrides: Sequence[str], values: Mapping[str, Any] | Sequence[str] | "LauncherOptions" | None
                       = None) -> None:
    """A one-line :class:`UnirexError` when a user of the app gives a key of :data:`SERVER_ONLY_KEYS`."""
    for key, _ in _given(overrides, values):
        if key in SERVER_ONLY_KEYS:
            raise UnirexError(f"launcher.{key} cannot be set from the app: it {_SERVER_WHAT[key]} on the server; "
                              f"whoever starts the app sets it (environment variable {server_env_name(key)})")


def without_server_keys(args: Sequence[str]) -> list[str]:
    """``launcher.key=value`` strings without the server-only keys (a recorded job's options, requeued by the app,
    which sets those itself)."""
    return [a for a in args if str(a).partition("=")[0].strip().lstrip("+").removeprefix("launcher.")
            not in SERVER_ONLY_KEYS]


def with_server_values(opts: "LauncherOptions", values: Mapping[str, str]) -> "LauncherOptions":
    """``opts`` with the server's settings (:func:`server_launcher_values`) of its launcher filled in where the
    options leave the default."""
    changes = {}
    for key, raw in values.items():
        if key not in SERVER_ONLY_KEYS:
            raise UnirexError(f"launcher.{key} is not a setting of the server (those are {', '.join(SERVER_ONLY_KEYS)})")
        f = _BY_KEY[key]
        if f.launcher == opts.name and getattr(opts, f.attr) == f.default:
            changes[f.attr] = _parse(f, raw)
    return replace(opts, **changes) if changes else opts


def launcher_folder(folder: str, workspace: str | os.PathLike) -> Path:
    """``launcher.slurm.folder`` as a path: a relative folder is taken inside ``workspace``."""
    p = Path(folder).expanduser()
    return p if p.is_absolute() else Path(workspace) / p


def check_launcher_folder(opts: "LauncherOptions", workspace: str | os.PathLike) -> None:
    """A :class:`UnirexError` when ``launcher.slurm.folder`` (links and ``..`` resolved) leaves ``workspace``."""
    if not opts.slurm_folder:
        return
    try:
        root = Path(workspace).resolve()
        target = launcher_folder(opts.slurm_folder, workspace).resolve()
        ok = target == root or target.is_relative_to(root)
    except (OSError, RuntimeError, ValueError):
        ok = False
    if not ok:
        raise UnirexError(f"launcher.slurm.folder {opts.slurm_folder[:200]!r} is outside the workspace: job files "
                          "are written inside it (give a folder in the workspace, or leave it empty for each run's logs/)")


@dataclass(frozen=True)
class LauncherOptions:
    """Where and how a job runs. Build it with :func:`launcher_options` (validates) rather than directly."""

    name: str = "local"
    gpus_per_job: float = 0.0
    cpus_per_job: int = 1
    cancel_grace_s: float = 30.0
    ray_address: str | None = None
    ray_num_cpus: int | None = None
    slurm_partition: str | None = None
    slurm_timeout_min: int = 240
    slurm_mem_gb: float | None = None
    slurm_account: str | None = None
    slurm_qos: str | None = None
    slurm_constraint: str | None = None
    slurm_setup: str | None = None
    slurm_folder: str | None = None
    slurm_cluster: str = "slurm"

    @property
    def remote(self) -> bool:
        return self.name in REMOTE_LAUNCHERS

    def values(self) -> dict[str, Any]:
        """``{key: value}`` of the options that differ from their default (app-style keys)."""
        return {f.key: getattr(self, f.attr) for f in FIELDS if getattr(self, f.attr) != f.default}

    def to_args(self) -> tuple[str, ...]:
        """The options that differ from their default as ``launcher.key=value`` (``launcher=`` not included):
        what a :class:`~workbench.records.Job` records and what the command line takes."""
        return tuple(f"launcher.{k}={_format(v)}" for k, v in self.values().items())

    def check_available(self) -> None:
        """Raise a :class:`UnirexError` when this launcher cannot run here (its package is missing, no Slurm)."""
        if self.name == "ray" and importlib.util.find_spec("ray") is None:
            raise UnirexError("launcher=ray needs the 'ray' package (pip install -r requirements.txt)")
        if self.name == "slurm":
            if importlib.util.find_spec("submitit") is None:
                raise UnirexError("launcher=slurm needs the 'submitit' package (pip install -r requirements.txt)")
            if self.slurm_cluster == "slurm" and shutil.which("sbatch") is None:
                raise UnirexError("launcher=slurm: no Slurm on this machine (sbatch not found); submit from a "
                                  "cluster login node, or use launcher.slurm.cluster=local to run the jobs as "
                                  "local processes through submitit")


def _format(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    s = str(v)
    return f"'{s}'" if any(c in s for c in " ,") else s


def _unquote(s: str) -> str:
    s = s.strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"":
        return s[1:-1]
    return s


def _suggest(word: str, options: Sequence[str]) -> str:
    return did_you_mean(word, options, n=2, cutoff=0.5)


def _check_name(name: str) -> str:
    name = _unquote(str(name or "local")).lower()
    if name not in LAUNCHERS:
        raise UnirexError(f"launcher={name} is not one of {', '.join(LAUNCHERS)}{_suggest(name, LAUNCHERS)}")
    return name


def _field(key: str) -> LauncherField:
    key = key.removeprefix("launcher.")
    if key in _BY_KEY:
        return _BY_KEY[key]
    leaf = key.rsplit(".", 1)[-1]  # a key of another level (launcher.partition -> launcher.slurm.partition)
    close = [f.cli_key for f in FIELDS if f.key.rsplit(".", 1)[-1] == leaf]
    close = close or [f"launcher.{c}" for c in close_matches(key, _BY_KEY, n=2, cutoff=0.6)]
    hint = suggest(close[:2]) or f" (launcher keys: {', '.join(f.cli_key for f in FIELDS)})"
    raise UnirexError(f"unknown launcher key 'launcher.{key}'{hint}")


def _parse(field: LauncherField, raw: Any) -> Any:
    where = f"launcher.{field.key}"
    if raw is None or (isinstance(raw, str) and _unquote(raw) in ("", "None", "none", "null", "~")):
        if field.default is not None and field.type != "str":
            return field.default
        return None
    if isinstance(raw, str):
        raw = _unquote(raw)
    try:
        if field.type == "int":
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError
            value: Any = int(float(raw)) if isinstance(raw, (int, float)) else int(raw)
        elif field.type == "float":
            value = float(raw)
        else:
            value = str(raw)
            if any(ord(c) < 32 or ord(c) == 127 for c in value):
                raise UnirexError(f"{where} holds a control character (a line break would start a new line of the "
                                  "job script): refused")
    except (TypeError, ValueError):
        raise UnirexError(f"{where}={raw} is not {'a whole number' if field.type == 'int' else 'a number'}") from None
    if field.choices and value not in field.choices:
        raise UnirexError(f"{where}={value} is not one of {', '.join(field.choices)}{_suggest(value, field.choices)}")
    if field.type in ("int", "float") and value < 0:
        raise UnirexError(f"{where}={raw} must not be negative")
    return value


def launcher_options(name: str = "local", values: Mapping[str, Any] | Sequence[str] | LauncherOptions | None = None
                     ) -> LauncherOptions:
    """Validated :class:`LauncherOptions` for launcher ``name`` from ``values``: a mapping of keys (``gpus_per_job``,
    ``ray.address``, ...; the ``launcher.`` prefix is optional; values may be strings, a blank one or None means
    the default, whatever launcher the key belongs to, so a form can pass every field), a sequence of
    ``launcher.key=value`` strings, or options already built (re-checked against ``name``).

    Raises:
        UnirexError: an unknown launcher or key (with the closest valid ones), a value of the wrong type, or
            a key of another launcher (``launcher.slurm.partition`` with ``launcher=ray``).
    """
    name = _check_name(name)
    if isinstance(values, LauncherOptions):
        values = values.values()
    pairs: list[tuple[str, Any]] = []
    if values is None:
        pass
    elif isinstance(values, Mapping):
        pairs = [(str(k), v) for k, v in values.items()]
    else:
        for item in values:
            key, sep, value = str(item).partition("=")
            if not sep:
                raise UnirexError(f"launcher option '{item}' is not of the form launcher.key=value")
            pairs.append((key.strip().lstrip("+"), value.strip()))
    kwargs: dict[str, Any] = {}
    for key, raw in pairs:
        f = _field(key)
        blank = raw is None or (isinstance(raw, str) and not raw.strip())
        if blank and not (isinstance(values, Sequence) and not isinstance(values, (str, Mapping))):
            continue  # a form's empty field (of any launcher): the default
        if f.launcher is None and name == "local" or f.launcher is not None and f.launcher != name:
            applies = f"launcher={f.launcher}" if f.launcher else "launcher=ray or launcher=slurm"
            if name == "local":
                raise UnirexError(f"{f.cli_key} needs {applies} (without launcher= the runs run in this process)")
            raise UnirexError(f"{f.cli_key} applies to {applies}, not to launcher={name}")
        kwargs[f.attr] = _parse(f, raw)
    opts = LauncherOptions(name=name, **kwargs)
    if name == "slurm" and not float(opts.gpus_per_job).is_integer():
        raise UnirexError(f"launcher.gpus_per_job={opts.gpus_per_job:g}: Slurm gives whole GPUs to a job")
    if opts.remote and opts.cpus_per_job < 1:
        raise UnirexError("launcher.cpus_per_job must be at least 1")
    if name == "slurm" and opts.slurm_timeout_min < 1:
        raise UnirexError("launcher.slurm.timeout_min must be at least 1 minute")
    return opts


def is_launcher_key(key: str) -> bool:
    key = key.strip().lstrip("+")
    return key == "launcher" or key.startswith("launcher.")


def split_launcher_overrides(overrides: Sequence[str], launcher: str | None = None,
                             values: Mapping[str, Any] | Sequence[str] | LauncherOptions | None = None
                             ) -> tuple[list[str], LauncherOptions]:
    """Take the launcher keys out of a command line's overrides: ``(run overrides, options)``.

    ``launcher``/``values`` are what the caller chose apart from the overrides (the app's dropdown and form);
    a ``launcher=`` among the overrides must agree with ``launcher`` when both are given. A launcher key takes
    one value: it cannot be swept.
    """
    # lazy: pulls omegaconf, which this module does not otherwise load
    from unirex.config import split_sweep_value

    rest, name, args = [], None, []
    for o in overrides:
        key, sep, value = o.partition("=")
        if not sep or not is_launcher_key(key):
            rest.append(o)
            continue
        key = key.strip().lstrip("+")
        if len(split_sweep_value(value)) > 1:
            raise UnirexError(f"'{o}': a launcher key takes one value (only run keys are swept)")
        if key == "launcher":
            name = _check_name(value)
        else:
            args.append(f"{key}={value}")
    if launcher is not None and name is not None and _check_name(launcher) != name and _check_name(launcher) != "local":
        raise UnirexError(f"launcher={name} in the overrides contradicts the launcher chosen ({launcher})")
    name = name or _check_name(launcher or "local")
    base = launcher_options(name, values) if values is not None else LauncherOptions(name=name)
    merged = {**base.values(), **{a.partition("=")[0].removeprefix("launcher."): a.partition("=")[2] for a in args}}
    return rest, launcher_options(name, merged)


def launcher_fields(name: str) -> list[LauncherField]:
    """The options of launcher ``name`` (none for ``local``), in display order: for a form."""
    name = _check_name(name)
    if name == "local":
        return []
    return [f for f in FIELDS if f.launcher in (None, name)]


__all__ = ["FIELDS", "LAUNCHERS", "REMOTE_LAUNCHERS", "SERVER_ONLY_KEYS", "LauncherField", "LauncherOptions",
           "check_launcher_folder", "is_launcher_key", "launcher_fields", "launcher_folder", "launcher_options",
           "refuse_server_keys", "server_env_name", "server_launcher_values", "split_launcher_overrides",
           "with_server_values", "without_server_keys"]
