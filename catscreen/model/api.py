"""The contract between models and the rest of catscreen.

Relaxation, ranking and training talk to a model only through `Model.predict`, so the bundled
network, CHGNet and any ASE calculator (EMT for tests) are interchangeable.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import yaml
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.formula import Formula

from catscreen.errors import CatscreenError, described, did_you_mean
from catscreen.paths import data_path

Spin = Literal["off", "on"]
SPIN_VALUES: tuple[str, ...] = ("off", "on")
SPIN_MODES: tuple[str, ...] = ("auto", "off", "on")


@dataclass(frozen=True)
class ModelInfo:
    """What a model is, recorded in every result row."""

    name: str
    version: str
    fidelities: tuple[str, ...]
    default_fidelity: str
    spin_conditioned: bool
    predicts_magmoms: bool = False
    n_heads: int = 1
    elements: tuple[str, ...] | None = None  # None: any element the backend accepts
    description: str = ""
    # contexts ("fidelity/spin-on") no training frame was in, where the checkpoint can tell
    # (trained from scratch: its frame counts); its predictions there are untrained
    untrained: tuple[str, ...] = ()
    # elements its training frames held in a surface or bulk, not only in adsorbates and gas
    # molecules (the bundled weights: metals; no oxide); None: not recorded, nothing claimed
    hosts: tuple[str, ...] | None = None
    # (elements, what was measured on them): hosts relax warns of, most specific first
    host_notes: tuple[tuple[tuple[str, ...], str], ...] = ()

    def untrained_note(self, contexts: Iterable[tuple[str, str]]) -> str | None:
        """What of the (fidelity, spin) pairs asked for falls where no training frame was, with
        no other word than a `spin` column: relax and evaluate both say so."""
        used = Counter(f"{fidelity}/spin-{spin}" for fidelity, spin in contexts)
        blind = Counter({c: n for c, n in used.items() if c in self.untrained})
        if not blind:
            return None
        return (
            f"model {self.name} was trained on no frame of {counted(blind)}: its numbers there "
            "are untrained"
        )

    def check_context(self, spin: str, fidelity: str) -> None:
        """A context the model does not know is an error, never a silent default."""
        if spin not in SPIN_VALUES:
            raise CatscreenError(f"unknown spin context {spin!r}; expected one of {SPIN_VALUES}")
        if fidelity not in self.fidelities:
            raise CatscreenError(
                f"model {self.name} has no fidelity {fidelity!r}; it knows {list(self.fidelities)}"
            )

    def domain_of(self, host: Sequence[str] | None) -> str:
        """What the model's training says of a surface of these host atoms: '' (nothing
        known against it), `outside:O,N` (elements its training frames held only in
        adsorbates and gas molecules) or `note:<text>` (a host the model measured poor)."""
        if not host:
            return ""
        if self.hosts is not None and (unseen := sorted(set(host) - set(self.hosts))):
            return "outside:" + ",".join(unseen)
        for elements, note in self.host_notes:  # most specific first
            if set(elements) & set(host):
                return "note:" + note
        return ""

    def check_elements(self, *structures: Atoms) -> None:
        """Every element of `structures` is one the model was trained on (all at once: a run
        checks its whole input before any work)."""
        if self.elements is None:
            return
        seen = {s for atoms in structures for s in atoms.get_chemical_symbols()}
        unknown = sorted(seen - set(self.elements))
        if unknown:
            other = (
                ""
                if self.name == "chgnet"
                else " (--model chgnet, of the catscreen[teacher] extra, knows 89 elements)"
            )
            raise CatscreenError(
                f"model {self.name} was not trained on element(s) {', '.join(unknown)}{other}"
            )


def host_symbols(atoms: Atoms, kind: object = None, adsorbate: object = None) -> list[str] | None:
    """The symbols of a structure's surface or bulk atoms, not its adsorbate's: a clean slab or
    a bulk is all host, an adslab loses its adsorbate's formula by count (a user's Pt(111)+O,
    all tags 0, is no oxide), or, its adsorbate named otherwise, its tag-2 atoms when they
    are on top (enumerate's, Open Catalyst's tags; ASE's layer tags give a 2-layer slab's
    bottom tag 2). None where nothing tells them apart: no claim is made."""
    if kind == "gas":
        return []
    symbols = atoms.get_chemical_symbols()
    if kind in ("slab", "bulk"):
        return symbols
    try:
        adsorbed = Formula(str(adsorbate)).count() if adsorbate else {}
    except ValueError:  # a custom adsorbate's name, not a formula
        adsorbed = {}
    left = Counter(symbols)
    left.subtract(adsorbed)
    if adsorbed and min(left.values()) >= 0:
        return sorted(left.elements())
    ads = adsorbate_mask(atoms)
    return None if ads is None else [s for s, a in zip(symbols, ads, strict=True) if not a]


def mid_vacuum_z(atoms: Atoms) -> np.ndarray:
    """Per atom, the fractional z of the plane below it in the middle of the vacuum: an atom
    that crosses that plane, or its image one cell up, has crossed half the vacuum. The cell's
    own boundary failed a slab whose bottom layer sits at z = 0 (ASE's `surface`, pymatgen's
    uncentred slabs) as soon as a free atom there moved down by 0.001 A."""
    z = atoms.get_scaled_positions(wrap=False)[:, 2]
    order = np.sort(np.mod(z, 1.0))
    gaps = np.diff(np.append(order, order[0] + 1.0))
    k = int(np.argmax(gaps))
    middle = order[k] + gaps[k] / 2
    return middle + np.floor(z - middle)


def slab_heights(atoms: Atoms) -> np.ndarray:
    """Heights (A) above the middle of the vacuum, so that a slab wrapped through z = 0 (VASP,
    pymatgen) keeps its top atoms on top; plain z without a periodic third vector."""
    z = atoms.positions[:, 2]
    if atoms.pbc[2] and atoms.cell.rank == 3:
        z = (atoms.get_scaled_positions(wrap=False)[:, 2] - mid_vacuum_z(atoms)) * atoms.cell[2, 2]
    return z


def adsorbate_mask(atoms: Atoms) -> np.ndarray | None:
    """Open Catalyst's tag 2, the adsorbate, where it is on top; None where the tags name no
    adsorbate: none is 2, or they are ASE's layer numbers (1..n from the top: a 3-layer slab's
    middle layer and a 2-layer slab's bottom are tag 2)."""
    tags = atoms.get_tags()
    ads = tags == 2
    if not ads.any() or not set(tags.tolist()) <= {0, 1, 2}:
        return None
    z = slab_heights(atoms)  # a wrapped slab's adatom sat below its surface
    return ads if ads.all() or z[ads].max() > z[~ads].max() else None


def counted(names: Counter[str]) -> str:
    """'MgO (5 structures), Pt (1 structure)': what a warning is about, and how much of it."""
    return ", ".join(f"{b} ({n} structure{'s' if n > 1 else ''})" for b, n in sorted(names.items()))


def domain_warnings(model: str, rows: Iterable[tuple[str, str]]) -> list[str]:
    """One line per kind of `ModelInfo.domain_of` among (bulk name, domain) rows, naming the
    bulks and how many structures each: relax warns of what it runs, rank of what it ranks."""
    found: dict[str, Counter[str]] = {}
    for name, domain in rows:
        if domain:
            found.setdefault(domain, Counter())[name] += 1
    lines = []
    outside = {d: n for d, n in found.items() if d.startswith("outside:")}
    if outside:
        elements = sorted({e for d in outside for e in d.removeprefix("outside:").split(",")})
        names = sum(outside.values(), Counter())
        lines.append(
            f"model {model} was trained on no surface or bulk holding {', '.join(elements)} "
            f"(only as adsorbates or gas molecules): {counted(names)} are outside its training, "
            "and their energies and uncertainties are extrapolation: check them with --model "
            "chgnet or DFT"
        )
    lines += [
        f"model {model}: {d.removeprefix('note:')}: {counted(n)}"
        for d, n in sorted(found.items())
        if d.startswith("note:")
    ]
    return lines


@dataclass
class Prediction:
    """One structure's prediction. `energy` is the ensemble mean, `energy_std` its spread."""

    energy: float
    forces: np.ndarray
    energy_std: float = 0.0
    # each ensemble head's energy: differences of correlated structures (E_ads) need them
    energy_heads: np.ndarray | None = None
    forces_std: np.ndarray | None = None
    stress: np.ndarray | None = None  # Voigt, eV/A^3, ASE sign convention
    magmoms: np.ndarray | None = None
    extra: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class Model(Protocol):
    info: ModelInfo
    # where its arithmetic runs ("cpu", "cuda:0"), recorded with results; a model without
    # one is taken to run on the CPU

    def predict(
        self,
        structures: Sequence[Atoms],
        spins: Sequence[str],
        fidelities: Sequence[str],
        stress: bool = False,
    ) -> list[Prediction]:
        """Evaluate many structures (any sizes) in as few backend calls as possible."""
        ...


@cache
def magnetic_elements() -> frozenset[str]:
    with open(data_path("magnetic_elements.yaml")) as fh:
        return frozenset(yaml.safe_load(fh)["magnetic"])


def has_stress(atoms: Atoms) -> bool:
    """The Model contract: a stress for structures with a periodic direction and a volume;
    None for a molecule or a slab written without a c vector."""
    return bool(atoms.pbc.any()) and atoms.cell.volume > 1e-9


def resolve_spin(atoms: Atoms, mode: str) -> str:
    """`auto`: spin on when the structure holds a magnetic element (data/magnetic_elements.yaml)
    outside its adsorbate (tag 2 on top): a slab and its adslabs share one context, which E_ads
    needs (a Ni adatom made Cu(111)+Ni spin-on beside its spin-off clean slab, and rank refused
    the whole run); a structure without adsorbate tags (ASE's layer numbers included: they made
    a Pt/Ni/Pt slab's Ni layer an adsorbate, spin off) by all its atoms."""
    if mode not in SPIN_MODES:
        raise CatscreenError(f"unknown spin mode {mode!r}; expected auto, on or off")
    if mode != "auto":
        return mode
    symbols = np.array(atoms.get_chemical_symbols())
    ads = adsorbate_mask(atoms) if len(symbols) else None
    host = symbols if ads is None or ads.all() else symbols[~ads]
    return "on" if magnetic_elements() & set(host) else "off"


class AseCalculatorModel:
    """Any ASE calculator as a `Model`: one call per structure, no ensemble, no conditioning.

    Used for EMT in tests and for users who want to screen with their own calculator.
    """

    def __init__(
        self,
        factory: Callable[[], Calculator],
        name: str,
        version: str = "",
        elements: tuple[str, ...] | None = None,
    ) -> None:
        self._factory = factory
        self._calc = factory()
        self.device = "cpu"  # ASE calculators in this process
        self.info = ModelInfo(
            name=name,
            version=version or name,
            fidelities=(name,),
            default_fidelity=name,
            spin_conditioned=False,
            elements=elements,
        )

    def predict(
        self,
        structures: Sequence[Atoms],
        spins: Sequence[str],
        fidelities: Sequence[str],
        stress: bool = False,
    ) -> list[Prediction]:
        out = []
        for atoms, spin, fid in zip(structures, spins, fidelities, strict=True):
            self.info.check_context(spin, fid)
            a = atoms.copy()
            a.calc = self._calc
            try:
                energy = float(a.get_potential_energy())
                forces = np.asarray(a.get_forces(apply_constraint=False), dtype=float)
                # EMT raises for a molecule's stress: the contract says None
                s = np.asarray(a.get_stress(), dtype=float) if stress and has_stress(a) else None
            except Exception as exc:
                raise CatscreenError(
                    f"{self.info.name} failed on {a.get_chemical_formula()}: {described(exc)}"
                ) from exc
            out.append(Prediction(energy=energy, forces=forces, stress=s))
        return out


def _emt() -> Model:
    from ase.calculators.emt import EMT, parameters

    # its parameter table: Ru failed every row with "Wrong number of cutoff radii", exit 0
    return AseCalculatorModel(
        EMT, name="emt", version="ase-emt", elements=tuple(sorted(parameters))
    )


BUILTIN_MODELS = ("bundled", "chgnet", "chgnet-pbe", "chgnet-r2scan", "emt")


def load_model(name: str = "bundled") -> Model:
    """`bundled` (the shipped weights), a checkpoint path, `chgnet` or `chgnet-r2scan`, or `emt`.

    A `Model` (batched `predict` over structures and contexts), not an ASE calculator: for
    `atoms.calc`, wrap it as `catscreen.model.CatscreenCalculator(load_model(...), spin=...)`.
    """
    if name == "emt":
        return _emt()
    if name in ("chgnet", "chgnet-pbe", "chgnet-r2scan"):
        from catscreen.model.chgnet_adapter import load_chgnet

        return load_chgnet(name)
    from catscreen.model.checkpoint import load_checkpoint_model

    if name == "bundled":
        return load_checkpoint_model(None)
    check_model_name(name)
    return load_checkpoint_model(Path(name))


def spin_conditioned(name: str) -> bool:
    """Whether `load_model(name)` reads the spin context, without loading it: the checkpoints
    (bundled or a file) do; CHGNet and EMT compute the same physics either way."""
    return name == "bundled" or name not in BUILTIN_MODELS


def check_model_name(name: str, looked_in: str = "") -> None:
    """Fail before any work is done when `name` is neither a built-in model nor a file;
    `looked_in` says where a relative path was searched."""
    if name in BUILTIN_MODELS:
        return
    path = Path(name)
    if not path.exists() and (path.suffix or "/" in str(name)):  # meant as a file
        where = f" (looked in {looked_in})" if looked_in else ""
        raise CatscreenError(f"checkpoint not found: {name}{where}")
    if not path.exists():
        raise CatscreenError(
            f"unknown model {name!r}{did_you_mean(name, BUILTIN_MODELS)}: expected "
            f"{', '.join(BUILTIN_MODELS)} or a checkpoint file"
        )
