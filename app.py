"""UNIREX Workbench app: ``python app.py [--workspace DIR] [--port N]`` (or ``make app``).

Composition root: builds the Gradio Blocks from the ``ui/`` tabs. On first start it writes the
built-in demo dataset and builds it for the default arch (the bundled MiniLM).
"""

from __future__ import annotations

import argparse

import gradio as gr

from ui import datasets as datasets_tab
from unirex.workspace import data_dir as workspace_data_dir


def build_app(workspace: str | None = None) -> gr.Blocks:
    data_dir = workspace_data_dir(workspace)
    data_dir.mkdir(parents=True, exist_ok=True)
    datasets_tab.build_all(data_dir, "demo", "default", None)  # first start: demo dataset ready to use
    with gr.Blocks(title="UNIREX Workbench") as app:
        gr.Markdown("# UNIREX Workbench\nTrain and benchmark language-model rationale extractors (UNIREX, ICML 2022) "
                    "on ERASER metrics.")
        with gr.Tab("Datasets"):
            datasets_tab.build_tab(data_dir)
    return app


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="UNIREX Workbench")
    p.add_argument("--workspace", help="workspace folder (default: $UNIREX_WORKSPACE or ./workspace)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    args = p.parse_args(argv)
    build_app(args.workspace).queue().launch(server_name=args.host, server_port=args.port)


if __name__ == "__main__":
    main()
