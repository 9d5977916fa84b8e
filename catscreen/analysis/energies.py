"""Adsorption energies with propagated uncertainty, and the anomaly flags of each placement.

E_ads = E(adslab) - E(clean slab, same slab_id) - sum_m w_m E(gas molecule m), where the
weights w_m come from the adsorbate's composition (its tag-2 atoms) and the reference scheme.
All three must come from one context (model, model_version, spin, fidelity): anything else
would subtract energies of different physics, so it is an error.

Uncertainty: the heads of the model's ensemble err together on a slab with and without an
adsorbate (in enumerate's default cells each total energy spreads by ~0.3 eV over the heads,
their adsorption energies by 0.02-0.15 eV), so the spread of E_ads is taken over heads: E_ads
per head from each head's energies (`energy_heads`), then their standard deviation. Rows
without head energies (CHGNet, EMT, results of older catscreen versions) fall back to treating
each `energy_std` as an independent error, var(E_ads) = std_adslab^2 + std_slab^2 +
sum_m w_m^2 std_m^2, which overestimates the spread of a difference. Fixed reference
potentials' stds are independent of the model and add in quadrature either way.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
from ase import Atoms
from ase.formula import Formula

from catscreen.analysis.anomalies import (
    IMPLAUSIBLE_E_ADS,
    IMPLAUSIBLE_E_ADS_FIXED,
    SlabReference,
    detect_anomalies,
    overlapping,
)
from catscreen.analysis.candidates import candidate_of
from catscreen.analysis.references import References
from catscreen.build.gas import scheme_molecules
from catscreen.errors import CatscreenError, first_line
from catscreen.io import atoms_from_text

CONTEXT = ("model", "model_version", "spin", "fidelity")
REQUIRED = (
    "config_id",
    "system_id",
    "slab_id",
    "kind",
    "bulk",
    "miller",
    "termination",
    "site_type",
    "site_atoms",
    "adsorbate",
    "status",
    "energy",
    "energy_std",
    *CONTEXT,
    "initial_structure",
    "final_structure",
)


def context_label(ctx: tuple[str, ...]) -> str:
    model, version, spin, fidelity = ctx
    return f"model {model} ({version}), spin {spin}, fidelity {fidelity}"


@dataclass
class _Row:
    config_id: str
    energy: float
    std: float
    structure: str
    converged: bool
    heads: np.ndarray | None = None


def _ctx(row: pd.Series) -> tuple[str, ...]:
    return tuple(str(row[c]) for c in CONTEXT)


def _std(value: object) -> float:
    """A row's energy std; NaN when the results give none (counted, then taken as 0)."""
    return float(value) if value is not None else math.nan  # type: ignore[arg-type]


def _known(std: float) -> float:
    return 0.0 if math.isnan(std) else std


def head_values(value: object, n: int | None = None) -> np.ndarray | None:
    """A table cell of per-head values as an array; None for a cell without heads (None, NaN,
    fewer than two, a non-finite one) or, given `n`, with another number of them."""
    if value is None or isinstance(value, float) or len(value) < 2:  # type: ignore[arg-type]
        return None
    heads = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(heads)) or (n is not None and len(heads) != n):
        return None
    return heads


def _per_head(parts: list[tuple[float, np.ndarray | None]]) -> np.ndarray | None:
    """sum_i c_i E_i head by head (the same head of every structure), or None when a
    structure lacks head energies or the head counts differ."""
    if any(h is None for _, h in parts) or len({len(h) for _, h in parts}) != 1:  # type: ignore[arg-type]
        return None
    return sum(c * h for c, h in parts)  # type: ignore[return-value]


def head_std(values: np.ndarray) -> float:
    """Spread over heads as the model's energy_std reports it (torch's unbiased std)."""
    return float(np.std(values, ddof=1))


def _index(rows: pd.DataFrame, key: str, what: str) -> dict[tuple[str, tuple[str, ...]], _Row]:
    out: dict[tuple[str, tuple[str, ...]], _Row] = {}
    for _, row in rows.iterrows():
        k = (str(row[key]), _ctx(row))
        if k in out:
            raise CatscreenError(f"duplicate {what} rows for {k[0]} in {context_label(k[1])}")
        out[k] = _Row(
            str(row.config_id),
            float(row.energy),
            _std(row.energy_std),
            row.final_structure,
            str(row.status) == "converged",
            head_values(row.get("energy_heads")),
        )
    return out


def structure_cell(text: object, column: str, config_id: object) -> Atoms:
    """A structure cell of the results, or one clear line naming the row that holds junk."""
    if not isinstance(text, str) or not text.strip():
        raise CatscreenError(f"{column} of {config_id} is missing")
    try:
        atoms = atoms_from_text(text)
    except Exception as exc:  # ASE and io raise many types for text that is not extxyz
        raise CatscreenError(
            f"cannot read {column} of {config_id} as extxyz: {first_line(exc)}"
        ) from exc
    if not np.isfinite(atoms.positions).all():  # else a traceback from the bond search
        raise CatscreenError(f"{column} of {config_id} has non-finite positions")
    return atoms


def _formula(symbols: list[str]) -> str:
    return Formula.from_list(symbols).format("hill")


def _check_gases(gases: dict[tuple[str, tuple[str, ...]], _Row]) -> None:
    """A gas row holds the molecule it is named for (a reference subtracts its energy) and a
    readable structure (DFT inputs are written from it, after the rank tables)."""
    for (molecule, _), gas in gases.items():
        atoms = structure_cell(gas.structure, "final_structure", gas.config_id)
        try:
            expected = Formula(molecule).count()
        except ValueError:  # a name no scheme can use (schemes name formulas)
            continue
        if Formula(atoms.get_chemical_formula()).count() != expected:
            raise CatscreenError(
                f"gas row {gas.config_id} is named {molecule} but holds "
                f"{atoms.get_chemical_formula()}"
            )


def _check_same_slab(initial: Atoms, clean: Atoms, config_id: object, slab: _Row) -> None:
    """The adslab's slab atoms and cell are those of the clean slab it is subtracted from:
    another slab under the same slab_id (another cell, another tool's ids) shifts E_ads by
    whole atoms' energies without any anomaly to show for it."""
    mine = _formula([s for s, t in zip(initial.symbols, initial.get_tags(), strict=True) if t != 2])
    theirs = _formula(list(clean.symbols))
    if mine != theirs:
        raise CatscreenError(
            f"adslab {config_id}: its slab is {mine} but clean slab {slab.config_id} of the "
            f"same slab_id is {theirs}; their energies do not cancel"
        )
    if not np.allclose(initial.cell.array, clean.cell.array, atol=0.05):
        raise CatscreenError(
            f"adslab {config_id}: its cell differs from clean slab {slab.config_id}'s of the "
            "same slab_id; their energies do not cancel"
        )


def _parse_site(value: object, config_id: object) -> list[int] | None:
    text = str(value or "").strip()
    if not text or text == "nan":
        return None
    try:
        return sorted(int(v) for v in text.split(","))
    except ValueError:
        raise CatscreenError(
            f"site_atoms of {config_id} is {text!r}, not comma-separated atom indices"
        ) from None


def site_elements(atoms: Atoms, indices: list[int] | None) -> str:
    """The elements under an adsorbate, most first ('Pt2Ni', 'Ce2O'): on an alloy or an oxide,
    which atoms it binds to tells more than the site's shape."""
    symbols = atoms.get_chemical_symbols()
    counts = Counter(symbols[i] for i in indices or [] if 0 <= i < len(symbols))
    return "".join(
        f"{el}{n if n > 1 else ''}" for el, n in sorted(counts.items(), key=lambda x: (-x[1], x[0]))
    )


def check_cells(results: pd.DataFrame) -> None:
    """The cells a ranking reads, as `relax` writes them: another tool's table that leaves one
    empty or fills it with text gets one line naming the row, not a traceback mid-ranking.
    Gas rows have no slab, so no system, slab, bulk or facet."""
    ids = results.config_id.astype(str).where(
        results.config_id.notna(), "row " + results.index.astype(str)
    )
    surface = results.kind != "gas"
    needed = {c: results[c].notna() for c in ("config_id", "kind", "adsorbate", "status", *CONTEXT)}
    for col in ("system_id", "slab_id", "bulk", "miller"):  # termination: candidate_of
        needed[col] = results[col].notna() | ~surface
    given = results.energy_std.notna()
    needed["energy_std"] = ~given | pd.to_numeric(results.energy_std, errors="coerce").notna()
    if "energy_heads" in results:
        needed["energy_heads"] = ~results.energy_heads.map(lambda v: isinstance(v, (str, bytes)))
    for col, ok in needed.items():
        if not ok.all():
            first = (~ok).to_numpy().nonzero()[0][0]
            value = results[col].iloc[first]
            if pd.isna(value):  # the failing cells are empty or text, never arrays
                what = "empty"
            else:
                kind = "a list of energies" if col == "energy_heads" else "a number"
                what = f"{value!r}, not {kind}"
            hint = (
                " (enumerate writes it; for your own extxyz set kind, system_id, slab_id, bulk, "
                "miller and adsorbate in each frame's info before relax)"
                if col in ("kind", "adsorbate", "system_id", "slab_id", "bulk", "miller")
                and what == "empty"
                else ""
            )
            raise CatscreenError(f"results: {col} of {ids.iloc[first]} is {what}{hint}")


def adsorbate_composition(atoms: Atoms) -> dict[str, int]:
    symbols = [
        s for s, t in zip(atoms.get_chemical_symbols(), atoms.get_tags(), strict=True) if t == 2
    ]
    return dict(Counter(symbols))


def check_single_model(results: pd.DataFrame) -> None:
    """One ranking compares one model at one fidelity (spin may differ: `--spin auto`)."""
    for col in ("model", "model_version", "fidelity"):
        values = sorted(results.loc[results.kind == "adslab", col].astype(str).unique())
        if len(values) > 1:
            raise CatscreenError(
                f"results mix several {col} values ({', '.join(values)}); rank each separately"
            )


def adsorption_table(
    results: pd.DataFrame, refs: References, bond_tolerance: float
) -> tuple[pd.DataFrame, dict[str, int]]:
    """One row per non-failed adslab: E_ads, its std, anomaly flags; plus counts of exclusions.

    A row without a finite energy counts as failed whatever its status says (results may come
    from another tool). An adslab whose clean slab or gas reference did not converge is
    anomalous (`slab_not_converged`, `gas_not_converged`): its E_ads carries that error; so is one
    whose relaxed clean slab has overlapping atoms (`slab_overlapping`, a hole in the potential).
    """
    missing = [c for c in REQUIRED if c not in results.columns]
    if missing:
        raise CatscreenError(f"results lack required column(s): {', '.join(missing)}")
    check_cells(results)
    unknown = sorted(set(results.kind.astype(str)) - {"slab", "adslab", "gas"})
    if unknown:
        raise CatscreenError(f"results have unknown kind(s): {', '.join(unknown)}")
    check_single_model(results)
    energy = pd.to_numeric(results.energy, errors="coerce")
    failed = (results.status.astype(str) == "failed") | ~np.isfinite(energy.to_numpy(float))
    counts = {
        "rows": len(results),
        "failed": int(failed.sum()),
        "failed_adslab": int((failed & (results.kind == "adslab")).sum()),
    }
    ok = results[~failed]
    slabs = _index(ok[ok.kind == "slab"], "slab_id", "clean slab")
    gases = _index(ok[ok.kind == "gas"], "adsorbate", "gas reference")
    _check_gases(gases)
    copies = ok[(ok.kind == "adslab") & ok.duplicated(["config_id", *CONTEXT])]
    if len(copies):  # a copy would take two top-k places
        first = copies.iloc[0]
        raise CatscreenError(
            f"duplicate adslab rows for {first.config_id} in {context_label(_ctx(first))}"
        )
    # by context: a reference's copy slab (`relax --reference`) can fail while its own stands
    failed_slabs = {
        (str(r.slab_id), _ctx(r)) for _, r in results[failed & (results.kind == "slab")].iterrows()
    }
    failed_gases = {
        (str(r.adsorbate), _ctx(r)) for _, r in results[failed & (results.kind == "gas")].iterrows()
    }
    slab_contexts: dict[str, list[tuple[str, ...]]] = {}
    for sid, ctx in slabs:
        slab_contexts.setdefault(sid, []).append(ctx)

    records = []
    slab_overlaps: dict[str, bool] = {}  # clean slab config_id -> its relaxed atoms overlap
    references: dict[str, SlabReference] = {}  # clean slab config_id -> its bond matrices
    skipped_slab = skipped_gas = unknown_std = 0
    for _, row in ok[ok.kind == "adslab"].iterrows():
        ctx = _ctx(row)
        sid = str(row.slab_id)
        slab = slabs.get((sid, ctx))
        if slab is None:
            if (sid, ctx) in failed_slabs:
                skipped_slab += 1
                continue
            if sid in slab_contexts:
                raise CatscreenError(
                    f"context mismatch: adslab {row.config_id} ({context_label(ctx)}) but clean slab "
                    f"{sid} only in {'; '.join(context_label(c) for c in slab_contexts[sid])}"
                )
            raise CatscreenError(
                f"no clean slab row for slab_id {sid} ({row.bulk} {row.miller} t{row.termination}), "
                f"needed by adslab {row.config_id}"
            )
        initial = structure_cell(row.initial_structure, "initial_structure", row.config_id)
        final = structure_cell(row.final_structure, "final_structure", row.config_id)
        comp = adsorbate_composition(initial)
        what = f"adsorbate {row.adsorbate} ({row.config_id})"
        if not comp:  # E_ads would be E(adslab) - E(slab) with no reference subtracted
            raise CatscreenError(
                f"adslab {row.config_id} has no adsorbate atoms (tag 2) in its initial_structure; "
                "tag them 2, the slab 0 (subsurface) and 1 (surface)"
            )
        weights: dict[str, float] = {}
        gas_structures: dict[str, str] = {}
        std_unknown = False
        gas_converged = True
        parts = [
            (1.0, head_values(row.get("energy_heads"))),
            (-1.0, slab.heads),
        ]  # E_ads = sum c_i E_i, head by head
        if refs.fixed:
            ref_e, ref_std = refs.fixed_energy(comp, what)
        else:
            weights = refs.weights(comp, what)
            if any((m, ctx) in failed_gases and (m, ctx) not in gases for m in weights):
                skipped_gas += 1
                continue
            ref_e, ref_var = 0.0, 0.0
            for molecule, w in weights.items():
                gas = gases.get((molecule, ctx))
                if gas is None:
                    raise CatscreenError(
                        f"no gas reference row for {molecule} in {context_label(ctx)} "
                        f"(needed by {what}); `catscreen relax` computes the default scheme's "
                        f"molecules ({', '.join(scheme_molecules())}) and, given "
                        "`--references FILE`, that scheme's: rerun relax into the same results "
                        "with the references file rank uses"
                    )
                ref_e += w * gas.energy
                ref_var += (w * _known(gas.std)) ** 2
                std_unknown |= math.isnan(gas.std)
                parts.append((-w, gas.heads))
                gas_structures[molecule] = gas.structure
                gas_converged &= gas.converged
            ref_std = math.sqrt(ref_var)
        if slab.config_id not in references:  # parsed and bonded once per slab
            clean = structure_cell(slab.structure, "final_structure", slab.config_id)
            references[slab.config_id] = SlabReference(clean, bond_tolerance)
            reference = references[slab.config_id]
            slab_overlaps[slab.config_id] = overlapping(
                clean, bonds=reference.bonds, tolerance=reference.tolerance
            )
        _check_same_slab(initial, references[slab.config_id].atoms, row.config_id, slab)
        site = _parse_site(row.site_atoms, row.config_id)
        try:
            report = detect_anomalies(
                initial, final, references[slab.config_id], site, bond_tolerance
            )
        except CatscreenError as exc:
            raise CatscreenError(f"adslab {row.config_id}: {exc}") from exc
        names = report.names + ([] if row.status == "converged" else ["not_converged"])
        names += [] if slab.converged else ["slab_not_converged"]
        names += ["slab_overlapping"] if slab_overlaps[slab.config_id] else []
        names += [] if gas_converged else ["gas_not_converged"]
        std = _std(row.energy_std)
        e_ads = float(row.energy) - slab.energy - ref_e
        bound = IMPLAUSIBLE_E_ADS_FIXED if refs.fixed else IMPLAUSIBLE_E_ADS
        if abs(e_ads) > bound * sum(comp.values()):
            names.append("implausible_energy")
        heads = _per_head(parts)
        if heads is None:  # no head energies: independent errors, an overestimate
            e_ads_std = math.sqrt(_known(std) ** 2 + _known(slab.std) ** 2 + ref_std**2)
            unknown_std += std_unknown or math.isnan(std) or math.isnan(slab.std)
        else:  # fixed potentials' own std is independent of the model
            heads = heads - (ref_e if refs.fixed else 0.0)
            e_ads_std = math.sqrt(head_std(heads) ** 2 + (ref_std**2 if refs.fixed else 0.0))
        cand = candidate_of(row.bulk, row.miller, row.termination)
        records.append(
            {
                "config_id": str(row.config_id),
                "system_id": str(row.system_id),
                "slab_id": sid,
                "candidate": cand.name,
                "bulk": str(row.bulk),
                "miller": str(row.miller),
                "termination": int(row.termination),
                "adsorbate": str(row.adsorbate),
                "site_type": str(row.site_type),
                "site_atoms": str(row.site_atoms),
                "site_elements": site_elements(initial, site),
                "final_site_type": report.final_site_type,
                "final_site_atoms": ",".join(str(i) for i in report.final_site_atoms),
                "final_site_elements": site_elements(final, report.final_site_atoms),
                "status": str(row.status),
                "model": ctx[0],
                "model_version": ctx[1],
                "spin": ctx[2],
                "fidelity": ctx[3],
                "energy": float(row.energy),
                "energy_std": std,
                "slab_config_id": slab.config_id,
                "slab_energy": slab.energy,
                "slab_energy_std": slab.std,
                "reference_energy": ref_e,
                "reference_std": ref_std,
                "e_ads": e_ads,
                "e_ads_std": e_ads_std,
                "e_ads_heads": None if heads is None else [float(v) for v in heads],
                "desorbed": report.desorbed,
                "dissociated": report.dissociated,
                "reconstructed": report.reconstructed,
                "intercalated": report.intercalated,
                "overlapping": report.overlapping,
                "compressed": report.compressed,
                "migrated": report.migrated,
                "anomalous": report.excluding or len(names) > len(report.names),
                "anomalies": ",".join(names),
                "final_structure": row.final_structure,
                "slab_structure": slab.structure,
                "reference_weights": json.dumps(weights, sort_keys=True),
                "reference_structures": json.dumps(gas_structures, sort_keys=True),
            }
        )
    if not records:
        raise CatscreenError("no adsorbate configurations left to rank (all failed or absent)")
    counts["skipped_failed_slab"] = skipped_slab
    counts["skipped_failed_gas"] = skipped_gas
    counts["adslabs"] = len(records)
    counts["std_unknown"] = unknown_std
    return pd.DataFrame.from_records(records), counts
