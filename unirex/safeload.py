"""Reading checkpoint files safely: JSON and safetensors only, each failure one line that names the file.

Checkpoints are safetensors, never pickles (README, "Runs, checkpoints and the store"). Nothing here
calls ``torch.load`` or ``pickle``: a folder that holds only pickled weights (``pytorch_model.bin``,
``*.ckpt``, ...) is refused by :func:`require_safetensors` before any loader sees it.
"""

from __future__ import annotations

import json
from pathlib import Path

from unirex.errors import UnirexError

#: weight files in other formats than safetensors: pickles (PyTorch ``.bin``/``.pt``, Lightning ``.ckpt``,
#: joblib, numpy object arrays) and the TensorFlow / Flax formats, which this project never reads
PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl", ".pickle", ".joblib", ".npy", ".npz", ".h5", ".msgpack")


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def read_json_file(path: Path, what: str = "file", kind: type = dict):
    """The JSON object in ``path``; a missing, unreadable or malformed file is a one-line UnirexError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UnirexError(f"{path}: missing {what}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UnirexError(f"{path}: cannot read the {what} ({first_line(e)})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UnirexError(f"{path}: the {what} is not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(data, kind):
        raise UnirexError(f"{path}: the {what} should hold a JSON {'object' if kind is dict else kind.__name__}, "
                          f"not {type(data).__name__}")
    return data


def load_safetensors(path: Path, what: str = "weights") -> dict:
    """``{name: tensor}`` of a safetensors file; a missing or corrupt file is a one-line UnirexError."""
    # lazy: safetensors only when a checkpoint is read
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise UnirexError(f"{path}: missing {what}")
    try:
        return load_file(str(path))
    except Exception as e:  # noqa: BLE001 - SafetensorError, OSError, ...: all mean an unusable file
        raise UnirexError(f"{path}: not a readable safetensors file ({first_line(e)})") from None


def check_finite(tensors: dict, path: Path) -> None:
    """Refuse weights that hold NaN or infinity (a run that diverged): they load without complaint and
    every prediction and explanation they give is silently ``nan``. One line naming ``path`` and the tensor."""
    # lazy: torch only when a checkpoint is read
    import torch

    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise UnirexError(f"{path}: tensor '{name}' holds {bad} NaN or infinite value(s) of {t.numel()}; "
                              "these weights cannot give predictions (did the training diverge?)")


def check_finite_file(path: Path) -> None:
    """:func:`check_finite` over a safetensors file, one tensor at a time (memory-mapped, never all at once)."""
    # lazy: safetensors only when a checkpoint is read
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), "pt") as f:
            for name in f.keys():
                check_finite({name: f.get_tensor(name)}, path)
    except UnirexError:
        raise
    except Exception as e:  # noqa: BLE001 - SafetensorError, OSError, ...: all mean an unusable file
        raise UnirexError(f"{path}: not a readable safetensors file ({first_line(e)})") from None


def check_safetensors(path: Path) -> None:
    """Read the header of a safetensors file (cheap): a corrupt or truncated file is a one-line UnirexError."""
    # lazy: safetensors only when a checkpoint is read
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            f.keys()
    except Exception as e:  # noqa: BLE001
        raise UnirexError(f"{path}: not a readable safetensors file ({first_line(e)})") from None


def pickled_files(folder: Path) -> list[str]:
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PICKLE_SUFFIXES)


def require_safetensors(folder: Path, what: str = "model") -> list[Path]:
    """The safetensors weight files of a Hugging Face model folder (checked header by header).

    A folder with pickled weights only (``pytorch_model.bin``, ...) is refused, without reading them.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UnirexError(f"{folder}: missing {what} folder")
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        pickles = pickled_files(folder)
        if pickles:
            raise UnirexError(
                f"{folder}: the {what} weights are not safetensors ({', '.join(pickles[:3])}); UNIREX loads "
                "safetensors only and never unpickles. Convert them to safetensors in a trusted environment first")
        raise UnirexError(f"{folder}: no {what} weights (model.safetensors) in this folder")
    for f in files:
        check_safetensors(f)
    return files


__all__ = ["PICKLE_SUFFIXES", "check_safetensors", "first_line", "load_safetensors", "pickled_files",
           "read_json_file", "require_safetensors"]
