"""Teacher training structures: bulk, clean slabs, adsorbate placements, gas molecules.

The bundled model must relax adsorbates correctly, so besides rattles it sees snapshots along
short teacher relaxations of adsorbate placements (start, path, end) and a few short MD frames.
An explorer pass (`explorer`: a model) instead relaxes nudged placements with that model and
keeps its path and minimum, so the teacher labels the places the model goes, spurious minima
included (active learning, as AdsorbML's ML-relaxation data).
Work is split into shards (one per bulk set, gas set or host/facet slab) written atomically;
a killed run resumes at the first missing shard. Cells are small (2x2x3 slabs, 4-atom bulk) so
the CPU budget buys many frames.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import add_adsorbate, bcc100, bcc110, bulk, fcc100, fcc110, fcc111, hcp0001
from ase.constraints import FixAtoms
from ase.data import atomic_numbers, reference_states
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.optimize import BFGS
from ase.units import fs
from pymatgen.io.ase import AseAtomsAdaptor

from catscreen.build.adsorbates import adsorbate_library, get_adsorbate
from catscreen.build.bulks import bulk_library, load_bulks
from catscreen.build.enumerate import EnumerateSettings, enumerate_slabs
from catscreen.build.gas import gas_molecule
from catscreen.build.placements import heuristic_orientation, nudged, place
from catscreen.build.sites import find_sites
from catscreen.build.slabs import Miller, SlabTermination, distinct_millers, parse_miller
from catscreen.errors import CatscreenError, first_line
from catscreen.io import atomic_path
from catscreen.training import teacher
from catscreen.training.datasets import extxyz_files, extxyz_stem, read_extxyz, write_extxyz

STRUCTURE_DIR = "structures"
CRYSTAL: dict[str, str] = {
    "Fe": "bcc", "Mo": "bcc", "W": "bcc",
    "Co": "hcp", "Ru": "hcp", "Os": "hcp", "Re": "hcp",
    "Ni": "fcc", "Cu": "fcc", "Pd": "fcc", "Pt": "fcc", "Rh": "fcc", "Ir": "fcc", "Ag": "fcc",
    "Au": "fcc",
}  # fmt: skip
# The default hosts above are those of the first four passes (their reproduce commands rely on
# the default); these are the other elemental metals of data/bulks.yaml, in the same lattices,
# so the bundled model knows every element `catscreen enumerate` can build a slab of.
MORE_HOSTS: dict[str, str] = {
    "Sc": "hcp", "Ti": "hcp", "V": "bcc", "Cr": "bcc", "Mn": "fcc", "Zn": "hcp", "Y": "hcp",
    "Zr": "hcp", "Nb": "bcc", "Tc": "hcp", "Cd": "hcp", "Hf": "hcp", "Ta": "bcc", "Li": "bcc",
    "Mg": "hcp", "Al": "fcc", "Ba": "bcc", "La": "hcp", "Ce": "fcc",
}  # fmt: skip
HOSTS: dict[str, str] = {**CRYSTAL, **MORE_HOSTS}
FACETS: dict[str, tuple[str, ...]] = {
    "fcc": ("111", "100", "110"),
    "bcc": ("110", "100"),
    "hcp": ("0001",),
}
_SLAB_BUILDERS: dict[tuple[str, str], Callable[..., Atoms]] = {
    ("fcc", "111"): fcc111,
    ("fcc", "100"): fcc100,
    ("fcc", "110"): fcc110,
    ("bcc", "110"): bcc110,
    ("bcc", "100"): bcc100,
    ("hcp", "0001"): hcp0001,
}
# Adsorbate geometries: binding atom first at the origin, the rest above it (z up).
ADSORBATES: dict[str, list[tuple[str, tuple[float, float, float]]]] = {
    "H": [("H", (0, 0, 0))],
    "O": [("O", (0, 0, 0))],
    "N": [("N", (0, 0, 0))],
    "C": [("C", (0, 0, 0))],
    "OH": [("O", (0, 0, 0)), ("H", (0, 0, 0.97))],
    "CO": [("C", (0, 0, 0)), ("O", (0, 0, 1.15))],
    "NH": [("N", (0, 0, 0)), ("H", (0, 0, 1.02))],
    "NH2": [("N", (0, 0, 0)), ("H", (0.82, 0, 0.6)), ("H", (-0.82, 0, 0.6))],
    "CH": [("C", (0, 0, 0)), ("H", (0, 0, 1.09))],
    "CH2": [("C", (0, 0, 0)), ("H", (0.89, 0, 0.63)), ("H", (-0.89, 0, 0.63))],
    "CH3": [("C", (0, 0, 0)), ("H", (1.03, 0, 0.36)), ("H", (-0.51, 0.89, 0.36)),
            ("H", (-0.51, -0.89, 0.36))],
}  # fmt: skip
_HEIGHT = {"ontop": 1.9, "bridge": 1.6, "longbridge": 1.4, "shortbridge": 1.6}  # else 1.2 A
GAS = ("H2", "H2O", "CO", "N2", "O2", "NH3", "CH4", "CO2")


@dataclass(frozen=True)
class GenerateSettings:
    """What `catscreen data generate` makes; every number here is recorded in the datasheet."""

    metals: tuple[str, ...] = tuple(CRYSTAL)  # any of HOSTS
    alloys: tuple[tuple[str, str], ...] = (("Pt", "Ni"), ("Cu", "Pd"), ("Pt", "Co"), ("Ni", "Cu"))
    adsorbates: tuple[str, ...] = tuple(ADSORBATES)
    size: tuple[int, int, int] = (2, 2, 3)
    large_size: tuple[int, int, int] = (3, 3, 3)  # one lower-coverage cell per host's first facet
    large_cells: bool = True  # False: skip the 3x3x3 shards
    # False: no bulk, 2x2 slab or alloy shards, so a later pass adds only lower coverage beside
    # an earlier pass instead of repeating its bulks and slabs
    small_cells: bool = True
    exclude_from: str = ""  # folder of an earlier pass: see _drawn_before and the shards
    vacuum: float = 6.0
    adsorbates_per_slab: int = 4  # a random subset per host/facet; all of them across shards
    sites_per_adsorbate: int = 1
    relax_steps: int = 8
    snapshot_every: int = 3
    rattle_sigmas: tuple[float, ...] = (0.05, 0.1)
    md_every: int = 3  # short MD after every n-th placement
    md_steps: int = 8
    md_temperature: float = 600.0
    bulk_strains: tuple[float, ...] = (-0.03, -0.015, 0.0, 0.015, 0.03)
    mirror_fraction: float = 0.1  # share of spin-off teacher frames also written as spin on
    explorer: str = ""  # a model (load_model name/path): it relaxes nudged placements instead
    seed: int = 0
    # Bulks (catalogue names or files) whose slabs come from catscreen's own enumerate step:
    # every facet up to enum_max_index and every termination, placements as enumerate makes
    # them (nudged, heuristic orientation) from the adsorbate library: ordered alloys, stepped
    # facets and the larger adsorbates that the ASE-builder shards above do not make.
    bulks: tuple[str, ...] = ()
    enum_max_index: int = 1
    # facets whose largest |index| is below this are skipped: a pass of stepped facets only,
    # without new low-index systems beside the held-out ones of the earlier passes
    enum_min_index: int = 1
    enum_min_ab: float = 5.0  # A: 2x2-like cells, as the ASE-builder shards
    enum_min_slab_size: float = 4.5  # A: three or four layers
    enum_facets: tuple[Miller, ...] = ()  # only these facets of --bulks (empty: every one)
    # (host, facet, adsorbate) systems never drawn: a benchmark's held-out ones, so that a pass
    # in another cell does not train on the systems it measures (`read_avoid`)
    avoid: frozenset[tuple[str, Miller, str]] = frozenset()

    def __post_init__(self) -> None:
        hosts = set(self.metals) | {m for pair in self.alloys for m in pair}
        # the ASE-builder shards know ADSORBATES; enumerated shards the whole library
        known = set(ADSORBATES) if self.metals or self.alloys else set(adsorbate_library())
        unknown = sorted(hosts - set(HOSTS)) + sorted(set(self.adsorbates) - known)
        if unknown:
            raise CatscreenError(
                f"unknown metal(s)/adsorbate(s) {', '.join(unknown)}; metals: "
                f"{', '.join(HOSTS)}; adsorbates: {', '.join(sorted(known))}"
            )
        for option, values in (("metals", self.metals), ("alloys", self.alloys),
                               ("adsorbates", self.adsorbates)):  # fmt: skip
            twice = sorted({str(v) for v in values if values.count(v) > 1})
            if twice:  # `--metals Pt,Pt` made every Pt shard twice, its frames under one sid
                raise CatscreenError(f"--{option} names {', '.join(twice)} twice")
        counts = {
            "snapshot_every": 1, "md_every": 1, "relax_steps": 0, "md_steps": 0,
            "adsorbates_per_slab": 0, "sites_per_adsorbate": 1,
        }  # fmt: skip
        for name, low in counts.items():
            if getattr(self, name) < low:
                raise CatscreenError(
                    f"--{name.replace('_', '-')} must be >= {low}, not {getattr(self, name)}"
                )
        if self.exclude_from and not (
            Path(self.exclude_from).is_dir()
            and extxyz_files(_pass_folder(Path(self.exclude_from)), "*")
        ):  # a typo would silently repeat the whole earlier pass
            raise CatscreenError(
                f"--exclude-from: no folder of shards {self.exclude_from} (nor a structures "
                "folder in it)"
            )
        if not self.small_cells and (not self.large_cells or not self.metals or self.bulks):
            raise CatscreenError(
                "--only-large makes the 3x3x3 cells of --metals: give --metals, and neither "
                "--no-large nor --bulks"
            )
        typos = sorted({a for _, _, a in self.avoid} - set(adsorbate_library()))
        if typos:  # a line that names no adsorbate avoids nothing
            raise CatscreenError(f"--avoid names unknown adsorbate(s): {', '.join(typos)}")
        if not 1 <= self.enum_min_index <= self.enum_max_index:
            raise CatscreenError(
                f"--min-index must be between 1 and --max-index ({self.enum_max_index}), "
                f"got {self.enum_min_index}"
            )


@dataclass
class Shard:
    name: str
    make: Callable[[GenerateSettings, np.random.Generator], list[Atoms]]
    inputs: dict[str, object] = field(default_factory=dict)  # what else its frames depend on


# Settings that choose which shards a pass makes, not what is in them (one folder may take
# several calls with other --bulks or --facets, as the thick-slab pass does), cell sizes (in
# the shard names) and the enumerate settings, which only enumerated shards record.
SELECTION = ("metals", "alloys", "bulks", "large_cells", "small_cells", "size", "large_size")
ENUMERATE_FIELDS = (
    "enum_max_index", "enum_min_index", "enum_min_ab", "enum_min_slab_size", "enum_facets",
)  # fmt: skip


RECORDED_SINCE = ("explorer_version",)  # keys older records lack


def shard_record(settings: GenerateSettings, shard: Shard) -> dict[str, object]:
    """Everything a shard's frames depend on, as JSON: kept beside it, so that a resume with
    other options is refused instead of mixing two settings in one data set."""
    skip = SELECTION + ENUMERATE_FIELDS
    record = {k: v for k, v in asdict(settings).items() if k not in skip}
    record["avoid"] = sorted(map(list, settings.avoid), key=str)
    if settings.explorer:  # "bundled" names other weights after an update: a resume then
        record["explorer_version"] = _explorer_model(settings.explorer).info.version  # mixed two
    record.update(shard.inputs)
    return json.loads(json.dumps(record, sort_keys=True))


def _tagged(atoms: Atoms, kind: str, sid: str, **info: object) -> Atoms:
    atoms.info.pop("adsorbate_info", None)
    atoms.info.update({"kind": kind, "sid": sid, **info})
    return atoms


def _rattled(atoms: Atoms, sigma: float, rng: np.random.Generator, stage: str) -> Atoms:
    a = atoms.copy()
    free = np.ones(len(a), dtype=bool)
    for c in a.constraints:
        if isinstance(c, FixAtoms):
            free[c.index] = False
    a.positions[free] += rng.normal(0.0, sigma, size=(int(free.sum()), 3))
    a.info["stage"] = stage
    return a


def _pbe_calc():  # noqa: ANN202
    from chgnet.model.dynamics import CHGNetCalculator

    return CHGNetCalculator(model=teacher.load_teacher("chgnet-pbe"), use_device="cpu")


def _md_frames(atoms: Atoms, settings: GenerateSettings, rng: np.random.Generator) -> list[Atoms]:
    """Short Langevin MD under the PBE teacher; the last frames are far from any minimum."""
    a = atoms.copy()
    a.calc = _pbe_calc()
    MaxwellBoltzmannDistribution(a, temperature_K=settings.md_temperature, rng=rng)
    dyn = Langevin(a, 2 * fs, temperature_K=settings.md_temperature, friction=0.02, rng=rng)
    frames = []
    for step in range(1, settings.md_steps + 1):
        dyn.run(1)
        if step % 4 == 0:
            f = a.copy()
            f.arrays.pop("momenta", None)
            f.info["stage"] = f"md{step}"
            frames.append(f)
    return frames


@cache
def _explorer_model(name: str):  # noqa: ANN202
    from catscreen.model.api import load_model

    return load_model(name)


def _explorer_calc(name: str):  # noqa: ANN202
    from catscreen.model.calculator import CatscreenCalculator

    model = _explorer_model(name)
    return CatscreenCalculator(model, spin="auto", fidelity=model.info.default_fidelity)


def _bfgs_frames(
    atoms: Atoms,
    calc,
    settings: GenerateSettings,
    prefix: str,
    end_stage: str,  # noqa: ANN001
) -> list[Atoms]:
    """Every n-th step of a BFGS relaxation under `calc` (stage `prefix<step>`), then its end
    (`end_stage`) unless the relaxation stopped on the last snapshot."""
    a = atoms.copy()
    a.calc = calc
    frames = []
    opt = BFGS(a, maxstep=0.2, logfile=None)
    for step, _ in enumerate(opt.irun(fmax=0.05, steps=settings.relax_steps), start=0):
        if step and step % settings.snapshot_every == 0:
            f = a.copy()
            f.info["stage"] = f"{prefix}{step}"
            frames.append(f)
    end = a.copy()
    end.info["stage"] = end_stage
    if not frames or not np.allclose(end.positions, frames[-1].positions):
        frames.append(end)
    return frames


def _relax_frames(atoms: Atoms, settings: GenerateSettings) -> list[Atoms]:
    """Start, every n-th step and the end of a short BFGS relaxation under the PBE teacher; with
    an explorer, every n-th step and the end under that model (no start: the teacher passes
    have it), the end always named explore-end: where the model goes, spurious minima
    included, for the teacher to label."""
    if settings.explorer:
        frames = _bfgs_frames(atoms, _explorer_calc(settings.explorer), settings, "explore", "")
        frames[-1].info["stage"] = "explore-end"
        return frames
    start = atoms.copy()
    start.info["stage"] = "start"
    frames = [start] + _bfgs_frames(atoms, _pbe_calc(), settings, "relax", "end")
    if frames[-1].info["stage"] == "end" and np.allclose(frames[-1].positions, start.positions):
        frames.pop()  # nothing moved: the start is the end
    return frames


def lattice(host: str) -> dict[str, float]:
    """Lattice constants for ASE's builders: none (ASE's reference state) where that state is
    the host's lattice, which keeps the committed passes reproducible; data/bulks.yaml's where
    it is not (ASE's Mn is 58-atom alpha-Mn, the catalogue's gamma-Mn is fcc)."""
    ref = reference_states[atomic_numbers[host]] or {}
    if ref.get("symmetry") == HOSTS[host]:
        return {}
    entry = bulk_library()[host]
    return {k: float(entry[k]) for k in ("a", "c") if k in entry}


def make_slab(host: str, facet: str, size: tuple[int, int, int], vacuum: float) -> Atoms:
    """A slab of a host metal; layers that may relax are tagged 1, the bottom layer 0 and fixed."""
    structure = HOSTS[host]
    builder = _SLAB_BUILDERS[(structure, facet)]
    slab = builder(host, size=size, vacuum=vacuum, **lattice(host))
    layer = slab.get_tags()  # ASE: 1 is the top layer
    n_layers = int(layer.max())
    fixed = layer > n_layers - max(1, n_layers // 3)
    slab.set_tags(np.where(fixed, 0, 1))
    slab.set_constraint(FixAtoms(mask=fixed))
    return slab


def add_adsorbate_at(slab: Atoms, adsorbate: str, site: str) -> Atoms:
    """Place one adsorbate at a named ASE site; its atoms are tagged 2."""
    a = slab.copy()
    mol = Atoms(
        [s for s, _ in ADSORBATES[adsorbate]], positions=[p for _, p in ADSORBATES[adsorbate]]
    )
    mol.set_tags([2] * len(mol))
    add_adsorbate(a, mol, _HEIGHT.get(site, 1.2), position=site)
    a.info.pop("adsorbate_info", None)
    return a


def slab_sites(slab: Atoms) -> list[str]:
    return list(slab.info["adsorbate_info"]["sites"])


def _alloy(slab: Atoms, guest: str, rng: np.random.Generator) -> Atoms:
    """Random substitution of a third to a half of the atoms by `guest`."""
    a = slab.copy()
    n = len(a)
    k = int(rng.integers(n // 3, n // 2 + 1))
    idx = rng.choice(n, size=k, replace=False)
    symbols = a.get_chemical_symbols()
    for i in idx:
        symbols[i] = guest
    a.set_chemical_symbols(symbols)
    return a


def _drawn_before(settings: GenerateSettings, shard: str) -> set[str]:
    """Systems (sids) an earlier pass made in this shard: the teacher relaxes a placement the
    same way twice, so redrawing them repeats its frames."""
    if not settings.exclude_from:
        return set()
    paths = extxyz_files(_pass_folder(Path(settings.exclude_from)), shard)  # gzip or xz
    return {str(a.info["sid"]) for p in paths for a in read_extxyz(p) if "sid" in a.info}


def _pass_folder(folder: Path) -> Path:
    """An earlier pass's shards: the folder given, or its `structures` when given the pass's
    output folder (OUT of `data generate`), whose top level holds none."""
    inner = folder / STRUCTURE_DIR
    return inner if inner.is_dir() and not extxyz_files(folder, "*") else folder


def read_avoid(path: Path) -> frozenset[tuple[str, Miller, str]]:
    """`HOST FACET ADSORBATE` per line (`#` comments): the systems a pass must not draw."""
    if not path.is_file():
        raise CatscreenError(f"--avoid: no file {path}")
    out = set()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatscreenError(f"--avoid {path}: cannot read it: {first_line(exc)}") from None
    for n, line in enumerate(text.splitlines(), start=1):
        fields = line.split("#")[0].split()
        if not fields:
            continue
        if len(fields) != 3:
            raise CatscreenError(f"{path} line {n}: expected HOST FACET ADSORBATE, got {line!r}")
        out.add((fields[0], parse_miller(fields[1]), fields[2]))
    return frozenset(out)


def _new_adsorbates(
    settings: GenerateSettings,
    label: str,
    drawn: set[str],
    rng: np.random.Generator,
    system: tuple[str, Miller],
) -> list[str]:
    """Up to adsorbates_per_slab adsorbates for slab `label`, (host, facet) `system`, that no
    earlier pass placed there and that `avoid` does not name."""
    pool = [
        a
        for a in settings.adsorbates
        if f"{label}-{a}" not in drawn and (*system, a) not in settings.avoid
    ]
    n_ads = min(settings.adsorbates_per_slab, len(pool))
    return [str(a) for a in rng.choice(pool, size=n_ads, replace=False)] if pool else []


def _slab_shard(host: str, facet: str, size: tuple[int, int, int], guest: str | None) -> Shard:
    def make(settings: GenerateSettings, rng: np.random.Generator) -> list[Atoms]:
        slab = make_slab(host, facet, size, settings.vacuum)
        sites = slab_sites(slab)
        name = host + (f"{guest}" if guest else "")
        if guest:
            slab = _alloy(slab, guest, rng)
        label = f"{name}-{facet}-{size[0]}x{size[1]}x{size[2]}"
        frames: list[Atoms] = []
        clean_sid = f"{label}-clean"
        if not settings.explorer:  # the explorer pass is about adsorbates; clean slabs are done
            for f in _relax_frames(slab, settings)[::2] + [
                _rattled(slab, s, rng, f"rattle{s}") for s in settings.rattle_sigmas
            ]:
                frames.append(_tagged(f, "slab", clean_sid, host=name, facet=facet))
        drawn = _drawn_before(settings, f"slab-{tag}")
        system = (name, parse_miller(facet))
        for i, ads in enumerate(_new_adsorbates(settings, label, drawn, rng, system)):
            chosen = rng.choice(
                sites, size=min(settings.sites_per_adsorbate, len(sites)), replace=False
            )
            sid = f"{label}-{ads}"
            for j, site in enumerate(chosen):
                placed = add_adsorbate_at(slab, ads, str(site))
                extra: list[Atoms] = []
                if settings.explorer:  # nudged as enumerate places them, so it leaves saddles
                    traj = _relax_frames(nudged(placed, rng), settings)
                else:
                    traj = _relax_frames(placed, settings)
                    extra = [_rattled(traj[-1], settings.rattle_sigmas[0], rng, "rattle-end")]
                    if j == 0 and i % settings.md_every == 0:
                        extra += _md_frames(traj[-1], settings, rng)
                for f in traj + extra:
                    frames.append(
                        _tagged(
                            f, "adslab", sid, host=name, facet=facet, adsorbate=ads, site=str(site)
                        )
                    )
        return frames

    tag = f"{host}{guest or ''}-{facet}-{size[0]}x{size[1]}x{size[2]}"
    return Shard(name=f"slab-{tag}", make=make)


def _enumerated_shard(spec: str, settings: GenerateSettings) -> Shard:
    """The catalogue bulk or structure file `spec` through enumerate: per bulk (a file may hold
    several, `stem_i`) its strained and rattled cell, then per slab termination the clean slab
    along its relaxation, and drawn adsorbates at drawn unique sites, placed and nudged as
    `catscreen enumerate` places them, along teacher relaxations. sids:
    `<bulk>-<miller>-t<termination>[-<adsorbate>]`. With `exclude_from`, only what the earlier
    pass's shard lacks: its bulk and clean slabs (a teacher relaxation repeats frame for frame)
    and its adsorbates per slab are not made again. An explorer pass makes the adsorbate
    frames only, as the ASE-builder shards."""
    shard = f"enum-{Path(spec).stem}"

    def make(settings: GenerateSettings, rng: np.random.Generator) -> list[Atoms]:
        drawn = _drawn_before(settings, shard)
        frames: list[Atoms] = []
        slabs = _enumerated_slabs(spec, settings)
        for name in dict.fromkeys(s.bulk.name for s in slabs):  # bulks in file order
            own = [s for s in slabs if s.bulk.name == name]
            if f"bulk-{name}" not in drawn and not settings.explorer:
                cell = AseAtomsAdaptor.get_atoms(own[0].bulk.structure)  # the conventional cell
                # pymatgen adds bulk_wyckoff/bulk_equivalent in set order, which changes with
                # the process's hash seed: a fixed column order keeps the bytes reproducible
                rest = sorted(set(cell.arrays) - {"numbers", "positions"})
                cell.arrays = {k: cell.arrays[k] for k in ("numbers", "positions", *rest)}
                frames += _strained_bulk(cell, f"bulk-{name}", name, settings, rng)
            for slab in own:
                frames += _enumerated_slab_frames(slab, settings, drawn, rng)
        return frames

    path = Path(spec)
    inputs = {k: getattr(settings, k) for k in ENUMERATE_FIELDS}
    inputs["bulk"] = spec
    inputs["bulk_file_sha256"] = (
        hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
    )
    return Shard(name=shard, make=make, inputs=inputs)


def _enumerated_slabs(spec: str, settings: GenerateSettings) -> list[SlabTermination]:
    """The slabs of `spec` a pass makes: its facets from --min-index to --max-index, only
    --facets where given (checked up front by `check_bulks`)."""
    enum = EnumerateSettings(
        bulks=[spec],
        max_index=settings.enum_max_index,
        min_ab=settings.enum_min_ab,
        min_slab_size=settings.enum_min_slab_size,
        vacuum=2 * settings.vacuum,
    )
    return [
        s
        for s in enumerate_slabs(enum)
        if max(map(abs, s.miller)) >= settings.enum_min_index
        and (not settings.enum_facets or s.miller in settings.enum_facets)
    ]


def _enumerated_slab_frames(
    slab: SlabTermination, settings: GenerateSettings, drawn: set[str], rng: np.random.Generator
) -> list[Atoms]:
    """One termination's clean-slab frames and its drawn adsorbates' relaxation frames."""
    name = slab.bulk.name
    facet = "".join(str(i) for i in slab.miller)  # "211", "1-10": as the other passes
    label = f"{name}-{facet}-t{slab.termination}"
    frames: list[Atoms] = []
    if f"{label}-clean" not in drawn and not settings.explorer:
        for f in _relax_frames(slab.atoms, settings)[::2] + [
            _rattled(slab.atoms, s, rng, f"rattle{s}") for s in settings.rattle_sigmas
        ]:
            frames.append(_tagged(f, "slab", f"{label}-clean", host=name, facet=facet))
    # the repeated cell's symmetry and every ontop candidate, as the committed passes were
    # made (enumerate uses the slab's own symmetry and drops ontop sites off their atom)
    sites = find_sites(slab.atoms, slab.bulk.d_nn, exact_ontop=False)
    for ads in _new_adsorbates(settings, label, drawn, rng, (name, slab.miller)):
        adsorbate = get_adsorbate(ads)
        n_sites = min(settings.sites_per_adsorbate, len(sites))
        for k in rng.choice(len(sites), size=n_sites, replace=False):
            site = sites[int(k)]
            orientation = heuristic_orientation(slab.atoms, site, adsorbate)
            try:
                # as the committed enumerate-built passes were placed
                placed = place(slab.atoms, site, adsorbate, orientation, rng, site_bonds=False)
            except CatscreenError:  # overlaps its own image in this small cell
                continue
            if settings.explorer:  # place() has nudged it, as enumerate does
                traj, extra = _relax_frames(placed, settings), []
            else:
                traj = _relax_frames(placed, settings)
                extra = [_rattled(traj[-1], settings.rattle_sigmas[0], rng, "rattle-end")]
            for f in traj + extra:
                frames.append(
                    _tagged(
                        f,
                        "adslab",
                        f"{label}-{ads}",
                        host=name,
                        facet=facet,
                        adsorbate=ads,
                        site=site.kind,
                    )
                )
    return frames


def check_bulks(settings: GenerateSettings) -> None:
    """Every --bulks entry resolves (library name or readable file, no name twice) and has a
    slab to make: refused before the first shard, not hours later when its shard comes up."""
    if not settings.bulks:
        return
    stems = [Path(spec).stem for spec in settings.bulks]
    twice = sorted({s for s in stems if stems.count(s) > 1})
    if twice:  # shards are named after them: the second would be taken as made
        raise CatscreenError(
            f"--bulks: {', '.join(twice)} given twice (a shard per name; rename one file)"
        )
    for entry in load_bulks(list(settings.bulks)):
        millers = [
            m
            for m in distinct_millers(entry, settings.enum_max_index)
            if max(map(abs, m)) >= settings.enum_min_index
        ]
        if settings.enum_facets and not set(millers) & set(settings.enum_facets):
            raise CatscreenError(
                f"{entry.name}: none of the facets "
                f"{', '.join(''.join(map(str, m)) for m in settings.enum_facets)} between "
                f"--min-index {settings.enum_min_index} and --max-index {settings.enum_max_index}"
            )


def _strained_bulk(
    cell: Atoms, sid: str, host: str, settings: GenerateSettings, rng: np.random.Generator
) -> list[Atoms]:
    """Isotropic strains, two random strains with rattles, and two MD snapshots of a cell."""
    frames: list[Atoms] = []
    for eps in settings.bulk_strains:
        a = cell.copy()
        a.set_cell(cell.cell * (1 + eps), scale_atoms=True)
        a.info["stage"] = f"strain{eps:+.3f}"
        frames.append(_tagged(a, "bulk", sid, host=host))
    for k in range(2):
        a = cell.copy()
        strain = np.eye(3) + rng.uniform(-0.03, 0.03, size=(3, 3))
        a.set_cell(cell.cell @ strain, scale_atoms=True)
        frames.append(
            _tagged(
                _rattled(a, settings.rattle_sigmas[k], rng, "shear+rattle"), "bulk", sid, host=host
            )
        )
    for f in _md_frames(cell.repeat((1, 2, 1)), settings, rng):
        frames.append(_tagged(f, "bulk", sid, host=host))
    return frames


def _bulk_shard(metals: Sequence[str]) -> Shard:
    def make(settings: GenerateSettings, rng: np.random.Generator) -> list[Atoms]:
        frames: list[Atoms] = []
        for m in metals:
            cell = bulk(m, HOSTS[m], cubic=HOSTS[m] != "hcp", **lattice(m))
            cell = cell.repeat((2, 1, 1)) if len(cell) < 4 else cell
            frames += _strained_bulk(cell, f"bulk-{m}", m, settings, rng)
        return frames

    return Shard(name="bulk", make=make, inputs={"shard_metals": list(metals)})


def _gas_shard() -> Shard:
    def make(settings: GenerateSettings, rng: np.random.Generator) -> list[Atoms]:
        frames: list[Atoms] = []
        for name in GAS:
            mol = gas_molecule(name)
            sid = f"gas-{name}"
            frames.append(_tagged(mol.copy(), "gas", sid, stage="g2"))
            for scale in (0.97, 1.03):
                a = mol.copy()
                c = a.positions.mean(axis=0)
                a.positions = c + (a.positions - c) * scale
                frames.append(_tagged(a, "gas", sid, stage=f"scale{scale}"))
            for s in settings.rattle_sigmas:
                frames.append(_tagged(_rattled(mol, s, rng, f"rattle{s}"), "gas", sid))
        return frames

    return Shard(name="gas", make=make)


def parse_alloys(text: str) -> tuple[tuple[str, str], ...]:
    """'Pt:Ni,Cu:Pd' -> (('Pt', 'Ni'), ('Cu', 'Pd')); 'none' -> ()."""
    if text.strip().lower() == "none":
        return ()
    pairs = []
    for item in text.split(","):
        host, sep, guest = item.strip().partition(":")
        if not sep or not host or not guest:
            raise CatscreenError(
                f"cannot read alloy {item.strip()!r}: expected HOST:GUEST, e.g. Pt:Ni"
            )
        pairs.append((host, guest))
    return tuple(pairs)


def plan(settings: GenerateSettings) -> list[Shard]:
    """Bulk and gas first, then one facet of every host before the next facet of any host,
    the alloys, the 3x3x3 cells, the enumerated bulks. An explorer pass makes only the
    adsorbate slabs; `small_cells=False` only the gas and the 3x3x3 cells."""
    shards = [] if settings.explorer else [_gas_shard()]
    if settings.small_cells:
        if settings.metals and not settings.explorer:
            shards.append(_bulk_shard(settings.metals))
        rounds = max((len(FACETS[HOSTS[m]]) for m in settings.metals), default=0)
        for r in range(rounds):
            for m in settings.metals:
                facets = FACETS[HOSTS[m]]
                if r < len(facets):
                    shards.append(_slab_shard(m, facets[r], settings.size, None))
        for host, guest in settings.alloys:
            shards.append(_slab_shard(host, FACETS[HOSTS[host]][0], settings.size, guest))
    if settings.large_cells:
        for m in settings.metals:
            shards.append(_slab_shard(m, FACETS[HOSTS[m]][0], settings.large_size, None))
    shards += [_enumerated_shard(b, settings) for b in settings.bulks]
    return shards


def _seed(settings: GenerateSettings, name: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{settings.seed}:{name}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _mirror(frames: Iterable[Atoms], fraction: float) -> list[Atoms]:
    """Copies of some spin-off frames as spin on: a non-magnetic metal's spin-polarised result is
    its spin-off result, and the on context then knows every element's reference energy."""
    out = []
    for a in frames:
        if a.info["spin"] != "off":
            continue
        key = f"{a.info.get('sid')}:{a.info.get('fid')}"
        if int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < fraction:
            b = a.copy()
            b.calc = a.calc
            b.info.update({"spin": "on", "mirror": True})
            out.append(b)
    return out


LABEL_ATOMS_PER_BATCH = 256  # CHGNet took 4.2 GB for a batch of 16 32-atom alloy slabs


def label_batch_size(frames: Sequence[Atoms]) -> int:
    """CHGNet's batch for a shard: 16 (the first passes') up to 16-atom frames, fewer above."""
    largest = max((len(a) for a in frames), default=1)
    return max(1, min(16, LABEL_ATOMS_PER_BATCH // largest))


def label_shard(
    structures: Path,
    out: Path,
    teacher_name: str,
    mirror_fraction: float,
    log: Callable[[str], None] = print,
) -> int:
    """Label one structure shard with one teacher; skipped when `out` exists for these very
    structures and reads. A shard made again (deleted as unreadable, other options) is labelled
    again: its record holds the structure file's hash (written first, so a kill leaves no labels
    that a record vouches for). Labels older than records are kept as they are. Labels damaged
    after they were written (cut off, emptied: they passed as finished) are made again."""
    record = out.parent / f"{extxyz_stem(out.name)}.source.json"
    source = {"structures": structures.name, "sha256": _sha256(structures)}
    frames = read_extxyz(structures)  # once: counted against the labels, or labelled
    if out.exists() and (not record.exists() or _read_json(record) == source):
        try:
            kept = len(read_extxyz(out))
            if kept >= len(frames):  # mirrored frames come on top
                return 0
            log(
                f"{out} holds {kept} labelled frames of {len(frames)} structures: labelling it "
                "again"
            )
        except CatscreenError as exc:
            log(f"{first_line(exc)}: labelling it again")
    out.unlink(missing_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(record) as tmp:
        tmp.write_text(json.dumps(source) + "\n")
    labelled = teacher.label(frames, teacher_name, batch_size=label_batch_size(frames))
    labelled += _mirror(labelled, mirror_fraction)
    write_extxyz(labelled, out)
    return len(labelled)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # a damaged record vouches for nothing: relabel
        return None


def shard_file(folder: Path, name: str) -> Path:
    """The file of shard `name` in `folder`, in whichever compression it was kept (the
    committed passes are .xz): a new one is .gz. A check for `.gz` alone made a rerun into a
    committed folder label every shard again beside its .xz, and train on it twice."""
    kept = [p for p in extxyz_files(folder, glob.escape(name)) if extxyz_stem(p.name) == name]
    return kept[0] if kept else folder / f"{name}.extxyz.gz"


def _check_record(folder: Path, settings: GenerateSettings, shard: Shard) -> None:
    """A made shard is reused only under the settings it was made with (shards made before
    records were kept have none and are reused as they are)."""
    record = folder / f"{shard.name}.settings.json"
    if not shard_file(folder, shard.name).exists() or not record.exists():
        return
    try:
        old = json.loads(record.read_text())
    except (OSError, ValueError) as exc:
        raise CatscreenError(
            f"{record}: unreadable ({first_line(exc)}); delete it and its shard"
        ) from exc
    new = shard_record(settings, shard)
    for key in RECORDED_SINCE:  # a record made before the key was kept says nothing of it
        if key not in old:
            new.pop(key, None)
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    if changed:
        diffs = "; ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed)
        raise CatscreenError(
            f"{folder.parent}: shard {shard.name} was made with other settings ({diffs}); "
            "resume with the same options or use a new folder"
        )


def generate(
    out: Path,
    settings: GenerateSettings,
    teachers: Sequence[str] = (),
    limit: int | None = None,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Make every missing shard under `out/structures`, labelling each as soon as it exists."""
    for t in teachers:
        teacher.check_teacher(t)
    check_bulks(settings)
    shards = plan(settings)[:limit]
    for shard in shards:  # all before any work: a mismatch found hours in would waste them
        _check_record(out / STRUCTURE_DIR, settings, shard)
    written = []
    for shard in shards:
        path = shard_file(out / STRUCTURE_DIR, shard.name)
        if not path.exists():
            record = out / STRUCTURE_DIR / f"{shard.name}.settings.json"
            with atomic_path(record) as tmp:
                tmp.write_text(json.dumps(shard_record(settings, shard), indent=1) + "\n")
            t0 = time.perf_counter()
            frames = shard.make(settings, _seed(settings, shard.name))
            counter: dict[str, int] = {}
            for f in frames:  # fid: the frame's index within its system, as the loaders expect
                f.info["fid"] = counter.get(f.info["sid"], 0)
                counter[f.info["sid"]] = f.info["fid"] + 1
                f.calc = None
            write_extxyz(frames, path)
            log(f"{shard.name}: {len(frames)} structures in {time.perf_counter() - t0:.0f} s")
        for t in teachers:
            t0 = time.perf_counter()
            n = label_shard(path, shard_file(out / t, shard.name), t, settings.mirror_fraction, log)
            if n:
                log(f"{shard.name}: {n} {t} labels in {time.perf_counter() - t0:.0f} s")
        written.append(path)
    return written


def thread_budget() -> None:
    """Background jobs share two cores with other work: one torch thread each."""
    import torch

    text = os.environ.get("CATSCREEN_THREADS", "1")
    if not text.isdigit() or int(text) < 1:
        raise CatscreenError(f"CATSCREEN_THREADS must be a whole number >= 1, not {text!r}")
    torch.set_num_threads(int(text))
