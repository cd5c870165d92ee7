"""Teacher attributions for FRESH and L2E: a finished run's saved attributions (``model.save_outputs=True``),
found, checked against this run's splits and attached to them.

FRESH reads a pruned input everywhere, in training and in evaluation: :func:`fresh_table` turns a split's
``attention_mask`` into the teacher's top-k (plus [CLS]). L2E distils the teacher's scores: they ride along
as the split's ``teacher_scores`` extra.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from unirex.config import RunConfig
from unirex.errors import UnirexError
from unirex.objective import fresh_keep
from unirex.rationale import mark_selectable
from unirex.runs import RunDir, list_runs


def attrs_path(run_dir: Path, split: str) -> Path:
    return RunDir(Path(run_dir)).attrs_path(split)


def find_attributions(runs_root: Path, exp_id: str, split: str) -> Path:
    """The saved attributions of run ``exp_id``: its own, or (newest first) those of a run that named it
    with ``model.exp_id`` or evaluated its checkpoint (UNIREX's ``training=evaluate model.save_outputs=True
    model.exp_id=ER-XXXX``)."""
    own = RunDir.open(runs_root, exp_id)
    candidates = [own] + [rd for rd in reversed(list_runs(runs_root)) if rd.run_id != own.run_id and (
        rd.meta().get("parent_run") == own.run_id or (rd.config().get("model") or {}).get("exp_id") == own.run_id)]
    for rd in candidates:
        if attrs_path(rd.path, split).is_file():
            return attrs_path(rd.path, split)
    raise UnirexError(f"run '{exp_id}' has no saved attributions for split '{split}' (nor any run that evaluated it "
                      "with model.save_outputs=True); rerun it with model.save_outputs=True")


def load_teacher_scores(runs_root: Path, exp_id: str, split: str, table: pl.DataFrame,
                        attr_algo: str | None = None) -> list[list[float]]:
    """A teacher run's saved attributions for ``split``, one list per row of ``table`` (same order).

    The teacher must have been run with ``model.save_outputs=True`` on the same dataset, arch and max
    length; rows are matched by annotation id and their subword counts must agree.
    """
    path = find_attributions(runs_root, exp_id, split)
    saved = pl.read_parquet(path)
    algo = saved["attr_algo"][0] if "attr_algo" in saved.columns and saved.height else None
    if attr_algo and algo and attr_algo != algo:
        raise UnirexError(f"run '{exp_id}' saved '{algo}' attributions, but '{attr_algo}' was asked for")
    # multiple choice (CoS-E): one row per (annotation, choice)
    choice = "choice" in table.columns and "choice" in saved.columns
    keys = list(zip(saved["annotation_id"].to_list(), saved["choice"].to_list())) if choice else saved["annotation_id"].to_list()
    by_id = dict(zip(keys, saved["scores"].to_list()))
    want = list(zip(table["annotation_id"].to_list(), table["choice"].to_list())) if choice else table["annotation_id"].to_list()
    out = []
    for key, ids in zip(want, table["input_ids"].to_list()):
        s = by_id.get(key)
        ann_id = key[0] if choice else key
        if s is None:
            raise UnirexError(f"run '{exp_id}' has no attributions for annotation '{ann_id}' ({split}); "
                              "was it trained on the same dataset?")
        if len(s) != len(ids):
            raise UnirexError(f"run '{exp_id}': attributions of '{ann_id}' have {len(s)} subwords, the input has "
                              f"{len(ids)}; use the same arch and data.max_length as the teacher")
        out.append(s)
    return out


def fresh_table(ds, teacher: list[list[float]], k_percent: float, chunk: int = 256,
                protocol: str = "eraser") -> pl.DataFrame:
    """FRESH's inputs for a whole split: per row, ``attention_mask`` becomes the teacher's binary top-k
    plus [CLS] (:func:`unirex.objective.fresh_keep`, the same rule as a training batch); the other
    tokens stay in place, masked, as UNIREX feeds them in training. The evaluator deletes masked
    tokens itself, so evaluation scores the re-packed pruned input. ``protocol``: which tokens the
    teacher's top-k may pick (:func:`unirex.rationale.selectable`; ``reference``: the query too)."""
    withs = ds.with_extras(teacher_scores=teacher)
    masks: list[list[int]] = []
    lengths = ds.table["input_ids"].list.len().to_list()
    for start in range(0, len(withs), chunk):
        batch = withs.collate([withs[i] for i in range(start, min(start + chunk, len(withs)))])
        keep = fresh_keep(mark_selectable(batch, protocol), k_percent).long().tolist()  # rows in table order (a choice per row, CoS-E)
        masks.extend(row[: lengths[i]] for row, i in zip(keep, batch["index"].tolist()))
    table = ds.table
    return table.with_columns(pl.Series("attention_mask", masks, dtype=table.schema["attention_mask"]))


def attach_teacher(cfg: RunConfig, data: dict, runs_root: Path) -> dict:
    """``data`` (``{split: (SplitDataset, BuiltSplit)}``) with the teacher's attributions attached when the
    config names a teacher run: FRESH's pruned inputs (``data.fresh_exp_id``), L2E's ``teacher_scores``
    (``model.l2e`` with ``data.l2e_exp_id``); unchanged otherwise."""
    fresh = cfg.model.name == "fresh"
    teacher_id = cfg.data.fresh_exp_id if fresh else (cfg.data.l2e_exp_id if cfg.model.l2e else None)
    if not teacher_id:
        return data
    algo = cfg.data.fresh_attr_algo if fresh else cfg.data.l2e_attr_algo
    out = {}
    for split, (ds, built) in data.items():
        scores = load_teacher_scores(runs_root, teacher_id, split, ds.table, algo)
        ds = ds.with_table(fresh_table(ds, scores, cfg.data.fresh_topk, protocol=cfg.protocol)) if fresh else ds.with_extras(teacher_scores=scores)
        out[split] = (ds, built)
    return out


__all__ = ["attach_teacher", "attrs_path", "find_attributions", "fresh_table", "load_teacher_scores"]
