"""Energy bookkeeping: exact hand-set numbers, an EMT case, references files, bad inputs."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from test_analysis_helpers import emt_results, gas, hand_results, slab, with_heads

from catscreen.analysis import RankSettings, load_references, rank_results, read_results
from catscreen.analysis.rank import uncertainty_note
from catscreen.errors import CatscreenError
from catscreen.io import atoms_from_text, atoms_to_text, write_parquet

GASES = {"H2": (-6.8, 0.02), "H2O": (-14.2, 0.01)}


def hand(**kw) -> pd.DataFrame:
    return hand_results(
        {"Pt": -100.0},
        [("Pt", "O", "fcc", -106.5, 0.03), ("Pt", "H", "fcc", -103.6, 0.0)],
        GASES,
        slab_std=0.04,
        **kw,
    )


def test_exact_adsorption_energies_and_propagated_std():
    out = rank_results(hand())
    c = out.configs.set_index("adsorbate")
    # mu_O = E(H2O) - E(H2) = -7.4 -> E_ads = -106.5 + 100 + 7.4
    assert c.loc["O", "e_ads"] == pytest.approx(0.9)
    assert c.loc["O", "e_ads_std"] == pytest.approx(
        math.sqrt(0.03**2 + 0.04**2 + 0.01**2 + 0.02**2)
    )
    # mu_H = E(H2)/2 = -3.4 -> E_ads = -103.6 + 100 + 3.4; var(mu_H) = (0.5 * 0.02)^2
    assert c.loc["H", "e_ads"] == pytest.approx(-0.2)
    assert c.loc["H", "e_ads_std"] == pytest.approx(math.sqrt(0.04**2 + 0.01**2))
    assert out.metadata["settings"]["references"]["scheme"]["O"] == {"H2O": 1.0, "H2": -1.0}


def test_adsorption_std_is_the_spread_over_heads(tmp_path):
    """Each head's E_ads from each head's energies: errors the heads share between slab and
    adslab cancel, as they do in a real ensemble (their totals spread by ~0.3 eV in enumerate's
    cells, their E_ads by 0.02-0.15 eV), instead of adding up as independent errors."""
    common = [0.3, -0.3, 0.2, -0.2]  # what every head gets wrong on the metal, shared
    adslab = [c + d for c, d in zip(common, [0.02, -0.02, 0.0, 0.0], strict=True)]
    shifts = {
        "Pt slab": common,
        "Pt O": adslab,
        "Pt H": adslab,
        "H2": [0.01, -0.01, 0.0, 0.0],
        "H2O": [0.0, 0.0, 0.01, -0.01],
    }
    df = with_heads(hand(), shifts)
    c = rank_results(df).configs.set_index("adsorbate")
    # O: E_ads per head = (adslab - slab) - (H2O - H2) = [0.02, -0.02, 0, 0] - [-0.01, 0.01, 0.01, -0.01]
    expected = pd.Series([0.03, -0.03, -0.01, 0.01]).std()  # ddof 1, as the model's std
    assert c.loc["O", "e_ads_std"] == pytest.approx(expected)
    assert c.loc["O", "e_ads"] == pytest.approx(0.9)  # the mean is unchanged
    # H: adslab - slab - H2 / 2 = [0.02 - 0.005, -0.02 + 0.005, 0, 0]
    assert c.loc["H", "e_ads_std"] == pytest.approx(pd.Series([0.015, -0.015, 0, 0]).std())
    independent = math.sqrt(0.03**2 + 0.04**2 + 0.01**2 + 0.02**2)  # without heads: an overestimate
    assert c.loc["O", "e_ads_std"] < independent / 2
    # fixed potentials: their own std is independent of the model and adds in quadrature
    (tmp_path / "r.yaml").write_text("potentials:\n  O: {mu: -7.0, std: 0.1}\n  H: -3.0\n")
    refs = load_references(tmp_path / "r.yaml")
    fixed = rank_results(df, RankSettings(references=refs)).configs.set_index("adsorbate")
    per_head = pd.Series([0.02, -0.02, 0.0, 0.0]).std()
    assert fixed.loc["O", "e_ads_std"] == pytest.approx(math.sqrt(per_head**2 + 0.1**2))
    # a row without heads (CHGNet, an older results file): independent errors for its E_ads
    df.loc[df.adsorbate == "H2O", "energy_heads"] = None
    c = rank_results(df).configs.set_index("adsorbate")
    assert c.loc["O", "e_ads_std"] == pytest.approx(independent)
    assert c.loc["H", "e_ads_std"] == pytest.approx(pd.Series([0.015, -0.015, 0, 0]).std())


def test_emt_adsorption_energy_matches_raw_totals():
    df = emt_results(metals=("Pt",), placements=(("O", "fcc"),))
    out = rank_results(df)
    e = df.set_index("kind").energy
    gas = df[df.kind == "gas"].set_index("adsorbate").energy
    expected = e["adslab"] - e["slab"] - (gas["H2O"] - gas["H2"])
    assert out.configs.e_ads.iloc[0] == pytest.approx(expected)
    assert -3.0 < expected < 1.0  # EMT binds O on Pt(111)
    assert out.configs.anomalies.iloc[0] == ""


def test_site_elements_name_the_atoms_under_the_adsorbate():
    """On an alloy the site's shape alone ("fcc") hid whether O sat on Pt or on Ni."""
    from test_analysis_helpers import adslab, row

    df = hand_results({"PtNi": -50.0}, [], {"H2": (-6.8, 0.0), "H2O": (-14.2, 0.0)})
    clean = df[df.kind == "slab"].iloc[0].to_dict()
    placed = adslab("Pt", "O", "fcc")
    placed.symbols[8] = "Ni"  # one of the three fcc-site atoms (8, 9, 10)
    clean_atoms = slab("Pt")
    clean_atoms.symbols[8] = "Ni"
    clean["initial_structure"] = clean["final_structure"] = atoms_to_text(clean_atoms)
    rows = [*df[df.kind == "gas"].to_dict("records"), clean]
    rows.append(row("adslab", "PtNi", "O", placed, placed, -56.0, site="fcc"))
    moved = adslab("Pt", "O", "ontop", height=1.8)  # ends on top of atom 8, Ni
    moved.symbols[8] = "Ni"
    rows.append(row("adslab", "PtNi", "O", placed.copy(), moved, -55.0, site="fcc"))
    rows[-1]["config_id"] += "-moved"
    out = rank_results(pd.DataFrame.from_records(rows))
    configs = out.configs.set_index("config_id")
    first, second = configs.index.sort_values()
    assert configs.loc[first, "site_elements"] == "Pt2Ni"
    assert configs.loc[first, "final_site_elements"] == "Pt2Ni"
    assert configs.loc[second, "final_site_type"] == "ontop"
    assert configs.loc[second, "final_site_elements"] == "Ni"
    assert out.systems.best_site_elements.tolist() == ["Pt2Ni"]
    assert out.systems.best_final_site_elements.tolist() == ["Pt2Ni"]


def test_fixed_potentials_from_yaml_and_csv(tmp_path):
    (tmp_path / "r.yaml").write_text("potentials:\n  O: {mu: -7.0, std: 0.1}\n  H: -3.0\n")
    (tmp_path / "r.csv").write_text("element,mu,mu_std\nO,-7.0,0.1\nH,-3.0,0.0\n")
    for name in ("r.yaml", "r.csv"):
        out = rank_results(hand(), RankSettings(references=load_references(tmp_path / name)))
        c = out.configs.set_index("adsorbate")
        assert c.loc["O", "e_ads"] == pytest.approx(0.5)
        assert c.loc["O", "e_ads_std"] == pytest.approx(math.sqrt(0.03**2 + 0.04**2 + 0.1**2))
        assert c.loc["H", "e_ads"] == pytest.approx(-0.6)


def test_blank_numbers_in_a_references_file(tmp_path):
    """A blank cell reads as NaN: as a potential it is refused, as a std it is no error bar
    (the YAML form's missing `std`), never NaN spread through E_ads and the flags."""
    (tmp_path / "blank_std.csv").write_text("element,mu,mu_std\nO,-7.0,0.1\nH,-3.0,\n")
    refs = load_references(tmp_path / "blank_std.csv")
    out = rank_results(hand(), RankSettings(references=refs))
    assert out.configs.set_index("adsorbate").loc["H", "e_ads_std"] == pytest.approx(0.04)
    for name, text in [
        ("blank_mu.csv", "element,mu\nO,-7.0\nH,\n"),
        ("blank_coefficient.csv", "element,molecule,coefficient\nO,H2O,1\nO,H2,\n"),
        ("nan.yaml", "potentials:\n  O: {mu: .nan}\n"),
        ("negative_std.yaml", "potentials:\n  O: {mu: -7.0, std: -0.1}\n"),
    ]:
        (tmp_path / name).write_text(text)
        with pytest.raises(CatscreenError, match="no valid number for (H|O)"):
            load_references(tmp_path / name)


def test_scheme_from_csv(tmp_path):
    (tmp_path / "s.csv").write_text("element,molecule,coefficient\nO,H2O,1\nO,H2,-1\nH,H2,0.5\n")
    out = rank_results(hand(), RankSettings(references=load_references(tmp_path / "s.csv")))
    assert out.configs.set_index("adsorbate").loc["O", "e_ads"] == pytest.approx(0.9)


def test_failed_rows_are_excluded_and_counted():
    df = hand()
    df.loc[df.adsorbate == "H", "status"] = "failed"
    out = rank_results(df)
    assert list(out.configs.adsorbate) == ["O"]
    assert out.counts["failed"] == 1 and out.counts["failed_adslab"] == 1


def test_adslabs_of_a_failed_clean_slab_are_skipped():
    df = hand_results(
        {"Pt": -100.0, "Cu": -50.0},
        [("Pt", "O", "fcc", -106.5, 0), ("Cu", "O", "fcc", -57, 0)],
        GASES,
    )
    df.loc[(df.kind == "slab") & (df.bulk == "Cu"), "status"] = "failed"
    out = rank_results(df)
    assert list(out.configs.candidate) == ["Pt(111)"]
    assert out.counts["skipped_failed_slab"] == 1


def test_not_converged_is_kept_but_excluded_from_minima():
    df = hand_results(
        {"Pt": -100.0}, [("Pt", "O", "fcc", -106.5, 0), ("Pt", "O", "hcp", -107.0, 0)], GASES
    )
    df.loc[df.site_type == "hcp", "status"] = "not_converged"
    out = rank_results(df)
    assert out.systems.best_site_type.iloc[0] == "fcc"
    assert "not_converged" in out.configs.set_index("site_type").loc["hcp", "anomalies"]


def test_unconverged_references_make_their_placements_anomalous():
    """A too-high clean-slab or gas energy shifts every E_ads that subtracts it."""
    df = hand_results(
        {"Pt": -100.0, "Cu": -50.0},
        [("Pt", "O", "fcc", -106.5, 0), ("Cu", "O", "fcc", -57, 0), ("Cu", "H", "fcc", -53, 0)],
        GASES,
    )
    df.loc[(df.kind == "slab") & (df.bulk == "Cu"), "status"] = "not_converged"
    c = rank_results(df).configs.set_index(["candidate", "adsorbate"])
    assert c.loc[("Cu(111)", "O"), "anomalies"] == "slab_not_converged"
    assert c.loc[("Cu(111)", "O"), "anomalous"] and not c.loc[("Pt(111)", "O"), "anomalous"]

    df.loc[df.kind == "slab", "status"] = "converged"
    df.loc[(df.kind == "gas") & (df.adsorbate == "H2O"), "status"] = "not_converged"
    out = rank_results(df)
    c = out.configs.set_index(["candidate", "adsorbate"])
    assert c.loc[("Pt(111)", "O"), "anomalies"] == "gas_not_converged"  # O needs H2O
    assert not c.loc[("Cu(111)", "H"), "anomalous"]  # H needs only H2
    assert out.systems.set_index(["candidate", "adsorbate"]).loc[("Pt(111)", "O")].n_valid == 0


def test_a_collapsed_clean_slab_makes_its_placements_anomalous():
    """Two slab atoms 0.5 A apart in the relaxed clean slab (a hole in the potential): every
    E_ads subtracting that slab is suspect, though each adslab looks sound by itself."""
    df = hand_results(
        {"Pt": -100.0, "Cu": -50.0},
        [("Pt", "O", "fcc", -106.5, 0), ("Cu", "O", "fcc", -57, 0)],
        GASES,
    )
    idx = df.index[(df.kind == "slab") & (df.bulk == "Cu")][0]
    atoms = atoms_from_text(df.at[idx, "final_structure"])
    atoms.positions[1] = atoms.positions[0] + [0.5, 0.0, 0.0]
    df.at[idx, "final_structure"] = atoms_to_text(atoms)
    out = rank_results(df)
    c = out.configs.set_index(["candidate", "adsorbate"])
    # the adslab's own slab part is sound; its reference is not, which slab_overlapping says
    assert "slab_overlapping" in c.loc[("Cu(111)", "O"), "anomalies"].split(",")
    assert c.loc[("Cu(111)", "O"), "anomalous"] and not c.loc[("Pt(111)", "O"), "anomalous"]
    assert out.systems.set_index(["candidate", "adsorbate"]).loc[("Cu(111)", "O")].n_valid == 0


def test_failed_gas_reference_skips_what_needs_it():
    df = hand()
    df.loc[(df.kind == "gas") & (df.adsorbate == "H2O"), "status"] = "failed"
    out = rank_results(df)
    assert list(out.configs.adsorbate) == ["H"]
    assert out.counts["skipped_failed_gas"] == 1 and out.counts["failed"] == 1


@pytest.mark.parametrize("energy", [float("nan"), float("inf")])
def test_non_finite_energies_count_as_failed(energy):
    """Results written by another tool may say converged with no usable energy."""
    df = hand()
    df.loc[df.adsorbate == "H", "energy"] = energy
    out = rank_results(df)
    assert list(out.configs.adsorbate) == ["O"] and out.counts["failed_adslab"] == 1
    df = hand()
    df.loc[df.kind == "slab", "energy"] = energy
    with pytest.raises(CatscreenError, match="no adsorbate configurations left"):
        rank_results(df)


def _untagged(text: str) -> str:
    atoms = atoms_from_text(text)
    atoms.set_tags(0)
    return atoms_to_text(atoms)


def _strained(text: str) -> str:
    atoms = atoms_from_text(text)
    atoms.set_cell(atoms.cell * [1.02, 1.02, 1.0], scale_atoms=True)
    return atoms_to_text(atoms)


def _not_finite(text: str) -> str:
    atoms = atoms_from_text(text)
    atoms.positions[0, 0] = float("nan")
    return atoms_to_text(atoms)


def test_a_gas_row_that_failed_once_and_converged_once_is_used():
    """A rerun appended a converged row beside the failed one: the converged one counts, as
    for clean slabs, instead of skipping every placement that needs that molecule."""
    df = hand()
    failed = df[(df.kind == "gas") & (df.adsorbate == "H2O")].assign(status="failed")
    out = rank_results(pd.concat([failed, df], ignore_index=True))
    assert sorted(out.configs.adsorbate) == ["H", "O"] and out.counts["skipped_failed_gas"] == 0


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda df: df[df.kind != "slab"], "no clean slab row for slab_id Pt-111-0"),
        (
            lambda df: df[df.adsorbate != "H2O"],
            "no gas reference row for H2O in model emt (ase-emt), spin off",
        ),
        (lambda df: df.assign(spin=df.kind.map({"slab": "on"}).fillna("off")), "context mismatch"),
        (
            lambda df: df.assign(fidelity=df.kind.map({"gas": "emt"}).fillna("pbe")),
            "no gas reference row for",
        ),
        (
            lambda df: df.assign(model=["emt", "emt", "emt", "emt", "other"]),
            "results mix several model values",
        ),
        (lambda df: pd.concat([df, df[df.kind == "slab"]]), "duplicate clean slab rows"),
        (  # a copy would take two top-k places
            lambda df: pd.concat([df, df[df.adsorbate == "O"]]),
            "duplicate adslab rows for Pt-111-0-O-fcc",
        ),
        # the clean slab subtracted must be the adslab's slab: another one under the same
        # slab_id shifts E_ads by whole atoms' energies, with no anomaly to show it
        (
            lambda df: df.assign(
                final_structure=df.final_structure.where(
                    df.kind != "slab", atoms_to_text(slab("Cu"))
                )
            ),
            "adslab Pt-111-0-O-fcc: its slab is Pt12 but clean slab Pt-111-0-clean of the same "
            "slab_id is Cu12",
        ),
        (
            lambda df: df.assign(
                final_structure=df.final_structure.where(
                    df.kind != "slab", atoms_to_text(slab("Pt", size=(3, 3, 3)))
                )
            ),
            "is Pt27; their energies do not cancel",
        ),
        (
            lambda df: df.assign(
                final_structure=df.final_structure.where(
                    df.kind != "slab", df.final_structure.map(_strained)
                )
            ),
            "adslab Pt-111-0-O-fcc: its cell differs from clean slab Pt-111-0-clean's",
        ),
        (  # gas rows are read up front: DFT inputs are written from them after the tables
            lambda df: df.assign(
                final_structure=df.final_structure.where(df.adsorbate != "H2O", "junk")
            ),
            "cannot read final_structure of gas-H2O as extxyz",
        ),
        (
            lambda df: df.assign(
                final_structure=df.final_structure.where(
                    df.adsorbate != "H2", atoms_to_text(gas("H2O"))
                )
            ),
            "gas row gas-H2 is named H2 but holds H2O",
        ),
        (
            lambda df: df.assign(
                final_structure=df.final_structure.where(
                    df.kind != "adslab", df.final_structure.map(_not_finite)
                )
            ),
            "final_structure of Pt-111-0-O-fcc has non-finite positions",
        ),
        (lambda df: df.drop(columns=["energy_std"]), "lack required column(s): energy_std"),
        (
            lambda df: df.assign(kind=df.kind.replace("gas", "molecule")),
            "unknown kind(s): molecule",
        ),
        (
            lambda df: df.assign(
                final_structure=df.final_structure.where(df.kind != "adslab", "junk")
            ),
            "cannot read final_structure of Pt-111-0-O-fcc as extxyz",
        ),
        (
            lambda df: df.assign(
                initial_structure=df.initial_structure.where(
                    df.kind != "adslab", df.final_structure.map(_untagged)
                )
            ),
            "adslab Pt-111-0-O-fcc has no adsorbate atoms (tag 2)",
        ),
        (
            lambda df: df.assign(initial_structure=df.initial_structure.where(df.kind != "adslab")),
            "initial_structure of Pt-111-0-O-fcc is missing",
        ),
        (
            lambda df: df.assign(final_structure=df.final_structure.where(df.kind != "slab", "")),
            "final_structure of Pt-111-0-clean is missing",
        ),
        # another tool's table: empty or text cells name their row, not a traceback
        (lambda df: df.assign(site_atoms="a,b"), "site_atoms of Pt-111-0-O-fcc is 'a,b'"),
        (
            lambda df: df.assign(
                energy_std=df.energy_std.astype(object).where(df.kind != "slab", "x")
            ),
            "energy_std of Pt-111-0-clean is 'x', not a number",
        ),
        (
            lambda df: df.assign(system_id=df.system_id.where(df.kind != "adslab")),
            "system_id of Pt-111-0-O-fcc is empty",
        ),
        (
            lambda df: df.assign(kind=df.kind.where(df.kind != "adslab")),
            "kind of Pt-111-0-O-fcc is empty (enumerate writes it; for your own extxyz set kind",
        ),
        (lambda df: df.assign(model=None), "model of gas-H2 is empty"),
        (
            lambda df: df.assign(energy_heads="[-6.8, -6.7]"),
            "energy_heads of gas-H2 is '[-6.8, -6.7]', not a list of energies",
        ),
    ],
)
def test_bad_inputs_name_what_is_wrong(mutate, message):
    with pytest.raises(CatscreenError, match=None) as err:
        rank_results(mutate(hand()))
    assert message in str(err.value)


def test_element_missing_from_scheme(tmp_path):
    (tmp_path / "r.yaml").write_text("elements:\n  O: {H2O: 1.0, H2: -1.0}\n")
    with pytest.raises(CatscreenError, match="no element H needed by adsorbate H"):
        rank_results(hand(), RankSettings(references=load_references(tmp_path / "r.yaml")))


def test_an_element_given_twice_in_a_references_csv_is_refused(tmp_path):
    """The last row won silently."""
    (tmp_path / "p.csv").write_text("element,mu\nO,-7.0\nH,-3.4\nO,-5.0\n")
    with pytest.raises(CatscreenError, match="p.csv: O is given twice"):
        load_references(tmp_path / "p.csv")
    (tmp_path / "s.csv").write_text(
        "element,molecule,coefficient\nO,H2O,1\nO,H2,-1\nH,H2,0.5\nO,H2,-1\n"
    )
    with pytest.raises(CatscreenError, match="s.csv: O H2 is given twice"):
        load_references(tmp_path / "s.csv")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nonsense: 1\n", "needs an 'elements:' or 'potentials:'"),
        ("elements: [1, 2\n", r"r.yaml:2: invalid YAML: expected ',' or '\]'"),
        ("potentials:\n  O: -1.0\n  O: -2.0\n", "r.yaml:3: invalid YAML: duplicate key 'O'"),
        # a scheme must make one atom of its element and nothing else
        ("elements:\n  O: {H2O: 1.0}\n", r"O = \+1 H2O gives \+2 H \+1 O, not one O atom"),
        ("elements:\n  H: {H2: 1.0}\n", r"H = \+1 H2 gives \+2 H, not one H atom"),
        ("elements:\n  O: {water: 1.0}\n", "'water' \\(for O\\) is not a molecule formula"),
        ("elements:\n  H: {H2: 0.5}\npotentials:\n  O: -100\n", "gives both"),
    ],
)
def test_bad_references_files(tmp_path, text, message):
    (tmp_path / "r.yaml").write_text(text)
    with pytest.raises(CatscreenError, match=message):
        load_references(tmp_path / "r.yaml")
    with pytest.raises(CatscreenError, match="references file not found"):
        load_references(tmp_path / "missing.yaml")


def test_corrupt_and_incomplete_parquet(tmp_path):
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(CatscreenError, match="cannot read"):
        read_results(tmp_path / "bad.parquet")
    write_parquet(hand().drop(columns=["final_structure"]), tmp_path / "partial.parquet")
    with pytest.raises(CatscreenError, match="lacks required column"):
        read_results(tmp_path / "partial.parquet")
    # pandas' set_index(...).to_parquet keeps a column as the index: the checks passed on
    # the file's columns, then callers met a KeyError
    hand().set_index("config_id").to_parquet(tmp_path / "indexed.parquet")
    again = read_results(tmp_path / "indexed.parquet")
    assert "config_id" in again.columns and list(again.config_id) == list(hand().config_id)
    from catscreen.io import read_parquet

    only = read_parquet(tmp_path / "indexed.parquet", ("config_id",), columns=["config_id"])
    assert list(only.columns) == ["config_id"]


def test_an_absurd_finite_energy_is_anomalous_not_a_descriptor():
    """-1e30 eV became E_O and ranked every other candidate alphabetically; 1000 eV squeezed
    the energy-spread figure."""
    df = hand_results(
        {"Pt": -100.0, "Cu": -100.0},
        [("Pt", "O", "fcc", -1e30, 0.0), ("Pt", "O", "hcp", -106.5, 0.0),
         ("Cu", "O", "fcc", 894.0, 0.0), ("Cu", "O", "hcp", -106.0, 0.0)],
        GASES,
    )  # fmt: skip
    out = rank_results(df)
    c = out.configs.set_index(["bulk", "site_type"])
    assert c.loc[("Pt", "fcc"), "anomalies"] == "implausible_energy"
    assert c.loc[("Cu", "fcc"), "anomalies"] == "implausible_energy"
    assert not c.loc[("Pt", "fcc"), "valid"] and not c.loc[("Cu", "fcc"), "valid"]
    minima = out.systems.set_index("bulk").e_ads_min
    assert minima["Pt"] == pytest.approx(0.9) and minima["Cu"] == pytest.approx(1.4)
    # the other placements are untouched (the bound is 10 eV per adsorbate atom)
    assert c.loc[("Pt", "hcp"), "anomalies"] == ""


def test_fixed_potentials_put_the_zero_where_the_user_chose(tmp_path):
    """O at 0 eV leaves O on W near -10 eV: a real E_ads there, only blow-ups are implausible."""
    (tmp_path / "mu.yaml").write_text("potentials: {O: 0.0}\n")
    df = hand_results(
        {"W": -100.0, "Pt": -100.0},
        [("W", "O", "fcc", -110.3, 0.0), ("Pt", "O", "fcc", -1e30, 0.0),
         ("Pt", "O", "hcp", -105.0, 0.0)],
        GASES,
    )  # fmt: skip
    out = rank_results(df, RankSettings(references=load_references(tmp_path / "mu.yaml")))
    c = out.configs.set_index(["bulk", "site_type"])
    assert c.loc[("W", "fcc"), "e_ads"] == pytest.approx(-10.3)
    assert c.loc[("W", "fcc"), "anomalies"] == "" and c.loc[("W", "fcc"), "valid"]
    assert c.loc[("Pt", "fcc"), "anomalies"] == "implausible_energy"


def test_an_empty_energy_std_is_counted_not_silently_zero():
    """NaN stds became 0 and the uncertainty flags of those rows vanished without a word."""
    df = hand()
    df.loc[df.kind == "slab", "energy_std"] = math.nan
    out = rank_results(df, RankSettings(uncertainty_threshold=0.05))
    assert out.counts["std_unknown"] == 2
    assert uncertainty_note(out) == (
        "2 of 2 placements have an empty energy_std (and no head energies) in a row they need: "
        "taken as 0, their uncertainty flags may miss"
    )
    c = out.configs.set_index("adsorbate")  # the known parts still count
    assert c.loc["O", "e_ads_std"] == pytest.approx(math.sqrt(0.03**2 + 0.01**2 + 0.02**2))
    assert uncertainty_note(rank_results(hand())) is None


def test_a_reference_whose_gas_failed_is_not_called_absent():
    """ "reference candidate 'Pt(111)' is not in this run" when only its gas reference failed."""
    df = hand_results(
        {"Pt": -100.0, "Cu": -90.0},
        [("Pt", "O", "fcc", -106.5, 0.0), ("Cu", "H", "fcc", -93.6, 0.0)],
        GASES,
    )
    df.loc[(df.kind == "gas") & (df.adsorbate == "H2O"), "status"] = "failed"
    with pytest.raises(CatscreenError, match="'Pt.111.' has no adsorption energy: its placements"):
        rank_results(df, RankSettings(reference_candidate="Pt(111)"))
    with pytest.raises(CatscreenError, match="'Au.111.' is not in this run; candidates: Cu"):
        rank_results(df, RankSettings(reference_candidate="Au(111)"))
