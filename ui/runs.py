"""Runs tab: every run of the workspace (launched here or from the CLI), with its kind (mode), debug mark and
tags, filtered (tags too) and sorted; runs picked one by one and compared in the Compare tab; one run in full
(config, metrics per split and epoch, curves, its tags to edit) and what can be done with it (evaluate,
finetune, save attributions, measure explainer runtime, export ERASER results, push to the Hub, requeue or
resume, delete)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import gradio as gr

from ui import figures
from ui.common import Handlers, choice_or_none, code, fmt_num, fmt_seconds, handler, html_text, md
from ui.roar import build_panel as roar_panel
from unirex.hub import HUB_LICENSES
from unirex.metrics.registry import Headline, metric_keys, metrics
from workbench import RUN_STATES, RunFilter, Workbench
from workbench.records import epoch_number

#: the status filter's choices: a run's states (one vocabulary with the jobs', :class:`unirex.runs.RunStatus`)
STATUSES = ["any", *RUN_STATES]
SHOWN = 1000  # newest runs the table shows (the filters narrow it down)
POLL_S = 10.0


def table_headers() -> list[str]:
    """The runs table's columns: the run's, its summary metrics (the registry's headings), when."""
    return ["run", "status", "method", "dataset", "arch", "seed", "mode", "protocol", "debug", "tags",
            *[m.heading for m in metrics(headline=Headline.SUMMARY)], "duration", "created"]


def _when(t) -> str:
    return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M") if t else ""


def _arch(a: str | None) -> str:
    a = a or ""
    return a if len(a) <= 24 else "…" + a[-23:]


def runs_rows(df) -> list[list]:
    specs = metrics(headline=Headline.SUMMARY)
    rows = []
    for r in df.iter_rows(named=True):
        rows.append([r["run_id"], r["status"], r["method"], r["dataset"], _arch(r["arch"]), r["seed"], r["mode"],
                     r.get("protocol"),
                     "debug" if r.get("debug") else "", ", ".join(r.get("tags") or ()),
                     *[None if r.get(m.key) is None else round(r[m.key], m.digits) for m in specs],
                     fmt_seconds(r["duration_s"]), _when(r["created_at"])])
    return rows


def metric_table(final: dict[str, dict[str, float]]) -> tuple[list[str], list[list]]:
    names = sorted({n for v in final.values() for n in v})
    order = metric_keys(headline=True)
    names = [n for n in order if n in names] + [n for n in names if n not in order]
    return ["split", *names], [[sp, *[fmt_num(final[sp].get(n), 4) for n in names]] for sp in sorted(final)]


def epoch_table(detail) -> tuple[list[str], list[list]]:
    df = detail.metrics
    df = df.filter(df["epoch"].is_not_null() & (df["split"] == "dev"))
    names = [n for n in metric_keys(headline=Headline.SUMMARY) if n in set(df["name"].to_list())]
    rows = []
    for e in sorted(set(df["epoch"].to_list())):
        sub = {r["name"]: r["value"] for r in df.filter(df["epoch"] == e).iter_rows(named=True)}
        rows.append([epoch_number(e), *[fmt_num(sub.get(n), 4) for n in names]])
    return ["epoch", *names], rows


def no_checkpoint_reason(d) -> str:
    """Why a run has no checkpoint: it evaluates another's, it was trained without ``save_checkpoint=True``, or it
    stopped before its first epoch ended (a checkpoint is written at the end of an improving epoch)."""
    if d.summary.mode == "evaluate":
        return "an evaluation: it uses the checkpoint of the run it evaluates"
    if not d.config.get("save_checkpoint"):
        return "trained without save_checkpoint=True"
    if d.summary.status in ("running", "waiting"):
        return "none yet: it is written at the end of the first epoch"
    if d.summary.status == "completed":
        return "save_checkpoint=True, but none was written"
    return f"{d.summary.status} before its first epoch ended, so no checkpoint was written"


def resume_button(d):
    """*Resume from checkpoint*: usable only with a checkpoint; otherwise disabled, saying why."""
    if d is not None and d.checkpoint is not None:
        return gr.update(value="Resume from checkpoint", interactive=True)
    return gr.update(value="Resume from checkpoint (no checkpoint: requeue instead)", interactive=False)


def detail_md(d, wb: Workbench) -> str:
    s = d.summary
    lines = [f"### {code(s.run_id)} · {md(s.status)}",
             f"**{md(s.method)}** on **{md(s.dataset)}** · arch {code(s.arch)} · seed {md(s.seed)} "
             f"· mode {md(s.mode)}"
             + (" · **debug run** (left out of comparisons unless asked)" if s.debug else "")
             + (f" · {fmt_seconds(s.duration_s)}" if s.duration_s else "")]
    if s.tags:
        lines.append("Tags: " + ", ".join(code(t) for t in s.tags))
    parent = d.meta.get("parent_run")
    if s.mode == "evaluate" and parent:
        lines.append(f"Evaluates the checkpoint of {code(parent)}: in Compare, the latest evaluation of a checkpoint "
                     "stands for its model.")
    if s.command:
        lines.append(f"Reproduce: {code(s.command)}")
    lines.append(f"Folder: {code(wb.public_message(d.path))}")
    if d.checkpoint is not None:
        c = d.checkpoint
        lines.append(f"Checkpoint: epoch {md(epoch_number(c.epoch))}, {md(c.monitor)} {md(fmt_num(c.value, 4))}")
    else:
        lines.append(f"No checkpoint ({md(no_checkpoint_reason(d))}).")
    if d.outputs:
        lines.append("Outputs: " + ", ".join(code(p.name) for p in d.outputs))
    if s.status == "interrupted":
        lines.append("**Interrupted**: the process running it stopped. Resume it from its last checkpoint or "
                     "requeue it below." if d.checkpoint is not None else
                     "**Interrupted**: the process running it stopped. Resume it from a checkpoint: not possible, it "
                     "has none; requeue it below instead.")
    if s.error:
        lines.append(f"**Error:** {md(wb.public_message(s.error))}")
    return "\n\n".join(lines)


def _empty_detail():
    return ("Choose a run above.", None, None, figures.empty("Training losses per step"),
            figures.empty("Dev metrics per epoch"), None, "")


@dataclass(frozen=True)
class PickedRuns:
    """The Runs tab's picked runs and its button that compares just those (wired to the Compare tab by the app)."""

    picks: gr.Dropdown
    compare: gr.Button
    run: gr.Dropdown | None = None  # the run shown in full (the Train tab's finished run opens there)


def add_pick(picks, run_id) -> list[str]:
    """The picked runs with ``run_id`` added (once, at the end)."""
    picks = list(picks or [])
    if not run_id:
        raise gr.Error("Choose a run first.")
    return picks if run_id in picks else [*picks, run_id]


def on_select(evt: gr.SelectData):
    row = evt.row_value or []
    return row[0] if row else gr.update()


def _need(run_id):
    if not run_id:
        raise gr.Error("Choose a run first.")
    return run_id


def queued(job, what):
    gr.Info(html_text(f"Queued {job.job_id}: {what}"))
    return (f"Queued {code(job.job_id)}: {md(what)} → run {code(job.run_id)} (follow it in the Train tab).")


class RunsHandlers(Handlers):
    """The Runs tab's event handlers."""

    @handler
    def on_refresh(self, st, me, ds, ar, sp, current, tags=(), picks=()):
        wb = self.wb
        stale = wb.refresh_index()  # a full disk: what the index holds is listed, with the reason beside it
        all_runs = wb.runs_frame(split=sp, limit=None, metrics=())
        flt = RunFilter(status=choice_or_none(st), method=choice_or_none(me), dataset=choice_or_none(ds),
                        arch=choice_or_none(ar), tags=tuple(tags or ()))
        df = wb.runs_frame(flt, split=sp, limit=SHOWN)

        def opts(col):
            return ["any", *sorted({str(v) for v in all_runs[col].to_list() if v is not None})]

        n = all_runs.height
        shown = f"{df.height} of {n} runs" + (f" (the newest {SHOWN} shown)" if df.height == SHOWN else "")
        if stale:
            shown = f"{md(stale)}. {shown}"
        ids = df["run_id"].to_list()
        all_tags = wb.tags()
        return (runs_rows(df), f"{shown}; metrics: final evaluation on **{md(sp)}**.",
                gr.update(choices=opts("method")), gr.update(choices=opts("dataset")), gr.update(choices=opts("arch")),
                gr.update(choices=ids), gr.update(choices=all_tags),
                gr.update(choices=list(dict.fromkeys([*(picks or []), *ids]))))

    @handler
    def on_open(self, run_id, sp):
        if not run_id:
            return (*_empty_detail(), resume_button(None))
        d = self.wb.run(run_id, split=sp)
        h1, r1 = metric_table(d.final)
        h2, r2 = epoch_table(d)
        curves = self.wb.curves(d.summary.run_id)
        return (detail_md(d, self.wb), {"headers": h1, "data": r1} if r1 else None,
                {"headers": h2, "data": r2} if r2 else None, figures.losses(curves), figures.dev_metrics(curves),
                d.config, ",".join(d.summary.tags), resume_button(d))

    @handler
    def on_curves(self, run_id, picks, smoothing, x, loss):
        """The open run's losses and one loss component of the picked runs overlaid, smoothed and on the x
        axis the controls say; the component choices are those the picked runs logged."""
        sm = float(smoothing or 0.0)
        one = (figures.losses(self.wb.curves(run_id), smoothing=sm, x=x) if run_id
               else figures.empty("Training losses per step"))
        many = [self.wb.curves(r) for r in dict.fromkeys(picks or [])]
        names = sorted({n for c in many for n in c.loss_names}) or ["loss"]
        loss = loss if loss in names else ("loss" if "loss" in names else names[0])
        return one, figures.overlay(many, loss, sm, x), gr.update(choices=names, value=loss)

    @handler
    def on_tags(self, run_id, text):
        tags = self.wb.set_tags(_need(run_id), text or "")
        return f"Tags of {code(run_id)}: " + (", ".join(code(t) for t in tags) or "none") + "."

    @handler
    def on_eval(self, run_id, splits):
        return queued(self.wb.evaluate(_need(run_id), list(splits or [])), f"evaluate on {', '.join(splits or [])}")

    @handler
    def on_finetune(self, run_id, epochs):
        n = int(epochs or 1)
        if n < 1:
            raise gr.Error("Finetune epochs must be at least 1.")
        return queued(self.wb.finetune(_need(run_id), [f"training.epochs={n}"]), f"finetune for {n} epoch(s)")

    @handler
    def on_attrs(self, run_id):
        return queued(self.wb.save_attributions(_need(run_id)), "save attributions of train, dev and test")

    @handler
    def on_runtime(self, run_id):
        return queued(self.wb.measure_runtime(_need(run_id)), "measure the explainer's runtime")

    @handler
    def on_requeue(self, run_id):
        return queued(self.wb.requeue(_need(run_id)), "the same command again")

    @handler
    def on_resume(self, run_id):
        return queued(self.wb.resume(_need(run_id)), "resume from the last checkpoint")

    @handler
    def on_export(self, run_id, split):
        f = self.wb.export_eraser_file(_need(run_id), split)
        return md(f.description), str(f.path)

    @handler
    def on_push(self, run_id, repo, priv, lic, dry):
        wb = self.wb
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        folder = (wb.exports_dir / f"hub-{_need(run_id)}-{stamp}") if dry else None  # a new folder each time
        res = wb.push(_need(run_id), str(repo or "").strip(), private=bool(priv), license=lic or None,
                      dry_run_dir=folder)
        if res.dry_run:
            return (f"Dry run: the {len(res.files)} files that would be uploaded to {code(res.repo_id)} are in "
                    f"{code(wb.public_message(str(res.folder)))}")
        return f"Pushed {len(res.files)} files to {md(res.url or res.repo_id)}"

    @handler
    def on_delete_ask(self, run_id):
        _need(run_id)
        return gr.update(visible=True), f"Delete run {code(run_id)} and its folder for good? This cannot be undone."

    @handler
    def on_delete(self, run_id):
        self.wb.delete_run(_need(run_id))
        gr.Info(html_text(f"Deleted {run_id}"))
        return gr.update(visible=False), f"Deleted {code(run_id)}.", gr.update(value=None)


def _detail_blocks():
    """The opened run's blocks: ``[detail, final table, epochs table, loss plot, dev plot, config]``."""
    detail = gr.Markdown("Choose a run above.", elem_id="runs-detail")
    with gr.Row():
        compact = list(metric_keys(headline=Headline.COMPACT))
        final_tbl = gr.Dataframe(headers=["split", *compact], label="Final metrics per split", interactive=False)
        epochs_tbl = gr.Dataframe(headers=["epoch", *compact], label="Dev metrics per epoch", interactive=False)
    with gr.Row():
        loss_plot = gr.Plot(label="Losses")
        dev_plot = gr.Plot(label="Dev metrics")
    with gr.Accordion("Config (resolved, UNIREX keys)", open=False):
        config = gr.JSON()
    return [detail, final_tbl, epochs_tbl, loss_plot, dev_plot, config]


def _pick_blocks():
    """``(picks, pick button, compare button)``: runs picked one by one, compared just those."""
    with gr.Row():
        picks = gr.Dropdown([], value=[], multiselect=True, allow_custom_value=True, elem_id="runs-picks",
                            label="Runs picked to compare (add the open run, or choose from the list)", scale=4)
        with gr.Column(scale=1, min_width=160):
            pick = gr.Button("Pick this run", size="sm")
            compare = gr.Button("Compare the picked runs", size="sm", variant="primary")
    return picks, pick, compare


@dataclass(frozen=True)
class CurveControls:
    """The curve charts' controls (smoothing, x axis, the overlaid component) and the overlay of the picked runs."""

    smoothing: gr.Slider
    x: gr.Radio
    loss: gr.Dropdown
    overlay: gr.Plot


def _curve_blocks() -> CurveControls:
    """Smoothing as TensorBoard's slider (0 = raw), step or time on x, and the picked runs' curves on one chart."""
    with gr.Row():
        smoothing = gr.Slider(0.0, 0.99, value=figures.DEFAULT_SMOOTHING, step=0.01, elem_id="runs-smoothing",
                              label="Smoothing (exponential moving average, as TensorBoard; raw line faint behind)")
        x = gr.Radio(list(figures.X_AXES), value="step", label="x axis", elem_id="runs-x-axis")
        loss = gr.Dropdown(["loss"], value="loss", label="Loss component of the picked runs", elem_id="runs-overlay-loss")
    overlay = gr.Plot(label="Picked runs overlaid", elem_id="runs-overlay")
    return CurveControls(smoothing=smoothing, x=x, loss=loss, overlay=overlay)


def build_tab(wb: Workbench):
    """Build the tab; returns ``(timer, refresh event, picked runs)``."""
    h = RunsHandlers(wb)
    with gr.Row():
        status_f = gr.Dropdown(STATUSES, value="any", label="Status")
        method_f = gr.Dropdown(["any"], value="any", label="Method", allow_custom_value=True)
        dataset_f = gr.Dropdown(["any"], value="any", label="Dataset", allow_custom_value=True)
        arch_f = gr.Dropdown(["any"], value="any", label="Arch", allow_custom_value=True)
        split_f = gr.Radio(["test", "dev", "train"], value="test", label="Metrics of split")
        tags_f = gr.Dropdown([], value=[], multiselect=True, label="Tags (runs with all of them)", elem_id="runs-tags")
        refresh = gr.Button("Refresh", size="sm")
    count_md = gr.Markdown()
    table = gr.Dataframe(headers=table_headers(), interactive=False, wrap=False, max_height=420,
                         show_search="filter", label="Runs (click a column to sort; click a row to open it)",
                         pinned_columns=1, elem_id="runs-table")
    picks, pick_btn, compare_btn = _pick_blocks()
    curve_ctl = _curve_blocks()
    run = gr.Dropdown([], label="Run", allow_custom_value=True, elem_id="runs-run")
    detail_outputs = _detail_blocks()
    with gr.Row():
        tags_box = gr.Textbox(label="Tags of this run (comma separated: letters, digits, _ . : + @ / -)", scale=4,
                              elem_id="runs-tags-edit")
        tags_btn = gr.Button("Save tags", size="sm", scale=1)

    gr.Markdown("### Actions on this run")
    action_md = gr.Markdown(elem_id="runs-action")
    with gr.Row():
        with gr.Column():
            eval_splits = gr.CheckboxGroup(["train", "dev", "test"], value=["dev", "test"], label="Evaluate on")
            eval_btn = gr.Button("Evaluate")
        with gr.Column():
            ft_epochs = gr.Number(value=1, precision=0, label="Finetune epochs")
            ft_btn = gr.Button("Finetune from it")
        with gr.Column():
            attrs_btn = gr.Button("Save attributions (FRESH / L2E teacher)")
            runtime_btn = gr.Button("Measure explainer runtime")
        with gr.Column():
            requeue_btn = gr.Button("Requeue (same command)")
            resume_btn = gr.Button("Resume from checkpoint")
    with gr.Row():
        with gr.Column():
            export_split = gr.Dropdown(["test", "dev", "train"], value="test", label="ERASER results of split")
            export_btn = gr.Button("Export ERASER results")
            export_file = gr.File(label="Download", interactive=False)
        with gr.Column():
            repo_id = gr.Textbox(label="Hugging Face repo id (owner/name)")
            with gr.Row():
                private = gr.Checkbox(value=True, label="private")
                license_ = gr.Dropdown(list(HUB_LICENSES), value="apache-2.0", label="License",
                                       allow_custom_value=True)
                dry_run = gr.Checkbox(value=False, label="dry run (write the files into exports/ instead)")
            push_btn = gr.Button("Push to the Hub")
        with gr.Column():
            delete_btn = gr.Button("Delete this run…", variant="stop")
            with gr.Row(visible=False) as confirm_row:
                confirm_btn = gr.Button("Yes, delete it for good", variant="stop")
                keep_btn = gr.Button("Keep it")
    roar_panel(wb, run)
    timer = gr.Timer(POLL_S, active=False)

    filters = [status_f, method_f, dataset_f, arch_f, split_f]
    private_api = {"api_visibility": "private"}
    # after the run: the API's first parameters stay (status, method, dataset, arch, split, run)
    refresh_inputs = filters + [run, tags_f, picks]
    refresh_outputs = [table, count_md, method_f, dataset_f, arch_f, run, tags_f, picks]
    refresh.click(h.on_refresh, refresh_inputs, refresh_outputs, api_name="list_runs")
    for comp in [*filters, tags_f]:
        comp.input(h.on_refresh, refresh_inputs, refresh_outputs, **private_api)
    timer.tick(h.on_refresh, refresh_inputs, refresh_outputs, show_progress="hidden", **private_api)
    table.select(on_select, None, [run], **private_api)
    curve_inputs = [run, picks, curve_ctl.smoothing, curve_ctl.x, curve_ctl.loss]
    curve_outputs = [detail_outputs[3], curve_ctl.overlay, curve_ctl.loss]
    run.change(h.on_open, [run, split_f], detail_outputs + [tags_box, resume_btn], api_name="show_run").then(
        h.on_curves, curve_inputs, curve_outputs, show_progress="hidden", **private_api)
    picks.change(h.on_curves, curve_inputs, curve_outputs, show_progress="hidden", **private_api)
    for comp in (curve_ctl.x, curve_ctl.loss):  # .input: the user's choice (on_curves itself sets the component)
        comp.input(h.on_curves, curve_inputs, curve_outputs, show_progress="hidden", **private_api)
    curve_ctl.smoothing.change(h.on_curves, curve_inputs, curve_outputs, show_progress="hidden",
                               trigger_mode="always_last", **private_api)
    pick_btn.click(add_pick, [picks, run], [picks], **private_api)
    tags_btn.click(h.on_tags, [run, tags_box], [action_md], **private_api).then(
        h.on_refresh, refresh_inputs, refresh_outputs, **private_api)
    eval_btn.click(h.on_eval, [run, eval_splits], [action_md], api_name="evaluate_run")
    ft_btn.click(h.on_finetune, [run, ft_epochs], [action_md], **private_api)
    for btn, fn in ((attrs_btn, h.on_attrs), (runtime_btn, h.on_runtime), (requeue_btn, h.on_requeue),
                    (resume_btn, h.on_resume)):
        btn.click(fn, [run], [action_md], **private_api)
    export_btn.click(h.on_export, [run, export_split], [action_md, export_file], api_name="export_eraser")
    push_btn.click(h.on_push, [run, repo_id, private, license_, dry_run], [action_md], api_name="push_run")
    delete_btn.click(h.on_delete_ask, [run], [confirm_row, action_md], **private_api)
    keep_btn.click(lambda: (gr.update(visible=False), "Kept."), None, [confirm_row, action_md], **private_api)
    confirm_btn.click(h.on_delete, [run], [confirm_row, action_md, run], **private_api).then(
        h.on_refresh, refresh_inputs, refresh_outputs, **private_api)
    return timer, (h.on_refresh, refresh_inputs, refresh_outputs), PickedRuns(picks=picks, compare=compare_btn, run=run)


__all__ = ["CurveControls", "PickedRuns", "add_pick", "build_tab", "runs_rows"]
