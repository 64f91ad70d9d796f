"""The ``bmrs`` command line: one group, with each area's commands in its own module.

A module adds its commands by decorating with ``@main.command()`` after importing ``main``
from :mod:`worker.cli.app`; it is listed in ``_COMMAND_MODULES`` so that it is registered.
"""

from __future__ import annotations

import importlib

from worker.cli.app import main

_COMMAND_MODULES = (
    "worker.cli.data_commands",
    "worker.cli.history_commands",
    "worker.sim.cli",
    "worker.cli.iris_commands",
    "worker.cli.cluster_commands",
    "worker.cli.dashboard_commands",
    "worker.cli.health_commands",
)

for _module in _COMMAND_MODULES:
    importlib.import_module(_module)

__all__ = ["main"]
