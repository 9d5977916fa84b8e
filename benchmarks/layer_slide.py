"""Whether the bundled model holds a clean surface's top layer in its bulk stacking.

    OMP_NUM_THREADS=1 python benchmarks/layer_slide.py [HOST ...]

For each elemental library bulk (or the hosts named), its densest facet as `catscreen
enumerate` cuts it by default (fcc 111, bcc 110, hcp 0001; first termination): the clean slab
relaxed as cut (BFGS, fmax 0.02 eV/A, spin as `--spin auto` decides), then relaxed again from
its top layer (tag 1) shifted 0.2 A along a and along b. A layer that moves on (the mean
in-plane shift of its atoms, against the first relaxation) and lowers the energy sits on a
saddle of its stacking in the model: adsorbates on that slab can slide it, which rank calls a
reconstruction above 0.5 A (catscreen.analysis.anomalies.LAYER_SLIDE).
"""

from __future__ import annotations

import sys

import numpy as np
from ase.optimize import BFGS

from catscreen.build.bulks import bulk_library, library_bulk
from catscreen.build.slabs import make_slabs
from catscreen.model import CatscreenCalculator, load_model

FACET = {"fcc": (1, 1, 1), "bcc": (1, 1, 0), "hcp": (0, 0, 1)}
START = 0.2  # A


def relaxed(atoms, model):  # noqa: ANN001, ANN201
    atoms = atoms.copy()
    atoms.calc = CatscreenCalculator(model, spin="auto")
    BFGS(atoms, logfile=None).run(fmax=0.02, steps=400)
    return atoms, atoms.get_potential_energy()


def main(hosts: list[str]) -> None:
    model = load_model("bundled")
    print(f"model bundled {model.info.version}; start shift {START} A of the top layer")
    print(f"{'host':6} {'facet':8} {'atoms':>5} {'top':>4} {'moved along a, b (A)':>22} "
          f"{'E - E(as cut) (eV)':>20}")  # fmt: skip
    library = bulk_library()
    for name in hosts or [n for n, e in library.items() if e.get("structure") in FACET]:
        kind = library[name].get("structure")
        bulk = library_bulk(name)
        slab = make_slabs(bulk, FACET[kind], 7.0, 10.0, 8.0, max_terminations=1)[0]
        base, e0 = relaxed(slab.atoms, model)
        top = np.flatnonzero(slab.atoms.get_tags() == 1)
        moves, drops = [], []
        for axis in (0, 1):
            start = slab.atoms.copy()
            start.positions[top] += (
                START * slab.atoms.cell[axis] / np.linalg.norm(slab.atoms.cell[axis])
            )
            final, e = relaxed(start, model)
            moved = (final.positions[top] - base.positions[top])[:, :2].mean(axis=0)
            moves.append(float(np.linalg.norm(moved)))
            drops.append(e - e0)
        facet = "".join(map(str, FACET[kind]))
        print(f"{name:6} {facet:8} {len(slab.atoms):5d} {len(top):4d} "
              f"{moves[0]:10.2f} {moves[1]:10.2f} {drops[0]:9.3f} {drops[1]:9.3f}")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
