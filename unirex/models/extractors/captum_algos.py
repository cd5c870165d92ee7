"""Attribution algorithms from Captum, over the task LM's word embeddings (``inputs_embeds``).

Every algorithm attributes the logit of ``target`` to the word embeddings ``[B, L, H]``; the
extractor then pools the hidden dimension. Which Captum algorithms run on a Hugging Face encoder this
way (checked on BERT with torch 2.13 / transformers 5 / captum 0.9, see tests/test_models.py):

* ``input-x-gradient`` (``InputXGradient``), ``gradient`` (``Saliency``, absolute gradient),
  ``integrated-gradients`` (``IntegratedGradients``: ``model.ig_steps``, ``model.internal_batch_size``,
  ``model.return_convergence_delta``): exact.
* ``deeplift`` (``DeepLift``): runs, but the rescale rule only applies to nonlinearities that are
  ``nn.Module``s Captum knows (ReLU, Tanh, Sigmoid, ...). BERT's GELU is ``GELUActivation`` and its
  attention softmax and LayerNorm are functional calls, so they pass plain gradients: on a
  transformer DeepLift is an approximation (its convergence delta is not ~0).
* ``gradient-shap`` (``GradientShap``): runs; expected gradients over random interpolations with a
  baseline distribution (the pad baseline below and all-zero embeddings), ``n_samples=5``, seeded.

Baseline ("absence of the text") for integrated gradients, DeepLift and GradientShap: the input with
every explainable position's embedding replaced by the pad token's embedding; special tokens and
the query keep their embeddings.

Captum never keeps the gradient in the graph (it differentiates without ``create_graph``). With
``attach_inputs=True`` the word embeddings handed to Captum keep their graph, so the *input factor*
of an attribution stays differentiable: a loss on ``input-x-gradient`` (``x * grad``),
``integrated-gradients`` (``(x - baseline) * mean grad``) or ``deeplift`` reaches the embedding
matrix, the gradient factor being a constant. This is how UNIREX trains AA-Sum / AA-MLP for
plausibility (``model.attr_grad=detach``). ``gradient`` (|grad|) and ``gradient-shap`` (random
interpolations) keep no input factor. Differentiating through the gradient itself (a double
backward) is :mod:`unirex.models.extractors.gradients`.
"""

from __future__ import annotations

import torch
from torch import nn

CAPTUM_ALGOS = ("input-x-gradient", "integrated-gradients", "gradient", "deeplift", "gradient-shap")


class EmbedsForward(nn.Module):
    """``(inputs_embeds, attention_mask, token_type_ids) -> logits [B, C]``: the task LM as Captum sees it."""

    def __init__(self, task_lm: nn.Module):
        super().__init__()
        self.task_lm = task_lm

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> torch.Tensor:
        return self.task_lm(inputs_embeds=inputs_embeds, attention_mask=attention_mask, token_type_ids=token_type_ids)


def pad_baseline(task_lm: nn.Module, batch: dict[str, torch.Tensor], embeds: torch.Tensor) -> torch.Tensor:
    """``[B, L, H]``: ``embeds`` with explainable positions set to the pad token's embedding."""
    pad = task_lm.embed(torch.full_like(batch["input_ids"][:, :1], task_lm.pad_token_id)).detach()  # [B, 1, H]
    return torch.where(batch["explainable"].bool().unsqueeze(-1), pad.expand_as(embeds), embeds)


def captum_attributions(algo: str, task_lm: nn.Module, batch: dict[str, torch.Tensor], target: torch.Tensor,
                        ig_steps: int = 3, internal_batch_size: int | None = None,
                        return_convergence_delta: bool = False, seed: int = 0, attach_inputs: bool = False
                        ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Attributions ``[B, L, H]`` of ``target`` ``[B]`` w.r.t. the word embeddings, and the
    convergence delta ``[B]`` when asked for (integrated gradients, DeepLift, GradientShap) else None.

    ``attach_inputs``: keep the word embeddings' graph, so the attributions' input factor is
    differentiable w.r.t. the embedding matrix (see the module docstring); otherwise detached.
    """
    from captum.attr import DeepLift, GradientShap, InputXGradient, IntegratedGradients, Saliency

    fwd = EmbedsForward(task_lm)
    am = batch["attention_mask"]
    tt = batch.get("token_type_ids")
    tt = torch.zeros_like(am) if tt is None else tt
    if attach_inputs:
        with torch.enable_grad():
            embeds = task_lm.embed(batch["input_ids"])
        if not embeds.requires_grad:  # a frozen embedding matrix: nothing to attach to
            embeds = embeds.detach().requires_grad_(True)
    else:
        with torch.no_grad():
            embeds = task_lm.embed(batch["input_ids"]).detach()
        embeds = embeds.clone().requires_grad_(True)
    args = (am, tt)
    target = target.to(embeds.device)
    delta = None
    with torch.enable_grad():
        if algo == "input-x-gradient":
            attrs = InputXGradient(fwd).attribute(embeds, target=target, additional_forward_args=args)
        elif algo == "gradient":
            attrs = Saliency(fwd).attribute(embeds, target=target, additional_forward_args=args, abs=True)
        elif algo == "integrated-gradients":
            out = IntegratedGradients(fwd).attribute(
                embeds, baselines=pad_baseline(task_lm, batch, embeds.detach()), target=target,
                additional_forward_args=args, n_steps=int(ig_steps), internal_batch_size=internal_batch_size,
                return_convergence_delta=return_convergence_delta)
            attrs, delta = out if return_convergence_delta else (out, None)
        elif algo == "deeplift":
            out = DeepLift(fwd).attribute(
                embeds, baselines=pad_baseline(task_lm, batch, embeds.detach()), target=target,
                additional_forward_args=args, return_convergence_delta=return_convergence_delta)
            attrs, delta = out if return_convergence_delta else (out, None)
        elif algo == "gradient-shap":
            base = pad_baseline(task_lm, batch, embeds.detach())
            baselines = torch.cat([base, torch.zeros_like(base)])  # the distribution to sample from
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                out = GradientShap(fwd).attribute(
                    embeds, baselines=baselines, target=target, n_samples=5,
                    additional_forward_args=args, return_convergence_delta=return_convergence_delta)
            if return_convergence_delta:
                attrs, d = out
                delta = d.view(embeds.shape[0], -1).mean(1)  # one delta per sample: average them
            else:
                attrs = out
        else:
            raise ValueError(f"unknown Captum attribution algorithm {algo!r}; choose one of {CAPTUM_ALGOS}")
    if not attach_inputs:
        attrs = attrs.detach()
    return attrs, (delta.detach() if delta is not None else None)
