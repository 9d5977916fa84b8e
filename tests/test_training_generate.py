"""Data generation: slabs and placements are tagged and constrained, shards resume."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from ase.calculators.emt import EMT
from ase.constraints import FixAtoms

from catscreen.build.bulks import bulk_library, library_bulk
from catscreen.errors import CatscreenError
from catscreen.training.datasets import load_frames, read_extxyz, write_extxyz
from catscreen.training.generate import (
    HOSTS,
    GenerateSettings,
    add_adsorbate_at,
    check_bulks,
    generate,
    make_slab,
    parse_alloys,
    plan,
    read_avoid,
    slab_sites,
)


def test_slab_tags_and_constraints() -> None:
    slab = make_slab("Pt", "111", (2, 2, 3), 6.0)
    tags = slab.get_tags()
    fixed = [c for c in slab.constraints if isinstance(c, FixAtoms)][0].index
    assert set(np.flatnonzero(tags == 0)) == set(fixed) and (tags == 1).sum() == 8
    placed = add_adsorbate_at(slab, "CH3", "fcc")
    assert list(placed.get_tags()[-4:]) == [2, 2, 2, 2]
    assert placed.positions[-4:, 2].min() > slab.positions[:, 2].max() + 1.0
    assert {"ontop", "bridge", "fcc", "hcp"} <= set(slab_sites(slab))


def test_plan_covers_every_host_first() -> None:
    settings = GenerateSettings(metals=("Pt", "Fe", "Co"), alloys=())
    names = [s.name for s in plan(settings)]
    assert names[:5] == [
        "gas",
        "bulk",
        "slab-Pt-111-2x2x3",
        "slab-Fe-110-2x2x3",
        "slab-Co-0001-2x2x3",
    ]
    with pytest.raises(CatscreenError, match="unknown metal"):
        GenerateSettings(metals=("Xx",))


def test_every_elemental_metal_of_the_bulk_catalogue_is_a_host() -> None:
    """The bundled model must know every element enumerate builds slabs of; hosts whose ASE
    reference state is another lattice take the catalogue's constants (gamma-Mn, fcc)."""
    elemental = {n for n in bulk_library() if len(library_bulk(n).structure.composition) == 1}
    assert elemental == set(HOSTS)
    mn = make_slab("Mn", "111", (2, 2, 3), 6.0)
    assert mn.get_distance(0, 1) == pytest.approx(3.862 / np.sqrt(2))
    first = {"fcc": "111", "bcc": "110", "hcp": "0001"}
    for host in ("Ba", "La", "Ce", "Li"):
        assert len(make_slab(host, first[HOSTS[host]], (2, 2, 3), 6.0)) == 12
    names = [s.name for s in plan(GenerateSettings(metals=("Mn", "Ti"), alloys=()))]
    assert "slab-Mn-110-2x2x3" in names and "slab-Ti-0001-2x2x3" in names


def test_alloys_and_large_cells_are_chosen() -> None:
    alloys = parse_alloys("Pt:Ni, Cu:Pd")
    assert alloys == (("Pt", "Ni"), ("Cu", "Pd")) and parse_alloys("none") == ()
    names = [s.name for s in plan(GenerateSettings(metals=("Pt",), alloys=alloys))]
    assert names[-3:] == ["slab-PtNi-111-2x2x3", "slab-CuPd-111-2x2x3", "slab-Pt-111-3x3x3"]
    small = [s.name for s in plan(GenerateSettings(metals=("Pt",), alloys=(), large_cells=False))]
    assert small == ["gas", "bulk", "slab-Pt-111-2x2x3", "slab-Pt-100-2x2x3", "slab-Pt-110-2x2x3"]
    only = GenerateSettings(metals=("Pt", "Fe"), alloys=alloys, small_cells=False)
    assert [s.name for s in plan(only)] == ["gas", "slab-Pt-111-3x3x3", "slab-Fe-110-3x3x3"]
    for wrong in (
        {"metals": ("Pt",), "large_cells": False},
        {"metals": ()},
        {"metals": ("Pt",), "bulks": ("Pt3Sn",)},
    ):
        with pytest.raises(CatscreenError, match="--only-large makes the 3x3x3 cells"):
            GenerateSettings(alloys=(), small_cells=False, **wrong)
    with pytest.raises(CatscreenError, match="expected HOST:GUEST"):
        parse_alloys("PtNi")
    with pytest.raises(CatscreenError, match="unknown metal"):
        GenerateSettings(alloys=(("Pt", "Xx"),))


def test_generate_labels_and_resumes(tmp_path: Path) -> None:
    settings = GenerateSettings(
        metals=("Pt",), alloys=(), adsorbates=("O",), relax_steps=2, md_steps=0
    )
    generate(tmp_path, settings, ["chgnet-pbe"], limit=3, log=lambda m: None)
    shard = tmp_path / "chgnet-pbe" / "slab-Pt-111-2x2x3.extxyz.gz"
    frames = load_frames(shard)
    stages = {a.info["stage"] for a in frames}
    assert {"start", "end", "rattle-end"} <= stages or {"start", "rattle-end"} <= stages
    assert {a.info["kind"] for a in frames} == {"slab", "adslab"}
    assert all(a.info["fidelity"] == "chgnet-pbe" for a in frames)
    gas = read_extxyz(tmp_path / "chgnet-pbe" / "gas.extxyz.gz")
    assert not any(gas[0].pbc)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.gz")}
    messages: list[str] = []
    generate(tmp_path, settings, ["chgnet-pbe"], limit=3, log=messages.append)
    assert messages == [] and before == {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.gz")}


def test_enumerated_shards_cover_ordered_alloys_and_library_adsorbates(tmp_path: Path) -> None:
    settings = GenerateSettings(
        metals=(), alloys=(), bulks=("CuZn",), adsorbates=("H2O", "COOH"), adsorbates_per_slab=1,
        relax_steps=2, md_steps=0,
    )  # fmt: skip
    assert [s.name for s in plan(settings)] == ["gas", "enum-CuZn"]
    with pytest.raises(CatscreenError, match="unknown metal.*COOH"):
        GenerateSettings(metals=("Pt",), adsorbates=("COOH",))  # ASE-builder shards: 11 only
    with pytest.raises(CatscreenError, match="unknown bulk 'CuZnX'"):
        plan(replace(settings, bulks=("CuZnX",)))[1].make(settings, np.random.default_rng(0))
    generate(tmp_path, settings, ["chgnet-pbe"], log=lambda m: None)
    frames = load_frames(tmp_path / "chgnet-pbe" / "enum-CuZn.extxyz.gz")
    kinds = {a.info["kind"] for a in frames}
    assert kinds == {"bulk", "slab", "adslab"}
    facets = {str(a.info["facet"]) for a in frames if a.info["kind"] != "bulk"}
    assert facets == {"100", "110", "111"}  # B2: every facet up to index 1
    assert all(a.info["sid"].startswith(("CuZn-", "bulk-CuZn")) for a in frames)
    ads = [a for a in frames if a.info["kind"] == "adslab"]
    assert {a.info["adsorbate"] for a in ads} <= {"H2O", "COOH"}
    for a in ads:
        tags = a.get_tags()
        n_ads = len(a) - int((tags != 2).sum())
        assert n_ads == {"H2O": 3, "COOH": 4}[a.info["adsorbate"]]
        assert set(a.get_chemical_symbols()[: len(a) - n_ads]) == {"Cu", "Zn"}
        fixed = [c for c in a.constraints if isinstance(c, FixAtoms)][0].index
        assert set(fixed) == set(np.flatnonzero(tags == 0))  # enumerate's convention


def test_min_index_keeps_only_stepped_facets(tmp_path: Path) -> None:
    """A pass of stepped facets must not add low-index systems beside held-out ones."""
    settings = GenerateSettings(
        metals=(), alloys=(), bulks=("Cu",), adsorbates=("H",), adsorbates_per_slab=0,
        relax_steps=1, md_steps=0, enum_max_index=2, enum_min_index=2,
    )  # fmt: skip
    frames = plan(settings)[1].make(settings, np.random.default_rng(0))
    facets = {str(a.info["facet"]) for a in frames if a.info["kind"] == "slab"}
    assert facets == {"210", "211", "221"}  # fcc: every index-2 facet, none of index 1
    with pytest.raises(CatscreenError, match="--min-index must be between 1 and --max-index"):
        replace(settings, enum_min_index=3)


def test_exclude_from_skips_adsorbates_an_earlier_pass_placed(tmp_path: Path) -> None:
    from catscreen.training.generate import _drawn_before

    slab = make_slab("Pt", "111", (2, 2, 3), 6.0)
    earlier = []
    for ads in ("O", "H"):
        a = add_adsorbate_at(slab, ads, "fcc")
        a.info.update(kind="adslab", adsorbate=ads, sid=f"Pt-111-2x2x3-{ads}")
        earlier.append(a)
    write_extxyz(earlier, tmp_path / "slab-Pt-111-2x2x3.extxyz.gz")
    settings = GenerateSettings(
        metals=("Pt",), alloys=(), large_cells=False, adsorbates=("O", "H", "N"),
        adsorbates_per_slab=3, relax_steps=1, md_steps=0, exclude_from=str(tmp_path),
    )  # fmt: skip
    assert _drawn_before(settings, "slab-Pt-111-2x2x3") == {"Pt-111-2x2x3-O", "Pt-111-2x2x3-H"}
    assert _drawn_before(settings, "slab-Pt-100-2x2x3") == set()  # no earlier shard
    assert _drawn_before(replace(settings, exclude_from=""), "slab-Pt-111-2x2x3") == set()
    with pytest.raises(CatscreenError, match="--exclude-from: no folder"):
        replace(settings, exclude_from=str(tmp_path / "typo"))
    shard = next(s for s in plan(settings) if s.name == "slab-Pt-111-2x2x3")
    frames = shard.make(settings, np.random.default_rng(0))
    assert {a.info["adsorbate"] for a in frames if a.info["kind"] == "adslab"} == {"N"}


def test_exclude_from_makes_a_second_enumerated_pass_of_new_systems_only(tmp_path: Path) -> None:
    """A second stepped-facet pass: new adsorbates per slab, no repeated bulk or clean slab."""
    first = GenerateSettings(
        metals=(), alloys=(), bulks=("Cu",), adsorbates=("H", "O", "N"), adsorbates_per_slab=1,
        relax_steps=1, md_steps=0, enum_max_index=2, enum_min_index=2,
    )  # fmt: skip
    generate(tmp_path / "first", first, log=lambda m: None)
    earlier = read_extxyz(tmp_path / "first" / "structures" / "enum-Cu.extxyz.gz")
    placed = {a.info["sid"] for a in earlier if a.info["kind"] == "adslab"}
    assert len(placed) == 3  # one adsorbate on each of (210), (211), (221)
    second = replace(
        first, adsorbates_per_slab=3, seed=1, exclude_from=str(tmp_path / "first" / "structures")
    )
    frames = plan(second)[1].make(second, np.random.default_rng(1))
    assert {a.info["kind"] for a in frames} == {"adslab"}  # bulk and clean slabs are in `first`
    sids = {a.info["sid"] for a in frames}
    assert len(sids) == 6 and not sids & placed  # the two adsorbates each slab lacked


def test_explorer_pass_keeps_the_models_own_nudged_relaxations(tmp_path: Path) -> None:
    settings = GenerateSettings(
        metals=("Cu",), alloys=(), adsorbates=("O",), large_cells=False, explorer="emt",
        relax_steps=200, snapshot_every=5, sites_per_adsorbate=4,
    )  # fmt: skip
    assert [s.name for s in plan(settings)] == ["slab-Cu-111-2x2x3", "slab-Cu-100-2x2x3",
                                                "slab-Cu-110-2x2x3"]  # fmt: skip
    (path,) = generate(tmp_path, settings, [], limit=1, log=lambda m: None)
    frames = read_extxyz(path)
    assert {a.info["kind"] for a in frames} == {"adslab"}  # no clean slab, gas or bulk again
    assert {a.info["stage"][:7] for a in frames} == {"explore"}
    assert {a.info["sid"] for a in frames} == {"Cu-111-2x2x3-O"}  # the teacher passes' system
    ends = [a for a in frames if a.info["stage"] == "explore-end"]
    assert len(ends) == len({a.info["site"] for a in frames}) == 4
    slab = make_slab("Cu", "111", (2, 2, 3), 6.0)
    for end in ends:
        # The model's own minimum (EMT here): converged on the free atoms ...
        end.calc = EMT()
        free = end.get_tags() != 0
        assert np.abs(end.get_forces()[free]).max() <= 0.05 + 1e-6
        # ... reached from a nudged start, not the exact site the teacher passes used.
        exact = add_adsorbate_at(slab, "O", end.info["site"])
        assert not np.allclose(end.positions[-1, :2], exact.positions[-1, :2], atol=1e-3)


def test_cli_only_large_makes_the_lower_coverage_cells_alone(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from catscreen.cli.main import app

    common = ["data", "generate", str(tmp_path / "out"), "--metals", "Cu", "--adsorbates", "O"]
    quick = ["--explorer", "emt", "--relax-steps", "3", "--adsorbates-per-slab", "1"]
    as_option = ["data", "generate", "--out", str(tmp_path / "out"), *common[3:]]  # as label's
    result = CliRunner().invoke(app, [*as_option, "--only-large", *quick])
    assert result.exit_code == 0, result.output
    (made,) = (tmp_path / "out" / "structures").glob("*.extxyz.gz")
    assert made.name == "slab-Cu-111-3x3x3.extxyz.gz"  # no 2x2 slab before it
    assert {len(a) for a in read_extxyz(made)} == {28}  # 27 Cu + O: a 3x3x3 cell
    both = CliRunner().invoke(app, [*common, "--only-large", "--no-large"])
    assert both.exit_code == 2 and "--only-large makes the 3x3x3 cells" in both.output
    ignored = CliRunner().invoke(app, [*common, "--facets", "211", "--min-ab", "9"])
    assert ignored.exit_code == 2, ignored.output  # --metals slabs have their own facets
    assert "--facets, --min-ab: only --bulks slabs take them" in ignored.output
    two = CliRunner().invoke(app, [*common, "-o", str(tmp_path / "other")])
    assert two.exit_code == 2 and "two output folders" in two.output


def test_enumerate_cells_facets_and_avoided_systems(tmp_path: Path) -> None:
    """A pass in `enumerate`'s default cells: only the facets asked for, enumerate's slab, and
    never a (host, facet, adsorbate) a benchmark holds out (hexagonal 0001 is 001)."""
    from catscreen.build.enumerate import EnumerateSettings, enumerate_slabs

    (tmp_path / "held.txt").write_text(
        "# held out\nCu 111 O  # Cu-111-2x2x3-O\n\nRu 0001 O\nCu 100 H\n"
    )
    avoid = read_avoid(tmp_path / "held.txt")
    assert avoid == {("Cu", (1, 1, 1), "O"), ("Ru", (0, 0, 1), "O"), ("Cu", (1, 0, 0), "H")}
    settings = GenerateSettings(
        metals=(), alloys=(), bulks=("Cu",), adsorbates=("H", "O"), adsorbates_per_slab=2,
        relax_steps=1, md_steps=0, enum_min_slab_size=7.0, enum_min_ab=8.0,
        enum_facets=((1, 1, 1),), avoid=avoid,
    )  # fmt: skip
    frames = plan(settings)[1].make(settings, np.random.default_rng(0))
    assert {str(a.info["facet"]) for a in frames if a.info["kind"] != "bulk"} == {"111"}
    assert {a.info["adsorbate"] for a in frames if a.info["kind"] == "adslab"} == {"H"}
    (thick,) = [
        s
        for s in enumerate_slabs(EnumerateSettings(bulks=["Cu"], min_ab=8.0, min_slab_size=7.0))
        if s.miller == (1, 1, 1)
    ]
    assert {len(a) for a in frames if a.info["kind"] == "slab"} == {len(thick.atoms)}
    with pytest.raises(CatscreenError, match="none of the facets 112"):
        check_bulks(replace(settings, enum_facets=((1, 1, 2),)))
    # the ASE-builder shards avoid them too
    pt = GenerateSettings(
        metals=("Pt",), alloys=(), large_cells=False, adsorbates=("O", "H"), adsorbates_per_slab=2,
        relax_steps=1, md_steps=0, avoid=frozenset({("Pt", (1, 1, 1), "O")}),
    )  # fmt: skip
    shard = next(s for s in plan(pt) if s.name == "slab-Pt-111-2x2x3")
    made = shard.make(pt, np.random.default_rng(0))
    assert {a.info["adsorbate"] for a in made if a.info["kind"] == "adslab"} == {"H"}


def test_avoid_file_errors_are_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from catscreen.cli.main import app

    with pytest.raises(CatscreenError, match="--avoid: no file"):
        read_avoid(tmp_path / "missing.txt")
    (tmp_path / "bad.txt").write_text("Cu 111\n")
    with pytest.raises(CatscreenError, match="bad.txt line 1: expected HOST FACET ADSORBATE"):
        read_avoid(tmp_path / "bad.txt")
    args = ["data", "generate", str(tmp_path / "out"), "--metals", "none", "--bulks", "Cu"]
    result = CliRunner().invoke(app, [*args, "--avoid", str(tmp_path / "bad.txt")])
    assert result.exit_code == 2 and "expected HOST FACET ADSORBATE" in result.output
    assert not (tmp_path / "out").exists()
    result = CliRunner().invoke(app, [*args, "--snapshot-every", "0"])  # was a ZeroDivisionError
    assert result.exit_code == 2 and "--snapshot-every must be >= 1, not 0" in result.output


def test_xz_shards_read_as_gzip_ones_and_count_as_drawn(tmp_path: Path) -> None:
    """The committed passes are xz: the loaders and --exclude-from must read them. A shard
    written again from the same frames is the same file, byte for byte (git sees no change)."""
    from catscreen.training.generate import _drawn_before

    slab = make_slab("Pt", "111", (2, 2, 3), 6.0)
    frames = []
    for ads in ("O", "H"):
        a = add_adsorbate_at(slab, ads, "fcc")
        a.calc = EMT()
        a.get_potential_energy()
        a.info.update(kind="adslab", sid=f"Pt-111-2x2x3-{ads}", spin="off", fidelity="emt")
        frames.append(a)
    written = {}
    for z in ("gz", "xz"):
        path = tmp_path / z / f"slab-Pt-111-2x2x3.extxyz.{z}"
        write_extxyz(frames, path)
        written[z] = path.read_bytes()
        write_extxyz(frames, path)  # through another temporary file, at another time
        assert path.read_bytes() == written[z]
        assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    assert written["xz"][:6] == b"\xfd7zXZ\x00" and written["gz"][:2] == b"\x1f\x8b"
    write_extxyz(frames, tmp_path / "plain.extxyz")
    assert (tmp_path / "plain.extxyz").read_text().startswith(f"{len(frames[0])}\n")
    gz, xz = load_frames(tmp_path / "gz"), load_frames(tmp_path / "xz")
    assert [a.info["sid"] for a in xz] == [a.info["sid"] for a in gz]
    for a, b in zip(gz, xz, strict=True):
        assert np.array_equal(a.positions, b.positions)
        assert a.get_potential_energy() == b.get_potential_energy()
        assert np.array_equal(a.get_forces(), b.get_forces())
    settings = GenerateSettings(metals=("Pt",), exclude_from=str(tmp_path / "xz"))
    assert _drawn_before(settings, "slab-Pt-111-2x2x3") == {"Pt-111-2x2x3-O", "Pt-111-2x2x3-H"}


def test_a_file_of_several_bulks_names_each_and_makes_each_bulk(tmp_path: Path) -> None:
    """Frames of mine.extxyz are bulks mine_0 and mine_1: each gets its own sids, host and bulk
    frames (all were named after the first, so two materials shared one system)."""
    from ase.build import bulk
    from ase.io import write

    write(tmp_path / "mine.extxyz", [bulk("Cu", "fcc", a=3.61), bulk("Pd", "fcc", a=3.89)])
    settings = GenerateSettings(
        metals=(), alloys=(), bulks=(str(tmp_path / "mine.extxyz"),), adsorbates=("O",),
        adsorbates_per_slab=1, relax_steps=1, md_steps=0, enum_facets=((1, 1, 1),),
    )  # fmt: skip
    frames = plan(settings)[1].make(settings, np.random.default_rng(0))
    metal = {"mine_0": "Cu", "mine_1": "Pd"}
    by_sid: dict[str, set[str]] = {}
    for a in frames:
        assert a.info["host"] == a.info["sid"].removeprefix("bulk-")[:6]
        by_sid.setdefault(a.info["sid"], set()).update(set(a.get_chemical_symbols()) - {"O"})
    assert by_sid == {
        f"{p}{name}{s}": {metal[name]}
        for name in metal
        for p, s in (("bulk-", ""), ("", "-111-t0-clean"), ("", "-111-t0-O"))
    }
    for a in frames:  # pymatgen's columns in one order, whatever the hash seed
        if a.info["kind"] == "bulk":
            assert list(a.arrays)[2:] == sorted(list(a.arrays)[2:]) and "bulk_wyckoff" in a.arrays


def test_bulks_are_checked_before_any_shard_is_made(tmp_path: Path) -> None:
    """A typo, two files of one name, or facets a bulk lacks: refused up front, not after
    hours of the shards before them."""
    from ase.build import bulk
    from ase.io import write

    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        write(tmp_path / folder / "POSCAR", bulk("Cu", "fcc", a=3.61), format="vasp")
    quick = dict(metals=("Cu",), alloys=(), large_cells=False, relax_steps=1, md_steps=0)
    cases = {
        "unknown bulk 'Cuu'": ("Cuu",),
        "POSCAR given twice": (str(tmp_path / "a" / "POSCAR"), str(tmp_path / "b" / "POSCAR")),
        "Cu given twice": ("Cu", "Cu"),
    }
    for message, bulks in cases.items():
        with pytest.raises(CatscreenError, match=message):
            generate(tmp_path / "out", GenerateSettings(bulks=bulks, **quick), log=print)
    facetless = GenerateSettings(bulks=("Cu",), enum_facets=((1, 1, 2),), **quick)
    with pytest.raises(CatscreenError, match="Cu: none of the facets 112 between"):
        generate(tmp_path / "out", facetless, log=print)
    assert not (tmp_path / "out").exists()
    for name, value in (("adsorbates_per_slab", -1), ("sites_per_adsorbate", 0)):
        with pytest.raises(CatscreenError, match=f"--{name.replace('_', '-')} must be >="):
            GenerateSettings(**{name: value})


def test_a_resume_with_other_options_is_refused(tmp_path: Path) -> None:
    """Each shard keeps the settings it was made with: a rerun with others would mix two data
    sets in one folder; other --bulks/--facets only choose other shards."""
    import json

    settings = GenerateSettings(
        metals=(), alloys=(), bulks=("Cu",), adsorbates=("O",), adsorbates_per_slab=1,
        relax_steps=1, md_steps=0, explorer="emt", enum_facets=((1, 1, 1),),
    )  # fmt: skip
    (path,) = generate(tmp_path, settings, log=lambda m: None)
    record = json.loads((tmp_path / "structures" / "enum-Cu.settings.json").read_text())
    assert record["bulk"] == "Cu" and record["enum_facets"] == [[1, 1, 1]]
    assert record["explorer"] == "emt" and record["adsorbates"] == ["O"]
    assert record["explorer_version"] == "ase-emt"  # "bundled" names other weights in time
    before = path.stat().st_mtime_ns
    for changed in (
        {"adsorbates": ("H",)},
        {"seed": 3},
        {"relax_steps": 5},
        {"enum_facets": ((1, 0, 0),)},
    ):
        with pytest.raises(
            CatscreenError, match=f"enum-Cu was made with other settings \\({next(iter(changed))}"
        ):
            generate(tmp_path, replace(settings, **changed), log=print)
    messages: list[str] = []
    assert generate(tmp_path, settings, log=messages.append) == [path] and messages == []
    assert path.stat().st_mtime_ns == before
    # a record made before explorer versions were kept resumes as it did
    record_path = tmp_path / "structures" / "enum-Cu.settings.json"
    older = {k: v for k, v in record.items() if k != "explorer_version"}
    record_path.write_text(json.dumps(older))
    assert generate(tmp_path, settings, log=messages.append) == [path] and messages == []
    # another bulk into the same folder: a new shard, the first untouched
    (other,) = generate(tmp_path, replace(settings, bulks=("Pd",)), log=lambda m: None)
    assert other.name == "enum-Pd.extxyz.gz" and path.stat().st_mtime_ns == before


def test_an_explorer_pass_of_enumerated_bulks_makes_adsorbate_frames_only(tmp_path: Path) -> None:
    settings = GenerateSettings(
        metals=(), alloys=(), bulks=("Cu",), adsorbates=("O",), adsorbates_per_slab=1,
        relax_steps=3, md_steps=4, explorer="emt", enum_facets=((1, 1, 1),),
    )  # fmt: skip
    frames = plan(settings)[0].make(settings, np.random.default_rng(0))
    assert {a.info["kind"] for a in frames} == {"adslab"}
    assert {a.info["stage"][:7] for a in frames} == {"explore"}


def test_a_structure_shard_made_again_is_labelled_again(tmp_path: Path) -> None:
    """The unreadable-shard error says to delete the shard; its remake (here with moved atoms)
    kept the old labels, whose positions no longer matched."""
    from ase.build import bulk

    from catscreen.training.generate import label_shard

    structures, labels = tmp_path / "s" / "bulk-Cu.extxyz.gz", tmp_path / "t" / "bulk-Cu.extxyz.gz"
    first = [bulk("Cu", "fcc", a=3.6)]
    first[0].info.update(sid="cu", fid=0, spin="off")
    structures.parent.mkdir()
    write_extxyz(first, structures)
    assert label_shard(structures, labels, "chgnet-pbe", 0.0) == 1
    assert label_shard(structures, labels, "chgnet-pbe", 0.0) == 0  # the same shard: kept
    moved = [bulk("Cu", "fcc", a=3.7)]
    moved[0].info.update(sid="cu", fid=0, spin="off")
    write_extxyz(moved, structures)
    assert label_shard(structures, labels, "chgnet-pbe", 0.0) == 1
    (label,) = read_extxyz(labels)
    assert label.cell[0, 1] == pytest.approx(3.7 / 2)
    # labels cut off after they were written passed as finished (exit 0, a 200-byte shard)
    labels.write_bytes(labels.read_bytes()[:60])
    said: list[str] = []
    assert label_shard(structures, labels, "chgnet-pbe", 0.0, said.append) == 1
    assert read_extxyz(labels)[0].get_potential_energy() == pytest.approx(
        label.get_potential_energy(), abs=1e-5
    )
    assert len(said) == 1 and said[0].startswith(f"cannot read {labels} as extxyz")
    assert said[0].endswith(": labelling it again")
    labels.write_bytes(b"")  # an emptied .gz reads as no frames, not as an error
    assert label_shard(structures, labels, "chgnet-pbe", 0.0, said.append) == 1
    assert said[1] == f"{labels} holds 0 labelled frames of 1 structures: labelling it again"
    assert len(read_extxyz(labels)) == 1
    (labels.parent / "bulk-Cu.source.json").unlink()  # labels from before records: kept
    assert label_shard(structures, labels, "chgnet-pbe", 0.0) == 0
    # shards named after dotted files (pt.v1.cif, pt.v2.cif) keep a record each
    for version in ("v1", "v2"):
        dotted = structures.with_name(f"enum-pt.{version}.extxyz.gz")
        dotted.write_bytes(structures.read_bytes())
        assert label_shard(dotted, labels.with_name(dotted.name), "chgnet-pbe", 0.0) == 1
    for version in ("v1", "v2"):
        dotted = structures.with_name(f"enum-pt.{version}.extxyz.gz")
        assert label_shard(dotted, labels.with_name(dotted.name), "chgnet-pbe", 0.0) == 0


def test_exclude_from_takes_a_pass_output_folder_and_refuses_one_without_shards(
    tmp_path: Path,
) -> None:
    """OUT of `data generate` holds its shards in OUT/structures: given OUT, nothing was
    excluded and the earlier pass was repeated."""
    from catscreen.training.generate import _drawn_before

    slab = make_slab("Pt", "111", (2, 2, 3), 6.0)
    a = add_adsorbate_at(slab, "O", "fcc")
    a.info.update(kind="adslab", adsorbate="O", sid="Pt-111-2x2x3-O")
    (tmp_path / "out" / "structures").mkdir(parents=True)
    write_extxyz([a], tmp_path / "out" / "structures" / "slab-Pt-111-2x2x3.extxyz.gz")
    settings = GenerateSettings(metals=("Pt",), alloys=(), exclude_from=str(tmp_path / "out"))
    assert _drawn_before(settings, "slab-Pt-111-2x2x3") == {"Pt-111-2x2x3-O"}
    (tmp_path / "empty").mkdir()
    with pytest.raises(CatscreenError, match="--exclude-from: no folder of shards"):
        replace(settings, exclude_from=str(tmp_path / "empty"))


def test_options_that_would_be_dropped_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from catscreen.cli.main import app
    from catscreen.training.generate import thread_budget

    args = ["data", "generate", "x", "--metals", "Ni", "--only-large", "--alloys", "Pt:Ni"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "--only-large makes no alloy slabs" in result.output
    with pytest.raises(CatscreenError, match="--avoid names unknown adsorbate"):
        GenerateSettings(avoid=frozenset({("Cu", (1, 1, 1), "Q")}))
    monkeypatch.setenv("CATSCREEN_THREADS", "two")
    with pytest.raises(CatscreenError, match="CATSCREEN_THREADS must be a whole number"):
        thread_budget()


def test_repeated_list_options_all_reach_generate(monkeypatch, tmp_path: Path) -> None:
    """`--metals Pt --metals Cu` kept Cu alone (str options: the last one won, exit 0)."""
    from typer.testing import CliRunner

    import catscreen.training.generate as gen
    from catscreen.cli.main import app

    seen = []
    monkeypatch.setattr(gen, "generate", lambda out, settings, *a, **k: seen.append(settings) or [])
    args = ["data", "generate", str(tmp_path / "o"), "--metals", "Pt", "--metals", "Cu,Ni"]
    args += ["--adsorbates", "O", "--adsorbates", "H", "--alloys", "Pt:Ni", "--alloys", "Cu:Pd"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert seen[0].metals == ("Pt", "Cu", "Ni") and seen[0].adsorbates == ("O", "H")
    assert seen[0].alloys == (("Pt", "Ni"), ("Cu", "Pd"))
    bulks = ["data", "generate", str(tmp_path / "o"), "--bulks", "Cu", "--bulks", "Pt"]
    result = CliRunner().invoke(app, [*bulks, "--facets", "111", "--facets", "100"])
    assert result.exit_code == 0, result.output
    assert seen[1].bulks == ("Cu", "Pt") and seen[1].enum_facets == ((1, 1, 1), (1, 0, 0))


def test_a_rerun_into_a_folder_of_xz_labels_labels_nothing_again(tmp_path: Path) -> None:
    """The committed passes keep their labels as .xz (and no structures); a rerun looked for
    .gz only, labelled every shard again beside its .xz, and the folder trained it twice."""
    from catscreen.training.generate import plan

    settings = GenerateSettings(metals=("Pt",), alloys=(), adsorbates=("O",), relax_steps=2)
    name = plan(settings)[0].name
    generate(tmp_path, settings, ["chgnet-pbe"], limit=1, log=lambda m: None)
    labels = tmp_path / "chgnet-pbe"
    frames = read_extxyz(labels / f"{name}.extxyz.gz")
    write_extxyz(frames, labels / f"{name}.extxyz.xz")  # as committed: xz, no structures
    (labels / f"{name}.extxyz.gz").unlink()
    shutil.rmtree(tmp_path / "structures")
    generate(tmp_path, settings, ["chgnet-pbe"], limit=1, log=lambda m: None)
    assert sorted(p.name for p in labels.glob(f"{name}.extxyz*")) == [f"{name}.extxyz.xz"]
    assert len(load_frames(labels)) == len(frames)
    write_extxyz(frames, labels / f"{name}.extxyz.gz")  # both: one shard twice is refused
    with pytest.raises(CatscreenError, match=f"holds {name} in two files"):
        load_frames(labels)


def test_a_name_given_twice_is_refused() -> None:
    """`--metals Pt,Pt` made every Pt shard twice, its frames under one sid."""
    for twice, option in (
        ({"metals": ("Pt", "Pt")}, "--metals names Pt twice"),
        ({"adsorbates": ("O", "O")}, "--adsorbates names O twice"),
        ({"alloys": (("Pt", "Ni"), ("Pt", "Ni"))}, "--alloys names"),
    ):
        with pytest.raises(CatscreenError, match=option):
            GenerateSettings(**twice)
