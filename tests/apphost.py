"""The app as a real process, for the HTTP and browser tests: one place for its environment (offline, no
login from the caller's shell, downloads pointed at a closed loopback port), its start-up wait and its
shutdown. Its output goes to ``<workspace>/app.log``: a pipe nobody reads would block the app once full.

For the browser tests also one place for the headless Chromium page on the app (:func:`browser_page`) and
the waits every such test uses (:func:`visible`, :func:`text_in`, :func:`toast`, :func:`close_toasts`)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_env(ws: Path) -> dict:
    """The app's environment on workspace ``ws``: the caller's, without ``UNIREX_APP_AUTH``."""
    env = {k: v for k, v in os.environ.items() if k != "UNIREX_APP_AUTH"}
    return {**env, "UNIREX_WORKSPACE": str(ws), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
            "UNIREX_ERASER_BASE_URL": "http://127.0.0.1:9/zipped", "PYTHONPATH": str(ROOT)}


@contextmanager
def running_app(ws: Path, args: list[str], timeout: float = 180) -> Iterator[str]:
    """``python app.py --port P *args`` on ``ws``, yielding its URL once it answers (a 401 of a login page
    counts); stopped on exit. Raises with the app's log when it exits early or does not answer in time."""
    port = free_port()
    log = ws / "app.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port), *args], cwd=ROOT,
                                env=app_env(ws), stdout=out, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"app exited early:\n{log.read_text()}")
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError(f"app did not start within {timeout:.0f} s") from None
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


CHROMIUM = "/usr/bin/chromium"
#: the browser tests' module mark: they need Debian's Chromium
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                    reason="Debian chromium not installed (.ci/run installs it)")
LONG = 180_000  # ms: a wait that covers a training run on a busy machine
WAIT = 120_000  # ms: a page's default wait, and that of the helpers below


@contextmanager
def browser_page(url: str) -> Iterator:
    """A 1280x1000 page of a headless Chromium (Playwright) opened on ``url``; the browser closed on exit."""
    from playwright.sync_api import sync_playwright  # only the browser tests need it

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
        try:
            pg = browser.new_page(viewport={"width": 1280, "height": 1000})
            pg.set_default_timeout(WAIT)
            pg.goto(url, timeout=LONG)
            yield pg
        finally:
            browser.close()


def visible(page, selector: str):
    """The visible elements of ``selector`` (Gradio keeps the other tabs' elements in the page, hidden)."""
    return page.locator(selector).filter(visible=True)


def text_in(page, selector: str, text: str | re.Pattern, timeout: int = WAIT) -> None:
    """Waits until ``text`` shows in a visible element of ``selector``."""
    visible(page, selector).get_by_text(text).filter(visible=True).first.wait_for(timeout=timeout)


def toast(page, text: str, timeout: int = WAIT) -> None:
    """Waits for a gr.Error / gr.Warning / gr.Info message with ``text``."""
    page.locator(".toast-body").filter(has_text=text).first.wait_for(timeout=timeout)


def close_toasts(page) -> None:
    """Closes the messages on screen (one that left by itself meanwhile is no error)."""
    for btn in page.locator(".toast-close").all():
        try:
            btn.click(timeout=1000)
        except Exception:  # noqa: BLE001 - a toast that left by itself
            pass
