"""Our batched comprehensiveness + sufficiency against ferret-xai's ``Benchmark.evaluate_explanations``.

ferret-xai is a peer used for this benchmark only: it is not in requirements.txt and lives in its own
virtual environment (``torch==2.13.0``, ``pyarrow<17``, ``ferret-xai``), named by ``--ferret-python``:

    python3 -m venv /tmp/ferret-venv && /tmp/ferret-venv/bin/pip install torch==2.13.0 "pyarrow<17" ferret-xai
    python bench/ferret_compare.py --ferret-python /tmp/ferret-venv/bin/python [--ckpt RUN_OR_FOLDER] [--examples 100]

Both sides score the same Task LM checkpoint (trained here on the demo data when ``--ckpt`` is not
given), the same demo test texts and the same input-x-gradient scores (computed once, here), with the same
bins (1, 5, 10, 20, 50 % of the tokens, deleted). Ours computes task + comprehensiveness + sufficiency +
plausibility; ferret's evaluators are restricted to AOPC comprehensiveness and sufficiency. The ratio is
ferret's seconds over ours, measured in one invocation on the same machine. Writes
``bench/out/ferret_compare.json``.

``--what throughput`` (also part of ``--what all``, the default) compares explanation throughput instead:
examples explained per second by ``python -m unirex explain --file`` (:meth:`workbench.Workbench.explain_file`:
texts batched by length with the evaluator's packing, one model load) against ferret's explainer of the same
algorithm called text by text, for input x gradient, integrated gradients (50 steps on both sides) and LIME, on
texts of ~64 and ~256 subwords, one checkpoint of the bundled MiniLM (as initialised: throughput does not
depend on training). Each algorithm is picked by its registry name (``model.attr_algo``); a name not
registered in this checkout is skipped with a message. The ratio is ours over ferret's examples/s.

The ferret venv is made on first use when ``--ferret-python`` is not given (``bench/.ferret-venv``:
``torch==2.13.0``, the torch this project pins, so pip does not pull another; ``pyarrow<17``; ``ferret-xai``).

    python bench/ferret_compare.py --what throughput [--threads 1] [--examples-64 32] [--examples-256 16]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BINS = [1, 5, 10, 20, 50]


def ferret_side(spec_path: str) -> None:
    """Runs inside the ferret venv: rebuild the task LM from its safetensors, time ferret."""
    from types import SimpleNamespace

    import numpy as np
    import torch
    from ferret import Benchmark
    from ferret.evaluators.faithfulness_measures import AOPC_Comprehensiveness_Evaluation, AOPC_Sufficiency_Evaluation
    from ferret.explainers.explanation import Explanation
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(spec["threads"])
    folder = Path(spec["task_lm"])

    class TaskLM(torch.nn.Module):  # encoder + linear over the pooled output, as unirex.models.TaskLM
        def __init__(self):
            super().__init__()
            head = load_file(str(folder / "task_head.safetensors"))
            meta = json.loads((folder / "task_head.json").read_text())
            self.pooling = meta.get("pooling", "first_token")  # checkpoints without it read the first token
            self.encoder = AutoModel.from_pretrained(folder, use_safetensors=True)
            self.classifier = torch.nn.Linear(head["classifier.weight"].shape[1], head["classifier.weight"].shape[0])
            self.classifier.load_state_dict({"weight": head["classifier.weight"], "bias": head["classifier.bias"]})
            self.config = self.encoder.config

        @property
        def device(self):
            return next(self.parameters()).device

        def get_input_embeddings(self):
            return self.encoder.get_input_embeddings()

        def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, inputs_embeds=None,
                    output_hidden_states=False, **_):
            out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                               inputs_embeds=inputs_embeds)
            pooled = out.pooler_output if self.pooling == "pooler" else out.last_hidden_state[:, 0]
            return SimpleNamespace(logits=self.classifier(pooled), hidden_states=None)

    if (folder / "task_head.safetensors").is_file():  # archs whose Hugging Face head differs, older checkpoints
        model = TaskLM().eval()
    else:  # the task LM is the arch's own sequence classifier (unirex.models.hf_layout)
        model = AutoModelForSequenceClassification.from_pretrained(folder, use_safetensors=True).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    bench = Benchmark(model, tok, explainers=[], evaluators=[AOPC_Comprehensiveness_Evaluation(model, tok),
                                                             AOPC_Sufficiency_Evaluation(model, tok)])
    removal = {"remove_tokens": True, "based_on": "perc", "thresholds": [k / 100 for k in BINS]}
    t0 = time.perf_counter()
    comp, suff = [], []
    for ex in spec["examples"]:
        # ferret's only_pos=False path fails on numpy arrays (ValueError in _get_id_tokens_top_k), and
        # only_pos=True keeps positive scores only: shift the scores positive, which keeps their ranking
        s = np.asarray(ex["scores"], dtype=np.float64)
        s = s - s.min() + 1e-6
        expl = Explanation(ex["text"], tok.convert_ids_to_tokens(ex["input_ids"]), s, "input-x-gradient", ex["pred"])
        ev = bench.evaluate_explanations([expl], target=ex["pred"], show_progress=False, removal_args=removal)[0]
        scores = {e.name: e.score for e in ev.evaluation_scores}
        comp.append(scores["aopc_compr"])
        suff.append(scores["aopc_suff"])
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "comp_aopc": float(np.mean(comp)), "suff_aopc": float(np.mean(suff))}))


#: registry name (ours) -> ferret's explainer class and its arguments
FERRET_EXPLAINERS = {"input-x-gradient": ("GradientExplainer", {"multiply_by_inputs": True}),
                     "integrated-gradients": ("IntegratedGradientExplainer", {"multiply_by_inputs": True}),
                     "lime": ("LIMEExplainer", {})}
LENGTHS = (64, 256)
VENV = ROOT / "bench" / ".ferret-venv"
FERRET_REQUIREMENTS = ("torch==2.13.0", "pyarrow<17", "ferret-xai")


def ensure_ferret_venv() -> str:
    """The ferret venv's python, the venv made (and ferret installed) on first use."""
    py = VENV / "bin" / "python"
    if not py.exists():
        print(f"making {VENV} ({' '.join(FERRET_REQUIREMENTS)}) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *FERRET_REQUIREMENTS], check=True)
    return str(py)


def _load_for_ferret(folder: Path):
    import torch  # noqa: F401
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    return (AutoModelForSequenceClassification.from_pretrained(folder, use_safetensors=True).eval(),
            AutoTokenizer.from_pretrained(folder))


def ferret_throughput_side(spec_path: str) -> None:
    """Runs inside the ferret venv: each cell's texts explained one by one by ferret's explainer, timed."""
    import torch
    import ferret

    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(spec["threads"])
    model, tok = _load_for_ferret(Path(spec["task_lm"]))
    out = {}
    for cell in spec["cells"]:
        cls_name, kwargs = FERRET_EXPLAINERS[cell["algo"]]
        explainer = getattr(ferret, cls_name)(model, tok, **kwargs)
        # ferret reads an explainer's options from call_args (a top-level num_samples is ignored, and its LIME then
        # draws min(#tokens^2, 5000) samples), and pops them from that dict: a fresh one for every call
        def call() -> dict:
            return ({"call_args": {"num_samples": cell["lime_samples"]}}
                    if cell["algo"] == "lime" and cell["lime_samples"] else {})

        explainer(cell["texts"][0], target=cell["targets"][0], **call())  # warm-up
        t0 = time.perf_counter()
        for text, target in zip(cell["texts"], cell["targets"]):
            explainer(text, target=target, **call())
        seconds = time.perf_counter() - t0
        out[cell["key"]] = {"seconds": seconds, "examples": len(cell["texts"])}
    print(json.dumps(out))


def make_texts(tokenizer, subwords: int, n: int, seed: int = 0) -> list[str]:
    """``n`` distinct texts of about ``subwords`` subwords each, [CLS] and [SEP] included."""
    import random

    from bench.explain_speed import TEXT

    rng = random.Random(seed)
    words = TEXT.split()
    out = []
    for _ in range(n):
        pool = words[:]
        text: list[str] = []
        while len(tokenizer(" ".join(text))["input_ids"]) < subwords:
            if not pool:
                pool = words[:]
            text.append(pool.pop(rng.randrange(len(pool))))
        out.append(" ".join(text))
    return out


def throughput(args, ferret_python: str) -> dict:
    """Ours (explain --file's path) against ferret, every algorithm x length, in one invocation."""
    import torch

    from bench.explain_speed import make_checkpoint
    from unirex.registry import DEFAULT_N_SAMPLES, attribution_names, get_attribution
    from workbench import Workbench
    from workbench.batch_explain import BatchInput
    from unirex.text_input import TextInput

    torch.set_num_threads(args.threads)
    ws = Path(args.workspace)
    ws.mkdir(parents=True, exist_ok=True)
    ck = ws / "throughput-ckpt"
    if not (ck / "checkpoint.json").exists():
        make_checkpoint(ck, "task_lm")  # the bundled MiniLM as initialised, max length 256 subwords
    wb = Workbench(ws)
    loaded = wb.checkpoints.get(str(ck))
    tok = loaded.tokenizer
    registered = set(attribution_names(post_hoc=True))
    sizes = {64: args.examples_64, 256: args.examples_256}
    ours, theirs, skipped = {}, {}, {}
    for algo in args.algos:
        if algo not in registered:
            skipped[algo] = (f"'{algo}' is not registered in this checkout (model.attr_algo: "
                             f"{', '.join(sorted(registered))}); it runs once the branch registering it is merged")
            print(f"skip {algo}: {skipped[algo]}", file=sys.stderr)
            continue
        # LIME: both sides draw as many samples as ours does by default (model.attr_n_samples unset)
        samples = (get_attribution(algo).defaults.get("n_samples") or DEFAULT_N_SAMPLES) if algo == "lime" else None
        for length in LENGTHS:
            n = max(1, sizes[length] // (4 if algo != "input-x-gradient" else 1))
            texts = make_texts(tok, min(length, loaded.max_length), n, seed=length)
            inputs = [BatchInput(i, str(i), i + 1, TextInput((t,))) for i, t in enumerate(texts)]
            out = ws / f"ours-{algo}-{length}.jsonl"
            key = f"{algo}@{length}"
            wb.explain_file(str(ck), inputs[:1], out, extractor=algo, batch_size=args.batch_size, overwrite=True)  # warm-up
            # the two sides alternate, each cell `--repeats` times, and each keeps its best time: on a shared
            # machine the load changes within minutes, and measuring all of one side first would time it
            for _ in range(args.repeats if algo == "input-x-gradient" else 1):
                res = wb.explain_file(str(ck), inputs, out, extractor=algo, batch_size=args.batch_size, overwrite=True)
                rows = [json.loads(x) for x in out.read_text().splitlines()]
                if key not in ours or res.seconds < ours[key]["seconds"]:
                    ours[key] = {"seconds": res.seconds, "examples": res.rows,
                                 "mean_subwords": sum(r["n_subwords"] for r in rows) / len(rows)}
                cell = {"key": key, "algo": algo, "texts": texts, "targets": [r["label"] for r in rows],
                        "lime_samples": samples}
                spec_path = ws / "ferret_throughput_spec.json"
                spec_path.write_text(json.dumps({"task_lm": str(ck / "task_lm"), "threads": args.threads,
                                                 "cells": [cell]}))
                proc = subprocess.run([ferret_python, __file__, "--ferret-throughput-side", str(spec_path)],
                                      capture_output=True, text=True)
                if proc.returncode != 0:
                    raise SystemExit(f"ferret side failed:\n{proc.stderr[-3000:]}")
                t = json.loads(proc.stdout.strip().splitlines()[-1])[key]
                if key not in theirs or t["seconds"] < theirs[key]["seconds"]:
                    theirs[key] = t
                print(f"{key:28s} ours {res.rows / res.seconds:8.2f}  ferret {t['examples'] / t['seconds']:8.2f} "
                      "examples/s", file=sys.stderr)
    table = []
    for key, o in ours.items():
        t = theirs[key]
        ours_eps, theirs_eps = o["examples"] / o["seconds"], t["examples"] / t["seconds"]
        table.append({"cell": key, "mean_subwords": round(o["mean_subwords"], 1), "examples": o["examples"],
                      "ours_examples_per_s": ours_eps, "ferret_examples_per_s": theirs_eps,
                      "ratio_ours_over_ferret": ours_eps / theirs_eps})
    print(f"{'algorithm @ subwords':28s} {'subwords':>8s} {'n':>4s} {'ours ex/s':>10s} {'ferret ex/s':>12s} {'ratio':>7s}")
    for r in table:
        print(f"{r['cell']:28s} {r['mean_subwords']:8.1f} {r['examples']:4d} {r['ours_examples_per_s']:10.2f} "
              f"{r['ferret_examples_per_s']:12.2f} {r['ratio_ours_over_ferret']:6.2f}x")
    for algo, why in skipped.items():
        print(f"{algo}: skipped: {why}")
    return {"date": time.strftime("%Y-%m-%d"), "threads": args.threads, "batch_size": args.batch_size,
            "repeats": args.repeats,
            "cells": table, "skipped": skipped}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ferret-python", help=f"python of a venv with ferret-xai (default: {VENV}, made on first use)")
    p.add_argument("--ckpt", help="a run id or checkpoint folder of a Task LM (default: train one here)")
    p.add_argument("--examples", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--workspace", default=str(ROOT / "bench" / "out" / "ferret-ws"))
    p.add_argument("--what", choices=("faithfulness", "throughput", "all"), default="all",
                   help="faithfulness: comp/suff against ferret's evaluators; throughput: explanation examples/s")
    p.add_argument("--algos", nargs="+", default=list(FERRET_EXPLAINERS), help="registry names (throughput)")
    p.add_argument("--examples-64", dest="examples_64", type=int, default=32,
                   help="texts of ~64 subwords per algorithm (integrated gradients and LIME a quarter of it)")
    p.add_argument("--examples-256", dest="examples_256", type=int, default=16, help="texts of ~256 subwords, as above")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=32, help="ours: explain --file's --batch-size")
    p.add_argument("--repeats", type=int, default=3, help="input x gradient cells: best of this many alternations")
    p.add_argument("--ferret-side", help=argparse.SUPPRESS)
    p.add_argument("--ferret-throughput-side", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.ferret_side:
        return ferret_side(args.ferret_side)
    if args.ferret_throughput_side:
        return ferret_throughput_side(args.ferret_throughput_side)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(ROOT))
    ferret_python = args.ferret_python or ensure_ferret_venv()
    if args.what in ("throughput", "all"):
        result = throughput(args, ferret_python)
        (ROOT / "bench" / "out").mkdir(parents=True, exist_ok=True)
        (ROOT / "bench" / "out" / "ferret_throughput.json").write_text(json.dumps(result, indent=2))
        if args.what == "throughput":
            return

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(ROOT))
    import torch

    from unirex.checkpoint import load_checkpoint, resolve_checkpoint
    from unirex.data import SplitDataset, load_split
    from unirex.engine import resolve_run_config, run
    from unirex.evaluate import evaluate

    torch.set_num_threads(args.threads)
    ws = Path(args.workspace)
    ckpt_ref = args.ckpt
    if not ckpt_ref:
        res = run(resolve_run_config([f"workspace={ws}", "data=demo", "method=task_lm", "data.num_train=600",
                                      "data.max_length=128", "setup.train_batch_size=8", "model.optimizer.lr=5e-5",
                                      "training.epochs=1", "training.eval_splits=test", "save_checkpoint=True"]))
        ckpt_ref = res.run_id
    ckpt = resolve_checkpoint(ckpt_ref, ws / "runs")
    model, cfg, _ = load_checkpoint(ckpt)
    model.eval()
    full, built = load_split(ws / "data", "demo", "test", arch=cfg.arch, max_length=cfg.data.max_length)
    ds = SplitDataset(full.table.head(args.examples), full.pad_token_id, full.labels)
    batch = ds.collate([ds[i] for i in range(len(ds))])
    scores = model.explain(batch)  # input-x-gradient of the predicted class, computed once for both sides
    lengths = ds.table["input_ids"].list.len().to_list()
    per_row = [scores[i, :n].tolist() for i, n in enumerate(lengths)]
    with torch.no_grad():
        preds = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                      token_type_ids=batch["token_type_ids"]).argmax(-1).tolist()

    t0 = time.perf_counter()
    ours = evaluate(model, ds, per_row, batch_size=32, bins=BINS)
    our_s = time.perf_counter() - t0

    from unirex.data.eraser import DocumentStore

    docs = DocumentStore(ws / "data" / "demo")
    examples = [{"text": " ".join(w for d in row["docids"] for w in docs.get(d).words), "input_ids": row["input_ids"],
                 "scores": s, "pred": pr} for row, s, pr in zip(ds.table.iter_rows(named=True), per_row, preds)]
    spec_path = ws / "ferret_spec.json"
    spec_path.write_text(json.dumps({"task_lm": str(ckpt / "task_lm"), "threads": args.threads, "examples": examples}))
    out = subprocess.run([ferret_python, __file__, "--ferret-side", str(spec_path)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"ferret side failed:\n{out.stderr[-3000:]}")
    theirs = json.loads(out.stdout.strip().splitlines()[-1])
    result = {"date": time.strftime("%Y-%m-%d"), "examples": len(ds), "threads": args.threads, "bins": BINS,
              "ours_seconds": our_s, "ferret_seconds": theirs["seconds"], "ratio_ferret_over_ours": theirs["seconds"] / our_s,
              "ours_comp_aopc": ours.metrics["comp_aopc"], "ours_suff_aopc": ours.metrics["suff_aopc"],
              "ferret_comp_aopc": theirs["comp_aopc"], "ferret_suff_aopc": theirs["suff_aopc"]}
    print(json.dumps(result, indent=2))
    (ROOT / "bench" / "out").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench" / "out" / "ferret_compare.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
