"""Explainer runtime: ms per example of each rationale extractor on the bundled MiniLM.

    python bench/explainer_runtime.py [--examples 64] [--batch_size 32] [--ig_steps 50] [--internal_batch_size 32]
                                      [--n_samples 100] [--only lime,occlusion]

Times ``model.explain`` alone (no task metrics) on the first demo dev examples, with the same function
the engine uses for ``model.measure_attrs_runtime=True`` (:func:`unirex.engine.time_explainer`); a run
with that key stores the number as its ``attrs_runtime_ms`` metric. Extractors with learned heads (DLM,
SLM) are timed untrained: their cost does not depend on the weights. The word-perturbation algorithms
(LIME, KernelSHAP: ``--n_samples`` samples; occlusion: one word at a time) run ``--internal_batch_size``
perturbed inputs a pass. ``--only`` keeps the rows whose name starts with one of the given names. Writes ``bench/out/explainer_runtime.json``.
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
from unirex.engine import time_explainer  # noqa: E402
from unirex.models import build_model  # noqa: E402
from unirex.registry import DEFAULT_N_SAMPLES  # noqa: E402
from unirex.workspace import data_dir  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--examples", type=int, default=64)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--ig_steps", type=int, default=50)
    p.add_argument("--internal_batch_size", type=int, default=32)
    p.add_argument("--n_samples", type=int, default=DEFAULT_N_SAMPLES)
    p.add_argument("--only", default="", help="comma-separated name prefixes (default: every extractor)")
    p.add_argument("--max_length", type=int, default=128)
    p.add_argument("--workspace", default=str(ROOT / "bench" / "out" / "ws"))
    args = p.parse_args()
    ds, _ = load_split(data_dir(args.workspace), "demo", "dev", arch="default", max_length=args.max_length)
    extractors = {
        "input-x-gradient": ["model.attr_algo=input-x-gradient"],
        f"integrated-gradients ({args.ig_steps} steps, internal batch {args.internal_batch_size})":
            ["model.attr_algo=integrated-gradients", f"model.ig_steps={args.ig_steps}",
             f"model.internal_batch_size={args.internal_batch_size}"],
        "gradient (saliency)": ["model.attr_algo=gradient"],
        f"lime ({args.n_samples} samples)": ["model.attr_algo=lime", f"model.attr_n_samples={args.n_samples}",
                                             f"model.internal_batch_size={args.internal_batch_size}"],
        f"kernel-shap ({args.n_samples} samples)": ["model.attr_algo=kernel-shap",
                                                    f"model.attr_n_samples={args.n_samples}",
                                                    f"model.internal_batch_size={args.internal_batch_size}"],
        "occlusion (1 word)": ["model.attr_algo=occlusion", f"model.internal_batch_size={args.internal_batch_size}"],
        "attention (last layer, [CLS])": ["model.attr_algo=attention"],
        "attention-rollout": ["model.attr_algo=attention-rollout"],
        "DLM (linear head)": ["model=expl_reg", "model.explainer_type=lm", "model.comp_wt=0", "model.suff_wt=0"],
        "SLM (linear head)": ["model=expl_reg", "model.explainer_type=self_lm", "model.comp_wt=0", "model.suff_wt=0"],
    }
    only = tuple(x.strip() for x in args.only.split(",") if x.strip())
    if only:
        extractors = {k: v for k, v in extractors.items() if k.startswith(only)}
    rows = []
    for name, overrides in extractors.items():
        cfg = resolve_config(["arch=default", *overrides])
        model = build_model(cfg, num_classes=2)
        ms, n = time_explainer(model, ds, args.batch_size, torch.device("cpu"), n=args.examples)
        rows.append({"extractor": name, "ms_per_example": ms, "examples": n})
        print(f"{name:52s} {ms:9.2f} ms/example", flush=True)
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "explainer_runtime.json").write_text(json.dumps(
        {"date": time.strftime("%Y-%m-%d"), "threads": torch.get_num_threads(), "batch_size": args.batch_size,
         "max_length": args.max_length, "results": rows}, indent=2))


if __name__ == "__main__":
    main()
