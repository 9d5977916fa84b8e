"""What `rank`'s E_ads uncertainty is in `enumerate`'s default cells, over the ensemble heads
and as independent errors, and how many placements each would flag for high uncertainty.

    python benchmarks/rank_uncertainty.py [--bulks Ba,Ce,Pt,Cu] [--adsorbates O,H] [--out DIR]

For each bulk: `catscreen enumerate --max-index 1` with the adsorbates, `catscreen relax --spin
auto` with the bundled weights, `catscreen rank`; then, per valid placement, the E_ads spread
rank reports (the standard deviation over heads of each head's E_ads) beside the spread the
independent-error formula gives (sqrt(std_adslab^2 + std_slab^2 + std_ref^2), what rank
reported before head energies were kept), and the share of placements over the 0.15 eV
high-uncertainty threshold under each.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

THRESHOLD = 0.15  # RankSettings' default uncertainty_threshold (eV)


def run(*args: str) -> None:
    exe = Path(sys.executable).parent / "catscreen"
    subprocess.run([str(exe), *args], check=True, capture_output=True, text=True)


def measure(bulk: str, adsorbates: str, work: Path) -> pd.DataFrame:
    cfg, res, ranked = work / f"cfg_{bulk}", work / f"res_{bulk}.parquet", work / f"rank_{bulk}"
    run("enumerate", "--bulk", bulk, "--max-index", "1", "--adsorbates", adsorbates, "--out", str(cfg))  # fmt: skip
    run("relax", str(cfg), "--out", str(res), "--spin", "auto")
    run("rank", str(res), "--out", str(ranked))
    table = pd.read_parquet(ranked / "adsorption.parquet")
    table["independent_std"] = np.sqrt(
        table.energy_std**2 + table.slab_energy_std**2 + table.reference_std**2
    )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bulks", default="Ba,Ce,Pt,Cu")
    parser.add_argument("--adsorbates", default="O,H")
    parser.add_argument("--out", type=Path, help="keep the runs here (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.out or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        print(
            f"{'bulk':6} {'placements':>10} {'valid':>6} {'slab total std':>15} "
            f"{'E_ads std, heads':>17} {'independent':>12} {'flagged, heads':>15} {'independent':>12}"
        )
        for bulk in args.bulks.split(","):
            t = measure(bulk, args.adsorbates, work)
            v = t[t.valid]
            print(
                f"{bulk:6} {len(t):>10} {len(v):>6} {t.slab_energy_std.median():>15.3f} "
                f"{v.e_ads_std.median():>17.3f} {v.independent_std.median():>12.3f} "
                f"{(v.e_ads_std > THRESHOLD).mean():>15.0%} "
                f"{(v.independent_std > THRESHOLD).mean():>12.0%}"
            )
        print("(medians over placements; flagged: share of valid placements over 0.15 eV)")


if __name__ == "__main__":
    main()
