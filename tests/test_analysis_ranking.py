"""Candidate names, targets, a reference candidate, and DFT flags with their reasons."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from test_analysis_helpers import hand_results, with_heads

from catscreen.analysis import (
    RankSettings,
    Target,
    parse_target,
    parse_targets,
    rank_results,
    uncertainty_note,
    write_rank_outputs,
)
from catscreen.analysis.candidates import Candidate, find_candidate, parse_candidate
from catscreen.errors import CatscreenError

# mu_H = -3.4, mu_O = -7.4 (from these gases), so E_ads = E - E_slab + 3.4 n_H + 7.4 n_O
GASES = {"H2": (-6.8, 0.0), "H2O": (-14.2, 0.0)}
SLABS = {"Pt": -100.0, "Cu": -50.0, "Ni": -70.0, "Ru": -90.0}
E_O = {"Pt": -0.5, "Cu": -1.0, "Ni": -1.5, "Ru": -2.0}
E_H = {"Pt": -0.3, "Cu": 0.1, "Ni": -0.5, "Ru": -0.6}


def table(std: float = 0.0, extra=()):
    adslabs = [(b, "O", "fcc", SLABS[b] - 7.4 + E_O[b], std) for b in SLABS]
    adslabs += [(b, "O", "hcp", SLABS[b] - 7.4 + E_O[b] + 0.2, std) for b in SLABS]
    adslabs += [(b, "H", "fcc", SLABS[b] - 3.4 + E_H[b], std) for b in SLABS]
    adslabs += list(extra)
    return hand_results(SLABS, adslabs, GASES, miller={"Ru": "0,0,1"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Pt(111)", Candidate("Pt", (1, 1, 1), 0)),
        ("Pt(1,1,1)", Candidate("Pt", (1, 1, 1), 0)),
        ("Pt (1 1 1)", Candidate("Pt", (1, 1, 1), 0)),
        ("Pt 1,1,1 t0", Candidate("Pt", (1, 1, 1), 0)),
        ("Pt(111)t2", Candidate("Pt", (1, 1, 1), 2)),
        ("Pt(1-10)", Candidate("Pt", (1, -1, 0), 0)),
        ("Ru(0001)", Candidate("Ru", (0, 0, 1), 0)),
        ("Ru(10-10)", Candidate("Ru", (1, 0, 0), 0)),
        ("Ru(1,0,-1,0)", Candidate("Ru", (1, 0, 0), 0)),
    ],
)
def test_candidate_spellings(text, expected):
    assert parse_candidate(text) == expected


def test_candidate_names_round_trip():
    for cand in (
        Candidate("Ru", (0, 0, 1)),
        Candidate("Pt", (1, -1, 0), 1),
        Candidate("Pt", (1, 0, 12)),
    ):
        assert parse_candidate(cand.name) == cand
    assert Candidate("Pt", (1, -1, 0), 1).name == "Pt(1-10)t1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Ru(0011)", "inconsistent"),
        ("Ru(11)", "cannot read Miller"),
        ("(111)", "cannot read candidate"),
        ("Pt(000)", "cannot read Miller"),
    ],
)
def test_bad_candidate_spellings(text, message):
    with pytest.raises(CatscreenError, match=message):
        parse_candidate(text)


def test_unknown_reference_candidate_lists_the_known_ones():
    with pytest.raises(CatscreenError, match=r"not in this run; candidates: Pt\(111\)"):
        find_candidate("Au(111)", [Candidate("Pt", (1, 1, 1))])


def test_targets_parse():
    assert parse_target("N=-0.5:0.2", 0.3) == ("N", Target(-0.5, 0.2))
    assert parse_target(" OH = 0.1 ", 0.3) == ("OH", Target(0.1, 0.3))
    for bad in ("N", "N=abc", "N=-0.5:", "N=-0.5:0", "=1:0.1", "N=1e999", "N=-0.5:1e999"):
        with pytest.raises(CatscreenError, match="target"):
            parse_target(bad, 0.2)


def test_targets_made_in_python_are_checked():
    """Target(-1, 0) put every candidate at distance inf, a NaN value at NaN, and a bare
    float for a Target an AttributeError deep in the ranking."""
    for value, tolerance in ((-1.0, 0.0), (float("nan"), 0.2), (-1.0, float("inf"))):
        with pytest.raises(CatscreenError, match="the value must be finite, the tolerance"):
            Target(value, tolerance)
    with pytest.raises(CatscreenError, match=r"targets\['O'\] is -1.0, not a Target"):
        RankSettings(targets={"O": -1.0})  # type: ignore[dict-item]


def test_an_adsorbate_targeted_twice_is_refused():
    """--target O=-0.5 --target O=-2 kept only the last."""
    assert parse_targets(["O=-0.5", "H=0.1:0.3"], 0.2) == {
        "O": Target(-0.5, 0.2),
        "H": Target(0.1, 0.3),
    }
    with pytest.raises(CatscreenError, match="--target O is given twice"):
        parse_targets(["O=-0.5", "O=-2"], 0.2)


def test_tied_placements_give_one_minimum_whatever_the_row_order():
    """Results arrive in batch-completion order: a tie went to whichever row came first, and
    the systems table and the per-placement ranks could name different minima."""
    tie = [("Pt", "O", "ontop", SLABS["Pt"] - 7.4 + E_O["Pt"], 0.0)]  # ties Pt fcc exactly
    df = table(extra=tie)
    df = df[(df.kind != "adslab") | (df.bulk == "Pt")]
    picks = set()
    for rows in (df, df.iloc[::-1], df.sample(frac=1.0, random_state=3)):
        out = rank_results(rows.reset_index(drop=True), RankSettings(top_k=1))
        (best,) = out.systems[out.systems.adsorbate == "O"].best_config_id
        (minimum,) = out.configs.config_id[out.configs.is_minimum & (out.configs.adsorbate == "O")]
        assert best == minimum
        picks.add(best)
    assert len(picks) == 1


def test_a_model_without_an_ensemble_is_named_as_giving_no_uncertainty():
    """std 0 everywhere is unknown, not certain: the uncertainty and flip flags cannot fire."""
    note = uncertainty_note(rank_results(table()))
    assert note is not None and "model emt gives no uncertainty" in note
    assert uncertainty_note(rank_results(table(std=0.05))) is None


def test_minima_sites_and_spread():
    out = rank_results(table())
    pt_o = out.systems.set_index(["candidate", "adsorbate"]).loc[("Pt(111)", "O")]
    assert pt_o.e_ads_min == pytest.approx(-0.5)
    assert pt_o.best_site_type == "fcc"
    assert pt_o.e_ads_spread == pytest.approx(0.2)
    assert set(out.ranked.candidate) == {"Pt(111)", "Cu(111)", "Ni(111)", "Ru(001)"}
    assert out.ranked.distance.isna().all()


def test_ranking_with_two_targets():
    settings = RankSettings(targets={"O": Target(-1.0, 0.2), "H": Target(0.0, 0.4)})
    out = rank_results(table(), settings)
    expected = {b: math.hypot((E_O[b] + 1.0) / 0.2, E_H[b] / 0.4) for b in SLABS}
    order = sorted(expected, key=expected.get)
    assert [c.split("(")[0] for c in out.ranked.candidate] == order
    got = dict(zip(out.ranked.bulk, out.ranked.distance, strict=True))
    assert got == pytest.approx(expected)
    assert list(out.ranked["rank"]) == [1, 2, 3, 4]


def test_unknown_target_adsorbate():
    with pytest.raises(CatscreenError, match="target adsorbate"):
        rank_results(table(), RankSettings(targets={"N": Target(0, 0.1)}))


def test_reference_candidate_cancels_offsets():
    settings = RankSettings(reference_candidate="Ru(0001)", default_tolerance=0.5)
    out = rank_results(table(), settings)
    r = out.ranked.set_index("candidate")
    assert r.loc["Ni(111)", "rel_O"] == pytest.approx(0.5)
    assert r.loc["Ru(001)", "distance"] == 0 and r.loc["Ru(001)", "is_reference"]
    assert out.ranked.candidate.iloc[1] == "Ni(111)"  # closest to Ru: (0.5, 0.1)
    # a constant shift of mu_O (another O reference) changes no relative descriptor
    shifted = table()
    shifted.loc[shifted.adsorbate == "H2O", "energy"] += 0.7
    again = rank_results(shifted, settings).ranked.set_index("candidate")
    assert again.rel_O.to_dict() == pytest.approx(r.rel_O.to_dict())
    assert again.loc["Ni(111)", "E_O"] == pytest.approx(r.loc["Ni(111)", "E_O"] - 0.7)


def test_reference_without_a_valid_minimum_is_an_error():
    df = table()
    df.loc[(df.bulk == "Ru") & (df.adsorbate == "O"), "status"] = "not_converged"
    with pytest.raises(CatscreenError, match="reference Ru\\(001\\) has no valid minimum for O"):
        rank_results(df, RankSettings(reference_candidate="Ru(0001)"))
    # a target on H alone does not need the reference's O
    settings = RankSettings(reference_candidate="Ru(0001)", targets={"H": Target(0.0, 0.2)})
    assert rank_results(df, settings).ranked.candidate.iloc[0] == "Ru(001)"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"default_tolerance": 0.0}, "tolerance must be positive"),
        ({"bond_tolerance": -1.0}, "bond tolerance must be positive"),
        ({"uncertainty_threshold": 0.0}, "uncertainty threshold must be positive"),
        ({"top_k": -1}, "not negative"),
        ({"flip_sigma": float("nan")}, "--flip-sigma must be finite"),  # accepted: no flip flag
        ({"uncertainty_threshold": float("inf")}, "must be positive and finite"),
        ({"bond_tolerance": 60.0}, "at most 3 .AdsorbML's cutoffs"),  # 7 GB, minutes, no end
    ],
)
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(CatscreenError, match=message):
        RankSettings(**kwargs)


def test_top_k_flags_with_reasons():
    out = rank_results(table(), RankSettings(top_k=1))
    flagged = out.flagged
    assert set(flagged.site_type) == {"fcc"} and len(flagged) == 8
    assert flagged.flag_reasons.str.startswith("top-1: rank 1 of").all()
    assert out.metadata["settings"]["top_k"] == 1


def test_high_uncertainty_flag():
    """Only where the placement could be its system's minimum: 26 uncertain placements far
    above theirs (the ammonia recipe's bottom-ranked alloys) changed no descriptor."""
    noisy = ("Pt", "O", "bridge", SLABS["Pt"] - 7.4 + 0.0, 0.4)  # 0.5 eV above the minimum
    far = ("Pt", "O", "ontop", SLABS["Pt"] - 7.4 + 0.5, 0.4)  # 1.0 eV above: beyond 2 std
    out = rank_results(table(extra=[noisy, far]), RankSettings(top_k=0, uncertainty_threshold=0.15))
    assert list(out.flagged.site_type) == ["bridge"]
    assert out.flagged.flag_reasons.iloc[0] == (
        "high uncertainty: E_ads std 0.4000 > 0.15 eV, within 2 std of its system's minimum"
    )
    assert out.flagged.flag_high_uncertainty.all() and not out.flagged.flag_top_k.any()


def test_placements_that_ended_in_one_minimum_are_flagged_once():
    """Top-2 sent two starts that relaxed into one hollow 0.0 meV apart (Ni(111) N bridge and
    ontop) to DFT twice; the next distinct placement is flagged instead."""
    from test_analysis_helpers import adslab, row

    df = table()
    twin = adslab("Pt", "O", "fcc")  # a bridge start that ended in the fcc hollow
    start = adslab("Pt", "O", "bridge")
    e = SLABS["Pt"] - 7.4 + E_O["Pt"] + 0.001
    df = pd.concat(
        [df, pd.DataFrame([row("adslab", "Pt", "O", start, twin, e, site="bridge")])],
        ignore_index=True,
    )
    # the other hollow 2 meV above: the same three atoms in a 2x2 cell, another place
    hcp = adslab("Pt", "O", "hcp")
    other = row("adslab", "Pt", "O", hcp, hcp, e + 0.001, site="ontop")
    df = pd.concat([df, pd.DataFrame([other])], ignore_index=True)
    out = rank_results(df, RankSettings(top_k=2))
    pt = out.configs[(out.configs.candidate == "Pt(111)") & (out.configs.adsorbate == "O")]
    pt = pt.set_index("site_type")
    assert pt.loc["bridge", "duplicate_of"] == pt.loc["fcc", "config_id"]
    assert (pt.drop(index="bridge").duplicate_of == "").all()
    flags = pt.flag_top_k.to_dict()
    assert flags == {"fcc": True, "hcp": False, "bridge": False, "ontop": True}


def test_one_minimum_reached_in_two_cells_is_flagged_once():
    """A bridge start that ended in the next primitive cell's fcc hollow is the fcc start's
    minimum (Co(0001) and Fe(110) H: top-2 sent both to DFT); the hcp hollow one cell over is
    not: the second layer tells them apart."""
    from test_analysis_helpers import adslab, row

    from catscreen.analysis.flags import _same_place
    from catscreen.io import atoms_to_text

    fcc, hcp = adslab("Pt", "H", "fcc"), adslab("Pt", "H", "hcp")
    over, hcp_over = _moved(fcc, 1), _moved(hcp, 2)  # H one primitive vector over
    half = _moved(fcc, 1, 0.25)  # H half a primitive vector over: no translation of the surface
    same = [atoms_to_text(s) for s in (fcc, over, hcp, hcp_over, half)]
    assert _same_place(same[0], same[1]) and _same_place(same[2], same[3])
    assert not _same_place(same[0], same[3]) and not _same_place(same[0], same[4])
    # half a 2x2 cell over, the nearest image of C's move and of O's can point opposite ways
    co = adslab("Pt", "CO", "fcc")
    tilted = co.copy()
    c, o = np.flatnonzero(co.get_tags() == 2)
    along = co.cell[0] / np.linalg.norm(co.cell[0])
    tilted.positions[c] += co.cell[0] / 2 + 0.05 * along
    tilted.positions[o] += co.cell[0] / 2 - 0.05 * along
    assert _same_place(atoms_to_text(co), atoms_to_text(tilted))

    df = table()
    e = SLABS["Pt"] - 7.4 + E_O["Pt"]
    extra = [
        row("adslab", "Pt", "O", adslab("Pt", "O", "bridge"), start, e + de, site=site)
        for site, start, de in (
            ("fcc", _moved(adslab("Pt", "O", "fcc"), 0), 0.0),
            ("bridge", _moved(adslab("Pt", "O", "fcc"), 1), 0.001),
            ("hcp", _moved(adslab("Pt", "O", "hcp"), 1), 0.002),
        )
    ]
    df = df[~((df.bulk == "Pt") & (df.adsorbate == "O"))]
    df = pd.concat([df, pd.DataFrame(extra)], ignore_index=True)
    out = rank_results(df, RankSettings(top_k=2))
    pt = out.configs[(out.configs.candidate == "Pt(111)") & (out.configs.adsorbate == "O")]
    pt = pt.set_index("site_type")
    assert pt.loc["bridge", "duplicate_of"] == pt.loc["fcc", "config_id"]
    assert pt.loc["hcp", "duplicate_of"] == ""
    assert pt.flag_top_k.to_dict() == {"fcc": True, "bridge": False, "hcp": True}
    # "rank 3" of a top-2 read like a bug: the reason says which minimum it is
    assert pt.loc["hcp", "flag_reasons"].startswith(
        "top-2: rank 3 of 3 valid placements, minimum 2 of 2 (a lower placement is a duplicate)"
    )
    assert pt.loc["fcc", "flag_reasons"] == "top-2: rank 1 of 3 valid placements"


def _moved(atoms, axis: int, part: float = 0.5):
    """`atoms` with its adsorbate one primitive vector of the 2x2 cell (`part` of the cell
    vector) along cell axis `axis` over (0: as is); the slab stays, as its fixed layers do."""
    out = atoms.copy()
    if axis:
        ads = out.get_tags() == 2
        out.positions[ads] += atoms.cell[axis - 1] * part
        out.wrap()
    return out


def test_rank_flip_flag_between_close_candidates():
    settings = RankSettings(targets={"O": Target(-1.2, 0.2)}, top_k=0, uncertainty_threshold=1.0)
    # Cu at -1.0 and Ni at -1.5: d = 1.0 and 1.5; std 0.1 eV -> sigma_d 0.5 each, gap 0.5 < 0.71
    out = rank_results(table(std=0.1), settings)
    flips = out.flagged[out.flagged.flag_rank_flip]
    assert set(flips.candidate) >= {"Cu(111)", "Ni(111)"}
    assert (flips.adsorbate == "O").all() and flips.is_minimum.all()
    cu = flips.set_index("candidate").loc["Cu(111)", "flag_reasons"]
    assert "ranking could flip with Ni(111) (distance gap 0.500 < 1 sigma of the gap, 0.7" in cu
    # with no uncertainty nothing can flip
    assert not rank_results(table(), settings).flagged.flag_rank_flip.any()


def test_anomalies_excluded_from_minima_unless_kept():
    df = table()
    idx = df.index[(df.bulk == "Pt") & (df.site_type == "hcp")][0]
    from catscreen.io import atoms_from_text, atoms_to_text

    atoms = atoms_from_text(df.at[idx, "final_structure"])
    atoms.positions[-1, 2] += 5.0  # desorbed, and the lowest energy
    df.at[idx, "final_structure"] = atoms_to_text(atoms)
    df.at[idx, "energy"] -= 1.0
    out = rank_results(df)
    pt = out.systems.set_index(["candidate", "adsorbate"]).loc[("Pt(111)", "O")]
    assert pt.e_ads_min == pytest.approx(-0.5) and pt.n_anomalous == 1
    kept = rank_results(df, RankSettings(keep_anomalies=True)).systems.set_index(
        ["candidate", "adsorbate"]
    )
    assert kept.loc[("Pt(111)", "O"), "e_ads_min"] == pytest.approx(-1.3)


def test_overlapping_placement_is_not_a_minimum():
    """A relaxed O sitting 1.0 A above a Pt atom (a hole in the potential, below the relax
    guard's reach in a foreign results file) with the lowest energy is flagged, not ranked."""
    from catscreen.io import atoms_from_text, atoms_to_text

    df = table()
    idx = df.index[(df.bulk == "Pt") & (df.site_type == "hcp")][0]
    atoms = atoms_from_text(df.at[idx, "final_structure"])
    atoms.positions[-1] = atoms.positions[9] + [0.0, 0.0, 1.0]
    df.at[idx, "final_structure"] = atoms_to_text(atoms)
    df.at[idx, "energy"] -= 1.0
    out = rank_results(df)
    row = out.configs.set_index(["candidate", "adsorbate", "site_type"]).loc[
        ("Pt(111)", "O", "hcp")
    ]
    assert row.overlapping and row.anomalous and "overlapping" in row.anomalies.split(",")
    pt = out.systems.set_index(["candidate", "adsorbate"]).loc[("Pt(111)", "O")]
    assert pt.e_ads_min == pytest.approx(-0.5) and pt.n_anomalous == 1


def test_two_spin_contexts_of_one_system_are_not_mixed():
    off = table()
    on = off.assign(spin="on", config_id=off.config_id + "-on")
    on.loc[on.kind == "adslab", "energy"] -= 0.5  # spin on binds more: must not be the minimum
    with pytest.raises(CatscreenError, match="several spin contexts"):
        rank_results(pd.concat([off, on], ignore_index=True))


def test_a_system_is_one_adsorbate_on_one_slab():
    """Ids from another tool that join placements of two slabs would make one minimum of both;
    two slabs of one facet (2x2 and 3x3 cells) are named as such, not as spin contexts."""
    df = table()
    pt = (df.kind == "adslab") & (df.bulk == "Pt") & (df.adsorbate == "O")
    cu = (df.kind == "adslab") & (df.bulk == "Cu") & (df.adsorbate == "O")
    shared = df.assign(system_id=df.system_id.mask(cu, df.system_id[pt].iloc[0]))
    with pytest.raises(
        CatscreenError, match=r"holds placements of 2 slab\(s\) \(Cu\(111\) \+ O; Pt"
    ):
        rank_results(shared)
    pt_rows = df[df.bulk == "Pt"]
    bigger = pt_rows.assign(
        slab_id=pt_rows.slab_id + "-3x3",
        system_id=pt_rows.system_id + "-3x3",
        config_id=pt_rows.config_id + "-3x3",
    )
    with pytest.raises(CatscreenError, match=r"Pt\(111\) \+ (H|O) appears on 2 slabs"):
        rank_results(pd.concat([df, bigger], ignore_index=True))
    split = df.assign(system_id=df.system_id.mask(pt & (df.site_type == "hcp"), "Pt-O-second"))
    with pytest.raises(CatscreenError, match=r"Pt\(111\) \+ O appears under several system ids"):
        rank_results(split)


def test_relative_descriptor_std_is_the_spread_over_heads():
    """Relative to a reference candidate, the gas references' head errors cancel exactly: the
    std is the spread of the per-head difference, not two candidates' stds as independent."""
    gas = [0.3, -0.3, 0.2, -0.2]  # each head's error on H2O: shifts every E_O of that head
    ni, ru = [0.02, -0.02, 0.0, 0.0], [0.0, 0.01, 0.0, -0.01]
    df = with_heads(table(), {"H2O": gas, "Ni O": ni, "Ru O": ru})
    df["energy_std"] = [pd.Series(h).std() for h in df.energy_heads]  # as the model reports it
    settings = RankSettings(reference_candidate="Ru(0001)", targets={"O": Target(0.5, 0.2)})
    out = rank_results(df, settings)
    systems = out.systems.set_index(["candidate", "adsorbate"])
    # E_O per head = adslab - slab - (H2O - H2): the Ni minimum's heads are -1.5 + ni - gas
    assert list(systems.loc[("Ni(111)", "O"), "e_ads_min_heads"]) == pytest.approx(
        [-1.5 + a - g for a, g in zip(ni, gas, strict=True)]
    )
    r = out.ranked.set_index("candidate")
    diff = pd.Series(ni) - pd.Series(ru)
    assert r.loc["Ni(111)", "rel_std_O"] == pytest.approx(diff.std())  # ddof 1
    assert r.loc["Ni(111)", "rel_std_O"] < 0.1 * r.loc["Ni(111)", "std_O"]  # std_O carries gas
    assert r.loc["Ru(001)", "rel_std_O"] == 0.0
    # one target: d_h = |rel_O,h - 0.5| / 0.2 to first order, its spread is sigma_d
    assert r.loc["Ni(111)", "distance_std"] == pytest.approx(diff.std() / 0.2)
    # without heads on the reference, independent errors as before
    df.loc[(df.bulk == "Ru") & (df.adsorbate == "O"), "energy_heads"] = None
    r = rank_results(df, settings).ranked.set_index("candidate")
    ru_std = r.loc["Ru(001)", "std_O"]
    assert r.loc["Ni(111)", "rel_std_O"] == pytest.approx(
        math.hypot(r.loc["Ni(111)", "std_O"], ru_std)
    )
    assert ru_std > 0.2  # the independent formula keeps the gas error in it


def test_distance_std_follows_errors_shared_between_descriptors():
    """O and H on one slab share its heads' errors: a slab error moves both descriptors, and
    the distance moves by the sum of their signed effects, not by their quadrature."""
    slab = [0.1, -0.1, 0.05, -0.05]  # the Cu slab's head errors: E_ads,h = E_ads - slab_h
    df = with_heads(table(), {"Cu slab": slab})
    # Cu: E_O -1.0 sits above its target, E_H 0.1 below its own: z_O = 1, z_H = -0.5
    targets = {"O": Target(-1.2, 0.2), "H": Target(0.3, 0.4)}
    out = rank_results(df, RankSettings(targets=targets))
    cu = out.ranked.set_index("candidate").loc["Cu(111)"]
    z_o, z_h, d = 1.0, -0.5, math.hypot(1.0, 0.5)
    per_head = d + (z_o / 0.2 + z_h / 0.4) * -pd.Series(slab) / d
    assert list(cu.distance_heads) == pytest.approx(list(per_head))
    assert cu.distance_std == pytest.approx(per_head.std())
    independent = math.hypot(z_o * cu.std_O / 0.2, z_h * cu.std_H / 0.4) / d
    assert cu.distance_std == pytest.approx(abs(z_o / 0.2 + z_h / 0.4) / d * pd.Series(slab).std())
    # O sits above its target and H below: a shared shift brings one closer and the other
    # farther, so the two effects partly cancel where the independent formula adds them
    assert cu.distance_std < 0.8 * independent
    # one descriptor without heads (its adslab row lacks them): every error independent
    df.loc[(df.bulk == "Cu") & (df.adsorbate == "H"), "energy_heads"] = None
    cu = (
        rank_results(df, RankSettings(targets=targets)).ranked.set_index("candidate").loc["Cu(111)"]
    )
    assert cu.distance_heads is None
    assert cu.distance_std == pytest.approx(
        math.hypot(z_o * cu.std_O / 0.2, z_h * cu.std_H / 0.4) / d
    )


def test_rank_flip_uses_the_spread_of_the_gap_over_heads(tmp_path):
    """An error every candidate shares (the gas reference's) moves all descriptors together:
    it cannot swap two candidates on the same side of the target, however large it is."""
    gas = [0.5, -0.5, 0.3, -0.3]
    settings = RankSettings(targets={"O": Target(0.0, 0.5)}, top_k=0, uncertainty_threshold=9.0)
    # distances 1, 2, 3, 4 (Pt, Cu, Ni, Ru); independent sigmas ~0.92 each, gaps of 1 "could flip"
    df = with_heads(table(), {"H2O": gas})
    out = rank_results(df, settings)
    assert out.ranked.distance_std.min() > 0.9
    assert not out.configs.flag_rank_flip.any()
    # the per-head distances survive the parquet round trip
    paths = write_rank_outputs(out, tmp_path)
    ranked = pd.read_parquet(paths["ranked"]).set_index("candidate")
    assert list(ranked.loc["Cu(111)", "distance_heads"]) == pytest.approx(
        [2.0 + 2.0 * g for g in gas]
    )
    # the same numbers without heads: independent sigmas, and every neighbour pair is flagged
    df["energy_heads"] = None
    df.loc[df.adsorbate == "H2O", "energy_std"] = pd.Series(gas).std()
    flips = rank_results(df, settings).configs
    assert set(flips[flips.flag_rank_flip].candidate) == {
        "Pt(111)",
        "Cu(111)",
        "Ni(111)",
        "Ru(001)",
    }
