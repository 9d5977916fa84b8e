"""How sound `enumerate`'s sites are on every facet of some bulks: two defects to count.

    python benchmarks/site_geometry.py [--bulks Pt,Fe,Ru,...] [--max-index 2]

For each termination of each facet (enumerate's default cells, 7 A slabs, 8 A wide): the sites
per kind; "far", the bridges and hollows with an atom not within 1.25 d_nn of another atom of
the site (the site joins atoms that are not neighbours: the finder did not see an atom between
them); "off", the ontop and bridge sites that sit over 0.1 A in-plane from their atom or the
middle of their two (a candidate point that the 2D classification named after a lower atom).
A summary line totals them. Run it at two commits to compare tag or site rules.
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
from ase import Atoms
from ase.geometry import find_mic

from catscreen.build.bulks import load_bulks
from catscreen.build.sites import Site, find_sites
from catscreen.build.slabs import distinct_millers, make_slabs

BULKS = "Pt,Fe,Ru,Ni3Al,NiAl,PtCo,Pt3Sn,Cu3Au,W,Ir"


def off_centre(atoms: Atoms, site: Site) -> float:
    """In-plane distance (A) of the site from the mean of its atoms (minimum image)."""
    pos = atoms.positions[list(site.atoms)]
    d, _ = find_mic(pos - pos[0], atoms.cell, pbc=[True, True, False])
    centre = pos[0] + d.mean(axis=0)
    v, _ = find_mic(np.array(site.position) - centre, atoms.cell, pbc=[True, True, False])
    return float(np.linalg.norm(v[:2]))


def joins_strangers(distances: np.ndarray, site: Site, d_nn: float) -> bool:
    """`distances`: the slab's minimum-image distance matrix."""
    if len(site.atoms) < 2:
        return False
    idx = list(site.atoms)
    d = distances[np.ix_(idx, idx)]
    np.fill_diagonal(d, np.inf)
    return bool((d.min(axis=1) > 1.25 * d_nn).any())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bulks", default=BULKS)
    parser.add_argument("--max-index", type=int, default=2)
    args = parser.parse_args()
    total = Counter()
    for bulk in load_bulks(args.bulks.split(",")):
        for miller in distinct_millers(bulk, args.max_index):
            for slab in make_slabs(bulk, miller, 7.0, 20.0, 8.0):
                atoms = slab.atoms
                sites = find_sites(atoms, bulk.d_nn, repeat=slab.repeat)  # as enumerate
                distances = atoms.get_all_distances(mic=True)  # once per slab
                far = sum(joins_strangers(distances, s, bulk.d_nn) for s in sites)
                off = sum(
                    off_centre(atoms, s) > 0.1 for s in sites if s.kind in ("ontop", "bridge")
                )
                total.update(sites=len(sites), far=far, off=off, slabs=1)
                kinds = dict(Counter(s.kind for s in sites))
                print(
                    f"{bulk.name:6} {''.join(map(str, miller)):>4} t{slab.termination} "
                    f"sites {len(sites):3}  far {far:2}  off {off:2}  {kinds}",
                    flush=True,
                )
    print(
        f"total: {total['slabs']} terminations, {total['sites']} sites, "
        f"far {total['far']}, off {total['off']}"
    )


if __name__ == "__main__":
    main()
