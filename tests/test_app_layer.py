"""The workbench layer under the app's tabs: paths confined to the workspace, datasets (build, browse,
upload, catalog sizes), presets and inline checks, curves, exports, the Hub push placeholder."""

from __future__ import annotations

import http.server
import io
import json
import shutil
import tarfile
import threading
import zipfile
from pathlib import Path

import polars as pl
import pytest

from unirex.errors import UnirexError
from unirex.runs import RunDir
from workbench import Workbench
from workbench.safety import PathPolicy, check_name, redact


@pytest.fixture(scope="module")
def ws(tmp_path_factory, small_demo_dir):
    """A workspace whose data folder holds the small demo (64 / 32 / 32)."""
    ws = tmp_path_factory.mktemp("ws-app")
    shutil.copytree(small_demo_dir / "demo", ws / "data" / "demo")
    return ws


@pytest.fixture(scope="module")
def wb(ws, tiny_arch):
    return Workbench(ws, confine=True, trusted_archs=(tiny_arch,))


# ------------------------------------------------------------------------------------------- paths
@pytest.mark.parametrize("name", ["../x", "/etc", "a/b", ".hidden", "..", "", "x y", "a\\b"])
def test_dataset_names_are_single_folder_names(name):
    with pytest.raises(UnirexError):
        check_name(name)


def test_policy_keeps_paths_inside_the_workspace(tmp_path, ws):
    outside = tmp_path / "outside"
    outside.mkdir()
    pol = PathPolicy(ws, trusted_archs=("/opt/trusted-model",))
    assert pol.path("runs/x") == ws / "runs" / "x"
    for bad in ("/etc", str(outside), "../..", "runs/../../x"):
        with pytest.raises(UnirexError, match="outside the workspace"):
            pol.path(bad)
    (ws / "data" / "link").symlink_to(outside, target_is_directory=True)
    try:
        with pytest.raises(UnirexError, match="outside the workspace's data folder"):
            pol.dataset_dir("link")
    finally:
        (ws / "data" / "link").unlink()
    assert pol.arch("default") == "default" and pol.arch("/opt/trusted-model") == "/opt/trusted-model"
    assert pol.arch("sentence-transformers/all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"
    for bad in ("/etc", str(outside), "../x", "~/x"):
        with pytest.raises(UnirexError, match="outside the workspace"):
            pol.arch(bad)
    with pytest.raises(UnirexError, match="outside the workspace"):
        pol.checkpoint(str(outside))
    with pytest.raises(UnirexError, match="outside the workspace"):
        pol.checkpoint("tests")  # exists relative to the server's working directory, not in the workspace
    assert pol.checkpoint("owner/model") == "owner/model"  # a Hub id goes through
    unconfined = PathPolicy(ws, confine=False)
    assert unconfined.path(str(outside)) == outside and unconfined.arch("/etc") == "/etc"


@pytest.mark.parametrize("override,message", [
    ("data_dir=/etc", "outside the workspace"),
    ("data=../../x", "not a valid dataset name"),
    ("dataset=/abs", "not a valid dataset name"),
    ("arch=/usr/lib", "outside the workspace"),
    ("training.ckpt_path=/etc/passwd", "outside the workspace"),
    ("data.fresh_exp_id=../../x", "outside the workspace"),
    ("workspace=/tmp/elsewhere", "cannot be set per run"),
])
def test_submit_refuses_paths_outside_the_workspace(wb, override, message):
    with pytest.raises(UnirexError, match=message):
        wb.submit([override, "debug=True"])
    res = wb.check([override, "debug=True"])
    assert not res.ok and message.split()[0] in res.message
    assert wb.queue() == []


def test_redact_hides_server_paths_outside_the_workspace(ws):
    msg = f"cannot read /usr/lib/python3/site.py nor {ws}/data/x/train.jsonl (see /opt/secret/)."
    out = redact(msg, ws)
    assert "/usr/lib" not in out and "…/site.py" in out and f"{ws}/data/x/train.jsonl" in out
    assert "/opt/secret" not in out and out.endswith(").")
    kept = "a dataset of your own goes in <data_dir>/nosuch/ with train.jsonl; see docs/ or a/b/c"
    assert redact(kept, ws) == kept
    assert redact("bad value for arch: '/etc/x' (x)", ws) == "bad value for arch: '…/x' (x)"


# ---------------------------------------------------------------------------------------- datasets
def test_build_summaries_and_example_browser(wb, tiny_arch):
    assert "demo" in wb.dataset_names()
    built = wb.build_dataset("demo", tiny_arch, 64)
    assert [s.split for s in built] == ["train", "dev", "test"] and built[0].count == 64
    again = wb.build_dataset("demo", tiny_arch, 64)
    assert all(s.cache_hit for s in again)
    summaries = wb.dataset_summaries("demo")
    assert {(s.split, s.max_length) for s in summaries} >= {("train", 64), ("dev", 64), ("test", 64)}
    everything = wb.find_examples("demo", tiny_arch, 64, "train")
    assert everything == list(range(64))
    pos = wb.find_examples("demo", tiny_arch, 64, "train", label="POS")
    assert 0 < len(pos) < 64 and all(wb.example("demo", tiny_arch, 64, "train", i).label == "POS" for i in pos[:3])
    trunc = wb.find_examples("demo", tiny_arch, 64, "train", truncated=True)
    assert trunc and set(trunc) | set(wb.find_examples("demo", tiny_arch, 64, "train", truncated=False)) == set(everything)
    ex = wb.example("demo", tiny_arch, 64, "train", trunc[0])
    assert ex.truncated and 0 < ex.read_words < len(ex.words) and len(ex.gold) == len(ex.words)
    full = wb.example("demo", tiny_arch, 64, "train", wb.find_examples("demo", tiny_arch, 64, "train", truncated=False)[0])
    assert full.read_words == len(full.words) and any(full.gold)
    assert wb.dataset_labels("demo", tiny_arch, 64, "dev") == ["NEG", "POS"]
    with pytest.raises(UnirexError, match="out of range"):
        wb.example("demo", tiny_arch, 64, "train", 64)
    with pytest.raises(UnirexError, match="not a valid dataset name"):
        wb.find_examples("../demo", tiny_arch, 64, "train")


def test_unknown_dataset_message_is_whole(wb, tiny_arch):
    with pytest.raises(UnirexError) as e:
        wb.build_dataset("nosuch", tiny_arch, 64)
    assert "<data_dir>/nosuch/" in str(e.value) and str(e.value).rstrip().endswith("ERASER layout.")


def _demo_files(src: Path) -> dict[str, bytes]:
    return {str(p.relative_to(src)): p.read_bytes() for p in src.rglob("*") if p.is_file()}


def _zip(path: Path, files: dict[str, bytes], prefix: str = "") -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(prefix + name, data)
    return path


def test_upload_zip_and_tar_gz(wb, ws, small_demo_dir, tmp_path):
    files = _demo_files(small_demo_dir / "demo")
    name, folder, desc = wb.upload_dataset(_zip(tmp_path / "mine.zip", files, "mine/"))
    assert name == "mine" and folder == ws / "data" / "mine" and (folder / "train.jsonl").is_file()
    assert "64 / 32 / 32 annotations" in desc
    tgz = tmp_path / "other.tar.gz"
    with tarfile.open(tgz, "w:gz") as t:
        for n, data in files.items():
            info = tarfile.TarInfo(n)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    name2, folder2, _ = wb.upload_dataset(tgz, "other_set")
    assert name2 == "other_set" and (folder2 / "docs").is_dir()
    with pytest.raises(UnirexError, match="already exists"):
        wb.upload_dataset(tmp_path / "mine.zip")
    with pytest.raises(UnirexError, match="generated demo"):
        wb.upload_dataset(tmp_path / "mine.zip", "demo")
    assert not list((ws / "data").glob(".*tmp*")) and not list((ws / "data" / ".uploads").glob("*"))


def test_upload_refuses_unsafe_zips(wb, ws, small_demo_dir, tmp_path):
    files = _demo_files(small_demo_dir / "demo")
    evil = _zip(tmp_path / "evil.zip", {**files, "../../escape.txt": b"x"})
    with pytest.raises(UnirexError, match="outside the target folder"):
        wb.upload_dataset(evil)
    absolute = _zip(tmp_path / "abs.zip", {**files, "/etc/x": b"x"})
    with pytest.raises(UnirexError, match="absolute path"):
        wb.upload_dataset(absolute)
    link = tmp_path / "link.zip"
    with zipfile.ZipFile(link, "w") as z:
        for n, data in files.items():
            z.writestr(n, data)
        info = zipfile.ZipInfo("docs/evil")
        info.external_attr = (0o120777 << 16)
        z.writestr(info, "/etc/passwd")
    with pytest.raises(UnirexError, match="symbolic link"):
        wb.upload_dataset(link)
    not_eraser = _zip(tmp_path / "junk.zip", {"readme.txt": b"hello"})
    with pytest.raises(UnirexError, match="not an ERASER dataset"):
        wb.upload_dataset(not_eraser)
    with pytest.raises(UnirexError, match="not a valid dataset name"):
        wb.upload_dataset(tmp_path / "junk.zip", "../../etc")
    assert not (ws / "escape.txt").exists() and not (ws.parent / "escape.txt").exists()
    assert not any((ws / "data" / n).exists() for n in ("evil", "abs", "link", "junk"))


def test_upload_limit_refuses_a_zip_bomb(wb, ws, small_demo_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("UNIREX_UPLOAD_MAX_BYTES", "100000")
    files = _demo_files(small_demo_dir / "demo")
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for n, data in files.items():
            z.writestr(n, data)
        z.writestr("docs/zeros", b"\0" * 5_000_000)
    with pytest.raises(UnirexError, match="upload limit"):
        wb.upload_dataset(bomb)
    assert not (ws / "data" / "bomb").exists()


def test_catalog_rows_and_archive_sizes_from_the_host(wb, tmp_path, monkeypatch):
    rows = wb.catalog()
    assert {r.name for r in rows} >= {"movies", "multirc", "esnli"}
    assert all(r.unpacked_limit_bytes > 0 for r in rows)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):  # noqa: N802 - the http.server API
            if self.path.endswith("/movies.tar.gz"):
                self.send_response(200)
                self.send_header("Content-Length", "3917812")
            else:
                self.send_response(404)
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("UNIREX_ERASER_BASE_URL", f"http://127.0.0.1:{srv.server_address[1]}/zipped")
        rows, failures = wb.check_archive_sizes()
    finally:
        srv.shutdown()
    movies = next(r for r in rows if r.name == "movies")
    assert movies.archive_bytes == 3917812 and movies.archive_size_source == "server"
    assert len(failures) == len(rows) - 1 and all("tar.gz" in f for f in failures)
    assert next(r for r in wb.catalog() if r.name == "movies").archive_bytes == 3917812  # remembered


# ------------------------------------------------------------------------------------ train tab API
def test_every_preset_by_its_paper_title(wb):
    from unirex.methods import list_methods

    presets = wb.methods()
    assert [p.id for p in presets] == [m.id for m in list_methods()]
    slm = next(p for p in presets if p.id == "slm_comp_suff_plaus_linear")
    assert slm.title == "Task LM + SLM (comp/suff/plaus), linear head"
    assert slm.settings["model.explainer_type"] == "self_lm" and slm.settings["model.comp_wt"] == 0.5


def test_settings_overrides_and_inline_check(wb, tiny_arch):
    ov = wb.settings_overrides("slm_plaus_linear", {"model.plaus_wt": "0.5", "training.epochs": "2",
                                                    "training.eval_splits": "train,dev,test"})
    assert ov == ["method=slm_plaus_linear", "training.epochs=2", "training.eval_splits='train,dev,test'"]
    ok = wb.check(ov + [f"arch={tiny_arch}", "seed=0,1,2"], sweep=True)
    assert ok.ok and ok.runs == 3 and ok.command.startswith("python -m unirex -m method=slm_plaus_linear")
    assert ok.settings["training.eval_splits"] == "train,dev,test"
    bad = wb.check(["method=slm_plaus_linear", "model.comp_wieght=0.5"])
    assert not bad.ok and "did you mean 'model.comp_wt'" in bad.message
    bad_value = wb.check(["model.suff_criterion=kldvi"])
    assert not bad_value.ok and "did you mean 'kldiv'" in bad_value.message
    assert not wb.check(["seed=0,1"]).ok  # a list without sweep
    assert wb.launchers()[0] == "local" and "input-x-gradient" in wb.extractors()
    with pytest.raises(UnirexError, match="did you mean"):
        wb.settings_overrides("slm_plaus_lin", {})


def test_curves_read_incrementally(wb, ws):
    rd = RunDir.create(ws / "runs", {"seed": 0}, {"method": "task_lm", "dataset": "demo", "arch": "x", "seed": 0})
    rd.append_event({"kind": "step", "step": 1, "epoch": 0, "losses": {"loss": 1.0, "task_loss": 0.9}})
    c1 = wb.curves(rd.run_id)
    assert c1.losses.height == 2 and c1.loss_names == ["loss", "task_loss"] and c1.dev.height == 0
    rd.append_event({"kind": "step", "step": 2, "epoch": 0, "losses": {"loss": 0.8, "task_loss": 0.7, "comp_loss": 0.1}})
    rd.append_event({"kind": "eval", "split": "dev", "epoch": 0, "metrics": {"acc": 0.5, "comp_aopc": 0.1}})
    rd.append_event({"kind": "eval", "split": "test", "epoch": None, "metrics": {"acc": 0.4}})
    c2 = wb.curves(rd.run_id)
    assert c2.losses.height == 5 and "comp_loss" in c2.loss_names
    assert c2.dev.sort("name").rows() == [(0, "acc", 0.5), (0, "comp_aopc", 0.1)]
    with pytest.raises(UnirexError):
        wb.curves("../x")
    assert wb.curves("R-not-yet").losses.height == 0  # a queued run without a folder yet


def test_exports_and_push_checks(wb, ws):
    from store import RunFilter

    rd = RunDir.create(ws / "runs", {"seed": 0}, {"method": "task_lm", "dataset": "demo", "arch": "a", "seed": 0,
                                                  "mode": "train"})
    rd.log_metrics({"acc": 0.9, "macro_f1": 0.8, "comp_aopc": 0.1, "suff_aopc": 0.2, "plaus_auprc": 0.3}, "test")
    rd.set_status("completed")
    wb.sync()
    cmp = wb.compare(RunFilter(status="completed", run_ids=(rd.run_id,)), by=("method",))
    csv = wb.export_comparison(cmp, "csv")
    pq = wb.export_comparison(cmp, "parquet")
    assert csv.path.parent == ws / "exports" and csv.path.read_text().startswith("method,n,seeds,nrg")
    assert pl.read_parquet(pq.path)["acc_mean"].to_list() == [0.9]
    with pytest.raises(UnirexError, match="csv or parquet"):
        wb.export_comparison(cmp, "xlsx")
    with pytest.raises(UnirexError, match="no checkpoint"):
        wb.push(rd.run_id, "me/model")
    (rd.checkpoint_dir).mkdir()
    (rd.checkpoint_dir / "checkpoint.json").write_text(json.dumps({"epoch": 0}))
    with pytest.raises(UnirexError, match="repo id 'no-owner' is not in the form USER/NAME"):
        wb.push(rd.run_id, "no-owner")
    with pytest.raises(UnirexError, match="outside the workspace"):
        wb.push(rd.run_id, "me/model", dry_run_dir="/tmp/elsewhere")
    with pytest.raises(UnirexError, match="missing run config"):  # a checkpoint.json alone is no pushable checkpoint
        wb.push(rd.run_id, "me/model", private=True, license="mit", dry_run_dir=ws / "exports" / "hub")
    assert not (ws / "exports" / "hub").exists()
    with pytest.raises(UnirexError, match="outside the workspace"):
        wb.export_eraser(rd.run_id, "test", Path("/tmp/x.jsonl"))


def test_requeue_and_resume_an_interrupted_run(wb, ws, tiny_arch):
    """The Runs tab's requeue (same command) and resume (finetune from the last checkpoint for the epochs
    left) of a run whose process died."""
    from unirex.config import resolve_config, to_dict

    cmd_overrides = [f"arch={tiny_arch}", "data.max_length=64", "training.epochs=3", "save_checkpoint=True"]
    cfg = to_dict(resolve_config(cmd_overrides))
    rd = RunDir.create(ws / "runs", cfg, {"method": "task_lm", "dataset": "demo", "arch": tiny_arch, "seed": 0,
                                          "mode": "train", "command": "python -m unirex " + " ".join(cmd_overrides)})
    (rd.path / "status.json").write_text(json.dumps({**rd.status(), "pid": 999999}))  # its process is gone
    assert rd.effective_status() == "interrupted"
    job = wb.requeue(rd.run_id)
    assert list(job.overrides) == cmd_overrides and job.run_id != rd.run_id
    with pytest.raises(UnirexError, match="no checkpoint to resume from"):
        wb.resume(rd.run_id)
    rd.checkpoint_dir.mkdir()
    (rd.checkpoint_dir / "config.json").write_text(json.dumps(cfg))
    (rd.checkpoint_dir / "checkpoint.json").write_text(json.dumps({"epoch": 0, "labels": ["NEG", "POS"]}))
    res = wb.resume(rd.run_id)
    assert {"training=finetune", f"training.ckpt_path={rd.run_id}", "training.epochs=2"} <= set(res.overrides)
    assert [j.job_id for j in wb.queue()] == [job.job_id, res.job_id]
    for j in (job, res):
        wb.cancel(j.job_id)
