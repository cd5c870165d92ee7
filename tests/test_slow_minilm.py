"""Slow integration tests on the real bundled MiniLM and the full demo dataset (minutes, still in `make test`).

- Task LM (input-x-gradient explanations) reaches test accuracy >= 0.90 after one seeded epoch.
- SLM (plaus) gives clearly more plausible rationales (test AUPRC) than Task LM + input-x-gradient.
"""

from __future__ import annotations

import pytest

from unirex.engine import resolve_run_config, run

pytestmark = pytest.mark.slow
COMMON = ["data=demo", "arch=default", "data.max_length=128", "training.epochs=1", "setup.train_batch_size=16",
          "setup.eval_batch_size=32", "model.optimizer.lr=5e-5", "training.eval_splits=test", "seed=0"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return tmp_path_factory.mktemp("minilm-ws")


@pytest.fixture(scope="module")
def task_lm_run(workspace):
    res = run(resolve_run_config(COMMON + [f"workspace={workspace}", "method=task_lm"]))
    assert res.status == "completed"
    return res


def test_task_lm_learns_the_demo_in_one_epoch(task_lm_run):
    acc = task_lm_run.metrics["test_acc"]
    print(f"Task LM test acc {acc:.4f}, AUPRC {task_lm_run.metrics['test_plaus_auprc']:.4f}")
    assert acc >= 0.90


def test_slm_plaus_is_more_plausible_than_input_x_gradient(workspace, task_lm_run):
    slm = run(resolve_run_config(COMMON + [f"workspace={workspace}", "method=slm_plaus_linear"]))
    assert slm.status == "completed"
    base, ours = task_lm_run.metrics["test_plaus_auprc"], slm.metrics["test_plaus_auprc"]
    print(f"test AUPRC: Task LM + input-x-gradient {base:.4f}, SLM (plaus) {ours:.4f}; SLM acc {slm.metrics['test_acc']:.4f}")
    assert ours >= base + 0.15
    assert slm.metrics["test_acc"] >= 0.85  # plausibility training does not cost the task
