"""Loaders: extxyz (plain and gzip), folders and ASE databases with AQCat25-style keys."""

from __future__ import annotations

import gzip

import ase.db
import numpy as np
import pytest
from ase.build import bulk, fcc111, hcp0001
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from catscreen.errors import CatscreenError
from catscreen.training.datasets import ContextDefaults, load_frames, write_extxyz


def _labelled(atoms, energy=-1.0, **info):
    atoms = atoms.copy()
    atoms.calc = SinglePointCalculator(
        atoms, energy=energy, forces=np.zeros((len(atoms), 3)), magmoms=np.ones(len(atoms))
    )
    atoms.info.update(info)
    return atoms


def _frames():
    slab = fcc111("Ni", (1, 1, 3), vacuum=5.0)
    return [
        _labelled(slab, -10.0, spin="off", fidelity="gpaw-pbe", source="gpaw", sid="ni111", fid=0),
        _labelled(slab, -10.2, spin="on", fidelity="gpaw-pbe", source="gpaw", sid="ni111", fid=0),
        _labelled(bulk("Cu"), -3.0, spin="OFF", fidelity="chgnet-pbe", source="chgnet", sid=7),
    ]


def test_extxyz_plain_and_gzip_give_same_normalised_frames(tmp_path):
    plain = tmp_path / "frames.extxyz"
    write(plain, _frames(), format="extxyz")
    packed = tmp_path / "frames.extxyz.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    for path in (plain, packed):
        frames = load_frames(path)
        assert [a.info["spin"] for a in frames] == ["off", "on", "off"]
        assert [a.info["sid"] for a in frames] == ["ni111", "ni111", "7"]
        assert [a.info["fid"] for a in frames] == [0, 0, 0]
        assert frames[2].info["source"] == "chgnet"
        assert frames[1].get_potential_energy() == pytest.approx(-10.2)
        assert frames[1].get_magnetic_moments() == pytest.approx(np.ones(3))


def test_ids_that_look_like_numbers_stay_as_written(tmp_path):
    """ASE's extxyz parser read sid 007 as 7 and T as True: two systems became one."""
    path = tmp_path / "ids.extxyz.gz"
    sids = ["007", "7", "T", "1e3"]
    write_extxyz([_labelled(bulk("Cu"), -3.0, spin="off", sid=sid) for sid in sids], path)
    frames = load_frames(path, ContextDefaults(fidelity="chgnet-pbe"))
    assert [a.info["sid"] for a in frames] == sids
    assert [a.info["fid"] for a in frames] == [0, 0, 0, 0]


def test_dotted_file_names_keep_their_sources_apart(tmp_path):
    """pt.ecut300 and pt.ecut400 both became source `pt` with sids pt-0, pt-1: one system."""
    for ecut in (300, 400):
        write(tmp_path / f"pt.ecut{ecut}.extxyz", [_labelled(bulk("Pt"), -6.0)], format="extxyz")
    defaults = ContextDefaults(spin="off", fidelity="my-dft")
    frames = [a for e in (300, 400) for a in load_frames(tmp_path / f"pt.ecut{e}.extxyz", defaults)]
    assert [(a.info["source"], a.info["sid"]) for a in frames] == [
        ("pt.ecut300", "pt.ecut300-0"),
        ("pt.ecut400", "pt.ecut400-0"),
    ]


def test_missing_context_filled_from_defaults_and_file_name(tmp_path):
    path = tmp_path / "mine.xyz"
    write(path, [_labelled(bulk("Pt"), -6.0), _labelled(bulk("Pt"), -6.1)], format="extxyz")
    with pytest.raises(CatscreenError, match="no 'spin'"):
        load_frames(path)
    frames = load_frames(path, ContextDefaults(spin="off", fidelity="my-dft"))
    assert {a.info["source"] for a in frames} == {"mine"}
    assert [a.info["sid"] for a in frames] == ["mine-0", "mine-1"]
    assert {a.info["fidelity"] for a in frames} == {"my-dft"}


def test_folder_reads_every_extxyz(tmp_path):
    for i, atoms in enumerate(_frames()):
        write(tmp_path / f"part{i}.extxyz", atoms, format="extxyz")
    (tmp_path / "notes.txt").write_text("ignored")
    assert len(load_frames(tmp_path)) == 3
    # an error names the shard and its own frame: "FOLDER frame 3" could not be found
    bad = _frames()[0].copy()
    bad.info.update(spin="off", fidelity="x")  # no calculator: no energy label
    write(tmp_path / "part9.extxyz", [bad], format="extxyz")
    with pytest.raises(CatscreenError, match=r"part9.extxyz frame 0 has no energy label$"):
        load_frames(tmp_path)


def _aqcat_db(path):
    slab = hcp0001("Co", (1, 1, 2), vacuum=5.0)
    with ase.db.connect(path) as db:
        for sid, off, low, fid in [
            (11, True, False, 0),
            (11, False, False, 0),
            (12, False, True, 3),
        ]:
            db.write(_labelled(slab, -5.0 - fid), sid=sid, fid=fid, is_spin_off=off, is_low_fi=low)


def test_ase_db_with_aqcat25_keys(tmp_path):
    path = tmp_path / "aqcat.db"
    _aqcat_db(path)
    frames = load_frames(path, ContextDefaults(fidelity="aqcat-high", low_fidelity="aqcat-low"))
    assert [a.info["spin"] for a in frames] == ["off", "on", "on"]
    assert [a.info["fidelity"] for a in frames] == ["aqcat-high", "aqcat-high", "aqcat-low"]
    assert [a.info["sid"] for a in frames] == ["11", "11", "12"]
    assert [a.info["fid"] for a in frames] == [0, 0, 3]
    assert {a.info["source"] for a in frames} == {"aqcat"}
    assert frames[2].get_potential_energy() == pytest.approx(-8.0)


def test_ase_db_key_names_are_configurable(tmp_path):
    path = tmp_path / "other.db"
    with ase.db.connect(path) as db:
        db.write(_labelled(bulk("Fe"), -8.0), no_spin=1, cheap=0)
    opts = ContextDefaults(spin_off_key="no_spin", low_fi_key="cheap", fidelity="hi")
    (atoms,) = load_frames(path, opts)
    assert (atoms.info["spin"], atoms.info["fidelity"]) == ("off", "hi")


FRAME = '1\nPBC="F F F"\nNi 0 0 0\n'
CUT_GZIP = gzip.compress((FRAME * 50).encode())[:40]  # a gzip stream cut off


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.extxyz", None, "file not found"),
        ("broken.extxyz", "3\nnot a header\nNi 0 0\n", "cannot read"),
        ("broken.db", "this is not sqlite", "cannot read .* as an ASE database"),
        ("empty.db", "", "is not an ASE database"),
        ("unknown.extxyz", '1\nPBC="F F F"\nXx 0 0 0\n', "unknown element symbol 'Xx'"),
        ("frames.cif", "data_x", "unknown dataset format"),
        ("empty.extxyz", "", "cannot read|holds no frames"),
        ("plain.extxyz.gz", FRAME, "cannot read .*Not a gzipped file"),
        ("cut.extxyz.gz", CUT_GZIP, "cannot read .*end-of-stream"),
    ],
)
def test_bad_files_are_one_line_errors(tmp_path, name, content, message):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(CatscreenError, match=message) as err:
        load_frames(path)
    assert "\n" not in str(err.value)


def test_frame_without_energy_or_with_bad_spin_is_rejected(tmp_path):
    path = tmp_path / "x.extxyz"
    atoms = bulk("Ni")
    atoms.info.update(spin="on", fidelity="f")
    write(path, atoms, format="extxyz")
    with pytest.raises(CatscreenError, match="no energy label"):
        load_frames(path)
    write(path, _labelled(bulk("Ni"), spin="maybe", fidelity="f"), format="extxyz")
    with pytest.raises(CatscreenError, match="spin='maybe'"):
        load_frames(path)


def test_training_energy_is_the_force_consistent_one(tmp_path):
    """GPAW frames carry `energy` (zero-width) and `free_energy` (what the forces belong to)."""
    from catscreen.training.datasets import label_energy
    from catscreen.training.trainer import DatasetSpec, load_dataset

    smeared = bulk("Ni")
    smeared.calc = SinglePointCalculator(
        smeared, energy=-5.50, free_energy=-5.53, forces=np.zeros((1, 3))
    )
    smeared.info.update(spin="on", fidelity="gpaw-pbe", source="gpaw", sid="ni")
    plain = _labelled(bulk("Cu"), -3.0, spin="off", fidelity="chgnet-pbe", sid="cu")
    path = tmp_path / "frames.extxyz"
    write(path, [smeared, plain], format="extxyz")
    frames = load_frames(path)
    assert [label_energy(a) for a in frames] == pytest.approx([-5.53, -3.0])
    assert [f.energy for f in load_dataset(DatasetSpec(path=path))] == pytest.approx([-5.53, -3.0])


def test_dataset_kinds_filter_keeps_only_those_frames(tmp_path):
    """A folder listed again with `kinds: [slab]` up-weights its clean slabs alone."""
    from catscreen.training.trainer import DatasetSpec, TrainConfig, load_dataset

    frames = []
    for kind, sid in [("slab", "cu-clean"), ("adslab", "cu-O"), ("bulk", "cu-bulk")]:
        a = _labelled(bulk("Cu"), -3.0, spin="off", fidelity="chgnet-pbe", sid=sid)
        a.info["kind"] = kind
        frames.append(a)
    path = tmp_path / "frames.extxyz"
    write(path, frames, format="extxyz")
    spec = TrainConfig.from_dict({"datasets": [{"path": str(path), "kinds": ["slab"]}]}).datasets[0]
    assert spec.kinds == ("slab",)
    one = TrainConfig.from_dict({"datasets": [{"path": str(path), "kinds": "slab"}]}).datasets[0]
    assert one.kinds == ("slab",)
    assert [f.sid for f in load_dataset(spec)] == ["cu-clean"]
    assert len(load_dataset(DatasetSpec(path=str(path)))) == 3
    with pytest.raises(CatscreenError, match="no frames of kind gas"):
        load_dataset(DatasetSpec(path=str(path), kinds=("gas",)))


def test_dataset_stages_filter_keeps_relaxation_ends(tmp_path):
    """`stages: [end]` lists a folder's relaxed minima again, with `kinds` on top of it."""
    from catscreen.training.trainer import DatasetSpec, TrainConfig, load_dataset

    frames = []
    for kind, stage, sid in [
        ("adslab", "relax3", "cu-O"),
        ("adslab", "end", "cu-O"),
        ("slab", "end", "cu-clean"),
        ("bulk", "strain+0.000", "cu-bulk"),
    ]:
        a = _labelled(bulk("Cu"), -3.0, spin="off", fidelity="chgnet-pbe", sid=sid)
        a.info.update(kind=kind, stage=stage)
        frames.append(a)
    path = tmp_path / "frames.extxyz"
    write(path, frames, format="extxyz")
    spec = TrainConfig.from_dict({"datasets": [{"path": str(path), "stages": "end"}]}).datasets[0]
    assert spec.stages == ("end",)
    assert [f.sid for f in load_dataset(spec)] == ["cu-O", "cu-clean"]
    both = DatasetSpec(path=str(path), kinds=("adslab",), stages=("end",))
    assert [f.sid for f in load_dataset(both)] == ["cu-O"]
    with pytest.raises(CatscreenError, match="no frames of stage md4"):
        load_dataset(DatasetSpec(path=str(path), stages=("md4",)))


def test_another_sqlite_file_is_refused_and_left_as_it_was(tmp_path):
    """ase.db.connect would create its tables in it; the loader only looks."""
    import sqlite3

    path = tmp_path / "other.db"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE results (x REAL)")
    con.close()
    before = path.read_bytes()
    with pytest.raises(CatscreenError, match="other.db is not an ASE database"):
        load_frames(path)
    assert path.read_bytes() == before
