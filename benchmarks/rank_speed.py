"""Rank time: the anomaly checks' bond matrices from vesin (now) against ASE's NeighborList.

    OMP_NUM_THREADS=1 python benchmarks/rank_speed.py [--bulks Pt,Cu,Ni,Pd,Au,Ag]
                                                      [--adsorbates O,H,N,C] [--steps 20]

Enumerates the bulks' facets up to index 1 with the adsorbates (heuristic placements), relaxes
them with EMT for `--steps` steps (rank reads the rows, not how well they converged), then
ranks the same table with each neighbour list, twice in alternation, in one process, and
checks that both give the same adsorption table. Prints seconds per run, ms per placement and
the ratio. The model is not involved: rank runs none.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.neighborlist import build_neighbor_list, natural_cutoffs

import catscreen.analysis.anomalies as anomalies
from catscreen.analysis import RankSettings, rank_results, read_results
from catscreen.build.enumerate import (
    EnumerateSettings,
    enumerate_configurations,
    write_configurations,
)
from catscreen.workflow import RelaxSettings, relax_configurations


def ase_bond_matrix(atoms: Atoms, tolerance: float = 1.25, skin: float = 0.0) -> np.ndarray:
    """The bond matrix as catscreen built it before vesin."""
    nl = build_neighbor_list(
        atoms,
        cutoffs=natural_cutoffs(atoms, mult=tolerance),
        self_interaction=False,
        bothways=True,
        skin=skin,
    )
    return nl.get_connectivity_matrix(sparse=False).astype(bool)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bulks", default="Pt,Cu,Ni,Pd,Au,Ag")
    parser.add_argument("--adsorbates", default="O,H,N,C")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = EnumerateSettings(
            bulks=args.bulks.split(","), max_index=1, adsorbates=args.adsorbates.split(",")
        )
        write_configurations(enumerate_configurations(settings), tmp, settings)
        out = Path(tmp) / "results.parquet"
        relax = RelaxSettings(model="emt", spin="off", steps=args.steps)
        relax_configurations(tmp, out, relax, progress=False)
        rows = read_results(out)
        placements = int((rows.kind == "adslab").sum())
        vesin = anomalies.bond_matrix
        times: dict[str, list[float]] = {"ase": [], "vesin": []}
        tables = {}
        for name, matrix in (("ase", ase_bond_matrix), ("vesin", vesin)) * 2:
            anomalies.bond_matrix = matrix  # what detect_anomalies calls
            t0 = time.perf_counter()
            output = rank_results(rows, RankSettings(keep_anomalies=True))
            times[name].append(time.perf_counter() - t0)
            tables[name] = output.configs[["config_id", "e_ads", "anomalous"]].to_json()
        anomalies.bond_matrix = vesin
    print(f"{placements} placements ({args.bulks}; {args.adsorbates}; EMT, {args.steps} steps)")
    for name, seconds in times.items():
        per = 1000 * min(seconds) / placements
        print(f"  {name:6s} " + ", ".join(f"{s:.2f} s" for s in seconds) + f"  ({per:.1f} ms each)")
    print(f"  ratio ase / vesin (best of two): {min(times['ase']) / min(times['vesin']):.2f}")
    print(f"  same adsorption table: {tables['ase'] == tables['vesin']}")


if __name__ == "__main__":
    main()
