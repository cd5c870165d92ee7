"""Cluster launchers for the run queue: ``ray`` (a Ray task per job) and ``slurm`` (a submitit job per job).

The application layer's way past one machine. A job names its launcher (``local``: the app's own worker
thread, or the CLI in the foreground); the :class:`~workbench.launchers.dispatch.Dispatcher` submits the
others through one small interface (:class:`~workbench.launchers.base.Launcher`: submit, poll, cancel),
and their workers run :func:`~workbench.launchers.remote.run_job`, writing run folders into the shared
workspace. The core (``unirex``) knows nothing of them.

Modules: :mod:`.options` (the ``launcher.*`` keys), :mod:`.base` (the interface), :mod:`.remote` (what runs on
a worker), :mod:`.ray_launcher`, :mod:`.slurm_launcher`, :mod:`.dispatch`. Importing this package imports
neither Ray nor submitit: a launcher's module is imported when a job first needs it.
"""

from workbench.launchers.options import (FIELDS, LAUNCHERS, REMOTE_LAUNCHERS, SERVER_ONLY_KEYS, LauncherField,
                                         LauncherOptions, check_launcher_folder, is_launcher_key, launcher_fields,
                                         launcher_options, refuse_server_keys, server_launcher_values,
                                         split_launcher_overrides, with_server_values, without_server_keys)

__all__ = ["FIELDS", "LAUNCHERS", "REMOTE_LAUNCHERS", "SERVER_ONLY_KEYS", "LauncherField", "LauncherOptions",
           "check_launcher_folder", "is_launcher_key", "launcher_fields", "launcher_options", "refuse_server_keys",
           "server_launcher_values", "split_launcher_overrides", "with_server_values", "without_server_keys"]
