"""Shared fixtures: a tiny randomly initialised BERT saved as a local arch, and small datasets."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item (``item.rep_call``), so a fixture can tell a failure."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


@pytest.fixture(scope="session")
def bundled_tokenizer():
    from unirex.arch import load_tokenizer

    return load_tokenizer("default")


@pytest.fixture(scope="session")
def tiny_arch(tmp_path_factory, bundled_tokenizer) -> str:
    """Path of a tiny BERT (2 layers, hidden 32) with the bundled tokenizer: usable as ``arch=``."""
    import torch
    from transformers import BertConfig, BertModel

    path = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(bundled_tokenizer), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=512)
    BertModel(config).save_pretrained(path)
    bundled_tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def small_demo_dir(tmp_path_factory) -> Path:
    """A data_dir holding a small demo dataset (``demo``: 64 / 32 / 32 examples)."""
    from unirex.data.demo import ensure_demo

    data_dir = tmp_path_factory.mktemp("data")
    ensure_demo(data_dir / "demo", sizes={"train": 64, "val": 32, "test": 32})
    return data_dir


@pytest.fixture(scope="session")
def toy_batch(small_demo_dir, tiny_arch):
    """``toy_batch(n)``: the first ``n`` demo train rows collated for the tiny BERT, with seeded
    ``teacher_scores`` (what FRESH and L2E read from a teacher run)."""
    import torch

    from unirex.data import load_split

    ds, _ = load_split(small_demo_dir, "demo", "train", arch=tiny_arch, max_length=64)

    def make(n: int) -> dict:
        b = ds.collate([ds[i] for i in range(n)])
        b["teacher_scores"] = torch.randn(b["input_ids"].shape, generator=torch.Generator().manual_seed(0))
        return b

    return make


@pytest.fixture(scope="session")
def small_heads() -> tuple[str, ...]:
    """Overrides that shrink the explainer heads (MLPs) to the tiny BERT's size."""
    return ("model.attr_mlp_hidden_dim=16", "model.expl_head_mlp_hidden_dim=16")


@pytest.fixture(scope="session")
def tiny_overrides(tiny_arch, small_demo_dir) -> tuple[str, ...]:
    """The overrides of a run on the tiny BERT and the small demo: short sequences, small batches."""
    return (f"arch={tiny_arch}", f"data_dir={small_demo_dir}", "data.max_length=64", "setup.train_batch_size=8",
            "setup.eval_batch_size=16")


@pytest.fixture
def common(tiny_overrides) -> list[str]:
    """:func:`tiny_overrides` as a fresh list for each test (tests append to it)."""
    return list(tiny_overrides)


def _wait(predicate: Callable[[], bool], timeout: float = 180.0, what: str = "condition") -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="session")
def wait_until() -> Callable[..., None]:
    """``wait_until(predicate, timeout=180.0, what=...)``: poll every 0.1 s until ``predicate()`` holds,
    fail the test after ``timeout`` seconds naming ``what``."""
    return _wait


@pytest.fixture(scope="module")
def trained(request, tmp_path_factory, tiny_overrides):
    """``(workspace, RunResult)``: a completed SLM (plaus) run with a checkpoint, in its own workspace, run
    once per module with :func:`tiny_overrides`, then the module's ``TRAINED_OVERRIDES`` (it names the
    method and what the module needs of the run), recorded with the module's ``TRAINED_COMMAND`` if any."""
    from unirex.engine import resolve_run_config, run

    ws = tmp_path_factory.mktemp("ws-trained")
    extra = getattr(request.module, "TRAINED_OVERRIDES")
    res = run(resolve_run_config([*tiny_overrides, f"workspace={ws}", *extra]),
              command=getattr(request.module, "TRAINED_COMMAND", None))
    assert res.status == "completed"
    return ws, res


def pytest_collection_modifyitems(config, items):
    """Leave out the ``fast_variant`` tests when the slow tests they shorten are selected too (``make test``):
    the slow campaign covers what they cover."""
    if not any(item.get_closest_marker("slow") for item in items):
        return
    keep = [item for item in items if not item.get_closest_marker("fast_variant")]
    dropped = [item for item in items if item.get_closest_marker("fast_variant")]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
