"""How high `enumerate` starts each binding atom above its site, with and without the floor.

    python benchmarks/placement_heights.py [--bulks Pt,Au,...] [--adsorbates H,O,...]

For every heuristic placement on every facet up to index 2 of the bulks (`--min-ab 5`), the
height of the lowest binding atom above the mean height of its site's atoms, once with the
covalent-radius rule alone (`MIN_SITE_HEIGHT` off) and once as `enumerate` places it now; counts
below the site's atoms and below the floor, and the lowest placements of the rule alone.
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from catscreen.build import placements
from catscreen.build.enumerate import EnumerateSettings, enumerate_configurations

BULKS = "Pt,Au,Pd,Cu,Ni,Ag,Rh,Ir,Fe,W,Ru,Co,Al,Pt3Sn"
ADSORBATES = "H,O,N,C,OH,CO,NH3"


def heights(bulks: list[str], adsorbates: list[str]) -> list[tuple[float, str, str, str, str]]:
    rows = []
    for bulk in bulks:
        settings = EnumerateSettings(bulks=[bulk], max_index=2, adsorbates=adsorbates, min_ab=5.0)
        for a in enumerate_configurations(settings):
            if a.info.get("kind") != "adslab":
                continue
            site = [int(i) for i in str(a.info["site_atoms"]).split(",")]
            lowest = a.positions[a.get_tags() == 2, 2].min()
            h = float(lowest - a.positions[site, 2].mean())
            rows.append((h, bulk, a.info["miller"], a.info["adsorbate"], a.info["site_type"]))
    return sorted(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bulks", default=BULKS)
    parser.add_argument("--adsorbates", default=ADSORBATES)
    args = parser.parse_args()
    bulks, adsorbates = args.bulks.split(","), args.adsorbates.split(",")
    floor = placements.MIN_SITE_HEIGHT
    for label, value in (("covalent rule alone", -math.inf), ("with the floor", floor)):
        placements.MIN_SITE_HEIGHT = value
        rows = heights(bulks, adsorbates)
        h = np.array([r[0] for r in rows])
        below = sum(r[3] == "H" for r in rows if r[0] < floor - 1e-6)
        print(
            f"{label}: {len(rows)} placements; below their site's atoms {int((h < 0).sum())}, "
            f"less than {floor} A above them {int((h < floor - 1e-6).sum())} (H: {below})"
        )
        for r in rows[:5]:
            print(f"    {r[0]:+.2f} A  {r[1]} ({r[2]}) {r[3]} {r[4]}")
    placements.MIN_SITE_HEIGHT = floor


if __name__ == "__main__":
    main()
