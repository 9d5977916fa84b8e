"""Baseline comparison on hand-made leaderboards: what fails CI and what only gets a note."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from catscreen.campaign.baseline import compare, make_baseline, read_baseline, write_baseline
from catscreen.campaign.recipe import parse_recipe
from catscreen.errors import CatscreenError

RECIPE = parse_recipe(
    """\
name: t
candidates: [Pt, Cu, Ni]
facets: {miller: ["111"]}
adsorbates: [H]
ranking:
  top_n: 2
  descriptors:
    - {name: dG_H, adsorbate: H, correction: 0.24, target: {value: 0.0, tolerance: 0.1}}
""",
    Path("t.yaml"),
)


def board(values: dict[str, float]) -> pd.DataFrame:
    df = pd.DataFrame({"candidate": list(values), "dG_H": list(values.values())})
    df["distance"] = df.dG_H.abs() / 0.1
    df = df.sort_values("distance", ignore_index=True)
    df.insert(0, "rank", range(1, len(df) + 1))
    return df


def test_roundtrip_and_unchanged(tmp_path: Path) -> None:
    now = board({"Pt(111)": 0.02, "Ni(111)": -0.1, "Cu(111)": 0.3})
    path = tmp_path / "baseline.json"
    write_baseline(make_baseline(now, RECIPE, "v1", tolerance=0.05), path)
    base = read_baseline(path)
    assert [e.candidate for e in base.top] == ["Pt(111)", "Ni(111)"]
    result = compare(now, base, "v1")
    assert result.ok and not result.failures and not result.notes


def test_new_top_candidate_and_descriptor_move_fail() -> None:
    base = make_baseline(
        board({"Pt(111)": 0.02, "Ni(111)": -0.1, "Cu(111)": 0.3}), RECIPE, "v1", 0.05
    )
    result = compare(board({"Pt(111)": 0.09, "Ni(111)": -0.4, "Cu(111)": 0.12}), base, "v1")
    assert not result.ok
    text = "\n".join(result.failures)
    assert "Ni(111) left the top 2 (now rank 3)" in text
    assert "Cu(111) entered the top 2 at rank 2" in text
    assert "Pt(111) dG_H: +0.020 -> +0.090 eV (change +0.070) exceeds tolerance 0.050 eV" in text


def test_reorder_within_tolerance_is_a_note() -> None:
    base = make_baseline(
        board({"Pt(111)": 0.02, "Ni(111)": -0.03, "Cu(111)": 0.3}), RECIPE, "v1", 0.05
    )
    result = compare(board({"Pt(111)": 0.04, "Ni(111)": -0.01, "Cu(111)": 0.3}), base, "v1")
    assert result.ok
    assert result.notes == ["top 2 reordered: Pt(111) > Ni(111) -> Ni(111) > Pt(111)"]


def test_bad_baseline_file(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text('{"format": "catscreen-baseline/1", "recipe": "t"}')
    with pytest.raises(CatscreenError, match="not a catscreen baseline"):
        read_baseline(path)
    path.write_bytes(b"\xff\xfe{}")  # not UTF-8: a traceback before
    with pytest.raises(CatscreenError, match="not a catscreen baseline"):
        read_baseline(path)
    good = make_baseline(board({"Pt(111)": 0.02}), RECIPE, "v1", 0.05).model_dump()
    path.write_text(json.dumps({**good, "tolerance": float("inf")}))
    with pytest.raises(CatscreenError, match="tolerance"):  # inf passed every later run
        read_baseline(path)


def test_a_baseline_of_nothing_is_refused_and_a_short_one_is_named() -> None:
    """No ranked candidate wrote `"top": []`, and every later CI run passed against it."""
    now = board({"Pt(111)": 0.02, "Ni(111)": -0.1})
    now["rank"] = 0
    with pytest.raises(CatscreenError, match="no candidate is ranked"):
        make_baseline(now, RECIPE, "v1", 0.05)
    one = board({"Pt(111)": 0.02})
    result = compare(one, make_baseline(one, RECIPE, "v1", 0.05), "v1")
    assert result.ok and result.notes == ["the baseline holds 1 candidate(s), not 2"]


def test_unranked_candidates_are_not_a_change() -> None:
    """Fewer ranked candidates than top_n: the unranked (rank 0) rows are in neither list."""
    now = board({"Pt(111)": 0.02, "Ni(111)": -0.1, "Cu(111)": 0.3})
    now.loc[now.candidate != "Pt(111)", "rank"] = 0
    now.loc[now.candidate != "Pt(111)", "dG_H"] = float("nan")
    result = compare(now, make_baseline(now, RECIPE, "v1", 0.05), "v1")
    assert result.ok, result.failures


def test_new_weights_are_named_and_an_unranked_candidate_is_not_rank_0() -> None:
    """A baseline of other weights says so (the usual cause of a change, and what to do); one
    of a baseline's top that is now unranked says that, not "rank 0"."""
    base = make_baseline(board({"Pt(111)": 0.02, "Ni(111)": -0.1, "Cu(111)": 0.3}), RECIPE, "v1")
    now = board({"Pt(111)": 0.02, "Ni(111)": -0.1, "Cu(111)": 0.3})
    now.loc[now.candidate == "Ni(111)", ["rank", "dG_H"]] = [0, float("nan")]
    result = compare(now, base, "v2")
    assert "Ni(111) left the top 2 (now unranked)" in result.failures
    assert result.notes[0].startswith("the baseline was made with bundled v1, this run with v2")
    older = base.model_copy(update={"model_version": None})  # a baseline from before versions
    assert not compare(board({"Pt(111)": 0.02, "Ni(111)": -0.1}), older, "v2").notes


def test_the_committed_quickstart_baseline_is_of_the_shipped_weights() -> None:
    """The CI workflow checks the quickstart against it: new weights need a new baseline."""
    from catscreen.model import load_model

    path = Path(__file__).parents[1] / "recipes" / "baselines" / "quickstart.json"
    assert read_baseline(path).model_version == load_model("bundled").info.version
    # by name, as `campaign run quickstart` finds its recipe (a wheel ships both)
    assert read_baseline("quickstart") == read_baseline(path)
    with pytest.raises(CatscreenError, match=r"baseline not found: quickstar \(shipped baselin"):
        read_baseline("quickstar")


def test_a_facet_missing_from_the_ranking_is_named_beside_its_bulks_other_facets() -> None:
    """Pt(100) dropped out (its clean slab failed) while Pt(111) stayed: no warning before."""
    from catscreen.campaign.leaderboard import board_warnings

    now = board({"Pt(111)": 0.02, "Cu(111)": 0.3}).assign(bulk=["Pt", "Cu"])
    surfaces = {"Pt(111)": "Pt", "Pt(100)": "Pt", "Cu(111)": "Cu", "Ni(111)": "Ni"}
    warnings = board_warnings(now, RECIPE, surfaces)
    assert any(w.startswith("Pt(100): not in the ranking") for w in warnings), warnings
    assert any(w.startswith("Ni: no surface in the ranking") for w in warnings), warnings
    assert not any(w.startswith("Ni(111)") for w in warnings)  # named once, with its bulk


def test_descriptors_added_after_the_baseline_are_named_as_unchecked() -> None:
    """A recipe's new descriptor was never compared, and the summary said all matched."""
    now = board({"Pt(111)": 0.02, "Ni(111)": -0.1})
    base = make_baseline(now, RECIPE, "v1", 0.05)
    result = compare(now, base, "v1", ["dG_H", "dE_O"])
    assert result.ok and result.notes == [
        "descriptor(s) dE_O not in the baseline, so not checked: write a new baseline to check them"
    ]
    assert not compare(now, base, "v1", ["dG_H"]).notes


def test_a_candidate_in_the_other_spin_context_than_the_reference_is_warned() -> None:
    """The bundled model's contexts are not one energy scale (O on one Ru(0001) geometry 0.5
    eV apart): a spin-on Ni(111) against a spin-off Pt(111) carries that offset."""
    from catscreen.campaign.leaderboard import board_warnings

    text = """\
name: t
candidates: [Pt, Cu, Ni]
facets: {miller: ["111"]}
adsorbates: [H]
model: {name: MODEL}
ranking:
  reference: {bulk: Pt, miller: "111"}
  descriptors:
    - {name: dE_H, adsorbate: H, target: {value: 0.0, tolerance: 0.1}}
"""
    now = board({"Pt(111)": 0.0, "Cu(111)": 0.2, "Ni(111)": -0.3}).rename(columns={"dG_H": "dE_H"})
    now = now.assign(
        bulk=now.candidate.str[:2], spin=now.candidate.map({"Ni(111)": "on"}).fillna("off")
    )
    recipe = parse_recipe(text.replace("MODEL", "bundled"), Path("t.yaml"))
    (line,) = [w for w in board_warnings(now, recipe) if "spin context" in w]
    assert line.startswith("Ni(111) ran in the other spin context than the reference Pt(111)")
    for quiet_board, model in ((now.assign(spin="off"), "bundled"), (now, "chgnet")):
        recipe = parse_recipe(text.replace("MODEL", model), Path("t.yaml"))
        assert not [w for w in board_warnings(quiet_board, recipe) if "spin context" in w]
    # absolute mode (no reference) went unwarned: a hydrogen-evolution run ranked across the
    # contexts' offset (Cu(111) dG_H 0.145 eV apart between the two, by the recipe review)
    text = text.replace("MODEL", "bundled").replace('  reference: {bulk: Pt, miller: "111"}\n', "")
    absolute = parse_recipe(text, Path("t.yaml"))
    (line,) = [w for w in board_warnings(now, absolute) if "spin-on" in w]
    assert line.startswith("Ni(111) ran spin-on and Pt(111), Cu(111) spin-off")
    assert not [w for w in board_warnings(now.assign(spin="on"), absolute) if "spin-on" in w]
    # absolute values on CHGNet's gas references: PBE targets may sit off that scale
    (line,) = [w for w in board_warnings(now, absolute) if "absolute" in w]
    assert line.startswith("descriptors are absolute (no reference surface): model bundled has")
    assert not [w for w in board_warnings(now, recipe) if "absolute" in w]  # a reference
    emt = parse_recipe(text.replace("name: bundled", "name: emt"), Path("t.yaml"))
    assert not [w for w in board_warnings(now, emt) if "absolute" in w]


def test_the_std_line_names_what_a_spread_leaves_out_only_where_there_is_one() -> None:
    """summary.md said "spread of the ensemble heads ... the bundled weights' labels" for a
    user's one-head checkpoint, whose stds are all 0 (rank said: no uncertainty)."""
    from catscreen.campaign.summary import uncertainty_line

    now = board({"Pt(111)": 0.02, "Ni(111)": -0.1}).assign(dG_H_std=[0.05, 0.08])
    for model, labels in (("bundled", "its CHGNet-PBE teacher's"), ("mine.pt", "its training")):
        recipe = RECIPE.model_copy(
            update={"model": RECIPE.model.model_copy(update={"name": model})}
        )
        (line,) = uncertainty_line(recipe, now)
        assert (
            line.startswith("Stds are the spread of the model's ensemble heads") and labels in line
        )
        assert not uncertainty_line(recipe, now.assign(dG_H_std=0.0))  # no heads: no spread
    chgnet = RECIPE.model_copy(update={"model": RECIPE.model.model_copy(update={"name": "chgnet"})})
    assert not uncertainty_line(chgnet, now)
