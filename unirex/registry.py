"""One place per concept: the attribution algorithms (``model.attr_algo``) and the extractor types
(``model.explainer_type``), each a spec that declares its own capabilities, as Captum's attribution
classes do.

Every other module reads these specs: the config's choices and their did-you-mean, the preset checks
(:func:`unirex.methods.check_settings`), the attribution extractor, the Explain tab's picker and
``explain --extractor``, the model card. A registered name works wherever a built-in one does.

Adding an attribution algorithm without editing the package::

    # myplugins/ig_alias.py
    from captum.attr import IntegratedGradients
    from unirex.registry import register_attribution

    register_attribution("my-ig", IntegratedGradients, differentiable=True, needs_baseline=True)

then ``UNIREX_PLUGINS=myplugins.ig_alias python -m unirex model.attr_algo=my-ig ...`` (the CLI, the app
and the Ray / Slurm workers import the modules named in ``UNIREX_PLUGINS`` at start, comma separated,
as pytest's ``PYTEST_PLUGINS``; see :func:`load_plugins`). The variable is read from the environment of
the process only, never from a config value or anything typed into the app.

Metrics have a table of their own, :mod:`unirex.metrics.registry`; :func:`register_metric` and
:class:`MetricSpec` are re-exported here so that a plugin finds every ``register_*`` in one module.

This module stays light (no torch, no Captum at import): the built-in specs name their classes by
``"module:attribute"`` and import them on first use.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from unirex.errors import UnirexError, did_you_mean, quoted
from unirex.metrics.registry import MetricSpec, register_metric, unregister_metric
from unirex.safeload import first_line

#: the environment variable naming plugin modules (comma separated)
ENV_PLUGINS = "UNIREX_PLUGINS"
#: the ``model.attr_grad`` modes (how a loss trains through attributions)
ATTR_GRAD_MODES = ("detach", "create_graph")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def _resolve(ref: Any) -> Any:
    """``ref`` itself, or the object a ``"module:attribute"`` string names (imported now)."""
    if not isinstance(ref, str):
        return ref
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


# ------------------------------------------------------------------------------------- attributions
#: ``n_samples`` of LIME and KernelSHAP when ``model.attr_n_samples`` is not set
DEFAULT_N_SAMPLES = 100


@dataclass(frozen=True)
class ExplainerSettings:
    """The run's knobs a token explainer reads (:attr:`AttributionSpec.token_explainer`).

    Attributes:
        n_samples: perturbed inputs per example (LIME, KernelSHAP: ``model.attr_n_samples``; None: the
            default :data:`DEFAULT_N_SAMPLES`).
        internal_batch_size: perturbed inputs per forward pass (``model.internal_batch_size``; None: 64).
        window: occlusion's window, in words (``model.occlusion_window``).
        seed: seeds the sampling (the run's seed); each example is seeded alone, so its scores do not
            depend on the batch it is in.
        keep_graph: keep the graph of the scores (a loss trains through them; only differentiable ones).
    """

    n_samples: int | None = None
    internal_batch_size: int | None = None
    window: int = 1
    seed: int = 0
    keep_graph: bool = False

    @property
    def samples(self) -> int:
        return int(self.n_samples) if self.n_samples is not None else DEFAULT_N_SAMPLES

    @property
    def chunk(self) -> int:
        return int(self.internal_batch_size) if self.internal_batch_size else 64


@dataclass(frozen=True)
class AttributionSpec:
    """One attribution algorithm (a ``model.attr_algo`` value).

    Attributes:
        name: the ``model.attr_algo`` value.
        captum_class: a Captum attribution class (or ``"module:Class"``) applied to the task LM over its
            word embeddings (``inputs_embeds``), attributing the target logit; None for a scorer or a token
            explainer.
        scorer: ``(batch, seed) -> [B, L]`` token scores that do not read the model (or
            ``"module:function"``); None otherwise.
        token_explainer: ``(task_lm, batch, target, settings: ExplainerSettings) -> [B, L]`` token scores
            read from the model directly (``target`` ``[B]`` or None: the predicted class), with no hidden dimension to pool (or ``"module:function"``): the
            word-perturbation methods (LIME, KernelSHAP, occlusion) and the attention maps; None otherwise.
            Exactly one of ``captum_class``, ``scorer`` and ``token_explainer`` is given.
        differentiable: the ``model.attr_grad`` modes in which the ``sum``-pooled scores carry a gradient
            (a plausibility loss can train through them).
        needs_baseline: ``attribute()`` gets ``baselines=``: the input with every explainable position's
            embedding replaced by the pad token's.
        baseline_distribution: the baselines are a distribution to sample from: the pad baseline and
            all-zero embeddings (GradientShap).
        seeded: the algorithm draws random numbers; it runs on a generator seeded with the run's seed.
        defaults: keyword arguments of ``attribute()`` fixed by the algorithm (``abs=True``, ``n_samples=5``).
            The run's ``model.ig_steps`` and ``model.internal_batch_size`` reach ``attribute()`` as
            ``n_steps`` / ``internal_batch_size`` when it takes them and ``defaults`` does not fix them.
        double_backward: ``(task_lm, batch, target, create_graph) -> [B, L, H]``, a hand-written version
            differentiable twice (``model.attr_grad=create_graph``), or None.
        reads_gold: the scores are computed from the gold rationale (the data must have one).
        post_hoc: offered by Explain and ``explain --extractor`` on any checkpoint's task LM.
        builtin: shipped with the package (False: registered by a plugin).
    """

    name: str
    captum_class: Any = None
    scorer: Any = None
    token_explainer: Any = None
    differentiable: tuple[str, ...] = ()
    needs_baseline: bool = False
    baseline_distribution: bool = False
    seeded: bool = False
    defaults: Mapping[str, Any] = field(default_factory=dict)
    double_backward: Any = None
    reads_gold: bool = False
    post_hoc: bool = True
    builtin: bool = False

    @property
    def model_free(self) -> bool:
        """True for scorers (``gold``, ``inv``, ``rand``): no hidden-dimension attributions to pool or train."""
        return self.scorer is not None

    @property
    def token_level(self) -> bool:
        """True when the algorithm gives ``[B, L]`` token scores itself (scorers and token explainers):
        there is no hidden dimension for ``model.attr_pooling=mlp`` to pool."""
        return self.scorer is not None or self.token_explainer is not None

    def captum(self) -> type:
        """The Captum attribution class (imported on first use)."""
        if self.captum_class is None:
            what = "a scorer" if self.scorer is not None else "a token explainer"
            raise UnirexError(f"attr_algo={self.name} is {what}, not a Captum attribution class")
        return _resolve(self.captum_class)

    def score(self, batch, seed: int = 0):
        """``[B, L]`` scores of a model-free scorer."""
        return _resolve(self.scorer)(batch, seed)

    def explain_tokens(self, task_lm, batch, target, settings: "ExplainerSettings"):
        """``[B, L]`` scores of a token explainer (:attr:`token_explainer`)."""
        return _resolve(self.token_explainer)(task_lm, batch, target, settings)

    def twice_differentiable(self):
        """The create_graph implementation, or None."""
        return _resolve(self.double_backward) if self.double_backward is not None else None


_ATTRIBUTIONS: dict[str, AttributionSpec] = {}


def _add_attribution(spec: AttributionSpec) -> AttributionSpec:
    if not isinstance(spec.name, str) or not _NAME.match(spec.name):
        raise UnirexError(f"attribution name {spec.name!r}: use letters, digits and - _ . + (no spaces or commas)")
    if sum(x is not None for x in (spec.captum_class, spec.scorer, spec.token_explainer)) != 1:
        raise UnirexError(f"attribution '{spec.name}': give exactly one of a Captum class, a scorer or a token explainer")
    bad = [m for m in spec.differentiable if m not in ATTR_GRAD_MODES]
    if bad:
        raise UnirexError(f"attribution '{spec.name}': differentiable modes must be among {ATTR_GRAD_MODES}, not {bad}")
    old = _ATTRIBUTIONS.get(spec.name)
    if old is not None and old != spec:
        raise UnirexError(f"attribution algorithm '{spec.name}' is already registered"
                          + (" (a built-in one)" if old.builtin else ""))
    _ATTRIBUTIONS[spec.name] = spec
    return spec


def register_attribution(name: str, captum_class: type, *, differentiable: bool = False, needs_baseline: bool = False,
                         **defaults: Any) -> AttributionSpec:
    """Register a Captum attribution class under ``name`` (a new ``model.attr_algo`` value).

    The class is applied as the built-in ones are: ``captum_class(forward)`` with the task LM's forward over
    its word embeddings, ``attribute(embeds, target=..., additional_forward_args=..., **kwargs)``.

    Args:
        name: the new ``model.attr_algo`` value (letters, digits, ``- _ . +``).
        captum_class: e.g. ``captum.attr.IntegratedGradients``.
        differentiable: the summed attributions keep a differentiable input factor (``x * ...``), so a
            plausibility loss can train through them (both ``model.attr_grad`` modes).
        needs_baseline: ``attribute()`` gets ``baselines=`` the pad baseline (integrated gradients, DeepLift).
        **defaults: fixed keyword arguments of ``attribute()`` (``n_steps=20`` overrides ``model.ig_steps``).

    Raises:
        UnirexError: a bad name, or a name already registered for another algorithm.
    """
    if not isinstance(captum_class, type) or not callable(getattr(captum_class, "attribute", None)):
        raise UnirexError(f"register_attribution('{name}', ...): {captum_class!r} is not a Captum attribution class")
    return _add_attribution(AttributionSpec(
        name=name, captum_class=captum_class, differentiable=ATTR_GRAD_MODES if differentiable else (),
        needs_baseline=bool(needs_baseline), defaults=MappingProxyType(dict(defaults))))


def unregister_attribution(name: str) -> None:
    """Remove a plugin's algorithm (built-in ones stay)."""
    spec = _ATTRIBUTIONS.get(name)
    if spec is not None and not spec.builtin:
        del _ATTRIBUTIONS[name]


def _did_you_mean(value: str, choices) -> str:
    return did_you_mean(value, choices, form=" (did you mean {}?)", quote=quoted)


def get_attribution(name: str) -> AttributionSpec:
    """The spec of ``model.attr_algo=name``; :class:`UnirexError` with a did-you-mean if there is none."""
    spec = _ATTRIBUTIONS.get(name)
    if spec is None:
        raise UnirexError(f"unknown attribution algorithm '{name}'{_did_you_mean(name, _ATTRIBUTIONS)}; choose one of "
                          f"{', '.join(_ATTRIBUTIONS)}")
    return spec


def attribution_specs() -> tuple[AttributionSpec, ...]:
    """Every registered algorithm, built-in ones first, in registration order."""
    return tuple(_ATTRIBUTIONS.values())


def attribution_names(*, post_hoc: bool | None = None, captum: bool | None = None) -> tuple[str, ...]:
    """Registered ``model.attr_algo`` values; ``post_hoc=True``: those Explain offers on any checkpoint;
    ``captum=True``: Captum classes only (``False``: model-free scorers only)."""
    return tuple(s.name for s in _ATTRIBUTIONS.values()
                 if (post_hoc is None or s.post_hoc == post_hoc) and (captum is None or (not s.model_free) == captum))


#: the ``extractor`` that explains with the checkpoint's own extractor (the other choices: :func:`post_hoc_extractors`)
OWN_EXTRACTOR = "own"


def post_hoc_extractors() -> tuple[str, ...]:
    """The attribution algorithms that can explain any checkpoint's task LM (besides the checkpoint's own):
    the registered specs with ``post_hoc`` (plugins add theirs)."""
    return attribution_names(post_hoc=True)


def check_extractor(extractor: str | None) -> str:
    """The name of an explaining extractor (``None`` / ``""``: :data:`OWN_EXTRACTOR`); UnirexError naming it and
    the known ones when it is neither the checkpoint's own nor one of :func:`post_hoc_extractors`. Light (no
    torch): the CLI checks ``--extractor`` with it before anything loads."""
    name = extractor or OWN_EXTRACTOR
    if name != OWN_EXTRACTOR and name not in post_hoc_extractors():
        raise UnirexError(f"unknown extractor '{name}': use '{OWN_EXTRACTOR}' (the checkpoint's own) or one of "
                          f"{', '.join(post_hoc_extractors())}")
    return name


_X = "unirex.models.extractors"
for _spec in (
    AttributionSpec("input-x-gradient", "captum.attr:InputXGradient", differentiable=ATTR_GRAD_MODES,
                    double_backward=f"{_X}.gradients:input_x_gradient", builtin=True),
    AttributionSpec("integrated-gradients", "captum.attr:IntegratedGradients", differentiable=ATTR_GRAD_MODES,
                    needs_baseline=True, builtin=True),
    AttributionSpec("gradient", "captum.attr:Saliency", differentiable=("create_graph",),
                    defaults=MappingProxyType({"abs": True}), double_backward=f"{_X}.gradients:saliency", builtin=True),
    AttributionSpec("deeplift", "captum.attr:DeepLift", differentiable=ATTR_GRAD_MODES, needs_baseline=True,
                    post_hoc=False, builtin=True),
    AttributionSpec("gradient-shap", "captum.attr:GradientShap", needs_baseline=True, baseline_distribution=True,
                    seeded=True, defaults=MappingProxyType({"n_samples": 5}), post_hoc=False, builtin=True),
    # token explainers (:mod:`.perturbation`, :mod:`.attention`): one feature per word, perturbed by hiding it
    AttributionSpec("lime", token_explainer=f"{_X}.perturbation:lime_scores", seeded=True, builtin=True),
    AttributionSpec("kernel-shap", token_explainer=f"{_X}.perturbation:kernel_shap_scores", seeded=True, builtin=True),
    AttributionSpec("occlusion", token_explainer=f"{_X}.perturbation:occlusion_scores", builtin=True),
    AttributionSpec("attention", token_explainer=f"{_X}.attention:attention_scores", differentiable=ATTR_GRAD_MODES,
                    builtin=True),
    AttributionSpec("attention-rollout", token_explainer=f"{_X}.attention:rollout_scores",
                    differentiable=ATTR_GRAD_MODES, builtin=True),
    AttributionSpec("gold", scorer=f"{_X}.baselines:gold_scores", reads_gold=True, post_hoc=False, builtin=True),
    AttributionSpec("inv", scorer=f"{_X}.baselines:inv_scores", reads_gold=True, post_hoc=False, builtin=True),
    AttributionSpec("rand", scorer=f"{_X}.baselines:rand_scores", post_hoc=False, builtin=True),
):
    _add_attribution(_spec)


# --------------------------------------------------------------------------------------- extractors
def _describe_attr(m) -> str:
    spec = _ATTRIBUTIONS.get(m.attr_algo)
    if spec is not None and spec.token_explainer is not None:
        return f"attribution algorithm `{m.attr_algo}` on the task LM, token scores (no pooling)"
    pooling = "summed over the hidden dimension" if m.attr_pooling == "sum" else "pooled by a learned MLP"
    return f"attribution algorithm `{m.attr_algo}` on the task LM's input embeddings, {pooling}"


def _head_text(m) -> str:
    return f"{m.expl_head_type} token head" + (f" with {m.l2e_num_classes} ordinal classes (L2E)" if m.l2e else "")


@dataclass(frozen=True)
class ExtractorSpec:
    """One extractor type (a ``model.explainer_type`` value).

    Attributes:
        name: the ``model.explainer_type`` value.
        extractor_class: the :class:`~unirex.models.extractors.Extractor` subclass (or ``"module:Class"``);
            its ``from_config(cfg, task_lm, new_encoder) -> (extractor, outputs per token)`` builds it.
        attribution: the scores come from ``model.attr_algo`` (``model.attr_pooling`` pools them).
        token_head: a learned token head (what L2E distils into and A2R's generator is).
        selectable: a ``model.explainer_type`` choice (False: chosen by the model group, as FRESH's).
        describe: ``(model config) -> str``, one phrase for the model card.
        builtin: shipped with the package.
    """

    name: str
    extractor_class: Any
    attribution: bool = False
    token_head: bool = False
    selectable: bool = True
    describe: Callable[[Any], str] = lambda m: "a custom extractor"
    builtin: bool = False

    def cls(self) -> type:
        """The extractor class (imported on first use)."""
        return _resolve(self.extractor_class)


_EXTRACTORS: dict[str, ExtractorSpec] = {}


def _add_extractor(spec: ExtractorSpec) -> ExtractorSpec:
    if not isinstance(spec.name, str) or not _NAME.match(spec.name):
        raise UnirexError(f"extractor type {spec.name!r}: use letters, digits and - _ . + (no spaces or commas)")
    old = _EXTRACTORS.get(spec.name)
    if old is not None and old != spec:
        raise UnirexError(f"extractor type '{spec.name}' is already registered" + (" (a built-in one)" if old.builtin else ""))
    _EXTRACTORS[spec.name] = spec
    return spec


def register_extractor(name: str, extractor_class: type, *, token_head: bool = False,
                       describe: Callable[[Any], str] | None = None) -> ExtractorSpec:
    """Register an :class:`~unirex.models.extractors.Extractor` subclass as ``model.explainer_type=name``.

    The class implements ``from_config(cfg, task_lm, new_encoder)`` and the extractor interface
    (``training_scores``, ``explain``); ``token_head``: it has a learned token head (L2E, A2R)."""
    if not isinstance(extractor_class, type) or not callable(getattr(extractor_class, "from_config", None)):
        raise UnirexError(f"register_extractor('{name}', ...): {extractor_class!r} has no from_config(cfg, task_lm, "
                          "new_encoder)")
    return _add_extractor(ExtractorSpec(name, extractor_class, token_head=token_head,
                                        describe=describe or (lambda m: f"the `{name}` extractor")))


def unregister_extractor(name: str) -> None:
    """Remove a plugin's extractor type (built-in ones stay)."""
    spec = _EXTRACTORS.get(name)
    if spec is not None and not spec.builtin:
        del _EXTRACTORS[name]


def get_extractor(name: str) -> ExtractorSpec:
    """The spec of ``model.explainer_type=name``; :class:`UnirexError` with a did-you-mean if there is none."""
    spec = _EXTRACTORS.get(name)
    if spec is None:
        raise UnirexError(f"unknown extractor type '{name}'{_did_you_mean(name, extractor_names())}; choose one of "
                          f"{', '.join(extractor_names())}")
    return spec


def extractor_names() -> tuple[str, ...]:
    """The ``model.explainer_type`` choices."""
    return tuple(n for n, s in _EXTRACTORS.items() if s.selectable)


def saved_attribution_name(m) -> str:
    """The name saved with a run's attributions (``outputs/attrs_*.parquet``'s ``attr_algo``) and shown
    for its extractor: the attribution algorithm of an attribution extractor, else the extractor type."""
    return m.attr_algo if get_extractor(m.explainer_type).attribution else m.explainer_type


for _ext in (
    ExtractorSpec("attr_algo", f"{_X}.attribution:AttributionExtractor", attribution=True, describe=_describe_attr,
                  builtin=True),
    ExtractorSpec("lm", f"{_X}.lm:LMExtractor", token_head=True, builtin=True,
                  describe=lambda m: f"a second encoder of the same architecture with a {_head_text(m)} (DLM)"),
    ExtractorSpec("self_lm", f"{_X}.self_lm:SelfLMExtractor", token_head=True, builtin=True,
                  describe=lambda m: f"a {_head_text(m)} on the task LM's own encoder (SLM)"),
    ExtractorSpec("fresh", f"{_X}.fresh:FreshExtractor", selectable=False, builtin=True,
                  describe=lambda m: "the teacher's binary top-k the input was pruned to (FRESH)"),
):
    _add_extractor(_ext)


# ------------------------------------------------------------------------------------------ plugins
def plugin_modules() -> tuple[str, ...]:
    """The module names in ``$UNIREX_PLUGINS`` (the process environment only)."""
    return tuple(n.strip() for n in os.environ.get(ENV_PLUGINS, "").split(",") if n.strip())


def load_plugins() -> tuple[str, ...]:
    """Import every module named in the environment variable ``UNIREX_PLUGINS`` (comma separated); each
    registers its algorithms or extractor types when imported (once: a module already imported is not run
    again). Returns the module names.

    Raises:
        UnirexError: one line naming the module that failed to import and why.
    """
    names = plugin_modules()
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - any failure of a plugin is reported the same way
            raise UnirexError(f"{ENV_PLUGINS}: cannot import plugin module '{name}': "
                              f"{type(e).__name__}: {first_line(e)}") from None
    return names


__all__ = ["ATTR_GRAD_MODES", "AttributionSpec", "DEFAULT_N_SAMPLES", "ENV_PLUGINS", "ExplainerSettings", "ExtractorSpec", "MetricSpec", "attribution_names",
           "OWN_EXTRACTOR", "attribution_specs", "check_extractor", "extractor_names", "get_attribution", "get_extractor", "load_plugins",
           "plugin_modules", "post_hoc_extractors", "register_attribution", "register_extractor", "register_metric",
           "saved_attribution_name", "unregister_attribution", "unregister_extractor", "unregister_metric"]
