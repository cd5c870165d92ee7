"""What runs on a cluster worker: one queued job through the engine, into the shared workspace.

:func:`run_job` is the function a Ray task or a Slurm job executes. It resolves the job's overrides in the
workspace (the same way the driver did when it checked them), runs :func:`unirex.engine.run` with the
job's run id and command line, and returns a :class:`~workbench.launchers.base.JobResult`; it never
raises, so every launcher reports an engine error the same way. On the way it

* records ``launcher`` (and the engine's own id of the job, ``launcher_job``, and the queue's ``job_id``)
  in the run's ``meta.json``, which the store's ``launcher`` column reads;
* gives the engine a :class:`~workbench.jobs.CancelToken` on the queue's cancel marker, a file in the
  shared workspace: a cancel from the app or ``python -m unirex cancel JOB`` on any machine reaches the
  worker within one training step or evaluation batch, and the run ends ``cancelled`` cleanly;
* refreshes the run's heartbeat at least every :data:`HEARTBEAT_S` seconds (also through long
  evaluations), since a run on another host is judged by its heartbeat age.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
import traceback
from pathlib import Path

from unirex.errors import UnirexError
from unirex.events import Event, StartEvent
from unirex.runs import RunDir
from workbench.launchers.base import JobResult, RemoteJob

HEARTBEAT_S = 30.0


def _engine_job_id(launcher: str) -> str | None:
    """The launcher's own id of the running job, seen from inside it."""
    for var in ("SLURM_ARRAY_JOB_ID", "SLURM_JOB_ID", "SUBMITIT_LOCAL_JOB_ID"):
        if os.environ.get(var):
            return os.environ[var]
    if launcher == "ray" and "ray" in sys.modules:
        try:
            # lazy: Ray is optional: only a Ray worker has it loaded
            import ray

            return ray.get_runtime_context().get_task_id()
        except Exception:  # noqa: BLE001 - only a label
            return None
    return None


@contextlib.contextmanager
def _output_to(folder: Path | None, stem: str):
    """Send this process's stdout/stderr (file descriptors 1 and 2, so native code's output too) to
    ``folder/<stem>.out`` / ``.err`` for the duration; restored afterwards."""
    if folder is None:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    files = [open(folder / f"{stem}.out", "ab"), open(folder / f"{stem}.err", "ab")]
    try:
        os.dup2(files[0].fileno(), 1)
        os.dup2(files[1].fileno(), 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        for f in files:
            f.close()


def run_job(job: RemoteJob, capture_output: bool = False) -> JobResult:
    """Run one job on this worker (see the module docstring). ``capture_output`` writes the worker's
    stdout/stderr to the run folder's ``logs/`` (Ray; submitit captures them itself)."""
    host = socket.gethostname()
    with _output_to(job.logs_dir if capture_output else None, f"{job.launcher}-{job.job_id}"):
        try:
            # lazy: the engine pulls torch; looked up at call time on the worker (tests substitute unirex.engine.run)
            from unirex.engine import resolve_run_config, run
            from unirex.registry import load_plugins
            from workbench.jobs import CancelToken, JobQueue

            load_plugins()  # the worker's own $UNIREX_PLUGINS, before the job's config is resolved

            token = CancelToken(JobQueue(Path(job.workspace)), job.job_id)
            if token.is_set():  # cancelled while it waited in the cluster's queue
                return JobResult("cancelled", None, host)
            if RunDir(job.run_dir).meta_path.is_file():  # the cluster restarted the job (Slurm, after a preemption)
                return JobResult("interrupted", "the job was started again after its first attempt stopped (a "
                                 "preemption); its run folder keeps the first attempt: requeue or resume the run", host)
            cfg = resolve_run_config(list(job.overrides), workspace=job.workspace)
            if job.threads > 0:  # this worker process is the job's own: as many threads as cores it asked for
                # lazy: torch only in a worker that sets its thread count
                import torch

                torch.set_num_threads(job.threads)
            state = {"rd": None, "beat": time.monotonic()}

            def callback(ev: Event) -> None:
                if isinstance(ev, StartEvent) and ev.run_dir:
                    rd = RunDir(Path(ev.run_dir))
                    rd.update_meta(launcher=job.launcher, launcher_job=_engine_job_id(job.launcher), job_id=job.job_id)
                    state["rd"] = rd
                elif state["rd"] is not None and time.monotonic() - state["beat"] >= HEARTBEAT_S:
                    state["beat"] = time.monotonic()
                    state["rd"].heartbeat()  # same thread as the engine: never races its final status

            res = run(cfg, callback=callback, cancel=token, run_id=job.run_id, command=job.command)
            return JobResult(res.status, res.error, host)
        except UnirexError as e:
            return JobResult("failed", str(e), host)
        except Exception as e:  # noqa: BLE001 - reported to the driver; the run folder has the traceback
            traceback.print_exc()
            if type(e).__name__ == "UncompletedJobError":  # submitit: the Slurm time limit is near
                message = f"stopped at the Slurm time limit (launcher.slurm.timeout_min): {e}"
                rd = RunDir(job.run_dir)
                if rd.meta_path.is_file():  # the engine recorded a failure; it is an interruption (resume it)
                    rd.set_status("interrupted", error=message, ended_at=time.time())
                return JobResult("interrupted", message, host)
            return JobResult("failed", f"{type(e).__name__}: {e}", host)


__all__ = ["HEARTBEAT_S", "run_job"]
