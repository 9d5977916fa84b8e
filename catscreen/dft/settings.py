"""DFT settings shared by the VASP inputs, the GPAW scripts and `catscreen validate`.

One dataclass so that VASP and GPAW describe the same physics: PBE (or RPBE, as OC20), plane
waves, Fermi-Dirac smearing, spin polarisation from the rank row's spin decision with the
model's predicted moments as the start, a dipole correction along z for slabs, subsurface
(tag 0) atoms fixed, and k-points from a density so cells of any size are sampled alike.
Gas molecules take the spin of their own ground state (`gas_unpaired`), whatever the row's:
spin-restricted O2 is 0.9 eV above its triplet (GPAW PBE), which would shift every O
adsorption energy referenced to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache

import numpy as np
from ase import Atoms
from ase.calculators.calculator import kptdensity2monkhorstpack
from ase.constraints import FixAtoms, FixCartesian
from pymatgen.core import Element

from catscreen.errors import CatscreenError
from catscreen.io import atoms_from_text, atoms_to_text
from catscreen.workflow.relax import fixed_mask

# Starting moments (muB), raised to the model's predicted ones where larger; MP's 0.6 for the rest.
DEFAULT_MAGMOMS = {
    "Cr": 3.0,
    "Mn": 4.0,
    "Fe": 3.0,
    "Co": 2.0,
    "Ni": 1.0,
    "Ce": 1.0,
    "Nd": 3.0,
    "Sm": 5.0,
    "Gd": 7.0,
}
OTHER_MAGMOM = 0.6
XC_NAMES = ("PBE", "RPBE", "r2SCAN", "auto")
GPAW_XC = ("PBE", "RPBE")
# Unpaired electrons of reference molecules whose ground state is not the parity rule's
# (0 for an even electron count, 1 for an odd one): the triplets.
TRIPLETS = {"O2": 2, "S2": 2, "CH2": 2, "HN": 2}  # Hill formulas: NH is written HN
GAS_VACUUM = 6.0  # A each side for a molecule written without a cell
# Plane-wave cutoff (eV) of each engine when none is given. VASP: MP's POTCARs at their ENMAX
# (raised per element by `vasp_cutoff`). GPAW's PAW setups need more: gas reaction energies
# holding O, C and N moved 0.07-0.17 eV from 400 to 600 eV and at most 0.02 eV beyond
# (data/training/DATASHEET.md, the gpaw-pbe gas molecules), so 400 eV put errors near rank's
# 0.1 eV window into every GPAW E_ads.
ENCUT_DEFAULTS = {"vasp": 400.0, "gpaw": 600.0}


@dataclass
class DftSettings:
    """Documented defaults: production-like for VASP; `validate` tests use far lower ones."""

    # or "RPBE" (OC20), "r2SCAN" (VASP only), "auto" (rank's inputs: the rows' fidelity's)
    xc: str = "PBE"
    encut: float | None = None  # eV plane-wave cutoff; None: the engine's (ENCUT_DEFAULTS)
    kpt_density: float = 4.0  # k-points per reciprocal Angstrom (ASE convention), kz = 1 for slabs
    smearing: float = 0.1  # eV Fermi-Dirac width (VASP ISMEAR = -1)
    ediff: float = 1e-5  # eV electronic convergence
    fmax: float = 0.03  # eV/A for relaxations (VASP EDIFFG = -fmax)
    relax_steps: int = 300  # ionic steps in VASP/GPAW relaxations; 0 = single point
    magmoms: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MAGMOMS))

    def __post_init__(self) -> None:
        if self.xc not in XC_NAMES:
            raise CatscreenError(f"unknown xc {self.xc!r}; expected {', '.join(XC_NAMES)}")
        # finite too: an infinite cutoff hung GPAW, an infinite k-density or width failed
        # every calculation after the run had started
        checks = [
            (
                self.encut is None or 0 < self.encut < math.inf,
                "encut (plane-wave cutoff) must be a positive number",
            ),
            (0 < self.kpt_density < math.inf, "kpt_density must be a positive number"),
            (0 <= self.smearing < math.inf, "smearing must be a number >= 0"),
            (0 < self.ediff < math.inf, "ediff must be a positive number"),
            (0 < self.fmax < math.inf, "fmax must be a positive number"),
            (self.relax_steps >= 0, "relax_steps must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise CatscreenError(message)

    def cutoff(self, engine: str) -> float:
        """The cutoff given, else the engine's own default."""
        return self.encut if self.encut is not None else ENCUT_DEFAULTS[engine]


@cache
def free_atom_moment(symbol: str) -> float:
    """Unpaired electrons of the free atom's ground state (Hund's rule per subshell, from
    pymatgen's configurations): no atom in a solid or on a surface carries more."""
    unpaired = 0
    for _, orbital, occupancy in Element(symbol).full_electronic_structure:
        states = 2 * "spdf".index(orbital) + 1
        unpaired += occupancy if occupancy <= states else 2 * states - occupancy
    return float(unpaired)


MOMENT_FLOOR = 0.25  # muB: a predicted moment below this has no direction worth keeping
# Elements whose ground state is antiferromagnetic on two sublattices of nearest neighbours
# (bcc Cr: each atom's 8 neighbours on the other sublattice); started parallel, the SCF
# settles in the ferromagnetic or non-magnetic solution above it
ANTIFERROMAGNETS = ("Cr",)
NEIGHBOUR_SHELL = 1.075  # x the typical nearest distance: neighbours (bcc's 2nd shell: 1.155)
NEIGHBOUR_REACH = 4.0  # A searched for them (bcc Cr: 2.50 and 2.88)


def initial_magmoms(atoms: Atoms, spin: str, settings: DftSettings) -> np.ndarray | None:
    """Element defaults, raised to the model's predicted moment (arrays['magmoms']) where that
    is larger, in the predicted direction.

    Starting high is what MP does: a spin-polarised SCF started from a small moment can settle
    in the non-magnetic solution (the bundled model predicts 0.08 muB for Ni in its CHGNet
    contexts, DFT gives about 0.6). The model's moment head is not bounded, so a prediction
    counts only up to the free atom's unpaired electrons, and a non-finite one not at all."""
    if spin != "on":
        return None
    symbols = atoms.get_chemical_symbols()
    default = np.array([settings.magmoms.get(s, OTHER_MAGMOM) for s in symbols])
    if "magmoms" not in atoms.arrays:
        return default * _sublattices(atoms)
    predicted = np.asarray(atoms.arrays["magmoms"], dtype=float).reshape(len(atoms))
    predicted = np.where(np.isfinite(predicted), predicted, 0.0)
    limit = np.array([free_atom_moment(s) for s in symbols])
    # a direction only where the moment is real: -0.02 muB of noise under CO on Ni(111) made
    # one atom of a ferromagnetic slab start fully antiparallel; a checkpoint's antiparallel
    # moments of 1-2 muB would keep their sign (the bundled model predicts none, Mn's all
    # parallel: only Cr's sublattices, ANTIFERROMAGNETS, start antiparallel, so Mn starts
    # ferromagnetic)
    sign = np.where(predicted < -MOMENT_FLOOR, -1.0, 1.0)
    moments = sign * np.maximum(np.minimum(np.abs(predicted), limit), default)
    return moments if (sign < 0).any() else moments * _sublattices(atoms)


def _sublattices(atoms: Atoms) -> np.ndarray:
    """Those its clean slab gave it (`slab_sublattices`), or its own."""
    return atoms.arrays["sublattice"] if "sublattice" in atoms.arrays else sublattice_signs(atoms)


def sublattice_signs(atoms: Atoms) -> np.ndarray:
    """+1/-1 on the two nearest-neighbour sublattices of each antiferromagnet's atoms (+1 for
    all others, and for all of them where the neighbours do not split in two: an odd ring
    through the periodic images, an alloy's other atoms in between: an adslab takes its clean
    slab's, `slab_sublattices`)."""
    import networkx as nx
    from ase.neighborlist import neighbor_list

    signs = np.ones(len(atoms))
    symbols = np.array(atoms.get_chemical_symbols())
    for element in ANTIFERROMAGNETS:
        mine = np.flatnonzero(symbols == element)
        i, j, d = neighbor_list("ijd", atoms[mine], NEIGHBOUR_REACH)
        if not len(d):
            continue
        nearest = np.full(len(mine), np.inf)
        np.minimum.at(nearest, i, d)  # each atom's nearest neighbour; their median: relaxed
        near = d < NEIGHBOUR_SHELL * np.median(nearest[np.isfinite(nearest)])  # surfaces vary
        graph = nx.Graph()
        graph.add_nodes_from(range(len(mine)))
        graph.add_edges_from(zip(i[near].tolist(), j[near].tolist(), strict=True))
        try:
            colour = nx.bipartite.color(graph)
        except nx.NetworkXError:  # not bipartite
            continue
        signs[mine] = [1.0 if colour[k] == colour[0] else -1.0 for k in range(len(mine))]
    return signs


def slab_sublattices(adslab: str, slab: str) -> str:
    """An adslab's structure carrying its clean slab's antiferromagnetic sublattices (array
    `sublattice`, read by `initial_magmoms`): an adsorbate distorts the metal it binds until
    first and second neighbours overlap in distance (Cr(110)+O: 2.28-2.55 A without a gap),
    so the adslab's own split failed and it started parallel beside its antiparallel slab.
    Unchanged without an antiferromagnet, or when its first atoms are not the slab's."""
    atoms = atoms_from_text(adslab)
    if not set(ANTIFERROMAGNETS) & set(atoms.get_chemical_symbols()):
        return adslab
    clean = atoms_from_text(slab)
    if atoms.get_chemical_symbols()[: len(clean)] != clean.get_chemical_symbols():
        return adslab
    signs = np.ones(len(atoms))
    signs[: len(clean)] = sublattice_signs(clean)
    atoms.arrays["sublattice"] = signs
    return atoms_to_text(atoms)


def gas_unpaired(atoms: Atoms) -> int:
    """Unpaired electrons in the molecule's ground state (a neutral molecule)."""
    formula = atoms.get_chemical_formula(mode="hill")
    if formula in TRIPLETS:
        return TRIPLETS[formula]
    return int(atoms.get_atomic_numbers().sum()) % 2


def gas_moments(atoms: Atoms) -> np.ndarray:
    """A molecule's ground-state moment (`gas_unpaired`) spread over its heavy atoms: a
    spin-polarised SCF started from zero stays in the unpolarised state."""
    heavy = atoms.numbers > 1 if (atoms.numbers > 1).any() else atoms.numbers > 0
    return np.where(heavy, gas_unpaired(atoms) / heavy.sum(), 0.0)


def gas_spin(structure: str) -> str:
    return "on" if gas_unpaired(atoms_from_text(structure)) else "off"


def surface_spin(row_spin: str, structure: str) -> str:
    """A slab's or adslab's DFT spin: its row's, or on for an odd electron count (H, OH, CH3,
    NH2 on an even slab; the cores of PAW setups hold even counts, so the atomic numbers'
    parity is the valence's) on a host that is not all metal: a restricted calculation puts
    the unpaired electron in a half-filled level, which on an insulator (H on MgO(100)) is not
    its ground state. A metal's states take it up (the spin-polarised H on Pt(111) ends at the
    restricted energy, at twice the cost), so there the row's spin stands."""
    atoms = atoms_from_text(structure)
    if int(atoms.get_atomic_numbers().sum()) % 2 == 0:
        return row_spin
    host = set(atoms[atoms.get_tags() != 2].get_chemical_symbols())  # tag 2: the adsorbate
    return row_spin if all(Element(e).is_metal for e in host) else "on"


def kpoints(atoms: Atoms, kind: str, settings: DftSettings) -> tuple[int, int, int]:
    """Monkhorst-Pack size from the density; Gamma only for molecules, kz = 1 for slabs."""
    if kind == "gas":
        return (1, 1, 1)
    size = kptdensity2monkhorstpack(atoms, settings.kpt_density, even=False)
    return tuple(int(n) if p else 1 for n, p in zip(size, atoms.pbc, strict=True))  # type: ignore[return-value]


def fixed_parts(
    mask: np.ndarray,
) -> tuple[list[int], list[tuple[int, tuple[bool, bool, bool]]]]:
    """An [n_atoms, 3] fixed mask as the atoms fixed whole and (atom, directions) for those
    fixed in some directions only: FixAtoms and FixCartesian, here and in the GPAW script."""
    whole = mask.all(axis=1)
    partial = np.flatnonzero(mask.any(axis=1) & ~whole)
    return (
        [int(i) for i in np.flatnonzero(whole)],
        [(int(i), (bool(mask[i, 0]), bool(mask[i, 1]), bool(mask[i, 2]))) for i in partial],
    )


def constraints_of(mask: np.ndarray) -> list[FixAtoms | FixCartesian]:
    whole, partial = fixed_parts(mask)
    return [FixAtoms(indices=whole)] + [FixCartesian(i, mask=m) for i, m in partial]


def _centre_in_z(atoms: Atoms) -> None:
    """The slab whole and in the middle of its vacuum: with no periodicity along z, GPAW
    refuses atoms at the cell's z boundary (a slab from another tool sitting at z = 0), and a
    slab across it would put VASP's dipole layer inside the slab. Only translates it."""
    raw = atoms.cell.scaled_positions(atoms.positions)[:, 2]
    z = raw % 1.0
    order = np.sort(z)
    gaps = np.diff(np.append(order, order[0] + 1.0))
    start = order[(int(np.argmax(gaps)) + 1) % len(order)]  # the first atom above the vacuum
    atoms.positions += np.outer((z - start) % 1.0 - raw, atoms.cell[2])
    atoms.center(axis=2)


def prepare(structure: str, kind: str, spin: str, settings: DftSettings) -> Atoms:
    """A rank row's structure ready for DFT: pbc, fixed tag-0 atoms, initial moments."""
    atoms = atoms_from_text(structure)
    predicted = atoms.calc.results.get("magmoms") if atoms.calc is not None else None
    if predicted is not None and "magmoms" not in atoms.arrays:
        atoms.arrays["magmoms"] = np.asarray(predicted, dtype=float)
    atoms.calc = None
    if kind == "gas":
        if atoms.cell.rank < 3:  # written by another tool without a box
            atoms.center(vacuum=GAS_VACUUM)
        atoms.pbc = True  # plane waves: the molecule sits in a periodic box
        if spin == "on" and gas_unpaired(atoms):
            atoms.set_initial_magnetic_moments(gas_moments(atoms))
            return atoms
    else:
        atoms.pbc = (True, True, False)
        _centre_in_z(atoms)
        # what the relaxation kept fixed: its constraints (whole atoms or single directions),
        # and tag 0 when tagged
        atoms.set_constraint(constraints_of(fixed_mask(atoms)))
    moments = initial_magmoms(atoms, spin, settings)
    atoms.set_initial_magnetic_moments(moments)
    return atoms
