"""Real DFT labels from GPAW, with spin off and spin on for the same structures.

These spin pairs are what teaches the model its spin condition: the same geometry labelled
twice, once spin-restricted and once spin-polarised. Each (structure, spin) result goes to its
own file, written atomically, so a killed run continues where it stopped.

Run the built-in spin-pair set in the background with
`nice -n 10 python -m catscreen.training.dft_labels --out scratch/gpaw_spin_pairs`.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import numbers
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
from ase import Atoms
from ase.build import (
    add_adsorbate,
    bcc100,
    bcc110,
    bcc111,
    bulk,
    fcc100,
    fcc110,
    fcc111,
    hcp0001,
)
from ase.calculators.calculator import kptdensity2monkhorstpack
from ase.calculators.singlepoint import SinglePointCalculator
from ase.constraints import FixAtoms
from ase.io import read, write
from ase.neighborlist import natural_cutoffs, neighbor_list

from catscreen.dft.settings import gas_moments
from catscreen.errors import CatscreenError, first_line
from catscreen.io import atomic_path
from catscreen.training.datasets import drop_stated_context, write_extxyz

SPINS: tuple[str, ...] = ("off", "on")
# Initial moments for spin-on runs (muB); anything else starts at 0 and may still polarise
# through its neighbours. Starting at or above the bulk moments favours the ferromagnetic
# solution; no search over magnetic orderings is made, so a run may land in another minimum.
DEFAULT_MAGMOMS: dict[str, float] = {"Fe": 3.0, "Co": 2.0, "Ni": 1.0, "Mn": 3.0, "Cr": 2.0}


@dataclass(frozen=True)
class GpawSettings:
    """Everything that defines a label; stored with every frame so labels are comparable."""

    xc: str = "PBE"
    ecut: float = 350.0  # plane-wave cutoff, eV
    smearing: float = 0.1  # Fermi-Dirac width, eV
    kpt_density: float = 2.0  # k-points per reciprocal Angstrom (ASE convention)
    maxiter: int = 300
    energy_tol: float = 5e-4  # SCF energy change per valence electron, eV

    def __post_init__(self) -> None:
        """GPAW's own errors for these come as tracebacks, or not at all: a negative width
        made an SCF that did not end."""
        checks = {  # name: (value, lowest allowed, lowest included)
            "--ecut": (self.ecut, 0.0, False),
            "--kpt-density": (self.kpt_density, 0.0, False),
            "--smearing": (self.smearing, 0.0, True),
            "energy_tol": (self.energy_tol, 0.0, False),
        }
        for name, (value, low, included) in checks.items():
            if not (math.isfinite(value) and (value >= low if included else value > low)):
                rule = ">=" if included else ">"
                raise CatscreenError(f"{name} must be a finite number {rule} {low:g}, not {value}")
        if self.maxiter < 1:
            raise CatscreenError(f"maxiter must be >= 1, not {self.maxiter}")

    @property
    def fidelity(self) -> str:
        return f"gpaw-{self.xc.lower()}"

    def kpts(self, atoms: Atoms) -> tuple[int, int, int]:
        """Monkhorst-Pack mesh from the density; one k-point along a slab's vacuum axis."""
        mesh = kptdensity2monkhorstpack(atoms, kptdensity=self.kpt_density, even=False)
        return tuple(int(k) if periodic else 1 for k, periodic in zip(mesh, atoms.pbc, strict=True))


def is_bulk(atoms: Atoms) -> bool:
    return bool(atoms.pbc.all())


def is_molecule(atoms: Atoms) -> bool:
    """No bond crosses the cell: a finite molecule, boxed or not."""
    if not atoms.pbc.any():
        return True
    shifts = neighbor_list("S", atoms, natural_cutoffs(atoms, mult=1.2))
    return not np.any(shifts)


def structure_id(atoms: Atoms) -> str:
    """`sid` from the frame, else a hash of the geometry, so reordering inputs keeps resume."""
    for key in ("sid", "config_id"):
        if key in atoms.info:
            return str(atoms.info[key])
    digest = _digest(atoms.numbers, np.round(atoms.positions, 4), np.round(atoms.cell.array, 4))
    return f"{atoms.get_chemical_formula()}-{digest[:10]}"


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha1()
    for arr in arrays:
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def initial_magmoms(atoms: Atoms) -> np.ndarray:
    """Moments the user set win; then the element defaults (Fe, Co, Ni, Mn, Cr, clusters
    too); a molecule without such an element (a gas frame, or no bond across its cell) starts
    from its ground state's moment: O2 is a triplet, and from zero GPAW stays unpolarised, so
    its spin-on label would be the spin-off one."""
    given = atoms.get_initial_magnetic_moments()
    if np.any(given != 0):
        return given
    defaults = np.array([DEFAULT_MAGMOMS.get(s, 0.0) for s in atoms.get_chemical_symbols()])
    if not defaults.any() and (atoms.info.get("kind") == "gas" or is_molecule(atoms)):
        return gas_moments(atoms)
    return defaults


def start_moments(atoms: Atoms, spin: str) -> np.ndarray:
    return initial_magmoms(atoms) if spin == "on" else np.zeros(len(atoms))


def geometry_key(atoms: Atoms, spin: str) -> str:
    """What a part was computed for, beyond its id: a structure changed under the same id
    (another seed, a fix by hand) must not get the old label."""
    digest = _digest(
        atoms.numbers,
        np.round(atoms.positions, 4),
        np.round(atoms.cell.array, 4),
        atoms.pbc,
        np.round(start_moments(atoms, spin), 3),
    )
    return "g" + digest[:16]  # a letter first: extxyz would read digits as a number


def gpaw_single_point(atoms: Atoms, spin: str, settings: GpawSettings, txt: str | Path) -> Atoms:
    """One GPAW single point; returns a labelled copy (SinglePointCalculator + context info)."""
    from gpaw import GPAW, PW, FermiDirac, KohnShamConvergenceError
    from gpaw import __version__ as gpaw_version

    if spin not in SPINS:
        raise CatscreenError(f"unknown spin {spin!r}; expected off or on")
    kpts = settings.kpts(atoms)
    work = atoms.copy()
    work.pbc = True  # plane waves need a periodic cell; slabs carry their vacuum in the cell
    work.set_initial_magnetic_moments(start_moments(atoms, spin))
    work.calc = GPAW(
        mode=PW(settings.ecut),
        xc=settings.xc,
        kpts=kpts,
        occupations=FermiDirac(settings.smearing),
        spinpol=spin == "on",
        convergence={"energy": settings.energy_tol},
        maxiter=settings.maxiter,
        txt=str(txt),
    )
    start = time.perf_counter()
    results: dict[str, object] = {}
    try:
        results["energy"] = work.get_potential_energy()
        results["free_energy"] = work.get_potential_energy(force_consistent=True)
        results["forces"] = work.get_forces(apply_constraint=False)
        if is_bulk(atoms):
            results["stress"] = work.get_stress()
        if spin == "on":
            results["magmoms"] = work.get_magnetic_moments()
            results["magmom"] = work.calc.get_magnetic_moment()
        converged = True
    except KohnShamConvergenceError:
        converged = False
    out = atoms.copy()
    drop_stated_context(out.info)
    out.info.update(
        spin=spin,
        fidelity=settings.fidelity,
        source="gpaw",
        sid=structure_id(atoms),
        fid=int(atoms.info.get("fid", 0)),
        converged=converged,
        geometry=geometry_key(atoms, spin),
        kpts="x".join(map(str, kpts)),
        wall_time=round(time.perf_counter() - start, 1),
        labeller=f"gpaw-{gpaw_version}",  # what made the label, beside its settings
        **{f"gpaw_{k}": v for k, v in asdict(settings).items()},
    )
    if converged:
        out.calc = SinglePointCalculator(out, **results)
    return out


def part_path(parts: Path, atoms: Atoms, spin: str) -> Path:
    """One file per (system, frame, spin); the name is the done-marker a rerun looks for."""
    key = structure_id(atoms) + (f"__fid-{atoms.info['fid']}" if "fid" in atoms.info else "")
    return parts / f"{re.sub(r'[^A-Za-z0-9._+-]', '_', key)}__spin-{spin}.extxyz"


def _read_part(part: Path) -> Atoms | None:
    """A part as written, or None when there is none or it cannot be read: parts are written
    atomically, so an unreadable one was damaged afterwards and holds no result to keep
    (it stopped the whole run with a traceback)."""
    if not part.exists():
        return None
    try:
        return read(part, format="extxyz")
    except Exception:  # ASE raises ValueError, XYZError, StopIteration ... on damaged files
        return None


def _check_part(part: Path, info: dict, atoms: Atoms, spin: str, settings: GpawSettings) -> None:
    """A finished part made for another structure or with other settings must not pass for
    this one (parts from before the geometry was recorded are checked for settings only)."""
    if "geometry" in info and info["geometry"] != geometry_key(atoms, spin):
        raise CatscreenError(
            f"{part.name} was labelled for another structure under this id (sid, fid): "
            f"label into another folder or delete {part} to redo it"
        )

    def same(old: object, new: object) -> bool:
        if isinstance(new, str) or isinstance(old, str):
            return str(old) == str(new)
        return bool(np.isclose(float(old), float(new), rtol=1e-9, atol=0.0))  # type: ignore[arg-type]

    changed = [
        f"{k} {info[f'gpaw_{k}']} (now {v})"
        for k, v in asdict(settings).items()
        if f"gpaw_{k}" in info and not same(info[f"gpaw_{k}"], v)
    ]
    if changed:
        raise CatscreenError(
            f"{part.name} was labelled with {', '.join(changed)}: "
            f"label into another folder or delete {part.parent} to redo it"
        )


def check_inputs(structures: Sequence[Atoms], settings: GpawSettings) -> None:
    """What would fail only after hours of DFT, or after a calculation whose result is then
    lost: a cell plane waves cannot use, a frame index that is no integer, a missing PAW
    dataset."""
    from gpaw.setup_data import search_for_file

    if not structures:
        raise CatscreenError("no structures to label")
    for atoms in structures:
        if atoms.cell.rank < 3:
            raise CatscreenError(
                f"{structure_id(atoms)} has no 3D cell; plane waves need one: put the "
                "molecule in a box (ASE: atoms.center(vacuum=6.0))"
            )
        fid = atoms.info.get("fid", 0)
        if isinstance(fid, bool) or not isinstance(fid, numbers.Integral):
            raise CatscreenError(
                f"{structure_id(atoms)}: fid {fid!r} is not a frame index (an integer)"
            )
    for symbol in sorted({s for a in structures for s in a.get_chemical_symbols()}):
        try:
            search_for_file(f"{symbol}.{settings.xc}")
        except (FileNotFoundError, RuntimeError):
            raise CatscreenError(
                f"GPAW has no {settings.xc} PAW dataset for {symbol} (gpaw install-data)"
            ) from None


def label_structures(
    structures: Sequence[Atoms],
    spins: Sequence[str],
    parts: Path,
    settings: GpawSettings,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Label every (structure, spin) not yet in `parts`, structure by structure (pairs first).

    A finished part is never redone; a non-converged one is kept (flagged) so a rerun does not
    loop on it; delete its file to retry.
    """
    check_inputs(structures, settings)
    try:
        parts.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CatscreenError(f"cannot make the parts folder {parts}: {first_line(exc)}") from exc
    names = [part_path(parts, a, "") for a in structures]
    if len(set(names)) < len(names):
        raise CatscreenError("structures share an id (sid, fid): give each frame its own fid")
    done: list[Path] = []
    for i, atoms in enumerate(structures):
        for spin in spins:
            target = part_path(parts, atoms, spin)
            finished = _read_part(target)
            if finished is not None:
                _check_part(target, finished.info, atoms, spin, settings)
            else:
                if target.exists():
                    log(f"{target.name} cannot be read (damaged); labelling it again")
                labelled = gpaw_single_point(atoms, spin, settings, target.with_suffix(".txt"))
                with atomic_path(target) as tmp:
                    write(tmp, labelled, format="extxyz")
                info = labelled.info
                e = labelled.get_potential_energy() if info["converged"] else float("nan")
                log(
                    f"[{i + 1}/{len(structures)}] {info['sid']} spin {spin}: E={e:.4f} eV "
                    f"k={info['kpts']} converged={info['converged']} {info['wall_time']} s"
                )
            done.append(target)
    return done


def finished_parts(
    structures: Sequence[Atoms], spin: str, parts: Path, settings: GpawSettings
) -> list[Path]:
    """The parts of `spin` already in `parts` for these structures, checked as a resumed one
    is: what a run with the other --spin into an OUT that held them gathers beside its own."""
    found = []
    for atoms in structures:
        target = part_path(parts, atoms, spin)
        if (part := _read_part(target)) is not None:
            _check_part(target, part.info, atoms, spin, settings)
            found.append(target)
    return found


def collect(paths: Iterable[Path], out: Path) -> list[Path]:
    """Gather converged parts into one extxyz (compressed as its name says); returns the
    parts gathered."""
    read_parts = [(p, read(p, format="extxyz")) for p in paths if p.exists()]
    kept = [(p, a) for p, a in read_parts if a.info.get("converged", False)]
    write_extxyz([a for _, a in kept], out)
    return [p for p, _ in kept]


def spin_pair_differences(frames: Iterable[Atoms]) -> pd.DataFrame:
    """Spin-on minus spin-off energy per structure: the signal the spin condition must learn."""
    rows: dict[tuple[str, str], dict[str, object]] = {}
    for atoms in frames:
        key = (str(atoms.info["sid"]), str(atoms.info["fidelity"]))
        row = rows.setdefault(
            key, {"sid": key[0], "fidelity": key[1], "formula": atoms.get_chemical_formula()}
        )
        row["n_atoms"] = len(atoms)
        row[f"energy_{atoms.info['spin']}"] = atoms.get_potential_energy()
        if atoms.info["spin"] == "on":
            row["magmom"] = float(atoms.calc.results.get("magmom", np.nan))
            moments = atoms.calc.results.get("magmoms")
            row["magmoms"] = " ".join(f"{m:.2f}" for m in moments) if moments is not None else ""
    table = pd.DataFrame(list(rows.values()))
    if table.empty or not {"energy_off", "energy_on"} <= set(table.columns):
        return table
    table = table.dropna(subset=["energy_off", "energy_on"]).reset_index(drop=True)
    table["delta"] = table["energy_on"] - table["energy_off"]
    table["delta_per_atom"] = table["delta"] / table["n_atoms"]
    return table


def _tag_slab(slab: Atoms, n_adsorbate: int) -> Atoms:
    """Open Catalyst tags: 0 subsurface (fixed), 1 top layer, 2 adsorbate."""
    layer = slab.get_tags()  # ase.build: 1 is the top layer
    tags = np.where(layer == 1, 1, 0)
    if n_adsorbate:
        tags[-n_adsorbate:] = 2
    slab.set_tags(tags)
    slab.set_constraint(FixAtoms(mask=tags == 0))
    return slab


ADSORBATE_HEIGHTS: dict[str, float] = {
    "O": 1.2, "H": 1.0, "N": 1.1, "C": 1.1, "CO": 1.3, "OH": 1.4, "CH": 1.1
}  # fmt: skip
# On top of one metal atom (site "ontop", no height given): the metal-C bond of CO.
ONTOP_HEIGHTS: dict[str, float] = {"CO": 1.8}
# Diatomics stand upright, bound through their first atom (ASE's g2 molecules would put OH's
# H or CO's O towards the metal): bond lengths in A.
UPRIGHT_BONDS: dict[str, float] = {"CO": 1.15, "OH": 0.97, "CH": 1.10}
# Each metal's close-packed facet (None: the training pairs) and the other facets, with the
# hollow their adsorbates go to by default.
FACETS: dict[tuple[str, str | None], tuple[Callable[..., Atoms], str]] = {
    ("Fe", None): (bcc110, "hollow"),
    ("Co", None): (hcp0001, "fcc"),
    ("Ni", None): (fcc111, "fcc"),
    ("Cu", None): (fcc111, "fcc"),
    ("Pt", None): (fcc111, "fcc"),
    ("Pd", None): (fcc111, "fcc"),
    ("Fe", "100"): (bcc100, "hollow"),
    ("Ni", "100"): (fcc100, "hollow"),
    ("Cu", "100"): (fcc100, "hollow"),
    ("Co", "100"): (fcc100, "hollow"),  # fcc Co
    ("Ni", "110"): (fcc110, "hollow"),
    ("Cu", "110"): (fcc110, "hollow"),
    ("Fe", "111"): (bcc111, "hollow"),
}
FACET_NAMES = {
    bcc110: "110", hcp0001: "0001", fcc111: "111", bcc100: "100", fcc100: "100", fcc110: "110",
    bcc111: "111",
}  # fmt: skip
LATTICE_CONSTANTS: dict[str, float] = {"Co": 3.54}  # fcc Co, where ASE's reference is hcp


def _upright(name: str) -> Atoms:
    return Atoms(name, positions=[[0, 0, 0], [0, 0, UPRIGHT_BONDS[name]]])


def spin_pair_slab(
    metal: str,
    adsorbate: str | None,
    site: str | None = None,
    height: float | None = None,
    layers: int = 3,
    vacuum: float = 6.0,
    facet: str | None = None,
    rattle: float = 0.0,
    film: str | None = None,
    size: int = 1,
) -> Atoms:
    """A 1x1 (or `size` x `size`) slab of the metal's close-packed facet (or `facet`, "100",
    "110" or "111"), optionally with one adsorbate per cell; `film` replaces the top layer by
    that element (a pseudomorphic monolayer, e.g. Fe on Cu(100)).

    The adsorbate goes to the facet's hollow at `ADSORBATE_HEIGHTS` unless `site`/`height` say
    otherwise; the sid names a non-default site (or, in the hollow, a non-default height) and
    a rattle (every atom, seed 0: forces that differ between spin off and on).
    """
    if (metal, facet) not in FACETS:
        raise CatscreenError(f"no spin-pair slab for {metal}({facet or 'close-packed'})")
    build, hollow = FACETS[metal, facet]
    lattice = {"a": LATTICE_CONSTANTS[metal]} if metal in LATTICE_CONSTANTS and facet else {}
    slab = build(metal, size=(size, size, layers), vacuum=vacuum, **lattice)
    n_metal = len(slab)
    if film:
        slab.symbols[slab.get_tags() == 1] = film
    n_ads = 0
    if adsorbate:
        ads = _upright(adsorbate) if len(adsorbate) > 1 else adsorbate
        default = ONTOP_HEIGHTS if site == "ontop" else ADSORBATE_HEIGHTS
        z = height if height is not None else default[adsorbate]
        add_adsorbate(slab, ads, z, position=site or hollow)
        n_ads = len(slab) - n_metal
    slab.info.pop("adsorbate_info", None)  # a dict: extxyz cannot store it
    slab.center(vacuum=vacuum, axis=2)
    slab.pbc = (True, True, False)
    surface = f"{film}@{metal}" if film else metal
    sid = f"gpaw-{surface}{FACET_NAMES[build]}-{size}x{size}x{layers}-{adsorbate or 'clean'}"
    if site:
        sid += f"-{site}"
    elif height is not None:
        sid += f"-h{height:g}"
    if rattle:
        slab.rattle(stdev=rattle, seed=0)
        sid += f"-rattle{rattle:g}"
    kind = "overlayer" if film else "open-facet slab" if facet else "close-packed slab"
    kind = f"{size}x{size} {kind}" if size > 1 else kind
    slab.info.update(sid=sid, kind="adslab" if adsorbate else "slab", bulk=metal, pair_kind=kind)
    return _tag_slab(slab, n_ads)


# Ordered alloys, textbook lattice constants (A). L1_0 cells are the primitive P4/mmm cell:
# a = a_fcc / sqrt 2.
B2: dict[str, tuple[str, float]] = {"FeCo-B2": ("FeCo", 2.86), "FeRh-B2": ("FeRh", 2.99)}
L10: dict[str, tuple[str, float, float]] = {
    "FeNi-L10": ("FeNi", 3.57 / np.sqrt(2), 3.58),
    "CoPt-L10": ("CoPt", 3.80 / np.sqrt(2), 3.70),
    "FePd-L10": ("FePd", 3.85 / np.sqrt(2), 3.72),
}
L12: dict[str, tuple[str, str, float]] = {  # minority at the corner, majority on the faces
    "Ni3Fe-L12": ("Fe", "Ni", 3.55),
    "FePt3-L12": ("Fe", "Pt", 3.87),
    "Co3Pt-L12": ("Pt", "Co", 3.67),
    # dilute: a magnetic atom among non-magnetic ones
    "FePd3-L12": ("Fe", "Pd", 3.85),
    "CoPt3-L12": ("Co", "Pt", 3.85),
    "FeCu3-L12": ("Fe", "Cu", 3.65),
    "CoPd3-L12": ("Co", "Pd", 3.85),
}
# Compounds (textbook or computed lattice constants, A; ferromagnetic cells: the oxides' ground
# states are antiferromagnetic, which a spin pair of these cells does not explore). Rocksalt
# (B1) and zinc-blende (B3) in the primitive 2-atom cell, wurtzite (B4: a, c, u), and the
# antiperovskite nitrides of ammonia synthesis (metal at the corners and face centres, N at the
# centre).
ROCKSALT: dict[str, float] = {"FeO-B1": 4.33, "CoO-B1": 4.26, "NiO-B1": 4.18, "FeN-B1": 4.00}
ZINCBLENDE: dict[str, float] = {"FeO-B3": 4.62, "CoO-B3": 4.54, "NiO-B3": 4.46, "CoN-B3": 4.27}
WURTZITE: dict[str, tuple[float, float, float]] = {"CoO-B4": (3.24, 5.19, 0.38)}
ANTIPEROVSKITE: dict[str, float] = {"Fe4N": 3.795, "Co4N": 3.74, "Ni4N": 3.72}
HYDRIDES: dict[str, float] = {"NiH-B1": 3.72, "PdH-B1": 4.09}  # rocksalt
# Spin-on starts of the ionic compounds' metal ions: the 2+ ions' high-spin moments (started at
# Ni's metallic 1 muB, NiO ends non-magnetic).
ION_MOMENTS: dict[str, float] = {"Fe": 4.0, "Co": 3.0, "Ni": 2.0}


def spin_pair_alloy(name: str) -> Atoms:
    """An ordered alloy of `B2`, `L10` or `L12` from its textbook lattice (ideal positions)."""
    if name in B2:
        formula, a = B2[name]
        atoms = bulk(formula, "cesiumchloride", a=a)
    elif name in L10:
        formula, a, c = L10[name]
        atoms = Atoms(formula, scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5]], cell=[a, a, c])
    elif name in L12:
        minority, majority, a = L12[name]
        corners = [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]
        atoms = Atoms(minority + majority * 3, scaled_positions=corners, cell=[a, a, a])
    else:
        raise CatscreenError(f"unknown alloy {name!r}")
    atoms.pbc = True
    atoms.info.update(
        sid=f"gpaw-{name}-bulk", kind="bulk", bulk=name.split("-")[0], pair_kind="ordered alloy"
    )
    return atoms


def _ion_moments(atoms: Atoms) -> Atoms:
    atoms.set_initial_magnetic_moments([ION_MOMENTS.get(s, 0.0) for s in atoms.symbols])
    return atoms


def spin_pair_compound(name: str, strain: float = 0.0, rattle: float = 0.0) -> Atoms:
    """A compound of `ROCKSALT`, `ZINCBLENDE`, `WURTZITE`, `ANTIPEROVSKITE` or `HYDRIDES`,
    strained or rattled as `spin_pair_bulk`; the oxides and the 1:1 nitrides (the first three
    structure types) start their metal high-spin, the metallic ones at the element defaults."""
    formula = name.split("-")[0]
    kind = "compound"
    if name in ROCKSALT:
        atoms = bulk(formula, "rocksalt", a=ROCKSALT[name])
    elif name in ZINCBLENDE:
        atoms = bulk(formula, "zincblende", a=ZINCBLENDE[name])
    elif name in WURTZITE:
        a, c, u = WURTZITE[name]
        atoms = bulk(formula, "wurtzite", a=a, c=c, u=u)
    elif name in ANTIPEROVSKITE:
        sites = [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0], [0.5, 0.5, 0.5]]
        atoms = Atoms(formula, scaled_positions=sites, cell=[ANTIPEROVSKITE[name]] * 3, pbc=True)
    elif name in HYDRIDES:
        atoms, kind = bulk(formula, "rocksalt", a=HYDRIDES[name]), "hydride"
    else:
        raise CatscreenError(f"unknown compound {name!r}")
    atoms, sid = _strain_rattle(atoms, f"gpaw-{name}-bulk", strain, rattle)
    atoms.info.update(sid=sid, kind="bulk", bulk=formula, pair_kind=kind)
    return atoms if name in ANTIPEROVSKITE or name in HYDRIDES else _ion_moments(atoms)


def spin_pair_oxide_slab(name: str, layers: int = 3, vacuum: float = 6.0) -> Atoms:
    """The 1x1 (100) surface of a `ROCKSALT` compound (FeO, CoO, NiO, FeN): one metal and one
    anion per layer, a/2 apart, the metal above the anion in the next layer (a/sqrt 2 square
    cell)."""
    if name not in ROCKSALT:
        raise CatscreenError(f"no rocksalt compound {name!r}")
    a, formula = ROCKSALT[name], name.split("-")[0]
    side, metal, anion = a / np.sqrt(2), formula[:2], formula[2:]
    symbols, positions = [], []
    for layer in range(layers):
        corner, centre = (metal, anion) if layer % 2 == 0 else (anion, metal)
        symbols += [corner, centre]
        positions += [[0, 0, layer * a / 2], [side / 2, side / 2, layer * a / 2]]
    slab = Atoms(symbols, positions=positions, cell=[side, side, 1.0], pbc=(True, True, False))
    slab.center(vacuum=vacuum, axis=2)
    tags = np.repeat([0] * (layers - 1) + [1], 2)  # the top layer free, as in `_tag_slab`
    slab.set_tags(tags)
    slab.set_constraint(FixAtoms(mask=tags == 0))
    slab.info.update(
        sid=f"gpaw-{formula}100-1x1x{layers}-clean",
        kind="slab",
        bulk=formula,
        pair_kind="compound surface",
    )
    return _ion_moments(slab)


def _strain_rattle(atoms: Atoms, name: str, strain: float, rattle: float) -> tuple[Atoms, str]:
    """Isotropic strain and a seeded rattle, named in the sid."""
    if strain:
        atoms.set_cell(atoms.cell * (1 + strain), scale_atoms=True)
        name += f"-strain{strain:+g}"
    if rattle:
        atoms.rattle(stdev=rattle, seed=0)
        name += f"-rattle{rattle:.2f}"
    return atoms, name


def spin_pair_bulk(metal: str, strain: float = 0.0, rattle: float = 0.0) -> Atoms:
    """ASE's reference lattice (bcc Fe, hcp Co, fcc Ni/Cu/Pt/Pd), strained or rattled.

    Strained cells teach the magneto-volume effect (moments grow with volume); rattled cells
    (cubic cells for bcc/fcc, seeded) have forces, and those differ between spin off and on.
    """
    atoms = bulk(metal, cubic=bool(rattle) and metal != "Co")
    atoms, name = _strain_rattle(atoms, f"gpaw-{metal}-bulk", strain, rattle)
    kind = "strained bulk" if strain else "bulk"
    atoms.info.update(sid=name, kind="bulk", bulk=metal, pair_kind=kind)
    return atoms


def spin_pair_set() -> list[Atoms]:
    """The committed set: magnetic Fe/Co/Ni and non-magnetic Cu, Pt, Pd controls.

    Ordered so that a partial run already holds one of each kind (bulk, clean and O-covered
    slabs of each metal) before the extras; appending keeps earlier results valid on resume.
    """
    slabs = [
        ("Ni", None), ("Ni", "O"), ("Fe", None), ("Fe", "O"), ("Co", None), ("Co", "O"),
        ("Cu", None), ("Cu", "O"), ("Ni", "H"), ("Fe", "H"), ("Co", "N"), ("Ni", "C"),
    ]  # fmt: skip
    extra_slabs = [("Fe", "N"), ("Co", "H"), ("Ni", "N")]
    strained = [(m, e) for m in ("Fe", "Co", "Ni") for e in (-0.03, 0.03)]
    return (
        [spin_pair_bulk(m) for m in ("Ni", "Fe", "Co", "Cu")]
        + [spin_pair_slab(m, a) for m, a in slabs]
        + [spin_pair_bulk(m, e) for m, e in strained]
        + [spin_pair_slab(m, a) for m, a in extra_slabs]
        + [spin_pair_slab(m, "O", site="ontop", height=1.8) for m in ("Ni", "Co", "Fe")]
        + [spin_pair_bulk(m) for m in ("Pt", "Pd")]
        + [spin_pair_slab("Pt", None), spin_pair_slab("Pt", "O")]
        + [spin_pair_bulk(m, rattle=0.05) for m in ("Fe", "Co", "Ni")]
    )


def spin_pair_test_set() -> list[Atoms]:
    """Held out: pairs no model trains on (the training configs name only the committed set),
    to measure how the spin condition carries to new adsorbates on a metal, a new facet, new
    strains (+6%: beyond the trained +-3%) and ordered alloys. A Cu(100) control must stay at
    zero. Appending keeps earlier results valid on resume."""
    return [
        spin_pair_slab("Co", "C"),
        spin_pair_slab("Fe", "C"),
        spin_pair_slab("Ni", None, facet="100"),
        spin_pair_slab("Ni", "O", facet="100"),
        spin_pair_slab("Fe", None, facet="100"),
        spin_pair_slab("Fe", "O", facet="100"),
        spin_pair_slab("Cu", "O", facet="100"),
        spin_pair_alloy("FeCo-B2"),
        spin_pair_bulk("Fe", 0.015),
        spin_pair_bulk("Co", -0.015),
        spin_pair_slab("Co", "O", site="bridge", height=1.4),
        spin_pair_slab("Ni", "H", facet="100"),
        spin_pair_slab("Fe", "H", facet="100"),
        spin_pair_slab("Ni", "N", facet="100"),
        spin_pair_slab("Fe", "N", facet="100"),
        spin_pair_bulk("Ni", -0.015),
        spin_pair_bulk("Fe", 0.06),
        spin_pair_bulk("Ni", 0.06),
        spin_pair_alloy("FeNi-L10"),
        spin_pair_alloy("Ni3Fe-L12"),
        spin_pair_alloy("FePt3-L12"),
    ]


def spin_pair_extra_set() -> list[Atoms]:
    """More training pairs of the kinds the committed set has (close-packed 1x1 slabs, bulk
    within +-3%), none of the test set's kinds: rattled adslabs, other O heights, ontop H,
    4-layer slabs, H and O on the Pd/Pt controls. For the next training run: the shipped
    weights did not see them, and the committed configs do not name their file."""
    magnetic = ("Fe", "Co", "Ni")
    return (
        [spin_pair_slab(m, a, rattle=0.05) for m in magnetic for a in ("O", "H", "N")]
        + [spin_pair_slab(m, "O", height=h) for m in magnetic for h in (1.0, 1.5)]
        + [spin_pair_slab(m, "H", site="ontop", height=1.55) for m in magnetic]
        + [spin_pair_slab(m, None, layers=4) for m in magnetic]
        + [spin_pair_slab("Pt", "H"), spin_pair_slab("Pd", "H"), spin_pair_slab("Pd", "O")]
    )


def spin_pair_kinds_set() -> list[Atoms]:
    """Training pairs of the kinds the test set asks about, none of its structures: other
    open facets (Ni and Cu (110), fcc Co (100)), new adsorbates on the close-packed facets
    (upright CO, OH, CH; the test has C and bridge O) and other ordered alloys (B2 FeRh,
    L1_0 CoPt and FePd, L1_2 Co3Pt). Measures whether pairs of a kind carry to other
    systems of that kind."""
    magnetic = ("Fe", "Co", "Ni")
    return (
        [spin_pair_slab("Ni", a, facet="110", layers=4) for a in (None, "O", "H")]
        + [spin_pair_slab("Co", a, facet="100") for a in (None, "O", "H")]
        + [spin_pair_slab("Cu", a, facet="110", layers=4) for a in (None, "O")]
        + [spin_pair_alloy(n) for n in ("FeRh-B2", "CoPt-L10", "FePd-L10", "Co3Pt-L12")]
        + [spin_pair_slab(m, a) for a in ("CO", "OH") for m in magnetic]
        + [spin_pair_slab(m, "CH") for m in ("Fe", "Ni")]
        + [spin_pair_slab("Cu", "CO")]
    )


def spin_pair_kinds2_set() -> list[Atoms]:
    """Second round of training kinds: magnetic atoms in low coordination (the open Fe(111),
    6 layers) and dilute among non-magnetic ones (L1_2 FePd3, CoPt3, FeCu3, CoPd3).

    Chosen after the first test set showed where the spin energy falls short (open-facet Fe,
    Fe in alloys), so a model trained on them is no longer blind to `test`'s open-facet and
    alloy pairs: `test2` is the blind measure for it."""
    fe111 = [  # its hollow is wide and deep: on top instead
        spin_pair_slab("Fe", a, site=site, height=h, facet="111", layers=6)
        for a, site, h in ((None, None, None), ("O", "ontop", 1.65), ("H", "ontop", 1.55))
    ]
    return fe111 + [
        spin_pair_alloy(n) for n in ("FePd3-L12", "CoPt3-L12", "FeCu3-L12", "CoPd3-L12")
    ]


def spin_pair_test2_set() -> list[Atoms]:
    """Held out, second test set: kinds no training pair has, made before any model trained on
    the second round. Magnetic monolayers on non-magnetic metals (Fe on Cu(100), Co and Ni on
    Cu(111), Co on Pt(111)), ferromagnetic rocksalt FeO, CoO, NiO, and Fe4N."""
    return [
        spin_pair_slab("Cu", None, facet="100", film="Fe"),
        # O in the (100) hollow at 0.75 A: 1.96 A from each Fe (the default 1.2 A gives 2.17 A)
        spin_pair_slab("Cu", "O", height=0.75, facet="100", film="Fe"),
        spin_pair_slab("Cu", None, film="Co"),
        spin_pair_slab("Cu", None, film="Ni"),
        spin_pair_slab("Pt", None, film="Co"),
    ] + [spin_pair_compound(n) for n in ("FeO-B1", "CoO-B1", "NiO-B1", "Fe4N")]


def spin_pair_kinds3_set() -> list[Atoms]:
    """Third round of training kinds: O and N bound to Fe, Co, Ni (oxides and nitrides in
    other structures than `test2`'s: zinc-blende and wurtzite oxides, zinc-blende CoN, rocksalt
    FeN, the antiperovskites Co4N and Ni4N; strained +-3% and rattled) and magnetic monolayers
    on other hosts or facets, clean and with O.

    Chosen after `test2` showed that no model knows the oxides (their moments, their spin
    energy), so a model trained on them is not blind to `test2`: `test3` is the blind measure.
    Appending keeps earlier results valid on resume."""
    compounds = ("FeO-B3", "CoO-B3", "NiO-B3", "CoO-B4", "CoN-B3", "FeN-B1", "Co4N", "Ni4N")
    films = [("Cu", "Fe", None), ("Cu", "Co", "100"), ("Cu", "Ni", "100"), ("Pt", "Fe", None)]
    return (
        [spin_pair_compound(n) for n in compounds]
        + [spin_pair_slab(host, None, facet=facet, film=film) for host, film, facet in films]
        + [spin_pair_slab("Pt", None, film="Ni")]
        + [spin_pair_slab("Cu", "O", height=0.75, facet="100", film="Co")]
        + [spin_pair_compound(n, strain=e) for n in compounds for e in (-0.03, 0.03)]
        + [spin_pair_compound(n, rattle=0.05) for n in ("FeO-B3", "CoO-B3", "NiO-B3", "Co4N")]
        + [spin_pair_slab("Cu", "O", height=0.75, facet="100", film="Ni")]
        + [spin_pair_slab(host, "O", film=film) for host, film in (("Cu", "Fe"), ("Pt", "Fe"))]
    )


def spin_pair_test3_set() -> list[Atoms]:
    """Held out, third test set: kinds no training pair has, made before any model trained on
    the third round. The (100) surfaces of rocksalt FeO, CoO, NiO, the hydride NiH and a PdH
    control."""
    oxides = ("FeO-B1", "CoO-B1", "NiO-B1")
    hydrides = ("NiH-B1", "PdH-B1")
    return [spin_pair_oxide_slab(n) for n in oxides] + [spin_pair_compound(n) for n in hydrides]


def spin_pair_screening_set() -> list[Atoms]:
    """Held out, the cells a screening relaxes: 2x2x3 slabs of Fe(110), Co(0001), Ni(111),
    clean and with one O or H (and N on Fe) in the hollow, a quarter monolayer, and Cu(111)
    clean and with O as the non-magnetic control (its pairs are identical). Every training
    pair is a 1x1 cell (a full monolayer), so these measure whether the spin condition carries
    to screening coverage, and give the spin part of adsorption energies (adsorbate+slab minus
    clean slab: the gas references are closed-shell)."""
    adsorbates = {
        "Fe": (None, "O", "H", "N"), "Co": (None, "O", "H"), "Ni": (None, "O", "H"), "Cu": (None, "O"),
    }  # fmt: skip
    return [spin_pair_slab(m, a, size=2) for m, ads in adsorbates.items() for a in ads]


def spin_pair_kinds4_set() -> list[Atoms]:
    """Fourth round of training kinds: the 2x2x3 cells of `screening` (a quarter monolayer)
    with the adsorbates and sites it does not hold: N and C in the hollows, O in Co's and Ni's
    hcp hollow, upright OH and CO (ontop), then Fe(100) 2x2 and Cu(111) with CO as the
    non-magnetic control.

    Chosen after `screening` showed that 1x1 pairs (a full monolayer) teach every model to
    take spin away for a quarter monolayer of O or H, where DFT does not. `screening` stays
    the blind measure of its adsorbate-site pairs (O and H in the default hollow, N on Fe);
    its cells are no longer unseen. Ordered by value: a partial run is a useful set."""
    slabs = [
        ("Co", "N", None), ("Fe", "C", None), ("Ni", "N", None), ("Co", "O", "hcp"),
        ("Fe", "OH", None), ("Ni", "O", "hcp"), ("Co", "CO", "ontop"), ("Fe", "CO", "ontop"),
        ("Ni", "CO", "ontop"), ("Ni", "C", None), ("Co", "C", None), ("Co", "OH", None),
        ("Ni", "OH", None),
    ]  # fmt: skip
    return (
        [spin_pair_slab(m, a, site, size=2) for m, a, site in slabs]
        + [spin_pair_slab("Fe", a, facet="100", size=2) for a in (None, "N")]
        + [spin_pair_slab("Cu", "CO", "ontop", size=2)]  # the control
    )


def spin_pair_kinds5_set() -> list[Atoms]:
    """Fifth round: atomic O and N on Fe at a quarter monolayer, at the sites `screening`
    does not hold (Fe(110)'s long and short bridge, Fe(100)'s hollow), N in Co's hcp hollow,
    and Cu(111)+O in its hcp hollow as the control.

    Chosen after models trained on round 4 still took 0.5-0.6 eV of spin energy away for
    `screening`'s Fe(110)+O, where DFT takes none: round 4 has no atomic O or N on Fe(110).
    Heights (A) are rough guesses for each site; single points need no minimum."""
    return [
        spin_pair_slab("Fe", "O", "longbridge", 1.1, size=2),
        spin_pair_slab("Fe", "N", "longbridge", 1.0, size=2),
        spin_pair_slab("Fe", "O", "shortbridge", 1.4, size=2),
        spin_pair_slab("Fe", "O", facet="100", size=2),
        spin_pair_slab("Co", "N", "hcp", size=2),
        spin_pair_slab("Cu", "O", "hcp", size=2),
    ]


def spin_pair_kinds6_set() -> list[Atoms]:
    """Sixth round: the clean 2x2 cells of Fe(110) and Co(0001) at four layers, and Cu(111)
    as the control.

    Chosen after the spin-capped candidates: of their +0.5 eV error in the spin part of the
    held-out Fe(110)+O adsorption energy, about 0.3 eV is the held-out clean 2x2x3 Fe(110)
    cell's spin energy, and no training pair holds a clean 2x2 cell of Fe(110) or Co(0001).
    A fourth layer keeps `screening`'s three-layer cells unseen."""
    return [spin_pair_slab(m, None, size=2, layers=4) for m in ("Fe", "Co", "Cu")]


SETS: dict[str, Callable[[], list[Atoms]]] = {
    "train": spin_pair_set,
    "test": spin_pair_test_set,
    "extra": spin_pair_extra_set,
    "kinds": spin_pair_kinds_set,
    "kinds2": spin_pair_kinds2_set,
    "test2": spin_pair_test2_set,
    "kinds3": spin_pair_kinds3_set,
    "test3": spin_pair_test3_set,
    "screening": spin_pair_screening_set,
    "kinds4": spin_pair_kinds4_set,
    "kinds5": spin_pair_kinds5_set,
    "kinds6": spin_pair_kinds6_set,
}


@cache
def _pair_kinds() -> dict[str, str]:
    return {a.info["sid"]: a.info["pair_kind"] for make in SETS.values() for a in make()}


def pair_kind(sid: str) -> str:
    """What kind of system a built-in spin pair is, for errors per kind (strained bulk, bulk,
    ordered alloy, compound, compound surface, hydride, overlayer, open-facet or close-packed
    slab, "2x2 ..." for the larger cells): what its builder
    recorded, found by sid, so labelled files made before the record existed are read too."""
    if sid not in _pair_kinds():
        raise CatscreenError(f"{sid!r} is not a built-in spin pair")
    return _pair_kinds()[sid]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="GPAW spin pairs for the built-in structure set")
    parser.add_argument("--out", type=Path, required=True, help="folder for per-frame parts")
    parser.add_argument("--collect", type=Path, help="also gather converged parts into this file")
    parser.add_argument("--ecut", type=float, default=GpawSettings.ecut)
    parser.add_argument("--kpt-density", type=float, default=GpawSettings.kpt_density)
    parser.add_argument("--limit", type=int, help="only the first N structures")
    parser.add_argument(
        "--set", choices=sorted(SETS), default="train", help="which built-in structure set"
    )
    parser.add_argument("--summary", action="store_true", help="print spin-on minus spin-off")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    settings = GpawSettings(ecut=args.ecut, kpt_density=args.kpt_density)
    structures = SETS[args.set]()[: args.limit]
    done = label_structures(
        structures, SPINS, args.out, settings, log=lambda m: print(m, flush=True)
    )
    if args.collect:
        print(f"{len(collect(done, args.collect))} frames -> {args.collect}", flush=True)
    if args.summary:
        frames = [read(p, format="extxyz") for p in done]
        table = spin_pair_differences(a for a in frames if a.info.get("converged"))
        print(table.to_string(index=False, float_format="{:.4f}".format), flush=True)


if __name__ == "__main__":
    main()
