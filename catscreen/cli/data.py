"""`catscreen data`: make training data (generate structures, label them) for `catscreen train`.

One sub-app; each command is a thin wrapper over `catscreen.training`. `label` takes exactly one
labeller: `--dft gpaw` (real DFT, spin off or on) or a teacher model.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from catscreen.cli.common import cli_errors, console, output_option, output_path
from catscreen.errors import CatscreenError

data_app = typer.Typer(
    help="Make training data: structures and their labels (extxyz with context in atoms.info).",
    no_args_is_help=True,
)

DFT_CODES = ("gpaw",)


def _label_dft(
    code: str, spin: str, input_path: Path, out: Path, work: Path | None, **settings: float
) -> None:
    """Real DFT labels, resumable: one part file per structure in `work`, gathered into `out`."""
    from catscreen.io import read_structures
    from catscreen.training.datasets import read_extxyz
    from catscreen.training.dft_labels import (
        GpawSettings,
        collect,
        finished_parts,
        label_structures,
    )

    if code not in DFT_CODES:
        raise CatscreenError(f"unknown DFT code {code!r}; expected one of {', '.join(DFT_CODES)}")
    if spin not in ("off", "on"):
        raise CatscreenError(f"--spin must be off or on, not {spin!r}")
    try:
        import gpaw  # noqa: F401
    except ImportError:
        raise CatscreenError("GPAW is not installed: pip install 'catscreen[dft]'") from None
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    gpaw_settings = GpawSettings(**settings)
    structures = [a for f in input_files(input_path) for a in read_structures(f)]
    parts = work or parts_folder(out)
    other = "on" if spin == "off" else "off"
    # a second run into the same OUT with the other --spin keeps the pairs OUT holds (only
    # OUT's: a --work shared by two outputs must not mix them); checked before the labelling
    held = out.is_file() and any(a.info.get("spin") == other for a in read_extxyz(out))
    earlier = finished_parts(structures, other, parts, gpaw_settings) if held else []
    done = label_structures(
        structures,
        [spin],
        parts,
        gpaw_settings,
        log=lambda m: console.print(m, highlight=False),
    )
    gathered = collect(done + earlier, out)
    n = len(set(gathered) & set(done))
    kept = len(gathered) - n
    console.print(
        f"{n} of {len(structures)} structures labelled (converged) -> {out}"
        + (f", with {kept} spin-{other} label(s) of an earlier run" if kept else "")
    )
    if n == 0:
        raise CatscreenError(
            f"none of the {len(structures)} structures converged; their GPAW logs are in {parts}"
        )


def input_files(path: Path) -> list[Path]:
    """A file, or a folder's extxyz shards in name order (as train and evaluate read it)."""
    from catscreen.training.datasets import folder_shards

    return folder_shards(path) if path.is_dir() else [path]


def parts_folder(out: Path) -> Path:
    """OUT.parts beside OUT: run.ecut200.extxyz.xz -> run.ecut200.parts, so that outputs
    named apart by a dotted suffix do not share (and refuse) each other's parts."""
    from catscreen.training.datasets import extxyz_stem

    return out.with_name(extxyz_stem(out.name) + ".parts")


def _label_teacher(teacher: str, input_path: Path, out: Path) -> None:
    """Teacher labels; the spin context follows `--spin auto` (see the datasheet)."""
    from catscreen.training.datasets import read_extxyz, write_extxyz
    from catscreen.training.teacher import label

    frames = [a for f in input_files(input_path) for a in read_extxyz(f)]
    if not frames:
        raise CatscreenError(f"{input_path} holds no structures")
    labelled = label(frames, teacher)
    write_extxyz(labelled, out)
    console.print(f"{len(labelled)} structures labelled by {teacher} -> {out}")


@data_app.command("generate")
@cli_errors
def generate_command(
    out_arg: Path | None = typer.Argument(
        None,
        metavar="OUT",
        help="Output folder (default data/training/teacher).",
        parser=output_path,
    ),
    out_option: Path | None = output_option(
        None, "--out", "-o", help="Output folder, as OUT (the other commands' option)."
    ),
    teacher: list[str] = typer.Option(
        [], "--teacher", help="Label each shard as soon as it exists (repeatable)."
    ),
    metals: list[str] | None = typer.Option(
        None, "--metals", help="Host metals, comma-separated or repeated, or 'none' (only --bulks)."
    ),
    bulks: list[str] | None = typer.Option(
        None,
        "--bulks",
        help="Catalogue bulks, comma-separated or repeated (Pt3Sn, NiGa) or structure files whose slabs "
        "come from catscreen's enumerate step: every facet up to --max-index, every "
        "termination, nudged placements of library adsorbates.",
    ),
    max_index: int = typer.Option(1, "--max-index", help="Largest Miller index for --bulks."),
    min_index: int = typer.Option(
        1,
        "--min-index",
        help="Skip --bulks facets whose largest index is below this (2: stepped facets only).",
    ),
    facets: list[str] | None = typer.Option(
        None,
        "--facets",
        help="Only these facets of --bulks, comma-separated or repeated (111,100,110; "
        "hexagonal 0001).",
    ),
    min_slab_size: float | None = typer.Option(
        None,
        "--min-slab-size",
        help="Slab thickness (A) of --bulks slabs, as enumerate's option (default 4.5; "
        "enumerate's: 7).",
    ),
    min_ab: float | None = typer.Option(
        None,
        "--min-ab",
        help="Smallest in-plane cell length (A) of --bulks slabs, as enumerate's (default 5; "
        "enumerate's: 8).",
    ),
    avoid: Path | None = typer.Option(
        None,
        "--avoid",
        help="File of HOST FACET ADSORBATE lines never drawn (a benchmark's held-out systems: "
        "benchmarks/accuracy.py --write-held-out).",
    ),
    alloys: list[str] | None = typer.Option(
        None,
        "--alloys",
        help="HOST:GUEST alloy slabs, comma-separated or repeated, or 'none' (default: the built-in four, "
        "none when --metals is given).",
    ),
    large: bool = typer.Option(
        True, "--large/--no-large", help="Also the 3x3x3 lower-coverage cells."
    ),
    only_large: bool = typer.Option(
        False,
        "--only-large",
        help="Only the 3x3x3 cells of --metals (and gas): no bulk, 2x2 slabs or alloys, for a "
        "pass that adds lower coverage beside an earlier one.",
    ),
    exclude_from: Path | None = typer.Option(
        None,
        "--exclude-from",
        help="Folder of an earlier pass (structures or labels), made with the same slab "
        "settings (slabs are matched by their sid): the adsorbates it placed on a slab are not "
        "drawn again for that slab; enumerated (--bulks) shards also skip the bulk and clean "
        "slabs it has.",
    ),
    adsorbates: list[str] | None = typer.Option(
        None, "--adsorbates", help="Adsorbates, comma-separated or repeated."
    ),
    limit: int | None = typer.Option(None, "--limit", help="Only the first N shards."),
    relax_steps: int = typer.Option(
        8, "--relax-steps", help="Teacher relaxation steps per placement."
    ),
    snapshot_every: int = typer.Option(
        3, "--snapshot-every", help="Keep every n-th relaxation step."
    ),
    adsorbates_per_slab: int = typer.Option(
        4, "--adsorbates-per-slab", help="Adsorbates drawn for each slab."
    ),
    sites_per_adsorbate: int = typer.Option(
        1, "--sites-per-adsorbate", help="Sites drawn for each of those adsorbates."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of every draw, rattle and MD run."),
    explorer: str | None = typer.Option(
        None,
        "--explorer",
        help="A model (bundled, PATH): relax nudged placements with it instead of the teacher "
        "and keep its path and minimum, for --teacher to label (active learning).",
    ),
) -> None:
    """Make training structures (gas, bulk, slabs, adsorbate placements); resumable.

    Gas molecules, strained/rattled/MD bulk, clean slabs and adsorbate placements with
    snapshots along short CHGNet-PBE relaxations, rattles and short MD.

    Shards go to OUT/structures/*.extxyz.gz and, with --teacher, OUT/<teacher>/*.extxyz.gz.
    Resumable: a rerun skips every shard file that exists, if made with the same options
    (each shard's are kept in OUT/structures/<shard>.settings.json; other options are
    refused). One torch thread unless CATSCREEN_THREADS says otherwise.
    """
    from dataclasses import replace

    from catscreen.build.slabs import parse_miller
    from catscreen.cli.common import split_csv
    from catscreen.training.generate import (
        GenerateSettings,
        generate,
        parse_alloys,
        read_avoid,
        thread_budget,
    )

    # repeated list options join as one comma list (a str option kept the last one silently)
    metals, bulks, facets, alloys, adsorbates = (
        ",".join(v) if v else None for v in (metals, bulks, facets, alloys, adsorbates)
    )
    if out_arg is not None and out_option is not None and out_arg != out_option:
        raise CatscreenError(f"two output folders, OUT {out_arg} and --out {out_option}: give one")
    out = out_option or out_arg or Path("data/training/teacher")
    if limit is not None and limit < 0:
        raise CatscreenError(f"--limit must be >= 0, not {limit}")
    if only_large and alloys and alloys.strip().lower() != "none":  # no alloy cell is made
        raise CatscreenError("--only-large makes no alloy slabs: leave out --alloys")
    enum_only = {
        "--facets": facets is not None, "--min-slab-size": min_slab_size is not None,
        "--min-ab": min_ab is not None, "--max-index": max_index != 1, "--min-index": min_index != 1,
    }  # fmt: skip
    if not bulks and any(enum_only.values()):  # the ASE-builder shards have fixed facets/cells
        given = ", ".join(k for k, v in enum_only.items() if v)
        raise CatscreenError(f"{given}: only --bulks slabs take them; give --bulks")
    from catscreen.build.slabs import MAX_LENGTH  # pymatgen: loaded by the commands using it

    for option, size in (("--min-slab-size", min_slab_size), ("--min-ab", min_ab)):
        if size is not None and not 0 < size <= MAX_LENGTH:  # else pydantic's traceback, late
            raise CatscreenError(f"{option} must be a length in (0, {MAX_LENGTH:g}] A, not {size}")
    thread_budget()
    settings = GenerateSettings(
        seed=seed,
        relax_steps=relax_steps,
        snapshot_every=snapshot_every,
        adsorbates_per_slab=adsorbates_per_slab,
        sites_per_adsorbate=sites_per_adsorbate,
        large_cells=large,
        small_cells=not only_large,
        exclude_from=str(exclude_from or ""),
        explorer=explorer or "",
        enum_max_index=max_index,
        enum_min_index=min_index,
        enum_facets=tuple(parse_miller(f) for f in split_csv(facets)) if facets else (),
        avoid=read_avoid(avoid) if avoid else frozenset(),
    )
    if metals:
        chosen = () if metals.strip().lower() == "none" else tuple(split_csv(metals))
        settings = replace(settings, metals=chosen, alloys=())
    if bulks:
        settings = replace(settings, bulks=tuple(split_csv(bulks)))
    if min_slab_size is not None:  # else GenerateSettings' own default
        settings = replace(settings, enum_min_slab_size=min_slab_size)
    if min_ab is not None:
        settings = replace(settings, enum_min_ab=min_ab)
    if alloys:
        settings = replace(settings, alloys=parse_alloys(alloys))
    if adsorbates:
        settings = replace(settings, adsorbates=tuple(split_csv(adsorbates)))
    paths = generate(out, settings, teacher, limit, log=lambda m: console.print(m, highlight=False))
    console.print(f"{len(paths)} shards under {out}")


@data_app.command("label")
@cli_errors
def label_command(
    input_path: Path = typer.Argument(
        ..., help="Structures to label: extxyz, or a folder of extxyz shards (read in name order)."
    ),
    out: Path = output_option(..., "--out", "-o", help="Labelled frames (extxyz; .gz compresses)."),
    dft: str | None = typer.Option(None, "--dft", help="Real DFT labeller: gpaw."),
    teachers: list[str] = typer.Option(
        [],
        "--teacher",
        help="Teacher labeller: chgnet-pbe or chgnet-r2scan (CHGNet weights); one per run.",
    ),
    spin: str | None = typer.Option(
        None,
        "--spin",
        help="DFT spin treatment: off (restricted, the default) or on (polarised). Teacher "
        "labels take the spin of --spin auto.",
    ),
    ecut: float | None = typer.Option(
        None, "--encut", "--ecut", help="DFT plane-wave cutoff (eV; 350), as validate's --encut."
    ),
    kpt_density: float | None = typer.Option(
        None, "--kpt-density", help="DFT k-points per reciprocal Angstrom; 1 along vacuum (2)."
    ),
    smearing: float | None = typer.Option(
        None, "--smearing", help="DFT Fermi-Dirac width (eV; 0.1)."
    ),
    work: Path | None = output_option(
        None,
        "--work",
        help="DFT folder for per-structure results (default OUT.parts); a rerun skips what is "
        "there.",
    ),
) -> None:
    """Label structures with energies, forces, stress (bulk) and magnetic moments (spin on).

    --dft is resumable: each structure's result is written on its own as soon as it is done,
    and a rerun with the same OUT continues where a killed run stopped. --teacher labels every
    structure in one pass and writes OUT at the end, so a killed run starts over; for many
    structures, split the input or use `data generate --teacher`, which labels and keeps one
    shard at a time (and also writes a tenth of the spin-off frames again as spin on, so the
    spin-on context learns every element; label writes each structure once).
    """
    if len(teachers) > 1:  # a str option kept the last one without a word
        raise CatscreenError(
            "one --teacher per run (each fidelity to its own file); `data generate --teacher A "
            "--teacher B` labels with both"
        )
    teacher = teachers[0] if teachers else None
    if (dft is None) == (teacher is None):
        raise CatscreenError(
            "choose one labeller: --dft gpaw or --teacher chgnet-pbe|chgnet-r2scan"
        )
    if out.is_dir():  # found only when the labels are written, after all the labelling
        raise CatscreenError(f"--out {out} is a folder; give a file (e.g. labels.extxyz.xz)")
    from catscreen.training.datasets import EXTXYZ_SUFFIXES

    if not out.name.endswith(EXTXYZ_SUFFIXES):  # else extxyz text under any name (l.db), which
        # train and evaluate then refuse or misread
        raise CatscreenError(
            f"--out {out.name}: labels are written as extxyz; name it {' / '.join(EXTXYZ_SUFFIXES)}"
        )
    from catscreen.io import check_writable, is_same_file

    if is_same_file(out, input_path):  # GPAW labels replaced by CHGNet's, exit 0
        raise CatscreenError(f"--out {out} is the input {input_path} (left unchanged): write apart")
    if input_path.is_dir() and out.resolve().is_relative_to(input_path.resolve()):
        raise CatscreenError(  # a rerun would label its own labels as structures
            f"--out {out} is inside the input folder {input_path}: write apart"
        )
    check_writable(out)  # likewise
    settings = {"ecut": ecut, "kpt_density": kpt_density, "smearing": smearing}
    if teacher is not None:
        given = [
            f"--{k.replace('_', '-')}" for k, v in {**settings, "spin": spin, "work": work}.items()
            if v is not None
        ]  # fmt: skip
        if given:  # they would be ignored: the teacher has no such settings
            raise CatscreenError(
                f"{', '.join(given)} apply to --dft only; teacher labels take the spin of "
                "--spin auto (see the datasheet)"
            )
        _label_teacher(teacher, input_path, out)
        return
    _label_dft(
        dft,
        spin or "off",
        input_path,
        out,
        work,
        **{k: v for k, v in settings.items() if v is not None},
    )
