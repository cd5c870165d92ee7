"""The comparison's bootstrap at the issue's size: 10 methods x 3 seeds x 1,000 examples x 1,000 resamples
(one per-example metric, a mean), on one core. Prints the seconds of the whole bootstrap (example and seed
resampling, every group's replicates, the 95% intervals, NRG over the groups, all 45 paired tests with
Holm's adjustment) and of a corpus-level metric (macro F1, recomputed on each resample) beside it.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python bench/stats_speed.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import time

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one core, as the target says
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402

from unirex.metrics.stats import adjust, bootstrap, f1_rows, mean_rows, nrg_replicates, pairwise  # noqa: E402


def data(methods=10, seeds=3, n=1000, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    groups = {}
    for m in range(methods):
        runs = []
        for _ in range(seeds):
            pred = np.where(rng.random(n) < 0.6 + 0.01 * m, y, rng.integers(0, classes, n))
            runs.append({"comp_aopc": mean_rows(rng.normal(0.1 + 0.005 * m, 0.2, n)),
                         "macro_f1": f1_rows(y, pred, classes)})
        groups[f"method{m}"] = runs
    return groups


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--resamples", type=int, default=1000)
    args = ap.parse_args()
    groups = data()
    one = {g: [{"comp_aopc": r["comp_aopc"]} for r in runs] for g, runs in groups.items()}
    spec = {"faithfulness": {"comp_aopc": True}}
    for name, gs in (("mean metric (comp_aopc)", one), ("mean + corpus-level metric (comp_aopc, macro_f1)", groups)):
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            res = bootstrap(gs, n_resamples=args.resamples)
            _ = {g: {m: e.interval() for m, e in est.items()} for g, est in res.estimates.items()}
            nrg_replicates(res, spec)
            tests = adjust(pairwise(res, "comp_aopc"))
            times.append(time.perf_counter() - t0)
        print(f"{name}: 10 methods x 3 seeds x 1000 examples x {args.resamples} resamples, {len(tests)} paired tests: "
              f"best {min(times):.3f} s, median {float(np.median(times)):.3f} s over {args.repeat} (target < 2 s)")


if __name__ == "__main__":
    main()
