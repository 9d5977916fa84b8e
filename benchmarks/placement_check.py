"""Is a placement's large adsorption error a hole in the model or a different basin?

Relaxes benchmark placements (as `accuracy.py` builds them) with a model, then scores the
model's relaxed adsorbate+slab and clean slab with the teacher (CHGNet-PBE, single points):

- a hole: the model's E(adslab) - E(slab) far below the teacher's single point on the same
  structures, usually with two atoms pressed together (the shortest contact as a fraction of
  their covalent-radii sum; relaxed adsorbates on slabs sit above about 0.7);
- a different basin: both agree the structure is lower than where the teacher's own relaxation
  stopped (what AdsorbML's ML+SP rate credits).

    python benchmarks/placement_check.py --model runs/restart_stage2/best.pt \\
        Rh-110-2x2x3-CH3:longbridge Co-0001-2x2x3-CH2:ontop

Placements are `HOST-FACET-AxBxC-ADSORBATE:SITE`, exact (no nudge), at most 100 BFGS steps.
"""

from __future__ import annotations

import argparse

from accuracy import TEACHER_FIDELITY, parse_sid, placement, relaxed, single_point, system_slab
from ase import Atoms

from catscreen.model import load_model
from catscreen.workflow.relax import closest_contact


def shortest_contact(atoms: Atoms) -> tuple[float, float, str]:
    """(d / (r_i + r_j), d in A, the pair) of the closest pair relative to covalent radii, as
    the relax stage's collapse check measures it (pairs with a moving atom)."""
    ratio, i, j, d = closest_contact(atoms)
    return ratio, d, f"{atoms[i].symbol}-{atoms[j].symbol}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("placements", nargs="+", help="e.g. Rh-110-2x2x3-CH3:longbridge")
    args = parser.parse_args()
    model, teacher = load_model(args.model), load_model("chgnet")
    print(f"model {model.info.name} {model.info.version}; teacher single points: CHGNet-PBE")
    for name in args.placements:
        sid, site = name.split(":")
        slab = system_slab(sid)
        e, final, converged = relaxed(
            placement(slab, parse_sid(sid)["ads"], sid, site, 0.0),
            model,
            TEACHER_FIDELITY,
            args.steps,
        )
        e_slab, final_slab, _ = relaxed(slab, model, TEACHER_FIDELITY, args.steps)
        scored = single_point(final, teacher, TEACHER_FIDELITY) - single_point(
            final_slab, teacher, TEACHER_FIDELITY
        )
        ratio, d, pair = shortest_contact(final)
        print(
            f"{name}: model E(adslab) - E(slab) {e - e_slab:+.3f} eV, teacher on the same structures "
            f"{scored:+.3f} eV (model - teacher {e - e_slab - scored:+.3f}); shortest contact "
            f"{pair} {d:.2f} A = {ratio:.2f} of the covalent sum; "
            f"{'converged' if converged else f'not converged in {args.steps} steps'}"
        )


if __name__ == "__main__":
    main()
