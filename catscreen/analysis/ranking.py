"""Minima per system, the candidate descriptor table, and the distance to target descriptors.

Distance: d = sqrt(sum_a ((E_a - v_a) / tol_a)^2) over the target adsorbates a, so d < 1 means
"inside the tolerance box" for one target. Its uncertainty is the linearised propagation of
the descriptors' errors: per ensemble head, d_h = d + sum_a z_a (E_a,h - E_a) / (tol_a d) with
z_a the scaled deviation, and sigma_d the spread of d_h over heads, so that descriptors sharing a
slab or gas references err together as the heads do. What the heads do not carry (fixed
potentials' stds) and rows without heads add independently: sigma_a^2 z_a^2 / (tol_a d)^2 (at
d = 0: sqrt(sum_a (sigma_a / tol_a)^2)).

With a reference candidate, descriptors become E_a - E_a(reference): constant offsets of the
gas reference scheme cancel, and targets are read as relative values (default 0: "like the
reference"). Their stds are spreads over heads of the per-head differences (the gas
references' and fixed potentials' errors cancel); without heads, independent errors.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from catscreen.analysis.energies import head_std, head_values
from catscreen.errors import CatscreenError

_TARGET = re.compile(
    r"^\s*([A-Za-z][A-Za-z0-9_*+-]*)\s*=\s*([-+0-9.eE]+)\s*(?::\s*([-+0-9.eE]+))?\s*$"
)


@dataclass(frozen=True)
class Target:
    value: float
    tolerance: float

    def __post_init__(self) -> None:
        """Made in Python, not parsed: Target(-1, 0) put every candidate at distance inf, a NaN
        value at NaN."""
        if not (math.isfinite(self.value) and 0 < self.tolerance < math.inf):
            raise CatscreenError(
                f"target {self.value}:{self.tolerance}: the value must be finite, the tolerance "
                "positive and finite (eV)"
            )


def parse_target(text: str, default_tolerance: float) -> tuple[str, Target]:
    """`"N=-0.5:0.2"` -> ("N", Target(-0.5, 0.2)); the tolerance may be left out."""
    match = _TARGET.match(text)
    try:
        if not match:
            raise ValueError
        value = float(match.group(2))
        tol = float(match.group(3)) if match.group(3) else default_tolerance
    except ValueError:
        raise CatscreenError(
            f"cannot read target {text!r}; expected ADSORBATE=VALUE[:TOLERANCE], e.g. N=-0.5:0.2"
        ) from None
    if not (math.isfinite(value) and 0 < tol < math.inf):  # 1e999 reads as inf
        raise CatscreenError(
            f"target {text!r}: the value must be finite, the tolerance positive and finite"
        )
    return match.group(1), Target(value, tol)  # type: ignore[union-attr]


def parse_targets(texts: list[str], default_tolerance: float) -> dict[str, Target]:
    """Every `--target`; one adsorbate given twice is refused (the last would win silently)."""
    targets: dict[str, Target] = {}
    for text in texts:
        name, target = parse_target(text, default_tolerance)
        if name in targets:
            raise CatscreenError(f"--target {name} is given twice")
        targets[name] = target
    return targets


def system_table(configs: pd.DataFrame) -> pd.DataFrame:
    """Per system: lowest valid placement, its site, the spread across valid placements."""
    # a system is one adsorbate on one slab: results whose ids say otherwise (another tool's)
    # would merge placements of several surfaces into one minimum
    mixed = configs.groupby("system_id")[["slab_id", "adsorbate"]].nunique().max(axis=1) > 1
    if mixed.any():
        sid = mixed.index[mixed][0]
        group = configs[configs.system_id == sid]
        surfaces = sorted(set(group.candidate + " + " + group.adsorbate))
        raise CatscreenError(
            f"system_id {sid} holds placements of {group.slab_id.nunique()} slab(s) "
            f"({'; '.join(surfaces)}): one system is one adsorbate on one slab"
        )
    rows = []
    # one row per spin context: --spin auto gives each system one, and a table holding two
    # (spin on and off runs of the same configurations) must not mix them in one minimum
    for (sid, _), group in configs.groupby(["system_id", "spin"], sort=True):
        valid = group[group.valid].sort_values(["e_ads", "config_id"], kind="mergesort")
        first = group.iloc[0]
        best = valid.iloc[0] if len(valid) else None
        rows.append(
            {
                "system_id": sid,
                "candidate": first.candidate,
                "slab_id": first.slab_id,
                "bulk": first.bulk,
                "miller": first.miller,
                "termination": first.termination,
                "adsorbate": first.adsorbate,
                "spin": first.spin,
                "n_placements": len(group),
                "n_valid": len(valid),
                "n_anomalous": int(group.anomalous.sum()),
                "e_ads_min": best.e_ads if best is not None else math.nan,
                "e_ads_min_std": best.e_ads_std if best is not None else math.nan,
                "e_ads_min_heads": best.e_ads_heads if best is not None else None,
                "e_ads_spread": float(valid.e_ads.max() - valid.e_ads.min())
                if len(valid)
                else math.nan,
                "best_config_id": best.config_id if best is not None else "",
                "best_site_type": best.site_type if best is not None else "",
                "best_final_site_type": best.final_site_type if best is not None else "",
                "best_site_elements": best.site_elements if best is not None else "",
                "best_final_site_elements": best.final_site_elements if best is not None else "",
            }
        )
    return pd.DataFrame.from_records(rows)


def descriptor_table(systems: pd.DataFrame) -> pd.DataFrame:
    """One row per candidate; `E_<ads>`, `std_<ads>` and `heads_<ads>` (per ensemble head, or
    None) columns from the system minima."""
    dup = systems[systems.duplicated(["candidate", "adsorbate"], keep=False)]
    if len(dup):
        first = dup.iloc[0]
        same = dup[(dup.candidate == first.candidate) & (dup.adsorbate == first.adsorbate)]
        if same.slab_id.nunique() > 1:  # e.g. 2x2 and 3x3 cells of one facet
            raise CatscreenError(
                f"{first.candidate} + {first.adsorbate} appears on {same.slab_id.nunique()} "
                f"slabs ({', '.join(sorted(same.slab_id))}); rank each slab's results separately"
            )
        if same.spin.nunique() == 1:
            raise CatscreenError(
                f"{first.candidate} + {first.adsorbate} appears under several system ids "
                f"({', '.join(sorted(same.system_id))}): one adsorbate on one slab is one system"
            )
        raise CatscreenError(
            f"{first.candidate} + {first.adsorbate} appears in several spin contexts "
            f"({', '.join(sorted(same.spin.unique()))}); rank each context separately "
            "(`catscreen rank --spin on`, `--spin off`)"
        )
    adsorbates = sorted(systems.adsorbate.unique())
    base = systems.drop_duplicates("candidate")[
        ["candidate", "slab_id", "bulk", "miller", "termination"]
    ]
    table = base.set_index("candidate")
    table["spin"] = systems.groupby("candidate")["spin"].agg(
        lambda s: "/".join(sorted(set(map(str, s))))
    )
    for ads in adsorbates:
        sub = systems[systems.adsorbate == ads].set_index("candidate")
        table[f"E_{ads}"] = sub.e_ads_min
        table[f"std_{ads}"] = sub.e_ads_min_std
        table[f"heads_{ads}"] = sub.e_ads_min_heads.reindex(table.index)
    return table.reset_index().sort_values("candidate", ignore_index=True)


def _independent_var(std: float, heads: np.ndarray) -> float:
    """The part of a std^2 the heads do not carry (fixed potentials' stds)."""
    return max(std**2 - head_std(heads) ** 2, 0.0)


def _distance_spread(
    z: np.ndarray, d: float, stds: np.ndarray, heads: list[np.ndarray | None], tol: np.ndarray
) -> tuple[float, list[float] | None]:
    """sigma_d of one candidate and its linearised distance per head (module docstring)."""
    if not d > 0:
        return float(np.sqrt(((stds / tol) ** 2).sum())), None
    if any(h is None for h in heads) or len({len(h) for h in heads}) != 1:  # type: ignore[arg-type]
        return float(np.sqrt((((z * stds) / (tol * d)) ** 2).sum())), None  # all independent
    indep = sum(
        (zk / (tk * d)) ** 2 * _independent_var(sk, hk)
        for zk, sk, hk, tk in zip(z, stds, heads, tol, strict=True)
    )
    per_head = d + sum(
        zk * (hk - hk.mean()) / (tk * d)
        for zk, hk, tk in zip(z, heads, tol, strict=True)  # type: ignore[operator]
    )
    return float(np.sqrt(head_std(per_head) ** 2 + indep)), [float(v) for v in per_head]


def _references_by_row(
    table: pd.DataFrame, own: pd.Series, contexts: pd.DataFrame | None, needed: list[str]
) -> list[pd.Series]:
    """The reference's descriptor row each candidate is compared with: the one in the
    candidate's spin context (`contexts`: the reference relaxed again in another context,
    `relax --reference`) when it has every needed descriptor, else the reference's own."""
    by_spin = {str(own["spin"]): own}
    others = table.iloc[:0] if contexts is None else contexts.reindex(columns=table.columns)
    for _, row in others.iterrows():  # an adsorbate they lack reads NaN
        if all(np.isfinite(float(row[f"E_{a}"])) for a in needed):
            by_spin.setdefault(str(row["spin"]), row)
    return [by_spin.get(str(spin), own) for spin in table["spin"]]


def on_chgnet_scale(model: str) -> bool:
    """Whether a model's gas-phase energies are CHGNet's: CHGNet itself and the bundled weights
    (which learned its labels), by a recipe's name or the name results record."""
    return model.lower() in {
        "bundled",
        "catscreen-bundled",
        "chgnet",
        "chgnet-pbe",
        "chgnet-r2scan",
    }


def absolute_offset_note(model: str) -> str | None:
    """Absolute descriptors (no reference surface) against a model whose gas references are
    a CHGNet teacher's: a recipe user set dE_O's target from PBE papers (Pt(111) + 0.2 eV) and
    every candidate came out off target by the teacher's O offset. EMT's values mean nothing
    absolute anyway (its own reference is its scale); a user's checkpoint learned whatever
    its data held."""
    if model.lower() == "emt":
        return None
    scale = (
        f"model {model} has CHGNet's gas references"
        if on_chgnet_scale(model)
        else f"model {model}, if it learned CHGNet labels as the bundled weights did, has "
        "CHGNet's gas references"
    )
    return (
        f"descriptors are absolute (no reference surface): {scale}, not PBE's (O on Pt(111): "
        "2.52 eV against GPAW PBE's 1.37 eV; MODEL_CARD, Gas-phase reference molecules), so a "
        "target taken from PBE studies may sit off this scale; a reference surface cancels it"
    )


def context_offset_note(ranked: pd.DataFrame, reference: str | None) -> str | None:
    """Descriptors compared across the bundled model's two spin contexts, which are not one
    energy scale (O on Ru(0001), not magnetic: 1.12 eV spin-off, 1.62 eV spin-on): with a
    `reference`, the candidates compared with it in another context than their own (no valid
    minimum of it in theirs); without, the candidates of both contexts, since absolute
    descriptors compare each across the offset. `ranked` has candidate, spin
    and reference_spin (absent, as in tables from before it: the reference's own spin)."""
    if "spin" not in ranked or ranked.empty:
        return None
    effect = (
        "a model's two contexts are not one energy scale (the bundled weights': up to 0.5 eV "
        "apart for one adsorbate on one structure; README, Conventions), so {} carry that "
        "offset as well as the spin effect"
    )
    if reference is None:
        on = ranked.loc[ranked["spin"] == "on", "candidate"].astype(str).tolist()
        off = ranked.loc[ranked["spin"] == "off", "candidate"].astype(str).tolist()
        if not on or not off:
            return None
        return (
            f"{', '.join(on)} ran spin-on and {', '.join(off)} spin-off: "
            + effect.format("descriptors across the two")
            + "; compare within one context, or check them with DFT"
        )
    mine = ranked.loc[ranked["candidate"] == reference, "spin"]
    if mine.empty:
        return None
    spin = mine.iloc[0]
    other = ranked.loc[ranked["spin"] != ranked.get("reference_spin", spin), "candidate"]
    if other.empty:
        return None
    return (
        f"{', '.join(other.astype(str))} ran in the other spin context than the reference "
        f"{reference} (spin {spin}) and were compared with it in its context, the results "
        f"holding no valid minimum of it in theirs (`relax --reference '{reference}'` adds one; "
        "with --retry-failed it reruns failed ones): "
        + effect.format("their descriptors")
        + "; check them with DFT"
    )


def apply_targets(
    table: pd.DataFrame,
    targets: dict[str, Target],
    reference: str | None,
    default_tolerance: float,
    reference_contexts: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, dict[str, Target]]:
    """Add (relative) descriptors, distance and its sigma; sort by distance (missing last).

    `distance_heads` keeps each candidate's linearised distance per ensemble head, so that the
    flip check can take the spread of a gap between two candidates head by head.
    `reference_contexts` holds the reference's descriptors in other spin contexts
    (`_references_by_row`); `reference_spin` says which one each candidate was compared with.
    """
    table = table.copy()
    adsorbates = [c[2:] for c in table.columns if c.startswith("E_")]
    prefix, std_prefix, heads_prefix = "E_", "std_", "heads_"
    if reference is not None:
        ref = table[table.candidate == reference].iloc[0]
        needed = [a for a in targets if a in adsorbates] or adsorbates  # unknown: said below
        refs = _references_by_row(table, ref, reference_contexts, needed)
        table["reference_spin"] = [str(r["spin"]) for r in refs]
        for ads in adsorbates:
            table[f"rel_{ads}"] = table[f"E_{ads}"] - [r[f"E_{ads}"] for r in refs]
            rel_heads, rel_std = [], []
            for std, value, own in zip(
                table[f"std_{ads}"], table[f"heads_{ads}"], refs, strict=True
            ):
                ref_heads = head_values(own[f"heads_{ads}"])
                heads = head_values(value, None if ref_heads is None else len(ref_heads))
                if heads is None or ref_heads is None:  # independent errors
                    rel_heads.append(None)
                    rel_std.append(math.sqrt(std**2 + own[f"std_{ads}"] ** 2))
                else:
                    rel_heads.append(heads - ref_heads)
                    rel_std.append(head_std(heads - ref_heads))
            table[f"rel_heads_{ads}"] = rel_heads
            table[f"rel_std_{ads}"] = rel_std
        is_ref = table.candidate == reference
        table.loc[is_ref, [f"rel_std_{a}" for a in adsorbates]] = 0.0
        table["is_reference"] = is_ref
        prefix, std_prefix, heads_prefix = "rel_", "rel_std_", "rel_heads_"
        if not targets:
            targets = {a: Target(0.0, default_tolerance) for a in adsorbates}
    unknown = sorted(set(targets) - set(adsorbates))
    if unknown:
        raise CatscreenError(
            f"target adsorbate(s) {', '.join(unknown)} not in the results; have {', '.join(adsorbates)}"
        )
    if reference is not None:
        empty = [a for a in targets if not np.isfinite(ref[f"E_{a}"])]
        if empty:
            raise CatscreenError(
                f"reference {reference} has no valid minimum for {', '.join(empty)} "
                "(every placement failed or is anomalous); pick another reference surface"
            )
    internal = [c for c in table.columns if c.startswith(("heads_", "rel_heads_"))]
    if not targets:
        table["distance"] = math.nan
        table["distance_std"] = math.nan
        table["distance_heads"] = None
        return table.drop(columns=internal), targets
    tol = np.array([t.tolerance for t in targets.values()])
    z = np.column_stack(
        [(table[f"{prefix}{a}"] - t.value) / t.tolerance for a, t in targets.items()]
    )
    stds = np.column_stack([table[f"{std_prefix}{a}"] for a in targets])
    d = np.sqrt((z**2).sum(axis=1))
    spreads = [
        _distance_spread(
            z[i],
            d[i],
            stds[i],
            [head_values(table[f"{heads_prefix}{a}"].iat[i]) for a in targets],
            tol,
        )
        for i in range(len(table))
    ]
    table["distance"] = d
    table["distance_std"] = [s for s, _ in spreads]
    table["distance_heads"] = [h for _, h in spreads]
    table = table.drop(columns=internal)
    table = table.sort_values(["distance", "candidate"], na_position="last", ignore_index=True)
    table.insert(1, "rank", np.where(table.distance.notna(), np.arange(1, len(table) + 1), 0))
    return table, targets
