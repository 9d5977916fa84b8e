"""GPU paths against the CPU: predictions, the ZBL and spin-energy terms, and a resumed training run.

CI and the tests run on CPUs only, so what runs on CUDA is checked here, by hand, on a machine
with a GPU (`--device cuda`, the default). On the lent H200 machines of this project, whose
image has torch but neither ASE, vesin nor pydantic, one prepared call does everything:

    python3 -m pip install -q --no-index --no-deps --upgrade --target /tmp/site .whl/*.whl \\
      && export PYTHONPATH=/tmp/site:$PWD && nvidia-smi -L \\
      && PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py | tee $OUT/gpu_check.txt \\
      && PYTHONUNBUFFERED=1 python3 benchmarks/relax_throughput.py --skip-chgnet \\
         | tee $OUT/relax_throughput_gpu.txt

(`.whl` holds the wheels the image lacks, ignored by git and carried with `carry: [".whl"]`:
`python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --platform
manylinux2014_x86_64 -d .whl ase==3.29.0 vesin==0.6.2 pydantic==2.14.4 pydantic_core==2.50.5
annotated-types==0.8.0 typing-inspection==0.4.5 e3nn==0.6.0`, e3nn for the version used here;
the CLI needs more, so the device calls the trainer and the benchmarks directly.) Run on an H200
on 2026-12-04: `benchmarks/results/gpu_check-h200.txt` (relax_throughput was not run there).

Prints the largest CPU-vs-GPU differences of energies (eV) and forces (eV/A) for 32 slabs
with the bundled weights, for the same weights with the ZBL switched on (a squeezed O-Ni pair
inside its switch) and with the spin energy switched on (nonzero couplings), and whether a
training run stopped and resumed on the GPU continues. Float32 on both sides: differences of
1e-4 eV are rounding. `--device cpu` runs every step on the CPU against itself.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.build import add_adsorbate, fcc111
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from catscreen.errors import CatscreenError
from catscreen.model.api import ModelInfo
from catscreen.model.checkpoint import bundled_path, load_checkpoint, model_from_checkpoint
from catscreen.model.inference import CatscreenModel, resolve_device
from catscreen.model.network import CatscreenNet, reconfigured
from catscreen.training.trainer import TrainConfig, Trainer


def slabs(n: int = 32) -> list[Atoms]:
    rng = np.random.default_rng(0)
    out = []
    for k in range(n):
        atoms = fcc111("Ni", (3, 3, 4), vacuum=7.5)
        add_adsorbate(atoms, ("O", "C", "N", "H")[k % 4], 1.2 + 0.3 * rng.random(), "fcc")
        atoms.rattle(0.05, seed=k)
        out.append(atoms)
    return out


def squeezed() -> Atoms:
    """An O 0.7 A above a Ni atom: inside the ZBL switch (0.55 covalent sums)."""
    atoms = fcc111("Ni", (2, 2, 3), vacuum=7.5)
    atoms.append("O")
    atoms.positions[-1] = atoms.positions[8] + [0.0, 0.0, 0.7]
    return atoms


def compare(
    label: str, net: CatscreenNet, info: ModelInfo, structures: list[Atoms], device: torch.device
) -> None:
    """The same network on the CPU and on `device` (each model moves the shared network)."""
    spins, fids = ["on"] * len(structures), ["gpaw-pbe"] * len(structures)
    cpu = CatscreenModel(net, info, {}, device="cpu").predict(structures, spins, fids)
    start = time.perf_counter()
    dev = CatscreenModel(net, info, {}, device=device).predict(structures, spins, fids)
    seconds = time.perf_counter() - start
    de = max(abs(a.energy - b.energy) for a, b in zip(cpu, dev, strict=True))
    df = max(float(np.abs(a.forces - b.forces).max()) for a, b in zip(cpu, dev, strict=True))
    dm = max(float(np.abs(a.magmoms - b.magmoms).max()) for a, b in zip(cpu, dev, strict=True))
    print(
        f"{label:<34} {len(structures):>3} structures  max |dE| {de:.1e} eV  max |dF| {df:.1e} "
        f"eV/A  max |dm| {dm:.1e} muB  ({device}: {seconds:.2f} s with the first call)"
    )


def training_resumes(device: torch.device, folder: Path) -> None:
    """20 steps, then 10 more from state.pt: the RNG state and optimiser come back on the GPU."""
    frames = []
    for k in range(6):
        atoms = fcc111(("Cu", "Ni", "Pt")[k % 3], (2, 2, 2), vacuum=5.0)
        atoms.rattle(0.05, seed=k)
        atoms.calc = EMT()
        atoms.calc = SinglePointCalculator(
            atoms, energy=atoms.get_potential_energy(), forces=atoms.get_forces()
        )
        atoms.info.update(spin="off", fidelity="emt", source="emt", sid=f"s{k}")
        frames.append(atoms)
    write(folder / "d.extxyz", frames, format="extxyz")
    base = {
        "datasets": [str(folder / "d.extxyz")],
        "out": str(folder / "run"),
        "model": {"n_scalars": 8, "n_vectors": 4, "n_heads": 2},
        "validation_fraction": 0.3,
        "batch_size": 4,
        "eval_every": 10,
        "device": str(device),
    }
    Trainer(TrainConfig.from_dict({**base, "max_steps": 20}), log=lambda m: None).run()
    resumed = Trainer(
        TrainConfig.from_dict({**base, "max_steps": 30}),
        log=lambda m: print(f"training on {device}: {m}") if "resumed" in m else None,
    )
    path = resumed.run()
    print(f"training on {resumed.device}: stopped at step {resumed.step}, wrote {path.name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    args = parser.parse_args()
    try:
        device = resolve_device(args.device)
    except CatscreenError as exc:
        raise SystemExit(f"error: {exc}") from None
    if device.type == "cuda":
        print(f"GPU: {torch.cuda.get_device_name(device)}, torch {torch.__version__}")
    net, _ = load_checkpoint(bundled_path())
    info = model_from_checkpoint(bundled_path()).info
    compare("bundled weights", net, info, slabs(), device)
    compare(
        "bundled + ZBL (squeezed O-Ni)", reconfigured(net, zbl=True), info, [squeezed()], device
    )
    spin = reconfigured(net, spin_energy=True)
    with torch.no_grad():
        spin.stoner.uniform_(0.2, 0.5)
    compare("bundled + spin energy (I 0.2-0.5)", spin, info, slabs(8), device)
    with tempfile.TemporaryDirectory() as tmp:
        training_resumes(device, Path(tmp))


if __name__ == "__main__":
    main()
