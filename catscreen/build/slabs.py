"""Slabs: every distinct termination of a facet, tagged and constrained the Open Catalyst way.

pymatgen's SlabGenerator finds the terminations (shifts); an asymmetric slab also contributes
its bottom termination, flipped so that the adsorbate side is always +z.

Tag rule (documented for users in `catscreen enumerate --help`): an atom is subsurface
(tag 0, fixed) when it is covered from above: the atoms higher than it within a vertical
cylinder of radius 0.85 d_nn (d_nn: shortest interatomic distance of the bulk; in a compound
with a non-metal, the longer of d_nn and the bulk distance between the two atoms' elements)
surround it, in-plane directions with no gap wider than a half turn, or one of them sits right
above it.
Every other atom is a surface atom (tag 1). The atoms under the hollows of fcc(111)/(100),
bcc(110)/(100) and hcp(0001) stay subsurface; the top layer of flat facets and every exposed
atom of open and stepped facets are surface: the trough atoms of fcc(110), the three layers of
bcc(111), and the atom at the foot of each step, which a higher atom covers from one side only
(fcc(211): the step-edge atom above it, as near in-plane as the atoms over a bcc(100) hollow).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.constraints import FixAtoms
from ase.geometry.minkowski_reduction import minkowski_reduce
from pymatgen.core import Lattice, Structure
from pymatgen.core.surface import Slab, SlabGenerator
from pymatgen.io.ase import AseAtomsAdaptor
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from catscreen.build.bulks import SYMPREC, Bulk
from catscreen.errors import CatscreenError, first_line

DEFAULT_VACUUM = 20.0  # A, EnumerateSettings.vacuum
# A: below it a slab meets its periodic image across the gap (0.5 A fused Pt(111) with its
# image, Pt-Pt 1.68 A) and an adsorbate 2-3 A tall sits within the 5 A cutoff of the image
MIN_VACUUM = 8.0
# upper bounds of the sizes a user gives: `--vacuum 1e9` filled 24 GB before the kernel killed
# it, `--min-ab 1e5` asked for 58 GiB; real screens stay far below them
MAX_LENGTH = 100.0  # A: thickness, vacuum, in-plane length
MAX_LAYERS = 100
MAX_REPEAT = 20
EXPOSED_RADIUS = 0.85  # cylinder radius for the exposure test, in units of d_nn
EXPOSED_DZ = 0.3  # A; an atom must be this much higher to cover another
ABOVE_RADIUS = 0.3  # in units of d_nn: a covering atom this near in-plane sits right above
GAP_TOL = 0.05  # rad: two covering atoms on opposite sides (a bridge over the atom) surround it
LAYER_TOL = 0.1  # A: atoms this close in height are one layer (CatKit: a layer is one height)

Miller = tuple[int, int, int]
Bravais = tuple[int, int, int, int]  # hexagonal Miller-Bravais (h, k, i, l), i = -(h + k)


@dataclass(frozen=True, eq=False)
class SlabTermination:
    """One candidate surface: a tagged, constrained slab with its adsorbate side at +z."""

    atoms: Atoms
    bulk: Bulk
    miller: Miller
    shift: float
    termination: int
    side: str  # 'top' or 'bottom' of the pymatgen slab
    vacuum: float = DEFAULT_VACUUM
    repeat: tuple[int, int] = (1, 1)  # the in-plane repeat of pymatgen's cell in `atoms`
    layers: int | None = None  # atomic layers asked for (None: min_slab_size)
    repeat_asked: bool = False  # `repeat` was asked for (else worked out from min_ab)
    of: int = 1  # terminations the facet has, before max_terminations kept the first few

    @property
    def slab_id(self) -> str:
        return stable_id("slab", self.identity())

    def identity(self) -> dict[str, object]:
        return {
            "bulk": self.bulk.fingerprint(),
            "miller": list(self.miller),
            "shift": round(self.shift, 4) + 0.0,  # -0.0 as 0.0
            "side": self.side,
            "n_atoms": len(self.atoms),
            # another vacuum is another slab (and energy); the default keeps the ids it had
            **({} if self.vacuum == DEFAULT_VACUUM else {"vacuum": round(self.vacuum, 3)}),
            # n_atoms alone cannot tell 2x1 cells of 8 layers from 2x2 of 4 (Ni3Al(110), 32
            # atoms); slabs sized the older way keep the ids they had
            **({} if self.layers is None else {"layers": self.layers}),
            **({"repeat": list(self.repeat)} if self.repeat_asked else {}),
        }


def wrapped_shift(shift: float) -> float:
    """A termination's shift in [0, 1) to 1e-4: the same surface came out of pymatgen as 1.0
    or 0.0 with the cell 5e-6 A apart, under another slab_id and termination order."""
    wrapped = float(shift) % 1.0 + 0.0
    return 0.0 if round(wrapped, 4) >= 1.0 else wrapped


def stable_id(prefix: str, payload: dict[str, object]) -> str:
    """`prefix-<16 hex>` from a JSON payload; the prefix keeps extxyz from reading it as a number."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return f"{prefix}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def miller_text(miller: Miller | Bravais) -> str:
    """(1, 1, 1) -> '1,1,1', the form the tables use."""
    return ",".join(str(i) for i in miller)


def facet_text(bulk: Bulk, miller: Miller) -> str:
    """A facet as a message names it: 4-index on a hexagonal lattice, as the user wrote it
    (`--miller 20-21` read "Ru (2,0,1) needs ..."); the tables keep 3 indices."""
    if not bulk.structure.lattice.is_hexagonal():
        return miller_text(miller)
    h, k, z = miller
    return miller_text((h, k, -(h + k), z))


def parse_miller(text: str) -> Miller:
    """`1,1,1`, `1 1 1`, `111`, `1-10`, or hexagonal `0001` / `0,0,0,1` (h,k,i,l -> h,k,l)."""
    return three_index(parse_facet(text))


def parse_repeat(text: str) -> tuple[int, int]:
    """`2x2`, `3x2`, `2,2` or `2 2`: how often the primitive surface cell repeats along a, b."""
    parts = [p for p in re.split(r"[x,\s]+", text.strip().lower()) if p]
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise CatscreenError(f"bad repeat {text!r}: give two positive whole numbers, like 2x2")
    return int(parts[0]), int(parts[1])


def three_index(facet: Miller | Bravais) -> Miller:
    """(h, k, i, l) -> (h, k, l); a 3-index facet as it is."""
    return (facet[0], facet[1], facet[3]) if len(facet) == 4 else facet  # type: ignore[return-value]


def parse_facet(text: str) -> Miller | Bravais:
    """Like `parse_miller`, but a 4-index facet stays 4-index: it only means something for a
    hexagonal bulk, and `facet_for` must be able to tell (0001 of Ru is not 001 of Ni)."""
    raw = text.strip().strip("()").strip()
    if re.search(r"[,\s]", raw):
        parts = [p for p in re.split(r"[,\s]+", raw) if p]
    else:  # compact: one (signed) digit per index
        parts = re.findall(r"-?\d", raw)
        if "".join(parts) != raw:
            parts = []
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) == 4:
        h, k, i, _ = values
        if i != -(h + k):
            raise CatscreenError(
                f"inconsistent Miller-Bravais index {text!r}: i must equal -(h+k) = {-(h + k)}"
            )
    if len(values) not in (3, 4) or not any(values):
        raise CatscreenError(
            f"cannot read Miller index {text!r}: expected e.g. 111, 1,1,1 or 0001 (hexagonal)"
        )
    return reduced_facet(values)  # type: ignore[arg-type]


def reduced_facet(facet: Miller | Bravais) -> Miller | Bravais:
    """(2,2,2) -> (1,1,1): pymatgen cuts the same slab for both, and one surface has one id."""
    divisor = math.gcd(*facet)
    return tuple(i // divisor for i in facet)  # type: ignore[return-value]


def facet_for(bulk: Bulk, facet: Miller | Bravais) -> Miller | None:
    """The 3-index facet of `bulk`, or None when a Miller-Bravais index meets a non-hexagonal
    bulk (several bulks on one command line share the --miller list)."""
    if len(facet) == 3:
        return facet  # type: ignore[return-value]
    if not bulk.structure.lattice.is_hexagonal():
        return None
    return three_index(facet)


def _facet_operations(bulk: Bulk) -> list[np.ndarray]:
    """How the crystal's point group (with inversion: a slab shows both of its sides) maps
    Miller indices, as integer matrices in the conventional basis. The crystal's, not its
    lattice's (pymatgen's facet tools): pyrite (m-3) has no operation taking (210) to (120),
    which were refused as one surface, and `--max-index 2` dropped (120)."""
    analyzer = SpacegroupAnalyzer(bulk.structure, symprec=SYMPREC)
    rotations = [op.rotation_matrix for op in analyzer.get_point_group_operations()]
    # a plane's normal (reciprocal, column) goes as the inverse transpose of a direct
    # rotation; over a group that is the set of the transposes
    ops = {tuple(np.rint(r.T).astype(int).ravel()) for r in rotations}
    ops |= {tuple(-v for v in op) for op in ops}
    return [np.array(op).reshape(3, 3) for op in sorted(ops)]


def _family(ops: list[np.ndarray], miller: Miller) -> set[Miller]:
    return {tuple(int(i) for i in op @ np.asarray(miller)) for op in ops}  # type: ignore[misc]


def check_distinct_facets(bulk: Bulk, millers: list[Miller]) -> None:
    """Two requested facets that are one surface of this bulk (1,1,1 and -1,1,1 or 2,2,2 on
    fcc) would cut identical slabs under two slab ids: every placement relaxed twice and the
    facet ranked twice."""
    ops = _facet_operations(bulk)
    seen: dict[Miller, Miller] = {}  # a symmetry-equivalent, reduced index -> the facet given
    for miller in millers:
        divisor = math.gcd(*miller)
        reduced = tuple(i // divisor for i in miller)
        if reduced in seen and seen[reduced] == miller:
            raise CatscreenError(
                f"{bulk.name}: facet {facet_text(bulk, miller)} given twice (a multiple of an "
                "index, or its 3- and 4-index forms, is one facet)"
            )
        if reduced in seen:
            raise CatscreenError(
                f"{bulk.name}: facets {facet_text(bulk, seen[reduced])} and "
                f"{facet_text(bulk, miller)} are the same surface (symmetry-equivalent); give one "
                "of them"
            )
        seen.update({m: miller for m in _family(ops, reduced)})  # type: ignore[arg-type]


def distinct_millers(bulk: Bulk, max_index: int) -> list[Miller]:
    """All symmetrically distinct facets with indices up to `max_index`: the representative
    pymatgen picks (smallest indices, first non-zero index positive), under the crystal's
    point group."""
    if max_index < 1:
        raise CatscreenError(f"--max-index must be at least 1, got {max_index}")
    ops = _facet_operations(bulk)
    span = range(-max_index, max_index + 1)
    candidates = sorted(
        itertools.product(span, repeat=3),
        key=lambda m: (max(map(abs, m)), sum(map(abs, m)), -m[0], -m[1], -m[2]),
    )
    found: list[Miller] = []
    covered: set[Miller] = set()
    for m in candidates:
        if math.gcd(*m) != 1 or next(i for i in m if i) < 0 or m in covered:
            continue
        found.append(m)  # type: ignore[arg-type]
        covered |= _family(ops, m)  # type: ignore[arg-type]
    return sorted(found, key=lambda m: (sum(map(abs, m)), m))


def _flip(atoms: Atoms) -> Atoms:
    """Turn the slab upside down (a proper rotation about x) keeping a right-handed cell."""
    flipped = atoms.copy()
    flipped.rotate(180, "x", rotate_cell=True)
    cell = flipped.cell.array.copy()
    cell[1] *= -1
    cell[2] *= -1
    flipped.set_cell(cell)
    flipped.wrap()
    return flipped


def _to_atoms(slab) -> Atoms:
    """Reduced in-plane cell, orthogonal c along +z, a along x, atoms wrapped in-plane and the slab centred in z."""
    atoms = AseAtomsAdaptor.get_atoms(slab.get_orthogonal_c_slab())
    reduced, _ = minkowski_reduce(atoms.cell.array, pbc=[True, True, False])
    if np.linalg.det(reduced) < 0:
        reduced[1] *= -1  # same lattice, right-handed
    atoms.set_cell(reduced)  # the same lattice: atoms stay where they are
    atoms.set_cell(atoms.cell.standard_form()[0], scale_atoms=True)
    atoms.info.clear()
    for name in list(atoms.arrays):
        if name not in ("numbers", "positions"):
            del atoms.arrays[name]
    atoms.pbc = True
    atoms.wrap()
    return atoms


def inplane_images(
    atoms: Atoms, index: np.ndarray, reach: tuple[int, int] = (1, 1)
) -> tuple[np.ndarray, np.ndarray]:
    """xy of the given atoms in their in-plane images up to `reach` cells along a and b, and
    the original index of each point."""
    cell2 = atoms.cell.array[:2, :2]
    steps = [(i, j) for i in range(-reach[0], reach[0] + 1) for j in range(-reach[1], reach[1] + 1)]
    shifts = np.array(steps) @ cell2
    points = (atoms.positions[index, :2][None, :, :] + shifts[:, None, :]).reshape(-1, 2)
    return points, np.tile(index, len(shifts))


def exposed_atoms(
    atoms: Atoms, d_nn: float, pair_nn: dict[tuple[str, str], float] | None = None
) -> np.ndarray:
    """Boolean mask of atoms not covered from above (see the module docstring).

    Every in-plane periodic image within the cylinder counts, not only the nearest one: in a
    p(1x1) cell the atoms around a hollow are all images of one atom, and the nearest image
    alone left subsurface layers "exposed" (tag 1, free, with ontop sites on them).
    `pair_nn` (a compound's, `Bulk.pair_nn`): the cylinder of a covering atom is 0.85 of its
    bulk distance to the covered one's element where that is longer than d_nn: in SrTiO3
    d_nn is the Ti-O bond (1.95 A), and the O under the SrO layer's hollows (1.95 A in-plane
    from the Sr and O around it, 2.76 A in the bulk) was exposed, free, and given sites.
    """
    xy, z = atoms.positions[:, :2], atoms.positions[:, 2]
    cell2 = atoms.cell.array[:2, :2]
    symbols = np.array(atoms.get_chemical_symbols())
    longest = max([d_nn, *(pair_nn or {}).values()])
    radius = EXPOSED_RADIUS * longest
    area = abs(np.linalg.det(cell2))
    # images along a: rows parallel to b are area / |b| apart, so r |b| / area of them
    reach = [math.ceil(radius * np.linalg.norm(cell2[1 - k]) / area) + 1 for k in (0, 1)]
    images, owners = inplane_images(atoms, np.arange(len(atoms)), (reach[0], reach[1]))
    image_z = z[owners]
    # each element's cylinder radius for every image (once per element, not per atom)
    reaches = {
        a: EXPOSED_RADIUS
        * np.array([max(d_nn, (pair_nn or {}).get((a, e), d_nn)) for e in symbols])[owners]
        for a in set(symbols)
    }
    exposed = np.ones(len(atoms), dtype=bool)
    for i in range(len(atoms)):
        v = images - xy[i]
        near = np.linalg.norm(v, axis=1) < reaches[symbols[i]]
        covering = (image_z > z[i] + EXPOSED_DZ) & near
        if not covering.any():
            continue
        v = v[covering]
        if (np.linalg.norm(v, axis=1) < ABOVE_RADIUS * d_nn).any():
            exposed[i] = False
            continue
        angles = np.sort(np.arctan2(v[:, 1], v[:, 0]))
        widest_gap = np.diff(np.r_[angles, angles[0] + 2 * np.pi]).max()
        exposed[i] = widest_gap > np.pi + GAP_TOL
    return exposed


def tag_and_fix(
    atoms: Atoms, d_nn: float, pair_nn: dict[tuple[str, str], float] | None = None
) -> Atoms:
    """Tags 1 (exposed surface) / 0 (subsurface) and FixAtoms on the tag-0 atoms."""
    tags = np.where(exposed_atoms(atoms, d_nn, pair_nn), 1, 0)
    atoms.set_tags(tags)
    atoms.set_constraint(FixAtoms(indices=np.flatnonzero(tags == 0)))
    return atoms


def _repeat(atoms: Atoms, min_ab: float) -> tuple[int, int]:
    reps = [max(1, math.ceil(min_ab / np.linalg.norm(atoms.cell[i]) - 1e-9)) for i in (0, 1)]
    return reps[0], reps[1]


def atom_layers(atoms: Atoms, tol: float = LAYER_TOL) -> np.ndarray:
    """Each atom's layer, 0 at the top: atoms within `tol` in height of the next higher one
    share its layer, as CatKit counts layers (one height each)."""
    order = np.argsort(-atoms.positions[:, 2], kind="stable")
    steps = -np.diff(atoms.positions[order, 2]) > tol
    layer = np.empty(len(atoms), dtype=int)
    layer[order] = np.concatenate([[0], np.cumsum(steps)]) if len(atoms) else []
    return layer


class _SlabGenerator(SlabGenerator):
    """pymatgen's SlabGenerator with `primitive=True`, less one step: pymatgen also reduces the
    oriented bulk cell under the slab's lattice constraints, for a Slab attribute catscreen
    never reads, and on high-index facets that search takes minutes (benchmarks/slab_cut.py:
    Pt(6,1,1) 98 s, Pt(10,1,1) unfinished after 4 min; make_slabs with this class 3.2 and 21 s,
    tags and repeat included). The slab's own reduction is pymatgen's call, so every slab is
    the one pymatgen gives."""

    def get_slab(self, shift: float = 0, tol: float = 0.1, energy: float | None = None) -> Slab:
        slab = super().get_slab(shift=shift, tol=tol, energy=energy)
        # reduced in the stacked cells' own frame, as pymatgen does before Slab() turns the
        # lattice: the turned one's rounding noise made minkowski_reduce pick another of two
        # equal cells (bcc(110), fcc(210))
        a, b, c = self.oriented_unit_cell.lattice.matrix
        stacked = Lattice([a, b, round(slab.lattice.c / np.linalg.norm(c)) * c])
        prim = Structure(
            stacked, slab.species_and_occu, slab.frac_coords, site_properties=slab.site_properties
        ).get_primitive_structure(tolerance=tol, reduce=False)
        return Slab(
            prim.lattice,
            prim.species_and_occu,
            prim.frac_coords,
            slab.miller_index,
            slab.oriented_unit_cell,  # unreduced: the reduction is the search skipped here
            slab.shift,
            np.linalg.solve(self.parent.lattice.matrix.T, prim.lattice.matrix.T).T,
            site_properties=prim.site_properties,
            energy=None if energy is None else energy * prim.volume / slab.volume,
        )


def _surface_depth(atoms: Atoms, bulk: Bulk) -> int:
    """Layers a cut must keep so that the surface stays as it is: every exposed atom's layer
    and one covered layer under the deepest (Ru(20-21): exposed atoms six layers deep)."""
    layer = atom_layers(atoms)
    exposed = exposed_atoms(atoms, bulk.d_nn, bulk.pair_nn)
    return int(layer[exposed].max()) + 2


def _finish(atoms: Atoms, bulk: Bulk, vacuum: float, repeat: tuple[int, int]) -> Atoms:
    atoms.center(vacuum=vacuum / 2, axis=2)
    return tag_and_fix(atoms.repeat((*repeat, 1)), bulk.d_nn, bulk.pair_nn)


def make_slabs(
    bulk: Bulk,
    miller: Miller,
    min_slab_size: float,
    vacuum: float,
    min_ab: float,
    *,
    layers: int | None = None,
    repeat: tuple[int, int] | None = None,
    max_terminations: int | None = None,
) -> list[SlabTermination]:
    """Every distinct termination of one facet, bottom terminations of asymmetric slabs included
    (in pymatgen's shift order, a bottom after its top), or the first `max_terminations`.

    `layers` (exactly that many atomic layers, at least the surface's depth) replaces
    `min_slab_size` and `repeat` (the primitive surface cell repeated a x b times) replaces
    `min_ab`: pymatgen rounds a thickness up to whole oriented cells (7 A: Pt(111) 6 layers,
    Au(111) 3) and min_ab picks each metal's own repeat (5 A: Ni(111) 3x3 beside Pt(111) 2x2).
    layers gives candidates of one facet one thickness; repeat one coverage where their
    primitive surface cells match (Pt3Ni(111)'s holds four Pt(111) cells).
    """
    miller = reduced_facet(miller)  # type: ignore[assignment]
    if layers is not None:  # each spacing d_hkl holds >= 1 layer; 2 d_nn more shows how
        # deep the exposed atoms reach below the termination
        min_slab_size = layers * bulk.structure.lattice.d_hkl(miller) + 2 * bulk.d_nn
    try:
        generator = _SlabGenerator(
            bulk.structure,
            miller,
            min_slab_size=min_slab_size,
            min_vacuum_size=vacuum,
            lll_reduce=False,
            center_slab=False,  # centred in ASE: pymatgen's centring is slow
            primitive=False,  # reduced by _SlabGenerator.get_slab
            max_normal_search=1,
        )
        slabs = generator.get_slabs(symmetrize=False)
    except Exception as exc:  # pymatgen raises ValueError and others for impossible facets
        raise CatscreenError(
            f"{bulk.name} ({facet_text(bulk, miller)}): cannot cut slab: {first_line(exc)}"
        ) from exc
    if not slabs:
        raise CatscreenError(f"{bulk.name} ({facet_text(bulk, miller)}) yields no slab")
    cuts: list[tuple[float, str, Atoms]] = []
    for shift, slab in sorted(((wrapped_shift(s.shift), s) for s in slabs), key=lambda x: x[0]):
        top = _to_atoms(slab)
        cuts.append((shift, "top", top))
        if not slab.is_symmetric():
            cuts.append((shift, "bottom", _flip(top)))
    total = len(cuts)
    cuts = cuts[:max_terminations]  # before the depth check: a dropped one may be deeper
    if layers is not None:
        needs = [_surface_depth(atoms, bulk) for _, _, atoms in cuts]
        if layers < max(needs):
            fit = next((k for k, need in enumerate(needs) if need > layers), len(needs))
            each = (
                ""
                if len(set(needs)) == 1
                else f"; by termination: {', '.join(f'{i}: {n}' for i, n in enumerate(needs))}"
            )
            if fit:  # the first terminations fit: keeping only those is the other way out
                each += f" (max_terminations / --max-terminations {fit} keeps those that fit)"
            raise CatscreenError(
                f"{bulk.name} ({facet_text(bulk, miller)}) needs at least {max(needs)} layers "
                "(slab.layers / --layers): "
                f"exposed atoms down to layer {max(needs) - 1} and a covered one under them (a "
                f"layer is one height; open and stepped facets have several per terrace){each}"
            )
        cuts = [(shift, side, atoms[atom_layers(atoms) < layers]) for shift, side, atoms in cuts]
    terminations: list[SlabTermination] = []
    for shift, side, atoms in cuts:
        cell_repeat = repeat or _repeat(atoms, min_ab)
        terminations.append(
            SlabTermination(
                atoms=_finish(atoms, bulk, vacuum, cell_repeat),
                bulk=bulk,
                miller=miller,
                shift=shift,
                termination=len(terminations),
                side=side,
                vacuum=vacuum,
                repeat=cell_repeat,
                layers=layers,
                repeat_asked=repeat is not None,
                of=total,
            )
        )
    return terminations
