"""The tables that travel between stages: column names and what they mean.

Stages agree on these names and nothing else, so a user can replace any stage by their own
tool. Energies are totals in eV unless a name says otherwise; distances in Angstrom.
"""

from __future__ import annotations

# configs.parquet, written by `catscreen enumerate`: one row per configuration.
# Structures live in the extxyz file named in the parquet metadata key "structures"
# (default configs.extxyz next to the parquet), row i <-> frame `structure_index`.
MANIFEST_COLUMNS: dict[str, str] = {
    "config_id": "deterministic hash of everything that defines the configuration",
    "system_id": "hash of (bulk, miller, termination, adsorbate)",
    "slab_id": "hash of (bulk, miller, termination): the candidate surface",
    "kind": "'slab' (clean slab, adsorbate 'none') or 'adslab'",
    "bulk": "bulk name (library key or file stem)",
    "bulk_formula": "reduced formula of the bulk",
    "formula": "chemical formula of the configuration",
    "miller": "Miller index as 'h,k,l'",
    "termination": "termination index (0-based) among the distinct shifts of this facet",
    "shift": "pymatgen SlabGenerator shift of the termination",
    "site_type": "ontop | bridge | fcc | hcp | hollow | 4fold | none (clean slab)",
    "site_atoms": "comma-separated indices of the surface atoms that define the site",
    "site_x": "Cartesian x of the site (A)",
    "site_y": "Cartesian y of the site (A)",
    "site_z": "Cartesian z of the site (A)",
    "adsorbate": "adsorbate name from the library, or 'none'",
    "placement": "heuristic | random | clean",
    "n_atoms": "number of atoms",
    "structure_index": "frame index in the extxyz file",
}

# Keys every structure carries in atoms.info (extxyz), so a frame is self-describing.
INFO_KEYS: tuple[str, ...] = (
    "config_id",
    "system_id",
    "slab_id",
    "kind",
    "bulk",
    "miller",
    "termination",
    "site_type",
    "adsorbate",
)

# results.parquet, written by `catscreen relax`: manifest columns (less structure_index)
# plus these. Gas-phase reference molecules are rows with kind == 'gas' and adsorbate set to
# the molecule name (H2, H2O, CO, N2, ...), computed with the same model and context.
# One row per (config_id, model, model_version, spin, fidelity): a rerun with another model or
# context adds rows, a rerun with the same one skips them (catscreen.workflow.store).
RESULT_COLUMNS: dict[str, str] = {
    "status": "converged | not_converged | failed",
    "reason": "why a row failed or did not converge ('' otherwise)",
    "energy": "total energy of the final structure (eV), ensemble mean",
    "energy_std": "ensemble spread of the total energy (eV)",
    "energy_heads": "each ensemble head's total energy (eV; empty for a model without heads): "
    "rank takes the spread of E_ads over heads, since the heads' errors on a slab with and "
    "without an adsorbate move together",
    "fmax": "max force on free atoms at the end (eV/A)",
    "steps": "optimizer steps taken",
    "spin": "spin context used: on | off (a model without spin conditioning, CHGNet or EMT, "
    "records the decision and runs its own single physics either way)",
    "spin_mode": "what was asked: auto | on | off, or reference: the reference surface "
    "relaxed again in another candidate's spin context (`relax --reference`), which rank uses "
    "only to compare that candidate with it",
    "fidelity": "fidelity context used (a name from the checkpoint)",
    "model": "model name",
    "model_version": "model version / checkpoint hash",
    "catscreen": "the catscreen that relaxed it (`code_version`: with its commit in a checkout); "
    "a resumed table keeps each reused row's own (absent: before this column)",
    "domain": "what the model's training says of the structure's surface: '' (nothing "
    "against it), outside:O (an element its training frames held only in adsorbates and gas "
    "molecules: an oxide for the bundled weights) or note:... (a host measured poor); relax and "
    "rank warn of them (absent: before this column)",
    "initial_structure": "extxyz text of the starting structure",
    "final_structure": "extxyz text of the final structure with its energy, forces and "
    "predicted magmoms (when the model predicts them); tags and FixAtoms kept",
    "wall_time": "seconds: its share of each batch step it took part in (step time / "
    "structures in that step)",
}

RESULT_STATUS = ("converged", "not_converged", "failed")
