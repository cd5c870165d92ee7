"""Typed records the workbench API returns to its two fronts (the app's tabs and the CLI).

They are plain frozen dataclasses (JSON-ready through :func:`dataclasses.asdict`, except the Polars frames
of :class:`RunDetail` and :class:`Comparison`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from unirex.metrics.stats import BootstrapResult, PairTest
from unirex.progress import PhaseEstimate
from unirex.runs import TERMINAL, RunStatus

#: job states; ``waiting`` and ``running`` are the queue, the others are final (one vocabulary with the runs':
#: :class:`unirex.runs.RunStatus`, whose ``TERMINAL`` these final states are)
FINAL_JOB_STATES = tuple(s.value for s in TERMINAL)
JOB_STATES = (RunStatus.WAITING.value, RunStatus.RUNNING.value, *FINAL_JOB_STATES)
#: the states a listed run can have: a job's but ``waiting`` (no folder yet), and ``corrupt`` (a folder that cannot
#: be read, never a job's state)
RUN_STATES = (*(s for s in JOB_STATES if s != RunStatus.WAITING), RunStatus.CORRUPT.value)


@dataclass(frozen=True)
class Job:
    """One queued run: the overrides it resolves, the run folder it will write and where it is.

    Attributes:
        job_id: ``J-YYYYmmdd-HHMMSS-xxxxxx``.
        run_id: the run folder the job writes (chosen at submission, so it can be followed at once).
        overrides: the ``key=value`` overrides of this one run (a sweep is expanded into many jobs).
        command: the command line that reproduces the run (``python -m unirex ...``).
        launcher: ``local`` (this process's worker thread), ``ray`` or ``slurm``.
        launcher_args: the launcher's options that differ from their defaults, as ``launcher.key=value``
            (:mod:`workbench.launchers.options`); never part of ``overrides`` or ``command``.
        sweep_id: jobs submitted together share it.
        handle: the launcher's own id of the job (a Ray task, a Slurm job id), when it has one.
        owner: ``host:pid`` of the process running it (for a remote job: the process dispatching it); on a
            waiting job, the one process that may claim it (the CLI's foreground sweep), None for any.
    """

    job_id: str
    run_id: str
    overrides: tuple[str, ...]
    command: str
    status: str = "waiting"
    launcher: str = "local"
    sweep_id: str | None = None
    created_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    error: str | None = None
    handle: str | None = None
    owner: str | None = None
    title: str = ""  # what the queue shows: method, dataset and seed
    launcher_args: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return self.status in (RunStatus.WAITING, RunStatus.RUNNING)


@dataclass(frozen=True)
class Progress:
    """Where a run is, read from its ``events.jsonl``.

    ``overall`` is the share of the whole run done (training and every evaluation, :mod:`unirex.progress`),
    ``eta_s`` the estimated seconds to the end of the run (evaluation included) and ``elapsed_s`` the wall
    time since it began (to its end once finished); ``phases`` its plan's phases for a bar with them marked.
    A run written before plans existed has ``overall`` None: ``fraction`` is then the current phase's share
    and ``eta_s`` that phase's.
    """

    run_id: str
    status: str
    phase: str  # preparing | training | evaluating | finished
    step: int = 0
    total_steps: int = 0
    epoch: int | None = None
    epochs: int | None = None
    eval_split: str | None = None
    eval_done: int = 0
    eval_total: int = 0
    elapsed_s: float | None = None
    eta_s: float | None = None
    losses: dict[str, float] = field(default_factory=dict)
    message: str = ""
    overall: float | None = None
    phases: tuple[PhaseEstimate, ...] = ()
    phase_label: str = ""

    @property
    def fraction(self) -> float:
        if self.phase == "finished":
            return 1.0
        if self.overall is not None:
            return self.overall
        if self.phase == "training" and self.total_steps:
            return self.step / self.total_steps
        if self.phase == "evaluating" and self.eval_total:
            return self.eval_done / self.eval_total
        return 0.0


@dataclass(frozen=True)
class RunSummary:
    """One row of the runs table. ``metrics`` are the final evaluation on ``split`` (None where absent);
    ``mode`` is the run's kind (train, evaluate, finetune), ``debug`` whether it is a debug run, ``tags`` its
    free-form names."""

    run_id: str
    status: str
    method: str | None
    dataset: str | None
    arch: str | None
    seed: int | None
    mode: str | None
    created_at: float | None
    duration_s: float | None
    split: str
    metrics: dict[str, float | None]
    command: str | None = None
    launcher: str | None = None
    run_dir: str | None = None
    error: str | None = None
    debug: bool = False
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckpointInfo:
    path: Path
    epoch: int | None  # as the run's files count (from 0)
    monitor: str | None
    value: float | None
    labels: list[str]

    @property
    def epoch_shown(self) -> str:
        """The epoch as people count them, from 1 (the runs table, the Runs tab, ``show``); a value that is not a
        whole number is shown as it is."""
        return epoch_number(self.epoch)


def epoch_number(epoch) -> str:
    """An epoch of a run's files (counted from 0) as people count them, from 1; a value that is not a whole
    number as it is (a hand-edited file), nothing for None."""
    if epoch is None:
        return ""
    try:
        return str(int(epoch) + 1) if not isinstance(epoch, bool) and float(epoch) == int(epoch) else str(epoch)
    except (TypeError, ValueError, OverflowError):
        return str(epoch)


@dataclass(frozen=True)
class RunDetail:
    """Everything about one run: its summary, resolved config, metrics per split and epoch, checkpoint
    and output files, and the folder that holds them."""

    summary: RunSummary
    config: dict[str, Any]
    overrides: list[str]  # the keys that differ from the defaults, as key=value
    meta: dict[str, Any]
    metrics: pl.DataFrame  # long: split, epoch (null = final evaluation), step, name, value, time
    final: dict[str, dict[str, float]]  # split -> metric -> value (final evaluation)
    checkpoint: CheckpointInfo | None
    outputs: list[Path]
    path: Path
    error_text: str | None = None

    def curve(self, name: str, split: str = "train") -> pl.DataFrame:
        """``step``/``epoch`` and ``value`` of one metric over training (rows with an epoch)."""
        return (self.metrics.filter((pl.col("name") == name) & (pl.col("split") == split)
                                    & pl.col("epoch").is_not_null())
                .select("epoch", "step", "value").sort("epoch", "step"))


@dataclass(frozen=True)
class Explanation:
    """A typed text explained by one checkpoint and extractor (see :class:`unirex.inference.TextExplanation`)."""

    checkpoint: str  # what the user gave: run id, folder or Hub id
    run_id: str | None
    extractor: str
    words: list[str]
    word_document: list[int]
    word_scores: list[float]
    rationale: list[bool]
    labels: list[str]
    probs: list[float]
    predicted: str
    top_k: float
    comprehensiveness: float
    sufficiency: float
    truncated: bool
    n_subwords: int
    seconds: float

    @property
    def probabilities(self) -> dict[str, float]:
        return dict(zip(self.labels, self.probs))

    @property
    def rationale_words(self) -> list[str]:
        return [w for w, r in zip(self.words, self.rationale) if r]


@dataclass(frozen=True)
class ScoreScale:
    """The word scores one extractor of a checkpoint gives over examples of its dataset: the scale the
    Explain tab's *per dataset* colour normalisation divides by (:meth:`~workbench.Workbench.score_scale`)."""

    checkpoint: str
    extractor: str
    split: str
    n_examples: int
    n_words: int
    low: float  # the smallest word score
    high: float  # the largest
    scale: float  # the 99th percentile of |score|: full colour at and beyond it (outliers do not wash the rest out)

    @property
    def signed(self) -> bool:
        """Scores of both signs (a diverging colour scale), or none below 0 (a sequential one)."""
        return self.low < 0


@dataclass(frozen=True)
class DatasetSummary:
    """One built split of a dataset for one arch and max length."""

    dataset: str
    split: str  # train / dev / test, or a subsample tag (train_n1000_s0)
    arch: str
    max_length: int
    count: int
    labels: list[str]
    label_distribution: dict[str, int]
    truncated: int
    mean_subwords: float
    with_rationale: int
    rationale_coverage: float | None  # share of document words in the gold rationale
    path: Path
    cache_hit: bool | None = None  # set by a build: whether the cached table was reused
    stored: dict[str, Any] = field(default_factory=dict, repr=False)  # the summary file as written next to the table


@dataclass(frozen=True)
class Comparison:
    """Methods compared over seeds on one split.

    ``table`` has one row per group (``by`` columns), ``<metric>_mean``/``<metric>_std`` per metric, ``n``
    (runs), ``seeds``, and ``nrg`` with its components ``nrg_faithfulness``, ``nrg_plausibility``,
    ``nrg_task`` (NRG is computed over the groups' mean metrics). ``runs`` is the long per-run frame
    the table was built from (for error bars and per-run charts).
    """

    table: pl.DataFrame
    runs: pl.DataFrame
    split: str
    by: tuple[str, ...]
    metrics: tuple[str, ...]
    convention: str
    nrg_metrics: dict[str, list[str]]  # desideratum -> metrics NRG used
    nrg_missing: list[str] = field(default_factory=list)  # desiderata no compared group had every metric of
    #: NRG per dataset (min-max over the groups of one dataset and the split, never across datasets): one
    #: row per (group, dataset) with ``nrg`` and its components; a group's ``nrg`` in ``table`` is the mean
    #: of its rows here (the paper's cross-dataset summary when a group spans several datasets)
    nrg_by_dataset: pl.DataFrame | None = None
    #: the cross-dataset summary: per group without the dataset, the mean of its per-dataset NRGs
    #: (``nrg_mean_over_datasets``) and the datasets averaged; None when ``by`` has no ``dataset``
    nrg_summary: pl.DataFrame | None = None
    #: the bootstrap behind the intervals and paired tests (None when not asked for)
    uncertainty: Uncertainty | None = field(default=None, repr=False)

    def nrg_interval_note(self) -> str | None:
        """Why NRG has no interval, where the rows have an NRG and a bootstrap ran but no row has
        ``nrg_ci_low`` (one line, for the CLI and the Compare tab); None otherwise."""
        t = self.table
        if (self.uncertainty is None or not self.uncertainty.bootstraps or t.height == 0
                or "nrg" not in t.columns or t["nrg"].is_null().all()
                or ("nrg_ci_low" in t.columns and not t["nrg_ci_low"].is_null().all())):
            return None
        return ("NRG has no interval: a metric it uses cannot be recomputed from the saved per-example outputs "
                "(the UNIREX-style metrics of protocol=reference runs); the eraser convention's NRG has one")


@dataclass(frozen=True)
class GroupLabels:
    """Short names for compared groups (:func:`workbench.compare.group_labels`): each label says only the
    ``columns`` whose value differs between the groups; what every group shares (``shared``: column, value) is
    said once, in a title or caption (:attr:`caption`)."""

    columns: tuple[str, ...]
    shared: tuple[tuple[str, str], ...] = ()

    def label(self, row) -> str:
        """``row``'s label: its values of :attr:`columns` joined by " / "."""
        return " / ".join(str(row.get(c)) for c in self.columns)

    @property
    def caption(self) -> str:
        """What every group shares: ``dataset demo, arch default`` ("" when nothing is)."""
        return ", ".join(f"{c} {v}" for c, v in self.shared)


@dataclass(frozen=True)
class PairLabels:
    """The names of a paired-tests matrix (:func:`workbench.compare.pair_labels`): ``names`` maps a test's side
    (its group key, its dataset) to the short label (the parts that differ between the tested groups);
    ``groups`` says which parts those are and what every tested group shares (the split included)."""

    names: dict[tuple[str, str | None], str]
    groups: GroupLabels

    def of(self, test: PairTest) -> tuple[str, str]:
        """The short labels of ``test``'s two sides (``a``, ``b``)."""
        return self.names[(test.a, test.dataset)], self.names[(test.b, test.dataset)]


@dataclass(frozen=True)
class Uncertainty:
    """The bootstrap of a comparison (:mod:`workbench.stats`): per dataset, its groups' resampled metrics
    (:class:`unirex.metrics.stats.BootstrapResult`, keyed by the table's group labels); ``left_out[dataset]
    [group]``: why a group has no interval and no test (its runs lack per-example outputs)."""

    n_resamples: int
    seed: int
    alpha: float
    bootstraps: dict[str, BootstrapResult]
    left_out: dict[str, dict[str, str]] = field(default_factory=dict)

    def over(self, dataset: str, label: str) -> str | None:
        """What the group's interval is over: ``examples`` (one run) or ``seeds and examples``."""
        boot = self.bootstraps.get(dataset)
        if boot is None or label not in boot.seeds:
            return None
        return "examples" if boot.seeds[label] == 1 else "seeds and examples"


@dataclass(frozen=True)
class DatasetExample:
    """One annotation of a built split, as the example browser shows it.

    ``words`` run over the annotation's documents (concatenated; ``word_document`` says which); ``gold``
    marks the gold rationale per word; the model reads the first ``read_words`` words (fewer than
    ``len(words)`` when the input was truncated to ``max_length`` subwords).
    """

    dataset: str
    split: str
    index: int  # row of the built split
    annotation_id: str
    label: str
    query: str
    words: list[str]
    word_document: list[int]
    gold: list[bool]
    has_rationale: bool
    truncated: bool
    read_words: int
    max_length: int

    @property
    def documents(self) -> list[str]:
        """The documents' text (whitespace-joined words), in input order."""
        out: dict[int, list[str]] = {}
        for w, d in zip(self.words, self.word_document):
            out.setdefault(d, []).append(w)
        return [" ".join(out[d]) for d in sorted(out)]


@dataclass(frozen=True)
class CatalogRow:
    """One ERASER dataset of the catalog, with its local state and archive size.

    ``archive_bytes`` is the size of the download (None while unknown: the catalog pins none and the
    host was not asked or could not be reached); ``archive_size_source`` says where it came from
    (``catalog``: pinned; ``downloaded``: recorded when this workspace fetched it; ``server``: the host's
    answer to a size check).
    """

    name: str
    title: str
    task_type: str
    labels: str
    sizes: tuple[int, int, int]
    status: str
    source_url: str
    hf_id: str
    notes: str
    archive_bytes: int | None
    archive_size_source: str
    unpacked_limit_bytes: int  # the decompressed-size limit the safe unpacker enforces for it


@dataclass(frozen=True)
class MethodPreset:
    """A method of the paper as the Train tab offers it: its preset overrides and its resolved settings
    under the UNIREX keys (``settings``: dotted key -> value)."""

    id: str
    title: str
    description: str
    overrides: tuple[str, ...]
    needs: tuple[str, ...]
    settings: dict[str, Any]


@dataclass(frozen=True)
class SettingsCheck:
    """The outcome of checking a run's overrides before queueing: ``ok`` with the number of runs the
    submission makes and its command line, or the config's own message (with its "did you mean")."""

    ok: bool
    message: str
    overrides: tuple[str, ...]
    runs: int
    command: str
    settings: dict[str, Any]  # the resolved settings of the first run (empty when not ok)


@dataclass(frozen=True)
class RunCurves:
    """A run's training curves, read from its ``events.jsonl`` (or its metrics log for runs without one).

    ``losses``: long frame ``step``, ``epoch``, ``name`` (``loss``, ``task_loss``, ``comp_loss``, ...),
    ``value``, one row per training step and loss component. ``dev``: ``epoch``, ``name``, ``value`` of
    every dev evaluation during training.
    """

    run_id: str
    losses: pl.DataFrame
    dev: pl.DataFrame

    @property
    def loss_names(self) -> list[str]:
        return sorted(set(self.losses["name"].to_list())) if self.losses.height else []


@dataclass(frozen=True)
class ExportedFile:
    """A file written for the user to download (inside ``<workspace>/exports``)."""

    path: Path
    rows: int | None = None
    description: str = ""


__all__ = ["CatalogRow", "CheckpointInfo", "Comparison", "DatasetExample", "DatasetSummary", "Explanation",
           "ExportedFile", "FINAL_JOB_STATES", "GroupLabels", "JOB_STATES", "RUN_STATES", "Job", "MethodPreset",
           "PairLabels", "Progress", "PairTest", "RunCurves", "RunDetail", "RunSummary", "ScoreScale", "SettingsCheck", "Uncertainty"]


@dataclass(frozen=True)
class PlannedRun:
    """One run of a command line, resolved before any run starts (:meth:`workbench.Workbench.plan_here`).

    Attributes:
        overrides: the ``key=value`` overrides of this run (a sweep's combination).
        config: the resolved :class:`unirex.config.RunConfig`.
        command: the command line that reproduces the run (recorded in its ``meta.json``).
    """

    overrides: tuple[str, ...]
    config: Any
    command: str


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended, for the fronts (the CLI's result line and summary table).

    Attributes:
        run_id, run_dir: the run and its folder (``run_dir`` None when no folder was written, or on a rank > 0).
        status: ``completed``, ``failed``, ``cancelled`` or ``interrupted``.
        metrics: ``<split>_<name>`` of the final evaluation.
        split: the split its result is reported on: ``test`` when it was evaluated, else its first eval split.
        error: the run's error message, when it did not complete.
        index_error: why the store could not index the run yet (``python -m unirex store sync`` catches up).
    """

    run_id: str | None
    run_dir: Path | None
    status: str
    metrics: dict[str, float]
    split: str
    error: str | None = None
    index_error: str | None = None
