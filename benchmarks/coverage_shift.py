"""One model's adsorption errors on the same systems in two cells, and whether it follows the
teacher's change of adsorption energy with coverage.

    python benchmarks/coverage_shift.py SMALL.json LARGE.json

SMALL and LARGE are `benchmarks/accuracy.py --json` files of one model, the second made with
`--size` (e.g. 2x2x3 and 3x3x3 cells: 1/4 and 1/9 monolayer), under the same protocol
otherwise. Systems are paired by host, facet and adsorbate (each system's placement errors
pooled); only systems in both files count. Prints the
paired difference LARGE - SMALL of the per-placement and lowest-placement errors (95% interval:
bootstrap of whole systems, 2000 draws, seed 0), the teacher's shift of each system's lowest
adsorption energy between the cells, and how far the model's own shift is from it.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
from accuracy import per_system_values, read_adsorption

from catscreen.training.evaluate import interval, system_bootstrap


def same_cell(sid: str) -> str:
    """The system without its cell, so that one system in two cells pairs."""
    return re.sub(r"-\d+x\d+x\d+-", "-", sid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("small", type=Path)
    parser.add_argument("large", type=Path)
    args = parser.parse_args()
    small, large = read_adsorption(args.small), read_adsorption(args.large)
    protocols = [
        {k: v for k, v in a.get("protocol", {}).items() if k != "size"} for a in (small, large)
    ]
    if protocols[0] != protocols[1]:
        raise SystemExit(f"the runs differ in more than the cell: {protocols[0]} vs {protocols[1]}")
    values = [
        {
            key: {same_cell(s): v for s, v in per.items()}
            for key, per in per_system_values(a).items()
        }
        for a in (small, large)
    ]
    systems = sorted(set(values[0]["lowest_errors"]) & set(values[1]["lowest_errors"]))
    if not systems:
        raise SystemExit("the two files share no system")
    print(f"{len(systems)} systems in both files; {args.large.name} - {args.small.name}:")
    for title, key in (
        ("per-placement MAE (eV)", "placement_errors"),
        ("lowest-placement MAE (eV)", "lowest_errors"),
        ("AdsorbML success (%)", "adsorbml"),
        ("AdsorbML ML+SP (%)", "ml_sp"),
    ):
        pair = [{s: v[key][s] for s in systems} for v in values]
        draws = system_bootstrap(pair)
        point = np.mean([x for s in systems for x in pair[1][s]]) - np.mean(
            [x for s in systems for x in pair[0][s]]
        )
        lo, hi = interval(draws[:, 1] - draws[:, 0])
        f = ".0f" if "%" in title else ".3f"
        print(f"  {title:<27} difference {point:+{f}} [{lo:+{f}}, {hi:+{f}}]")
    lowest = [{same_cell(r["sid"]): r for r in a["per_system"]} for a in (small, large)]
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
