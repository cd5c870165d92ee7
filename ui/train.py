"""Train tab: a method of the paper, its settings under the UNIREX keys (every one editable, checked as
you type), seeds (several queue a sweep), the equivalent command line, the run queue, and the followed
job's progress with ETA and live curves of its loss components and dev metrics.

Live updates come from a ``gr.Timer`` that polls the workbench (the queue files and the run folder's
``events.jsonl``) every :data:`POLL_S` seconds while the tab is shown."""

from __future__ import annotations

import dataclasses
import shlex

import gradio as gr

from ui import figures
from ui.common import AppDefaults, Handlers, code, fmt_seconds, handler, html_text, md
from unirex.errors import UnirexError
from workbench import Workbench, is_sweep
from workbench.service import format_value

POLL_S = 1.5
#: keys set by the fields above the table (or not per run): not repeated in it
OUTSIDE_TABLE = ("seed", "data.dataset", "arch", "workspace", "work_dir", "debug", "save_checkpoint", "data_dir")
QUEUE_HEADERS = ["job", "status", "what", "run", "progress", "ETA"]
AUTO = "follow the running job"


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


def progress_html(p, title: str = "") -> str:
    """A progress bar with the phase, step and ETA of a :class:`~workbench.Progress`."""
    pct = max(0.0, min(1.0, p.fraction)) * 100
    if p.phase == "training":
        where = f"training · epoch {(p.epoch or 0) + 1}/{p.epochs or 1} · step {p.step}/{p.total_steps}"
    elif p.phase == "evaluating":
        where = f"evaluating {p.eval_split} · {p.eval_done}/{p.eval_total} examples"
    elif p.phase == "finished":
        where = f"finished: {p.status}"
    else:
        where = f"{p.phase} ({p.status})"
    eta = f" · ETA {fmt_seconds(p.eta_s)}" if p.eta_s is not None and p.phase != "finished" else ""
    elapsed = f" · elapsed {fmt_seconds(p.elapsed_s)}" if p.elapsed_s else ""
    color = {"failed": "#e0413a", "cancelled": "#999", "interrupted": "#e89a2c"}.get(p.status, "#2e9d4f")
    msg = f"<div style='color:#a33'>{html_text(p.message)}</div>" if p.message else ""
    return (f"<div class='unirex-progress' data-status='{html_text(p.status)}'>"
            f"<div style='font-weight:600'>{html_text(title)}</div>"
            f"<div style='background:#eee;border-radius:6px;height:16px;overflow:hidden;margin:4px 0'>"
            f"<div style='width:{pct:.1f}%;background:{color};height:100%'></div></div>"
            f"<div>{pct:.0f}% · {html_text(where)}{eta}{elapsed}</div>{msg}</div>")


def _target(fol, jobs):
    """The job the progress follows: the chosen one, else the running, the waiting or the last one."""
    if fol and fol != AUTO:
        j = next((j for j in jobs if j.job_id == fol), None)
        if j is not None:
            return j
    running = [j for j in jobs if j.status == "running"]
    if running:
        return running[0]
    waiting = [j for j in jobs if j.status == "waiting"]
    return waiting[0] if waiting else (jobs[-1] if jobs else None)


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

    def _queue_rows(self, recent) -> list[list]:
        rows = []
        for j in reversed(recent):
            pj = self.wb.progress(j.run_id) if j.status == "running" else None
            status = pj.status if pj is not None and pj.phase == "finished" else j.status  # the run ended first
            prog = f"{pj.phase} {pj.fraction:.0%}" if pj else ("" if j.active else j.status)
            rows.append([j.job_id, status, j.title, j.run_id, prog,
                         fmt_seconds(pj.eta_s) if pj and pj.eta_s is not None and pj.phase != "finished" else ""])
        return rows

    @handler
    def on_tick(self, fol, prev):
        wb = self.wb
        jobs = wb.queue(include_final=True)
        recent = [j for j in jobs if j.active] + [j for j in jobs if not j.active][-6:]
        target = _target(fol, jobs)
        p = wb.progress(target.run_id) if target else None
        curves = wb.curves(target.run_id) if target else None
        sig = (tuple((j.job_id, j.status) for j in recent), fol, target.job_id if target else None,
               None if p is None else (p.phase, p.step, p.eval_done, p.status, p.message),
               None if curves is None else (curves.losses.height, curves.dev.height))
        if sig == prev:
            return (gr.update(),) * 5 + (prev,)
        rows = self._queue_rows(recent)
        choices = [AUTO] + [(f"{j.job_id} · {j.title} [{j.status}]", j.job_id) for j in reversed(recent)]
        if target is None:
            return (rows, gr.update(choices=choices), "<div>No job yet: launch one above.</div>",
                    figures.empty("Training losses per step"), figures.empty("Dev metrics per epoch"), sig)
        if target.status in ("failed",) and target.error and not p.message:
            p = dataclasses.replace(p, message=wb.public_message(target.error))
        title = f"{target.job_id} · {target.title} · run {target.run_id}"
        return (rows, gr.update(choices=choices), progress_html(p, title), figures.losses(curves),
                figures.dev_metrics(curves), sig)

    @handler
    def on_cancel(self, fol):
        jobs = self.wb.queue(include_final=True)
        target = _target(fol, [j for j in jobs if j.active])
        if target is None:
            raise gr.Error("There is no waiting or running job to cancel.")
        job = self.wb.cancel(target.job_id)
        msg = "removed from the queue" if job.status == "cancelled" else "asked to stop (within one step)"
        gr.Info(html_text(f"{job.job_id}: {msg}"))
        return None

    def on_show(self):
        return gr.update(choices=self.wb.dataset_names())  # datasets uploaded or built since the page opened


def build_tab(wb: Workbench, defaults: AppDefaults = AppDefaults()):
    """Build the tab; returns its timer (the app activates it while the tab is shown), the form check (run
    when the page opens) and the refresh run when the tab is shown."""
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
    queue = gr.Dataframe(headers=QUEUE_HEADERS, interactive=False, wrap=True, label="Waiting, running and recent jobs",
                         elem_id="train-queue")
    with gr.Row():
        follow = gr.Dropdown([AUTO], value=AUTO, label="Follow", scale=3)
        cancel = gr.Button("Cancel this job", variant="stop", scale=1)
    progress = gr.HTML()
    with gr.Row():
        loss_plot = gr.Plot(label="Losses", elem_id="train-losses")
        dev_plot = gr.Plot(label="Dev metrics", elem_id="train-dev")
    timer = gr.Timer(POLL_S, active=False)
    last = gr.State(None)

    private = {"api_visibility": "private"}
    form = [method, settings, dataset, arch, seeds, debug, save_ckpt, extra]
    followed = [queue, follow, progress, loss_plot, dev_plot, last]
    method.change(h.on_method, [method], [description, settings], **private)
    for comp in form + [launcher]:
        comp.change(h.on_check, form + [launcher], [check_md, command], **private)
    launch.click(h.on_launch, form + [launcher], [launch_md], api_name="launch").then(
        h.on_tick, [follow, gr.State(None)], followed, **private)
    timer.tick(h.on_tick, [follow, last], followed, show_progress="hidden", **private)
    follow.input(h.on_tick, [follow, gr.State(None)], followed, **private)
    cancel.click(h.on_cancel, [follow], None, api_name="cancel_job")
    return timer, (h.on_check, form + [launcher], [check_md, command]), (h.on_show, None, [dataset])


__all__ = ["build_tab", "overrides_of", "progress_html", "table_for"]
