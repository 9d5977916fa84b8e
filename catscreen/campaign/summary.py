"""The Markdown summary of a campaign: what a reviewer reads in a CI job page or a terminal.

GitHub renders it from $GITHUB_STEP_SUMMARY; everywhere else it lands in DIR/summary.md.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd

from catscreen.analysis.ranking import on_chgnet_scale
from catscreen.campaign.baseline import Comparison
from catscreen.campaign.leaderboard import descriptor_formula
from catscreen.campaign.recipe import Recipe, Target
from catscreen.campaign.state import CampaignState
from catscreen.model.api import spin_conditioned

MAX_TABLE_ROWS = 30  # a summary is read, not scrolled: the full table is in the report


def _fmt(x: object) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, bool | np.bool_):
        return "yes" if x else "no"
    if isinstance(x, float | np.floating):
        return "n/a" if np.isnan(x) else f"{x:.3f}"
    return str(x)


def markdown_table(df: pd.DataFrame) -> str:
    """A DataFrame as a GitHub Markdown table (no tabulate dependency)."""
    head = "| " + " | ".join(str(c) for c in df.columns) + " |"
    sep = "| " + " | ".join("---" for _ in df.columns) + " |"
    body = ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body])


def descriptor_frame(
    board: pd.DataFrame, recipe: Recipe, rows: int | None = None, mark: str = " (reference)"
) -> pd.DataFrame:
    """The leaderboard's readable columns: rank, candidate, descriptors (eV), distance, spin.
    The reference candidate carries `mark` (it read as the best of the screened, at rank 1
    with descriptors 0)."""
    names = [d.name for d in recipe.ranking.descriptors]
    cols = ["rank", "candidate", *names, "distance", "on_target", "spin"]
    out = (board[cols].head(rows) if rows else board[cols]).copy()
    if "is_reference" in board.columns:
        reference = board["is_reference"].reindex(out.index).fillna(False).astype(bool)
        out["candidate"] = out["candidate"].where(~reference, out["candidate"] + mark)
    # rank 0: a descriptor has no valid placement, so the candidate cannot be ranked
    out["rank"] = [str(int(r)) if r >= 1 else "-" for r in out["rank"]]
    return out.rename(columns={n: f"{n} (eV)" for n in names})


def targets_line(recipe: Recipe, targets: dict[str, Target]) -> str:
    parts = []
    for d in recipe.ranking.descriptors:
        t = targets[d.name]
        parts.append(
            f"`{d.name}` = {descriptor_formula(recipe, d)}: target {t.value:+.3f} ± {t.tolerance:.3f} eV"
        )
    return "; ".join(parts)


def flags_frame(
    flags: pd.DataFrame, board: pd.DataFrame, first: Collection[str] = ()
) -> pd.DataFrame:
    """The DFT-validation list with the columns a person needs to act on it: the placements of
    the `first` adsorbates (the descriptors') before the others (a Fischer-Tropsch list cut at
    MAX_TABLE_ROWS showed CO and CH_x rows and none of Fe's C or O, rank 4), each part
    best-ranked candidates first (in enumerate order it showed the first two surfaces and none
    of the top three); unranked candidates last."""
    rank = board.set_index("candidate")["rank"].astype(float)
    if "candidate" in flags.columns and len(flags):
        # by position, not label: the labels of a table handed in need not be unique
        keys = pd.DataFrame(
            {
                "other": ~flags["adsorbate"].isin(set(first)).to_numpy()
                if "adsorbate" in flags.columns
                else False,
                "rank": flags["candidate"].map(rank.where(rank >= 1)).fillna(np.inf).to_numpy(),
            }
        )
        if "e_ads" in flags.columns:
            keys["e_ads"] = flags["e_ads"].to_numpy()
        flags = flags.iloc[keys.sort_values(list(keys.columns), kind="stable").index]
    wanted = [
        "candidate",
        "adsorbate",
        "site_type",
        "final_site_type",  # where the minimum is: Au's O placed ontop ended in a hollow
        "e_ads",
        "e_ads_std",
        "flag_reasons",
        "config_id",
    ]
    return flags[[c for c in wanted if c in flags.columns]]


def context_line(board: pd.DataFrame) -> list[str]:
    """Which candidates met the reference relaxed again in their own spin context: their
    descriptor is not against the reference's row of the table."""
    if "reference_spin" not in board or not board["is_reference"].any():
        return []
    own = board.loc[board["is_reference"], "spin"].iloc[0]
    moved = board[(board["reference_spin"] != own) & (board["spin"] == board["reference_spin"])]
    if moved.empty:
        return []
    spins = "/".join(sorted(set(moved["spin"])))
    ref = board.loc[board["is_reference"], "candidate"].iloc[0]
    verb = "is" if len(moved) == 1 else "are"
    return [
        f"{', '.join(moved['candidate'])} ran spin-{spins} and {verb} compared with {ref} "
        f"relaxed again spin-{spins}: the model's two spin contexts are not one energy scale "
        "(README, Conventions)."
    ]


def uncertainty_line(recipe: Recipe, board: pd.DataFrame) -> list[str]:
    """What a +/- does not hold: an ensemble's heads share their training labels, so the
    teacher's own errors (host to host, up to 1.3 eV for C on Ru(0001) against Co(0001)) sit
    outside the spread, and a user reading a small std as DFT-grade would trust it too far.
    Nothing where every std is 0 (a model without heads: rank says so)."""
    stds = board[[f"{d.name}_std" for d in recipe.ranking.descriptors if f"{d.name}_std" in board]]
    if not spin_conditioned(recipe.model.name) or not (stds.fillna(0) != 0).any().any():
        return []
    labels = (
        "its CHGNet-PBE teacher's" if on_chgnet_scale(recipe.model.name) else "its training set's"
    )
    return [
        "Stds are the spread of the model's ensemble heads: they leave out the error of the "
        f"labels it learned from ({labels}), which a reference surface does not cancel from host "
        "to host (MODEL_CARD, opening summary); the DFT flags check it."
    ]


def render_summary(
    recipe: Recipe,
    board: pd.DataFrame,
    targets: dict[str, Target],
    flags: pd.DataFrame,
    state: CampaignState,
    comparison: Comparison | None,
    warnings: list[str],
    model_version: str = "",
) -> str:
    n = recipe.ranking.top_n
    lines = [f"# catscreen campaign `{recipe.name}`", ""]
    if recipe.description:
        lines += [recipe.description.strip(), ""]
    if comparison is not None:
        verdict = "PASSED" if comparison.ok else "FAILED"
        lines += [f"## Baseline check: {verdict}", ""]
        lines += [f"- :x: {f}" for f in comparison.failures]
        lines += [f"- {m}" for m in comparison.notes]
        if comparison.ok and not comparison.notes:
            lines.append("- top candidates and descriptors match the baseline")
        lines.append("")
    lines += [
        f"Model `{recipe.model.name}`{f' (version `{model_version}`)' if model_version else ''}, "
        f"spin `{recipe.model.spin}`. {targets_line(recipe, targets)}.",
        "Distance = sqrt(sum over descriptors of ((value - target) / tolerance)^2); lower is better,"
        " and on_target means every descriptor is within its tolerance.",
        *context_line(board),
        *uncertainty_line(recipe, board),
        "",
        *[f"- **Warning:** {w}" for w in warnings],
        *([""] if warnings else []),
        f"## Top {n} candidates",
        "",
        markdown_table(descriptor_frame(board, recipe, n)),
        "",
    ]
    if len(board) > n:
        shown = min(len(board), MAX_TABLE_ROWS)
        lines += [f"## All descriptors ({shown} of {len(board)} surfaces)", ""]
        lines += [markdown_table(descriptor_frame(board, recipe, MAX_TABLE_ROWS)), ""]
    shown = (
        f"{len(flags)} flagged"
        if len(flags) <= MAX_TABLE_ROWS
        else f"{MAX_TABLE_ROWS} of {len(flags)} flagged, best-ranked candidates first; all in "
        "rank/flagged.parquet"
    )
    lines += [f"## DFT validation ({shown})", ""]
    if len(flags) and on_chgnet_scale(recipe.model.name):
        lines += [
            "e_ads is the model's absolute adsorption energy, against its own gas references "
            "(CHGNet's offsets from PBE included: MODEL_CARD, Gas-phase reference molecules); "
            "the DFT inputs measure it with PBE's.",
            "",
        ]
    lines += [
        markdown_table(
            flags_frame(flags, board, {d.adsorbate for d in recipe.ranking.descriptors}).head(
                MAX_TABLE_ROWS
            )
        )
        if len(flags)
        else "nothing flagged",
        "",
    ]
    lines += ["## Run", "", "| stage | status | time (s) | counts |", "| --- | --- | --- | --- |"]
    for name, rec in state.stages.items():
        counts = ", ".join(f"{k} {v}" for k, v in rec.counts.items())
        secs = f"{rec.seconds:.1f}" if rec.seconds is not None else ""
        lines.append(f"| {name} | {rec.status} | {secs} | {counts} |")
    return "\n".join(lines) + "\n"
