"""The batched relaxation engine: many structures, one model call per step.

Structures in a batch advance together; each keeps its own optimizer state and leaves the
batch when it converges, fails or runs out of steps, so the model call shrinks as the batch
empties. Everything here is plain data in, plain data out (work items and result rows as
dicts of JSON types), so a jobflow Job can carry it to any machine.

Explosion guards (a row fails with the reason, the rest of the batch goes on):
- a non-finite energy or force from the model;
- any force above FORCE_LIMIT (1e3 eV/A: far beyond any physical contact, well below overflow);
- two atoms closer than COLLAPSE_RATIO (0.5) x the sum of their covalent radii: a hole in the
  potential (no real structure comes near it; H-H in H2 is 1.19x), caught while it pulls the
  atoms together and before the forces diverge;
- an adsorbate atom (tag 2) farther than ISOLATION_LIMIT (10 A) from every other atom
  (minimum image): the molecule broke apart or desorbed into the vacuum;
- an atom that crossed the middle of the vacuum along z (it came nearer the slab's periodic
  image than the slab); the cell's own boundary failed slabs whose bottom layer sits at z = 0.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.constraints import FixAtoms, FixCartesian
from ase.data import covalent_radii
from ase.geometry import get_distances

from catscreen import code_version
from catscreen.errors import CatscreenError
from catscreen.io import atoms_from_text, atoms_to_text
from catscreen.model.api import Model, ModelInfo, Prediction, mid_vacuum_z, slab_heights
from catscreen.workflow.optimizers import make_optimizer

FORCE_LIMIT = 1.0e3  # eV/A
ISOLATION_LIMIT = 10.0  # A
COLLAPSE_RATIO = 0.5  # of the covalent radii sum

WorkItem = dict[
    str, Any
]  # config_id, meta (manifest columns), structure, spin, spin_mode, fidelity
Row = dict[str, Any]


def fixed_mask(atoms: Atoms) -> np.ndarray:
    """[n_atoms, 3]: the Cartesian directions that must not move.

    FixAtoms fixes whole atoms, FixCartesian single directions (extxyz stores any per-direction
    constraint as a 3-column move_mask, and ASE reads every constraint back as FixCartesian);
    tag 0 fixes whole atoms when the structure is tagged. Tags are only trusted when some atom
    has a non-zero tag; an untagged user structure (all tags 0 by default) would otherwise be
    frozen entirely. Any other constraint is refused rather than ignored.
    """
    mask = np.zeros((len(atoms), 3), dtype=bool)
    for constraint in atoms.constraints:
        if isinstance(constraint, FixAtoms):
            mask[constraint.get_indices()] = True
        elif isinstance(constraint, FixCartesian):
            mask[constraint.index] |= np.asarray(constraint.mask, dtype=bool)
        else:
            raise CatscreenError(
                f"constraint {type(constraint).__name__} is not supported "
                "(only FixAtoms, FixCartesian and tag 0)"
            )
    tags = atoms.get_tags()
    if np.any(tags != 0):
        mask[tags == 0] = True
    return mask


def tag_problem(atoms: Atoms) -> str:
    """Why the tags cannot be Open Catalyst's (0 fixed subsurface, 1 surface, 2 adsorbate);
    '' when they can. ASE's slab builders number layers 1..n from the top and `add_adsorbate`
    gives the adsorbate tag 0: read as OC tags that froze the adsorbate in place, and the row
    still converged (its force is zeroed). No subsurface atom may sit above every surface one.
    """
    tags = atoms.get_tags()
    if not tags.any():
        return ""
    other = sorted(set(tags.tolist()) - {0, 1, 2})
    if other:
        return f"tags {', '.join(map(str, other))} besides 0/1/2"
    z = slab_heights(atoms)
    if (tags == 0).any() and (tags == 1).any() and z[tags == 0].max() > z[tags == 1].max():
        return "a tag-0 (fixed subsurface) atom above every tag-1 (surface) atom"
    return ""


def _mobile_distances(atoms: Atoms) -> tuple[np.ndarray, np.ndarray]:
    """The atoms that move (tag 1/2; all when untagged) and their distances to every atom, self
    excluded (inf). Periodic directions by rounding fractional differences: never shorter than
    the minimum image, so a bound the exact check refines only when needed. Every step, every
    structure: the collapse and isolation checks share it."""
    tags = atoms.get_tags()
    rows = np.flatnonzero(tags != 0) if tags.any() else np.arange(len(atoms))
    diff = atoms.positions[rows, None, :] - atoms.positions[None, :, :]
    pbc = np.asarray(atoms.pbc, dtype=bool)
    if pbc.any() and atoms.cell.rank == 3:
        frac = diff @ np.linalg.inv(atoms.cell.array)
        frac[..., pbc] -= np.round(frac[..., pbc])
        diff = frac @ atoms.cell.array
    dist = np.linalg.norm(diff, axis=-1)
    dist[np.arange(len(rows)), rows] = np.inf
    return rows, dist


def _closest(atoms: Atoms, rows: np.ndarray, dist: np.ndarray) -> tuple[float, int, int, float]:
    radii = covalent_radii[atoms.numbers]
    ratio = dist / (radii[rows, None] + radii[None, :])
    r, j = divmod(int(np.argmin(ratio)), len(atoms))
    return float(ratio[r, j]), int(rows[r]), j, float(dist[r, j])


def closest_contact(atoms: Atoms) -> tuple[float, int, int, float]:
    """(distance / covalent radii sum, i, j, distance) of the closest pair with a moving atom."""
    if len(atoms) < 2:
        return math.inf, 0, 0, math.inf
    return _closest(atoms, *_mobile_distances(atoms))


def explosion_reason(
    atoms: Atoms,
    initial_z: np.ndarray | None,
    pred: Prediction,
    initial_contact: float = math.inf,
) -> str:
    """Why this structure is no longer physical ('' when it is fine). `initial_contact`: the
    start's closest_contact ratio; a start already closer than COLLAPSE_RATIO fails only when
    its atoms come closer still (the model may push them apart)."""
    if not math.isfinite(pred.energy):
        return "exploded: non-finite energy from the model"
    forces = np.asarray(pred.forces, dtype=float)
    if not np.all(np.isfinite(forces)):
        return "exploded: non-finite forces from the model"
    fmax_all = float(np.linalg.norm(forces, axis=1).max()) if len(forces) else 0.0
    if fmax_all > FORCE_LIMIT:
        return f"exploded: force {fmax_all:.3g} eV/A above the {FORCE_LIMIT:g} eV/A limit"
    if len(atoms) > 1:  # collapse and isolation
        rows, bound = _mobile_distances(atoms)
        ratio, i, j, d = _closest(atoms, rows, bound)
        if ratio < min(COLLAPSE_RATIO, initial_contact):
            return (
                f"exploded: atoms {i} and {j} collapsed to {d:.2f} A "
                f"(below {COLLAPSE_RATIO:g}x their covalent radii)"
            )
        ads = np.flatnonzero(atoms.get_tags() == 2)  # a subset of rows: tag 2 is not 0
        if len(ads) and bound[np.isin(rows, ads)].min(axis=1).max() > ISOLATION_LIMIT:
            _, dist = get_distances(
                atoms.positions[ads], atoms.positions, cell=atoms.cell, pbc=atoms.pbc
            )
            dist[np.arange(len(ads)), ads] = np.inf
            nearest = dist.min(axis=1)
            if nearest.max() > ISOLATION_LIMIT:
                i = int(ads[int(nearest.argmax())])
                return (
                    f"exploded: adsorbate atom {i} is {nearest.max():.1f} A from every other atom "
                    f"(limit {ISOLATION_LIMIT:g} A)"
                )
    if initial_z is not None:
        z = atoms.get_scaled_positions(wrap=False)[:, 2] - initial_z
        left = np.flatnonzero((z < 0.0) | (z >= 1.0))
        if len(left):
            return f"exploded: atom {int(left[0])} crossed the vacuum along z (left the cell)"
    return ""


def _predict(
    model: Model, structures: Sequence[Atoms], spins: Sequence[str], fidelities: Sequence[str]
) -> list[Prediction | str]:
    """One batched call; if it raises, retry one by one so a single bad structure fails alone."""
    try:
        preds = model.predict(structures, spins, fidelities)
        if len(preds) != len(structures):
            raise RuntimeError(f"model returned {len(preds)} predictions for {len(structures)}")
        return list(preds)
    except Exception as exc:
        if len(structures) == 1:
            return [f"model error: {type(exc).__name__}: {exc}"]
    out: list[Prediction | str] = []
    for atoms, spin, fid in zip(structures, spins, fidelities, strict=True):
        out.extend(_predict(model, [atoms], [spin], [fid]))
    return out


def result_row(
    item: WorkItem,
    info: ModelInfo,
    status: str,
    reason: str = "",
    *,
    final: Atoms | None = None,
    pred: Prediction | None = None,
    fmax: float = math.nan,
    steps: int = 0,
    wall_time: float = 0.0,
) -> Row:
    """One results.parquet row (catscreen.schema.RESULT_COLUMNS) for a work item."""
    energy = energy_std = math.nan
    heads: list[float] | None = None
    if pred is not None and status != "failed":
        energy, energy_std = float(pred.energy), float(pred.energy_std)
        if pred.energy_heads is not None:
            heads = [float(e) for e in pred.energy_heads]
    return {
        **item["meta"],
        "status": status,
        "reason": reason,
        "energy": energy,
        "energy_std": energy_std,
        "energy_heads": heads,
        "fmax": float(fmax),
        "steps": int(steps),
        "spin": item["spin"],
        "spin_mode": item["spin_mode"],
        "fidelity": item["fidelity"],
        "model": info.name,
        "model_version": info.version,
        "catscreen": code_version(),
        "domain": item.get("domain", ""),
        "initial_structure": item["structure"],
        "final_structure": atoms_to_text(final) if final is not None else "",
        "wall_time": float(wall_time),
    }


def _final_atoms(atoms: Atoms, pred: Prediction | None) -> Atoms:
    """The final structure with its energy, forces and predicted magmoms attached for extxyz."""
    final = atoms.copy()
    if pred is not None and np.all(np.isfinite(pred.forces)) and math.isfinite(pred.energy):
        results: dict[str, Any] = {"energy": float(pred.energy), "forces": np.asarray(pred.forces)}
        if pred.magmoms is not None:
            results["magmoms"] = np.asarray(pred.magmoms, dtype=float)
        final.calc = SinglePointCalculator(final, **results)
    return final


def relax_items(
    model: Model,
    items: Sequence[WorkItem],
    optimizer: str = "fire",
    fmax: float = 0.05,
    steps: int = 300,
) -> list[Row]:
    """Relax a batch of work items together; one row per item, in input order.

    Forces along fixed directions (`fixed_mask`) are zeroed before the optimizer and those
    displacements are masked, so fixed atoms stay exactly where they were; the cell never
    changes; convergence is max |F| <= fmax over what is free to move. `wall_time` of a row is its share of every step it took
    part in (step time / structures in that step), so a batch's rows sum to its wall time.
    """
    info = model.info
    rows: list[Row | None] = [None] * len(items)
    structures: list[Atoms] = []
    fixed: list[np.ndarray] = []
    active: list[int] = []
    for k, item in enumerate(items):
        atoms = atoms_from_text(item["structure"])
        structures.append(atoms)
        fixed.append(np.zeros((len(atoms), 3), dtype=bool))
        try:
            fixed[k] = fixed_mask(atoms)
        except CatscreenError as exc:
            rows[k] = result_row(item, info, "failed", str(exc))
            continue
        try:
            info.check_elements(atoms)
            info.check_context(item["spin"], item["fidelity"])
        except Exception as exc:
            rows[k] = result_row(item, info, "failed", f"model cannot run it: {exc}")
            continue
        active.append(k)
    initial_z = [mid_vacuum_z(a) if a.cell.rank == 3 else None for a in structures]
    initial_contact = [closest_contact(a)[0] for a in structures]
    opt = make_optimizer(optimizer, [len(a) for a in structures])
    taken = np.zeros(len(items), dtype=int)
    share = np.zeros(len(items))

    while active:
        t0 = time.perf_counter()
        preds = _predict(
            model,
            [structures[k] for k in active],
            [items[k]["spin"] for k in active],
            [items[k]["fidelity"] for k in active],
        )
        stepping: list[int] = []
        step_forces: list[np.ndarray] = []
        for k, pred in zip(active, preds, strict=True):
            atoms, item = structures[k], items[k]
            if isinstance(pred, str):  # the input's own calculator (a file's DFT labels) dropped
                rows[k] = result_row(
                    item, info, "failed", pred, final=_final_atoms(atoms, None), steps=taken[k]
                )
                continue
            reason = explosion_reason(atoms, initial_z[k], pred, initial_contact[k])
            if reason:
                rows[k] = result_row(
                    item, info, "failed", reason, final=_final_atoms(atoms, None), steps=taken[k]
                )
                continue
            forces = np.array(pred.forces, dtype=float)
            forces[fixed[k]] = 0.0  # as ASE's constraints do: fixed directions feel no force
            fnow = float(np.linalg.norm(forces, axis=1).max()) if len(forces) else 0.0
            if (fnow <= fmax or taken[k] >= steps) and initial_contact[k] < COLLAPSE_RATIO:
                ratio, i, j, d = closest_contact(atoms)
                if ratio < COLLAPSE_RATIO:  # started inside the potential's hole, stayed there
                    reason = (
                        f"exploded: atoms {i} and {j} end {d:.2f} A apart (below "
                        f"{COLLAPSE_RATIO:g}x their covalent radii; the start was as close)"
                    )
                    rows[k] = result_row(
                        item, info, "failed", reason, final=_final_atoms(atoms, None),
                        steps=taken[k],
                    )  # fmt: skip
                    continue
            if fnow <= fmax or taken[k] >= steps:
                status = "converged" if fnow <= fmax else "not_converged"
                why = "" if fnow <= fmax else f"fmax {fnow:.3g} > {fmax:g} after {steps} steps"
                rows[k] = result_row(
                    item, info, status, why, final=_final_atoms(atoms, pred), pred=pred,
                    fmax=fnow, steps=taken[k],
                )  # fmt: skip
                continue
            stepping.append(k)
            step_forces.append(forces)
        if stepping:
            moves = opt.step(stepping, [structures[k].positions for k in stepping], step_forces)
            for k, dr in zip(stepping, moves, strict=True):
                dr[fixed[k]] = 0.0
                structures[k].positions = structures[k].positions + dr
                taken[k] += 1
        share[active] += (time.perf_counter() - t0) / len(active)
        active = stepping

    out: list[Row] = []
    for k, row in enumerate(rows):
        assert row is not None
        row["wall_time"] = float(share[k])
        out.append(row)
    return out
