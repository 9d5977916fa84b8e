"""Which placements deserve a DFT check, and why (each flag records its reason).

- top-k: per system, the k lowest valid placements (AdsorbML: the ML minimum is often not the
  DFT minimum, but it is usually among the few lowest ML placements).
- rank flip: two neighbours in the target ranking whose distances differ by less than
  `flip_sigma` times the sigma of that gap could swap; the minima behind their descriptors are
  flagged. The gap's sigma is its spread over the ensemble heads (the heads' errors on two
  candidates partly cancel in a difference, as the shared gas references do), plus what the
  heads do not carry; without heads, the two sigmas combined as independent.
- high uncertainty: E_ads std above a threshold, for any valid placement.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from catscreen.analysis.energies import head_std, head_values


def rank_within_systems(configs: pd.DataFrame) -> pd.Series:
    """1 = lowest E_ads among the valid placements of its system; 0 for invalid ones. Ties
    go by config_id, as the system minimum does, whatever order the rows came in."""
    valid = configs[configs.valid].sort_values(["e_ads", "config_id"], kind="mergesort")
    ranks = valid.groupby(["system_id", "spin"]).cumcount() + 1
    return ranks.reindex(configs.index).fillna(0).astype(int)


def _gap_std(a: pd.Series, b: pd.Series) -> float:
    """sigma of distance(b) - distance(a): head by head where both have per-head distances."""
    ha = head_values(a.get("distance_heads"))
    hb = head_values(b.get("distance_heads"), None if ha is None else len(ha))
    if ha is None or hb is None:
        return math.hypot(a.distance_std, b.distance_std)
    indep = sum(max(row.distance_std**2 - head_std(h) ** 2, 0.0) for row, h in ((a, ha), (b, hb)))
    return math.sqrt(head_std(hb - ha) ** 2 + indep)


def flip_reasons(ranked: pd.DataFrame, flip_sigma: float) -> dict[str, list[str]]:
    """candidate -> reasons, for neighbours in the ranking that could swap within uncertainty."""
    out: dict[str, list[str]] = {}
    rows = ranked[ranked.distance.notna()].reset_index(drop=True)
    for i in range(len(rows) - 1):
        a, b = rows.iloc[i], rows.iloc[i + 1]
        gap = float(b.distance - a.distance)
        sigma = flip_sigma * _gap_std(a, b)
        if gap < sigma:
            for x, y in ((a, b), (b, a)):
                out.setdefault(x.candidate, []).append(
                    f"ranking could flip with {y.candidate} (distance gap {gap:.3f} < {sigma:.3f})"
                )
    return out


def flag_configs(
    configs: pd.DataFrame,
    ranked: pd.DataFrame,
    target_adsorbates: list[str],
    top_k: int,
    uncertainty_threshold: float,
    flip_sigma: float,
) -> pd.DataFrame:
    """Add rank_in_system, is_minimum, flag_* columns, flag_reasons and flagged."""
    configs = configs.copy()
    configs["rank_in_system"] = rank_within_systems(configs)
    configs["is_minimum"] = configs.rank_in_system == 1
    n_valid = configs[configs.valid].groupby("system_id").size()
    reasons: list[list[str]] = [[] for _ in range(len(configs))]

    top = configs.valid & (configs.rank_in_system <= top_k)
    configs["flag_top_k"] = top
    for pos in np.flatnonzero(top.to_numpy()):
        row = configs.iloc[pos]
        reasons[pos].append(
            f"top-{top_k}: rank {row.rank_in_system} of {n_valid[row.system_id]} valid placements"
        )

    flips = flip_reasons(ranked, flip_sigma) if "distance" in ranked else {}
    flip = (
        configs.is_minimum
        & configs.candidate.isin(flips)
        & configs.adsorbate.isin(target_adsorbates)
    )
    configs["flag_rank_flip"] = flip
    for pos in np.flatnonzero(flip.to_numpy()):
        reasons[pos].extend(flips[configs.iloc[pos].candidate])

    high = configs.valid & (configs.e_ads_std > uncertainty_threshold)
    configs["flag_high_uncertainty"] = high
    for pos in np.flatnonzero(high.to_numpy()):
        reasons[pos].append(
            f"high uncertainty: E_ads std {configs.iloc[pos].e_ads_std:.3f} > {uncertainty_threshold} eV"
        )

    configs["flag_reasons"] = ["; ".join(r) for r in reasons]
    configs["flagged"] = top | flip | high
    return configs
