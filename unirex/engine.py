"""The training engine: train / evaluate / finetune a config, write its run directory, emit events.

``run(cfg)`` does everything one UNIREX command line does:

1. loads (building on first use) the dataset splits for the config's arch and ``data.max_length``;
   for FRESH and L2E it attaches the teacher run's saved attributions (:mod:`unirex.teacher`);
2. checks the settings against the data (:func:`unirex.methods.check_settings`) before any compute;
3. builds the model (or loads ``training.ckpt_path`` for ``training=evaluate`` / ``finetune``);
4. trains with AdamW (``model.optimizer.name``: torch's, or the reference's without bias correction,
   :mod:`unirex.optim`), linear warmup/decay, gradient accumulation and clipping, evaluates on dev each
   epoch with every ERASER metric, keeps the best checkpoint (``save_checkpoint=True``) and stops early
   after ``training.patience`` epochs without improvement of ``training.monitor``;
5. evaluates the best model on ``training.eval_splits`` and writes the evaluation outputs the ERASER
   export reads; ``model.save_outputs=True`` also writes every split's attributions for FRESH / L2E;
   ``model.measure_attrs_runtime=True`` times the extractor per example.

:class:`Engine` runs the loop; progress reporting, early stopping, checkpointing, the events file and
cancellation are callbacks (:mod:`unirex.callbacks`) that share a :class:`~unirex.callbacks.TrainerState`.
Every event is a typed :mod:`unirex.events` class, one per kind: ``start``, ``plan``, ``step``, ``eval_start``,
``eval_progress``, ``eval``, ``checkpoint``, ``log``, ``done``. ``run(cfg, callback=fn)`` hands each to
``fn``; ``callbacks=[...]`` adds :class:`~unirex.callbacks.Callback` objects. ``cancel`` (a
:class:`threading.Event` or anything with ``is_set()``) is checked every step and between evaluation
batches, and a cancelled run stops cleanly with what it saved so far and status ``cancelled``.

Under ``torchrun`` / ``accelerate launch`` (``WORLD_SIZE`` > 1) each process trains on its shard of the
train split and gradients are averaged across processes (all-reduce after each backward pass); rank 0
alone evaluates and writes the one run directory.
"""

from __future__ import annotations

import copy
import math
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import polars as pl
import torch
import torch.distributed as dist

from unirex.callbacks import Callback, TrainerState, default_callbacks
from unirex.checkpoint import load_checkpoint, resolve_checkpoint, resolve_run_config
from unirex.config import RunConfig, identify_method, to_dict
from unirex.counterfactual import eval_flip_options
from unirex.data import load_split
from unirex.data.sampling import HalfSupervisedBatchSampler
from unirex.device import autocast, broadcast, init_distributed, pick_device, run_device, seed_everything, to_device
from unirex.errors import DiskFullError, UnirexError, scrub_secrets
from unirex.evaluate import EvaluationCancelled, evaluate, save_outputs
from unirex.events import (DoneEvent, EvalEvent, EvalProgressEvent, EvalStartEvent, Event, LogEvent, PlanEvent, PlanPhase,
                           StartEvent)
from unirex.extra_eval import ExtraMetrics
from unirex.fsutil import atomic_write, clean_workspace_leftovers, disk_full_error, reporting_disk_full
from unirex.methods import check_settings
from unirex.models import build_model
from unirex.models.removal import resolve_removal
from unirex.objective import compute_losses, plausibility_subset
from unirex.optim import build_optimizer
from unirex.protocol import input_layout, is_reference
from unirex.rationale import mark_selectable
from unirex.registry import saved_attribution_name
from unirex.runs import RunDir, parse_tags
from unirex.teacher import attach_teacher, attrs_path, fresh_table, load_teacher_scores
from unirex.workspace import workspace_dir

#: a listener ``run(cfg, callback=fn)`` hands every event to
Listener = Callable[[Event], None]
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
def _monitor_value(metrics: dict, monitor: str) -> float | None:
    """``dev_macro_f1`` (or ``dev_task_macro_f1``, ``macro_f1``) -> the dev metric's value."""
    name = monitor[4:] if monitor.startswith("dev_") else monitor
    for key in (name, name.removeprefix("task_")):
        if metrics.get(key) is not None:
            return float(metrics[key])
    return None


def time_explainer(model, ds, batch_size: int, device: torch.device, n: int = 64) -> tuple[float, int]:
    """Milliseconds per example of ``model.explain`` alone (no task metrics) on the first ``n`` examples
    of ``ds``, after one warm-up batch. Returns ``(ms_per_example, examples)``."""
    n = min(len(ds), n)
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, range(n)), batch_size=batch_size,
                                         collate_fn=ds.collate)
    model.eval()
    batches = [to_device(b, device) for b in loader]
    model.explain(batches[0])  # warm-up
    t0 = time.perf_counter()
    for b in batches:
        model.explain(b)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 1000.0 * (time.perf_counter() - t0) / n, n


# --------------------------------------------------------------------------------------------- data
def _data_dir(cfg: RunConfig) -> Path:
    return Path(cfg.data_dir) if cfg.data_dir else workspace_dir(cfg.workspace) / "data"


def load_splits(cfg: RunConfig, splits: list[str]):
    """``{split: (SplitDataset, BuiltSplit)}`` for the config's dataset, arch and max length, in the input
    layout of its protocol (:func:`unirex.protocol.input_layout`)."""
    out = {}
    for split in splits:
        num_train = cfg.data.num_train if split == "train" else None
        out[split] = load_split(_data_dir(cfg), cfg.data.dataset, split, arch=cfg.arch,
                                max_length=cfg.data.max_length, num_train=num_train,
                                num_train_seed=cfg.data.num_train_seed,
                                layout=input_layout(cfg.protocol, cfg.data.dataset))
    return out


# ------------------------------------------------------------------------------------------- engine
class Engine:
    """One run. Use :func:`run`; the class holds the state its steps share (``state``: the training's
    :class:`~unirex.callbacks.TrainerState`; ``callbacks``: the default ones, then the caller's)."""

    def __init__(self, cfg: RunConfig, callback: Listener | None = None, cancel=None, parent_run: str | None = None,
                 run_id: str | None = None, command: str | None = None, callbacks: Sequence[Callback] = ()):
        # the engine fills in what it learns (a checkpoint's arch, ...): on its own copy, never the caller's
        self.cfg = copy.deepcopy(cfg)
        if self.cfg.debug:  # small batches too: a debug run of any preset takes seconds, not minutes
            st = self.cfg.setup
            st.train_batch_size = min(st.train_batch_size, DEBUG_BATCH_SIZE)
            st.eval_batch_size = min(st.eval_batch_size, DEBUG_BATCH_SIZE)
        self.command = command
        self.last_result = None  # the EvalResult of the latest evaluation
        self.parent_run = parent_run
        self.checkpoint_debug = False  # the evaluated / finetuned checkpoint came from a debug run
        self.run_id = run_id
        self.ws = workspace_dir(cfg.workspace)
        self.runs_root = self.ws / "runs"
        self.rank, self.world = init_distributed()
        self.rd: RunDir | None = None
        self.device = run_device(cfg.setup.device, self.world)
        self.state = TrainerState(monitor=self.cfg.training.monitor)
        # the reference (Lightning's EarlyStopping) stops after `patience` epochs without gain; eraser after more
        self.callbacks: list[Callback] = default_callbacks(self.cfg.training.patience, cancel, callback,
                                                           stop_at_patience=is_reference(self.cfg)) + list(callbacks)

    # -- events and callbacks ----------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        """Hand an event, stamped with the run id, to every callback's ``on_event`` (rank 0 only)."""
        if self.rank != 0:
            return
        event.run_id = self.run_id
        for cb in self.callbacks:
            cb.on_event(self, event)

    def _call(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, self.state, *args)

    def cancelled(self) -> bool:
        """A cancellation point: the callbacks' ``on_poll``, then whether one asked to cancel."""
        self._call("on_poll")
        return self.state.should_cancel

    def log(self, metrics: dict, split: str, epoch=None, step=None) -> None:
        if self.rd is not None and self.rank == 0:
            self.rd.log_metrics({k: v for k, v in metrics.items() if isinstance(v, (int, float))}, split, epoch, step)

    # -- set-up ------------------------------------------------------------------------------------
    def prepare(self) -> None:
        cfg = self.cfg
        mode = cfg.training.mode
        self.eval_splits = cfg.training.splits
        need = ["train", "dev"] if mode in ("train", "finetune") else []
        saved = ["train", "dev", "test"] if cfg.model.save_outputs else []  # attributions of every split
        self.data = load_splits(cfg, list(dict.fromkeys(need + self.eval_splits + saved)))
        self.labels = next(iter(self.data.values()))[1].labels
        has_gold = any(b.summary["with_rationale"] > 0 for _, b in self.data.values())
        check_settings(cfg, has_gold_rationales=has_gold)
        self.data = attach_teacher(cfg, self.data, self.runs_root)  # FRESH / L2E
        if cfg.data.plaus_frac < 1.0 and "train" in self.data:
            ds, built = self.data["train"]
            mask = plausibility_subset(len(ds), cfg.data.plaus_frac, cfg.data.plaus_frac_seed).tolist()
            self.data["train"] = (ds.with_extras(plaus_mask=mask), built)

    def build(self) -> None:
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
            self.checkpoint_debug = bool(saved_cfg.debug)
        else:
            self.model = build_model(cfg, len(self.labels), num_choices=data_choices)
        self.model.to(self.device)

    def rationale_removal(self):
        """How this run's training-time rationale variants remove tokens (:func:`unirex.models.removal.resolve_removal`),
        or None when it trains none (no comp/suff weight, not A2R, or not training)."""
        m = self.cfg.model
        if self.cfg.training.mode not in ("train", "finetune") or not (m.comp_wt > 0 or m.suff_wt > 0 or m.name == "a2r"):
            return None
        return resolve_removal(m.rationale_removal, self.model.task_lm.encoder)

    def debug_run(self) -> bool:
        """Whether this is a debug run (its results are a pipeline check, never a result): ``debug=True`` (a few
        batches of one epoch, a few batches of each evaluated split), or an evaluation of a debug run's checkpoint."""
        return bool(self.cfg.debug or (self.cfg.training.mode == "evaluate" and self.checkpoint_debug))

    def open_run_dir(self) -> None:
        cfg = self.cfg
        if self.rank == 0:
            meta = {"method": identify_method(cfg), "dataset": cfg.data.dataset, "arch": cfg.arch, "seed": cfg.seed,
                    "mode": cfg.training.mode, "parent_run": self.parent_run, "labels": self.labels,
                    "world_size": self.world, "device": str(self.device), "command": self.command,
                    "debug": self.debug_run(), "tags": list(parse_tags(cfg.tags))}
            removal = self.rationale_removal()
            if removal is not None:  # what the comp/suff (A2R) variants got, and why
                meta.update(rationale_removal=removal.removal, rationale_removal_reason=removal.reason)
            self.rd = RunDir.create(self.runs_root, to_dict(cfg), meta, run_id=self.run_id)
            self.run_id = self.rd.run_id
        self.run_id = broadcast(self.run_id, self.world)

    # -- evaluation --------------------------------------------------------------------------------
    def evaluate_split(self, split: str, epoch: int | None = None, save: bool = False, reuse=None) -> dict:
        """Evaluate the model on ``split`` (a debug run: its first few batches only), log the metrics
        (``epoch=None``: the final evaluation) and, with ``save``, write the outputs the export reads.
        ``reuse`` is an earlier :class:`~unirex.evaluate.EvalResult` of the same weights on this split:
        it is logged and saved again instead of being recomputed."""
        ds, built = self.data[split]
        cfg = self.cfg
        if cfg.debug:
            ds = ds.head(cfg.setup.eval_batch_size * DEBUG_BATCHES)
        n = len(ds)
        t0 = time.perf_counter()

        def progress(done, total):
            el = time.perf_counter() - t0
            self.emit(EvalProgressEvent(split=split, done=done, total=total, epoch=epoch,
                                        elapsed_s=el, eta_s=el / max(done, 1) * (total - done)))

        if reuse is not None:
            result = reuse
        else:
            self.emit(EvalStartEvent(split=split, epoch=epoch, total=n))
            try:
                with autocast(self.device, cfg.setup.precision):
                    result = evaluate(self.model, ds, self.model.explain, batch_size=cfg.setup.eval_batch_size,
                                      bins=cfg.model.topk, device=self.device, source=built.summary.get("source"),
                                      progress=progress, should_stop=self.cancelled, extra=self.extra_metrics(),
                                      flip=eval_flip_options(cfg) if epoch is None else None)
            except EvaluationCancelled:
                raise _Cancelled() from None
        metrics = {k: v for k, v in result.metrics.items() if v is not None}
        metrics["eval_examples_per_s"] = n / max(result.stats.get("seconds", 1e-9), 1e-9)
        self.log(metrics, split, epoch=epoch)
        if save and self.rd is not None:
            save_outputs(self.rd.path, split, result, built=built)
        event = EvalEvent(split=split, epoch=epoch, metrics=metrics, reused=reuse is not None)
        self.emit(event)
        self.last_result = result
        self._call("on_evaluate", event)
        return metrics

    def extra_metrics(self) -> ExtraMetrics:
        """The metrics beside ERASER's that every evaluation of this run computes (``eval.*``), seeded by the run's seed."""
        e = self.cfg.eval
        return ExtraMetrics.parse(e.extra_metrics, sensitivity_samples=e.sensitivity_samples,
                                  sensitivity_radius=e.sensitivity_radius, seed=self.cfg.seed)

    def final_evaluation(self) -> dict:
        """Evaluate the (best) model on every eval split, then save attributions / time the extractor when
        asked; ``{"<split>_<metric>": value}``. The best epoch's dev evaluation is reused, not recomputed."""
        cfg, st = self.cfg, self.state
        final = {}
        for split in self.eval_splits:
            reuse = st.best_dev if split == "dev" and st.best_restored else None
            m = self.evaluate_split(split, epoch=None, save=True, reuse=reuse)
            final.update({f"{split}_{k}": v for k, v in m.items()})
        if cfg.model.save_outputs:
            self.save_attributions()
        if cfg.model.measure_attrs_runtime:
            final.update(self.measure_runtime())
        return final

    def save_attributions(self) -> None:
        """``outputs/attrs_<split>.parquet``: per annotation, one score per subword (FRESH / L2E teachers)."""
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
                batch = mark_selectable(to_device(batch, self.device), self.cfg.protocol)
                s = self.model.explain(batch).float().cpu()
                for row, idx in enumerate(batch["index"].tolist()):
                    ids.append(table_ids[idx])
                    rows.append(idx)
                    scores.append(s[row, : lengths[idx]].tolist())
                self.emit(LogEvent(message=f"saving {split} attributions: batch {bi + 1}/{len(loader)}"))
            cols = {"annotation_id": ids, "scores": scores, "attr_algo": [algo] * len(ids)}
            if "choice" in ds.table.columns:  # multiple choice: one row per (annotation, choice)
                choices = ds.table["choice"].to_list()
                cols["choice"] = [choices[i] for i in rows]
            df = pl.DataFrame(cols, schema_overrides={"scores": pl.List(pl.Float32)})
            path = attrs_path(self.rd.path, split)
            with reporting_disk_full(f"the {split} attributions", path.parent):
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
        self.emit(LogEvent(message=f"extractor {what}: {ms:.2f} ms/example on {n} {split} examples"))
        return out

    def _optimizer(self, num_updates: int):
        # lazy: pulls transformers, which loading the engine does not otherwise (the models load it on first use)
        from transformers import get_constant_schedule, get_linear_schedule_with_warmup

        o = self.cfg.model.optimizer
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            if not p.requires_grad:
                continue
            (no_decay if p.ndim < 2 or "LayerNorm" in name or name.endswith(".bias") else decay).append(p)
        opt = build_optimizer(o.name, [{"params": decay, "weight_decay": o.weight_decay},
                                       {"params": no_decay, "weight_decay": 0.0}], o.lr, o.betas, o.adam_epsilon)
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
        for p in self.model.parameters():
            if p.requires_grad:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
                p.grad /= self.world

    # -- the plan ----------------------------------------------------------------------------------
    def _epochs(self) -> int:
        return 1 if self.cfg.debug else self.cfg.training.epochs

    def _batches_per_epoch(self) -> int:
        n = len(self._train_loader(0))
        return min(n, DEBUG_BATCHES) if self.cfg.debug else n

    def _eval_size(self, split: str) -> int:
        """Examples an evaluation of ``split`` scores (a debug run: its first few batches)."""
        n = len(self.data[split][0])
        return min(n, self.cfg.setup.eval_batch_size * DEBUG_BATCHES) if self.cfg.debug else n

    def plan(self) -> PlanEvent:
        """The run's work in order: each training epoch (steps) with its dev evaluation (examples), then the
        final evaluation of each split (the final dev evaluation of a training run reuses its best epoch's: no
        work). Early stopping may end it sooner."""
        phases: list[PlanPhase] = []
        training = self.cfg.training.mode in ("train", "finetune")
        epochs = self._epochs() if training else 0
        if training:
            steps, n_dev = self._batches_per_epoch(), self._eval_size("dev")
            for epoch in range(epochs):
                phases += [PlanPhase("train", steps, epoch), PlanPhase("eval", n_dev, epoch, "dev")]
        for split in self.eval_splits:
            if not (training and split == "dev"):
                phases.append(PlanPhase("eval", self._eval_size(split), None, split))
        return PlanEvent(phases=phases, epochs=epochs, train_batch_size=self.cfg.setup.train_batch_size)

    # -- training ----------------------------------------------------------------------------------
    def train(self) -> TrainerState:
        """Train for ``training.epochs`` (a debug run: one epoch of a few batches), evaluating dev after each
        epoch; the callbacks keep the best weights, stop early, report progress and cancel."""
        cfg, st = self.cfg, self.state
        st.epochs = self._epochs()
        st.batches_per_epoch = self._batches_per_epoch()
        st.total_steps = st.batches_per_epoch * st.epochs
        opt, sched = self._optimizer(math.ceil(st.batches_per_epoch / cfg.setup.accumulate_grad_batches) * st.epochs)
        # fp16 autocast needs loss scaling; bf16 and fp32 do not (the scaler is then a pass-through)
        scaler = torch.amp.GradScaler("cuda", enabled=self.device.type == "cuda" and str(cfg.setup.precision) == "fp16")
        st.t_start = time.perf_counter()
        self._call("on_train_begin")
        for epoch in range(st.epochs):
            st.epoch = epoch
            self._train_epoch(opt, sched, scaler)
            self._end_epoch()
            if st.should_stop:
                break
        self._call("on_train_end")
        return st

    def _train_epoch(self, opt, sched, scaler) -> None:
        """One pass over the train loader (at most ``state.batches_per_epoch`` batches); logs the epoch's
        mean losses and this process's training throughput."""
        cfg, st = self.cfg, self.state
        accum = cfg.setup.accumulate_grad_batches
        self.model.train()
        loader = self._train_loader(st.epoch)
        opt.zero_grad(set_to_none=True)
        sums: dict[str, float] = {}
        seen = examples = 0
        t_epoch = time.perf_counter()
        for bi, batch in enumerate(loader):
            if bi >= st.batches_per_epoch:
                break
            if self.cancelled():
                raise _Cancelled()
            batch = to_device(batch, self.device)
            st.last_batch = bi + 1 == st.batches_per_epoch
            losses = self._train_step(batch, opt, sched, scaler, update=(bi + 1) % accum == 0 or st.last_batch)
            if bi == 0 and is_reference(cfg):
                # the reference's training step ends by putting every submodule in eval mode (to score its
                # explanations) and Lightning 1.4 sets train mode again only after each validation: dropout
                # is on for an epoch's first batch only
                self.model.eval()
            st.step += 1
            st.losses = {k: float(v.detach()) for k, v in losses.items()}
            st.lr = sched.get_last_lr()[0]
            for k, v in st.losses.items():
                sums[k] = sums.get(k, 0.0) + v
            seen += 1
            examples += int(batch["label"].shape[0]) // (self.model.num_choices or 1)  # examples, not choice rows
            self._call("on_step_end")
        epoch_means = {f"{k}_epoch": v / max(seen, 1) for k, v in sums.items()}
        # training throughput of this process (the batch loop only, evaluation excluded)
        epoch_means["train_examples_per_s"] = examples / max(time.perf_counter() - t_epoch, 1e-9)
        self.log(epoch_means, "train", st.epoch, st.step)

    def _train_step(self, batch: dict, opt, sched, scaler, update: bool) -> dict:
        """Forward and backward one batch; with ``update`` (every ``accumulate_grad_batches`` batches and at
        an epoch's last), average gradients across processes, clip, and step the optimizer and schedule."""
        cfg = self.cfg
        with autocast(self.device, cfg.setup.precision):
            losses = compute_losses(batch, self.model, cfg)
        loss = losses["loss"]
        if not torch.isfinite(loss):
            raise UnirexError(f"the loss became {loss.item()} at epoch {self.state.epoch + 1}, step {self.state.step + 1}; "
                              "lower model.optimizer.lr or check the loss weights")
        scaler.scale(loss / cfg.setup.accumulate_grad_batches).backward()
        if update:
            if self.world > 1:
                self._all_reduce_grads()
            scaler.unscale_(opt)
            if cfg.training.max_grad_norm and cfg.training.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.training.max_grad_norm)
            scaler.step(opt)
            scaler.update()
            sched.step()
            opt.zero_grad(set_to_none=True)
        return losses

    def _end_epoch(self) -> None:
        """Dev evaluation (rank 0; the others wait), whether the monitor improved (rank 0 decides for all),
        then the callbacks' ``on_epoch_end``."""
        cfg, st = self.cfg, self.state
        st.monitor_value = None
        improved = False
        if self.rank == 0:
            dev = self.evaluate_split("dev", epoch=st.epoch)
            st.monitor_value = _monitor_value(dev, cfg.training.monitor)
            if st.monitor_value is None:
                raise UnirexError(f"training.monitor={cfg.training.monitor} is not a dev metric; some that are: "
                                  f"{', '.join(sorted(dev)[:8])}")
            sign = 1.0 if cfg.training.monitor_mode == "max" else -1.0
            improved = st.best_value is None or sign * (st.monitor_value - st.best_value) > 0
        st.improved = broadcast(improved, self.world)
        if st.improved:
            st.best_value, st.best_epoch = st.monitor_value, st.epoch
        self._call("on_epoch_end")

    # -- the whole run -----------------------------------------------------------------------------
    def _record_failure(self, error: str, best_epoch: int | None) -> None:
        """Mark the run failed with ``error`` (status first, then the traceback in ``error.txt``) and tell every
        callback. On a full disk each write is whole or absent: a status that cannot be written stays
        ``running``, which reads ``interrupted`` once this process has ended; a callback that cannot write its
        file does not keep the others from the event."""
        trace = scrub_secrets(traceback.format_exc())
        if self.rd is not None:
            for write in (lambda: self.rd.set_status("failed", error=error, best_epoch=best_epoch),
                          lambda: self.rd.write_error(trace)):
                try:
                    write()
                except DiskFullError:
                    pass
        if self.rank != 0:
            return
        event = DoneEvent(status="failed", error=error)
        event.run_id = self.run_id
        for cb in self.callbacks:
            try:
                cb.on_event(self, event)
            except DiskFullError:
                pass

    def run(self) -> RunResult:
        cfg = self.cfg
        if self.rank == 0:  # what killed writers left behind (a checkpoint save, a build, an unpack) goes first
            clean_workspace_leftovers(self.ws, _data_dir(cfg))
        # errors here happen before any run directory or compute (a dataset built on a full disk: one line)
        with reporting_disk_full(f"the {cfg.data.dataset} dataset", _data_dir(cfg)):
            self.prepare()
        self.build()
        self.open_run_dir()  # a full disk: one line, and no run folder left behind
        status, error, best_epoch, final = "completed", None, None, {}
        try:
            self.emit(StartEvent(run_dir=str(self.rd.path) if self.rd else None, config=to_dict(cfg)))
            self.emit(self.plan())
            removal = self.rationale_removal()
            if removal is not None and removal.removal != removal.requested:
                self.emit(LogEvent(message=f"model.rationale_removal={removal.requested}: {removal.reason}"))
            if cfg.training.mode in ("train", "finetune"):
                best_epoch = self.train().best_epoch
            if self.rank == 0:
                final = self.final_evaluation()
        except _Cancelled:
            status = "cancelled"
        except Exception as e:  # noqa: BLE001 - recorded in the run directory, then re-raised
            status = "failed"
            # a full disk anywhere in the run (a native writer's own error type too) is one line naming it
            disk = disk_full_error(e, self.rd.path if self.rd is not None else self.runs_root, "the run's files")
            shown = disk if disk is not None else e
            error = scrub_secrets(str(shown) if isinstance(shown, UnirexError) else f"{type(e).__name__}: {e}")
            self._record_failure(error, best_epoch)
            if disk is not None and disk is not e:
                raise disk from e
            raise
        finally:
            if self.world > 1:
                dist.barrier()
        if self.rd is not None:
            self.rd.set_status(status, best_epoch=best_epoch, final_metrics=final)
        self.emit(DoneEvent(status=status, metrics=final, best_epoch=best_epoch))
        return RunResult(self.run_id, self.rd.path if self.rd else None, status, final, best_epoch)


def run(cfg: RunConfig, callback: Listener | None = None, cancel=None, parent_run: str | None = None,
        run_id: str | None = None, command: str | None = None, callbacks: Sequence[Callback] = ()) -> RunResult:
    """Run one config (train, evaluate or finetune) and return its result (see the module docstring).

    ``cfg`` is not modified. ``run_id`` names the run folder (default: a new id); ``command`` is the
    command line that reproduces the run, recorded in ``meta.json``. ``callback(event)`` gets every
    :mod:`unirex.events` event; ``callbacks`` are :class:`~unirex.callbacks.Callback` objects called after
    the built-in ones."""
    return Engine(cfg, callback, cancel, parent_run, run_id, command, callbacks).run()


__all__ = ["DEBUG_BATCHES", "DEBUG_BATCH_SIZE", "Engine", "RunResult", "attrs_path", "fresh_table", "load_splits",
           "load_teacher_scores", "pick_device", "resolve_run_config", "run", "time_explainer"]
