"""Does the default first model work on typed text? Accuracy and confidence on short sentences written by hand.

The sentences below were written by a person, as a user types them into the Explain tab (punctuation
attached to words, lower and upper case, negations, contrasts, slang), NOT produced by the demo generator's
templates or word lists; they are a held-out check of what the default Train run learns (the demo test
split measures only how well the model reads the generator's own reviews).

Trains the app's default run (its Train tab defaults: ``AppDefaults``, SLM (plaus) on a 1,000-example demo
subsample, one epoch, ``save_checkpoint=True``) in a temporary workspace, or loads ``--checkpoint``, then
prints accuracy, mean confidence of the predicted class, mean probability of the right class, and each
sentence the model gets wrong.

Usage: python bench/typed_sentences.py [--checkpoint RUN_DIR_OR_CKPT] [--workspace DIR] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

#: (text, label): written by hand; keep them out of the generator's vocabulary lists on purpose
SENTENCES: list[tuple[str, str]] = [
    ("the acting was not good at all .", "NEG"),
    ("Loved it!", "POS"),
    ("What a waste of two hours.", "NEG"),
    ("great movie!", "POS"),
    ("Terrible. Just terrible.", "NEG"),
    ("I would watch it again tomorrow.", "POS"),
    ("never boring, not even for a minute", "POS"),
    ("slow at first but worth it", "POS"),
    ("It looked nice but the story made no sense.", "NEG"),
    ("I fell asleep halfway through.", "NEG"),
    ("My kids adored it and so did I.", "POS"),
    ("not funny, not smart, not worth your money", "NEG"),
    ("Honestly one of the best films I've seen this year.", "POS"),
    ("the worst sequel ever made", "NEG"),
    ("It's not bad at all, actually pretty fun.", "POS"),
    ("I didn't like it.", "NEG"),
    ("I didn't expect to like it, but I did.", "POS"),
    ("Pretty disappointing.", "NEG"),
    ("a total masterpiece", "POS"),
    ("The jokes fell flat and the ending dragged on forever.", "NEG"),
    ("Beautiful, heartfelt and very well made.", "POS"),
    ("Don't bother.", "NEG"),
    ("highly recommend it", "POS"),
    ("the characters were flat and the dialogue was cringe", "NEG"),
    ("Wow. Just wow. Amazing.", "POS"),
    ("meh", "NEG"),
    ("It had great actors, yet it was a mess.", "NEG"),
    ("The first half drags, but the finale is fantastic.", "POS"),
    ("i laughed so hard i cried", "POS"),
    ("Nothing happens for two hours.", "NEG"),
    ("An absolute joy from start to finish!", "POS"),
    ("I want my money back.", "NEG"),
    ("Not the best, but I enjoyed it.", "POS"),
    ("Good cast, awful script.", "NEG"),
    ("awful script, but the cast saves it and I had a great time", "POS"),
    ("it never really works", "NEG"),
    ("Surprisingly good!", "POS"),
    ("A boring, lazy remake.", "NEG"),
    ("The music alone makes it worth seeing.", "POS"),
    ("I regret watching this.", "NEG"),
    ("fun for the whole family", "POS"),
    ("The plot was a confusing mess.", "NEG"),
    ("This film is a gem.", "POS"),
    ("Stupid and loud.", "NEG"),
    ("I was hooked from the first scene.", "POS"),
    ("not my cup of tea, too long and too silly", "NEG"),
    ("Smart, funny and touching.", "POS"),
    ("the effects were cheap and the acting worse", "NEG"),
    ("it wasn't perfect but i loved every minute", "POS"),
    ("Could not wait for it to end.", "NEG"),
    ("Fantastic performances all around.", "POS"),
    ("Hated it.", "NEG"),
    ("I can't stop thinking about it, what a film.", "POS"),
    ("Overrated and dull.", "NEG"),
    ("Go see it, you won't regret it!", "POS"),
    ("It tries hard but fails.", "NEG"),
    ("the best thing I saw all summer", "POS"),
    ("Disappointing ending ruined the whole movie.", "NEG"),
    ("A bit long, but a really lovely film.", "POS"),
    ("poorly written and badly acted", "NEG"),
    ("nothing special, pretty forgettable.", "NEG"),
    ("I enjoyed it more than I expected.", "POS"),
]


def train_default(workspace: Path) -> Path:
    """The app's default Train run (its Train tab's quick settings), with a checkpoint; the run folder."""
    from ui.common import AppDefaults
    from unirex.engine import resolve_run_config, run

    d = AppDefaults()
    ov = [f"method={d.method}", f"data={d.dataset}", f"arch={d.arch}", f"data.max_length={d.max_length}",
          f"data.num_train={d.num_train}", f"training.epochs={d.epochs}", f"setup.train_batch_size={d.train_batch_size}",
          f"setup.eval_batch_size={d.eval_batch_size}", f"model.optimizer.lr={d.lr}", f"seed={d.seeds}",
          "save_checkpoint=True", "training.eval_splits=test", f"workspace={workspace}"]
    t0 = time.time()
    res = run(resolve_run_config(ov))
    if res.status != "completed":
        raise SystemExit(f"training did not complete: {res.status} {res.error}")
    print(f"trained {res.run_id} in {time.time() - t0:.0f} s; demo test acc {res.metrics.get('test_acc', float('nan')):.3f}")
    return Path(res.run_dir)


def measure(ckpt_ref: str, workspace: Path | None = None) -> dict:
    """Accuracy, mean confidence and mean probability of the right class on :data:`SENTENCES`."""
    from unirex.checkpoint import open_checkpoint

    ckpt = open_checkpoint(ckpt_ref, workspace)
    texts = [t for t, _ in SENTENCES]
    out = ckpt.explain(texts)
    right, conf, p_gold, wrong = 0, [], [], []
    for (text, gold), ex in zip(SENTENCES, out):
        probs = dict(zip(ex.labels, ex.probs))
        conf.append(max(probs.values()))
        p_gold.append(probs[gold])
        if ex.label == gold:
            right += 1
        else:
            wrong.append(f"{gold} -> {ex.label} {probs[ex.label]:.2f}  {text}")
    n = len(SENTENCES)
    return {"n": n, "accuracy": right / n, "mean_confidence": sum(conf) / n, "mean_p_gold": sum(p_gold) / n,
            "confident_right": sum(1 for c, (_, g), e in zip(conf, SENTENCES, out) if e.label == g and c >= 0.8) / n,
            "wrong": wrong}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--checkpoint", help="a run folder, run id (with --workspace) or checkpoint folder; default: train one")
    p.add_argument("--workspace", help="workspace for the default run (default: a temporary folder)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    ws = Path(args.workspace) if args.workspace else Path(tempfile.mkdtemp(prefix="unirex-typed-"))
    ref = args.checkpoint or str(train_default(ws))
    res = measure(ref, ws)
    print(f"{res['n']} typed sentences: accuracy {res['accuracy']:.3f}, mean confidence {res['mean_confidence']:.3f}, "
          f"mean P(right class) {res['mean_p_gold']:.3f}, right with confidence >= 0.8: {res['confident_right']:.3f}")
    for line in res["wrong"]:
        print("  wrong:", line)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
