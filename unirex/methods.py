"""The paper's methods as named presets, and the checks that reject contradictory settings.

A :class:`Method` is a list of config overrides (``model=expl_reg``, ``model.comp_wt=0.5``, ...) with a
title and a description. ``method=<id>`` on the CLI (or :func:`unirex.config.resolve_config`) applies
it before the user's own overrides, which win. The app lists :func:`list_methods`.

:func:`check_settings` runs before any compute: it rejects settings that cannot train what they
claim to (e.g. ``model.plaus_wt>0`` on a dataset without gold rationales, ``model.l2e=True`` without
a teacher run). :func:`unirex.config.validate_config` calls it without data facts; the engine calls it
again with ``has_gold_rationales`` / ``teacher_available`` once it knows them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from unirex.errors import UnirexError, did_you_mean
from unirex.registry import attribution_specs, get_attribution, get_extractor

if TYPE_CHECKING:
    from unirex.config import RunConfig


@dataclass(frozen=True)
class Method:
    """A named recipe of the paper.

    Attributes:
        id: the name used by ``method=<id>`` and the app.
        title: the name in the paper's tables ("Task LM + AA-Sum (comp/suff)").
        description: one or two sentences for the app.
        overrides: config overrides, applied in order.
        needs: data the method needs before it can run: ``"gold"`` (gold rationales),
            ``"fresh_teacher"`` / ``"l2e_teacher"`` (a run's saved attributions).
    """

    id: str
    title: str
    description: str
    overrides: tuple[str, ...]
    needs: tuple[str, ...] = ()


_W = ("model.task_wt=1.0",)
_CS = ("model.comp_wt=0.5", "model.suff_wt=0.5")
_NO_CS = ("model.comp_wt=0.0", "model.suff_wt=0.0")
_AA = ("model=expl_reg", "model.explainer_type=attr_algo", "model.attr_algo=input-x-gradient")
_MLP_HEAD = ("model.expl_head_type=mlp", "model.expl_head_mlp_hidden_dim=2048", "model.expl_head_mlp_hidden_layers=2")


def _registry() -> dict[str, Method]:
    ms = [
        Method("task_lm", "Task LM",
               "The task LM alone, fine-tuned with cross-entropy; rationales are post-hoc attributions "
               "(model.attr_algo: input-x-gradient by default, any attribution algorithm works).",
               ("model=lm", "model.explainer_type=attr_algo", "model.attr_algo=input-x-gradient",
                "model.attr_pooling=sum")),
        Method("sgt", "Task LM + SGT",
               "Saliency-guided training: sufficiency with the KL criterion between the predictions on "
               "the full input and on its top-k input-x-gradient tokens.",
               _AA + ("model.attr_pooling=sum",) + _W +
               ("model.comp_wt=0.0", "model.suff_wt=0.5", "model.suff_criterion=kldiv", "model.plaus_wt=0.0")),
        Method("fresh", "Task LM + FRESH",
               "A new task LM trained and evaluated on only the top-k% tokens of a saved run's "
               "attributions (data.fresh_exp_id, data.fresh_attr_algo, data.fresh_topk); its rationale is "
               "that binary top-k, scored at the single bin of 100%.",
               ("model=fresh", "data.fresh_attr_algo=input-x-gradient", "data.fresh_topk=10"),
               needs=("fresh_teacher",)),
        Method("aa_sum_comp_suff", "Task LM + AA-Sum (comp/suff)",
               "Input-x-gradient attributions summed over the hidden dimension; comprehensiveness and "
               "sufficiency losses train the task LM through the masked passes.",
               _AA + ("model.attr_pooling=sum",) + _W + _CS + ("model.plaus_wt=0.0",)),
    ]
    for algo, what in (("gold", "the gold rationale"), ("inv", "the inverse of the gold rationale"),
                       ("rand", "seeded random scores")):
        ms.append(Method(f"aa_sum_{algo}_comp_suff", f"Task LM + AA-Sum (comp/suff), {algo} rationale",
                         f"Comprehensiveness and sufficiency with {what} as the rationale: a reference "
                         "point for the attribution-based extractor.",
                         ("model=expl_reg", "model.explainer_type=attr_algo", f"model.attr_algo={algo}",
                          "model.attr_pooling=sum") + _W + _CS + ("model.plaus_wt=0.0",),
                         needs=("gold",) if algo != "rand" else ()))
    ms += [
        Method("aa_sum_comp_suff_plaus", "Task LM + AA-Sum (comp/suff/plaus)",
               "AA-Sum with plausibility too: the summed input-x-gradient is trained towards the gold "
               "rationale through its input factor (the word embeddings), the gradient factor held "
               "constant as in UNIREX (model.attr_grad=create_graph trains through a double backward).",
               _AA + ("model.attr_pooling=sum",) + _W + _CS + ("model.plaus_wt=0.5",), needs=("gold",)),
        Method("aa_mlp_comp_suff_plaus", "Task LM + AA-MLP (comp/suff/plaus)",
               "Input-x-gradient vectors pooled by a learned MLP into token scores; comp/suff/plaus.",
               _AA + ("model.attr_pooling=mlp", "model.attr_mlp_hidden_dim=2048", "model.attr_mlp_hidden_layers=2")
               + _W + _CS + ("model.plaus_wt=0.5",), needs=("gold",)),
    ]
    for kind, name, long in (("lm", "DLM", "a dedicated second encoder with a token head"),
                             ("self_lm", "SLM", "a token head on the task LM's own encoder")):
        for head, head_ov in (("linear", ("model.expl_head_type=linear",)), ("mlp", _MLP_HEAD)):
            base = ("model=expl_reg", f"model.explainer_type={kind}") + head_ov + _W
            ms.append(Method(f"{name.lower()}_plaus_{head}", f"Task LM + {name} (plaus), {head} head",
                             f"{name}: {long}, trained for plausibility only (bce against gold rationales).",
                             base + _NO_CS + ("model.plaus_wt=0.5",), needs=("gold",)))
            ms.append(Method(f"{name.lower()}_comp_suff_plaus_{head}",
                             f"Task LM + {name} (comp/suff/plaus), {head} head",
                             f"UNIREX with {name} ({long}): comprehensiveness, sufficiency and plausibility.",
                             base + _CS + ("model.plaus_wt=0.5",), needs=("gold",)))
    ms += [
        Method("l2e", "Task LM + L2E",
               "Learning to explain: a DLM head with 5 ordinal classes per token distils a teacher run's "
               "attributions binned by UNIREX's rule (data.l2e_exp_id, data.l2e_attr_algo); a token's score is "
               "its most likely class minus 2, which carries no gradient, so the plausibility weight of the "
               "paper's command trains nothing, as in UNIREX's code.",
               ("model=expl_reg", "model.explainer_type=lm", "model.expl_head_type=linear") + _W + _NO_CS +
               ("model.plaus_wt=0.5", "model.l2e=True", "model.l2e_wt=0.5",
                "data.l2e_attr_algo=integrated-gradients"),
               needs=("gold", "l2e_teacher")),
        Method("a2r", "Task LM + A2R",
               "Attention-to-rationale, a select-then-predict model: a DLM generator scores tokens, the task "
               "LM is trained and scored on its top-k rationales alone, an attention predictor reads the "
               "whole input pooled by softmax of the scores; UNIREX's divergence between the two, plus "
               "plausibility.",
               ("model=a2r",) + _W + ("model.plaus_wt=0.5", "model.a2r_wt=0.5"), needs=("gold",)),
    ]
    return {m.id: m for m in ms}


METHODS: dict[str, Method] = _registry()


def list_methods() -> list[Method]:
    """Every preset, in the paper's order."""
    return list(METHODS.values())


def get_method(name: str) -> Method:
    """The preset called ``name`` (:class:`UnirexError` with suggestions if there is none)."""
    if name in METHODS:
        return METHODS[name]
    hint = did_you_mean(name, METHODS, n=3, cutoff=0.4, quote=str) or f"; choose one of {', '.join(METHODS)}"
    raise UnirexError(f"unknown method '{name}'{hint}")


def check_settings(cfg: "RunConfig", has_gold_rationales: bool | None = None,
                   teacher_available: bool | None = None) -> None:
    """Reject contradictory settings before compute. ``None`` means "not known yet" (skip that check).

    Args:
        cfg: a resolved config.
        has_gold_rationales: whether the training data has gold rationales (any example).
        teacher_available: whether the FRESH / L2E teacher run's attributions were found.

    Raises:
        UnirexError: naming the keys in conflict and what to change.
    """
    m, d = cfg.model, cfg.data
    reg = {"comp_wt": m.comp_wt, "suff_wt": m.suff_wt, "plaus_wt": m.plaus_wt, "l2e_wt": m.l2e_wt,
           "a2r_wt": m.a2r_wt}
    train = cfg.training.mode in ("train", "finetune")
    if cfg.training.mode in ("evaluate", "finetune") and not cfg.training.ckpt_path:
        raise UnirexError(f"training={cfg.training.mode} needs training.ckpt_path (a run id or checkpoint folder)")
    if m.name in ("lm", "fresh"):
        active = [f"model.{k}={v}" for k, v in reg.items() if v > 0]
        if active or m.l2e:
            raise UnirexError(f"model={m.name} trains the task LM alone, but {', '.join(active or ['model.l2e=True'])} "
                              "is set; use model=expl_reg (or model=a2r)")
    if m.name == "fresh":
        if not d.fresh_exp_id:
            raise UnirexError("model=fresh needs data.fresh_exp_id: the run whose saved attributions it reads "
                              "(train it with model.save_outputs=True)")
        if d.fresh_topk is None:
            raise UnirexError("model=fresh needs data.fresh_topk (percent of tokens kept, e.g. 10)")
    elif d.fresh_exp_id and train:
        raise UnirexError("data.fresh_exp_id is set but model is not fresh; add model=fresh")
    if m.a2r_wt > 0 and m.name != "a2r":
        raise UnirexError("model.a2r_wt>0 needs model=a2r")
    if m.name == "a2r":
        if not get_extractor(m.explainer_type).token_head:
            raise UnirexError("model=a2r needs a learned generator: model.explainer_type=lm or self_lm")
        if m.a2r_wt <= 0:
            raise UnirexError("model=a2r needs model.a2r_wt>0 (the divergence that trains its generator)")
        if m.comp_wt > 0 or m.suff_wt > 0 or m.l2e:
            raise UnirexError("model=a2r trains without comprehensiveness, sufficiency or L2E (as UNIREX asserts); "
                              "set model.comp_wt=0 and model.suff_wt=0")
    # L2E
    if m.l2e_wt > 0 and not m.l2e:
        raise UnirexError("model.l2e_wt>0 but model.l2e=False; set model.l2e=True")
    if m.l2e:
        if m.comp_wt > 0 or m.suff_wt > 0:
            raise UnirexError(f"model.l2e=True trains without comprehensiveness or sufficiency (as UNIREX asserts), "
                              f"but model.comp_wt={m.comp_wt} model.suff_wt={m.suff_wt}; set both to 0")
        if m.l2e_wt <= 0:
            raise UnirexError("model.l2e=True needs model.l2e_wt>0")
        if not get_extractor(m.explainer_type).token_head:
            raise UnirexError("model.l2e=True needs a learned token head: model.explainer_type=lm or self_lm")
        if not d.l2e_exp_id and train:
            raise UnirexError("model.l2e=True needs data.l2e_exp_id: the teacher run whose saved attributions "
                              "it learns (train it with model.save_outputs=True)")
    # attribution-based extractors: what the algorithm's spec declares it can do
    attr = get_attribution(m.attr_algo) if get_extractor(m.explainer_type).attribution else None
    if attr is not None:
        if attr.token_level and m.attr_pooling == "mlp":
            raise UnirexError(f"model.attr_algo={m.attr_algo} gives token scores directly; use model.attr_pooling=sum")
        if m.plaus_wt > 0 and attr.model_free:
            raise UnirexError(f"model.plaus_wt>0 has nothing to train with model.attr_algo={m.attr_algo}")
        if (m.plaus_wt > 0 and m.attr_pooling == "sum" and not attr.model_free
                and m.attr_grad not in attr.differentiable):
            ok = [s.name for s in attribution_specs() if m.attr_grad in s.differentiable]
            raise UnirexError(
                f"model.plaus_wt>0 trains through the attributions, which with model.attr_grad={m.attr_grad} needs "
                f"an algorithm whose scores are differentiable ({', '.join(ok)}); model.attr_algo={m.attr_algo} "
                "is not one" + ("" if attr.token_level else " (or use model.attr_pooling=mlp to train an MLP on top of it)"))
        if m.rationale_relaxation != "none" and attr.model_free:
            raise UnirexError(f"model.rationale_relaxation={m.rationale_relaxation} has nothing to train "
                              f"with model.attr_algo={m.attr_algo}")
    if m.rationale_relaxation != "none" and m.comp_wt == 0 and m.suff_wt == 0:
        raise UnirexError("model.rationale_relaxation only acts through comp/suff: set model.comp_wt or model.suff_wt")
    # data facts
    needs_gold = m.plaus_wt > 0 or (attr is not None and attr.reads_gold)
    if has_gold_rationales is False and needs_gold:
        what = "model.plaus_wt>0" if m.plaus_wt > 0 else f"model.attr_algo={m.attr_algo}"
        raise UnirexError(f"{what} needs gold rationales, but dataset '{d.dataset}' has none")
    if has_gold_rationales is False and d.plaus_frac < 1 and m.plaus_wt > 0:
        raise UnirexError("data.plaus_frac needs gold rationales")
    if teacher_available is False:
        which = "data.fresh_exp_id" if m.name == "fresh" else "data.l2e_exp_id"
        raise UnirexError(f"{which}: no saved attributions found for that run; rerun it with model.save_outputs=True")


__all__ = ["METHODS", "Method", "check_settings", "get_method", "list_methods"]
