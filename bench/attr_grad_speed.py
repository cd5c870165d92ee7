"""AA-Sum plausibility training step: UNIREX's detached gradient vs a double backward.

    python bench/attr_grad_speed.py [--steps 6] [--batch_size 8] [--max_length 128] [--threads 1] [--plaus_only]

Times ``compute_losses`` + ``backward`` of the preset ``aa_sum_comp_suff_plaus`` on the bundled MiniLM
and demo train batches, with ``model.attr_grad=detach`` (the preset: the plausibility loss reaches the
word embeddings through the input factor of input x gradient, as in UNIREX) and
``model.attr_grad=create_graph`` (differentiating through the gradient, a double backward). The two
modes alternate step by step in the same process, after one warm-up step each, so the ratio is
measured under the same load. ``--plaus_only`` sets the comp/suff weights to 0, isolating the
attribution's own cost from the 10 masked passes. Writes ``bench/out/attr_grad_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from unirex.config import resolve_config  # noqa: E402
from unirex.data import load_split  # noqa: E402
from unirex.models import build_model  # noqa: E402
from unirex.objective import compute_losses  # noqa: E402
from unirex.workspace import data_dir  # noqa: E402

MODES = ("detach", "create_graph")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--max_length", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--plaus_only", action="store_true", help="comp and suff weights 0")
    p.add_argument("--workspace", default=str(ROOT / "bench" / "out" / "ws"))
    args = p.parse_args()
    extra = ["model.comp_wt=0", "model.suff_wt=0"] if args.plaus_only else []
    torch.set_num_threads(args.threads)
    ds, _ = load_split(data_dir(args.workspace), "demo", "train", arch="default", max_length=args.max_length)
    batches = [ds.collate([ds[i] for i in range(s, s + args.batch_size)])
               for s in range(0, args.batch_size * (args.steps + 1), args.batch_size)]
    models, cfgs = {}, {}
    for mode in MODES:
        cfgs[mode] = resolve_config(["method=aa_sum_comp_suff_plaus", "arch=default", f"model.attr_grad={mode}", *extra])
        models[mode] = build_model(cfgs[mode], 2).train()
    seconds = {m: 0.0 for m in MODES}
    for i, batch in enumerate(batches):
        for mode in MODES:
            t0 = time.perf_counter()
            compute_losses(batch, models[mode], cfgs[mode])["loss"].backward()
            if i > 0:  # the first batch is a warm-up
                seconds[mode] += time.perf_counter() - t0
            models[mode].zero_grad(set_to_none=True)
    per_step = {m: s / args.steps for m, s in seconds.items()}
    ratio = per_step["detach"] / per_step["create_graph"]
    for m in MODES:
        print(f"model.attr_grad={m:13s} {per_step[m]:7.3f} s/step")
    print(f"detach / create_graph = {ratio:.2f}")
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "attr_grad_speed.json").write_text(json.dumps(
        {"date": time.strftime("%Y-%m-%d"), "threads": args.threads, "plaus_only": args.plaus_only, "batch_size": args.batch_size,
         "max_length": args.max_length, "steps": args.steps, "seconds_per_step": per_step, "ratio": ratio}, indent=2))


if __name__ == "__main__":
    main()
