"""Hand-written gradient attributions that can be differentiated again (``create_graph=True``).

Training through the gradient of an attribution (AA-Sum / AA-MLP plausibility with
``model.attr_grad=create_graph``; UNIREX itself detaches the gradient, ``model.attr_grad=detach``)
needs a second derivative of the task LM. PyTorch's fused SDPA kernels have no double backward (on CPU: "derivative for
aten::_scaled_dot_product_flash_attention_for_cpu_backward is not implemented"), so the forward pass
runs inside :func:`second_order_attention`, which selects the math kernel; every other pass keeps the
fast kernel. :func:`input_x_gradient` equals Captum's ``InputXGradient`` on ``inputs_embeds``
(tested).
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn


@contextlib.contextmanager
def second_order_attention():
    """Run SDPA attention with the math backend (differentiable twice) inside this block."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # pragma: no cover - older torch
        yield
        return
    with sdpa_kernel(SDPBackend.MATH):
        yield


def predicted_class(task_lm: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """``[B]`` argmax of the task LM's logits on the full input (no gradient)."""
    with torch.no_grad():
        logits = task_lm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         token_type_ids=batch.get("token_type_ids"))
    return logits.argmax(-1)


def embedding_gradient(task_lm: nn.Module, batch: dict[str, torch.Tensor], target: torch.Tensor,
                       create_graph: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Word embeddings ``[B, L, H]`` and d logit[target] / d embeddings ``[B, L, H]``.

    With ``create_graph`` the gradient stays in the graph (w.r.t. the task LM's parameters, including
    the embedding matrix), so a loss on it trains the task LM; without it both are detached.
    """
    with torch.enable_grad():
        embeds = task_lm.embed(batch["input_ids"])
        if not create_graph:
            embeds = embeds.detach().requires_grad_(True)
        ctx = second_order_attention() if create_graph else contextlib.nullcontext()
        with ctx:
            logits = task_lm(inputs_embeds=embeds, attention_mask=batch["attention_mask"],
                             token_type_ids=batch.get("token_type_ids"))
            picked = logits.gather(1, target.view(-1, 1).to(logits.device)).sum()
            (grad,) = torch.autograd.grad(picked, embeds, create_graph=create_graph)
    if not create_graph:
        embeds = embeds.detach()
    return embeds, grad


#: the attributions ``[B, L, H]`` made of the word embeddings and the gradient of the target logit w.r.t. them,
#: by registry name (:func:`input_x_gradient`, :func:`saliency`, :func:`predicted_embedding_gradient`'s users)
FROM_EMBEDDING_GRADIENT = {"input-x-gradient": lambda embeds, grad: embeds * grad,
                           "gradient": lambda embeds, grad: grad.abs()}


def predicted_embedding_gradient(task_lm: nn.Module, batch: dict[str, torch.Tensor],
                                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits ``[B, C]``, word embeddings and d logit[predicted class] / d embeddings ``[B, L, H]``, all detached,
    from ONE forward pass (the class explained is the argmax of that pass's logits, so explaining the
    prediction costs no separate prediction pass)."""
    with torch.enable_grad():
        embeds = task_lm.embed(batch["input_ids"]).detach().requires_grad_(True)
        logits = task_lm(inputs_embeds=embeds, attention_mask=batch["attention_mask"],
                         token_type_ids=batch.get("token_type_ids"))
        target = logits.detach().argmax(-1)
        (grad,) = torch.autograd.grad(logits.gather(1, target.view(-1, 1)).sum(), embeds)
    return logits.detach(), embeds.detach(), grad


def input_x_gradient(task_lm: nn.Module, batch: dict[str, torch.Tensor], target: torch.Tensor,
                     create_graph: bool = True) -> torch.Tensor:
    """Input x gradient over the word embeddings, ``[B, L, H]`` (sum over ``H`` for token scores)."""
    return FROM_EMBEDDING_GRADIENT["input-x-gradient"](*embedding_gradient(task_lm, batch, target, create_graph))


def saliency(task_lm: nn.Module, batch: dict[str, torch.Tensor], target: torch.Tensor,
             create_graph: bool = True) -> torch.Tensor:
    """Absolute gradient (Captum's ``Saliency`` with ``abs=True``), ``[B, L, H]``."""
    return FROM_EMBEDDING_GRADIENT["gradient"](*embedding_gradient(task_lm, batch, target, create_graph))
