"""enumerate end to end: known site sets, no overlaps, round trip, stable ids."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from ase.data import covalent_radii
from ase.io import read, write

from catscreen.build.enumerate import (
    EnumerateSettings,
    enumerate_configurations,
    manifest,
    read_manifest,
    write_configurations,
)
from catscreen.build.placements import NUDGE, WOBBLE
from catscreen.errors import CatscreenError
from catscreen.schema import INFO_KEYS, MANIFEST_COLUMNS

# (bulk, facet) -> the textbook site set: fcc(111)/hcp(0001): ontop, bridge, fcc, hcp;
# bcc(110): ontop, short and long bridge, pseudo-3-fold hollow.
KNOWN = {
    ("Pt", "1,1,1"): {"ontop": 1, "bridge": 1, "fcc": 1, "hcp": 1},
    ("Fe", "1,1,0"): {"ontop": 1, "bridge": 2, "hollow": 1},
    ("Co", "0,0,0,1"): {"ontop": 1, "bridge": 1, "fcc": 1, "hcp": 1},
}
ADSORBATES = ["O", "CO", "NH2"]


def _settings(bulk: str, miller: str, **kw) -> EnumerateSettings:
    return EnumerateSettings(bulks=[bulk], miller=[miller], adsorbates=ADSORBATES, **kw)


@pytest.fixture(scope="module")
def runs():
    return {key: enumerate_configurations(_settings(*key)) for key in KNOWN}


@pytest.mark.parametrize("key", list(KNOWN))
def test_site_sets_match_the_known_answer(runs, key):
    df = manifest(runs[key])
    assert (df["kind"] == "slab").sum() == 1  # one termination, its clean slab
    for adsorbate in ADSORBATES:
        rows = df[df["adsorbate"] == adsorbate]
        assert dict(Counter(rows["site_type"])) == KNOWN[key], adsorbate


def test_hcp_hollow_has_a_second_layer_atom_beneath(runs):
    for atoms in runs[("Pt", "1,1,1")]:
        if atoms.info["site_type"] not in ("fcc", "hcp"):
            continue
        z = atoms.positions[:, 2]
        surface_z = z[atoms.get_tags() == 1].max()
        second = (atoms.get_tags() == 0) & (z > surface_z - 3.0)
        xy = np.array([atoms.info["site_x"], atoms.info["site_y"]])
        flat = atoms.positions[second, :2] - xy
        frac = np.linalg.solve(atoms.cell.array[:2, :2].T, flat.T).T
        frac -= np.round(frac)
        d = np.linalg.norm(frac @ atoms.cell.array[:2, :2], axis=1).min()
        assert (d < 0.3) == (atoms.info["site_type"] == "hcp")


def test_no_atom_pair_closer_than_a_physical_minimum(runs):
    for images in runs.values():
        for atoms in images:
            d = atoms.get_all_distances(mic=True)
            radii = covalent_radii[atoms.numbers]
            ratio = d / (radii[:, None] + radii[None, :])
            np.fill_diagonal(ratio, np.inf)
            assert ratio.min() > 0.69, atoms.info["config_id"]


def test_binding_atom_sits_at_a_bonding_height(runs):
    for atoms in runs[("Pt", "1,1,1")]:
        if atoms.info["kind"] != "adslab":
            continue
        b = int(atoms.info["binding_atoms"])
        surface = np.flatnonzero(atoms.get_tags() == 1)
        nearest = atoms.get_distances(b, surface, mic=True).min()
        bond = covalent_radii[atoms.numbers[b]] + covalent_radii[78]
        assert nearest == pytest.approx(bond, abs=0.05)


def test_tags_and_constraints(runs):
    for atoms in runs[("Fe", "1,1,0")]:
        tags = atoms.get_tags()
        fixed = atoms.constraints[0].get_indices()
        assert sorted(fixed) == list(np.flatnonzero(tags == 0))
        z = atoms.positions[:, 2]
        assert z[tags == 1].min() > z[tags == 0].max() - 0.3  # the surface is on top
        assert (tags == 2).sum() == {"none": 0, "O": 1, "CO": 2, "NH2": 3}[atoms.info["adsorbate"]]
        assert z[tags == 2].min() > z[tags == 1].max() if (tags == 2).any() else True


def test_write_read_round_trip(runs, tmp_path, monkeypatch):
    images = runs[("Co", "0,0,0,1")]
    settings = _settings("Co", "0,0,0,1")
    xyz, table = write_configurations(images, tmp_path, settings)
    df = pd.read_parquet(table)
    assert list(df.columns) == list(MANIFEST_COLUMNS)
    assert len(df) == len(images) == len(read(xyz, index=":"))
    df2, back = read_manifest(tmp_path)
    pd.testing.assert_frame_equal(df, df2)
    for a, b in zip(images, back, strict=True):
        assert np.allclose(a.positions, b.positions)
        assert (a.get_tags() == b.get_tags()).all()
        assert list(a.constraints[0].get_indices()) == list(b.constraints[0].get_indices())
        for key in INFO_KEYS:
            assert a.info[key] == b.info[key], key
    assert back[1].info["miller"] == "0,0,1"

    # A second run that cannot write its table (a full disk) leaves the first run's pair as it
    # was: the structures are only replaced once both files are written.
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    other = _settings("Co", "0,0,0,1").model_copy(update={"seed": 1})

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(pq, "write_table", full_disk)
        with pytest.raises(CatscreenError, match="cannot write .*configs.parquet: .*No space left"):
            write_configurations(images[:2], tmp_path, other)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    # and a pair from two runs (written by hand, or by an older catscreen) is refused
    write(xyz, [back[1], back[0], *back[2:]], format="extxyz")
    with pytest.raises(CatscreenError, match="disagree: row .* holds structure"):
        read_manifest(tmp_path)


def test_ids_are_stable_across_runs(runs):
    again = enumerate_configurations(_settings("Pt", "1,1,1"))
    first = runs[("Pt", "1,1,1")]
    assert [a.info["config_id"] for a in again] == [a.info["config_id"] for a in first]
    ids = [a.info["config_id"] for images in runs.values() for a in images]
    assert len(set(ids)) == len(ids)
    systems = {a.info["system_id"] for a in first}
    assert len(systems) == 1 + len(ADSORBATES)  # clean slab + one system per adsorbate


def test_random_placement_is_reproducible():
    kw = {"placement": "random", "n_random": 4, "include_clean": False}
    one = enumerate_configurations(_settings("Pt", "1,1,1", seed=3, **kw))
    two = enumerate_configurations(_settings("Pt", "1,1,1", seed=3, **kw))
    other = enumerate_configurations(_settings("Pt", "1,1,1", seed=4, **kw))
    assert len(one) == 4 * len(ADSORBATES)
    assert all(np.allclose(a.positions, b.positions) for a, b in zip(one, two, strict=True))
    assert [a.info["config_id"] for a in one] == [a.info["config_id"] for a in two]
    assert not all(np.allclose(a.positions, b.positions) for a, b in zip(one, other, strict=True))
    for atoms in one:
        d = atoms.get_all_distances(mic=True)
        radii = covalent_radii[atoms.numbers]
        ratio = d / (radii[:, None] + radii[None, :])
        np.fill_diagonal(ratio, np.inf)
        assert ratio.min() >= 0.7 - 1e-9


def test_miller_bravais_facets_apply_to_hexagonal_bulks_only():
    """`--bulk Ni --bulk Ru --miller 1,1,1 --miller 0,0,0,1` must not give Ni a (001) facet."""
    settings = EnumerateSettings(bulks=["Ni", "Ru"], miller=["1,1,1", "0,0,0,1"], min_ab=5.0)
    df = manifest(enumerate_configurations(settings))
    facets = {(b, m) for b, m in zip(df["bulk"], df["miller"], strict=True)}
    assert ("Ni", "1,1,1") in facets and ("Ru", "0,0,1") in facets
    assert ("Ni", "0,0,1") not in facets
    with pytest.raises(CatscreenError, match="Ni is not hexagonal"):
        enumerate_configurations(EnumerateSettings(bulks=["Ni"], miller=["0,0,0,1"]))


def test_placements_are_nudged_off_their_site_reproducibly(runs):
    nudged = [a for a in runs[("Pt", "1,1,1")] if a.info["kind"] == "adslab"]
    exact = enumerate_configurations(_settings("Pt", "1,1,1", nudge=0.0, include_clean=False))
    other_seed = enumerate_configurations(_settings("Pt", "1,1,1", seed=1, include_clean=False))
    assert len(nudged) == len(exact) == len(other_seed)
    for a, b, c in zip(nudged, exact, other_seed, strict=True):
        binding = int(a.info["binding_atoms"])
        site = np.array([a.info["site_x"], a.info["site_y"]])
        # The binding atom is the pivot of the tilt: off its site by the nudge (site_x/y: 4 dp).
        assert np.linalg.norm(a.positions[binding, :2] - site) == pytest.approx(NUDGE, abs=2e-4)
        assert np.linalg.norm(b.positions[binding, :2] - site) == pytest.approx(0.0, abs=2e-4)
        assert not np.allclose(a.positions, c.positions)
        assert a.info["config_id"] != b.info["config_id"] != c.info["config_id"]
        if a.info["adsorbate"] == "CO":  # upright without the nudge, tilted by WOBBLE with it
            for atoms, tilt in [(a, WOBBLE), (b, 0.0)]:
                axis = atoms.positions[-1] - atoms.positions[-2]
                angle = np.degrees(np.arccos(axis[2] / np.linalg.norm(axis)))
                assert angle == pytest.approx(tilt, abs=1e-6)
    again = enumerate_configurations(_settings("Pt", "1,1,1"))
    assert all(
        np.allclose(a.positions, b.positions)
        for a, b in zip([x for x in again if x.info["kind"] == "adslab"], nudged, strict=True)
    )
