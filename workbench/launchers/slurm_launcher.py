"""``launcher=slurm``: each job a Slurm job submitted through submitit (``AutoExecutor``).

Every job gets its own executor whose folder is, by default, the run folder's ``logs/`` (submitit writes
the sbatch script, the pickled call and the job's stdout/stderr there: the logs sit beside the run they
belong to). The job runs :func:`~workbench.launchers.remote.run_job` on the node, with the job's options
as sbatch parameters (:meth:`SlurmLauncher.parameters`).

``launcher.slurm.cluster=local`` uses submitit's local executor instead (one process per job on this
machine, no Slurm): the same code path, which is how the tests run it.

A Slurm job that ends without a result (node failure, time limit, ``scancel`` from outside, out of
memory) reads ``interrupted``. submitit asks ``sacct`` rarely once a job is old; the launcher forces a
state check every :data:`FORCE_CHECK_S` seconds so a lost job is noticed within that time. Slurm jobs
outlive the process that submitted them: a restarted app follows them again (:meth:`reattach`).
"""

from __future__ import annotations

import time
from pathlib import Path
from types import ModuleType

from workbench.launchers.base import JobResult, Launcher, Outcome, RemoteJob
from workbench.launchers.options import LauncherOptions, launcher_folder
from workbench.launchers.remote import run_job

FORCE_CHECK_S = 30.0


class SlurmLauncher(Launcher):
    name = "slurm"

    def __init__(self, options: LauncherOptions, submitit: ModuleType | None = None):
        if submitit is None:
            # lazy: submitit is optional: imported when a Slurm job is submitted
            import submitit
        self.submitit = submitit
        self.cluster = options.slurm_cluster
        self._jobs: dict[str, object] = {}
        self._last_force = 0.0

    @property
    def can_reattach(self) -> bool:  # a Slurm job outlives its submitter; a local process does not
        return self.cluster == "slurm"

    def matches(self, options: LauncherOptions) -> bool:
        return options.slurm_cluster == self.cluster

    # ------------------------------------------------------------------------------------ parameters
    @staticmethod
    def folder(job: RemoteJob, options: LauncherOptions) -> Path:
        """submitit's folder for ``job``: ``launcher.slurm.folder`` (a relative one inside the workspace) or the
        run folder's ``logs/``."""
        return launcher_folder(options.slurm_folder, job.workspace) if options.slurm_folder else job.logs_dir

    @staticmethod
    def parameters(job: RemoteJob, options: LauncherOptions) -> dict:
        """The ``AutoExecutor.update_parameters`` arguments of ``job`` (generic ones, then ``slurm_*``)."""
        p: dict = {"name": f"unirex-{job.run_id}", "timeout_min": int(options.slurm_timeout_min), "nodes": 1,
                   "tasks_per_node": 1, "cpus_per_task": int(options.cpus_per_job)}
        if options.gpus_per_job:
            p["gpus_per_node"] = int(options.gpus_per_job)
        if options.slurm_mem_gb:
            p["mem_gb"] = float(options.slurm_mem_gb)
        for key in ("partition", "account", "qos", "constraint"):
            value = getattr(options, f"slurm_{key}")
            if value:
                p[f"slurm_{key}"] = value
        if options.slurm_setup:
            p["slurm_setup"] = [options.slurm_setup]
        return p

    def executor(self, job: RemoteJob, options: LauncherOptions):
        folder = self.folder(job, options)
        folder.mkdir(parents=True, exist_ok=True)
        ex = self.submitit.AutoExecutor(folder=str(folder), cluster=self.cluster)
        ex.update_parameters(**self.parameters(job, options))
        return ex

    # ----------------------------------------------------------------------------------------- jobs
    def submit(self, job: RemoteJob, options: LauncherOptions) -> str:
        sj = self.executor(job, options).submit(run_job, job)
        handle = str(sj.job_id)
        self._jobs[handle] = sj
        return handle

    def reattach(self, job: RemoteJob, handle: str, options: LauncherOptions) -> bool:
        if not self.can_reattach:
            return False
        self._jobs[handle] = self.submitit.SlurmJob(folder=str(self.folder(job, options)), job_id=handle)
        return True

    def poll(self, handle: str) -> Outcome | None:
        sj = self._jobs.get(handle)
        if sj is None:
            return Outcome("interrupted", "the Slurm job is not known to this process")
        force = time.monotonic() - self._last_force >= FORCE_CHECK_S
        if force:
            self._last_force = time.monotonic()
        if not sj.done(force_check=force):
            return None
        self._jobs.pop(handle, None)
        utils = self.submitit.core.utils
        try:
            res: JobResult = sj.result()
        except utils.UncompletedJobError:
            state = getattr(sj, "state", "unknown")
            return Outcome("interrupted", f"the Slurm job ended without finishing (state {state})")
        except utils.FailedJobError as e:  # run_job does not raise: a signal or the like ended it
            lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
            return Outcome("failed", lines[-1] if lines else "the job failed")
        return Outcome(res.status, res.error)

    def cancel(self, handle: str) -> None:
        sj = self._jobs.get(handle)
        if sj is not None:
            try:
                sj.cancel(check=False)
            except Exception:  # noqa: BLE001 - it already ended
                pass


__all__ = ["FORCE_CHECK_S", "SlurmLauncher"]
