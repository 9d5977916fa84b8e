"""The campaign's one table: a row per candidate surface, a column per recipe descriptor.

The rank stage ranks by adsorbate (`E_<ads>` or `rel_<ads>` columns, `distance`); a recipe
speaks in named descriptors with corrections (dG_H = dE_H + 0.24 eV). This module translates
both ways, so the summary, the baseline comparison and the report all show the rank stage's
ranking in the recipe's words.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from catscreen.analysis.ranking import Target as RankTarget
from catscreen.analysis.ranking import absolute_offset_note, context_offset_note
from catscreen.campaign.recipe import Descriptor, Recipe, Target
from catscreen.model.api import spin_conditioned


def rank_targets(recipe: Recipe) -> dict[str, RankTarget]:
    """Recipe descriptors -> the rank stage's per-adsorbate targets on E_ads (or relative E_ads)."""
    ref = recipe.ranking.reference
    out: dict[str, RankTarget] = {}
    for d in recipe.ranking.descriptors:
        if ref is not None:
            t = d.target or Target(value=0.0, tolerance=ref.tolerance)
            out[d.adsorbate] = RankTarget(t.value, t.tolerance)
        else:
            assert d.target is not None  # the schema guarantees it
            out[d.adsorbate] = RankTarget(d.target.value - d.correction, d.target.tolerance)
    return out


def descriptor_targets(recipe: Recipe) -> dict[str, Target]:
    """Each descriptor's target in the descriptor's own units (what a reader compares with)."""
    ref = recipe.ranking.reference
    return {
        d.name: d.target or Target(value=0.0, tolerance=ref.tolerance if ref else 1.0)
        for d in recipe.ranking.descriptors
    }


def descriptor_formula(recipe: Recipe, d: Descriptor) -> str:
    """How a descriptor is computed, in words a chemist reads: 'min E_ads(H) +0.24 eV'."""
    ref = recipe.ranking.reference
    if ref is not None:
        return f"min E_ads({d.adsorbate}) - same on {ref.candidate}"
    return f"min E_ads({d.adsorbate})" + (f" {d.correction:+.2f} eV" if d.correction else "")


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name] if name in frame.columns else pd.Series(np.nan, index=frame.index)


def build_leaderboard(ranked: pd.DataFrame, systems: pd.DataFrame, recipe: Recipe) -> pd.DataFrame:
    """ranked.parquet + systems.parquet -> rank, candidate, one column per descriptor (eV),
    distance, distance_std, on_target, spin, and per descriptor D: D_std, D_config (best
    placement's config_id), D_site (the site it was placed on), D_final_site (where it ended
    after relaxing)."""
    relative = recipe.ranking.reference is not None
    targets = descriptor_targets(recipe)
    board = ranked[["rank", "candidate", "bulk", "miller", "termination", "slab_id"]].copy()
    spins = systems.groupby("candidate")["spin"].agg(lambda s: "/".join(sorted(set(map(str, s)))))
    board["spin"] = board["candidate"].map(spins).fillna("")
    board["is_reference"] = (
        ranked["is_reference"].astype(bool) if "is_reference" in ranked else False
    )
    if "reference_spin" in ranked:  # the reference's context each candidate was compared with
        board["reference_spin"] = ranked["reference_spin"]
    within = pd.Series(True, index=board.index)
    best = systems.set_index(["candidate", "adsorbate"])
    for d in recipe.ranking.descriptors:
        a = d.adsorbate
        if relative:
            board[d.name] = _column(ranked, f"rel_{a}")
            board[f"{d.name}_std"] = _column(ranked, f"rel_std_{a}")
        else:
            board[d.name] = _column(ranked, f"E_{a}") + d.correction
            board[f"{d.name}_std"] = _column(ranked, f"std_{a}")
        keys = list(zip(board["candidate"], [a] * len(board), strict=True))
        board[f"{d.name}_config"] = [best["best_config_id"].get(k, "") for k in keys]
        board[f"{d.name}_site"] = [best["best_site_type"].get(k, "") for k in keys]
        board[f"{d.name}_final_site"] = [best["best_final_site_type"].get(k, "") for k in keys]
        t = targets[d.name]
        within &= (board[d.name] - t.value).abs() <= t.tolerance
    board["distance"] = ranked["distance"]
    board["distance_std"] = ranked["distance_std"]
    board["on_target"] = within
    return board.reset_index(drop=True)


def board_warnings(
    board: pd.DataFrame, recipe: Recipe, surfaces: dict[str, str] | None = None
) -> list[str]:
    """What a reader must know before trusting the ranking: missing descriptors, unranked rows,
    and enumerated surfaces (`surfaces`: candidate name -> bulk) that are not on the board."""
    out = []
    ref = recipe.ranking.reference
    for d in recipe.ranking.descriptors:
        missing = board.loc[board[d.name].isna(), "candidate"].tolist()
        if len(missing) == len(board) and ref is not None:
            out.append(
                f"{d.name}: the reference {ref.candidate} has no valid {d.adsorbate} placement "
                "(all anomalous or failed), so no candidate has this descriptor"
            )
        elif missing:
            out.append(f"{d.name}: no valid {d.adsorbate} placement on {', '.join(missing)}")
    ranked_bulks = set(board["bulk"].astype(str))
    # enumerate names a file's bulks by its stem, or stem_i for several frames (the recipe's rule)
    ranked = {id(recipe.candidate_of_bulk(b)) for b in ranked_bulks}
    for cand in recipe.candidates:
        if id(cand) not in ranked:
            out.append(
                f"{cand.name}: no surface in the ranking (its placements, clean slabs or the gas "
                "references failed to relax, or were anomalous; see the failed rows in "
                "results.parquet)"
            )
    on_board = set(board["candidate"].astype(str))
    for name, bulk in sorted((surfaces or {}).items()):
        if name not in on_board and bulk in ranked_bulks:  # else named with its bulk above
            out.append(
                f"{name}: not in the ranking (its clean slab failed to relax or was "
                "anomalous; see the failed rows in results.parquet)"
            )
    unranked = int((board["rank"] < 1).sum())
    if unranked:
        out.append(f"{unranked} of {len(board)} candidate(s) unranked (a descriptor is missing)")
    # descriptors across the conditioned model's two spin contexts (CHGNet and EMT compute one
    # physics in both)
    offset = context_offset_note(board, ref.candidate if ref is not None else None)
    if spin_conditioned(recipe.model.name) and offset is not None:
        out.append(offset)
    if ref is None and (absolute := absolute_offset_note(recipe.model.name)) is not None:
        out.append(absolute)
    return out
