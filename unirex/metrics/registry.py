"""The metric registry: one :class:`MetricSpec` per metric the fronts show, in display order.

Every front iterates this table instead of a list of its own: the runs index (``store.runs_table``),
``python -m unirex runs`` / ``show`` / ``compare`` and the training summaries, the app's Runs and
Compare tabs and their figures, the Hub model card, and NRG's compositions (:mod:`.nrg`). A metric's
direction (higher or lower is better) is written once, here, as :class:`Direction`.

A new metric is one call, from a module of its own (named in ``UNIREX_PLUGINS`` or imported before the
fronts read the table)::

    from unirex.metrics.registry import Direction, Family, Headline, MetricSpec, register_metric

    register_metric(MetricSpec("runtime_ms", "runtime (ms)", Family.EFFICIENCY, Direction.LOWER,
                               headline=Headline.FULL, digits=1))

The evaluator's metric dict (:func:`unirex.evaluate.evaluate`) then only needs to hold a value under
that key (or a run logs one, ``metrics.jsonl``): the fronts pick it up from here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Any

from unirex.errors import UnirexError
from unirex.metrics import extra
from unirex.metrics.faithfulness import BINS


class Direction(str, Enum):
    """Which way a metric improves."""

    HIGHER = "higher"
    LOWER = "lower"

    @property
    def higher_is_better(self) -> bool:
        return self is Direction.HIGHER

    @property
    def arrow(self) -> str:
        return "↑" if self is Direction.HIGHER else "↓"

    @property
    def phrase(self) -> str:
        return f"{self.value} is better"


class Family(str, Enum):
    """The desideratum a metric measures; NRG averages within the first three."""

    TASK = "task"
    FAITHFULNESS = "faithfulness"
    PLAUSIBILITY = "plausibility"
    EFFICIENCY = "efficiency"


#: the desiderata NRG composes, in the order its components are reported (``nrg_faithfulness``, ...)
NRG_FAMILIES: tuple[Family, ...] = (Family.FAITHFULNESS, Family.PLAUSIBILITY, Family.TASK)


class Headline(IntEnum):
    """How prominently a headline metric is shown; a table of a given width shows every metric of that
    prominence or more (``metrics(headline=Headline.SUMMARY)``: BRIEF, COMPACT and SUMMARY ones)."""

    BRIEF = 1  # one-line summaries: ``unirex runs``, the training progress line
    COMPACT = 2  # ``unirex show``'s dev per epoch, the Runs tab's tables before a run is chosen
    SUMMARY = 3  # ``unirex compare``, a run's / a sweep's summary, the Runs tab's table, dev per epoch and curves
    FULL = 4  # ``unirex show``'s final evaluation, the runs index, the Compare tab, the Hub card


@dataclass(frozen=True)
class MetricSpec:
    """What the fronts need to know about one metric key (``metrics.jsonl`` / the store's ``name``).

    ``label``: the short column heading (the fronts add the direction arrow, :attr:`heading`);
    ``title``: the long name (the Hub card); ``abbrev``: the word the CLI's one-line summaries use;
    ``headline``: shown in the headline tables (None: only in the comparison, when ``compared``);
    ``compared``: a column of the comparison (``compare``, the Compare tab's data, its exports);
    ``nrg``: the NRG conventions (``paper``, ``eraser``) whose composition uses it, under its family;
    ``digits``: decimals shown (Runs tab, Hub card); ``card_type`` / ``card_config``: its ``model-index``
    ``type`` and ``config`` on the Hub card (type default: the key); ``compute``: for a metric of its own
    module, its value from an evaluation's per-example outputs (:class:`unirex.evaluate.EvalOutputs` ->
    float or None), which the evaluator adds to every evaluation (the built-ins are computed by
    :mod:`unirex.evaluate` itself).
    """

    key: str
    label: str
    family: Family
    direction: Direction = Direction.HIGHER
    headline: Headline | None = None
    compared: bool = True
    nrg: tuple[str, ...] = ()
    digits: int = 4
    title: str = ""
    abbrev: str = ""
    card_type: str = ""
    card_config: str | None = None
    compute: Callable[[Any], float | None] | None = field(default=None, compare=False)

    def __post_init__(self):
        if not self.key or not self.key.replace("_", "").isalnum():
            raise UnirexError(f"a metric key is letters, digits and '_', got {self.key!r}")
        object.__setattr__(self, "family", Family(self.family))
        object.__setattr__(self, "direction", Direction(self.direction))
        if self.headline is not None:
            object.__setattr__(self, "headline", Headline(self.headline))
        object.__setattr__(self, "nrg", tuple(self.nrg))

    @property
    def higher_is_better(self) -> bool:
        return self.direction.higher_is_better

    @property
    def states_direction(self) -> bool:
        """Whether headings name the direction: faithfulness metrics (comprehensiveness rises,
        sufficiency falls) and any metric where lower is better."""
        return self.family is Family.FAITHFULNESS or self.direction is Direction.LOWER

    @property
    def heading(self) -> str:
        """The column heading: ``label`` with the direction's arrow where it is stated (``suff AOPC ↓``)."""
        return f"{self.label} {self.direction.arrow}" if self.states_direction else self.label

    @property
    def card_name(self) -> str:
        """The name on the Hub card (``Sufficiency AOPC (lower is better)``)."""
        name = self.title or self.label
        return f"{name} ({self.direction.phrase})" if self.states_direction else name

    @property
    def short(self) -> str:
        return self.abbrev or self.key

    @property
    def hub_type(self) -> str:
        return self.card_type or self.key


_F, _P, _T = Family.FAITHFULNESS, Family.PLAUSIBILITY, Family.TASK
_BOTH, _PAPER, _ERASER = ("paper", "eraser"), ("paper",), ("eraser",)

#: the built-in metrics, in display order
BUILTIN_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("acc", "acc", _T, headline=Headline.BRIEF, title="Accuracy", card_type="accuracy"),
    MetricSpec("macro_f1", "macro F1", _T, headline=Headline.COMPACT, nrg=_ERASER, title="Macro F1", card_type="f1",
               card_config="macro"),
    MetricSpec("task_ref", "task (ref.)", _T, nrg=_PAPER, title="Task metric (UNIREX's, per dataset)"),
    MetricSpec("comp_aopc", "comp AOPC", _F, headline=Headline.BRIEF, nrg=_ERASER, title="Comprehensiveness AOPC",
               abbrev="comp", card_type="comprehensiveness"),
    MetricSpec("suff_aopc", "suff AOPC", _F, Direction.LOWER, headline=Headline.BRIEF, nrg=_ERASER,
               title="Sufficiency AOPC", abbrev="suff", card_type="sufficiency"),
    MetricSpec("plaus_auprc", "AUPRC", _P, headline=Headline.BRIEF, nrg=_ERASER, title="Plausibility AUPRC",
               abbrev="auprc", card_type="auprc"),
    MetricSpec("plaus_token_f1", "token F1", _P, headline=Headline.SUMMARY, nrg=_ERASER,
               title="Plausibility token F1", abbrev="token_f1", card_type="token_f1"),
    MetricSpec("plaus_iou_f1", "IOU F1", _P, headline=Headline.FULL, nrg=_ERASER, title="Plausibility IOU F1",
               abbrev="iou_f1", card_type="iou_f1"),
    MetricSpec("plaus_ref_auprc", "AUPRC (ref.)", _P, nrg=_PAPER, title="Plausibility AUPRC (UNIREX's)"),
    MetricSpec("plaus_ref_token_f1", "token F1 (ref.)", _P, title="Plausibility token F1 (UNIREX's)"),
    *(MetricSpec(f"comp_k{k}", f"comp @{k}%", _F, title=f"Comprehensiveness at {k}%") for k in BINS),
    *(MetricSpec(f"suff_k{k}", f"suff @{k}%", _F, Direction.LOWER, title=f"Sufficiency at {k}%") for k in BINS),
    MetricSpec("comp_aopc_unirex", "comp AOPC (ref.)", _F, compared=False, nrg=_PAPER,
               title="Comprehensiveness AOPC (UNIREX's sum)"),
    MetricSpec("suff_aopc_unirex", "suff AOPC (ref.)", _F, Direction.LOWER, compared=False, nrg=_PAPER,
               title="Sufficiency AOPC (UNIREX's sum)"),
    # beside ERASER's, computed when ``eval.extra_metrics`` asks (:mod:`unirex.metrics.extra`); None otherwise
    MetricSpec("soft_comp", "soft comp", _F, title="Soft comprehensiveness (Zhao & Aletras 2023)",
               compute=extra.soft_comp),
    MetricSpec("soft_suff", "soft suff", _F, Direction.LOWER, title="Soft sufficiency (Zhao & Aletras 2023)",
               compute=extra.soft_suff),
    MetricSpec("sensitivity_max", "max-sensitivity", _F, Direction.LOWER,
               title="Max-sensitivity of the scores (Yeh et al. 2019)", compute=extra.sensitivity_max),
    MetricSpec("diag_comp", "diag. comp", _F, title="Diagnosticity against random, comprehensiveness",
               compute=extra.diag_comp),
    MetricSpec("diag_suff", "diag. suff", _F, title="Diagnosticity against random, sufficiency",
               compute=extra.diag_suff),
    # the minimal flip search (:mod:`unirex.counterfactual`), when an evaluation runs it (``training.eval_flip``;
    # the evaluator leaves them out otherwise); lower is better: fewer edits flip the prediction
    MetricSpec("flip_words", "flip words", _F, Direction.LOWER,
               title="Fraction of words edited to flip the prediction, in the rationale's order",
               compute=extra.flip_words),
    MetricSpec("flip_words_random", "flip words (random)", _F, Direction.LOWER,
               title="Fraction of words edited to flip the prediction, in a random order (control)",
               compute=extra.flip_words_random),
)

_LOCK = threading.Lock()
_REGISTRY: dict[str, MetricSpec] = {s.key: s for s in BUILTIN_METRICS}


def register_metric(spec: MetricSpec, *, replace: bool = False) -> MetricSpec:
    """Add ``spec`` to the table (after the metrics already there); a :class:`UnirexError` when its key is
    taken, unless ``replace`` (which keeps the key's place)."""
    if not isinstance(spec, MetricSpec):
        raise UnirexError(f"register_metric takes a MetricSpec, got {type(spec).__name__}")
    with _LOCK:
        if spec.key in _REGISTRY and not replace:
            raise UnirexError(f"metric {spec.key!r} is already registered")
        _REGISTRY[spec.key] = spec
    return spec


def unregister_metric(key: str) -> None:
    """Remove a registered metric (for tests and plugins that undo themselves); built-ins stay."""
    if key in {s.key for s in BUILTIN_METRICS}:
        raise UnirexError(f"metric {key!r} is built in")
    with _LOCK:
        _REGISTRY.pop(key, None)


def get_metric(key: str) -> MetricSpec:
    """The spec of ``key``; a :class:`UnirexError` for an unknown key."""
    try:
        return _REGISTRY[key]
    except KeyError:
        raise UnirexError(f"unknown metric {key!r}") from None


def direction(key: str) -> Direction:
    """The direction of ``key``; higher is better for a key the table does not hold (NRG scores, ...)."""
    spec = _REGISTRY.get(key)
    return Direction.HIGHER if spec is None else spec.direction


def metrics(family: Family | str | None = None, headline: Headline | int | bool | None = None, *,
            compared: bool | None = None, nrg: str | None = None) -> list[MetricSpec]:
    """The registered specs in display order, narrowed by ``family``; ``headline``: True = every headline
    metric, a :class:`Headline` = those at least that prominent, False = the others; ``compared``; ``nrg``:
    those an NRG convention uses."""
    with _LOCK:
        specs = list(_REGISTRY.values())
    if family is not None:
        specs = [s for s in specs if s.family is Family(family)]
    if isinstance(headline, bool):
        specs = [s for s in specs if (s.headline is not None) == headline]
    elif headline is not None:
        specs = [s for s in specs if s.headline is not None and s.headline <= headline]
    if compared is not None:
        specs = [s for s in specs if s.compared == compared]
    if nrg is not None:
        specs = [s for s in specs if nrg in s.nrg]
    return specs


def metric_keys(family: Family | str | None = None, headline: Headline | int | bool | None = None, *,
                compared: bool | None = None, nrg: str | None = None) -> tuple[str, ...]:
    """The keys of :func:`metrics`."""
    return tuple(s.key for s in metrics(family, headline, compared=compared, nrg=nrg))


def on_request(present) -> list[MetricSpec]:
    """The compared metrics that are not headline ones but compute their own (``MetricSpec.compute``: an
    evaluation reports them only when asked, ``eval.extra_metrics`` / ``training.eval_flip``), among ``present`` (the metrics a
    comparison holds): the tables show these beside the headline metrics, and no empty column otherwise."""
    have = set(present)
    return [s for s in metrics(headline=False, compared=True) if s.compute is not None and s.key in have]


def computed_metrics(outputs) -> dict[str, float | None]:
    """The values of the registered metrics that compute their own (``MetricSpec.compute``) on an
    evaluation's outputs (:class:`unirex.evaluate.EvalOutputs`)."""
    out: dict[str, float | None] = {}
    for spec in metrics():
        if spec.compute is not None:
            value = spec.compute(outputs)
            out[spec.key] = None if value is None else float(value)
    return out


__all__ = ["BUILTIN_METRICS", "NRG_FAMILIES", "Direction", "Family", "Headline", "MetricSpec", "computed_metrics",
           "direction", "get_metric", "metric_keys", "metrics", "on_request", "register_metric", "unregister_metric"]
