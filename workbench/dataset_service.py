"""Datasets behind the workbench facade: names, building, summaries, the example browser, uploads, the
ERASER catalog and the store's dataset index, over one workspace's :class:`~workbench.safety.PathPolicy`
(:mod:`workbench.datasets` holds the functions)."""

from __future__ import annotations

import json
from pathlib import Path

from store import datasets_table, ingest_datasets
from unirex.errors import UnirexError
from workbench import datasets as _datasets
from workbench.records import CatalogRow, DatasetExample, DatasetSummary
from workbench.safety import PathPolicy


class DatasetService:
    """The datasets of one workspace (the facade's dataset methods call these)."""

    def __init__(self, workspace: Path, policy: PathPolicy):
        self.workspace, self.policy = workspace, policy

    def dataset_names(self) -> list[str]:
        return _datasets.dataset_names(self.policy)

    def dataset_summaries(self, name: str) -> list[DatasetSummary]:
        """The splits of ``name`` already built (every arch and max length), without building."""
        return _datasets.built_summaries(self.policy, name)

    def build_dataset(self, name: str, arch: str = "default", max_length: int | None = None,
                      on_progress=None) -> list[DatasetSummary]:
        """Build (or reuse) train, dev and test of ``name`` for ``arch`` (the demo is generated, a catalog
        dataset downloaded, on first use)."""
        out = _datasets.build(self.policy, name, arch, max_length, on_progress)
        try:
            ingest_datasets(self.workspace)
        except UnirexError:
            pass  # the index catches up at the next call
        return out

    def prepare_dataset(self, name: str, data_dir: str | Path | None = None) -> Path:
        """The ERASER folder of ``name`` (generated or downloaded on first use), before :meth:`build_split`."""
        return _datasets.prepare(self.policy, name, None if data_dir is None else Path(data_dir))

    def build_split(self, name: str, split: str, arch: str = "default", max_length: int | None = None,
                    num_train: int | None = None, num_train_seed: int = 0, force: bool = False,
                    data_dir: str | Path | None = None) -> DatasetSummary:
        """Build (or reuse) one split of ``name`` (``num_train``: a subsample of train) in ``data_dir`` (default
        the workspace's ``data/``; a confined workbench keeps it inside the workspace), once
        :meth:`prepare_dataset` has made its source. Not indexed in the store: the CLI's ``build-dataset`` may
        build anywhere."""
        return _datasets.build_one(self.policy, name, split, arch, max_length, num_train, num_train_seed, force,
                                   None if data_dir is None else Path(data_dir))

    def find_examples(self, name: str, arch: str, max_length: int | None, split: str, label: str | None = None,
                      has_rationale: bool | None = None, truncated: bool | None = None) -> list[int]:
        """Rows of a built split matching the example browser's filter."""
        return _datasets.find_examples(self.policy, name, arch, max_length, split, label, has_rationale, truncated)

    def example(self, name: str, arch: str, max_length: int | None, split: str, index: int) -> DatasetExample:
        return _datasets.example(self.policy, name, arch, max_length, split, index)

    def dataset_labels(self, name: str, arch: str, max_length: int | None, split: str) -> list[str]:
        return _datasets.labels_of(self.policy, name, arch, max_length, split)

    def upload_dataset(self, archive: str | Path, name: str | None = None) -> tuple[str, Path, str]:
        """Unpack an uploaded ``.zip`` / ``.tar.gz`` ERASER folder safely into ``data/<name>``."""
        return _datasets.upload(self.policy, Path(archive), name)

    def catalog(self) -> list[CatalogRow]:
        return _datasets.catalog(self.policy)

    def check_archive_sizes(self) -> tuple[list[CatalogRow], list[str]]:
        return _datasets.check_archive_sizes(self.policy)

    def download_dataset(self, name: str, source: str = "eraser", on_progress=None) -> Path:
        return _datasets.download(self.policy, name, source, on_progress)

    def datasets(self) -> list[DatasetSummary]:
        """The built dataset splits of the workspace (indexed from ``data/``)."""
        ingest_datasets(self.workspace)
        out = []
        for row in datasets_table(self.workspace).iter_rows(named=True):
            s = json.loads(row["summary"]) if row["summary"] else {}
            out.append(DatasetSummary(
                dataset=row["dataset"], split=row["tag"], arch=row["arch"], max_length=row["max_length"],
                count=row["count"], labels=list(s.get("labels") or []),
                label_distribution=dict(s.get("label_distribution") or {}), truncated=int(s.get("truncated") or 0),
                mean_subwords=float(s.get("mean_subwords") or 0.0), with_rationale=int(s.get("with_rationale") or 0),
                rationale_coverage=s.get("rationale_coverage_word"), path=Path(row["path"]), stored=s))
        return out


__all__ = ["DatasetService"]
