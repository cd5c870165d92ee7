"""Checkpoints: safetensors only, never pickles (DESIGN.md).

A checkpoint folder::

    checkpoint/
      task_lm/                 the task LM encoder in Hugging Face ``save_pretrained`` layout
                               (config.json + model.safetensors: loadable by plain transformers), the
                               tokenizer, and the classification head (task_head.safetensors + .json)
      extractor.safetensors    every other trained weight (extractor heads, DLM encoder, A2R predictor)
      config.json              the full run config (the paper's dotted keys, nested)
      checkpoint.json          labels, epoch, monitored metric and value, time, run id

It is written to a temporary folder beside the target and renamed into place, so a crash leaves the
previous checkpoint intact.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from unirex.errors import UnirexError
from unirex.fsutil import atomic_dir

TASK_LM_DIR = "task_lm"
EXTRACTOR_FILE = "extractor.safetensors"


def _rest_state(model) -> dict[str, torch.Tensor]:
    """Weights of a :class:`~unirex.models.UnirexModel` outside its task LM."""
    return {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items() if not k.startswith("task_lm.")}


def save_checkpoint(model, cfg_dict: dict, folder: Path, tokenizer=None, info: dict | None = None) -> Path:
    """Write ``model`` (a :class:`~unirex.models.UnirexModel`) to ``folder`` atomically."""
    from safetensors.torch import save_file

    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        model.task_lm.save_pretrained(tmp / TASK_LM_DIR)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp / TASK_LM_DIR)
        rest = _rest_state(model)
        # tied/shared storage is not allowed by safetensors: clone each tensor
        save_file({k: v.clone() for k, v in rest.items()}, str(tmp / EXTRACTOR_FILE))
        (tmp / "config.json").write_text(json.dumps(cfg_dict, indent=2))
        (tmp / "checkpoint.json").write_text(json.dumps({"created_at": time.time(), **(info or {})}, indent=2))
    return folder


def resolve_checkpoint(path_or_run: str, runs_root: Path | None = None) -> Path:
    """A checkpoint folder from a folder path, a run directory or a run id (``R-...``)."""
    path_or_run = str(path_or_run).strip().strip("'\"")
    p = Path(path_or_run).expanduser()
    candidates = [p, p / "checkpoint"]
    if runs_root is not None:
        candidates += [Path(runs_root) / path_or_run / "checkpoint"]
        # UNIREX writes 'ER-XXXX/checkpoints/epoch=X-step=XXXX.ckpt': the first component names the run
        candidates += [Path(runs_root) / Path(path_or_run).parts[0] / "checkpoint"] if Path(path_or_run).parts else []
    for c in candidates:
        if (c / "checkpoint.json").is_file():
            return c
    if (p / "meta.json").is_file() or (runs_root is not None and (Path(runs_root) / path_or_run / "meta.json").is_file()):
        raise UnirexError(f"run '{path_or_run}' has no checkpoint: train it with save_checkpoint=True")
    raise UnirexError(f"training.ckpt_path='{path_or_run}' is neither a checkpoint folder nor a run id")


def load_checkpoint(folder: Path, cfg=None, map_location: str | torch.device = "cpu"):
    """Rebuild the model saved in ``folder``.

    Args:
        folder: a checkpoint folder (see :func:`resolve_checkpoint`).
        cfg: a :class:`~unirex.config.RunConfig` to build the extractor with (default: the saved one).

    Returns:
        ``(model, saved_cfg, info)``.
    """
    from safetensors.torch import load_file

    from unirex.config import from_dict
    from unirex.models import TaskLM, build_model

    folder = Path(folder)
    saved_cfg = from_dict(json.loads((folder / "config.json").read_text()), validate=False)
    info = json.loads((folder / "checkpoint.json").read_text())
    task_lm = TaskLM.from_pretrained(folder / TASK_LM_DIR)
    model = build_model(cfg or saved_cfg, task_lm.num_classes, task_lm=task_lm)
    rest = load_file(str(folder / EXTRACTOR_FILE))
    expected = set(_rest_state(model))
    if cfg is None or set(rest) == expected:
        missing, unexpected = expected - set(rest), set(rest) - expected
        if missing or unexpected:
            raise UnirexError(f"checkpoint {folder} does not match its config: missing {sorted(missing)[:3]}, "
                              f"unexpected {sorted(unexpected)[:3]}")
        model.load_state_dict(rest, strict=False)
    # else: a different extractor than the checkpoint's (e.g. evaluate a task LM with another attr algo)
    return model.to(map_location), saved_cfg, info
