"""Subword <-> word alignment helpers.

Models see subwords; ERASER documents are whitespace words. ``word_ids[i]`` (from the built table) is the
index of subword ``i``'s word in the concatenated documents, or -1 for special tokens, separators, the
query and padding.
"""

from __future__ import annotations

import numpy as np


def pool_to_words(values, word_ids, n_words: int, reduce: str = "sum") -> np.ndarray:
    """Pool per-subword ``values`` [L] into per-word values [n_words].

    ``reduce='sum'`` adds a word's subword scores (ERASER word-level soft scores); ``'max'`` gives 1 for
    a word any of whose subwords is marked (masks). Words with no subword in the input (truncated) get 0.
    """
    values = np.asarray(values, dtype=np.float64)
    word_ids = np.asarray(word_ids, dtype=np.int64)
    keep = (word_ids >= 0) & (word_ids < n_words)
    out = np.zeros(n_words, dtype=np.float64)
    if reduce == "sum":
        np.add.at(out, word_ids[keep], values[keep])
    elif reduce == "max":
        out[:] = -np.inf
        np.maximum.at(out, word_ids[keep], values[keep])
        out[~np.isfinite(out)] = 0.0
    else:
        raise ValueError(f"unknown reduce '{reduce}' (sum or max)")
    return out


def words_to_subwords(word_values, word_ids) -> np.ndarray:
    """Spread per-word values onto subwords: position ``i`` gets ``word_values[word_ids[i]]``, 0 off-document."""
    word_values = np.asarray(word_values, dtype=np.float64)
    word_ids = np.asarray(word_ids, dtype=np.int64)
    out = np.zeros(len(word_ids), dtype=np.float64)
    on = word_ids >= 0
    out[on] = word_values[word_ids[on]]
    return out
