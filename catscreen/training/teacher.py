"""Teacher labels: the two CHGNet weight sets that ship inside the `chgnet` wheel.

No DFT database can be downloaded here, so CHGNet 0.3.0 (PBE/PBE+U, Materials Project) and its
r2SCAN transfer model label the same structures as two fidelities. Labels are attached as ASE
`SinglePointCalculator` results so any extxyz reader sees them, and the context (`spin`,
`fidelity`, `source`) goes into `atoms.info`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.units import GPa
from vesin import NeighborList

from catscreen.errors import CatscreenError
from catscreen.model import resolve_spin
from catscreen.model.chgnet_adapter import CHGNET_ELEMENTS, boxed, open_gap
from catscreen.training.datasets import drop_stated_context

# fidelity name -> CHGNet.load model_name
TEACHERS: dict[str, str] = {"chgnet-pbe": "0.3.0", "chgnet-r2scan": "r2scan"}


@dataclass(frozen=True)
class TeacherResult:
    energy: float  # eV, total
    forces: np.ndarray  # eV/A
    stress: np.ndarray | None  # Voigt, eV/A^3, ASE sign; None for non-periodic structures
    magmoms: np.ndarray  # muB, CHGNet predicts magnitudes


def check_teacher(name: str) -> str:
    if name not in TEACHERS:
        raise CatscreenError(f"unknown teacher {name!r}; expected one of {', '.join(TEACHERS)}")
    return name


@cache
def load_teacher(name: str):  # noqa: ANN201 - CHGNet is imported lazily
    """CHGNet weights from the wheel; loading is slow, so each weight set is loaded once."""
    from chgnet.model import CHGNet

    return CHGNet.load(model_name=TEACHERS[check_teacher(name)], use_device="cpu", verbose=False)


@cache
def labeller(name: str) -> str:
    """The teacher's code and weights as `model info chgnet` names them (chgnet-0.4.2-0.3.0):
    a label says what made it, not only its fidelity."""
    from chgnet import __version__

    return f"chgnet-{__version__}-{TEACHERS[check_teacher(name)]}"


CHGNET_CUTOFF = 6.0  # A, CHGNet's atom-graph cutoff


def _structure(atoms: Atoms, where: str):  # noqa: ANN202
    """CHGNet needs a lattice, so every frame is made periodic. A non-periodic direction whose
    vacuum is narrower than CHGNet's cutoff gets the wide box `load_model("chgnet")` gives it
    (a 2x2x3 Pt(111) slab with 3 A of vacuum was labelled 2.2 eV off, interacting with its own
    image); wider ones are kept as they are, so the labels of the committed passes stand."""
    from pymatgen.io.ase import AseAtomsAdaptor

    a = atoms.copy()
    a.constraints = []
    if open_gap(a) < CHGNET_CUTOFF:
        a = boxed(a)
    a.pbc = True
    if a.cell.rank < 3:
        raise CatscreenError(f"{where}: no 3D cell")
    structure = AseAtomsAdaptor.get_structure(a)
    i, _ = NeighborList(cutoff=CHGNET_CUTOFF, full_list=True).compute(
        a.positions, a.cell.array, True, "ij"
    )
    alone = sorted(set(range(len(a))) - set(i.tolist()))
    if alone:  # CHGNet raises a ValueError deep inside its graph code for these
        raise CatscreenError(
            f"{where}: atom(s) {', '.join(map(str, alone))} have no neighbour within "
            f"{CHGNET_CUTOFF:g} A, which CHGNet cannot label (an isolated atom, a desorbed "
            "fragment): leave such frames out"
        )
    return structure


def predict(name: str, structures: Sequence[Atoms], batch_size: int = 16) -> list[TeacherResult]:
    """Batched energies, forces, stresses and magnetic moments from one teacher."""
    if not structures:
        return []
    unknown = sorted({s for a in structures for s in a.symbols} - set(CHGNET_ELEMENTS))
    if unknown:  # CHGNet's embedding ends at Pu: a torch shape error said nothing of it
        raise CatscreenError(
            f"teacher {name} (CHGNet) knows elements H to Pu only, not {', '.join(unknown)}"
        )
    model = load_teacher(name)
    graphs = [
        _structure(a, f"frame {k} ({a.get_chemical_formula()}, sid {a.info.get('sid', '-')})")
        for k, a in enumerate(structures)
    ]
    preds = model.predict_structure(graphs, task="efsm", batch_size=batch_size)
    if isinstance(preds, dict):
        preds = [preds]
    out = []
    for atoms, p in zip(structures, preds, strict=True):
        n = len(atoms)
        stress = None
        if all(atoms.pbc):
            s = np.asarray(p["s"], dtype=float) * GPa  # GPa -> eV/A^3, CHGNet's calculator sign
            stress = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
        out.append(
            TeacherResult(
                energy=float(p["e"]) * n,  # CHGNet predicts eV/atom
                forces=np.asarray(p["f"], dtype=float).reshape(n, 3),
                stress=stress,
                magmoms=np.asarray(p["m"], dtype=float).reshape(n),
            )
        )
    return out


def teacher_spin(atoms: Atoms) -> str:
    """CHGNet 0.3.0 learned spin-polarised MP data: on for magnetic elements, off otherwise.

    Non-magnetic metals converge to zero moment in a spin-polarised calculation, so their label is
    the same either way and `off` is what `--spin auto` will ask for them.
    """
    return resolve_spin(atoms, "auto")


def attach_labels(atoms: Atoms, result: TeacherResult, fidelity: str, spin: str) -> Atoms:
    """A labelled copy: the teacher's results as a single-point calculator, the context in info."""
    a = atoms.copy()
    drop_stated_context(a.info)
    a.info.update(
        {"fidelity": fidelity, "spin": spin, "source": "chgnet", "labeller": labeller(fidelity)}
    )
    a.set_initial_magnetic_moments(None)
    results: dict[str, object] = {
        "energy": result.energy,
        "free_energy": result.energy,
        "forces": result.forces,
        "magmoms": result.magmoms,
    }
    if result.stress is not None:
        results["stress"] = result.stress
    a.calc = SinglePointCalculator(a, **results)
    return a


def label(
    frames: Sequence[Atoms], teacher: str, batch_size: int = 16, spin: str = "auto"
) -> list[Atoms]:
    """Label frames with one teacher; `spin` auto follows `teacher_spin`, on/off forces it."""
    results = predict(check_teacher(teacher), frames, batch_size=batch_size)
    return [
        attach_labels(a, r, teacher, teacher_spin(a) if spin == "auto" else resolve_spin(a, spin))
        for a, r in zip(frames, results, strict=True)
    ]
