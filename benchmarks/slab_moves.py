"""How far each relaxation moved the slab: what the reconstruction check judges, per placement.

    python benchmarks/slab_moves.py TEACHER_CACHE [--all]

TEACHER_CACHE is a `benchmarks/accuracy.py --teacher-cache` file that holds its structures.
For each placement: the largest displacement of a slab atom from the relaxed clean slab (less
the subsurface atoms' mean shift, as `catscreen rank` measures it), and the slab pairs whose
distance crossed the bond cutoff (1.25x the covalent radii sum) between the clean slab and the
relaxed placement, with both ratios, and the placement's flags. Without --all, only placements
with a crossing pair or a displacement over 0.5 A are listed; a summary line counts them all.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from accuracy import cached_structures
from ase import Atoms
from ase.geometry import get_distances
from ase.neighborlist import natural_cutoffs

from catscreen.analysis.anomalies import DEFAULT_BOND_TOLERANCE, slab_displacement


def crossings(clean: Atoms, final: Atoms) -> list[tuple[int, int, float, float]]:
    """Slab pairs (i, j, ratio in the clean slab, ratio after) on either side of the cutoff."""
    radii = np.array(natural_cutoffs(clean, mult=1.0))
    sums = radii[:, None] + radii[None, :]
    _, before = get_distances(clean.positions, cell=clean.cell, pbc=clean.pbc)
    _, after = get_distances(final.positions, cell=final.cell, pbc=final.pbc)
    before, after = before / sums, after / sums
    i, j = np.nonzero(
        np.triu((before < DEFAULT_BOND_TOLERANCE) != (after < DEFAULT_BOND_TOLERANCE), 1)
    )
    return [
        (int(a), int(b), float(before[a, b]), float(after[a, b])) for a, b in zip(i, j, strict=True)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cache", type=Path)
    parser.add_argument("--all", action="store_true", help="list every placement")
    args = parser.parse_args()
    data, structures = cached_structures(args.cache)
    moves = []
    for key, final in structures.items():
        if key.startswith("slab:"):
            continue
        clean = structures[f"slab:{key.split(':')[0]}"]
        slab = final[: len(clean)]
        moved, crossed = slab_displacement(clean, slab), crossings(clean, slab)
        moves.append(moved)
        if args.all or crossed or moved > 0.5:
            pairs = " ".join(f"{i}-{j} {b:.2f}->{a:.2f}" for i, j, b, a in crossed)
            flags = ",".join(data["anomalies"].get(key, [])) or "-"
            print(f"  {key:<32} moved {moved:.2f} A  flags {flags:<16} crossed: {pairs or '-'}")
    moves_arr = np.array(moves)
    print(
        f"{len(moves)} placements in {args.cache}: largest slab displacement median "
        f"{np.median(moves_arr):.2f} A, over 0.5 A {int((moves_arr > 0.5).sum())}, over 1.0 A "
        f"{int((moves_arr > 1.0).sum())}"
    )


if __name__ == "__main__":
    main()
