"""``python -m unirex explain --run R --file IN --out OUT``: one row per input, equal to ``explain --text`` on the
same text, the same rows in JSON Lines and Parquet, and every bad input refused with one line, exit 2, and
nothing written at OUT. A tiny BERT checkpoint saved untrained (explaining does not depend on training)."""

from __future__ import annotations

import json
import math

import polars as pl
import pytest

from cli import main
from workbench.batch_explain import COLUMNS

TEXTS = ["a truly wonderful film", "the acting was not very good , but the plot was truly wonderful .",
         "bland", "the music was written by a painter from london and the ending was quite predictable but charming",
         "i watched it with a friend on a rainy monday"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, tiny_arch, bundled_tokenizer) -> str:
    """An SLM (learned linear head) checkpoint of the tiny BERT, so both ``own`` and post-hoc scores exist."""
    import torch

    from unirex.checkpoint import save_checkpoint
    from unirex.config import resolve_config, to_dict
    from unirex.models import build_model

    torch.manual_seed(0)
    cfg = resolve_config(["method=slm_plaus_linear", f"arch={tiny_arch}", "data.max_length=64",
                          "model.expl_head_mlp_hidden_dim=16"], validate=False)
    folder = tmp_path_factory.mktemp("batch-ckpt") / "ckpt"
    save_checkpoint(build_model(cfg, 2), to_dict(cfg), folder, bundled_tokenizer,
                    {"epoch": 0, "labels": ["NEG", "POS"], "run_id": None})
    return str(folder)


def _text_explain(ws, ckpt, text, capsys, extractor="own", second=None, query=None, wb=None):
    """What ``explain --text ... --json`` prints: through the CLI, or (``wb``: a workbench whose checkpoint cache
    is warm) the same Workbench.explain the CLI calls, to load the checkpoint once for many texts."""
    import dataclasses

    if wb is not None:
        return json.loads(json.dumps(dataclasses.asdict(wb.explain(ckpt, text, query=query, extractor=extractor,
                                                                    top_k=30, second_text=second))))
    argv = ["--workspace", str(ws), "explain", "--run", ckpt, "--text", text, "--extractor", extractor, "--json",
            "--top-k", "30"]
    argv += ["--second-text", second] if second else []
    argv += ["--query", query] if query else []
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def _batch(ws, ckpt, inp, out, *extra) -> int:
    return main(["--workspace", str(ws), "explain", "--run", ckpt, "--file", str(inp), "--out", str(out),
                 "--top-k", "30", "--batch-size", "2", *extra])


# integrated gradients (50 steps) on three texts only: the slowest of the three on a shared CPU
@pytest.mark.parametrize("extractor,n", [("own", 5), ("input-x-gradient", 5), ("integrated-gradients", 3)])
def test_rows_equal_explain_text_and_formats_agree(ckpt, tmp_path, capsys, extractor, n):
    ws = tmp_path / "ws"
    inp = tmp_path / "in.txt"
    inp.write_text("\n".join(TEXTS[:2]) + "\n\n" + "\n".join(TEXTS[2:n]) + "\n")  # a blank line is skipped
    # integrated gradients: its steps in passes of --batch-size sequences, so a larger one here
    size = ["--batch-size", "32"] if extractor == "integrated-gradients" else []
    assert _batch(ws, ckpt, inp, tmp_path / "out.jsonl", "--extractor", extractor, "--faithfulness", *size) == 0
    out = capsys.readouterr().out
    assert f"wrote {n} rows" in out and "examples/s" in out
    rows = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["idx"] for r in rows] == list(range(n)) and [r["id"] for r in rows] == ["1", "2", "4", "5", "6"][:n]
    assert list(rows[0]) == [*COLUMNS, "comprehensiveness", "sufficiency"]
    from workbench import Workbench

    wb = Workbench(ws)
    for i, (text, r) in enumerate(zip(TEXTS, rows)):
        one = _text_explain(ws, ckpt, text, capsys, extractor, wb=None if i == 0 else wb)
        assert r["words"] == one["words"] == text.split()
        assert r["rationale"] == one["rationale"] and r["label_name"] == one["predicted"]
        assert r["labels"] == one["labels"] == ["NEG", "POS"] and r["label"] == one["labels"].index(one["predicted"])
        assert r["word_scores"] == pytest.approx(one["word_scores"], abs=1e-5)
        assert r["probs"] == pytest.approx(one["probs"], abs=1e-6)
        assert r["comprehensiveness"] == pytest.approx(one["comprehensiveness"], abs=1e-6)
        assert r["sufficiency"] == pytest.approx(one["sufficiency"], abs=1e-6)
        assert r["n_subwords"] == one["n_subwords"] == len(r["input_ids"]) == len(r["tokens"]) == len(r["attributions"])
        assert r["tokens"][0] == "[CLS]" and r["tokens"][-1] == "[SEP]" and r["attributions"][0] == 0.0
        # the word scores are the subword scores summed per word
        assert sum(r["word_scores"]) == pytest.approx(sum(r["attributions"]), abs=1e-5)
        assert r["rationale_words"] == [w for w, k in zip(r["words"], r["rationale"]) if k]

    if extractor != "own":
        return
    assert _batch(ws, ckpt, inp, tmp_path / "out.parquet", "--extractor", extractor, "--faithfulness") == 0
    capsys.readouterr()
    pq = pl.read_parquet(tmp_path / "out.parquet")
    assert pq.columns == list(rows[0]) and pq.height == 5
    for a, b in zip(pq.to_dicts(), rows):
        assert a == b


def test_jsonl_input_ids_query_second_text(ckpt, tmp_path, capsys):
    ws = tmp_path / "ws"
    inp = tmp_path / "in.jsonl"
    lines = [{"text": TEXTS[0], "id": "a"}, {"text": TEXTS[1], "query": "is it good ?", "id": 7},
             {"text": "a man sleeps", "second_text": "a person rests"}]
    inp.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    assert _batch(ws, ckpt, inp, tmp_path / "o.jsonl", "--extractor", "input-x-gradient") == 0
    capsys.readouterr()
    rows = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", "7", "3"] and "comprehensiveness" not in rows[0]
    with_query = _text_explain(ws, ckpt, TEXTS[1], capsys, "input-x-gradient", query="is it good ?")
    assert rows[1]["words"] == with_query["words"] and rows[1]["probs"] == pytest.approx(with_query["probs"], abs=1e-6)
    assert "is" in rows[1]["tokens"][rows[1]["tokens"].index("[SEP]"):]  # the query is the second segment
    two = _text_explain(ws, ckpt, "a man sleeps", capsys, "input-x-gradient", second="a person rests")
    assert rows[2]["words"] == two["words"] == "a man sleeps a person rests".split()
    assert rows[2]["word_document"] == [0, 0, 0, 1, 1, 1]
    assert rows[2]["word_scores"] == pytest.approx(two["word_scores"], abs=1e-5)


def test_every_bad_input_is_one_line_exit_2_and_nothing_at_out(ckpt, tmp_path, capsys):
    from unirex.text_input import MAX_TEXT_CHARS

    ws = tmp_path / "ws"
    good = tmp_path / "good.txt"
    good.write_text(TEXTS[0] + "\n")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    long = tmp_path / "long.txt"
    long.write_text(TEXTS[0] + "\n" + "word " * (MAX_TEXT_CHARS // 5 + 1) + "\n")
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps({"text": "fine"}) + "\n" + '{"text": "unterminated\n')
    no_text = tmp_path / "no_text.jsonl"
    no_text.write_text(json.dumps({"query": "q"}) + "\n")
    cases = [
        (empty, "out.jsonl", [], "empty"),
        (long, "out.jsonl", [], f"{long}:2: the text has"),
        (broken, "out.parquet", [], f"{broken}:2: malformed JSON"),
        (no_text, "out.jsonl", [], f"{no_text}:1: no 'text' string"),
        (tmp_path / "missing.txt", "out.jsonl", [], "no such file"),
        (good, "out.csv", [], "must end in .jsonl or .parquet"),
        (good, "nofolder/out.jsonl", [], "no folder"),
        (good, "out.jsonl", ["--batch-size", "0"], "--batch-size must be at least 1"),
        (good, "out.jsonl", ["--top-k", "0"], "top-k must be a percentage"),
    ]
    for inp, name, extra, msg in cases:
        out = tmp_path / name
        assert _batch(ws, ckpt, inp, out, *extra) == 2, msg
        err = capsys.readouterr().err.strip()
        assert msg in err and len(err.splitlines()) == 1 and err.startswith("error: "), (msg, err)
        assert not out.exists()
    # an unknown extractor: one line naming it and the known ones (no argparse usage), exit 2, nothing written;
    # the same with --text
    from unirex.registry import post_hoc_extractors

    for what in (["--file", str(good), "--out", str(tmp_path / "out.jsonl")], ["--text", TEXTS[0]]):
        assert main(["--workspace", str(ws), "explain", "--run", ckpt, *what, "--extractor", "nope"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: unknown extractor 'nope'") and len(err.strip().splitlines()) == 1, err
        assert all(name in err for name in post_hoc_extractors()) and "usage" not in err
    assert not (tmp_path / "out.jsonl").exists()
    # --file without --out
    assert main(["--workspace", str(ws), "explain", "--run", ckpt, "--file", str(good)]) == 2
    assert "--file needs --out" in capsys.readouterr().err
    # an existing OUT is kept unless --overwrite; nothing is left beside it
    out = tmp_path / "exists.jsonl"
    out.write_text("keep me\n")
    assert _batch(ws, ckpt, good, out) == 2 and "exists" in capsys.readouterr().err
    assert out.read_text() == "keep me\n"
    assert _batch(ws, ckpt, good, out, "--overwrite") == 0
    capsys.readouterr()
    assert json.loads(out.read_text())["words"] == TEXTS[0].split()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_failure_part_way_leaves_nothing_at_out(ckpt, tmp_path):
    """The rows stream into a temporary file beside OUT: an error after some rows removes it, OUT never appears."""
    from unirex.errors import UnirexError
    from workbench.batch_explain import write_rows

    def rows():
        yield {k: None for k in COLUMNS}
        raise UnirexError("stopped")

    for name in ("half.jsonl", "half.parquet"):
        with pytest.raises(UnirexError, match="stopped"):
            write_rows(tmp_path / name, rows(), faithfulness=False)
        assert list(tmp_path.iterdir()) == []


def test_batches_are_packed_by_length(ckpt, tmp_path, bundled_tokenizer):
    """explain_texts cuts length-sorted texts by the packing plan and gives the results back in input order,
    each as its one-text explanation (comp/suff NaN without faithfulness)."""
    from unirex.checkpoint import load_checkpoint
    from unirex.inference import TextInput, explain_text, explain_texts

    model, cfg, info = load_checkpoint(ckpt)
    model.eval()
    texts = [TextInput((t,)) for t in TEXTS * 3]
    got = list(explain_texts(model, bundled_tokenizer, texts, ["NEG", "POS"], 64, extractor="input-x-gradient",
                             batch_size=4, window=7))
    assert [g.explanation.words for g in got] == [t.documents[0].split() for t in texts]
    assert math.isnan(got[0].explanation.comprehensiveness)
    for t, g in zip(texts[:5], got[:5]):
        one = explain_text(model, bundled_tokenizer, t.documents[0], ["NEG", "POS"], 64, extractor="input-x-gradient")
        assert g.explanation.word_scores == pytest.approx(one.word_scores, abs=1e-5)
        assert g.explanation.rationale == one.rationale and g.explanation.predicted == one.predicted


@pytest.mark.parametrize("algo", ["input-x-gradient", "gradient"])
def test_one_pass_gradient_scores_equal_captum(ckpt, bundled_tokenizer, algo):
    """Explaining with a gradient algorithm runs one forward pass for the prediction and the gradient; the scores
    equal Captum's on the class predicted by a separate pass (the extractor's own path)."""
    import torch

    from unirex.checkpoint import load_checkpoint
    from unirex.data.encode import encode_text
    from unirex.data.tensors import LIST_COLUMNS, collate
    from unirex.inference import text_scorer
    from unirex.models.extractors import AttributionExtractor
    from unirex.rationale import mark_selectable

    model, _, _ = load_checkpoint(ckpt)
    model.eval()
    rows = [encode_text([t], bundled_tokenizer, 64) for t in TEXTS]
    batch = mark_selectable(collate([{**{c: r[c] for c in LIST_COLUMNS}, "label": 0, "has_rationale": False,
                                      "index": i} for i, r in enumerate(rows)], 0), "eraser")
    logits, fused = text_scorer(model, algo)[1](batch)
    with torch.no_grad():
        assert torch.allclose(logits, model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                            token_type_ids=batch["token_type_ids"]), atol=1e-6)
    captum = AttributionExtractor(algo, "sum").scores(batch, model.task_lm).detach()
    assert fused.shape == captum.shape and torch.allclose(fused, captum, atol=1e-6)
    assert fused.abs().sum() > 0
