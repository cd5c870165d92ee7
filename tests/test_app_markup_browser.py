"""Markup injection in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright, as
tests/test_app_browser.py): values a user or a run folder controls hold newlines, backticks, HTML, a
Markdown link and image, LaTeX and Unicode line separators, with images and links pointing at a tracker
served on loopback. The app shows them in every tab that has them (a dataset's annotation ids and queries,
a failed run's id, method, dataset, arch, command and error, a completed run in Compare's table and
charts, a typed override in the Train tab, the message refusing to open a run with a hostile id): each is shown literally, no
element of the value's exists in the page, and the tracker is never asked for anything. One app start."""

from __future__ import annotations

import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from apphost import LONG, browser_page, needs_chromium, running_app, text_in, visible

pytestmark = needs_chromium
WORDS = "the plot was wonderful and the acting was great".split()
#: what no hostile value may become in the page (the app has no LaTeX; its own elements, the header's h1,
#: CodeMirror's images, Gradio's links, hold no value's text)
INJECTED = "h1, h2, img, image, script, iframe, .katex, a[*|href^='http'], a[*|href^='javascript']"  # (*|: SVG's too)
METRICS = {"acc": 0.81, "macro_f1": 0.8, "comp_aopc": 0.2, "suff_aopc": 0.1, "plaus_auprc": 0.3,
           "plaus_token_f1": 0.2, "plaus_iou_f1": 0.1, **{f"comp_k{k}": 0.1 for k in (1, 5, 10, 20, 50)},
           **{f"suff_k{k}": 0.1 for k in (1, 5, 10, 20, 50)}}


def evil(tag: str, url: str) -> str:
    """A hostile value, tagged so that a request to the tracker names the value that rendered."""
    return (f"x\n\n<h1>H-{tag}</h1><img src={url}/{tag}.png>`<a href={url}/{tag}-a>A-{tag}</a>`"
            f"![]({url}/{tag}-md.png)$$X-{tag}$$\u2028<h2>L-{tag}</h2>\r\n[l]({url}/{tag}-link) {url}/{tag}-bare"
            f"<a href='{url}/{tag}-q'>Q-{tag}</a><br>$X$")


class Tracker(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        Tracker.hits.append(self.path)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def _write_dataset(folder: Path, url: str) -> None:
    """An ERASER dataset whose first example of each split has a hostile annotation id and query."""
    import json

    (folder / "docs").mkdir(parents=True)
    for split in ("train", "val", "test"):
        lines = []
        for i in range(4):
            docid = f"{split}{i}"
            (folder / "docs" / docid).write_text(" ".join(WORDS) + "\n")
            lines.append(json.dumps({"annotation_id": evil(f"ann-{split}", url) if i == 0 else f"a-{split}-{i}",
                                     "classification": ["POS", "NEG"][i % 2],
                                     "query": evil(f"q-{split}", url) if i == 0 else "",
                                     "evidences": [[{"docid": docid, "start_token": 3, "end_token": 4,
                                                     "text": "wonderful"}]]}))
        (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n")


def _plant_runs(runs: Path, url: str) -> None:
    """A failed run whose method, dataset, arch, command, tag and error are hostile; a completed one with a hostile
    method (Compare's table and charts); one whose id is hostile (the app lists it and refuses to open it, with
    the id in the message). A folder name holds no ``/``, no line break the Run dropdown keeps and at most 255
    bytes: that id's tag closes with ``<_h1>``."""
    from unirex.runs import RunDir

    failed = RunDir.create(runs, {"seed": 1}, {"method": evil("mA", url), "dataset": evil("dA", url),
                                               "arch": evil("aA", url), "seed": 1, "mode": "train",
                                               "command": evil("cA", url), "tags": [evil("tA", url), "plain"]})
    failed.set_status("failed", error=evil("eA", url))
    done = RunDir.create(runs, {"seed": 2}, {"method": evil("mB", url), "dataset": "demo", "arch": "default",
                                             "seed": 2, "mode": "train", "command": "python -m unirex data=demo"})
    done.log_metrics(METRICS, "test")
    done.set_status("completed")
    odd = RunDir.create(runs, {"seed": 3}, {"method": "rid-method", "dataset": "demo", "arch": "default", "seed": 3,
                                            "mode": "train", "command": "python -m unirex data=demo"},
                        run_id="R-20260101-000000-`<h1>H-rid<_h1><img src=x onerror=alert(1)>``<b>B<_b>`$$X$$")
    odd.set_status("failed", error="stopped")


@pytest.fixture(scope="module")
def hostile_app(tmp_path_factory, tiny_arch):
    tracker = ThreadingHTTPServer(("127.0.0.1", 0), Tracker)
    threading.Thread(target=tracker.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{tracker.server_address[1]}"
    ws = tmp_path_factory.mktemp("ws")
    _write_dataset(ws / "data" / "evil", url)
    _plant_runs(ws / "runs", url)
    try:
        with running_app(ws, ["--arch", tiny_arch, "--max-length", "64", "--num-train", "0", "--no-demo"]) as app_url:
            yield app_url, url, ws
    finally:
        tracker.shutdown()


def test_hostile_values_are_shown_as_text_and_fetch_nothing(hostile_app, tmp_path_factory):
    app_url, url, ws = hostile_app
    problems: list[str] = []

    def check(area: str, selector: str, *tags: str) -> None:
        """No element of a value in ``selector``; each tag's value shown literally (its ``<h1>`` as text)."""
        box = page.locator(selector).first
        found = [f"{e.evaluate('n => n.tagName')}: {html[:120]}" for e in box.locator(INJECTED).all()
                 if re.search(rf"H-|L-|katex|{re.escape(url)}", html := e.evaluate("n => n.outerHTML"))]
        if found:
            problems.append(f"{area}: rendered {found}")
        text = box.evaluate("n => n.textContent")
        for tag in tags:
            if f"<h1>H-{tag}</h1>" not in text.replace("<_h1>", "</h1>") or "$$X" not in text:
                problems.append(f"{area}: {tag}'s value not shown literally in {text[:300]!r}")

    with browser_page(app_url) as page:
        try:
            # Datasets: build the hostile dataset, browse its first example
            name = visible(page, "#ds-name input")
            name.fill("evil")
            name.press("Enter")
            page.get_by_role("button", name="Build dataset").click()
            page.get_by_text(re.compile(r"split\(s\) built")).first.wait_for(timeout=LONG)
            page.get_by_role("button", name="Show examples").click()
            text_in(page, "#ds-title", "Example 1 of 4")
            check("Datasets example title", "#ds-title", "ann-train", "q-train")
            # Train: a hostile override typed into the form
            page.get_by_role("tab", name="Train").click()
            extra = visible(page, "#train-extra textarea, #train-extra input")
            # (the message names the key: the text up to the first '=')
            extra.fill(f"'x\u2028<h1>H-extra</h1>$$X-extra$$`[l](javascript:alert(1))`<img src={url}/extra.png>=1'")
            text_in(page, "#train-check", "✗")
            check("Train check", "#train-check", "extra")
            # Runs: the table, a refused run id, the failed run in full, the filter's choices
            page.get_by_role("tab", name="Runs").click()
            text_in(page, "#runs-table", re.compile("H-mA"))
            check("Runs table", "#runs-table", "mA", "dA", "mB", "rid")
            visible(page, "#runs-table").get_by_text("rid-method").first.click()
            toast = page.locator(".toast-body").filter(has_text="is not a valid run id").first
            toast.wait_for()
            check("Runs refused id toast", ".toast-body", "rid")
            toast.locator(".toast-close").click()
            visible(page, "#runs-table").get_by_text(re.compile("H-mA")).first.click()
            text_in(page, "#runs-detail", "Reproduce:")
            check("Runs detail", "#runs-detail", "mA", "dA", "aA", "cA", "eA", "tA")
            page.get_by_label("Method", exact=True).filter(visible=True).first.click()  # the filter's choices: the runs' methods
            time.sleep(1)
            if page.locator("ul[role=listbox]").count():
                check("Runs method choices", "ul[role=listbox]", "mA")
            page.keyboard.press("Escape")
            # Compare: the completed run's method in the table and the charts
            page.get_by_role("tab", name="Compare").click()
            text_in(page, "#compare-table", re.compile("H-mB"))
            visible(page, "#compare-charts .js-plotly-plot").nth(1).wait_for()
            visible(page, "#compare-bins .js-plotly-plot").first.wait_for()
            check("Compare table", "#compare-table", "mB")
            check("Compare scatter and bars", "#compare-charts")  # (one group: no legend)
            check("Compare per-bin curves", "#compare-bins", "mB")
            time.sleep(2)  # an image a value smuggled in would have been asked for by now
            check("whole page", "body")
        except Exception:
            path = tmp_path_factory.getbasetemp() / "markup.png"
            page.screenshot(path=str(path), full_page=True)
            print(f"screenshot: {path}\napp log (tail):\n" + (ws / "app.log").read_text()[-4000:])
            raise
    if Tracker.hits:
        problems.append(f"the tracker was asked for {sorted(set(Tracker.hits))}")
    assert not problems, "\n".join(problems)
