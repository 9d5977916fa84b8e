"""The relax engine, its jobflow Flow and executors, with EMT and real jobflow/Dask."""

from __future__ import annotations

import fcntl
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest
from ase import Atoms
from ase.build import add_adsorbate, fcc111, molecule
from ase.calculators.emt import EMT
from ase.constraints import FixAtoms, FixCartesian
from ase.io import write
from ase.optimize import FIRE, LBFGS
from jobflow import Flow, JobStore
from jobflow.managers.local import run_locally
from maggma.stores import MemoryStore
from monty.json import MontyDecoder

from catscreen.build.enumerate import EnumerateSettings, enumerate_configurations
from catscreen.errors import CatscreenError
from catscreen.io import atoms_from_text, atoms_to_text, write_parquet
from catscreen.model.api import Prediction, load_model, mid_vacuum_z
from catscreen.schema import MANIFEST_COLUMNS, RESULT_COLUMNS
from catscreen.workflow import RelaxMaker, RelaxSettings, relax_configurations, relax_items
from catscreen.workflow.executors import run_local
from catscreen.workflow.inputs import read_configs, select, work_items
from catscreen.workflow.optimizers import make_optimizer
from catscreen.workflow.relax import explosion_reason, fixed_mask
from catscreen.workflow.store import OutputLock


def adslab(metal: str, ads: str, site: str, height: float = 1.9, cid: str = "") -> Atoms:
    """A 2x2x3 (111) slab, enumerate-style: tags 0/1/2 and FixAtoms on tag 0."""
    slab = fcc111(metal, (2, 2, 3), vacuum=7.0, a={"Fe": 2.9}.get(metal))
    surface = np.where(slab.get_tags() == 1, 1, 0)
    mol = molecule(ads) if len(ads) > 1 else Atoms(ads)
    heavy = [i for i, s in enumerate(mol.get_chemical_symbols()) if s != "H"] or [0]
    binding = min(heavy, key=lambda i: mol.positions[i, 2])  # C of CO, O of OH: the lowest heavy
    add_adsorbate(slab, mol, height, site, mol_index=binding)
    slab.set_tags(list(surface) + [2] * (len(slab) - len(surface)))
    slab.set_constraint(FixAtoms(mask=slab.get_tags() == 0))
    del slab.info["adsorbate_info"]
    slab.info.update(
        config_id=cid or f"{metal}-{ads}-{site}", system_id=f"{metal}-{ads}", slab_id=metal,
        kind="adslab", bulk=metal, miller="1,1,1", termination=0, site_type=site, adsorbate=ads,
    )  # fmt: skip
    return slab


def write_manifest(folder, images: Sequence[Atoms]):
    """configs.parquet + configs.extxyz as enumerate writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    write(folder / "configs.extxyz", list(images), format="extxyz")
    rows = []
    for i, a in enumerate(images):
        row = {c: a.info.get(c) for c in MANIFEST_COLUMNS}
        row.update(formula=a.get_chemical_formula(), n_atoms=len(a), structure_index=i)
        rows.append(row)
    path = folder / "configs.parquet"
    write_parquet(pd.DataFrame(rows), path, metadata={"structures": "configs.extxyz"})
    return path


def items_for(images: Sequence[Atoms], spin: str = "off"):
    model = load_model("emt")
    path_images = list(images)
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "c.extxyz"
        write(p, path_images, format="extxyz")
        df, frames = read_configs(p)
    return model, work_items(df, frames, model.info, spin, None)


@pytest.mark.parametrize(("name", "ase_cls"), [("fire", FIRE), ("lbfgs", LBFGS)])
def test_batched_optimizer_follows_ase(name, ase_cls):
    """One structure in our batched optimizer takes ASE's path step for step."""
    start = adslab("Cu", "O", "fcc", height=1.6)
    ours, ref = start.copy(), start.copy()
    ref.calc = EMT()
    ase_opt = ase_cls(ref, logfile=None)
    fixed = fixed_mask(ours)
    opt = make_optimizer(name, [len(ours), len(ours)])
    calc = EMT()
    for _ in range(8):
        ours.calc = calc
        f = ours.get_forces(apply_constraint=False)
        f[fixed] = 0.0
        (dr,) = opt.step([1], [ours.positions.copy()], [f])
        ours.positions = ours.positions + dr
        ase_opt.run(fmax=1e-6, steps=1)
        ase_opt.nsteps = 0
    np.testing.assert_allclose(ours.positions, ref.positions, atol=1e-8)


def test_spin_auto_decides_by_the_surface_not_its_adsorbate():
    """A Ni adatom made Cu(111)+Ni spin-on beside its spin-off clean slab: E_ads would
    subtract energies of two contexts, and rank refused the whole run."""
    from catscreen.model.api import resolve_spin

    on_cu = adslab("Cu", "O", "fcc")
    on_cu.symbols[-1] = "Ni"  # a single-atom adsorbate of a magnetic element
    clean = on_cu[on_cu.get_tags() != 2]
    assert resolve_spin(on_cu, "auto") == resolve_spin(clean, "auto") == "off"
    assert resolve_spin(adslab("Ni", "O", "fcc"), "auto") == "on"  # a magnetic surface
    assert resolve_spin(Atoms("Ni"), "auto") == "on"  # untagged: all its atoms
    alone = Atoms("Ni", tags=[2])  # nothing but adsorbate: all its atoms too
    assert resolve_spin(alone, "auto") == "on" and resolve_spin(on_cu, "on") == "on"
    # ASE's layer tags (1..n from the top) are no adsorbate: a Pt/Ni/Pt slab's Ni layer, tag
    # 2, was left out and the slab ran spin off, as did a 2-layer Pt skin on Ni
    sandwich = fcc111("Pt", (2, 2, 3), vacuum=7.0)
    sandwich.symbols[sandwich.get_tags() == 2] = "Ni"
    skin = fcc111("Pt", (2, 2, 2), vacuum=7.0)
    skin.symbols[skin.get_tags() == 2] = "Ni"
    assert resolve_spin(sandwich, "auto") == resolve_spin(skin, "auto") == "on"
    under = on_cu.copy()  # an Open Catalyst tag 2 under the surface is no adsorbate either
    under.positions[-1, 2] = under.positions[:, 2].min() - 1.0
    assert resolve_spin(under, "auto") == "on"


def test_local_flow_manifest_fixed_atoms_gas_and_schema(tmp_path):
    images = [adslab("Ni", "O", "fcc"), adslab("Cu", "CO", "ontop"), adslab("Cu", "N", "hcp")]
    manifest = write_manifest(tmp_path / "enum", images)
    out = tmp_path / "results.parquet"
    summary = relax_configurations(
        manifest, out, RelaxSettings(model="emt", batch_size=2, fmax=0.05), progress=False
    )
    df = pd.read_parquet(out)
    expected = [c for c in MANIFEST_COLUMNS if c != "structure_index"] + list(RESULT_COLUMNS)
    assert list(df.columns[: len(expected)]) == expected
    # spin auto: Ni -> on, Cu -> off; gas references for both contexts
    slabs = df[df.kind == "adslab"].set_index("config_id")
    assert slabs.loc["Ni-O-fcc", "spin"] == "on" and slabs.loc["Cu-CO-ontop", "spin"] == "off"
    gas = df[df.kind == "gas"]
    assert sorted(gas.groupby("spin").adsorbate.apply(sorted).sum()) == sorted(
        ["CO", "H2", "H2O", "N2"] * 2
    )
    assert gas.config_id.is_unique
    assert (df.status == "converged").all() and (df.fmax <= 0.05).all()
    assert (
        set(df.model) == {"emt"} and set(df.fidelity) == {"emt"} and set(df.spin_mode) == {"auto"}
    )
    assert summary.converged == len(df) == 3 + 8 and summary.failed == 0
    for row in slabs.itertuples():
        first, last = atoms_from_text(row.initial_structure), atoms_from_text(row.final_structure)
        fixed = last.get_tags() == 0
        assert fixed.sum() == 8
        np.testing.assert_array_equal(first.positions[fixed], last.positions[fixed])
        np.testing.assert_array_equal(first.cell[:], last.cell[:])
        assert np.abs(first.positions[~fixed] - last.positions[~fixed]).max() > 1e-3
        assert last.get_potential_energy() == pytest.approx(row.energy)
    # rerun: nothing left to do, nothing recomputed
    again = relax_configurations(manifest, out, RelaxSettings(model="emt"), progress=False)
    assert again.ran == 0 and again.reused == 11
    pd.testing.assert_frame_equal(pd.read_parquet(out), df)


def test_subset_selection(tmp_path):
    images = [adslab("Cu", "O", "fcc"), adslab("Cu", "N", "fcc"), adslab("Pt", "O", "fcc")]
    p = tmp_path / "c.extxyz"
    write(p, images, format="extxyz")
    s = RelaxSettings(model="emt", spin="off", adsorbates=["O"], ids=["Pt-O-fcc"], steps=3)
    relax_configurations(p, tmp_path / "r.parquet", s, progress=False)
    df = pd.read_parquet(tmp_path / "r.parquet")
    assert sorted(df[df.kind != "gas"].config_id) == ["Pt-O-fcc"]
    assert (df[df.kind != "gas"].status == "not_converged").all()
    with pytest.raises(CatscreenError, match="--id nope: no configuration has it"):
        relax_configurations(p, tmp_path / "x.parquet", RelaxSettings(model="emt", ids=["nope"]))
    # one unknown among known ones ran the known alone, exit 0
    with pytest.raises(CatscreenError, match=r"--adsorbate Zz, o: no configuration has it"):
        select(read_configs(p)[0], adsorbates=["O", "Zz", "o"])
    with pytest.raises(CatscreenError, match="no configuration matches"):  # each one alone does
        select(read_configs(p)[0], adsorbates=["N"], ids=["Pt-O-fcc"])


def test_an_extxyz_keeps_text_that_looks_like_numbers(tmp_path):
    """Without the parquet, ASE's extxyz parser turned a bulk named 007 into 7 and the
    adsorbate F (fluorine) into False."""
    image = adslab("Pt", "O", "fcc")
    image.info.update(bulk="007", adsorbate="F", system_id="1e3", termination=1)
    image.info["miller"] = np.array([1, 1, 1])  # written from an array: "1 1 1" in the file
    write(tmp_path / "c.extxyz", [image], format="extxyz")
    df, _ = read_configs(tmp_path / "c.extxyz")
    row = df.iloc[0]
    assert (row.bulk, row.adsorbate, row.system_id, row.miller) == ("007", "F", "1e3", "1,1,1")
    assert row.termination == 1


def test_a_subset_keeps_the_clean_slabs_of_its_adslabs(tmp_path):
    """--adsorbate O on a two-facet manifest: the O placements and their own clean slabs."""
    from catscreen.build.enumerate import (
        EnumerateSettings,
        enumerate_configurations,
        write_configurations,
    )
    from catscreen.workflow.inputs import read_configs, select

    settings = EnumerateSettings(
        bulks=["Cu"], miller=["1,1,1", "1,0,0"], adsorbates=["O", "H"], min_slab_size=4.0,
        vacuum=10.0, min_ab=5.0,
    )  # fmt: skip
    write_configurations(enumerate_configurations(settings), tmp_path / "enum", settings)
    df, _ = read_configs(tmp_path / "enum")
    chosen = df[select(df, adsorbates=["O"])]
    assert set(chosen[chosen.kind == "adslab"].adsorbate) == {"O"}
    assert sorted(chosen[chosen.kind == "slab"].slab_id) == sorted(df[df.kind == "slab"].slab_id)
    one = df[df.kind == "adslab"].iloc[0]
    chosen = df[select(df, ids=[one.config_id])]
    assert sorted(chosen.kind) == ["adslab", "slab"] and set(chosen.slab_id) == {one.slab_id}


class NaNFor:
    """A real Model: EMT, except that structures containing `element` get NaN forces."""

    def __init__(self, element: str) -> None:
        self.inner = load_model("emt")
        self.info = self.inner.info
        self.element = element

    def predict(self, structures, spins, fidelities, stress=False):
        preds = self.inner.predict(structures, spins, fidelities)
        for atoms, p in zip(structures, preds, strict=True):
            if self.element in atoms.get_chemical_symbols():
                p.forces = np.full_like(p.forces, np.nan)
        return preds


def test_explosions_fail_alone_and_the_batch_goes_on():
    images = [
        adslab("Cu", "O", "fcc"),
        adslab("Cu", "O", "ontop", height=0.05, cid="overlap"),  # O inside Cu: huge force
        adslab("Fe", "O", "fcc", cid="no-emt"),  # EMT has no Fe: the row says so
        adslab("Au", "N", "fcc", cid="au-nan"),
    ]
    model, items = items_for(images)
    rows = {r["config_id"]: r for r in relax_items(NaNFor("Au"), items[4:])}
    assert rows["Cu-O-fcc"]["status"] == "converged"
    assert rows["overlap"]["status"] == "failed" and "limit" in rows["overlap"]["reason"]
    assert rows["no-emt"]["status"] == "failed"
    assert "model emt was not trained on element(s) Fe" in rows["no-emt"]["reason"]
    assert rows["au-nan"]["status"] == "failed" and "non-finite forces" in rows["au-nan"]["reason"]
    assert all(math.isnan(rows[k]["energy"]) for k in ("overlap", "no-emt", "au-nan"))


def test_flying_apart_and_leaving_the_cell_are_explosions():
    ok = Prediction(energy=0.0, forces=np.zeros((13, 3)))
    far = adslab("Cu", "O", "fcc", height=10.5)
    assert "from every other atom" in explosion_reason(far, None, ok)
    low = adslab("Cu", "O", "fcc")
    z0 = mid_vacuum_z(low)
    low.positions[0, 2] -= 0.6 * low.cell[2, 2]  # down through the vacuum, past its middle
    assert "crossed the vacuum" in explosion_reason(low, z0, ok)
    assert explosion_reason(adslab("Cu", "O", "fcc"), z0, ok) == ""
    # a slab with its bottom layer at z = 0 (ASE's `surface`): a small move down is no crossing
    floor = adslab("Cu", "O", "fcc")
    floor.positions[:, 2] -= floor.positions[:, 2].min()
    z0 = mid_vacuum_z(floor)
    floor.positions[0, 2] -= 0.01
    assert explosion_reason(floor, z0, ok) == ""
    # far from the atoms in the cell, close to their periodic images: bonded, not isolated
    shifted = adslab("Cu", "O", "fcc")
    shifted.positions[-1] += 4 * shifted.cell[0]
    assert explosion_reason(shifted, None, ok) == ""


def test_a_collapse_into_a_hole_of_the_potential_is_an_explosion():
    """OH pulled to 0.4 A with moderate forces (a product-basis candidate drove N-H of NH2 on
    Ni(110) to 0.22 A this way), also through the periodic boundary."""
    ok = Prediction(energy=0.0, forces=np.zeros((14, 3)))
    oh = adslab("Cu", "OH", "ontop")
    assert explosion_reason(oh, None, ok) == ""
    oh.positions[-1] = oh.positions[-2] + [0.0, 0.0, 0.4]
    reason = explosion_reason(oh, None, ok)
    assert "atoms 12 and 13 collapsed to 0.40 A" in reason or "atoms 13 and 12" in reason
    wrapped = adslab("Cu", "O", "fcc")
    wrapped.positions[-1] = wrapped.positions[8] + 0.5 * np.array([1.0, 0.0, 0.0])
    wrapped.positions[-1] += wrapped.cell[0]  # the same contact seen through the boundary
    reason = explosion_reason(wrapped, None, Prediction(energy=0.0, forces=np.zeros((13, 3))))
    assert "collapsed to 0.50 A" in reason
    # a start already closer (0.2x of the radii sum; here 0.25x) fails only if it closes further
    ok13 = Prediction(energy=0.0, forces=np.zeros((13, 3)))
    assert explosion_reason(wrapped, None, ok13, initial_contact=0.2) == ""


def test_serialised_flow_round_trip_runs():
    model, items = items_for([adslab("Cu", "O", "fcc"), adslab("Pt", "N", "hcp")])
    flow = RelaxMaker(model="emt", batch_size=3, fmax=0.1).make(items)
    assert len(flow.jobs) == 2
    decoded = MontyDecoder().decode(flow.to_json())
    assert [j.uuid for j in decoded.jobs] == [j.uuid for j in flow.jobs]
    responses = run_locally(decoded, store=JobStore(MemoryStore()), log=False, ensure_success=True)
    rows = [r for j in decoded.jobs for r in responses[j.uuid][1].output]
    direct = relax_items(model, items, fmax=0.1)
    assert [r["config_id"] for r in rows] == [r["config_id"] for r in direct]
    np.testing.assert_allclose([r["energy"] for r in rows], [r["energy"] for r in direct])


def test_second_writer_is_refused(tmp_path):
    p = tmp_path / "c.extxyz"
    write(p, [adslab("Cu", "O", "fcc")], format="extxyz")
    out = tmp_path / "r.parquet"
    with OutputLock(out), pytest.raises(CatscreenError, match="being written by another"):
        relax_configurations(p, out, RelaxSettings(model="emt"), progress=False)
    relax_configurations(p, out, RelaxSettings(model="emt", steps=2), progress=False)
    assert len(pd.read_parquet(out)) == 5


def test_a_finished_run_removes_its_lock_file_and_a_replaced_one_is_not_trusted(
    tmp_path, monkeypatch
):
    """`r.parquet.lock` stayed beside every result table. Removing it opens a race: a run that
    opened the file before it went would lock an orphan while a third run locks the new file;
    the lock is taken again on whatever the path holds after locking."""
    out = tmp_path / "r.parquet"
    lock = tmp_path / "r.parquet.lock"
    with OutputLock(out):
        assert lock.read_text() == str(os.getpid())
    assert not lock.exists()

    real_flock, calls = fcntl.flock, []

    def flock_after_a_replacement(fd, op):
        if not calls:  # another run removed the file we opened, and a third made it anew
            lock.unlink()
            lock.write_text("")
        calls.append(fd)
        return real_flock(fd, op)

    monkeypatch.setattr(fcntl, "flock", flock_after_a_replacement)
    with OutputLock(out) as held:
        assert os.fstat(held._fd).st_ino == os.stat(lock).st_ino
    assert len(calls) == 3  # the orphan, the current file, the unlock


def test_a_killed_write_s_temporary_copy_is_removed_by_the_next_run(tmp_path):
    """A SIGKILL while results.parquet was written left `.r.parquet.*.tmp` behind, as large as
    the table, on every kill; the next run holding the lock removes them (not other files)."""
    out = tmp_path / "r.parquet"
    left = tmp_path / ".r.parquet.abc123.tmp"
    left.write_bytes(b"x" * 100)
    other = tmp_path / ".q.parquet.abc123.tmp"
    other.write_bytes(b"x")
    with OutputLock(out):
        pass
    assert not left.exists() and other.exists()


def test_inputs_no_model_can_relax_are_refused_up_front(tmp_path):
    """NaN positions failed as a "model error" and pbc without a cell as an explosion of
    non-finite forces, exit 0; integer config_ids crashed the results write (a traceback)."""
    nan = adslab("Cu", "O", "fcc", cid="nanpos")
    nan.positions[3, 0] = np.nan
    write(tmp_path / "nan.extxyz", [nan], format="extxyz")
    with pytest.raises(CatscreenError, match="configuration nanpos has non-finite positions"):
        read_configs(tmp_path / "nan.extxyz")
    flat = adslab("Cu", "O", "fcc", cid="flat")
    flat.cell[2] = 0.0
    flat.pbc = True
    write(tmp_path / "flat.extxyz", [flat], format="extxyz")
    with pytest.raises(CatscreenError, match="flat has a periodic direction without a cell"):
        read_configs(tmp_path / "flat.extxyz")
    images = [adslab("Cu", "O", "fcc", cid="x"), adslab("Cu", "O", "hcp", cid="y")]
    for k, image in enumerate(images):
        image.info["config_id"] = k + 1
    path = write_manifest(tmp_path / "ints", images)
    df = pd.read_parquet(path)
    df["config_id"] = [1, 2]
    write_parquet(df, path, metadata={"structures": "configs.extxyz"})
    relax_configurations(
        path, tmp_path / "r.parquet", RelaxSettings(model="emt", steps=2), progress=False
    )
    got = pd.read_parquet(tmp_path / "r.parquet")
    assert {"1", "2"} <= set(got.config_id)


def test_tags_are_read_on_a_slab_wrapped_through_z_0(tmp_path):
    """An Open Catalyst-tagged slab whose top crossed the cell's z boundary (VASP, pymatgen
    files) was refused as holding ASE's layer numbers."""
    slab = adslab("Cu", "O", "fcc", cid="wrapped")
    slab.positions[:, 2] -= slab.positions[slab.get_tags() == 1, 2].min() - 0.2
    slab.pbc = True
    slab.wrap()
    tags, z = slab.get_tags(), slab.positions[:, 2]
    assert z[tags == 0].max() > z[tags == 1].max()  # the subsurface now at the top of the cell
    write(tmp_path / "w.extxyz", [slab], format="extxyz")
    df, _ = read_configs(tmp_path / "w.extxyz")
    assert list(df.config_id) == ["wrapped"]


def test_an_output_that_cannot_be_created_is_one_clear_error(tmp_path):
    p = tmp_path / "c.extxyz"
    write(p, [adslab("Cu", "O", "fcc")], format="extxyz")
    (tmp_path / "a_file").write_text("")
    with pytest.raises(CatscreenError, match="cannot write .*a_file/r.parquet"):
        relax_configurations(p, tmp_path / "a_file" / "r.parquet", RelaxSettings(model="emt"))


def test_a_failed_write_stops_the_run_and_keeps_the_results(tmp_path, monkeypatch):
    """Disk full while writing: one clear error (also through run_locally, which swallows
    Job exceptions), and the results already on disk stay as they were."""
    import errno

    import catscreen.io

    p = tmp_path / "c.extxyz"
    write(p, [adslab("Cu", "O", "fcc")], format="extxyz")
    out = tmp_path / "r.parquet"
    relax_configurations(p, out, RelaxSettings(model="emt", steps=2), progress=False)
    before = out.read_bytes()
    write(p, [adslab("Cu", "O", "fcc"), adslab("Pt", "O", "fcc")], format="extxyz")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(catscreen.io.pq, "write_table", full)
    with pytest.raises(CatscreenError, match="cannot write .*No space left on device; the prev"):
        relax_configurations(p, out, RelaxSettings(model="emt", steps=2), progress=False)
    assert out.read_bytes() == before
    assert [f.name for f in tmp_path.iterdir() if f.name.endswith(".tmp")] == []


def test_a_folder_named_like_a_builtin_model_is_not_a_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "emt").mkdir()
    assert RelaxSettings(model="emt").model_ref() == "emt"
    (tmp_path / "mine.pt").write_bytes(b"")
    assert RelaxSettings(model="mine.pt").model_ref() == str(tmp_path / "mine.pt")


@pytest.mark.parametrize("tagged", [True, False])
def test_per_direction_constraints_hold(tagged):
    """O may move along z only (FixCartesian); extxyz then stores every constraint as a
    3-column move_mask, and the FixAtoms bottom layers come back as FixCartesian too."""
    start = adslab("Cu", "O", "fcc", height=1.4)
    o = len(start) - 1
    start.positions[o, :2] += 0.3  # off the site: in-plane force
    if not tagged:
        start.set_tags(0)
    bottom = np.flatnonzero(start.positions[:, 2] < start.positions[:, 2].min() + 0.1)
    start.set_constraint([FixAtoms(indices=bottom), FixCartesian(o, (True, True, False))])
    model, items = items_for([start])
    whole = (start.get_tags() == 0).sum() if tagged else len(bottom)  # tag 0 or FixAtoms
    assert fixed_mask(atoms_from_text(items[-1]["structure"])).sum() == 3 * whole + 2
    (row,) = relax_items(model, items[-1:], fmax=0.05, steps=50)
    first, final = (atoms_from_text(t) for t in (items[-1]["structure"], row["final_structure"]))
    np.testing.assert_array_equal(final.positions[bottom], first.positions[bottom])
    np.testing.assert_array_equal(final.positions[o, :2], first.positions[o, :2])
    assert abs(final.positions[o, 2] - first.positions[o, 2]) > 0.05
    forces = final.get_forces(apply_constraint=False)
    assert row["fmax"] <= 0.05 < np.abs(forces[o, :2]).max()  # judged on free directions


def test_unsupported_constraints_are_refused():
    from ase.constraints import FixBondLength

    atoms = adslab("Cu", "CO", "ontop")
    atoms.set_constraint(FixBondLength(len(atoms) - 2, len(atoms) - 1))
    with pytest.raises(CatscreenError, match="constraint FixBondLengths is not supported"):
        fixed_mask(atoms)


def test_dask_local_cluster_matches_local(tmp_path):
    images = [adslab("Cu", "O", "fcc"), adslab("Pt", "CO", "ontop"), adslab("Ni", "N", "hcp")]
    p = tmp_path / "c.extxyz"
    write(p, images, format="extxyz")
    local, dask = tmp_path / "local.parquet", tmp_path / "dask.parquet"
    common = dict(model="emt", spin="off", batch_size=2, fmax=0.1)
    relax_configurations(p, local, RelaxSettings(**common), progress=False)
    s = relax_configurations(
        p, dask, RelaxSettings(**common, executor="dask", workers=2), progress=False
    )
    assert s.ran == 7 and s.converged == 7
    a = pd.read_parquet(local).set_index("config_id").sort_index()
    b = pd.read_parquet(dask).set_index("config_id").sort_index()
    np.testing.assert_allclose(a.energy, b.energy, rtol=0, atol=1e-10)
    assert (a.steps == b.steps).all() and (a.final_structure == b.final_structure).all()
    # an existing scheduler (--scheduler ADDRESS); threads keep this one cheap to start
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        s = RelaxSettings(**common, executor="dask", scheduler=cluster.scheduler_address)
        relax_configurations(p, tmp_path / "remote.parquet", s, progress=False)
    c = pd.read_parquet(tmp_path / "remote.parquet").set_index("config_id").sort_index()
    np.testing.assert_allclose(a.energy, c.energy, rtol=0, atol=1e-10)
    # rows in the input's order, however batches finish (they came in finishing order)
    order = list(pd.read_parquet(local).config_id)
    assert list(pd.read_parquet(dask).config_id) == order
    assert list(pd.read_parquet(tmp_path / "remote.parquet").config_id) == order


def test_a_finished_run_reruns_without_its_scheduler(tmp_path):
    """Nothing left to relax: no cluster is asked (a torn-down one refused the rerun)."""
    import socket

    p = tmp_path / "c.extxyz"
    write(p, [adslab("Cu", "O", "fcc")], format="extxyz")
    out = tmp_path / "r.parquet"
    relax_configurations(p, out, RelaxSettings(model="emt", steps=2), progress=False)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        gone = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    again = RelaxSettings(model="emt", steps=2, executor="dask", scheduler=gone)
    assert relax_configurations(p, out, again, progress=False).ran == 0


def test_an_address_that_is_no_dask_scheduler_is_one_error_not_a_hang():
    """Client() waited forever on a port that accepts connections but is no scheduler (the
    dashboard's 8787 given for 8786)."""
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from catscreen.workflow.executors import check_scheduler

    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        t0 = time.perf_counter()
        with pytest.raises(CatscreenError, match=r"Dask scheduler|not as a Dask scheduler"):
            check_scheduler(f"tcp://127.0.0.1:{server.server_address[1]}", timeout=2.0)
        assert time.perf_counter() - t0 < 10
    finally:
        server.shutdown()


def _answering(reply: bytes):
    """A TCP server that answers every connection with `reply` (another service's bytes)."""
    import socketserver
    import threading

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.sendall(reply)
            self.request.recv(1024)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_wrong_port_is_one_line_at_once_whatever_answers():
    """Another service's bytes read as a frame size raised MemoryError (a 72-line traceback);
    a refused port waited 30 s to say "Timed out"; port 99999 waited as long."""
    import socket
    import time

    from catscreen.workflow.executors import check_scheduler

    for reply in (b"HTTP/1.1 400 Bad Request\r\n\r\n", b"SSH-2.0-OpenSSH_9.6\r\n"):
        server = _answering(reply)
        try:
            address = f"tcp://127.0.0.1:{server.server_address[1]}"
            with pytest.raises(CatscreenError, match="answers, but not as a Dask scheduler"):
                check_scheduler(address, timeout=5.0)
        finally:
            server.shutdown()
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    t0 = time.perf_counter()
    with pytest.raises(CatscreenError, match="nothing listens there"):
        check_scheduler(f"tcp://127.0.0.1:{free}")
    with pytest.raises(CatscreenError, match="no port 99999"):
        check_scheduler("tcp://127.0.0.1:99999")
    with pytest.raises(CatscreenError, match="no host nosuchhost.invalid"):  # took 36 s
        check_scheduler("tcp://nosuchhost.invalid:8786")
    assert time.perf_counter() - t0 < 5


class _Workers:
    """What `client.run` answers: each worker's catscreen version, or a worker's error."""

    def __init__(self, answer):
        self.answer = answer

    def run(self, function, *args, on_error="raise"):
        from catscreen.workflow.executors import WORKER_IMPORT

        assert function is eval and args == (WORKER_IMPORT,) and on_error == "return"
        return self.answer


def test_workers_without_catscreen_or_with_another_version_are_named_before_any_batch():
    """A worker without catscreen died unpacking its batch and the run waited for ever."""
    from catscreen import __version__ as mine
    from catscreen.workflow.executors import WORKER_IMPORT, _check_workers

    assert eval(WORKER_IMPORT) == mine  # what a worker with this install answers
    _check_workers(_Workers({"tcp://a:1": mine, "tcp://b:1": mine}))
    _check_workers(_Workers({}))  # none yet: the run says so and waits
    _check_workers(_Workers({"tcp://a:1": mine, "tcp://b:1": OSError("gone while asked")}))
    broken = AttributeError("module 'catscreen' has no attribute '__version__'")
    with pytest.raises(CatscreenError, match="worker tcp://b:1 cannot run catscreen .Attribute"):
        _check_workers(_Workers({"tcp://a:1": mine, "tcp://b:1": broken}))
    missing = ModuleNotFoundError("No module named 'catscreen.workflow'")
    with pytest.raises(CatscreenError, match="worker tcp://b:1 cannot import catscreen .ModuleNot"):
        _check_workers(_Workers({"tcp://a:1": mine, "tcp://b:1": missing}))
    with pytest.raises(CatscreenError, match="worker tcp://b:1 has catscreen 0.0.1, this one"):
        _check_workers(_Workers({"tcp://a:1": mine, "tcp://b:1": "0.0.1"}))


def test_a_cluster_without_workers_is_named_while_the_run_waits(monkeypatch, capsys):
    """When the last worker died the run waited without a word until one joined."""
    import threading

    from distributed import Client, LocalCluster

    from catscreen.workflow import executors

    monkeypatch.setattr(executors, "WORKER_WATCH", 0.2)
    with (
        LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        future = client.submit(sum, [1, 2], pure=False)
        later = threading.Timer(2.0, cluster.scale, [1])
        later.start()
        done = list(executors._as_completed(client, [future], "the test cluster"))
        later.join()
        assert done == [future] and future.result() == 3
    err = capsys.readouterr().err
    assert err.count("note: the test cluster has no workers; waiting for one") == 1


def test_a_nanny_stopped_while_the_cluster_starts_is_one_line(monkeypatch):
    """A terminal's Ctrl-C or `timeout` reaches the nannies too: LocalCluster raised
    RuntimeError "Nanny failed to start." and the run ended in a 100-line traceback."""
    import distributed

    from catscreen.workflow import executors

    def stopped(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("Nanny failed to start.")

    monkeypatch.setattr(distributed, "LocalCluster", stopped)
    with pytest.raises(CatscreenError, match=r"^cannot start a Dask LocalCluster: Nanny failed"):
        executors.run_dask(None, lambda *a: None)  # type: ignore[arg-type]


def test_catscreen_s_own_cluster_without_workers_is_given_up(monkeypatch):
    """Workers killed with their nannies (a signal to the whole group) come back to no
    LocalCluster catscreen started: the run waited for one 71 minutes. Another scheduler's
    workers may join, so only `own` gives up."""
    from distributed import Client, LocalCluster

    from catscreen.workflow import executors

    monkeypatch.setattr(executors, "WORKER_WATCH", 0.1)
    monkeypatch.setattr(executors, "OWN_WORKERS_GONE", 0.5)
    with (
        LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        future = client.submit(sum, [1, 2], pure=False)
        with pytest.raises(CatscreenError, match=r"^the test cluster lost every worker for 0 s"):
            list(executors._as_completed(client, [future], "the test cluster", own=True))


def test_a_scheduler_that_stops_answering_is_one_line_not_a_hang(tmp_path, monkeypatch):
    """A stopped scheduler (SIGSTOP, a suspended host) keeps its connection open, so no future
    is cancelled: the run hung without a word at the look for workers (403 s until killed)."""
    import json
    import signal
    import subprocess
    import time

    from catscreen.workflow import executors

    monkeypatch.setattr(executors, "WORKER_WATCH", 0.1)
    monkeypatch.setattr(executors, "SCHEDULER_SILENT", 1.0)
    monkeypatch.setattr(executors, "CLOSE_TIMEOUT", 2.0)
    file = tmp_path / "scheduler.json"
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
         "--port", "0", "--no-dashboard", "--scheduler-file", str(file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    watch = executors._as_completed

    def stopped_first(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        scheduler.send_signal(signal.SIGSTOP)  # its batches submitted, no worker to run them
        return watch(*args, **kwargs)

    monkeypatch.setattr(executors, "_as_completed", stopped_first)
    try:
        deadline = time.monotonic() + 60
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)  # written whole
        _, items = items_for([adslab("Cu", "O", "fcc")])
        flow = RelaxMaker(model="emt", steps=2).make(items)
        t0 = time.perf_counter()
        with pytest.raises(CatscreenError, match=r"has not answered for 1 s \(stopped"):
            executors.run_dask(flow, lambda *a: None, json.loads(file.read_text())["address"])
        assert time.perf_counter() - t0 < 30  # closing waited its 2 s at most, not for ever
    finally:
        scheduler.send_signal(signal.SIGCONT)
        scheduler.kill()
        scheduler.wait()


# a `dask worker` in this environment that cannot import catscreen, as one from another venv
_NO_CATSCREEN_WORKER = (
    "import sys; sys.modules['catscreen'] = None; "
    "from distributed.cli.dask_worker import main; main()"
)


def test_a_worker_without_catscreen_that_joins_the_run_stops_it_in_one_line(monkeypatch):
    """One that joined after the start died unpacking its batch; its nanny restarted it to take
    the next, until Dask gave up on them (KilledWorker), or the run waited without workers."""
    from distributed import LocalCluster

    from catscreen.workflow import executors

    workers = []

    def check_then_join(client):  # noqa: ANN001, ANN202
        real_check(client)  # no worker yet: nothing to name
        args = [client.scheduler.address, "--no-nanny", "--nthreads", "1"]
        workers.append(subprocess.Popen([sys.executable, "-c", _NO_CATSCREEN_WORKER, *args]))

    real_check = executors._check_workers
    monkeypatch.setattr(executors, "_check_workers", check_then_join)
    _, items = items_for([adslab("Cu", "O", "fcc")])
    flow = RelaxMaker(model="emt", batch_size=8, steps=2).make(items)
    done = []
    with LocalCluster(
        n_workers=0, processes=False, protocol="tcp", host="127.0.0.1", dashboard_address=None
    ) as cluster:
        try:
            with pytest.raises(CatscreenError) as exc:
                executors.run_dask(flow, lambda *a: done.append(a), cluster.scheduler_address)
        finally:
            for worker in workers:
                worker.kill()
                worker.wait()
    assert len(workers) == 1 and done == []  # no batch recorded as failed
    message = str(exc.value)
    assert re.fullmatch(
        r"a Dask worker cannot import catscreen \((ModuleNotFoundError|ImportError): .*\): "
        r"start the workers in the environment catscreen runs in \(finished rows are kept\)",
        message,
    ), message


def test_rows_a_worker_made_with_another_model_version_are_refused(tmp_path, monkeypatch):
    """A remote worker with another install filed its rows under its own version: the run
    counted nothing as converged and the next run redid everything."""
    from catscreen.workflow import runner

    real = runner.run_local

    def other_install(flow, on_done):
        def relabel(job, rows, error):
            rows = rows and [{**r, "model_version": "older-install"} for r in rows]
            on_done(job, rows, error)

        real(flow, relabel)

    monkeypatch.setattr(runner, "run_local", other_install)
    p = tmp_path / "c.extxyz"
    write(p, [adslab("Cu", "O", "fcc")], format="extxyz")
    out = tmp_path / "r.parquet"
    with pytest.raises(CatscreenError, match=r"a worker relaxed with model emt \(older-install\)"):
        relax_configurations(p, out, RelaxSettings(model="emt", spin="off"), progress=False)
    assert not out.exists()


def test_elements_the_model_was_not_trained_on_are_refused_up_front(tmp_path):
    """SrTiO3 with the bundled model: every row failed and the run exited 0."""
    atoms = adslab("Cu", "O", "fcc")
    atoms.symbols[0] = "Sr"
    p = tmp_path / "c.extxyz"
    write(p, [atoms], format="extxyz")
    out = tmp_path / "r.parquet"
    with pytest.raises(
        CatscreenError, match=r"not trained on element\(s\) Sr \(--model chgnet, of the"
    ):
        relax_configurations(p, out, RelaxSettings(model="bundled", spin="off"), progress=False)
    assert not out.exists()


def test_a_failing_job_fails_its_rows_and_the_flow_goes_on():
    model, items = items_for([adslab("Cu", "O", "fcc")])
    good = RelaxMaker(model="emt", batch_size=8, steps=2).make(items)
    bad = RelaxMaker(model="/on/the/workers/only.pt", batch_size=8).make(items)
    seen = {}
    run_local(Flow([bad, good]), lambda job, rows, error: seen.update({job.uuid: (rows, error)}))
    rows, error = seen[bad.jobs[0].uuid]
    assert rows is None and "checkpoint not found: /on/the/workers/only.pt" in error
    assert error.startswith("CatscreenError: ")  # as a Dask run records it, not module-qualified
    rows, error = seen[good.jobs[0].uuid]
    assert error is None and [r["status"] for r in rows] == ["not_converged"] * 5


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"optimizer": "bfgs"}, "RelaxMaker: --optimizer must be one of fire, lbfgs"),
        ({"fmax": -1.0}, "RelaxMaker: --fmax must be a positive number"),
        ({"fmax": float("nan")}, "RelaxMaker: --fmax must be a positive number"),
        ({"steps": -1}, "RelaxMaker: --steps must be >= 0"),
        ({"batch_size": 0}, "RelaxMaker: --batch-size must be >= 1"),
        ({"model": "EMT"}, "unknown model 'EMT'"),
    ],
)
def test_relax_maker_refuses_what_no_job_can_run(settings, message):
    """It took them all; the jobs failed later, and under run_locally(log=False) silently (a
    negative fmax ran every row to not_converged)."""
    with pytest.raises(CatscreenError, match=re.escape(message)):
        RelaxMaker(**settings)


def test_random_init_checkpoint_records_context_and_magmoms(tmp_path):
    """The bundled network's code path: a tiny random-init checkpoint loaded by path."""
    torch = pytest.importorskip("torch")
    from catscreen.model.checkpoint import save_checkpoint
    from catscreen.model.network import CatscreenNet, ModelConfig

    torch.manual_seed(0)
    small = ModelConfig(n_scalars=8, n_vectors=4, n_layers=1, radial_hidden=8, n_heads=2)
    net = CatscreenNet(small, ("H", "C", "N", "O", "Ni", "Cu"), ("low", "high"))
    ckpt = tmp_path / "tiny.pt"
    version = save_checkpoint(net, ckpt, {"name": "tiny"})
    p = tmp_path / "c.extxyz"
    write(p, [adslab("Ni", "O", "fcc"), adslab("Cu", "CO", "ontop")], format="extxyz")
    out = tmp_path / "r.parquet"
    settings = RelaxSettings(model=str(ckpt), fmax=1e-6, steps=2, batch_size=16)
    relax_configurations(p, out, settings, progress=False)
    df = pd.read_parquet(out).set_index("config_id")
    assert len(df) == 2 + 8 and (df.status == "not_converged").all() and (df.steps == 2).all()
    assert set(df.model_version) == {version} and set(df.fidelity) == {"high"}
    assert df.loc["Ni-O-fcc", "spin"] == "on" and df.loc["Cu-CO-ontop", "spin"] == "off"
    assert (df.energy_std > 0).all()
    # each head's energy is kept (rank's E_ads spread needs them): their mean and spread
    heads = np.stack(df.energy_heads.to_list())
    assert heads.shape == (len(df), 2)
    np.testing.assert_allclose(heads.mean(axis=1), df.energy, atol=1e-6)
    np.testing.assert_allclose(heads.std(axis=1, ddof=1), df.energy_std, atol=1e-6)
    final = atoms_from_text(df.loc["Ni-O-fcc", "final_structure"])
    assert final.get_magnetic_moments().shape == (len(final),)


def test_enumerate_output_relaxes(tmp_path):
    """The real chain: enumerate's manifest folder straight into relax."""
    from catscreen.build.enumerate import (
        EnumerateSettings,
        enumerate_configurations,
        write_configurations,
    )

    settings = EnumerateSettings(
        bulks=["Cu"], miller=["1,1,1"], adsorbates=["O"], min_slab_size=4.0, vacuum=10.0,
        min_ab=5.0, include_clean=False,
    )  # fmt: skip
    write_configurations(enumerate_configurations(settings), tmp_path / "enum", settings)
    out = tmp_path / "results.parquet"
    s = relax_configurations(
        tmp_path / "enum", out, RelaxSettings(model="emt", steps=5, fmax=0.1), progress=False
    )
    df = pd.read_parquet(out)
    manifest = pd.read_parquet(tmp_path / "enum" / "configs.parquet")
    assert s.total == len(manifest) + 4 and (df.status != "failed").all()
    assert set(manifest.config_id) <= set(df.config_id)
    merged = df.merge(manifest, on="config_id", suffixes=("", "_m"))
    assert (merged.site_type == merged.site_type_m).all() and (merged.miller == "1,1,1").all()


def test_nudged_placement_leaves_the_saddle_an_exact_one_stops_on():
    """OH upright on top of Ru(0001) is a stationary point by symmetry but not a minimum: the
    bundled model keeps the symmetry of its input exactly, so only the nudged placement tilts
    over and finds the lower energy."""
    model = load_model("bundled")
    rows, images = {}, {}
    for nudge in (0.0, 0.1):
        settings = EnumerateSettings(
            bulks=["Ru"], miller=["0,0,0,1"], adsorbates=["OH"], nudge=nudge,
            include_clean=False, min_ab=5.0, vacuum=12.0,
        )  # fmt: skip
        (atoms,) = [a for a in enumerate_configurations(settings) if a.info["site_type"] == "ontop"]
        item = {"config_id": str(nudge), "meta": {}, "structure": atoms_to_text(atoms),
                "spin": "off", "spin_mode": "auto", "fidelity": "chgnet-pbe"}  # fmt: skip
        (rows[nudge],) = relax_items(model, [item], fmax=0.05, steps=300)
        images[nudge] = atoms_from_text(rows[nudge]["final_structure"])
    assert rows[0.0]["status"] == rows[0.1]["status"] == "converged"
    o_h = {k: a.positions[-1] - a.positions[-2] for k, a in images.items()}
    assert np.linalg.norm(o_h[0.0][:2]) < 1e-3  # still upright: stopped on the saddle
    assert np.linalg.norm(o_h[0.1][:2]) > 0.3  # tilted over
    assert rows[0.1]["energy"] < rows[0.0]["energy"] - 0.1


def test_dask_workers_start_with_ctrl_c_blocked_and_a_ctrl_c_meanwhile_stops_the_driver():
    """Ctrl-C on `relax --executor dask` reached every worker of the LocalCluster (same process
    group), each printing a KeyboardInterrupt traceback (114 lines for two workers); workers
    now inherit a blocked SIGINT. One sent while the cluster started was ignored and the run
    went on; now it is noted and stops the driver when the cluster has started."""
    import signal

    from catscreen.workflow.executors import _workers_ignore_interrupt

    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)  # a shell's `&` ignores it
    probe = [
        sys.executable, "-c",
        "print(next(l for l in open('/proc/self/status') if l.startswith('SigBlk')).split()[1])",
    ]  # fmt: skip
    try:
        with _workers_ignore_interrupt():
            child = subprocess.run(probe, capture_output=True, text=True, check=True).stdout
        assert int(child, 16) & (1 << (signal.SIGINT - 1))
        outside = subprocess.run(probe, capture_output=True, text=True, check=True).stdout
        assert not int(outside, 16) & (1 << (signal.SIGINT - 1))
        with pytest.raises(KeyboardInterrupt), _workers_ignore_interrupt():
            os.kill(os.getpid(), signal.SIGINT)  # whichever thread takes it
            time.sleep(0.2)  # noted, not raised here
            reached = True
        assert reached
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a background job: ignored it stays
        with _workers_ignore_interrupt():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, inherited)


def test_a_batch_fails_as_text_and_all_paused_workers_are_named(monkeypatch, capsys):
    """A worker's exception travelled pickled with its traceback: a RecursionError's left the
    future pending for ever, an exception class the driver lacks came back as a pickled blob
    in the reason column. All workers paused for memory hung the run without a word."""
    import pickle
    from types import SimpleNamespace

    from distributed import Client, LocalCluster

    from catscreen.workflow import executors

    _, items = items_for([adslab("Cu", "O", "fcc")])
    job = RelaxMaker(model="/on/the/workers/only.pt", batch_size=8).make(items).jobs[0]
    with pytest.raises(executors.BatchError) as exc:
        executors.run_job_json(job.to_json())
    assert str(exc.value).startswith("CatscreenError: checkpoint not found: /on/the/workers")
    assert exc.value.__context__ is None and exc.value.__cause__ is None
    assert str(pickle.loads(pickle.dumps(exc.value))) == str(exc.value)

    class Paused:
        """Paused, then none (a nanny restarting), then paused again: each note once."""

        answers = [{"tcp://a:1": {"status": "paused"}}, {}, {"tcp://b:1": {"status": "paused"}}]
        scheduler = SimpleNamespace(identity="the scheduler's identity call")

        def sync(self, function, n_workers, callback_timeout):  # noqa: ANN001, ANN202
            assert function == self.scheduler.identity and n_workers == -1 and callback_timeout
            return {"workers": self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]}

    monkeypatch.setattr(executors, "WORKER_WATCH", 0.1)
    with (
        LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        future = client.submit(time.sleep, 1.0, pure=False)
        assert list(executors._as_completed(Paused(), [future], "the test cluster")) == [future]
    err = " ".join(capsys.readouterr().err.split())
    assert err.count("note: the test cluster has only paused workers (memory over their") == 1
    assert "a larger --memory-limit, or use a smaller --batch-size); waiting" in err
    assert err.count("note: the test cluster has no workers; waiting for one") == 1
    from distributed.scheduler import KilledWorker

    killed = KilledWorker("catscreen-x", SimpleNamespace(address="tcp://a:1"), 3)
    assert executors.batch_failure(killed).startswith(
        "KilledWorker: every worker that ran this batch died (memory over a worker's limit?"
    )
    assert executors.batch_failure(ValueError("SCF diverged")) == "ValueError: SCF diverged"


def test_enumerate_s_manifest_given_as_the_output_is_named_and_kept(tmp_path):
    """`relax DIR --out DIR/configs.parquet` said the manifest "lacks model, model_version,
    ..."; it is named for what it is, and left as it was."""
    images = [adslab("Cu", "O", "fcc", cid="x")]
    path = write_manifest(tmp_path / "e", images)
    before = path.read_bytes()
    with pytest.raises(CatscreenError, match="is not a catscreen relax results table"):
        relax_configurations(path, path, RelaxSettings(model="emt", steps=1), progress=False)
    assert path.read_bytes() == before


def test_the_table_is_rewritten_as_often_as_its_own_write_time_allows(tmp_path, monkeypatch):
    """A rewrite after every batch grew with the table (0.43 s at 10k rows, quadratic over a
    run): a slow write now waits for nine times its time of new rows; every row still lands."""
    from catscreen.workflow import store

    writes: list[int] = []
    real = store.write_parquet

    def slow_write(df, path, metadata):
        writes.append(len(df))
        time.sleep(0.4)
        real(df, path, metadata=metadata)

    monkeypatch.setattr(store, "write_parquet", slow_write)
    images = [adslab("Cu", "O", site, cid=f"c{i}") for i, site in enumerate(["fcc", "hcp"] * 4)]
    manifest = write_manifest(tmp_path / "enum", images)
    out = tmp_path / "results.parquet"
    settings = RelaxSettings(model="emt", batch_size=1, fmax=0.05, spin="off")
    summary = relax_configurations(manifest, out, settings, progress=False)
    assert summary.ran == 8 + 4 and len(pd.read_parquet(out)) == 12
    assert writes[0] == 1 and writes[-1] == 12 and len(writes) < 6, writes


def test_rows_are_kept_when_the_run_stops_between_writes(tmp_path, monkeypatch):
    """SIGTERM (a batch system's time limit; Ctrl-C and errors alike) mid-run writes the rows
    finished since the last write, and the handler is put back."""
    import signal

    from catscreen.workflow import store

    monkeypatch.setattr(store, "WRITE_SHARE", 1e-9)  # never due: only the flush writes
    images = [adslab("Cu", "O", site, cid=f"c{i}") for i, site in enumerate(["fcc", "hcp"] * 3)]
    manifest = write_manifest(tmp_path / "enum", images)
    out = tmp_path / "results.parquet"
    calls = []

    real_add = store.ResultTable.add

    def add_then_fail(self, rows):
        real_add(self, rows)
        calls.append(1)
        if len(calls) == 7:  # the gas references (4), then three placements
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(store.ResultTable, "add", add_then_fail)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        relax_configurations(manifest, out, RelaxSettings(model="emt", batch_size=1, spin="off"))
    assert len(pd.read_parquet(out)) == 7
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_checkpoint_written_anew_is_loaded_anew(tmp_path):
    """In one Python session (a notebook's train-then-relax loop) the old weights relaxed the
    next run from the same path, and its rows recorded the old version."""
    import torch

    from catscreen.model.checkpoint import bundled_path, load_checkpoint, save_checkpoint
    from catscreen.workflow.jobs import cached_model

    net, payload = load_checkpoint(bundled_path())
    path = tmp_path / "model.pt"
    first = save_checkpoint(net, path, payload["metadata"])
    assert cached_model(str(path)).info.version == first
    assert cached_model(str(path)) is cached_model(str(path))  # loaded once while unchanged
    with torch.no_grad():
        net.reference_energies += 0.1
    second = save_checkpoint(net, path, payload["metadata"])
    assert second != first and cached_model(str(path)).info.version == second


def test_an_extxyz_without_termination_relaxes_and_ranks(tmp_path):
    """README names `termination` optional for a user's own extxyz: relax took the file and
    rank refused every row ("has termination None; expected an integer")."""
    from catscreen.analysis import rank_results, read_results

    placed = adslab("Cu", "O", "fcc")
    clean = placed[placed.get_tags() != 2]
    clean.set_constraint(FixAtoms(mask=clean.get_tags() == 0))
    clean.info.update(config_id="Cu-clean", kind="slab", adsorbate="none", site_type="none")
    clean.info["system_id"] = "Cu-none"
    for frame in (placed, clean):
        del frame.info["termination"]
    write(tmp_path / "mine.extxyz", [clean, placed], format="extxyz")
    settings = RelaxSettings(model="emt", steps=40, fmax=0.1)
    relax_configurations(tmp_path / "mine.extxyz", tmp_path / "r.parquet", settings, progress=False)
    ranked = rank_results(read_results(tmp_path / "r.parquet"))
    assert ranked.configs.candidate.tolist() == ["Cu(111)"]
    assert ranked.configs.termination.tolist() == [0]


class _FlatThenBroken:
    """A real Model's shape: zero forces (everything is converged at once), or EMT until its
    `fail_at`-th call, which raises."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.inner = load_model("emt")
        self.info = self.inner.info
        self.fail_at, self.calls = fail_at, 0

    def predict(self, structures, spins, fidelities, stress=False):
        self.calls += 1
        if self.fail_at is None:
            return [Prediction(energy=0.0, forces=np.zeros((len(a), 3))) for a in structures]
        if self.calls >= self.fail_at:
            raise RuntimeError("backend fell over")
        return self.inner.predict(structures, spins, fidelities)


def test_a_start_inside_the_potential_s_hole_that_stays_there_fails():
    """A start closer than 0.5x the covalent radii set its own threshold: O 0.3 A above Cu
    that never moved out ended "converged" (the bundled model left Pt-O at 0.83 A)."""
    _, items = items_for([adslab("Cu", "O", "ontop", height=0.3, cid="inside")])
    (row,) = [r for r in relax_items(_FlatThenBroken(), items) if r["config_id"] == "inside"]
    assert row["status"] == "failed", row
    assert (
        "end 0.30 A apart (below 0.5x their covalent radii; the start was as close)"
        in row["reason"]
    )


def test_a_model_error_row_keeps_no_energy_of_the_input_file():
    """The structure kept the calculator it came with: a user's DFT-labelled frame that the
    model failed on mid-run stored the moved geometry under the file's energy and forces."""
    from ase.calculators.singlepoint import SinglePointCalculator

    image = adslab("Cu", "O", "fcc", cid="labelled")
    image.calc = SinglePointCalculator(image, energy=-123.456, forces=np.ones((13, 3)))
    _, items = items_for([image])
    items = [it for it in items if it["config_id"] == "labelled"]
    assert atoms_from_text(items[0]["structure"]).calc is not None  # the file's labels came in
    (row,) = relax_items(_FlatThenBroken(fail_at=4), items)
    assert row["status"] == "failed" and "backend fell over" in row["reason"]
    assert row["steps"] == 3 and atoms_from_text(row["final_structure"]).calc is None


def test_a_checkpoint_rewritten_during_a_run_is_named(tmp_path, monkeypatch):
    """The run stopped with "install the same catscreen and weights on the workers" when a
    training run rewrote the local checkpoint between two batches."""
    import torch

    from catscreen.model.checkpoint import bundled_path, load_checkpoint, save_checkpoint
    from catscreen.workflow import jobs

    net, payload = load_checkpoint(bundled_path())
    path = tmp_path / "model.pt"
    save_checkpoint(net, path, payload["metadata"])
    real = jobs.relax_items

    def rewrite_after_the_first_batch(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        rows = real(*args, **kwargs)
        with torch.no_grad():
            net.reference_energies += 0.1
        save_checkpoint(net, path, payload["metadata"])
        return rows

    monkeypatch.setattr(jobs, "relax_items", rewrite_after_the_first_batch)
    p = tmp_path / "c.extxyz"
    write(p, [adslab("Cu", "O", "fcc"), adslab("Cu", "O", "hcp")], format="extxyz")
    settings = RelaxSettings(model=str(path), spin="off", steps=2, batch_size=1)
    with pytest.raises(CatscreenError, match="was rewritten during the run; rerun to relax"):
        relax_configurations(p, tmp_path / "r.parquet", settings, progress=False)
