"""Data layer: ERASER reader/writer, the demo-dataset generator, tokenisation with word alignment."""

from __future__ import annotations

from pathlib import Path

from unirex.data.build import BuiltSplit, build_split, load_built
from unirex.data.demo import ensure_demo
from unirex.data.demo_nli import ensure_demo_nli
from unirex.data.tensors import SplitDataset, collate
from unirex.protocol import InputLayout
from unirex.safepath import dataset_path

DEMO = "demo"
DEMO_NLI = "demo_nli"
#: the built-in datasets, generated on first use: name -> ``ensure(dataset_dir)``
GENERATED = {DEMO: ensure_demo, DEMO_NLI: ensure_demo_nli}


def ensure_source(data_dir: Path, dataset: str) -> Path:
    """The ERASER folder of ``dataset``; the built-in datasets (:data:`GENERATED`) are generated and
    catalog datasets are downloaded (:mod:`unirex.data.download`) on first use. The name must be a folder
    name and the folder must lie inside ``data_dir`` (:func:`unirex.safepath.dataset_path`)."""
    path = dataset_path(data_dir, dataset)
    if dataset in GENERATED:
        GENERATED[dataset](path)
    elif not path.exists():  # an ERASER dataset of the catalog: downloaded on first use
        from unirex.data.download import ensure_downloaded

        ensure_downloaded(data_dir, dataset)
    return path


def load_split(data_dir: Path, dataset: str, split: str, arch: str | None = None, max_length: int | None = None,
               num_train: int | None = None, num_train_seed: int = 0,
               layout: InputLayout = InputLayout()) -> tuple[SplitDataset, BuiltSplit]:
    """Build (or reuse) a split and wrap it as a :class:`SplitDataset`."""
    ensure_source(data_dir, dataset)
    built = build_split(data_dir, dataset, split, arch=arch, max_length=max_length,
                        num_train=num_train, num_train_seed=num_train_seed, layout=layout)
    ds = SplitDataset(load_built(built.path), built.summary["pad_token_id"], built.labels,
                      num_choices=built.summary.get("num_choices"))
    return ds, built


__all__ = ["BuiltSplit", "DEMO", "DEMO_NLI", "GENERATED", "SplitDataset", "build_split", "collate", "ensure_source",
           "load_built", "load_split"]
