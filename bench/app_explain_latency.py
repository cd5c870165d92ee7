"""How long the Explain tab takes to answer, warm, with the bundled MiniLM and a learned extractor (issue:
under 1 s on a CPU).

Trains (unless ``--run`` names one) a ``slm_plaus_linear`` run on the demo with a checkpoint (``debug=True``:
a few batches, enough for timing), starts the app on that workspace, and times the ``/explain`` endpoint
through ``gradio_client`` (HTTP, the app's queue, the workbench, the model, the response the page draws:
the summary, the probabilities and both highlighted texts), median of ``--repeats`` warm calls on a
100-word review, for the learned extractor and for input-x-gradient. ``Workbench.explain`` alone is timed
in this process too (the model part of the answer).

    python bench/app_explain_latency.py [--workspace DIR] [--run R-...] [--repeats 20]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TEXT = ("i went in expecting very little from this film . the story follows a retired teacher who returns to the "
        "small town where she grew up , and most of the first hour is spent on long walks , old friends and quiet "
        "dinners . the acting was wonderful , especially the lead , who makes every small gesture count . although "
        "the pacing was slow , i found it deeply moving by the end . the soundtrack was forgettable and the running "
        "time is a little long , but a truly memorable film overall .")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(fn, repeats: int) -> str:
    """``min / median wall ms (median CPU ms of this process)`` of ``repeats`` warm calls."""
    fn()
    fn()  # warm: the checkpoint loaded, the first autograd pass done
    walls, cpus = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return (f"{min(walls) * 1000:6.0f} / {statistics.median(walls) * 1000:6.0f} ms wall "
            f"(CPU {statistics.median(cpus) * 1000:5.0f} ms)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workspace")
    p.add_argument("--run", help="an existing run (with a checkpoint) of --workspace")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = p.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from workbench import Workbench

    ws = Path(args.workspace or tempfile.mkdtemp(prefix="unirex-explain-"))
    run_id = args.run
    if run_id is None:
        from unirex.engine import resolve_run_config, run

        t = time.time()
        res = run(resolve_run_config(["data=demo", "method=slm_plaus_linear", "debug=True", "save_checkpoint=True",
                                      "data.max_length=256"], workspace=str(ws)))
        run_id = res.run_id
        print(f"trained {run_id} (debug, MiniLM) in {time.time() - t:.0f} s")
    wb = Workbench(ws)
    words = len(TEXT.split())
    import torch

    print(f"min / median of {args.repeats} warm calls; torch threads {torch.get_num_threads()}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for extractor in ("own", "input-x-gradient"):
        t = measure(lambda e=extractor: wb.explain(run_id, TEXT, extractor=e, top_k=10), args.repeats)
        print(f"  Workbench.explain, {extractor:16s} {words} words: {t}")

    port = _free_port()
    env = {**os.environ, "UNIREX_WORKSPACE": str(ws), "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": str(ROOT)}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    env.pop("UNIREX_APP_AUTH", None)
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port), "--no-demo"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        from gradio_client import Client

        c = Client(url, verbose=False)
        for extractor in ("own", "input-x-gradient"):
            def call(e=extractor):
                return c.predict(cka=run_id, exa=e, both=False, ckb=None, exb="input-x-gradient", t=TEXT, q="", s="",
                                 k=10, api_name="/explain")

            t = measure(call, args.repeats).split(" (CPU")[0]  # the client's CPU time says nothing here
            print(f"  app /explain over HTTP, {extractor:16s} {words} words: {t}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
