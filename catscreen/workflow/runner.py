"""`relax_configurations`: the whole relax stage as one call, for the CLI and the campaign runner.

The driver reads the configurations, decides each one's context, skips what the output
already holds, builds the Flow, hands it to an executor and records every finished batch.
"""

from __future__ import annotations

import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from jobflow import Job
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from catscreen.build.gas import scheme_molecules
from catscreen.errors import CatscreenError
from catscreen.model.api import BUILTIN_MODELS, SPIN_MODES, ModelInfo, domain_warnings
from catscreen.workflow.executors import EXECUTORS, run_dask, run_local
from catscreen.workflow.inputs import read_configs, select, work_items
from catscreen.workflow.jobs import RelaxMaker, cached_model, relax_problems
from catscreen.workflow.relax import Row, WorkItem, result_row
from catscreen.workflow.store import BATCH_FAILED, OutputLock, ResultTable, followed, row_key


@dataclass
class RelaxSettings:
    """Everything `catscreen relax` takes besides the input and output paths."""

    model: str = "bundled"
    spin: str = "auto"
    fidelity: str | None = None
    optimizer: str = "fire"
    fmax: float = 0.05
    steps: int = 300
    batch_size: int = 32
    executor: str = "local"
    scheduler: str | None = None
    workers: int = 2
    systems: list[str] = field(default_factory=list)
    adsorbates: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    retry_failed: bool = False
    references: str | None = None  # a rank references file: its scheme's molecules are relaxed
    reference: str | None = None  # a candidate (Ru(0001)): relaxed in every spin context used
    model_base: str | None = None  # where a relative checkpoint path is looked up first

    def __post_init__(self) -> None:
        shared = relax_problems(self.optimizer, self.fmax, self.steps, self.batch_size)
        checks = [
            (self.spin in SPIN_MODES, f"--spin must be one of {', '.join(SPIN_MODES)}"),
            *[(False, message) for message in shared],
            (self.executor in EXECUTORS, f"--executor must be one of {', '.join(EXECUTORS)}"),
            (self.workers >= 1, "--workers must be >= 1"),
            # else the run would go on this machine, the cluster never asked
            (
                self.scheduler is None or self.scheduler.strip() != "",
                "--scheduler is empty (an unset variable?): give tcp://host:8786 or leave it out",
            ),
            (
                self.scheduler is None or self.executor == "dask",
                "--scheduler needs --executor dask",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise CatscreenError(message)

    def model_ref(self) -> str:
        """A checkpoint path made absolute, so a worker in another folder finds it; a built-in
        name stays a name even when a folder of that name exists (e.g. `emt/` for results).
        A relative path is looked up in `model_base` (a recipe's folder) first."""
        if self.model in BUILTIN_MODELS:
            return self.model
        path = Path(self.model)
        if self.model_base and not path.is_absolute() and (Path(self.model_base) / path).exists():
            path = Path(self.model_base) / path
        return str(path.resolve()) if path.exists() else self.model


CONVERGENCE_SETTINGS = ("optimizer", "fmax", "steps")


def _check_convergence_settings(table: ResultTable, settings: RelaxSettings) -> None:
    """One output, one convergence criterion: rows relaxed to --fmax 0.05 must not be reused
    as if relaxed to 0.02, nor be recorded under settings they were not relaxed with. A higher
    --steps is allowed: a converged row is what the run would make again (the optimizer's
    path does not depend on the limit), and `_plan` reruns the rows that stopped short."""
    out = table.out
    old = table.stored.get("settings")
    if old is None and table.rows:  # else reused under any settings
        raise CatscreenError(
            f"{out} does not record the settings its rows were relaxed with (catscreen's "
            "metadata is gone, e.g. the table was rewritten by pandas): write to another --out"
        )
    old = old or {}
    longer = isinstance(old.get("steps"), int) and old["steps"] < settings.steps
    changed = [
        f"--{key} {old[key]} (this run: {getattr(settings, key)})"
        for key in CONVERGENCE_SETTINGS
        if key in old and old[key] != getattr(settings, key) and not (key == "steps" and longer)
    ]
    if changed:
        raise CatscreenError(
            f"{out} was relaxed with {', '.join(changed)}: rerun with those settings "
            "or write to another --out (a higher --steps than before is fine)"
        )


@dataclass
class RelaxSummary:
    """Counts over the selected configurations and gas references, in the output table."""

    out: Path
    total: int
    reused: int
    ran: int
    converged: int
    not_converged: int
    failed: int
    seconds: float
    model: str
    model_version: str


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed * 3600:,.0f}/h" if speed else "-/h", style="progress.data.speed")


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]relax"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
    )


def _items(
    configs: str | Path, settings: RelaxSettings, info: ModelInfo
) -> tuple[list[WorkItem], list[str]]:
    """The work items of `configs`, read and checked before the output is touched, and what
    to warn of (contexts or hosts the model was not trained on)."""
    df, images = read_configs(configs)
    mask = select(df, settings.systems, settings.adsorbates, settings.ids)
    chosen = [a for a, keep in zip(images, mask, strict=True) if keep]
    info.check_elements(*chosen)  # else every row of them fails, and the run exits 0
    items = work_items(
        df,
        images,
        info,
        settings.spin,
        settings.fidelity,
        _molecules(settings.references),
        settings.reference,
        chosen=mask.tolist(),
    )
    untrained = info.untrained_note((it["fidelity"], it["spin"]) for it in items)
    if untrained:
        untrained += " (give --spin or --fidelity of a trained context; `model info` lists them)"
    hosts = [
        (str(it["meta"].get("bulk") or it.get("host") or it["config_id"]), it.get("domain", ""))
        for it in items
    ]
    return items, [untrained] * bool(untrained) + domain_warnings(info.name, hosts)


def _plan(
    configs: str | Path, out: Path, settings: RelaxSettings, info: ModelInfo, items: list[WorkItem]
) -> tuple[ResultTable, list[WorkItem]]:
    """The results table, and the items it does not hold final."""
    table = ResultTable(out, *_records(configs, settings))
    _check_convergence_settings(table, settings)
    other = [
        r
        for r in table.rows.values()
        if (r["model"], r["model_version"]) != (info.name, info.version)
    ]
    if other:  # one model per table: rank refuses mixed placements, and gas references of
        # another model are never used
        held = ", ".join(sorted({f"{r['model']} ({r['model_version']})" for r in other}))
        empty = all(r["status"] == "failed" for r in table.rows.values())
        raise CatscreenError(
            f"{out} holds rows of model {held}; this run's is {info.name} ({info.version}): "
            "write to another --out (one model per results table)"
            + (", or delete it: it holds failed rows only" if empty else "")
        )
    done = table.finished(settings.retry_failed)
    # rows that stopped at a lower step limit (the table's before a higher --steps, which a
    # kill may have left half applied) start again; not_converged means that limit only
    done -= {
        k
        for k, r in table.rows.items()
        if r["status"] == "not_converged" and int(r["steps"]) < settings.steps
    }
    for it in items:  # rows from before the domain column get it: rank warns of them too
        row = table.rows.get(key := _key(it, info))
        if key in done and row is not None and not isinstance(row.get("domain"), str):
            row["domain"] = it.get("domain", "")
            table.unwritten += 1
    # a row is reused only for the structure it was relaxed from: a slab id covers its
    # facet and atom count, not its in-plane cell, so an edited recipe could reuse another
    # slab's energy under the same id (E_ads +1.7 eV on every O of Pt(110))
    return table, [
        it
        for it in items
        if (key := _key(it, info)) not in done
        or table.rows[key].get("initial_structure") != it["structure"]
    ]


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """A batch system's SIGTERM (a job's time limit) ends the run as Ctrl-C does, so the
    rows finished since the table's last write are written before it exits."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: Python delivers no signal here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _records(configs: str | Path, settings: RelaxSettings) -> tuple[dict, dict]:
    """The table's metadata (this run's settings as run: a local run has no workers, it
    recorded the Dask default 2) and this run's record: what else decides its numbers, the
    code's and torch's versions, the batch size and the device the model runs on (CUDA sums
    in another order than the CPU; Dask workers pick their own)."""
    import torch

    from catscreen import code_version

    local = settings.executor == "local"
    metadata = {
        "configs": str(Path(configs).resolve()),
        "settings": asdict(settings) | ({"workers": None} if local else {}),
    }
    run = {
        "catscreen": code_version(),
        "torch": torch.__version__,
        "device": str(getattr(cached_model(settings.model_ref()), "device", "cpu"))
        if local
        else "the Dask workers'",
        "executor": settings.executor,
        "batch_size": settings.batch_size,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return metadata, run


def _molecules(references: str | None) -> list[str]:
    """The gas molecules a `rank --references` scheme needs besides the default scheme's
    (fixed potentials need none)."""
    if references is None:
        return []
    from catscreen.analysis.references import load_references  # analysis: only the driver

    scheme = load_references(references).scheme
    return scheme_molecules(scheme) if scheme else []


def _key(item: WorkItem, info: ModelInfo) -> tuple[str, ...]:
    return row_key({**item, "model": info.name, "model_version": info.version})


def unfinished(configs: str | Path, out: str | Path, settings: RelaxSettings) -> int:
    """How many configurations (gas references included) a relax into `out` would run now:
    none held, or held as rows of a batch that failed as a whole."""
    info = cached_model(settings.model_ref()).info
    return len(_plan(configs, Path(out), settings, info, _items(configs, settings, info)[0])[1])


def relax_configurations(
    configs: str | Path,
    out: str | Path,
    settings: RelaxSettings | None = None,
    progress: bool = True,
) -> RelaxSummary:
    """Relax the configurations in `configs` into `out` (results.parquet); resumable.

    Rerunning with the same output skips configurations already there under the same model,
    spin and fidelity; other convergence settings than the output's are refused. Only this
    process writes `out`, atomically (`ResultTable`: when due, and when the run stops).
    """
    settings = settings or RelaxSettings()
    out = followed(Path(out))
    t0 = time.perf_counter()
    model_ref = settings.model_ref()
    info = cached_model(model_ref).info
    # bad input: nothing written, not even the lock
    items, warnings = _items(configs, settings, info)
    for note in warnings:
        print(f"warning: {note}", file=sys.stderr)
    with OutputLock(out):
        table, todo = _plan(configs, out, settings, info, items)
        table.order = {_key(it, info): i for i, it in enumerate(items)}
        table.flush()  # reused rows given their domain
        maker = RelaxMaker(
            model=model_ref,
            optimizer=settings.optimizer,
            fmax=settings.fmax,
            steps=settings.steps,
            batch_size=settings.batch_size,
        )
        flow = maker.make(todo)
        bar = _progress(Console(stderr=True)) if progress else None
        task = bar.add_task("relax", total=len(todo)) if bar else None

        def on_done(job: Job, rows: list[Row] | None, error: str | None) -> None:
            if rows is None:
                batch = job.function_args[0]
                rows = [result_row(it, info, "failed", f"{BATCH_FAILED}{error}") for it in batch]
            for r in rows:  # a worker with another install would file rows under its model
                if (r["model"], r["model_version"]) != (info.name, info.version):
                    rewritten = model_ref not in BUILTIN_MODELS and settings.executor == "local"
                    raise CatscreenError(
                        f"{'a batch' if rewritten else 'a worker'} relaxed with model "
                        f"{r['model']} ({r['model_version']}), not this run's {info.name} "
                        f"({info.version}): "
                        + (
                            f"{model_ref} was rewritten during the run; rerun to relax with it"
                            if rewritten
                            else "install the same catscreen and weights on the workers"
                        )
                    )
            table.add(rows)
            if bar is not None and task is not None:
                bar.advance(task, len(rows))

        if todo:
            if bar is not None:
                bar.start()
            try:
                with _sigterm_as_interrupt():
                    if settings.executor == "dask":
                        run_dask(flow, on_done, settings.scheduler, settings.workers)
                    else:
                        run_local(flow, on_done)
            finally:
                # Ctrl-C, SIGTERM, an error: the finished rows are kept (a second signal waits)
                mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
                try:
                    table.flush()
                finally:
                    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
                if bar is not None:
                    bar.stop()
        keys = {_key(it, info) for it in items}
        status = Counter(r["status"] for k, r in table.rows.items() if k in keys)
    return RelaxSummary(
        out=out,
        total=len(items),
        reused=len(items) - len(todo),
        ran=len(todo),
        converged=status["converged"],
        not_converged=status["not_converged"],
        failed=status["failed"],
        seconds=time.perf_counter() - t0,
        model=info.name,
        model_version=info.version,
    )
