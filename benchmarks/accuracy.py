"""Accuracy of the shipped weights against the issue's targets, on held-out systems only.

    python benchmarks/accuracy.py [--model bundled] [--systems 0] [--json out.json]
        [--compare other.json] [--results earlier.json] [--passes teacher,teacher_relax,...]

Held out means `catscreen.training.evaluate.held_out_rule`: on the validation side of the
checkpoint's own split (a hash of the system id, its recorded fraction and seed) and never
trained on, as `catscreen evaluate --held-out` uses it. Applied to every teacher pass it gives
models trained on different passes the same benchmark. The passes are the first four by
default (the 41 adsorbate systems every version is compared on); `--passes teacher_hosts`
measures the 19 hosts of the sixth pass the same way (give it its own teacher cache); passes
built by `enumerate` (`--passes teacher_steps`) get the frame and spin sections only, their
adsorption energies come from `benchmarks/stepped_adsorption.py`. `--size 3x3x3` relaxes the
same held-out (host, facet, adsorbate) systems in 3x3x3 cells (1/9 monolayer instead of 1/4;
the lateral cell `enumerate`'s default `min_ab` of 8 A gives on most of these hosts), less any
that a teacher pass holds in that cell (the same systems for every model). `--size enumerate`
relaxes them, less any a teacher pass holds in another cell (pass 10's 3x3x3 is enumerate's
own on some hosts), as a user's screen would: the slabs, symmetry-distinct sites and nudged
placements `catscreen enumerate` makes with its defaults (at least 7 A of layers by
pymatgen's count and 8 A in-plane: 3 to 8 layers, 27 to 96 slab atoms, the exposed ones
free). The teacher cache is written after each system, so a stopped run resumes with the
next.

Prints:
1. energy (meV/atom) and force (eV/A) MAE per fidelity and spin on the held-out teacher frames
   of every pass, and on pass 1 alone as earlier versions reported it (targets <= 15 meV/atom,
   <= 0.07 eV/A);
2. adsorption energies: every site of each held-out single-metal (slab, adsorbate) system of
   every pass relaxed with the
   model and with the teacher (CHGNet-PBE), same reference scheme
   (catscreen.build.gas.default_scheme: H2, H2O, CO, N2 relaxed by the same model); MAE of the
   adsorption energy per placement (target <= 0.10 eV) and the AdsorbML-style success rate: the
   model's lowest-energy placement within 0.1 eV of the teacher's lowest (target >= 80%); also
   the AdsorbML paper's ML+SP rate: the teacher's single point on the model's lowest relaxed
   structure within 0.1 eV of (or below) the teacher's lowest. Minima skip placements whose
   relaxation desorbed, dissociated, reconstructed, intercalated or left two atoms overlapping
   (`catscreen rank`'s anomaly checks, on each side), as AdsorbML does. Placements are nudged
   off their sites as `catscreen enumerate` nudges them (`--nudge 0` places exactly on the site,
   the protocol before 0.9; symmetric placements then stop on saddles);
3. GPAW spin pairs: MAE of the model's spin-on minus spin-off energy against DFT's.

Every adsorption figure comes with a 95% interval from a bootstrap of whole held-out systems
(the spin-pair MAE with one over pairs): how far the figure could move with another draw of
systems. `--compare OTHER.json` (another run's `--json`, same protocol) adds the paired
difference, which is what tells two candidates apart; `--results RUN.json` prints both for a
saved run and relaxes nothing, and `--same-systems OTHER.json` cuts them to the (host, facet,
adsorbate) systems another run holds, in any cell (a 2x2 run on the systems `--size enumerate`
kept):

    python benchmarks/accuracy.py --results new.json --compare shipped.json
    python benchmarks/accuracy.py --results 2x2.json --same-systems enumerate.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
from ase import Atoms
from ase.optimize import BFGS

from catscreen.analysis.anomalies import EXCLUDING, anomaly_rules, detect_anomalies
from catscreen.analysis.references import default_references
from catscreen.build.enumerate import EnumerateSettings, enumerate_configurations
from catscreen.build.gas import gas_molecule, scheme_molecules
from catscreen.build.placements import NUDGE, nudged
from catscreen.build.slabs import Miller, parse_miller
from catscreen.io import atoms_from_text, atoms_to_text
from catscreen.model import load_model
from catscreen.model.api import magnetic_elements
from catscreen.model.calculator import CatscreenCalculator
from catscreen.paths import data_dir
from catscreen.training.datasets import extxyz_files, load_frames
from catscreen.training.dft_labels import pair_kind
from catscreen.training.evaluate import (
    adsorption_spin_parts,
    evaluate_frames,
    fit_moment_couplings,
    held_out_rule,
    interval,
    spin_pair_table,
    summary,
    system_bootstrap,
)
from catscreen.training.generate import add_adsorbate_at, make_slab, slab_sites

FMAX, STEPS = 0.05, 300  # the relax command's defaults; before 0.9 at most 100 steps
TEACHER_FIDELITY = "chgnet-pbe"
PASSES = ("teacher", "teacher_relax", "teacher_full", "teacher_more")
# Protocol keys that judge relaxations and do not make them (the last two: caches before 0.12)
RULES = ("anomaly_rules", "reconstruction_cushion", "slab_displacement")
# HOST-FACET-AxBxC-ADS (the ASE-builder passes) or HOST-MILLER-tK-ADS (enumerate's; 1-10 for
# (1,-1,0))
SID = re.compile(r"(?P<host>[^-]+)-(?P<facet>-?\d(?:-?\d)*)-(?P<cell>\d+x\d+x\d+|t\d+)-(?P<ads>.+)")


def parse_sid(sid: str) -> dict[str, str]:
    """host, facet, cell (AxBxC, or tK for enumerate's terminations) and adsorbate of a
    benchmark system id."""
    found = SID.fullmatch(sid)
    if found is None:
        raise SystemExit(
            f"not a benchmark system id (HOST-FACET-AxBxC-ADS, HOST-MILLER-tK-ADS): {sid}"
        )
    return found.groupdict()


def triple(sid: str) -> tuple[str, Miller, str]:
    """(host, 3-index facet, adsorbate): what a system is in any cell."""
    p = parse_sid(sid)
    return p["host"], parse_miller(p["facet"]), p["ads"]


def teacher_passes(names: Sequence[str] = PASSES) -> list[Path]:
    missing = [n for n in names if not (data_dir() / "training" / n).is_dir()]
    if missing:
        raise SystemExit(f"no teacher pass {', '.join(missing)} under {data_dir() / 'training'}")
    return [data_dir() / "training" / name for name in names]


def relaxed(atoms: Atoms, model, fidelity: str, steps: int) -> tuple[float, Atoms, bool]:  # noqa: ANN001
    """Energy, structure, and whether it converged within `steps`."""
    a = atoms.copy()
    a.calc = CatscreenCalculator(model, spin="auto", fidelity=fidelity)
    converged = BFGS(a, maxstep=0.2, logfile=None).run(fmax=FMAX, steps=steps)
    energy = float(a.get_potential_energy())
    a.calc = None
    return energy, a, bool(converged)


def single_point(atoms: Atoms, model, fidelity: str) -> float:  # noqa: ANN001
    a = atoms.copy()
    a.calc = CatscreenCalculator(model, spin="auto", fidelity=fidelity)
    return float(a.get_potential_energy())


def system_slab(sid: str) -> Atoms:
    """A system's clean slab as the generator built it, from its sid (HOST-FACET-AxBxC-...)."""
    p = parse_sid(sid)
    return make_slab(p["host"], p["facet"], tuple(int(x) for x in p["cell"].split("x")), 6.0)


def placement(slab: Atoms, ads: str, sid: str, site: str, nudge: float) -> Atoms:
    """The placement both models start from; the nudge is seeded by the placement's name."""
    atoms = add_adsorbate_at(slab, ads, site)
    if nudge <= 0:
        return atoms
    seed = int(hashlib.sha256(f"{sid}:{site}".encode()).hexdigest()[:16], 16)
    return nudged(atoms, np.random.default_rng(seed), nudge)


ENUMERATE = "enumerate"  # --size: the cells, sites and nudges of `catscreen enumerate`


def enumerate_settings(host: str, miller: Miller, ads: str, nudge: float) -> EnumerateSettings:
    """`catscreen enumerate`'s defaults (slab >= 7 A, in-plane >= 8 A, its vacuum, one
    heuristic placement per symmetry-distinct site, seed 0) for one facet and adsorbate."""
    return EnumerateSettings(bulks=[host], miller=[miller], adsorbates=[ads], nudge=nudge)


def enumerated(host: str, facet: str, ads: str, nudge: float) -> dict[str, list[Atoms]]:
    """`enumerate`'s configurations of one facet and adsorbate by system id
    (HOST-MILLER-tK-ADS, as the enumerate-built teacher passes name theirs), clean slab first;
    made once per 3-index facet (0001 and 001 are one)."""
    return _enumerated(host, parse_miller(facet), ads, nudge)


@cache
def _enumerated(host: str, miller: Miller, ads: str, nudge: float) -> dict[str, list[Atoms]]:
    out: dict[str, list[Atoms]] = {}
    for a in enumerate_configurations(enumerate_settings(host, miller, ads, nudge)):
        text = a.info["miller"].replace(",", "")  # "001": as the enumerate-built passes
        sid = f"{host}-{text}-t{a.info['termination']}-{ads}"
        out.setdefault(sid, []).append(a)
    return out


@cache
def system_starts(sid: str, ads: str, nudge: float) -> tuple[Atoms, dict[str, Atoms]]:
    """A system's clean slab and its placements by key (`<sid>:<site>`), as both models start
    from them: ASE-builder sids get every named site of the ASE slab, enumerate ones (`-tK-`)
    every placement `enumerate` makes, its sites numbered where a kind repeats."""
    p = parse_sid(sid)
    if not p["cell"].startswith("t"):
        slab = system_slab(sid)
        return slab, {f"{sid}:{s}": placement(slab, ads, sid, s, nudge) for s in slab_sites(slab)}
    clean, *placed = enumerated(p["host"], p["facet"], ads, nudge)[sid]
    seen: Counter[str] = Counter()
    starts = {}
    for a in placed:
        seen[a.info["site_type"]] += 1
        n = seen[a.info["site_type"]]
        starts[f"{sid}:{a.info['site_type']}{n if n > 1 else ''}"] = a
    return clean, starts


def frame_errors(model, by_pass: dict[str, list[Atoms]], held: set[str]) -> dict[str, list[dict]]:  # noqa: ANN001
    """MAE tables on the held-out catalyst frames (bulk, slabs, adsorbates) of every pass and
    of pass 1 alone, the set earlier versions were measured on."""
    groups = ["all", "fidelity", "fidelity/spin", "spin", "kind"]

    def catalyst(frames: list[Atoms]) -> list[dict]:
        ev = evaluate_frames(model, [a for a in frames if a.info.get("kind") != "gas"])
        t = summary(ev)
        return t[t.group.isin(groups)].to_dict("records")

    kept = {name: [a for a in f if a.info["sid"] in held] for name, f in by_pass.items()}
    out = {"catalyst, all passes": catalyst([a for f in kept.values() for a in f])}
    if kept.get("teacher"):
        out["catalyst, pass 1"] = catalyst(kept["teacher"])
    return out


def held_out_adsorbate_systems(
    frames: dict[str, list[Atoms]], held: set[str], n: int
) -> list[tuple]:
    """(host, facet, adsorbate, sid) of the held-out single-metal adsorbate systems of every
    pass; `n` > 0 keeps n of them spread over hosts."""
    sids = {
        a.info["sid"]
        for f in frames.values()
        for a in f
        if a.info.get("kind") == "adslab" and a.info["sid"] in held
    }
    parsed = [(sid, SID.fullmatch(sid)) for sid in sids]
    pure = sorted(
        (p["host"], p["facet"], p["ads"], sid)
        for sid, found in parsed
        if found
        and re.fullmatch(r"[A-Z][a-z]?", (p := found.groupdict())["host"])
        and "x" in p["cell"]
    )
    return pure[:: max(1, len(pure) // n)][:n] if n > 0 else pure


def write_held_out(path: Path, systems: list[tuple]) -> None:
    """The systems as `catscreen data generate --avoid` reads them, one per line."""
    lines = [f"{host} {facet} {ads}  # {sid}" for host, facet, ads, sid in systems]
    path.write_text("\n".join(lines) + "\n")
    print(f"{len(lines)} held-out adsorbate systems -> {path}")


def at_size(systems: list[tuple], size: str, nudge: float) -> list[tuple]:
    """The same (host, facet, adsorbate) systems in another cell (`3x3x3`: 1/9 monolayer where
    2x2 is 1/4; `enumerate`: the cells `catscreen enumerate` cuts by default, one system per
    termination), less those a teacher pass holds in that cell, so that every model, trained
    on such a pass or not, is measured on the same systems and none on one it trained on. For
    `enumerate`, whose cell is one of theirs on some hosts (pass 10's 3x3x3) and whose
    terminations the enumerate-built passes name alike, a (host, facet, adsorbate) goes as a
    whole when any teacher pass holds it in any cell but the held-out systems' own."""
    if size == ENUMERATE:
        shards = extxyz_files(data_dir() / "training", "teacher*/*/*-*")
        own = {sid for *_, sid in systems}
        elsewhere = {
            triple(sid)
            for path in shards
            for sid in {a.info["sid"] for a in load_frames(path)} - own
            if SID.fullmatch(sid)
        }
        out = {}  # one system held out in two cells (2x2 and pass 10's 3x3x3) is enumerated once
        for host, facet, ads, sid in systems:
            if triple(sid) not in elsewhere:
                for sid in enumerated(host, facet, ads, nudge):
                    out[sid] = (host, facet, ads, sid)
        return list(out.values())
    cells = {parse_sid(sid)["cell"] for *_, sid in systems}
    if not re.fullmatch(r"\d+x\d+x\d+", size):
        raise SystemExit(f"--size: expected AxBxC (e.g. 3x3x3) or {ENUMERATE}, got {size!r}")
    if size in cells:
        raise SystemExit(f"--size {size} is the held-out systems' own cell: leave --size out")
    # the ASE-builder shards name their cell (slab-Cu-111-3x3x3.extxyz.xz); enumerated ones never
    # hold these sids
    shards = extxyz_files(data_dir() / "training", f"teacher*/*/slab-*-{size}")
    taken = {a.info["sid"] for path in shards for a in load_frames(path)}
    out = {}
    for host, facet, ads, sid in systems:
        p = parse_sid(sid)
        new = f"{p['host']}-{p['facet']}-{size}-{p['ads']}"
        if new not in taken:
            out[new] = (host, facet, ads, new)
    return list(out.values())


@dataclass
class Relaxed:
    """One model's relaxations: energies and structures by key, the keys that hit the step
    limit, and each placement's anomalies as `catscreen rank` detects them."""

    energies: dict[str, float] = field(default_factory=dict)
    structures: dict[str, Atoms] = field(default_factory=dict)
    unconverged: list[str] = field(default_factory=list)
    anomalies: dict[str, list[str]] = field(default_factory=dict)
    legacy: bool = False  # read from an old-format cache: unconverged and anomalies unknown


def excluding(start: Atoms, final: Atoms, clean_slab: Atoms) -> list[str]:
    """The anomalies that keep a placement out of the minima, as `catscreen rank` finds them."""
    return [n for n in detect_anomalies(start, final, clean_slab).names if n in EXCLUDING]


def relax_systems(
    model,  # noqa: ANN001
    systems: list[tuple],
    nudge: float,
    steps: int,
    log=print,  # noqa: ANN001
    out: Relaxed | None = None,
    saved=None,  # noqa: ANN001
) -> Relaxed:
    """The gas references, clean slabs and every placement of `systems`, relaxed into `out`
    (gas molecules it holds are kept); `saved(out)` after each system, so that a killed run
    keeps every finished system."""
    out = out if out is not None else Relaxed()

    def run(key: str, atoms: Atoms) -> None:
        out.energies[key], out.structures[key], ok = relaxed(atoms, model, TEACHER_FIDELITY, steps)
        if not ok:
            out.unconverged.append(key)

    for m in scheme_molecules():
        if f"gas:{m}" not in out.energies:
            run(f"gas:{m}", gas_molecule(m))
    for _, _, ads, sid in systems:
        slab, starts = system_starts(sid, ads, nudge)
        run(f"slab:{sid}", slab)
        for key, start in starts.items():
            run(key, start)
            out.anomalies[key] = excluding(
                start, out.structures[key], out.structures[f"slab:{sid}"]
            )
        if saved:
            saved(out)
        log(f"  relaxed {sid} with {model.info.name}")
    return out


def adsorption_energies(energies: dict[str, float], systems: list[tuple]) -> dict[str, float]:
    """E_ads = E(slab+ads) - E(slab) - sum n_i mu_i with catscreen's default references (the
    gas scheme), as `catscreen rank` computes them."""
    refs = default_references()
    out = {}
    for _, _, ads, sid in systems:
        slab, starts = system_starts(sid, ads, 0.0)  # keys and composition: any nudge
        for key, start in starts.items():
            n = Counter(start.get_chemical_symbols()[len(slab) :])
            ref = sum(w * energies[f"gas:{m}"] for m, w in refs.weights(dict(n), key).items())
            out[key] = energies[key] - energies[f"slab:{sid}"] - ref
    return out


def lowest_valid(ads: dict[str, float], anomalies: dict[str, list[str]], sid: str) -> str:
    """The system's lowest placement without an excluding anomaly (all anomalous: the lowest)."""
    keys = [k for k in ads if k.startswith(f"{sid}:")]
    valid = [k for k in keys if not anomalies.get(k)] or keys
    return min(valid, key=ads.__getitem__)


def adsorbml_success(system: dict) -> bool:
    """The model's lowest placement within 0.1 eV of the teacher's lowest (per-system row)."""
    return abs(system["model_min"] - system["teacher_min"]) <= 0.1


def ml_sp_success(system: dict) -> bool:
    """The teacher's single point on the model's lowest structure within 0.1 eV of, or below,
    the teacher's lowest (AdsorbML's ML+SP)."""
    return system["teacher_sp"] - system["teacher_min"] <= 0.1


def adsorption(
    model_e: dict[str, float],
    teacher_e: dict[str, float],
    systems: list[tuple],
    teacher_at_lowest: dict[str, float],
    model_anomalies: dict[str, list[str]],
    teacher_anomalies: dict[str, list[str]],
) -> dict:
    """MAE per placement and AdsorbML success (lowest placement within 0.1 eV of the teacher's);
    minima skip placements with an excluding anomaly (desorbed, dissociated, reconstructed,
    intercalated, overlapping) on each side, as `catscreen rank` and AdsorbML do;
    `teacher_at_lowest`: the teacher's single point on the model's lowest structure per system,
    for the ML+SP rate."""
    m, t = adsorption_energies(model_e, systems), adsorption_energies(teacher_e, systems)
    sp = adsorption_energies({**teacher_e, **teacher_at_lowest}, systems)
    rows = [
        {
            "placement": k,
            "model": m[k],
            "teacher": t[k],
            "model_anomalies": model_anomalies.get(k, []),
            "teacher_anomalies": teacher_anomalies.get(k, []),
        }
        for k in m
    ]
    per_system = []
    for sid in sorted({s[3] for s in systems}):
        lowest = lowest_valid(m, model_anomalies, sid)
        lo_t = t[lowest_valid(t, teacher_anomalies, sid)]
        per_system.append(
            {"sid": sid, "model_min": m[lowest], "teacher_min": lo_t, "teacher_sp": sp[lowest]}
        )
    success = [adsorbml_success(r) for r in per_system]
    success_sp = [ml_sp_success(r) for r in per_system]
    err = np.array([abs(r["model"] - r["teacher"]) for r in rows])
    both_valid = np.array([not r["model_anomalies"] and not r["teacher_anomalies"] for r in rows])

    def total_mae(keys: list[str]) -> float:
        return float(np.mean([abs(model_e[k] - teacher_e[k]) for k in keys]))

    # Where the adsorption error comes from: the three relaxed total energies it subtracts.
    slabs = {tuple(parse_sid(s[3]).values())[:3]: f"slab:{s[3]}" for s in systems}
    parts = {
        "gas_molecules_eV": total_mae([k for k in model_e if k.startswith("gas:")]),
        "clean_slabs_eV": total_mae(sorted(slabs.values())),
        "adsorbate_slabs_eV": total_mae(list(m)),
    }
    return {
        "systems": len(success),
        "placements": len(rows),
        "ads_energy_mae_eV": float(err.mean()) if len(err) else None,
        "ads_energy_mae_valid_eV": float(err[both_valid].mean()) if both_valid.any() else None,
        "placements_valid_both": int(both_valid.sum()),
        "adsorbml_success": float(np.mean(success)) if success else None,
        "adsorbml_ml_sp_success": float(np.mean(success_sp)) if success_sp else None,
        "lowest_placement_mae_eV": float(
            np.mean([abs(r["model_min"] - r["teacher_min"]) for r in per_system])
        )
        if per_system
        else None,
        "total_energy_mae": parts,
        "per_system": per_system,
        "rows": rows,
    }


# Benchmark figures as per-system values, for intervals over systems: name, values, lower is
# better. Success flags are 0/1 per system, reported in percent.
METRICS = (
    ("per-placement MAE (eV)", "placement_errors", True, ".3f"),
    ("lowest-placement MAE (eV)", "lowest_errors", True, ".3f"),
    ("AdsorbML success (%)", "adsorbml", False, ".0f"),
    ("AdsorbML ML+SP (%)", "ml_sp", False, ".0f"),
)


def per_system_values(ads: dict) -> dict[str, dict[str, list[float]]]:
    """metric -> sid -> values, from the `adsorption` section of a run (this or a --json file)."""
    out: dict[str, dict[str, list[float]]] = {key: {} for _, key, _, _ in METRICS}
    for r in ads["rows"]:
        sid = r["placement"].rsplit(":", 1)[0]
        out["placement_errors"].setdefault(sid, []).append(abs(r["model"] - r["teacher"]))
    for r in ads["per_system"]:
        out["lowest_errors"][r["sid"]] = [abs(r["model_min"] - r["teacher_min"])]
        out["adsorbml"][r["sid"]] = [100.0 * adsorbml_success(r)]
        if "teacher_sp" in r:  # stepped_adsorption.py makes no teacher single points
            out["ml_sp"][r["sid"]] = [100.0 * ml_sp_success(r)]
    return out


def same_systems(ads: dict, other: dict) -> dict:
    """`ads` (a run's adsorption section) cut to the (host, facet, adsorbate) systems `other`
    holds, in whatever cell: the 2x2 figures on the systems an `--size` run keeps."""
    wanted = {triple(r["sid"]) for r in other["per_system"]}
    keep = {r["sid"] for r in ads["per_system"] if triple(r["sid"]) in wanted}
    return ads | {
        "systems": len(keep),
        "per_system": [r for r in ads["per_system"] if r["sid"] in keep],
        "rows": [r for r in ads["rows"] if r["placement"].rsplit(":", 1)[0] in keep],
    }


def signed_lowest(ads: dict) -> tuple[float, int]:
    """Mean of model - teacher at each system's lowest placement, and in how many systems the
    model binds more weakly (positive): a bias, which the MAE does not show."""
    diff = [r["model_min"] - r["teacher_min"] for r in ads["per_system"]]
    return float(np.mean(diff)), sum(d > 0 for d in diff)


def pooled_mean(per_system: dict[str, list[float]]) -> float:
    """The figure itself: the mean over every value of every system."""
    return float(np.mean([v for values in per_system.values() for v in values]))


def report_intervals(ads: dict, base: dict | None = None, base_name: str = "") -> dict:
    """95% intervals of each figure over the held-out systems (a bootstrap of whole systems,
    2000 draws, seed 0), and with `base` (another run's adsorption section, same protocol and
    systems) the paired difference this - base: how much of a gap between two candidates is
    more than the luck of which systems were held out."""
    if base is not None:
        check_comparable(
            base, ads.get("protocol"), placements=[r["placement"] for r in ads["rows"]]
        )
    mine = per_system_values(ads)
    theirs = per_system_values(base) if base is not None else None
    n = len(mine["adsorbml"])
    if not n:
        return {}
    print(f"  95% intervals over the {n} systems (bootstrap of whole systems, 2000 draws, seed 0):")
    out: dict = {}
    for title, key, lower_better, f in METRICS:
        if not mine[key]:
            continue
        samples = [mine[key]] + ([theirs[key]] if theirs is not None else [])
        draws = system_bootstrap(samples)
        point = pooled_mean(mine[key])
        lo, hi = interval(draws[:, 0])
        line = f"    {title:<27}{point:7{f}}  [{lo:{f}}, {hi:{f}}]"
        out[key] = {"value": point, "interval_95": [lo, hi]}
        if theirs is not None:
            diff = draws[:, 0] - draws[:, 1]
            base_point = pooled_mean(theirs[key])
            sign = -1.0 if lower_better else 1.0
            better, worse = float(np.mean(sign * diff > 0)), float(np.mean(sign * diff < 0))
            dlo, dhi = interval(diff)
            line += (
                f"   {base_name} {base_point:{f}}, difference {point - base_point:+{f}} "
                f"[{dlo:+{f}}, {dhi:+{f}}]; better in {100 * better:.0f}%, worse in "
                f"{100 * worse:.0f}% of draws"
            )
            out[key].update(
                base=base_point,
                difference_interval_95=[dlo, dhi],
                better_share=better,
                worse_share=worse,
            )
        print(line)
    bias, weaker = signed_lowest(ads)
    print(
        f"    lowest placement, mean model - teacher {bias:+.3f} eV (model weaker in {weaker} "
        f"of {n} systems)"
    )
    out["lowest_signed"] = {"value": bias, "model_weaker": weaker}
    return out


def check_comparable(
    base: dict,
    protocol: dict | None,
    systems: Sequence[str] = (),
    placements: Sequence[str] = (),
) -> None:
    """Refuse a --compare baseline made under another protocol, on other systems or on other
    placements: a paired difference needs the same relaxations on both sides."""
    if base.get("protocol") != protocol:
        raise SystemExit(f"--compare: protocols differ ({base.get('protocol')} vs {protocol})")
    for name, mine, theirs in (
        ("systems", systems, [r["sid"] for r in base["per_system"]]),
        ("placements", placements, [r["placement"] for r in base["rows"]]),
    ):
        differ = sorted(set(mine) ^ set(theirs)) if mine else []
        if differ:
            raise SystemExit(
                f"--compare: the runs cover different {name} ({len(differ)} differ, "
                f"e.g. {differ[0]})"
            )


def run_protocol(nudge: float, steps: int, size: str | None = None) -> dict:
    """What decides a run's figures besides the model, so that caches and --compare files made
    otherwise are refused: placements, relaxation, the cell (`--size`), and the anomaly rules
    (`catscreen rank`'s, as its stage hash records them), which decide which placements count
    in the minima."""
    protocol = {"nudge": nudge, "fmax": FMAX, "steps": steps, "anomaly_rules": anomaly_rules()}
    if size:
        protocol["size"] = size
    if size == ENUMERATE:  # its defaults decide the cells, sites and nudges
        protocol["enumerate"] = EnumerateSettings(bulks=[], nudge=nudge).model_dump(
            include={"min_slab_size", "vacuum", "min_ab", "placement", "seed", "nudge"}
        )
    return protocol


def read_adsorption(path: Path) -> dict:
    """The adsorption section of an earlier run's --json file, checked enough to compare."""
    try:
        ads = json.loads(path.read_text())["adsorption"]
        per_system_values(ads)
    except FileNotFoundError:
        raise SystemExit(f"no such file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SystemExit(f"cannot read {path}: {exc}") from None
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise SystemExit(
            f"{path} is not an accuracy --json file with adsorption results "
            f"({type(exc).__name__}: {exc})"
        ) from None
    return ads


def write_teacher_cache(path: Path, protocol: dict, teacher: Relaxed) -> None:
    """Rewritten whole after each system (through a temporary file: a kill leaves the last
    complete one), so that a long teacher run resumes where it stopped. The relaxed slabs and
    placements go with it, so that new anomaly rules re-judge them instead of relaxing again."""
    payload = {
        "protocol": protocol,
        "energies": teacher.energies,
        "unconverged": teacher.unconverged,
        "anomalies": teacher.anomalies,
        "structures": {
            k: atoms_to_text(a) for k, a in teacher.structures.items() if not k.startswith("gas:")
        },
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    tmp.replace(path)


def cached_structures(path: Path) -> tuple[dict, dict[str, Atoms]]:
    """A teacher cache as read and its relaxed slabs and placements, for the scripts that
    study them (slab_depth, slab_moves); caches made before structures were kept are refused."""
    data = json.loads(path.read_text())
    if not data.get("structures"):
        raise SystemExit(f"{path} holds no structures: make it with accuracy.py anew")
    return data, {k: atoms_from_text(t) for k, t in data["structures"].items()}


def judge(relaxed: Relaxed, nudge: float) -> list[str]:
    """Each placement's excluding anomalies again, from its stored structures under today's
    rules; the placements whose flags changed."""
    changed = []
    for key, final in relaxed.structures.items():
        if key.startswith(("gas:", "slab:")):
            continue
        sid = key.split(":")[0]
        start = system_starts(sid, parse_sid(sid)["ads"], nudge)[1].get(key)
        if start is None:
            raise SystemExit(
                f"cannot judge {key} again: today's placements of {sid} do not include it "
                "(the cache was made from other starts); make the cache anew"
            )
        now = excluding(start, final, relaxed.structures[f"slab:{sid}"])
        if now != relaxed.anomalies.get(key, []):
            changed.append(key)
        relaxed.anomalies[key] = now
    return changed


def teacher_relaxations(
    systems: list[tuple],
    nudge: float,
    steps: int,
    cache: Path | None,
    protocol: dict,
    load_teacher=lambda: load_model("chgnet-pbe"),  # noqa: ANN001
    log=print,  # noqa: ANN001
) -> tuple[Relaxed, object | None]:
    """The teacher's relaxations of `systems`: the cache's, and the systems it lacks relaxed now
    (the cache rewritten after each); with the teacher, when it was loaded. A system whose clean
    slab is cached is whole, as the cache is written only after a system's last placement."""
    cached = read_teacher_cache(cache, protocol) if cache and cache.exists() else Relaxed()
    missing = [s for s in systems if f"slab:{s[3]}" not in cached.energies]
    if not missing:
        return cached, None
    teacher = load_teacher()
    relax_systems(
        teacher,
        missing,
        nudge,
        steps,
        log=log,
        out=cached,
        saved=(lambda r: write_teacher_cache(cache, protocol, r)) if cache else None,
    )
    return cached, teacher


def read_teacher_cache(path: Path, protocol: dict) -> Relaxed:
    """The cached teacher relaxations, refused when made under another protocol (a flat file
    is the old format: exact placements, 100 steps, no anomalies), unless only the anomaly
    rules differ and the cache holds its structures: then they are judged again."""
    data = json.loads(path.read_text())
    made = data.get("protocol", {"nudge": 0.0, "fmax": FMAX, "steps": 100})

    def relaxing(p: dict) -> dict:
        return {k: v for k, v in p.items() if k not in RULES}

    if made != protocol and (relaxing(made) != relaxing(protocol) or not data.get("structures")):
        raise SystemExit(f"{path} was made with {made}, not {protocol}: give another cache")
    out = Relaxed(
        energies=data.get("energies", data),
        structures={k: atoms_from_text(t) for k, t in data.get("structures", {}).items()},
        unconverged=data.get("unconverged", []),
        anomalies=data.get("anomalies", {}),
        legacy="protocol" not in data,
    )
    if made != protocol:
        changed = judge(out, protocol["nudge"])
        print(f"{path}: made under other anomaly rules, re-judged: {len(changed)} flags changed")
        for key in changed:
            print(f"  {key}: now {','.join(out.anomalies[key]) or 'valid'}")
        write_teacher_cache(path, protocol, out)
    return out


# Every GPAW pair file: output key, file, title, and whether it is held out (named in no
# training config); the Stoner couplings are fitted on the others.
PAIR_FILES = (
    ("spin_pairs", "gpaw_spin_pairs.extxyz.gz", "GPAW spin pairs", False),
    ("spin_test", "gpaw_spin_pairs_test.extxyz.gz", "GPAW held-out test pairs", True),
    ("spin_extra", "gpaw_spin_pairs_extra.extxyz.gz", "GPAW extra pairs (trained kinds)", False),
    ("spin_kinds", "gpaw_spin_pairs_kinds.extxyz.gz", "GPAW pairs of new kinds", False),
    ("spin_kinds2", "gpaw_spin_pairs_kinds2.extxyz.gz", "GPAW pairs of new kinds, round 2", False),
    ("spin_test2", "gpaw_spin_pairs_test2.extxyz.gz", "GPAW held-out test pairs, set 2", True),
    ("spin_kinds3", "gpaw_spin_pairs_kinds3.extxyz.gz", "GPAW pairs of new kinds, round 3", False),
    ("spin_test3", "gpaw_spin_pairs_test3.extxyz.gz", "GPAW held-out test pairs, set 3", True),
    ("spin_screening", "gpaw_spin_pairs_screening.extxyz.gz", "GPAW held-out 2x2 cells", True),
    ("spin_kinds4", "gpaw_spin_pairs_kinds4.extxyz.gz", "GPAW 2x2-cell pairs, round 4", False),
)


@cache
def stoner_couplings() -> dict[str, float]:
    """I per magnetic element of -sum I m^2 / 4, fitted on every training pair's DFT moments."""
    folder = data_dir() / "training"
    names = [name for _, name, _, held_out in PAIR_FILES if not held_out]
    frames = [a for name in names for a in load_frames(folder / name)]
    return fit_moment_couplings(frames, sorted(magnetic_elements()))


def spin_pairs(model, path: Path, couplings: dict[str, float] | None = None) -> dict:  # noqa: ANN001
    """Model vs DFT spin-on minus spin-off energy per GPAW system (both spins present), with
    what a model blind to spin scores (it predicts no difference at all); with `couplings`,
    also what the Stoner-like energy of the DFT moments and of the model's moments score."""
    trained = set(model.metadata["metadata"]["training_data"].get("training_systems", []))
    table = spin_pair_table(model, load_frames(path), couplings=couplings).sort_values("sid")
    table = table.assign(trained_on=table.sid.isin(trained), blind=table.dft.abs())
    unseen = table[~table.trained_on]

    def mae(errors: pd.Series) -> float | None:
        return float(errors.abs().mean()) if len(errors) else None

    keys = ["sid", "trained_on", "dft", "model", "moment_dft", "moment_model"]
    stoner = {}
    if couplings is not None:
        keys += ["stoner_dft", "stoner_model"]
        stoner = {
            "stoner_couplings": couplings,
            "unseen_stoner_dft_mae_eV": mae(unseen.stoner_dft - unseen.dft),
            "unseen_stoner_model_mae_eV": mae(unseen.stoner_model - unseen.dft),
        }
    # Pairs on one slab or bulk (its adsorbates, strains, rattles) share their errors, so the
    # interval resamples host structures (the sid up to the cell: gpaw-Fe100-1x1x3, gpaw-Fe-bulk).
    hosts = unseen.error.abs().groupby(unseen.sid.map(lambda s: "-".join(s.split("-")[:3])))
    spread = {}
    if hosts.ngroups >= 5:  # fewer: a bootstrap only restates the values
        per_host = {host: errors.tolist() for host, errors in hosts}
        spread = {
            "unseen_hosts": hosts.ngroups,
            "unseen_delta_mae_interval_95": list(interval(system_bootstrap([per_host])[:, 0])),
        }
    # the spin part of adsorption energies, where both pairs are unseen
    parts = adsorption_spin_parts(table)
    parts = parts[~parts.sid.isin(trained) & ~parts.clean.isin(trained)]
    ads_parts = {}
    if len(parts):
        ads_parts = {
            "unseen_adsorption_spin_parts": {
                "pairs": len(parts),
                "mae_eV": mae(parts.error),
                "no_spin_mae_eV": mae(parts.dft),
                "rows": parts.to_dict("records"),
            }
        }
    return {
        **stoner,
        **spread,
        **ads_parts,
        "pairs": len(table),
        "delta_mae_eV": mae(table.error),
        "unseen_pairs": len(unseen),
        "unseen_delta_mae_eV": mae(unseen.error),
        "unseen_no_spin_mae_eV": mae(unseen.blind),
        # what a spin energy non-positive by construction (E(on) <= E(off)) would score
        "unseen_capped_mae_eV": mae(unseen.model.clip(upper=0.0) - unseen.dft),
        "unseen_by_kind": [
            {
                "kind": kind,
                "pairs": len(sel),
                "delta_mae_eV": mae(sel.error),
                "no_spin_mae_eV": mae(sel.blind),
            }
            for kind, sel in unseen.groupby(unseen.sid.map(pair_kind))
        ],
        "rows": table[keys].to_dict("records"),
    }


def report_spin_pairs(model, out: dict) -> None:  # noqa: ANN001
    """Print (and add to `out`) the spin-pair sections of every GPAW pair file there is."""
    for key, name, title, held_out in PAIR_FILES:
        gpaw = data_dir() / "training" / name
        if "gpaw-pbe" not in model.info.fidelities or not gpaw.exists():
            continue
        couplings = stoner_couplings() if held_out else None
        out[key] = sp = spin_pairs(model, gpaw, couplings)
        print(f"{title}: {sp['pairs']} systems, MAE of E(on)-E(off) {sp['delta_mae_eV']:.3f} eV")
        if sp["unseen_pairs"]:
            spread = ""
            if "unseen_delta_mae_interval_95" in sp:
                lo, hi = sp["unseen_delta_mae_interval_95"]
                spread = (
                    f"95% interval over {sp['unseen_hosts']} host structures {lo:.3f}-{hi:.3f}; "
                )
            print(
                f"  not trained on: {sp['unseen_pairs']}, MAE {sp['unseen_delta_mae_eV']:.3f} eV "
                f"({spread}a model blind to spin: {sp['unseen_no_spin_mae_eV']:.3f} eV; "
                f"this model's E(on) capped at E(off): {sp['unseen_capped_mae_eV']:.3f} eV)"
            )
        for k in sp["unseen_by_kind"]:
            print(
                f"    {k['kind']:<18} {k['pairs']:>3} pairs, MAE {k['delta_mae_eV']:.3f} eV "
                f"(blind {k['no_spin_mae_eV']:.3f} eV)"
            )
        if "unseen_adsorption_spin_parts" in sp:
            parts = sp["unseen_adsorption_spin_parts"]
            print(
                f"  spin part of adsorption energies, E_spin(adsorbate+slab) - E_spin(clean "
                f"slab), both unseen: {parts['pairs']} adsorbates, MAE {parts['mae_eV']:.3f} eV "
                f"(blind {parts['no_spin_mae_eV']:.3f} eV)"
            )
            for r in parts["rows"]:
                print(f"    {r['sid']:<30} DFT {r['dft']:+.3f}  model {r['model']:+.3f}")
        if couplings is not None and sp["unseen_pairs"]:
            fitted = ", ".join(f"{el} {i:.3f}" for el, i in couplings.items())
            print(
                f"  Stoner-like -sum I m^2/4 (I in eV/muB^2 fitted on the training pairs' DFT "
                f"moments: {fitted}): MAE {sp['unseen_stoner_dft_mae_eV']:.3f} eV with the DFT "
                f"moments, {sp['unseen_stoner_model_mae_eV']:.3f} eV with this model's"
            )
        for r in sp["rows"]:
            seen = "trained" if r["trained_on"] else "unseen"
            stoner = (
                f"  Stoner DFT {r['stoner_dft']:+.3f} model {r['stoner_model']:+.3f}"
                if "stoner_dft" in r
                else ""
            )
            print(
                f"  {r['sid']:<32} DFT {r['dft']:+.3f}  model {r['model']:+.3f}  {seen:<8}"
                f"largest moment DFT {r['moment_dft']:.2f}  model {r['moment_model']:.2f} muB"
                f"{stoner}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bundled")
    parser.add_argument(
        "--systems", type=int, default=0, help="held-out adsorbate systems to relax (0: all)"
    )
    parser.add_argument(
        "--teacher-cache",
        type=Path,
        help="JSON of the teacher's relaxed energies: read if it "
        "exists, written otherwise (the teacher side does not depend on the model)",
    )
    parser.add_argument(
        "--nudge",
        type=float,
        default=NUDGE,
        help="offset (A) of each placement off its site, as enumerate does; 0: exactly on it",
    )
    parser.add_argument(
        "--steps", type=int, default=STEPS, help="BFGS steps per relaxation at most"
    )
    parser.add_argument(
        "--passes",
        default=",".join(PASSES),
        help="teacher passes (folders of data/training) whose held-out systems are measured; "
        "adsorption energies need ASE-builder sids (HOST-FACET-AxBxC-ADS)",
    )
    parser.add_argument(
        "--size",
        help="relax the held-out systems in this cell instead (e.g. 3x3x3: lower coverage; "
        f"{ENUMERATE}: the cells, sites and nudges `catscreen enumerate` makes by default), "
        "less those any teacher pass holds in it; give it its own teacher cache",
    )
    parser.add_argument("--json", type=Path, help="write all numbers here")
    parser.add_argument(
        "--write-held-out",
        type=Path,
        help="write the held-out adsorbate systems as HOST FACET ADSORBATE lines (`catscreen "
        "data generate --avoid`: a new pass stays off them) and stop",
    )
    parser.add_argument(
        "--spin-only", action="store_true", help="only the GPAW spin-pair sections (seconds)"
    )
    parser.add_argument(
        "--compare",
        type=Path,
        help="a --json file of another run (same protocol): paired differences with intervals",
    )
    parser.add_argument(
        "--results",
        type=Path,
        help="a --json file of an earlier run: print its intervals (and --compare) and stop",
    )
    parser.add_argument(
        "--same-systems",
        type=Path,
        help="with --results: only the (host, facet, adsorbate) systems this other --json run "
        "holds, in any cell (e.g. a 2x2 run on the systems a --size enumerate run kept)",
    )
    args = parser.parse_args()
    base = read_adsorption(args.compare) if args.compare else None
    base_name = args.compare.stem if args.compare else ""
    if args.same_systems and not args.results:
        raise SystemExit("--same-systems needs --results")
    if args.results:
        ads = read_adsorption(args.results)
        if args.same_systems:
            kept = read_adsorption(args.same_systems)
            ads = same_systems(ads, kept)
            base = same_systems(base, kept) if base is not None else None
        print(f"{args.results}: {ads['systems']} systems, protocol {ads.get('protocol')}")
        report_intervals(ads, base, base_name)
        return

    model = load_model(args.model)
    passes = teacher_passes([p for p in args.passes.split(",") if p])
    frames = {d.name: [a for sub in sorted(d.iterdir()) for a in load_frames(sub)] for d in passes}
    rule = held_out_rule(model)
    held = {a.info["sid"] for f in frames.values() for a in f if rule(a.info["sid"])}
    out = {"model": f"{model.info.name} {model.info.version}", "held_out_systems": len(held)}
    if args.write_held_out:
        write_held_out(args.write_held_out, held_out_adsorbate_systems(frames, held, args.systems))
        return

    print(
        f"model {out['model']}; {len(held)} held-out teacher systems in "
        f"{', '.join(d.name for d in passes)}"
    )
    out["frames"] = {} if args.spin_only else frame_errors(model, frames, held)
    for name, rows in out["frames"].items():
        print(f"held-out teacher frames, {name} (targets 15 meV/atom, 0.07 eV/A):")
        print(f"  {'group':<14}{'value':<22}{'frames':>7}{'meV/atom':>10}{'eV/A':>8}")
        for r in rows:
            print(
                f"  {r['group']:<14}{r['value']:<22}{r['frames']:>7}"
                f"{r['energy_mae_meV_atom']:>10.1f}{r['force_mae_eV_A']:>8.3f}"
            )

    report_spin_pairs(model, out)
    if args.spin_only:
        if args.json:
            args.json.write_text(json.dumps(out, indent=1, default=str))
        return

    systems = held_out_adsorbate_systems(frames, held, args.systems)
    if args.size:
        moved = at_size(systems, args.size, args.nudge)
        print(
            f"the held-out systems in {args.size} cells: {len(moved)} systems from "
            f"{len(systems)} (enumerate: one per termination; gone: those a teacher pass "
            "holds in that cell, or for enumerate in any other)"
        )
        systems = moved
    if not systems:  # enumerate-built passes: their slabs cannot be rebuilt from the sid
        print("no held-out ASE-builder adsorbate systems in these passes: frame errors only")
        if args.json:
            args.json.write_text(json.dumps(out, indent=1, default=str))
        return
    protocol = run_protocol(args.nudge, args.steps, args.size)
    if base is not None:  # before hours of relaxations, not after
        check_comparable(base, protocol, systems=[s[3] for s in systems])
    cached, teacher = teacher_relaxations(
        systems, args.nudge, args.steps, args.teacher_cache, protocol
    )
    teacher_e = cached.energies
    mine = relax_systems(model, systems, args.nudge, args.steps)
    model_e, model_final = mine.energies, mine.structures
    # ML+SP (AdsorbML): the teacher's single point on the model's lowest structure per system.
    ads_m = adsorption_energies(model_e, systems)
    teacher = teacher or load_model("chgnet-pbe")
    lowest = {lowest_valid(ads_m, mine.anomalies, s[3]) for s in systems}
    teacher_at_lowest = {k: single_point(model_final[k], teacher, TEACHER_FIDELITY) for k in lowest}
    ads = adsorption(
        model_e, teacher_e, systems, teacher_at_lowest, mine.anomalies, cached.anomalies
    )
    out["adsorption"] = ads
    out["adsorption"]["protocol"] = protocol
    wanted = set(model_e)
    out["adsorption"]["unconverged"] = {
        "model": sorted(mine.unconverged),
        "teacher": sorted(k for k in cached.unconverged if k in wanted),
    }
    print(
        f"adsorption energies: {ads['systems']} held-out systems, {ads['placements']} placements "
        f"(every site, nudged {args.nudge} A off it, relaxed with each model, BFGS fmax {FMAX} "
        f"eV/A, at most {args.steps} steps); MAE {ads['ads_energy_mae_eV']:.3f} eV (target 0.10); "
        f"AdsorbML success {100 * ads['adsorbml_success']:.0f}% (target 80%)"
    )
    unconverged = out["adsorption"]["unconverged"]
    print(
        "  lowest placement per system, MAE of its adsorption energy: "
        f"{ads['lowest_placement_mae_eV']:.3f} eV; per placement, both relaxations free of "
        f"anomalies ({ads['placements_valid_both']}): {ads['ads_energy_mae_valid_eV']:.3f} eV"
    )
    print(
        f"  relaxations that hit {args.steps} steps unconverged: model "
        f"{len(unconverged['model'])}, teacher {len(unconverged['teacher'])} (of {len(wanted)})"
        + (
            "; the teacher cache is in the old format: its unconverged count and anomalies are not known"
            if cached.legacy
            else ""
        )
    )
    print(
        "  AdsorbML ML+SP (the teacher's single point on our lowest structure within 0.1 eV of, "
        f"or below, the teacher's lowest): {100 * ads['adsorbml_ml_sp_success']:.0f}%"
    )
    parts = ads["total_energy_mae"]
    print(
        "  relaxed total energies, MAE vs the teacher: gas molecules "
        f"{parts['gas_molecules_eV']:.3f} eV, clean slabs {parts['clean_slabs_eV']:.3f} eV, "
        f"adsorbate+slab {parts['adsorbate_slabs_eV']:.3f} eV"
    )
    ads["intervals"] = report_intervals(ads)
    print("  lowest placement per system (AdsorbML: within 0.1 eV; ML+SP: teacher on ours):")
    for r in ads["per_system"]:
        ok = "ok" if adsorbml_success(r) else "MISS"
        ok_sp = "ok" if ml_sp_success(r) else "MISS"
        print(
            f"  {r['sid']:<28} model {r['model_min']:+.3f}  teacher {r['teacher_min']:+.3f}  "
            f"{ok:<4}  teacher on ours {r['teacher_sp']:+.3f}  {ok_sp}"
        )
    print("  every placement:")
    for r in ads["rows"]:
        flags = ",".join(
            [f"model {a}" for a in r["model_anomalies"]]
            + [f"teacher {a}" for a in r["teacher_anomalies"]]
        )
        print(
            f"  {r['placement']:<36} model {r['model']:+.3f}  teacher {r['teacher']:+.3f}  {flags}"
        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))
    if base is not None:
        print(f"compared with {args.compare} (paired: the same systems in every draw):")
        report_intervals(ads, base, base_name)


if __name__ == "__main__":
    main()
