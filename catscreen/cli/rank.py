"""`catscreen rank`: adsorption energies, anomalies, descriptor ranking and DFT flags."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import typer
from rich.table import Table

from catscreen.analysis import (
    RankSettings,
    absolute_offset_note,
    context_offset_note,
    domain_notes,
    load_references,
    of_configs,
    parse_targets,
    rank_output_paths,
    rank_results,
    read_results,
    uncertainty_note,
    write_rank_outputs,
)
from catscreen.cli.common import cli_errors, console, err_console, output_option
from catscreen.dft import DftSettings, write_dft_inputs
from catscreen.dft.tasks import ENGINES, check_dft_folder, functional
from catscreen.errors import CatscreenError
from catscreen.io import is_same_file, read_parquet_metadata
from catscreen.model.api import spin_conditioned
from catscreen.workflow.inputs import SELECTION, config_ids, manifest_frame, select
from catscreen.workflow.store import OutputLock

FORMATS = ("table", "csv", "json")

EPILOG = (
    "[bold]Energies[/]: E_ads = E(slab+adsorbate) - E(clean slab of the same system) - "
    "sum n_i mu_i, gas references mu_i from the gas rows of the results (H from H2, O from "
    "H2O - H2, C from CO - O, N from N2) or --references; slab, adsorbate and gas rows must "
    "share model, spin and fidelity. Stds are the model's ensemble spread, propagated head by "
    "head (each head's E_ads, descriptors and distance; errors the heads share cancel in "
    "differences).\n\n"
    "[bold]Ranking[/]: a candidate is bulk + facet + termination, e.g. Pt(111); its "
    "descriptor E_X is the lowest valid E_ads of adsorbate X over placements (anomalous "
    "ones excluded unless --keep-anomalies). distance = sqrt(sum_X ((E_X - value) / "
    "tolerance)^2), in units of the tolerances. With --reference, descriptors become "
    "rel_X = E_X - E_X(reference) and target values are relative too; with --reference "
    "and no --target every descriptor is ranked against 0 (the reference itself).\n\n"
    "[bold]Outputs[/] (in --out, default the folder of RESULTS): adsorption.parquet (every "
    "placement: e_ads, e_ads_std, anomaly flags), systems.parquet (minimum per system), "
    "ranked.parquet (one row per candidate, sorted by distance) and flagged.parquet (the "
    "placements to check with DFT and why: flag_top_k, flag_rank_flip, "
    "flag_high_uncertainty); the reference scheme and thresholds are in the parquet "
    "metadata. --write-dft also writes one folder per calculation: each flagged adslab, "
    "its clean slab and the gas molecules.\n\n"
    "[bold]Examples[/]:\n\n"
    "  catscreen rank results.parquet --target N=-0.5:0.3\n\n"
    "  catscreen rank results.parquet --reference 'Ru(0001)' --format csv > ranked.csv\n\n"
    "  catscreen rank results.parquet --top-k 2 --write-dft vasp dft/"
)


def _cell(value: object, std: object) -> str:
    if not isinstance(value, float):
        return str(value)
    if math.isnan(value):
        return "-"
    return f"{value:.3f}" + (f" ± {std:.3f}" if isinstance(std, float) and std > 0 else "")


def _show(ranked: pd.DataFrame, reference: str | None) -> None:
    """Candidates with descriptors (± propagated std, eV), the distance if ranked, and the
    spin context; the reference marked as the campaign's table marks it."""
    ranked_by_target = bool(ranked.distance.notna().any())
    values = [
        c for c in ranked.columns if c.startswith(("E_", "rel_")) and not c.startswith("rel_std_")
    ]
    cols = ["candidate", *values, *(["distance"] if ranked_by_target else []), "spin"]
    title = "candidates by distance to target" if ranked_by_target else "candidates"
    table = Table(title=title + (" (* the reference)" if reference else ""))
    for c in cols:
        header = f"{c} (eV)" if c in values else c
        table.add_column(header, justify="left" if c == "candidate" else "right")
    for rec in ranked.to_dict("records"):
        std_of = {
            c: rec.get(c.replace("E_", "std_", 1).replace("rel_", "rel_std_", 1)) for c in values
        }
        std_of["distance"] = rec.get("distance_std")
        cells = [_cell(rec.get(c, ""), std_of.get(c)) for c in cols]
        cells[0] += "*" if rec["candidate"] == reference else ""
        table.add_row(*cells)
    console.print(table)


def _table_notes(results: Path, rows: pd.DataFrame) -> list[str]:
    """What the table holds against its last relax run's input: placements that input no
    longer holds (a campaign's table after a recipe change), ranked too, which the campaign's
    own rank is not; and those of its selection with no row yet (a killed or running relax),
    which nothing ranks."""
    stored = read_parquet_metadata(results)
    recorded = stored.get("configs")
    try:
        if not recorded or not Path(recorded).exists():
            return []
        manifest = manifest_frame(recorded)
    except CatscreenError:  # moved or rewritten since: nothing to compare with
        return []
    current = set(manifest.config_id.astype(str))
    chosen = {k: (stored.get("settings") or {}).get(k) or [] for k in SELECTION}
    try:
        planned = set(manifest[select(manifest, **chosen)].config_id.astype(str))
    except CatscreenError:  # the run chose what the input no longer holds: no plan to compare
        planned = set()
    placed = rows[rows.kind != "gas"].config_id.astype(str)
    notes = []
    if earlier := int((~placed.isin(current)).sum()):
        notes.append(
            f"{earlier} of {len(placed)} rows are of configurations that {recorded}, the last "
            f"relax run's input, no longer holds; they are ranked too (--configs {recorded} ranks "
            "its own only)"
        )
    if missing := len(planned - set(placed)):
        notes.append(
            f"{missing} of the {len(planned)} configurations the last relax run took from "
            f"{recorded} have no row in {results} yet (a relax killed or still running; "
            "rerunning it resumes): they are not ranked"
        )
    return notes


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
    out: Path | None = output_option(
        None, "--out", "-o", help="Output folder (default: next to RESULTS)."
    ),
    fmt: str = typer.Option(
        "table", "--format", help="table | csv | json (the ranked candidates)."
    ),
    spin: str | None = typer.Option(
        None,
        "--spin",
        help="Rank only the rows of this spin context (on | off): a results file that holds "
        "both (e.g. a --spin off relax appended to an auto one) ranks one context at a time.",
    ),
    write_dft: tuple[str, Path] | None = typer.Option(
        None,
        "--write-dft",
        help="ENGINE DIR: vasp or gpaw inputs for every flagged row, in a new or empty DIR, "
        "with manifest.json (which calculations make each E_ads). VASP POTCARs are licensed: "
        "POTCAR.symbols names them. Cells are as enumerated (relax keeps them), at the bulk's "
        "lattice constant as given (the library's are experimental; manifest.json: cells).",
    ),
    configs: Path | None = typer.Option(
        None,
        "--configs",
        help="Rank only these configurations' rows (enumerate's folder, its configs.parquet or "
        "an extxyz, as relax reads them) and the gas references: a results table resumed after "
        "a recipe change holds the earlier placements too.",
    ),
    dft_xc: str | None = typer.Option(
        None,
        "--dft-xc",
        help="Functional of --write-dft: auto (the rows' fidelity's: r2SCAN for *r2scan*, RPBE "
        "for *rpbe*, else PBE; the default), PBE, RPBE or r2SCAN (VASP only).",
    ),
) -> None:
    """Rank candidates by adsorption-energy descriptors and flag placements for DFT."""
    if fmt not in FORMATS:
        raise CatscreenError(f"unknown --format {fmt!r}; expected table, csv or json")
    if spin not in (None, "on", "off"):
        raise CatscreenError(f"--spin must be on or off, not {spin!r}")
    if dft_xc is not None and write_dft is None:  # it was accepted and ignored, exit 0
        raise CatscreenError("--dft-xc sets the functional of --write-dft: give --write-dft too")
    dft_settings = DftSettings(xc=dft_xc or "auto")
    if write_dft is not None:  # before anything is written
        if write_dft[0] not in ENGINES:
            raise CatscreenError(
                f"unknown DFT engine {write_dft[0]!r}; expected one of {', '.join(ENGINES)}"
            )
        functional(dft_settings, write_dft[0], "")
        check_dft_folder(write_dft[1])
        tables, dft = (out or results.parent).resolve(), write_dft[1].resolve()
        if tables == dft or dft in tables.parents:
            raise CatscreenError(
                f"--write-dft {write_dft[1]} would hold the rank tables (--out {tables}): "
                "give the DFT inputs a folder of their own"
            )
    for path in rank_output_paths(out or results.parent).values():
        if is_same_file(path, results):
            raise CatscreenError(
                f"rank writes {path.name} into {path.parent} and would overwrite its input "
                "(left unchanged): give --out another folder, or rename the results file"
            )
    settings = RankSettings(
        references=load_references(references),
        targets=parse_targets(target, tolerance),
        reference_candidate=reference,
        default_tolerance=tolerance,
        keep_anomalies=keep_anomalies,
        bond_tolerance=bond_tolerance,
        top_k=top_k,
        uncertainty_threshold=uncertainty,
        flip_sigma=flip_sigma,
        spin=spin,
    )
    rows = read_results(results)
    if (writer := OutputLock.holder(results)) is not None:
        err_console.print(
            f"note: {results} is being written by a running catscreen relax (pid {writer}): "
            "this ranks the rows it has finished so far"
        )
    if configs is not None:
        wanted = config_ids(configs)
        rows = of_configs(rows, wanted)
        if (rows.kind == "gas").all():
            raise CatscreenError(f"{results} holds no rows of the configurations in {configs}")
        if missing := len(wanted - set(rows.config_id.astype(str))):  # Pd(111) left the board
            err_console.print(
                f"note: {missing} of the {len(wanted)} configurations in {configs} have no row in "
                f"{results} (not relaxed there): they are not ranked"
            )
    else:
        for note in _table_notes(results, rows):
            err_console.print(f"note: {note}")
    for warning in domain_notes(rows, spin):  # of the rows ranked (--configs, --spin)
        err_console.print(f"warning: {warning}", highlight=False)
    output = rank_results(rows, settings, results)
    output.metadata["configs"] = str(configs.resolve()) if configs is not None else None
    paths = write_rank_outputs(output, out or results.parent)
    if (note := uncertainty_note(output)) is not None:
        err_console.print(f"note: {note}")
    model = str(output.configs["model"].iloc[0])
    ref = output.metadata["reference_candidate"]
    ranked_by = output.ranked.distance.notna().any()  # absolute mode: only with --target
    if (
        spin_conditioned(model)
        and (ref or ranked_by)
        and (note := context_offset_note(output.ranked, ref)) is not None
    ):
        err_console.print(f"warning: {note}", highlight=False)
    if ranked_by and not ref and (note := absolute_offset_note(model)) is not None:
        err_console.print(f"warning: {note}", highlight=False)
    if write_dft is not None:
        try:
            folders = write_dft_inputs(
                output.flagged,
                *write_dft,
                dft_settings,
                lambda why: err_console.print(f"note: {why}"),
            )
        except CatscreenError as exc:  # a full disk: the tables stand, which it did not say
            raise CatscreenError(
                f"{exc}; the rank tables are written ({paths['ranked'].parent}): rerun with "
                "--write-dft to write the DFT inputs"
            ) from exc
        err_console.print(f"wrote {len(folders)} {write_dft[0]} input folder(s) to {write_dft[1]}")
        if settings.references.potentials:  # no gas calculation stands behind a fixed potential
            err_console.print(
                "note: ranked with fixed reference potentials: only adslabs and clean slabs "
                "were written; a DFT E_ads needs your own DFT values for those potentials"
            )
    c = output.counts
    skipped = c["skipped_failed_slab"] + c["skipped_failed_gas"]
    err_console.print(
        f"{c['adslabs']} placements ({c['failed']} failed rows excluded, {c['anomalous']} anomalous"
        + (f", {skipped} skipped: their clean slab or gas reference failed" if skipped else "")
        + f"), {c['systems']} systems, {c['candidates']} candidates, {c['flagged']} flagged for "
        f"DFT; wrote {paths['ranked']}"
    )
    if fmt == "csv":
        flat = output.ranked.drop(columns=["distance_heads"])  # per-head lists: the flip check's
        typer.echo(flat.to_csv(index=False), nl=False)
    elif fmt == "json":
        typer.echo(output.ranked.to_json(orient="records", indent=2))
    else:
        _show(output.ranked, output.metadata["reference_candidate"])
