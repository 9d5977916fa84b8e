"""CatscreenModel: the bundled network behind the `Model` contract (batched `predict`).

Many structures of any sizes go through the network as one graph per chunk of at most
`max_batch_atoms` atoms. Chunks of a few hundred atoms were fastest on CPU: larger graphs
spill the per-edge tensors out of cache (32 slabs of 37 atoms as one graph ran at 760
atom-steps/s, in chunks of 148-296 atoms at 1600-1900, one slab at a time at 1100). On a GPU
the chunks hold up to 16 384 atoms (a screening batch of 32 slabs is one graph): a GPU is fed
by large graphs.

The network runs on a CUDA GPU when torch sees one, as training does; `CATSCREEN_DEVICE`
(auto, cpu, cuda, cuda:N) chooses, also for the jobs of a Dask cluster, whose workers inherit
the environment.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from ase import Atoms

from catscreen.errors import CatscreenError
from catscreen.model.api import ModelInfo, Prediction, has_stress
from catscreen.model.network import CatscreenNet

VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
DEVICE_VARIABLE = "CATSCREEN_DEVICE"
BATCH_ATOMS = {"cpu": 256, "cuda": 16384}


def resolve_device(name: str | None = None) -> torch.device:
    """auto (CUDA when torch sees a GPU, else CPU), cpu, cuda or cuda:N; None reads
    CATSCREEN_DEVICE (default auto). Asking for a GPU that is not there is an error, never a
    silent fallback to the CPU."""
    name = (os.environ.get(DEVICE_VARIABLE) or "auto") if name is None else name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in BATCH_ATOMS:
        raise CatscreenError(f"unknown device {name!r}; expected auto, cpu or cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CatscreenError(f"device {name!r} asked for, but torch sees no CUDA GPU here")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise CatscreenError(f"device {name!r} asked for, but torch sees only "
                             f"{torch.cuda.device_count()} GPU(s)")  # fmt: skip
    return device


class CatscreenModel:
    """A CatscreenNet with its checkpoint's metadata, evaluated in inference mode."""

    def __init__(
        self,
        net: CatscreenNet,
        info: ModelInfo,
        metadata: dict,
        max_batch_atoms: int | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        self.device = resolve_device(None if device is None else str(device))
        self.net = net.to(self.device).eval()
        self.info = info
        self.metadata = metadata
        self.max_batch_atoms = max_batch_atoms or BATCH_ATOMS[self.device.type]

    def _chunks(self, n_atoms: Sequence[int]) -> list[range]:
        """Consecutive index ranges of at most max_batch_atoms atoms (at least one structure)."""
        chunks, start, total = [], 0, 0
        for k, n in enumerate(n_atoms):
            if k > start and total + n > self.max_batch_atoms:
                chunks.append(range(start, k))
                start, total = k, 0
            total += n
        chunks.append(range(start, len(n_atoms)))
        return chunks

    def predict(
        self,
        structures: Sequence[Atoms],
        spins: Sequence[str],
        fidelities: Sequence[str],
        stress: bool = False,
    ) -> list[Prediction]:
        if not (len(structures) == len(spins) == len(fidelities)):
            raise CatscreenError("structures, spins and fidelities must have the same length")
        for atoms, spin, fid in zip(structures, spins, fidelities, strict=True):
            self.info.check_context(spin, fid)
            self.info.check_elements(atoms)
        out: list[Prediction] = []
        if not structures:
            return out
        for chunk in self._chunks([len(a) for a in structures]):
            out += self._predict_chunk(
                [structures[k] for k in chunk],
                [spins[k] for k in chunk],
                [fidelities[k] for k in chunk],
                stress,
            )
        return out

    def _predict_chunk(
        self, structures: list[Atoms], spins: list[str], fidelities: list[str], stress: bool
    ) -> list[Prediction]:
        # Forces need autograd even when the caller evaluates under no_grad or inference_mode.
        with torch.inference_mode(False), torch.enable_grad():
            batch = self.net.collate(structures, spins, fidelities).to(self.device)
            res = self.net(batch, forces=True, stress=stress, create_graph=False)
        res = {key: value.detach().cpu() for key, value in res.items()}
        energy = res["energy"].numpy()
        heads = res["energy_heads"]
        spread = heads.std(dim=1).numpy() if heads.shape[1] > 1 else np.zeros(len(structures))
        forces = batch.split(res["forces"].double())
        magmoms = batch.split(res["magmoms"].double())
        preds = []
        for k, atoms in enumerate(structures):
            s = None
            if stress and has_stress(atoms):
                full = res["stress"][k].double().numpy()
                s = np.array([full[i, j] for i, j in VOIGT])
            preds.append(
                Prediction(
                    energy=float(energy[k]),
                    forces=forces[k].numpy().copy(),
                    energy_std=float(spread[k]),
                    energy_heads=heads[k].double().numpy().copy(),
                    stress=s,
                    magmoms=magmoms[k].numpy().copy(),
                )
            )
        return preds
