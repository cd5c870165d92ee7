"""ROAR on a finished run: reduced copies of its dataset, retraining queued, accuracy against k.

:class:`RoarService` (``wb.roar``) does what ``python -m unirex roar`` and the Runs tab's ROAR panel ask:

* :meth:`~RoarService.submit`: every input checked first (the run, its checkpoint, k in 1..99, the arms, the
  names of the copies, the launcher and the retraining config), nothing written when one is wrong; then the
  copies written under the run's data folder (:mod:`unirex.roar`; the extractor arm ranked by the run's
  checkpoint) and one retraining job per copy queued through the workspace's queue (:meth:`Workbench.submit`:
  the local worker, Ray or Slurm). A retraining job is the run's own command line (its recorded overrides)
  with ``data=<copy>`` and the run's resolved ``data.max_length`` (a protocol's per-dataset value would not
  follow the copy's new name).
* :meth:`~RoarService.report`: the test accuracy of each arm at each k (the mean over the completed retrainings
  of each copy), with the run itself at k = 0.
* :meth:`~RoarService.advance` (recursive ROAR): builds and queues the next k of a chain once the previous k's
  retraining completed; its checkpoint ranks the words of its own (reduced) input.

A copy belongs to a study by its ``roar.json`` (:class:`unirex.roar.RoarDatasetInfo`); a retraining job to a copy
by its ``data=<copy>`` override: the folders and the queue are the record, there is no other.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from unirex import roar as core
from unirex.errors import UnirexError
from unirex.runs import RunDir, RunStatus, flat_metrics
from workbench.records import Job

ProgressFn = Callable[[float, str], None]
REMOVED_FILE = "roar_removed.json"  # recursive ROAR: the removed words of each example, as source word indices
METRIC = "acc"
SPLIT = "test"


@dataclass(frozen=True)
class RoarItem:
    """One copy of a ROAR study and the retraining queued on it."""

    arm: str
    k: int
    dataset: str
    overrides: tuple[str, ...]
    command: str
    job_id: str | None = None
    run_id: str | None = None
    removed_fraction: float | None = None  # share of the document words removed (None in a dry run)


@dataclass(frozen=True)
class RoarPlan:
    """What :meth:`RoarService.submit` did (or, with ``dry_run``, would do)."""

    run_id: str
    dataset: str
    data_dir: Path
    items: tuple[RoarItem, ...]
    dry_run: bool
    recursive: bool
    launcher: str
    pending: tuple[int, ...] = ()  # recursive ROAR: the ks built later by advance()


@dataclass(frozen=True)
class RoarPoint:
    """One arm at one k: the mean test accuracy of its completed retrainings (None before any)."""

    arm: str
    k: int
    dataset: str | None
    accuracy: float | None
    runs: tuple[str, ...]
    status: str  # completed | waiting | running | failed | cancelled | interrupted | not queued | baseline


@dataclass(frozen=True)
class RoarReport:
    run_id: str
    dataset: str
    metric: str
    split: str
    baseline: float | None  # the run itself (k = 0)
    points: tuple[RoarPoint, ...]

    def arms(self) -> tuple[str, ...]:
        return tuple(a for a in core.ARMS if any(p.arm == a for p in self.points))

    def series(self, arm: str) -> list[RoarPoint]:
        """The arm's points by k (k = 0: the run itself, when its accuracy is known)."""
        pts = sorted((p for p in self.points if p.arm == arm), key=lambda p: p.k)
        base = [RoarPoint(arm, 0, self.dataset, self.baseline, (self.run_id,), "baseline")] if self.baseline is not None else []
        return base + pts


def _refuse_existing(data_dir: Path, name: str, advice: str = "") -> None:
    """UnirexError when the copy ``name`` is already in ``data_dir``: a ROAR copy is never overwritten."""
    if (data_dir / name).exists():
        raise UnirexError(f"dataset '{name}' already exists in {data_dir}: refusing to overwrite it{advice}")


def _test_acc(rd: RunDir) -> float | None:
    v = flat_metrics(rd.final_metrics()).get(f"{SPLIT}_{METRIC}")
    return None if v is None or v != v else float(v)


class RoarService:
    """ROAR studies of one workspace (the facade's ``wb.roar``); ``wb`` is the :class:`~workbench.Workbench`."""

    def __init__(self, wb):
        self.wb = wb

    # ------------------------------------------------------------------------------------ the run
    def _source(self, run_id: str):
        """``(run folder, resolved config, data folder)`` of a run ROAR can start from (UnirexError otherwise)."""
        from unirex.config import from_dict

        rd = self.wb._run_dir(run_id)
        if not rd.has_checkpoint():
            raise UnirexError(f"run {rd.run_id} has no checkpoint: ROAR ranks words with a trained model (train it with "
                              "save_checkpoint=True)")
        cfg = from_dict(rd.config(), validate=False)
        if cfg.training.mode != "train":
            raise UnirexError(f"run {rd.run_id} is a {cfg.training.mode} run: ROAR retrains a training run's config")
        from unirex.data.catalog import is_multiple_choice

        if is_multiple_choice(cfg.data.dataset):
            raise UnirexError(f"ROAR does not handle multiple-choice datasets ({cfg.data.dataset})")
        data_dir = Path(cfg.data_dir) if cfg.data_dir else self.wb.data_dir
        if self.wb.policy.confine:
            data_dir = self.wb.policy.path(str(data_dir), "data_dir")
        return rd, cfg, data_dir

    def _overrides(self, run_id: str, cfg, name: str, recursive: bool) -> list[str]:
        drop = ("data", "dataset", "data.dataset", "data.max_length", "save_checkpoint", "workspace")
        keep = [o for o in self.wb.recorded_overrides(run_id) if o.split("=", 1)[0].strip() not in drop]
        save = recursive or bool(cfg.save_checkpoint)
        return [*keep, f"data={name}", f"data.max_length={int(cfg.data.max_length)}", f"save_checkpoint={save}"]

    # -------------------------------------------------------------------------------------- submit
    def submit(self, run_id: str, ks, arms=None, recursive: bool = False, launcher: str = "local",
               launcher_options=None, dry_run: bool = False, seed: int = 0,
               on_progress: ProgressFn | None = None) -> RoarPlan:
        """Make the copies of ``run_id``'s dataset for every arm and k and queue their retraining (see the module
        docstring). ``recursive``: the extractor arm as a recursive chain (only its first k now; the others by
        :meth:`advance`). ``on_progress(fraction, message)`` while scoring and writing."""
        ks, arms = core.parse_ks(ks), core.parse_arms(arms)
        rd, cfg, data_dir = self._source(run_id)
        dataset = cfg.data.dataset
        plan: list[tuple[str, int, str]] = []
        for arm in arms:
            chain = recursive and arm == core.EXTRACTOR
            for k in (ks[:1] if chain else ks):
                plan.append((arm, k, core.roar_name(dataset, rd.run_id, arm, k, recursive=chain)))
        for _, _, name in plan:
            _refuse_existing(data_dir, name, " (delete that folder to run this ROAR again)")
        items = [self._checked(rd.run_id, cfg, arm, k, name, recursive and arm == core.EXTRACTOR, launcher,
                               launcher_options) for arm, k, name in plan]
        pending = ks[1:] if recursive and core.EXTRACTOR in arms else ()
        result = RoarPlan(run_id=rd.run_id, dataset=dataset, data_dir=data_dir, items=tuple(items), dry_run=dry_run,
                          recursive=recursive, launcher=launcher, pending=tuple(pending))
        splits = core.read_splits(data_dir / dataset)
        if core.GOLD in arms and not core.has_gold(splits):
            raise UnirexError(f"dataset {dataset} has no gold evidence: the gold arm needs it")
        if dry_run:
            return result
        scores = self._scores(rd.run_id, cfg, splits, on_progress) if core.EXTRACTOR in arms else None
        done = []
        for n, it in enumerate(items):
            if on_progress is not None:
                on_progress(0.5 + 0.5 * n / len(items), f"writing {it.dataset}")
            chain = recursive and it.arm == core.EXTRACTOR
            info = core.RoarDatasetInfo(name=it.dataset, source=dataset, run_id=rd.run_id, arm=it.arm, k=it.k, seed=seed,
                                        recursive=chain, scored_by=rd.run_id if it.arm == core.EXTRACTOR else None,
                                        chain=tuple(ks) if chain else ())
            masks = {s: core.removal_masks(it.arm, exs, it.k, seed, scores[s] if scores else None)
                     for s, exs in splits.items()}
            done.append(self._queue(it, data_dir, splits, masks, info, launcher, launcher_options))
        return replace(result, items=tuple(done))

    def _checked(self, run_id: str, cfg, arm: str, k: int, name: str, recursive: bool, launcher: str,
                 launcher_options) -> RoarItem:
        """The retraining of ``run_id``'s config on the copy ``name`` (of ``arm`` at ``k``), checked but not
        queued: UnirexError with the config's message when it cannot be queued."""
        ov = self._overrides(run_id, cfg, name, recursive)
        check = self.wb.check(ov, launcher=launcher, launcher_options=launcher_options)
        if not check.ok:
            raise UnirexError(f"the retraining on {name} cannot be queued: {check.message}")
        return RoarItem(arm=arm, k=k, dataset=name, overrides=tuple(ov), command=check.command)

    def _queue(self, it: RoarItem, data_dir: Path, splits, masks, info: core.RoarDatasetInfo, launcher: str,
               launcher_options, job_command: bool = False) -> RoarItem:
        """Write the copy ``it`` names (``masks`` over ``splits``, described by ``info``) and queue its retraining:
        ``it`` with its job, its run and the share of words removed. ``job_command``: ``it.command`` becomes the
        queued job's command line (the one :meth:`advance` reports) instead of the checked one."""
        info = self._write(data_dir / it.dataset, splits, masks, info)
        job = self.wb.submit(list(it.overrides), launcher=launcher, launcher_options=launcher_options)[0]
        return replace(it, job_id=job.job_id, run_id=job.run_id, removed_fraction=core.mean_fraction(info),
                       command=job.command if job_command else it.command)

    def _write(self, target: Path, splits, masks, info: core.RoarDatasetInfo) -> core.RoarDatasetInfo:
        from unirex.fsutil import write_json_atomic

        info = core.write_roar_dataset(target, splits, masks, info)
        if info.recursive:  # the next k adds to these words
            write_json_atomic(target / REMOVED_FILE, {s: [[i for i, r in enumerate(m) if r] for m in ms]
                                                       for s, ms in masks.items()})
        return info

    def _scores(self, ckpt_run: str, cfg, splits, on_progress: ProgressFn | None):
        """The word scores of ``ckpt_run``'s checkpoint for every split's examples."""
        from unirex.protocol import input_layout

        ck = self.wb.checkpoints.get(ckpt_run)
        layout = input_layout(cfg.protocol, cfg.data.dataset)
        total = sum(len(v) for v in splits.values()) or 1
        out, before = {}, 0
        with ck.lock:
            for s, exs in splits.items():
                def step(done, _n, before=before, s=s):
                    if on_progress is not None:
                        on_progress(0.5 * (before + done) / total, f"scoring {s} with {ckpt_run}")

                out[s] = core.word_scores(ck.model, ck.tokenizer, exs, ck.max_length, protocol=cfg.protocol,
                                          drop_query=layout.drop_query, keep_rationale_tail=layout.keep_rationale_tail,
                                          batch_size=int(cfg.setup.eval_batch_size or 16), on_progress=step)
                before += len(exs)
        return out

    # ------------------------------------------------------------------------------------- reading
    def copies(self, run_id: str) -> list[core.RoarDatasetInfo]:
        """The ROAR copies made from ``run_id`` (their ``roar.json``), by arm and k."""
        rd, cfg, data_dir = self._source(run_id)
        prefix = f"{cfg.data.dataset}-roar-{rd.run_id}-"
        out = []
        for p in sorted(data_dir.glob(f"{prefix}*")) if data_dir.is_dir() else []:
            info = core.read_roar_info(p)
            if info is not None and info.run_id == rd.run_id and info.name == p.name:
                out.append(info)
        return sorted(out, key=lambda i: (core.ARMS.index(i.arm) if i.arm in core.ARMS else 9, i.k))

    def jobs_on(self, dataset: str) -> list[Job]:
        """The queue's jobs that train on ``dataset`` (oldest first)."""
        return [j for j in self.wb.jobs.jobs() if f"data={dataset}" in j.overrides]

    def report(self, run_id: str) -> RoarReport:
        """Test accuracy per arm per k from the finished retrainings (see :class:`RoarReport`)."""
        rd, cfg, _ = self._source(run_id)
        points = []
        for info in self.copies(run_id):
            jobs = self.jobs_on(info.name)
            accs, runs = [], []
            for j in jobs:
                if j.status == RunStatus.COMPLETED and (self.wb.runs_root / j.run_id / RunDir.META).is_file():
                    acc = _test_acc(RunDir(self.wb.runs_root / j.run_id))
                    if acc is not None:
                        accs.append(acc)
                        runs.append(j.run_id)
            if accs:
                status = RunStatus.COMPLETED.value
            elif jobs:
                status = jobs[-1].status
            else:
                status = "not queued"
            points.append(RoarPoint(arm=info.arm, k=info.k, dataset=info.name,
                                    accuracy=sum(accs) / len(accs) if accs else None, runs=tuple(runs), status=status))
        return RoarReport(run_id=rd.run_id, dataset=cfg.data.dataset, metric=METRIC, split=SPLIT, baseline=_test_acc(rd),
                          points=tuple(points))

    # ----------------------------------------------------------------------------- recursive ROAR
    def advance(self, run_id: str, launcher: str | None = None, launcher_options=None,
                on_progress: ProgressFn | None = None) -> list[RoarItem]:
        """Recursive ROAR: for each chain of ``run_id`` whose last copy's retraining completed (with a checkpoint) and
        that has a k left, build the next copy (the previous words stay removed; the extra ones ranked by that
        retrained model on its own input) and queue its retraining. Returns what it queued (nothing to do: [])."""
        rd, cfg, data_dir = self._source(run_id)
        chains = [i for i in self.copies(run_id) if i.recursive]
        if not chains:
            return []
        last = max(chains, key=lambda i: i.k)
        todo = [k for k in last.chain if k > last.k]
        if not todo:
            return []
        done = [j for j in self.jobs_on(last.name) if j.status == RunStatus.COMPLETED
                and RunDir(self.wb.runs_root / j.run_id).has_checkpoint()]
        if not done:
            return []
        prev_run = done[-1].run_id
        k = todo[0]
        name = core.roar_name(cfg.data.dataset, rd.run_id, core.EXTRACTOR, k, recursive=True)
        _refuse_existing(data_dir, name)
        if launcher is None:
            launcher, args = self.wb.launcher_of(prev_run)
            launcher_options = list(args) if launcher_options is None else launcher_options
        item = self._checked(rd.run_id, cfg, core.EXTRACTOR, k, name, True, launcher, launcher_options)
        source = core.read_splits(data_dir / cfg.data.dataset)
        reduced = core.read_splits(data_dir / last.name)
        prev = json.loads((data_dir / last.name / REMOVED_FILE).read_text())
        already = {s: [[False] * sum(d.n_words for d in ex.documents) for ex in exs] for s, exs in source.items()}
        for s, rows in prev.items():
            for m, idx in zip(already[s], rows):
                for i in idx:
                    m[i] = True
        from unirex.config import from_dict

        prev_cfg = from_dict(RunDir(self.wb.runs_root / prev_run).config(), validate=False)  # read its copy as trained
        reduced_scores = self._scores(prev_run, prev_cfg, reduced, on_progress)
        scores = {}
        for s, exs in source.items():  # the reduced copy's scores back on the source's words (removed: never again)
            out = []
            for m, sc in zip(already[s], reduced_scores[s]):
                full, j = [], 0
                for r in m:
                    if r:
                        full.append(-math.inf)
                    else:
                        full.append(float(sc[j]))
                        j += 1
                out.append(full)
            scores[s] = out
        masks = {s: core.removal_masks(core.EXTRACTOR, exs, k, last.seed, [np.asarray(x) for x in scores[s]], already[s])
                 for s, exs in source.items()}
        info = core.RoarDatasetInfo(name=name, source=cfg.data.dataset, run_id=rd.run_id, arm=core.EXTRACTOR, k=k,
                                    seed=last.seed, recursive=True, scored_by=prev_run, chain=last.chain)
        return [self._queue(item, data_dir, source, masks, info, launcher, launcher_options, job_command=True)]


__all__ = ["RoarItem", "RoarPlan", "RoarPoint", "RoarReport", "RoarService"]
