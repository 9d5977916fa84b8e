"""Gas-phase reaction energies of the reference molecules: the bundled model, its CHGNet
teacher, and GPAW PBE, all at the same (G2) geometries.

    python benchmarks/gas_reactions.py [--gpaw data/training/gpaw_gas_pbe.extxyz.gz]

`rank`'s adsorption energies subtract gas references (H from H2, O from H2O - H2, C from
CO - O, N from N2), so a molecule the potential gets wrong shifts every absolute E_ads of that
element by the same amount; descriptors relative to a reference surface cancel it. This
prints, for the closed-shell molecules of the scheme, each energy and three reaction energies
(methanation, ammonia synthesis, water-gas shift) from: the bundled model in each fidelity it
knows (spin off), the two CHGNet teachers (the labels its training data carry), and GPAW PBE
single points at the same geometries (the committed file; `data/training/DATASHEET.md` says
how it was made). No relaxation: every column sees the same structures.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from catscreen.build.gas import gas_molecule
from catscreen.model import load_model
from catscreen.paths import data_dir
from catscreen.training.datasets import read_extxyz
from catscreen.training.teacher import label

GPAW_FILE = "gpaw_gas_pbe.extxyz.gz"
MOLECULES = ("H2", "H2O", "CO", "N2", "NH3", "CH4", "CO2")
REACTIONS = {
    "CO + 3H2 -> CH4 + H2O": {"CH4": 1, "H2O": 1, "CO": -1, "H2": -3},
    "N2 + 3H2 -> 2NH3": {"NH3": 2, "N2": -1, "H2": -3},
    "CO + H2O -> CO2 + H2": {"CO2": 1, "H2": 1, "CO": -1, "H2O": -1},
}


def gpaw_energies(path: Path) -> tuple[dict[str, float], list]:
    """Molecule -> GPAW energy, and the labelled frames (their geometries are the G2 ones)."""
    frames = read_extxyz(path)
    return {a.info["sid"].removeprefix("gas-"): a.get_potential_energy() for a in frames}, frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpaw", type=Path, default=data_dir() / "training" / GPAW_FILE)
    args = parser.parse_args()

    gpaw, frames = gpaw_energies(args.gpaw)
    missing = [m for m in MOLECULES if m not in gpaw]
    if missing:
        raise SystemExit(f"{args.gpaw} lacks {', '.join(missing)}")
    structures = {a.info["sid"].removeprefix("gas-"): a for a in frames}
    for name in MOLECULES:  # the GPAW frames are catscreen's own gas molecules, re-boxed
        ref = gas_molecule(name)
        moved = structures[name].positions - structures[name].positions.mean(axis=0)
        assert abs(moved - (ref.positions - ref.positions.mean(axis=0))).max() < 1e-6, name
    mols = [structures[m] for m in MOLECULES]
    model = load_model("bundled")
    columns: dict[str, dict[str, float]] = {}
    for fid in model.info.fidelities:
        preds = model.predict(mols, ["off"] * len(mols), [fid] * len(mols))
        columns[f"model {fid}"] = {m: p.energy for m, p in zip(MOLECULES, preds, strict=True)}
    for name in ("chgnet-pbe", "chgnet-r2scan"):
        teacher = label(mols, name, spin="off")
        columns[f"{name} teacher"] = {
            m: a.get_potential_energy() for m, a in zip(MOLECULES, teacher, strict=True)
        }
    columns["GPAW PBE"] = {m: gpaw[m] for m in MOLECULES}

    print(f"bundled model {model.info.version}; GPAW file {args.gpaw.name}")
    settings = {
        k.removeprefix("gpaw_"): getattr(v, "item", lambda v=v: v)()
        for k, v in frames[0].info.items()
        if k.startswith("gpaw_")
    }
    print(f"GPAW settings: {settings}, box {frames[0].cell.lengths()[0]:g} A\n")
    width = max(len(c) for c in columns) + 2
    print("energies (eV)".ljust(24) + "".join(c.rjust(width) for c in columns))
    for m in MOLECULES:
        print(m.ljust(24) + "".join(f"{columns[c][m]:{width}.3f}" for c in columns))
    print("\nreaction energies (eV)".ljust(25) + "".join(c.rjust(width) for c in columns))
    for name, coef in REACTIONS.items():
        values = [sum(k * columns[c][m] for m, k in coef.items()) for c in columns]
        print(name.ljust(24) + "".join(f"{v:{width}.3f}" for v in values))
    print("\nminus GPAW PBE (eV)".ljust(24))
    for name, coef in REACTIONS.items():
        ref = sum(k * columns["GPAW PBE"][m] for m, k in coef.items())
        values = [sum(k * columns[c][m] for m, k in coef.items()) - ref for c in columns]
        print(name.ljust(24) + "".join(f"{v:+{width}.3f}" for v in values))


if __name__ == "__main__":
    main()
