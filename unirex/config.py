"""The run configuration: dataclasses with UNIREX's dotted key names, and Hydra-style overrides.

A config is a :class:`RunConfig` (top-level keys ``seed``, ``protocol``, ``save_checkpoint``, ``debug``, ``data_dir``,
``arch``, ``workspace``, ``work_dir``, ``tags``) holding the groups ``data.*``, ``model.*`` (with
``model.optimizer.*`` and ``model.scheduler.*``), ``setup.*``, ``training.*``, ``eval.*`` and ``logger.*``.

:func:`resolve_config` turns a list of overrides as the paper writes them into a validated config::

    resolve_config(["data=sst", "model=expl_reg", "model.comp_wt=0.5",
                    "training.eval_splits=\\"'train,dev,test'\\""])

Group selections (applied first, whatever their position, as in Hydra):

* ``model=lm|expl_reg|fresh|a2r`` applies the group's defaults (:data:`MODEL_GROUPS`);
* ``data=NAME`` (or ``dataset=NAME``, as the UNIREX README's multirun example writes it) sets ``data.dataset``;
* ``training=train|evaluate|finetune`` sets ``training.mode``;
* ``method=NAME`` applies a preset of :mod:`unirex.methods` (itself a list of overrides).

Then ``key=value`` overrides are applied in order. Values are parsed as YAML (``0.5``, ``True``,
``[1,5,10]``, quoted strings); ``None``/``null`` mean no value. Values are data: no OmegaConf resolver or
interpolation runs on them, so a value holding ``${`` (``${oc.env:HF_TOKEN}``, ``${oc.decode:...}``) is
refused with a one-line message naming its key (no key of the config is free text where a literal ``${``
would be useful), and so is a saved config (``config.json``) holding one (:func:`from_dict`). A leading ``+`` on a key is accepted
and ignored; ``hydra.*`` keys are ignored. Unknown keys raise :class:`~unirex.errors.UnirexError`
naming the closest valid keys. Sweeps (``-m``, ``seed=0,1,2``) are expanded by :func:`expand_sweep`
before resolving each run. This module is pure: no file, network or model access.

Decisions where UNIREX's own config is not copied: ``model.name`` records the model group;
``model.topk`` holds the top-k bins (percent) used by the training losses and the evaluation (UNIREX's
``train_topk`` / ``eval_topk``, always equal in its configs); ``data.plaus_frac`` is the fraction of
train examples with plausibility supervision (UNIREX's ``pct_train_rationales`` / 100, with
``data.plaus_frac_seed`` and ``data.train_rationales_batch_factor`` as its seed and batch factor);
``model.rationale_relaxation`` (default ``none``) optionally lets comp/suff train the extractor;
``model.attr_grad`` chooses how plausibility reaches an attribution extractor (``detach``, UNIREX's
behaviour, or ``create_graph``); ``model.rationale_removal`` (default ``drop``) says how the
training-time comp/suff variants remove tokens (UNIREX masks them; dropping them is the same
computation, cheaper); ``training.mode`` is what ``training=...`` selects;
``setup.accumulate_grad_batches`` / ``setup.eff_train_batch_size`` default to each other.

``protocol=reference`` (the default) gives the keys the user does not set the reference's values
(:mod:`unirex.protocol`: optimizer, warmup, clipping, precision, monitor, ``data.max_length``); an explicit
override of any of them wins, and ``protocol=eraser`` keeps the dataclass defaults below.
"""

from __future__ import annotations

import itertools
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from unirex.errors import UnirexError, close_matches, did_you_mean, quoted, suggest
from unirex.metrics.extra import parse_extra_metrics
from unirex.methods import check_settings, get_method, list_methods
from unirex.protocol import protocol_defaults
from unirex.registry import ATTR_GRAD_MODES, attribution_names, extractor_names, get_extractor
from unirex.runs import parse_tags

# ----------------------------------------------------------------------------------------- choices
# model.explainer_type and model.attr_algo: the specs of unirex.registry (plugins add more)
ATTR_POOLINGS = ("sum", "mlp")
HEAD_TYPES = ("linear", "mlp")
COMP_CRITERIA = ("margin", "diff")
SUFF_CRITERIA = ("margin", "diff", "mae", "mse", "kldiv")
#: ``protocol``: ``reference`` trains and scores the UNIREX-style metrics as the paper's code does;
#: ``eraser`` keeps to ERASER's conventions (only document tokens can be rationale, ERASER's inputs)
PROTOCOLS = ("reference", "eraser")
OPTIMIZERS = ("adamw", "hf_adamw")
PLAUS_CRITERIA = ("bce",)
RELAXATIONS = ("none", "straight_through")
ATTR_GRADS = ATTR_GRAD_MODES
A2R_CRITERIA = ("jsd", "js")
RATIONALE_REMOVALS = ("drop", "mask")
MODEL_NAMES = ("lm", "expl_reg", "fresh", "a2r")
TRAINING_MODES = ("train", "evaluate", "finetune")
PRECISIONS = ("32", "bf16", "fp16")
SPLITS = ("train", "dev", "test")


# ------------------------------------------------------------------------------------------ groups
@dataclass
class DataConfig:
    dataset: str = "demo"
    max_length: int = 512
    num_train: int | None = None  # subsample the train split (with num_train_seed)
    num_train_seed: int = 0
    plaus_frac: float = 1.0  # fraction of train examples that get plausibility supervision
    plaus_frac_seed: int = 0  # picks that fixed subset (UNIREX's pct_train_rationales_seed)
    train_rationales_batch_factor: float = 2.0  # plaus_frac < 1: 1/factor of each batch is supervised
    fresh_exp_id: str | None = None  # run id (or outputs path) whose attributions FRESH reads
    fresh_attr_algo: str | None = None
    fresh_topk: float | None = None  # percent of tokens FRESH keeps
    l2e_exp_id: str | None = None  # teacher run whose attributions L2E distils
    l2e_attr_algo: str | None = None


@dataclass
class OptimizerConfig:
    name: str = "adamw"  # "adamw" (torch's) or "hf_adamw" (no bias correction: the reference's)
    lr: float = 2e-5
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    adam_epsilon: float = 1e-8


@dataclass
class SchedulerConfig:
    lr_scheduler: str = "linear_with_warmup"  # or "fixed"
    warmup_updates: float = 0.0  # < 1: fraction of all updates; >= 1: number of updates


@dataclass
class ModelConfig:
    name: str = "lm"  # the model group: lm | expl_reg | fresh | a2r
    dropout: float = 0.1  # before the task LM's classification layer
    # rationale extractor
    explainer_type: str = "attr_algo"
    attr_algo: str = "input-x-gradient"
    attr_pooling: str = "sum"
    attr_mlp_hidden_dim: int = 2048
    attr_mlp_hidden_layers: int = 2
    expl_head_type: str = "linear"
    expl_head_mlp_hidden_dim: int = 2048
    expl_head_mlp_hidden_layers: int = 2
    expl_head_mlp_dropout: float = 0.0
    ig_steps: int = 3  # UNIREX's configs
    internal_batch_size: int | None = None
    return_convergence_delta: bool = False
    attr_n_samples: int | None = None  # LIME / KernelSHAP samples per example (None: unirex.registry.DEFAULT_N_SAMPLES)
    occlusion_window: int = 1  # occlusion: words hidden at once (1: leave-one-word-out)
    # objective
    task_wt: float = 1.0
    comp_wt: float = 0.0
    suff_wt: float = 0.0
    plaus_wt: float = 0.0
    comp_criterion: str = "margin"
    comp_margin: float = 1.0
    suff_criterion: str = "margin"
    suff_margin: float = 0.1
    plaus_criterion: str = "bce"
    topk: list[float] = field(default_factory=lambda: [1.0, 5.0, 10.0, 20.0, 50.0])  # percent bins
    rationale_relaxation: str = "none"  # "straight_through" also trains the extractor via comp/suff
    attr_grad: str = "detach"  # AA plausibility: "detach" (UNIREX) or "create_graph" (double backward)
    rationale_removal: str = "drop"
    """How the training-time comp/suff variants (and A2R's rationale-only input) remove tokens: ``drop``
    deletes them and keeps the other tokens' original position and segment ids, running the variants at
    their own lengths; ``mask`` runs them at full length with the removed tokens hidden by the attention
    mask (UNIREX's reference). Same logits and gradients; ``drop`` is cheaper. ``drop`` falls back to
    ``mask`` by itself on archs where the two differ (relative positions, windowed attention, ...), and
    the run records what it got and why (``unirex.models.removal``)."""
    l2e: bool = False
    l2e_wt: float = 0.0
    l2e_num_classes: int = 5
    a2r_wt: float = 0.0
    a2r_criterion: str = "jsd"  # "jsd": UNIREX's js_div; "js": the textbook Jensen-Shannon divergence
    # outputs
    save_outputs: bool = False
    exp_id: str | None = None
    measure_attrs_runtime: bool = False
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)


@dataclass
class SetupConfig:
    train_batch_size: int = 32
    eval_batch_size: int = 32
    accumulate_grad_batches: int | None = None  # None: eff_train_batch_size / train_batch_size
    eff_train_batch_size: int | None = None  # None: train_batch_size * accumulate_grad_batches
    num_workers: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "32"  # 32 | bf16 | fp16 (autocast on CUDA)


@dataclass
class TrainingConfig:
    mode: str = "train"  # train | evaluate | finetune
    ckpt_path: str | None = None
    eval_splits: str = "dev,test"  # comma-separated, as the paper writes it
    epochs: int = 10
    patience: int = 5
    monitor: str = "dev_task_macro_f1"  # early-stopping metric
    monitor_mode: str = "max"
    max_grad_norm: float = 1.0
    train_shuffle: bool = True
    #: the final evaluation (not the per-epoch dev ones, nor a dev result reused from the best epoch) also runs
    #: the minimal flip search (:mod:`unirex.counterfactual`): ``flip_words`` and ``flip_words_random``, capped
    #: at ``flip_max_fraction`` of an example's words and ``flip_max_words``
    eval_flip: bool = False
    flip_max_fraction: float = 0.5
    flip_max_words: int = 64

    @property
    def splits(self) -> list[str]:
        """``eval_splits`` as a list (``'train,dev,test'`` -> ``['train', 'dev', 'test']``)."""
        return [s.strip() for s in str(self.eval_splits).strip("'\"").split(",") if s.strip()]


@dataclass
class EvalConfig:
    """The evaluation's metrics beside ERASER's (:mod:`unirex.metrics.extra`), off by default: each costs passes."""

    #: a comma list of ``soft`` (soft comp / suff), ``sensitivity`` (max-sensitivity), ``diag`` (diagnosticity
    #: against random); None (or empty): none
    extra_metrics: str | None = None
    sensitivity_samples: int = 5  # perturbations per example
    sensitivity_radius: float = 0.02  # L-infinity radius of the noise on the word embeddings


@dataclass
class LoggerConfig:
    offline: bool = False  # accepted for UNIREX compatibility: all logging is local anyway


@dataclass
class RunConfig:
    seed: int = 0
    save_checkpoint: bool = False
    debug: bool = False
    arch: str = "default"
    #: how training and the UNIREX-style metrics follow the paper's code (``reference``) or ERASER's
    #: conventions (``eraser``): :data:`PROTOCOLS`; ERASER's own metrics are the same under both
    protocol: str = "reference"
    data_dir: str | None = None  # None: <workspace>/data
    workspace: str | None = None  # None: $UNIREX_WORKSPACE or ./workspace
    work_dir: str | None = None  # accepted for UNIREX compatibility (not used by the library)
    #: free-form names of the run (``tags=baseline,paper``: :func:`unirex.runs.parse_tags`); recorded in its
    #: ``meta.json``, where they can be edited later; they change nothing the run computes
    tags: str | None = None
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    setup: SetupConfig = field(default_factory=SetupConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)


# Model groups: what ``model=NAME`` means in UNIREX (defaults before any key override).
MODEL_GROUPS: dict[str, dict[str, Any]] = {
    # the task LM alone; explanations are post-hoc attributions (for evaluation)
    "lm": {"name": "lm", "explainer_type": "attr_algo", "attr_algo": "input-x-gradient",
           "attr_pooling": "sum", "task_wt": 1.0, "comp_wt": 0.0, "suff_wt": 0.0, "plaus_wt": 0.0,
           "l2e": False, "l2e_wt": 0.0, "a2r_wt": 0.0},
    # explanation regularisation: task loss + comp/suff/plaus (and L2E) on a rationale extractor
    # (UNIREX's configs/model/expl_reg.yaml: an SLM with a linear head, every weight but the task's 0)
    "expl_reg": {"name": "expl_reg", "explainer_type": "self_lm", "expl_head_type": "linear",
                 "task_wt": 1.0, "comp_wt": 0.0, "suff_wt": 0.0, "plaus_wt": 0.0,
                 "l2e": False, "l2e_wt": 0.0, "a2r_wt": 0.0},
    # FRESH: a new task LM on the top-k tokens of a saved run's attributions (data.fresh_*); its
    # rationale is that binary top-k, scored at the single bin k = 100% of the pruned input
    "fresh": {"name": "fresh", "explainer_type": "attr_algo", "attr_algo": "input-x-gradient",
              "attr_pooling": "sum", "task_wt": 1.0, "comp_wt": 0.0, "suff_wt": 0.0, "plaus_wt": 0.0,
              "l2e": False, "l2e_wt": 0.0, "a2r_wt": 0.0, "topk": [100.0]},
    # A2R: a DLM generator, the task LM reading the top-k rationale, an attention predictor, JS
    "a2r": {"name": "a2r", "explainer_type": "lm", "expl_head_type": "linear", "task_wt": 1.0,
            "comp_wt": 0.0, "suff_wt": 0.0, "plaus_wt": 0.0, "l2e": False, "l2e_wt": 0.0, "a2r_wt": 0.5},
}
GROUP_KEYS = ("model", "data", "training", "method")
_GROUP_AS_KEY = {"data": "data.dataset", "training": "training.mode", "model": "model.name"}
_TRAINING_GROUP = {"train": "train", "evaluate": "evaluate", "eval": "evaluate", "finetune": "finetune"}


# ---------------------------------------------------------------------------------------- key sets
def valid_keys(node: Any = RunConfig, prefix: str = "") -> list[str]:
    """All dotted leaf keys of the config (``model.optimizer.lr``, ``seed``, ...)."""
    out = []
    for f in fields(node):
        name = f"{prefix}{f.name}"
        default = f.default_factory() if f.default_factory is not MISSING else f.default  # type: ignore[misc]
        if is_dataclass(default):
            out.extend(valid_keys(type(default), name + "."))
        else:
            out.append(name)
    return out


def suggest_keys(key: str, n: int = 3) -> list[str]:
    """Closest valid keys to ``key`` (difflib), also matching on the last dotted component."""
    keys = valid_keys()
    close = close_matches(key, keys, n=n, cutoff=0.5)
    leaf = key.rsplit(".", 1)[-1]
    for k in keys:
        if k.rsplit(".", 1)[-1] == leaf and k not in close:
            close.insert(0, k)
    return close[:n]


def unknown_key_error(key: str) -> UnirexError:
    hint = suggest_keys(key)
    groups = ", ".join(f"{g}=" for g in GROUP_KEYS)
    msg = f"unknown config key '{key}'"
    msg += suggest(hint) or f" (group selections: {groups})"
    return UnirexError(msg)


# -------------------------------------------------------------------------------------- overrides
def parse_override(text: str) -> tuple[str, str]:
    """Split ``key=value`` (the value may contain ``=``); a leading ``+`` on the key is dropped."""
    if "=" not in text:
        raise UnirexError(f"override '{text}' is not of the form key=value")
    key, value = text.split("=", 1)
    key = key.strip().lstrip("+")
    if not key:
        raise UnirexError(f"override '{text}' has no key")
    return key, value.strip()


INTERPOLATION = "${"


def refuse_interpolation(key: str, value: Any) -> None:
    """A :class:`UnirexError` naming ``key`` when ``value`` (or a string inside it) holds ``${``: OmegaConf would
    run it as an interpolation or a resolver (``${oc.env:...}`` reads the environment, ``${oc.decode:...}``
    builds paths past every check). The value itself is not repeated."""
    if isinstance(value, str):
        if INTERPOLATION in value:
            raise UnirexError(f"{key}: the value holds '${{', an OmegaConf interpolation; values are data and "
                              "interpolations (${...}) are not supported in them: write the value itself")
    elif isinstance(value, dict):
        for k, v in value.items():
            refuse_interpolation(f"{key}.{k}", v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            refuse_interpolation(key, v)


def _parse_value(key: str, raw: str) -> Any:
    refuse_interpolation(key, raw)
    if raw in ("None", "none", "null", "~", ""):
        return None
    try:
        parsed = OmegaConf.from_dotlist([f"v={raw}"])
        value = OmegaConf.to_container(parsed, resolve=False)["v"]
    except Exception as e:  # noqa: BLE001 - YAML's and OmegaConf's parse errors: one line naming the key
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UnirexError(f"bad value for {key}: {raw[:200]!r} ({first[:200]})") from None
    return _unquote(value) if isinstance(value, str) else value


def split_sweep_value(raw: str) -> list[str]:
    """Split a multirun value on top-level commas: ``0,1,2`` -> 3 values; quoted strings and
    ``[...]`` lists stay whole (``"'train,dev,test'"`` is one value)."""
    out, depth, quote, cur = [], 0, None, ""
    for ch in raw:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        cur += ch
    out.append(cur)
    return out


def expand_sweep(overrides: list[str]) -> list[list[str]]:
    """Hydra's basic sweeper: the cartesian product of every comma list (``seed=0,1,2 model=lm,a2r``
    gives 6 override lists, in order, last key varying fastest)."""
    choices = []
    for o in overrides:
        key, value = parse_override(o)
        choices.append([f"{key}={v}" for v in split_sweep_value(value)])
    return [list(c) for c in itertools.product(*choices)]


def resolve_config(overrides: list[str] | tuple[str, ...] = (), validate: bool = True) -> RunConfig:
    """Build a :class:`RunConfig` from overrides (see the module docstring for the syntax).

    Raises:
        UnirexError: unknown key (with suggestions), unknown group choice, a value of the wrong type,
            or (with ``validate``) a setting out of range or contradictory.
    """
    # `dataset=` is the name the UNIREX README's multirun example uses for the data group
    pairs = [("data", v) if k == "dataset" else (k, v) for k, v in (parse_override(o) for o in overrides)]
    for k, v in pairs:  # before anything reaches OmegaConf (a group value is assigned to a node as it is)
        refuse_interpolation(_GROUP_AS_KEY.get(k, k), v)
    # a method preset expands into its own overrides, placed before the user's
    method = [v for k, v in pairs if k == "method"]
    if method:
        name = _unquote(method[-1])
        preset = [parse_override(o) for o in get_method(name).overrides]
        pairs = preset + [(k, v) for k, v in pairs if k != "method"]

    groups = {k: _unquote(v) for k, v in pairs if k in GROUP_KEYS}
    cfg = OmegaConf.structured(RunConfig)
    model_group = groups.get("model", "lm")
    if model_group not in MODEL_GROUPS:
        raise UnirexError(f"unknown model group '{model_group}'; choose one of {', '.join(MODEL_GROUPS)}")
    cfg = OmegaConf.merge(cfg, {"model": MODEL_GROUPS[model_group]})
    if "data" in groups:
        cfg.data.dataset = groups["data"]
    if "training" in groups:
        mode = _TRAINING_GROUP.get(groups["training"])
        if mode is None:
            raise UnirexError(f"unknown training group '{groups['training']}'; choose train, evaluate or finetune")
        cfg.training.mode = mode

    keys = set(valid_keys())
    explicit: set[str] = set()
    for key, raw in pairs:
        if key in GROUP_KEYS:
            continue
        explicit.add(key)
        if key not in keys:
            if key.split(".")[0] == "hydra":
                continue  # Hydra's own settings (run dirs, sweepers) have no meaning here
            raise unknown_key_error(key)
        value = _parse_value(key, raw)
        try:
            OmegaConf.update(cfg, key, value, merge=False)
        except OmegaConfBaseException as e:
            first = str(e).strip().splitlines()[0]
            raise UnirexError(f"bad value for {key}: {raw!r} ({first})") from None
    # the protocol's settings (unirex.protocol) for every key not set explicitly: an explicit value wins
    for key, value in protocol_defaults(cfg.protocol, cfg.data.dataset, cfg.arch).items():
        if key not in explicit:
            OmegaConf.update(cfg, key, value, merge=False)
    return _finish(cfg, validate)


def method_config(name: str, extra: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """The resolved config of the preset ``name`` (:mod:`unirex.methods`) plus ``extra`` overrides."""
    return resolve_config([f"method={name}", *extra])


def _signature(cfg: RunConfig) -> tuple:
    m = cfg.model
    spec = get_extractor(m.explainer_type)
    attr = (m.attr_algo, m.attr_pooling) if spec.attribution else (None, None)
    head = m.expl_head_type if spec.token_head else None
    return (m.name, m.explainer_type, *attr, head, m.comp_wt > 0, m.suff_wt > 0, m.plaus_wt > 0,
            m.suff_criterion if m.suff_wt > 0 else None, bool(m.l2e))


def identify_method(cfg: RunConfig) -> str:
    """The preset of :mod:`unirex.methods` this config is an instance of (weights may differ), or a
    description built from its keys (``custom: expl_reg/self_lm comp+plaus``)."""
    sig = _signature(cfg)
    if cfg.model.name == "lm":  # Task LM + any attribution algorithm
        return "task_lm" if cfg.model.attr_algo == "input-x-gradient" else f"task_lm+{cfg.model.attr_algo}"
    for meth in list_methods():
        try:
            teacher = {"fresh_teacher": "data.fresh_exp_id=x", "l2e_teacher": "data.l2e_exp_id=x"}
            extra = [teacher[n] for n in meth.needs if n in teacher]
            if _signature(method_config(meth.id, extra)) == sig:
                return meth.id
        except UnirexError:
            continue
    m = cfg.model
    parts = [k for k, on in (("comp", m.comp_wt > 0), ("suff", m.suff_wt > 0), ("plaus", m.plaus_wt > 0),
                             ("l2e", m.l2e)) if on]
    return f"custom: {m.name}/{m.explainer_type} {'+'.join(parts) or 'task'}"


def _finish(cfg, validate: bool) -> RunConfig:
    """OmegaConf node -> :class:`RunConfig`, derived batch keys filled, validated when asked."""
    obj: RunConfig = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    _fill_derived(obj)
    if validate:
        validate_config(obj)
    return obj


def _unquote(v: str) -> str:
    v = v.strip()
    while len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
        v = v[1:-1]
    return v


def _fill_derived(cfg: RunConfig) -> None:
    """Fill ``setup.accumulate_grad_batches`` / ``setup.eff_train_batch_size`` from each other."""
    s = cfg.setup
    if s.accumulate_grad_batches is None and s.eff_train_batch_size is None:
        s.accumulate_grad_batches, s.eff_train_batch_size = 1, s.train_batch_size
    elif s.accumulate_grad_batches is None:
        if s.train_batch_size <= 0 or s.eff_train_batch_size % s.train_batch_size:
            raise UnirexError(f"setup.eff_train_batch_size={s.eff_train_batch_size} is not a multiple of "
                              f"setup.train_batch_size={s.train_batch_size}")
        s.accumulate_grad_batches = s.eff_train_batch_size // s.train_batch_size
    elif s.eff_train_batch_size is None:
        s.eff_train_batch_size = s.train_batch_size * s.accumulate_grad_batches


# ------------------------------------------------------------------------------------- validation
def _choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        hint = did_you_mean(value, choices, form=" (did you mean {}?)", quote=quoted)
        raise UnirexError(f"{name}={value!r} is not one of {', '.join(map(str, choices))}{hint}")


def validate_config(cfg: RunConfig) -> None:
    """Ranges and choices of single keys, batch-size consistency, and the contradictions between keys
    that need no data (see :func:`unirex.methods.check_settings`). Raises :class:`UnirexError`."""
    m, d, s, t = cfg.model, cfg.data, cfg.setup, cfg.training
    _choice("protocol", cfg.protocol, PROTOCOLS)
    _choice("model.optimizer.name", m.optimizer.name, OPTIMIZERS)
    parse_tags(cfg.tags)
    _choice("model.name", m.name, MODEL_NAMES)
    _choice("model.explainer_type", m.explainer_type, extractor_names())
    _choice("model.attr_algo", m.attr_algo, attribution_names())
    _choice("model.attr_pooling", m.attr_pooling, ATTR_POOLINGS)
    _choice("model.expl_head_type", m.expl_head_type, HEAD_TYPES)
    _choice("model.comp_criterion", m.comp_criterion, COMP_CRITERIA)
    _choice("model.suff_criterion", m.suff_criterion, SUFF_CRITERIA)
    _choice("model.plaus_criterion", m.plaus_criterion, PLAUS_CRITERIA)
    _choice("model.rationale_relaxation", m.rationale_relaxation, RELAXATIONS)
    _choice("model.attr_grad", m.attr_grad, ATTR_GRADS)
    _choice("model.a2r_criterion", m.a2r_criterion, A2R_CRITERIA)
    _choice("model.rationale_removal", m.rationale_removal, RATIONALE_REMOVALS)
    _choice("training.mode", t.mode, TRAINING_MODES)
    _choice("training.monitor_mode", t.monitor_mode, ("max", "min"))
    _choice("setup.precision", str(s.precision), PRECISIONS)
    for name in ("task_wt", "comp_wt", "suff_wt", "plaus_wt", "l2e_wt", "a2r_wt", "comp_margin", "suff_margin"):
        if getattr(m, name) < 0:
            raise UnirexError(f"model.{name} must be >= 0, got {getattr(m, name)}")
    if not 0.0 <= m.dropout < 1.0:
        raise UnirexError(f"model.dropout must be in [0, 1), got {m.dropout}")
    if not m.topk or any(not 0 < k <= 100 for k in m.topk):
        raise UnirexError(f"model.topk must be a non-empty list of percentages in (0, 100], got {list(m.topk)}")
    if not 0 < t.flip_max_fraction <= 1:
        raise UnirexError(f"training.flip_max_fraction must be in (0, 1], got {t.flip_max_fraction}")
    if t.flip_max_words < 1:
        raise UnirexError(f"training.flip_max_words must be >= 1, got {t.flip_max_words}")
    if m.ig_steps < 1:
        raise UnirexError(f"model.ig_steps must be >= 1, got {m.ig_steps}")
    if m.internal_batch_size is not None and m.internal_batch_size < 1:
        raise UnirexError(f"model.internal_batch_size must be >= 1, got {m.internal_batch_size}")
    if m.attr_n_samples is not None and m.attr_n_samples < 1:
        raise UnirexError(f"model.attr_n_samples must be >= 1 (perturbed inputs per example), got {m.attr_n_samples}")
    if m.occlusion_window < 1:
        raise UnirexError(f"model.occlusion_window must be >= 1 (words hidden at once), got {m.occlusion_window}")
    if m.l2e_num_classes != 5:
        raise UnirexError(f"model.l2e_num_classes must be 5 (UNIREX's L2E binning), got {m.l2e_num_classes}")
    for name in ("attr_mlp_hidden_dim", "attr_mlp_hidden_layers", "expl_head_mlp_hidden_dim"):
        if getattr(m, name) < 1:
            raise UnirexError(f"model.{name} must be >= 1, got {getattr(m, name)}")
    if m.expl_head_mlp_hidden_layers < 0:
        raise UnirexError("model.expl_head_mlp_hidden_layers must be >= 0")
    if m.optimizer.lr <= 0:
        raise UnirexError(f"model.optimizer.lr must be > 0, got {m.optimizer.lr}")
    if len(m.optimizer.betas) != 2 or any(not 0.0 <= b < 1.0 for b in m.optimizer.betas):
        raise UnirexError(f"model.optimizer.betas must be two numbers in [0, 1), got {list(m.optimizer.betas)}")
    if not 0.0 <= d.plaus_frac <= 1.0:
        raise UnirexError(f"data.plaus_frac must be in [0, 1], got {d.plaus_frac}")
    if d.train_rationales_batch_factor <= 1.0:
        raise UnirexError(f"data.train_rationales_batch_factor must be > 1, got {d.train_rationales_batch_factor}")
    if d.fresh_topk is not None and not 0 < d.fresh_topk <= 100:
        raise UnirexError(f"data.fresh_topk must be in (0, 100], got {d.fresh_topk}")
    if d.max_length < 8:
        raise UnirexError(f"data.max_length must be >= 8, got {d.max_length}")
    if d.num_train is not None and d.num_train < 1:
        raise UnirexError(f"data.num_train must be >= 1, got {d.num_train}")
    for name in ("train_batch_size", "eval_batch_size", "accumulate_grad_batches", "eff_train_batch_size"):
        if getattr(s, name) < 1:
            raise UnirexError(f"setup.{name} must be >= 1, got {getattr(s, name)}")
    if s.num_workers < 0:
        raise UnirexError("setup.num_workers must be >= 0")
    if s.train_batch_size * s.accumulate_grad_batches != s.eff_train_batch_size:
        raise UnirexError(
            f"setup.eff_train_batch_size={s.eff_train_batch_size} != setup.train_batch_size="
            f"{s.train_batch_size} x setup.accumulate_grad_batches={s.accumulate_grad_batches}")
    bad = [x for x in t.splits if x not in SPLITS]
    if bad or not t.splits:
        raise UnirexError(f"training.eval_splits={t.eval_splits!r}: use a comma list of {', '.join(SPLITS)}")
    if t.epochs < 1 or t.patience < 0:
        raise UnirexError("training.epochs must be >= 1 and training.patience >= 0")
    parse_extra_metrics(cfg.eval.extra_metrics)
    if cfg.eval.sensitivity_samples < 1:
        raise UnirexError(f"eval.sensitivity_samples must be >= 1, got {cfg.eval.sensitivity_samples}")
    if not cfg.eval.sensitivity_radius > 0:
        raise UnirexError(f"eval.sensitivity_radius must be > 0, got {cfg.eval.sensitivity_radius}")
    check_settings(cfg)


# ---------------------------------------------------------------------------------- serialisation
def to_dict(cfg: RunConfig) -> dict:
    """Plain nested dict (JSON/YAML-ready) of a config."""
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=False)  # type: ignore[return-value]


def from_dict(data: dict, validate: bool = True) -> RunConfig:
    """Inverse of :func:`to_dict`; unknown keys are an error (with suggestions). A saved config without a
    ``protocol`` key predates it and was trained as ``eraser`` trains, so it loads as ``protocol=eraser``."""
    if isinstance(data, dict) and "protocol" not in data:
        data = {**data, "protocol": "eraser"}
    flat = flatten(data)
    keys = set(valid_keys())
    for k, v in flat.items():
        if k not in keys:
            raise unknown_key_error(k)
        try:
            refuse_interpolation(k, v)
        except UnirexError as e:
            raise UnirexError(f"bad config: {e}") from None
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(RunConfig), data)
    except OmegaConfBaseException as e:
        raise UnirexError(f"bad config: {str(e).strip().splitlines()[0]}") from None
    return _finish(cfg, validate)


def flatten(data: dict | RunConfig, prefix: str = "") -> dict[str, Any]:
    """``{'model': {'comp_wt': 0.5}}`` -> ``{'model.comp_wt': 0.5}`` (lists stay values)."""
    if is_dataclass(data):
        data = to_dict(data)  # type: ignore[arg-type]
    out: dict[str, Any] = {}
    for k, v in data.items():  # type: ignore[union-attr]
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def to_overrides(cfg: RunConfig, base: RunConfig | None = None) -> list[str]:
    """The ``key=value`` overrides that turn ``base`` (default: the defaults) into ``cfg``. A key the protocol
    sets (:func:`unirex.protocol.protocol_defaults` of ``cfg``'s protocol, dataset and arch) is written when
    ``cfg``'s value is not the protocol's, whatever ``base`` holds, since resolving the overrides gives it the
    protocol's value otherwise."""
    a, b = flatten(cfg), flatten(base or resolve_config([], validate=False))
    governed = protocol_defaults(cfg.protocol, cfg.data.dataset, cfg.arch)
    return [f"{k}={_fmt(v)}" for k, v in a.items() if (governed[k] != v if k in governed else b.get(k) != v)]


def _fmt(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, str) and ("," in v or " " in v):
        return f"'{v}'"
    return str(v)


__all__ = [
    "ATTR_POOLINGS", "COMP_CRITERIA", "DataConfig", "EvalConfig", "HEAD_TYPES",
    "LoggerConfig", "MODEL_GROUPS", "ModelConfig", "OptimizerConfig", "RATIONALE_REMOVALS", "RunConfig", "SUFF_CRITERIA",
    "SchedulerConfig", "SetupConfig", "TrainingConfig", "expand_sweep", "flatten", "from_dict", "identify_method", "method_config",
    "parse_override", "resolve_config", "split_sweep_value", "suggest_keys", "to_dict", "to_overrides",
    "valid_keys", "validate_config",
]
