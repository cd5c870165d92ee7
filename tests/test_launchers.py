"""Sweeps beyond one machine without a cluster: the launcher keys, the dispatcher (with a substituted launcher
for the lost-worker and hard-cancel paths), a local Ray instance and submitit's local executor running a
3-job debug sweep each with the tiny BERT, a cancelled job on each, and the sbatch parameters a real
Slurm submission would carry."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from cli import main
from store import RunFilter
from unirex.errors import UnirexError
from unirex.runs import RunDir
from workbench import Workbench
from workbench.launchers import LAUNCHERS, launcher_fields, launcher_options, split_launcher_overrides
from workbench.launchers.base import Launcher, Outcome, RemoteJob
from workbench.launchers.dispatch import Dispatcher

ROOT = Path(__file__).resolve().parents[1]


#: a run that trains until it is stopped (no early stop)
LONG = ["training.epochs=500", "training.patience=1000"]


def _stepping(ws: Path, run_id: str) -> bool:
    rd = RunDir(ws / "runs" / run_id)
    return rd.events_path.is_file() and any(e["kind"] == "step" for e in rd.events())


# ------------------------------------------------------------------------------------- the keys
def test_launcher_keys_are_taken_out_of_the_run_overrides():
    rest, opts = split_launcher_overrides(["seed=0,1,2", "launcher=ray", "launcher.gpus_per_job=0.5",
                                           "launcher.ray.address=auto", "model.comp_wt=0.5"])
    assert rest == ["seed=0,1,2", "model.comp_wt=0.5"]
    assert (opts.name, opts.gpus_per_job, opts.ray_address) == ("ray", 0.5, "auto")
    assert opts.to_args() == ("launcher.gpus_per_job=0.5", "launcher.ray.address=auto")
    assert launcher_options("ray", opts.to_args()) == opts  # what a Job records reads back the same
    rest, opts = split_launcher_overrides(["seed=1"])
    assert rest == ["seed=1"] and opts.name == "local" and not opts.remote
    # the app's form: keys without the prefix, the launcher chosen apart
    _, opts = split_launcher_overrides([], "slurm", {"slurm.partition": "gpu", "gpus_per_job": 2, "slurm.timeout_min": "90"})
    assert (opts.slurm_partition, opts.gpus_per_job, opts.slurm_timeout_min) == ("gpu", 2, 90)
    # a form passes every field: blank ones (of any launcher) are defaults
    opts = launcher_options("ray", {"gpus_per_job": "1", "ray.address": "", "slurm.partition": "", "slurm.mem_gb": None})
    assert opts.to_args() == ("launcher.gpus_per_job=1",)
    assert LAUNCHERS == ("local", "ray", "slurm")
    assert launcher_fields("local") == []
    assert {f.key for f in launcher_fields("ray")} >= {"gpus_per_job", "cpus_per_job", "ray.address"}
    assert not any(f.key.startswith("slurm.") for f in launcher_fields("ray"))


@pytest.mark.parametrize("overrides, message", [
    (["launcher=rey"], "did you mean 'ray'"),
    (["launcher=ray", "launcher.gpu_per_job=1"], "did you mean 'launcher.gpus_per_job'"),
    (["launcher=slurm", "launcher.partition=gpu"], "did you mean 'launcher.slurm.partition'"),
    (["launcher=ray", "launcher.slurm.partition=gpu"], "applies to launcher=slurm"),
    (["launcher.gpus_per_job=1"], "needs launcher=ray or launcher=slurm"),
    (["launcher=ray,slurm"], "takes one value"),
    (["launcher=ray", "launcher.cpus_per_job=two"], "launcher.cpus_per_job=two is not a whole number"),
    (["launcher=slurm", "launcher.gpus_per_job=0.5"], "whole GPUs"),
    (["launcher=slurm", "launcher.slurm.cluster=loca"], "did you mean 'local'"),
])
def test_bad_launcher_keys_are_named(overrides, message):
    with pytest.raises(UnirexError, match=message):
        split_launcher_overrides(overrides)


def test_cli_checks_launcher_keys_before_anything_runs(tmp_path, common, capsys):
    assert main(["--workspace", str(tmp_path), "-m", *common, "seed=0,1", "launcher=ray",
                 "launcher.gpu_per_job=1"]) == 2
    assert "did you mean 'launcher.gpus_per_job'" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() and not list((tmp_path / "queue").glob("J-*.json"))


def test_importing_the_fronts_imports_neither_ray_nor_submitit():
    code = ("import sys, workbench, cli, cli.train, workbench.launchers, workbench.launchers.dispatch; "
            "from workbench import Workbench; "
            "print(sorted(m for m in ('ray', 'submitit') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------ real-Slurm parameters
def _spec(tmp_path: Path, run_id="R-x") -> RemoteJob:
    return RemoteJob(job_id="J-x", run_id=run_id, overrides=("seed=0",), command="python -m unirex seed=0",
                     workspace=str(tmp_path), launcher="slurm", threads=8)


def test_slurm_parameters_reach_submitit_and_its_sbatch_script(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    from workbench.launchers.slurm_launcher import SlurmLauncher

    bin_dir = tmp_path / "bin"  # submitit's Slurm executor wants srun on PATH; it is never called here
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    opts = launcher_options("slurm", {"slurm.partition": "gpu", "slurm.timeout_min": 90, "gpus_per_job": 2,
                                      "cpus_per_job": 8, "slurm.mem_gb": 32, "slurm.account": "nlp",
                                      "slurm.setup": "module load cuda"})
    spec = _spec(tmp_path)
    launcher = SlurmLauncher(opts)
    # the real submitit executor for a Slurm cluster, as the launcher configures it (nothing is submitted)
    ex = launcher.executor(spec, opts)
    assert Path(ex.folder) == RunDir(tmp_path / "runs" / "R-x").logs_dir  # logs beside the run folder
    script = ex._executor._make_submission_file_text("python -u -m submitit.core._submit", "uid")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=90", "#SBATCH --gpus-per-node=2",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --mem=32GB", "#SBATCH --account=nlp",
                 "#SBATCH --job-name=unirex-R-x", "module load cuda"):
        assert line in script, line
    assert str(RunDir(tmp_path / "runs" / "R-x").logs_dir) in script  # stdout/stderr files


def test_slurm_submission_through_a_substituted_executor(tmp_path):
    """What the launcher hands to submitit (the Slurm side itself cannot run here)."""
    from workbench.launchers.remote import run_job
    from workbench.launchers.slurm_launcher import SlurmLauncher

    calls = {}

    class FakeJob:
        job_id = "4242"

    class FakeExecutor:
        def __init__(self, folder, cluster):
            calls["init"] = (folder, cluster)

        def update_parameters(self, **kw):
            calls["params"] = kw

        def submit(self, fn, *args):
            calls["submit"] = (fn, args)
            return FakeJob()

    class FakeSubmitit:
        AutoExecutor = FakeExecutor

    opts = launcher_options("slurm", {"slurm.partition": "gpu", "gpus_per_job": 1, "slurm.folder": str(tmp_path / "sl")})
    spec = _spec(tmp_path)
    assert SlurmLauncher(opts, submitit=FakeSubmitit).submit(spec, opts) == "4242"
    assert calls["init"] == (str(tmp_path / "sl"), "slurm")
    assert calls["params"] == {"name": "unirex-R-x", "timeout_min": 240, "nodes": 1, "tasks_per_node": 1,
                               "cpus_per_task": 1, "gpus_per_node": 1, "slurm_partition": "gpu"}
    assert calls["submit"] == (run_job, (spec,))


def test_slurm_without_sbatch_says_so(tmp_path, common, monkeypatch):
    pytest.importorskip("submitit")
    monkeypatch.setattr("workbench.launchers.options.shutil.which", lambda name: None)
    with pytest.raises(UnirexError, match="sbatch not found.*launcher.slurm.cluster=local"):
        Workbench(tmp_path).submit(common + ["debug=True"], launcher="slurm")


# -------------------------------------------------------------------- the dispatcher, substituted launcher
class FakeLauncher(Launcher):
    """Jobs that run until told: ``outcomes[handle]`` ends one; ``cancel`` is recorded (and ends it as Ray does
    when ``confirm``)."""

    name = "ray"

    def __init__(self, confirm=True):
        self.outcomes: dict[str, Outcome] = {}
        self.cancelled: list[str] = []
        self.submitted: list[RemoteJob] = []
        self.confirm = confirm

    def submit(self, job, options):
        self.submitted.append(job)
        return f"h-{job.job_id}"

    def poll(self, handle):
        return self.outcomes.get(handle)

    def cancel(self, handle):
        self.cancelled.append(handle)
        if self.confirm:
            self.outcomes[handle] = Outcome("cancelled")


def _running_folder(ws: Path, job, host="node-7") -> RunDir:
    """The run folder of ``job`` as a worker on another host writes it: status running, a fresh heartbeat."""
    rd = RunDir.create(ws / "runs", {"seed": 0}, {"command": job.command, "launcher": job.launcher},
                       run_id=job.run_id)
    s = rd.status()
    s.update(host=host, pid=1)
    rd.status_path.write_text(json.dumps(s))
    return rd


def test_a_lost_worker_reads_interrupted_at_once_and_requeues_on_its_launcher(tmp_path, common):
    wb = Workbench(tmp_path)
    job = wb.submit(common + ["debug=True", "seed=3"], launcher="ray", launcher_options={"gpus_per_job": 1})[0]
    assert job.launcher == "ray" and job.launcher_args == ("launcher.gpus_per_job=1",)
    assert "launcher" not in job.command and not any(o.startswith("launcher") for o in job.overrides)
    fake = FakeLauncher()
    d = Dispatcher(wb.jobs, factory=lambda opts: fake)
    d.step()
    assert wb.job(job.job_id).status == "running" and wb.job(job.job_id).handle == f"h-{job.job_id}"
    assert fake.submitted[0].threads == 1 and fake.submitted[0].overrides == job.overrides
    rd = _running_folder(tmp_path, job)
    assert rd.effective_status() == "running"  # a fresh heartbeat on another host: alive as far as files tell
    d.step()
    assert {r.run_id: r.status for r in wb.runs()} == {job.run_id: "running"}  # indexed as it arrived
    fake.outcomes[f"h-{job.job_id}"] = Outcome("interrupted", "the Ray worker was lost (NodeDiedError)")
    ended = d.step()
    assert [j.job_id for j in ended] == [job.job_id]
    assert wb.job(job.job_id).status == "interrupted" and "NodeDiedError" in wb.job(job.job_id).error
    assert rd.effective_status() == "interrupted"  # without waiting STALE_AFTER_S
    assert rd.status()["worker_host"] == "node-7"
    assert {r.run_id: r.status for r in wb.runs()} == {job.run_id: "interrupted"}
    # one command re-queues it, on the launcher and with the options that ran it
    again = wb.requeue(job.run_id)
    assert (again.launcher, again.launcher_args, again.status) == ("ray", ("launcher.gpus_per_job=1",), "waiting")
    assert again.command == job.command and again.run_id != job.run_id
    # or runs it now: here in the foreground when the command names another launcher
    assert main(["--workspace", str(tmp_path), "requeue", job.run_id, "launcher=local"]) == 0
    fresh = [r for r in wb.runs() if r.run_id != job.run_id]
    assert len(fresh) == 1 and (fresh[0].status, fresh[0].seed, fresh[0].launcher) == ("completed", 3, "local")
    assert fresh[0].command == job.command


def test_cancel_stops_cleanly_first_then_through_the_launcher(tmp_path, common):
    wb = Workbench(tmp_path)
    a, b = wb.submit(common + ["debug=True", "seed=0,1"], sweep=True, launcher="ray",
                     launcher_options={"cancel_grace_s": 0})
    fake = FakeLauncher(confirm=False)
    d = Dispatcher(wb.jobs, factory=lambda opts: fake)
    d.step()
    rd = _running_folder(tmp_path, a)
    # b has not started on its worker (no run folder): cancelled through the launcher at once
    assert main(["--workspace", str(tmp_path), "cancel", b.job_id]) == 0
    assert wb.jobs.cancel_requested(b.job_id)  # the marker the worker's engine would see
    d.step()
    assert fake.cancelled == [f"h-{b.job_id}"]
    fake.outcomes[f"h-{b.job_id}"] = Outcome("failed", "KeyboardInterrupt")
    d.step()
    assert wb.job(b.job_id).status == "cancelled"
    # a runs: its grace (0 s here) passes without a clean stop, so the launcher's cancel follows
    wb.cancel(a.job_id)
    d.step()
    assert fake.cancelled[-1] == f"h-{a.job_id}"
    fake.outcomes[f"h-{a.job_id}"] = Outcome("interrupted", "worker killed")
    d.step()
    assert wb.job(a.job_id).status == "cancelled" and rd.status()["status"] == "cancelled"
    assert not wb.jobs.cancel_requested(a.job_id)


def test_the_apps_dispatcher_adopts_jobs_of_a_dead_driver(tmp_path, common):
    import socket

    wb = Workbench(tmp_path)
    ray_job, slurm_job = [wb.submit(common + ["debug=True"], launcher=name,
                                    launcher_options={"slurm.cluster": "local"} if name == "slurm" else None)[0]
                          for name in ("ray", "slurm")]
    dead = f"{socket.gethostname()}:999999"
    for j in (ray_job, slurm_job):
        wb.jobs.update(j.job_id, status="running", owner=dead, handle="h-1")
    wb.jobs.update(slurm_job.job_id, launcher_args=())  # a real Slurm job: it outlives its driver
    reattached = []

    class Reattaching(FakeLauncher):
        name = "slurm"
        can_reattach = True

        def reattach(self, job, handle, options):
            reattached.append((job.job_id, handle))
            return True

    launchers = {"ray": FakeLauncher(), "slurm": Reattaching()}
    d = Dispatcher(wb.jobs, factory=lambda opts: launchers[opts.name])
    _running_folder(tmp_path, ray_job, host=socket.gethostname())  # the dead driver's task's folder
    d.step()
    assert wb.job(ray_job.job_id).status == "interrupted"  # a Ray task ends with its driver
    assert RunDir(tmp_path / "runs" / ray_job.run_id).effective_status() == "interrupted"
    assert reattached == [(slurm_job.job_id, "h-1")] and wb.job(slurm_job.job_id).status == "running"
    launchers["slurm"].outcomes["h-1"] = Outcome("completed")
    d.step()
    assert wb.job(slurm_job.job_id).status == "completed" and wb.job(slurm_job.job_id).owner != dead


def test_a_job_the_launcher_cannot_start_fails_with_the_reason(tmp_path, common):
    wb = Workbench(tmp_path)
    job = wb.submit(common + ["debug=True"], launcher="ray")[0]

    def refuse(opts):
        raise UnirexError("launcher=ray: could not start or reach the Ray cluster at ray://nowhere:10001")

    Dispatcher(wb.jobs, factory=refuse).step()
    assert wb.job(job.job_id).status == "failed" and "ray://nowhere" in wb.job(job.job_id).error


def test_the_worker_reads_a_slurm_time_limit_and_a_restart_as_interrupted(tmp_path, common, monkeypatch):
    """submitit raises its UncompletedJobError in the job when the time limit nears; Slurm may start a
    preempted job again. Both leave the run interrupted (resumable), not failed."""
    import unirex.engine
    from unirex.events import StartEvent
    from workbench.launchers.remote import run_job

    class UncompletedJobError(Exception):  # what submitit raises, by name (no submitit import needed)
        pass

    def engine_at_time_limit(cfg, callback=None, cancel=None, run_id=None, command=None, **kw):
        rd = RunDir.create(Path(cfg.workspace) / "runs", {}, {"command": command}, run_id=run_id)
        callback(StartEvent(run_dir=str(rd.path)))
        rd.set_status("failed", error="UncompletedJobError")  # what the engine records before re-raising
        raise UncompletedJobError("Job not requeued because: timed-out and not checkpointable.")

    monkeypatch.setattr(unirex.engine, "run", engine_at_time_limit)
    spec = RemoteJob(job_id="J-t", run_id="R-t", overrides=tuple(common + ["debug=True"]), command="python -m unirex",
                     workspace=str(tmp_path), launcher="slurm")
    res = run_job(spec)
    assert res.status == "interrupted" and "time limit" in res.error
    rd = RunDir(tmp_path / "runs" / "R-t")
    assert rd.effective_status() == "interrupted" and rd.meta()["launcher"] == "slurm"
    again = run_job(spec)  # started again by the cluster: the run keeps its first attempt
    assert again.status == "interrupted" and "started again" in again.error
    assert rd.effective_status() == "interrupted"


# ------------------------------------------------------------------------------------------ Ray
@pytest.fixture(scope="module")
def ray_local():
    """A local Ray instance (2 CPUs, no dashboard, its own short temp dir) shared by the module's Ray tests:
    the launcher finds Ray initialised and uses it."""
    ray = pytest.importorskip("ray")
    tmp = tempfile.mkdtemp(prefix="ur-", dir="/tmp")
    os.environ.setdefault("RAY_memory_monitor_refresh_ms", "0")  # others' memory use must not kill test workers
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=tmp,
             object_store_memory=100 * 2**20, logging_level="ERROR")
    yield ray
    ray.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)


def test_ray_sweep_from_the_cli_lands_three_runs(ray_local, tmp_path, common, capsys):
    rc = main(["--workspace", str(tmp_path), "-m", *common, "debug=True", "seed=0,1,2", "launcher=ray",
               "launcher.cpus_per_job=1", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0, out
    runs = Workbench(tmp_path).runs()
    assert len(runs) == 3 and {r.status for r in runs} == {"completed"}
    assert sorted(r.seed for r in runs) == [0, 1, 2] and {r.launcher for r in runs} == {"ray"}
    for r in runs:
        rd = RunDir(Path(r.run_dir))
        meta = rd.meta()
        assert meta["command"] == r.command and "launcher" not in meta["command"]
        assert meta["command"].endswith(f"seed={r.seed}") and meta["launcher"] == "ray" and meta["job_id"]
        assert list(rd.logs_dir.glob("ray-*.err"))  # the worker's output beside the run
        assert r.run_id in out
    assert "summary" in out and out.count("[completed]") == 3
    assert all(j.status == "completed" for j in Workbench(tmp_path).queue(include_final=True))


def test_ray_jobs_from_the_app_cancelled_and_lost(ray_local, tmp_path, common, wait_until):
    """Two long jobs from the app's queue on two Ray workers: one cancelled through the CLI ends cancelled, the
    other's worker killed reads interrupted at once; the lost one is re-queued with one command."""
    wb = Workbench(tmp_path, start_worker=True)
    try:
        a, b = wb.submit(common + LONG + ["seed=0,1"], sweep=True, launcher="ray")
        wait_until(lambda: _stepping(tmp_path, a.run_id) and _stepping(tmp_path, b.run_id), timeout=240.0,
                   what="both jobs training")
        assert wb.job(a.job_id).handle and wb.job(a.job_id).status == "running"
        wait_until(lambda: {r.run_id for r in wb.runs(RunFilter(status="running"))} == {a.run_id, b.run_id},
                   timeout=30, what="the runs indexed as they arrive")
        assert main(["--workspace", str(tmp_path), "cancel", a.job_id]) == 0
        os.kill(int(RunDir(tmp_path / "runs" / b.run_id).status()["pid"]), signal.SIGKILL)  # b's node "dies"
        wait_until(lambda: not wb.job(a.job_id).active and not wb.job(b.job_id).active, timeout=90, what="both ends")
        assert wb.job(a.job_id).status == "cancelled"
        assert RunDir(tmp_path / "runs" / a.run_id).status()["status"] == "cancelled"  # the engine's clean stop
        assert wb.job(b.job_id).status == "interrupted", wb.job(b.job_id)
        assert RunDir(tmp_path / "runs" / b.run_id).effective_status() == "interrupted"
        assert {r.run_id: r.status for r in wb.runs()} == {a.run_id: "cancelled", b.run_id: "interrupted"}
        assert main(["--workspace", str(tmp_path), "requeue", b.run_id, "--queue"]) == 0
        again = [j for j in wb.queue() if j.run_id not in (a.run_id, b.run_id)]
        assert len(again) == 1 and again[0].launcher == "ray" and again[0].command == b.command
        wb.cancel(again[0].job_id)
        wait_until(lambda: not wb.job(again[0].job_id).active, timeout=60, what="the re-queued job's cancel")
    finally:
        wb.stop_worker()


# ----------------------------------------------------------------------------- submitit's local executor
def test_submitit_local_sweep_lands_three_runs_with_their_logs(tmp_path, common, capsys):
    pytest.importorskip("submitit")
    rc = main(["--workspace", str(tmp_path), "-m", *common, "debug=True", "seed=0,1,2", "launcher=slurm",
               "launcher.slurm.cluster=local", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0, out
    runs = Workbench(tmp_path).runs()
    assert len(runs) == 3 and {r.status for r in runs} == {"completed"}
    assert sorted(r.seed for r in runs) == [0, 1, 2] and {r.launcher for r in runs} == {"slurm"}
    for r in runs:
        rd = RunDir(Path(r.run_dir))
        assert rd.meta()["launcher_job"] and "launcher" not in rd.meta()["command"]
        assert list(rd.logs_dir.glob("*_log.err")) and list(rd.logs_dir.glob("*_submitted.pkl"))


def test_submitit_local_job_cancelled_from_the_app(tmp_path, common, wait_until):
    pytest.importorskip("submitit")
    wb = Workbench(tmp_path, start_worker=True)
    try:
        job = wb.submit(common + LONG, launcher="slurm", launcher_options={"slurm.cluster": "local"})[0]
        wait_until(lambda: _stepping(tmp_path, job.run_id), timeout=240.0, what="the job training")
        wb.cancel(job.job_id)
        wait_until(lambda: not wb.job(job.job_id).active, timeout=90, what="the cancel")
        assert wb.job(job.job_id).status == "cancelled"
        assert RunDir(tmp_path / "runs" / job.run_id).status()["status"] == "cancelled"
        assert [r.status for r in wb.runs()] == ["cancelled"]
    finally:
        wb.stop_worker()
