"""The passes of the faithfulness metrics beside ERASER's (:mod:`unirex.metrics.extra`): soft inputs, random
rationales, max-sensitivity. :func:`unirex.evaluate.evaluate` runs them per batch when ``extra`` asks.

What each group costs per example, on top of ERASER's ``1 + 2V`` packed rows:

* ``soft``: 2 rows at (nearly) full length (the document tokens' word embeddings scaled; only tokens with
  factor 0 are deleted), run through the evaluator's packing (:func:`unirex.packing.run_packed`) with a
  forward hook on the model's input-embedding layer that multiplies each token's embedding by its factor;
* ``diag``: 2 rows, the random rationale deleted (~ (100 - k) % of the length) and kept alone (~ k % plus
  the special tokens and query): about one full length, packed;
* ``sensitivity``: ``samples`` explanations of perturbed inputs (each costs what the extractor costs: one
  forward and backward for input x gradient, ``ig_steps`` of them for integrated gradients, one forward
  for a token head), through Captum's ``sensitivity_max``; the unperturbed scores are the evaluator's own.

Perturbations go through forward hooks on the input-embedding layers of the model (every submodule's
``get_input_embeddings()``: the task LM's, and a separate extractor encoder's): they act on a call whose
token ids are the input's, so a baseline embedded from pad ids (integrated gradients) stays as it is, and
on an output of the perturbation's shape (an encoder of another hidden size is left unperturbed).

Randomness is seeded per example (from the seed and the example's row in the split table, and the
perturbation's number), never from a global generator, so every number is independent of the batch an
example shares.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from unirex.data.tensors import input_mask
from unirex.errors import UnirexError
from unirex.metrics.extra import parse_extra_metrics
from unirex.protocol import ERASER
from unirex.rationale import selectable, topk_mask

DEFAULT_SENSITIVITY_SAMPLES = 5
DEFAULT_SENSITIVITY_RADIUS = 0.02


@dataclass(frozen=True)
class ExtraMetrics:
    """Which extra metric groups an evaluation computes (``eval.extra_metrics``) and their knobs.

    Attributes:
        groups: of :data:`unirex.metrics.extra.EXTRA_METRIC_GROUPS` (``soft``, ``sensitivity``, ``diag``).
        sensitivity_samples: perturbations per example (``eval.sensitivity_samples``).
        sensitivity_radius: the L-infinity radius of the noise added to the word embeddings
            (``eval.sensitivity_radius``).
        seed: seeds the random rationales and the perturbations (the run's ``seed``).
    """

    groups: tuple[str, ...] = ()
    sensitivity_samples: int = DEFAULT_SENSITIVITY_SAMPLES
    sensitivity_radius: float = DEFAULT_SENSITIVITY_RADIUS
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "groups", parse_extra_metrics(",".join(self.groups)))
        if int(self.sensitivity_samples) < 1:
            raise UnirexError(f"eval.sensitivity_samples must be >= 1, got {self.sensitivity_samples}")
        if not float(self.sensitivity_radius) > 0:
            raise UnirexError(f"eval.sensitivity_radius must be > 0, got {self.sensitivity_radius}")

    @classmethod
    def parse(cls, value: str | None, **knobs) -> "ExtraMetrics":
        """From an ``eval.extra_metrics`` value (a comma list)."""
        return cls(parse_extra_metrics(value), **knobs)

    def __contains__(self, group: str) -> bool:
        return group in self.groups


# --- the input embeddings and hooks on them --------------------------------------------------------


def input_embedding_modules(model: nn.Module) -> list[nn.Module]:
    """The input-embedding layers of ``model``: ``get_input_embeddings()`` of the model and of every submodule
    that has one (Hugging Face encoders), each once, in module order."""
    out: dict[int, nn.Module] = {}
    for m in model.modules() if hasattr(model, "modules") else ():
        get = getattr(m, "get_input_embeddings", None)
        if not callable(get):
            continue
        try:
            emb = get()
        except (NotImplementedError, AttributeError):
            continue
        if isinstance(emb, nn.Module):
            out.setdefault(id(emb), emb)
    return list(out.values())


def _need_embeddings(model: nn.Module, group: str) -> list[nn.Module]:
    modules = input_embedding_modules(model)
    if not modules:
        raise UnirexError(f"eval.extra_metrics={group} perturbs the input embeddings, and this model has no "
                          "input-embedding layer (get_input_embeddings)")
    return modules


@contextlib.contextmanager
def embedding_hook(modules: list[nn.Module], input_ids: torch.Tensor,
                   transform: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
    """Inside the block, each of ``modules``' outputs on exactly ``input_ids`` (``[B, L]``) becomes
    ``transform(output)`` (``[B, L, H]``); calls on other ids (a pad baseline) are left alone."""

    def hook(_module, args, output):
        ids = args[0] if args else None
        if isinstance(ids, torch.Tensor) and ids.shape == input_ids.shape and torch.equal(ids, input_ids):
            return transform(output)
        return None

    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def scale_embeddings(factors: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """``output * factors[..., None]`` (``factors`` ``[B, L]``)."""
    return lambda out: out * factors.unsqueeze(-1).to(out.dtype)


def add_to_embeddings(delta: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """``output + delta`` where the shapes agree (``delta`` ``[B, L, H]``), else ``output``."""
    return lambda out: out + delta.to(out.dtype) if out.shape == delta.shape else out


# --- soft inputs -----------------------------------------------------------------------------------


def normalised_scores(scores: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """``[B, L]`` the scores min-max normalised to [0, 1] over each row's candidates (0 elsewhere); a row whose
    candidates all score the same gets 0.5 on them (no token more important than another)."""
    cand = candidates.bool()
    s = scores.detach().double()
    lo = s.masked_fill(~cand, float("inf")).amin(dim=1, keepdim=True)
    hi = s.masked_fill(~cand, float("-inf")).amax(dim=1, keepdim=True)
    span = hi - lo
    flat = ~(span > 0)
    norm = (s - lo) / torch.where(flat, torch.ones_like(span), span)
    norm = torch.where(flat, torch.full_like(norm, 0.5), norm).clamp(0.0, 1.0)
    return torch.where(cand, norm, torch.zeros_like(norm)).float()


def soft_factors(scores: torch.Tensor, candidates: torch.Tensor, attention_mask: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The word-embedding factors ``[B, L]`` of the soft comprehensiveness (``1 - s_i``) and sufficiency
    (``s_i``) inputs: ``s`` from :func:`normalised_scores` on the candidates, 1 on the other tokens the
    model reads (special tokens, the query), 0 on padding. A factor of 0 means the token is deleted."""
    am = attention_mask.bool()
    cand = candidates.bool() & am
    s = normalised_scores(scores, cand)
    one = am.float()
    return torch.where(cand, 1.0 - s, one), torch.where(cand, s, one)


# --- random rationales -----------------------------------------------------------------------------


def _generator(*parts: int) -> torch.Generator:
    """A CPU generator seeded from ``parts`` (the seed, an example's row, a draw's number)."""
    state = np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(2, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))


def random_rationale(index: torch.Tensor, candidates: torch.Tensor, attention_mask: torch.Tensor, k_percent: float,
                     seed: int) -> torch.Tensor:
    """``[B, L]`` bool: per row, a uniformly random set of candidates of the size of the top-``k`` %
    rationale (:func:`unirex.rationale.topk_mask`'s count), seeded by ``seed`` and the row's ``index``."""
    B, L = candidates.shape
    lengths = attention_mask.long().sum(dim=1).tolist()
    u = torch.zeros((B, L), dtype=torch.float32)
    for i, row in enumerate(index.tolist()):
        u[i, : lengths[i]] = torch.rand(lengths[i], generator=_generator(seed, row, 0))
    return topk_mask(u.to(candidates.device), candidates, attention_mask, k_percent)


def eraser_candidates(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """``[B, L]`` bool: the tokens ERASER's rationale is drawn from (the document tokens the model reads)."""
    return selectable(batch, ERASER)


# --- max-sensitivity -------------------------------------------------------------------------------


def _takes_target(explain: Callable) -> bool:
    try:
        return "target" in inspect.signature(explain).parameters
    except (TypeError, ValueError):
        return False


def max_sensitivity(model: nn.Module, explain: Callable, batch: dict[str, torch.Tensor], scores: torch.Tensor,
                    target: torch.Tensor | None, settings: ExtraMetrics) -> torch.Tensor:
    """``[B]`` float64: per example, Captum's ``sensitivity_max`` of ``explain``'s scores over the document
    tokens, under ``settings.sensitivity_samples`` perturbations of the word embeddings drawn uniformly from
    the L-infinity ball of radius ``settings.sensitivity_radius`` (seeded per example and perturbation):
    ``max_t ||a(x + d_t) - a(x)|| / ||a(x)||`` (2-norm; the absolute norm where ``||a(x)|| = 0``).

    ``scores`` are the unperturbed ones (``explain(batch)``, not recomputed); ``target`` (``[B]``, or None)
    is handed to ``explain`` when it takes one, so every perturbation explains the same label."""
    from captum.metrics import sensitivity_max  # heavy; only when the metric is asked for

    modules = _need_embeddings(model, "sensitivity")
    cand = eraser_candidates(batch)
    base = torch.where(cand, scores.float(), torch.zeros_like(scores, dtype=torch.float32))
    ids = batch["input_ids"]
    B, L = ids.shape
    with torch.no_grad():
        H = int(modules[0](ids[:1, :1]).shape[-1])
    lengths = input_mask(batch).long().sum(dim=1).tolist()  # the original input's (FRESH reads a pruned one)
    rows = batch["index"].tolist()
    keys = [k for k, v in batch.items() if isinstance(v, torch.Tensor) and v.dim() >= 1 and v.shape[0] == B]
    kwargs = {"target": target} if target is not None and _takes_target(explain) else {}
    draws = iter(range(1, 1 << 30))
    radius = float(settings.sensitivity_radius)

    def perturb(zeros, _radius):
        t = next(draws)
        delta = torch.zeros((B, L, H), dtype=torch.float32)
        for i, row in enumerate(rows):
            g = _generator(settings.seed, row, t)
            delta[i, : lengths[i]] = (torch.rand((lengths[i], H), generator=g) * 2.0 - 1.0) * radius
        return (delta.to(ids.device),)

    def explanation(inputs, additional_forward_args=()):
        delta = inputs[0] if isinstance(inputs, tuple) else inputs
        if delta.dim() == 2:  # Captum's call on the unperturbed input (the placeholder): the evaluator's scores
            return (base,)  # a tuple, as Captum formats every explanation but reads this one as given
        b = {**batch, **dict(zip(keys, additional_forward_args))}
        with torch.enable_grad(), embedding_hook(modules, b["input_ids"], add_to_embeddings(delta)):
            s = explain(b, **kwargs)
        s = s.detach().float()
        return (torch.where(cand, s, torch.zeros_like(s)),)

    zeros = torch.zeros((B, 1), device=ids.device)  # Captum's "inputs": a placeholder; perturb() draws the noise
    out = sensitivity_max(explanation, zeros, perturb_func=perturb, perturb_radius=radius,
                          n_perturb_samples=int(settings.sensitivity_samples), norm_ord="fro",
                          max_examples_per_batch=B, additional_forward_args=tuple(batch[k] for k in keys))
    return out.detach().double().cpu().view(B)


__all__ = ["DEFAULT_SENSITIVITY_RADIUS", "DEFAULT_SENSITIVITY_SAMPLES", "ExtraMetrics", "add_to_embeddings",
           "embedding_hook", "eraser_candidates", "input_embedding_modules", "max_sensitivity", "normalised_scores",
           "random_rationale", "scale_embeddings", "soft_factors"]
