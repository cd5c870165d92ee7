"""Wall time of ``debug=True`` for every method preset, as a user runs it: one ``python -m unirex`` process
per preset (interpreter start, model load, a few train batches, a few batches of each evaluated split).

    python bench/debug_speed.py [--arch default] [--data demo] [--methods all] [--workspace DIR]

The dataset is built once before the timings (a first ever run also builds it: ``--cold`` times that
too). FRESH and L2E read the attributions of a Task LM teacher run made first and not timed (a debug run
with ``model.save_outputs=True``, which saves attributions for every example of every split). Prints one line per preset and a Markdown table (also written to
``bench/out/debug_speed.md``).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="default")
    p.add_argument("--data", default="demo")
    p.add_argument("--methods", default="all")
    p.add_argument("--workspace", default=None, help="default: a temporary folder")
    p.add_argument("--cold", action="store_true", help="do not build the dataset before the first timing")
    args = p.parse_args()

    from unirex.methods import list_methods

    presets = {m.id: m.title for m in list_methods()}
    methods = list(presets) if args.methods == "all" else args.methods.split(",")
    ws = Path(args.workspace or tempfile.mkdtemp(prefix="unirex-debug-speed-"))
    env = dict(os.environ, HF_HUB_OFFLINE="1", UNIREX_WORKSPACE=str(ws))
    base = [sys.executable, "-m", "unirex", f"data={args.data}", f"arch={args.arch}", "debug=True", "--no-progress"]
    if not args.cold:
        subprocess.run([sys.executable, "-m", "unirex", "build-dataset", "--dataset", args.data, "--arch", args.arch,
                        "--split", "all"], env=env, check=True, capture_output=True)
    teacher, rows = None, []
    if {"fresh", "l2e"} & set(methods):  # the teacher run, not timed
        proc = subprocess.run(base + ["method=task_lm", "model.save_outputs=True"], env=env, capture_output=True, text=True)
        teacher = (re.findall(r"R-\d{8}-\d{6}-[0-9a-f]+", proc.stdout + proc.stderr) or [None])[-1]
    for mid in methods:
        extra = [f"method={mid}"]
        if mid == "fresh":
            extra.append(f"data.fresh_exp_id={teacher}")
        if mid == "l2e":
            extra += [f"data.l2e_exp_id={teacher}", "data.l2e_attr_algo=input-x-gradient"]
        t0 = time.perf_counter()
        proc = subprocess.run(base + extra, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        out = proc.stdout + proc.stderr
        status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}: {out.strip().splitlines()[-1][:120]}"
        rows.append((mid, wall, status))
        print(f"{mid:32s} {wall:6.1f} s  {status}", flush=True)
    ok = [w for _, w, s in rows if s == "ok"]
    table = ["| preset | debug=True wall time |", "| --- | --- |"]
    table += [f"| {presets.get(m, m)} | {w:.1f} s{'' if s == 'ok' else ' (' + s + ')'} |" for m, w, s in rows]
    note = (f"\n_{args.data}, arch {args.arch}, one process per preset (start-up and model load included), dataset "
            f"{'built by the first run' if args.cold else 'built beforehand'}; max {max(ok):.1f} s, median "
            f"{sorted(ok)[len(ok) // 2]:.1f} s; measured {time.strftime('%Y-%m-%d')} on 2 CPU cores._\n")
    text = "\n".join(table) + "\n" + note
    print("\n" + text)
    out_dir = ROOT / "bench" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "debug_speed.md").write_text(text)


if __name__ == "__main__":
    main()
