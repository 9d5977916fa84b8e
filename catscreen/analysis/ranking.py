"""Minima per system, the candidate descriptor table, and the distance to target descriptors.

Distance: d = sqrt(sum_a ((E_a - v_a) / tol_a)^2) over the target adsorbates a, so d < 1 means
"inside the tolerance box" for one target. Its uncertainty is the linearised propagation of
the descriptor stds, sigma_d = sqrt(sum_a (z_a sigma_a / tol_a)^2) / d with z_a the scaled
deviation (at d = 0: sqrt(sum_a (sigma_a / tol_a)^2)).

With a reference candidate, descriptors become E_a - E_a(reference): constant offsets of the
gas reference scheme cancel, and targets are read as relative values (default 0: "like the
reference").
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from catscreen.errors import CatscreenError

_TARGET = re.compile(
    r"^\s*([A-Za-z][A-Za-z0-9_*+-]*)\s*=\s*([-+0-9.eE]+)\s*(?::\s*([-+0-9.eE]+))?\s*$"
)


@dataclass(frozen=True)
class Target:
    value: float
    tolerance: float


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
    if not tol > 0:
        raise CatscreenError(f"target {text!r}: the tolerance must be positive")
    return match.group(1), Target(value, tol)  # type: ignore[union-attr]


def system_table(configs: pd.DataFrame) -> pd.DataFrame:
    """Per system: lowest valid placement, its site, the spread across valid placements."""
    rows = []
    # one row per spin context: --spin auto gives each system one, and a table holding two
    # (spin on and off runs of the same configurations) must not mix them in one minimum
    for (sid, _), group in configs.groupby(["system_id", "spin"], sort=True):
        valid = group[group.valid].sort_values("e_ads")
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
                "e_ads_spread": float(valid.e_ads.max() - valid.e_ads.min())
                if len(valid)
                else math.nan,
                "best_config_id": best.config_id if best is not None else "",
                "best_site_type": best.site_type if best is not None else "",
                "best_final_site_type": best.final_site_type if best is not None else "",
            }
        )
    return pd.DataFrame.from_records(rows)


def descriptor_table(systems: pd.DataFrame) -> pd.DataFrame:
    """One row per candidate; `E_<ads>` and `std_<ads>` columns from the system minima."""
    dup = systems[systems.duplicated(["candidate", "adsorbate"], keep=False)]
    if len(dup):
        first = dup.iloc[0]
        raise CatscreenError(
            f"{first.candidate} + {first.adsorbate} appears in several spin contexts "
            f"({', '.join(sorted(dup.spin.unique()))}); rank each context separately"
        )
    adsorbates = sorted(systems.adsorbate.unique())
    base = systems.drop_duplicates("candidate")[
        ["candidate", "slab_id", "bulk", "miller", "termination"]
    ]
    table = base.set_index("candidate")
    for ads in adsorbates:
        sub = systems[systems.adsorbate == ads].set_index("candidate")
        table[f"E_{ads}"] = sub.e_ads_min
        table[f"std_{ads}"] = sub.e_ads_min_std
    return table.reset_index().sort_values("candidate", ignore_index=True)


def apply_targets(
    table: pd.DataFrame,
    targets: dict[str, Target],
    reference: str | None,
    default_tolerance: float,
) -> tuple[pd.DataFrame, dict[str, Target]]:
    """Add (relative) descriptors, distance and its sigma; sort by distance (missing last)."""
    table = table.copy()
    adsorbates = [c[2:] for c in table.columns if c.startswith("E_")]
    prefix = "E_"
    if reference is not None:
        ref = table[table.candidate == reference].iloc[0]
        for ads in adsorbates:
            table[f"rel_{ads}"] = table[f"E_{ads}"] - ref[f"E_{ads}"]
            table[f"rel_std_{ads}"] = np.sqrt(table[f"std_{ads}"] ** 2 + ref[f"std_{ads}"] ** 2)
        is_ref = table.candidate == reference
        table.loc[is_ref, [f"rel_std_{a}" for a in adsorbates]] = 0.0
        table["is_reference"] = is_ref
        prefix = "rel_"
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
                "(every placement failed or is anomalous); pick another --reference"
            )
    if not targets:
        table["distance"] = math.nan
        table["distance_std"] = math.nan
        return table, targets
    std_prefix = "rel_std_" if reference is not None else "std_"
    z = np.column_stack(
        [(table[f"{prefix}{a}"] - t.value) / t.tolerance for a, t in targets.items()]
    )
    s = np.column_stack([table[f"{std_prefix}{a}"] / t.tolerance for a, t in targets.items()])
    d = np.sqrt((z**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        sigma = np.where(
            d > 0, np.sqrt(((z * s) ** 2).sum(axis=1)) / d, np.sqrt((s**2).sum(axis=1))
        )
    table["distance"] = d
    table["distance_std"] = sigma
    table = table.sort_values(["distance", "candidate"], na_position="last", ignore_index=True)
    table.insert(1, "rank", np.where(table.distance.notna(), np.arange(1, len(table) + 1), 0))
    return table, targets
