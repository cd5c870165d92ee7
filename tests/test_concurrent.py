"""Concurrent writers on one workspace: several ``python -m unirex`` training runs at once (building the
same dataset cache at the same time), while other processes rebuild and re-ingest the store in loops.
At the end ``store ingest`` runs once more and every run folder and every metric row must be indexed
exactly once, every run ``completed``, and the sandbox invariants hold (nothing outside the workspace).

Writers are declared in one list (:func:`writers`); a writer is a command run once (``loop=False``) or
again and again until the one-shot writers are done (``loop=True``). To add one (the app's worker, say),
append a :class:`Writer` whose ``argv(i)`` gives its i-th command line, or whose ``start`` callable runs it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import pytest
from workbench_harness import Sandbox

from store import indexed_runs, run_metrics
from unirex.runs import list_runs


@dataclass
class Writer:
    name: str
    argv: Callable[[int], list[str]]  # the command line of the i-th invocation
    loop: bool = False  # True: invoked again and again until every one-shot writer has finished
    pause_s: float = 0.2  # between invocations of a looping writer
    runs: int = field(default=0, init=False)  # invocations completed
    errors: list[str] = field(default_factory=list, init=False)


#: the app's background worker as a writer: a process that opens the workbench with its worker thread,
#: queues one run through the same API as the Train tab and waits for it (exit 1 unless it completed)
APP_WORKER = """
import sys, time
from workbench import Workbench
wb = Workbench(sys.argv[1], start_worker=True)
job = wb.submit(sys.argv[2:])[0]
while wb.job(job.job_id).status in ("waiting", "running"):
    time.sleep(0.2)
state = wb.job(job.job_id).status
wb.stop_worker()
sys.exit(0 if state == "completed" else 1)
"""


def app_worker(sb: Sandbox, epochs: int, seed: int) -> list[str]:
    import sys

    cli = sb.train(epochs=epochs, seed=seed)
    overrides = [a for a in cli[cli.index("-m") + 2:] if "=" in a and not a.startswith("workspace=")]
    return [sys.executable, "-c", APP_WORKER, str(sb.ws), *overrides]


def writers(sb: Sandbox, n_runs: int, epochs: int, rebuild_loops: int, ingest_loops: int,
            app_workers: int = 1) -> list[Writer]:
    out = [Writer(f"train-{i}", lambda _, i=i: sb.train(epochs=epochs, seed=i))
           for i in range(n_runs)]
    out += [Writer(f"app-worker-{k}", lambda _, k=k: app_worker(sb, epochs, 100 + k)) for k in range(app_workers)]
    out += [Writer(f"rebuild-{j}", lambda _: sb.store("rebuild"), loop=True) for j in range(rebuild_loops)]
    out += [Writer(f"ingest-{j}", lambda _: sb.store("ingest"), loop=True) for j in range(ingest_loops)]
    return out


def run_writers(sb: Sandbox, ws: list[Writer], timeout_s: float = 1500) -> None:
    one_shot_done = threading.Event()

    def drive(w: Writer) -> None:
        i = 0
        while True:
            proc = sb.popen(w.argv(i))
            try:
                _, err = proc.communicate(timeout=timeout_s)
            except Exception as e:  # noqa: BLE001 - reported below
                proc.kill()
                w.errors.append(f"{type(e).__name__}: {e}")
                return
            if proc.returncode != 0:
                w.errors.append(f"exit {proc.returncode}: {err[-1500:]}")
            w.runs += 1
            i += 1
            if not w.loop or one_shot_done.is_set():
                return
            time.sleep(w.pause_s)

    loops = [threading.Thread(target=drive, args=(w,), daemon=True) for w in ws if w.loop]
    shots = [threading.Thread(target=drive, args=(w,), daemon=True) for w in ws if not w.loop]
    for t in shots + loops:
        t.start()
    for t in shots:
        t.join(timeout_s)
    one_shot_done.set()
    for t in loops:
        t.join(timeout_s)
    problems = {w.name: w.errors for w in ws if w.errors}
    assert not problems, problems
    assert all(w.runs >= 1 for w in ws)


def check_indexed_exactly_once(sb: Sandbox, expected_runs: int) -> dict:
    sb.run(sb.store("ingest"))
    runs = list_runs(sb.ws / "runs")
    assert len(runs) == expected_runs
    indexed = indexed_runs(sb.ws)  # one row per run: a run indexed twice would appear twice
    assert [r.run_id for r in indexed] == sorted(rd.run_id for rd in runs)
    assert {r.status for r in indexed} == {"completed"}
    metric_rows = 0
    for rd in runs:
        expected = len(rd.metrics())
        indexed_metrics = run_metrics(sb.ws, rd.run_id)
        got = indexed_metrics.height
        assert got == expected, (rd.run_id, got, expected)
        key = indexed_metrics.select("split", "epoch", "step", "name", "time")
        assert not key.is_duplicated().any(), rd.run_id
        metric_rows += expected
    sb.check({})
    return {"runs": len(runs), "metric_rows": metric_rows}


def test_four_runs_and_the_app_worker_with_a_rebuild_loop(tmp_path, tiny_arch, small_demo_dir):
    sb = Sandbox(tmp_path / "sb", tiny_arch, small_demo_dir / "demo")
    ws = writers(sb, n_runs=4, epochs=1, rebuild_loops=1, ingest_loops=0)
    run_writers(sb, ws)
    counts = check_indexed_exactly_once(sb, expected_runs=5)
    print(f"\nconcurrent: {counts}, " + ", ".join(f"{w.name} x{w.runs}" for w in ws))


@pytest.mark.long
def test_six_runs_and_the_app_worker_with_rebuild_and_ingest_loops(tmp_path, tiny_arch, small_demo_dir):
    sb = Sandbox(tmp_path / "sb", tiny_arch, small_demo_dir / "demo")
    ws = writers(sb, n_runs=6, epochs=2, rebuild_loops=2, ingest_loops=1)
    run_writers(sb, ws)
    counts = check_indexed_exactly_once(sb, expected_runs=7)
    print(f"\nconcurrent (long): {counts}, " + ", ".join(f"{w.name} x{w.runs}" for w in ws))
