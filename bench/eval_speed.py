"""Speed of the full ERASER evaluation (faithfulness + plausibility) against the naive floor.

The naive floor: 11 plain full-length forward passes per example (the original input and the 2 x 5
perturbed variants, each padded to the batch's full length), at the same batch size, measured in the
same process right beside the evaluation. The evaluation (:func:`unirex.evaluate.evaluate`) deletes
tokens, re-packs and buckets the variants by length; it is timed end to end (perturbation, forwards,
word pooling, every metric) with precomputed rationale scores, so the explainer's own cost is not
counted on either side.

Model: the bundled all-MiniLM-L6-v2 (arch ``default``) with a linear head. Inputs: synthetic
documents of exactly 64 and 256 subwords ([CLS] + real word pieces + [SEP]) with a random 20 % gold
rationale. Prints a table and writes ``bench/out/eval_speed.json``.

    python bench/eval_speed.py [--lengths 64 256] [--examples 64 32] [--batch-size 32 16] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unirex.arch import load_tokenizer, resolve_arch  # noqa: E402
from unirex.data import SplitDataset  # noqa: E402
from unirex.evaluate import evaluate  # noqa: E402


class Classifier(torch.nn.Module):
    def __init__(self, arch: str = "default", num_labels: int = 2):
        from transformers import AutoModel

        super().__init__()
        torch.manual_seed(0)
        self.encoder = AutoModel.from_pretrained(resolve_arch(arch))
        self.head = torch.nn.Linear(self.encoder.config.hidden_size, num_labels)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        h = self.encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
        return self.head(h[:, 0])


def synthetic_split(tokenizer, n: int, length: int, seed: int = 0) -> SplitDataset:
    """``n`` examples of exactly ``length`` subwords; each document subword is its own 'word'."""
    from unirex.data.demo import generate_demo_splits

    splits, documents = generate_demo_splits({"train": 50, "val": 1, "test": 1}, seed=seed)
    texts = [" ".join(" ".join(s) for s in doc) for doc in documents.values()]
    pieces = [i for ids in tokenizer(texts, add_special_tokens=False)["input_ids"] for i in ids]
    rng = np.random.default_rng(seed)
    body = length - 2
    rows = []
    for i in range(n):
        start = int(rng.integers(0, len(pieces) - body))
        ids = [tokenizer.cls_token_id] + pieces[start : start + body] + [tokenizer.sep_token_id]
        gold = (rng.random(body) < 0.2).astype(int).tolist()
        rows.append({
            "annotation_id": f"syn{i}", "docids": [f"syn{i}"], "doc_word_counts": [body], "query": "",
            "label_name": "POS", "input_ids": ids, "attention_mask": [1] * length, "token_type_ids": [0] * length,
            "word_ids": [-1] + list(range(body)) + [-1], "explainable": [0] + [1] * body + [0],
            "rationale": [0] + gold + [0], "rationale_words": gold, "has_rationale": True, "truncated": False,
            "label": int(i % 2),
        })
    return SplitDataset(pl.DataFrame(rows), tokenizer.pad_token_id, ["NEG", "POS"])


@torch.no_grad()
def naive_floor(model, ds: SplitDataset, batch_size: int, device) -> float:
    """Seconds for 11 full-length forward passes per batch over the whole split."""
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, collate_fn=ds.collate)
    t0 = time.perf_counter()
    for batch in loader:
        kw = {k: batch[k].to(device) for k in ("input_ids", "attention_mask", "token_type_ids")}
        for _ in range(11):
            torch.softmax(model(**kw).double(), dim=-1).cpu()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lengths", type=int, nargs="+", default=[64, 256])
    p.add_argument("--examples", type=int, nargs="+", default=[64, 32], help="examples per length")
    p.add_argument("--batch-size", type=int, nargs="+", default=[32, 16], help="batch size per length")
    p.add_argument("--chunk-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=2, help="timed repetitions (the best is kept)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (default 1; 0 = torch default). On a CPU shared with other work, 1 avoids "
                        "OpenMP wake-up stalls of several ms per operator that swamp both measurements")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "out" / "eval_speed.json"))
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    tok = load_tokenizer("default")
    model = Classifier().to(device).eval()
    rows = []
    for length, n, bs in zip(args.lengths, args.examples, args.batch_size):
        ds = synthetic_split(tok, n, length)
        scores = [np.random.default_rng(i).normal(size=length).astype(np.float32) for i in range(n)]
        evaluate(model, ds, scores, batch_size=bs, chunk_size=args.chunk_size, device=device)  # warm-up
        naive_floor(model, ds, bs, device)
        t_naive, t_eval, stats = [], [], None
        for _ in range(args.repeats):  # interleaved, so both see the same machine load
            t_naive.append(naive_floor(model, ds, bs, device))
            t0 = time.perf_counter()
            res = evaluate(model, ds, scores, batch_size=bs, chunk_size=args.chunk_size, device=device)
            t_eval.append(time.perf_counter() - t0)
            stats = res.stats
        tn, te = min(t_naive), min(t_eval)
        naive_positions = 11 * n * length
        rows.append({
            "length": length, "examples": n, "batch_size": bs, "chunk_size": args.chunk_size,
            "naive_s": tn, "eval_s": te, "naive_examples_per_s": n / tn, "eval_examples_per_s": n / te,
            "time_ratio": te / tn, "forward_passes": stats["forward_passes"], "naive_forward_passes": 11 * ((n + bs - 1) // bs),
            "positions": stats["positions"], "naive_positions": naive_positions,
            "positions_ratio": stats["positions"] / naive_positions, "all_naive_s": t_naive, "all_eval_s": t_eval,
        })
    env = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
           "cpu": platform.processor() or platform.machine(), "cuda": torch.cuda.get_device_name(0) if device.type == "cuda" else None}
    print(f"eval speed on {env['device']} ({env['cuda'] or env['cpu']}, {env['threads']} threads), MiniLM-L6, chunk {args.chunk_size}")
    print(f"{'len':>5} {'n':>4} {'bs':>4} {'naive s':>9} {'eval s':>8} {'naive ex/s':>11} {'eval ex/s':>10} {'time ratio':>11} {'positions ratio':>16}")
    for r in rows:
        print(f"{r['length']:>5} {r['examples']:>4} {r['batch_size']:>4} {r['naive_s']:>9.2f} {r['eval_s']:>8.2f} "
              f"{r['naive_examples_per_s']:>11.2f} {r['eval_examples_per_s']:>10.2f} {r['time_ratio']:>11.3f} {r['positions_ratio']:>16.3f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"env": env, "target_time_ratio": 0.75, "results": rows}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
