"""CHGNet behind the `Model` contract: the teacher for training labels and a side-by-side baseline.

CHGNet (optional extra `catscreen[teacher]`) knows one level of theory per weight file, so
each adapter exposes a single fidelity and ignores the spin context (it is always spin
polarised, and predicts magnetic moments itself).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.units import GPa

from catscreen.errors import CatscreenError
from catscreen.model.api import ModelInfo, Prediction, has_stress

# name -> (CHGNet weight file, fidelity name)
CHGNET_MODELS = {
    "chgnet": ("0.3.0", "chgnet-pbe"),
    "chgnet-pbe": ("0.3.0", "chgnet-pbe"),
    "chgnet-r2scan": ("r2scan", "chgnet-r2scan"),
}
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
        self.batch_size = batch_size
        self.info = ModelInfo(
            name=name,
            version=f"chgnet-{chgnet_version}-{weights}",
            fidelities=(fidelity,),
            default_fidelity=fidelity,
            spin_conditioned=False,
            predicts_magmoms=True,
            elements=None,
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


def boxed(atoms: Atoms) -> Atoms:
    """CHGNet needs a periodic lattice: give non-periodic directions a wide vacuum."""
    if atoms.pbc.all():
        return atoms
    a = atoms.copy()
    cell = a.cell.array.copy()
    extent = np.ptp(a.positions, axis=0) if len(a) else np.zeros(3)
    for k in range(3):
        if not a.pbc[k]:
            needed = extent[k] + MOLECULE_VACUUM
            norm = np.linalg.norm(cell[k])
            if norm < needed:
                cell[k] = np.eye(3)[k] * needed if norm < 1e-9 else cell[k] * needed / norm
    a.set_cell(cell, scale_atoms=False)
    a.pbc = True
    return a


def load_chgnet(name: str = "chgnet") -> ChgnetModel:
    """`chgnet`/`chgnet-pbe` (weights 0.3.0, MP PBE/PBE+U) or `chgnet-r2scan`."""
    return ChgnetModel(name)
