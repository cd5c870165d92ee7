"""``launcher=ray``: each job a Ray task on an existing cluster or on a local Ray instance.

The task is :func:`~workbench.launchers.remote.run_job` with ``num_cpus``/``num_gpus`` from the job's
options (``launcher.cpus_per_job``, ``launcher.gpus_per_job``); Ray schedules it where those are free and
sets ``CUDA_VISIBLE_DEVICES`` for it. Tasks are never retried by Ray (``max_retries=0``): a retry would start
the run again from scratch into the same run folder, so a lost task reads ``interrupted`` instead and is
re-queued (or resumed from its checkpoint) by the user. A task ends with the process that submitted it
(Ray's ownership), so a job whose driver stopped cannot be followed from another process.

The worker's stdout/stderr go to the run folder's ``logs/ray-<job>.out|.err``.
"""

from __future__ import annotations

import logging

from unirex.errors import UnirexError
from workbench.launchers.base import JobResult, Launcher, Outcome, RemoteJob
from workbench.launchers.options import LauncherOptions
from workbench.launchers.remote import run_job

#: object store of a local instance: jobs pass a few strings, not tensors
LOCAL_OBJECT_STORE_BYTES = 128 * 2**20


class RayLauncher(Launcher):
    name = "ray"

    def __init__(self, options: LauncherOptions):
        # lazy: Ray is optional: imported when a Ray job is submitted
        import ray

        self.ray = ray
        self.address = options.ray_address
        self.num_cpus = options.ray_num_cpus
        self.started = False
        if not ray.is_initialized():  # else: this process is connected already (an earlier launcher, a notebook)
            kwargs = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
            try:
                if self.address:
                    ray.init(address=self.address, **kwargs)
                else:
                    ray.init(address="local", num_cpus=self.num_cpus, object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                             **kwargs)
            except ImportError as e:  # ray:// (Ray Client) needs the client extra
                raise UnirexError(f"launcher.ray.address={self.address}: Ray Client needs "
                                  f"pip install 'ray[client]=={ray.__version__}' ({e}); or run from a node of the "
                                  "cluster with launcher.ray.address=auto") from None
            except (ConnectionError, RuntimeError, ValueError) as e:
                where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
                raise UnirexError(f"launcher=ray: could not start or reach {where}: {e}") from None
            self.started = True
        self._task = ray.remote(max_retries=0)(run_job)
        self._refs: dict[str, object] = {}

    def matches(self, options: LauncherOptions) -> bool:
        # one Ray connection per process: a job naming another cluster cannot use this one
        return not self.started or (options.ray_address or None) == (self.address or None)

    def submit(self, job: RemoteJob, options: LauncherOptions) -> str:
        ref = self._task.options(num_cpus=options.cpus_per_job, num_gpus=options.gpus_per_job,
                                 name=f"unirex {job.run_id}").remote(job, True)
        handle = ref.task_id().hex()
        self._refs[handle] = ref
        return handle

    def poll(self, handle: str) -> Outcome | None:
        ray = self.ray
        ref = self._refs.get(handle)
        if ref is None:
            return Outcome("interrupted", "the Ray task was submitted by another process, which stopped")
        ready, _ = ray.wait([ref], timeout=0)
        if not ready:
            return None
        # lazy: Ray is optional: imported when a Ray job is submitted
        from ray import exceptions as rex

        self._refs.pop(handle, None)
        try:
            res: JobResult = ray.get(ref, timeout=30)
        except rex.TaskCancelledError:
            return Outcome("cancelled", "cancelled through Ray")
        except rex.OutOfMemoryError as e:
            return Outcome("failed", f"Ray stopped the task: out of memory ({_first_line(e)})")
        except rex.RayTaskError as e:  # run_job does not raise: this is a KeyboardInterrupt or the like
            return Outcome("failed", _first_line(e.cause if getattr(e, "cause", None) else e))
        except rex.RayError as e:  # the worker or its node was lost
            return Outcome("interrupted", f"the Ray worker was lost ({type(e).__name__}: {_first_line(e)})")
        return Outcome(res.status, res.error)

    def cancel(self, handle: str) -> None:
        ref = self._refs.get(handle)
        if ref is not None:
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - it already ended
                pass

    def close(self) -> None:
        if self.started and self.ray.is_initialized():
            self.ray.shutdown()
        self.started = False


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


__all__ = ["RayLauncher"]
