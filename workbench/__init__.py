"""The application layer: the workbench API both fronts (the Gradio app and the CLI) call.

:class:`Workbench` is the facade (run queue and background worker, run queries, explaining text,
comparing methods); :mod:`workbench.records` holds the typed records it returns. It sits between the
fronts and the store/core: ``app``/``ui``/``cli`` -> ``workbench`` -> ``store`` -> ``unirex``.
"""

from store import RunFilter
from workbench.records import (CheckpointInfo, Comparison, DatasetSummary, Explanation, Job, Progress, RunDetail,
                               RunSummary)
from workbench.service import Workbench, command_line

__all__ = ["CheckpointInfo", "Comparison", "DatasetSummary", "Explanation", "Job", "Progress", "RunDetail", "RunFilter",
           "RunSummary", "Workbench", "command_line"]
