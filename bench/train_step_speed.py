"""Speed of one training step with the comp/suff variants dropped (``model.rationale_removal=drop``)
against masked (``=mask``, UNIREX's reference), measured side by side in the same process.

One step = :func:`unirex.objective.compute_losses` + ``backward()`` on one batch (no optimizer step), in
train mode (dropout on), run as micro-batches with gradients accumulated (``--micro-batch``, what
``setup.accumulate_grad_batches`` does; on a CPU the time per example hardly depends on it, and it
bounds memory: masked, MiniLM keeps about 1.1 GB of activations per example of 256 subwords for
backward, so 16 at once would need some 18 GB; dropped, about half), for:

* SLM (comp/suff/plaus), linear head (``method=slm_comp_suff_plaus_linear``);
* AA-Sum (comp/suff) (``method=aa_sum_comp_suff``);
* and, for scale, a plain Task LM step (``method=task_lm``).

Model: the bundled all-MiniLM-L6-v2 (arch ``default``). Inputs: the synthetic documents of
``bench/eval_speed.py`` (exactly ``length`` subwords, [CLS] + word pieces + [SEP], no padding, a random
20 % gold rationale), so dropping gains only what removal frees, not padding. The two removals share
one model; each repetition times one masked and one dropped step, alternating which goes first.
Reports the median of each, the ratio of the medians, the spread of the per-repetition ratios, the
encoder positions per step (padding included) and the bytes autograd keeps for backward (one
micro-batch, activations only). Writes ``bench/out/train_step_speed.json``.

    python bench/train_step_speed.py [--lengths 64 256] [--batch-size 32 16] [--micro-batch 16 4] [--repeats 7]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from eval_speed import synthetic_split  # noqa: E402

from unirex.arch import load_tokenizer  # noqa: E402
from unirex.config import resolve_config  # noqa: E402
from unirex.models import build_model  # noqa: E402
from unirex.objective import compute_losses  # noqa: E402

METHODS = {"slm_comp_suff_plaus_linear": "SLM (comp/suff/plaus)", "aa_sum_comp_suff": "AA-Sum (comp/suff)"}
TARGET = 0.6  # dropped / masked step time at length 256


def step(model, cfg, batch, positions: list, micro: int | None = None, saved: list | None = None) -> float:
    """Seconds of one training step (forward + backward) of ``batch``, run as micro-batches of ``micro``
    examples with gradients accumulated (None: the whole batch at once). ``positions`` gets the encoder
    positions it ran; ``saved`` (if given) the bytes of tensors kept for backward by the largest
    micro-batch (distinct storages; measured through autograd's saved-tensor hooks, which cost a little
    time, so not in timed steps)."""
    seen = []

    def hook(module, args, kwargs):
        x = kwargs.get("input_ids")
        x = kwargs.get("inputs_embeds") if x is None else x
        seen.append(x.shape[0] * x.shape[1])

    n = batch["input_ids"].shape[0]
    micro = micro or n
    parts = [{k: v[i : i + micro] for k, v in batch.items()} for i in range(0, n, micro)]
    handle = model.task_lm.encoder.register_forward_pre_hook(hook, with_kwargs=True)
    peak = 0
    try:
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
        for part in parts:
            storages = {}

            def pack(t):
                ptr = t.untyped_storage().data_ptr()
                if ptr not in weights:  # activations only, not the weights matmuls keep a reference to
                    storages[ptr] = t.untyped_storage().nbytes()
                return t

            ctx = torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t) if saved is not None else contextlib.nullcontext()
            with ctx:
                losses = compute_losses(part, model, cfg)
            (losses["loss"] * (part["input_ids"].shape[0] / n)).backward()
            peak = max(peak, sum(storages.values()))
        if batch["input_ids"].device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
    finally:
        handle.remove()
    positions.append(sum(seen))
    if saved is not None:
        saved.append(peak)
    return dt


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    p.add_argument("--lengths", type=int, nargs="+", default=[64, 256])
    p.add_argument("--batch-size", type=int, nargs="+", default=[32, 16], help="batch size per length")
    p.add_argument("--micro-batch", type=int, nargs="+", default=[16, 4],
                   help="per length: run the step as micro-batches of this many examples, gradients accumulated "
                        "(what setup.accumulate_grad_batches does); bounds memory: masked, MiniLM keeps about 1.1 GB "
                        "per example of 256 subwords for backward")
    p.add_argument("--repeats", type=int, default=7, help="timed (masked, dropped) pairs per cell")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1; 0 = torch default)")
    p.add_argument("--out", default=str(HERE / "out" / "train_step_speed.json"))
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    tok = load_tokenizer("default")
    rows = []
    for length, bs, micro in zip(args.lengths, args.batch_size, args.micro_batch):
        ds = synthetic_split(tok, bs, length)
        batch = {k: v.to(device) for k, v in ds.collate([ds[i] for i in range(bs)]).items()}
        # the Task LM step, for scale
        cfg_lm = resolve_config(["arch=default", "method=task_lm"])
        lm_model = build_model(cfg_lm, 2).to(device).train()
        pos = []
        step(lm_model, cfg_lm, batch, pos, micro)
        t_lm = statistics.median(step(lm_model, cfg_lm, batch, pos, micro) for _ in range(max(3, args.repeats // 2)))
        del lm_model
        for method in args.methods:
            cfgs = {r: resolve_config(["arch=default", f"method={method}", f"model.rationale_removal={r}"])
                    for r in ("mask", "drop")}
            model = build_model(cfgs["mask"], 2).to(device).train()
            times = {"mask": [], "drop": []}
            positions = {"mask": [], "drop": []}
            saved = {"mask": [], "drop": []}
            for r in ("mask", "drop"):  # warm-up, measuring what backward keeps
                step(model, cfgs[r], batch, [], micro, saved[r])
            for i in range(args.repeats):
                for r in (("mask", "drop") if i % 2 == 0 else ("drop", "mask")):
                    times[r].append(step(model, cfgs[r], batch, positions[r], micro))
            tm, td = statistics.median(times["mask"]), statistics.median(times["drop"])
            pair = sorted(d / m for m, d in zip(times["mask"], times["drop"]))
            rows.append({
                "method": method, "length": length, "batch_size": bs, "micro_batch": micro, "repeats": args.repeats,
                "masked_saved_mb": saved["mask"][0] / 2**20, "dropped_saved_mb": saved["drop"][0] / 2**20,
                "task_lm_s": t_lm, "masked_s": tm, "dropped_s": td, "time_ratio": td / tm,
                "pair_ratio_min": pair[0], "pair_ratio_max": pair[-1],
                "masked_vs_task_lm": t_lm / tm, "dropped_vs_task_lm": t_lm / td,
                "masked_positions": statistics.median(positions["mask"]),
                "dropped_positions": statistics.median(positions["drop"]),
                "positions_ratio": statistics.median(positions["drop"]) / statistics.median(positions["mask"]),
                "all_masked_s": times["mask"], "all_dropped_s": times["drop"],
            })
            del model
    env = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
           "cpu": platform.processor() or platform.machine(), "load_avg": os.getloadavg(),
           "cuda": torch.cuda.get_device_name(0) if device.type == "cuda" else None}
    print(f"training step speed on {env['device']} ({env['cuda'] or env['cpu']}, {env['threads']} threads), MiniLM-L6, "
          f"median of {args.repeats}; load average at the end {env['load_avg'][0]:.1f}")
    print("| method | length | batch (micro) | Task LM step | masked step | dropped step | dropped / masked (spread) "
          "| positions dropped / masked | kept for backward, masked -> dropped | speed vs Task LM, masked -> dropped |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {METHODS.get(r['method'], r['method'])} | {r['length']} | {r['batch_size']} ({r['micro_batch']}) "
              f"| {r['task_lm_s']:.2f} s | {r['masked_s']:.2f} s | {r['dropped_s']:.2f} s | **{r['time_ratio']:.2f}** "
              f"({r['pair_ratio_min']:.2f}-{r['pair_ratio_max']:.2f}) | {r['positions_ratio']:.2f} "
              f"| {r['masked_saved_mb']:.0f} -> {r['dropped_saved_mb']:.0f} MB "
              f"| {r['masked_vs_task_lm']:.2f}x -> {r['dropped_vs_task_lm']:.2f}x |")
    worst = [r["time_ratio"] for r in rows if r["length"] == 256]
    if worst:
        print(f"target at length 256: dropped / masked <= {TARGET}: "
              f"{'met' if max(worst) <= TARGET else 'NOT met'} (worst {max(worst):.2f})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"env": env, "target_time_ratio_256": TARGET, "results": rows}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
