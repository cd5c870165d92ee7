"""SIGKILL at random points of training, evaluation, a checkpoint save, a dataset build and
``store rebuild``, each a real ``python -m unirex`` process (tiny BERT, small demo dataset).

After every kill (:meth:`Sandbox.check`): every run folder reads (config, meta, metrics), a killed run
reads ``interrupted``, runs that had finished are byte-identical, a checkpoint is whole or absent, each
built split is a complete version (its Parquet file and summary carry the same fingerprint), the store
opens, and nothing was written outside the workspace, the data folder and the process's own
cwd/HOME/TMPDIR (which stay empty). At the end the next start cleans every leftover of the killed writers,
trains to completion, and ``store ingest`` indexes every run and metric row exactly once.

The fast suite (``make test-fast``) kills once per phase; ``make test`` kills five times per phase (25 kill
points, at least 20 of which must land) instead. The points are
drawn from a seeded generator (``UNIREX_KILL_SEED``): a delay after a marker that says the phase is
under way (the run folder exists, a ``.checkpoint-tmp-*`` folder appears, ...), spread over the
phase's measured length.
"""

from __future__ import annotations

import os
import random
import time

import pytest
from workbench_harness import Sandbox

from store import indexed_runs, run_metrics
from unirex.runs import list_runs


def _has_new_run(sb: Sandbox, before: set[str]):
    return lambda: any((p / "status.json").is_file() for p in sb.new_run_dirs(before))


def _saving_checkpoint(sb: Sandbox, before: set[str]):
    return lambda: any(c.name.startswith(".checkpoint-") for p in sb.new_run_dirs(before) for c in p.iterdir())


def _building(sb: Sandbox):
    return lambda: sb.build_dir().is_dir() and any("-tmp-" in p.name for p in sb.build_dir().iterdir())


def _rebuilding(sb: Sandbox):
    return lambda: any(p.name.startswith(".rebuild-") for p in sb.ws.iterdir())


def kill_campaign(sb: Sandbox, per_phase: int, rng: random.Random, measure: bool = True) -> list:
    # baselines: one complete run of each command (their lengths set the ranges the kill points come from);
    # without `measure`, only the training run (evaluation needs its checkpoint) and fixed ranges
    t = time.monotonic()
    sb.run(sb.train(epochs=2))
    (base_run,) = sb.run_ids()
    spans = {"train": time.monotonic() - t, "eval": 20.0, "build": 20.0, "rebuild": 4.0}
    if measure:
        for phase, argv in (("eval", sb.evaluate(base_run)), ("build", sb.build()), ("rebuild", sb.store("rebuild"))):
            t = time.monotonic()
            sb.run(argv)
            spans[phase] = time.monotonic() - t

    def plan(phase: str):
        before = {p.name for p in (sb.ws / "runs").iterdir()}
        if phase == "train":  # anywhere from the run folder's creation to the end
            return sb.train(epochs=2), _has_new_run(sb, before), rng.uniform(0, 0.4 * spans["train"])
        if phase == "checkpoint":  # inside a checkpoint save
            return sb.train(epochs=2), _saving_checkpoint(sb, before), rng.uniform(0, 0.05)
        if phase == "eval":
            return sb.evaluate(base_run), _has_new_run(sb, before), rng.uniform(0, 0.5 * spans["eval"])
        if phase == "build":  # from the start, or from the first cache write on
            if measure and rng.random() < 0.5:
                return sb.build(), None, rng.uniform(0, spans["build"])
            return sb.build(), _building(sb), rng.uniform(0, 0.5)
        return sb.store("rebuild"), _rebuilding(sb), rng.uniform(0, 0.5 * spans["rebuild"])

    kills = []
    for phase in ["train", "checkpoint", "eval", "build", "rebuild"] * per_phase:
        for _attempt in range(4):  # a kill point after the process ended is drawn again
            argv, marker, delay = plan(phase)
            finished = sb.finished_runs()
            k = sb.kill_at(phase, argv, delay, marker)
            sb.check(finished, k)
            if k.killed:
                kills.append(k)
                break
    return kills


def next_start_cleans_up_and_indexes_everything(sb: Sandbox) -> None:
    assert sb.leftovers() or True  # whatever the kills left ...
    sb.run(sb.train(epochs=1, seed=1))  # ... the next start removes it (fsutil.clean_workspace_leftovers)
    assert sb.leftovers() == [], sb.leftovers()
    sb.run(sb.store("ingest"))
    runs = list_runs(sb.ws / "runs")
    indexed = indexed_runs(sb.ws)  # one row per run: a run indexed twice would appear twice
    assert [r.run_id for r in indexed] == sorted(rd.run_id for rd in runs)
    for rd in runs:
        n = run_metrics(sb.ws, rd.run_id).height
        assert n == len(rd.metrics()), rd.run_id
    assert {r.status for r in indexed} <= {"completed", "interrupted"}
    sb.check({})


def _seed() -> int:
    return int(os.environ.get("UNIREX_KILL_SEED", "20261125"))


@pytest.mark.fast_variant
def test_kills_once_per_phase(tmp_path, tiny_arch, small_demo_dir):
    sb = Sandbox(tmp_path / "sb", tiny_arch, small_demo_dir / "demo")
    kills = kill_campaign(sb, per_phase=1, rng=random.Random(_seed()), measure=False)
    print(f"\n{len(kills)} kills: " + ", ".join(f"{k.phase}@{k.after_s:.2f}s (marker {k.marker_s:.2f}s)" for k in kills))
    assert {k.phase for k in kills} == {"train", "checkpoint", "eval", "build", "rebuild"}, [vars(k) for k in sb.log]
    next_start_cleans_up_and_indexes_everything(sb)


@pytest.mark.slow
def test_kills_25_at_random_points(tmp_path, tiny_arch, small_demo_dir):
    """25 kill points (5 per phase); on a loaded machine a point can still fall after its process ended four
    times in a row, so at least 20 kills must land."""
    sb = Sandbox(tmp_path / "sb", tiny_arch, small_demo_dir / "demo")
    kills = kill_campaign(sb, per_phase=5, rng=random.Random(_seed()))
    print(f"\n{len(kills)} kills: " + ", ".join(f"{k.phase}@{k.after_s:.2f}s (marker {k.marker_s:.2f}s)" for k in kills))
    assert len(kills) >= 20
    next_start_cleans_up_and_indexes_everything(sb)


def test_a_killed_rebuild_leaves_nothing_after_the_next_rebuild(tmp_path, tiny_arch, small_demo_dir):
    from unirex.runs import RunDir

    sb = Sandbox(tmp_path / "sb", tiny_arch, small_demo_dir / "demo")
    for i in range(30):  # enough runs that a rebuild takes a moment
        rd = RunDir.create(sb.ws / "runs", {"i": i}, {"method": "lm"})
        rd.log_metrics({"acc": 0.5}, split="dev")
        rd.set_status("completed")
    k = sb.kill_at("rebuild", sb.store("rebuild"), 0.0, _rebuilding(sb))
    assert k.killed and any(p.name.startswith(".rebuild-") for p in sb.ws.iterdir())
    sb.run(sb.store("rebuild"))
    assert not [p.name for p in sb.ws.iterdir() if p.name.startswith(".rebuild-")]
