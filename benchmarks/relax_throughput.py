"""Relaxation throughput: our model batched vs one by one, and CHGNet, on the same 32 slabs.

    OMP_NUM_THREADS=1 python benchmarks/relax_throughput.py [--model bundled|PATH|emt] [--random-init]
                                          [--fmax 0.05] [--steps 300] [--skip-chgnet]

32 configurations: Ni(111) 3x3x4 (two bottom layers fixed) with O, CO (C down) or N on ontop, bridge,
fcc and hcp sites, each with a small random lateral offset and height (seed 0). Every mode
runs the same engine (catscreen.workflow.relax_items, FIRE); "one by one" is a batch of one,
so batched and one-by-one follow identical trajectories and the ratio is pure speed. CHGNet
runs batched through the same engine (its own best case). "ours ASE loop" is what a script
without catscreen's engine does: ASE's FIRE driving CatscreenCalculator, one structure at a time.

Relaxations per core-hour use the process CPU time (all threads), which stays meaningful on a
shared machine; relaxations per wall-clock hour are printed too, and are the measure on a GPU
(the model runs there when torch sees one; `CATSCREEN_DEVICE=cpu` keeps it on the CPU), where
the process's CPU time does not count the device's work. Targets (issue 5): batched >= 3x one by one, and
>= 20x CHGNet. `--random-init` builds a checkpoint of the default architecture with random
weights (speed does not depend on the weights; their forces are tiny, so use e.g.
`--fmax 1e-9 --steps 50` to time a fixed number of steps).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from ase import Atoms
from ase.build import add_adsorbate, fcc111, molecule
from ase.constraints import FixAtoms

from catscreen.model.api import Model, load_model
from catscreen.workflow.inputs import work_items
from catscreen.workflow.relax import WorkItem, relax_items

SITES = ("ontop", "bridge", "fcc", "hcp")
ADSORBATES = ("O", "CO", "N")


def configurations(n: int = 32, seed: int = 0) -> list[Atoms]:
    rng = np.random.default_rng(seed)
    images = []
    for i in range(n):
        ads, site = ADSORBATES[i % 3], SITES[(i // 3) % 4]
        slab = fcc111("Ni", (3, 3, 4), vacuum=10.0)
        layer = slab.get_tags()  # 1 = top ... 4 = bottom
        tags = np.where(layer == 1, 1, np.where(layer == 2, 1, 0))
        mol, binding = (molecule("CO"), 1) if ads == "CO" else (ads, 0)  # CO: C down
        add_adsorbate(slab, mol, 1.7 + 0.4 * rng.random(), site, mol_index=binding)
        slab.positions[len(tags) :, :2] += rng.normal(0.0, 0.15, 2)
        slab.set_tags(list(tags) + [2] * (len(slab) - len(tags)))
        slab.set_constraint(FixAtoms(mask=slab.get_tags() == 0))
        del slab.info["adsorbate_info"]
        slab.info.update(config_id=f"ni111-{ads}-{site}-{i}", kind="adslab", adsorbate=ads)
        images.append(slab)
    return images


def items_for(model: Model, images: list[Atoms]) -> list[WorkItem]:
    df = pd.DataFrame([{"config_id": a.info["config_id"], "kind": "adslab"} for a in images])
    return work_items(df, images, model.info, "auto", None)[-len(images) :]  # drop gas refs


@dataclass
class Timing:
    label: str
    relaxed: int
    converged: int
    evaluations: int
    wall: float
    cpu: float

    @property
    def per_core_hour(self) -> float:
        return self.relaxed / (self.cpu / 3600.0)

    @property
    def per_wall_hour(self) -> float:
        return self.relaxed / (self.wall / 3600.0)


def run(
    label: str, model: Model, items: list[WorkItem], batch: int, fmax: float, steps: int
) -> Timing:
    wall0, cpu0 = time.perf_counter(), time.process_time()
    rows = []
    for i in range(0, len(items), batch):
        rows += relax_items(model, items[i : i + batch], optimizer="fire", fmax=fmax, steps=steps)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return Timing(
        label,
        relaxed=len(rows),
        converged=sum(r["status"] == "converged" for r in rows),
        evaluations=sum(r["steps"] + 1 for r in rows if r["status"] != "failed"),
        wall=wall,
        cpu=cpu,
    )


def run_ase(label: str, model: Model, images: list[Atoms], fmax: float, steps: int) -> Timing:
    """The usual one-at-a-time loop: ASE's FIRE driving our ASE calculator, structure by structure."""
    from ase.optimize import FIRE

    from catscreen.model.calculator import CatscreenCalculator

    calc = CatscreenCalculator(model, spin="auto")
    wall0, cpu0 = time.perf_counter(), time.process_time()
    evaluations = converged = 0
    for image in images:
        atoms = image.copy()
        atoms.calc = calc
        opt = FIRE(atoms, logfile=None)
        converged += bool(opt.run(fmax=fmax, steps=steps))
        evaluations += opt.nsteps + 1
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return Timing(label, len(images), converged, evaluations, wall, cpu)


def random_checkpoint(folder: Path) -> str:
    import torch

    from catscreen.model.checkpoint import save_checkpoint
    from catscreen.model.network import CatscreenNet, ModelConfig

    torch.manual_seed(0)
    net = CatscreenNet(ModelConfig(), ("H", "C", "N", "O", "Ni"), ("chgnet-pbe", "gpaw-pbe"))
    path = folder / "random-init.pt"
    save_checkpoint(net, path, {"name": "random-init"})
    return str(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="bundled", help="bundled | checkpoint path | emt")
    ap.add_argument(
        "--random-init", action="store_true", help="random weights, default architecture"
    )
    ap.add_argument("--fmax", type=float, default=0.05)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--n", type=int, default=32, help="number of configurations")
    ap.add_argument("--skip-chgnet", action="store_true")
    args = ap.parse_args()

    images = configurations(args.n)
    with tempfile.TemporaryDirectory() as tmp:
        name = random_checkpoint(Path(tmp)) if args.random_init else args.model
        ours = load_model(name)
        items = items_for(ours, images)
        device = getattr(ours, "device", "cpu")
        print(f"model {ours.info.name} ({ours.info.version}) on {device}, {len(items)} "
              f"configurations, {len(images[0])} atoms each, fmax {args.fmax}, steps {args.steps}")  # fmt: skip
        relax_items(ours, items[:2], fmax=args.fmax, steps=2)  # warm-up (lazy init, caches)
        timings = [
            run("ours batched", ours, items, len(items), args.fmax, args.steps),
            run("ours one by one", ours, items, 1, args.fmax, args.steps),
            run_ase("ours ASE loop", ours, images, args.fmax, args.steps),
        ]
    if not args.skip_chgnet:
        chgnet = load_model("chgnet")
        citems = items_for(chgnet, images)
        relax_items(chgnet, citems[:2], fmax=args.fmax, steps=2)
        timings.append(run("CHGNet batched", chgnet, citems, len(citems), args.fmax, args.steps))

    base, base_wall = timings[0].per_core_hour, timings[0].per_wall_hour
    print(f"{'mode':<18}{'relaxed':>8}{'conv':>6}{'evals':>8}{'wall s':>9}{'cpu s':>9}"
          f"{'core-ms/eval':>13}{'relax/core-h':>14}{'batched is':>12}"
          f"{'relax/wall-h':>14}{'by wall':>9}")  # fmt: skip
    for t in timings:
        print(f"{t.label:<18}{t.relaxed:>8}{t.converged:>6}{t.evaluations:>8}{t.wall:>9.1f}"
              f"{t.cpu:>9.1f}{1e3 * t.cpu / t.evaluations:>13.0f}{t.per_core_hour:>14,.0f}"
              f"{base / t.per_core_hour:>11.1f}x{t.per_wall_hour:>14,.0f}"
              f"{base_wall / t.per_wall_hour:>8.1f}x")  # fmt: skip
    print("targets: batched >= 3x one by one, >= 20x CHGNet (per core-hour on a CPU; on a GPU the "
          "device is the resource: read the wall-time columns)")  # fmt: skip


if __name__ == "__main__":
    main()
