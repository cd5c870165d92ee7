"""ERASER results export: ``python -m unirex export-eraser --run RUN --split test --out FILE``.

Writes ERASER's results format (``rationale_benchmark/metrics.py --results``), one JSON line per
annotation of the split, from a run's saved evaluation outputs (:func:`unirex.evaluate.save_outputs`)
and the split table they index:

* ``annotation_id``
* ``rationales``: one entry per document of the annotation, ``{docid, hard_rationale_predictions:
  [{start_token, end_token}], soft_rationale_predictions: [one float per document word]}``. Soft
  scores are subword scores summed per word (truncated words 0); the hard spans are the maximal runs
  of words of the top-``hard_k`` % rationale.
* ``classification`` (predicted label name), ``classification_scores`` ``{label: p}``
* ``comprehensiveness_classification_scores`` / ``sufficiency_classification_scores``: the class
  distributions with the hard rationale deleted / alone
* ``thresholded_scores``: ``[{threshold: k / 100, comprehensiveness_classification_scores,
  sufficiency_classification_scores}]`` for the bins (ERASER's AOPC thresholds 0.01 ... 0.5).

ERASER's scorer skips all hard-rationale scoring when the first document of the first line has no
hard prediction; when that would happen, the export lists a document that has one first (the order
of lines and documents carries no meaning to the scorer).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import polars as pl

from unirex.errors import UnirexError
from unirex.fsutil import atomic_write
from unirex.evaluate import EvalOutputs, load_outputs
from unirex.metrics.plausibility import spans_from_mask
from unirex.workspace import workspace_dir


def resolve_run_dir(run: str | os.PathLike, workspace: str | os.PathLike | None = None) -> Path:
    """A run id under ``<workspace>/runs/`` or a run directory path."""
    p = Path(run).expanduser()
    if p.is_dir() and (p / "outputs").is_dir():
        return p
    cand = workspace_dir(workspace) / "runs" / str(run)
    if cand.is_dir():
        return cand
    if p.is_dir():
        return p
    raise UnirexError(f"run '{run}' not found: neither a run directory nor {cand}")


def find_split_table(meta: dict, workspace: str | os.PathLike | None = None) -> Path:
    """The split table the outputs index: the recorded path, else rebuilt from dataset/arch/max_length
    under ``<workspace>/data``."""
    recorded = meta.get("split_table")
    if recorded and Path(recorded).is_file():
        return Path(recorded)
    if meta.get("dataset") and meta.get("max_length"):
        # lazy: unirex.data.build pulls pydantic; only runs without a recorded split table need it
        from unirex.data.build import build_dir
        from unirex.workspace import data_dir

        folder = build_dir(data_dir(workspace), meta["dataset"], meta.get("arch"), int(meta["max_length"]))
        layout = str(meta.get("layout") or "")
        if re.fullmatch(r"-ref[a-z]{0,8}", layout):  # the reference protocol's input layout has its own folder
            folder = folder.with_name(folder.name + layout)
        cand = folder / f"{meta.get('tag') or meta['split']}.parquet"
        if cand.is_file():
            return cand
    raise UnirexError(f"the split table of these outputs is gone (recorded: {recorded}); rebuild the dataset "
                      f"'{meta.get('dataset')}' for arch '{meta.get('arch')}' at max_length {meta.get('max_length')}")


def _scores_dict(labels: list[str], probs: np.ndarray) -> dict[str, float]:
    return {lab: float(p) for lab, p in zip(labels, probs)}


def eraser_instances(outputs: EvalOutputs, table: pl.DataFrame) -> list[dict]:
    """ERASER result lines (dicts) for every example of ``outputs``; ``table`` is the split table."""
    ids = table["annotation_id"].to_list()
    docids_all = table["docids"].to_list()
    counts_all = table["doc_word_counts"].to_list()
    labels = outputs.labels
    if len(labels) != outputs.probs.shape[1]:
        raise UnirexError(f"outputs have {outputs.probs.shape[1]} classes but {len(labels)} label names")
    lines = []
    for j, row in enumerate(outputs.index.tolist()):
        if row >= len(ids) or ids[row] != outputs.annotation_id[j]:
            raise UnirexError(f"outputs row {j} ({outputs.annotation_id[j]}) does not match the split table row {row}; "
                              "was the dataset rebuilt since the evaluation?")
        counts = counts_all[row]
        ws, hw = outputs.word_scores[j], outputs.hard_words[j]
        if len(ws) != sum(counts):
            raise UnirexError(f"{ids[row]}: {len(ws)} word scores for {sum(counts)} document words")
        offsets = np.concatenate(([0], np.cumsum(counts))).astype(int)
        rationales = []
        for d, docid in enumerate(docids_all[row]):
            a, b = offsets[d], offsets[d + 1]
            rationales.append({
                "docid": docid,
                "hard_rationale_predictions": [{"start_token": s, "end_token": e} for s, e in spans_from_mask(hw[a:b])],
                "soft_rationale_predictions": [float(x) for x in ws[a:b]],
            })
        pred = int(outputs.pred[j])
        lines.append({
            "annotation_id": ids[row],
            "rationales": rationales,
            "classification": labels[pred],
            "classification_scores": _scores_dict(labels, outputs.probs[j]),
            "comprehensiveness_classification_scores": _scores_dict(labels, outputs.hard_comp_probs[j]),
            "sufficiency_classification_scores": _scores_dict(labels, outputs.hard_suff_probs[j]),
            "thresholded_scores": [
                {"threshold": k / 100,
                 "comprehensiveness_classification_scores": _scores_dict(labels, outputs.comp_probs[j, b]),
                 "sufficiency_classification_scores": _scores_dict(labels, outputs.suff_probs[j, b])}
                for b, k in enumerate(outputs.bins)
            ],
        })
    _hard_first(lines)
    return lines


def _hard_first(lines: list[dict]) -> None:
    """Make the first line's first document carry a hard prediction when any line has one."""
    def has(rat):
        return bool(rat["hard_rationale_predictions"])

    if not lines or has(lines[0]["rationales"][0]):
        return
    i = next((i for i, ln in enumerate(lines) if any(has(r) for r in ln["rationales"])), None)
    if i is None:
        return
    lines.insert(0, lines.pop(i))
    rats = lines[0]["rationales"]
    d = next(d for d, r in enumerate(rats) if has(r))
    rats.insert(0, rats.pop(d))


def _run_folder_of(path: Path) -> Path | None:
    """The run folder (one holding ``meta.json`` and ``status.json``) that ``path`` lies in, if any."""
    for folder in path.parents:
        if (folder / "meta.json").is_file() and (folder / "status.json").is_file():
            return folder
    return None


def check_export_target(out: str | os.PathLike, force: bool = False) -> Path:
    """Where an export may write ``out``: never over a folder, never inside a run folder except as a
    ``.jsonl`` file in its ``outputs/`` (the run's own files, its config, metrics log, checkpoint and
    saved outputs, are never overwritten), and over an existing file only with ``force``."""
    out = Path(out).expanduser()
    target = out.parent.resolve() / out.name  # the file the write replaces (a link at `out` is replaced, not followed)
    if target.is_dir():
        raise UnirexError(f"--out {out} is a folder; name a file (e.g. {out / 'test_decoded.jsonl'})")
    run_folder = _run_folder_of(target)
    if run_folder is not None:
        outputs = run_folder / "outputs"
        if target.parent != outputs or target.suffix != ".jsonl":
            raise UnirexError(f"--out {out} is inside the run folder {run_folder}: refused, a run's own files are "
                              f"never overwritten; write elsewhere, or to a .jsonl file in {outputs}")
    if (target.exists() or target.is_symlink()) and not force:
        raise UnirexError(f"--out {out} exists; pass --force to overwrite it")
    return target


def export_eraser(run: str | os.PathLike, split: str, out: str | os.PathLike,
                  workspace: str | os.PathLike | None = None, force: bool = False) -> tuple[Path, int]:
    """Write the ERASER results file of ``run`` on ``split`` to ``out``; returns ``(path, lines)``.

    ``out`` is checked first (:func:`check_export_target`): an existing file is refused unless ``force``
    (an overwritten file keeps its permission bits), and nothing inside a run folder but a ``.jsonl``
    in its ``outputs/`` is written.
    """
    # lazy: pulls pydantic, which this module does not otherwise load
    from unirex.data.build import CANONICAL_SPLIT

    run_dir = resolve_run_dir(run, workspace)
    check_export_target(out, force)
    split = CANONICAL_SPLIT.get(split, split)
    outputs, meta = load_outputs(run_dir, split)
    table = pl.read_parquet(find_split_table(meta, workspace))
    lines = eraser_instances(outputs, table)
    out = Path(out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    target = check_export_target(out, force)  # again: the folder may have been created meanwhile
    atomic_write(target, lambda tmp: Path(tmp).write_text("".join(json.dumps(ln) + "\n" for ln in lines),
                                                          encoding="utf-8"))
    return out, len(lines)


__all__ = ["check_export_target", "eraser_instances", "export_eraser", "find_split_table",
           "resolve_run_dir"]
