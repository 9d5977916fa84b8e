"""Adsorption sites on the exposed (tag 1) atoms of a slab, classified and symmetry-reduced.

Candidates come from a periodic Delaunay triangulation of the exposed atoms seen from above
(atoms, edge midpoints, circumcentres of non-obtuse triangles, as in pymatgen's
AdsorbateSiteFinder). Each candidate is then classified by how many exposed atoms are its
nearest in-plane neighbours (within 10%): 1 ontop, 2 bridge, 3 hollow, 4 or more 4fold.
A 3-fold hollow over a near-equilateral triangle (edges within 10%) of one layer is an hcp
hollow when an atom of the next layer down sits directly beneath it and an fcc hollow
otherwise; any other 3-fold site stays 'hollow' (e.g. bcc(110)). Symmetry-equivalent sites
are merged with the slab's space-group operations (spglib via pymatgen).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from pymatgen.io.ase import AseAtomsAdaptor
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer
from pymatgen.util.coord import in_coord_list_pbc
from scipy.spatial import Delaunay

from catscreen.build.slabs import inplane_images
from catscreen.errors import CatscreenError

SITE_TYPES: tuple[str, ...] = ("ontop", "bridge", "fcc", "hcp", "hollow", "4fold")
NEAR_TOL = 0.10  # relative tolerance for "equally near" surface atoms
LAYER_TOL = 0.3  # A; atoms closer in height than this form one layer
BENEATH_TOL = 0.25  # in units of d_nn: an atom "directly beneath" a hollow
PROBE_HEIGHT = 2.0  # A above the top atom, where site positions are compared for symmetry
SAME_SITE = 0.15  # A: symmetry images of a site this close are the same site (symprec 0.1 A)


@dataclass(frozen=True)
class Site:
    """A site: its type, Cartesian position (z = mean height of its atoms) and defining atoms."""

    kind: str
    position: tuple[float, float, float]
    atoms: tuple[int, ...]


def _candidates(points: np.ndarray) -> list[np.ndarray]:
    """The atoms (first, in order), circumcentres of non-obtuse Delaunay triangles and edge
    midpoints (xy)."""
    tri = Delaunay(points)
    out = [p for p in points]
    edges = set()
    for simplex in tri.simplices:
        for a, b in ((0, 1), (1, 2), (0, 2)):
            edges.add(tuple(sorted((simplex[a], simplex[b]))))
        p = points[simplex]
        sides = np.sort([np.sum((p[i] - p[j]) ** 2) for i, j in ((0, 1), (1, 2), (0, 2))])
        if sides[2] <= (sides[0] + sides[1]) * (1 + 1e-3):  # non-obtuse: centre inside
            out.append(_circumcentre(p))
    out.extend((points[a] + points[b]) / 2 for a, b in edges)
    return out


def _circumcentre(p: np.ndarray) -> np.ndarray:
    (ax, ay), (bx, by), (cx, cy) = p
    d = 2 * (ax * (by - cy) + bx * (cy - ay) + cx * (ay - by))
    ux = (
        (ax**2 + ay**2) * (by - cy) + (bx**2 + by**2) * (cy - ay) + (cx**2 + cy**2) * (ay - by)
    ) / d
    uy = (
        (ax**2 + ay**2) * (cx - bx) + (bx**2 + by**2) * (ax - cx) + (cx**2 + cy**2) * (bx - ax)
    ) / d
    return np.array([ux, uy])


def _classify(
    atoms: Atoms, d_nn: float, xy: np.ndarray, points: np.ndarray, owners: np.ndarray
) -> Site:
    dist = np.linalg.norm(points - xy, axis=1)
    nearest = dist <= dist.min() * (1 + NEAR_TOL) + 1e-3
    members = points[nearest]
    indices = tuple(sorted(int(i) for i in owners[nearest]))
    z = atoms.positions[list(indices), 2]
    n = len(indices)
    kind = {1: "ontop", 2: "bridge", 3: "hollow"}.get(n, "4fold")
    if n == 3 and np.ptp(z) < LAYER_TOL:
        edges = [np.linalg.norm(members[i] - members[j]) for i, j in ((0, 1), (1, 2), (0, 2))]
        if max(edges) <= min(edges) * (1 + NEAR_TOL):
            kind = _fcc_or_hcp(atoms, d_nn, xy, float(z.min()))
    return Site(kind, (float(xy[0]), float(xy[1]), float(z.mean())), indices)


def _fcc_or_hcp(atoms: Atoms, d_nn: float, xy: np.ndarray, z_site: float) -> str:
    """hcp when the next layer down has an atom directly beneath the hollow, fcc otherwise."""
    z = atoms.positions[:, 2]
    below = z < z_site - LAYER_TOL
    if not below.any():
        return "fcc"
    next_layer = below & (z > z[below].max() - LAYER_TOL)
    pts, _ = inplane_images(atoms, np.flatnonzero(next_layer))
    beneath = np.linalg.norm(pts - xy, axis=1).min() < BENEATH_TOL * d_nn
    return "hcp" if beneath else "fcc"


def all_sites(atoms: Atoms, d_nn: float, exact_ontop: bool = True) -> list[Site]:
    """Every site in the cell (not symmetry-reduced), in a deterministic order.

    `exact_ontop`: an ontop site is an atom's own position. The midpoint of a long edge across
    an obtuse angle lies nearer the third atom than its own two and was classified "ontop" of
    it, 1.1 A off it (Ru, Co, Zn (10-11), (20-21)), a second ontop site beside the real one;
    False keeps those, as the committed training passes were made."""
    exposed = np.flatnonzero(atoms.get_tags() == 1)
    if not len(exposed):  # scipy's "No points given" said nothing of tags
        raise CatscreenError(
            "the slab has no surface atoms (tag 1, Open Catalyst's convention); tag it first "
            "(catscreen.build.slabs.tag_and_fix)"
        )
    points, owners = inplane_images(atoms, exposed)
    inv = np.linalg.inv(atoms.cell.array[:2, :2])
    seen: list[np.ndarray] = []
    sites: list[Site] = []
    for k, xy in enumerate(_candidates(points)):
        frac = xy @ inv
        if np.any(frac < -1e-6) or np.any(frac >= 1 - 1e-6):
            continue  # a periodic image of a candidate inside the cell
        frac = np.mod(frac, 1.0)
        if seen and in_coord_list_pbc(
            [np.r_[f, 0.0] for f in seen], np.r_[frac, 0.0], atol=[1e-3, 1e-3, 1e-3]
        ):
            continue
        site = _classify(atoms, d_nn, xy, points, owners)
        if exact_ontop and site.kind == "ontop" and k >= len(points):
            continue  # a midpoint or centre nearer one atom than its own: not a site
        seen.append(frac)
        sites.append(site)
    order = sorted(
        range(len(sites)), key=lambda i: (SITE_TYPES.index(sites[i].kind), sites[i].atoms)
    )
    return [sites[i] for i in order]


def unique_sites(atoms: Atoms, sites: list[Site], repeat: tuple[int, int] = (1, 1)) -> list[Site]:
    """Merge symmetry-equivalent sites, keeping the first of each class.

    The operations are those of the unrepeated cell (`atoms` is it repeated `repeat` times in
    plane, its first atoms that cell's): a repeat of an oblique cell (Pt(210) 1x3) lacks the
    mirror and two-fold axis of the surface, and kept symmetry-equal sites apart, so the site
    set (19 placements instead of 13) depended on the cell size.

    Only operations that keep the top side up count (a flip maps the probe above the top onto
    one below the bottom, which thin vacuum brings back to the top through the periodic cell),
    and images match within SAME_SITE in Angstrom: a tolerance in fractions of the cell grew
    with it and merged distinct hollows 0.24 A apart in a 13 A cell."""
    cell = atoms.cell.array.copy()
    cell[:2] /= np.array(repeat, dtype=float)[:, None]
    unit = atoms[: len(atoms) // (repeat[0] * repeat[1])]
    unit.set_cell(cell)
    structure = AseAtomsAdaptor.get_structure(unit)
    ops = [
        op
        for op in SpacegroupAnalyzer(structure, symprec=0.1).get_symmetry_operations(cartesian=True)
        if np.allclose(op.rotation_matrix[2], [0.0, 0.0, 1.0])  # Cartesian: z stays z
    ]
    top = atoms.positions[:, 2].max() + PROBE_HEIGHT
    inv = np.linalg.inv(cell)
    kept: list[Site] = []
    kept_images: list[np.ndarray] = []  # fractional images of each kept site under the ops
    for site in sites:
        position = np.array([site.position[0], site.position[1], top])
        frac = position @ inv
        if any(
            kept[k].kind == site.kind and _matches(kept_images[k], frac, cell)
            for k in range(len(kept))
        ):
            continue
        kept.append(site)
        kept_images.append(np.array([op.operate(position) for op in ops]) @ inv)
    return kept


def _matches(images: np.ndarray, frac: np.ndarray, cell: np.ndarray) -> bool:
    """Is `frac` one of `images` (fractional), modulo the cell, within SAME_SITE?"""
    diff = images - frac
    diff -= np.round(diff)
    return bool((np.linalg.norm(diff @ cell, axis=1) < SAME_SITE).any())


def find_sites(
    atoms: Atoms,
    d_nn: float,
    unique: bool = True,
    repeat: tuple[int, int] = (1, 1),
    exact_ontop: bool = True,
) -> list[Site]:
    """Sites of a tagged slab; `unique=False` keeps every site in the cell (random placement).
    `repeat`: how often the slab's own cell is repeated in `atoms` (SlabTermination.repeat).
    `exact_ontop`: see `all_sites`."""
    sites = all_sites(atoms, d_nn, exact_ontop)
    return unique_sites(atoms, sites, repeat) if unique else sites
