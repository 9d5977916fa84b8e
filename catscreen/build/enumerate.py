"""From settings to configurations: bulks x facets x terminations x sites x adsorbates.

The one entry point the CLI, the campaign runner and training-data generation share.
Every structure carries its manifest row in atoms.info, so the manifest is derived from the
structures and the two files can never disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from ase import Atoms
from ase.io import write
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pymatgen.core import Composition

from catscreen.build.adsorbates import Adsorbate, get_adsorbate, load_custom_adsorbate
from catscreen.build.bulks import load_bulks
from catscreen.build.placements import (
    NUDGE,
    Orientation,
    heuristic_orientation,
    place,
    random_orientation,
)
from catscreen.build.sites import Site, find_sites
from catscreen.build.slabs import (
    DEFAULT_VACUUM,
    MAX_LAYERS,
    MAX_LENGTH,
    MAX_REPEAT,
    MIN_VACUUM,
    Bravais,
    Miller,
    SlabTermination,
    check_distinct_facets,
    distinct_millers,
    facet_for,
    facet_text,
    make_slabs,
    miller_text,
    parse_facet,
    parse_repeat,
    stable_id,
)
from catscreen.errors import CatscreenError
from catscreen.io import (
    atomic_path,
    parquet_table,
    read_parquet,
    read_parquet_metadata,
    read_structures,
)
from catscreen.schema import MANIFEST_COLUMNS

# e/A: a slab whose formal charges give a larger dipole per area is polar (pymatgen's
# Slab.is_polar tolerance)
POLAR_DIPOLE = 1e-3
ANIONS = {"N", "O", "S", "Se", "Te", "F", "Cl", "Br", "I"}  # the bulks the polar note reads
MAX_GUESS_SITES = 16  # atoms of a reduced formula whose oxidation states are guessed
STRUCTURES_FILE = "configs.extxyz"
MANIFEST_FILE = "configs.parquet"
# Manifest columns stored as text in atoms.info, read back as text (not as numbers or arrays).
_TEXT_COLUMNS = (
    "config_id",
    "system_id",
    "slab_id",
    "kind",
    "bulk",
    "bulk_formula",
    "miller",
    "site_type",
    "site_atoms",
    "adsorbate",
    "placement",
    "side",
    "binding_atoms",
)


def _repeat_value(value: Any) -> Any:
    if isinstance(value, int | float):  # YAML reads `repeat: 22` as a number
        raise ValueError(f"bad repeat {value!r}: give AxB, like 2x2, or [A, B]")
    if not isinstance(value, str):
        return value
    try:
        return parse_repeat(value)
    except CatscreenError as exc:  # pydantic reports ValueErrors with the field's name
        raise ValueError(str(exc)) from None


# `2x2` or [2, 2]: how often the primitive surface cell repeats along a and b
Times = Annotated[int, Field(ge=1, le=MAX_REPEAT)]
Repeat = Annotated[tuple[Times, Times], BeforeValidator(_repeat_value)]
SIZE_PAIRS = (("layers", "min_slab_size"), ("repeat", "min_ab"))  # new replaces old


def size_conflict(settings: BaseModel) -> tuple[str, str] | None:
    """layers replaces min_slab_size and repeat min_ab: asking for both is a contradiction.
    Returns the pair given together, (new, old)."""
    for new, old in SIZE_PAIRS:
        if getattr(settings, new) is not None and old in settings.model_fields_set:
            return new, old
    return None


class EnumerateSettings(BaseModel):
    """Everything `enumerate` needs; stored in the manifest metadata for reproducibility."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    bulks: list[str] = Field(description="library names (Pt, Ni3Al) or structure file paths")
    miller: list[Miller | Bravais] = Field(
        default_factory=list,
        description="facets; empty: use max_index. 4-index (h,k,i,l) facets apply to hexagonal bulks only",
    )
    max_index: int = Field(1, ge=1, description="all distinct facets up to this index")
    min_slab_size: float = Field(7.0, gt=0, le=MAX_LENGTH, description="minimum slab thickness (A)")
    vacuum: float = Field(
        DEFAULT_VACUUM,
        ge=MIN_VACUUM,
        le=MAX_LENGTH,
        description=f"vacuum thickness (A), >= {MIN_VACUUM:g}",
    )
    min_ab: float = Field(8.0, gt=0, le=MAX_LENGTH, description="minimum in-plane cell lengths (A)")
    layers: int | None = Field(
        None,
        ge=1,
        le=MAX_LAYERS,
        description="exactly this many atomic layers (a layer is one height, as CatKit counts "
        "them) instead of min_slab_size: the same thickness for every bulk of a facet",
    )
    repeat: Repeat | None = Field(
        None,
        description="the primitive surface cell repeated a x b times instead of min_ab: one "
        "coverage for the bulks of a facet whose primitive surface cells match",
    )
    max_terminations: int | None = Field(
        None,
        ge=1,
        description="keep the first N terminations of each facet (pymatgen's shift order, a "
        "bottom termination after its top); None: all",
    )
    adsorbates: list[str] = Field(default_factory=list, description="library adsorbate names")
    custom_adsorbates: list[str] = Field(default_factory=list, description="FILE:I[,J] specs")
    placement: Literal["heuristic", "random"] = "heuristic"
    n_random: int = Field(5, ge=1, description="random placements per slab and adsorbate")
    seed: int = Field(0, description="seed of the random placements and of the nudges")
    nudge: float = Field(
        NUDGE,
        ge=0.0,
        le=0.5,
        description="offset (A) of every placement off its symmetric site, random direction, "
        "with a tilt of 50 deg/A: relaxations can leave saddles; 0 places exactly on the site",
    )
    include_clean: bool = Field(True, description="write the clean slabs as configurations")

    @field_validator("miller", mode="before")
    @classmethod
    def _parse_miller(cls, value: Any) -> Any:
        # tuples too: (0, 0, 0) divided by zero later, (1, 0, 0, 1) was cut as (1, 0, 1)
        return [
            parse_facet(m if isinstance(m, str) else ",".join(map(str, m))) for m in value or []
        ]

    @model_validator(mode="after")
    def _one_size(self) -> EnumerateSettings:
        if (pair := size_conflict(self)) is not None:
            raise ValueError(f"give {pair[1]} or {pair[0]}, not both")
        return self


def _info(
    slab: SlabTermination,
    system_id: str,
    config_id: str,
    adsorbate: str,
    placement: str,
    site: Site | None,
    binding: tuple[int, ...] = (),
) -> dict[str, Any]:
    info: dict[str, Any] = {
        "config_id": config_id,
        "system_id": system_id,
        "slab_id": slab.slab_id,
        "kind": "slab" if site is None else "adslab",
        "bulk": slab.bulk.name,
        "bulk_formula": slab.bulk.formula,
        "miller": miller_text(slab.miller),
        "termination": slab.termination,
        "shift": round(slab.shift, 6),
        "side": slab.side,
        "site_type": "none" if site is None else site.kind,
        "adsorbate": adsorbate,
        "placement": placement,
    }
    if site is not None:  # extxyz cannot hold an empty string, so clean slabs omit these
        info["site_atoms"] = ",".join(map(str, site.atoms))
        info["site_x"], info["site_y"], info["site_z"] = (round(v, 4) for v in site.position)
        info["binding_atoms"] = ",".join(map(str, binding))
    return info


def _site_identity(slab: Atoms, site: Site) -> dict[str, object]:
    frac = np.linalg.solve(slab.cell.array[:2, :2].T, np.array(site.position[:2]))
    return {
        "kind": site.kind,
        # round, then wrap: wrapping first sends -1e-16 to 0.9999... and so to 1.0
        "frac": (np.mod(np.round(frac, 3), 1.0) + 0.0).tolist(),
        "atoms": list(site.atoms),
    }


def _adslab(
    slab: SlabTermination,
    site: Site,
    adsorbate: Adsorbate,
    orientation: Orientation,
    placement: dict[str, object],
    settings: EnumerateSettings,
) -> Atoms:
    system_id = stable_id("sys", {"slab": slab.slab_id, "adsorbate": adsorbate.identity()})
    identity: dict[str, object] = {
        "system": system_id,
        "site": _site_identity(slab.atoms, site),
        "orientation": orientation.identity(),
        "placement": placement,
    }
    if settings.nudge > 0:  # ids of unnudged placements stay what they were
        identity["nudge"] = {"distance": settings.nudge, "seed": settings.seed}
    config_id = stable_id("cfg", identity)
    # The nudge's stream is keyed by the configuration: it does not depend on what else is made.
    rng = np.random.default_rng(int(config_id.split("-")[1], 16))
    atoms = place(slab.atoms, site, adsorbate, orientation, rng, settings.nudge)
    binding = tuple(len(slab.atoms) + i for i in adsorbate.binding)
    atoms.info = _info(
        slab, system_id, config_id, adsorbate.name, str(placement["placement"]), site, binding
    )
    return atoms


def _placements(
    slab: SlabTermination, adsorbate: Adsorbate, settings: EnumerateSettings
) -> list[Atoms]:
    if settings.placement == "heuristic":
        return [
            _adslab(
                slab,
                site,
                adsorbate,
                heuristic_orientation(slab.atoms, site, adsorbate),
                {"placement": "heuristic"},
                settings,
            )
            for site in find_sites(slab.atoms, slab.bulk.d_nn, repeat=slab.repeat)
        ]
    sites = find_sites(slab.atoms, slab.bulk.d_nn, unique=False)
    # One stream per (seed, slab, adsorbate): results do not depend on what else is enumerated.
    key = stable_id(
        "rng", {"seed": settings.seed, "slab": slab.slab_id, "adsorbate": adsorbate.identity()}
    )
    rng = np.random.default_rng(int(key.split("-")[1], 16))
    out = []
    for k in range(settings.n_random):
        site = sites[int(rng.integers(len(sites)))]
        orientation = random_orientation(rng)
        placement = {"placement": "random", "seed": settings.seed, "draw": k}
        out.append(_adslab(slab, site, adsorbate, orientation, placement, settings))
    return out


def _clean(slab: SlabTermination) -> Atoms:
    system_id = stable_id("sys", {"slab": slab.slab_id, "adsorbate": "none"})
    config_id = stable_id("cfg", {"system": system_id, "placement": "clean"})
    atoms = slab.atoms.copy()
    atoms.info = _info(slab, system_id, config_id, "none", "clean", None)
    return atoms


def resolve_adsorbates(settings: EnumerateSettings) -> list[Adsorbate]:
    """Library and custom adsorbates, checked before any slab is cut."""
    adsorbates = [get_adsorbate(name) for name in settings.adsorbates]
    adsorbates += [load_custom_adsorbate(spec) for spec in settings.custom_adsorbates]
    names = [a.name for a in adsorbates]
    if len(set(names)) != len(names):
        raise CatscreenError(
            f"adsorbate given twice: {', '.join(sorted({n for n in names if names.count(n) > 1}))}"
        )
    if not adsorbates and not settings.include_clean:
        raise CatscreenError("nothing to enumerate: no adsorbate and clean slabs excluded")
    return adsorbates


def enumerate_slabs(settings: EnumerateSettings) -> list[SlabTermination]:
    """Every termination of every requested facet of every bulk, in a stable order."""
    slabs = []
    for bulk in load_bulks(settings.bulks):
        if settings.miller:
            millers = [m for f in settings.miller if (m := facet_for(bulk, f)) is not None]
            if not millers:
                raise CatscreenError(
                    f"bulk {bulk.name} is not hexagonal, so none of the Miller-Bravais facets "
                    "given applies to it: give it a 3-index --miller"
                )
            check_distinct_facets(bulk, millers)
        else:
            millers = distinct_millers(bulk, settings.max_index)
        for miller in millers:
            slabs += make_slabs(
                bulk,
                miller,
                settings.min_slab_size,
                settings.vacuum,
                settings.min_ab,
                layers=settings.layers,
                repeat=settings.repeat,
                max_terminations=settings.max_terminations,
            )
    return slabs


def enumerate_configurations(
    settings: EnumerateSettings, note: Callable[[str], None] | None = None
) -> list[Atoms]:
    """All configurations (clean slabs first per slab), each with its manifest row in info;
    `note` hears of facets whose other terminations max_terminations left out."""
    adsorbates = resolve_adsorbates(settings)
    images: list[Atoms] = []
    slabs = enumerate_slabs(settings)
    if note is not None:
        for line in (dropped_terminations(slabs), off_composition(slabs), polar_slabs(slabs)):
            if line is not None:
                note(line)
    for slab in slabs:
        if settings.include_clean:
            images.append(_clean(slab))
        for adsorbate in adsorbates:
            images += _placements(slab, adsorbate, settings)
    ids = [a.info["config_id"] for a in images]
    if len(set(ids)) != len(ids):
        raise CatscreenError("two configurations got the same id: the enumeration has duplicates")
    return images


def dropped_terminations(slabs: list[SlabTermination]) -> str | None:
    """Facets of which max_terminations kept fewer terminations than they have: an alloy
    facet's other termination is another composition (FeCo(100): Fe or Co), and keeping the
    first in pymatgen's order silently screened one of them."""
    kept: dict[str, list[SlabTermination]] = {}
    for slab in slabs:
        kept.setdefault(_facet_name(slab), []).append(slab)
    cut = [
        f"{name} {len(held)} of {held[0].of}"
        for name, held in kept.items()
        if len(held) < held[0].of
    ]
    if not cut:
        return None
    return (
        f"terminations kept (max_terminations): {', '.join(cut)}; the others expose other atoms "
        "(another composition on an alloy or compound): raise max_terminations to screen them"
    )


def _facet_name(slab: SlabTermination) -> str:
    """'Co(1,0,-1,0) [miller 1,0,0]': a note's facet as written, and as the tables hold it."""
    name = f"{slab.bulk.name}({facet_text(slab.bulk, slab.miller)})"
    three = miller_text(slab.miller)
    return name if name.endswith(f"({three})") else f"{name} [miller {three}]"


def _by_facet(found: list[tuple[SlabTermination, str]]) -> str:
    """'CeO2(111) termination 0 Ce8O8, 1 Ce4O12; ZnO(001) ...' in the slabs' order."""
    facets: dict[str, list[str]] = {}
    for slab, what in found:
        facets.setdefault(_facet_name(slab), []).append(f"{slab.termination}{what}")
    return "; ".join(f"{k} termination {', '.join(v)}" for k, v in facets.items())


def off_composition(slabs: list[SlabTermination]) -> str | None:
    """Slabs of another composition than their bulk: `layers` cuts atomic layers, not formula
    units (CeO2(111) in 4 layers: Ce8O8 and Ce4O12), and rank names each by its bulk."""
    found = []
    for slab in slabs:
        bulk = slab.bulk.structure.composition.reduced_formula
        formula = Composition(slab.atoms.get_chemical_formula())
        if formula.reduced_formula != bulk:
            found.append((slab, f" {formula.formula.replace(' ', '')}"))
    if not found:
        return None
    return (
        f"slabs not of their bulk's composition: {_by_facet(found)}; layers cut atomic layers, "
        "not formula units, and rank names them by their bulk: without layers / --layers each "
        "slab is whole bulk cells thick"
    )


def _formal_charges(comp: Composition) -> dict[str, float]:
    """Each element's formal charge in an oxide, nitride, chalcogenide or halide ({} for
    others: a carbide's or an intermetallic's charges would call WC and PtSb polar, and for a
    formula of more than MAX_GUESS_SITES atoms: pymatgen's guess took 85 s and 2.4 GB on a
    224-atom high-entropy spinel)."""
    if not {str(e) for e in comp.elements} & ANIONS:
        return {}
    try:
        guesses = comp.oxi_state_guesses(max_sites=-MAX_GUESS_SITES)
    except ValueError:  # the reduced formula has more atoms than that
        return {}
    return dict(guesses[0]) if guesses else {}


def polar_slabs(slabs: list[SlabTermination]) -> str | None:
    """Slabs of an ionic bulk (an oxide, nitride, chalcogenide, halide) with a net dipole
    across them by formal charges (Tasker type 3: ZnO(001), CeO2(100)): a real surface
    reconstructs or changes its composition there, which the cut and a short-ranged model do
    not."""
    charges: dict[str, dict[str, float]] = {}
    found = []
    for slab in slabs:
        bulk = slab.bulk
        if bulk.name not in charges:
            charges[bulk.name] = _formal_charges(bulk.structure.composition)
        q = charges[bulk.name]
        if not q:
            continue
        atoms = slab.atoms
        z = atoms.positions[:, 2] - atoms.positions[:, 2].mean()
        area = float(np.linalg.norm(np.cross(atoms.cell[0], atoms.cell[1])))
        dipole = (
            sum(q.get(s, 0.0) * h for s, h in zip(atoms.get_chemical_symbols(), z, strict=True))
            / area
        )
        if abs(dipole) > POLAR_DIPOLE:
            found.append((slab, ""))
    if not found:
        return None
    return (
        f"polar slabs (a net dipole across the slab by formal charges, Tasker type 3): "
        f"{_by_facet(found)}; a real surface reconstructs there, the unrelaxed cut and the "
        "model's short-ranged energies do not: screen the non-polar terminations, or check "
        "with DFT (rank --write-dft writes a dipole correction)"
    )


def manifest(images: list[Atoms]) -> pd.DataFrame:
    """One row per structure with exactly the columns of schema.MANIFEST_COLUMNS."""
    rows = []
    for index, atoms in enumerate(images):
        info = atoms.info
        row = {key: info.get(key) for key in MANIFEST_COLUMNS}
        row.update(
            formula=atoms.get_chemical_formula(mode="hill"),
            n_atoms=len(atoms),
            structure_index=index,
            site_atoms=info.get("site_atoms", ""),
            site_x=info.get("site_x", np.nan),
            site_y=info.get("site_y", np.nan),
            site_z=info.get("site_z", np.nan),
        )
        rows.append(row)
    df = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    return df.astype(
        {
            "termination": "int64",
            "n_atoms": "int64",
            "structure_index": "int64",
            "shift": "float64",
            "site_x": "float64",
            "site_y": "float64",
            "site_z": "float64",
        }
    )


def write_configurations(
    images: list[Atoms], out_dir: str | Path, settings: EnumerateSettings
) -> tuple[Path, Path]:
    """Write DIR/configs.extxyz and DIR/configs.parquet: both written before either replaces
    the files of an earlier run (the table last), so a failed write leaves the old pair."""
    out = Path(out_dir)
    df = manifest(images)
    metadata = {"structures": STRUCTURES_FILE, "settings": settings.model_dump(mode="json")}
    structures, table = out / STRUCTURES_FILE, out / MANIFEST_FILE
    with atomic_path(table) as table_tmp:
        pq.write_table(parquet_table(df, metadata), table_tmp)
        with atomic_path(structures) as structures_tmp:
            write(structures_tmp, images, format="extxyz")
    return structures, table


def read_configurations(path: str | Path) -> list[Atoms]:
    """configs.extxyz with the manifest's text keys of atoms.info kept as written."""
    return read_structures(path, _TEXT_COLUMNS)


def read_manifest(path: str | Path) -> tuple[pd.DataFrame, list[Atoms]]:
    """A manifest (the parquet, or the folder holding it) and its structures, row i <-> frame i."""
    table = Path(path)
    if table.is_dir():
        table = table / MANIFEST_FILE
    df = read_parquet(table, required=MANIFEST_COLUMNS)
    structures = table.parent / read_parquet_metadata(table).get("structures", STRUCTURES_FILE)
    images = read_configurations(structures)
    if len(images) != len(df) or sorted(df["structure_index"]) != list(range(len(images))):
        raise CatscreenError(
            f"{table} and {structures} disagree: {len(df)} rows, {len(images)} structures"
        )
    paired = [images[i] for i in df["structure_index"]]
    for config_id, atoms in zip(df["config_id"], paired, strict=True):
        if atoms.info.get("config_id") != config_id:
            raise CatscreenError(
                f"{table} and {structures} disagree: row {config_id} holds structure "
                f"{atoms.info.get('config_id')}; were they written by different runs?"
            )
    return df, paired
