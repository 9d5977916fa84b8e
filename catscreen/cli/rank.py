"""`catscreen rank`: adsorption energies, anomalies, descriptor ranking and DFT flags."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import typer
from rich.table import Table

from catscreen.analysis import (
    RankSettings,
    load_references,
    parse_target,
    rank_results,
    read_results,
    write_rank_outputs,
)
from catscreen.cli.common import cli_errors, console, err_console
from catscreen.dft import DftSettings, write_dft_inputs
from catscreen.errors import CatscreenError

FORMATS = ("table", "csv", "json")


def _cell(value: object, std: object) -> str:
    if not isinstance(value, float):
        return str(value)
    if math.isnan(value):
        return "-"
    return f"{value:.3f}" + (f" ± {std:.3f}" if isinstance(std, float) and std > 0 else "")


def _show(ranked: pd.DataFrame) -> None:
    """Candidates with descriptors (± propagated std) and the distance, if ranked."""
    ranked_by_target = bool(ranked.distance.notna().any())
    values = [
        c for c in ranked.columns if c.startswith(("E_", "rel_")) and not c.startswith("rel_std_")
    ]
    cols = ["candidate", *values, *(["distance"] if ranked_by_target else [])]
    table = Table(title="candidates by distance to target" if ranked_by_target else "candidates")
    for c in cols:
        table.add_column(c, justify="left" if c == "candidate" else "right")
    for rec in ranked.to_dict("records"):
        std_of = {
            c: rec.get(c.replace("E_", "std_", 1).replace("rel_", "rel_std_", 1)) for c in values
        }
        std_of["distance"] = rec.get("distance_std")
        table.add_row(*(_cell(rec[c], std_of.get(c)) for c in cols))
    console.print(table)


@cli_errors
def rank_command(
    results: Path = typer.Argument(..., help="results.parquet from `catscreen relax`."),
    target: list[str] = typer.Option(
        [], "--target", "-t", help="ADSORBATE=VALUE[:TOLERANCE] in eV, repeatable, e.g. N=-0.5:0.2."
    ),
    reference: str | None = typer.Option(
        None,
        "--reference",
        help="Rank relative to this candidate of the run, e.g. Ru(0001) or 'Pt 1,1,1 t0'.",
    ),
    references: Path | None = typer.Option(
        None, "--references", help="Gas references: YAML (elements: scheme | potentials:) or CSV."
    ),
    tolerance: float = typer.Option(0.2, help="Default target tolerance (eV)."),
    keep_anomalies: bool = typer.Option(
        False, "--keep-anomalies", help="Use anomalous placements in minima."
    ),
    bond_tolerance: float = typer.Option(1.25, help="Bonded if d < (r_cov_i + r_cov_j) * this."),
    top_k: int = typer.Option(
        5, "--top-k", min=0, help="Flag the k lowest placements per system for DFT."
    ),
    uncertainty: float = typer.Option(
        0.15, help="Flag placements whose E_ads std exceeds this (eV)."
    ),
    flip_sigma: float = typer.Option(
        1.0, help="Neighbours closer than this many sigma could swap."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Output folder (default: next to RESULTS)."
    ),
    fmt: str = typer.Option(
        "table", "--format", help="table | csv | json (the ranked candidates)."
    ),
    write_dft: tuple[str, Path] | None = typer.Option(
        None, "--write-dft", help="ENGINE DIR: vasp or gpaw inputs for every flagged row."
    ),
) -> None:
    """Rank candidates by adsorption-energy descriptors and flag placements for DFT."""
    if fmt not in FORMATS:
        raise CatscreenError(f"unknown --format {fmt!r}; expected table, csv or json")
    settings = RankSettings(
        references=load_references(references),
        targets=dict(parse_target(t, tolerance) for t in target),
        reference_candidate=reference,
        default_tolerance=tolerance,
        keep_anomalies=keep_anomalies,
        bond_tolerance=bond_tolerance,
        top_k=top_k,
        uncertainty_threshold=uncertainty,
        flip_sigma=flip_sigma,
    )
    output = rank_results(read_results(results), settings)
    paths = write_rank_outputs(output, out or results.parent)
    if write_dft is not None and write_dft[0] is not None:
        folders = write_dft_inputs(output.flagged, write_dft[0], write_dft[1], DftSettings())
        err_console.print(f"wrote {len(folders)} {write_dft[0]} input folder(s) to {write_dft[1]}")
    c = output.counts
    err_console.print(
        f"{c['adslabs']} placements ({c['failed']} failed rows excluded, {c['anomalous']} anomalous), "
        f"{c['systems']} systems, {c['candidates']} candidates, {c['flagged']} flagged for DFT; "
        f"wrote {paths['ranked']}"
    )
    if fmt == "csv":
        typer.echo(output.ranked.to_csv(index=False), nl=False)
    elif fmt == "json":
        typer.echo(output.ranked.to_json(orient="records", indent=2))
    else:
        _show(output.ranked)
