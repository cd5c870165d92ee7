"""Built splits as PyTorch datasets, and the collate function that pads a batch.

A batch is a dict of tensors, shapes ``[B, L]`` unless noted (``L`` = longest example in the batch):

==================  =======  =============================================================
input_ids           long     subword ids, padded with the tokenizer's pad id
attention_mask      long     1 on the tokens the model reads (FRESH: its pruned input, :mod:`unirex.teacher`)
input_mask          long     1 on every token of the original input, whatever ``attention_mask`` hides:
                             the positions plausibility covers (:func:`input_mask`)
token_type_ids      long     segment ids (zeros for single-segment archs)
word_ids            long     word index in the concatenated documents, -1 elsewhere
explainable         bool     document tokens: the only positions a rationale may contain
rationale           float    gold rationale (0/1) at subword level
label               long     ``[B]`` label ids
has_rationale       bool     ``[B]`` whether the example has gold evidence
index               long     ``[B]`` row index in the split table (maps back to annotation ids)
==================  =======  =============================================================

Extra per-row columns (``SplitDataset(..., extras={name: values})``) are collated too: a list per row
becomes a float ``[B, L]`` tensor padded with 0 (e.g. ``teacher_scores``, a teacher run's saved
attributions), a scalar per row a ``[B]`` tensor (e.g. ``plaus_mask``).

**Multiple choice** (``num_choices=C``, CoS-E): the table holds ``C`` consecutive rows per example, one per
answer choice (see :mod:`unirex.data.build`). An item is then one *example*: ``len(ds)`` counts examples,
samplers and batch sizes count examples, and a batch of ``B`` examples holds ``N = B x C`` rows in example
order (row ``b * C + j`` is choice ``j`` of example ``b``): every ``[B, ...]`` entry above is ``[N, ...]``,
``label`` repeats the example's answer on its ``C`` rows and ``index`` is the table row. An extra column
has one value per row or one per example (``plaus_mask``), repeated on the example's rows.
"""

from __future__ import annotations

import polars as pl
import torch

LIST_COLUMNS = ("input_ids", "attention_mask", "token_type_ids", "word_ids", "explainable", "rationale")


def input_mask(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """``[B, L]`` bool: every token of each row's original input (the collated ``input_mask``; a batch built
    by hand without one: its ``attention_mask``). It differs from ``attention_mask`` where a method reads a
    pruned input (FRESH): plausibility is always scored over these positions, so a gold token the
    pruning hid still counts as a miss."""
    return batch.get("input_mask", batch["attention_mask"]).bool()


class SplitDataset(torch.utils.data.Dataset):
    """Rows of a built split (see :mod:`unirex.data.build`)."""

    def __init__(self, table: pl.DataFrame, pad_token_id: int = 0, labels: list[str] | None = None,
                 extras: dict[str, list] | None = None, num_choices: int | None = None):
        self.table = table
        self.num_choices = int(num_choices) if num_choices else None
        C = self.num_choices or 1
        if table.height % C:
            raise ValueError(f"a multiple-choice split needs {C} rows per example, the table has {table.height} rows")
        self.extras = dict(extras or {})
        for name, values in self.extras.items():
            if len(values) not in (table.height, table.height // C):
                raise ValueError(f"extra column '{name}' has {len(values)} rows, the split has {table.height}")
        self.pad_token_id = int(pad_token_id or 0)
        self.labels = labels
        self._cols = {c: table[c].to_list() for c in LIST_COLUMNS}
        self._label = table["label"].to_list()
        self._has = table["has_rationale"].to_list()

    def __len__(self) -> int:
        return self.table.height // (self.num_choices or 1)

    def _row(self, r: int, example: int) -> dict:
        item = {c: self._cols[c][r] for c in LIST_COLUMNS}
        item.update(label=self._label[r], has_rationale=self._has[r], index=r)
        for name, values in self.extras.items():
            item[name] = values[r] if len(values) == self.table.height else values[example]
        return item

    def __getitem__(self, i: int) -> dict:
        if not self.num_choices:
            return self._row(i, i)
        C = self.num_choices
        return {"choices": [self._row(i * C + j, i) for j in range(C)]}

    def with_extras(self, **extras) -> "SplitDataset":
        """The same rows with more per-row columns (see the module docstring)."""
        return SplitDataset(self.table, self.pad_token_id, self.labels, {**self.extras, **extras}, self.num_choices)

    def with_table(self, table: pl.DataFrame) -> "SplitDataset":
        """The same split (labels, extras, choices) over another table of the same rows."""
        return SplitDataset(table, self.pad_token_id, self.labels, self.extras, self.num_choices)

    def head(self, n: int) -> "SplitDataset":
        """The first ``n`` examples (all their rows)."""
        rows = n * (self.num_choices or 1)
        ex = {k: v[: rows if len(v) == self.table.height else n] for k, v in self.extras.items()}
        return SplitDataset(self.table.head(rows), self.pad_token_id, self.labels, ex, self.num_choices)

    def collate(self, items: list[dict]) -> dict[str, torch.Tensor]:
        return collate(items, self.pad_token_id)


def collate(items: list[dict], pad_token_id: int = 0) -> dict[str, torch.Tensor]:
    """Pad a list of rows (or of multiple-choice examples, each a ``{"choices": [rows]}``) to the longest row."""
    if items and "choices" in items[0]:
        items = [row for it in items for row in it["choices"]]
    length = max(len(it["input_ids"]) for it in items)
    pad_values = {"input_ids": pad_token_id, "word_ids": -1}
    out = {}
    for c in LIST_COLUMNS:
        pad = pad_values.get(c, 0)
        out[c] = torch.tensor([list(it[c]) + [pad] * (length - len(it[c])) for it in items], dtype=torch.long)
    out["input_mask"] = torch.tensor([[1] * len(it["input_ids"]) + [0] * (length - len(it["input_ids"])) for it in items],
                                     dtype=torch.long)
    out["explainable"] = out["explainable"].bool()
    out["rationale"] = out["rationale"].float()
    out["label"] = torch.tensor([it["label"] for it in items], dtype=torch.long)
    out["has_rationale"] = torch.tensor([bool(it["has_rationale"]) for it in items], dtype=torch.bool)
    out["index"] = torch.tensor([it["index"] for it in items], dtype=torch.long)
    for name in items[0].keys() - out.keys():
        values = [it[name] for it in items]
        if isinstance(values[0], (list, tuple)) or hasattr(values[0], "__len__"):
            out[name] = torch.tensor([list(v) + [0.0] * (length - len(v)) for v in values], dtype=torch.float)
        else:
            out[name] = torch.tensor(values)
    return out
