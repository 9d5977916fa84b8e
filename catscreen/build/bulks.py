"""Bulk crystals: the built-in library (data/bulks.yaml) or any file ASE reads.

Every bulk is converted to pymatgen's conventional standard cell, so Miller indices mean the
same thing whichever way the user wrote the cell (cubic for fcc/bcc, hexagonal for hcp).
"""

from __future__ import annotations

import hashlib
import json
import re
from contextlib import suppress
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from ase import Atoms
from ase.build import bulk as ase_bulk
from ase.data import chemical_symbols, covalent_radii
from ase.formula import Formula
from ase.io import read
from ase.io.cif import CIFBlock, parse_cif
from ase.neighborlist import neighbor_list
from pymatgen.core import Element, Structure
from pymatgen.io.ase import AseAtomsAdaptor
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from catscreen.errors import CatscreenError, did_you_mean, unreadable
from catscreen.paths import data_path

# Fractional positions of the alloy prototypes, per element slot (A, B); see data/bulks.yaml.
_PROTOTYPES: dict[str, tuple[list[list[float]], list[list[float]]]] = {
    "L1_2": ([[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]], [[0, 0, 0]]),
    "B2": ([[0, 0, 0]], [[0.5, 0.5, 0.5]]),
    "L1_0": ([[0, 0, 0], [0.5, 0.5, 0]], [[0.5, 0, 0.5], [0, 0.5, 0.5]]),
}


@dataclass(frozen=True, eq=False)
class Bulk:
    """A named bulk in its conventional standard cell."""

    name: str
    structure: Structure
    source: str

    @cached_property
    def d_nn(self) -> float:
        """Shortest interatomic distance, the length scale of surface and site geometry."""
        d = neighbor_list("d", AseAtomsAdaptor.get_atoms(self.structure), 6.0)
        if len(d) == 0:
            raise CatscreenError(f"bulk {self.name}: atoms more than 6 A apart, not a solid")
        return float(d.min())

    @cached_property
    def pair_nn(self) -> dict[tuple[str, str], float]:
        """A compound's shortest distance per pair of elements (both orders), when it holds a
        non-metal (an oxide, nitride, sulfide): the length scale of what covers what in its
        slabs, whose shortest bond (Ti-O) is far below the in-plane spacings. Empty for
        metals and alloys, whose tag rule stays d_nn's."""
        atoms = AseAtomsAdaptor.get_atoms(self.structure)
        symbols = sorted(set(atoms.get_chemical_symbols()))
        if all(Element(e).is_metal for e in symbols):
            return {}
        i, j, d = neighbor_list("ijd", atoms, 6.0)
        names = np.array(atoms.get_chemical_symbols())
        out: dict[tuple[str, str], float] = {}
        for a, b, dist in zip(names[i], names[j], d, strict=True):
            key = (str(a), str(b))
            out[key] = min(out.get(key, np.inf), float(dist))
        return out

    @property
    def formula(self) -> str:
        return self.structure.composition.reduced_formula

    def fingerprint(self) -> str:
        """Hash of the name and the structure (rounded), so ids change when the crystal does."""
        s = self.structure
        payload = {
            "name": self.name,
            # + 0.0: -0.0 (a -2e-16 rounded) hashed otherwise than 0.0, so another numpy or
            # pymatgen gave every id of a bulk anew
            "lattice": (np.round(s.lattice.matrix, 4) + 0.0).tolist(),
            "species": [str(sp) for sp in s.species],
            "frac": (np.mod(np.round(s.frac_coords, 4), 1.0) + 0.0).tolist(),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


@cache
def bulk_library() -> dict[str, dict[str, Any]]:
    """The raw library entries, name -> {structure, a, [c], [elements], source}."""
    with open(data_path("bulks.yaml")) as fh:
        return dict(yaml.safe_load(fh)["bulks"])


def _library_atoms(name: str, entry: dict[str, Any]) -> Atoms:
    kind = entry["structure"]
    if kind in ("fcc", "bcc"):
        return ase_bulk(name, kind, a=entry["a"], cubic=True)
    if kind == "hcp":
        return ase_bulk(name, "hcp", a=entry["a"], c=entry["c"])
    a_sites, b_sites = _PROTOTYPES[kind]
    el_a, el_b = entry["elements"]
    cell = np.diag([entry["a"], entry["a"], entry.get("c", entry["a"])])
    return Atoms(
        [el_a] * len(a_sites) + [el_b] * len(b_sites),
        scaled_positions=a_sites + b_sites,
        cell=cell,
        pbc=True,
    )


# Symmetry tolerance (A) for the standard setting. The refined cell is idealised to the
# symmetry found, so a loose tolerance would average away a strain the user put in on purpose
# (0.1 A turned a 2% tetragonal Pt cell cubic); 0.01 A keeps it and absorbs DFT-relaxation noise.
SYMPREC = 0.01


LOOSE_SYMPREC = 0.1  # A: what a noisy (DFT-relaxed, rounded) file may have been meant as


def symmetry_note(bulk: Bulk) -> str | None:
    """A file bulk whose symmetry is higher at 0.1 A than at SYMPREC: its Miller indices refer
    to the lower-symmetry cell (fcc Pt with 0.014 A of cell noise read as R-3m, and `1,0,0`
    cut a facet of 0.05 atoms/A^2, not fcc(100)'s 0.13). Said, not changed: the distortion
    may be meant."""
    try:
        tight = SpacegroupAnalyzer(bulk.structure, SYMPREC, angle_tolerance=-1.0)
        loose = SpacegroupAnalyzer(bulk.structure, LOOSE_SYMPREC, angle_tolerance=-1.0)
    except ValueError:  # no consistent group (pymatgen's SymmetryUndeterminedError): no note
        return None
    if loose.get_space_group_number() == tight.get_space_group_number():  # loose: a supergroup
        return None
    return (
        f"bulk {bulk.name} is {tight.get_space_group_symbol()} at {SYMPREC} A but "
        f"{loose.get_space_group_symbol()} at {LOOSE_SYMPREC} A: Miller indices refer to the "
        f"{tight.get_space_group_symbol()} cell; symmetrise the file if that distortion is noise"
    )


def standardize(atoms: Atoms) -> Structure:
    """Conventional standard cell (pymatgen), the frame Miller indices refer to. pymatgen's
    5-degree angle tolerance disagrees with SYMPREC on some slightly distorted cells (primitive
    fcc with 1% on one vector): no group, and its slab tools fail on them too, so one line."""
    structure = AseAtomsAdaptor.get_structure(atoms)
    try:
        analyzer = SpacegroupAnalyzer(structure, symprec=SYMPREC)
    except ValueError as exc:  # pymatgen's SymmetryUndeterminedError
        raise CatscreenError(
            f"no space group found for {atoms.get_chemical_formula()} at {SYMPREC} A (a cell "
            "distorted by about a percent?): symmetrise it, or give the distortion clearly"
        ) from exc
    return _canonical_order(analyzer.get_conventional_standard_structure())


def _canonical_order(structure: Structure) -> Structure:
    """Atoms sorted by position within each element. The standard cell keeps a file's atom
    order there, and slab atom indices, site ids and placement seeds follow it: a Pt3Ni file
    written in another order got other config ids. The elements keep the standard cell's
    order, which does not follow the file's, and library bulks are sorted already, so the
    ids made before stay."""
    species = [str(sp) for sp in structure.species]
    groups = list(dict.fromkeys(species))
    frac = np.mod(np.round(structure.frac_coords, 4), 1.0) + 0.0
    order = sorted(range(len(structure)), key=lambda i: (groups.index(species[i]), *frac[i]))
    return Structure.from_sites([structure[i] for i in order])


def _occupancy(value: object) -> float:
    """A CIF occupancy; `?` (unknown) and `.` (inapplicable) mean a full site."""
    return 1.0 if str(value).strip() in ("?", ".") else float(value)  # type: ignore[arg-type]


def check_atoms(atoms: Atoms, where: str) -> None:
    """What a structure file (a bulk or a custom adsorbate) must hold: real elements, whole
    sites, no two atoms on one spot."""
    if (atoms.numbers == 0).any():  # ASE's ghost atom X: no radius, no element for any model
        raise CatscreenError(f"{where} holds ghost atoms (X): unknown element X, no model knows it")
    if not (np.isfinite(atoms.positions).all() and np.isfinite(atoms.cell.array).all()):
        raise CatscreenError(f"{where} holds a NaN or infinite coordinate or cell length")
    check_ordered(atoms, where)
    check_separated(atoms, where)


def check_ordered(atoms: Atoms, where: str) -> None:
    """ASE keeps one species of a mixed or partly empty CIF site and drops the rest silently."""
    for site in (atoms.info.get("occupancy") or {}).values():
        try:
            site = {el: _occupancy(occ) for el, occ in site.items()}
        except ValueError:
            raise CatscreenError(f"{where}: an occupancy is no number ({site})") from None
        if len(site) > 1 or sum(site.values()) < 0.999:
            text = ", ".join(f"{el} {occ:g}" for el, occ in site.items())
            raise CatscreenError(
                f"{where} has partial occupancies ({text}): disordered structures are not "
                "supported; give an ordered cell (e.g. one special quasirandom structure)"
            )


MIN_SEPARATION = 0.5  # A: closer atoms are a typo or a duplicated site, not a crystal


def check_separated(atoms: Atoms, where: str) -> None:
    """Two atoms on one spot (a site listed twice in a POSCAR) would stop the symmetry search.
    A neighbour list, not all distances: those took 3.9 GB for a 2048-atom cell."""
    if len(atoms) < 2:
        return
    i, j, d = neighbor_list("ijd", atoms, MIN_SEPARATION)
    if len(d):
        k = int(np.argmin(d))
        raise CatscreenError(
            f"{where}: atoms {i[k]} and {j[k]} ({atoms[i[k]].symbol}, {atoms[j[k]].symbol}) are "
            f"{d[k]:.{2 if d[k] < 1e-3 else 3}f} A apart; "
            + (
                "is a site listed twice?"
                if d[k] < 1e-3
                else "a special position rounded (0.333 for 1/3), so that its symmetry "
                "copies nearly coincide? give its coordinates to 4 decimals or more"
                if d[k] < 0.1 and atoms[i[k]].symbol == atoms[j[k]].symbol
                else "a typo in a coordinate, or a cell in other units than Angstrom?"
            )
        )


MAX_GAP = 6.0  # A of empty space across a cell: a slab, a 2D sheet or a boxed molecule
MIN_BOND_FRACTION = 0.5  # of the covalent bond length: closer is a cell in the wrong units


def check_bulk_like(atoms: Atoms, where: str) -> None:
    """A file given as a bulk is a crystal: no empty layer across the cell (graphene with 20 A
    of c was cut through the sheet, a boxed CO enumerated as a solid) and no atoms far closer
    than a bond (a POSCAR whose scale line was left at 1 with vectors in units of a: Pt at
    0.71 A, 2160-atom slabs)."""
    inverse = np.linalg.inv(atoms.cell.array)  # columns: the reciprocal vectors (no 2 pi)
    frac = atoms.get_scaled_positions(wrap=True)
    for k, axis in enumerate("abc"):
        order = np.sort(frac[:, k])
        gap = float(np.max(np.diff(np.append(order, order[0] + 1.0))))
        spacing = 1.0 / float(np.linalg.norm(inverse[:, k]))  # between the (k) lattice planes
        if gap * spacing > MAX_GAP:
            raise CatscreenError(
                f"{where} has {gap * spacing:.1f} A of empty space across its cell (along "
                f"{axis}): a slab, a 2D sheet or a molecule in a box, not a bulk crystal"
            )
    radii = covalent_radii[atoms.numbers]
    i, j, d = neighbor_list("ijd", atoms, float(radii.max()))  # pairs within one radius sum
    ratio = d / (radii[i] + radii[j]) if len(d) else np.array([])
    if len(ratio) and ratio.min() < MIN_BOND_FRACTION:
        k = int(np.argmin(ratio))
        raise CatscreenError(
            f"{where}: atoms {i[k]} and {j[k]} are {d[k]:.2f} A apart, under half a "
            f"{atoms[i[k]].symbol}-{atoms[j[k]].symbol} bond: is the cell in other units "
            "(a POSCAR scale line)?"
        )


def unknown_bulk(name: str, alternative: str) -> str | None:
    """Why `name` is no library bulk (None if it is); `alternative` says how to give a file."""
    library = bulk_library()
    if name in library:
        return None
    if name in chemical_symbols:
        why = f"element {name} has no entry in the bulk library"
    else:
        why = f"unknown bulk {name!r}{did_you_mean(name, library)}: not in the library"
    return f"{why} (library: {', '.join(library)}; {alternative})"


def library_bulk(name: str) -> Bulk:
    why = unknown_bulk(name, "nor a file of that name: give a CIF/POSCAR/extxyz file")
    if why is not None:
        raise CatscreenError(why)
    entry = bulk_library()[name]
    return Bulk(name, standardize(_library_atoms(name, entry)), str(entry["source"]))


FRAME_INDEX = r"0|[1-9][0-9]*"  # the i of `stem_i`, as file_bulks writes it


def file_bulks(path: Path) -> list[Bulk]:
    """Every frame of a structure file ASE can read; several frames get `stem_i` names."""
    cif = path.suffix.lower() in (".cif", ".mcif")
    if not cif and (why := _vasp4_guess(path)):
        raise CatscreenError(f"bulk file {path}: {why}")
    try:
        if not cif:
            frames = read(path, index=":")
        elif (frames := _cif_frames(path)) is None:
            frames = _pymatgen_cif(path, path)
    except CatscreenError:
        raise
    except Exception as exc:  # ASE raises many types for unreadable files
        frames = _pymatgen_cif(path) if cif else None
        if frames is None:
            raise CatscreenError(f"cannot read bulk file {path}: {unreadable(exc)}") from exc
    if not isinstance(frames, list):
        frames = [frames]
    if not frames:
        raise CatscreenError(f"cannot read bulk file {path}: no structure found in it")
    bulks = []
    for i, atoms in enumerate(frames):
        if not atoms.pbc.all() or atoms.cell.volume < 1e-6:
            raise CatscreenError(f"bulk file {path} (frame {i}) has no 3D periodic cell")
        where = f"bulk file {path} (frame {i})"
        check_atoms(atoms, where)
        check_bulk_like(atoms, where)
        name = path.stem if len(frames) == 1 else f"{path.stem}_{i}"
        bulks.append(Bulk(name, canonical_origin(standardize(atoms)), f"file {path.name}"))
    return bulks


def _vasp4_guess(path: Path) -> str | None:
    """A VASP 4 POSCAR (no element line above the counts) whose first line does not name one
    element per count: ASE takes the elements from that comment anyway ('POSCAR' with counts
    1 1 became PO, 'B2 NiAl' NiB) and the screening went on with them; 'NiAl' or 'Pt fcc'
    name them."""
    from ase.io.formats import filetype

    try:
        if filetype(str(path)) != "vasp":
            return None
        lines = path.read_text(errors="replace").splitlines()
        counts = lines[5].split()
        [int(c) for c in counts]
    except Exception:  # not a POSCAR, or a VASP 5 one: ASE reads it
        return None
    named = []  # as ASE reads the comment: each word a formula, digits and delimiters out
    for word in lines[0].split():
        with suppress(ValueError):
            named.extend(Formula(re.sub(r"-|_|,|\.|=|[0-9]|^", "", word)))
    named = [el for el in named if el in chemical_symbols[1:]]  # 'L12' names none
    if len(named) <= len(counts):  # one per count, or ASE looks in a POTCAR/OUTCAR beside it
        return None
    return (
        "a VASP 4 POSCAR (no element line above the atom counts) whose first line names more "
        f"elements than it has counts ({lines[0].strip()!r}: {', '.join(named)} for "
        f"{' '.join(counts)}), of which ASE would take the first {len(counts)}; add the "
        "element line (VASP 5)"
    )


ORIGIN_GRID = 24  # origin shifts tried along each axis: every normalizer shift is k/24


def canonical_origin(structure: Structure) -> Structure:
    """One origin for every file of the same crystal: the standard cell's origin is one of
    several equivalent points (Pt3Ni: Ni or Pt at 0; hcp: either inversion centre; a polar
    axis: anywhere on it), and which one spglib picks follows the file, so the same crystal
    written with a shifted origin got other slab shifts and ids. Of the shifts that keep
    every symmetry operation (grid shifts t with (R - I) t a centring vector; along a polar
    axis, an atom of the rarest element to 0), the one whose sorted positions come first.
    Library bulks keep their origin (and ids)."""
    ops = SpacegroupAnalyzer(structure, symprec=SYMPREC).get_symmetry_operations()
    rotations = np.array([op.rotation_matrix for op in ops]).round().astype(int)
    eye = np.eye(3, dtype=int)
    centring = np.array(
        [op.translation_vector for op, r in zip(ops, rotations, strict=True) if (r == eye).all()]
    )
    moved = np.unique((rotations - eye).reshape(-1, 3), axis=0)
    free = [k for k in range(3) if not moved[:, k].any()]  # polar axes: no rotation moves them
    species = [str(s) for s in structure.species]
    rarest = min(set(species), key=lambda s: (species.count(s), s))
    frac = structure.frac_coords
    grid = np.arange(ORIGIN_GRID) / ORIGIN_GRID
    bound = [k for k in range(3) if k not in free]
    on_grid = (
        np.stack(np.meshgrid(*[grid] * len(bound), indexing="ij"), -1).reshape(-1, len(bound))
        if bound
        else np.zeros((1, 0))
    )
    # along the free axes, one rarest atom at a time to 0 (all combinations of its
    # coordinates, n^3 in a P1 cell, took 376 s for 200 atoms)
    anchors = -frac[[s == rarest for s in species]][:, free] if free else np.zeros((1, 0))
    shifts = np.zeros((len(on_grid) * len(anchors), 3))
    shifts[:, bound] = np.repeat(on_grid, len(anchors), axis=0)
    shifts[:, free] = np.tile(anchors, (len(on_grid), 1))
    keep = np.ones(len(shifts), dtype=bool)
    for r in np.unique(rotations, axis=0):
        moved_by = ((r - eye) @ shifts.T).T  # where the shift moves this operation's part
        gap = moved_by[:, None, :] - centring[None, :, :]
        keep &= (np.abs(gap - np.round(gap)) < 1e-6).all(axis=2).any(axis=1)
    groups = [list(dict.fromkeys(species)).index(s) for s in species]
    best, best_key = np.zeros(3), None
    for t in shifts[keep]:  # in integers: float remainders (0.35230000000000006) chose before
        ticks = np.mod(np.rint((frac + t) * 1e4).astype(np.int64), 10_000)
        key = sorted(zip(groups, *ticks.T.tolist(), strict=True))
        if best_key is None or key < best_key:
            best, best_key = t, key
    # the same floats for the same crystal (0.9999999999999998 and 0 gave slab shifts 1 and 0)
    snapped = np.mod(np.rint((frac + best) * 1e10).astype(np.int64), 10**10) / 1e10
    return _canonical_order(Structure(structure.lattice, structure.species, snapped))


_HM_TAGS = ("_space_group_name_h-m_alt", "_symmetry_space_group_name_h-m")
_SYMOP_TAGS = (
    "_space_group_symop_operation_xyz",
    "_space_group_symop.operation_xyz",
    "_symmetry_equiv_pos_as_xyz",
)
_CODE_TAGS = ("_space_group.it_coordinate_system_code", "_space_group_it_coordinate_system_code")
# ASE's settings: origin choice 1 or 2, hexagonal or rhombohedral axes; b1 and abc name the
# standard monoclinic and orthorhombic cells, which are ASE's first setting too.
_SETTINGS = {"1": 1, "2": 2, "H": 1, "R": 2, "B1": 1, "ABC": 1}
# ICSD writes the setting as a last word: S (standard, origin choice 1), Z (origin choice 2)
_ICSD_SETTINGS = {"S": "1", "Z": "2", "H": "H", "R": "R"}


def _shelx_symbols(block: CIFBlock) -> list[str] | None:
    """Elements of a CIF whose labels are all upper case (SHELX: FE1, CO1, O1) and that gives
    no type symbols: ASE read FE1 as F, CO1 as C, PT1 as P. None for any other file (a
    mixed-case one's HO1 is a hydroxyl H)."""
    if block.get("_atom_site_type_symbol"):
        return None
    heads = []
    for label in block.get("_atom_site_label") or []:
        head = "".join(c for c in str(label)[:2] if c.isalpha()) or "?"
        if not head.isupper():
            return None
        heads.append(head)
    if not any(len(h) == 2 and h.capitalize() in chemical_symbols for h in heads):
        return None
    return [h.capitalize() if h.capitalize() in chemical_symbols else h[0] for h in heads]


def _cif_frames(path: Path) -> list[Atoms] | None:
    """ASE's CIF reading, in the origin or axes the space-group symbol names (`F d -3 m :2`,
    `R -3 m :R`). ASE reads a file that lists no symmetry operations in the first setting
    whatever its symbol says: diamond Si in origin choice 2 came out with 16 atoms 1.92 A
    apart (pymatgen too). None: a magnetic CIF, whose operations and centring ASE ignores (bcc
    Fe came out simple cubic), for pymatgen to read."""
    frames = []
    for block in parse_cif(str(path)):
        if not block.has_structure():
            continue
        if any(key.startswith("_space_group_symop_magn") for key in block):
            return None
        tags = dict(block)
        if (symbols := _shelx_symbols(block)) is not None:
            tags["_atom_site_type_symbol"] = symbols
        if (
            not any(block.get(t) for t in _SYMOP_TAGS)
            and "_symmetry_space_group_setting" not in block
        ):
            code = next((str(block[t]) for t in _CODE_TAGS if t in block), None)
            for t in _HM_TAGS:
                symbol, _, suffix = str(block.get(t, "")).partition(":")
                head, _, last = symbol.strip().rpartition(" ")
                if not suffix and head and last.upper() in _ICSD_SETTINGS:  # 'F d -3 m Z'
                    symbol, suffix = head, _ICSD_SETTINGS[last.upper()]
                if suffix:
                    tags[t] = symbol.strip()
                    code = code or suffix.strip()
            if code is not None:
                if code.upper() not in _SETTINGS:
                    raise CatscreenError(
                        f"bulk file {path}: space-group setting {code!r} cannot be applied "
                        "without symmetry operations; list them (_symmetry_equiv_pos_as_xyz) "
                        "or give the cell in P 1"
                    )
                tags["_symmetry_space_group_setting"] = _SETTINGS[code.upper()]
        frames.append(CIFBlock(block.name, tags).get_atoms())
    return frames


_GROUP_TAGS = (*_HM_TAGS, "_space_group_it_number", "_symmetry_int_tables_number")


def _pymatgen_cif(path: Path, required: Path | None = None) -> list[Atoms] | None:
    """pymatgen's reading of a CIF ASE cannot read (symmetry given only as operations, no
    space-group symbol) or reads wrong; None when it cannot either (`required`: an error
    naming that file instead). A space group it does not know either ('F m 3 m', ICSD's 'F d
    -3 m Z') with no operations listed is refused: pymatgen read it as P 1 with a warning, one
    atom per cell (Pt simple cubic, 3.92 A apart)."""
    import warnings

    from pymatgen.io.cif import CifParser

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its notes on rounded occupancies and the like
            parser = CifParser(path)
            structures = parser.parse_structures(primitive=False)
    except Exception as exc:  # pymatgen raises many types too; the ASE error is the one reported
        if required is None:
            return None
        raise CatscreenError(f"cannot read bulk file {required}: {unreadable(exc)}") from exc
    if any("Defaulting to P1" in w for w in parser.warnings):
        named = [str(b[t]) for b in parse_cif(str(path)) for t in _GROUP_TAGS if b.get(t)]
        if named:
            raise CatscreenError(
                f"bulk file {path}: space group {named[0]!r} is not one ASE or pymatgen knows, "
                "and the file lists no symmetry operations; give the standard symbol (e.g. "
                "'F m -3 m') or the operations (_symmetry_equiv_pos_as_xyz)"
            )
    for s in structures:
        if not s.is_ordered:
            raise CatscreenError(
                f"bulk file {path} has partial occupancies: disordered structures are not "
                "supported; give an ordered cell (e.g. one special quasirandom structure)"
            )
    return [AseAtomsAdaptor.get_atoms(s) for s in structures] or None


def load_bulks(specs: list[str]) -> list[Bulk]:
    """Library names and file paths, in the order given; a spec naming a file wins."""
    if not specs:
        raise CatscreenError("no bulk given: name a library bulk (e.g. Pt) or a structure file")
    bulks: list[Bulk] = []
    for spec in specs:
        path = Path(spec)
        as_path = bool(path.suffix or len(path.parts) > 1)  # a path, not a library name
        if path.is_dir() and (as_path or spec not in bulk_library()):  # `-b Pt --out Pt` ran
            raise CatscreenError(f"bulk file {path} is a folder; give a structure file")
        if not path.is_file() and as_path:
            raise CatscreenError(f"bulk file not found: {path}")
        bulks.extend(file_bulks(path) if path.is_file() else [library_bulk(spec)])
    names = [b.name for b in bulks]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise CatscreenError(
            f"bulk name(s) given twice: {', '.join(duplicates)} (a file is named by its stem: "
            "rename one, e.g. POSCAR_PtCo)"
        )
    return bulks
