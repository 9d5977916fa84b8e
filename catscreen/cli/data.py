"""`catscreen data`: make training data (generate structures, label them) for `catscreen train`.

One sub-app; each command is a thin wrapper over `catscreen.training`. `label` takes exactly one
labeller: `--dft gpaw` (real DFT, spin off or on) or a teacher model.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from catscreen.cli.common import cli_errors, console
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
    from catscreen.training.dft_labels import GpawSettings, collect, label_structures

    if code not in DFT_CODES:
        raise CatscreenError(f"unknown DFT code {code!r}; expected one of {', '.join(DFT_CODES)}")
    if spin not in ("off", "on"):
        raise CatscreenError(f"--spin must be off or on, not {spin!r}")
    try:
        import gpaw  # noqa: F401
    except ImportError:
        raise CatscreenError("GPAW is not installed: pip install 'catscreen[dft]'") from None
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    structures = read_structures(input_path)
    parts = work or out.with_name(out.name.split(".")[0] + ".parts")
    done = label_structures(
        structures,
        [spin],
        parts,
        GpawSettings(**settings),
        log=lambda m: console.print(m, highlight=False),
    )
    n = collect(done, out)
    console.print(f"{n} of {len(structures)} structures labelled (converged) -> {out}")


@data_app.command("label")
@cli_errors
def label_command(
    input_path: Path = typer.Argument(..., help="Structures to label (extxyz)."),
    out: Path = typer.Option(..., "--out", "-o", help="Labelled frames (extxyz; .gz compresses)."),
    dft: str | None = typer.Option(None, "--dft", help="Real DFT labeller: gpaw."),
    spin: str = typer.Option(
        "off", "--spin", help="DFT spin treatment: off (restricted) or on (polarised)."
    ),
    ecut: float = typer.Option(350.0, "--ecut", help="Plane-wave cutoff (eV)."),
    kpt_density: float = typer.Option(
        2.0, "--kpt-density", help="k-points per reciprocal Angstrom; 1 along vacuum."
    ),
    smearing: float = typer.Option(0.1, "--smearing", help="Fermi-Dirac width (eV)."),
    work: Path | None = typer.Option(
        None,
        "--work",
        help="Folder for per-structure results (default OUT.parts); a rerun skips what is there.",
    ),
) -> None:
    """Label structures with energies, forces, stress (bulk) and magnetic moments (spin on).

    Resumable: each structure's result is written on its own as soon as it is done, and a rerun
    with the same OUT continues where a killed run stopped.
    """
    if dft is None:
        raise CatscreenError("choose a labeller: --dft gpaw")
    _label_dft(
        dft, spin, input_path, out, work, ecut=ecut, kpt_density=kpt_density, smearing=smearing
    )
