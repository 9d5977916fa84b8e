"""The DFT calculations behind flagged rows: each adslab, its clean slab and its gas molecules.

A DFT adsorption energy needs the same three kinds of total energy as the ML one, so the
clean slabs and gas references of the flagged rows are calculations too (each once).
flagged.parquet carries their structures (`slab_structure`, `reference_structures`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from catscreen.dft.gpaw import write_gpaw_script
from catscreen.dft.settings import DftSettings, gas_spin, prepare
from catscreen.dft.vasp import write_vasp_inputs
from catscreen.errors import CatscreenError
from catscreen.io import atomic_folder

FLAGGED_REQUIRED = (
    "config_id",
    "slab_config_id",
    "spin",
    "e_ads",
    "final_structure",
    "slab_structure",
    "reference_weights",
    "reference_structures",
)
ENGINES = ("vasp", "gpaw")


@dataclass(frozen=True)
class DftTask:
    name: str  # folder name and key: config id, slab config id, or gas-<molecule>
    kind: str  # adslab | slab | gas
    spin: str
    structure: str


def gas_task_name(molecule: str) -> str:
    """One calculation per molecule, in its own ground-state spin (settings.gas_unpaired)."""
    return f"gas-{molecule}"


def dft_tasks(flagged: pd.DataFrame) -> list[DftTask]:
    """Unique calculations for the flagged rows, adslabs first."""
    missing = [c for c in FLAGGED_REQUIRED if c not in flagged.columns]
    if missing:
        raise CatscreenError(
            f"not a flagged table from `catscreen rank`: lacks column(s) {', '.join(missing)}"
        )
    tasks: dict[str, DftTask] = {}
    for row in flagged.itertuples():
        tasks.setdefault(
            row.config_id, DftTask(row.config_id, "adslab", row.spin, row.final_structure)
        )
    for row in flagged.itertuples():
        tasks.setdefault(
            row.slab_config_id, DftTask(row.slab_config_id, "slab", row.spin, row.slab_structure)
        )
        for molecule, text in json.loads(row.reference_structures).items():
            name = gas_task_name(molecule)
            tasks.setdefault(name, DftTask(name, "gas", gas_spin(text), text))
    return list(tasks.values())


def check_dft_folder(out: Path) -> None:
    """DFT inputs go to a new or empty folder: one holding other calculations (an older set of
    flags, or DFT already run there) is neither mixed in nor overwritten."""
    if out.exists() and not out.is_dir():
        raise CatscreenError(f"DFT inputs: {out} is a file; give a folder")
    if out.is_dir() and any(out.iterdir()):
        raise CatscreenError(
            f"DFT inputs: {out} is not empty; give a new folder (calculations in it are never "
            "overwritten or mixed with a new set of flags)"
        )


def write_dft_inputs(
    flagged: pd.DataFrame, engine: str, out_dir: str | Path, settings: DftSettings
) -> list[Path]:
    """One folder per calculation under `out_dir` (VASP inputs or a GPAW script), all or none:
    written beside it and renamed into place."""
    if engine not in ENGINES:
        raise CatscreenError(f"unknown DFT engine {engine!r}; expected one of {', '.join(ENGINES)}")
    out = Path(out_dir)
    check_dft_folder(out)
    tasks = dft_tasks(flagged)
    with atomic_folder(out) as tmp:
        for task in tasks:
            folder = tmp / task.name
            if engine == "vasp":
                atoms = prepare(task.structure, task.kind, task.spin, settings)
                write_vasp_inputs(atoms, task.spin, task.kind, settings, folder, task.name)
            else:
                write_gpaw_script(task.structure, task.kind, task.spin, settings, folder, task.name)
    return [out / task.name for task in tasks]
