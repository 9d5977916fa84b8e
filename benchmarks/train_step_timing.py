"""Where a training step's time goes: the CPU's collate against the network's forward and backward.

    python benchmarks/train_step_timing.py [--device cuda] [--batches 8 32 128]

Same frames (CHGNet-PBE pass 1, seed 0) for each network and batch size: the shipped network
(l_max 1, 64x0e + 16x1o, 2 layers) and the GPU candidate (l_max 2, 128x0e + 32x1o + 32x2e,
3 layers). Per step: the collate (neighbour lists and tensors, on the CPU) and the forward pass
with forces (create_graph, as in training), a force and energy loss, its backward and the
optimiser step (synchronised on a GPU), each the median of 20 steps after 5 warm-ups. The loss
is simpler than the trainer's (no per-head energies, stress or magmoms); the trainer's own rate
on the H200 (127 ms per step of 32 frames for the l2 candidate, gpu_train-l2-h200.txt) matches
this script's 129 ms. A step whose time barely grows with the batch is bound by kernel
launches and Python, not arithmetic: there a larger batch is nearly free.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from catscreen.errors import CatscreenError
from catscreen.model.inference import resolve_device
from catscreen.model.network import CatscreenNet, ModelConfig
from catscreen.paths import data_dir
from catscreen.training.trainer import DatasetSpec, load_dataset

NETWORKS = {
    "shipped (l1, 2 layers)": {"l_max": 1, "n_scalars": 64, "n_vectors": 16, "n_layers": 2},
    "candidate (l2, 3 layers)": {"l_max": 2, "n_scalars": 128, "n_vectors": 32, "n_layers": 3},
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 32, 128])
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    device = resolve_device(args.device)
    frames = load_dataset(DatasetSpec(path=str(data_dir() / "training" / "teacher" / "chgnet-pbe")))
    elements = sorted({s for f in frames for s in f.atoms.get_chemical_symbols()})
    rng = np.random.default_rng(0)
    print(f"{len(frames)} frames on {device}; median of {args.steps} steps after 5 warm-ups")
    print(f"{'network':<26} {'batch':>5} {'collate ms':>10} {'fwd+bwd ms':>10} {'frames/s':>9}")
    for name, model in NETWORKS.items():
        net = CatscreenNet(ModelConfig.from_dict(model), elements, ["chgnet-pbe"]).to(device)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
        for size in args.batches:
            collate, compute = [], []
            for step in range(5 + args.steps):
                chunk = [frames[k] for k in rng.choice(len(frames), size)]
                t0 = time.perf_counter()
                batch = net.collate(
                    [f.atoms for f in chunk], [f.spin for f in chunk], [f.fidelity for f in chunk]
                ).to(device, torch.float32)
                sync(device)
                t1 = time.perf_counter()
                out = net(batch, forces=True, create_graph=True)
                ref = torch.tensor(np.concatenate([f.forces for f in chunk]), device=device)
                loss = ((out["forces"].double() - ref) ** 2).mean() + out["energy"].var()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sync(device)
                t2 = time.perf_counter()
                if step >= 5:
                    collate.append(t1 - t0)
                    compute.append(t2 - t1)
            c, f = statistics.median(collate), statistics.median(compute)
            print(
                f"{name:<26} {size:>5} {1000 * c:>10.1f} {1000 * f:>10.1f} {size / (c + f):>9.0f}"
            )


if __name__ == "__main__":
    try:
        main()
    except CatscreenError as exc:  # no GPU, a missing file: one line, as the CLI says it
        raise SystemExit(f"error: {exc}") from None
