"""Putting an adsorbate on a site: orientation, height from covalent radii, no overlap.

Height rule: the binding atom(s) sit at the sum of covalent radii (ASE's Cordero et al. 2008
values) from the nearest slab atoms, so O in an fcc hollow of Pt(111) starts ~1.2 A above the
surface plane and CO ontop ~2.1 A. Where the site's own atoms are farther in-plane than a
bond (H in fcc(100) 4-fold hollows and on stepped facets, H in Al(111) hollows: H's radius,
0.31 A, is H2's), that rule reached down to an atom under the site and put the binding atom
inside the surface (H on Al(111) fcc 3.2 A below the top layer, 78 of 11907 placements over 14
bulks' facets up to index 2 below their site's atoms); so binding atoms sit at least
MIN_SITE_HEIGHT above the mean height of the site's atoms.

Overlap rule: no binding atom closer to a slab atom than
MIN_DISTANCE_FACTOR x the sum of their covalent radii (0.7, loose enough for a bonded
adsorbate, tight enough to forbid atoms inside the surface), no other adsorbate atom closer
than NONBINDING_FACTOR x (1.0: it is not bonded to the surface); a placement that violates it
is lifted in 0.1 A steps until it does not. An adsorbate that overlaps its own periodic image
(a cell too small for it) is an error.

Nudge: every placement is moved NUDGE A off its site in a random in-plane direction and tilted
by WOBBLE degrees about a random in-plane axis through its binding atom (seeded). An equivariant
model keeps the symmetry of its input exactly, so an adsorbate placed exactly on a symmetric
site relaxes to the nearest stationary point of that symmetry, often a saddle (N on an fcc(111)
bridge, OH upright on top); the nudge lets the optimiser roll off it. fairchem's placements
wobble likewise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.constraints import FixAtoms
from ase.data import covalent_radii
from ase.geometry import get_distances

from catscreen.build.adsorbates import Adsorbate
from catscreen.build.sites import Site
from catscreen.errors import CatscreenError

MIN_DISTANCE_FACTOR = 0.7
NONBINDING_FACTOR = 1.0  # atoms that do not bind stay at least a covalent bond away
LIFT_STEP = 0.1  # A
MAX_LIFT = 5.0  # A
MAX_TILT = 30.0  # degrees, random placements
NUDGE = 0.1  # A, lateral offset of a placement off its site
MIN_SITE_HEIGHT = 0.5  # A, binding atoms above the mean height of their site's atoms
WOBBLE = 5.0  # degrees, tilt that goes with the nudge


@dataclass(frozen=True)
class Orientation:
    """Rotation of the adsorbed frame: `phi` about z, then `tilt` about an in-plane axis at `psi`."""

    phi: float = 0.0
    tilt: float = 0.0
    psi: float = 0.0

    def matrix(self) -> np.ndarray:
        def rot(axis: np.ndarray, deg: float) -> np.ndarray:
            a = np.radians(deg)
            k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
            return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k

        psi = np.radians(self.psi)
        tilt_axis = np.array([np.cos(psi), np.sin(psi), 0.0])
        return rot(tilt_axis, self.tilt) @ rot(np.array([0.0, 0, 1]), self.phi)

    def identity(self) -> list[float]:
        return [round(a, 2) + 0.0 for a in (self.phi, self.tilt, self.psi)]  # -0.0 as 0.0


def heuristic_orientation(slab: Atoms, site: Site, adsorbate: Adsorbate) -> Orientation:
    """Upright; a bidentate species lies along the bridge it sits on, else along cell vector a.
    Across a bridge whose atoms differ in height (a step edge) it tilts with the bridge's own
    slope: flat, one end sat ~1 A above its atom (HCOO on Pt(211): 3.0 A). Tilting to match
    the height difference instead stood a short C2H2 on end (90 degrees) over one atom."""
    if adsorbate.bidentate and site.kind == "bridge":
        i, j = site.atoms
        d = slab.get_distance(i, j, mic=True, vector=True)
        phi = float(np.degrees(np.arctan2(d[1], d[0]))) % 180.0
        along = float(np.dot(d[:2], [np.cos(np.radians(phi)), np.sin(np.radians(phi))]))
        rise = float(np.degrees(np.arctan2(d[2] * np.sign(along), abs(along))))
        if abs(rise) < 1e-3:  # a flat bridge: the orientation (and the ids) as before
            return Orientation(phi=phi)
        # a positive tilt about the axis 90 degrees ahead of the bridge lowers its far end
        return Orientation(phi=phi, tilt=-rise, psi=(phi + 90.0) % 360.0)
    return Orientation()


def random_orientation(rng: np.random.Generator) -> Orientation:
    return Orientation(
        phi=float(rng.uniform(0, 360)),
        tilt=float(rng.uniform(0, MAX_TILT)),
        psi=float(rng.uniform(0, 360)),
    )


def _nudge(
    positions: np.ndarray, pivot: int, rng: np.random.Generator, distance: float
) -> np.ndarray:
    """Positions tilted by WOBBLE * distance / NUDGE degrees about `pivot`, then shifted
    `distance` A in the plane, both in random directions."""
    psi, direction = rng.uniform(0, 2 * np.pi, 2)
    tilt = Orientation(tilt=WOBBLE * distance / NUDGE, psi=float(np.degrees(psi))).matrix()
    centre = positions[pivot]
    out = (positions - centre) @ tilt.T + centre
    out[:, :2] += distance * np.array([np.cos(direction), np.sin(direction)])
    return out


def nudged(atoms: Atoms, rng: np.random.Generator, distance: float = NUDGE) -> Atoms:
    """A placed structure with its adsorbate (tag 2) nudged, pivoting on its lowest atom."""
    out = atoms.copy()
    ads = np.flatnonzero(out.get_tags() == 2)
    if len(ads) == 0:
        raise CatscreenError("no adsorbate atoms (tag 2) to nudge")
    pivot = int(np.argmin(out.positions[ads, 2]))
    out.positions[ads] = _nudge(out.positions[ads], pivot, rng, distance)
    return out


def _radii(atoms: Atoms) -> np.ndarray:
    return covalent_radii[atoms.numbers]


def distance_ratios(slab: Atoms, molecule: Atoms) -> np.ndarray:
    """Per adsorbate atom: nearest slab distance over the sum of covalent radii (with images)."""
    _, d = get_distances(molecule.positions, slab.positions, cell=slab.cell, pbc=slab.pbc)
    return (d / (_radii(molecule)[:, None] + _radii(slab)[None, :])).min(axis=1)


def min_distance_ratio(slab: Atoms, molecule: Atoms) -> float:
    """Smallest adsorbate-slab distance over the sum of covalent radii (periodic images included)."""
    return float(distance_ratios(slab, molecule).min())


def _too_close(slab: Atoms, molecule: Atoms, binding: tuple[int, ...]) -> bool:
    """Binding atoms may sit at MIN_DISTANCE_FACTOR, the others at NONBINDING_FACTOR: CH4 at the
    binding C's covalent height put its downward H 1.3 A from Pt."""
    ratios = distance_ratios(slab, molecule)
    limits = np.full(len(molecule), NONBINDING_FACTOR)
    limits[list(binding)] = MIN_DISTANCE_FACTOR
    return bool((ratios < limits).any())


def _overlaps_own_image(slab: Atoms, molecule: Atoms) -> bool:
    """An adsorbate atom closer to an atom of its own periodic image than a covalent bond."""
    shifts = [i * slab.cell[0] + j * slab.cell[1] for i in (-1, 0, 1) for j in (-1, 0, 1)]
    radii = _radii(molecule)
    for shift in shifts[:4]:  # the other half are the same pairs seen from the other side
        d = np.linalg.norm(
            molecule.positions[:, None, :] + shift - molecule.positions[None], axis=2
        )
        if (d / (radii[:, None] + radii[None, :]) < NONBINDING_FACTOR).any():
            return True
    return False


def _bonding_height(slab: Atoms, molecule: Atoms, binding: tuple[int, ...]) -> float:
    """Shift in z putting the binding atoms at covalent bond length from the nearest slab atoms."""
    flat = molecule.positions[list(binding)].copy()
    flat[:, 2] = 0.0
    slab_flat = slab.positions.copy()
    slab_flat[:, 2] = 0.0
    _, dxy = get_distances(flat, slab_flat, cell=slab.cell, pbc=[True, True, False])
    bond = _radii(molecule)[list(binding)][:, None] + _radii(slab)[None, :]
    rise = np.sqrt(np.clip(bond**2 - dxy**2, 0.0, None))
    needed = np.where(dxy < bond, slab.positions[None, :, 2] + rise, -np.inf).max(axis=1)
    top = slab.positions[:, 2].max()
    needed = np.where(np.isfinite(needed), needed, top)
    return float((needed - molecule.positions[list(binding), 2]).max())


def _site_bonds(slab: Atoms, molecule: Atoms, binding: tuple[int, ...], site: Site) -> None:
    """Lift `molecule` to its bonding height, then, where that leaves its binding atoms nearer
    another slab atom than the site's own, move it to bond to the site's atoms (in place).

    The height rule reads the highest atom near the site: at the foot of a step, in a trough
    or on a sloped bridge that is a neighbour above the site, and the binding atom bonded to it
    instead (O "ontop" a recessed Ru(10-11) atom sat 3.24 A from it and 2.12 A from the step
    atom). Such placements are moved (least squares over a translation) to bond lengths from
    the site's atoms with every other atom at least a bond away; the move is kept only when it
    leaves a site atom the nearest and nothing closer than the height rule allows, so flat
    facets, bcc(100) hollows (whose atom beneath is bonded too) and sites no translation can
    reach keep the height rule's placement."""
    from scipy.optimize import least_squares

    molecule.positions[:, 2] += _bonding_height(slab, molecule, binding)
    mine = np.array(sorted(set(site.atoms)), dtype=int)
    others = np.setdiff1d(np.arange(len(slab)), mine)
    if not len(others):
        return
    radii = _radii(molecule)[list(binding)]
    bond_mine = radii[:, None] + _radii(slab)[mine][None, :]
    bond_others = radii[:, None] + _radii(slab)[others][None, :]

    def ratios(shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _, d = get_distances(
            molecule.positions[list(binding)] + shift, slab.positions,
            cell=slab.cell, pbc=[True, True, False],
        )  # fmt: skip
        return d[:, mine] / bond_mine, d[:, others] / bond_others

    to_mine, to_others = ratios(np.zeros(3))
    if to_mine.min() <= to_others.min():
        return

    def residuals(shift: np.ndarray) -> np.ndarray:
        to_mine, to_others = ratios(shift)
        gap = np.clip(1.0 - to_others, 0.0, None)
        return np.concatenate([((to_mine - 1.0) * bond_mine).ravel(), 3.0 * gap.ravel()])

    shift = least_squares(residuals, np.zeros(3), x_scale=0.5).x
    to_mine, to_others = ratios(shift)
    moved = molecule.copy()
    moved.positions += shift
    clean = to_mine.min() < to_others.min() and to_others.min() >= 1.0 - 1e-6
    if clean and not _too_close(slab, moved, binding):
        molecule.positions += shift


def place(
    slab: Atoms,
    site: Site,
    adsorbate: Adsorbate,
    orientation: Orientation,
    rng: np.random.Generator | None = None,
    nudge: float = NUDGE,
    site_bonds: bool = True,
) -> Atoms:
    """Slab + adsorbate (tag 2) over `site`, lifted until no pair is closer than the minimum.

    With `rng`, the adsorbate is nudged `nudge` A off the site (module docstring).
    `site_bonds=False`: the height from the highest slab atom near the site alone, as the
    committed training passes were placed (`_site_bonds` says what it changes).
    """
    molecule = adsorbate.atoms.copy()
    molecule.positions = molecule.positions @ orientation.matrix().T
    if rng is not None and nudge > 0:
        molecule.positions = _nudge(molecule.positions, adsorbate.binding[0], rng, nudge)
    molecule.positions[:, :2] += np.array(site.position[:2])
    if site_bonds:
        _site_bonds(slab, molecule, adsorbate.binding, site)
    else:
        molecule.positions[:, 2] += _bonding_height(slab, molecule, adsorbate.binding)
    lowest = molecule.positions[list(adsorbate.binding), 2].min()
    molecule.positions[:, 2] += max(0.0, site.position[2] + MIN_SITE_HEIGHT - lowest)
    lifted = 0.0
    if _overlaps_own_image(slab, molecule):
        raise CatscreenError(
            f"{adsorbate.name} overlaps its own periodic image in this cell; raise --min-ab"
        )
    while _too_close(slab, molecule, adsorbate.binding):
        if lifted >= MAX_LIFT:
            raise CatscreenError(
                f"cannot place {adsorbate.name} on a {site.kind} site without overlap"
            )
        molecule.positions[:, 2] += LIFT_STEP
        lifted += LIFT_STEP
    combined = slab.copy()
    combined.set_constraint()
    molecule.set_tags([2] * len(molecule))
    combined.extend(molecule)
    combined.set_constraint(FixAtoms(indices=np.flatnonzero(combined.get_tags() == 0)))
    return combined
