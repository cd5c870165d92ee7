"""Latency of explaining one typed text through the workbench API (``Workbench.explain``), warm.

Builds two checkpoints of the bundled MiniLM (weights as initialised; latency does not depend on training):
Task LM + SLM linear head (a learned extractor) and a Task LM explained post hoc, then times explaining a
100-word text: the checkpoint's own extractor (SLM), input-x-gradient and integrated gradients on the
task LM. Each time is the median of ``--repeats`` calls after one warm-up call (the model is cached).

Usage: python bench/explain_speed.py [--words 100] [--repeats 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TEXT = ("the acting was not very good , but the plot was truly wonderful . the film runs about ninety minutes . "
        "it was released in the spring of two thousand . i watched it with a friend on a rainy monday . "
        "although the dialogue was clumsy , i found it remarkably moving . the soundtrack was bland and the "
        "pacing was slow in places . the cast includes several newcomers . a delightful film overall . "
        "the music was written by a painter from london . the ending was quite predictable but charming .")


def make_checkpoint(folder: Path, method: str):
    from unirex.arch import load_tokenizer
    from unirex.checkpoint import save_checkpoint
    from unirex.config import resolve_config, to_dict
    from unirex.models import build_model

    cfg = resolve_config([f"method={method}", "arch=default", "data.max_length=256"], validate=False)
    model = build_model(cfg, 2)
    save_checkpoint(model, to_dict(cfg), folder, load_tokenizer("default"),
                    {"epoch": 0, "labels": ["NEG", "POS"], "run_id": None})
    return folder


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--words", type=int, default=100)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from workbench import Workbench

    words = (TEXT.split() * 10)[: args.words]
    text = " ".join(words)
    tmp = Path(tempfile.mkdtemp(prefix="unirex-explain-bench-"))
    slm = make_checkpoint(tmp / "slm", "slm_plaus_linear")
    lm = make_checkpoint(tmp / "task_lm", "task_lm")
    wb = Workbench(tmp / "ws")
    rows = []
    for name, ck, extractor in (("SLM (learned head)", slm, "own"), ("Task LM + input-x-gradient", lm, "input-x-gradient"),
                                ("Task LM + integrated gradients (50 steps)", lm, "integrated-gradients")):
        ex = wb.explain(str(ck), text, extractor=extractor)  # warm-up: load and cache
        times = []
        for _ in range(args.repeats if extractor != "integrated-gradients" else max(3, args.repeats // 4)):
            t0 = time.perf_counter()
            ex = wb.explain(str(ck), text, extractor=extractor)
            times.append(time.perf_counter() - t0)
        rows.append({"what": name, "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
                     "words": len(ex.words), "subwords": ex.n_subwords, "calls": len(times)})
    print(f"{'explainer':45s} {'median':>8s} {'min':>8s} {'max':>8s}  words/subwords  ({args.threads} thread(s))")
    for r in rows:
        print(f"{r['what']:45s} {r['median_s']:8.3f} {r['min_s']:8.3f} {r['max_s']:8.3f}  {r['words']}/{r['subwords']}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
