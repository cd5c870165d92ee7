"""Take the README screenshot: start the app on a temporary workspace, open a tab, save a PNG.

Usage: python tools/screenshot.py [--tab Datasets] [--out docs/screenshot.png]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tab", default="Datasets")
    p.add_argument("--out", default=str(ROOT / "docs" / "screenshot.png"))
    args = p.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ws = tempfile.mkdtemp(prefix="unirex-shot-")
    env = {**os.environ, "UNIREX_WORKSPACE": ws, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port)], env=env)
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            b = pw.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
            page = b.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"http://127.0.0.1:{port}")
            page.get_by_role("tab", name=args.tab).click()
            if args.tab == "Datasets":
                page.get_by_role("button", name="Build dataset").click()
                page.get_by_text("Built demo").wait_for(timeout=60_000)
                page.get_by_role("button", name="Show example").click()
                page.get_by_text("demo_train_00000").wait_for(timeout=30_000)
                time.sleep(1)
            page.screenshot(path=args.out, full_page=True)
            b.close()
    finally:
        proc.terminate()
    print(args.out)


if __name__ == "__main__":
    main()
