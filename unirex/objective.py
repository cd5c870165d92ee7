"""One training batch -> every loss component the config asks for (:func:`compute_losses`).

The engine calls ``losses = compute_losses(batch, model, cfg)``, then ``losses["loss"].backward()`` and
steps its optimizer. Components (present only when active):

===============  ==========================================================================
task_loss        CE of the task LM on the full input (weight ``model.task_wt``); for A2R, on
                 the top-k rationale alone, pooled over the bins (A2R has no full-input loss)
comp_loss        comprehensiveness, mean over the batch per top-k bin, then over ``model.topk``
suff_loss        sufficiency, same averaging (``kldiv`` = SGT)
plaus_loss       BCE of the extractor scores against gold rationales (``model.plaus_wt``)
l2e_loss         CE of the extractor's 5-class head against the teacher's binned attributions
a2r_loss         A2R: divergence (``model.a2r_criterion``) between the rationale predictor and
                 the attention predictor, pooled over the bins (``model.a2r_wt``)
loss             the weighted sum
===============  ==========================================================================

How each follows UNIREX's code (``src/model/lm.py``, ``src/utils/losses.py``):

* The rationale-only input of training (sufficiency, A2R's predictor, FRESH) keeps the first token
  ([CLS]) and the rationale, nothing else, through the attention mask (UNIREX's ``expls`` mask); the
  comprehensiveness input keeps everything but the rationale (:func:`unirex.rationale.keep_mask`).
* A2R is select-then-predict: the task LM is trained on its top-k rationales only; an attention
  predictor reads the whole input pooled by ``softmax`` of the generator's token logits over the
  non-padding positions and is trained only by the divergence, which also trains the generator.
* FRESH trains on the teacher's binary top-k (:func:`fresh_keep`), [CLS] plus those tokens.
* AA-Sum / AA-MLP plausibility: ``model.attr_grad=detach`` (UNIREX) or ``create_graph``.

Multiple choice (CoS-E): the batch holds one row per (example, choice); the task LM's per-row logits are
grouped into ``[B, C]`` (:meth:`unirex.models.task_lm.TaskLM.group_choices`) for the task loss, comp, suff
and A2R, so each is a softmax over the choices as in UNIREX; the extractor, the top-k rationale and the
plausibility and L2E losses stay per row.

Extra batch entries this module reads (the engine adds them):

* ``teacher_scores`` ``[B, L]`` float: a teacher run's saved attributions aligned with ``input_ids``
  (same arch and ``max_length``; values outside explainable positions are ignored). Required for
  ``model.l2e=True`` (from ``data.l2e_exp_id``); for ``model=fresh`` (from ``data.fresh_exp_id``) the
  batch is pruned to the teacher's top-k when it carries them, else it is taken as already pruned.
* ``plaus_mask`` ``[B]`` bool: which examples get plausibility supervision when
  ``data.plaus_frac < 1`` (see :func:`plausibility_subset` and
  :class:`unirex.data.sampling.HalfSupervisedBatchSampler`); always combined with ``has_rationale``.

The rationale is a hard top-k selection (:func:`unirex.rationale.topk_mask`) with no gradient: the
comprehensiveness and sufficiency losses train the **task LM** through the forward passes on the
input with the rationale removed or kept alone, as in the paper. The paper removes tokens through the
attention mask; ``model.rationale_removal=drop`` (the default) deletes them and keeps the others'
original position ids, which gives the same logits and gradients at a fraction of the cost on archs
with absolute positions (:mod:`unirex.models.removal`; other archs fall back to the mask). The
extractor is trained by plausibility, L2E and A2R; ``model.rationale_relaxation=straight_through``
(off by default) also lets comp/suff reach it (see :meth:`unirex.models.task_lm.TaskLM.forward_rationale`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from unirex import losses as L
from unirex.errors import UnirexError
from unirex.models.extractors.base import TrainingScores, ordinal_scores
from unirex.models.removal import variant_logits
from unirex.protocol import is_reference
from unirex.rationale import candidates, keep_mask, mark_selectable, topk_mask

if TYPE_CHECKING:
    from unirex.config import RunConfig
    from unirex.models.builder import UnirexModel


def plausibility_subset(num_examples: int, frac: float, seed: int = 0) -> torch.Tensor:
    """``[N]`` bool: the fixed subset of a train split that gets plausibility supervision
    (``data.plaus_frac``; index = row in the split, ``batch['index']``).

    As UNIREX's ``build_dataset.py --pct_train_rationales``: ``ceil(N * pct / 100)`` examples drawn
    without replacement by a seeded generator (``data.plaus_frac_seed``, not the run's seed, so every
    seed of a method sees the same subset). ``pct = 100 * frac`` is rounded to 9 decimals first so a
    fraction like 0.07 counts ``ceil(7.0)``, not ``ceil(7.000000000000001)``.
    """
    pct = round(float(frac) * 100.0, 9)
    n_sel = min(num_examples, int(math.ceil(num_examples * pct / 100.0)))
    perm = torch.randperm(num_examples, generator=torch.Generator().manual_seed(int(seed)))
    mask = torch.zeros(num_examples, dtype=torch.bool)
    mask[perm[:n_sel]] = True
    return mask


def fresh_keep(batch: dict[str, torch.Tensor], k_percent: float) -> torch.Tensor:
    """``[B, L]`` bool: FRESH's input, as UNIREX builds it (``src/data/data.py``): the first token
    ([CLS]) and the teacher's binary top-k of ``batch['teacher_scores']``, with the count
    ``max(1, int(k / 100 * (n - 1)))`` (truncated, not rounded) for ``n`` non-padding tokens, chosen
    among :func:`unirex.rationale.candidates` (the protocol's rule)."""
    if "teacher_scores" not in batch:
        raise UnirexError("model=fresh needs batch['teacher_scores'] (the attributions of data.fresh_exp_id)")
    cand = candidates(batch)
    r = topk_mask(batch["teacher_scores"], cand, batch["attention_mask"], k_percent, rule="floor")
    return keep_mask(batch["attention_mask"], cand, r, "only").bool()


def fresh_batch(batch: dict[str, torch.Tensor], k_percent: float) -> dict[str, torch.Tensor]:
    """The batch FRESH trains on: ``attention_mask`` replaced by :func:`fresh_keep` (the other tokens
    stay in place, masked, as in UNIREX's training step); ``teacher_scores`` dropped."""
    out = {k: v for k, v in batch.items() if k != "teacher_scores"}
    out["attention_mask"] = fresh_keep(batch, k_percent).to(batch["attention_mask"].dtype)
    return out


def _needs_scores(cfg: "RunConfig") -> bool:
    m = cfg.model
    return m.comp_wt > 0 or m.suff_wt > 0 or m.plaus_wt > 0 or m.l2e or m.name == "a2r"


def _scores(batch, model: "UnirexModel", cfg: "RunConfig", hidden: torch.Tensor | None):
    """Extractor scores ``[B, L]`` and (learned heads) token logits ``[B, L, out]``, or None; attribution
    extractors explain the gold label and keep the graph ``model.attr_grad`` says when a loss trains
    through them (plausibility, a relaxed rationale)."""
    m = cfg.model
    grad = m.attr_grad if (m.plaus_wt > 0 or m.rationale_relaxation != "none") else None
    out = model.extractor.training_scores(batch, model.task_lm, target=batch["label"], hidden_states=hidden, grad=grad)
    return out


def unmasked_scores(out: TrainingScores) -> torch.Tensor:
    """``[B, L]`` the extractor's scores at every position, before the explainable mask: a learned head's
    logits (L2E: its ordinal score), an attribution extractor's pooled attributions; the masked scores when
    the extractor gives neither (a model-free scorer, a plugin)."""
    if out.unmasked is not None:
        return out.unmasked
    tl = out.token_logits
    if tl is not None:
        return tl.squeeze(-1) if tl.shape[-1] == 1 else ordinal_scores(tl)
    return out.scores


def _masked_logits(lm, batch, variants: list[tuple[torch.Tensor, str]], soft: torch.Tensor | None,
                   removal: str = "drop") -> list[torch.Tensor]:
    """The task LM's logits on several (rationale ``[B, L]``, mode) variants -> list of ``[B, C]``: one
    stacked masked forward (``removal="mask"``), or the kept tokens only, at their original positions,
    re-packed by length (``"drop"``, where the arch allows it); see
    :func:`unirex.models.removal.variant_logits`; multiple choice: grouped per example, ``[B, C]``."""
    return [lm.group_choices(x) for x in variant_logits(lm, batch, variants, soft, removal)]


def _comp_suff_losses(lm, batch, cfg: "RunConfig", scores, rationales, labels, ce_full, logits) -> dict:
    """Comprehensiveness and sufficiency, each the mean over the batch per top-k bin, then over the bins."""
    m = cfg.model
    soft = torch.sigmoid(scores) if m.rationale_relaxation == "straight_through" else None
    variants = []
    for r in rationales:
        if m.comp_wt > 0:
            variants.append((r, "remove"))
        if m.suff_wt > 0:
            variants.append((r, "only"))
    masked = iter(_masked_logits(lm, batch, variants, soft, m.rationale_removal))
    comps, suffs = [], []
    for _ in rationales:
        if m.comp_wt > 0:
            lw = next(masked)
            comps.append(L.comp_loss(ce_full, L.task_loss(lw, labels, "none"), m.comp_criterion, m.comp_margin).mean())
        if m.suff_wt > 0:
            lo = next(masked)
            suffs.append(L.suff_loss(ce_full, L.task_loss(lo, labels, "none"), m.suff_criterion,
                                     m.suff_margin, logits, lo).mean())
    out = {}
    if comps:
        out["comp_loss"] = torch.stack(comps).mean()
    if suffs:
        out["suff_loss"] = torch.stack(suffs).mean()
    return out


def _plaus_loss(batch, cfg: "RunConfig", out: TrainingScores) -> torch.Tensor:
    """Plausibility on the examples with a gold rationale (and in ``plaus_mask`` when given): over their
    document tokens (``eraser``), or over every non-padding token, specials and query as negatives, on the
    unmasked scores (``reference``, as its ``calc_plaus_loss``)."""
    selected = batch["has_rationale"].bool()
    if "plaus_mask" in batch:
        selected = selected & batch["plaus_mask"].bool()
    elif cfg.data.plaus_frac < 1.0:
        raise UnirexError("data.plaus_frac < 1 needs batch['plaus_mask'] (see unirex.objective.plausibility_subset)")
    if is_reference(cfg):
        token_mask = batch["attention_mask"].bool() & selected.unsqueeze(1)
        gold = batch["rationale"] * batch["explainable"]  # specials and query are negatives
        return L.plaus_loss(unmasked_scores(out), gold, token_mask, cfg.model.plaus_criterion)
    token_mask = batch["explainable"].bool() & selected.unsqueeze(1)
    return L.plaus_loss(out.scores, batch["rationale"], token_mask, cfg.model.plaus_criterion)


def _l2e_loss(batch, cfg: "RunConfig", token_logits: torch.Tensor | None, num_choices: int | None) -> torch.Tensor:
    """L2E's cross-entropy against the teacher's binned scores: over document tokens, each row binned alone
    (``eraser``), or over every non-padding token, a multiple-choice example's rows binned together
    (``reference``, as its data module bins one example's saved attributions)."""
    if "teacher_scores" not in batch:
        raise UnirexError("model.l2e=True needs batch['teacher_scores'] (the attributions of data.l2e_exp_id)")
    if token_logits is None:
        raise UnirexError("model.l2e=True needs a learned token head (model.explainer_type=lm or self_lm)")
    if is_reference(cfg):
        targets = L.l2e_targets(batch["teacher_scores"], batch["attention_mask"], token_logits.shape[-1],
                                rows_per_example=num_choices or 1)
    else:
        targets = L.l2e_targets(batch["teacher_scores"], batch["explainable"], token_logits.shape[-1])
    return L.l2e_loss(token_logits, targets)


def _a2r_losses(lm, batch, model: "UnirexModel", cfg: "RunConfig", rationales, labels, token_logits):
    """A2R's task loss (from each bin's rationale alone), its divergence, and the logits ``[K*B, C]``."""
    m = cfg.model
    if model.a2r is None:
        raise UnirexError("model=a2r needs the A2R attention predictor (build the model with model=a2r)")
    if token_logits is None or token_logits.shape[-1] != 1:
        raise UnirexError("model=a2r needs a learned generator with one output per token (model.explainer_type=lm or self_lm)")
    k = len(rationales)
    logits = torch.cat(_masked_logits(lm, batch, [(r, "only") for r in rationales], None,
                                       m.rationale_removal))  # [K*B, C]
    task = L.task_loss(logits, labels.repeat(k))
    att_logits = lm.group_choices(model.a2r(batch, token_logits.squeeze(-1))).repeat(k, 1)  # [K*B, C]
    return task, L.a2r_divergence(logits, att_logits, m.a2r_criterion).mean(), logits


def compute_losses(batch: dict[str, torch.Tensor], model: "UnirexModel", cfg: "RunConfig",
                   return_outputs: bool = False):
    """All loss components of one training batch (see the module docstring).

    Args:
        batch: a collated batch on the model's device (plus ``teacher_scores`` / ``plaus_mask``).
        model: from :func:`unirex.models.build_model`.
        cfg: the resolved run config.
        return_outputs: also return ``{"logits": [B, C] (A2R: [K*B, C], the prediction from each bin's
            rationale), "scores": [B, L] | None, "batch": the batch actually fed (FRESH masks it)}``,
            detached.

    Returns:
        ``{name: scalar tensor}`` including ``"loss"``; or ``(losses, outputs)``.
    """
    m = cfg.model
    lm = model.task_lm
    # which tokens a rationale may pick, decided once for the batch (the run's protocol)
    batch = mark_selectable(batch, cfg.protocol)
    if m.name == "fresh" and "teacher_scores" in batch:
        # a batch that still carries the teacher's scores is pruned here; the engine prunes whole
        # splits up front instead (unirex.teacher.fresh_table), so evaluation sees the same input
        batch = fresh_batch(batch, cfg.data.fresh_topk)
    labels = lm.example_labels(batch["label"])  # [B] (multiple choice: one per example, not per row)
    a2r = m.name == "a2r"
    out: dict[str, torch.Tensor] = {}
    total: torch.Tensor | float = 0.0
    hidden = logits = ce_full = None
    if not a2r or model.extractor.reads_task_hidden:
        hidden = lm.encode(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
    if not a2r:  # A2R predicts from its rationale only: no full-input task loss
        logits = lm.group_choices(lm.classify(hidden))  # [B, C] (multiple choice: the rows' logits grouped)
        ce_full = L.task_loss(logits, labels, reduction="none")  # [B]
        out["task_loss"] = ce_full.mean()
        total = m.task_wt * out["task_loss"]

    scores = token_logits = extracted = None
    if _needs_scores(cfg):
        extracted = _scores(batch, model, cfg, hidden)
        scores, token_logits = extracted.scores, extracted.token_logits
    rationales = ([topk_mask(scores, candidates(batch), batch["attention_mask"], k) for k in m.topk]
                  if scores is not None and (m.comp_wt > 0 or m.suff_wt > 0 or a2r) else [])
    if m.comp_wt > 0 or m.suff_wt > 0:
        cs = _comp_suff_losses(lm, batch, cfg, scores, rationales, labels, ce_full, logits)
        for name, wt in (("comp_loss", m.comp_wt), ("suff_loss", m.suff_wt)):
            if name in cs:
                out[name] = cs[name]
                total = total + wt * out[name]
    if m.plaus_wt > 0:
        out["plaus_loss"] = _plaus_loss(batch, cfg, extracted)
        total = total + m.plaus_wt * out["plaus_loss"]
    if m.l2e:
        out["l2e_loss"] = _l2e_loss(batch, cfg, token_logits, getattr(lm, "num_choices", None))
        total = total + m.l2e_wt * out["l2e_loss"]
    if a2r:
        out["task_loss"], out["a2r_loss"], logits = _a2r_losses(lm, batch, model, cfg, rationales, labels, token_logits)
        total = total + m.task_wt * out["task_loss"] + m.a2r_wt * out["a2r_loss"]

    out["loss"] = total
    if return_outputs:
        outputs = {"logits": logits.detach(), "scores": None if scores is None else scores.detach(), "batch": batch}
        return out, outputs
    return out


__all__ = ["compute_losses", "fresh_batch", "fresh_keep", "plausibility_subset"]
