"""Hostile values in settings (issue 21, items 1, 2, 3 and 7): OmegaConf interpolations in user values, secrets
of the environment in messages, launcher settings that run commands or name folders, and input that used to
end in a traceback instead of one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli import main
from unirex.config import from_dict, resolve_config, to_dict
from unirex.errors import UnirexError, scrub_secrets
from unirex.runs import RunDir
from workbench import Workbench

from test_hostile_input import tree

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
