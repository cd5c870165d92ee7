"""Terminal rendering for the CLI: aligned tables, numbers, and highlighted rationales."""

from __future__ import annotations

import math
import sys
from typing import Any, Iterable


def fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        if math.isnan(v):
            return "n/a"
        return f"{v:.{digits}f}"
    if isinstance(v, (list, tuple)):
        return ",".join(str(x) for x in v)
    return str(v)


def table(header: list[str], rows: Iterable[list[Any]], out=None) -> None:
    """Print a plain aligned table (two spaces between columns)."""
    out = out or sys.stdout
    rows = [[fmt(x) for x in r] for r in rows]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip(), file=out)


def mean_std(mean: float | None, std: float | None, digits: int = 3) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def highlight(words: list[str], scores: list[float], rationale: list[bool], colour: bool) -> str:
    """The words with the rationale marked: a background whose strength follows the score (ANSI 256
    colours) when ``colour``, else ``[brackets]`` around rationale words."""
    if not colour:
        return " ".join(f"[{w}]" if r else w for w, r in zip(words, rationale))
    top = max((abs(s) for s, r in zip(scores, rationale) if r), default=0.0) or 1.0
    shades = (22, 28, 34, 40, 46)  # dark to bright green
    out = []
    for w, s, r in zip(words, scores, rationale):
        if r:
            shade = shades[min(len(shades) - 1, int(abs(s) / top * (len(shades) - 1) + 0.5))]
            out.append(f"\x1b[48;5;{shade}m\x1b[30m{w}\x1b[0m")
        else:
            out.append(w)
    return " ".join(out)


__all__ = ["fmt", "highlight", "mean_std", "table"]
