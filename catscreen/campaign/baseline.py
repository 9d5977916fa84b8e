"""Baselines: the committed top-N of a campaign, so CI notices when a change moves the ranking.

Format (JSON, small enough to review in a pull request):

    {"format": "catscreen-baseline/1", "recipe": "quickstart", "model": "bundled",
     "top_n": 3, "tolerance": 0.05,
     "top": [{"rank": 1, "candidate": "Pt(111)", "descriptors": {"dE_O": 1.12, ...}}, ...]}

A comparison fails when a candidate enters or leaves the top-N, or when a top candidate's
descriptor moves by more than `tolerance` eV. A reorder within the top-N is reported but passes:
near-ties swap under harmless changes, and the descriptor check catches real moves.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from catscreen.campaign.recipe import Recipe
from catscreen.errors import CatscreenError, first_line
from catscreen.io import atomic_path
from catscreen.paths import find_shipped, recipes_dir

DEFAULT_TOLERANCE = 0.05  # eV: well above run-to-run noise, well below a meaningful shift


class BaselineEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rank: int = Field(ge=1)
    candidate: str
    descriptors: dict[str, float | None]


class Baseline(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["catscreen-baseline/1"] = "catscreen-baseline/1"
    recipe: str
    model: str
    model_version: str | None = None  # the weights' content hash (absent in older baselines)
    top_n: int = Field(ge=1)
    tolerance: float = Field(gt=0, allow_inf_nan=False, description="eV")
    top: list[BaselineEntry]


class Comparison(BaseModel):
    """The verdict and the lines a reviewer reads."""

    ok: bool
    failures: list[str]
    notes: list[str]


def _value(x: object) -> float | None:
    return None if pd.isna(x) else round(float(x), 4)  # type: ignore[arg-type]


def make_baseline(
    board: pd.DataFrame, recipe: Recipe, model_version: str, tolerance: float = DEFAULT_TOLERANCE
) -> Baseline:
    names = [d.name for d in recipe.ranking.descriptors]
    top = board[board["rank"] >= 1].head(recipe.ranking.top_n)  # unranked rows have rank 0
    if top.empty:  # a baseline of nothing would pass every later run
        raise CatscreenError(
            "no candidate is ranked (see the warnings): a baseline needs at least one"
        )
    return Baseline(
        recipe=recipe.name,
        model=recipe.model.name,
        model_version=model_version,
        top_n=recipe.ranking.top_n,
        tolerance=tolerance,
        top=[
            BaselineEntry(
                rank=int(r["rank"]),
                candidate=str(r["candidate"]),
                descriptors={n: _value(r[n]) for n in names},
            )
            for _, r in top.iterrows()
        ],
    )


def write_baseline(baseline: Baseline, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(baseline.model_dump(), indent=2, allow_nan=False) + "\n")


def read_baseline(path: str | Path) -> Baseline:
    shipped = recipes_dir()
    try:  # or a shipped recipe's by its name: `--baseline quickstart`
        p = find_shipped(path, "baseline", shipped / "baselines" if shipped else None, ".json")
    except CatscreenError as exc:
        raise CatscreenError(f"{exc} (create one with `catscreen campaign baseline`)") from None
    try:
        return Baseline.model_validate_json(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise CatscreenError(f"{p}: not a catscreen baseline: {first_line(exc)}") from None
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        field = ".".join(str(x) for x in err["loc"])
        raise CatscreenError(f"{p}: not a catscreen baseline: {field}: {err['msg']}") from None


def compare(
    board: pd.DataFrame, baseline: Baseline, model_version: str, descriptors: Sequence[str] = ()
) -> Comparison:
    """Compare the current leaderboard's top-N with a baseline; say when the weights differ
    from the baseline's, the usual reason for a change, and which of the recipe's
    `descriptors` the baseline cannot check (added after it was written)."""
    failures: list[str] = []
    notes: list[str] = []
    recorded = {name for e in baseline.top for name in e.descriptors}
    unchecked = [d for d in descriptors if d not in recorded]
    if unchecked:
        notes.append(
            f"descriptor(s) {', '.join(unchecked)} not in the baseline, so not checked: "
            "write a new baseline to check them"
        )
    if baseline.model_version not in (None, model_version):
        notes.append(
            f"the baseline was made with {baseline.model} {baseline.model_version}, this run "
            f"with {model_version}: if the new weights are intended, write a new baseline "
            "(`catscreen campaign baseline`)"
        )
    n = baseline.top_n
    now = board[board["rank"] >= 1].head(n)  # unranked rows have rank 0, as in make_baseline
    now_names = list(now["candidate"])
    was_names = [e.candidate for e in baseline.top]
    for name in was_names:
        if name not in now_names:
            where = board.index[board["candidate"] == name]
            now_rank = int(board.loc[where[0], "rank"]) if len(where) else None
            pos = {None: "now missing", 0: "now unranked"}.get(now_rank, f"now rank {now_rank}")
            failures.append(f"{name} left the top {n} ({pos})")
    for name in now_names:
        if name not in was_names:
            rank = int(now.loc[now["candidate"] == name, "rank"].iloc[0])
            failures.append(f"{name} entered the top {n} at rank {rank}")
    if not failures and now_names != was_names:
        notes.append(f"top {n} reordered: {' > '.join(was_names)} -> {' > '.join(now_names)}")
    if len(baseline.top) < n:  # fewer were ranked when it was written: only those are checked
        notes.append(f"the baseline holds {len(baseline.top)} candidate(s), not {n}")
    rows = board.set_index("candidate")
    for entry in baseline.top:
        if entry.candidate not in rows.index:
            continue
        for name, old in entry.descriptors.items():
            if name not in rows.columns:
                failures.append(f"descriptor {name} is no longer computed")
                continue
            new = _value(rows.loc[entry.candidate, name])
            if old is None or new is None:
                if old != new:
                    failures.append(f"{entry.candidate} {name}: {old} -> {new}")
                continue
            delta = new - old
            line = f"{entry.candidate} {name}: {old:+.3f} -> {new:+.3f} eV (change {delta:+.3f})"
            if abs(delta) > baseline.tolerance:
                failures.append(f"{line} exceeds tolerance {baseline.tolerance:.3f} eV")
    return Comparison(ok=not failures, failures=failures, notes=notes)
