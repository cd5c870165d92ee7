"""Attribution algorithms from Captum, over the task LM's word embeddings (``inputs_embeds``).

Every algorithm attributes the logit of ``target`` to the word embeddings ``[B, L, H]``; the
extractor then pools the hidden dimension. Each algorithm's facts (its Captum class, whether it needs a
baseline, which ``model.attr_grad`` modes can train through it, fixed arguments) are its spec in
:mod:`unirex.registry`, where a plugin registers more. Which Captum algorithms run on a Hugging Face encoder this
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

import contextlib
import inspect

import numpy as np
import torch
from torch import nn

from unirex.registry import get_attribution


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


def reference_baseline(task_lm: nn.Module, batch: dict[str, torch.Tensor], embeds: torch.Tensor) -> torch.Tensor:
    """``[B, L, H]``: the baseline as the UNIREX reference builds it: the pad token's embedding everywhere
    except the first token ([CLS]) and the separator tokens, which keep theirs (the query becomes padding
    too). A row's separator is its last non-padding token ([SEP], or ``</s>`` for RoBERTa-style archs)."""
    ids, am = batch["input_ids"], batch["attention_mask"].bool()
    last = (am.long().sum(1) - 1).clamp(min=0)
    sep = ids.gather(1, last.unsqueeze(1))  # [B, 1]
    keep = am & (ids == sep)
    keep[:, 0] = True
    pad = task_lm.embed(torch.full_like(ids[:, :1], task_lm.pad_token_id)).detach()  # [B, 1, H]
    return torch.where(keep.unsqueeze(-1), embeds, pad.expand_as(embeds))


#: ``baseline`` of :func:`captum_attributions`: which positions of the baseline keep their embedding
BASELINES = {"explainable": pad_baseline, "reference": reference_baseline}


@contextlib.contextmanager
def seeded_rngs(seed: int):
    """Seed torch's and numpy's global generators for one call and put both back after: Captum draws
    GradientShap's baseline choice from numpy and its noise from torch (LIME's and KernelSHAP's samples
    from torch), so seeding torch alone left the attributions to numpy's global state."""
    np_state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        np.random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(np_state)


def captum_attributions(algo: str, task_lm: nn.Module, batch: dict[str, torch.Tensor], target: torch.Tensor,
                        ig_steps: int = 3, internal_batch_size: int | None = None,
                        return_convergence_delta: bool = False, seed: int = 0, attach_inputs: bool = False,
                        baseline: str = "explainable",
                        n_samples: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Attributions ``[B, L, H]`` of ``target`` ``[B]`` w.r.t. the word embeddings, and the
    convergence delta ``[B]`` when asked for and the algorithm has one (integrated gradients, DeepLift,
    GradientShap: averaged over its samples) else None.

    ``algo`` is any registered Captum algorithm (:func:`unirex.registry.get_attribution`): its class is
    applied to :class:`EmbedsForward`, with the pad baseline when it needs one, the spec's fixed keyword
    arguments, and ``n_steps=ig_steps`` / ``internal_batch_size`` / ``n_samples`` (when given:
    ``model.attr_n_samples``) where ``attribute()`` takes them and the spec does not fix them.

    ``attach_inputs``: keep the word embeddings' graph, so the attributions' input factor is
    differentiable w.r.t. the embedding matrix (see the module docstring); otherwise detached.

    ``baseline`` (:data:`BASELINES`): ``explainable`` pads the document tokens (:func:`pad_baseline`, the
    ``eraser`` protocol); ``reference`` pads all but [CLS] and the separators (:func:`reference_baseline`).
    """
    spec = get_attribution(algo)
    method = spec.captum()(EmbedsForward(task_lm))
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
    takes = inspect.signature(method.attribute).parameters
    knobs = (("n_steps", int(ig_steps)), ("internal_batch_size", internal_batch_size), ("n_samples", n_samples))
    kwargs = {k: v for k, v in knobs if k in takes and not (k == "n_samples" and v is None)}
    kwargs.update(spec.defaults)
    if spec.needs_baseline:
        base = BASELINES[baseline](task_lm, batch, embeds.detach())
        kwargs["baselines"] = torch.cat([base, torch.zeros_like(base)]) if spec.baseline_distribution else base
    with_delta = bool(return_convergence_delta) and method.has_convergence_delta()
    if with_delta:
        kwargs["return_convergence_delta"] = True
    seeded = seeded_rngs(seed) if spec.seeded else contextlib.nullcontext()
    with torch.enable_grad(), seeded:
        out = method.attribute(embeds, target=target.to(embeds.device), additional_forward_args=(am, tt), **kwargs)
    attrs, delta = out if with_delta else (out, None)
    if delta is not None and delta.shape[0] != embeds.shape[0]:
        delta = delta.view(embeds.shape[0], -1).mean(1)  # one delta per sample (GradientShap's): average them
    if not attach_inputs:
        attrs = attrs.detach()
    return attrs, (delta.detach() if delta is not None else None)
