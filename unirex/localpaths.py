"""Paths of this machine kept out of text that leaves it (the files pushed to the Hugging Face Hub).

:class:`LocalPaths` knows the folders of this machine that a published text may name (the workspace, the
data folder, a run folder, the encoder folder ``arch``, the home folder), each in every spelling found: as
given, with ``~``, absolute, and with symbolic links resolved; a trailing slash is matched too. It replaces
them by what still means something on another machine::

    <workspace>/runs/R-X/checkpoint   ->  R-X/checkpoint     a run id: training.ckpt_path and model.exp_id take it
    <workspace>/exports/a.csv         ->  exports/a.csv      workspace-relative
    <workspace>                       ->  <workspace>
    <run folder>/outputs              ->  R-X/outputs        (a run folder outside the workspace too)
    <data folder>/demo                ->  <data_dir>/demo
    <arch folder>/config.json         ->  ./<its name>/config.json    (as the pushed config names the encoder)
    <home>/x                          ->  ~/x
    /any/other/absolute/path          ->  ./path             when its top folder (/any) exists on this machine

A path is matched whole: ``/a/ws`` is not found in ``/a/ws2`` nor in ``/x/a/ws``. URLs, relative paths and
names like ``unirex/config.json`` are left as they are in text; a config value that is a relative path
existing here is rewritten as the absolute path it names (:meth:`LocalPaths.scrub_value`).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Union

PathLike = Union[str, "os.PathLike[str]", None]
PathArg = Union[PathLike, Iterable[PathLike]]

#: the kinds of place, in the order a spelling shared by two places is given to one of them
KINDS = ("run", "arch", "data", "workspace", "home")
WORKSPACE, DATA = "<workspace>", "<data_dir>"
#: characters that end a path in text (a space, quotes, Markdown and JSON punctuation)
_STOP = r"\s\"'`|,;<>()\[\]{}"
_BEFORE = r"(?<![\w.~<>-])"  # a path starts after none of these (so /x/a/ws holds no /a/ws)


@dataclass(frozen=True)
class Place:
    """One spelling of a folder of this machine: its kind (:data:`KINDS`) and the name it is replaced by."""

    spelling: str
    kind: str
    name: str  # run: the run id; arch: "./<folder name>"; others: unused


def _spellings(path: PathLike, homes: list[str]) -> list[str]:
    """``path`` as given (when absolute), with ``~`` expanded, absolute, links resolved; each also under ``~``
    and JSON-escaped (a non-ASCII name in a ``json.dumps`` file). None for a value that is no path."""
    if path is None or not str(path).strip():
        return []
    raw = str(path).strip()
    try:
        expanded = os.path.expanduser(raw)
        forms = {os.path.abspath(expanded), os.path.realpath(expanded)}
    except (OSError, ValueError):  # a NUL byte, a link loop: no folder of this machine
        return []
    if raw.startswith(("/", "~")):
        forms.add(raw.rstrip("/") or raw)
    for f in list(forms):
        for h in homes:
            if f.startswith(h + "/"):
                forms.add("~" + f[len(h):])
    forms |= {json.dumps(f)[1:-1] for f in forms}
    return [f for f in forms if f not in ("/", "~") and len(Path(f).parts) >= 2]


def _homes() -> list[str]:
    """The home folder: ``$HOME`` and ``Path.home()``, absolute and with links resolved (never ``/``)."""
    given = {h for h in (os.environ.get("HOME"), str(Path.home())) if h}
    return sorted(({os.path.abspath(h) for h in given} | {os.path.realpath(h) for h in given}) - {"/"})


def _many(arg: PathArg) -> list[PathLike]:
    if arg is None or isinstance(arg, (str, os.PathLike)):
        return [arg]
    return list(arg)


def _exists(path: str) -> bool:
    try:
        return os.path.exists(path)
    except (OSError, ValueError):
        return False


def _top_folders() -> frozenset[str]:
    try:
        return frozenset(e.name for e in os.scandir("/") if e.is_dir())
    except OSError:
        return frozenset()


@dataclass(frozen=True)
class LocalPaths:
    """The folders of this machine a published text must not name (see the module docstring)."""

    places: tuple[Place, ...] = ()

    @classmethod
    def of(cls, workspace: PathArg = None, data_dir: PathArg = None, run_dir: PathArg = None,
           arch: PathArg = None) -> "LocalPaths":
        """The places of a run: its workspace(s), data folder(s), run folder, encoder folder, and the home
        folder (``$HOME`` and ``Path.home()``); each argument is a path, several paths, or None."""
        homes = _homes()
        found: dict[str, Place] = {}
        given = {"run": run_dir, "arch": arch, "data": data_dir, "workspace": workspace, "home": homes}
        for kind in KINDS:
            for p in _many(given[kind]):
                name = Path(str(p or "")).name  # the name it was given (as public_config names the encoder)
                name = "./" + name if kind == "arch" else name
                for s in _spellings(p, homes):
                    found.setdefault(s, Place(s, kind, name))
        return cls(tuple(sorted(found.values(), key=lambda pl: len(pl.spelling), reverse=True)))

    def _pattern(self) -> re.Pattern:
        known = "|".join(re.escape(p.spelling) for p in self.places) or r"(?!)"
        return re.compile(
            rf"{_BEFORE}(?:(?P<place>{known})(?P<rest>/[^{_STOP}]*)?(?![^{_STOP}/])"
            rf"|(?P<abs>/(?P<top>[^{_STOP}/]+)(?:/[^{_STOP}/]+)+)/?)")

    def scrub(self, text: str) -> str:
        """``text`` with every path of this machine replaced (see the module docstring)."""
        by_spelling = {p.spelling: p for p in self.places}
        tops = _top_folders()

        def replace(m: re.Match) -> str:
            if m.group("abs") is not None:
                return "./" + m.group("abs").rsplit("/", 1)[1] if m.group("top") in tops else m.group(0)
            place = by_spelling[m.group("place")]
            return _replacement(place, (m.group("rest") or "").lstrip("/"))

        return self._pattern().sub(replace, text)

    def scrub_value(self, value: str) -> str:
        """A config value: :meth:`scrub`, without a trailing slash when it was a path that changed. A relative
        path that exists here (``workspace/runs/R-X/checkpoint``, ``../../elsewhere/enc``) is taken as the
        absolute path it names; any other relative value (a Hub id, a run id, a name) is kept."""
        out = self.scrub(value)
        if out == value and "/" in value and not value.startswith(("/", "~")) and _exists(value):
            out = self.scrub(os.path.abspath(value))
        return value if out == value else (out.rstrip("/") or out)


def _replacement(place: Place, rest: str) -> str:
    if place.kind == "workspace":
        if rest.startswith("runs/") and len(rest) > len("runs/"):
            return rest[len("runs/"):]
        return rest or WORKSPACE
    if place.kind == "data":
        return f"{DATA}/{rest}" if rest else DATA
    if place.kind == "home":
        return f"~/{rest}" if rest else "~"
    return f"{place.name}/{rest}" if rest else place.name  # run, arch


__all__ = ["LocalPaths", "Place"]
