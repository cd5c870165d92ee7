"""Take the README screenshots: start the app on a workspace, use every tab as a person would, save a PNG per
tab into docs/ (``app-datasets.png``, ``app-train.png``, ``app-runs.png``, ``app-explain.png``,
``app-compare.png``; ``screenshot.png`` is the Datasets one).

With the defaults it trains two runs of the app's default settings (the bundled MiniLM: ``slm_plaus_linear``
and ``task_lm``, one epoch on 1,000 demo examples; a few minutes each on a CPU) so the Runs, Explain and Compare
tabs have something to show. A workspace that already has runs (``--workspace``) is used as it is.

Usage: python tools/screenshot.py [--workspace DIR] [--out-dir docs] [--tabs Datasets,Train,...] [--width PX] [-- app args]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABS = ("Datasets", "Train", "Runs", "Explain", "Compare")
WAIT = 30 * 60 * 1000  # ms: a training run on a busy CPU


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _visible(page, selector: str):
    return page.locator(selector).filter(visible=True)


def _shot(page, out: Path, name: str) -> None:
    time.sleep(1.5)
    path = out / f"app-{name.lower()}.png"
    page.screenshot(path=str(path), full_page=True)
    print(path)


def _launch(page, wb, method_title: str | None = None) -> str:
    before = {j.job_id for j in wb.queue(include_final=True)}
    if method_title:
        page.get_by_label("Method (the paper's)").click()
        page.get_by_role("option", name=method_title, exact=True).click()
        time.sleep(2)
    page.get_by_role("button", name="Launch (queue the run)").click()
    for _ in range(120):
        new = [j for j in wb.queue(include_final=True) if j.job_id not in before]
        if new:
            return new[0].job_id
        time.sleep(0.5)
    raise RuntimeError("the Launch button queued nothing")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workspace", help="workspace to use (default: a new temporary one)")
    p.add_argument("--out-dir", default=str(ROOT / "docs"))
    p.add_argument("--tabs", default=",".join(TABS))
    p.add_argument("--width", type=int, default=1280,
                   help="browser window width in px (check a layout at 1024 and 1440 with a workspace that has runs)")
    p.add_argument("app_args", nargs="*", help="after --: extra arguments of app.py (e.g. --arch DIR)")
    args = p.parse_args()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tabs = [t.strip() for t in args.tabs.split(",") if t.strip()]
    ws = Path(args.workspace or tempfile.mkdtemp(prefix="unirex-shot-"))
    port = _free_port()
    env = {**os.environ, "UNIREX_WORKSPACE": str(ws), "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": str(ROOT)}
    env.pop("UNIREX_APP_AUTH", None)
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port), *args.app_args], env=env)
    sys.path.insert(0, str(ROOT))
    from workbench import Workbench

    wb = Workbench(ws)
    try:
        for _ in range(1200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            b = pw.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
            page = b.new_page(viewport={"width": args.width, "height": 900})
            page.set_default_timeout(120_000)
            page.goto(f"http://127.0.0.1:{port}", timeout=WAIT)
            if "Datasets" in tabs:
                page.get_by_role("tab", name="Datasets").click()
                page.get_by_role("button", name="Show examples").click()
                _visible(page, "#ds-title").get_by_text("Example 1 of").first.wait_for()
                _shot(page, out, "Datasets")
                shutil.copyfile(out / "app-datasets.png", out / "screenshot.png")
            have_runs = bool(wb.checkpoint_runs())
            if "Train" in tabs or not have_runs:
                page.get_by_role("tab", name="Train").click()
                _visible(page, "#train-check").get_by_text("ok: 1 run").first.wait_for()
                jobs = [] if have_runs else [_launch(page, wb), _launch(page, wb, "Task LM")]
                if jobs:  # a workspace with runs launches nothing: the tab is shown as it is
                    page.locator(".unirex-progress[data-status='running']").first.wait_for(timeout=WAIT)
                    time.sleep(20)  # some steps on the loss curves
                if "Train" in tabs:
                    _shot(page, out, "Train")
                for job in jobs:
                    deadline = time.time() + WAIT / 1000
                    while wb.job(job).status in ("waiting", "running") and time.time() < deadline:
                        time.sleep(2)
            if "Runs" in tabs:
                page.get_by_role("tab", name="Runs").click()
                _visible(page, "#runs-table").get_by_text("slm_plaus_linear").filter(visible=True).first.click()
                _visible(page, "#runs-detail").get_by_text("Reproduce:").first.wait_for()
                _shot(page, out, "Runs")
            if "Explain" in tabs:
                page.get_by_role("tab", name="Explain").click()
                time.sleep(3)
                slm = next((r.run_id for r in wb.checkpoint_runs() if r.method == "slm_plaus_linear"), None)
                if slm:  # the learned extractor on the left, input-x-gradient on its task LM on the right
                    box = page.get_by_label("Checkpoint (a run with a checkpoint", exact=False)
                    box.click()
                    page.get_by_role("option").filter(has_text=slm).first.click()
                    time.sleep(1)
                    page.get_by_role("combobox", name="Second checkpoint").click()
                    page.get_by_role("option").filter(has_text=slm).first.click()
                    time.sleep(1)
                page.get_by_label("Side by side with a second checkpoint or extractor").check()
                _visible(page, "#explain-text textarea").fill(
                    "the plot was thin and the ending was predictable , but the acting was wonderful and i found "
                    "it deeply moving . a truly memorable film overall .")
                page.get_by_role("button", name="Explain", exact=True).click()
                _visible(page, "#explain-B").get_by_text("Prediction:").first.wait_for(timeout=WAIT)
                _shot(page, out, "Explain")
            if "Compare" in tabs:
                page.get_by_role("tab", name="Compare").click()
                _visible(page, "#compare-bins .js-plotly-plot").first.wait_for(timeout=WAIT)
                _shot(page, out, "Compare")
            b.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
