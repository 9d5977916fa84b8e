"""The reference surface in each candidate's spin context: the bundled model's spin-on and
spin-off contexts are not one energy scale (N on Ru(0001) 0.21 eV apart), so a spin-on
candidate's descriptor against a spin-off reference carried that offset. `relax --reference`
relaxes the reference again in the other context and rank compares within one context."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from catscreen.cli.main import app
from catscreen.io import read_parquet_metadata, write_parquet

runner = CliRunner()
RELAX = ["--steps", "60", "--fmax", "0.1", "-q"]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Pt(111) (spin off under auto) and Ni(111) (spin on) with O, bundled model."""
    base = tmp_path_factory.mktemp("refctx")
    args = ["enumerate", "--bulk", "Pt", "--bulk", "Ni", "--miller", "1,1,1", "--adsorbates", "O"]
    args += ["--min-slab-size", "4", "--min-ab", "5", "--vacuum", "10", "--out", str(base / "e")]
    made = runner.invoke(app, args)
    assert made.exit_code == 0, made.output
    out = base / "results.parquet"
    ran = runner.invoke(app, ["relax", str(base / "e"), "--out", str(out), *RELAX,
                              "--reference", "Pt 1,1,1"])  # fmt: skip
    assert ran.exit_code == 0, ran.output
    return out


def test_relax_adds_the_reference_in_the_other_context_only(results: Path) -> None:
    rows = pd.read_parquet(results)
    surfaces = rows[rows.kind != "gas"]
    copies = surfaces[surfaces.spin_mode == "reference"]
    assert set(copies.bulk) == {"Pt"} and set(copies.spin) == {"on"}
    pt_off = surfaces[(surfaces.bulk == "Pt") & (surfaces.spin == "off")]
    assert sorted(copies.config_id) == sorted(pt_off.config_id)  # its slab and every placement
    assert set(surfaces.loc[surfaces.bulk == "Ni", "spin"]) == {"on"}  # no copy of a candidate
    assert (copies.status == "converged").all()


def test_rank_compares_each_candidate_within_its_context(results: Path, tmp_path: Path) -> None:
    ranked = runner.invoke(app, ["rank", str(results), "--reference", "Pt(111)", "-o",
                                 str(tmp_path / "r")])  # fmt: skip
    assert ranked.exit_code == 0, ranked.output
    assert "ran in the other spin context" not in ranked.output
    table = pd.read_parquet(tmp_path / "r" / "ranked.parquet").set_index("candidate")
    assert table.loc["Ni(111)", "spin"] == "on" and table.loc["Ni(111)", "reference_spin"] == "on"
    assert table.loc["Pt(111)", "spin"] == "off" and table.loc["Pt(111)", "rel_O"] == 0.0
    # the same numbers by another road: the spin-on rows alone, where the copies are Pt's own
    alone = runner.invoke(app, ["rank", str(results), "--reference", "Pt(111)", "--spin", "on",
                                "-o", str(tmp_path / "on")])  # fmt: skip
    assert alone.exit_code == 0, alone.output
    on = pd.read_parquet(tmp_path / "on" / "ranked.parquet").set_index("candidate")
    assert table.loc["Ni(111)", "rel_O"] == pytest.approx(on.loc["Ni(111)", "rel_O"], abs=1e-9)
    assert table.loc["Ni(111)", "rel_std_O"] == pytest.approx(on.loc["Ni(111)", "rel_std_O"])
    offset = on.loc["Pt(111)", "E_O"] - table.loc["Pt(111)", "E_O"]
    assert abs(offset) > 0.01  # the contexts differ, so the test can tell them apart
    # copies are the reference's only: not ranked, flagged or among the placements
    for name in ("adsorption", "systems", "flagged"):
        part = pd.read_parquet(tmp_path / "r" / f"{name}.parquet")
        assert not ((part.candidate == "Pt(111)") & (part.spin == "on")).any(), name
    meta = read_parquet_metadata(tmp_path / "r" / "ranked.parquet")
    assert [c["spin"] for c in meta["reference_contexts"]] == ["on"]
    assert meta["reference_contexts"][0]["E_O"] == pytest.approx(on.loc["Pt(111)", "E_O"])
    best = pd.read_parquet(tmp_path / "on" / "systems.parquet").set_index("candidate")
    assert meta["reference_contexts"][0]["minima"] == {  # which placement: in no table of "r"
        "O": {
            k: best.loc["Pt(111)", f"best_{k}"]
            for k in ("config_id", "site_type", "final_site_type")
        }
    }


def test_without_the_copies_rank_says_which_candidates_carry_the_offset(
    results: Path, tmp_path: Path
) -> None:
    rows = pd.read_parquet(results)
    older = tmp_path / "older.parquet"  # a table relaxed without --reference
    write_parquet(rows[rows.spin_mode != "reference"], older)
    ranked = runner.invoke(app, ["rank", str(older), "--reference", "Pt(111)"])
    assert ranked.exit_code == 0, ranked.output
    said = " ".join(ranked.output.split())
    assert "Ni(111) ran in the other spin context than the reference Pt(111) (spin off)" in said
    assert "relax --reference 'Pt(111)'" in said and "--retry-failed" in said
    table = pd.read_parquet(tmp_path / "ranked.parquet").set_index("candidate")
    assert table.loc["Ni(111)", "reference_spin"] == "off"


def test_reference_copies_need_a_known_surface_and_a_spin_conditioned_model(
    results: Path, tmp_path: Path
) -> None:
    configs = results.parent / "e"
    wrong = runner.invoke(app, ["relax", str(configs), "--out", str(tmp_path / "x.parquet"),
                                *RELAX, "--reference", "Pd(111)"])  # fmt: skip
    assert wrong.exit_code == 2
    assert wrong.output.strip().startswith("error: --reference: reference candidate 'Pd(111)'")
    assert "Ni(111), Pt(111)" in wrong.output and not (tmp_path / "x.parquet").exists()
    emt = tmp_path / "emt.parquet"  # one physics in both contexts: nothing to copy
    ran = runner.invoke(app, ["relax", str(configs), "--out", str(emt), "--model", "emt",
                              *RELAX, "--reference", "Pt(111)"])  # fmt: skip
    assert ran.exit_code == 0, ran.output
    assert not (pd.read_parquet(emt).spin_mode == "reference").any()


def test_a_failed_copy_slab_falls_back_to_the_reference_in_its_own_context(
    results: Path, tmp_path: Path
) -> None:
    """A copy's clean slab failing stopped the whole rank ("context mismatch")."""
    rows = pd.read_parquet(results)
    slab = (rows.spin_mode == "reference") & (rows.kind == "slab")
    rows.loc[slab, ["status", "energy"]] = ["failed", float("nan")]
    broken = tmp_path / "broken.parquet"
    write_parquet(rows, broken)
    ranked = runner.invoke(app, ["rank", str(broken), "--reference", "Pt(111)"])
    assert ranked.exit_code == 0, ranked.output
    assert "Ni(111) ran in the other spin context" in " ".join(ranked.output.split())
    table = pd.read_parquet(tmp_path / "ranked.parquet").set_index("candidate")
    assert table.loc["Ni(111)", "reference_spin"] == "off"


def test_a_selection_of_other_candidates_still_gets_the_reference_copies(
    results: Path, tmp_path: Path
) -> None:
    """`--system` of Ni alone refused the reference ("not in this run"); of Pt alone it made
    no copy (no other context among the selected rows)."""
    rows = pd.read_parquet(results)
    ni = rows.loc[(rows.bulk == "Ni") & (rows.kind == "adslab"), "system_id"].iloc[0]
    pt = rows.loc[(rows.bulk == "Pt") & (rows.kind == "adslab"), "system_id"].iloc[0]
    configs = results.parent / "e"
    for system, bulk in ((ni, "Ni"), (pt, "Pt")):
        out = tmp_path / f"{bulk}.parquet"
        ran = runner.invoke(app, ["relax", str(configs), "--out", str(out), *RELAX,
                                  "--system", system, "--reference", "Pt(111)"])  # fmt: skip
        assert ran.exit_code == 0, ran.output
        made = pd.read_parquet(out)
        copies = made[made.spin_mode == "reference"]
        assert set(copies.bulk) == {"Pt"} and set(copies.spin) == {"on"}, bulk
        assert len(copies) == 5  # Pt's clean slab and its four placements


def test_rank_warns_of_absolute_descriptors_across_the_contexts(
    results: Path, tmp_path: Path
) -> None:
    """The README said rank warns of them; it did only with --reference."""
    ranked = runner.invoke(app, ["rank", str(results), "--target", "O=2.0", "-o", str(tmp_path)])
    assert ranked.exit_code == 0, ranked.output
    said = " ".join(ranked.output.split())
    assert "Ni(111) ran spin-on and Pt(111) spin-off" in said


def test_a_campaign_compares_within_one_context_and_says_so(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        """\
name: ctx
candidates: [Pt, Ni]
facets: {miller: ["111"]}
slab: {min_slab_size: 4.0, vacuum: 10.0, min_ab: 5.0, max_terminations: 1}
adsorbates: [O]
placement: {mode: heuristic}
model: {name: bundled, spin: auto}
relax: {fmax: 0.1, steps: 60}
ranking:
  reference: {bulk: Pt, miller: "111"}
  descriptors:
    - {name: dE_O, adsorbate: O}
"""
    )
    out = tmp_path / "run"
    ran = runner.invoke(app, ["campaign", "run", str(recipe), "--out", str(out), "--no-progress"])
    assert ran.exit_code == 0, ran.output
    said = " ".join(ran.output.split())
    assert "ran in the other spin context" not in said  # the copies took the offset away
    board = pd.read_csv(out / "leaderboard.csv").set_index("candidate")
    assert board.loc["Ni(111)", "reference_spin"] == "on"
    rows = pd.read_parquet(out / "results.parquet")
    assert set(rows.loc[rows.spin_mode == "reference", "bulk"]) == {"Pt"}
    summary = (out / "summary.md").read_text()
    assert "Ni(111) ran spin-on and is compared with Pt(111) relaxed again spin-on" in summary
    assert "they leave out the error of the labels it learned from" in summary  # not DFT's std
    assert "e_ads is the model's absolute adsorption energy, against its own gas" in summary
    report = runner.invoke(app, ["report", str(out)])
    assert report.exit_code == 0, report.output
    html = (out / "report" / "index.html").read_text()
    assert "Ni(111) ran spin-on and is compared with Pt(111) relaxed again spin-on" in html
    assert "they leave out the error of the labels it learned from" in html
    assert "relaxed again in another spin context (see above) is not drawn" in html
