"""The app as a server, tried with HTTP clients: the login keeps everything from visitors, only the
intended endpoints are callable, paths outside the workspace are refused, error messages show no server
paths, and a restart restores the queue and marks an interrupted run. Also the start-up refusals
(another address or --share without a login, a busy port)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import pytest
from apphost import app_env, free_port, running_app

ROOT = Path(__file__).resolve().parents[1]
USER, PASSWORD = "alice", "s3cret-pw"
SETTINGS = {"headers": ["key", "value"], "data": [["training.epochs", "1"]]}
PUBLIC = {"/build_dataset", "/find_examples", "/upload_dataset", "/download_dataset", "/launch", "/cancel_job",
          "/list_runs", "/show_run", "/evaluate_run", "/export_eraser", "/push_run", "/explain", "/compare"}


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_arch, small_demo_dir):
    """An app with a login, started on a workspace that a previous app left with a waiting job, a job that
    was running when it died, and that job's run folder."""
    import dataclasses
    import socket as _socket

    from unirex.runs import RunDir
    from workbench import Workbench

    ws = tmp_path_factory.mktemp("ws-http")
    shutil.copytree(small_demo_dir / "demo", ws / "data" / "demo")
    before = Workbench(ws)
    waiting = before.submit([f"arch={tiny_arch}", "data.max_length=64", "debug=True", "setup.eval_batch_size=16",
                             "setup.train_batch_size=8"])[0]
    ghost = before.jobs.add([dataclasses.replace(waiting, job_id="J-ghost", run_id="R-ghost", title="ghost")])[0]
    before.jobs.update(ghost.job_id, status="running", owner=f"{_socket.gethostname()}:999999")
    rd = RunDir.create(ws / "runs", {"seed": 0}, {"method": "task_lm", "dataset": "demo", "arch": "x", "seed": 0,
                                                  "mode": "train"}, run_id="R-ghost")
    status = {**rd.status(), "pid": 999999}  # the dead process of the previous app
    (rd.path / "status.json").write_text(json.dumps(status))
    with running_app(ws, ["--auth", f"{USER}:{PASSWORD}", "--arch", tiny_arch, "--max-length", "64",
                          "--no-demo"]) as url:
        yield url, ws, waiting


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server[0], auth=(USER, PASSWORD), verbose=False)


def _get(url: str, method: str = "GET", data: bytes | None = None, headers: dict | None = None):
    req = urllib.request.Request(url, method=method, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def test_visitors_without_the_login_get_nothing(server, tiny_arch):
    url, ws, _ = server
    status, page = _get(url + "/")
    assert status == 200 and "auth_required" in page
    for leak in ("/build_dataset", "/explain", tiny_arch, str(ws), "slm_plaus_linear", "Build dataset"):
        assert leak not in page, leak
    for path in ("/config", "/gradio_api/info", "/gradio_api/info?all_endpoints=true", "/gradio_api/upload_progress"):
        code, body = _get(url + path)
        assert code in (401, 403, 404, 405), (path, code)
        assert "build_dataset" not in body
    code, body = _get(url + "/gradio_api/queue/join", "POST",
                      b'{"data": ["../x", "default", 64], "fn_index": 0, "session_hash": "x"}',
                      {"Content-Type": "application/json"})
    assert code == 401 and "Not authenticated" in body
    code, _ = _get(url + "/gradio_api/upload", "POST", b"--x--", {"Content-Type": "multipart/form-data; boundary=x"})
    assert code == 401
    cancel = json.dumps({"session_hash": "x", "fn_index": 0, "event_id": "x"}).encode()
    for path in ("/gradio_api/cancel", "/gradio_api/reset"):  # acting on another visitor's events
        code, body = _get(url + path, "POST", cancel, {"Content-Type": "application/json"})
        assert code == 401 and "Not authenticated" in body, (path, code)
    secret = ws / "exports" / "results.jsonl"  # a file the app may serve to a logged-in user
    secret.write_text("private results")
    code, body = _get(url + f"/gradio_api/file={secret}")
    assert code in (401, 403) and "private results" not in body


def test_a_logged_in_visitor_can_still_cancel(server):
    import http.cookiejar

    url = server[0]
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    login = urllib.parse.urlencode({"username": USER, "password": PASSWORD}).encode()
    assert opener.open(urllib.request.Request(url + "/login", data=login), timeout=10).status == 200
    cancel = json.dumps({"session_hash": "x", "fn_index": 0, "event_id": "x"}).encode()
    req = urllib.request.Request(url + "/gradio_api/cancel", data=cancel, headers={"Content-Type": "application/json"})
    with opener.open(req, timeout=10) as r:
        assert r.status == 200


def test_only_the_intended_endpoints_are_callable(client):
    info = client.view_api(return_format="dict", print_info=False)
    assert set(info["named_endpoints"]) == PUBLIC
    assert info["unnamed_endpoints"] == {}
    with pytest.raises(Exception):  # noqa: B017 - a private callback (the timer's) is not reachable by name
        client.predict(None, None, api_name="/on_tick")


@pytest.mark.parametrize("dataset,arch,message", [
    ("../x", None, "not a valid dataset name"),
    ("/etc", None, "not a valid dataset name"),
    ("demo", "/etc", "outside the workspace"),
    ("demo", "../../..", "outside the workspace"),
])
def test_outside_paths_are_refused(client, tiny_arch, dataset, arch, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message):
        client.predict(dataset, arch or tiny_arch, 64, api_name="/build_dataset")


def test_explain_and_launch_refuse_outside_paths(client, tmp_path):
    from gradio_client.exceptions import AppError

    args = dict(exa="own", both=False, ckb=None, exb="input-x-gradient", t="a good film", q="", s="", k=10)
    with pytest.raises(AppError, match="outside the workspace"):
        client.predict(cka=str(tmp_path), **args, api_name="/explain")
    with pytest.raises(AppError, match="outside the workspace"):
        client.predict(cka="/etc", **args, api_name="/explain")
    with pytest.raises(AppError, match="outside the workspace"):
        client.predict("task_lm", SETTINGS, "demo", "default", "0", True, True, "data_dir=/etc", "local",
                       api_name="/launch")
    with pytest.raises(AppError, match="not a valid dataset name"):
        client.predict("task_lm", SETTINGS, "../../etc", "default", "0", True, True, "", "local", api_name="/launch")


def test_upload_errors_name_the_archive_not_the_server_path(client, server, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    bad = tmp_path / "notes.zip"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(AppError) as e:
        client.predict(handle_file(str(bad)), "", api_name="/upload_dataset")
    msg = str(e.value)
    assert "notes.zip" in msg and "not an ERASER dataset" in msg
    assert "/tmp" not in msg and "gradio" not in msg.lower()
    with pytest.raises(AppError, match="not a valid dataset name"):
        client.predict(handle_file(str(bad)), "../../x", api_name="/upload_dataset")


def test_restart_restores_the_queue_and_marks_the_interrupted_run(client, server):
    _, ws, waiting = server
    deadline = time.time() + 240
    rows = []
    while time.time() < deadline:
        table = client.predict("any", "any", "any", "any", "test", None, api_name="/list_runs")[0]
        rows = {r[0]: r[1] for r in table["data"]}
        if rows.get(waiting.run_id) in ("completed", "failed"):
            break
        time.sleep(2)
    assert rows.get("R-ghost") == "interrupted"
    assert rows.get(waiting.run_id) == "completed", rows
    detail = client.predict("R-ghost", "test", api_name="/show_run")[0]
    assert "Interrupted" in detail and "Resume it" in detail


def _run_app(args: list[str], env_extra: dict | None = None, ws: Path | None = None) -> subprocess.CompletedProcess:
    env = {**app_env(ws or Path("/nonexistent-ws")), **(env_extra or {})}
    return subprocess.run([sys.executable, str(ROOT / "app.py"), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("args", [["--host", "0.0.0.0"], ["--share"], ["--host", "192.168.1.5"]])
def test_refuses_to_start_exposed_without_a_login(args):
    r = _run_app(args + ["--port", str(free_port())])
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--auth user:password" in r.stderr and "UNIREX_APP_AUTH" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_bad_login_format_and_busy_port(tmp_path):
    r = _run_app(["--host", "0.0.0.0", "--port", str(free_port())], {"UNIREX_APP_AUTH": "nopassword"})
    assert r.returncode == 2 and "user:password" in r.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = _run_app(["--port", str(port)], ws=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in r.stderr and "make app PORT=N" in r.stderr


def test_upload_validates_every_record_with_the_readers_schema(client, server, small_demo_dir, tmp_path):
    """Issue 26 item 4: a record the build would refuse (a word offset written as text) is refused at upload,
    named by file, line and field, and nothing is unpacked."""
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    src = small_demo_dir / "demo"
    lines = (src / "val.jsonl").read_text().splitlines()
    rec = json.loads(lines[2])
    rec["evidences"][0][0]["start_token"] = "three"
    lines[2] = json.dumps(rec)
    bad = tmp_path / "typo.zip"
    with zipfile.ZipFile(bad, "w") as z:
        for p in src.rglob("*"):
            if p.is_file() and p.suffix != ".parquet" and "L64" not in str(p) and p.name != "labels.json":
                rel = "typo/" + str(p.relative_to(src))
                z.writestr(rel, "\n".join(lines) + "\n" if p.name == "val.jsonl" else p.read_bytes())
    with pytest.raises(AppError) as e:
        client.predict(handle_file(str(bad)), "", api_name="/upload_dataset")
    msg = str(e.value)
    assert "val.jsonl:3" in msg and "evidences[0][0].start_token" in msg and "string &#x27;three" in msg, msg
    assert "/tmp" not in msg
    assert not (server[1] / "data" / "typo").exists()
