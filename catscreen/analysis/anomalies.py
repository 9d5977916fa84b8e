"""Relaxation anomalies (OC20/AdsorbML taxonomy), detected from bonds in the structures.

Bond criterion: atoms i and j are bonded when d_ij < (r_i + r_j) * tolerance, with ASE's
covalent radii and tolerance 1.25 by default (periodic images included). The tolerance is loose
enough to count a stretched adsorbate-metal bond (O-Pt 2.0 A vs cutoff 2.5 A) and tight enough
that metal second neighbours (fcc: sqrt(2) x first) are not bonds.

Tags follow the design notes: 0 subsurface, 1 surface, 2 adsorbate; +z points to the vacuum
side that carries the adsorbate. The slab part of an adslab is its tag 0/1 atoms in order,
which enumerate keeps identical to the clean slab's atoms.

Desorption is AdsorbML's test, looser than a bond: the adsorbate has left when none of its
atoms is within DESORPTION_TOLERANCE (1.5) x the radii sum plus ASE's 0.3 A skin per atom of
a slab atom. At the bond tolerance, H2O held H-down on Pt(111) (H-Pt 2.56-2.63 A, E_ads -0.63
eV) counted as desorbed, and H2O, HCOO and OOH on Pt(111) had no valid placement left.

Overlap: two atoms of the final structure closer than OVERLAP_RATIO x the sum of their covalent
radii. No real bond comes near it (the shortest, N2 and CO triple bonds, are 0.77x and 0.80x);
it is a hole in the potential that the relax step's guard (0.5x) let through, or a results file
from elsewhere. Its energy is meaningless, so the placement is excluded.

Reconstruction has a cushion, as AdsorbML's `has_surface_changed` does: a slab bond counts as
formed only between atoms that were beyond RECONSTRUCTION_CUSHION x the bond cutoff in the
relaxed clean slab, and as broken only when its atoms end up beyond it. Without one, any metal
pair sitting near the cutoff flips with the ordinary relaxation around an adsorbate: the
cross-trough pair of fcc(110) (1.37x the radii sum) pulled to 1.16x under CH in the hollow, the
second neighbours of bcc(110) (1.09x) pushed to 1.39x by C in the long bridge, interlayer pairs
of Ru(0001) moving from 1.29x to 1.25x under OH. All of those moved the slab atoms by at most
0.4 A (0.5 A for C on Fe(110) in 3x3 cells); a stretch of 1.5x the radii sum (1.25 x 1.2) is bond breaking, not relaxation. AdsorbML's
own band (1.0 to 1.5x the radii with ASE's 0.3 A skin per atom, about 1.2x to 1.7x) is looser.

A layer can also slide without any pair leaving that band: on Os(0001) under N the CHGNet
teacher shifted the top layer 1.6-1.7 A sideways into the other stacking, every interlayer pair
going from 0.92x to 1.32x or back. So a slab atom that ends farther than SLAB_DISPLACEMENT
(1.0 A) from its place in the relaxed clean slab is a reconstruction too, measured after
removing the mean shift of the subsurface (tag 0) atoms (nothing for catscreen's own results,
whose subsurface is fixed; a free slab's drift otherwise), or when the surface layer (tag 1)
shifts sideways as a whole by more than LAYER_SLIDE (0.5 A; its atoms' mean in-plane move, in
which the push and pull around an adsorbate cancel): the bundled model holds Re(0001)'s clean
top layer on a saddle of its stacking, and its N and NH_x placements slid the layer 0.6 A
towards bridge registry, 0.16-0.2 eV below those that did not (of 220 ammonia-recipe
placements, one more slid past the limit, N on top of FePt(101) at 0.51 A; the rest stayed
below 0.46 A, the quickstart's below 0.22 A, and 808 placements on (211) and (110) facets of
8 metals below 0.11 A). A surface of fewer than 3 atoms (a 1x1 cell) is no layer: its atoms'
moves are SLAB_DISPLACEMENT's to judge. In the teacher's relaxations of the
benchmark (`benchmarks/slab_moves.py`, 30 hosts) ordinary relaxation moves slab atoms by at
most 0.5 A on most hosts and up to 0.92 A on the softer ones (Li, Ce, Ba, Al, Mn, Cd) with no
bond leaving the cushion; the reconstructions the bond criteria find (N on Zn(0001),
Cd(0001)) move them 1.04-1.56 A. The margin between 0.92 and 1.04 A is narrow and comes from
the teacher's relaxations alone: a model's relaxation on a soft host can come nearer it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from ase.data import covalent_radii
from ase.geometry import find_mic
from ase.neighborlist import natural_cutoffs, neighbor_list
from vesin import NeighborList

from catscreen.errors import CatscreenError

DEFAULT_BOND_TOLERANCE = 1.25
DESORPTION_TOLERANCE = 1.5  # x the radii sum, as AdsorbML's desorption cutoff multiplier
DESORPTION_SKIN = 0.3  # A per atom: ASE's NeighborList default, which AdsorbML's test keeps
OVERLAP_RATIO = 0.7  # of the covalent radii sum
RECONSTRUCTION_CUSHION = 1.2  # x the bond tolerance, for bonds to count as formed or broken
SLAB_DISPLACEMENT = 1.0  # A from the relaxed clean slab: farther is a reconstruction
LAYER_SLIDE = 0.5  # A: the surface layer shifted sideways as a whole this far, another registry
COMPRESSED_RATIO = 0.94  # of H's radius + the metal's: two surface bonds of one H shorter ...
COMPRESSED_HEIGHT = 0.8  # A: ... with H this near their metal-metal axis are compressed
NN_REACH = 5.0  # A: neighbours searched for the metals' nearest-neighbour distances
# eV per adsorbate atom: |E_ads| beyond this is no adsorption energy (a broken row, a
# calculator blow-up). Against gas molecules catalytic E_ads lie within a few eV per adsorbate
# atom; fixed potentials put the zero where the user chose (O at 0 eV leaves O on W near
# -10 eV), so there only blow-ups are caught.
IMPLAUSIBLE_E_ADS = 10.0
IMPLAUSIBLE_E_ADS_FIXED = 100.0
# Anomalies that make a placement invalid for minima; migration is recorded only.
EXCLUDING = (
    "desorbed", "dissociated", "reconstructed", "intercalated", "overlapping", "compressed",
)  # fmt: skip
SITE_TYPES = {0: "none", 1: "ontop", 2: "bridge", 3: "hollow", 4: "4fold"}


@dataclass
class AnomalyReport:
    desorbed: bool = False
    dissociated: bool = False
    reconstructed: bool = False
    intercalated: bool = False
    overlapping: bool = False
    compressed: bool = False
    migrated: bool = False
    final_site_atoms: list[int] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [n for n in (*EXCLUDING, "migrated") if getattr(self, n)]

    @property
    def excluding(self) -> bool:
        return any(getattr(self, n) for n in EXCLUDING)

    @property
    def final_site_type(self) -> str:
        return SITE_TYPES.get(len(self.final_site_atoms), "hollow")


def bond_matrix(
    atoms: Atoms, tolerance: float = DEFAULT_BOND_TOLERANCE, skin: float = 0.0
) -> np.ndarray:
    """Boolean adjacency: d < (r_i + r_j) * tolerance + 2 skin, periodic images included (an
    atom bonded to its own image in a small cell too), as ASE's NeighborList gives it (ASE's
    default skin, 0.3, counts pairs up to 0.6 A beyond the bond cutoff). vesin finds the
    pairs: ASE's took 5 ms per structure, half of a rank's time (the same matrices on 403
    relaxed adslabs at three tolerances, 7x faster)."""
    radii = np.asarray(natural_cutoffs(atoms, mult=tolerance)) + skin
    bonds = np.zeros((len(atoms), len(atoms)), dtype=bool)
    if not len(atoms):
        return bonds
    i, j, d = NeighborList(cutoff=2 * float(radii.max()), full_list=True).compute(
        points=atoms.positions, box=atoms.cell.array, periodic=atoms.pbc, quantities="ijd"
    )
    keep = d < radii[i] + radii[j]
    bonds[i[keep], j[keep]] = True
    return bonds


def overlapping(
    atoms: Atoms,
    ratio: float = OVERLAP_RATIO,
    bonds: np.ndarray | None = None,
    tolerance: float = DEFAULT_BOND_TOLERANCE,
) -> bool:
    """Two atoms (or an atom and another's periodic image) closer than `ratio` x their
    covalent radii sum.
    `bonds`, the caller's bond matrix of `atoms` at `tolerance`, holds every such pair already
    when `tolerance` >= `ratio`: only its pairs are measured then (nearest images), no second
    neighbour list."""
    if len(atoms) < 2:
        return False
    if bonds is None or tolerance < ratio:
        return bool(bond_matrix(atoms, ratio).any())
    i, j = np.nonzero(np.triu(bonds, 1))
    if not len(i):
        return False
    _, d = find_mic(atoms.positions[j] - atoms.positions[i], atoms.cell, pbc=atoms.pbc)
    radii = np.array(natural_cutoffs(atoms, mult=1.0))
    return bool((d < ratio * (radii[i] + radii[j])).any())


def site_atoms(atoms: Atoms, bonds: np.ndarray) -> list[int]:
    """Surface atoms bonded to any adsorbate atom: the occupied site, both ends of a bidentate
    one (formate, di-sigma C2H4) included. Reading it from the one binding atom nearest the
    slab made a bridging bidentate "ontop", and flipped it between its two ends. Surface
    (tag 1) atoms only, as enumerate's sites are: in a bcc(100) 4-fold hollow the adsorbate
    also bonds the atom under it, and the site is still the four around it (all slab atoms
    when nothing is tagged surface)."""
    tags = atoms.get_tags()
    ads = np.flatnonzero(tags == 2)
    slab = np.flatnonzero(tags == 1) if (tags == 1).any() else np.flatnonzero(tags != 2)
    if len(ads) == 0:
        return []
    return [int(j) for j in slab[bonds[np.ix_(ads, slab)].any(axis=0)]]


def _intercalated(atoms: Atoms, bonds: np.ndarray, ads: np.ndarray) -> bool:
    """An adsorbate atom below the exposed atoms, or bonded to a subsurface atom from inside.

    A bond to a subsurface atom alone is not enough: in the 4-fold hollows of fcc(100) and
    bcc(100) (N on Fe(100)) the adsorbate binds the second-layer atom under the hollow while
    sitting above the four surface atoms around it, the minimum the screen is looking for.
    """
    tags = atoms.get_tags()
    z = atoms.positions[:, 2]
    surface = np.flatnonzero(tags == 1)
    if surface.size == 0:  # nothing tagged surface: every slab atom may be exposed, as for
        surface = np.flatnonzero(tags != 2)  # `site_atoms` (every bonded placement was
        subsurface = surface[:0]  # "intercalated" through a subsurface bond)
    else:
        subsurface = np.flatnonzero(tags == 0)
    if surface.size and bool((z[ads] < z[surface].min()).any()):
        return True
    for i in ads:
        if not bonds[i, subsurface].any():
            continue
        around = surface[bonds[i, surface]]
        if around.size == 0 or z[i] < z[around].mean():
            return True
    return False


def _compressed(atoms: Atoms, bonds: np.ndarray, ads: np.ndarray) -> bool:
    """An H atom held by the slab alone, sunk between two slab atoms: both nearer than
    COMPRESSED_RATIO x (H's covalent radius + the metal's radius, half its distance to its
    nearest slab neighbour) and H within COMPRESSED_HEIGHT of the line through them.

    Each bond of a bridging H is longer than the one bond of an ontop H (Pt-H 1.56 A on
    Pt(111), 0.92x), as bond-order conservation has it, and the H stands about 1 A off the
    metal-metal axis. The bundled model has minima with neither: H sunk into the bridges of
    Pt, Pd, Au, Rh, Ir and Pt3Ni(111) (HER recipe; Ni(111) too in the quickstart's thinner
    cell), two 1.42-1.53 A bonds (0.86-0.93x) 0.03-0.74 A off the axis, which its CHGNet
    teacher puts 0.43-1.7 eV higher and GPAW PBE 1.0 eV above the fcc hollow on Pt(111); each
    was its surface's H minimum in the HER recipe. Cordero's covalent radii of the early metals
    are large, so the teacher's own H on Y(0001), 2.0 A from two Y atoms, was 0.91x of their
    sum; half the slab's Y-Y distance reads it at 0.97x. None of the 2,723 H atoms held by a
    slab in the training data's teacher and GPAW frames (relaxation steps included) is
    compressed; the nearest is 0.95x (Ba(100), mid-relaxation). A known miss: the HER
    recipe's CuPd(110) bridge H (0.942x and 0.962x, shorter than the ontop Pd-H) is kept, and
    no ratio catches it without the teacher's own H on Y(0001) (0.956x and 0.960x, 0.6 A off
    the axis; all 384 slab-held H within 0.8 A of their axis in data/training, 2026-12-07)."""
    hydrogens = [i for i in ads if atoms.numbers[i] == 1 and not bonds[i, ads].any()]
    if not hydrogens:
        return False
    on_slab = atoms.get_tags() != 2
    # every periodic image its own neighbour: in a 1x1 or Nx1 cell an H bridges an atom and
    # its image, one atom twice (NN_REACH: beyond the longest metal-metal bond, Ba's 4.3 A)
    first, second, dist, vec = neighbor_list("ijdD", atoms, NN_REACH)
    metal = on_slab[first] & on_slab[second]
    nearest = np.full(len(atoms), np.inf)
    np.minimum.at(nearest, first[metal], dist[metal])
    for i in hydrogens:
        mine = np.flatnonzero((first == i) & on_slab[second])
        if len(mine) < 2:
            continue
        two = mine[np.argsort(dist[mine])[:2]]
        radius = covalent_radii[1] + nearest[second[two]] / 2
        if (dist[two] >= COMPRESSED_RATIO * radius).any():
            continue
        v1, axis = vec[two[0]], vec[two[1]] - vec[two[0]]
        off_axis = np.linalg.norm(np.cross(v1, axis)) / max(np.linalg.norm(axis), 1e-9)
        if off_axis < COMPRESSED_HEIGHT:
            return True
    return False


def anomaly_rules() -> str:
    """The checks' constants (campaigns rank with the default bond tolerance): part of the rank
    stage's hash, so a campaign ranked under other rules reranks instead of keeping old flags."""
    return (
        f"bonds {DEFAULT_BOND_TOLERANCE}x radii, desorption {DESORPTION_TOLERANCE}x + "
        f"{DESORPTION_SKIN} A skin, overlap {OVERLAP_RATIO}x, "
        f"reconstruction cushion {RECONSTRUCTION_CUSHION}x, slab displacement "
        f"{SLAB_DISPLACEMENT} A, layer slide {LAYER_SLIDE} A, compressed H "
        f"{COMPRESSED_RATIO}x and {COMPRESSED_HEIGHT} A, "
        f"implausible |E_ads| > {IMPLAUSIBLE_E_ADS} eV per adsorbate atom "
        f"({IMPLAUSIBLE_E_ADS_FIXED} with fixed potentials), "
        "site: surface atoms bonded to any adsorbate atom, placed site from the manifest for "
        "one binding atom"
    )


@dataclass(eq=False)
class SlabReference:
    """A relaxed clean slab with the bond matrices reconstruction is judged against, at the
    tolerance and at the cushion: built once per slab, as `rank` checks every placement on
    that slab against the same two."""

    atoms: Atoms
    tolerance: float = DEFAULT_BOND_TOLERANCE
    bonds: np.ndarray = field(init=False, repr=False)
    cushioned: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.bonds = bond_matrix(self.atoms, self.tolerance)
        self.cushioned = bond_matrix(self.atoms, self.tolerance * RECONSTRUCTION_CUSHION)


def _moves(reference: Atoms, slab: Atoms) -> np.ndarray:
    """Each slab atom's shift from its place in `reference`, less the mean shift of the
    subsurface (tag 0) atoms, or the median shift of all where there are none."""
    moved, _ = find_mic(slab.positions - reference.positions, slab.cell, pbc=slab.pbc)
    subsurface = slab.get_tags() == 0
    drift = moved[subsurface].mean(axis=0) if subsurface.any() else np.median(moved, axis=0)
    return moved - drift


def _largest(moved: np.ndarray) -> float:
    return float(np.linalg.norm(moved, axis=1).max()) if len(moved) else 0.0


def _slide(moved: np.ndarray, tags: np.ndarray) -> float:
    surface = tags == 1
    if surface.sum() < 3:  # one or two atoms are no layer: SLAB_DISPLACEMENT judges their moves
        return 0.0
    return float(np.linalg.norm(moved[surface, :2].mean(axis=0)))


def slab_displacement(reference: Atoms, slab: Atoms) -> float:
    """The largest distance (A) a slab atom ended from its place in `reference` (`_moves`)."""
    return _largest(_moves(reference, slab))


def layer_slide(reference: Atoms, slab: Atoms) -> float:
    """How far (A) the surface layer (tag 1) moved sideways as a whole: the in-plane mean of
    its atoms' `_moves`, in which an adsorbate's push and pull around its site cancel."""
    return _slide(_moves(reference, slab), slab.get_tags())


def surface_changed(reference: SlabReference, slab: Atoms, bonds: np.ndarray) -> bool:
    """A slab bond formed from beyond the cushion of `reference`, or broken beyond it, or a
    slab atom moved beyond SLAB_DISPLACEMENT (a sliding layer keeps its bonds in the cushion);
    `bonds` is `slab`'s bond matrix at the reference's tolerance, which the caller has."""
    formed = bonds & ~reference.cushioned
    broken = reference.bonds & ~bond_matrix(slab, reference.tolerance * RECONSTRUCTION_CUSHION)
    if (formed | broken).any():
        return True
    moved = _moves(reference.atoms, slab)  # once per placement: both rules read it
    return _largest(moved) > SLAB_DISPLACEMENT or _slide(moved, slab.get_tags()) > LAYER_SLIDE


def detect_anomalies(
    initial: Atoms,
    final: Atoms,
    clean_slab: Atoms | SlabReference | None,
    initial_site: list[int] | None = None,
    tolerance: float = DEFAULT_BOND_TOLERANCE,
) -> AnomalyReport:
    """Compare an adslab's final structure with its start and with the relaxed clean slab.

    `initial_site`: the manifest's site atoms: where an adsorbate with at most one atom
    bonded to the slab at the start was placed (its bonds, read from a start at covalent
    height and nudged, are not always the site enumerated). With several bonded atoms at the
    start (a bidentate one, whose manifest site lies under the midpoint of its binding atoms)
    the start's site is read from `initial` as the final one is from `final`, like with like.
    `clean_slab`: when None or not atom-for-atom the slab part of the adslab, the slab part of
    `initial` is the reference for reconstruction; a `SlabReference` (at `tolerance`) saves
    rebuilding its bond matrices for every placement on the slab.
    The adsorbate is what `initial` tags 2: a final frame from another tool may have lost its
    tags, but must hold the same atoms in the same order.
    """
    if final.get_chemical_symbols() != initial.get_chemical_symbols():
        raise CatscreenError(
            f"the final structure ({final.get_chemical_formula()}, {len(final)} atoms) does not "
            f"hold the initial one's atoms ({initial.get_chemical_formula()}) in the same order"
        )
    tags = initial.get_tags()
    if not np.array_equal(final.get_tags(), tags):
        final = final.copy()
        final.set_tags(tags)
    ads, slab = np.flatnonzero(tags == 2), np.flatnonzero(tags != 2)
    if len(ads) == 0:
        return AnomalyReport()
    final_bonds = bond_matrix(final, tolerance)
    initial_bonds = bond_matrix(initial, tolerance)
    report = AnomalyReport()
    bonded = bool(final_bonds[np.ix_(ads, slab)].any())
    # held only within AdsorbML's looser cutoff (H2O H-down at 2.6 A): its site is read there
    loose = None if bonded else bond_matrix(final, DESORPTION_TOLERANCE, DESORPTION_SKIN)
    report.desorbed = loose is not None and not loose[np.ix_(ads, slab)].any()
    report.dissociated = bool(
        (final_bonds[np.ix_(ads, ads)] != initial_bonds[np.ix_(ads, ads)]).any()
    )
    report.intercalated = _intercalated(final, final_bonds, ads)
    report.overlapping = overlapping(final, bonds=final_bonds, tolerance=tolerance)
    report.compressed = _compressed(final, final_bonds, ads)

    if isinstance(clean_slab, SlabReference) and clean_slab.tolerance != tolerance:
        clean_slab = clean_slab.atoms
    if isinstance(clean_slab, Atoms):
        clean_slab = SlabReference(clean_slab, tolerance)
    symbols = final.get_chemical_symbols()  # once: per slab atom, 14 s of a 6k-row rank
    if clean_slab is not None and clean_slab.atoms.get_chemical_symbols() == [
        symbols[i] for i in slab
    ]:
        reference = clean_slab
    else:
        reference = SlabReference(initial[slab], tolerance)
    report.reconstructed = surface_changed(reference, final[slab], final_bonds[np.ix_(slab, slab)])

    if not report.desorbed:
        report.final_site_atoms = site_atoms(final, final_bonds if loose is None else loose)
        bonded = int(initial_bonds[np.ix_(ads, slab)].any(axis=1).sum())
        if initial_site and bonded <= 1:
            start = sorted(initial_site)
        else:
            start = site_atoms(initial, initial_bonds) or sorted(initial_site or [])
        report.migrated = start != report.final_site_atoms
    return report
