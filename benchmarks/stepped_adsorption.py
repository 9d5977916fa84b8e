"""Adsorption energies on held-out stepped facets (teacher passes 8 and 9), models against teacher.

    python benchmarks/stepped_adsorption.py --model bundled --model runs/x/best.pt \\
        [--passes teacher_steps teacher_steps2] [--steps 100] [--json out.json]

`benchmarks/accuracy.py` rebuilds its placements from ASE-builder system ids, which the
enumerate-built slabs of `data/training/teacher_steps*` do not have. Here every placement of each
held-out adsorbate system of those passes (held out from every model given: `held_out_rule` of
each) starts from the placement the teacher relaxed when the pass was made (its `start` frame:
placed and nudged as `catscreen enumerate` places it; one per system in pass 8, two in pass 9),
and its clean slab from the slab's `start` frame (pass 8 holds the clean slabs of both).
Placement, clean slab and the gas references (catscreen's default references) are relaxed by
each model and by the teacher (CHGNet-PBE), BFGS fmax 0.05 eV/A, at most --steps; E_ads =
E(slab+ads) - E(slab) - sum n_i mu_i with each one's own energies. Prints each placement, then
per model the MAE of E_ads per placement with a 95% interval over systems, the MAE over
placements that neither side left in an anomalous state (`catscreen rank`'s checks), each
system's lowest valid placement against the teacher's and the AdsorbML-style rate (within
0.1 eV), and for each later model the paired differences to the first.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from accuracy import FMAX, TEACHER_FIDELITY, lowest_valid, relaxed, report_intervals
from ase import Atoms

from catscreen.analysis.anomalies import EXCLUDING, anomaly_rules, detect_anomalies
from catscreen.analysis.references import default_references
from catscreen.build.gas import gas_molecule, scheme_molecules
from catscreen.model import load_model
from catscreen.paths import data_dir
from catscreen.training.datasets import load_frames
from catscreen.training.evaluate import held_out_rule

PASSES = ("teacher_steps", "teacher_steps2")


def starts(models: list, passes: Sequence[str]) -> dict[str, tuple[Atoms, Atoms]]:  # noqa: ANN001
    """`<sid>:<k>` -> (placement, clean slab) start frames of the held-out adsorbate systems of
    `passes`, k counting a system's placements; clean slabs from every stepped pass (pass 9's
    are pass 8's)."""
    rules = [held_out_rule(m) for m in models]
    placements: dict[str, list[Atoms]] = {}
    wanted: set[str] = set()
    for name in dict.fromkeys([*passes, *PASSES]):
        folder = data_dir() / "training" / name / TEACHER_FIDELITY
        for a in (a for f in sorted(folder.iterdir()) for a in load_frames(f)):
            if a.info.get("stage") == "start" and not a.info.get("mirror"):
                placements.setdefault(a.info["sid"], []).append(a)
                if name in passes:
                    wanted.add(a.info["sid"])
    out = {}
    for sid, found in sorted(placements.items()):
        a = found[0]
        if sid not in wanted or a.info["kind"] != "adslab" or not all(r(sid) for r in rules):
            continue
        clean = placements.get(sid.removesuffix(f"-{a.info['adsorbate']}") + "-clean")
        if clean is not None:
            out.update({f"{sid}:{k}": (b, clean[0]) for k, b in enumerate(found)})
    return out


def adsorption(model, systems: dict[str, tuple[Atoms, Atoms]], steps: int) -> dict:  # noqa: ANN001
    """E_ads per placement, the excluding anomalies of its relaxation, and whether the
    placement and its clean slab converged within `steps`."""
    refs = default_references()
    gas = {
        m: relaxed(gas_molecule(m), model, TEACHER_FIDELITY, steps)[0] for m in scheme_molecules()
    }
    slabs: dict[str, tuple[float, Atoms, bool]] = {}
    out = {}
    for sid, (start, clean) in systems.items():  # sid: `<system>:<k>`, one placement
        key = clean.info["sid"]
        if key not in slabs:
            slabs[key] = relaxed(clean, model, TEACHER_FIDELITY, steps)  # a copy, no labels
        e_slab, final_slab, slab_ok = slabs[key]
        e, final, ok = relaxed(start, model, TEACHER_FIDELITY, steps)
        symbols = np.array(start.get_chemical_symbols())[start.get_tags() == 2]
        weights = refs.weights(dict(Counter(symbols.tolist())), sid)
        ref = sum(w * gas[m] for m, w in weights.items())
        found = detect_anomalies(start, final, final_slab)
        out[sid] = {
            "e_ads": e - e_slab - ref,
            "anomalies": [n for n in found.names if n in EXCLUDING],
            "converged": ok and slab_ok,
        }
    return out


def adsorption_section(teacher: dict, model: dict, steps: int) -> dict:
    """One model against the teacher in the shape of accuracy.py's adsorption section, so that
    its intervals and paired differences apply: rows per placement, each system's lowest valid
    placement on each side (no ML+SP: no teacher single points here)."""
    rows = [
        {
            "placement": k,
            "model": model[k]["e_ads"],
            "teacher": teacher[k]["e_ads"],
            "model_anomalies": model[k]["anomalies"],
            "teacher_anomalies": teacher[k]["anomalies"],
        }
        for k in model
    ]
    per_system = []
    for sid in sorted({k.rsplit(":", 1)[0] for k in model}):
        lows = {}
        for side, r in (("model_min", model), ("teacher_min", teacher)):
            ads = {k: v["e_ads"] for k, v in r.items() if k.startswith(f"{sid}:")}
            lows[side] = ads[lowest_valid(ads, {k: r[k]["anomalies"] for k in ads}, sid)]
        per_system.append({"sid": sid, **lows})
    protocol = {"fmax": FMAX, "steps": steps, "anomaly_rules": anomaly_rules()}
    return {"rows": rows, "per_system": per_system, "protocol": protocol}


def report(names: list[str], mine: list[dict], teacher: dict, steps: int) -> dict:
    """Per model: the MAE over placements valid on both sides, then accuracy.py's intervals
    over systems and, after the first model, paired differences to it."""
    sections = [adsorption_section(teacher, m, steps) for m in mine]
    out = {}
    for i, (name, m, ads) in enumerate(zip(names, mine, sections, strict=True)):
        clean = [
            abs(m[k]["e_ads"] - teacher[k]["e_ads"])
            for k in m
            if not m[k]["anomalies"] and not teacher[k]["anomalies"]
        ]
        print(
            f"{name}: without anomalies on either side "
            f"{np.mean(clean) if clean else float('nan'):.3f} eV per placement "
            f"({len(clean)} placements)"
        )
        figures = report_intervals(ads, sections[0] if i else None, names[0].split()[-1])
        out[name] = {"e_ads": m, "figures": figures}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="repeatable")
    parser.add_argument("--passes", nargs="+", default=list(PASSES), help="stepped passes")
    parser.add_argument("--steps", type=int, default=100, help="BFGS steps per relaxation")
    parser.add_argument("--json", type=Path, help="write every number here")
    args = parser.parse_args()

    models = [load_model(name) for name in args.model]
    placements = starts(models, args.passes)
    if not placements:
        raise SystemExit(
            f"no held-out adsorbate systems of {', '.join(args.passes)} for these models"
        )
    systems = sorted({k.rsplit(":", 1)[0] for k in placements})
    print(
        f"{len(placements)} placements of {len(systems)} held-out adsorbate systems of "
        f"{', '.join(args.passes)}, {len({c.info['sid'] for _, c in placements.values()})} clean "
        f"slabs; relaxed to fmax {FMAX} eV/A, at most {args.steps} steps"
    )
    teacher = adsorption(load_model("chgnet-pbe"), placements, args.steps)
    mine = [adsorption(m, placements, args.steps) for m in models]
    names = [f"{m.info.name} {m.info.version}" for m in models]
    print(
        f"  {'placement':<26}{'teacher':>9}"
        + "".join(f"{n.split()[-1][:12]:>14}" for n in names)
        + "  anomalies (teacher; models)"
    )
    for key in placements:
        row = f"  {key:<26}{teacher[key]['e_ads']:>+9.3f}"
        flags = "; ".join(",".join(r[key]["anomalies"]) or "-" for r in [teacher, *mine])
        print(row + "".join(f"{m[key]['e_ads']:>+14.3f}" for m in mine) + f"  {flags}")
    for name, r in [("teacher", teacher), *zip(names, mine, strict=True)]:
        bad = [k for k in placements if r[k]["anomalies"]]
        stuck = [k for k in placements if not r[k]["converged"]]
        print(f"{name}: {len(bad)} anomalous, {len(stuck)} not converged in {args.steps} steps")
    models_out = report(names, mine, teacher, args.steps)
    result = {"placements": list(placements), "teacher": teacher, "models": models_out}
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
