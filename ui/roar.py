"""The Runs tab's ROAR panel (remove and retrain, :mod:`workbench.roar`): for the open run, the k values and arms,
one button that writes the reduced copies and queues their retraining, and accuracy against k per arm for that run's
ROAR jobs (refreshed on demand; recursive chains advance there too)."""

from __future__ import annotations

import gradio as gr
import plotly.graph_objects as go

from ui.common import Handlers, code, handler, md, plot_text
from ui.figures import _LAYOUT, empty
from unirex.roar import ARMS, DEFAULT_ARMS
from workbench import Workbench

ARM_COLOURS = {"extractor": "#1f77b4", "random": "#7f7f7f", "gold": "#2ca02c"}


def roar_figure(report, title: str = "ROAR: accuracy after removing the top-k% words and retraining") -> go.Figure:
    """Accuracy (the report's split) against k, one line per arm, the run itself at k = 0."""
    series = {arm: [p for p in report.series(arm) if p.accuracy is not None] for arm in report.arms()}
    series = {arm: pts for arm, pts in series.items() if any(p.k > 0 for p in pts)}  # arms with a finished retraining
    if not series:
        return empty(title, "no finished retraining yet")
    fig = go.Figure()
    for arm, pts in series.items():
        fig.add_trace(go.Scatter(x=[p.k for p in pts], y=[p.accuracy for p in pts], mode="lines+markers",
                                 name=plot_text(arm), line=dict(color=ARM_COLOURS.get(arm), dash="dot" if arm == "random" else None),
                                 hovertext=[plot_text(f"{len(p.runs)} run(s), {p.status}") for p in pts]))
    fig.update_layout(title=title, xaxis_title="k: % of each document's words removed",
                      yaxis_title=plot_text(f"{report.split} {report.metric}"), **_LAYOUT)
    return fig


def report_md(report) -> str:
    if not report.points:
        return f"No ROAR copies of {code(report.run_id)} yet."
    rows = ["| arm | k | accuracy | runs | status |", "|---|---|---|---|---|"]
    for p in report.points:
        acc = "" if p.accuracy is None else f"{p.accuracy:.4f}"
        rows.append(f"| {md(p.arm)} | {p.k} | {acc} | {len(p.runs)} | {md(p.status)} |")
    base = "n/a" if report.baseline is None else f"{report.baseline:.4f}"
    return f"{md(report.split)} accuracy; the run itself (k = 0): {base}\n\n" + "\n".join(rows)


class RoarHandlers(Handlers):
    @handler
    def on_queue(self, run_id, ks, arms, recursive, progress=gr.Progress()):
        if not run_id:
            raise gr.Error("Choose a run first.")
        plan = self.wb.roar.submit(run_id, ks or "", list(arms or []), recursive=bool(recursive),
                                   on_progress=lambda f, msg: progress(f, desc=msg))
        lines = [f"Queued {len(plan.items)} retraining job(s) on copies of {code(plan.dataset)}:"]
        lines += [f"- {md(it.arm)}, k = {it.k}: {code(it.dataset)} → run {code(it.run_id or '')}" for it in plan.items]
        if plan.pending:
            lines.append(f"Recursive: k = {', '.join(map(str, plan.pending))} follow once each previous step has "
                         "finished (Refresh advances the chain).")
        rep = self.wb.roar.report(run_id)
        return "\n".join(lines), roar_figure(rep), report_md(rep)

    @handler
    def on_refresh(self, run_id):
        if not run_id:
            return "", empty("ROAR"), ""
        new = self.wb.roar.advance(run_id)
        rep = self.wb.roar.report(run_id)
        note = "".join(f"Queued the next recursive step: {code(it.dataset)} → run {code(it.run_id or '')}. "
                       for it in new)
        return note, roar_figure(rep), report_md(rep)


def build_panel(wb: Workbench, run: gr.Dropdown) -> None:
    """The ROAR accordion for the run chosen in ``run`` (the Runs tab calls it under its actions)."""
    h = RoarHandlers(wb)
    with gr.Accordion("ROAR: remove the top-k% words, retrain, compare with random removal", open=False):
        with gr.Row():
            ks = gr.Textbox(value="10,20,50", label="k values (% of each document's words, 1..99)", scale=2,
                            elem_id="roar-k")
            arms = gr.CheckboxGroup(list(ARMS), value=list(DEFAULT_ARMS), label="Arms", scale=2, elem_id="roar-arms")
            recursive = gr.Checkbox(value=False, label="recursive (each k ranked by the model retrained at the previous k)")
        with gr.Row():
            go_btn = gr.Button("Queue ROAR", variant="primary", elem_id="roar-queue")
            refresh_btn = gr.Button("Refresh ROAR results", size="sm")
        note = gr.Markdown(elem_id="roar-note")
        with gr.Row():
            plot = gr.Plot(label="Accuracy against k")
            table = gr.Markdown()
    private_api = {"api_visibility": "private"}  # the page's buttons, not endpoints of the app's API
    go_btn.click(h.on_queue, [run, ks, arms, recursive], [note, plot, table], **private_api)
    refresh_btn.click(h.on_refresh, [run], [note, plot, table], **private_api)


__all__ = ["RoarHandlers", "build_panel", "report_md", "roar_figure"]
