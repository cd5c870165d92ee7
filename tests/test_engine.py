"""The engine and the CLI on a tiny BERT and a small demo set: every mode, the FRESH/L2E chain,
cancel, a killed process, reproducibility, the paper's command lines, two processes under torchrun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from store import db, index_counts, indexed_runs
from cli import main
from unirex.engine import resolve_run_config, run
from unirex.errors import UnirexError
from unirex.runs import RunDir, list_runs

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def base(tmp_path, common):
    return common + [f"workspace={tmp_path}"]


def _metric(rd: RunDir, split: str, name: str, epoch="any"):
    vals = [m["value"] for m in rd.metrics() if m["split"] == split and m["name"] == name
            and (epoch == "any" or m["epoch"] == epoch)]
    return vals[-1] if vals else None


def test_train_then_evaluate_reproduces_dev_metrics_then_finetune(base, tmp_path):
    res = run(resolve_run_config(base + ["training.epochs=2", "save_checkpoint=True"]))
    assert res.status == "completed" and res.best_epoch in (0, 1)
    rd = RunDir(res.run_dir)
    ck = rd.checkpoint_dir
    assert (ck / "task_lm" / "model.safetensors").is_file() and (ck / "task_lm" / "config.json").is_file()
    assert (ck / "extractor.safetensors").is_file() and not list(ck.rglob("*.bin")) and not list(ck.rglob("*.pt"))
    # two dev evaluations during training, one per epoch, with every metric family
    dev_epochs = sorted({m["epoch"] for m in rd.metrics() if m["split"] == "dev" and m["epoch"] is not None})
    assert dev_epochs == [0, 1]
    for name in ("acc", "macro_f1", "comp_aopc", "suff_aopc", "plaus_auprc", "plaus_token_f1", "plaus_iou_f1"):
        assert _metric(rd, "dev", name, epoch=res.best_epoch) is not None, name
    # a plain transformers load of the task LM works
    from transformers import AutoModel, AutoTokenizer

    AutoModel.from_pretrained(ck / "task_lm")
    AutoTokenizer.from_pretrained(ck / "task_lm")

    ev = run(resolve_run_config([f"workspace={tmp_path}", "training=evaluate", f"training.ckpt_path={res.run_id}",
                                 "training.eval_splits='dev'"]))
    assert ev.status == "completed"
    for name in ("acc", "comp_aopc", "suff_aopc", "plaus_auprc"):
        assert ev.metrics[f"dev_{name}"] == pytest.approx(_metric(rd, "dev", name, epoch=res.best_epoch), abs=1e-6), name
    assert RunDir(ev.run_dir).meta()["parent_run"] == res.run_id
    assert RunDir(ev.run_dir).meta()["mode"] == "evaluate"

    ft = run(resolve_run_config([f"workspace={tmp_path}", "training=finetune", f"training.ckpt_path={res.run_id}",
                                 "training.epochs=1"]))
    assert ft.status == "completed" and RunDir(ft.run_dir).meta()["parent_run"] == res.run_id
    db.ingest_all(tmp_path)
    assert sorted(r.mode for r in indexed_runs(tmp_path)) == ["evaluate", "finetune", "train"]


def test_seed_makes_a_cpu_run_reproducible(base):
    def metrics(seed):
        res = run(resolve_run_config(base + ["debug=True", f"seed={seed}", "model=expl_reg"]))
        return [(m["split"], m["epoch"], m["step"], m["name"], m["value"]) for m in RunDir(res.run_dir).metrics()
                if not m["name"].endswith("_per_s")]  # timings differ, the numbers must not

    a, b, c = metrics(0), metrics(0), metrics(1)
    assert a == b
    assert a != c


def test_chain_save_outputs_fresh_l2e(base, tmp_path):
    """The paper's FRESH recipe: train a Task LM with a checkpoint, evaluate it with save_outputs under its
    exp_id (the paper's quoted checkpoint path), then FRESH and L2E name the training run."""
    teacher = run(resolve_run_config(base + ["debug=True", "save_checkpoint=True"]))
    assert main(["--no-progress", *base, "logger.offline=True", "training=evaluate",
                 f"training.ckpt_path=\"'{teacher.run_id}/checkpoints/epoch=0-step=4.ckpt'\"",
                 "training.eval_splits=\"'train,dev,test'\"", "model=lm", "model.explainer_type=attr_algo",
                 "model.attr_algo=input-x-gradient", "model.save_outputs=True", f"model.exp_id={teacher.run_id}"]) == 0
    evaluator = [r for r in list_runs(tmp_path / "runs") if r.run_id != teacher.run_id][0]
    outs = {p.name for p in (evaluator.path / "outputs").iterdir()}
    assert {"attrs_train.parquet", "attrs_dev.parquet", "attrs_test.parquet", "eval_train.parquet"} <= outs

    fresh = run(resolve_run_config(base + ["debug=True", "model=fresh", f"data.fresh_exp_id={teacher.run_id}",
                                           "data.fresh_topk=20", "data.fresh_attr_algo=input-x-gradient"]))
    assert fresh.status == "completed" and fresh.metrics["test_acc"] is not None
    # scored as UNIREX's FRESH config: one bin of 100% of the pruned input, sufficiency 0 by construction
    assert fresh.metrics["test_suff_k100"] == 0.0 and "test_comp_k100" in fresh.metrics
    assert "test_comp_k10" not in fresh.metrics

    l2e = run(resolve_run_config(base + ["debug=True", "method=l2e", f"data.l2e_exp_id={teacher.run_id}",
                                         "data.l2e_attr_algo=input-x-gradient"]))
    assert l2e.status == "completed"
    rd = RunDir(l2e.run_dir)
    assert _metric(rd, "train", "l2e_loss") is not None and rd.meta()["method"] == "l2e"

    with pytest.raises(UnirexError, match="saved 'input-x-gradient' attributions"):
        run(resolve_run_config(base + ["debug=True", "model=fresh", f"data.fresh_exp_id={teacher.run_id}",
                                       "data.fresh_topk=20", "data.fresh_attr_algo=integrated-gradients"]))


def test_a2r_with_partial_supervision_trains_and_scores_select_then_predict(base):
    res = run(resolve_run_config(base + ["debug=True", "method=a2r", "data.plaus_frac=0.25",
                                         "model.expl_head_mlp_hidden_dim=16"]))
    assert res.status == "completed"
    rd = RunDir(res.run_dir)
    assert _metric(rd, "train", "a2r_loss") is not None and _metric(rd, "train", "plaus_loss") is not None
    assert res.metrics["test_suff_aopc"] == 0.0 and res.metrics["test_comp_aopc"] is not None
    assert rd.meta()["method"] == "a2r"


def test_cancel_mid_epoch_leaves_a_consistent_run(base):
    cancel = threading.Event()
    events = []

    def on_event(ev):
        events.append(ev.kind)
        if ev.kind == "step" and ev.step == 3:
            cancel.set()

    res = run(resolve_run_config(base + ["training.epochs=3", "save_checkpoint=True"]), callback=on_event, cancel=cancel)
    assert res.status == "cancelled"
    rd = RunDir(res.run_dir)
    assert rd.status()["status"] == "cancelled" and rd.effective_status() == "cancelled"
    assert events.count("step") == 3 and events[-1] == "done"
    assert rd.config()["seed"] == 0 and rd.meta()["run_id"] == res.run_id
    assert not list(rd.path.glob(".*"))  # no half-written temporary files


def test_killed_process_is_interrupted_after_ingest(base, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "unirex", "--no-progress", *base, "training.epochs=50"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            runs = list_runs(tmp_path / "runs")
            if runs and runs[0].metrics():
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the training process wrote no metrics within 120 s")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    db.ingest_all(tmp_path)
    assert [r.status for r in indexed_runs(tmp_path)] == ["interrupted"]


def test_cli_paper_multirun_line(base, tmp_path, capsys):
    """A UNIREX README command, pasted after `python -m unirex` (debug to keep it short)."""
    line = ("-m data=demo model=lm model.explainer_type=attr_algo model.attr_algo=input-x-gradient "
            "model.attr_pooling=sum model.optimizer.lr=2e-5 setup.train_batch_size=8 setup.accumulate_grad_batches=1 "
            "setup.eff_train_batch_size=8 setup.eval_batch_size=16 setup.num_workers=0 logger.offline=True "
            "debug=True seed=0,1").split()
    assert main(["--no-progress", *base, *line]) == 0
    out = capsys.readouterr().out
    assert "summary" in out and out.count("[completed]") == 2
    table = out.split("summary", 1)[1]
    assert "seed" in table and "acc" in table
    assert len(list_runs(tmp_path / "runs")) == 2
    assert index_counts(tmp_path).runs == 2  # indexed as they finished


def test_cli_errors_come_before_compute(base, tmp_path, capsys):
    assert main([*base, "model.comp_wieght=0.5"]) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'model.comp_wieght'" in err and "model.comp_wt" in err
    assert main([*base, "seed=0,1"]) == 2
    assert "needs -m" in capsys.readouterr().err
    assert main([*base, "setup.train_batch_size=8", "setup.eff_train_batch_size=12", "setup.accumulate_grad_batches=2"]) == 2
    assert "eff_train_batch_size" in capsys.readouterr().err
    assert main([*base, "training=evaluate", "training.ckpt_path=R-none"]) == 2
    assert "neither a checkpoint folder nor a run id" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() or not list_runs(tmp_path / "runs")


def test_plaus_without_gold_rationales_is_an_error(tmp_path, tiny_arch):
    from unirex.data.eraser import write_dataset

    docs = {f"d{i}": [["good" if i % 2 else "bad", "film", "."]] for i in range(8)}
    anns = [{"annotation_id": f"d{i}", "classification": "POS" if i % 2 else "NEG", "evidences": []} for i in range(8)]
    write_dataset(tmp_path / "data" / "nogold", {"train": anns, "val": anns[:4], "test": anns[4:]}, docs)
    cfg = resolve_run_config([f"arch={tiny_arch}", f"workspace={tmp_path}", "data=nogold", "data.max_length=16",
                              "method=slm_plaus_linear"])
    with pytest.raises(UnirexError, match="needs gold rationales, but dataset 'nogold' has none"):
        run(cfg)
    assert not (tmp_path / "runs").exists()


def test_torchrun_two_processes_one_run(base, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "unirex", "--no-progress", *base, "training.epochs=1", "save_checkpoint=True"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = list_runs(tmp_path / "runs")
    assert len(runs) == 1
    rd = runs[0]
    assert rd.status()["status"] == "completed" and rd.meta()["world_size"] == 2
    steps = [m["step"] for m in rd.metrics() if m["split"] == "train" and m["name"] == "loss"]
    assert max(steps) == 4  # 64 examples / 2 processes / batch 8: 4 steps per process
    assert _metric(rd, "test", "acc") is not None
    assert (rd.checkpoint_dir / "task_lm" / "model.safetensors").is_file()
    assert json.loads((rd.checkpoint_dir / "checkpoint.json").read_text())["run_id"] == rd.run_id


def test_measure_attrs_runtime_is_stored_with_the_run(base):
    res = run(resolve_run_config(base + ["debug=True", "model.measure_attrs_runtime=True",
                                         "model.attr_algo=integrated-gradients", "model.ig_steps=8"]))
    ms = _metric(RunDir(res.run_dir), "dev", "attrs_runtime_ms")
    assert ms is not None and ms > 0 and res.metrics["attrs_runtime_ms"] == ms
