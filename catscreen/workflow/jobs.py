"""The relaxation as jobflow Jobs: one Job per batch of configurations, all in one Flow.

Job arguments are plain JSON (work items carry their structure as extxyz text and the model
by name or path), so the Flow survives monty JSON and can be run by run_locally, by our
Dask executor, or handed to jobflow-remote / FireWorks unchanged.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from jobflow import Flow, Job, Maker, job

from catscreen.errors import CatscreenError
from catscreen.model.api import BUILTIN_MODELS, Model, check_model_name, load_model
from catscreen.workflow.optimizers import OPTIMIZERS
from catscreen.workflow.relax import Row, WorkItem, relax_items

_MODELS: dict[tuple[str, int], tuple[object, Model]] = {}


def cached_model(name: str) -> Model:
    """Load a model once per process and thread: a worker running many batches pays once.

    Per thread, because Model objects need not be thread-safe (an ASE calculator keeps
    per-structure state) and a Dask worker may run several jobs in threads at once. A
    checkpoint file written anew since it was loaded (a notebook's train-then-relax loop, a
    RelaxMaker Flow run again) is loaded anew: its old weights relaxed the next run under the
    old version. A rewrite during a run makes its rows another version, which the run refuses.
    """
    key = (name, threading.get_ident())
    stamp = _file_stamp(name)
    held = _MODELS.get(key)
    if held is None or held[0] != stamp:
        _MODELS[key] = (stamp, load_model(name))
    return _MODELS[key][1]


def _file_stamp(name: str) -> object:
    """What changes when a checkpoint file is replaced; None for a built-in model."""
    if name in BUILTIN_MODELS:
        return None
    path = Path(name).resolve()
    try:
        stat = path.stat()
    except OSError:  # load_model says what is wrong with it
        return None
    return (str(path), stat.st_mtime_ns, stat.st_size, stat.st_ino)


def relax_problems(optimizer: str, fmax: float, steps: int, batch_size: int) -> list[str]:
    """What no relaxation runs with, for the CLI's settings and the Maker alike."""
    checks = [
        (optimizer in OPTIMIZERS, f"--optimizer must be one of {', '.join(OPTIMIZERS)}"),
        (0 < fmax < float("inf"), "--fmax must be a positive number"),
        (steps >= 0, "--steps must be >= 0"),
        (batch_size >= 1, "--batch-size must be >= 1"),
    ]
    return [message for ok, message in checks if not ok]


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

    def __post_init__(self) -> None:
        """At once, not when a worker runs the job: a failed job under `run_locally(log=False)`
        wrote nothing and said nothing."""
        problems = relax_problems(self.optimizer, self.fmax, self.steps, self.batch_size)
        if problems:
            raise CatscreenError(f"RelaxMaker: {problems[0]}")
        model = Path(self.model)
        if not (model.suffix or len(model.parts) > 1):  # a path may exist on the workers only
            check_model_name(self.model)  # a name must be known here too

    def make(self, items: Sequence[WorkItem]) -> Flow:
        size = self.batch_size
        chunks = [list(items[i : i + size]) for i in range(0, len(items), size)]
        jobs: list[Job] = []
        for n, chunk in enumerate(chunks, start=1):
            j = relax_batch(chunk, self.model, self.optimizer, self.fmax, self.steps)
            j.name = f"{self.name} batch {n}/{len(chunks)}"
            jobs.append(j)
        return Flow(jobs, name=self.name)
