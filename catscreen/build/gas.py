"""Gas-phase reference molecules and the scheme that turns them into elemental potentials."""

from __future__ import annotations

from functools import cache

import yaml
from ase import Atoms
from ase.build import molecule

from catscreen.errors import CatscreenError
from catscreen.paths import data_path

# ASE's g2 geometries are good starting points; the relax stage relaxes them with the model.
_G2_NAMES = {
    "H2": "H2",
    "H2O": "H2O",
    "CO": "CO",
    "N2": "N2",
    "O2": "O2",
    "NH3": "NH3",
    "CH4": "CH4",
    "CO2": "CO2",
}
BOX = 15.0  # Angstrom; molecules are non-periodic, the box only gives the cell a size


@cache
def default_scheme() -> dict[str, dict[str, float]]:
    """element -> {molecule: coefficient}; mu_element = sum coefficient * E(molecule)."""
    with open(data_path("references.yaml")) as fh:
        raw = yaml.safe_load(fh)
    return {el: {m: float(c) for m, c in combo.items()} for el, combo in raw["elements"].items()}


def scheme_molecules(scheme: dict[str, dict[str, float]] | None = None) -> list[str]:
    """The molecules a scheme needs, in a stable order."""
    scheme = scheme or default_scheme()
    return sorted({m for combo in scheme.values() for m in combo})


def gas_molecule(name: str) -> Atoms:
    """A gas molecule centred in a non-periodic box, tagged as adsorbate (2)."""
    if name not in _G2_NAMES:
        raise CatscreenError(f"no gas-phase geometry for {name!r}; known: {', '.join(_G2_NAMES)}")
    atoms = molecule(_G2_NAMES[name])
    atoms.set_cell([BOX, BOX, BOX])
    atoms.center()
    atoms.pbc = False
    atoms.set_tags([2] * len(atoms))
    atoms.info.update({"kind": "gas", "adsorbate": name})
    return atoms
