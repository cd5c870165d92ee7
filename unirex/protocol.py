"""What ``protocol=reference`` changes in training, one place (issue 22, section 2).

``protocol`` (:data:`unirex.config.PROTOCOLS`) is ``reference`` (default: a UNIREX command trains as the
paper's code does) or ``eraser`` (the workbench's earlier behaviour, coherent with ERASER's conventions).
ERASER's own metrics never depend on it.

Two kinds of difference:

* **settings** (:func:`protocol_defaults`): values the reference's configs give keys of this config.
  :func:`unirex.config.resolve_config` writes them into the config under ``reference`` for every key the
  user (or a method preset) did not set explicitly, so ``config.json`` records what a run actually used
  and an explicit ``model.optimizer.lr=...``, ``training.monitor=...`` or ``data.max_length=...`` always
  wins. Under ``eraser`` the dataclass defaults stand.
* **inputs** (:func:`input_layout`): the e-SNLI input without the query, a movie review cut so its
  rationale stays (built into their own cache folders).
* **behaviour** read at run time from ``cfg.protocol`` (:func:`is_reference`): which tokens the plausibility
  and L2E losses cover, L2E's binning of multiple-choice rows, dropout after a step, the early-stopping
  count.

The reference's settings (read from its public configs and code; nothing copied):

==========================  =========================================  ==================================
key                         reference                                  eraser (dataclass default)
==========================  =========================================  ==================================
model.optimizer.name        ``hf_adamw``: AdamW without bias           ``adamw`` (torch's)
                            correction (:class:`unirex.optim.HFAdamW`)
model.optimizer.betas       ``[0.9, 0.98]``                            ``[0.9, 0.999]``
model.scheduler.warmup_...  ``0.1`` of all updates, linear decay       ``0.0``
training.max_grad_norm      ``0`` (no clipping)                        ``1.0``
setup.precision             ``fp16`` (autocast + loss scaling on a     ``32``
                            GPU; on a CPU autocast is off: fp32)
training.monitor            ``dev_task_ref`` (accuracy on CoS-E/SST,   ``dev_task_macro_f1``
                            macro F1 elsewhere: its ``monitor_dict``)
data.max_length             per dataset and arch (:data:`MAX_LENGTH`)  ``512``
==========================  =========================================  ==================================

The learning rate stays ``2e-5``: every command of the paper's README sets ``model.optimizer.lr=2e-5``
(its optimizer file's own ``1e-5`` is never used by them). Weight decay is 0 under both, so which parameters
are excluded from it (biases and LayerNorm weights under both) changes nothing by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REFERENCE = "reference"
ERASER = "eraser"

#: the reference's sequence length per dataset: (BERT-style arch, BigBird); its data table gives the same
#: value for ``bert-base-uncased`` and ``google/bigbird-roberta-base`` except where two are listed
MAX_LENGTH: dict[str, tuple[int, int]] = {
    "cose": (512, 77), "esnli": (125, 125), "movies": (512, 1024), "multirc": (512, 748), "sst": (58, 67),
    "amazon": (256, 256), "yelp": (512, 512), "stf": (128, 128), "olid": (128, 128), "irony": (128, 128),
}

#: keys whose reference value does not depend on the dataset
_FIXED: dict[str, Any] = {
    "model.optimizer.name": "hf_adamw",
    "model.optimizer.betas": [0.9, 0.98],
    "model.scheduler.warmup_updates": 0.1,
    "training.max_grad_norm": 0.0,
    "setup.precision": "fp16",
    "training.monitor": "dev_task_ref",
}


@dataclass(frozen=True)
class InputLayout:
    """How a dataset's inputs are built (:func:`unirex.data.build.build_split`): ERASER's layout (the
    default: ``[CLS] documents [SEP] query [SEP]``, long documents cut at the end), or the reference's for
    the datasets where it differs (:func:`input_layout`).

    Attributes:
        drop_query: the query is left out of the input (the reference's e-SNLI input is
            ``[CLS] premise [SEP] hypothesis [SEP]``; ERASER's annotations carry a query besides).
        keep_rationale_tail: a single document that does not fit keeps its head when the head holds some of
            the gold rationale, else its tail (the reference's movie reviews).
    """

    drop_query: bool = False
    keep_rationale_tail: bool = False

    @property
    def tag(self) -> str:
        """A suffix for the build folder: empty for ERASER's layout, so those caches stay where they were."""
        return "" if self == InputLayout() else "-ref" + ("q" if self.drop_query else "") + ("t" if self.keep_rationale_tail else "")


#: the datasets whose input the reference builds differently from ERASER's layout
REFERENCE_LAYOUTS: dict[str, InputLayout] = {
    "esnli": InputLayout(drop_query=True),
    "movies": InputLayout(keep_rationale_tail=True),
}


def input_layout(protocol: str, dataset: str) -> InputLayout:
    """The layout ``dataset``'s inputs are built with under ``protocol``."""
    if protocol != REFERENCE:
        return InputLayout()
    return REFERENCE_LAYOUTS.get((dataset or "").lower(), InputLayout())


def is_reference(cfg) -> bool:
    """Whether ``cfg`` (a :class:`~unirex.config.RunConfig`) trains under the reference protocol."""
    return getattr(cfg, "protocol", REFERENCE) == REFERENCE


def reference_max_length(dataset: str, arch: str | None) -> int | None:
    """The reference's ``max_length`` for ``dataset`` on ``arch`` (its BigBird value when the arch names
    BigBird, else its BERT value), or None for a dataset it does not list."""
    pair = MAX_LENGTH.get((dataset or "").lower())
    if pair is None:
        return None
    return pair[1] if "bigbird" in str(arch or "").lower() else pair[0]


def protocol_defaults(protocol: str, dataset: str, arch: str | None) -> dict[str, Any]:
    """``{dotted key: value}`` the protocol gives keys the user left unset (empty under ``eraser``)."""
    if protocol != REFERENCE:
        return {}
    out = dict(_FIXED)
    length = reference_max_length(dataset, arch)
    if length is not None:
        out["data.max_length"] = length
    return out


__all__ = ["ERASER", "InputLayout", "MAX_LENGTH", "REFERENCE", "REFERENCE_LAYOUTS", "input_layout", "is_reference",
           "protocol_defaults", "reference_max_length"]
