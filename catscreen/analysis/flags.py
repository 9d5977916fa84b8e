"""Which placements deserve a DFT check, and why (each flag records its reason).

- top-k: per system, the k lowest valid placements (AdsorbML: the ML minimum is often not the
  DFT minimum, but it is usually among the few lowest ML placements), counting once the
  placements that relaxed into one minimum (`duplicate_of`: adsorbate atoms within
  DUPLICATE_DISTANCE, in one cell or a lattice vector apart, and E_ads within
  DUPLICATE_E_ADS): top-2 sent Ni(111)'s N bridge and ontop starts, both ended in one hollow
  0.0 meV apart, to DFT twice.
- rank flip: two neighbours in the target ranking whose distances differ by less than
  `flip_sigma` times the sigma of that gap could swap; the minima behind their descriptors are
  flagged. The gap's sigma is its spread over the ensemble heads (the heads' errors on two
  candidates partly cancel in a difference, as the shared gas references do), plus what the
  heads do not carry; without heads, the two sigmas combined as independent.
- high uncertainty: E_ads std above a threshold, for a valid placement that could be its
  system's minimum (within 2 std of it): uncertain placements far above their minimum (26
  on the ammonia recipe's bottom-ranked alloys) change no descriptor.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from ase.geometry import find_mic, get_distances

from catscreen.analysis.energies import head_std, head_values
from catscreen.io import atoms_from_text


def rank_within_systems(configs: pd.DataFrame) -> pd.Series:
    """1 = lowest E_ads among the valid placements of its system; 0 for invalid ones. Ties
    go by config_id, as the system minimum does, whatever order the rows came in."""
    valid = configs[configs.valid].sort_values(["e_ads", "config_id"], kind="mergesort")
    ranks = valid.groupby(["system_id", "spin"]).cumcount() + 1
    return ranks.reindex(configs.index).fillna(0).astype(int)


DUPLICATE_E_ADS = 0.005  # eV: two placements this close in energy ...
DUPLICATE_DISTANCE = 0.2  # A: ... whose adsorbate atoms all ended this close are one minimum


def _same_place(first: str, second: str) -> bool:
    """The adsorbate (tag 2) atoms of two final structures within DUPLICATE_DISTANCE, once the
    second is moved by the translation that takes the first's adsorbate onto its own, if that
    translation takes the slab onto itself too (each slab atom then lies within
    DUPLICATE_DISTANCE of one of its element): a bridge start that ended in the next cell's
    fcc hollow is the fcc start's minimum (Co(0001) and Fe(110) H, top-2 sent both to DFT).
    Site atoms alone cannot tell a 2x2 cell's fcc and hcp hollows apart (the same three
    atoms), the second layer can."""
    a, b = atoms_from_text(first), atoms_from_text(second)
    ads_a, ads_b = a.get_tags() == 2, b.get_tags() == 2
    if len(a) != len(b) or not ads_a.any() or (ads_a != ads_b).any():
        return False
    moved, _ = find_mic(b.positions[ads_a] - a.positions[ads_a], a.cell, pbc=a.pbc)
    if float(np.linalg.norm(moved, axis=1).max()) < DUPLICATE_DISTANCE:
        return True  # the same place in the same cell
    shift = moved[0]  # one cell over: a lattice vector of the surface
    rest, _ = find_mic(moved - shift, a.cell, pbc=a.pbc)  # a CO across the cell's edge
    if float(np.linalg.norm(rest, axis=1).max()) >= DUPLICATE_DISTANCE:
        return False
    slab_a, slab_b = a[~ads_a], b[~ads_a]
    for symbol in set(slab_a.get_chemical_symbols()):
        mine = np.array(slab_a.get_chemical_symbols()) == symbol
        theirs = np.array(slab_b.get_chemical_symbols()) == symbol
        _, dist = get_distances(
            slab_a.positions[mine] + shift, slab_b.positions[theirs], cell=a.cell, pbc=a.pbc
        )
        if float(dist.min(axis=1).max()) >= DUPLICATE_DISTANCE:
            return False
    return True


def duplicates(configs: pd.DataFrame) -> pd.Series:
    """For each valid placement, the config_id of a lower one of its system that ended in the
    same place (`_same_place`) within DUPLICATE_E_ADS ('' where none: a distinct minimum)."""
    out = pd.Series("", index=configs.index, dtype=object)
    valid = configs[configs.valid].sort_values(["e_ads", "config_id"], kind="mergesort")
    for _, group in valid.groupby(["system_id", "spin"], sort=False):
        kept: list[tuple[str, float, str]] = []
        for index, row in zip(group.index, group.itertuples(), strict=True):
            twin = next(
                (cid for cid, e, final in kept
                 if abs(row.e_ads - e) < DUPLICATE_E_ADS
                 and _same_place(final, row.final_structure)),
                None,
            )  # fmt: skip
            if twin is None:
                kept.append((row.config_id, row.e_ads, row.final_structure))
            else:
                out[index] = twin
    return out


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
                    f"ranking could flip with {y.candidate} (distance gap {gap:.3f} < "
                    f"{flip_sigma:g} sigma of the gap, {sigma:.3f})"
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

    configs["duplicate_of"] = duplicates(configs)
    distinct = configs.valid & (configs.duplicate_of == "")
    minima = rank_within_systems(configs.assign(valid=distinct))
    n_minima = configs[distinct].groupby("system_id").size()
    top = distinct & (minima <= top_k)
    configs["flag_top_k"] = top
    for pos in np.flatnonzero(top.to_numpy()):
        row = configs.iloc[pos]
        reason = (
            f"top-{top_k}: rank {row.rank_in_system} of {n_valid[row.system_id]} valid placements"
        )
        if minima.iloc[pos] != row.rank_in_system:  # "rank 3" of a top-2 reads like a bug
            reason += (
                f", minimum {minima.iloc[pos]} of {n_minima[row.system_id]} (a lower placement is a "
                "duplicate)"
            )
        reasons[pos].append(reason)

    flips = flip_reasons(ranked, flip_sigma) if "distance" in ranked else {}
    flip = (
        configs.is_minimum
        & configs.candidate.isin(flips)
        & configs.adsorbate.isin(target_adsorbates)
    )
    configs["flag_rank_flip"] = flip
    for pos in np.flatnonzero(flip.to_numpy()):
        reasons[pos].extend(flips[configs.iloc[pos].candidate])

    minimum = configs[configs.valid].groupby(["system_id", "spin"]).e_ads.transform("min")
    reachable = configs.e_ads - minimum.reindex(configs.index) <= 2 * configs.e_ads_std
    high = distinct & (configs.e_ads_std > uncertainty_threshold) & reachable
    configs["flag_high_uncertainty"] = high
    for pos in np.flatnonzero(high.to_numpy()):
        reasons[pos].append(
            f"high uncertainty: E_ads std {configs.iloc[pos].e_ads_std:.4f} > "
            f"{uncertainty_threshold:g} eV, within 2 std of its system's minimum"
        )

    configs["flag_reasons"] = ["; ".join(r) for r in reasons]
    configs["flagged"] = top | flip | high
    return configs
