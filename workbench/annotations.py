"""Annotation sets behind the workbench facade (``wb.annotations``): save a human rationale made in the
app, read a set and its versions, annotator agreement, Label Studio and ERASER import/export, and merging
a set into a dataset's train split. The sets live in the workspace's data folder
(:mod:`unirex.data.annotations` holds the layout); every name goes through the workspace's
:class:`~workbench.safety.PathPolicy`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from unirex.errors import UnirexError
from unirex.fsutil import atomic_write
from workbench.safety import PathPolicy

if TYPE_CHECKING:  # the core's data package loads torch: imported when a method runs
    from unirex.data import agreement as _agreement
    from unirex.data import annotations as _ann
    from unirex.data import label_studio as _ls

SPLIT_CHOICES = ("train", "dev", "test", "auto")  # unirex.data.annotations.SPLIT_CHOICES, default first
RATIONALE_LABEL = "Rationale"  # unirex.data.label_studio.RATIONALE_LABEL


def _core():
    from unirex.data import agreement, annotations, label_studio

    return annotations, agreement, label_studio


class AnnotationService:
    """The annotation sets of one workspace."""

    def __init__(self, policy: PathPolicy):
        self.policy = policy

    @property
    def data_dir(self) -> Path:
        return self.policy.data_dir

    def _name(self, name: str) -> str:
        return self.policy.dataset_dir(name).name

    def sets(self) -> list[str]:
        """The annotation sets of the workspace."""
        return _core()[0].list_sets(self.data_dir)

    def versions(self, name: str) -> list[int]:
        return _core()[0].versions(self.data_dir, self._name(name))

    def load(self, name: str, version: int | None = None) -> _ann.AnnotationSet:
        return _core()[0].load_set(self.data_dir, self._name(name), version)

    def save(self, name: str, words: list[str], word_document: list[int] | None, query: str, label: str,
             rationale: list[bool], annotator: str, split: str = "train", source: str = "") -> _ann.SaveResult:
        """Save one annotation (the words of a typed text or of a dataset example, ``rationale`` one flag per
        word) into set ``name`` as a new version (the set is made on its first save)."""
        _ann = _core()[0]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        item = _ann.words_item(list(words), word_document, query or "")
        a = _ann.HumanAnnotation(item, label, tuple(bool(r) for r in rationale), annotator, "", split, source)
        return _ann.save_annotations(self.data_dir, self._name(name), [a])

    def words(self, texts: list[str]) -> tuple[list[str], list[int]]:
        """The words of typed documents as ERASER's reader splits them, and the document of each word."""
        item = _core()[0].text_item([t for t in texts if t and t.strip()])
        return item.words, item.word_document

    def agreement(self, name: str) -> _agreement.Agreement:
        return _core()[1].agreement(self.load(name))

    def import_label_studio(self, path: str | Path, name: str, split: str = "train",
                            rationale_labels: tuple[str, ...] = (RATIONALE_LABEL,),
                            class_labels: tuple[str, ...] | None = None) -> tuple[_ls.ImportReport, _ann.SaveResult]:
        """Read a Label Studio JSON export and save it into set ``name`` as a new version (all checked first)."""
        _ann, _, _ls = _core()
        name = self._name(name)
        report = _ls.read_label_studio(Path(path), tuple(rationale_labels), class_labels, split=split)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return report, _ann.save_annotations(self.data_dir, name, list(report.annotations))

    def export_label_studio(self, name: str, path: str | Path, force: bool = False) -> tuple[Path, int]:
        """Write the latest version of set ``name`` as a Label Studio JSON export; returns the file and the tasks."""
        tasks = _core()[2].label_studio_tasks(self.load(name))
        path = Path(path)
        if path.exists() and not force:
            raise UnirexError(f"{path} exists (--force replaces it)")
        if not path.parent.is_dir():
            raise UnirexError(f"{path.parent}: no such folder")
        atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(tasks, indent=1, ensure_ascii=False),
                                                            encoding="utf-8"))
        return path, len(tasks)

    def import_eraser(self, folder: str | Path, name: str, annotator: str = "eraser") -> _ann.SaveResult:
        _ann = _core()[0]
        anns = _ann.read_eraser(Path(folder), annotator)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return _ann.save_annotations(self.data_dir, self._name(name), anns)

    def export_eraser(self, name: str, folder: str | Path) -> Path:
        return _core()[0].export_eraser(self.data_dir, self._name(name), Path(folder))

    def merge(self, name: str, base: str, new_name: str) -> _ann.MergeResult:
        """A new dataset ``new_name``: ``base`` with set ``name``'s annotations appended to its train split."""
        from unirex.data import ensure_source  # a generated base (the demo) is written on first use

        name, base, new_name = self._name(name), self._name(base), self._name(new_name)  # all checked before a write
        ensure_source(self.data_dir, base)
        return _core()[0].merge_into_train(self.data_dir, name, base, new_name)


__all__ = ["AnnotationService", "SPLIT_CHOICES"]
