"""`catscreen validate`: embedded GPAW single points on flagged rows, ML vs DFT."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import typer
from rich.table import Table

from catscreen.cli.common import cli_errors, console, err_console, output_option
from catscreen.dft import DftSettings
from catscreen.dft.settings import ENCUT_DEFAULTS, GPAW_XC
from catscreen.dft.tasks import FLAGGED_REQUIRED, fidelity_functional
from catscreen.dft.validate import SUCCESS_THRESHOLD, validate
from catscreen.errors import CatscreenError
from catscreen.io import read_parquet, read_parquet_metadata, write_parquet

EPILOG = (
    "[bold]Examples[/]:\n\n"
    "  catscreen validate runs/pt/flagged.parquet --limit 2\n\n"
    "  catscreen validate flagged.parquet --encut 450 --kpt-density 3 --xc RPBE --out dft\n\n"
    "For VASP (run elsewhere) use `catscreen rank --write-dft vasp`."
)


@cli_errors
def validate_command(
    flagged: Path = typer.Argument(..., help="flagged.parquet from `catscreen rank`."),
    engine: str = typer.Option("gpaw", help="DFT engine run on this machine (gpaw)."),
    out: Path | None = output_option(
        None,
        "--out",
        "-o",
        help="Output folder (default: next to FLAGGED): validation.parquet, and each finished "
        "GPAW energy in validation.parts/ (a rerun reuses them).",
    ),
    encut: float = typer.Option(
        ENCUT_DEFAULTS["gpaw"],
        help="Plane-wave cutoff (eV); GPAW's setups converge gas reaction energies to 0.02 eV "
        "at 600.",
    ),
    kpt_density: float = typer.Option(
        DftSettings.kpt_density, help="k-points per reciprocal Angstrom."
    ),
    xc: str = typer.Option(DftSettings.xc, help="PBE or RPBE (GPAW)."),
    smearing: float = typer.Option(DftSettings.smearing, help="Fermi-Dirac width (eV)."),
    limit: int | None = typer.Option(
        None,
        min=1,
        help="Validate only N flagged rows: each system's lowest placement first, then the "
        "next lowest, in table order within a rank.",
    ),
) -> None:
    """Run GPAW single points on flagged rows (small cells) and compare with the model."""
    if engine != "gpaw":
        raise CatscreenError(
            f"unknown engine {engine!r}: validate runs gpaw; use `rank --write-dft vasp` for VASP"
        )
    table = read_parquet(flagged, required=FLAGGED_REQUIRED)
    if table.empty:
        raise CatscreenError(f"{flagged} has no flagged rows to validate")
    if limit is not None and "rank_in_system" in table:  # minima first, not the file's order
        order = table["rank_in_system"].where(table["rank_in_system"] > 0, len(table) + 1)
        table = table.loc[order.sort_values(kind="stable").index]
    if limit is not None:
        table = table.head(limit)
    if xc not in GPAW_XC:  # before any calculation: each would fail on its own
        raise CatscreenError(f"unknown xc {xc!r} for GPAW; expected {' or '.join(GPAW_XC)}")
    for fidelity in sorted(set(table.get("fidelity", pd.Series(dtype=str)).astype(str))):
        theirs = fidelity_functional(fidelity)
        if theirs != xc:
            err_console.print(
                f"note: the rows were relaxed at fidelity {fidelity} ({theirs}); GPAW computes "
                f"{xc}: the comparison crosses functionals"
            )
    settings = DftSettings(
        xc=xc, encut=encut, kpt_density=kpt_density, smearing=smearing, relax_steps=0
    )
    folder = out or flagged.parent
    parts = folder / "validation.parts"  # each finished GPAW energy: a rerun skips it
    comparison, reused = validate(table, settings, parts)
    if reused:
        err_console.print(f"{reused} GPAW energies reused from {parts}", highlight=False)
    path = folder / "validation.parquet"
    meta = {
        "stage": "validate",
        "engine": engine,
        "dft_settings": settings.__dict__,
        "success_threshold": SUCCESS_THRESHOLD,
    }
    write_parquet(comparison, path, metadata={**meta, "rank": read_parquet_metadata(flagged)})

    view = Table(
        title=f"ML vs GPAW adsorption energies (eV); success: |error| <= {SUCCESS_THRESHOLD}"
    )
    for c in ("config", "candidate", "adsorbate", "site", "E_ads ML", "E_ads DFT", "error"):
        view.add_column(
            c, justify="left" if c in ("config", "candidate", "adsorbate", "site") else "right"
        )
    for r in comparison.itertuples():
        view.add_row(
            r.config_id,
            str(r.candidate),
            str(r.adsorbate),
            str(r.site_type),
            f"{r.e_ads_ml:.3f} ± {r.e_ads_ml_std:.3f}",
            "-" if math.isnan(r.e_ads_dft) else f"{r.e_ads_dft:.3f}",
            r.dft_error or ("-" if math.isnan(r.error) else f"{r.error:+.3f}"),
        )
    console.print(view)
    done = int(comparison.error.notna().sum())
    if not done:  # the table is written (its dft_error column says why), but nothing validated
        first = next((e.split("; ")[0] for e in comparison.dft_error if e), "no DFT energy")
        raise CatscreenError(f"no flagged row got a DFT energy ({first}); wrote {path}")
    mae = comparison.error.abs().mean()
    err_console.print(f"MAE {mae:.3f} eV over {done} rows; wrote {path}")
