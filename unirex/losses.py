"""UNIREX's training losses as pure functions of tensors.

``L(.)`` below is the per-example cross-entropy of the task LM against the gold label. Shapes: ``B``
batch, ``L`` sequence, ``C`` classes. Faithfulness losses are returned per example (``[B]``);
:func:`unirex.objective.compute_losses` averages them over the batch per top-k bin, then over bins.

* comprehensiveness (``model.comp_criterion``): ``margin`` ``max(-m, L(x) - L(x\\r)) + m`` (m = 1.0),
  ``diff`` ``L(x) - L(x\\r)``;
* sufficiency (``model.suff_criterion``): ``margin`` ``max(-m, L(r) - L(x)) + m`` (m = 0.1), ``diff``
  ``L(r) - L(x)``, ``mae`` ``|L(r) - L(x)|``, ``mse`` ``(L(r) - L(x))^2``, ``kldiv`` (SGT)
  ``KL(p(.|r) || p(.|x))`` averaged over the classes, as UNIREX's code;
* plausibility: ``bce`` with logits and ``pos_weight = #negative / #positive`` tokens;
* L2E: cross-entropy of a per-token ``C``-class head against the teacher's binned attributions;
* A2R: Jensen-Shannon divergence between two predictions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def task_loss(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy ``[B, C], [B] -> scalar`` (or ``[B]`` with ``reduction="none"``)."""
    return F.cross_entropy(logits, labels, reduction=reduction)


def comp_loss(loss_full: torch.Tensor, loss_without: torch.Tensor, criterion: str = "margin",
              margin: float = 1.0) -> torch.Tensor:
    """Comprehensiveness loss per example ``[B]`` from ``L(x)`` and ``L(x without r)`` (both ``[B]``).

    Low when removing the rationale hurts the prediction (``L(x without r)`` high)."""
    diff = loss_full - loss_without
    if criterion == "margin":
        return torch.clamp(diff, min=-margin) + margin
    if criterion == "diff":
        return diff
    raise ValueError(f"unknown comp_criterion {criterion!r}")


def suff_loss(loss_full: torch.Tensor, loss_only: torch.Tensor, criterion: str = "margin", margin: float = 0.1,
              logits_full: torch.Tensor | None = None, logits_only: torch.Tensor | None = None) -> torch.Tensor:
    """Sufficiency loss per example ``[B]`` from ``L(x)`` and ``L(r only)`` (both ``[B]``); ``kldiv``
    needs the logits ``[B, C]`` of both passes instead (no detach: both predictions are trained, as
    in SGT): ``KL(p(.|r) || p(.|x))`` averaged over the ``C`` classes, as UNIREX's code computes it
    (``F.kl_div(log p(.|x), p(.|r), reduction='none')`` then a mean).

    Low when the rationale alone predicts as well as the full input."""
    diff = loss_only - loss_full
    if criterion == "margin":
        return torch.clamp(diff, min=-margin) + margin
    if criterion == "diff":
        return diff
    if criterion == "mae":
        return diff.abs()
    if criterion == "mse":
        return diff.pow(2)
    if criterion == "kldiv":
        if logits_full is None or logits_only is None:
            raise ValueError("suff_criterion=kldiv needs logits_full and logits_only")
        return kl_div(logits_only, logits_full, reduction="class_mean")
    raise ValueError(f"unknown suff_criterion {criterion!r}")


def kl_div(logits_p: torch.Tensor, logits_q: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """``KL(p || q)`` per example ``[B]`` for logits ``[B, C]``; ``reduction="class_mean"`` divides
    the sum over classes by ``C``."""
    logp, logq = logits_p.log_softmax(-1), logits_q.log_softmax(-1)
    kl = (logp.exp() * (logp - logq)).sum(-1)
    if reduction == "class_mean":
        return kl / logits_p.shape[-1]
    if reduction != "sum":
        raise ValueError(f"unknown reduction {reduction!r}")
    return kl


def js_divergence(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence per example ``[B]`` (natural log, in ``[0, ln 2]``) for logits ``[B, C]``."""
    logp, logq = logits_a.log_softmax(-1), logits_b.log_softmax(-1)
    logm = torch.logsumexp(torch.stack([logp, logq]), dim=0) - math.log(2.0)
    kl_pm = (logp.exp() * (logp - logm)).sum(-1)
    kl_qm = (logq.exp() * (logq - logm)).sum(-1)
    return 0.5 * (kl_pm + kl_qm)


def a2r_divergence(logits_a: torch.Tensor, logits_b: torch.Tensor, criterion: str = "jsd") -> torch.Tensor:
    """A2R's divergence per example ``[B]`` for logits ``[B, C]`` (``model.a2r_criterion``).

    ``jsd`` is what UNIREX's code calls ``js_div``: with ``m = (p + q) / 2`` it averages
    ``F.kl_div(log p, m)`` and ``F.kl_div(log q, m)``, and ``F.kl_div(input, target)`` is
    ``KL(target || input)``, so the term is ``(KL(m || p) + KL(m || q)) / 2`` (symmetric, zero iff
    ``p = q``, but unbounded, unlike the Jensen-Shannon divergence). ``js`` is the textbook
    Jensen-Shannon divergence ``(KL(p || m) + KL(q || m)) / 2`` (:func:`js_divergence`).
    """
    if criterion == "js":
        return js_divergence(logits_a, logits_b)
    if criterion != "jsd":
        raise ValueError(f"unknown a2r_criterion {criterion!r}")
    logp, logq = logits_a.log_softmax(-1), logits_b.log_softmax(-1)
    logm = torch.logsumexp(torch.stack([logp, logq]), dim=0) - math.log(2.0)
    m = logm.exp()
    return 0.5 * ((m * (logm - logp)).sum(-1) + (m * (logm - logq)).sum(-1))


def plaus_loss(scores: torch.Tensor, gold: torch.Tensor, token_mask: torch.Tensor,
               criterion: str = "bce") -> torch.Tensor:
    """Plausibility loss (scalar): BCE-with-logits of ``scores`` ``[B, L]`` against the gold mask
    ``[B, L]`` over the tokens where ``token_mask`` ``[B, L]`` is True (explainable tokens of examples
    with plausibility supervision), ``pos_weight = #negative / #positive`` of those tokens (1 when a
    class is absent). Zero (with a graph) when no token is selected."""
    if criterion != "bce":
        raise ValueError(f"unknown plaus_criterion {criterion!r}")
    sel = token_mask.bool()
    if not sel.any():
        return scores.sum() * 0.0
    s, y = scores[sel], gold[sel].float()
    pos = y.sum()
    neg = y.numel() - pos
    pos_weight = (neg / pos) if pos > 0 and neg > 0 else torch.ones((), device=s.device)
    return F.binary_cross_entropy_with_logits(s, y, pos_weight=pos_weight.to(s.dtype))


def l2e_targets(teacher_scores: torch.Tensor, explainable: torch.Tensor, num_classes: int = 5,
                ignore_index: int = -100, rows_per_example: int = 1) -> torch.Tensor:
    """Bin a teacher's attributions ``[B, L]`` into 5 ordinal classes per token, by UNIREX's rule.

    Per example, with ``pos`` / ``neg`` the mean of its positive / negative scores (0 when it has
    none), a score ``x`` gets class 0 if ``x < neg``, 1 if ``neg <= x < 0``, 2 if ``x == 0``, 3 if
    ``0 < x <= pos``, else 4. The means are taken over the explainable positions (the only ones whose
    saved scores are not 0 in this project, so they are the means over the whole example, as UNIREX
    takes them). Returns ``[B, L]`` long, ``ignore_index`` outside explainable positions.

    ``explainable`` is whichever mask the caller bins and trains over (the reference protocol passes the
    attention mask: every non-padding token). ``rows_per_example`` > 1 (multiple choice: an example's ``C``
    consecutive rows) takes the two means over all the rows of an example together, as the reference bins
    one example's saved attributions.
    """
    if num_classes != 5:
        raise ValueError(f"UNIREX's L2E binning has 5 classes, not {num_classes}")
    expl = explainable.bool()
    s = teacher_scores.detach().double().masked_fill(~expl, 0.0)
    pos, neg = s > 0, s < 0
    r = max(int(rows_per_example), 1)
    if s.shape[0] % r:
        raise ValueError(f"{s.shape[0]} rows are not whole examples of {r} rows")

    def per_example(x: torch.Tensor) -> torch.Tensor:  # [B, L] -> [B, 1]: the sum over the example's rows
        return x.reshape(-1, r * x.shape[1]).sum(1, keepdim=True).repeat_interleave(r, dim=0)

    mean_pos = per_example(s * pos) / per_example(pos.double()).clamp(min=1)
    mean_neg = per_example(s * neg) / per_example(neg.double()).clamp(min=1)
    classes = torch.full_like(s, 4, dtype=torch.long)
    classes[(s > 0) & (s <= mean_pos)] = 3
    classes[s == 0] = 2
    classes[(s >= mean_neg) & (s < 0)] = 1
    classes[s < mean_neg] = 0
    return classes.masked_fill(~expl, ignore_index)


def l2e_loss(token_logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Cross-entropy of ``[B, L, C]`` token logits against ``[B, L]`` classes (scalar; 0 if none)."""
    if not (targets != ignore_index).any():
        return token_logits.sum() * 0.0
    return F.cross_entropy(token_logits.reshape(-1, token_logits.shape[-1]), targets.reshape(-1),
                           ignore_index=ignore_index)


__all__ = ["a2r_divergence", "comp_loss", "js_divergence", "kl_div", "l2e_loss", "l2e_targets", "plaus_loss", "suff_loss", "task_loss"]
