"""The relaxation as jobflow Jobs: one Job per batch of configurations, all in one Flow.

Job arguments are plain JSON (work items carry their structure as extxyz text and the model
by name or path), so the Flow survives monty JSON and can be run by run_locally, by our
Dask executor, or handed to jobflow-remote / FireWorks unchanged.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from jobflow import Flow, Job, Maker, job

from catscreen.model.api import Model, load_model
from catscreen.workflow.relax import Row, WorkItem, relax_items


def cached_model(name: str) -> Model:
    """Load a model once per process and thread: a worker running many batches pays once.

    Per thread, because Model objects need not be thread-safe (an ASE calculator keeps
    per-structure state) and a Dask worker may run several jobs in threads at once.
    """
    return _load(name, threading.get_ident())


@cache
def _load(name: str, thread: int) -> Model:
    return load_model(name)


@job
def relax_batch(
    items: list[WorkItem], model: str, optimizer: str, fmax: float, steps: int
) -> list[Row]:
    """One unit of work: relax `items` together with `model` (a load_model name or path)."""
    return relax_items(cached_model(model), items, optimizer=optimizer, fmax=fmax, steps=steps)


@dataclass
class RelaxMaker(Maker):
    """Build the relaxation Flow (atomate2 style): `RelaxMaker(model="emt").make(items)`."""

    name: str = "relax"
    model: str = "bundled"
    optimizer: str = "fire"
    fmax: float = 0.05
    steps: int = 300
    batch_size: int = 32

    def make(self, items: Sequence[WorkItem]) -> Flow:
        size = max(1, self.batch_size)
        chunks = [list(items[i : i + size]) for i in range(0, len(items), size)]
        jobs: list[Job] = []
        for n, chunk in enumerate(chunks, start=1):
            j = relax_batch(chunk, self.model, self.optimizer, self.fmax, self.steps)
            j.name = f"{self.name} batch {n}/{len(chunks)}"
            jobs.append(j)
        return Flow(jobs, name=self.name)
