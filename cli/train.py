"""Runs from UNIREX's own ``key=value`` overrides, in the foreground (``python -m unirex [-m] key=value ...``).

``-m`` (``--multirun``) sweeps every comma list (the cartesian product, as Hydra's basic sweeper) and
prints a summary table; every configuration is resolved and checked before the first run starts. Each
run prints a tqdm bar per training epoch and per evaluated split, an evaluation line per epoch, its run
folder, the command line that reproduces it, and a one-line result.
"""

from __future__ import annotations

import argparse
import os
import sys

from unirex.errors import UnirexError


class TqdmProgress:
    """Engine events -> one tqdm bar per training epoch and per evaluated split, a line per evaluation."""

    def __init__(self, label: str = "", enabled: bool = True):
        self.label, self.enabled, self.bar, self.kind = label, enabled, None, None

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar, self.kind = None, None

    def _write(self, msg: str) -> None:
        from tqdm import tqdm

        tqdm.write(msg) if self.enabled else print(msg)

    def __call__(self, ev: dict) -> None:
        from tqdm import tqdm

        kind = ev["kind"]
        if kind == "step" and self.enabled:
            per_epoch = max(1, ev["total_steps"] // max(1, ev.get("epochs") or 1))
            if self.kind != ("train", ev["epoch"]):
                self._close()
                self.bar = tqdm(total=per_epoch, desc=f"{self.label}train epoch {ev['epoch'] + 1}/{ev.get('epochs') or 1}",
                                unit="step", dynamic_ncols=True, leave=False)
                self.kind = ("train", ev["epoch"])
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{ev['losses'].get('loss', 0):.4f}")
        elif kind == "eval_start" and self.enabled:
            self._close()
            self.bar = tqdm(total=ev.get("total") or None, desc=f"{self.label}evaluate {ev['split']}", unit="ex",
                            dynamic_ncols=True, leave=False)
            self.kind = ("eval", ev["split"])
        elif kind == "eval_progress" and self.bar is not None and self.kind == ("eval", ev["split"]):
            self.bar.update(ev["done"] - self.bar.n)
        elif kind == "eval":
            self._close()
            m = ev["metrics"]
            where = f"epoch {ev['epoch'] + 1} " if ev.get("epoch") is not None else ""

            def g(k):
                v = m.get(k)
                return "n/a" if v is None else f"{v:.4f}"

            self._write(f"{self.label}{where}{ev['split']}: acc {g('acc')}  comp {g('comp_aopc')}  suff {g('suff_aopc')}"
                        + (f"  auprc {g('plaus_auprc')}" if m.get("plaus_auprc") is not None else ""))
        elif kind == "log":
            self._write(f"{self.label}{ev['message']}")
        elif kind == "done":
            self._close()


def report_split(res, cfg) -> str:
    """The split a run's result is reported on: test when it was evaluated, else its first eval split."""
    return "test" if any(k.startswith("test_") for k in res.metrics) else (cfg.training.splits or ["dev"])[0]


def summary_line(res, cfg) -> str:
    m = res.metrics
    split = report_split(res, cfg)

    def g(name):
        v = m.get(f"{split}_{name}")
        return "n/a" if v is None else f"{v:.4f}"

    return (f"{res.run_id} [{res.status}] {split}: acc {g('acc')} macro_f1 {g('macro_f1')} comp {g('comp_aopc')} "
            f"suff {g('suff_aopc')} auprc {g('plaus_auprc')} token_f1 {g('plaus_token_f1')}")


def _quote_eval_splits(overrides: list[str]) -> list[str]:
    """``training.eval_splits=train,dev,test`` is one value (a split list), never a sweep."""
    out = []
    for o in overrides:
        key, _, value = o.partition("=")
        if key == "training.eval_splits" and not value.startswith(("'", '"')):
            o = f"{key}='{value}'"
        out.append(o)
    return out


def run_overrides(argv: list[str], subcommands: tuple[str, ...]) -> int:
    from unirex.config import expand_sweep
    from unirex.engine import resolve_run_config, run
    from workbench.service import command_line

    p = argparse.ArgumentParser(prog="unirex", add_help=False)
    p.add_argument("-m", "--multirun", action="store_true")
    p.add_argument("--workspace")
    p.add_argument("--no-progress", action="store_true")
    args, overrides = p.parse_known_args(argv)
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise UnirexError(f"'{bad[0]}' is neither a command ({', '.join(subcommands)}) nor a key=value override "
                          "(python -m unirex --help shows both)")
    overrides = _quote_eval_splits(overrides)
    combos = expand_sweep(overrides) if args.multirun else [overrides]
    if not args.multirun and any("," in o.split("=", 1)[1] and not o.split("=", 1)[1].strip().startswith(("'", '"', "["))
                                 for o in overrides):
        raise UnirexError("a comma list needs -m (multirun), as in Hydra: python -m unirex -m seed=0,1,2")
    cfgs = [resolve_run_config(c, workspace=args.workspace) for c in combos]  # every error before any compute
    results = []
    rank0 = os.environ.get("RANK", "0") == "0"
    for i, (cfg, combo) in enumerate(zip(cfgs, combos)):
        label = f"[{i + 1}/{len(cfgs)}] " if len(cfgs) > 1 else ""
        if len(cfgs) > 1:
            print(f"{label}{' '.join(combo)}")
        cmd = command_line(combo)
        res = run(cfg, callback=TqdmProgress(label, enabled=not args.no_progress and rank0), command=cmd)
        _ingest(cfg, res)
        if rank0:
            print(summary_line(res, cfg))
            if res.run_dir is not None:
                print(f"  run folder: {res.run_dir}\n  reproduce:  {cmd}")
        results.append((combo, cfg, res))
    if len(results) > 1:
        _print_table(results)
    return 0 if all(r.status == "completed" for _, _, r in results) else 1


def _ingest(cfg, res) -> None:
    if res.run_dir is None:
        return
    try:
        from store import ingest_run
        from unirex.workspace import workspace_dir

        ingest_run(workspace_dir(cfg.workspace), res.run_dir)
    except UnirexError as e:  # the run directory is the source of truth: `unirex store sync` catches up
        print(f"warning: run not indexed yet ({e}); run `python -m unirex store sync` later", file=sys.stderr)


def _print_table(results) -> None:
    from cli.render import table

    varying = sorted({o.split("=", 1)[0] for combo, _, _ in results for o in combo
                      if len({dict(x.split("=", 1) for x in c).get(o.split("=", 1)[0]) for c, _, _ in results}) > 1})
    cols = ["acc", "macro_f1", "comp_aopc", "suff_aopc", "plaus_auprc", "plaus_token_f1"]
    rows = []
    for combo, cfg, res in results:
        kv = dict(x.split("=", 1) for x in combo)
        split = report_split(res, cfg)
        rows.append([res.run_id, res.status, *[kv.get(v, "") for v in varying], split,
                     *[res.metrics.get(f"{split}_{c}") for c in cols]])
    print("\nsummary")
    table(["run_id", "status", *varying, "split", *cols], rows)


__all__ = ["TqdmProgress", "report_split", "run_overrides", "summary_line"]
