"""The task LM on disk, in the layout plain ``transformers`` loads.

:meth:`TaskLM.save_pretrained <unirex.models.TaskLM.save_pretrained>` writes the task LM so that
``AutoModelForSequenceClassification.from_pretrained(folder)`` gives the same logits (eval mode) wherever
the arch's own sequence-classification head can hold ours (dropout + linear over the pooled output):

=========================  ===================================  ========================================
layout                     archs                                how our head maps onto Hugging Face's
=========================  ===================================  ========================================
``pooler``                 BERT (MiniLM), ALBERT, ...           the same modules: encoder with its pooler,
                                                                dropout, ``classifier`` (exactly
                                                                ``BertForSequenceClassification``)
``dense_out_proj``         RoBERTa, XLM-R, MPNet, ...           ``classifier.dense`` = our pooler's dense,
                                                                ``classifier.out_proj`` = our linear; both
                                                                end in tanh. Same logits in eval mode; in
                                                                training Hugging Face adds a dropout
                                                                before the dense layer
``identity_context_pooler``  DeBERTa (v1, v2)                   no pooler: we classify the first token; the
                                                                ``ContextPooler`` gets an identity dense
                                                                layer and ``pooler_hidden_act=linear``
``encoder_and_head``       anything else (BigBird, ELECTRA,     the encoder in ``AutoModel`` layout plus
                           DistilBERT, ...)                     ``task_head.safetensors`` + ``task_head.json``;
                                                                plain ``transformers`` loads only the
                                                                encoder (``AutoModel``). Checkpoints written
                                                                before this module are in this layout too;
                                                                their head read the first token, and they
                                                                keep doing so (no ``pooling`` in their
                                                                ``task_head.json`` means first token).
=========================  ===================================  ========================================

The layout is chosen at save time: the first whose modules fit, *and* that reproduces our logits on a
probe batch (eval mode, tolerance 1e-4); otherwise ``encoder_and_head``. ``config.json`` always carries
``id2label`` / ``label2id`` (the dataset's label names) and an entry ``unirex_task_head`` (layout,
dropout, pooling, labels) that :func:`load_task_lm` reads back. ``model.dropout`` is kept there and as the
arch's classifier dropout (``classifier_dropout``), so a Hugging Face fine-tune uses it too.

A multiple-choice task LM (CoS-E: one logit per choice row) takes the same layouts with the arch's
``AutoModelForMultipleChoice`` in place of the sequence classifier (for BERT exactly
``BertForMultipleChoice``: pooler, dropout, a linear layer with one output); it takes ``[B, C, L]`` inputs
and gives the ``[B, C]`` logits that :meth:`TaskLM.group_choices` gives. ``num_choices`` is in the
``unirex_task_head`` entry (and in ``task_head.json`` for the fallback layout).

Weights are safetensors only; a folder holding only pickled weights is refused before any loader runs.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from torch import nn

from unirex.errors import UnirexError
from unirex.safeload import first_line, load_safetensors, read_json_file, require_safetensors

#: the fallback layout's task head (encoder + this file), and its description; also read from older checkpoints
HEAD_FILE = "task_head.safetensors"
HEAD_META = "task_head.json"

CONFIG_KEY = "unirex_task_head"
SEQ_LAYOUTS = ("pooler", "dense_out_proj", "identity_context_pooler")
FALLBACK = "encoder_and_head"
LAYOUTS = SEQ_LAYOUTS + (FALLBACK,)
PROBE_TOLERANCE = 1e-4


# --------------------------------------------------------------------------------------------- save
def _id2label(lm: "TaskLM", labels: list[str] | None) -> dict[int, str] | None:
    labels = labels if labels is not None else lm.labels
    if not labels or len(labels) != lm.num_classes:
        return None
    return {i: str(name) for i, name in enumerate(labels)}


def _head_meta(lm: "TaskLM", layout: str, id2label: dict[int, str] | None) -> dict:
    meta = {"layout": layout, "dropout": lm.dropout_p, "pooling": lm.pooling, "num_classes": lm.num_classes,
            "labels": list(id2label.values()) if id2label else None}
    if getattr(lm, "num_choices", None):
        meta["num_choices"] = lm.num_choices
    return meta


def _auto_class(multiple_choice: bool):
    """The Hugging Face auto class of a task LM: ``AutoModelForMultipleChoice`` or
    ``AutoModelForSequenceClassification``."""
    # lazy: transformers is heavy: loaded when a model is built or saved
    from transformers import AutoModelForMultipleChoice, AutoModelForSequenceClassification

    return AutoModelForMultipleChoice if multiple_choice else AutoModelForSequenceClassification


def _structural_layout(hf: nn.Module, lm: "TaskLM") -> str | None:
    """The layout whose modules fit ``hf`` (the arch's sequence classifier or multiple-choice model), or None."""
    head = getattr(hf, "classifier", None)
    base_pooler = getattr(hf.base_model, "pooler", None)
    if lm.pooling == "pooler":
        if isinstance(head, nn.Linear) and base_pooler is not None:
            return "pooler"
        our_dense = getattr(getattr(lm.encoder, "pooler", None), "dense", None)
        if (base_pooler is None and isinstance(our_dense, nn.Linear)
                and isinstance(getattr(head, "dense", None), nn.Linear)
                and isinstance(getattr(head, "out_proj", None), nn.Linear)):
            return "dense_out_proj"
        return None
    ctx = getattr(hf, "pooler", None)
    if (isinstance(head, nn.Linear) and isinstance(getattr(ctx, "dense", None), nn.Linear)
            and hasattr(hf.config, "pooler_hidden_act")):
        return "identity_context_pooler"
    return None


def _fill(hf: nn.Module, lm: "TaskLM", layout: str) -> None:
    """Put our tensors into ``hf``, built on the meta device: ``assign`` shares their storage (no copy, no
    random initialisation); strict, so every tensor must find its place. The encoder's non-persistent
    buffers (position ids, ...) are shared too."""
    enc_state = lm.encoder.state_dict()
    if layout == "dense_out_proj":
        enc_state = {k: v for k, v in enc_state.items() if not k.startswith("pooler.")}
    hf.base_model.load_state_dict(enc_state, strict=True, assign=True)
    for name, buf in lm.encoder.named_buffers():
        owner, _, leaf = name.rpartition(".")
        if name not in enc_state and not name.startswith("pooler."):
            hf.base_model.get_submodule(owner).register_buffer(leaf, buf, persistent=False)
    if layout in ("pooler", "identity_context_pooler"):
        hf.classifier.load_state_dict(lm.classifier.state_dict(), assign=True)
    if layout == "dense_out_proj":
        hf.classifier.dense.load_state_dict(lm.encoder.pooler.dense.state_dict(), assign=True)
        hf.classifier.out_proj.load_state_dict(lm.classifier.state_dict(), assign=True)
    if layout == "identity_context_pooler":
        dense, ref = hf.pooler.dense, lm.classifier.weight
        if dense.in_features != dense.out_features:
            raise RuntimeError("pooler_hidden_size differs from hidden_size")
        dense.weight = nn.Parameter(torch.eye(dense.in_features, dtype=ref.dtype, device=ref.device))
        dense.bias = nn.Parameter(torch.zeros(dense.out_features, dtype=ref.dtype, device=ref.device))
        hf.config.pooler_hidden_act = "linear"
    if any(t.is_meta for t in [*hf.parameters(), *hf.buffers()]):
        raise RuntimeError("tensors of the Hugging Face model found no counterpart in ours")


def probe_batch(vocab_size: int, device=None, rows: int = 2) -> dict[str, torch.Tensor]:
    """``rows`` short rows (every second one padded) used to check that two models give the same logits."""
    ids = (torch.arange(8 * rows).view(rows, 8) * 7 + 3) % max(int(vocab_size), 1)
    mask = torch.ones_like(ids)
    mask[1::2, 5:] = 0
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


def choice_inputs(batch: dict[str, torch.Tensor], num_choices: int) -> dict[str, torch.Tensor]:
    """A batch of ``B x C`` rows (an example's choices consecutive) as ``AutoModelForMultipleChoice`` takes
    it: every tensor ``[B, C, L]``."""
    return {k: v.view(-1, num_choices, v.shape[-1]) for k, v in batch.items()}


def _reproduces(hf: nn.Module, lm: "TaskLM") -> bool:
    device = next(lm.parameters()).device
    c = lm.num_choices
    batch = probe_batch(hf.config.vocab_size, device, rows=2 * c if c else 2)
    was_training = lm.training
    lm.eval()
    hf.eval()
    try:
        with torch.no_grad():
            ours = lm.group_choices(lm(**batch)).float()
            theirs = hf(**(choice_inputs(batch, c) if c else batch)).logits.float()
    except Exception:  # noqa: BLE001 - a head that cannot even run is not a match
        return False
    finally:
        lm.train(was_training)
    return ours.shape == theirs.shape and bool(torch.allclose(ours, theirs, atol=PROBE_TOLERANCE, rtol=PROBE_TOLERANCE))


def as_hf_model(lm: "TaskLM", labels: list[str] | None = None) -> nn.Module | None:
    """A Hugging Face ``AutoModelForSequenceClassification`` (``AutoModelForMultipleChoice`` for a
    multiple-choice task LM) sharing ``lm``'s weights (the same tensors, not a copy) that gives its logits
    (eval mode), or None when the arch's head cannot (see the module docstring)."""
    id2label = _id2label(lm, labels)
    config = copy.deepcopy(lm.encoder.config)
    config.architectures = None
    config.num_labels = lm.num_classes
    if id2label:
        config.id2label = dict(id2label)
        config.label2id = {name: i for i, name in id2label.items()}
    config.classifier_dropout = lm.dropout_p
    for name in ("classifier_dropout_prob", "cls_dropout"):  # ALBERT, DeBERTa call it so
        if hasattr(config, name):
            setattr(config, name, lm.dropout_p)
    try:
        with torch.device("meta"):  # no memory, no random initialisation: _fill assigns our tensors
            hf = _auto_class(bool(lm.num_choices)).from_config(config)
    except (ValueError, KeyError, TypeError, AttributeError):  # the arch has no such class
        return None
    layout = _structural_layout(hf, lm)
    if layout is None:
        return None
    try:
        _fill(hf, lm, layout)
    except (RuntimeError, KeyError, AttributeError):
        return None
    if not _reproduces(hf, lm):
        return None
    setattr(hf.config, CONFIG_KEY, _head_meta(lm, layout, id2label))
    return hf


def save_task_lm(lm: "TaskLM", folder: str | Path, labels: list[str] | None = None) -> str:
    """Write ``lm`` to ``folder`` (see the module docstring); returns the layout written."""
    # lazy: safetensors only when saving
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    hf = as_hf_model(lm, labels)
    if hf is not None:
        hf.save_pretrained(folder)
        return getattr(hf.config, CONFIG_KEY)["layout"]
    id2label = _id2label(lm, labels)
    lm.encoder.save_pretrained(folder)
    meta = _head_meta(lm, FALLBACK, id2label)
    cfg_path = folder / "config.json"
    cfg = json.loads(cfg_path.read_text())
    if id2label:
        cfg["id2label"] = {str(i): name for i, name in id2label.items()}
        cfg["label2id"] = {name: i for i, name in id2label.items()}
    cfg[CONFIG_KEY] = meta
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    state = {f"classifier.{k}": v.detach().contiguous().cpu() for k, v in lm.classifier.state_dict().items()}
    save_file(state, str(folder / HEAD_FILE))
    (folder / HEAD_META).write_text(json.dumps({k: meta[k] for k in ("num_classes", "dropout", "pooling", "labels",
                                                                     "num_choices") if k in meta}))
    return FALLBACK


# --------------------------------------------------------------------------------------------- load
def _hf(call, folder: Path, what: str):
    try:
        return call()
    except UnirexError:
        raise
    except Exception as e:  # noqa: BLE001 - a file transformers cannot read is the user's problem, named
        raise UnirexError(f"{folder}: cannot load the {what} ({first_line(e)})") from None


def _number(meta: dict, key: str, path: Path, kind=float):
    value = meta.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and int(value) != value):
        raise UnirexError(f"{path}: '{key}' should be a number, got {value!r}")
    return kind(value)


def _num_choices(meta: dict, path: Path) -> int | None:
    """A task-head description's ``num_choices`` (multiple choice), or None for a classifier."""
    return _number(meta, "num_choices", path, int) if meta.get("num_choices") is not None else None


def _load_encoder_and_head(folder: Path, config: dict, cls: type) -> "TaskLM":
    # lazy: transformers is heavy: loaded when a model is loaded
    from transformers import AutoModel

    meta_path = folder / HEAD_META
    meta = read_json_file(meta_path, "task head description")
    num_classes = _number(meta, "num_classes", meta_path, int)
    dropout = _number(meta, "dropout", meta_path)
    state = load_safetensors(folder / HEAD_FILE, "task head")
    encoder = _hf(lambda: AutoModel.from_pretrained(folder, use_safetensors=True), folder, "task LM encoder")
    labels = meta.get("labels") or (config.get(CONFIG_KEY) or {}).get("labels")
    # checkpoints written before the head read the pooler output carry no "pooling": they used the first token
    pooling = meta.get("pooling", "first_token")
    if pooling not in ("pooler", "first_token") or (pooling == "pooler" and getattr(encoder, "pooler", None) is None):
        raise UnirexError(f"{meta_path}: 'pooling' should be 'pooler' or 'first_token' and fit the encoder, got {pooling!r}")
    num_choices = _num_choices(meta, meta_path)
    lm = cls(encoder, num_classes, dropout, labels if isinstance(labels, list) else None, pooling, num_choices=num_choices)
    try:
        lm.classifier.load_state_dict({k.split(".", 1)[1]: v for k, v in state.items()})
    except (RuntimeError, IndexError) as e:
        raise UnirexError(f"{folder / HEAD_FILE}: the task head does not fit the encoder ({first_line(e)})") from None
    return lm.eval()


def load_task_lm(folder: str | Path, cls: type) -> "TaskLM":
    """A ``cls`` (:class:`~unirex.models.task_lm.TaskLM`, which calls this from its ``from_pretrained``)
    from a folder written by :func:`save_task_lm` (any layout, including the encoder +
    ``task_head.safetensors`` layout of earlier versions). This module never imports the task LM module:
    the task LM depends on its persistence, not the other way round."""
    # lazy: transformers is heavy: loaded when a model is loaded
    from transformers import AutoModel

    folder = Path(folder)
    config_path = folder / "config.json"
    config = read_json_file(config_path, "task LM config")
    require_safetensors(folder, "task LM")
    meta = config.get(CONFIG_KEY)
    if (folder / HEAD_FILE).is_file() or (isinstance(meta, dict) and meta.get("layout") == FALLBACK):
        return _load_encoder_and_head(folder, config, cls)
    if not isinstance(meta, dict) or meta.get("layout") not in SEQ_LAYOUTS:
        raise UnirexError(f"{config_path}: not a UNIREX task LM (no '{CONFIG_KEY}' entry and no {HEAD_FILE})")
    layout = meta["layout"]
    dropout = _number(meta, "dropout", config_path)
    labels = meta.get("labels") if isinstance(meta.get("labels"), list) else None
    num_choices = _num_choices(meta, config_path)
    auto = _auto_class(bool(num_choices))
    hf = _hf(lambda: auto.from_pretrained(folder, use_safetensors=True), folder, "task LM")
    head = hf.classifier
    if layout == "dense_out_proj":
        encoder = AutoModel.from_config(hf.config)
        result = encoder.load_state_dict(hf.base_model.state_dict(), strict=False)
        if result.unexpected_keys or any(not k.startswith("pooler.") for k in result.missing_keys):
            raise UnirexError(f"{folder}: the task LM's weights do not fit its layout '{layout}'")
        encoder.pooler.dense.load_state_dict(head.dense.state_dict())
        head = head.out_proj
    else:
        encoder = hf.base_model
        if layout == "identity_context_pooler":
            w = hf.pooler.dense.weight
            if not torch.equal(w, torch.eye(w.shape[0], dtype=w.dtype)) or bool(hf.pooler.dense.bias.any()):
                raise UnirexError(f"{folder}: the pooler of layout '{layout}' is not the identity: this task LM was "
                                  "changed outside UNIREX")
    if not isinstance(head, nn.Linear):
        raise UnirexError(f"{folder}: the task LM's head does not fit its layout '{layout}'")
    if num_choices and head.out_features != 1:
        raise UnirexError(f"{folder}: a multiple-choice task LM has one output per choice row, this head has "
                          f"{head.out_features}")
    lm = cls(encoder, num_choices or head.out_features, dropout, labels, num_choices=num_choices)
    if lm.pooling != meta.get("pooling", lm.pooling):
        raise UnirexError(f"{config_path}: the task LM pools with '{lm.pooling}', its config says '{meta.get('pooling')}'")
    lm.classifier.load_state_dict(head.state_dict())
    return lm.eval()


__all__ = ["CONFIG_KEY", "FALLBACK", "LAYOUTS", "SEQ_LAYOUTS", "as_hf_model", "choice_inputs", "load_task_lm",
           "probe_batch", "save_task_lm"]
