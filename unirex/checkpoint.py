"""Checkpoints: safetensors only, never pickles.

A checkpoint folder, as a run writes it (``runs/<run>/checkpoint/``)::

    checkpoint/
      task_lm/                 the task LM in Hugging Face layout: config.json (with id2label / label2id)
                               + model.safetensors + the tokenizer. For BERT (the bundled MiniLM),
                               RoBERTa, DeBERTa and kin it is the arch's own
                               ``AutoModelForSequenceClassification`` layout (``AutoModelForMultipleChoice``
                               for a multiple-choice task), so plain transformers
                               predicts what the task LM predicts; other archs keep the encoder plus
                               task_head.safetensors (:mod:`unirex.models.hf_layout`)
      extractor.safetensors    every other trained weight (extractor heads, DLM encoder, A2R predictor)
      config.json              the full run config (the paper's dotted keys, nested)
      checkpoint.json          labels, epoch, monitored metric and value, time, run id

A checkpoint pushed to the Hugging Face Hub (:mod:`unirex.hub`) puts the task LM at the repository's
root, where ``AutoModelForSequenceClassification.from_pretrained(repo)`` finds it, and UNIREX's own
files under ``unirex/``::

    README.md  config.json  model.safetensors  tokenizer files      (the task LM)
    unirex/extractor.safetensors  unirex/config.json  unirex/checkpoint.json

:class:`CheckpointFiles` finds the parts in either layout. A checkpoint is written to a temporary
folder beside the target and renamed into place, so a crash leaves the previous checkpoint intact.

Naming a checkpoint (``training.ckpt_path=``, :func:`open_checkpoint`): see :func:`resolve_checkpoint`.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch

from unirex.errors import UnirexError
from unirex.fsutil import atomic_dir, reporting_disk_full
from unirex.hubnet import ALLOW_PATTERNS, hub_error
from unirex.models import TaskLM, build_model
from unirex.runs import refuse_linked_run
from unirex.safeload import (PICKLE_SUFFIXES, check_finite, check_finite_file, first_line, load_safetensors,
                             pickled_files, read_json_file)
from unirex.workspace import workspace_dir

if TYPE_CHECKING:
    from unirex.config import RunConfig
    from unirex.models import UnirexModel

TASK_LM_DIR = "task_lm"
EXTRACTOR_FILE = "extractor.safetensors"
CONFIG_FILE = "config.json"
INFO_FILE = "checkpoint.json"
HUB_DIR = "unirex"  # in the Hub layout: UNIREX's own files, beside the task LM at the root

#: ``namespace/name`` with the Hub's characters, optionally ``@revision``; ``hf://`` forces the Hub
HUB_PREFIX = "hf://"
_REPO_RE = re.compile(r"^(?P<repo>[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*)(?:@(?P<rev>[^\s@]+))?$")


@dataclass(frozen=True)
class CheckpointFiles:
    """Where the parts of a checkpoint lie (``layout`` is ``run`` or ``hub``, see the module docstring)."""

    root: Path
    task_lm: Path
    extractor: Path
    config: Path
    info: Path
    layout: str

    @classmethod
    def find(cls, folder: str | Path) -> "CheckpointFiles | None":
        root = Path(folder)
        if (root / HUB_DIR / INFO_FILE).is_file():
            d = root / HUB_DIR
            return cls(root, root, d / EXTRACTOR_FILE, d / CONFIG_FILE, d / INFO_FILE, "hub")
        if (root / INFO_FILE).is_file():
            return cls(root, root / TASK_LM_DIR, root / EXTRACTOR_FILE, root / CONFIG_FILE, root / INFO_FILE, "run")
        return None

    @classmethod
    def of(cls, folder: str | Path) -> "CheckpointFiles":
        files = cls.find(folder)
        if files is None:
            raise UnirexError(f"{folder}: not a UNIREX checkpoint (no {INFO_FILE} nor {HUB_DIR}/{INFO_FILE})")
        return files


def _rest_state(model) -> dict[str, torch.Tensor]:
    """Weights of a :class:`~unirex.models.UnirexModel` outside its task LM."""
    return {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items() if not k.startswith("task_lm.")}


def save_checkpoint(model, cfg_dict: dict, folder: Path, tokenizer=None, info: dict | None = None) -> Path:
    """Write ``model`` (a :class:`~unirex.models.UnirexModel`) to ``folder`` atomically; ``info["labels"]``
    become the task LM's ``id2label``."""
    # lazy: pulls safetensors, which this module does not otherwise load
    from safetensors.torch import save_file

    folder = Path(folder)
    # a save cut short (a full disk) leaves the previous checkpoint as it was and no part of the new one
    with reporting_disk_full("the checkpoint", folder), atomic_dir(folder) as tmp:
        model.task_lm.save_pretrained(tmp / TASK_LM_DIR, labels=(info or {}).get("labels"))
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp / TASK_LM_DIR)
        rest = _rest_state(model)
        # tied/shared storage is not allowed by safetensors: clone each tensor
        save_file({k: v.clone() for k, v in rest.items()}, str(tmp / EXTRACTOR_FILE))
        (tmp / CONFIG_FILE).write_text(json.dumps(cfg_dict, indent=2))
        (tmp / INFO_FILE).write_text(json.dumps({"created_at": time.time(), **(info or {})}, indent=2))
    return folder


# ----------------------------------------------------------------------------------------- naming
@dataclass(frozen=True)
class HubRef:
    """A Hugging Face Hub repository (and revision) named as a checkpoint."""

    repo_id: str
    revision: str | None = None

    def __str__(self) -> str:
        return self.repo_id + (f"@{self.revision}" if self.revision else "")


def parse_hub_ref(text: str) -> HubRef | None:
    """``namespace/name`` or ``namespace/name@revision`` (optionally ``hf://...``) -> :class:`HubRef`;
    anything else (a path with more or fewer components, ``./x/y``, ``/abs/path``, ``~/x``) -> None."""
    text = str(text).strip()
    if text.startswith(HUB_PREFIX):
        text = text[len(HUB_PREFIX):]
    m = _REPO_RE.match(text)
    if not m or ".." in m["repo"] or "--" in m["repo"] or m["repo"].endswith((".git", ".")):
        return None
    return HubRef(m["repo"], m["rev"])


def _is_pickle_path(p: Path) -> bool:
    return p.suffix.lower() in PICKLE_SUFFIXES


def resolve_checkpoint(path_or_run: str, runs_root: Path | None = None,
                       download: Callable[..., str] | None = None) -> Path:
    """The checkpoint folder a reference names, tried in this order:

    1. ``hf://namespace/name[@revision]``: always the Hugging Face Hub;
    2. a local folder holding a checkpoint (or a run folder, whose ``checkpoint/`` is taken);
    3. a run id under ``runs_root`` (also UNIREX's ``ER-XXXX/checkpoints/epoch=X-step=X.ckpt`` form,
       whose first component names the run: its safetensors checkpoint is used, the ``.ckpt`` never read);
    4. ``namespace/name[@revision]`` (one slash, the Hub's characters), when no local folder or run
       matched: a Hub repo, fetched with ``snapshot_download`` into the Hugging Face cache (only
       ``*.safetensors``, ``*.json`` and ``*.txt`` files).

    So a relative folder ``user/name`` that exists is local; write ``./user/name`` to insist on a local
    path, ``hf://user/name`` to insist on the Hub. A ``.bin`` / ``.ckpt`` / ``.pt`` file is refused and
    never unpickled. ``download`` replaces ``huggingface_hub.snapshot_download`` (tests).
    """
    text = str(path_or_run).strip().strip("'\"")
    if not text:
        raise UnirexError("training.ckpt_path is empty: give a checkpoint folder, a run id or a Hub repo id")
    if text.startswith(HUB_PREFIX):
        ref = parse_hub_ref(text)
        if ref is None:
            raise UnirexError(f"'{text}' is not a Hub repo id: write hf://namespace/name (optionally @revision)")
        return download_hub_checkpoint(ref, download)
    p = Path(text).expanduser()
    if p.is_file():
        if _is_pickle_path(p):
            raise UnirexError(f"training.ckpt_path='{text}' is a pickle file ({p.suffix}): UNIREX loads safetensors "
                              "checkpoints only and never unpickles; give the checkpoint folder or run id instead")
        raise UnirexError(f"training.ckpt_path='{text}' is a file: give a checkpoint folder, a run id or a Hub repo id")
    candidates = [p, p / "checkpoint"]
    if runs_root is not None and not p.is_absolute() and p.parts and not (p.is_dir() or p.is_file()):
        refuse_linked_run(runs_root, p.parts[0])  # a run folder linked to elsewhere is never loaded
    if runs_root is not None and not p.is_absolute():
        candidates += [Path(runs_root) / text / "checkpoint"]
        # UNIREX writes 'ER-XXXX/checkpoints/epoch=X-step=XXXX.ckpt': the first component names the run
        candidates += [Path(runs_root) / p.parts[0] / "checkpoint"] if p.parts else []
    for c in candidates:
        if CheckpointFiles.find(c) is not None:
            return c
    if (p / "meta.json").is_file() or (runs_root is not None and (Path(runs_root) / text / "meta.json").is_file()):
        raise UnirexError(f"run '{text}' has no checkpoint: train it with save_checkpoint=True")
    if p.is_dir():
        pickles = pickled_files(p) + pickled_files(p / TASK_LM_DIR)
        extra = f" (it holds {', '.join(pickles[:3])}: pickles are never loaded)" if pickles else ""
        raise UnirexError(f"training.ckpt_path='{text}' is a folder but not a UNIREX checkpoint: no {INFO_FILE}{extra}")
    if _is_pickle_path(p):
        raise UnirexError(f"training.ckpt_path='{text}': no run '{p.parts[0]}' here, and a {p.suffix} pickle is never "
                          "loaded: UNIREX reads safetensors checkpoints only")
    ref = parse_hub_ref(text)
    if ref is not None:  # no local folder or run of that name: a Hub repo id
        try:
            return download_hub_checkpoint(ref, download)
        except UnirexError as e:
            raise UnirexError(f"'{text}' is no local checkpoint folder or run id here; as a Hub repo: {e}") from None
    raise UnirexError(f"training.ckpt_path='{text}' is neither a checkpoint folder nor a run id (nor a Hub repo id "
                      "namespace/name)")


def download_hub_checkpoint(ref: HubRef, download: Callable[..., str] | None = None) -> Path:
    """A UNIREX checkpoint from the Hub, fetched into the Hugging Face cache (safetensors, JSON and text
    files only). ``download`` replaces ``huggingface_hub.snapshot_download`` (tests)."""
    if download is None:
        # lazy: the default download, looked up at call time (tests substitute huggingface_hub's)
        from huggingface_hub import snapshot_download as download
    try:
        path = Path(download(repo_id=ref.repo_id, revision=ref.revision, allow_patterns=list(ALLOW_PATTERNS)))
    except Exception as e:  # noqa: BLE001
        err = hub_error(e, "download", ref.repo_id, ref.revision)
        if err is None:
            raise
        raise err from None
    if CheckpointFiles.find(path) is None:
        raise UnirexError(f"Hub repo '{ref.repo_id}' is not a UNIREX checkpoint (no unirex/checkpoint.json); a plain "
                          f"Hugging Face encoder can be trained from with arch={ref.repo_id}")
    return path


# ----------------------------------------------------------------------------------------- loading
def read_checkpoint_info(folder: Path) -> dict:
    """``checkpoint.json`` of a checkpoint folder (either layout)."""
    return read_json_file(CheckpointFiles.of(folder).info, "checkpoint description")


def read_checkpoint_config(folder: Path) -> "RunConfig":
    """The run config saved with a checkpoint (either layout).

    Its ``arch`` is made portable: a local encoder path that does not exist on this machine (a checkpoint
    made elsewhere, e.g. downloaded from the Hub) becomes the checkpoint's own task LM folder, which holds
    the same architecture and tokenizer.
    """
    # lazy: pulls omegaconf, which this module does not otherwise load
    from unirex.config import from_dict

    files = CheckpointFiles.of(folder)
    data = read_json_file(files.config, "run config")
    try:
        cfg = from_dict(data, validate=False)
    except UnirexError as e:
        raise UnirexError(f"{files.config}: not a UNIREX run config ({e})") from None
    arch = cfg.arch
    if arch and arch != "default" and arch.startswith(("/", ".", "~")) and not Path(arch).expanduser().exists():
        cfg.arch = str(files.task_lm)
    return cfg


def load_checkpoint(folder: Path, cfg=None, map_location: str | torch.device = "cpu"):
    """Rebuild the model saved in ``folder``.

    Args:
        folder: a checkpoint folder (see :func:`resolve_checkpoint`), in either layout.
        cfg: a :class:`~unirex.config.RunConfig` to build the extractor with (default: the saved one).

    Returns:
        ``(model, saved_cfg, info)``.
    """
    files = CheckpointFiles.of(folder)
    saved_cfg = read_checkpoint_config(files.root)
    info = read_json_file(files.info, "checkpoint description")
    for weights in sorted(files.task_lm.glob("*.safetensors")):  # NaN weights would explain with a silent nan
        check_finite_file(weights)
    task_lm = TaskLM.from_pretrained(files.task_lm)
    if task_lm.labels is None and isinstance(info.get("labels"), list) and len(info["labels"]) == task_lm.num_classes:
        task_lm.labels = [str(x) for x in info["labels"]]

    def new_encoder():  # the DLM / A2R encoders: the task LM's architecture; their weights come from the checkpoint
        # lazy: pulls transformers, which this module does not otherwise load
        from transformers import AutoModel

        return AutoModel.from_config(task_lm.encoder.config)

    build_cfg = cfg or saved_cfg
    model = build_model(build_cfg, task_lm.num_classes, task_lm=task_lm, new_encoder=new_encoder)
    rest = load_safetensors(files.extractor, "extractor weights")
    check_finite(rest, files.extractor)
    expected = set(_rest_state(model))
    if cfg is None or set(rest) == expected:
        missing, unexpected = expected - set(rest), set(rest) - expected
        if missing or unexpected:
            raise UnirexError(f"{files.extractor}: does not match the checkpoint's config: missing {sorted(missing)[:3]}, "
                              f"unexpected {sorted(unexpected)[:3]}")
        try:
            model.load_state_dict(rest, strict=False)
        except RuntimeError as e:
            raise UnirexError(f"{files.extractor}: weights of the wrong shape for the checkpoint's config "
                              f"({str(e).strip().splitlines()[-1].strip()})") from None
    # else: a different extractor than the checkpoint's (e.g. evaluate a task LM with another attr algo)
    return model.to(map_location), saved_cfg, info


# ------------------------------------------------------------------------------------ one-call API
@dataclass
class LoadedCheckpoint:
    """A checkpoint ready to use: :func:`open_checkpoint` (``unirex.load_checkpoint``) returns one.

    Attributes:
        model: the :class:`~unirex.models.UnirexModel` (task LM + extractor), in eval mode.
        config: the run config it was trained with (:class:`~unirex.config.RunConfig`).
        info: ``checkpoint.json`` (labels, epoch, monitored value, run id).
        tokenizer: the task LM's tokenizer.
        folder: the checkpoint folder (in the Hugging Face cache for a Hub repo).
    """

    model: "UnirexModel"
    config: "RunConfig"
    info: dict
    tokenizer: object
    folder: Path
    labels: list[str] = field(default_factory=list)

    @property
    def max_length(self) -> int:
        """Subwords the model reads: the run's ``data.max_length``, at most the tokenizer's maximum."""
        limit = getattr(self.tokenizer, "model_max_length", None) or 10**9
        return int(min(int(self.config.data.max_length), int(limit)))

    def explain(self, texts: "list[str] | str", queries: "list[str] | None" = None, extractor: str | None = None,
                top_k: float = 10.0) -> list:
        """Predict and explain each text (``queries``: the second input of query tasks), tokenised as a built
        dataset is; one :class:`unirex.inference.TextExplanation` per text (its ``words``, ``scores`` per word
        (subword scores summed, as ERASER pools them), ``label``, ``probabilities``, the top-k% ``rationale``
        and that rationale's comprehensiveness and sufficiency). ``extractor``: the checkpoint's own (default)
        or a post-hoc attribution algorithm on its task LM (``input-x-gradient``, ``integrated-gradients``,
        ``gradient``, or a plugin's: :func:`unirex.inference.post_hoc_extractors`)."""
        # lazy: pulls pydantic, which this module does not otherwise load
        from unirex.inference import explain_text

        texts = [texts] if isinstance(texts, str) else list(texts)
        queries = list(queries) if queries else [""] * len(texts)
        if len(queries) != len(texts):
            raise UnirexError(f"{len(texts)} texts but {len(queries)} queries")
        labels = self.labels or [str(i) for i in range(self.model.num_classes)]
        return [explain_text(self.model, self.tokenizer, t, labels, self.max_length, query=q, extractor=extractor,
                             top_k=top_k) for t, q in zip(texts, queries)]


def open_checkpoint(ref: str | Path, workspace: str | Path | None = None, map_location: str | torch.device = "cpu",
                    download: Callable[..., str] | None = None) -> LoadedCheckpoint:
    """Load a checkpoint by reference: a checkpoint folder, a run folder or run id (in ``workspace``), or a
    Hugging Face Hub repo id ``namespace/name[@revision]`` (see :func:`resolve_checkpoint`). Exported as
    ``unirex.load_checkpoint``::

        import unirex
        ckpt = unirex.load_checkpoint("user/unirex-demo-slm")
        ex = ckpt.explain("the acting was superb but the plot was thin")[0]
        ex.label, list(zip(ex.words, ex.scores))
    """
    folder = resolve_checkpoint(str(ref), workspace_dir(workspace) / "runs", download=download)
    model, cfg, info = load_checkpoint(folder, map_location=map_location)
    files = CheckpointFiles.of(folder)
    # lazy: pulls transformers, which this module does not otherwise load
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(files.task_lm)
    except Exception as e:  # noqa: BLE001
        raise UnirexError(f"{files.task_lm}: cannot load the tokenizer saved with the checkpoint ({first_line(e)})") from None
    labels = model.task_lm.labels or [str(x) for x in info.get("labels") or []]
    return LoadedCheckpoint(model.eval(), cfg, info, tokenizer, Path(folder), list(labels))


# ------------------------------------------------------------------------------ a run's config
#: keys a user's evaluate/finetune command sets itself; every other key comes from the checkpoint's config
_RUN_KEYS = ("training.", "workspace", "save_checkpoint", "debug", "seed", "tags", "model.save_outputs",
             "model.measure_attrs_runtime", "model.exp_id", "setup.", "logger.", "work_dir")
_GROUP_AS_KEY = {"data": "data.dataset", "training": "training.mode"}


def resolve_run_config(overrides: list[str], workspace: str | None = None) -> "RunConfig":
    """A config from command-line overrides. For ``training=evaluate|finetune`` the checkpoint's own
    config is the base (its arch, dataset, extractor and objective), and the user's keys win."""
    # lazy: pulls omegaconf, which this module does not otherwise load
    from unirex.config import parse_override, resolve_config, to_overrides

    overrides = list(overrides) + ([f"workspace={workspace}"] if workspace else [])
    cfg = resolve_config(overrides, validate=False)
    if cfg.training.mode not in ("evaluate", "finetune") or not cfg.training.ckpt_path:
        return resolve_config(overrides)
    ckpt = resolve_checkpoint(cfg.training.ckpt_path, workspace_dir(cfg.workspace) / "runs")
    saved = read_checkpoint_config(ckpt)
    base = [o for o in to_overrides(saved) if not o.split("=", 1)[0].startswith(_RUN_KEYS)]
    user = []
    for o in overrides:
        k, v = parse_override(o)
        user.append(f"{_GROUP_AS_KEY[k]}={v}" if k in _GROUP_AS_KEY else o)
    return resolve_config(base + user)


__all__ = ["CheckpointFiles", "HubRef", "LoadedCheckpoint", "load_checkpoint", "open_checkpoint",
           "parse_hub_ref", "read_checkpoint_config", "read_checkpoint_info", "resolve_checkpoint", "resolve_run_config", "save_checkpoint"]
