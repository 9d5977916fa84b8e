"""What `rank`'s E_ads uncertainty is in `enumerate`'s default cells, over the ensemble heads
and as independent errors, and how many placements each would flag for high uncertainty.

    python benchmarks/rank_uncertainty.py [--bulks Ba,Ce,Pt,Cu] [--adsorbates O,H] [--out DIR]

For each bulk: `catscreen enumerate --max-index 1` with the adsorbates, `catscreen relax --spin
auto` with the bundled weights, `catscreen rank`; then, per valid placement, the E_ads spread
rank reports (the standard deviation over heads of each head's E_ads) beside the spread the
independent-error formula gives (sqrt(std_adslab^2 + std_slab^2 + std_ref^2), what rank
reported before head energies were kept), and the share of placements over the 0.15 eV
high-uncertainty threshold under each. Then all bulks' results ranked together relative to the
`--reference` (default Pt(111); every descriptor against 0): each candidate's
relative descriptor stds and distance sigma, and the rank-flip flags, with the head energies
and with them removed (the independent formula rank used before).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from catscreen.analysis import RankSettings, rank_results

THRESHOLD = 0.15  # RankSettings' default uncertainty_threshold (eV)


def run(*args: str) -> None:
    exe = Path(sys.executable).parent / "catscreen"
    subprocess.run([str(exe), *args], check=True, capture_output=True, text=True)


def measure(bulk: str, adsorbates: str, work: Path) -> tuple[pd.DataFrame, Path]:
    cfg, res, ranked = work / f"cfg_{bulk}", work / f"res_{bulk}.parquet", work / f"rank_{bulk}"
    if not res.exists():  # --out keeps the relaxations of an earlier run
        run("enumerate", "--bulk", bulk, "--max-index", "1", "--adsorbates", adsorbates, "--out", str(cfg))  # fmt: skip
        run("relax", str(cfg), "--out", str(res), "--spin", "auto")
    run("rank", str(res), "--out", str(ranked))
    table = pd.read_parquet(ranked / "adsorption.parquet")
    table["independent_std"] = np.sqrt(
        table.energy_std**2 + table.slab_energy_std**2 + table.reference_std**2
    )
    return table, res


def relative(results: list[Path], reference: str) -> None:
    """Every candidate against the reference, with head energies and without them."""
    both = pd.concat([pd.read_parquet(p) for p in results], ignore_index=True)
    # each run relaxed the same gas molecules (same config_id and context): keep one of each
    both = both.drop_duplicates(["config_id", "model", "model_version", "spin", "fidelity"])
    settings = RankSettings(reference_candidate=reference)
    heads = rank_results(both, settings)
    blind = rank_results(both.assign(energy_heads=None), settings)
    stds = [c for c in heads.ranked.columns if c.startswith("rel_std_")]
    print(f"\nrelative to {heads.metadata['reference_candidate']} (targets 0 +- 0.2 eV):")
    print(
        f"{'candidate':12} "
        + " ".join(f"{c[4:] + ', heads':>16} {'indep.':>7}" for c in stds)
        + f" {'sigma_d, heads':>15} {'indep.':>7}"
    )
    b = blind.ranked.set_index("candidate")
    for r in heads.ranked.itertuples():
        cells = [f"{getattr(r, c):>16.3f} {b.loc[r.candidate, c]:>7.3f}" for c in stds]
        print(
            f"{r.candidate:12} {' '.join(cells)} {r.distance_std:>15.3f} "
            f"{b.loc[r.candidate, 'distance_std']:>7.3f}"
        )
    for name, out in (("heads", heads), ("independent", blind)):
        flips = out.configs[out.configs.flag_rank_flip]
        print(
            f"rank-flip flags, {name}: {len(flips)} minima of {flips.candidate.nunique()} candidates"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bulks", default="Ba,Ce,Pt,Cu")
    parser.add_argument("--adsorbates", default="O,H")
    parser.add_argument("--reference", default="Pt(111)", help="candidate to rank against")
    parser.add_argument("--out", type=Path, help="keep the runs here (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.out or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        print(
            f"{'bulk':6} {'placements':>10} {'valid':>6} {'slab total std':>15} "
            f"{'E_ads std, heads':>17} {'independent':>12} {'flagged, heads':>15} {'independent':>12}"
        )
        results = []
        for bulk in args.bulks.split(","):
            t, res = measure(bulk, args.adsorbates, work)
            results.append(res)
            v = t[t.valid]
            print(
                f"{bulk:6} {len(t):>10} {len(v):>6} {t.slab_energy_std.median():>15.3f} "
                f"{v.e_ads_std.median():>17.3f} {v.independent_std.median():>12.3f} "
                f"{(v.e_ads_std > THRESHOLD).mean():>15.0%} "
                f"{(v.independent_std > THRESHOLD).mean():>12.0%}"
            )
        print("(medians over placements; flagged: share of valid placements over 0.15 eV)")
        relative(results, args.reference)


if __name__ == "__main__":
    main()
