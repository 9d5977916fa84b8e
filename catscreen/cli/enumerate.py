"""`catscreen enumerate`: parse, call catscreen.build.enumerate, print a summary."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.table import Table

from catscreen.build.bulks import load_bulks, symmetry_note
from catscreen.build.enumerate import (
    MANIFEST_FILE,
    SIZE_PAIRS,
    STRUCTURES_FILE,
    EnumerateSettings,
    enumerate_configurations,
    manifest,
    write_configurations,
)
from catscreen.build.placements import MIN_DISTANCE_FACTOR, NUDGE
from catscreen.build.slabs import atom_layers
from catscreen.cli.common import cli_errors, console, err_console, output_option, split_csv
from catscreen.errors import CatscreenError
from catscreen.io import is_same_file

EPILOG = (
    "[bold]Outputs[/] (in --out DIR): "
    f"[cyan]{STRUCTURES_FILE}[/] (every configuration, ASE extxyz: tags 0 subsurface / "
    "1 surface / 2 adsorbate, FixAtoms on tag 0 as move_mask, the manifest row in the info "
    f"line) and [cyan]{MANIFEST_FILE}[/] (one row per configuration: config_id, system_id, "
    "slab_id, kind, bulk, bulk_formula, formula, miller, termination, shift, site_type, "
    "site_atoms, site_x/y/z, adsorbate, placement, n_atoms, structure_index; the settings "
    "are in its metadata). Clean slabs are rows too (kind 'slab', adsorbate 'none').\n\n"
    "[bold]Ids[/] are hashes of what defines a configuration (bulk structure, facet, "
    "termination, site, adsorbate geometry, orientation, placement settings): a rerun or "
    "another machine gets the same ids.\n\n"
    "[bold]Rules[/]: Miller indices refer to the bulk's conventional standard cell (hcp: "
    "0,0,1 or 0,0,0,1 for the basal plane). Every termination is kept, plus the bottom of "
    "asymmetric slabs, flipped so adsorbates sit at +z (--max-terminations N: the first N "
    "in pymatgen's shift order, which need not be the same surface on two metals). Surface "
    "atoms (tag 1) are those that higher atoms do not surround from above (the foot of a "
    "step is one). Sites: "
    "ontop, bridge, fcc/hcp hollows (hcp when a second-layer atom lies beneath), other "
    "3-fold 'hollow', 4fold; symmetry-equivalent "
    "sites merged (the slab cell's own symmetry). Adsorbates start upright with the binding "
    "atom at covalent-radius bond length from its site's atoms; no adsorbate-slab pair "
    f"closer than {MIN_DISTANCE_FACTOR:g} x the sum of covalent radii.\n\n"
    "[bold]Examples[/]:\n\n"
    "  catscreen enumerate --bulk Pt --miller 1,1,1 --adsorbates O,CO,NH2 --out runs/pt\n\n"
    "  catscreen enumerate --bulk Ni --max-index 2 --adsorbates O,CO --dry-run\n\n"
    "  catscreen enumerate --bulk my.cif --adsorbates H --placement random --n 10 --seed 1 "
    "--custom-adsorbate mol.xyz:0 --out runs/mine\n\n"
    "Bad input (unknown bulk, element, adsorbate or facet; unreadable file; no slab) prints "
    "one line and exits 2 without writing anything."
)


def _many(values: list[str]) -> list[str]:
    return [v for value in values for v in split_csv(value)]


def _many_bulks(values: list[str]) -> list[str]:
    """Comma-separated like the rest, except a value naming a file: `my,alloy.cif` is one."""
    return [v for value in values for v in ([value] if Path(value).is_file() else split_csv(value))]


def _summary(images: list) -> Table:
    df = manifest(images)
    table = Table(title=f"{len(df)} configurations", show_lines=False)
    numbers = ("termination", "layers", "atoms", "configs")
    for name in (
        "bulk",
        "miller",
        "termination",
        "layers",
        "atoms",
        "sites",
        "adsorbates",
        "configs",
    ):
        table.add_column(name, justify="right" if name in numbers else "left")
    for (bulk, miller, term), group in df.groupby(["bulk", "miller", "termination"], sort=False):
        first = images[group.index[0]]
        layers = int(atom_layers(first[first.get_tags() < 2]).max()) + 1
        ads = group[group["kind"] == "adslab"]
        sites = ", ".join(
            f"{k} {n}"
            for k, n in ads.drop_duplicates(["site_type", "site_atoms", "site_x", "site_y"])
            .groupby("site_type", sort=False)
            .size()
            .items()
        )
        table.add_row(
            bulk,
            f"({miller})",
            str(term),
            str(layers),
            str(int(group["n_atoms"].min())),
            sites or "-",
            ", ".join(ads["adsorbate"].unique()) or "-",
            str(len(group)),
        )
    return table


@cli_errors
def enumerate_command(
    bulk: list[str] = typer.Option(
        [],
        "--bulk",
        "-b",
        help="Library bulk (Pt, Fe, Co, Ni3Al, PtCo, ...; see data/bulks.yaml) or a structure "
        "file ASE reads (CIF, POSCAR, extxyz; every frame is a bulk). Repeat or comma-separate.",
    ),
    miller: list[str] = typer.Option(
        [],
        "--miller",
        "-m",
        help="Facet as h,k,l, applied to every bulk; a hexagonal h,k,i,l (0,0,0,1) applies to "
        "hexagonal bulks only. Repeatable. Default: every symmetrically distinct facet up to "
        "--max-index.",
    ),
    max_index: int = typer.Option(
        1, "--max-index", help="Largest Miller index when no --miller is given."
    ),
    adsorbates: list[str] = typer.Option(
        [],
        "--adsorbates",
        "-a",
        help="Comma list (or repeat the option) from the library (H, O, N, C, OH, H2O, OOH, O2, CO, COH, CHO, CO2, COOH, "
        "HCOO, CH, CH2, CH3, CH4, CHOH, OCH3, NH, NH2, NH3, N2, NO, NNH, N2H2, C2H2, C2H4).",
    ),
    custom_adsorbate: list[str] = typer.Option(
        [],
        "--custom-adsorbate",
        help="FILE:I or FILE:I,J: a molecule from a structure file, named by the file stem, "
        "binding through atom I (or bidentate through I and J, 0-based). Repeatable.",
    ),
    placement: str = typer.Option(
        "heuristic",
        help="heuristic: one upright placement per distinct site and adsorbate; random: --n "
        "random sites and orientations (tilt up to 30 deg) per slab and adsorbate.",
    ),
    n: int | None = typer.Option(
        None, "--n", help="Random placements per slab and adsorbate (--placement random; 5)."
    ),
    seed: int = typer.Option(0, help="Seed of the random placements and nudges (reproducible)."),
    nudge: float = typer.Option(
        NUDGE,
        help="Move every placement this far (A) off its symmetric site, in a seeded random "
        "direction with a small tilt, so relaxations do not stop on a saddle; 0: exactly on it.",
    ),
    min_slab_size: float | None = typer.Option(
        None,
        help="Minimum slab thickness (A); default 7. pymatgen rounds it up to whole repeats of "
        "the facet's oriented cell: fcc(111)'s holds 3 layers, so 7 A gives Pt(111) (3 x 2.26 "
        "A = 6.8 A) 6 layers and Au(111) (7.1 A) 3. --layers gives every bulk the same count.",
        show_default=False,
    ),
    layers: int | None = typer.Option(
        None,
        "--layers",
        help="Exactly this many atomic layers instead of --min-slab-size. A layer is one height "
        "(as CatKit counts them): fcc(111) 4 layers is 6.8 A of Pt, but stepped and open "
        "facets have several heights per terrace (fcc(211): three).",
        show_default=False,
    ),
    vacuum: float = typer.Option(20.0, help="Vacuum thickness (A), at least 8."),
    min_ab: float | None = typer.Option(
        None,
        "--min-ab",
        help="Repeat the surface cell until both in-plane lengths reach this (A); default 8.",
        show_default=False,
    ),
    repeat: str | None = typer.Option(
        None,
        "--repeat",
        help="Repeat the primitive surface cell AxB times (2x2) instead of --min-ab: one "
        "coverage on the bulks of a facet whose primitive cells match (min-ab 5 A gives Ni(111) "
        "3x3 beside Pt(111) 2x2); an ordered alloy's is larger (Pt3Ni(111) holds four).",
        show_default=False,
    ),
    max_terminations: int | None = typer.Option(
        None,
        "--max-terminations",
        help="Keep the first N terminations of each facet (pymatgen's order, a bottom after its "
        "top); default: all. --layers is checked on the kept ones only.",
        show_default=False,
    ),
    clean: bool = typer.Option(
        True, "--clean/--no-clean", help="Write the clean slabs as configurations too."
    ),
    out: Path | None = output_option(
        None, "--out", "-o", help=f"Output folder for {STRUCTURES_FILE} and {MANIFEST_FILE}."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Enumerate and print the counts; write nothing."
    ),
) -> None:
    """Enumerate surfaces and adsorbate placements: bulk -> slabs -> sites -> configurations.

    For every bulk, cut each requested facet with pymatgen's SlabGenerator (every
    termination, or the first --max-terminations), find the symmetry-distinct adsorption
    sites and place each adsorbate on them. Defaults follow Open Catalyst: 7 A slab, 20 A
    vacuum, 8 A in-plane.
    """
    if out is None and not dry_run:
        raise CatscreenError("give --out DIR (or --dry-run to only count)")
    if out is not None and out.exists() and not out.is_dir():
        raise CatscreenError(f"--out {out} is a file; give a folder")
    if miller and max_index != 1:  # it was ignored: the facets are the given ones
        raise CatscreenError("give --miller or --max-index, not both")
    if n is not None and placement != "random":  # it was ignored: one placement per site
        raise CatscreenError("--n counts random placements: give it with --placement random")
    written = (out / STRUCTURES_FILE, out / MANIFEST_FILE) if out is not None else ()
    bulks = _many_bulks(bulk)
    for given in [*bulks, *custom_adsorbate]:  # enumerate's own output as input
        path = given.rsplit(":", 1)[0]  # a custom adsorbate's FILE:INDEX
        if any(is_same_file(path, w) or is_same_file(given, w) for w in written):
            raise CatscreenError(
                f"{given} is an output of --out {out} (left unchanged): copy it apart"
            )
    pairs = zip(SIZE_PAIRS, ((layers, min_slab_size), (repeat, min_ab)), strict=True)
    for (new, old), given in pairs:
        if None not in given:  # said with the flags, not the settings' names
            raise CatscreenError(f"give --{old.replace('_', '-')} or --{new}, not both")
    try:
        settings = EnumerateSettings(
            bulks=bulks,
            miller=_many_miller(miller),
            max_index=max_index,
            vacuum=vacuum,
            layers=layers,
            repeat=repeat,
            max_terminations=max_terminations,
            **({} if min_slab_size is None else {"min_slab_size": min_slab_size}),
            **({} if min_ab is None else {"min_ab": min_ab}),
            adsorbates=_many(adsorbates),
            custom_adsorbates=custom_adsorbate,
            placement=placement,
            **({} if n is None else {"n_random": n}),
            seed=seed,
            nudge=nudge,
            include_clean=clean,
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        where = f" {err['loc'][0]}" if err["loc"] else ""
        msg = err["msg"].removeprefix("Value error, ")
        raise CatscreenError(f"bad setting{where}: {msg}") from None
    images = enumerate_configurations(
        settings, lambda line: err_console.print(f"note: {line}", highlight=False)
    )
    files = [b for b in settings.bulks if Path(b).is_file()]
    for bulk in load_bulks(files) if files else []:
        if (note := symmetry_note(bulk)) is not None:
            err_console.print(f"note: {note}", highlight=False)
    console.print(_summary(images))
    if dry_run:
        console.print("dry run: nothing written")
        return
    assert out is not None
    structures, table = write_configurations(images, out, settings)
    console.print(f"wrote {table} and {structures}")


def _many_miller(values: list[str]) -> list[str]:
    """`--miller 1,1,1` is one index; several are separated by spaces or semicolons.

    Single digits separated by spaces or commas and spaces (`"1 1 1"`, `"1, -1, 0"`,
    `"(1 1 1)"`) are one index, as people write it.
    """
    out = []
    for value in values:
        for chunk in re.sub(r"\)\s*\(", ";", value).split(";"):
            chunk = chunk.strip().strip("()").strip()
            tokens = [t for t in re.split(r"[\s,]+", chunk) if t]
            if (
                re.search(r"\s", chunk)
                and len(tokens) in (3, 4)
                and all(re.fullmatch(r"-?\d", t) for t in tokens)
            ):
                out.append(",".join(tokens))
            else:
                out.extend(chunk.split())
    return out


# main.py registers the command without an epilog, so the man-page part joins the docstring.
enumerate_command.__doc__ = f"{inspect.cleandoc(enumerate_command.__doc__ or '')}\n\n{EPILOG}"
