"""Forgetting study: sequential fine-tuning vs joint training vs joint training with conditioning.

    python benchmarks/forgetting.py --out runs/forgetting [--steps 600]

Sources: A = CHGNet-PBE teacher labels; B = CHGNet-r2SCAN teacher labels of the same structures
plus the GPAW-PBE spin-off/spin-on pairs (real DFT, the only data with both spins of one
geometry). Four runs, the same small network, seed, batch size, split and step budget:

1. `A`: trained on A only;
2. `A->B`: run 1 fine-tuned on B only (reference energies refitted on B, as a user would);
3. `joint`: A and B together, every frame relabelled to one context (no conditioning);
4. `joint+cond`: A and B together, each in its own (spin, fidelity) context.

Runs 1-3 see one context, so they are evaluated in that context; run 4 in each frame's own.
Reported: energy (meV/atom) and force (eV/A) MAE on the held-out teacher catalyst systems (bulk,
slabs, adsorbates; not the gas molecules) per fidelity and spin (spin on = the magnetic systems), and the MAE of E(on) - E(off) on the GPAW pairs (all
pairs trained, so this measures whether a model *can* represent the spin difference at all,
which one context cannot) and on the two held-out GPAW test sets (never trained on: whether the
spin condition carries to new systems).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from catscreen.model.checkpoint import load_checkpoint_model
from catscreen.paths import data_dir
from catscreen.training.datasets import load_frames
from catscreen.training.evaluate import evaluate_frames, spin_pair_table
from catscreen.training.trainer import DatasetSpec, TrainConfig, Trainer

ONE = {"as_spin": "off", "as_fidelity": "any"}  # the single context of unconditioned runs


def specs(a: bool, b: bool, conditioned: bool) -> tuple[DatasetSpec, ...]:
    root = data_dir() / "training"
    extra = {} if conditioned else ONE
    out = []
    if a:
        out.append(DatasetSpec(path=str(root / "teacher" / "chgnet-pbe"), **extra))
    if b:
        out.append(DatasetSpec(path=str(root / "teacher" / "chgnet-r2scan"), **extra))
        out.append(
            DatasetSpec(
                path=str(root / "gpaw_spin_pairs.extxyz.gz"), weight=0.1, holdout=False, **extra
            )
        )
    return tuple(out)


def run(name: str, base: TrainConfig, out: Path, **changes) -> Path:  # noqa: ANN003
    cfg = replace(base, out=str(out / name), name=name, **changes)
    path = out / name / "last.pt"
    if not path.exists():  # rerun-safe: a finished run is not repeated
        Trainer(cfg, log=lambda m: print(f"[{name}] {m}", flush=True)).run()
    return path


def scores(model_path: Path, conditioned: bool) -> dict[str, float]:
    model = load_checkpoint_model(model_path)
    held = set(model.metadata["metadata"]["training_data"]["validation_systems"])
    root = data_dir() / "training"
    out: dict[str, float] = {}
    for fid in ("chgnet-pbe", "chgnet-r2scan"):
        frames = [
            a
            for a in load_frames(root / "teacher" / fid)
            if a.info["sid"] in held and a.info.get("kind") != "gas"
        ]
        true_spin = [a.info["spin"] for a in frames]
        if not conditioned:
            for a in frames:
                a.info.update(spin="off", fidelity="any")
        ev = evaluate_frames(model, frames).frames.assign(true_spin=true_spin)
        for spin in ("off", "on"):
            sel = ev[ev.true_spin == spin]
            out[f"{fid}/{spin} meV/atom"] = 1000 * float(sel.energy_error_per_atom.abs().mean())
            out[f"{fid}/{spin} eV/A"] = float(sel.force_mae.mean())
    out["GPAW on-off MAE eV"] = spin_difference_mae(model, conditioned, "gpaw_spin_pairs")
    for column, name in [
        ("GPAW held-out on-off MAE eV", "gpaw_spin_pairs_test"),
        ("GPAW held-out set 2 on-off MAE eV", "gpaw_spin_pairs_test2"),
        ("GPAW held-out set 3 on-off MAE eV", "gpaw_spin_pairs_test3"),
    ]:
        if (root / f"{name}.extxyz.gz").exists():
            out[column] = spin_difference_mae(model, conditioned, name)
    return out


def spin_difference_mae(model, conditioned: bool, name: str) -> float:  # noqa: ANN001
    """MAE of E(on) - E(off) against GPAW over the pairs of data/training/NAME.extxyz.gz."""
    frames = load_frames(data_dir() / "training" / f"{name}.extxyz.gz")
    context = (("off", "on"), "gpaw-pbe") if conditioned else (("off", "off"), "any")
    return float(np.mean(np.abs(spin_pair_table(model, frames, *context).error.to_numpy())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/forgetting"))
    parser.add_argument("--steps", type=int, default=600)
    args = parser.parse_args()
    base = TrainConfig(
        datasets=(),
        model={"n_scalars": 32, "n_vectors": 8, "n_heads": 2},
        max_steps=args.steps,
        batch_size=8,
        warmup_steps=50,
        eval_every=args.steps,
        max_eval_frames=100,
        ema_decay=0.99,
        stress_weight=0.5,
        threads=1,
    )
    paths = {
        "A": run("A", base, args.out, datasets=specs(True, False, False)),
    }
    paths["A->B"] = run(
        "A-B",
        base,
        args.out,
        datasets=specs(False, True, False),
        init_from=str(paths["A"]),
        refit_references=True,
    )
    paths["joint"] = run("joint", base, args.out, datasets=specs(True, True, False))
    paths["joint+cond"] = run(
        "joint-cond",
        base,
        args.out,
        datasets=specs(True, True, True),
        fidelities=("chgnet-pbe", "chgnet-r2scan", "gpaw-pbe"),
    )
    table = {k: scores(p, conditioned=k == "joint+cond") for k, p in paths.items()}
    cols = list(next(iter(table.values())))
    print("| run | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for k, row in table.items():
        print(
            f"| {k} | "
            + " | ".join(
                f"{row[c]:.3f}" if "eV" in c and "meV" not in c else f"{row[c]:.1f}" for c in cols
            )
            + " |"
        )
    (args.out / "forgetting.json").write_text(
        json.dumps({"config": asdict(base), "table": table}, indent=1, default=str)
    )


if __name__ == "__main__":
    main()
