"""The app in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed (.ci/run installs it)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    port = _free_port()
    ws = tmp_path_factory.mktemp("ws")
    # downloads go to a closed loopback port: no traffic leaves the machine
    env = {**os.environ, "UNIREX_WORKSPACE": str(ws), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           "UNIREX_ERASER_BASE_URL": "http://127.0.0.1:9/zipped"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app exited early:\n{proc.stdout.read()}")
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError("app did not start within 120 s")
    yield url, ws
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def page(app_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
        pg = browser.new_page(viewport={"width": 1280, "height": 1000})
        pg.goto(app_url[0])
        yield pg
        browser.close()


def test_first_start_builds_demo(app_url):
    _, ws = app_url
    built = ws / "data" / "demo" / "default" / "L512"
    assert {"train.parquet", "dev.parquet", "test.parquet"} <= {p.name for p in built.iterdir()}


def test_datasets_tab_builds_and_highlights(page):
    page.get_by_role("tab", name="Datasets").click()
    page.get_by_role("button", name="Build dataset").click()
    page.get_by_text("Built demo for arch").wait_for(timeout=60_000)
    assert page.get_by_text("cache hit").count() >= 1  # the first start built it already
    page.get_by_role("button", name="Show example").click()
    page.get_by_text("demo_train_00000").wait_for(timeout=30_000)
    body = page.inner_text("body")
    assert "label POS" in body and "forgettable" in body


def test_bad_example_index_shows_error(page):
    page.get_by_label("Example").fill("99999")
    page.get_by_role("button", name="Show example").click()
    page.get_by_text("out of range").wait_for(timeout=30_000)


def test_catalog_download_error_is_shown(page):
    """The archive server is unreachable: the Download button reports it in the page, naming the address."""
    page.get_by_role("button", name="Download").click()
    page.get_by_text("movies.tar.gz").first.wait_for(timeout=60_000)
    assert "Error:" in page.inner_text("body")
