"""Adsorption energies on held-out stepped facets (the eighth teacher pass), models against teacher.

    python benchmarks/stepped_adsorption.py --model bundled --model runs/x/best.pt \\
        [--steps 100] [--json out.json]

`benchmarks/accuracy.py` rebuilds its placements from ASE-builder system ids, which the
enumerate-built slabs of `data/training/teacher_steps` do not have. Here each held-out adsorbate
system of that pass (held out from every model given: `held_out_rule` of each) starts from the
placement the teacher relaxed when the pass was made (its `start` frame: placed and nudged as
`catscreen enumerate` places it, one per system), and its clean slab from the slab's `start`
frame. Placement, clean slab and the gas references (`catscreen.build.gas.default_scheme`) are
relaxed by each model and by the teacher (CHGNet-PBE), BFGS fmax 0.05 eV/A, at most --steps;
E_ads = E(slab+ads) - E(slab) - sum n_i mu_i with each one's own energies. Prints each system,
then per model the MAE of E_ads with a 95% interval over systems, the MAE over placements that
neither side left in an anomalous state (`catscreen rank`'s checks), and for each later model
the paired difference to the first.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np
from accuracy import FMAX, TEACHER_FIDELITY, relaxed
from ase import Atoms

from catscreen.analysis.anomalies import EXCLUDING, detect_anomalies
from catscreen.analysis.references import default_references
from catscreen.build.gas import gas_molecule, scheme_molecules
from catscreen.model import load_model
from catscreen.paths import data_dir
from catscreen.training.datasets import load_frames
from catscreen.training.evaluate import held_out_rule, interval, system_bootstrap

PASS = "teacher_steps"


def starts(models: list) -> dict[str, tuple[Atoms, Atoms]]:  # noqa: ANN001
    """sid -> (placement, clean slab) start frames of the held-out adsorbate systems."""
    folder = data_dir() / "training" / PASS / TEACHER_FIDELITY
    frames = [a for f in sorted(folder.iterdir()) for a in load_frames(f)]
    rules = [held_out_rule(m) for m in models]
    first = {}
    for a in frames:
        if a.info.get("stage") == "start" and not a.info.get("mirror"):
            first.setdefault(a.info["sid"], a)
    out = {}
    for sid, a in sorted(first.items()):
        if a.info["kind"] != "adslab" or not all(rule(sid) for rule in rules):
            continue
        clean = first.get(sid.removesuffix(f"-{a.info['adsorbate']}") + "-clean")
        if clean is not None:
            out[sid] = (a, clean)
    return out


def adsorption(model, systems: dict[str, tuple[Atoms, Atoms]], steps: int) -> dict:  # noqa: ANN001
    """E_ads per system, the excluding anomalies of its relaxation, and whether the placement
    and its clean slab converged within `steps`."""
    refs = default_references()
    gas = {
        m: relaxed(gas_molecule(m), model, TEACHER_FIDELITY, steps)[0] for m in scheme_molecules()
    }
    slabs: dict[str, tuple[float, Atoms, bool]] = {}
    out = {}
    for sid, (start, clean) in systems.items():
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="repeatable")
    parser.add_argument("--steps", type=int, default=100, help="BFGS steps per relaxation")
    parser.add_argument("--json", type=Path, help="write every number here")
    args = parser.parse_args()

    models = [load_model(name) for name in args.model]
    systems = starts(models)
    if not systems:
        raise SystemExit(f"no held-out adsorbate systems of {PASS} for these models")
    print(
        f"{len(systems)} held-out adsorbate systems of {PASS} (one placement each), "
        f"{len({c.info['sid'] for _, c in systems.values()})} clean slabs; relaxed to fmax {FMAX} "
        f"eV/A, at most {args.steps} steps"
    )
    teacher = adsorption(load_model("chgnet-pbe"), systems, args.steps)
    mine = [adsorption(m, systems, args.steps) for m in models]
    names = [f"{m.info.name} {m.info.version}" for m in models]
    print(
        f"  {'system':<24}{'teacher':>9}"
        + "".join(f"{n.split()[-1][:12]:>14}" for n in names)
        + "  anomalies (teacher; models)"
    )
    for sid in systems:
        row = f"  {sid:<24}{teacher[sid]['e_ads']:>+9.3f}"
        flags = "; ".join(",".join(r[sid]["anomalies"]) or "-" for r in [teacher, *mine])
        print(row + "".join(f"{m[sid]['e_ads']:>+14.3f}" for m in mine) + f"  {flags}")
    for name, r in [("teacher", teacher), *zip(names, mine, strict=True)]:
        bad = [s for s in systems if r[s]["anomalies"]]
        stuck = [s for s in systems if not r[s]["converged"]]
        print(f"{name}: {len(bad)} anomalous, {len(stuck)} not converged in {args.steps} steps")
    errors = [
        {sid: [abs(m[sid]["e_ads"] - teacher[sid]["e_ads"])] for sid in systems} for m in mine
    ]
    draws = system_bootstrap(errors)
    result = {"systems": list(systems), "teacher": teacher, "models": {}}
    for i, (name, m) in enumerate(zip(names, mine, strict=True)):
        values = np.array([v[0] for v in errors[i].values()])
        clean = [
            errors[i][s][0]
            for s in systems
            if not m[s]["anomalies"] and not teacher[s]["anomalies"]
        ]
        lo, hi = interval(draws[:, i])
        line = (
            f"{name}: E_ads MAE {values.mean():.3f} eV [{lo:.3f}, {hi:.3f}], "
            f"without anomalies {np.mean(clean) if clean else float('nan'):.3f} eV "
            f"({len(clean)} systems), "
            f"within 0.1 eV {100 * np.mean(values <= 0.1):.0f}%"
        )
        if i:
            d_lo, d_hi = interval(draws[:, i] - draws[:, 0])
            diff = values.mean() - np.mean([v[0] for v in errors[0].values()])
            line += f"; minus {names[0]}: {diff:+.3f} [{d_lo:+.3f}, {d_hi:+.3f}]"
        print(line)
        result["models"][name] = {"e_ads": m, "mae_eV": float(values.mean()), "interval": [lo, hi]}
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
