"""Where a run computes: its device, its precision, its seed, and its place in a distributed run.

Under ``torchrun`` / ``accelerate launch`` (``WORLD_SIZE`` > 1) :func:`init_distributed` joins the
process group (NCCL on CUDA, else Gloo) and returns this process's rank and the world size.
"""

from __future__ import annotations

import contextlib
import os
import random

import numpy as np
import torch
import torch.distributed as dist

from unirex.errors import UnirexError


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def pick_device(spec: str) -> torch.device:
    if spec in ("auto", "", None):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise UnirexError(f"setup.device={spec} but CUDA is not available on this machine")
    return torch.device(spec)


def run_device(spec: str, world: int) -> torch.device:
    """The device of this process: ``setup.device``, on a distributed CUDA run its ``LOCAL_RANK``'s GPU."""
    device = pick_device(spec)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def autocast(device: torch.device, precision: str):
    """bf16/fp16 autocast on CUDA when asked; a no-op context on CPU or at 32-bit."""
    if device.type == "cuda" and str(precision) in ("bf16", "fp16"):
        dtype = torch.bfloat16 if str(precision) == "bf16" else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


def init_distributed() -> tuple[int, int]:
    """(rank, world_size), initialising torch.distributed when launched by torchrun/accelerate."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return dist.get_rank(), dist.get_world_size()


def broadcast(value, world: int):
    """Rank 0's ``value`` on every process (the value itself when not distributed)."""
    if world <= 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


__all__ = ["autocast", "broadcast", "init_distributed", "pick_device", "run_device", "seed_everything", "to_device"]
