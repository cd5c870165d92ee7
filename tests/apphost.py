"""The app as a real process, for the HTTP and browser tests: one place for its environment (offline, no
login from the caller's shell, downloads pointed at a closed loopback port), its start-up wait and its
shutdown. Its output goes to ``<workspace>/app.log``: a pipe nobody reads would block the app once full."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
