"""Campaign recipes: one YAML file that names everything a screen needs, validated strictly.

A typo in a recipe must fail before an hour of relaxations, and the message must point at the
line, so the loader keeps YAML node positions and maps pydantic error locations back to them.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from catscreen.analysis.candidates import Candidate as AnalysisCandidate
from catscreen.analysis.candidates import parse_candidate
from catscreen.build.adsorbates import unknown_adsorbate
from catscreen.build.bulks import FRAME_INDEX, bulk_library, unknown_bulk
from catscreen.build.enumerate import Repeat, size_conflict
from catscreen.build.placements import NUDGE
from catscreen.build.slabs import (
    MAX_LAYERS,
    MAX_LENGTH,
    MIN_VACUUM,
    Bravais,
    Miller,
    miller_text,
    parse_facet,
    three_index,
)
from catscreen.errors import CatscreenError, closest, first_line
from catscreen.io import UniqueKeyLoader, yaml_error
from catscreen.paths import find_shipped, recipes_dir


class FieldError(ValueError):
    """A cross-field check that knows which field is wrong, so the error names that line."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


class _Strict(BaseModel):
    """Unknown keys are errors: a misspelt option must never be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_yes_no(cls, value: Any) -> Any:
        """No recipe field is a yes/no, and pydantic reads `fmax: true` as 1.0 eV/A (and
        `max_terminations: true` as 1) without a word: true/false is refused."""
        if _holds_yes_no(value):
            raise ValueError("true/false is no value here: give a number or a name")
        return value


def _holds_yes_no(value: Any) -> bool:
    """A true/false, or one inside a list (`miller: [[1, true, 1]]` was read as 1,1,1);
    mappings are models of their own, checked by their own fields."""
    if isinstance(value, list):
        return any(_holds_yes_no(v) for v in value)
    return isinstance(value, bool)


def parse_facet_value(value: Any) -> Miller | Bravais:
    """A facet to cut, `[1, 1, 1]`, `"1,1,1"`, `"111"` or hcp `"0001"` / `[0, 0, 0, 1]`: a
    4-index one stays 4-index, so that it applies to hexagonal bulks only, as `enumerate
    --miller` does (as (0, 0, 1) it cut Pt(100) beside Co(0001))."""
    if isinstance(value, list | tuple):
        value = ",".join(str(v) for v in value)
    try:
        return parse_facet(str(value))
    except CatscreenError as exc:
        raise ValueError(str(exc)) from None


def parse_miller(value: Any) -> Miller:
    """A facet as 3 indices: a name's (the reference's), `0001` -> (0, 0, 1)."""
    return three_index(parse_facet_value(value))


def _cut_facets(candidate: Candidate, facets: list[Miller | Bravais]) -> list[Miller]:
    """The facets enumerate cuts of `candidate`: a 4-index one only of a hexagonal bulk (a
    file's lattice is not read here: its 4-index facets count)."""
    entry = None if candidate.file is not None else bulk_library().get(candidate.name)
    hexagonal = entry is None or entry.get("structure") == "hcp"
    return [three_index(f) for f in facets if len(f) == 3 or hexagonal]


MillerIndex = Annotated[Miller, BeforeValidator(parse_miller)]
FacetIndex = Annotated[Miller | Bravais, BeforeValidator(parse_facet_value)]


def _one_facet_as_list(value: Any) -> Any:
    """`miller: "111"` (or `111`) is one facet, `["111"]`: "Input should be a valid list"
    named no fix."""
    if isinstance(value, str | int) and not isinstance(value, bool):
        return [str(value)]
    return value


FacetList = Annotated[list[FacetIndex], BeforeValidator(_one_facet_as_list)]


class Candidate(_Strict):
    """A bulk: a name in the built-in library, or a structure file (CIF, POSCAR, extxyz).

    `miller` overrides the recipe's facets for this bulk: fcc(111), bcc(110) and hcp(0001)
    are different index triples, so a mixed screen names each crystal's close-packed facet.
    """

    name: str = Field(min_length=1, description="library bulk (Pt, CuPd) or the file's stem")
    file: Path | None = Field(
        default=None, description="structure file (CIF, POSCAR, extxyz), next to the recipe"
    )
    miller: FacetList | None = Field(
        default=None, min_length=1, description="this bulk's facets, instead of facets:"
    )

    @model_validator(mode="before")
    @classmethod
    def _name_of_file(cls, value: Any) -> Any:
        """`{file: Ag.cif}` is named Ag: the name must be the file's stem anyway."""
        if isinstance(value, dict) and "name" not in value and isinstance(value.get("file"), str):
            return {"name": Path(value["file"]).stem, **value}
        return value

    @model_validator(mode="after")
    def _file_name(self) -> Candidate:
        if self.file is not None and self.file.stem != self.name:
            raise FieldError(
                ("name",), f"a file candidate is named after its file: use name: {self.file.stem}"
            )
        if self.file is None:
            why = unknown_bulk(self.name, "a structure file is {name: X, file: X.cif}")
            if why is not None:
                raise FieldError(("name",), why)
        _unique_millers(self.miller)
        return self


def _unique_millers(millers: list[Miller | Bravais] | None) -> None:
    """'111' and '1,1,1' (or '0001' and '001') are one facet; listing it twice would enumerate
    it twice."""
    seen: set[Miller] = set()
    for m in millers or []:
        if three_index(m) in seen:
            raise ValueError(
                f"facet {miller_text(m)} is listed twice (a multiple of an index, or its 3- and "
                "4-index forms, is one facet)"
            )
        seen.add(three_index(m))


class Facets(_Strict):
    """Either explicit Miller indices or every symmetrically distinct facet up to max_index."""

    miller: FacetList | None = Field(
        default=None, min_length=1, description='facets to cut: "111", "0001" (hcp), [1, 1, 0]'
    )
    max_index: int | None = Field(
        default=None, ge=1, le=3, description="every distinct facet up to this index, instead"
    )

    @model_validator(mode="after")
    def _one(self) -> Facets:
        if (self.miller is None) == (self.max_index is None):
            raise ValueError("give exactly one of facets.miller or facets.max_index")
        _unique_millers(self.miller)
        return self


class SlabSettings(_Strict):
    """How thick, how wide and how much vacuum; small defaults keep screening cheap. Which
    atoms are fixed is not a setting: enumerate tags every atom not exposed from above as
    subsurface (tag 0, fixed)."""

    min_slab_size: float = Field(default=7.0, gt=0, le=MAX_LENGTH, description="slab thickness (A)")
    layers: int | None = Field(
        default=None,
        ge=1,
        le=MAX_LAYERS,
        description="atomic layers (one height each) instead of min_slab_size",
    )
    vacuum: float = Field(
        default=12.0, ge=MIN_VACUUM, le=MAX_LENGTH, description="vacuum thickness (A)"
    )
    min_ab: float = Field(
        default=6.0, gt=0, le=MAX_LENGTH, description="minimum in-plane cell length (A)"
    )
    repeat: Repeat | None = Field(
        default=None, description="primitive surface cell repeated a x b times instead of min_ab"
    )
    max_terminations: int = Field(
        default=1,
        ge=1,
        description="terminations kept per facet, in pymatgen's order (the top of its slab, "
        "then the bottom of an asymmetric one): 1 keeps one of an alloy facet's two "
        "compositions (FeCo(100): Fe or Co), so screen alloys with 2",
    )

    @model_validator(mode="after")
    def _one_size(self) -> SlabSettings:
        if (pair := size_conflict(self)) is not None:
            raise FieldError((pair[0],), f"give {pair[1]} or {pair[0]}, not both")
        return self


class Placement(_Strict):
    """Heuristic placements put each adsorbate on each symmetry-distinct site; random ones put
    it on n random sites instead."""

    mode: Literal["heuristic", "random"] = Field(
        default="heuristic",
        description="heuristic: one placement per symmetry-distinct site; random: n random "
        "sites instead",
    )
    n: int = Field(default=4, ge=1, description="random placements per slab and adsorbate")
    seed: int = Field(default=0, description="seed of the random placements")
    nudge: float = Field(
        default=NUDGE, ge=0.0, le=0.5, description="offset (A) off the symmetric site"
    )


class ModelSettings(_Strict):
    name: str = Field(
        default="bundled",
        description="bundled, chgnet, chgnet-r2scan, emt or a checkpoint (found next to the "
        "recipe first)",
    )
    spin: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="spin context; auto: on for hosts with a magnetic element (Fe, Co, Ni, ...)",
    )
    fidelity: str | None = Field(default=None, description="level of theory (unset: the model's)")


class RelaxSettings(_Strict):
    optimizer: Literal["fire", "lbfgs"] = Field(default="fire", description="ASE optimizer")
    fmax: float = Field(default=0.05, gt=0, description="force threshold (eV/A)")
    steps: StrictInt = Field(
        default=300, ge=1, description="optimizer steps per structure, at most"
    )
    batch_size: StrictInt = Field(default=32, ge=1, description="structures per model call")
    executor: Literal["local", "dask"] = Field(
        default="local",
        description="local (one batch at a time) or dask (a LocalCluster, or `campaign run "
        "--scheduler`)",
    )
    workers: int | None = Field(
        default=None, ge=1, description="Dask LocalCluster workers (unset: as `relax`, 2)"
    )


class Target(_Strict):
    """`target: -0.3` is `{value: -0.3}`; the tolerance defaults as in `rank --target`."""

    value: float = Field(description="ideal descriptor value (eV)")
    tolerance: float = Field(
        default=0.2,
        gt=0,
        description="distance from the ideal that counts as on target (eV; unset: "
        "ranking.reference's tolerance, as `rank --tolerance` serves both)",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_value(cls, value: Any) -> Any:
        return _target_mapping(value)


def _target_mapping(value: Any) -> Any:
    """`-0.3` -> `{value: -0.3}`; anything else as given."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"value": value}
    return value


class Descriptor(_Strict):
    """A descriptor is the lowest adsorption energy of one adsorbate over its placements.

    Absolute mode: descriptor = min E_ads + `correction`, where the correction turns an
    adsorption energy into the quantity a target is known for, e.g. dG_H = dE_H + 0.24 eV
    (Norskov et al., J. Electrochem. Soc. 152, J23 (2005)). Reference mode (ranking.reference):
    descriptor = min E_ads - min E_ads on the reference surface, so gas-reference offsets cancel
    and the target is a relative value (default 0: "binds like the reference").
    """

    name: str = Field(description="its table column, e.g. dE_O or dG_H")
    adsorbate: str = Field(description="one of the recipe's adsorbates")
    correction: float = Field(default=0.0, description="eV added to min E_ads (absolute mode)")
    correction_source: str = Field(default="", description="where the correction comes from")
    target: Target | None = Field(
        default=None, description="ideal value: -0.3 or {value, tolerance} (eV)"
    )

    @field_validator("name")
    @classmethod
    def _column_name(cls, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
            raise ValueError(
                f"{name!r} names table columns: letters, digits and _, from a letter (dE_CO)"
            )
        return name


class Reference(_Strict):
    """A candidate surface the others are compared with, e.g. Ru(0001) for ammonia synthesis.

    `bulk` is a candidate's name, or `stem_i` for frame i (from 0) of a candidate file with
    several frames, as enumerate names them.
    """

    bulk: str = Field(description="a candidate's name")
    miller: MillerIndex = Field(description="one of that candidate's facets")
    tolerance: float = Field(
        default=0.2,
        gt=0,
        description="eV, for descriptors without a target and targets without a tolerance",
    )
    source: str = Field(default="", description="why this surface is the reference")

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        """`reference: "Ru(0001)"`, as `rank --reference` takes it."""
        if not isinstance(value, str):
            return value
        try:
            cand = parse_candidate(value)
        except CatscreenError as exc:
            raise ValueError(str(exc)) from None
        if cand.termination:
            raise ValueError(
                f"a reference names no termination: drop t{cand.termination} (the facet's first "
                "termination is the reference)"
            )
        return {"bulk": cand.bulk, "miller": list(cand.miller)}

    @property
    def candidate(self) -> str:
        """The rank stage's canonical name, e.g. 'Ru(001)'."""
        return AnalysisCandidate(self.bulk, self.miller).name


# The leaderboard's own columns, and what it adds per descriptor D (D_std, D_config, ...).
BOARD_COLUMNS = frozenset(
    {"rank", "candidate", "bulk", "miller", "termination", "slab_id", "spin", "is_reference",
     "reference_spin", "distance", "distance_std", "on_target", "model", "model_version"}
)  # fmt: skip
DESCRIPTOR_SUFFIXES = ("_std", "_config", "_site", "_final_site")


class Ranking(_Strict):
    """Candidates are ranked by distance = sqrt(sum_D ((D - target) / tolerance)^2)."""

    descriptors: list[Descriptor] = Field(min_length=1, description="one per adsorbate ranked")
    reference: Reference | None = Field(
        default=None,
        description='rank relative to this surface: "Ru(0001)" or {bulk, miller}',
    )
    top_n: int = Field(default=5, ge=1, description="candidates shown, compared and reported")

    @model_validator(mode="before")
    @classmethod
    def _reference_tolerance(cls, value: Any) -> Any:
        """A target without a tolerance takes the reference's, as `rank --tolerance` serves
        both (`target: 0.1` beside `reference: {..., tolerance: 0.5}` was ranked at 0.2)."""
        if not isinstance(value, dict) or not isinstance(value.get("descriptors"), list):
            return value
        ref = value.get("reference")
        tolerance = ref.get("tolerance") if isinstance(ref, dict) else None
        if tolerance is None:
            return value
        descriptors = []
        for d in value["descriptors"]:
            target = _target_mapping(d.get("target")) if isinstance(d, dict) else None
            if isinstance(target, dict) and "tolerance" not in target:
                d = {**d, "target": {**target, "tolerance": tolerance}}
            descriptors.append(d)
        return {**value, "descriptors": descriptors}

    @model_validator(mode="after")
    def _targets(self) -> Ranking:
        names: set[str] = set()
        adsorbates: set[str] = set()
        taken = {f"{d.name}{s}" for d in self.descriptors for s in DESCRIPTOR_SUFFIXES}
        for i, d in enumerate(self.descriptors):
            if d.name in BOARD_COLUMNS or d.name in taken:  # it would overwrite that column
                raise FieldError(
                    ("descriptors", i, "name"),
                    f"{d.name} names a leaderboard column; choose another name",
                )
            if d.target is None and self.reference is None:
                raise FieldError(
                    ("descriptors", i),
                    f"descriptor {d.name} has no target: give it a target or give ranking.reference",
                )
            if self.reference is not None and d.correction != 0:
                raise FieldError(
                    ("descriptors", i, "correction"),
                    "a correction cancels against the reference surface; drop it in reference mode",
                )
            if d.name in names:
                raise FieldError(("descriptors", i, "name"), f"duplicate descriptor {d.name}")
            if d.adsorbate in adsorbates:
                raise FieldError(
                    ("descriptors", i, "adsorbate"), f"a second descriptor for {d.adsorbate}"
                )
            names.add(d.name)
            adsorbates.add(d.adsorbate)
        return self


class Validation(_Strict):
    """Which placements deserve DFT: for every adsorbate on every surface (every candidate,
    not only the best ranked) the top_k lowest valid placements, plus rank flips and any with
    an ensemble spread above the threshold."""

    top_k: int = Field(
        default=3, ge=0, description="lowest placements flagged per adsorbate and surface"
    )
    uncertainty_threshold: float = Field(
        default=0.15, gt=0, description="flag placements whose ensemble std exceeds this (eV)"
    )
    write: list[Literal["vasp", "gpaw"]] = Field(
        default_factory=list, description="DFT inputs written for the flagged: vasp, gpaw"
    )


class Recipe(_Strict):
    version: Literal[1] = Field(default=1, description="recipe format")
    name: str = Field(description="the campaign's name (in file names)")
    description: str = Field(default="", description="free text, shown in the summary")

    @field_validator("name")
    @classmethod
    def _folder_name(cls, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ValueError(f"{name!r} names files: letters, digits, '_', '.' and '-' (co2_rr)")
        return name

    candidates: list[Candidate] = Field(
        min_length=1, description="bulks: library names or {name, file, miller}"
    )
    facets: Facets | None = Field(
        default=None, description="facets of every candidate without its own miller"
    )
    slab: SlabSettings = Field(default=SlabSettings(), description="slab size and vacuum")
    adsorbates: list[str] = Field(
        min_length=1, description="placed on every slab: O, H, CO, N, NH3, ... (library names)"
    )

    @field_validator("adsorbates")
    @classmethod
    def _unique_adsorbates(cls, names: list[str]) -> list[str]:
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"adsorbate(s) listed twice: {', '.join(twice)}")
        for i, name in enumerate(names):
            if (why := unknown_adsorbate(name)) is not None:
                raise FieldError((i,), why)
        return names

    placement: Placement = Field(default=Placement(), description="where adsorbates start")
    model: ModelSettings = Field(default=ModelSettings(), description="the potential")
    relax: RelaxSettings = Field(default=RelaxSettings(), description="the relaxations")
    ranking: Ranking = Field(description="descriptors, targets, reference surface")
    validation: Validation = Field(default=Validation(), description="the DFT flags")

    @field_validator("candidates", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Recipe:
        names = [c.name for c in self.candidates]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise FieldError(("candidates", i), f"duplicate candidate {name}")
            cand = self.candidates[i]
            if self.facets is None and cand.miller is None:
                raise FieldError(
                    ("candidates", i),
                    f"{name} has no facets: give it a miller list or give facets:",
                )
            given = cand.miller or (self.facets.miller if self.facets else None)
            if given and not _cut_facets(cand, given):  # else enumerate's --miller message
                where = ("candidates", i, "miller") if cand.miller else ("facets", "miller")
                raise FieldError(
                    where,
                    f"{name} is not hexagonal, so none of its Miller-Bravais facets applies: "
                    "give it a 3-index facet (bcc: 110, fcc: 111)",
                )
        if self.facets is not None and all(c.miller is not None for c in self.candidates):
            raise FieldError(
                ("facets",),
                "every candidate gives its own miller, so these facets apply to none: add the "
                "facets to the candidates' miller lists, or drop those lists",
            )
        for i, d in enumerate(self.ranking.descriptors):
            if d.adsorbate not in self.adsorbates:
                raise FieldError(
                    ("ranking", "descriptors", i, "adsorbate"),
                    f"adsorbate {d.adsorbate} is not in the recipe's adsorbates {self.adsorbates}",
                )
            named = re.fullmatch(r"d[EG]_(\w+)", d.name)
            if named and named[1] != d.adsorbate and named[1] in self.adsorbates:
                raise FieldError(  # dE_H measuring CO: a swapped pair read as each other
                    ("ranking", "descriptors", i, "adsorbate"),
                    f"descriptor {d.name} is named for {named[1]} but measures {d.adsorbate}",
                )
        ref = self.ranking.reference
        if ref is not None:
            cand = self.candidate_of_bulk(ref.bulk)
            if cand is None:
                raise FieldError(
                    ("ranking", "reference", "bulk"),
                    f"{ref.bulk!r} is not among the candidates (a frame of a file with several "
                    "is named stem_i, from 0)",
                )
            facets = cand.miller or (self.facets.miller if self.facets else None)
            if facets is not None and ref.miller not in _cut_facets(cand, facets):
                raise FieldError(
                    ("ranking", "reference", "miller"),
                    f"facet {miller_text(ref.miller)} is not among {ref.bulk}'s facets",
                )
            max_index = self.facets.max_index if self.facets else None
            if facets is None and max_index is not None and max(map(abs, ref.miller)) > max_index:
                raise FieldError(
                    ("ranking", "reference", "miller"),
                    f"facet {miller_text(ref.miller)} is beyond facets.max_index {max_index}",
                )
        return self

    def candidate_of_bulk(self, bulk: str) -> Candidate | None:
        """The candidate a bulk name comes from: its own name, or `stem_i` for frame i of a
        file with several frames (enumerate's names; whether frame i exists is checked once
        the file is read)."""
        named = {c.name: c for c in self.candidates}
        stem, _, index = bulk.rpartition("_")
        frame = named.get(stem) if re.fullmatch(FRAME_INDEX, index) else None
        return named.get(bulk) or (frame if frame is not None and frame.file is not None else None)

    def resolve_files(self, base: Path) -> Recipe:
        """Candidate files are relative to the recipe's folder; make them absolute."""
        cands = [
            c
            if c.file is None or c.file.is_absolute()
            else c.model_copy(update={"file": base / c.file})
            for c in self.candidates
        ]
        for i, c in enumerate(cands):
            if c.file is not None and not c.file.is_file():
                raise FieldError(("candidates", i, "file"), f"file not found: {c.file}")
        return self.model_copy(update={"candidates": cands})


# settings added after campaigns were first run: a finished campaign resumed with a newer
# catscreen keeps its stages when the recipe does not use them
_ADDED_SETTINGS = {"slab": ("layers", "repeat")}


def section_hash(recipe: Recipe, fields: tuple[str, ...], parent: str = "") -> str:
    """A short hash of some recipe sections (and the content of candidate files) plus a parent
    hash, so that a stage reruns exactly when something it depends on changed."""
    payload: dict[str, Any] = {"parent": parent}
    dump = recipe.model_dump(mode="json")
    for section, keys in _ADDED_SETTINGS.items():  # unset, they leave the hash as it was
        for key in keys:
            if dump[section][key] is None:
                del dump[section][key]
    for name in fields:
        payload[name] = dump[name]
    if "candidates" in fields:  # a file by its name and content, not where the checkout sits
        for cand in payload["candidates"]:
            if cand.get("file"):
                cand["file"] = Path(cand["file"]).name
        payload["files"] = {
            c.name: hashlib.sha256(c.file.read_bytes()).hexdigest()
            for c in recipe.candidates
            if c.file is not None
        }
    text = json.dumps(payload, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- the keys, for `campaign keys` -------------------------------------------------------------


def _kind(annotation: Any) -> str:
    """A field's type as a recipe writer reads it: 'number', 'auto | on | off', 'list of facet'."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _kind(args[0])
    if origin in (Union, UnionType):
        return " | ".join(dict.fromkeys(_kind(a) for a in args if a is not type(None)))
    if origin is Literal:
        return " | ".join(map(str, args))
    if origin is list:
        item = _kind(args[0])
        return f"list of ({item})" if " | " in item else f"list of {item}"
    if origin is tuple:
        return "facet" if len(args) in (3, 4) else " x ".join(["integer"] * len(args))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    return {str: "text", float: "number", int: "integer", Path: "path"}.get(annotation, "value")


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return ""  # a section: its keys have the defaults
    return "unset" if value is None else json.dumps(value) if isinstance(value, str) else str(value)


# Keys whose value may also be written short (their models' "before" validators read it)
_SHORTHANDS = {
    "candidates": "list of (name | mapping)",
    "ranking.descriptors[].target": "number | mapping",
    "ranking.reference": "name | mapping",
}


def recipe_keys(model: type[BaseModel] = Recipe, prefix: str = "") -> list[tuple[str, ...]]:
    """(key, type, default, meaning) of every key a recipe takes, sections before their keys;
    a list's items are `key[]`. Made from the model, so it cannot fall behind it."""
    rows: list[tuple[str, ...]] = []
    for name, field in model.model_fields.items():
        key = prefix + name
        kind = _SHORTHANDS.get(key, _kind(field.annotation))
        rows.append((key, kind, _default(field), field.description or ""))
        if (inner := _model_in(field.annotation)) is not None:
            item = get_origin(field.annotation) is list
            rows += recipe_keys(inner, key + ("[]." if item else "."))
    return rows


# --- loading with line numbers -------------------------------------------------------------


class _LineLoader(UniqueKeyLoader):
    """Duplicate keys refused, and only true/false read as booleans (YAML 1.2): `spin: off`
    and the adsorbate `NO` stay text."""


_REPLACED = ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int")
_LineLoader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag not in _REPLACED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_LineLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)
# YAML 1.1 reads 011 as octal 9; a facet written that way stays the text "011"
_LineLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9_]*)$"), list("-+0123456789")
)


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """Follow a pydantic error location through the YAML node tree; the deepest node found
    gives the line (1-based). Keys point at their key, so unknown fields name their own line."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == str(part):
                    line = key_node.start_mark.line + 1
                    node = value_node
                    break
            else:
                return line
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _where(path: Path, root: yaml.Node | None, loc: tuple[Any, ...]) -> str:
    """`FILE:LINE: field`, the start of every recipe error."""
    line = _line_of(root, loc)
    field = ".".join(str(p) for p in loc) or "recipe"
    return f"{path}:{line}: {field}" if line is not None else f"{path}: {field}"


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The recipe section a field holds: `Target | None`, `list[Descriptor]` -> the model."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next(filter(None, map(_model_in, get_args(annotation))), None)


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """The keys a recipe takes at `loc` (list indices skipped), for a typo's suggestion."""
    model: type[BaseModel] | None = Recipe
    for part in (p for p in loc if not isinstance(p, int)):
        field = model.model_fields.get(str(part)) if model is not None else None
        model = _model_in(field.annotation) if field is not None else None
    return list(model.model_fields) if model is not None else []


# What a mapping looks like where a plain value was given (`facets: 111`)
_MAPPING_EXAMPLES = {
    "Target": "-0.3 or {value: -0.3, tolerance: 0.2}",
    "Facets": '{miller: ["111"]} or {max_index: 1}',
    "Descriptor": "{name: dE_O, adsorbate: O}",
    "Reference": '{bulk: Pt, miller: "111"} or "Pt(111)"',
    "Candidate": 'Pt, {name: Pt, miller: ["111"]} or {file: Ag.cif}',
}


def _format_error(path: Path, root: yaml.Node | None, exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    # A typo'd field is both unknown and, under its right name, missing: name the typo first.
    errors.sort(key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    loc = tuple(first["loc"])
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, FieldError):
        loc = loc + cause.loc
    msg = first["msg"].removeprefix("Value error, ")
    explained = 1
    if first["type"] == "extra_forbidden":
        missing = [
            str(e["loc"][-1])
            for e in errors
            if e["type"] == "missing" and tuple(e["loc"][:-1]) == loc[:-1]
        ]
        meant = closest(str(loc[-1]), missing) or closest(str(loc[-1]), _fields_at(loc[:-1]))
        msg = "unknown field" + ("" if meant is None else f" (did you mean {meant!r}?)")
        explained += int(meant in missing)  # the typo's right name, missing for it
    elif first["type"] == "model_type":
        name = first.get("ctx", {}).get("class_name", "")
        msg = f"give a mapping here, e.g. {_MAPPING_EXAMPLES.get(name, '{key: value}')}"
    more = len(errors) - explained
    return f"{_where(path, root, loc)}: {msg}" + (
        f" (and {more} more error(s): fix this one and run again)" if more > 0 else ""
    )


def parse_recipe(text: str, path: Path) -> Recipe:
    """Validate recipe text; every error becomes one line `FILE:LINE: field: message`."""
    loader = _LineLoader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as exc:
        raise yaml_error(path, exc) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise CatscreenError(f"{path}: a recipe is a YAML mapping (name:, candidates:, ...)")
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        raise CatscreenError(_format_error(path, root, exc)) from None


def find_recipe(path: str | Path) -> Path:
    """A recipe file, or the name of a shipped one (`quickstart`, `ammonia_synthesis`), so an
    installed wheel runs them without the source tree."""
    return find_shipped(path, "recipe", recipes_dir(), ".yaml")


def load_recipe(path: str | Path) -> Recipe:
    """Read, validate and resolve a recipe file (or a shipped recipe's name)."""
    p = find_recipe(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:  # a binary or unreadable file
        raise CatscreenError(f"cannot read recipe {p}: {first_line(exc)}") from None
    try:
        return parse_recipe(text, p).resolve_files(p.resolve().parent)
    except FieldError as exc:  # parse_recipe read the text, so composing it again succeeds
        raise CatscreenError(
            f"{_where(p, yaml.compose(text, _LineLoader), exc.loc)}: {exc}"
        ) from None
