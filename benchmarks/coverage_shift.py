"""One model's adsorption errors on the same systems in two cells, and whether it follows the
teacher's change of adsorption energy with coverage.

    python benchmarks/coverage_shift.py SMALL.json LARGE.json

SMALL and LARGE are `benchmarks/accuracy.py --json` files of one model, the second made with
`--size` (e.g. 2x2x3 and 3x3x3 cells: 1/4 and 1/9 monolayer), under the same protocol
otherwise. Systems are paired by host, facet and adsorbate (each system's placement errors
pooled); only systems in both files count. Prints accuracy.py's figures for LARGE with the
paired difference LARGE - SMALL (95% intervals: bootstrap of whole systems, 2000 draws, seed 0),
the teacher's shift of each system's lowest adsorption energy between the cells, and how far
the model's own shift is from it.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
from accuracy import read_adsorption, report_intervals


def same_cell(sid: str) -> str:
    """The system without its cell, so that one system in two cells pairs."""
    return re.sub(r"-\d+x\d+x\d+-", "-", sid)


def without_cell(ads: dict, systems: set[str]) -> dict:
    """An adsorption section with its cell taken out of every sid and of the protocol, kept to
    `systems`: the shape accuracy.py's paired comparison takes."""
    rows = [
        {**r, "placement": same_cell(r["placement"])}
        for r in ads["rows"]
        if same_cell(r["placement"]).rsplit(":", 1)[0] in systems
    ]
    lowest = [{**r, "sid": same_cell(r["sid"])} for r in ads["per_system"]]
    protocol = {k: v for k, v in ads.get("protocol", {}).items() if k != "size"}
    return {
        "rows": rows,
        "per_system": [r for r in lowest if r["sid"] in systems],
        "protocol": protocol,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("small", type=Path)
    parser.add_argument("large", type=Path)
    args = parser.parse_args()
    small, large = read_adsorption(args.small), read_adsorption(args.large)
    shared = {same_cell(r["sid"]) for r in small["per_system"]} & {
        same_cell(r["sid"]) for r in large["per_system"]
    }
    if not shared:
        raise SystemExit("the two files share no system")
    small, large = without_cell(small, shared), without_cell(large, shared)
    print(f"{len(shared)} systems in both files; {args.large.name} against {args.small.name}:")
    # refuses runs that differ in more than the cell (protocol, placements)
    report_intervals(large, small, args.small.stem)
    systems = sorted(shared)
    lowest = [{r["sid"]: r for r in a["per_system"]} for a in (small, large)]
    teacher = np.array([lowest[1][s]["teacher_min"] - lowest[0][s]["teacher_min"] for s in systems])
    model = np.array([lowest[1][s]["model_min"] - lowest[0][s]["model_min"] for s in systems])
    print(
        f"  each system's lowest adsorption energy, shift between the cells: teacher mean "
        f"{teacher.mean():+.3f} eV, mean |shift| {np.abs(teacher).mean():.3f}, median "
        f"{np.median(np.abs(teacher)):.3f}; model mean {model.mean():+.3f}; |model - teacher "
        f"shift| mean {np.abs(model - teacher).mean():.3f}, median "
        f"{np.median(np.abs(model - teacher)):.3f}; correlation {np.corrcoef(teacher, model)[0, 1]:.2f}"
    )
    calm = np.abs(teacher) < 0.5  # a teacher shift this large is another end state, not coverage
    if (~calm).any() and calm.sum() > 2:
        print(
            f"  without the {int((~calm).sum())} systems whose teacher shift exceeds 0.5 eV "
            f"({', '.join(s for s, c in zip(systems, calm, strict=True) if not c)}): teacher "
            f"mean |shift| {np.abs(teacher[calm]).mean():.3f}, |model - teacher shift| "
            f"{np.abs(model[calm] - teacher[calm]).mean():.3f}, correlation "
            f"{np.corrcoef(teacher[calm], model[calm])[0, 1]:.2f}"
        )


if __name__ == "__main__":
    main()
