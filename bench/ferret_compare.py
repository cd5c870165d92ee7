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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ferret-python", default="/tmp/ferret-venv/bin/python")
    p.add_argument("--ckpt", help="a run id or checkpoint folder of a Task LM (default: train one here)")
    p.add_argument("--examples", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--workspace", default=str(ROOT / "bench" / "out" / "ferret-ws"))
    p.add_argument("--ferret-side", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.ferret_side:
        return ferret_side(args.ferret_side)

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
    out = subprocess.run([args.ferret_python, __file__, "--ferret-side", str(spec_path)], capture_output=True, text=True)
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
