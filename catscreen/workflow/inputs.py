"""Turn what enumerate wrote (or a user's extxyz) into relaxation work items.

A work item is a JSON-able dict: config_id, meta (the manifest columns that go into the
result row), structure (extxyz text), spin (decided here, per structure), spin_mode and
fidelity. The gas-phase references of the default scheme (and of any scheme the caller
names) are added for every (spin, fidelity) context the selected configurations use, so rank
needs nothing else.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ase import Atoms
from pymatgen.core import Composition

from catscreen.build.gas import gas_molecule, scheme_molecules
from catscreen.errors import CatscreenError, did_you_mean
from catscreen.io import atoms_to_text, read_parquet, read_parquet_metadata
from catscreen.model.api import ModelInfo, host_symbols, resolve_spin
from catscreen.schema import INFO_KEYS, MANIFEST_COLUMNS
from catscreen.workflow.relax import WorkItem, tag_problem

# RelaxSettings' filters, by `select`'s names: a results table's metadata records them
SELECTION = ("systems", "adsorbates", "ids")
META_COLUMNS: tuple[str, ...] = tuple(c for c in MANIFEST_COLUMNS if c != "structure_index")


def _native(value: Any) -> Any:
    """numpy/pandas scalars -> Python (job arguments must be plain JSON)."""
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _digest(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:16]


def _read_frames(path: Path) -> list[Atoms]:
    """extxyz frames with enumerate's text keys kept as text.

    Imported here, not at module level: enumerate pulls in pymatgen, which Dask workers
    importing the workflow package do not need.
    """
    from catscreen.build.enumerate import read_configurations

    return read_configurations(path)


def config_ids(path: str | Path) -> set[str]:
    """The configuration ids of what `read_configs` reads; a manifest's without its structures."""
    return set(manifest_frame(path, ["config_id"]).config_id.astype(str))


def manifest_frame(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """What `read_configs` reads, without the structures of a manifest (configs.parquet)."""
    p = Path(path)
    p = p / "configs.parquet" if p.is_dir() else p
    if p.suffix == ".parquet":
        return read_parquet(p, ("config_id",), columns=columns)
    return read_configs(p)[0]


def read_configs(path: str | Path) -> tuple[pd.DataFrame, list[Atoms]]:
    """Manifest rows (less structure_index) and their structures, row i <-> structure i.

    Accepts enumerate's manifest (configs.parquet, or the folder holding it) or an extxyz
    whose frames carry the INFO_KEYS in atoms.info (a frame without config_id gets a hash
    of its structure).
    """
    p = Path(path)
    if p.is_dir():
        p = p / "configs.parquet"
    if p.suffix == ".parquet":
        df = read_parquet(p, required=("config_id", "structure_index"))
        name = read_parquet_metadata(p).get("structures", "configs.extxyz")
        frames = _read_frames(p.parent / name)
        images = []
        for cid, idx in zip(df["config_id"], df["structure_index"], strict=True):
            if not 0 <= int(idx) < len(frames):
                raise CatscreenError(
                    f"{p}: structure_index {idx} outside {name} ({len(frames)} frames)"
                )
            atoms = frames[int(idx)]
            if str(atoms.info.get("config_id", cid)) != str(cid):
                raise CatscreenError(
                    f"{p}: row {cid} points at frame {idx} of {atoms.info['config_id']}"
                )
            images.append(atoms)
        df = df.drop(columns=["structure_index"]).reset_index(drop=True)
    else:
        images = _read_frames(p)
        records = []
        for atoms in images:
            rec = {k: _native(atoms.info.get(k)) for k in INFO_KEYS}
            if isinstance(rec["miller"], str):  # the schema's h,k,l (a file may hold "1 1 1")
                rec["miller"] = ",".join(rec["miller"].replace(",", " ").split())
            rec["config_id"] = rec["config_id"] or _digest("structure", atoms_to_text(atoms))
            if rec["termination"] is None:  # optional (README): the facet's one termination
                rec["termination"] = 0
            rec["formula"] = atoms.get_chemical_formula()
            rec["n_atoms"] = len(atoms)
            records.append(rec)
        df = pd.DataFrame(records, columns=list(META_COLUMNS))
    if df.empty:
        raise CatscreenError(f"{p} holds no configurations")
    df["config_id"] = df["config_id"].astype(str)  # integer ids broke the results table's write
    for cid, atoms in zip(df["config_id"], images, strict=True):
        if (wrong := geometry_problem(atoms)) is not None:
            raise CatscreenError(f"{p}: configuration {cid} has {wrong}")
        problem = tag_problem(atoms)
        if problem:
            raise CatscreenError(
                f"{p}: configuration {cid} has {problem}; catscreen reads tags as Open "
                "Catalyst's (0 fixed subsurface, 1 surface, 2 adsorbate), not ASE's layer "
                "numbers: retag it, or set every tag to 0 and fix atoms with FixAtoms"
            )
    dup = df["config_id"][df["config_id"].duplicated()]
    if len(dup):
        raise CatscreenError(f"{p}: duplicate config_id {dup.iloc[0]}")
    return df, images


def geometry_problem(atoms: Atoms) -> str | None:
    """What no model can relax: non-finite positions (the row failed as a "model error") or a
    periodic direction without a cell vector (an "explosion" of non-finite forces)."""
    if not np.isfinite(atoms.positions).all():
        return "non-finite positions"
    periodic = atoms.cell.array[np.asarray(atoms.pbc, dtype=bool)]
    if not np.isfinite(atoms.cell.array).all() or (
        len(periodic) and np.linalg.matrix_rank(periodic, tol=1e-6) < len(periodic)
    ):
        return "a periodic direction without a cell vector (pbc without a full cell)"
    return None


def select(
    df: pd.DataFrame,
    systems: Sequence[str] = (),
    adsorbates: Sequence[str] = (),
    ids: Sequence[str] = (),
) -> pd.Series:
    """Rows matching every given filter (each filter: any of its values), plus the clean slabs
    of the chosen adslabs: rank subtracts them, so a subset alone would rank nothing."""
    mask = pd.Series(True, index=df.index)
    for column, wanted in (("system_id", systems), ("adsorbate", adsorbates), ("config_id", ids)):
        if wanted:
            held = set(df[column].astype(str))
            if unknown := [w for w in wanted if w not in held]:  # `O,Zz` ran O alone, exit 0
                option = {"system_id": "--system", "adsorbate": "--adsorbate"}.get(column, "--id")
                hint = did_you_mean(unknown[0], held)
                raise CatscreenError(
                    f"{option} {', '.join(unknown)}: no configuration has it{hint}"
                )
            mask &= df[column].astype(str).isin(set(wanted))
    if not mask.any():
        raise CatscreenError("no configuration matches the --system/--adsorbate/--id selection")
    if {"kind", "slab_id"} <= set(df.columns):
        slabs = set(df.loc[mask, "slab_id"].dropna().astype(str))
        mask |= (df["kind"] == "slab") & df["slab_id"].astype(str).isin(slabs)
    return mask


def gas_items(
    info: ModelInfo,
    contexts: Sequence[tuple[str, str]],
    spin_mode: str,
    molecules: Sequence[str] = (),
) -> list[WorkItem]:
    """The default scheme's molecules and `molecules` for each (spin, fidelity) context, with
    ids that do not depend on which others are asked for (a resumed run reuses them)."""
    names = sorted(set(scheme_molecules()) | set(molecules))
    items = []
    for spin, fidelity in contexts:
        for name in names:
            atoms = gas_molecule(name)
            cid = "gas-" + _digest("gas", name, spin, fidelity, info.version)
            atoms.info["config_id"] = cid
            meta: dict[str, Any] = {c: None for c in META_COLUMNS}
            meta.update(
                config_id=cid, kind="gas", adsorbate=name, site_type="none", placement="gas",
                formula=atoms.get_chemical_formula(), n_atoms=len(atoms),
            )  # fmt: skip
            items.append(
                {"config_id": cid, "meta": meta, "structure": atoms_to_text(atoms),
                 "spin": spin, "spin_mode": spin_mode, "fidelity": fidelity}
            )  # fmt: skip
    return items


def _item(rec: dict[str, Any], atoms: Atoms, info: ModelInfo, spin_mode: str, fid: str) -> WorkItem:
    meta = {c: _native(v) for c, v in rec.items()}
    host = host_symbols(atoms, meta.get("kind"), meta.get("adsorbate"))
    item: WorkItem = {
        "config_id": str(meta["config_id"]), "meta": meta, "structure": atoms_to_text(atoms),
        "spin": resolve_spin(atoms, spin_mode), "spin_mode": spin_mode, "fidelity": fid,
        "domain": info.domain_of(host),
    }  # fmt: skip
    if not meta.get("bulk") and host:  # a user's file: its warnings name the host's formula
        item["host"] = Composition("".join(host)).reduced_formula
    return item


def reference_copies(
    df: pd.DataFrame, images: Sequence[Atoms], info: ModelInfo, spin_mode: str, fid: str,
    reference: str,
) -> list[WorkItem]:  # fmt: skip
    """The reference surface's clean slab and placements in each spin context that `--spin
    auto` gives other surfaces of the configurations (all of them, not a --system selection:
    a shard of candidates needs the reference in its context) and not it (spin_mode
    'reference'): the bundled model's two contexts are not one energy scale (N on Ru(0001)
    0.21 eV apart), so rank compares each candidate with the reference in its own context. On
    the ammonia recipe's N this took the spin-on candidates' dE_N from 0.23 to 0.10 eV MAE
    against CHGNet (benchmarks/reference_context.py)."""
    from catscreen.analysis.candidates import candidate_of, find_candidate

    surfaces = [
        (rec, atoms)
        for rec, atoms in zip(df.to_dict("records"), images, strict=True)
        if rec.get("kind") in ("slab", "adslab") and rec.get("bulk") and rec.get("miller")
    ]
    names = [candidate_of(r["bulk"], r["miller"], r["termination"]) for r, _ in surfaces]
    try:
        wanted = find_candidate(reference, sorted(set(names)))
    except CatscreenError as exc:  # its own words name the run's candidates
        raise CatscreenError(f"--reference: {exc}") from None
    spins = {resolve_spin(atoms, spin_mode) for _, atoms in surfaces}
    mine = [
        _item(rec, atoms, info, spin_mode, fid)
        for (rec, atoms), name in zip(surfaces, names, strict=True)
        if name == wanted
    ]
    return [
        {**it, "spin": spin, "spin_mode": "reference"}
        for it in mine
        for spin in sorted(spins - {it["spin"]})
    ]


def work_items(
    df: pd.DataFrame,
    images: Sequence[Atoms],
    info: ModelInfo,
    spin_mode: str,
    fidelity: str | None,
    molecules: Sequence[str] = (),
    reference: str | None = None,
    chosen: Sequence[bool] | None = None,
) -> list[WorkItem]:
    """Gas references first (cheap, and rank needs them), then the `chosen` configurations
    (all by default), then the `reference` surface's again in each other spin context the
    configurations use (`reference_copies`)."""
    fid = fidelity or info.default_fidelity
    keep = [True] * len(df) if chosen is None else list(chosen)
    items = [
        _item(rec, atoms, info, spin_mode, fid)
        for rec, atoms, k in zip(df.to_dict("records"), images, keep, strict=True)
        if k
    ]
    if reference is not None and info.spin_conditioned:  # CHGNet, EMT: one physics either way
        items += reference_copies(df, images, info, spin_mode, fid, reference)
    contexts = sorted({(it["spin"], it["fidelity"]) for it in items})
    for spin, f in contexts:
        info.check_context(spin, f)
    return gas_items(info, contexts, spin_mode, molecules) + items
