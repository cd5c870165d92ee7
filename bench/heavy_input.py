"""Cost of a huge document: build one split whose only document is a single 50 MB line of words, a single
50 MB word (``a.a.a.``: every character a subword), or 48 MB of CJK text without spaces (one ERASER word).

Each measurement runs in a fresh subprocess and reports its peak resident memory
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) and the wall time of ``build_split``. A control run
builds the same dataset with a small document, so the fixed cost (interpreter, tokenizer, polars)
can be told apart from the cost of the document.

    python bench/heavy_input.py [--mb 50] [--cjk_mb 48] [--max_length 64] [--cases line,word,cjk] [--compare DIR]

The arch is a tiny random BERT with the bundled tokenizer (the build only loads the tokenizer).
``--compare DIR`` also measures the code in ``DIR`` (e.g. an older checkout, ``git archive <rev> unirex |
tar -x -C DIR``) on the same files in the same run, and prints the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

CHILD = textwrap.dedent("""
    import json, resource, sys, time
    from unirex.data.build import build_split
    data_dir, dataset, arch, max_length = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    from unirex.arch import load_tokenizer
    load_tokenizer(arch)  # the tokenizer load is part of the fixed cost, not of the document
    t0 = time.perf_counter()
    try:
        built = build_split(data_dir, dataset, "train", arch=arch, max_length=max_length, force=True)
        result = {"ok": True, "count": built.summary["count"], "truncated": built.summary["truncated"]}
    except Exception as e:  # noqa: BLE001 - reported, not raised
        result = {"ok": False, "error": f"{type(e).__name__}: {e}"[:300]}
    result["seconds"] = time.perf_counter() - t0
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))
""")

WORDS = ("the film was good and the plot was dull but i found it truly wonderful overall , "
         "a charming cast in a small town .").split()


CJK = "这部电影非常精彩我很喜欢演员的表演"
UNITS = {"line": " ".join(WORDS) + " ", "word": "a." * 512, "cjk": CJK * 32}  # what the one line repeats


def write_dataset(root: Path, name: str, doc_bytes: int, kind: str = "line") -> Path:
    d = root / name
    (d / "docs").mkdir(parents=True)
    unit = UNITS[kind]
    reps = max(1, doc_bytes // len(unit.encode()))
    with open(d / "docs" / "big", "w") as f:  # one line, no newline until the end
        for _ in range(reps):
            f.write(unit)
        f.write("end\n" if kind == "line" else "\n")  # "word", "cjk": the document is that one word
    (d / "docs" / "small").write_text("a small dull film .\n")
    ev = ({"docid": "big", "start_token": 1, "end_token": 2, "text": "film"} if kind == "line"
          else {"docid": "big", "start_token": 0, "end_token": 1})  # the one huge word
    ann = [{"annotation_id": "big", "classification": "POS", "evidences": [[ev]]},
           {"annotation_id": "small", "classification": "NEG", "evidences": []}]
    for split in ("train", "val", "test"):
        (d / f"{split}.jsonl").write_text("".join(json.dumps(a) + "\n" for a in ann))
    return d


def tiny_arch(root: Path) -> str:
    import torch
    from transformers import BertConfig, BertModel

    from unirex.arch import load_tokenizer

    tok = load_tokenizer("default")
    path = root / "tiny-bert"
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=512)).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def measure(data_dir: Path, name: str, arch: str, max_length: int, code: str | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": code or os.environ.get("PYTHONPATH", str(Path(__file__).resolve().parents[1]))}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(data_dir), name, arch, str(max_length)],
                          capture_output=True, text=True, env=env, cwd=data_dir)  # not the repo: "-c" puts the cwd first on sys.path
    if proc.returncode != 0:
        return {"ok": False, "error": proc.stderr.strip().splitlines()[-1:], "seconds": None, "peak_rss_mb": None}
    return json.loads(proc.stdout.strip().splitlines()[-1])


CASES = {"line": "one-line document", "word": "one-word document", "cjk": "CJK, no spaces"}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--mb", type=float, default=50.0, help="size of the one-line document and of the one word (MB)")
    p.add_argument("--cjk_mb", type=float, default=48.0, help="size of the CJK document (MB)")
    p.add_argument("--max_length", type=int, default=64)
    p.add_argument("--cases", default="line,word,cjk", help="which heavy documents: line, word, cjk (comma-separated)")
    p.add_argument("--compare", help="another code folder (holding unirex/) to measure on the same files")
    args = p.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    results, sizes = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        arch = tiny_arch(root)
        write_dataset(root / "data", "control", 100)
        for case in cases:
            mb = args.cjk_mb if case == "cjk" else args.mb
            write_dataset(root / "data", case, int(mb * 1_000_000), case)
            sizes[case] = (root / "data" / case / "docs" / "big").stat().st_size
        for label, code in (("this code", None), ("compared code", args.compare)):
            if label == "compared code" and not code:
                continue
            results[label] = {"control": measure(root / "data", "control", arch, args.max_length, code)}
            for case in cases:
                results[label][case] = measure(root / "data", case, arch, args.max_length, code)
    print(f"max_length {args.max_length}; tiny BERT tokenizer; documents: "
          + ", ".join(f"{CASES[c]} {sizes[c] / 1e6:.1f} MB" for c in cases))
    for label, res in results.items():
        for kind, r in res.items():
            name = "control (small document)" if kind == "control" else CASES[kind]
            if r.get("peak_rss_mb") is None:
                print(f"{label:14s} {name:26s} failed: {r.get('error')}")
                continue
            print(f"{label:14s} {name:26s} peak RSS {r['peak_rss_mb']:8.0f} MB   build {r['seconds']:7.2f} s   "
                  + (f"ok, {r['truncated']} of {r['count']} truncated" if r["ok"] else f"refused: {r['error']}"))
    if len(results) == 2:
        ca, cb = results["this code"]["control"], results["compared code"]["control"]
        for case in cases:
            a, b = results["this code"][case], results["compared code"][case]
            if a.get("peak_rss_mb") and b.get("peak_rss_mb"):
                print(f"{CASES[case]}: ratio this / compared: time {a['seconds'] / b['seconds']:.4f}, "
                      f"peak RSS {a['peak_rss_mb'] / b['peak_rss_mb']:.3f}, RSS above the control "
                      f"{(a['peak_rss_mb'] - ca['peak_rss_mb']) / max(b['peak_rss_mb'] - cb['peak_rss_mb'], 1e-9):.3f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
