"""The trainer's rate with batches collated in background workers against collated in the loop.

    python benchmarks/collate_workers.py [--device cuda] [--batches 32 128] [--workers 0 4]

The real `Trainer` (its loss, clipping, EMA) on the same frames (CHGNet-PBE pass 1, seed 0) for
each network, batch size and worker count, one after another in one process: steps per second
between step 10 and step 10 + --steps (pool start-up and the final validation left out), and
frames per second. With `workers: 0` the collate (neighbour lists, tensors) runs between the
steps; with workers it overlaps the network's forward and backward, so a step costs the larger
of the two instead of their sum (train_step_timing.py measures each part alone).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from catscreen.errors import CatscreenError
from catscreen.paths import data_dir
from catscreen.training.trainer import TrainConfig, Trainer

NETWORKS = {
    "shipped (l1, 64x0e+16x1o, 2 layers)": {"n_scalars": 64, "n_vectors": 16},
    "wide (l1, 128x0e+32x1o, 2 layers)": {"n_scalars": 128, "n_vectors": 32},
}


def rate(trainer: Trainer, steps: int) -> float:
    """Steady steps per second of one run of `trainer` (its config already set)."""
    marks: dict[int, float] = {}

    def mark(step: int, _: dict) -> None:
        if step in (10, 10 + steps):
            marks[step] = time.perf_counter()

    trainer.step, trainer.elapsed = 0, 0.0
    trainer.run(progress=mark)
    return steps / (marks[10 + steps] - marks[10])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 4])
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    print(f"{'network':<36} {'batch':>5} {'workers':>7} {'steps/s':>8} {'frames/s':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for n, (name, model) in enumerate(NETWORKS.items()):
            config = TrainConfig.from_dict(
                {
                    "datasets": [str(data_dir() / "training" / "teacher" / "chgnet-pbe")],
                    "model": {"l_max": 1, "n_layers": 2, "n_heads": 4, **model},
                    "device": args.device,
                    "eval_every": 10**9,
                    "max_eval_frames": 16,
                    "warmup_steps": 5,
                    "stress_weight": 0.5,
                }
            )
            trainer = Trainer(config, log=lambda _: None)
            for batch in args.batches:
                for workers in args.workers:
                    trainer.config = replace(
                        config,
                        batch_size=batch,
                        workers=workers,
                        max_steps=20 + args.steps,
                    )
                    trainer.out = Path(tmp, f"{n}-{batch}-{workers}")
                    r = rate(trainer, args.steps)
                    print(f"{name:<36} {batch:>5} {workers:>7} {r:>8.2f} {r * batch:>9.0f}")


if __name__ == "__main__":
    try:
        main()
    except CatscreenError as exc:  # no GPU, a missing file: one line, as the CLI says it
        raise SystemExit(f"error: {exc}") from None
