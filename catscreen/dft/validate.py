"""`catscreen validate`: GPAW single points on flagged rows as jobflow jobs, ML vs DFT.

Single points on the ML-relaxed structures (AdsorbML's "ML+SP"): cheap enough for small
cells on one machine; full DFT relaxations are the user's to send to HPC with the written
inputs. DFT E_ads uses the same bookkeeping as the ML one: adslab - clean slab - sum w_m gas_m.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, replace
from pathlib import Path

import pandas as pd
from jobflow import Flow, JobStore, job
from jobflow.managers.local import run_locally
from maggma.stores import MemoryStore

from catscreen.dft.gpaw import require_gpaw, single_point
from catscreen.dft.settings import DftSettings
from catscreen.dft.tasks import DftTask, dft_tasks, gas_task_name, slab_task_names
from catscreen.errors import CatscreenError, described
from catscreen.io import atomic_path

# AdsorbML counts an ML energy as a success when it is within 0.1 eV of DFT.
SUCCESS_THRESHOLD = 0.1


@job
def gpaw_single_point(structure: str, kind: str, spin: str, settings: dict, record: str) -> dict:
    """One GPAW energy, kept in `record` as soon as it exists (a killed run keeps it); a
    failure is returned, not raised or kept, so the other rows finish and a rerun retries it."""
    try:
        result = single_point(structure, kind, spin, DftSettings(**settings))
    except Exception as exc:  # GPAW raises many types (SCF, setups, memory)
        return {
            "energy": math.nan,
            "magmom": math.nan,
            "wall_time": 0.0,
            "error": described(exc),
        }
    with atomic_path(record) as tmp:
        tmp.write_text(json.dumps(result))
    return result


def task_record(parts: Path, task: DftTask, settings: DftSettings) -> Path:
    """Where a task's finished energy is kept: named by everything that decides it, so a
    record is only ever reused for the same structure, kind, spin and settings."""
    key = json.dumps([task.kind, task.spin, asdict(settings), task.structure], sort_keys=True)
    return parts / f"{task.name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.json"


def _read_record(record: Path) -> dict | None:
    """A finished GPAW result, or None when there is none or it is damaged (cut off, edited):
    records are written atomically, so a damaged one holds no energy to keep and is computed
    again (it stopped validate with a traceback)."""
    try:
        kept = json.loads(record.read_text())
    except (OSError, ValueError):
        return None
    numbers = ("energy", "magmom", "wall_time")
    if not isinstance(kept, dict) or not all(isinstance(kept.get(k), float | int) for k in numbers):
        return None
    return kept


def run_gpaw(
    tasks: list[DftTask], settings: DftSettings, parts: Path
) -> tuple[dict[str, dict], int]:
    """Task name -> GPAW result, and how many were finished records in `parts` already; the
    rest run with jobflow.run_locally and an in-memory store, each kept as it finishes."""
    require_gpaw()
    settings = replace(settings, encut=settings.cutoff("gpaw"))  # records keyed as run
    results: dict[str, dict] = {}
    jobs = {}
    for t in tasks:
        record = task_record(parts, t, settings)
        if (kept := _read_record(record)) is not None:
            results[t.name] = kept
            continue
        jobs[t.name] = gpaw_single_point(t.structure, t.kind, t.spin, asdict(settings), str(record))
        jobs[t.name].name = f"gpaw {t.name}"
    reused = len(results)
    if jobs:
        try:  # before any GPAW run, whose energy a bad folder would lose
            parts.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CatscreenError(f"cannot keep DFT results in {parts}: {exc.strerror}") from exc
        responses = run_locally(
            Flow(list(jobs.values()), name="catscreen validate"),
            store=JobStore(MemoryStore()),
            log=False,
        )
        results.update({name: responses[j.uuid][1].output for name, j in jobs.items()})
    return results, reused


def compare(flagged: pd.DataFrame, dft: dict[str, dict]) -> pd.DataFrame:
    """ML vs DFT adsorption energies per flagged row."""
    rows = []
    for row, slab in zip(flagged.itertuples(), slab_task_names(flagged), strict=True):
        weights = json.loads(row.reference_weights)
        parts = [dft[row.config_id], dft[slab]]
        gas = {m: dft[gas_task_name(m)] for m in weights}
        errors = [p["error"] for p in [*parts, *gas.values()] if "error" in p]
        e_dft = (
            parts[0]["energy"]
            - parts[1]["energy"]
            - sum(w * gas[m]["energy"] for m, w in weights.items())
        )
        delta = row.e_ads - e_dft
        rows.append(
            {
                "config_id": row.config_id,
                "candidate": getattr(row, "candidate", ""),
                "adsorbate": getattr(row, "adsorbate", ""),
                "site_type": getattr(row, "site_type", ""),
                "spin": row.spin,
                "e_ads_ml": row.e_ads,
                "e_ads_ml_std": getattr(row, "e_ads_std", math.nan),
                "e_ads_dft": e_dft,
                "error": delta,
                "within_threshold": bool(abs(delta) <= SUCCESS_THRESHOLD),
                "energy_dft": parts[0]["energy"],
                "magmom_dft": parts[0]["magmom"],
                "dft_wall_time": sum(p["wall_time"] for p in [*parts, *gas.values()]),
                "dft_error": "; ".join(errors),
                "flag_reasons": getattr(row, "flag_reasons", ""),
            }
        )
    return pd.DataFrame.from_records(rows)


def validate(flagged: pd.DataFrame, settings: DftSettings, parts: Path) -> tuple[pd.DataFrame, int]:
    """The comparison, and how many GPAW energies came from finished records in `parts`."""
    tasks = dft_tasks(flagged)  # every row's cells checked (one line each) before they are read
    fixed = [r.config_id for r in flagged.itertuples() if not json.loads(r.reference_weights)]
    if fixed:  # checked before GPAW runs: their DFT energies could not be compared
        raise CatscreenError(
            f"{len(fixed)} flagged row(s) ({fixed[0]}, ...) were ranked with fixed reference "
            "potentials, which have no DFT counterpart; rank again with a gas-molecule scheme "
            "(the default, or an 'elements:' references file) to validate"
        )
    results, reused = run_gpaw(tasks, settings, parts)
    return compare(flagged, results), reused
