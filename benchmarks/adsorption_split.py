"""Where a relaxed adsorption-energy error comes from: energies or geometries.

    python benchmarks/adsorption_split.py [--model bundled] [--nudge 0.1] [--steps 300]

Relaxes every placement of the held-out systems of `benchmarks/accuracy.py` with the model,
single-points each relaxed structure with the teacher (CHGNet-PBE), relaxes the teacher too,
and splits model minus teacher adsorption energy per placement into
- the energy error at the model's minimum: E_model(x_model) - E_teacher(x_model), and
- the geometry gap: E_teacher(x_model) - E_teacher(x_teacher), how far above the teacher's own
  minimum the model's minimum sits on the teacher's surface (a saddle stop, another basin).
Both use the same reference scheme as accuracy.py (gas molecules and clean slabs relaxed by
the same model, and single-pointed by the teacher for the first term). Run by hand: the teacher
relaxations take about 15 min of one core.
"""

from __future__ import annotations

import argparse

import numpy as np
from accuracy import (
    FMAX,
    STEPS,
    TEACHER_FIDELITY,
    adsorption_energies,
    held_out_adsorbate_systems,
    relax_systems,
    single_point,
    teacher_passes,
)

from catscreen.build.placements import NUDGE
from catscreen.model import load_model
from catscreen.training.datasets import load_frames
from catscreen.training.evaluate import held_out_rule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--nudge", type=float, default=NUDGE)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--systems", type=int, default=0, help="0: every held-out system")
    args = parser.parse_args()

    model, teacher = load_model(args.model), load_model("chgnet-pbe")
    frames = {
        d.name: [a for sub in sorted(d.iterdir()) for a in load_frames(sub)]
        for d in teacher_passes()
    }
    rule = held_out_rule(model)
    held = {a.info["sid"] for f in frames.values() for a in f if rule(a.info["sid"])}
    systems = held_out_adsorbate_systems(frames, held, args.systems)
    mine = relax_systems(model, systems, args.nudge, args.steps, log=lambda _: None)
    theirs = relax_systems(teacher, systems, args.nudge, args.steps, log=lambda _: None)
    at_mine = {k: single_point(a, teacher, TEACHER_FIDELITY) for k, a in mine.structures.items()}
    m = adsorption_energies(mine.energies, systems)
    t_at_m = adsorption_energies(at_mine, systems)
    t = adsorption_energies(theirs.energies, systems)
    keys = sorted(m)
    energy = np.array([m[k] - t_at_m[k] for k in keys])
    gap = np.array([t_at_m[k] - t[k] for k in keys])
    total = energy + gap
    print(
        f"{model.info.name} {model.info.version}: {len(systems)} systems, {len(keys)} placements, "
        f"nudge {args.nudge} A, BFGS fmax {FMAX} eV/A, at most {args.steps} steps"
    )
    print(f"  relaxed adsorption energy, MAE vs the teacher: {np.abs(total).mean():.3f} eV")
    print(
        f"  energy error at the model's minima: MAE {np.abs(energy).mean():.3f} eV, "
        f"mean {energy.mean():+.3f} eV"
    )
    print(
        f"  geometry gap (teacher energy of the model's minimum above its own): MAE "
        f"{np.abs(gap).mean():.3f} eV, mean {gap.mean():+.3f} eV; "
        f"{int((gap > 0.2).sum())} placements above 0.2 eV"
    )
    for k in sorted(keys, key=lambda k: -abs(gap[keys.index(k)]))[:10]:
        i = keys.index(k)
        print(f"  {k:<36} energy error {energy[i]:+.3f}  geometry gap {gap[i]:+.3f}")


if __name__ == "__main__":
    main()
