"""GPAW spin-pair labels: the structure set, and a real (tiny, low-settings) spin pair."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
import typer
from ase import Atoms
from ase.build import fcc111
from ase.geometry import find_mic
from ase.io import write
from typer.testing import CliRunner

from catscreen.cli.data import data_app
from catscreen.errors import CatscreenError
from catscreen.training import dft_labels
from catscreen.training.datasets import load_frames
from catscreen.training.dft_labels import (
    SETS,
    GpawSettings,
    pair_kind,
    spin_pair_compound,
    spin_pair_slab,
)

# The root app imports every stage; mounting the sub-app alone keeps this test about `data`.
cli = typer.Typer()
cli.add_typer(data_app, name="data")


@pytest.mark.parametrize("make", list(SETS.values()), ids=list(SETS))
def test_spin_pair_set_is_tagged_and_uses_one_kpoint_along_vacuum(make):
    structures = make()
    sids = [a.info["sid"] for a in structures]
    assert len(set(sids)) == len(sids)
    elements = {s for a in structures for s in a.get_chemical_symbols()}
    assert {"Fe", "Co"} <= elements and elements & {"Cu", "Pt", "Pd"}  # and a non-magnetic metal
    for atoms in structures:
        kpts = GpawSettings().kpts(atoms)
        if atoms.info["kind"] == "bulk":
            assert atoms.pbc.all() and min(kpts) > 1
            continue
        # ASE's density: at least 2 k-points per reciprocal A along each periodic axis
        spacing = 2 * np.pi * np.linalg.norm(atoms.cell.reciprocal()[:2], axis=1)
        size = int(re.search(r"-(\d+)x\1x\d+-", atoms.info["sid"]).group(1))  # 1x1 or 2x2
        least = 4 if size == 1 else 3
        assert kpts[2] == 1 and all(np.array(kpts[:2]) >= np.maximum(2.0 * spacing, least))
        tags = atoms.get_tags()
        slab = (tags != 2).sum()  # one top layer free, the rest fixed
        per_layer = size * size * (2 if atoms.info["pair_kind"] == "compound surface" else 1)
        assert (tags == 1).sum() == per_layer and (tags == 0).sum() == slab - per_layer
        assert ((tags == 2).sum() > 0) == (atoms.info["kind"] == "adslab")
        gap = atoms.cell[2, 2] - np.ptp(atoms.positions[:, 2])
        assert gap == pytest.approx(12.0, abs=0.3)  # rattled slabs move by up to ~0.15 A


@pytest.mark.gpaw
@pytest.mark.skipif(importlib.util.find_spec("gpaw") is None, reason="GPAW is not installed")
def test_cli_labels_a_real_spin_pair_and_resumes(tmp_path, monkeypatch):
    slab = fcc111("Ni", (1, 1, 2), vacuum=3.0)
    slab.info["sid"] = "ni111-tiny"
    structures = tmp_path / "in.extxyz"
    write(structures, slab, format="extxyz")
    low = ["--ecut", "200", "--kpt-density", "0.5"]  # 2x2x1: seconds, not minutes
    runner = CliRunner()
    for spin in ("off", "on"):
        out = tmp_path / f"spin-{spin}.extxyz.gz"
        args = [
            "data",
            "label",
            str(structures),
            "--dft",
            "gpaw",
            "--spin",
            spin,
            "--out",
            str(out),
        ]
        result = runner.invoke(cli, args + low)
        assert result.exit_code == 0, result.output
        assert "k=2x2x1" in result.output
    off, on = (
        load_frames(tmp_path / "spin-off.extxyz.gz")[0],
        load_frames(tmp_path / "spin-on.extxyz.gz")[0],
    )
    for frame, spin in ((off, "off"), (on, "on")):
        assert frame.info["spin"] == spin
        assert (frame.info["sid"], frame.info["fidelity"], frame.info["source"]) == (
            "ni111-tiny",
            "gpaw-pbe",
            "gpaw",
        )
        assert frame.info["converged"] and frame.info["gpaw_ecut"] == 200
        assert frame.info["labeller"] == f"gpaw-{importlib.metadata.version('gpaw')}"
        assert frame.get_forces().shape == (2, 3)
        assert list(frame.get_tags()) == list(slab.get_tags())
    assert on.get_potential_energy() < off.get_potential_energy()  # Ni polarises
    assert on.get_magnetic_moments().sum() > 0.5
    assert "magmoms" not in off.calc.results

    def no_dft(*args, **kwargs):
        raise AssertionError("a finished structure was computed again")

    monkeypatch.setattr(dft_labels, "gpaw_single_point", no_dft)
    args = [
        "data",
        "label",
        str(structures),
        "--dft",
        "gpaw",
        "--spin",
        "on",
        "--out",
        str(tmp_path / "again.extxyz.xz"),  # compressed as named
    ]
    result = runner.invoke(cli, args + low + ["--work", str(tmp_path / "spin-on.parts")])
    assert result.exit_code == 0, result.output
    assert (
        load_frames(tmp_path / "again.extxyz.xz")[0].get_potential_energy()
        == on.get_potential_energy()
    )
    # the same parts with another cutoff would pass old labels off as new ones
    result = runner.invoke(
        cli,
        args + ["--ecut", "300", "--kpt-density", "0.5", "--work", str(tmp_path / "spin-on.parts")],
    )
    assert result.exit_code == 2
    assert "was labelled with ecut 200.0 (now 300.0)" in " ".join(result.output.split())
    # the same id for a moved structure (another seed, a fix by hand) is not the old label
    moved = slab.copy()
    moved.positions[1, 2] += 0.5
    write(structures, moved, format="extxyz")
    result = runner.invoke(cli, args + low + ["--work", str(tmp_path / "spin-on.parts")])
    assert result.exit_code == 2
    assert "labelled for another structure under this id" in " ".join(result.output.split())
    # a frame without a 3D cell is refused before any calculation, naming it
    write(structures, Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]]), format="extxyz")
    result = runner.invoke(cli, [*args[:-1], str(tmp_path / "h2.extxyz"), *low])
    assert result.exit_code == 2 and "has no 3D cell" in result.output
    # a part damaged after it was written (cut off) is labelled again, not a traceback
    monkeypatch.undo()
    write(structures, slab, format="extxyz")
    (part,) = (tmp_path / "spin-on.parts").glob("*.extxyz")
    part.write_bytes(part.read_bytes()[:100])
    result = runner.invoke(cli, args + low + ["--work", str(tmp_path / "spin-on.parts")])
    assert result.exit_code == 0, result.output
    assert f"{part.name} cannot be read (damaged); labelling it again" in result.output
    relabelled = load_frames(tmp_path / "again.extxyz.xz")[0]
    assert relabelled.get_potential_energy() == pytest.approx(on.get_potential_energy(), abs=1e-6)


def test_a_molecule_starts_spin_on_from_its_ground_state_moment():
    """O2 from another tool's file carries no moments: from zero, GPAW's spin-polarised SCF
    stays unpolarised and the spin-on label would be the spin-off one."""
    o2 = Atoms("O2", positions=[[0, 0, 0], [0, 0, 1.21]], cell=[8, 8, 8], pbc=False)
    assert dft_labels.initial_magmoms(o2).tolist() == [1.0, 1.0]
    o2.pbc = True  # boxed, as extxyz writes a cell: still no bond across it
    assert dft_labels.initial_magmoms(o2).tolist() == [1.0, 1.0]
    o2.info["kind"] = "gas"
    assert dft_labels.initial_magmoms(o2).tolist() == [1.0, 1.0]
    chain = Atoms("O2", positions=[[0, 0, 0], [0, 0, 1.21]], cell=[8, 8, 2.42], pbc=True)
    assert dft_labels.initial_magmoms(chain).tolist() == [0.0, 0.0]  # bonded across: a solid
    o2.set_initial_magnetic_moments([0.5, 0.5])  # the file's own moments win
    assert dft_labels.initial_magmoms(o2).tolist() == [0.5, 0.5]
    water = Atoms("H2O", positions=[[0, 0, 0], [0.76, 0.59, 0], [-0.76, 0.59, 0]])
    assert not dft_labels.initial_magmoms(water).any()  # closed shell
    fe2 = Atoms("Fe2", positions=[[0, 0, 0], [0, 0, 2.0]], cell=[8, 8, 8], pbc=True)
    assert dft_labels.initial_magmoms(fe2).tolist() == [3.0, 3.0]  # even electrons, magnetic


def test_cli_without_labeller_or_with_unknown_code_is_one_line_error(tmp_path):
    structures = tmp_path / "in.extxyz"
    write(structures, fcc111("Ni", (1, 1, 2), vacuum=3.0), format="extxyz")
    runner = CliRunner()
    for extra, message in (([], "labeller:"), (["--dft", "vasp"], "unknown DFT code")):
        result = runner.invoke(
            cli,
            ["data", "label", str(structures), "--out", str(tmp_path / "o.extxyz"), *extra],
        )
        assert result.exit_code == 2
        assert message in result.output


def test_an_output_folder_is_refused_before_any_teacher_labelling(tmp_path, monkeypatch):
    """`--teacher ... -o DIR` failed with "Is a directory" after every structure was labelled."""
    from catscreen.training import teacher

    def never(*args, **kwargs):
        raise AssertionError("labelled before the output was checked")

    monkeypatch.setattr(teacher, "label", never)
    structures = tmp_path / "in.extxyz"
    write(structures, fcc111("Ni", (1, 1, 2), vacuum=3.0), format="extxyz")
    (tmp_path / "outdir").mkdir()
    args = [
        "data",
        "label",
        str(structures),
        "--teacher",
        "chgnet-pbe",
        "-o",
        str(tmp_path / "outdir"),
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "is a folder; give a file" in result.output
    (tmp_path / "afile").write_text("x")  # an --out that cannot be written: found up front
    result = CliRunner().invoke(cli, [*args[:-1], str(tmp_path / "afile" / "o.extxyz")])
    assert result.exit_code == 2
    assert f"cannot write {tmp_path / 'afile' / 'o.extxyz'}" in result.output.replace("\n", "")
    # a refused command makes no folders
    nested = tmp_path / "new" / "sub" / "o.extxyz"
    result = CliRunner().invoke(cli, [*args[:-1], str(nested), "--ecut", "300"])
    assert result.exit_code == 2 and "apply to --dft only" in result.output
    assert not (tmp_path / "new").exists()


def test_spin_pair_differences_pairs_by_sid():
    from ase.build import bulk
    from ase.calculators.singlepoint import SinglePointCalculator

    frames = []
    for sid, e_off, e_on in (("fe", -8.2, -8.8), ("cu", -3.5, -3.5)):
        for spin, energy in (("off", e_off), ("on", e_on)):
            atoms = bulk(sid.capitalize())
            results = {"energy": energy, "forces": np.zeros((1, 3))}
            if spin == "on":
                results.update(magmoms=np.array([2.3 if sid == "fe" else 0.0]), magmom=2.3)
            atoms.calc = SinglePointCalculator(atoms, **results)
            atoms.info.update(sid=sid, spin=spin, fidelity="gpaw-pbe")
            frames.append(atoms)
    table = dft_labels.spin_pair_differences(frames).set_index("sid")
    assert table.loc["fe", "delta"] == pytest.approx(-0.6)
    assert table.loc["cu", "delta"] == pytest.approx(0.0)
    assert table.loc["fe", "magmoms"] == "2.30"


def test_frames_of_one_system_need_their_own_fid(tmp_path):
    slab = fcc111("Ni", (1, 1, 2), vacuum=3.0)
    slab.info["sid"] = "traj/7"
    frames = [slab.copy(), slab.copy()]
    with pytest.raises(CatscreenError, match="share an id"):
        dft_labels.label_structures(frames, ["off"], tmp_path, GpawSettings())
    for fid, atoms in enumerate(frames):
        atoms.info["fid"] = fid
    names = {dft_labels.part_path(tmp_path, a, "on").name for a in frames}
    assert names == {"traj_7__fid-0__spin-on.extxyz", "traj_7__fid-1__spin-on.extxyz"}


def test_the_test_pairs_are_held_out_of_every_training_config():
    """No sid of a test set is a training sid, and no committed config names their files."""
    rounds = ("train", "extra", "kinds", "kinds2")
    later = ("kinds3", "kinds4", "kinds5", "kinds6")
    train = {a.info["sid"] for name in (*rounds, *later) for a in SETS[name]()}
    tests = ("test", "test2", "test3", "screening")
    test = {a.info["sid"] for name in tests for a in SETS[name]()}
    kinds = {name: {pair_kind(a.info["sid"]) for a in SETS[name]()} for name in SETS}
    # each test set's kinds are new to the rounds made before it (round 3 knows test2's)
    assert not set().union(*(kinds[n] for n in rounds)) & kinds["test2"]
    assert not set().union(*(kinds[n] for n in (*rounds, "kinds3"))) & kinds["test3"]
    assert not train & test
    configs = list((Path(__file__).parents[1] / "data" / "training").rglob("*.yaml"))
    assert configs
    for config in configs:
        assert "gpaw_spin_pairs_test" not in config.read_text(), config  # every test set


@pytest.mark.parametrize("name", ["CO", "OH", "CH"])
def test_diatomic_adsorbates_stand_upright_bound_through_their_first_atom(name):
    slab = spin_pair_slab("Ni", name)
    binder, top = slab[-2], slab[-1]
    assert (binder.symbol, top.symbol) == (name[0], name[1])
    metal_top = slab.positions[slab.get_tags() == 1, 2].max()
    assert binder.position[2] - metal_top == pytest.approx(dft_labels.ADSORBATE_HEIGHTS[name])
    assert np.allclose(top.position - binder.position, [0, 0, dft_labels.UPRIGHT_BONDS[name]])


def test_a_facet_without_a_builder_is_a_one_line_error():
    with pytest.raises(CatscreenError, match=r"no spin-pair slab for Pt\(110\)"):
        spin_pair_slab("Pt", None, facet="110")


def test_pair_kinds_name_what_each_set_holds():
    kinds = {name: {pair_kind(a.info["sid"]) for a in make()} for name, make in SETS.items()}
    slabs = {"open-facet slab", "close-packed slab"}
    assert kinds == {
        "train": {"bulk", "strained bulk", "close-packed slab"},
        "extra": {"close-packed slab"},
        "kinds": slabs | {"ordered alloy"},
        "kinds2": {"open-facet slab", "ordered alloy"},
        "test": slabs | {"strained bulk", "ordered alloy"},
        "test2": {"overlayer", "compound"},
        "kinds3": {"overlayer", "compound"},
        "test3": {"compound surface", "hydride"},
        "screening": {"2x2 close-packed slab"},
        "kinds4": {"2x2 close-packed slab", "2x2 open-facet slab"},
        "kinds5": {"2x2 close-packed slab", "2x2 open-facet slab"},
        "kinds6": {"2x2 close-packed slab"},
    }
    assert pair_kind("gpaw-Fe110-1x1x3-O") == "close-packed slab"  # bcc
    assert pair_kind("gpaw-Ni110-1x1x4-O") == "open-facet slab"  # fcc
    for sid in ("slab-7", "gpaw-Rh111-1x1x3-O"):
        with pytest.raises(CatscreenError, match="not a built-in spin pair"):
            pair_kind(sid)


def test_films_and_compounds():
    fe_on_cu = spin_pair_slab("Cu", "O", height=0.75, facet="100", film="Fe")
    top = fe_on_cu.get_tags() == 1
    assert list(fe_on_cu.symbols[top]) == ["Fe"] and set(fe_on_cu.symbols[~top]) == {"Cu", "O"}
    assert fe_on_cu.info["sid"] == "gpaw-Fe@Cu100-1x1x3-O-h0.75"
    assert fe_on_cu.get_distance(-1, int(np.flatnonzero(top)[0])) == pytest.approx(1.955, abs=1e-3)
    fe4n = spin_pair_compound("Fe4N")
    assert fe4n.get_chemical_formula() == "Fe4N" and fe4n.pbc.all()
    # N at the cube's centre: octahedral among the face-centred Fe, the corner Fe further away
    expected = [3.795 * np.sqrt(3) / 2] + [3.795 / 2] * 3
    assert fe4n.get_all_distances(mic=True)[-1, :4] == pytest.approx(expected)
    nio = spin_pair_compound("NiO-B1")  # starts high-spin: from 1 muB it ends non-magnetic
    assert dft_labels.initial_magmoms(nio).tolist() == [2.0, 0.0]
    with pytest.raises(CatscreenError, match="unknown compound"):
        spin_pair_compound("Fe3C")


def test_compound_structures_strains_and_oxide_surfaces():
    zb, wz = spin_pair_compound("CoO-B3"), spin_pair_compound("CoO-B4")
    assert zb.get_all_distances(mic=True)[0, 1] == pytest.approx(
        4.54 * np.sqrt(3) / 4
    )  # tetrahedral
    assert wz.get_chemical_formula() == "Co2O2" and dft_labels.initial_magmoms(wz)[0] == 3.0
    assert wz.cell.cellpar()[[0, 2]] == pytest.approx([3.24, 5.19])
    above = [i for i, a in enumerate(wz) if a.symbol == "O" and np.allclose(a.position[:2], 0)]
    assert wz.get_distance(0, above[0], mic=True) == pytest.approx(0.38 * 5.19)  # Co-O along c
    strained = spin_pair_compound("CoO-B3", strain=0.03)
    assert strained.info["sid"] == "gpaw-CoO-B3-bulk-strain+0.03"
    assert strained.get_volume() == pytest.approx(zb.get_volume() * 1.03**3)
    assert spin_pair_compound("Co4N", rattle=0.05).info["sid"] == "gpaw-Co4N-bulk-rattle0.05"
    # metallic compounds start at the element defaults, not the ions' high spin
    assert dft_labels.initial_magmoms(spin_pair_compound("Co4N"))[0] == 2.0
    assert pair_kind("gpaw-NiH-B1-bulk") == "hydride"
    slab = dft_labels.spin_pair_oxide_slab("FeO-B1")
    assert slab.get_chemical_formula() == "Fe3O3" and slab.info["sid"] == "gpaw-FeO100-1x1x3-clean"
    # layers a/2 apart; each Fe has O straight above or below it and four O in its own layer
    assert np.diff(slab.positions[::2, 2]) == pytest.approx([4.33 / 2] * 2)
    for i in np.flatnonzero(slab.symbols == "Fe"):
        o = slab.symbols == "O"
        lateral = np.linalg.norm(slab.positions[o, :2] - slab.positions[i, :2], axis=1)
        vertical = np.abs(slab.positions[o, 2] - slab.positions[i, 2])
        assert np.any((lateral < 1e-8) & np.isclose(vertical, 4.33 / 2))
        distances = slab.get_distances(i, np.flatnonzero(o), mic=True)
        assert distances.min() == pytest.approx(4.33 / 2)
    assert set(slab.symbols[slab.get_tags() == 1]) == {"Fe", "O"}  # the top layer free
    assert dft_labels.spin_pair_oxide_slab("FeN-B1").get_chemical_formula() == "Fe3N3"
    with pytest.raises(CatscreenError, match="no rocksalt compound"):
        dft_labels.spin_pair_oxide_slab("CoO-B3")


def _lateral(atoms, i: int, others) -> np.ndarray:  # noqa: ANN001
    """In-plane distances (minimum image) from atom i to the atoms `others`."""
    d = find_mic(atoms.positions[others] - atoms.positions[i], atoms.cell, pbc=atoms.pbc)[0]
    return np.linalg.norm(d[:, :2], axis=1)


def test_round4_puts_its_adsorbates_on_the_sites_its_sids_name():
    """A quarter monolayer on the held-out 2x2x3 cells, at sites and adsorbates those lack."""
    slabs = {a.info["sid"]: a for a in SETS["kinds4"]()}
    for sid in ("gpaw-Co0001-2x2x3-O-hcp", "gpaw-Ni111-2x2x3-O-hcp"):
        slab = slabs[sid]
        assert len(slab) == 13 and slab.symbols[-1] == "O"
        z = np.round(slab.positions[:12, 2], 3)
        third, second, _ = np.unique(z)  # the three metal layers, bottom up
        second, third = np.flatnonzero(z == second), np.flatnonzero(z == third)
        # the hcp hollow is straight above a second-layer metal (Ni's fcc one above a third)
        assert _lateral(slab, 12, second).min() < 1e-6 < _lateral(slab, 12, third).min()
        top = slab.positions[slab.get_tags() == 1, 2].max()
        assert slab.positions[12, 2] - top == pytest.approx(dft_labels.ADSORBATE_HEIGHTS["O"])
    for cell in ("Co0001", "Fe110", "Ni111"):
        slab = slabs[f"gpaw-{cell}-2x2x3-CO-ontop"]
        c, o = len(slab) - 2, len(slab) - 1
        top = np.flatnonzero(slab.get_tags() == 1)
        nearest = top[np.argmin(_lateral(slab, c, top))]
        assert _lateral(slab, c, [nearest])[0] < 1e-6
        assert slab.get_distance(c, nearest) == pytest.approx(dft_labels.ONTOP_HEIGHTS["CO"])
        assert slab.positions[o, 2] - slab.positions[c, 2] == pytest.approx(1.15)
    assert pair_kind("gpaw-Fe100-2x2x3-N") == "2x2 open-facet slab"
    held_out = {a.info["sid"] for a in SETS["screening"]()}
    assert {s.rsplit("-2x2x3-", 1)[0] for s in slabs} >= {"gpaw-Fe110", "gpaw-Co0001", "gpaw-Ni111"}
    assert not set(slabs) & held_out


def test_bad_dft_input_is_refused_before_any_calculation(tmp_path, monkeypatch):
    """Each of these failed after the DFT had run (a non-integer fid lost the result), failed
    with a traceback, or (a negative width) ran an SCF that did not end."""

    def no_dft(*args, **kwargs):
        raise AssertionError("a calculation started")

    monkeypatch.setattr(dft_labels, "gpaw_single_point", no_dft)
    good = fcc111("Cu", (1, 1, 2), vacuum=3.0)
    fid_text = good.copy()
    fid_text.info["fid"] = "first"
    no_paw = fcc111("Cu", (1, 1, 2), vacuum=3.0)
    no_paw.set_chemical_symbols(["Cu", "Am"])
    inputs = {"good": [good], "fid": [fid_text], "am": [no_paw]}
    for name, frames in inputs.items():
        write(tmp_path / f"{name}.extxyz", frames, format="extxyz")
    (tmp_path / "empty.extxyz").write_text("")
    (tmp_path / "xx.extxyz").write_text(
        '1\nLattice="3 0 0 0 3 0 0 0 3" Properties=species:S:1:pos:R:3 pbc="T T T"\nXx 0 0 0\n'
    )
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    cases = [
        ("fid.extxyz", [], "fid 'first' is not a frame index"),
        ("am.extxyz", [], "GPAW has no PBE PAW dataset for Am"),
        ("empty.extxyz", [], ""),
        ("xx.extxyz", [], "as extxyz: unknown element symbol 'Xx'?"),  # it read ": 'Xx'"
        ("good.extxyz", ["--ecut", "-5"], "--ecut must be a finite number > 0"),
        ("good.extxyz", ["--encut", "-5"], "--ecut must be a finite number > 0"),  # validate's
        ("good.extxyz", ["--kpt-density", "0"], "--kpt-density must be a finite number > 0"),
        ("good.extxyz", ["--smearing", "-1"], "--smearing must be a finite number >= 0"),
        ("good.extxyz", ["--work", str(tmp_path / "afile")], "cannot make the parts folder"),
        ("good.extxyz", ["--out", str(tmp_path / "adir")], "is a folder; give a file"),
    ]
    for source, extra, message in cases:
        args = ["data", "label", str(tmp_path / source), "--dft", "gpaw"]
        result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "o.extxyz"), *extra])
        assert result.exit_code == 2, (source, extra, result.output)
        assert message in " ".join(result.output.split()), result.output
        assert len(result.output.strip().splitlines()) <= 2, result.output


def test_a_run_where_nothing_converged_fails(tmp_path, monkeypatch):
    def unconverged(atoms, spin, settings, txt):
        out = atoms.copy()
        out.info.update(spin=spin, sid=dft_labels.structure_id(atoms), fid=0, converged=False)
        out.info.update(geometry="g0", kpts="1x1x1", wall_time=0.0)
        return out

    monkeypatch.setattr(dft_labels, "gpaw_single_point", unconverged)
    write(tmp_path / "in.extxyz", fcc111("Cu", (1, 1, 2), vacuum=3.0), format="extxyz")
    args = ["data", "label", str(tmp_path / "in.extxyz"), "--dft", "gpaw"]
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "o.extxyz")])
    assert result.exit_code == 2 and "none of the 1 structures converged" in result.output


def test_outputs_named_apart_by_a_dotted_suffix_get_parts_of_their_own():
    from catscreen.cli.data import parts_folder

    assert parts_folder(Path("d/run.ecut200.extxyz.xz")) == Path("d/run.ecut200.parts")
    assert parts_folder(Path("d/run.ecut250.extxyz")) == Path("d/run.ecut250.parts")
    assert parts_folder(Path("labels.xyz.gz")) == Path("labels.parts")
    assert parts_folder(Path("labels")) == Path("labels.parts")


def test_new_labels_drop_the_inputs_aqcat_context_flags():
    """An input read with AQCat25 flags keeps them otherwise, beside the new spin/fidelity:
    an AQCat-convention reader would take the input's context for the label's."""
    from ase.build import bulk

    from catscreen.training.teacher import TeacherResult, attach_labels

    atoms = bulk("Ni")
    atoms.info.update(is_spin_off=True, is_low_fi=True, sid="ni")
    result = TeacherResult(-5.0, np.zeros((1, 3)), None, np.zeros(1))
    labelled = attach_labels(atoms, result, "chgnet-pbe", "on")
    assert "is_spin_off" not in labelled.info and "is_low_fi" not in labelled.info
    assert labelled.info["spin"] == "on" and labelled.info["sid"] == "ni"


def _fake_gpaw(atoms, spin, settings, txt):
    """A converged 'GPAW' label made in no time: what the CLI does with parts, not DFT."""
    from dataclasses import asdict

    from ase.calculators.singlepoint import SinglePointCalculator

    out = atoms.copy()
    out.info.update(spin=spin, sid=dft_labels.structure_id(atoms), converged=True)
    out.info.update(geometry=dft_labels.geometry_key(atoms, spin), kpts="1x1x1", wall_time=0.0)
    out.info.update(fidelity="gpaw-pbe", source="gpaw")
    out.info.update({f"gpaw_{k}": v for k, v in asdict(settings).items()})
    energy = {"off": 0.0, "on": -1.0}[spin]
    out.calc = SinglePointCalculator(out, energy=energy, forces=np.zeros((len(out), 3)))
    return out


def test_a_run_with_the_other_spin_keeps_the_pairs_in_out(tmp_path, monkeypatch):
    """`--spin off` then `--spin on` into one OUT left only the spin-on labels in it (the
    spin-off half of each pair stayed in the parts folder)."""
    monkeypatch.setattr(dft_labels, "gpaw_single_point", _fake_gpaw)
    write(tmp_path / "in.extxyz", fcc111("Ni", (1, 1, 2), vacuum=3.0), format="extxyz")
    args = ["data", "label", str(tmp_path / "in.extxyz"), "--dft", "gpaw"]
    out = tmp_path / "pairs.extxyz"
    first = CliRunner().invoke(cli, [*args, "--spin", "off", "--out", str(out)])
    assert first.exit_code == 0, first.output
    second = CliRunner().invoke(cli, [*args, "--spin", "on", "--out", str(out)])
    assert second.exit_code == 0, second.output
    assert "with 1 spin-off label(s) of an earlier run" in " ".join(second.output.split())
    assert sorted(a.info["spin"] for a in load_frames(out)) == ["off", "on"]
    # a --work shared by two outputs: each OUT keeps only its own run's spin
    shared = [*args, "--work", str(tmp_path / "shared")]
    for spin in ("off", "on"):
        apart = CliRunner().invoke(
            cli, [*shared, "--spin", spin, "-o", str(tmp_path / f"{spin}.xyz")]
        )
        assert apart.exit_code == 0 and "earlier run" not in apart.output, apart.output
        assert [a.info["spin"] for a in load_frames(tmp_path / f"{spin}.xyz")] == [spin]
    # the other spin's parts are checked as resumed ones are, before any labelling
    monkeypatch.setattr(dft_labels, "gpaw_single_point", None)
    for part in (tmp_path / "pairs.parts").glob("*spin-on*"):
        part.unlink()  # only the spin-off part is left to say its cutoff
    again = CliRunner().invoke(cli, [*args, "--spin", "on", "--out", str(out), "--ecut", "300"])
    assert again.exit_code == 2 and "was labelled with ecut" in " ".join(again.output.split())


def test_an_output_named_as_no_extxyz_is_refused_before_labelling(tmp_path, monkeypatch):
    """`--out l.db` wrote extxyz text that `evaluate` then could not open as a database."""
    monkeypatch.setattr(dft_labels, "gpaw_single_point", None)
    write(tmp_path / "in.extxyz", fcc111("Cu", (1, 1, 2), vacuum=3.0), format="extxyz")
    for labeller in (["--dft", "gpaw"], ["--teacher", "chgnet-pbe"]):
        args = ["data", "label", str(tmp_path / "in.extxyz"), *labeller]
        result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "l.db")])
        assert result.exit_code == 2 and "--out l.db: labels are written as extxyz" in result.output
        assert not (tmp_path / "l.db").exists()
