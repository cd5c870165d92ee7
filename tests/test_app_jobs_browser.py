"""Issue 26 in a real headless Chromium, on one app start (tiny random BERT, 64/32/32 demo): a failed build
leaves every field usable with its content (item 2); an uploaded dataset is still listed after a reload
(item 3); each queue row cancels its own job, active jobs list first, and a followed run stays on screen
when it ends, with one bar whose phases are marked and its entry one click away in the Runs tab (items 1,
5, 9)."""

from __future__ import annotations

import shutil
import time
import zipfile

import pytest
from apphost import LONG, browser_page, close_toasts, needs_chromium, running_app, text_in, toast, visible

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, tiny_arch, small_demo_dir):
    ws = tmp_path_factory.mktemp("ws-jobs")
    shutil.copytree(small_demo_dir / "demo", ws / "data" / "demo")
    with running_app(ws, ["--arch", tiny_arch, "--max-length", "64", "--num-train", "0"]) as url:
        yield url, ws


@pytest.fixture(scope="module")
def page(app_url):
    with browser_page(app_url[0]) as pg:
        yield pg


def error_badges(page, selector: str) -> int:
    """Gradio's red "Error" status badges shown over the fields of ``selector``."""
    return visible(page, selector).get_by_text("Error", exact=True).filter(visible=True).count()


def test_a_failed_build_shows_its_message_once_and_leaves_every_field_usable(page):
    page.get_by_role("tab", name="Datasets").click()
    text_in(page, "#ds-summary", "NEG: 27")
    arch = page.get_by_label("Arch (default = bundled MiniLM", exact=False)
    before = arch.input_value()
    arch.fill("/etc")
    page.get_by_role("button", name="Build dataset").click()
    toast(page, "outside the workspace")
    page.wait_for_timeout(1500)
    # no red badge covers the dataset field or the summary table; the table keeps its rows; one message
    assert error_badges(page, "#ds-name, #ds-summary") == 0
    assert "NEG: 27" in visible(page, "#ds-summary").inner_text()
    assert page.locator(".toast-body").filter(has_text="outside the workspace").count() == 1
    arch.fill(before)  # the fields still take input, and the next build works
    page.get_by_role("button", name="Build dataset").click()
    page.get_by_text("split(s) built").first.wait_for()
    close_toasts(page)


def test_an_uploaded_dataset_is_listed_after_a_reload(page, app_url, tmp_path):
    src = app_url[1] / "data" / "demo"
    archive = tmp_path / "mine.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for p in src.rglob("*"):
            if p.is_file() and p.suffix != ".parquet" and "L64" not in str(p) and p.name != "labels.json":
                z.write(p, "mine/" + str(p.relative_to(src)))
    page.get_by_text("Upload an ERASER dataset").click()
    page.locator("#ds-upload input[type=file]").set_input_files(str(archive))
    time.sleep(1)
    page.get_by_role("button", name="Upload and unpack").click()
    page.get_by_text("Unpacked into").first.wait_for()
    page.reload()
    page.get_by_role("tab", name="Datasets").click()
    visible(page, "#ds-name input").click()
    page.get_by_role("option", name="mine", exact=True).wait_for(timeout=30_000)
    page.keyboard.press("Escape")


def _launch(page, wb) -> str:
    before = {j.job_id for j in wb.queue(include_final=True)}
    for _ in range(3):
        page.get_by_role("button", name="Launch (queue the run)").click()
        deadline = time.time() + 20
        while time.time() < deadline:
            new = [j.job_id for j in wb.queue(include_final=True) if j.job_id not in before]
            if new:
                text_in(page, "#train-launched", new[0])
                return new[0]
            time.sleep(0.5)
    raise AssertionError("Launch queued no job")


def _wait_status(wb, job_id, states, timeout=LONG / 1000):
    deadline = time.time() + timeout
    while time.time() < deadline and wb.job(job_id).status not in states:
        time.sleep(0.5)
    assert wb.job(job_id).status in states, (job_id, wb.job(job_id).status)


@pytest.mark.long  # three runs on the app's worker (minutes on a shared machine); tests/test_app_browser.py cancels by row too
def test_each_queue_row_cancels_its_own_job_and_a_followed_run_stays_on_screen(page, app_url):
    from workbench import Workbench

    wb = Workbench(app_url[1])
    close_toasts(page)
    page.get_by_role("tab", name="Train").click()
    extra = visible(page, "#train-extra textarea, #train-extra input")
    extra.fill("training.epochs=100 training.patience=100")
    page.wait_for_timeout(500)
    first = _launch(page, wb)
    extra.fill("")
    page.locator("#train-debug input").check()
    page.wait_for_timeout(500)
    second = _launch(page, wb)
    page.locator(".unirex-progress[data-status='running']").filter(has_text=first).wait_for(timeout=LONG)
    # one bar over the whole run: its phase and where it is among the run's phases
    text_in(page, ".unirex-progress", "phase 1 of")
    # active jobs first: the running one, then the waiting one
    text_in(page, "#train-queue", second)
    queue_text = visible(page, "#train-queue").inner_text()
    assert queue_text.index(first) < queue_text.index(second)
    # the user picks the job just queued, not the running one, and cancels it
    visible(page, "#train-queue").get_by_text(second).filter(visible=True).first.click()
    text_in(page, "#train-selected", second)
    page.get_by_role("button", name="Cancel the selected job").click()
    toast(page, "removed from the queue")
    assert wb.job(second).status == "cancelled" and wb.job(first).status == "running"
    # then the running one, by its own row
    close_toasts(page)
    visible(page, "#train-queue").get_by_text(first).filter(visible=True).first.click()
    text_in(page, "#train-selected", first)
    page.get_by_role("button", name="Cancel the selected job").click()
    toast(page, "asked to stop")
    _wait_status(wb, first, ("cancelled",))
    # a run followed to its end stays on screen: 100%, its phases, its run, not a cancelled job
    follow = page.get_by_label("Follow", exact=True)
    follow.click()
    page.get_by_role("option", name="follow the running job").click()
    third = _launch(page, wb)
    run3 = wb.job(third).run_id
    _wait_status(wb, third, ("completed",))
    done = page.locator(".unirex-progress[data-status='completed']").filter(has_text=run3)
    done.wait_for(timeout=LONG)
    page.wait_for_timeout(4000)  # a few polls later it is still there
    assert done.count() == 1 and "100%" in done.inner_text() and "elapsed" in done.inner_text()
    assert done.locator(".unirex-phase").count() >= 2
    text_in(page, "#train-finished", run3)
    page.get_by_role("button", name="Open its entry in the Runs tab").click()
    text_in(page, "#runs-detail", run3)
