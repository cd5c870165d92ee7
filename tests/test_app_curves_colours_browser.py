"""Issue 26, items 6 and 7 in a real headless Chromium (one app start): the Runs tab draws the picked runs'
curves on one chart with a smoothing slider and a choice of x axis, and the Explain tab colours word scores
with a legend (range, meaning) under a chosen normalisation. The workspace holds two tiny debug runs trained
before the app starts (tiny random BERT, 64/32/32 demo)."""

from __future__ import annotations

import shutil

import pytest
from apphost import LONG, browser_page, needs_chromium, running_app, visible

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, tiny_arch, small_demo_dir):
    from unirex.engine import resolve_run_config, run

    ws = tmp_path_factory.mktemp("ws")
    shutil.copytree(small_demo_dir / "demo", ws / "data" / "demo")
    ids = []
    for seed in (0, 1):
        res = run(resolve_run_config([f"arch={tiny_arch}", f"workspace={ws}", "data=demo", "data.max_length=64",
                                      "method=slm_plaus_linear", "debug=True", "save_checkpoint=True", f"seed={seed}",
                                      "training.eval_splits=test"]))
        assert res.status == "completed"
        ids.append(res.run_id)
    with running_app(ws, ["--arch", tiny_arch, "--max-length", "64", "--num-train", "0", "--no-demo"]) as url:
        yield url, ids


@pytest.fixture(scope="module")
def page(app_url):
    with browser_page(app_url[0]) as pg:
        yield pg


def test_picked_runs_overlaid_smoothed_and_on_time(page, app_url):
    from playwright.sync_api import expect

    ids = app_url[1]
    page.get_by_role("tab", name="Runs").click()
    table = visible(page, "#runs-table")
    for run_id in ids:
        table.get_by_text(run_id).filter(visible=True).first.click()
        visible(page, "#runs-detail").get_by_text(run_id).first.wait_for(timeout=LONG)
        page.get_by_role("button", name="Pick this run").click()
    overlay = visible(page, "#runs-overlay")
    for run_id in ids:  # one legend entry per picked run
        overlay.locator(".legendtext").filter(has_text=run_id).first.wait_for(timeout=LONG)
    traces = overlay.locator(".scatterlayer .trace")
    expect(traces).to_have_count(4, timeout=LONG)  # smoothed (the default 0.6): a faint raw line behind each
    slider = visible(page, "#runs-smoothing input[type=number]")
    slider.fill("0")
    slider.press("Enter")
    expect(traces).to_have_count(2, timeout=LONG)  # raw only
    visible(page, "#runs-x-axis").get_by_text("time since start").click()
    overlay.locator(".xtitle").filter(has_text="seconds since the run started").first.wait_for(timeout=LONG)


def test_explain_colours_have_a_legend_and_a_normalisation(page):
    page.get_by_role("tab", name="Explain").click()
    from playwright.sync_api import expect

    expect(page.get_by_label("Checkpoint (a run with a checkpoint")).to_have_value(
        __import__("re").compile("R-"), timeout=LONG)
    visible(page, "#explain-text textarea").fill("not <i>bad</i> at all, great film!")
    page.get_by_role("button", name="Explain", exact=True).click()
    panel = visible(page, "#explain-A")
    panel.get_by_text("scores shown: min").first.wait_for(timeout=LONG)
    text = panel.inner_text()
    assert "per text" in text and ("red = the extractor scores the word above 0" in text
                                   or "darker = a higher rationale score" in text)
    assert "<i>bad</i>" in text and panel.locator("i").filter(has_text="bad").count() == 0  # text, not markup
    assert panel.locator(".score-word").count() == 6 and panel.locator(".score-bar").count() == 1
    visible(page, "#explain-norm").get_by_text("per dataset", exact=True).click()
    panel.get_by_text("99th percentile of |score|").first.wait_for(timeout=LONG)
    visible(page, "#explain-norm").get_by_text("none", exact=True).click()
    panel.get_by_text("the raw score is the colour").first.wait_for(timeout=LONG)
