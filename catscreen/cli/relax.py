"""`catscreen relax`: parse, call catscreen.workflow.relax_configurations, print a summary."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from catscreen.cli.common import cli_errors, console, output_option, split_csv
from catscreen.errors import CatscreenError
from catscreen.schema import MANIFEST_COLUMNS, RESULT_COLUMNS
from catscreen.workflow.relax import COLLAPSE_RATIO, FORCE_LIMIT, ISOLATION_LIMIT

_manifest = ", ".join(c for c in MANIFEST_COLUMNS if c != "structure_index")
EPILOG = (
    "[bold]Examples[/]:\n\n"
    "  catscreen relax runs/pt/configs.parquet --out runs/pt/results.parquet\n\n"
    "  catscreen relax configs.parquet --out results.parquet --adsorbate O,CO "
    "--spin on --optimizer lbfgs --fmax 0.03\n\n"
    "  catscreen relax configs.parquet --out results.parquet --executor dask --workers 4\n\n"
    "  catscreen relax configs.parquet --out results.parquet --executor dask "
    "--scheduler tcp://head:8786\n\n"
    "[bold]results.parquet[/] (catscreen/schema.py is authoritative): one row per "
    "configuration and context (model, spin, fidelity), rerun-safe. Columns: the manifest's "
    f"({_manifest}) and then\n\n"
    + "\n\n".join(f"  [cyan]{name}[/]: {text}" for name, text in RESULT_COLUMNS.items())
    + "\n\nGas-phase references (CO, H2, H2O, N2, and those of --references) are rows with "
    "kind 'gas' and adsorbate = the molecule, relaxed with the same model for every (spin, "
    "fidelity) context used. "
    f"A row fails on a non-finite energy or force, a force above {FORCE_LIMIT:g} eV/A, two "
    f"atoms closer than {COLLAPSE_RATIO:g}x their covalent radii (a hole in the potential), an "
    f"adsorbate atom more than {ISOLATION_LIMIT:g} A from every other atom, or an atom "
    "crossing the middle of the vacuum along z (out of its cell). Fixed atoms: FixAtoms, plus tag 0 when the structure is tagged."
)


def _many(values: list[str]) -> list[str]:
    return [v for value in values for v in split_csv(value)]


@cli_errors
def relax_command(
    configs: Path = typer.Argument(
        ..., help="configs.parquet from enumerate (or its folder), or an extxyz file."
    ),
    out: Path = output_option(Path("results.parquet"), "--out", "-o", help="Results table."),
    model: str = typer.Option(
        "bundled", help="bundled | checkpoint PATH | chgnet | chgnet-r2scan | emt."
    ),
    spin: str = typer.Option(
        "auto", help="auto (on when a magnetic element is present) | on | off."
    ),
    fidelity: str | None = typer.Option(
        None,
        help="Fidelity context; default: the model's recorded default (`catscreen model "
        "info`; chgnet-pbe for the bundled model).",
    ),
    optimizer: str = typer.Option("fire", help="fire | lbfgs (ASE's parameters)."),
    fmax: float = typer.Option(0.05, help="Converged when max |F| on free atoms <= fmax (eV/A)."),
    steps: int = typer.Option(300, help="Maximum optimizer steps per configuration."),
    batch_size: int = typer.Option(
        32, "--batch-size", help="Configurations per job; they share one model call per step."
    ),
    executor: str = typer.Option("local", help="local (jobflow run_locally) | dask."),
    scheduler: str | None = typer.Option(
        None,
        help="Existing Dask scheduler (tcp://host:8786); its workers need catscreen and the model.",
    ),
    workers: int | None = typer.Option(
        None, help="Worker processes of the Dask LocalCluster (default 2)."
    ),
    system: list[str] = typer.Option(
        [], help="Only these system ids (repeat or comma list), with their clean slabs."
    ),
    adsorbate: list[str] = typer.Option(
        [], help="Only these adsorbates (repeat or comma list), with their clean slabs."
    ),
    config_id: list[str] = typer.Option(
        [], "--id", help="Only these config ids (repeat or comma list), with their clean slabs."
    ),
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="Run rows that failed before again instead of keeping them."
    ),
    references: Path | None = typer.Option(
        None,
        "--references",
        help="The references file `rank --references` will use: its scheme's gas molecules "
        "are relaxed too (besides the default scheme's).",
    ),
    reference: str | None = typer.Option(
        None,
        "--reference",
        help="The candidate `rank --reference` will compare with, e.g. Ru(0001): under --spin "
        "auto its clean slab and placements are relaxed in each spin context the others use "
        "too, so rank compares every candidate with it in the candidate's own context.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Relax configurations with an MLIP as jobflow jobs (batched; local or Dask); resumable.

    Rerunning the same command skips configurations already in --out under the same model,
    spin and fidelity (--retry-failed reruns failed rows, a new --out starts over); other
    --optimizer/--fmax or a lower --steps than the output was relaxed with, and another model
    than the one its rows hold, are refused (a higher --steps reruns the rows that stopped).
    A killed run loses the batches in flight and the rows finished since the table's last
    write (at most nine times that write's time; Ctrl-C and SIGTERM write them first). Only
    one run may write an output at a time.
    """
    from catscreen.workflow.runner import RelaxSettings, relax_configurations  # jobflow: lazy

    if out.is_dir():  # a ValueError traceback
        raise CatscreenError(f"--out {out} is a folder; give the parquet file to write")
    if workers is not None and (executor != "dask" or scheduler is not None):
        raise CatscreenError(  # it would be ignored: the cluster decides its own workers
            "--workers sets the processes of the LocalCluster that --executor dask starts; "
            "it has no effect with the local executor or an existing --scheduler"
        )
    settings = RelaxSettings(
        model=model,
        spin=spin,
        fidelity=fidelity,
        optimizer=optimizer,
        fmax=fmax,
        steps=steps,
        batch_size=batch_size,
        executor=executor,
        scheduler=scheduler,
        workers=2 if workers is None else workers,
        systems=_many(system),
        adsorbates=_many(adsorbate),
        ids=_many(config_id),
        retry_failed=retry_failed,
        references=None if references is None else str(references),
        reference=reference,
    )
    s = relax_configurations(configs, out, settings, progress=not quiet)
    table = Table(title=f"relax: {s.out}", show_header=False)
    table.add_row("model", f"{s.model} ({s.model_version})")
    table.add_row("configurations", f"{s.total} ({s.ran} relaxed now, {s.reused} already done)")
    table.add_row("converged", str(s.converged))
    table.add_row("not converged", str(s.not_converged))
    table.add_row("failed", str(s.failed))
    table.add_row("time", f"{s.seconds:.1f} s")
    console.print(table)
    if s.total and s.failed == s.total:  # a broken model or input: not a finished screen
        raise CatscreenError(
            f"every configuration failed (the reason column of {s.out} says why for each)"
        )
