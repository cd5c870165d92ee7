"""Is the NLI demo (``data=demo_nli``) learnable, and does plausibility need context on it?

    python bench/demo_nli_check.py                                 # oracle + Task LM + SLM (plaus)
    python bench/demo_nli_check.py --num_train 1000 --methods task_lm
    OMP_NUM_THREADS=1 python bench/demo_nli_check.py                # on shared cores: one thread per process

Prints, on the test split: a *lexical oracle* (each word scored by how often that word is rationale in
the train split, whatever its context), the *ceiling* (the gold mask itself as scores; neutral premises
have no gold words, and ERASER scores such a document 0.5 whatever the scores), and one engine run per
method (bundled MiniLM, one epoch on a train subsample) with its test accuracy, macro F1 and
plausibility in both conventions. Runs go to the workspace ``bench/out/demo_nli``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from unirex.data.demo_nli import DEFAULT_SIZES, generate_nli_splits  # noqa: E402
from unirex.metrics.plausibility import auprc  # noqa: E402


def documents_with_gold(anns, documents):
    """``[(words, gold mask), ...]`` per (annotation, document), as ERASER scores them."""
    out = []
    for a in anns:
        for d in ("premise", "hypothesis"):
            docid = f"{a['annotation_id']}_{d}"
            words = [w for s in documents[docid] for w in s]
            mask = np.zeros(len(words), bool)
            for ev in (e for g in a["evidences"] for e in g):
                if ev["docid"] == docid:
                    mask[ev["start_token"]:ev["end_token"]] = True
            out.append((words, mask))
    return out


def lexical_oracle() -> dict[str, float]:
    splits, documents = generate_nli_splits()
    pos, tot = Counter(), Counter()
    for words, mask in documents_with_gold(splits["train"], documents):
        tot.update(words)
        pos.update(w for w, g in zip(words, mask) if g)
    test = documents_with_gold(splits["test"], documents)
    oracle = [auprc(m, np.array([pos[w] / tot[w] if tot[w] else 0.0 for w in words])) for words, m in test]
    ceiling = [auprc(m, m.astype(float)) for _, m in test]
    return {"oracle": float(np.mean(oracle)), "ceiling": float(np.mean(ceiling))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default="task_lm,slm_plaus_linear")
    p.add_argument("--num_train", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--arch", default="default")
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--workspace", default=str(ROOT / "bench" / "out" / "demo_nli"))
    args = p.parse_args()

    o = lexical_oracle()
    print(f"test split ({DEFAULT_SIZES['test']}), ERASER word-level AUPRC: lexical oracle {o['oracle']:.3f}, "
          f"ceiling {o['ceiling']:.3f}", flush=True)
    if not args.methods:
        return
    from unirex.engine import resolve_run_config, run

    common = [f"workspace={args.workspace}", "data=demo_nli", f"arch={args.arch}", "data.max_length=128",
              "training.epochs=1", f"data.num_train={args.num_train}", f"setup.train_batch_size={args.batch_size}",
              f"model.optimizer.lr={args.lr}", "training.eval_splits=test", f"seed={args.seed}"]
    keys = ["acc", "macro_f1", "plaus_auprc", "plaus_token_f1", "plaus_ref_auprc", "plaus_ref_token_f1",
            "comp_aopc", "suff_aopc"]
    print("| method | " + " | ".join(keys) + " | minutes |")
    print("|" + " --- |" * (len(keys) + 2))
    for mid in args.methods.split(","):
        t0 = time.time()
        res = run(resolve_run_config(common + [f"method={mid}"]))
        cells = [f"{res.metrics.get(f'test_{k}'):.3f}" if res.metrics.get(f"test_{k}") is not None else "n/a" for k in keys]
        print(f"| {mid} | " + " | ".join(cells) + f" | {(time.time() - t0) / 60:.1f} |", flush=True)


if __name__ == "__main__":
    main()
