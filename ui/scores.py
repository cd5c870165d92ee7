"""Word scores as colours, as LIT and the attribution libraries draw them: a diverging blue-white-red scale
centred at 0 for signed scores, a sequential white-orange one for scores that are never negative, a choice
of normalisation (per text, per dataset, none) and a legend with the numeric range and what a colour means.

The page gets HTML built here from escaped text only (:func:`ui.common.html_text`): a word is never markup.
"""

from __future__ import annotations

from dataclasses import dataclass

from ui.common import html_text
from unirex.errors import UnirexError
from workbench import ScoreScale

PER_TEXT, PER_DATASET, NONE = "per text", "per dataset", "none"
#: the normalisation choices and what each divides the scores by
NORMALISATIONS = {
    PER_TEXT: "full colour at the text's largest |score|",
    PER_DATASET: "full colour at the 99th percentile of |score| over the checkpoint's test examples",
    NONE: "the raw score is the colour: full colour at |score| >= 1",
}
_WHITE = (255, 255, 255)
RED, BLUE, ORANGE = (178, 24, 43), (33, 102, 172), (217, 95, 14)  # ColorBrewer RdBu ends; YlOrBr's dark orange


@dataclass(frozen=True)
class ColourScale:
    """How one explanation's scores become colours: ``signed`` (diverging) or not (sequential), and the
    score (``full``) that gets full colour; ``low``/``high`` are the scores shown."""

    signed: bool
    full: float
    norm: str
    low: float
    high: float

    def value(self, score: float) -> float:
        """``score`` on the colour axis: [-1, 1] when signed, [0, 1] otherwise (clipped)."""
        v = float(score) / self.full if self.full > 0 else 0.0
        return max(-1.0, min(1.0, v)) if self.signed else max(0.0, min(1.0, v))


def colour_scale(scores: list[float], norm: str = PER_TEXT, dataset: ScoreScale | None = None) -> ColourScale:
    """The scale of ``scores`` under normalisation ``norm`` (``dataset``: the checkpoint's scores over its test
    split, needed for :data:`PER_DATASET`). Signed when a score here, or over the dataset, is below 0."""
    if norm not in NORMALISATIONS:
        raise UnirexError(f"normalisation must be one of {', '.join(NORMALISATIONS)}, got {norm!r}")
    vals = [float(s) for s in scores] or [0.0]
    low, high = min(vals), max(vals)
    signed = low < 0 or (dataset is not None and norm == PER_DATASET and dataset.signed)
    if norm == PER_TEXT:
        full = max(abs(low), abs(high))
    elif norm == PER_DATASET:
        if dataset is None:
            raise UnirexError("per-dataset normalisation needs the checkpoint's score scale")
        full = dataset.scale
    else:
        full = 1.0
    return ColourScale(signed=signed, full=float(full), norm=norm, low=low, high=high)


def _mix(to: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    return tuple(round(w + (c - w) * t) for w, c in zip(_WHITE, to))  # type: ignore[return-value]


def colour(v: float, signed: bool) -> tuple[int, int, int]:
    """The colour of ``v`` on the colour axis: white at 0, red towards +1 and blue towards -1 (diverging), or
    white to dark orange over [0, 1] (sequential)."""
    if not signed:
        return _mix(ORANGE, max(0.0, min(1.0, v)))
    return _mix(RED, min(1.0, v)) if v >= 0 else _mix(BLUE, min(1.0, -v))


def _css(rgb: tuple[int, int, int]) -> str:
    return f"rgb({rgb[0]},{rgb[1]},{rgb[2]})"


def meaning(extractor: str, predicted: str, signed: bool) -> str:
    """What a colour says, for the checkpoint's own extractor (a learned rationale score) or a post-hoc
    attribution on its task LM (the predicted class's)."""
    own = extractor.startswith("own")
    if own:
        return ("red = the extractor scores the word above 0 (towards its rationale), blue = below 0, white = 0"
                if signed else "darker = a higher rationale score from the extractor, white = 0")
    return (f"red = supports the predicted class ({predicted}), blue = speaks against it, white = no effect"
            if signed else f"darker = more important to the predicted class ({predicted}), white = none")


def _num(x: float) -> str:
    return f"{x:.3g}"


def legend_html(cs: ColourScale, extractor: str, predicted: str, n_words: int) -> str:
    """The colour bar with the scores at its ends and middle, the range of the scores shown, the
    normalisation and what the colours mean (all text escaped)."""
    if cs.signed:
        stops = f"{_css(BLUE)}, #ffffff, {_css(RED)}"
        ticks = [_num(-cs.full), "0", _num(cs.full)]
    else:
        stops = f"#ffffff, {_css(ORANGE)}"
        ticks = ["0", _num(cs.full / 2), _num(cs.full)]
    tick_html = "".join(f"<span>{html_text(t)}</span>" for t in ticks)
    return (
        '<div class="score-legend" style="margin-top:8px;font-size:0.85em">'
        f'<div style="display:flex;align-items:center;gap:8px"><span>{"diverging" if cs.signed else "sequential"}'
        f' scale</span><div style="flex:0 0 220px"><div class="score-bar" style="height:10px;border:1px solid #999;'
        f'background:linear-gradient(to right, {stops})"></div>'
        f'<div style="display:flex;justify-content:space-between">{tick_html}</div></div></div>'
        f'<div class="score-meaning">{html_text(meaning(extractor, predicted, cs.signed))}</div>'
        f'<div class="score-range">scores shown: min {html_text(_num(cs.low))}, max {html_text(_num(cs.high))} '
        f'over {n_words} words · normalisation {html_text(cs.norm)}: {html_text(NORMALISATIONS[cs.norm])}'
        + (f" ({html_text(_num(cs.full))})" if cs.norm != NONE else "") + "</div></div>")


def score_html(words: list[str], scores: list[float], word_document: list[int], extractor: str, predicted: str,
               norm: str = PER_TEXT, dataset: ScoreScale | None = None) -> str:
    """The words coloured by their scores (each word's score in its tooltip), documents separated by a bar,
    and the legend under them. Built from escaped text only."""
    cs = colour_scale(scores, norm, dataset)
    spans = []
    for i, (w, s) in enumerate(zip(words, scores)):
        if i and word_document[i] != word_document[i - 1]:
            spans.append('<span class="score-doc-break"> | </span>')
        v = cs.value(s)
        fg = "#ffffff" if abs(v) > 0.6 else "#111111"
        spans.append(f'<span class="score-word" title="score {html_text(_num(s))}" style="background:'
                     f'{_css(colour(v, cs.signed))};color:{fg};padding:1px 2px;border-radius:3px">{html_text(w)}</span>')
    return (f'<div class="score-words" style="line-height:1.9">{" ".join(spans)}</div>'
            + legend_html(cs, extractor, predicted, len(scores)))


__all__ = ["BLUE", "ColourScale", "NONE", "NORMALISATIONS", "ORANGE", "PER_DATASET", "PER_TEXT", "RED", "colour",
           "colour_scale", "legend_html", "meaning", "score_html"]
