"""The DFT calculations behind flagged rows: each adslab, its clean slab and its gas molecules.

A DFT adsorption energy needs the same three kinds of total energy as the ML one, so the
clean slabs and gas references of the flagged rows are calculations too (each once).
flagged.parquet carries their structures (`slab_structure`, `reference_structures`); the
folder's manifest.json says which calculations make each E_ads, so the set stands alone.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from catscreen.dft.gpaw import write_gpaw_script
from catscreen.dft.settings import (
    ENCUT_DEFAULTS,
    DftSettings,
    gas_spin,
    prepare,
    slab_sublattices,
    surface_spin,
)
from catscreen.dft.vasp import hubbard_note, vasp_cutoff, write_vasp_inputs
from catscreen.errors import CatscreenError, first_line
from catscreen.io import atomic_folder, atoms_from_text

MANIFEST = "manifest.json"
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
    surface: tuple[str, ...] = ()  # the clean slab's elements (an adslab's too): its +U


def gas_task_name(molecule: str) -> str:
    """One calculation per molecule, in its own ground-state spin (settings.gas_unpaired)."""
    return f"gas-{molecule}"


def slab_task_names(flagged: pd.DataFrame) -> list[str]:
    """Each row's clean-slab calculation: one per spin, since rows of both contexts (a
    spin-off relax appended to a spin-on one) share a slab id, and the first row's spin
    served both; a slab flagged in one context keeps its id as the name."""
    both = flagged.groupby("slab_config_id").spin.transform("nunique") > 1
    return [
        f"{sid}-spin-{spin}" if split else str(sid)
        for sid, spin, split in zip(flagged.slab_config_id, flagged.spin, both, strict=True)
    ]


def dft_tasks(flagged: pd.DataFrame) -> list[DftTask]:
    """Unique calculations for the flagged rows, adslabs first."""
    missing = [c for c in FLAGGED_REQUIRED if c not in flagged.columns]
    if missing:
        raise CatscreenError(
            f"not a flagged table from `catscreen rank`: lacks column(s) {', '.join(missing)}"
        )
    tasks: dict[str, DftTask] = {}
    for row in flagged.itertuples():
        if row.spin not in ("on", "off"):  # anything else would run spin-restricted silently
            raise CatscreenError(f"flagged row {row.config_id}: spin {row.spin!r}, not on or off")
        for column in ("config_id", "slab_config_id"):
            _folder_name(getattr(row, column), f"{column} of flagged row {row.Index}")
        for column in ("final_structure", "slab_structure"):
            _parsed(getattr(row, column), f"{column} of {row.config_id}", periodic=True)
        _number(row.e_ads, f"flagged row {row.config_id}: e_ads")
        structure = slab_sublattices(row.final_structure, row.slab_structure)
        spin = surface_spin(row.spin, row.final_structure)
        tasks.setdefault(
            row.config_id, DftTask(row.config_id, "adslab", spin, structure, _elements(row))
        )
    for row, name in zip(flagged.itertuples(), slab_task_names(flagged), strict=True):
        if tasks.get(name, DftTask(name, "slab", "", "")).kind != "slab":
            raise CatscreenError(f"flagged row {row.config_id}: its slab has the id of an adslab")
        spin = surface_spin(row.spin, row.slab_structure)
        tasks.setdefault(name, DftTask(name, "slab", spin, row.slab_structure, _elements(row)))
        for molecule, text in _references(row).items():
            name = gas_task_name(molecule)
            tasks.setdefault(name, DftTask(name, "gas", gas_spin(text), text))
    return list(tasks.values())


def _elements(row: object) -> tuple[str, ...]:
    """The elements of a flagged row's clean slab: what decides its +U, and its adslab's."""
    slab = atoms_from_text(row.slab_structure)  # type: ignore[attr-defined]
    return tuple(sorted(set(slab.get_chemical_symbols())))


def _folder_name(value: object, what: str) -> None:
    """Ids name the calculation folders: one that is empty or a path would write elsewhere."""
    if not isinstance(value, str) or value.strip() in ("", ".", "..") or "/" in value:
        raise CatscreenError(f"{what} is {value!r}, not an id that can name a folder")


def _references(row: object) -> dict[str, str]:
    """A row's gas structures, checked against its weights: every molecule weighed has one."""
    where = f"flagged row {row.config_id}"  # type: ignore[attr-defined]
    cells = {}
    for column in ("reference_weights", "reference_structures"):
        try:
            cells[column] = json.loads(getattr(row, column))
        except (TypeError, ValueError):
            cells[column] = None
        if not isinstance(cells[column], dict):
            raise CatscreenError(f"{where}: {column} is not a JSON mapping")
    weights, structures = cells["reference_weights"], cells["reference_structures"]
    for molecule, weight in weights.items():  # read into the DFT E_ads after GPAW has run
        _number(weight, f"{where}: reference_weights {molecule}")
    missing = sorted(set(weights) - set(structures))
    if missing:
        raise CatscreenError(
            f"{where}: no structure for reference molecule(s) {', '.join(missing)}"
        )
    for molecule, text in structures.items():
        _parsed(text, f"{where}: reference structure {molecule}")
    return structures


def _number(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise CatscreenError(f"{what} is {value!r}, not a number")
    if not math.isfinite(float(value)):
        raise CatscreenError(f"{what} is {value!r}, not a finite number")


def _parsed(text: object, what: str, periodic: bool = False) -> None:
    """Readable, with atoms at finite positions, and (slabs) a full cell: else the writers
    fail mid-way (a singular cell) or write `nan` into the inputs."""
    if not isinstance(text, str):
        raise CatscreenError(f"{what} is missing")
    try:
        atoms = atoms_from_text(text)
    except Exception as exc:  # ASE raises many types for text that is not extxyz
        raise CatscreenError(f"{what} is not extxyz: {first_line(exc)}") from exc
    if len(atoms) == 0 or not np.isfinite(atoms.positions).all():
        raise CatscreenError(f"{what} has no atoms or non-finite positions")
    if periodic and atoms.cell.rank < 3:
        raise CatscreenError(f"{what} has no 3D cell (a slab needs one, vacuum included)")


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


def fidelity_functional(fidelity: str) -> str:
    """The functional a fidelity's name says (chgnet-r2scan: MP's r2SCAN), PBE otherwise."""
    name = fidelity.lower()
    return "r2SCAN" if "r2scan" in name else "RPBE" if "rpbe" in name else "PBE"


def functional(settings: DftSettings, engine: str, fidelity: str) -> tuple[str, str | None]:
    """The functional of a set and why: "auto" follows the level of theory the candidates were
    relaxed at (r2SCAN rows got PBE inputs and compared across functionals); GPAW scripts stay
    GGA (r2SCAN did not converge with the libxc GPAW has here)."""
    wanted = fidelity_functional(fidelity) if settings.xc == "auto" else settings.xc
    if wanted == "r2SCAN" and engine == "gpaw":
        if settings.xc != "auto":
            raise CatscreenError(
                "GPAW scripts are written for PBE or RPBE; write VASP inputs for r2SCAN"
            )
        return "PBE", (
            f"GPAW scripts use PBE for candidates relaxed at fidelity {fidelity}: their DFT "
            "E_ads is PBE's (VASP inputs follow with r2SCAN)"
        )
    if settings.xc == "auto" and wanted != "PBE":
        return wanted, f"{engine} inputs use {wanted}, the level of theory of fidelity {fidelity}"
    return wanted, None


def _manifest(
    flagged: pd.DataFrame, engine: str, settings: DftSettings, folder: Path
) -> dict[str, object]:
    """Which calculations make each E_ads, the model's value beside it, and every file written
    with its hash (what a rerun may replace; anything else there is the user's)."""
    entries = []
    for row, slab in zip(flagged.itertuples(), slab_task_names(flagged), strict=True):
        weights = json.loads(row.reference_weights)
        entries.append(
            {
                "adslab": row.config_id,
                "slab": slab,
                "gas": {gas_task_name(m): w for m, w in weights.items()},
                # fixed reference potentials: no gas calculation, and their sum is on the
                # model's energy zero, not the DFT's: the user's own DFT values go there
                "model_reference_energy": None if weights else float(row.reference_energy),
                "spin": row.spin,  # the model's context; the DFT's of each part:
                "dft_spin": {
                    "adslab": surface_spin(row.spin, row.final_structure),
                    "slab": surface_spin(row.spin, row.slab_structure),
                },
                **{k: getattr(row, k) for k in ("candidate", "adsorbate", "site_type", "final_site_type")
                   if hasattr(row, k)},
                "model_e_ads": float(row.e_ads),
                "model_e_ads_std": float(getattr(row, "e_ads_std", math.nan)),
            }
        )  # fmt: skip
    first = flagged.iloc[0] if len(flagged) else {}
    return {
        "engine": engine,
        "xc": settings.xc,
        "encut_eV": settings.encut,
        "model": {k: str(first.get(k, "")) for k in ("model", "model_version", "fidelity")},
        "cells": CELLS,
        "e_ads": "E(adslab) - E(slab) - sum(weight * E(gas)); with fixed reference potentials "
        "(gas empty), minus your DFT's values of them instead (model_reference_energy is the "
        "model's sum, on its own energy zero). E: the total energy extrapolated to zero smearing "
        "(VASP's energy(sigma->0), GPAW's and ASE's get_potential_energy())",
        "adsorption": entries,
        "files": {
            f.relative_to(folder).as_posix(): _sha256(f)
            for f in sorted(folder.rglob("*"))
            if f.is_file()
        },
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:  # in chunks: a WAVECAR beside the inputs is gigabytes
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# what sets written before manifests hold: catscreen's own, whatever their contents
INPUT_NAMES = frozenset({"INCAR", "POSCAR", "KPOINTS", "POTCAR.symbols", "run_gpaw.py"})


def foreign_files(folder: Path) -> list[Path]:
    """Files under a folder of DFT sets (one per engine) that catscreen did not write, or that
    were changed since (outputs of calculations run there, edited inputs): what a rerun must
    keep. Only the files a manifest lists are read."""
    written: dict[Path, str | None] = {}
    for engine in (p for p in folder.iterdir() if p.is_dir()):
        try:
            files = json.loads((engine / MANIFEST).read_text())["files"]
            written.update({engine / name: digest for name, digest in files.items()})
        except FileNotFoundError:  # an older set: its input files by name
            written.update(
                {f: None for f in engine.glob("*/*") if f.is_file() and f.name in INPUT_NAMES}
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # a damaged manifest vouches for nothing
        written[engine / MANIFEST] = None
    return [
        f
        for f in sorted(folder.rglob("*"))
        if f.is_file() and (f not in written or written[f] not in (None, _sha256(f)))
    ]


# What the slabs' lattice is: each POSCAR and script holds the cell the model relaxed in
CELLS = (
    "slab cells are as enumerated, at the bulk's lattice constant as given (the library's are "
    "experimental: Pt 3.92 A, PBE's 3.97): for E_ads at your functional's own lattice constant, "
    "relax the bulk with it and scale each cell in-plane first (ISIF 0: the cell stays)"
)


def write_dft_inputs(
    flagged: pd.DataFrame,
    engine: str,
    out_dir: str | Path,
    settings: DftSettings,
    note: Callable[[str], None] = lambda _: None,
) -> list[Path]:
    """One folder per calculation under `out_dir` (VASP inputs or a GPAW script) and a
    manifest, all or none: written beside it and renamed into place. `note` hears of settings
    chosen for the set (the functional, a raised cutoff)."""
    if engine not in ENGINES:
        raise CatscreenError(f"unknown DFT engine {engine!r}; expected one of {', '.join(ENGINES)}")
    out = Path(out_dir)
    check_dft_folder(out)
    tasks = dft_tasks(flagged)
    fidelities = sorted(set(flagged.get("fidelity", pd.Series(dtype=str)).astype(str)))
    if len(fidelities) > 1:  # rank ranks one fidelity; a hand-made table may mix them
        raise CatscreenError(f"flagged rows of several fidelities ({', '.join(fidelities)})")
    xc, why = functional(settings, engine, fidelities[0] if fidelities else "")
    settings = replace(settings, xc=xc)
    if why is not None:
        note(why)
    raised = sorted(
        {t.name for t in tasks if t.kind != "gas" and t.spin == "on"}
        & set(flagged.loc[flagged.spin == "off", "config_id"].astype(str))
    )
    if raised:
        note(
            f"{len(raised)} spin-off adslab(s) with an odd electron count on a host that is "
            f"not all metal ({raised[0]}, ...) get spin-polarised inputs: restricted, an "
            "unpaired electron on an insulator (H on MgO) is not in its ground state "
            "(manifest.json: dft_spin)"
        )
    if with_u := "; ".join(
        sorted({", ".join(hubbard_note(t.surface, settings.xc)) for t in tasks} - {""})
    ):
        note(  # MP's values are VASP's: GPAW scripts run without them
            f"VASP inputs use MP's +U on oxide and fluoride surfaces ({with_u}), as the "
            "chgnet-pbe teacher's data"
            if engine == "vasp"
            else "GPAW scripts carry no +U: on oxide and fluoride surfaces their E_ads is "
            f"plain PBE (MP's data, the chgnet-pbe teacher's, use {with_u})"
        )
    if engine == "vasp":
        elements = {el for t in tasks for el in atoms_from_text(t.structure).get_chemical_symbols()}
        encut, why = vasp_cutoff(elements, settings.cutoff("vasp"), settings.xc)
        settings = replace(settings, encut=encut)
        if why is not None:
            note(why)
    else:  # the manifest names the cutoff the scripts use
        if settings.encut is None:
            note(
                f"GPAW scripts use {ENCUT_DEFAULTS['gpaw']:g} eV plane waves: GPAW's setups need "
                f"more than VASP's {ENCUT_DEFAULTS['vasp']:g} (gas reaction energies with O, C or N "
                "moved 0.07-0.17 eV from 400 to 600 eV)"
            )
        settings = replace(settings, encut=settings.cutoff("gpaw"))
    with atomic_folder(out) as tmp:
        for task in tasks:
            folder = tmp / task.name
            if engine == "vasp":
                atoms = prepare(task.structure, task.kind, task.spin, settings)
                write_vasp_inputs(
                    atoms, task.spin, task.kind, settings, folder, task.name, task.surface
                )
            else:
                write_gpaw_script(task.structure, task.kind, task.spin, settings, folder, task.name)
        manifest = _manifest(flagged, engine, settings, tmp)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return [out / task.name for task in tasks]
