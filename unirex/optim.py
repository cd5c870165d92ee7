"""The optimizers ``model.optimizer.name`` selects (:func:`build_optimizer`).

``adamw`` is :class:`torch.optim.AdamW`. ``hf_adamw`` (:class:`HFAdamW`) is the AdamW variant the UNIREX
reference trains with (Hugging Face's former ``transformers.AdamW`` with ``correct_bias=False``, removed from
recent ``transformers`` releases): per parameter, with ``m`` and ``v`` the exponential moving averages of the
gradient and of its square,

    p <- p - lr * m / (sqrt(v) + eps)        (no bias correction of m or v)
    p <- p - lr * weight_decay * p           (decoupled decay, applied after the step)

where torch's AdamW divides ``m`` and ``v`` by ``1 - beta^t`` and decays before the step.
"""

from __future__ import annotations

import torch


class HFAdamW(torch.optim.Optimizer):
    """AdamW with optional bias correction (see the module docstring)."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-6,
                 weight_decay: float = 0.0, correct_bias: bool = False):
        if lr < 0 or eps < 0 or not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"bad HFAdamW settings: lr={lr} betas={betas} eps={eps}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      correct_bias=correct_bias))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                m, v = state["exp_avg"], state["exp_avg_sq"]
                state["step"] += 1
                m.mul_(b1).add_(g, alpha=1.0 - b1)
                v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
                step_size = group["lr"]
                if group["correct_bias"]:
                    t = state["step"]
                    step_size = step_size * (1.0 - b2 ** t) ** 0.5 / (1.0 - b1 ** t)
                p.addcdiv_(m, v.sqrt().add_(group["eps"]), value=-step_size)
                if group["weight_decay"] > 0.0:
                    p.add_(p, alpha=-group["lr"] * group["weight_decay"])
        return loss


def build_optimizer(name: str, param_groups: list[dict], lr: float, betas, eps: float) -> torch.optim.Optimizer:
    """``adamw`` (torch) or ``hf_adamw`` (:class:`HFAdamW`, no bias correction) over ``param_groups`` (each
    with its own ``weight_decay``)."""
    if name == "hf_adamw":
        return HFAdamW(param_groups, lr=lr, betas=tuple(betas), eps=eps, correct_bias=False)
    if name == "adamw":
        return torch.optim.AdamW(param_groups, lr=lr, betas=tuple(betas), eps=eps)
    raise ValueError(f"unknown optimizer {name!r}")


__all__ = ["HFAdamW", "build_optimizer"]
