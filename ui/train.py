"""Train tab: a method of the paper, its settings under the UNIREX keys (every one editable, checked as
you type), seeds (several queue a sweep), the equivalent command line, the run queue, and the followed
job's progress with ETA and live curves of its loss components and dev metrics.

Live updates come from a ``gr.Timer`` that polls the workbench (the queue files and the run folder's
``events.jsonl``) every :data:`POLL_S` seconds while the tab is shown."""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass
from typing import Callable

import gradio as gr

from ui import figures
from ui.common import AppDefaults, Handlers, code, fmt_num, fmt_seconds, handler, html_text, md
from unirex.errors import UnirexError
from workbench import Workbench, is_sweep
from workbench.service import format_value

POLL_S = 1.5
#: keys set by the fields above the table (or not per run): not repeated in it
OUTSIDE_TABLE = ("seed", "data.dataset", "arch", "workspace", "work_dir", "debug", "save_checkpoint", "data_dir")
QUEUE_HEADERS = ["job", "status", "what", "run", "progress", "ETA"]
AUTO = "follow the running job"
#: the final metrics the line of a finished run shows
_FINAL_SHOWN = ("acc", "macro_f1", "comp_aopc", "suff_aopc", "plaus_auprc")


def _value_text(v) -> str:
    return v.strip("'") if isinstance(v, str) else format_value(v)


def table_for(preset, defaults: AppDefaults) -> list[list[str]]:
    """The settings table of a preset: every key with the app's quick defaults applied."""
    quick = {"data.max_length": defaults.max_length, "data.num_train": defaults.num_train,
             "training.epochs": defaults.epochs, "setup.train_batch_size": defaults.train_batch_size,
             "setup.eval_batch_size": defaults.eval_batch_size, "model.optimizer.lr": defaults.lr}
    rows = []
    for k, v in preset.settings.items():
        if k in OUTSIDE_TABLE:
            continue
        rows.append([k, _value_text(quick.get(k, v))])
    return rows


def _rows(table) -> list[list]:
    if table is None:
        return []
    if hasattr(table, "values") and hasattr(table, "columns"):  # pandas
        return table.values.tolist()
    return list(table)


def overrides_of(wb: Workbench, method, table, dataset, arch, seeds, debug, save_ckpt, extra) -> tuple[list[str], bool]:
    """The overrides the form describes and whether they make a sweep (more than one seed)."""
    settings = {str(r[0]): "" if r[1] is None else str(r[1]) for r in _rows(table) if r and r[0]}
    ov = wb.settings_overrides(method, settings)
    ov.insert(1, f"data={dataset}")
    ov.insert(2, f"arch={arch or 'default'}")
    if debug:
        ov.append("debug=True")
    ov.append(f"save_checkpoint={bool(save_ckpt)}")
    seed_list = [s.strip() for s in str(seeds or "0").replace(" ", ",").split(",") if s.strip()]
    if any(not s.lstrip("-").isdigit() for s in seed_list):
        raise UnirexError(f"seeds must be whole numbers separated by commas, got '{seeds}'")
    seed = "seed=" + ",".join(seed_list or ["0"])
    ov.append(seed)
    try:
        extra_ov = shlex.split(extra or "")
    except ValueError as e:
        raise UnirexError(f"extra overrides: {e}") from None
    ov += extra_ov
    return ov, is_sweep([seed, *extra_ov])  # several seeds, or a comma list among the extra overrides


#: more phases than this (many epochs): the training epochs and their dev evaluations are drawn as one segment
MAX_SEGMENTS = 24


def _segments(phases) -> list[tuple[str, float, float, str]]:
    """``(label, share, done, state)`` per segment: a phase each, or with many epochs one segment for all of them
    (their training and dev evaluations) and one per final evaluation."""
    if len(phases) <= MAX_SEGMENTS:
        return [(ph.label, ph.share, ph.done, ph.state) for ph in phases]
    epochs = [ph for ph in phases if "epoch" in ph.label]
    rest = [ph for ph in phases if "epoch" not in ph.label]
    share = sum(ph.share for ph in epochs)
    done = sum(ph.share * ph.done for ph in epochs) / share if share else 0.0
    states = {ph.state for ph in epochs}
    state = "running" if "running" in states else ("done" if states <= {"done", "skipped"} else "waiting")
    return [(f"training: {len(epochs) // 2} epochs with their dev evaluations", share, done, state),
            *[(ph.label, ph.share, ph.done, ph.state) for ph in rest]]


def _phase_bar(p) -> str:
    """One bar over the whole run, its phases marked: a segment per phase (width: its share of the estimated
    time; a thin line between segments), each filled as far as it is done, named in its tooltip."""
    color = {"failed": "#e0413a", "cancelled": "#999", "interrupted": "#e89a2c"}.get(p.status, "#2e9d4f")
    segs = []
    for label, share, done, state in _segments(p.phases):
        fill = 100.0 * (1.0 if p.phase == "finished" and state != "skipped" else done)
        segs.append(f"<div class='unirex-phase' data-state='{html_text(state)}' title='{html_text(label)}' "
                    f"style='flex:{max(share, 0.002):.4f} 1 0;background:#eee;border-right:2px solid #fff;"
                    f"height:100%;overflow:hidden'><div style='width:{fill:.1f}%;background:{color};height:100%'>"
                    "</div></div>")
    return ("<div class='unirex-bar' style='display:flex;background:#eee;border-radius:6px;height:16px;"
            f"overflow:hidden;margin:4px 0'>{''.join(segs)}</div>")


def progress_where(p) -> str:
    """The phase running now, as a person reads it (epochs from 1)."""
    if p.phase == "training":
        where = f"training · epoch {(p.epoch or 0) + 1}/{p.epochs or 1} · step {p.step}/{p.total_steps}"
    elif p.phase == "evaluating":
        where = f"evaluating {p.eval_split} · {p.eval_done}/{p.eval_total} examples"
    elif p.phase == "finished":
        where = f"finished: {p.status}"
    else:
        where = f"{p.phase} ({p.status})"
    if getattr(p, "phases", ()) and p.phase != "finished":
        live = [ph for ph in p.phases if ph.state != "skipped"]
        at = next((i for i, ph in enumerate(live) if ph.state == "running"), None)
        if at is not None:
            where += f" · phase {at + 1} of {len(live)}"
    return where


def progress_html(p, title: str = "") -> str:
    """A progress bar over the whole run (:class:`~workbench.Progress`: its phases marked when the run has a
    plan), the phase running now, the ETA to the end of the run (evaluation included) and the wall time."""
    pct = max(0.0, min(1.0, p.fraction)) * 100
    eta = f" · ETA {fmt_seconds(p.eta_s)}" if p.eta_s is not None and p.phase != "finished" else ""
    elapsed = f" · elapsed {fmt_seconds(p.elapsed_s)}" if p.elapsed_s else ""
    color = {"failed": "#e0413a", "cancelled": "#999", "interrupted": "#e89a2c"}.get(p.status, "#2e9d4f")
    msg = f"<div style='color:#a33'>{html_text(p.message)}</div>" if p.message else ""
    bar = _phase_bar(p) if getattr(p, "phases", ()) else (
        f"<div style='background:#eee;border-radius:6px;height:16px;overflow:hidden;margin:4px 0'>"
        f"<div style='width:{pct:.1f}%;background:{color};height:100%'></div></div>")
    return (f"<div class='unirex-progress' data-status='{html_text(p.status)}' data-phase='{html_text(p.phase)}'>"
            f"<div style='font-weight:600'>{html_text(title)}</div>{bar}"
            f"<div>{pct:.0f}% · {html_text(progress_where(p))}{eta}{elapsed}</div>{msg}</div>")


def _target(fol, jobs, shown=None):
    """The job the progress follows: the chosen one; else ("follow the running job") the running one, else the
    one shown before (a followed run stays on screen once it ends) unless a job submitted after it was not
    cancelled (a short job can start and end between two ticks: it must still be shown), else the first waiting
    one, else the newest that was not cancelled."""
    if fol and fol != AUTO:
        j = next((j for j in jobs if j.job_id == fol), None)
        if j is not None:
            return j
    running = [j for j in jobs if j.status == "running"]
    if running:
        return running[0]
    at = next((i for i, j in enumerate(jobs) if j.job_id == shown), None) if shown else None
    if at is not None and all(j.status == "cancelled" for j in jobs[at + 1:]):
        return jobs[at]
    waiting = [j for j in jobs if j.status == "waiting"]
    if waiting:
        return waiting[0]
    kept = [j for j in jobs if j.status != "cancelled"]
    return kept[-1] if kept else (jobs[-1] if jobs else None)


def queue_order(jobs, recent: int = 6) -> list:
    """The queue as the table lists it: running jobs, then waiting ones (in the order they will run), then the
    ``recent`` newest finished ones, newest first."""
    active = [j for j in jobs if j.status == "running"] + [j for j in jobs if j.active and j.status != "running"]
    done = [j for j in jobs if not j.active][-recent:] if recent else []
    return active + list(reversed(done))


def finished_md(job, detail) -> str:
    """A followed job that ended: its run id (open it in the Runs tab), how it ended and its final metrics."""
    if detail is None:
        return f"**{md(job.job_id)}** ended: {md(job.status)} (no run folder)."
    s = detail.summary
    head = (f"**Last followed run:** {code(s.run_id)} · {md(s.status)}"
            + (f" in {fmt_seconds(s.duration_s)}" if s.duration_s else "") + f" · job {code(job.job_id)}")
    split = "test" if "test" in detail.final else next(iter(sorted(detail.final)), None)
    metrics = ""
    if split is not None:
        shown = [(k, v) for k, v in detail.final[split].items() if k in _FINAL_SHOWN and v is not None]
        metrics = f" · {md(split)}: " + ", ".join(f"{md(k)} {fmt_num(v)}" for k, v in shown) if shown else ""
    return head + metrics + " · its entry is in the Runs tab (the button opens it)."


class TrainHandlers(Handlers):
    """The Train tab's event handlers."""

    def __init__(self, wb: Workbench, defaults: AppDefaults):
        super().__init__(wb)
        self.defaults = defaults
        self.presets = {m.id: m for m in wb.methods()}

    def on_check(self, m, table, ds, a, sd, dbg, sc, ex, lch):
        try:
            ov, sweep = overrides_of(self.wb, m, table, ds, a, sd, dbg, sc, ex)
        except Exception as e:  # noqa: BLE001 - shown inline
            return f"✗ {md(self.wb.public_message(e))}", ""
        res = self.wb.check(ov, sweep=sweep, launcher=lch)
        return (f"✓ {md(res.message)}" if res.ok else f"✗ {md(res.message)}"), res.command

    @handler
    def on_method(self, m):
        p = self.presets[m]
        return (md(p.description) + (f"\n\nNeeds: {md(', '.join(p.needs))}" if p.needs else ""),
                table_for(p, self.defaults))

    @handler
    def on_launch(self, m, table, ds, a, sd, dbg, sc, ex, lch):
        ov, sweep = overrides_of(self.wb, m, table, ds, a, sd, dbg, sc, ex)
        jobs = self.wb.submit(ov, sweep=sweep, launcher=lch)
        names = ", ".join(code(j.job_id) for j in jobs)
        gr.Info(f"Queued {len(jobs)} job(s)")
        return f"Queued {len(jobs)} job(s): {names} (run {code(jobs[0].run_id)}" + (", ..." if len(jobs) > 1 else "") + ")"

    def _queue_rows(self, shown_jobs) -> list[list]:
        rows = []
        for j in shown_jobs:
            pj = self.wb.progress(j.run_id) if j.status == "running" else None
            status = pj.status if pj is not None and pj.phase == "finished" else j.status  # the run ended first
            prog = f"{pj.phase} {pj.fraction:.0%}" if pj else ("" if j.active else j.status)
            rows.append([j.job_id, status, j.title, j.run_id, prog,
                         fmt_seconds(pj.eta_s) if pj and pj.eta_s is not None and pj.phase != "finished" else ""])
        return rows

    def _finished(self, job_id) -> str:
        job = next((j for j in self.wb.queue(include_final=True) if j.job_id == job_id), None)
        if job is None:
            return ""
        try:
            detail = self.wb.run(job.run_id)
        except UnirexError:
            detail = None
        return finished_md(job, detail)

    @handler
    def on_tick(self, fol, prev, shown=None, done=None):
        wb = self.wb
        jobs = wb.queue(include_final=True)
        listed = queue_order(jobs)
        target = _target(fol, jobs, shown)
        before = next((j for j in jobs if j.job_id == shown), None) if shown else None
        if before is not None and not before.active:
            done = before.job_id  # the run shown until now ended: it stays on screen below
        if target is not None and not target.active:
            done = target.job_id
        p = wb.progress(target.run_id) if target else None
        curves = wb.curves(target.run_id) if target else None
        sig = (tuple((j.job_id, j.status) for j in listed), fol, target.job_id if target else None, done,
               None if p is None else (p.phase, p.step, p.eval_done, p.status, p.message),
               None if curves is None else (curves.losses.height, curves.dev.height))
        keep = target.job_id if target else shown
        if sig == prev:
            return (gr.update(),) * 5 + (prev, keep, done, gr.update(), gr.update())
        rows = self._queue_rows(listed)
        choices = [AUTO] + [(f"{j.job_id} · {j.title} [{j.status}]", j.job_id) for j in listed]
        ended = self._finished(done) if done else ""
        done_run = next((j.run_id for j in jobs if j.job_id == done), None)
        outro = (gr.update(value=ended, visible=bool(ended)), gr.update(visible=bool(done_run)))
        if target is None:
            return (rows, gr.update(choices=choices), "<div>No job yet: launch one above.</div>",
                    figures.empty("Training losses per step"), figures.empty("Dev metrics per epoch"), sig, keep,
                    done, *outro)
        if target.status in ("failed",) and target.error and not p.message:
            p = dataclasses.replace(p, message=wb.public_message(target.error))
        title = f"{target.job_id} · {target.title} · run {target.run_id}"
        # smoothed as the Runs tab's charts open (TensorBoard's default weight), the raw line faint behind
        live = figures.losses(curves, smoothing=figures.DEFAULT_SMOOTHING)
        return (rows, gr.update(choices=choices), progress_html(p, title), live, figures.dev_metrics(curves), sig,
                keep, done, *outro)

    def on_pick(self, evt: gr.SelectData):
        """A row of the queue clicked: that job is the one *Cancel the selected job* acts on, and it is followed."""
        row = evt.row_value or []
        if not row or not row[0]:
            return gr.skip()
        job_id = str(row[0])
        return job_id, f"Selected: {code(job_id)} · {md(row[2] if len(row) > 2 else '')} [{md(row[1])}]", job_id

    @handler
    def on_cancel(self, selected):
        if not selected:
            raise gr.Error("Click the job to cancel in the queue first.")
        job = self.wb.cancel(selected)
        msg = "removed from the queue" if job.status == "cancelled" else "asked to stop (within one step)"
        gr.Info(html_text(f"{job.job_id}: {msg}"))
        return f"{code(job.job_id)}: {md(msg)}."

    def run_of(self, job_id) -> str | None:
        """The run id of a job (what *Open its entry in the Runs tab* opens)."""
        return next((j.run_id for j in self.wb.queue(include_final=True) if j.job_id == job_id), None)

    def on_show(self):
        return gr.update(choices=self.wb.dataset_names())  # datasets uploaded or built since the page opened


@dataclass(frozen=True)
class FollowedRun:
    """The followed run that ended, for the app to open in the Runs tab: the button, the state holding its
    job id, and ``run_of(job_id) -> run id``."""

    button: gr.Button
    job: gr.State
    run_of: Callable[[str | None], str | None]


def build_tab(wb: Workbench, defaults: AppDefaults = AppDefaults()):
    """Build the tab; returns its timer (the app activates it while the tab is shown), the form check (run
    when the page opens), the refresh run when the tab is shown, and the :class:`FollowedRun` (the app wires
    its button to the Runs tab)."""
    h = TrainHandlers(wb, defaults)
    presets = h.presets
    method0 = defaults.method if defaults.method in presets else next(iter(presets))
    with gr.Row():
        method = gr.Dropdown([(m.title, m.id) for m in presets.values()], value=method0, label="Method (the paper's)",
                             scale=3)
        launcher = gr.Dropdown(list(wb.launchers()), value=wb.launchers()[0], label="Launcher", scale=1)
    description = gr.Markdown(md(presets[method0].description))
    with gr.Row():
        dataset = gr.Dropdown(wb.dataset_names(), value=defaults.dataset, label="Dataset (data=)",
                              allow_custom_value=True)
        arch = gr.Textbox(value=defaults.arch, label="Arch (arch=)")
        seeds = gr.Textbox(value=defaults.seeds, label="Seeds (several: one run each, a sweep)")
        debug = gr.Checkbox(value=False, label="debug=True (a few batches, one epoch)", elem_id="train-debug")
        save_ckpt = gr.Checkbox(value=True, label="save_checkpoint=True (needed by Explain)")
    settings = gr.Dataframe(value=table_for(presets[method0], defaults), headers=["key", "value"],
                            datatype=["str", "str"], interactive=True, static_columns=[0], label=(
                                "Settings under the UNIREX keys (edit a value; checked as you type)"),
                            max_height=360, show_search="search", column_widths=["45%", "55%"])
    extra = gr.Textbox(label="Extra overrides (key=value ..., as on the command line)", placeholder="model.comp_wt=0.5",
                       elem_id="train-extra")
    check_md = gr.Markdown(elem_id="train-check")
    command = gr.Code(language="shell", label="Equivalent command line (copy it)", interactive=False, lines=2,
                      buttons=["copy"])
    launch = gr.Button("Launch (queue the run)", variant="primary")
    launch_md = gr.Markdown(elem_id="train-launched")

    gr.Markdown("### Queue")
    queue = gr.Dataframe(headers=QUEUE_HEADERS, interactive=False, wrap=True, elem_id="train-queue",
                         label="Running and waiting jobs, then recent ones (click a row to select and follow it)")
    with gr.Row():
        selected_md = gr.Markdown("Click a job in the queue to select it.", elem_id="train-selected")
        cancel = gr.Button("Cancel the selected job", variant="stop", scale=0, min_width=220)
    follow = gr.Dropdown([AUTO], value=AUTO, label="Follow")
    progress = gr.HTML()
    with gr.Row():
        finished = gr.Markdown(visible=False, elem_id="train-finished")
        open_run = gr.Button("Open its entry in the Runs tab", size="sm", scale=0, min_width=240, visible=False)
    with gr.Row():
        loss_plot = gr.Plot(label="Losses", elem_id="train-losses")
        dev_plot = gr.Plot(label="Dev metrics", elem_id="train-dev")
    timer = gr.Timer(POLL_S, active=False)
    last = gr.State(None)
    shown = gr.State(None)  # the job the progress showed last: a followed run stays on screen after it ends
    done = gr.State(None)  # the last followed job that ended (its final line stays)
    selected = gr.Textbox(visible=False, label="job id")  # the job the cancel button acts on: a clicked row

    private = {"api_visibility": "private"}
    form = [method, settings, dataset, arch, seeds, debug, save_ckpt, extra]
    followed = [queue, follow, progress, loss_plot, dev_plot, last, shown, done, finished, open_run]
    method.change(h.on_method, [method], [description, settings], **private)
    for comp in form + [launcher]:
        comp.change(h.on_check, form + [launcher], [check_md, command], **private)
    launch.click(h.on_launch, form + [launcher], [launch_md], api_name="launch").then(
        h.on_tick, [follow, gr.State(None), shown, done], followed, **private)
    timer.tick(h.on_tick, [follow, last, shown, done], followed, show_progress="hidden", **private)
    follow.input(h.on_tick, [follow, gr.State(None), shown, done], followed, **private)
    queue.select(h.on_pick, None, [selected, selected_md, follow], **private).then(
        h.on_tick, [follow, gr.State(None), shown, done], followed, **private)
    cancel.click(h.on_cancel, [selected], [selected_md], api_name="cancel_job").then(
        h.on_tick, [follow, gr.State(None), shown, done], followed, **private)
    open_in_runs = FollowedRun(button=open_run, job=done, run_of=h.run_of)
    return (timer, (h.on_check, form + [launcher], [check_md, command]), (h.on_show, None, [dataset]),
            open_in_runs)


__all__ = ["FollowedRun", "build_tab", "finished_md", "overrides_of", "progress_html", "queue_order", "table_for"]
