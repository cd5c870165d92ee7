"""Sharing behind the workbench facade: exports for the user to download (comparison tables, ERASER results
files) and uploads of a run's checkpoint to the Hugging Face Hub."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import polars as pl

from unirex.errors import UnirexError
from unirex.runs import RunDir
from workbench.jobs import new_job_id
from workbench.records import Comparison, ExportedFile
from workbench.safety import PathPolicy, inside


class SharingService:
    """Exports and Hub uploads of one workspace (the facade's sharing methods call these).

    ``run_dir`` opens a run of the workspace by id (the facade's check of run ids); ``workspace_arg`` is the
    workspace as the caller named it (None: the default), what an unconfined push resolves run ids in."""

    def __init__(self, workspace: Path, policy: PathPolicy, run_dir: Callable[[str], RunDir],
                 workspace_arg: str | None = None):
        self.workspace, self.policy, self._run_dir, self._workspace_arg = workspace, policy, run_dir, workspace_arg

    @property
    def exports_dir(self) -> Path:
        """``<workspace>/exports``: files written for the user to download (tables, ERASER results)."""
        return self.workspace / "exports"

    def needs_checkpoint(self, run_id: str) -> None:
        if not self._run_dir(run_id).has_checkpoint():
            raise UnirexError(f"run {run_id} has no checkpoint (train it with save_checkpoint=True)")

    def inside_workspace(self, path: str | Path, what: str = "path") -> Path:
        """``path`` resolved (relative paths against the workspace); refused when it leaves the workspace."""
        p = Path(path).expanduser()
        p = (p if p.is_absolute() else self.workspace / p).resolve()
        if not inside(p, self.workspace):
            raise UnirexError(f"{what} '{path!s}' is outside the workspace; give a folder inside it")
        return p

    def export_eraser(self, run_id: str, split: str, out: Path | None = None) -> Path:
        """ERASER results file of a run's saved evaluation on ``split`` (default: in its ``outputs/``)."""
        from unirex.export import export_eraser  # the core's evaluation (and torch) load when a file is written

        rd = self._run_dir(run_id)
        out = self.policy.path(out, "output file") if out else rd.outputs_dir / f"{split}_decoded.jsonl"
        export_eraser(str(rd.path), split, out, workspace=str(self.workspace))
        return out

    def push(self, run_id: str, repo_id: str, private: bool = False, revision: str | None = None,
             license: str | None = None, dry_run_dir: str | Path | None = None, api=None):
        """Upload a run's checkpoint to the Hugging Face Hub as a model repo with a model card
        (:func:`unirex.hub.push_run`); ``dry_run_dir`` writes the folder that would be uploaded instead.
        The token comes from ``HF_TOKEN`` or the cached login and is never stored. Unconfined (the CLI, a user's
        own shell) ``run_id`` may also be a run folder and the dry run may go anywhere the user asks."""
        from unirex.hub import push_run  # huggingface_hub loads when a run is pushed

        if not self.policy.confine:
            return push_run(run_id, repo_id, private=private, revision=revision, license=license,
                            dry_run_dir=dry_run_dir, workspace=self._workspace_arg, api=api)
        rd = self._run_dir(run_id)
        self.needs_checkpoint(run_id)
        if dry_run_dir is not None:
            dry_run_dir = self.inside_workspace(dry_run_dir, "the dry-run folder")
        return push_run(str(rd.path), repo_id, private=private, revision=revision, license=license,
                        dry_run_dir=dry_run_dir, workspace=self.workspace, api=api)

    def export_comparison(self, cmp: Comparison, fmt: str = "csv") -> ExportedFile:
        """Write a comparison table as CSV or Parquet into ``<workspace>/exports`` (seeds as "0,1,2" in CSV)."""
        if fmt not in ("csv", "parquet"):
            raise UnirexError(f"export format '{fmt}' is not csv or parquet")
        if cmp.table.height == 0:
            raise UnirexError("nothing to export: no runs match the filters")
        self.exports_dir.mkdir(parents=True, exist_ok=True)
        path = self.exports_dir / f"compare-{cmp.split}-{time.strftime('%Y%m%d-%H%M%S')}-{new_job_id()[-6:]}.{fmt}"
        df = cmp.table
        if fmt == "csv":
            df.with_columns(pl.col("seeds").list.eval(pl.element().cast(pl.Utf8)).list.join(",")).write_csv(path)
        else:
            df.write_parquet(path)
        return ExportedFile(path=path, rows=df.height, description=f"{df.height} rows, {cmp.split} split")

    def export_eraser_file(self, run_id: str, split: str) -> ExportedFile:
        """A run's ERASER results on ``split`` as a new file in ``<workspace>/exports`` (for a download)."""
        rd = self._run_dir(run_id)
        self.exports_dir.mkdir(parents=True, exist_ok=True)
        out = self.exports_dir / f"{rd.run_id}-{split}_decoded-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
        self.export_eraser(rd.run_id, split, out)
        rows = sum(1 for line in out.read_text().splitlines() if line.strip())
        return ExportedFile(path=out, rows=rows, description=f"ERASER results of {rd.run_id} on {split}: {rows} lines")


__all__ = ["SharingService"]
