"""Relaxation as jobflow Jobs: batched engine, optimizers, executors (local, Dask), result store.

Python entry point: `relax_configurations(configs, out, RelaxSettings(...))`; the Flow alone:
`RelaxMaker(...).make(items)`. Names resolve lazily (PEP 562) so that `catscreen --help` and
light imports such as `catscreen.workflow.relax` do not pay for importing jobflow.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RelaxMaker": "catscreen.workflow.jobs",
    "relax_batch": "catscreen.workflow.jobs",
    "relax_items": "catscreen.workflow.relax",
    "RelaxSettings": "catscreen.workflow.runner",
    "RelaxSummary": "catscreen.workflow.runner",
    "relax_configurations": "catscreen.workflow.runner",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'catscreen.workflow' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
