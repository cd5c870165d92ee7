"""Keeping what a front receives inside the workspace (the app's security rules).

The app is a server: every value its pages (or an HTTP client calling its endpoints) send is untrusted.
A :class:`PathPolicy` checks each value that names something on disk before the workbench acts on it:

* a **dataset name** is one folder name under ``<workspace>/data`` (letters, digits, ``_ . -``; not
  ``..``, not absolute, no separators) and, symlinks resolved, stays inside that folder;
* a **path** (``data_dir=``, a checkpoint folder, a dry-run folder) resolves inside the workspace;
* an **arch** is ``default``, one the operator named when starting the app, a Hugging Face id
  (``org/name``, when no such local folder exists), or a folder inside the workspace;
* a **checkpoint** is a run id of the workspace, a folder inside it, or a Hugging Face id;
* a **run override** (``key=value``) is checked by key: the path keys above, ``workspace=`` refused.

:func:`redact` removes server paths outside the workspace from messages shown to the user (a path
inside it is kept: the user knows the workspace; the name of the file or folder outside it is kept
after ``…/``, its location is not).

The CLI is a local user's own shell and is not confined; the app builds its :class:`Workbench` with
``confine=True``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from unirex.errors import UnirexError
from unirex.runs import refuse_linked_run

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
HUB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,95})?$")
#: run overrides whose value is a folder on the server
PATH_KEYS = ("data_dir", "work_dir")
#: run overrides whose value is a run id or a checkpoint / run folder
RUN_REF_KEYS = ("training.ckpt_path", "data.fresh_exp_id", "data.l2e_exp_id")


def check_name(name: str, what: str = "dataset name") -> str:
    """A single folder name (no separators, not ``.``/``..``, not hidden); returns it stripped."""
    name = str(name or "").strip()
    if not name:
        raise UnirexError(f"choose a {what}")
    if not NAME_RE.fullmatch(name) or name in (".", ".."):
        raise UnirexError(f"'{name}' is not a valid {what}: use letters, digits, '_', '.' and '-' "
                          "(one folder name, no '/' or '..')")
    return name


def inside(path: Path, root: Path) -> bool:
    """Whether ``path`` (symlinks resolved) is ``root`` or below it."""
    try:
        return Path(path).resolve().is_relative_to(Path(root).resolve())
    except (OSError, RuntimeError):
        return False


@dataclass
class PathPolicy:
    """The checks of the module docstring for one workspace.

    Args:
        workspace: the workspace folder.
        trusted_archs: archs the operator named on the command line (allowed wherever they are).
        confine: when False (the CLI) every check passes values through unchanged, except names.
    """

    workspace: Path
    trusted_archs: tuple[str, ...] = ()
    confine: bool = True
    _root: Path = field(init=False, repr=False)

    def __post_init__(self):
        self.workspace = Path(self.workspace)
        self._root = self.workspace.resolve()

    @property
    def data_dir(self) -> Path:
        return self.workspace / "data"

    # --- single values ------------------------------------------------------------------------------
    def dataset_dir(self, name: str) -> Path:
        """``<workspace>/data/<name>`` for a valid name that stays inside the data folder."""
        name = check_name(name)
        path = self.data_dir / name
        if path.exists() and not inside(path, self.data_dir):
            raise UnirexError(f"dataset '{name}' is a link that points outside the workspace's data folder")
        return path

    def path(self, value: str | os.PathLike, what: str = "path") -> Path:
        """An absolute path inside the workspace (a relative one is taken relative to the workspace)."""
        raw = str(value or "").strip()
        if not raw:
            raise UnirexError(f"{what} is empty")
        p = Path(raw).expanduser()
        if not p.is_absolute():
            p = self.workspace / p
        if self.confine and not inside(p, self.workspace):
            raise UnirexError(f"{what} '{raw}' is outside the workspace; only folders inside it can be used here")
        return p

    def arch(self, value: str) -> str:
        """The arch as the engine should read it (see the module docstring)."""
        arch = str(value or "").strip() or "default"
        if not self.confine or arch == "default" or arch in self.trusted_archs:
            return arch
        p = Path(arch).expanduser()
        looks_local = p.is_absolute() or arch.startswith((".", "~")) or p.exists() or (self.workspace / p).exists()
        if not looks_local and HUB_ID_RE.fullmatch(arch) and ".." not in arch:
            return arch  # a Hugging Face id
        return str(self.path(arch if p.is_absolute() else self.workspace / p, "arch folder"))

    def checkpoint(self, ref: str) -> str:
        """A run id, a checkpoint/run folder inside the workspace, or a Hugging Face id."""
        ref = str(ref or "").strip().strip("'\"")
        if not ref:
            raise UnirexError("choose a checkpoint: a run id, a checkpoint folder or a Hugging Face repo id")
        if not self.confine:
            return ref
        if RUN_ID_RE.fullmatch(ref) and (self.workspace / "runs" / ref).is_dir():
            refuse_linked_run(self.workspace / "runs", ref)  # a run folder linked out of the workspace
            return ref
        p = Path(ref).expanduser()
        if p.is_absolute() or ref.startswith((".", "~")):
            return str(self.path(p, "checkpoint folder"))
        if (self.workspace / p).exists():
            return str(self.path(self.workspace / p, "checkpoint folder"))
        if p.exists():  # relative to the server's working directory: not the workspace
            raise UnirexError(f"checkpoint '{ref}' is outside the workspace; give a run id or a folder inside it")
        if RUN_ID_RE.fullmatch(ref) or (HUB_ID_RE.fullmatch(ref) and ".." not in ref):
            return ref  # an unknown run id or a Hub id: the loader says which it is not
        raise UnirexError(f"'{ref}' is neither a run id, a folder inside the workspace nor a Hugging Face id")

    # --- run overrides --------------------------------------------------------------------------------
    def overrides(self, overrides: list[str] | tuple[str, ...]) -> list[str]:
        """The overrides with every path-like value checked (and made absolute inside the workspace)."""
        # lazy: unirex.config pulls omegaconf, which this module does not otherwise load
        from unirex.config import parse_override

        out = []
        for o in overrides:
            if "=" not in o:
                out.append(o)
                continue
            key, value = parse_override(o)
            bare = value.strip().strip("'\"")
            if key == "workspace":
                raise UnirexError("workspace= cannot be set per run here: runs go into this workspace")
            if key in ("data", "dataset", "data.dataset") and bare:
                check_name(bare)
                if self.confine:
                    self.dataset_dir(bare)
            elif self.confine and key in PATH_KEYS and bare and bare.lower() not in ("null", "none", "~"):
                o = f"{key}={self.path(bare, key)}"
            elif self.confine and key == "arch":
                o = f"arch={self.arch(bare)}"
            elif self.confine and key in RUN_REF_KEYS and bare and bare.lower() not in ("null", "none", "~"):
                if _is_unirex_ckpt_form(bare):
                    self.checkpoint(bare.split("/")[0])
                else:
                    ref = self.checkpoint(bare)
                    if ref != bare:
                        o = f"{key}={ref}"
            out.append(o)
        return out


    def resolved(self, cfg) -> None:
        """Check the path-like values of a resolved :class:`~unirex.config.RunConfig` as :meth:`overrides` checks
        a caller's: the final values, those an evaluated or finetuned checkpoint's saved config brought in too
        (its ``data_dir``, ``arch``, ``data.fresh_exp_id``, ...), and the run's workspace is this one."""
        if not self.confine:
            return
        if cfg.workspace and Path(cfg.workspace).resolve() != self._root:
            raise UnirexError("workspace= cannot be set per run here: runs go into this workspace")
        values = {"data_dir": cfg.data_dir, "work_dir": cfg.work_dir, "arch": cfg.arch,
                  "training.ckpt_path": cfg.training.ckpt_path, "data.fresh_exp_id": cfg.data.fresh_exp_id,
                  "data.l2e_exp_id": cfg.data.l2e_exp_id}
        self.overrides([f"{k}={v}" for k, v in values.items() if v not in (None, "")])


def _is_unirex_ckpt_form(value: str) -> bool:
    """``ER-XXXX/checkpoints/epoch=X-step=XXXX.ckpt`` (UNIREX's own form): the first component names a run."""
    return "/checkpoints/" in value and not value.startswith(("/", ".", "~"))


# an absolute path starts the text or follows a space, a quote, a bracket, '=' or ':' (not '<data_dir>/x')
_PATH_RE = re.compile(r"(?<![^\s'\"`(\[{=:,])(/(?:[^\s'\"`<>|,;:()\[\]{}]+/?)+)")


def redact(message: str, workspace: Path) -> str:
    """``message`` with absolute paths outside ``workspace`` replaced by ``…/<last component>``."""
    root = Path(workspace).resolve()
    root_text = str(Path(workspace))

    def sub(m: re.Match) -> str:
        text = m.group(1)
        trail = ""
        while text and text[-1] in ".'\"":
            trail = text[-1] + trail
            text = text[:-1]
        if not text:
            return m.group(0)
        if text.startswith(root_text) or text.startswith(str(root)):
            return text + trail
        try:
            if Path(text).resolve().is_relative_to(root):
                return text + trail
        except (OSError, RuntimeError, ValueError):
            pass
        name = Path(text).name
        return ("…/" + name if name else "…") + trail

    return _PATH_RE.sub(sub, str(message))


__all__ = ["PathPolicy", "check_name", "inside", "redact"]
