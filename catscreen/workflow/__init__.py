"""Relaxation as jobflow Jobs: batched engine, optimizers, executors (local, Dask), result store.

Python entry point: `relax_configurations(configs, out, RelaxSettings(...))`; the Flow alone:
`RelaxMaker(...).make(items)`.
"""

from catscreen.workflow.jobs import RelaxMaker, relax_batch
from catscreen.workflow.relax import relax_items
from catscreen.workflow.runner import RelaxSettings, RelaxSummary, relax_configurations

__all__ = [
    "RelaxMaker",
    "RelaxSettings",
    "RelaxSummary",
    "relax_batch",
    "relax_configurations",
    "relax_items",
]
