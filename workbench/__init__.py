"""The application layer: the workbench API both fronts (the Gradio app and the CLI) call.

:class:`Workbench` is the facade (run queue and background worker, run queries, explaining text,
comparing methods); :mod:`workbench.records` holds the typed records it returns. It sits between the
fronts and the store/core: ``app``/``ui``/``cli`` -> ``workbench`` -> ``store`` -> ``unirex``.
"""

from store import RunFilter
from workbench.records import (FINAL_JOB_STATES, JOB_STATES, RUN_STATES, CatalogRow, CheckpointInfo, Comparison,
                               DatasetExample, DatasetSummary, Explanation, ExportedFile, GroupLabels, Job,
                               MethodPreset, PairLabels, PairTest, PlannedRun, Progress, RunCurves, RunDetail, RunOutcome, RunSummary,
                               ScoreScale, SettingsCheck, Uncertainty)
from workbench.compare import group_labels, pair_labels
from workbench.service import LAUNCHERS, Workbench, command_line
from workbench.sweeps import comma_lists, is_sweep, quote_one_value_keys

__all__ = ["FINAL_JOB_STATES", "JOB_STATES", "RUN_STATES", "CatalogRow", "CheckpointInfo", "Comparison",
           "DatasetExample", "DatasetSummary", "Explanation", "ExportedFile", "GroupLabels", "Job", "LAUNCHERS", "MethodPreset",
           "PairLabels", "PairTest", "PlannedRun", "Progress", "RunCurves", "RunDetail", "RunFilter", "RunOutcome", "RunSummary",
           "ScoreScale", "SettingsCheck", "Uncertainty", "Workbench", "comma_lists", "command_line", "group_labels", "is_sweep",
           "pair_labels", "quote_one_value_keys"]
