"""Explain's colours say what they mean: a diverging blue-white-red scale centred at 0 for signed scores, a
sequential one for non-negative scores, a legend with the range of the scores shown and what a colour means,
and a choice of normalisation (per text, per dataset over the checkpoint's test scores, none)."""

from __future__ import annotations

import re
import shutil

import pytest

from ui import scores as sc
from unirex.errors import UnirexError
from workbench import ScoreScale, Workbench


def _bg(html: str) -> list[tuple[int, int, int]]:
    return [tuple(map(int, m)) for m in re.findall(r'class="score-word"[^>]*background:rgb\((\d+),(\d+),(\d+)\)', html)]


def _scale(low, high, scale) -> ScoreScale:
    return ScoreScale(checkpoint="R-x", extractor="own", split="test", n_examples=10, n_words=100, low=low, high=high,
                      scale=scale)


def test_signed_scores_get_a_diverging_scale_centred_at_zero():
    html = sc.score_html(["good", "film", "<b>bad</b>"], [2.0, 0.0, -1.0], [0, 0, 0], "input-x-gradient", "POS")
    good, film, bad = _bg(html)
    assert good == sc.RED and film == (255, 255, 255)  # the text's largest |score| gets full colour; 0 is white
    assert bad == (144, 178, 214)  # half way from white to blue (33, 102, 172): -1 of a largest |score| of 2
    assert "red = supports the predicted class (POS), blue = speaks against it" in html
    assert "scores shown: min -1, max 2 over 3 words" in html and "diverging scale" in html
    assert "&lt;b&gt;bad&lt;/b&gt;" in html and "<b>" not in html  # a word is text, never markup
    assert 'title="score -1"' in html


def test_non_negative_scores_get_a_sequential_scale():
    html = sc.score_html(["a", "b"], [0.0, 4.0], [0, 0], "own (slm)", "NEG")
    assert _bg(html) == [(255, 255, 255), sc.ORANGE] and "sequential scale" in html
    assert "darker = a higher rationale score from the extractor" in html
    signed_own = sc.score_html(["a", "b"], [-3.0, 1.0], [0, 1], "own (slm)", "NEG")
    assert "red = the extractor scores the word above 0" in signed_own and "score-doc-break" in signed_own


def test_normalisations_per_text_per_dataset_and_none():
    words, scores, docs = ["a", "b"], [0.5, -0.25], [0, 0]
    per_text = _bg(sc.score_html(words, scores, docs, "gradient", "POS", sc.PER_TEXT))
    assert per_text[0] == sc.RED  # 0.5 is this text's largest
    dataset = _scale(-3.0, 2.0, 2.0)
    per_ds = sc.colour_scale(scores, sc.PER_DATASET, dataset)
    assert per_ds.full == 2.0 and per_ds.value(0.5) == pytest.approx(0.25) and per_ds.value(9.0) == 1.0
    html = sc.score_html(words, scores, docs, "gradient", "POS", sc.PER_DATASET, dataset)
    assert _bg(html)[0] == sc.colour(0.25, True) and "99th percentile" in html and "(2)" in html
    raw = sc.colour_scale(scores, sc.NONE)
    assert raw.full == 1.0 and raw.value(0.5) == 0.5 and raw.value(-7.0) == -1.0
    # non-negative scores on a dataset whose scores have both signs: still the diverging scale
    assert sc.colour_scale([0.1, 0.2], sc.PER_DATASET, dataset).signed
    assert not sc.colour_scale([0.1, 0.2], sc.PER_TEXT).signed
    assert sc.colour_scale([0.0, 0.0]).value(0.0) == 0.0  # all zero: white, no division by zero
    with pytest.raises(UnirexError, match="normalisation must be one of"):
        sc.colour_scale(scores, "per galaxy")
    with pytest.raises(UnirexError, match="needs the checkpoint's score scale"):
        sc.colour_scale(scores, sc.PER_DATASET)


def test_score_scale_over_the_checkpoints_test_split_is_computed_once(tmp_path, tiny_arch, small_demo_dir):
    from unirex.engine import resolve_run_config, run

    shutil.copytree(small_demo_dir / "demo", tmp_path / "data" / "demo")
    res = run(resolve_run_config([f"arch={tiny_arch}", f"workspace={tmp_path}", "data=demo", "data.max_length=64",
                                  "method=slm_plaus_linear", "debug=True", "save_checkpoint=True",
                                  "training.eval_splits=test"]))
    assert res.status == "completed"
    wb = Workbench(tmp_path)
    told = []
    s = wb.explainer.score_scale(res.run_id, None, n=6, progress=lambda i, n: told.append((i, n)))
    assert s.n_examples == 6 and s.n_words > 6 and s.low <= s.high and 0 < s.scale <= max(abs(s.low), abs(s.high))
    assert told == [(i, 6) for i in range(6)]
    assert wb.explainer.score_scale(res.run_id, "own", n=6) is s  # cached: computed once
    grad = wb.explainer.score_scale(res.run_id, "input-x-gradient", n=6)
    assert grad is not s and grad.extractor == "input-x-gradient" and grad.signed  # signed attributions
    ex = wb.explain(res.run_id, "a good film , not bad at all")
    html = sc.score_html(ex.words, ex.word_scores, ex.word_document, ex.extractor, ex.predicted, sc.PER_DATASET, s)
    assert len(_bg(html)) == 8 and "over 8 words" in html
