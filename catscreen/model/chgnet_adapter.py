"""CHGNet behind the `Model` contract: the teacher for training labels and a side-by-side baseline.

CHGNet (optional extra `catscreen[teacher]`) knows one level of theory per weight file, so
each adapter exposes a single fidelity and ignores the spin context (it is always spin
polarised, and predicts magnetic moments itself).
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols
from ase.units import GPa

from catscreen.errors import CatscreenError
from catscreen.model.api import ModelInfo, Prediction, has_stress

# name -> (CHGNet weight file, fidelity name)
CHGNET_MODELS = {
    "chgnet": ("0.3.0", "chgnet-pbe"),
    "chgnet-pbe": ("0.3.0", "chgnet-pbe"),
    "chgnet-r2scan": ("r2scan", "chgnet-r2scan"),
}
CHGNET_ELEMENTS = tuple(chemical_symbols[1:95])  # its atom embedding has 94 rows: H to Pu
VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
# CHGNet needs a lattice: non-periodic directions get at least this gap between images
# (more than its 6 A atom-graph cutoff).
MOLECULE_VACUUM = 10.0


class ChgnetModel:
    """Batched CHGNet: one `predict_structure` call per `predict`.

    CHGNet's memory grows steeply with its internal batch: 8 slabs of 37 atoms took 4.5 GB
    as one batch, 2.5 GB in batches of 2 (and ran faster), 32 as one batch over 15 GB.
    """

    def __init__(self, name: str, batch_size: int = 4) -> None:
        if name not in CHGNET_MODELS:
            raise CatscreenError(f"unknown CHGNet model {name!r}; expected {sorted(CHGNET_MODELS)}")
        try:
            from chgnet import __version__ as chgnet_version
            from chgnet.model import CHGNet
        except ImportError:
            raise CatscreenError(
                "CHGNet is not installed: pip install 'catscreen[teacher]'"
            ) from None
        weights, fidelity = CHGNET_MODELS[name]
        with contextlib.redirect_stdout(io.StringIO()):  # it announces itself on stdout
            self.model = CHGNet.load(model_name=weights, verbose=False)
        self.device = str(next(self.model.parameters()).device)  # CHGNet chooses its own
        self.batch_size = batch_size
        self.info = ModelInfo(
            name=name,
            version=f"chgnet-{chgnet_version}-{weights}",
            fidelities=(fidelity,),
            default_fidelity=fidelity,
            spin_conditioned=False,
            predicts_magmoms=True,
            elements=CHGNET_ELEMENTS,
            description=f"CHGNet {chgnet_version}, weights {weights} ({fidelity})",
        )

    def predict(
        self,
        structures: Sequence[Atoms],
        spins: Sequence[str],
        fidelities: Sequence[str],
        stress: bool = False,
    ) -> list[Prediction]:
        from pymatgen.io.ase import AseAtomsAdaptor

        if not (len(structures) == len(spins) == len(fidelities)):
            raise CatscreenError("structures, spins and fidelities must have the same length")
        if not structures:
            return []
        for spin, fid in zip(spins, fidelities, strict=True):
            self.info.check_context(spin, fid)
        pmg = [AseAtomsAdaptor.get_structure(boxed(a)) for a in structures]
        try:
            raw = self.model.predict_structure(pmg, task="efsm", batch_size=self.batch_size)
        except Exception as exc:
            raise CatscreenError(f"CHGNet failed: {exc}") from exc
        raw = [raw] if isinstance(raw, dict) else raw
        out = []
        for atoms, box, r in zip(structures, pmg, raw, strict=True):
            s = None
            if stress and has_stress(atoms):
                # CHGNet divides by the boxed volume; the stress is of the user's cell
                scale = box.lattice.volume / atoms.cell.volume
                full = np.asarray(r["s"], dtype=float).reshape(3, 3) * GPa * scale
                s = np.array([full[i, j] for i, j in VOIGT])
            out.append(
                Prediction(
                    energy=float(r["e"]) * len(atoms),  # CHGNet predicts eV per atom
                    forces=np.asarray(r["f"], dtype=float),
                    stress=s,
                    magmoms=np.asarray(r["m"], dtype=float).reshape(-1),
                )
            )
        return out


def open_gap(atoms: Atoms) -> float:
    """The narrowest empty space between a structure and its images across a non-periodic
    direction, measured across the cell (the spacing of its lattice planes), not along the
    vector: a slab with an oblique c had 5 A where |c| promised 22. 0 for a cell without
    volume; inf when every direction is periodic."""
    if atoms.pbc.all():
        return math.inf
    if atoms.cell.rank < 3:
        return 0.0
    reciprocal = np.linalg.inv(atoms.cell.array).T  # rows: the reciprocal vectors (no 2 pi)
    gaps = []
    for k in np.flatnonzero(~np.asarray(atoms.pbc)):
        normal = reciprocal[k] / np.linalg.norm(reciprocal[k])
        extent = np.ptp(atoms.positions @ normal) if len(atoms) else 0.0
        gaps.append(1.0 / np.linalg.norm(reciprocal[k]) - extent)
    return float(min(gaps))


def boxed(atoms: Atoms, vacuum: float = MOLECULE_VACUUM) -> Atoms:
    """CHGNet needs a periodic lattice: non-periodic directions narrower than `vacuum` get
    vectors perpendicular to the periodic ones, long enough for that much empty space."""
    if open_gap(atoms) >= vacuum:
        return atoms  # a wide enough cell is kept as the user gave it
    a = atoms.copy()
    cell = a.cell.array.copy()
    periodic = [cell[k] for k in range(3) if a.pbc[k]]
    if len(periodic) == 2:
        fill = [np.cross(*periodic)]
    elif len(periodic) == 1:
        p = periodic[0] / np.linalg.norm(periodic[0])
        helper = np.eye(3)[int(np.argmin(np.abs(p)))]  # the axis least along p
        u = helper - (helper @ p) * p
        fill = [u, np.cross(p, u)]
    else:
        fill = list(np.eye(3))
    for k, u in zip(np.flatnonzero(~np.asarray(a.pbc)), fill, strict=True):
        u = u / np.linalg.norm(u)
        extent = np.ptp(a.positions @ u) if len(a) else 0.0
        cell[k] = u * (extent + vacuum)
    if np.linalg.det(cell) < 0:  # a positive volume: the stress is scaled by it
        k = int(np.flatnonzero(~np.asarray(a.pbc))[-1])
        cell[k] = -cell[k]
    a.set_cell(cell, scale_atoms=False)
    a.pbc = True
    return a


def load_chgnet(name: str = "chgnet") -> ChgnetModel:
    """`chgnet`/`chgnet-pbe` (weights 0.3.0, MP PBE/PBE+U) or `chgnet-r2scan`."""
    return ChgnetModel(name)
