"""The training engine: train / evaluate / finetune a config, write its run directory, emit events.

``run(cfg)`` does everything one UNIREX command line does:

1. loads (building on first use) the dataset splits for the config's arch and ``data.max_length``;
   for FRESH and L2E it loads the teacher run's saved attributions and checks they line up;
2. checks the settings against the data (:func:`unirex.methods.check_settings`) before any compute;
3. builds the model (or loads ``training.ckpt_path`` for ``training=evaluate`` / ``finetune``);
4. trains with AdamW, linear warmup/decay, gradient accumulation and clipping, evaluates on dev each
   epoch with every ERASER metric, keeps the best checkpoint (``save_checkpoint=True``) and stops early
   after ``training.patience`` epochs without improvement of ``training.monitor``;
5. evaluates the best model on ``training.eval_splits`` and writes the evaluation outputs the ERASER
   export reads; ``model.save_outputs=True`` also writes every split's attributions for FRESH / L2E;
   ``model.measure_attrs_runtime=True`` times the extractor per example.

Progress flows through ``callback(event: dict)`` (``kind`` = start, step, eval, checkpoint, log, done);
``cancel`` (a :class:`threading.Event` or anything with ``is_set()``) is checked every step and between
evaluation batches, and a cancelled run stops cleanly with what it saved so far and status ``cancelled``.

Under ``torchrun`` / ``accelerate launch`` (``WORLD_SIZE`` > 1) each process trains on its shard of the
train split and gradients are averaged across processes (all-reduce after each backward pass); rank 0
alone evaluates and writes the one run directory.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import random
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import polars as pl
import torch

from unirex.config import RunConfig, to_dict
from unirex.errors import UnirexError, scrub_secrets
from unirex.registry import get_extractor, saved_attribution_name
from unirex.runs import RunDir
from unirex.workspace import workspace_dir

Callback = Callable[[dict], None]
#: a debug run (``debug=True``) checks the pipeline end to end: one epoch of DEBUG_BATCHES batches of at
#: most DEBUG_BATCH_SIZE examples, and the same few batches of each evaluated split
DEBUG_BATCHES = 4
DEBUG_BATCH_SIZE = 8


@dataclass
class RunResult:
    run_id: str | None
    run_dir: Path | None
    status: str
    metrics: dict[str, float] = field(default_factory=dict)  # "<split>_<name>" of the final evaluation
    best_epoch: int | None = None
    error: str | None = None


class _Cancelled(Exception):
    pass


# ------------------------------------------------------------------------------------------ helpers
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def pick_device(spec: str) -> torch.device:
    if spec in ("auto", "", None):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise UnirexError(f"setup.device={spec} but CUDA is not available on this machine")
    return torch.device(spec)


def autocast(device: torch.device, precision: str):
    """bf16/fp16 autocast on CUDA when asked; a no-op context on CPU or at 32-bit."""
    if device.type == "cuda" and str(precision) in ("bf16", "fp16"):
        dtype = torch.bfloat16 if str(precision) == "bf16" else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


def _dist():
    """(rank, world_size), initialising torch.distributed when launched by torchrun/accelerate."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return dist.get_rank(), dist.get_world_size()


def _to(batch: dict, device: torch.device) -> dict:
    return {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


def _monitor_value(metrics: dict, monitor: str) -> float | None:
    """``dev_macro_f1`` (or ``dev_task_macro_f1``, ``macro_f1``) -> the dev metric's value."""
    name = monitor[4:] if monitor.startswith("dev_") else monitor
    for key in (name, name.removeprefix("task_")):
        if metrics.get(key) is not None:
            return float(metrics[key])
    return None


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
    from unirex.config import method_config
    from unirex.methods import list_methods

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


def time_explainer(model, ds, batch_size: int, device: torch.device, n: int = 64) -> tuple[float, int]:
    """Milliseconds per example of ``model.explain`` alone (no task metrics) on the first ``n`` examples
    of ``ds``, after one warm-up batch. Returns ``(ms_per_example, examples)``."""
    n = min(len(ds), n)
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, range(n)), batch_size=batch_size,
                                         collate_fn=ds.collate)
    model.eval()
    batches = [_to(b, device) for b in loader]
    model.explain(batches[0])  # warm-up
    t0 = time.perf_counter()
    for b in batches:
        model.explain(b)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 1000.0 * (time.perf_counter() - t0) / n, n


# --------------------------------------------------------------------------------- data + teacher
def _data_dir(cfg: RunConfig) -> Path:
    return Path(cfg.data_dir) if cfg.data_dir else workspace_dir(cfg.workspace) / "data"


def load_splits(cfg: RunConfig, splits: list[str]):
    """``{split: (SplitDataset, BuiltSplit)}`` for the config's dataset, arch and max length."""
    from unirex.data import load_split

    out = {}
    for split in splits:
        num_train = cfg.data.num_train if split == "train" else None
        out[split] = load_split(_data_dir(cfg), cfg.data.dataset, split, arch=cfg.arch,
                                max_length=cfg.data.max_length, num_train=num_train,
                                num_train_seed=cfg.data.num_train_seed)
    return out


def attrs_path(run_dir: Path, split: str) -> Path:
    return RunDir(Path(run_dir)).attrs_path(split)


def find_attributions(runs_root: Path, exp_id: str, split: str) -> Path:
    """The saved attributions of run ``exp_id``: its own, or (newest first) those of a run that named it
    with ``model.exp_id`` or evaluated its checkpoint (UNIREX's ``training=evaluate model.save_outputs=True
    model.exp_id=ER-XXXX``)."""
    from unirex.runs import list_runs

    own = RunDir.open(runs_root, exp_id)
    candidates = [own] + [rd for rd in reversed(list_runs(runs_root)) if rd.run_id != own.run_id and (
        rd.meta().get("parent_run") == own.run_id or (rd.config().get("model") or {}).get("exp_id") == own.run_id)]
    for rd in candidates:
        if attrs_path(rd.path, split).is_file():
            return attrs_path(rd.path, split)
    raise UnirexError(f"run '{exp_id}' has no saved attributions for split '{split}' (nor any run that evaluated it "
                      "with model.save_outputs=True); rerun it with model.save_outputs=True")


def load_teacher_scores(runs_root: Path, exp_id: str, split: str, table: pl.DataFrame,
                        attr_algo: str | None = None) -> list[list[float]]:
    """A teacher run's saved attributions for ``split``, one list per row of ``table`` (same order).

    The teacher must have been run with ``model.save_outputs=True`` on the same dataset, arch and max
    length; rows are matched by annotation id and their subword counts must agree.
    """
    path = find_attributions(runs_root, exp_id, split)
    saved = pl.read_parquet(path)
    algo = saved["attr_algo"][0] if "attr_algo" in saved.columns and saved.height else None
    if attr_algo and algo and attr_algo != algo:
        raise UnirexError(f"run '{exp_id}' saved '{algo}' attributions, but '{attr_algo}' was asked for")
    # multiple choice (CoS-E): one row per (annotation, choice)
    choice = "choice" in table.columns and "choice" in saved.columns
    keys = list(zip(saved["annotation_id"].to_list(), saved["choice"].to_list())) if choice else saved["annotation_id"].to_list()
    by_id = dict(zip(keys, saved["scores"].to_list()))
    want = list(zip(table["annotation_id"].to_list(), table["choice"].to_list())) if choice else table["annotation_id"].to_list()
    out = []
    for key, ids in zip(want, table["input_ids"].to_list()):
        s = by_id.get(key)
        ann_id = key[0] if choice else key
        if s is None:
            raise UnirexError(f"run '{exp_id}' has no attributions for annotation '{ann_id}' ({split}); "
                              "was it trained on the same dataset?")
        if len(s) != len(ids):
            raise UnirexError(f"run '{exp_id}': attributions of '{ann_id}' have {len(s)} subwords, the input has "
                              f"{len(ids)}; use the same arch and data.max_length as the teacher")
        out.append(s)
    return out


def fresh_table(ds, teacher: list[list[float]], k_percent: float, chunk: int = 256) -> pl.DataFrame:
    """FRESH's inputs for a whole split: per row, ``attention_mask`` becomes the teacher's binary top-k
    plus [CLS] (:func:`unirex.objective.fresh_keep`, the same rule as a training batch); the other
    tokens stay in place, masked, as UNIREX feeds them in training. The evaluator deletes masked
    tokens itself, so evaluation scores the re-packed pruned input."""
    from unirex.objective import fresh_keep

    withs = ds.with_extras(teacher_scores=teacher)
    masks: list[list[int]] = []
    lengths = ds.table["input_ids"].list.len().to_list()
    for start in range(0, len(withs), chunk):
        batch = withs.collate([withs[i] for i in range(start, min(start + chunk, len(withs)))])
        keep = fresh_keep(batch, k_percent).long().tolist()  # rows in table order (a choice per row, CoS-E)
        masks.extend(row[: lengths[i]] for row, i in zip(keep, batch["index"].tolist()))
    table = ds.table
    return table.with_columns(pl.Series("attention_mask", masks, dtype=table.schema["attention_mask"]))


# ------------------------------------------------------------------------------------------- engine
class Engine:
    """One run. Use :func:`run`; the class holds the state its steps share."""

    def __init__(self, cfg: RunConfig, callback: Callback | None = None, cancel=None, parent_run: str | None = None,
                 run_id: str | None = None, command: str | None = None):
        # the engine fills in what it learns (a checkpoint's arch, ...): on its own copy, never the caller's
        self.cfg = copy.deepcopy(cfg)
        if self.cfg.debug:  # small batches too: a debug run of any preset takes seconds, not minutes
            st = self.cfg.setup
            st.train_batch_size = min(st.train_batch_size, DEBUG_BATCH_SIZE)
            st.eval_batch_size = min(st.eval_batch_size, DEBUG_BATCH_SIZE)
        self.command = command
        self._dev_at_best = None  # the EvalResult of the best epoch's dev evaluation
        self.last_result = None
        self.callback = callback
        self.cancel = cancel
        self.parent_run = parent_run
        self.run_id = run_id
        self.ws = workspace_dir(cfg.workspace)
        self.runs_root = self.ws / "runs"
        self.rank, self.world = _dist()
        self.rd: RunDir | None = None
        self.device = pick_device(cfg.setup.device)
        if self.world > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))

    # -- events ------------------------------------------------------------------------------------
    def emit(self, kind: str, **data) -> None:
        """Send an event to the listener and append it to the run's ``events.jsonl`` (rank 0)."""
        if self.rank != 0:
            return
        ev = {"kind": kind, "run_id": self.run_id, **data}
        if self.rd is not None and kind != "start":  # the start event carries the config: it is in config.json
            try:
                self.rd.append_event(ev)
            except OSError:  # a full disk must not kill training; metrics.jsonl is the record
                pass
        if self.callback is not None:
            try:
                self.callback(ev)
            except Exception:  # noqa: BLE001 - a broken listener must not kill training
                pass

    def cancelled(self) -> bool:
        return bool(self.cancel is not None and self.cancel.is_set())

    def log(self, metrics: dict, split: str, epoch=None, step=None) -> None:
        if self.rd is not None and self.rank == 0:
            self.rd.log_metrics({k: v for k, v in metrics.items() if isinstance(v, (int, float))}, split, epoch, step)

    # -- set-up ------------------------------------------------------------------------------------
    def prepare(self) -> None:
        from unirex.methods import check_settings

        cfg = self.cfg
        mode = cfg.training.mode
        self.eval_splits = cfg.training.splits
        need = ["train", "dev"] if mode in ("train", "finetune") else []
        saved = ["train", "dev", "test"] if cfg.model.save_outputs else []  # attributions of every split
        self.data = load_splits(cfg, list(dict.fromkeys(need + self.eval_splits + saved)))
        self.labels = next(iter(self.data.values()))[1].labels
        has_gold = any(b.summary["with_rationale"] > 0 for _, b in self.data.values())
        check_settings(cfg, has_gold_rationales=has_gold)
        # teacher attributions (FRESH / L2E)
        teacher_id = cfg.data.fresh_exp_id if cfg.model.name == "fresh" else (cfg.data.l2e_exp_id if cfg.model.l2e else None)
        algo = cfg.data.fresh_attr_algo if cfg.model.name == "fresh" else cfg.data.l2e_attr_algo
        if teacher_id:
            for split, (ds, built) in list(self.data.items()):
                scores = load_teacher_scores(self.runs_root, teacher_id, split, ds.table, algo)
                if cfg.model.name == "fresh":  # FRESH reads a pruned input everywhere, training and evaluation
                    ds = ds.with_table(fresh_table(ds, scores, cfg.data.fresh_topk))
                else:
                    ds = ds.with_extras(teacher_scores=scores)
                self.data[split] = (ds, built)
        if cfg.data.plaus_frac < 1.0 and "train" in self.data:
            from unirex.objective import plausibility_subset

            ds, built = self.data["train"]
            mask = plausibility_subset(len(ds), cfg.data.plaus_frac, cfg.data.plaus_frac_seed).tolist()
            self.data["train"] = (ds.with_extras(plaus_mask=mask), built)

    def build(self) -> None:
        from unirex.checkpoint import load_checkpoint, resolve_checkpoint
        from unirex.models import build_model

        cfg = self.cfg
        seed_everything(cfg.seed)
        data_choices = next(iter(self.data.values()))[0].num_choices  # multiple choice (CoS-E) or None
        if cfg.training.mode in ("evaluate", "finetune"):
            ckpt = resolve_checkpoint(cfg.training.ckpt_path, self.runs_root)
            self.model, saved_cfg, info = load_checkpoint(ckpt, cfg=cfg)
            if saved_cfg.arch != cfg.arch and cfg.arch == "default":
                cfg.arch = saved_cfg.arch
            if (self.model.num_choices or None) != data_choices:
                what = lambda c: f"multiple choice with {c} choices" if c else "classification"  # noqa: E731
                raise UnirexError(f"the checkpoint is a {what(self.model.num_choices)} model but dataset "
                                  f"'{cfg.data.dataset}' is {what(data_choices)}")
            if info.get("labels") and info["labels"] != self.labels:
                raise UnirexError(f"checkpoint labels {info['labels']} differ from dataset labels {self.labels}")
            self.parent_run = self.parent_run or info.get("run_id")
        else:
            self.model = build_model(cfg, len(self.labels), num_choices=data_choices)
        self.model.to(self.device)

    def rationale_removal(self):
        """How this run's training-time rationale variants remove tokens (:func:`unirex.models.removal.resolve_removal`),
        or None when it trains none (no comp/suff weight, not A2R, or not training)."""
        from unirex.models.removal import resolve_removal

        m = self.cfg.model
        if self.cfg.training.mode not in ("train", "finetune") or not (m.comp_wt > 0 or m.suff_wt > 0 or m.name == "a2r"):
            return None
        return resolve_removal(m.rationale_removal, self.model.task_lm.encoder)

    def open_run_dir(self) -> None:
        cfg = self.cfg
        if self.rank == 0:
            meta = {"method": identify_method(cfg), "dataset": cfg.data.dataset, "arch": cfg.arch, "seed": cfg.seed,
                    "mode": cfg.training.mode, "parent_run": self.parent_run, "labels": self.labels,
                    "world_size": self.world, "device": str(self.device), "command": self.command}
            removal = self.rationale_removal()
            if removal is not None:  # what the comp/suff (A2R) variants got, and why
                meta.update(rationale_removal=removal.removal, rationale_removal_reason=removal.reason)
            self.rd = RunDir.create(self.runs_root, to_dict(cfg), meta, run_id=self.run_id)
            self.run_id = self.rd.run_id
        if self.world > 1:
            import torch.distributed as dist

            box = [self.run_id]
            dist.broadcast_object_list(box, src=0)
            self.run_id = box[0]

    # -- evaluation --------------------------------------------------------------------------------
    def evaluate_split(self, split: str, epoch: int | None = None, save: bool = False, reuse=None) -> dict:
        """Evaluate the model on ``split`` (a debug run: its first few batches only), log the metrics
        (``epoch=None``: the final evaluation) and, with ``save``, write the outputs the export reads.
        ``reuse`` is an earlier :class:`~unirex.evaluate.EvalResult` of the same weights on this split:
        it is logged and saved again instead of being recomputed."""
        from unirex.evaluate import EvaluationCancelled, evaluate, save_outputs

        ds, built = self.data[split]
        cfg = self.cfg
        if cfg.debug:
            ds = ds.head(cfg.setup.eval_batch_size * DEBUG_BATCHES)
        n = len(ds)
        t0 = time.perf_counter()

        def progress(done, total):
            el = time.perf_counter() - t0
            self.emit("eval_progress", split=split, done=done, total=total, epoch=epoch,
                      elapsed_s=el, eta_s=el / max(done, 1) * (total - done))

        if reuse is not None:
            result = reuse
        else:
            self.emit("eval_start", split=split, epoch=epoch, total=n)
            try:
                with autocast(self.device, cfg.setup.precision):
                    result = evaluate(self.model, ds, self.model.explain, batch_size=cfg.setup.eval_batch_size,
                                      bins=cfg.model.topk, device=self.device, source=built.summary.get("source"),
                                      progress=progress, should_stop=self.cancelled)
            except EvaluationCancelled:
                raise _Cancelled() from None
        metrics = {k: v for k, v in result.metrics.items() if v is not None}
        metrics["eval_examples_per_s"] = n / max(result.stats.get("seconds", 1e-9), 1e-9)
        self.log(metrics, split, epoch=epoch)
        if save and self.rd is not None:
            save_outputs(self.rd.path, split, result, built=built)
        self.emit("eval", split=split, epoch=epoch, metrics=metrics, reused=reuse is not None)
        self.last_result = result
        return metrics

    def save_attributions(self) -> None:
        """``outputs/attrs_<split>.parquet``: per annotation, one score per subword (FRESH / L2E teachers)."""
        from unirex.fsutil import atomic_write

        algo = saved_attribution_name(self.cfg.model)
        for split in ("train", "dev", "test"):
            ds, _ = self.data[split]
            loader = torch.utils.data.DataLoader(ds, batch_size=self.cfg.setup.eval_batch_size, collate_fn=ds.collate)
            ids, scores, rows = [], [], []
            table_ids = ds.table["annotation_id"].to_list()
            lengths = ds.table["input_ids"].list.len().to_list()
            self.model.eval()
            for bi, batch in enumerate(loader):
                if self.cancelled():
                    raise _Cancelled()
                batch = _to(batch, self.device)
                s = self.model.explain(batch).float().cpu()
                for row, idx in enumerate(batch["index"].tolist()):
                    ids.append(table_ids[idx])
                    rows.append(idx)
                    scores.append(s[row, : lengths[idx]].tolist())
                self.emit("log", message=f"saving {split} attributions: batch {bi + 1}/{len(loader)}")
            cols = {"annotation_id": ids, "scores": scores, "attr_algo": [algo] * len(ids)}
            if "choice" in ds.table.columns:  # multiple choice: one row per (annotation, choice)
                choices = ds.table["choice"].to_list()
                cols["choice"] = [choices[i] for i in rows]
            df = pl.DataFrame(cols, schema_overrides={"scores": pl.List(pl.Float32)})
            path = attrs_path(self.rd.path, split)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda tmp: df.write_parquet(tmp))

    def measure_runtime(self) -> dict:
        """``model.measure_attrs_runtime``: ms per example of the extractor alone on up to 64 dev examples."""
        split = "dev" if "dev" in self.data else next(iter(self.data))
        ds, _ = self.data[split]
        ms, n = time_explainer(self.model, ds, self.cfg.setup.eval_batch_size, self.device)
        what = saved_attribution_name(self.cfg.model)
        out = {"attrs_runtime_ms": ms}
        self.log(out, split)
        self.emit("log", message=f"extractor {what}: {ms:.2f} ms/example on {n} {split} examples")
        return out

    # -- training ----------------------------------------------------------------------------------
    def _optimizer(self, num_updates: int):
        from transformers import get_constant_schedule, get_linear_schedule_with_warmup

        o = self.cfg.model.optimizer
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            if not p.requires_grad:
                continue
            (no_decay if p.ndim < 2 or "LayerNorm" in name or name.endswith(".bias") else decay).append(p)
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": o.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=o.lr, eps=o.adam_epsilon)
        sch = self.cfg.model.scheduler
        if sch.lr_scheduler == "fixed":
            return opt, get_constant_schedule(opt)
        w = sch.warmup_updates
        warmup = int(w * num_updates) if w < 1 else int(w)
        return opt, get_linear_schedule_with_warmup(opt, warmup, max(num_updates, 1))

    def _train_loader(self, epoch: int):
        ds, _ = self.data["train"]
        cfg = self.cfg
        g = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
        if "plaus_mask" in ds.extras:  # data.plaus_frac < 1: every batch half supervised, as UNIREX samples
            from unirex.data.sampling import HalfSupervisedBatchSampler

            sampler = HalfSupervisedBatchSampler(ds.extras["plaus_mask"], cfg.setup.train_batch_size,
                                                 cfg.data.train_rationales_batch_factor, cfg.training.train_shuffle,
                                                 g, rank=self.rank, world_size=self.world)
            return torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=ds.collate,
                                               num_workers=cfg.setup.num_workers)
        if self.world > 1:
            sampler = torch.utils.data.distributed.DistributedSampler(ds, shuffle=cfg.training.train_shuffle, seed=cfg.seed)
            sampler.set_epoch(epoch)
            return torch.utils.data.DataLoader(ds, batch_size=cfg.setup.train_batch_size, sampler=sampler,
                                               collate_fn=ds.collate, num_workers=cfg.setup.num_workers)
        return torch.utils.data.DataLoader(ds, batch_size=cfg.setup.train_batch_size, shuffle=cfg.training.train_shuffle,
                                           generator=g, collate_fn=ds.collate, num_workers=cfg.setup.num_workers)

    def _all_reduce_grads(self) -> None:
        import torch.distributed as dist

        for p in self.model.parameters():
            if p.requires_grad:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
                p.grad /= self.world

    def train(self) -> tuple[int | None, dict | None]:
        from unirex.checkpoint import save_checkpoint
        from unirex.objective import compute_losses

        cfg = self.cfg
        accum = cfg.setup.accumulate_grad_batches
        epochs = 1 if cfg.debug else cfg.training.epochs
        batches_per_epoch = len(self._train_loader(0))
        if cfg.debug:
            batches_per_epoch = min(batches_per_epoch, DEBUG_BATCHES)
        updates_per_epoch = math.ceil(batches_per_epoch / accum)
        opt, sched = self._optimizer(updates_per_epoch * epochs)
        # fp16 autocast needs loss scaling; bf16 and fp32 do not (the scaler is then a pass-through)
        scaler = torch.amp.GradScaler("cuda", enabled=self.device.type == "cuda" and str(cfg.setup.precision) == "fp16")
        best_value, best_epoch, best_state, bad_epochs = None, None, None, 0
        step = 0
        t_start = time.perf_counter()
        total_steps = batches_per_epoch * epochs
        sign = 1.0 if cfg.training.monitor_mode == "max" else -1.0
        tokenizer = None
        for epoch in range(epochs):
            self.model.train()
            loader = self._train_loader(epoch)
            opt.zero_grad(set_to_none=True)
            sums: dict[str, float] = {}
            seen = examples = 0
            t_epoch = time.perf_counter()
            for bi, batch in enumerate(loader):
                if bi >= batches_per_epoch:
                    break
                if self.cancelled():
                    raise _Cancelled()
                batch = _to(batch, self.device)
                with autocast(self.device, cfg.setup.precision):
                    losses = compute_losses(batch, self.model, cfg)
                loss = losses["loss"]
                if not torch.isfinite(loss):
                    raise UnirexError(f"the loss became {loss.item()} at epoch {epoch}, step {step}; "
                                      "lower model.optimizer.lr or check the loss weights")
                scaler.scale(loss / accum).backward()
                last = bi + 1 == batches_per_epoch
                if (bi + 1) % accum == 0 or last:
                    if self.world > 1:
                        self._all_reduce_grads()
                    scaler.unscale_(opt)
                    if cfg.training.max_grad_norm and cfg.training.max_grad_norm > 0:
                        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.training.max_grad_norm)
                    scaler.step(opt)
                    scaler.update()
                    sched.step()
                    opt.zero_grad(set_to_none=True)
                step += 1
                values = {k: float(v.detach()) for k, v in losses.items()}
                for k, v in values.items():
                    sums[k] = sums.get(k, 0.0) + v
                seen += 1
                examples += int(batch["label"].shape[0]) // (self.model.num_choices or 1)  # examples, not choice rows
                elapsed = time.perf_counter() - t_start
                eta = elapsed / step * (total_steps - step)
                if self.rank == 0 and (step % 10 == 0 or last):
                    self.log({**values, "lr": sched.get_last_lr()[0]}, "train", epoch, step)
                    if self.rd is not None:
                        self.rd.heartbeat()
                self.emit("step", epoch=epoch, epochs=epochs, step=step, total_steps=total_steps,
                          losses=values, lr=sched.get_last_lr()[0], eta_s=eta, elapsed_s=elapsed)
            epoch_means = {f"{k}_epoch": v / max(seen, 1) for k, v in sums.items()}
            # training throughput of this process (the batch loop only, evaluation excluded)
            epoch_means["train_examples_per_s"] = examples / max(time.perf_counter() - t_epoch, 1e-9)
            self.log(epoch_means, "train", epoch, step)
            # dev evaluation on rank 0; the others wait
            value = None
            if self.rank == 0:
                dev = self.evaluate_split("dev", epoch=epoch)
                value = _monitor_value(dev, cfg.training.monitor)
                if value is None:
                    raise UnirexError(f"training.monitor={cfg.training.monitor} is not a dev metric; some that are: "
                                      f"{', '.join(sorted(dev)[:8])}")
            improved = False
            if self.rank == 0:
                improved = best_value is None or sign * (value - best_value) > 0
            if self.world > 1:
                import torch.distributed as dist

                box = [improved]
                dist.broadcast_object_list(box, src=0)
                improved = box[0]
            if improved:
                best_value, best_epoch, bad_epochs = value, epoch, 0
                if self.rank == 0:  # the final evaluation of dev reuses it: same weights, same numbers
                    self._dev_at_best = self.last_result
                if self.rank == 0:
                    if cfg.save_checkpoint:
                        if tokenizer is None:
                            from unirex.arch import load_tokenizer

                            tokenizer = load_tokenizer(cfg.arch)
                        save_checkpoint(self.model, to_dict(cfg), self.rd.checkpoint_dir, tokenizer,
                                        {"epoch": epoch, "monitor": cfg.training.monitor, "value": value,
                                         "labels": self.labels, "run_id": self.run_id, "step": step})
                        self.emit("checkpoint", epoch=epoch, path=str(self.rd.checkpoint_dir), value=value)
                    best_state = copy.deepcopy({k: v.detach().cpu() for k, v in self.model.state_dict().items()})
            else:
                bad_epochs += 1
                if bad_epochs > cfg.training.patience:
                    self.emit("log", message=f"early stop after epoch {epoch}: no gain in {cfg.training.monitor} "
                                             f"for {bad_epochs} epochs")
                    break
        return best_epoch, best_state

    # -- the whole run -----------------------------------------------------------------------------
    def run(self) -> RunResult:
        cfg = self.cfg
        if self.rank == 0:  # what killed writers left behind (a checkpoint save, a build, an unpack) goes first
            from unirex.fsutil import clean_workspace_leftovers

            clean_workspace_leftovers(self.ws, _data_dir(cfg))
        self.prepare()  # errors here happen before any run directory or compute
        self.build()
        self.open_run_dir()
        self.emit("start", run_dir=str(self.rd.path) if self.rd else None, config=to_dict(cfg))
        removal = self.rationale_removal()
        if removal is not None and removal.removal != removal.requested:
            self.emit("log", message=f"model.rationale_removal={removal.requested}: {removal.reason}")
        status, error, best_epoch, final, best_state = "completed", None, None, {}, None
        try:
            if cfg.training.mode in ("train", "finetune"):
                best_epoch, best_state = self.train()
                if best_state is not None and self.rank == 0:
                    self.model.load_state_dict(best_state)
            if self.rank == 0:
                for split in self.eval_splits:
                    reuse = self._dev_at_best if split == "dev" and best_state is not None else None
                    m = self.evaluate_split(split, epoch=None, save=True, reuse=reuse)
                    final.update({f"{split}_{k}": v for k, v in m.items()})
                if cfg.model.save_outputs:
                    self.save_attributions()
                if cfg.model.measure_attrs_runtime:
                    final.update(self.measure_runtime())
        except _Cancelled:
            status = "cancelled"
        except Exception as e:  # noqa: BLE001 - recorded in the run directory, then re-raised
            status = "failed"
            error = scrub_secrets(str(e) if isinstance(e, UnirexError) else f"{type(e).__name__}: {e}")
            if self.rd is not None:
                self.rd.error_path.write_text(scrub_secrets(traceback.format_exc()))
                self.rd.set_status(status, error=error, best_epoch=best_epoch)
            self.emit("done", status=status, error=error)
            raise
        finally:
            if self.world > 1:
                import torch.distributed as dist

                dist.barrier()
        if self.rd is not None:
            self.rd.set_status(status, best_epoch=best_epoch, final_metrics=final)
        self.emit("done", status=status, metrics=final, best_epoch=best_epoch)
        return RunResult(self.run_id, self.rd.path if self.rd else None, status, final, best_epoch)


#: keys a user's evaluate/finetune command sets itself; every other key comes from the checkpoint's config
_RUN_KEYS = ("training.", "workspace", "save_checkpoint", "debug", "seed", "model.save_outputs",
             "model.measure_attrs_runtime", "model.exp_id", "setup.", "logger.", "work_dir")
_GROUP_AS_KEY = {"data": "data.dataset", "training": "training.mode"}


def resolve_run_config(overrides: list[str], workspace: str | None = None) -> RunConfig:
    """A config from command-line overrides. For ``training=evaluate|finetune`` the checkpoint's own
    config is the base (its arch, dataset, extractor and objective), and the user's keys win."""
    from unirex.checkpoint import read_checkpoint_config, resolve_checkpoint
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


def run(cfg: RunConfig, callback: Callback | None = None, cancel=None, parent_run: str | None = None,
        run_id: str | None = None, command: str | None = None) -> RunResult:
    """Run one config (train, evaluate or finetune) and return its result (see the module docstring).

    ``cfg`` is not modified. ``run_id`` names the run folder (default: a new id); ``command`` is the
    command line that reproduces the run, recorded in ``meta.json``."""
    return Engine(cfg, callback, cancel, parent_run, run_id, command).run()


__all__ = ["RunResult", "Engine", "time_explainer", "attrs_path", "fresh_table", "load_splits", "load_teacher_scores", "pick_device", "run"]
