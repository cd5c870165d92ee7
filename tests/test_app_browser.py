"""The app in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright), used as a person
would: build the dataset and browse it, upload an archive, queue a debug run from the Train tab and watch
it complete, queue two runs and cancel one, see the runs (also one written by another process) in the
Runs tab, explain a typed text, and compare methods. The app runs on a tiny random BERT and a 64/32/32
demo set so the module takes a few minutes."""

from __future__ import annotations

import re
import shutil
import time
import zipfile

import pytest
from apphost import LONG, browser_page, close_toasts, needs_chromium, running_app, text_in, toast, visible

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, tiny_arch, small_demo_dir):
    ws = tmp_path_factory.mktemp("ws")
    shutil.copytree(small_demo_dir / "demo", ws / "data" / "demo")  # a small demo: the app keeps it
    with running_app(ws, ["--arch", tiny_arch, "--max-length", "64", "--num-train", "0"]) as url:
        yield url, ws, tiny_arch


@pytest.fixture(autouse=True)
def _screenshot_on_failure(request, tmp_path_factory):
    """A failing test leaves a screenshot of the page (in the pytest temporary folder) to look at."""
    yield
    rep = getattr(request.node, "rep_call", None)
    pg = request.node.funcargs.get("page")
    if pg is not None and rep is not None and rep.failed:
        path = tmp_path_factory.getbasetemp() / f"{request.node.name}.png"
        pg.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        url = request.node.funcargs.get("app_url")
        if url is not None and (url[1] / "app.log").is_file():  # the server's side of the failure
            print("app log (tail):\n" + (url[1] / "app.log").read_text()[-4000:])


@pytest.fixture(scope="module")
def page(app_url):
    with browser_page(app_url[0]) as pg:
        yield pg


def test_first_start_builds_demo(app_url):
    from unirex.arch import arch_slug

    _, ws, arch = app_url
    built = ws / "data" / "demo" / arch_slug(arch) / "L64"
    assert {"train.parquet", "dev.parquet", "test.parquet"} <= {p.name for p in built.iterdir()}


def test_datasets_tab_summary_browser_and_errors(page, app_url, tmp_path):
    page.get_by_role("tab", name="Datasets").click()
    text_in(page, "#ds-summary", "NEG: 27")  # shown on load: the first start built it
    page.get_by_role("button", name="Show examples").click()
    text_in(page, "#ds-title", "Example 1 of 64")
    page.get_by_role("button", name="Next ▶").click()
    text_in(page, "#ds-title", "Example 2 of 64")
    page.get_by_role("button", name="◀ Previous").click()
    text_in(page, "#ds-title", "Example 1 of 64")
    page.get_by_label("truncated", exact=True).check()
    text_in(page, "#ds-title", "(filtered)")
    text_in(page, "#ds-doc", "model input ends here")
    # an unknown dataset: the whole message, <data_dir> shown as text
    name = visible(page, "#ds-name input")
    name.fill("nosuch")
    name.press("Enter")
    page.get_by_role("button", name="Build dataset").click()
    toast(page, "goes in <data_dir>/nosuch/ with train.jsonl")
    close_toasts(page)
    # upload a zip of an ERASER folder
    src = app_url[1] / "data" / "demo"
    archive = tmp_path / "mine.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for p in src.rglob("*"):
            if p.is_file() and p.suffix != ".parquet" and "L64" not in p.parts and p.name != "labels.json":
                z.write(p, "mine/" + str(p.relative_to(src)))
    page.get_by_text("Upload an ERASER dataset").click()
    page.locator("#ds-upload input[type=file]").set_input_files(str(archive))
    time.sleep(1)
    page.get_by_role("button", name="Upload and unpack").click()
    page.get_by_text("Unpacked into").first.wait_for()
    assert (app_url[1] / "data" / "mine" / "train.jsonl").is_file()


def test_train_tab_checks_settings_inline(page):
    page.get_by_role("tab", name="Train").click()
    text_in(page, "#train-check", "ok: 1 run")
    extra = visible(page, "#train-extra textarea, #train-extra input")
    extra.fill("model.comp_wieght=0.5")
    text_in(page, "#train-check", "did you mean 'model.comp_wt'")
    extra.fill("")
    text_in(page, "#train-check", "ok: 1 run")
    assert "python -m unirex method=slm_plaus_linear data=demo" in page.inner_text("body")


def test_train_debug_run_completes_with_live_curves(page):
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-debug input").check()
    text_in(page, "#train-check", "ok: 1 run")
    page.get_by_role("button", name="Launch (queue the run)").click()
    text_in(page, "#train-launched", "Queued 1 job")
    page.locator(".unirex-progress[data-status='completed']").wait_for(timeout=LONG)
    visible(page, "#train-losses .js-plotly-plot").first.wait_for()
    assert "task_loss" in visible(page, "#train-losses").inner_text()
    text_in(page, "#train-queue", "completed")


def _launch(page, wb) -> str:
    """Click Launch and return the id of the job it queued (read from the workspace's queue)."""
    before = {j.job_id for j in wb.queue(include_final=True)}
    for _ in range(3):  # a click while the previous launch's follow-up still runs is ignored (trigger once)
        page.get_by_role("button", name="Launch (queue the run)").click()
        deadline = time.time() + 20
        while time.time() < deadline:
            new = [j.job_id for j in wb.queue(include_final=True) if j.job_id not in before]
            if new:
                text_in(page, "#train-launched", new[0])
                return new[0]
            time.sleep(0.5)
    raise AssertionError("Launch queued no job")


def test_queue_two_runs_and_cancel_one(page, app_url):
    from workbench import Workbench

    wb = Workbench(app_url[1])
    close_toasts(page)
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-debug input").uncheck()
    extra = visible(page, "#train-extra textarea, #train-extra input")
    extra.fill("training.epochs=500 training.patience=500")
    text_in(page, "#train-check", "ok: 1 run")
    first = _launch(page, wb)
    extra.fill("")
    page.locator("#train-debug input").check()
    text_in(page, "#train-check", "ok: 1 run")
    second = _launch(page, wb)
    assert wb.job(second).status == "waiting"
    # the long run trains: cancel it (its own row of the queue, issue 26)
    page.locator(".unirex-progress[data-status='running']").filter(has_text=first).wait_for(timeout=LONG)
    visible(page, "#train-queue").get_by_text(first).filter(visible=True).first.click()
    text_in(page, "#train-selected", first)
    page.get_by_role("button", name="Cancel the selected job").click()
    toast(page, "asked to stop")
    deadline = time.time() + LONG / 1000
    while time.time() < deadline and wb.job(second).status not in ("completed", "failed"):
        time.sleep(1)
    assert wb.job(first).status == "cancelled"
    assert wb.job(second).status == "completed", wb.job(second).error
    text_in(page, "#train-queue", "cancelled")


def test_runs_tab_lists_runs_of_every_process(page, app_url):
    from unirex.runs import RunDir

    ws = app_url[1]
    other = RunDir.create(ws / "runs", {"seed": 7}, {"method": "task_lm", "dataset": "demo", "arch": "default",
                                                     "seed": 7, "mode": "train", "command": "python -m unirex data=demo"})
    other.log_metrics({"acc": 0.81, "macro_f1": 0.8, "comp_aopc": 0.2, "suff_aopc": 0.1, "plaus_auprc": 0.3,
                       "plaus_token_f1": 0.2, "plaus_iou_f1": 0.1, **{f"comp_k{k}": 0.1 for k in (1, 5, 10, 20, 50)},
                       **{f"suff_k{k}": 0.1 for k in (1, 5, 10, 20, 50)}}, "test")
    other.set_status("completed")
    close_toasts(page)
    page.get_by_role("tab", name="Runs").click()
    text_in(page, "#runs-table", other.run_id)  # a run this app did not launch (another process wrote it)
    text_in(page, "#runs-table", "cancelled")
    visible(page, "#runs-table").get_by_text("slm_plaus_linear").filter(visible=True).first.click()
    text_in(page, "#runs-detail", "completed")
    text_in(page, "#runs-detail", "Reproduce:")
    page.get_by_role("button", name="Export ERASER results").click()
    text_in(page, "#runs-action", "ERASER results of")
    page.get_by_label("Hugging Face repo id (owner/name)").fill("me/rationales")
    page.get_by_label("dry run (write the files into exports/ instead)").check()
    page.get_by_role("button", name="Push to the Hub").click()
    text_in(page, "#runs-action", "Dry run: the")  # the model repo's files, written into exports/
    assert any((ws / "exports").glob("hub-*/README.md"))
    close_toasts(page)
    # delete the cancelled run, with confirmation
    visible(page, "#runs-table").get_by_text("cancelled").filter(visible=True).first.click()
    text_in(page, "#runs-detail", "cancelled")
    run_id = re.search(r"R-\d{8}-\d{6}-[0-9a-f]{6}", visible(page, "#runs-detail").inner_text()).group(0)
    page.get_by_role("button", name="Delete this run…").click()
    page.get_by_role("button", name="Yes, delete it for good").click()
    text_in(page, "#runs-action", "Deleted")
    assert not (ws / "runs" / run_id).exists()


def test_explain_tab_highlights_typed_text(page):
    close_toasts(page)
    page.get_by_role("tab", name="Explain").click()
    # showing the tab refreshes its checkpoint list; a click before that lands has no checkpoint to use
    from playwright.sync_api import expect

    expect(page.get_by_label("Checkpoint (a run with a checkpoint")).to_have_value(re.compile("slm_plaus_linear"),
                                                                                   timeout=LONG)
    text = visible(page, "#explain-text textarea")
    text.fill("the plot was <b>bold</b> and i found it wonderful .")
    page.get_by_role("button", name="Explain", exact=True).click()
    text_in(page, "#explain-A", "Prediction:", LONG)
    panel = visible(page, "#explain-A")
    assert "<b>bold</b>" in panel.inner_text()  # the word is text, not markup
    assert panel.locator("b").filter(has_text="bold").count() == 0
    assert "Comprehensiveness" in panel.inner_text() and "sufficiency" in panel.inner_text()
    # side by side with input-x-gradient
    page.get_by_label("Side by side with a second checkpoint or extractor").check()
    page.get_by_role("button", name="Explain", exact=True).click()
    text_in(page, "#explain-B", "input-x-gradient", LONG)
    # a dataset example with its gold rationale
    page.get_by_text("Dataset examples of this checkpoint").click()
    page.get_by_role("button", name="Load examples").click()
    page.get_by_text("examples of the test split").first.wait_for()
    pick = page.get_by_label("Example (test split)")
    pick.click()
    page.get_by_role("option").first.click()
    page.get_by_text("gold rationale:").first.wait_for()
    page.get_by_role("button", name="Explain", exact=True).click()
    text_in(page, "#explain-A", "Against the gold rationale", LONG)
    # too long a text is refused with a message
    text.fill("word " * 4001)
    page.get_by_role("button", name="Explain", exact=True).click()
    toast(page, "at most 20,000 can be explained")


def test_compare_tab_shows_the_runs_and_charts(page, tmp_path):
    close_toasts(page)
    page.get_by_role("tab", name="Compare").click()
    text_in(page, "#compare-table", "task_lm")
    # this session's slm_plaus_linear runs are debug runs: left out until asked for (issue 23)
    page.locator("#compare-debug input").check()
    text_in(page, "#compare-table", "slm_plaus_linear")
    visible(page, "#compare-charts .js-plotly-plot").nth(1).wait_for()
    visible(page, "#compare-bins .js-plotly-plot").first.wait_for()
    assert "Pareto front" in visible(page, "#compare-charts").inner_text()
    page.get_by_role("button", name="Export CSV").click()
    page.get_by_text(re.compile(r"Wrote compare-test-.*\.csv")).first.wait_for()
    # at a 1024 px window the charts' legends stay clear of their titles (the bar legend covered its title)
    page.set_viewport_size({"width": 1024, "height": 1000})
    try:
        page.wait_for_timeout(1500)  # Plotly's responsive relayout
        visible(page, "#compare-charts").screenshot(path=str(tmp_path / "compare-charts-1024.png"))
        plots = visible(page, "#compare-charts .js-plotly-plot, #compare-bins .js-plotly-plot")
        assert plots.count() == 3
        for i in range(plots.count()):
            plot = plots.nth(i)
            plot.scroll_into_view_if_needed()
            if not plot.locator(".legend").count():  # one group: no legend to cover anything
                continue
            title, legend = plot.locator(".gtitle").first.bounding_box(), plot.locator(".legend").first.bounding_box()
            assert (title["y"] + title["height"] <= legend["y"] or legend["y"] + legend["height"] <= title["y"]
                    or title["x"] + title["width"] <= legend["x"] or legend["x"] + legend["width"] <= title["x"]), (
                f"chart {i}: legend {legend} overlaps title {title}")
    finally:
        page.set_viewport_size({"width": 1280, "height": 1000})


def test_runs_picked_one_by_one_are_compared_alone(page):
    """Pick a run in the Runs table, compare just it: the Compare tab opens on that run only (issue 23)."""
    close_toasts(page)
    page.get_by_role("tab", name="Runs").click()
    visible(page, "#runs-table").get_by_text("task_lm").filter(visible=True).first.click()
    text_in(page, "#runs-detail", "task_lm")
    page.get_by_role("button", name="Pick this run").click()
    text_in(page, "#runs-picks", "R-")
    page.get_by_role("button", name="Compare the picked runs").click()
    page.get_by_text("only the 1 picked run(s)").first.wait_for(timeout=LONG)
    table = visible(page, "#compare-table").inner_text()
    assert "task_lm" in table and "slm_plaus_linear" not in table


def _annotate_shown_example(page, label, annotator=None):
    """In the Datasets browser's Annotate panel: load the example shown, mark words 2, 4 and 5 (two clicks, a
    third click unmarking word 3, and a span), set the label, the set and maybe the name, and save."""
    panel = visible(page, "#ds-annotate")
    if not visible(page, "#ds-ann-words").count():
        page.get_by_text("Annotate: mark the rationale").filter(visible=True).first.click()
    panel.get_by_role("button", name="Annotate this example").click()
    text_in(page, "#ds-ann-info", "words loaded")
    panel.get_by_role("button", name="Clear the marks").click()
    page.wait_for_function("document.querySelectorAll('#ds-ann-words input:checked').length === 0")
    boxes = visible(page, "#ds-ann-words").locator("input[type=checkbox]")
    boxes.nth(1).check()  # a click marks a word
    boxes.nth(2).check()
    boxes.nth(2).uncheck()  # and unmarks it
    panel.get_by_label("Span: first word (1 = the first)").fill("4")
    panel.get_by_label("last word").fill("5")
    panel.get_by_role("button", name="Mark the span", exact=True).click()
    page.wait_for_function("document.querySelectorAll('#ds-ann-words input:checked').length === 3")
    for elem, value in (("#ds-ann-label", label), ("#ds-ann-set", "human")):
        box = visible(page, f"{elem} input")
        box.fill(value)
        box.press("Enter")
    if annotator is not None:
        visible(page, "#ds-ann-name textarea, #ds-ann-name input").fill(annotator)
    panel.get_by_role("button", name="Save the annotation").click()


def test_annotate_mark_save_reload_agree_and_train(page, app_url):
    """Issue 25: mark words of a dataset example as its rationale, save two examples into a new annotation
    set, reload, browse the set as a dataset (the marks are its gold rationale), annotate one again as a
    second annotator and see the agreement, train a debug run on the set from the Train tab, and start the
    Explain tab's panel from that model's rationale with the name typed once in this visit."""
    import json

    from workbench import Workbench

    ws = app_url[1]
    page.reload()  # a fresh visit: the earlier tests' filters and fields are gone
    page.get_by_role("tab", name="Datasets").click()
    page.get_by_role("button", name="Show examples").click()
    text_in(page, "#ds-title", "Example 1 of 64")
    _annotate_shown_example(page, "NEG", annotator="ana")
    text_in(page, "#ds-ann-status", "as version 1 by")
    page.get_by_role("button", name="Next ▶").click()
    text_in(page, "#ds-title", "Example 2 of 64")
    _annotate_shown_example(page, "POS")  # the name is kept for the visit
    text_in(page, "#ds-ann-status", "as version 2 by")
    folder = ws / "data" / "human"
    v1 = {p: p.read_bytes() for p in (folder / "versions" / "v0001").rglob("*") if p.is_file()}
    recs = [json.loads(x) for x in (folder / "annotations.jsonl").read_text().splitlines()]
    assert [(r["annotator"], r["label"], r["evidences"]) for r in recs] == [
        ("ana", "NEG", [[0, 1, 2], [0, 3, 5]]), ("ana", "POS", [[0, 1, 2], [0, 3, 5]])]
    # reload: the set is a dataset, its gold rationale what was marked
    page.reload()
    page.get_by_role("tab", name="Datasets").click()
    name = visible(page, "#ds-name input")
    name.fill("human")
    name.press("Enter")
    page.get_by_role("button", name="Show examples").click()
    text_in(page, "#ds-title", "Example 1 of 2")
    words = (folder / "docs" / recs[0]["docids"][0]).read_text().split()
    text_in(page, "#ds-doc", " ".join(words[3:5]))
    # a second annotator on the same example: the agreement
    _annotate_shown_example(page, "NEG", annotator="bob")
    text_in(page, "#ds-ann-status", "as version 3 by")
    visible(page, "#ds-annotate").get_by_role("button", name="Agreement between the set's annotators").click()
    text_in(page, "#ds-ann-agreement", "over 1 examples with two or more annotators")
    assert {p: p.read_bytes() for p in v1} == v1  # version 1 never rewritten
    # a debug run on the set, from the Train tab
    page.get_by_role("tab", name="Train").click()
    box = page.get_by_label("Dataset (data=)")
    box.fill("human")
    box.press("Enter")
    page.locator("#train-debug input").check()
    text_in(page, "#train-check", "ok: 1 run")
    page.get_by_role("button", name="Launch (queue the run)").click()
    page.locator(".unirex-progress[data-status='completed']").filter(has_text="human").wait_for(timeout=LONG)
    runs = [(r.dataset, r.status, r.debug) for r in Workbench(ws).runs(limit=None) if r.dataset == "human"]
    assert runs == [("human", "completed", True)], runs
    # the Explain tab's panel starts from the model's rationale (of the run just trained), the name still known
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Explain").click()
    expect(page.get_by_label("Checkpoint (a run with a checkpoint")).to_have_value(re.compile("human"), timeout=LONG)
    visible(page, "#explain-text textarea").fill("the plot was dull but the acting was wonderful .")
    page.get_by_text("Annotate: mark the rationale").filter(visible=True).first.click()
    visible(page, "#explain-annotate").get_by_role("button", name="Annotate this text").click()
    text_in(page, "#explain-ann-info", "Starting from the model's rationale", LONG)
    assert visible(page, "#explain-ann-name textarea, #explain-ann-name input").input_value() == "bob"
