"""`catscreen validate`: GPAW single points on flagged rows as jobflow jobs, ML vs DFT.

Single points on the ML-relaxed structures (AdsorbML's "ML+SP"): cheap enough for small
cells on one machine; full DFT relaxations are the user's to send to HPC with the written
inputs. DFT E_ads uses the same bookkeeping as the ML one: adslab - clean slab - sum w_m gas_m.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict

import pandas as pd
from jobflow import Flow, JobStore, job
from jobflow.managers.local import run_locally
from maggma.stores import MemoryStore

from catscreen.dft.gpaw import require_gpaw, single_point
from catscreen.dft.settings import DftSettings
from catscreen.dft.tasks import dft_tasks, gas_task_name
from catscreen.errors import described

# AdsorbML counts an ML energy as a success when it is within 0.1 eV of DFT.
SUCCESS_THRESHOLD = 0.1


@job
def gpaw_single_point(structure: str, kind: str, spin: str, settings: dict) -> dict:
    """One GPAW energy; a failure is returned, not raised, so the other rows still finish."""
    try:
        return single_point(structure, kind, spin, DftSettings(**settings))
    except Exception as exc:  # GPAW raises many types (SCF, setups, memory)
        return {
            "energy": math.nan,
            "magmom": math.nan,
            "wall_time": 0.0,
            "error": described(exc),
        }


def run_gpaw(flagged: pd.DataFrame, settings: DftSettings) -> dict[str, dict]:
    """Task name -> GPAW result, run with jobflow.run_locally and an in-memory store."""
    require_gpaw()
    tasks = dft_tasks(flagged)
    jobs = {t.name: gpaw_single_point(t.structure, t.kind, t.spin, asdict(settings)) for t in tasks}
    for name, j in jobs.items():
        j.name = f"gpaw {name}"
    responses = run_locally(
        Flow(list(jobs.values()), name="catscreen validate"),
        store=JobStore(MemoryStore()),
        log=False,
    )
    return {name: responses[j.uuid][1].output for name, j in jobs.items()}


def compare(flagged: pd.DataFrame, dft: dict[str, dict]) -> pd.DataFrame:
    """ML vs DFT adsorption energies per flagged row."""
    rows = []
    for row in flagged.itertuples():
        weights = json.loads(row.reference_weights)
        parts = [dft[row.config_id], dft[row.slab_config_id]]
        gas = {m: dft[gas_task_name(m)] for m in weights}
        errors = [p["error"] for p in [*parts, *gas.values()] if "error" in p]
        e_dft = math.nan
        if weights:  # fixed user potentials have no DFT counterpart
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


def validate(flagged: pd.DataFrame, settings: DftSettings) -> pd.DataFrame:
    return compare(flagged, run_gpaw(flagged, settings))
