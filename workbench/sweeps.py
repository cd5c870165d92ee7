"""What makes a sweep: the one place the fronts (the CLI's ``-m``, the Train tab's seeds and extra overrides)
and :meth:`workbench.Workbench.submit` ask whether overrides hold comma lists.

A value is a comma list when it splits on top-level commas into more than one value
(:func:`unirex.config.split_sweep_value`: quoted strings and ``[...]`` lists stay whole). A key of
:data:`ONE_VALUE_KEYS` takes a comma list as one value (``training.eval_splits=train,dev,test`` is a split
list, ``tags=a,b`` the run's tags, ``eval.extra_metrics=soft,diag`` the metrics beside ERASER's) and never sweeps.
"""

from __future__ import annotations

from collections.abc import Iterable

from unirex.config import split_sweep_value

#: keys whose comma list is one value, never one run per value
ONE_VALUE_KEYS = ("training.eval_splits", "tags", "eval.extra_metrics")


def _key(override: str) -> str:
    return override.split("=", 1)[0].strip()


def comma_lists(overrides: Iterable[str]) -> list[str]:
    """The overrides whose value is a comma list (under a sweep, one run per value)."""
    return [o for o in overrides if "=" in o and _key(o) not in ONE_VALUE_KEYS
            and len(split_sweep_value(o.split("=", 1)[1])) > 1]


def is_sweep(overrides: Iterable[str]) -> bool:
    """Whether ``overrides`` make more than one run (some value is a comma list)."""
    return bool(comma_lists(overrides))


def quote_one_value_keys(overrides: Iterable[str]) -> list[str]:
    """``training.eval_splits=train,dev,test`` quoted into one value (as a sweep expands it), others as they are."""
    out = []
    for o in overrides:
        key, _, value = o.partition("=")
        if key.strip() in ONE_VALUE_KEYS and not value.startswith(("'", '"')):
            o = f"{key}='{value}'"
        out.append(o)
    return out


__all__ = ["ONE_VALUE_KEYS", "comma_lists", "is_sweep", "quote_one_value_keys"]
