"""Word-perturbation explainers: ``lime``, ``kernel-shap``, ``occlusion`` (token explainers of
:mod:`unirex.registry`, ``(task_lm, batch, target, settings) -> [B, L]``).

**Features.** One feature per word: the subwords of a document word (``batch['word_ids']``) among the
positions a rationale may pick (:func:`unirex.rationale.candidates`) form one feature, so a perturbation
removes whole words. A candidate position outside the documents (the query under ``protocol=reference``)
is a feature of its own. Features are numbered in the order of their first subword.

**Removal.** A removed feature's subwords are hidden through the attention mask (the model reads the
rest of the input at its original positions), as evaluation removes tokens; special tokens and the
query (under ``eraser``) are never removed.

**Output explained.** The probability of ``target`` (softmax over the classes); for multiple choice,
where each row has one logit, the row's logit.

**Scores.** A feature's score is split evenly over its subwords, so the per-word scores (subwords
summed, as Explain and the ERASER metrics pool them) are exactly the features' values: LIME's surrogate
coefficients (Captum's ``Lime`` with a ridge fit, ``alpha=1``, as the ``lime`` package's text explainer, on
binary word masks weighted by Captum's exponential cosine kernel; Captum's default Lasso, ``alpha=0.01``,
sets most coefficients of a long text to exactly 0, leaving the top-k to ties), KernelSHAP's Shapley estimates (Captum's ``KernelShap``), occlusion's drop in
probability. Positions that are not candidates score 0.

**Cost.** Each example runs ``n_samples`` (LIME, KernelSHAP) or ``#words - window + 2`` (occlusion)
perturbed inputs, ``internal_batch_size`` at a time, each at its own length where the encoder allows
deleting the hidden words (:func:`row_output`), else at the example's length; the sampling is seeded per example
with the run's seed, so an example's scores do not depend on the batch it is in.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from unirex.models.extractors.captum_algos import seeded_rngs
from unirex.models.extractors.gradients import predicted_class
from unirex.rationale import candidates
from unirex.registry import ExplainerSettings


def word_features(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, list[int]]:
    """``([B, L] long feature id, -1 where none; features per row)`` (see the module docstring)."""
    cand = candidates(batch).cpu()
    wid = batch.get("word_ids")
    wid = wid.cpu() if wid is not None else torch.full(cand.shape, -1, dtype=torch.long)
    feat = torch.full(cand.shape, -1, dtype=torch.long)
    counts = []
    for r in range(cand.shape[0]):
        ids: dict = {}
        for p in cand[r].nonzero().flatten().tolist():
            w = int(wid[r, p])
            key = ("word", w) if w >= 0 else ("position", p)
            feat[r, p] = ids.setdefault(key, len(ids))
        counts.append(len(ids))
    return feat.to(batch["input_ids"].device), counts


def row_output(task_lm: nn.Module, batch: dict[str, torch.Tensor], r: int, feat: torch.Tensor,
               chunk: int | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """``f(z [N, F]) -> [N, C]``: the output explained (module docstring) of row ``r`` with the features
    where ``z`` is 0 hidden; the row is cut to its last attended token. The ``N`` perturbations run at most
    ``chunk`` a forward pass (None: all at once).

    Where deleting a token equals hiding it (absolute positions, dense attention:
    :func:`unirex.models.removal.drop_support`), the hidden words are deleted and every perturbation runs at
    its own length, re-packed in length-sorted chunks with the original position ids
    (:func:`unirex.packing.run_packed`, the evaluator's machinery): the same outputs up to float rounding,
    at about half the cost for LIME and KernelSHAP, whose samples hide half the words on average.
    Elsewhere they are hidden through the attention mask at the row's full length."""
    from unirex.models.removal import original_position_ids, resolve_removal  # removal imports the config
    from unirex.packing import run_packed

    am = batch["attention_mask"][r]
    n = int(am.nonzero().max()) + 1 if bool(am.any()) else 1
    ids, am, f = batch["input_ids"][r, :n], am[:n], feat[:n]
    tt = batch.get("token_type_ids")
    tt = tt[r, :n] if tt is not None else None
    on = f >= 0
    multiple_choice = bool(getattr(task_lm, "num_choices", None))
    encoder = getattr(task_lm, "encoder", None)
    drop = encoder is not None and resolve_removal("drop", encoder, n).removal == "drop"
    positions = original_position_ids(encoder, ids.unsqueeze(0))[0] if drop else None

    def logits_of(rows: dict[str, torch.Tensor]) -> torch.Tensor:
        return task_lm(input_ids=rows["input_ids"], attention_mask=rows["attention_mask"],
                       token_type_ids=rows.get("token_type_ids"),
                       **({"position_ids": rows["position_ids"]} if "position_ids" in rows else {}))

    def forward(z: torch.Tensor) -> torch.Tensor:
        m = z.shape[0]
        keep = torch.ones(m, n, dtype=am.dtype, device=am.device)
        keep[:, on] = (z[:, f[on]] > 0.5).to(am.dtype)
        keep = am.expand(m, -1) * keep
        rows = {"input_ids": ids.expand(m, -1)}
        if tt is not None:
            rows["token_type_ids"] = tt.expand(m, -1)
        with torch.no_grad():
            if drop:
                logits, _ = run_packed(logits_of, {**rows, "position_ids": positions.expand(m, -1)}, keep.bool(),
                                       chunk, getattr(task_lm, "pad_token_id", 0))
            else:
                step = chunk or m
                logits = torch.cat([logits_of({**{k: v[i:i + step] for k, v in rows.items()},
                                               "attention_mask": keep[i:i + step]}) for i in range(0, m, step)])
        return logits.float() if multiple_choice else torch.softmax(logits.float(), -1)

    return forward


def _to_tokens(values: list[torch.Tensor], feat: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """``[B, L]``: each feature's value split evenly over its subwords, 0 where no feature."""
    out = torch.zeros(feat.shape, dtype=torch.float32, device=feat.device)
    for r, v in enumerate(values):
        if counts[r] == 0:
            continue
        f = feat[r]
        on = f >= 0
        size = torch.bincount(f[on], minlength=counts[r]).clamp(min=1).float()
        v = v.to(feat.device).float()
        out[r, on] = (v / size)[f[on]]
    return out


def _targets(task_lm: nn.Module, batch: dict[str, torch.Tensor], target: torch.Tensor | None) -> list[int]:
    """The class each row explains: ``target``, else the predicted class."""
    if target is None:
        target = predicted_class(task_lm, batch)
    return [int(t) for t in target.reshape(-1).tolist()]


def _captum_scores(cls_name: str, task_lm, batch, target, settings: ExplainerSettings) -> torch.Tensor:
    import captum.attr
    from captum._utils.models.linear_model import SkLearnRidge

    feat, counts = word_features(batch)
    device = batch["input_ids"].device
    values = []
    for r, t in enumerate(_targets(task_lm, batch, target)):
        if counts[r] == 0:
            values.append(torch.zeros(0))
            continue
        forward = row_output(task_lm, batch, r, feat[r], settings.chunk)
        method = captum.attr.Lime(forward, interpretable_model=SkLearnRidge(alpha=1.0)) if cls_name == "Lime" \
            else getattr(captum.attr, cls_name)(forward)
        x = torch.ones(1, counts[r], device=device)
        with seeded_rngs(settings.seed):
            attr = method.attribute(x, baselines=torch.zeros_like(x), target=t, n_samples=settings.samples,
                                    perturbations_per_eval=settings.samples, show_progress=False)
        values.append(attr.detach()[0])
    return _to_tokens(values, feat, counts)


def lime_scores(task_lm: nn.Module, batch: dict[str, torch.Tensor], target: torch.Tensor | None,
                settings: ExplainerSettings) -> torch.Tensor:
    """``lime``: Captum's ``Lime`` over word features (module docstring), ``settings.samples`` samples."""
    return _captum_scores("Lime", task_lm, batch, target, settings)


def kernel_shap_scores(task_lm: nn.Module, batch: dict[str, torch.Tensor], target: torch.Tensor | None,
                       settings: ExplainerSettings) -> torch.Tensor:
    """``kernel-shap``: Captum's ``KernelShap`` over word features, ``settings.samples`` samples."""
    return _captum_scores("KernelShap", task_lm, batch, target, settings)


def occlusion_masks(n_features: int, window: int) -> torch.Tensor:
    """``[1 + W, F]``: the full input (row 0), then each window of ``window`` consecutive features hidden
    (``W = F - window + 1`` windows; one window of every feature when ``window >= F``)."""
    w = min(window, n_features)
    z = torch.ones(n_features - w + 2, n_features)
    for s in range(n_features - w + 1):
        z[s + 1, s:s + w] = 0
    return z


def occlusion_scores(task_lm: nn.Module, batch: dict[str, torch.Tensor], target: torch.Tensor | None,
                     settings: ExplainerSettings) -> torch.Tensor:
    """``occlusion``: for each window of ``settings.window`` consecutive words, the drop of the explained
    output when the window is hidden, ``f(x) - f(x without the window)``; a word scores the mean drop of
    the windows that contain it. With ``window=1``: exactly leave-one-word-out."""
    feat, counts = word_features(batch)
    values = []
    for r, t in enumerate(_targets(task_lm, batch, target)):
        n_features = counts[r]
        if n_features == 0:
            values.append(torch.zeros(0))
            continue
        z = occlusion_masks(n_features, settings.window).to(batch["input_ids"].device)
        out = row_output(task_lm, batch, r, feat[r], settings.chunk)(z)[:, t].cpu()
        drop = out[0] - out[1:]  # [W]
        hidden = 1.0 - z[1:].cpu()  # [W, F]: which features each window hides
        values.append((drop @ hidden) / hidden.sum(0))
    return _to_tokens(values, feat, counts)


__all__ = ["kernel_shap_scores", "lime_scores", "occlusion_masks", "occlusion_scores", "row_output", "word_features"]
