"""Checkpoints, the `Model` wrapper, the ASE calculator and `catscreen model info`."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import add_adsorbate, bulk, fcc111, molecule
from ase.optimize import BFGS
from typer.testing import CliRunner

from catscreen.cli.main import app
from catscreen.errors import CatscreenError
from catscreen.model import checkpoint, load_model
from catscreen.model.calculator import CatscreenCalculator
from catscreen.model.checkpoint import load_checkpoint, load_checkpoint_model, save_checkpoint
from catscreen.model.network import CatscreenNet, ModelConfig
from catscreen.paths import data_dir

ELEMENTS = ("H", "O", "Cu", "Ni")
FIDELITIES = ("teacher-pbe", "gpaw-pbe")
TINY = ModelConfig(
    cutoff=4.0, n_scalars=8, n_vectors=4, n_basis=6, radial_hidden=8, context_dim=4,
    readout_hidden=4, n_heads=3, avg_num_neighbors=20.0,
)  # fmt: skip


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    net = CatscreenNet(TINY, ELEMENTS, FIDELITIES)
    with torch.no_grad():
        for layer in net.layers:
            layer.film.linear.weight.normal_(0.0, 0.5)
        net.reference_energies.normal_(-3.0, 1.0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    meta = {"name": "tiny", "training_data": {"frames": 12}, "metrics": {"energy_mae": 0.1}}
    version = save_checkpoint(net, path, meta)
    return net, path, version


def slab():
    atoms = fcc111("Ni", (2, 2, 3), vacuum=6.0)
    add_adsorbate(atoms, "O", 1.3, "fcc")
    atoms.rattle(0.05, seed=1)
    return atoms


def test_round_trip_gives_identical_outputs(saved):
    net, path, version = saved
    payload = torch.load(path, weights_only=True)  # safe format: no pickled objects
    assert payload["version"] == version and payload["metadata"]["metrics"]["energy_mae"] == 0.1
    loaded, _ = load_checkpoint(path)
    atoms = [slab(), bulk("Cu", cubic=True)]
    spins, fids = ["on", "off"], ["gpaw-pbe", "teacher-pbe"]
    a = net.eval()(net.collate(atoms, spins, fids), stress=True)
    b = loaded(loaded.collate(atoms, spins, fids), stress=True)
    for key in ("energy", "energy_heads", "forces", "stress", "magmoms"):
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert save_checkpoint(loaded, path.with_name("again.pt"), payload["metadata"]) == version


def test_model_wrapper_info_and_chunked_batches(saved):
    _, path, version = saved
    model = load_model(str(path))
    info = model.info
    assert (info.name, info.version, info.default_fidelity) == ("tiny", version, "gpaw-pbe")
    assert info.spin_conditioned and info.predicts_magmoms and info.n_heads == 3
    structures = [slab(), bulk("Cu", cubic=True), molecule("H2O"), slab()]
    spins, fids = ["on", "off", "off", "off"], ["gpaw-pbe"] * 4
    with torch.inference_mode():  # callers may evaluate without autograd; forces still work
        whole = model.predict(structures, spins, fids, stress=True)
    model.max_batch_atoms = 14  # forces several chunks
    chunked = model.predict(structures, spins, fids, stress=True)
    for w, c, atoms in zip(whole, chunked, structures, strict=True):
        assert c.energy == pytest.approx(w.energy, abs=1e-5)
        np.testing.assert_allclose(c.forces, w.forces, atol=1e-5)
        assert c.forces.shape == (len(atoms), 3) and c.magmoms.shape == (len(atoms),)
        assert c.energy_std > 0
    assert whole[2].stress is None and whole[1].stress.shape == (6,)
    assert whole[0].energy != pytest.approx(whole[3].energy, abs=1e-4)  # spin on vs off


def test_unknown_contexts_and_elements_are_errors(saved):
    model = load_checkpoint_model(saved[1])
    with pytest.raises(CatscreenError, match="fidelity"):
        model.predict([slab()], ["on"], ["chgnet-r2scan"])
    with pytest.raises(CatscreenError, match="spin"):
        model.predict([slab()], ["maybe"], ["gpaw-pbe"])
    with pytest.raises(CatscreenError, match="Pt"):
        model.predict([bulk("Pt")], ["off"], ["gpaw-pbe"])


def test_bad_files_are_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint, "bundled_path", lambda: tmp_path / "missing.pt")
    with pytest.raises(CatscreenError, match="bundled weights not found"):
        load_model("bundled")
    junk = tmp_path / "junk.pt"
    torch.save({"weights": torch.zeros(2)}, junk)
    with pytest.raises(CatscreenError, match="not a catscreen checkpoint"):
        load_checkpoint_model(junk)
    with pytest.raises(CatscreenError, match="checkpoint not found: "):
        load_model(str(tmp_path / "nope.pt"))  # a path, not an unknown model name
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(junk.read_bytes()[:200])  # an interrupted copy
    with pytest.raises(CatscreenError) as info:
        load_checkpoint_model(truncated)
    message = str(info.value)
    assert "corrupt, truncated or not a torch file" in message and "\n" not in message
    assert len(message) < 300, message  # torch's paragraph is cut to its first sentence


def test_tampered_checkpoint_is_detected(saved, tmp_path):
    payload = torch.load(saved[1], weights_only=True)
    payload["state_dict"]["energy_scale"] = torch.tensor(2.0)
    torch.save(payload, tmp_path / "tampered.pt")
    with pytest.raises(CatscreenError, match="corrupt"):
        load_checkpoint_model(tmp_path / "tampered.pt")


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.pop("state_dict"),  # a checkpoint cut down by hand
        lambda p: p["state_dict"].pop("energy_scale"),
        lambda p: p["config"].update(n_scalars=16),  # weights of another architecture
        lambda p: p["metadata"].pop("default_fidelity"),
        lambda p: p.update(config=None),  # fields of the wrong type, not missing ones
        lambda p: p.update(metadata=["name"]),
        lambda p: p["config"].update(cutoff="5.0"),  # a bare TypeError, 59 lines of traceback
        lambda p: p["config"].update(cutoff=-1.0),  # the config's own checks: named no file
        lambda p: p.update(fidelities=[]),
    ],
)
def test_damaged_checkpoint_is_one_line_error(saved, tmp_path, damage):
    payload = torch.load(saved[1], weights_only=True)
    damage(payload)
    torch.save(payload, tmp_path / "damaged.pt")
    with pytest.raises(CatscreenError, match="damaged") as info:
        load_checkpoint_model(tmp_path / "damaged.pt")
    assert "\n" not in str(info.value)
    result = CliRunner().invoke(app, ["model", "info", str(tmp_path / "damaged.pt")])
    assert result.exit_code == 2 and "damaged" in result.output


def test_calculator_relaxes_with_ase_optimizer(saved):
    model = load_checkpoint_model(saved[1])
    atoms = slab()
    atoms.calc = CatscreenCalculator(model, spin="auto")
    e0 = atoms.get_potential_energy()
    assert atoms.calc.results["spin"] == "on"  # Ni is magnetic
    assert atoms.calc.results["energy_std"] > 0
    assert atoms.get_magnetic_moments().shape == (len(atoms),)
    BFGS(atoms, logfile=None).run(fmax=0.05, steps=5)
    assert atoms.get_potential_energy() < e0

    cu = bulk("Cu", cubic=True)
    cu.calc = CatscreenCalculator(model, spin="auto", fidelity="teacher-pbe")
    stress = cu.get_stress()
    (pred,) = model.predict([cu], ["off"], ["teacher-pbe"], stress=True)
    assert cu.calc.results["spin"] == "off"
    np.testing.assert_allclose(stress, pred.stress)
    with pytest.raises(CatscreenError, match="fidelity"):
        CatscreenCalculator(model, fidelity="dft-hse")


def test_calculator_context_change_recomputes(saved):
    """Assigning spin or fidelity drops the stored results; the context is in the results."""
    model = load_checkpoint_model(saved[1])
    atoms = slab()
    atoms.calc = calc = CatscreenCalculator(model, spin="on", fidelity="gpaw-pbe")
    on = atoms.get_potential_energy()
    assert (calc.results["spin"], calc.results["fidelity"]) == ("on", "gpaw-pbe")
    calc.spin = "off"
    off = atoms.get_potential_energy()
    (pred,) = model.predict([atoms], ["off"], ["gpaw-pbe"])
    assert off == pytest.approx(pred.energy) and off != pytest.approx(on)
    calc.fidelity = "teacher-pbe"
    (pred,) = model.predict([atoms], ["off"], ["teacher-pbe"])
    assert atoms.get_potential_energy() == pytest.approx(pred.energy)
    assert calc.results["fidelity"] == "teacher-pbe"
    with pytest.raises(CatscreenError, match="spin"):
        calc.spin = "up"
    with pytest.raises(CatscreenError, match="fidelity"):
        calc.fidelity = "dft-hse"


def test_calculator_set_todict_and_tags_follow_the_context(saved):
    """`set(spin="off")` was stored and unused (todict() then called a spin-on result spin
    off, as ase.db records it); new tags, which decide spin auto, gave the old energy."""
    model = load_checkpoint_model(saved[1])
    atoms = fcc111("Cu", (2, 2, 3), vacuum=6.0)
    add_adsorbate(atoms, "Ni", 1.8, "fcc")
    atoms.set_tags([0] * 8 + [1] * 4 + [2])  # a Ni adatom: Cu's context, spin off
    atoms.calc = calc = CatscreenCalculator(model, spin="auto", fidelity="teacher-pbe")
    adatom = atoms.get_potential_energy()
    assert calc.results["spin"] == "off"
    atoms.set_tags([0] * 8 + [1] * 5)  # now part of the surface: spin on
    alloyed = atoms.get_potential_energy()
    (pred,) = model.predict([atoms], ["on"], ["teacher-pbe"])
    assert calc.results["spin"] == "on" and alloyed == pytest.approx(pred.energy)
    assert alloyed != pytest.approx(adatom)
    assert calc.set(spin="off") == {"spin": "off"} and calc.set(spin="off") == {}
    (pred,) = model.predict([atoms], ["off"], ["teacher-pbe"])
    assert atoms.get_potential_energy() == pytest.approx(pred.energy)
    assert calc.todict() == {
        "model": model.info.name,
        "model_version": model.info.version,
        "spin": "off",
        "fidelity": "teacher-pbe",
    }
    assert calc.set(**calc.todict()) == {}  # ASE's round trip
    with pytest.raises(CatscreenError, match="another model needs a CatscreenCalculator"):
        calc.set(model_version="0" * 12)
    with pytest.raises(CatscreenError, match="unknown parameter.*spinn"):
        calc.set(spinn="on")
    with pytest.raises(CatscreenError, match="unknown parameter.*spinn"):
        CatscreenCalculator(model, spinn="off")
    with pytest.raises(CatscreenError, match="spin"):
        calc.set(spin="up")


def test_bad_geometry_is_one_line_error(saved):
    model = load_checkpoint_model(saved[1])
    atoms = slab()
    atoms.positions[3] = atoms.positions[7]
    with pytest.raises(CatscreenError, match=r"atoms (3 and 7|7 and 3) coincide"):
        model.predict([atoms], ["on"], ["gpaw-pbe"])
    atoms = slab()
    atoms.positions[0, 2] = np.nan
    with pytest.raises(CatscreenError, match="non-finite positions"):
        model.predict([atoms], ["on"], ["gpaw-pbe"])
    atoms = slab()
    atoms.cell[0, 0] = np.nan  # numpy's "SVD did not converge" before
    with pytest.raises(CatscreenError, match="non-finite positions or cell"):
        model.predict([atoms], ["on"], ["gpaw-pbe"])
    for empty in (Atoms(cell=[5, 5, 5], pbc=True), Atoms()):  # numpy's error; energy 0
        with pytest.raises(CatscreenError, match="a structure without atoms"):
            model.predict([empty], ["on"], ["gpaw-pbe"])


def test_a_slab_without_a_c_vector_is_the_slab_with_vacuum(saved):
    """ASE's fcc111 without `vacuum` leaves c = 0 with pbc (T, T, F): the periodic directions
    are sound, so the energy is the vacuum slab's; it has no stress (no volume). A periodic
    direction without a cell vector is still an error."""
    from ase.build import fcc111

    from catscreen.model.calculator import CatscreenCalculator

    model = load_checkpoint_model(saved[1])
    bare = fcc111("Ni", (2, 2, 3))
    assert bare.cell[2].tolist() == [0, 0, 0] and bare.pbc.tolist() == [True, True, False]
    boxed = bare.copy()
    boxed.center(vacuum=6.0, axis=2)
    (a, b) = model.predict([bare, boxed], ["on"] * 2, ["gpaw-pbe"] * 2, stress=True)
    assert a.energy == pytest.approx(b.energy, abs=1e-5)
    np.testing.assert_allclose(a.forces, b.forces, atol=1e-5)
    assert a.stress is None and b.stress is not None
    bare.calc = CatscreenCalculator(model, spin="on")
    assert bare.get_potential_energy() == pytest.approx(b.energy, abs=1e-5)
    flat = boxed.copy()
    flat.pbc = True
    flat.cell[2] = 0.0
    with pytest.raises(CatscreenError, match="periodic cell vectors are zero or parallel"):
        model.predict([flat], ["on"], ["gpaw-pbe"])


def test_cli_model_info(saved, tmp_path, monkeypatch):
    runner = CliRunner()
    res = runner.invoke(app, ["model", "info", str(saved[1]), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["version"] == saved[2] and data["architecture"]["parameters"] > 0
    assert data["contexts"] == [
        "teacher-pbe/spin-off", "teacher-pbe/spin-on", "gpaw-pbe/spin-off", "gpaw-pbe/spin-on",
    ]  # fmt: skip
    assert data["metrics"]["energy_mae"] == 0.1  # as recorded, with its unit beside it
    assert data["metrics"]["units"]["energy_mae"] == "eV/atom"
    res = runner.invoke(app, ["model", "info", str(saved[1])], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "hidden_irreps" in res.output and "training data" in res.output
    assert "energy MAE 100.0 meV/atom" in res.output  # it printed 0.1, unit unsaid
    # the shipped weights: thousands of system ids shortened, and where the metrics are
    res = runner.invoke(app, ["model", "info"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert re.search(r"\(\d{3,} in all\)", res.output), res.output[-2000:]
    assert "the measured figures are in MODEL_CARD.md" in res.output
    # training sets as the repository names them, not the training machine's absolute paths
    assert "- data/training/teacher/chgnet-pbe (weight 1.0)" in res.output
    assert not re.search(r"\S/data/training", res.output)
    raw = runner.invoke(app, ["model", "info", "--json"]).output  # as recorded
    assert re.search(r'"path": "/\S+/data/training/teacher/chgnet-pbe"', raw)
    assert json.loads(raw)["file"] == str(checkpoint.bundled_path().resolve())  # where it is
    assert len(res.output.splitlines()) < 300
    monkeypatch.setattr(checkpoint, "bundled_path", lambda: tmp_path / "missing.pt")
    res = runner.invoke(app, ["model", "info"])
    assert res.exit_code == 2 and "bundled weights not found" in res.output


def _fine_tune(tmp_path, name, seed, training_data):
    """A copy of one tiny network with its weights moved, as a fine-tune would."""
    torch.manual_seed(0)
    net = CatscreenNet(TINY, ELEMENTS, FIDELITIES)
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p), alpha=0.1)
    path = tmp_path / f"{name}.pt"
    recipe = {"train_config": {"seed": seed}, "description": f"fine-tune {name}"}
    metadata = {"name": name, "training_data": training_data, **recipe}
    return net, path, save_checkpoint(net, path, metadata)


def test_interpolate_mixes_weights_and_merges_training_records(tmp_path, monkeypatch):
    split = {"split_seed": 0, "validation_fraction": 0.1, "frames": 3}
    a, pa, va = _fine_tune(
        tmp_path, "a", 1, {**split, "training_systems": ["s1"], "validation_systems": ["v1", "v2"]}
    )
    b, pb, vb = _fine_tune(
        tmp_path, "b", 2, {**split, "training_systems": ["v2"], "validation_systems": ["v1", "s1"]}
    )
    runner = CliRunner()
    out = tmp_path / "mix.pt"
    res = runner.invoke(app, ["model", "interpolate", str(pa), str(pb), "--alpha", "0.25", "-o", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    mixed, payload = load_checkpoint(out)
    sa, sb = a.state_dict(), b.state_dict()
    for key, value in mixed.state_dict().items():
        torch.testing.assert_close(value, 0.75 * sa[key] + 0.25 * sb[key])
    assert payload["version"] not in (va, vb) and payload["version"] in res.output
    meta = payload["metadata"]
    assert meta["interpolation"]["alpha"] == 0.25
    first, second = meta["interpolation"]["first"], meta["interpolation"]["second"]
    assert [first["version"], second["version"]] == [va, vb]
    # how each half was trained travels with the mix, and `model info` names the parents
    assert (first["train_config"], second["description"]) == ({"seed": 1}, "fine-tune b")
    shown = json.loads(runner.invoke(app, ["model", "info", str(out), "--json"]).output)
    assert shown["mixed_from"] == {"alpha": 0.25, "first": f"{va} ({pa})", "second": f"{vb} ({pb})"}
    data = meta["training_data"]
    # trained on what either parent trained on; held out only where both held a system out
    assert data["training_systems"] == ["s1", "v2"] and data["validation_systems"] == ["v1"]
    assert (data["split_seed"], data["validation_fraction"]) == (0, 0.1)
    assert [p["frames"] for p in data["parents"]] == [3, 3]
    # a mix written over one of its parents is refused (fine-tunes name the parent's path)
    res = runner.invoke(app, ["model", "interpolate", str(pa), str(pb), "--alpha", "0.5", "-o", str(pa)])  # fmt: skip
    assert res.exit_code == 2 and "write the mix apart" in res.output
    assert load_checkpoint(pa)[1]["version"] == va
    with monkeypatch.context() as m:  # the parent named `bundled`, not by its path
        m.setattr(checkpoint, "bundled_path", lambda: pa)
        res = runner.invoke(app, ["model", "interpolate", "bundled", str(pb), "--alpha", "0.5", "-o", str(pa)])  # fmt: skip
        assert res.exit_code == 2 and "write the mix apart" in res.output
    # the ends of the segment are the parents themselves, bit for bit
    for alpha, version in ((0.0, va), (1.0, vb)):
        assert checkpoint.interpolate_checkpoints(pa, pb, alpha, tmp_path / "end.pt") == version
    # parents split differently: the merged record keeps the list, not a split rule
    _, pc, _ = _fine_tune(tmp_path, "c", 3, {**split, "split_seed": 5, "validation_systems": []})
    checkpoint.interpolate_checkpoints(pa, pc, 0.5, tmp_path / "ac.pt")
    data = load_checkpoint(tmp_path / "ac.pt")[1]["metadata"]["training_data"]
    assert "split_seed" not in data and data["validation_systems"] == []
    # a mix of a mix keeps the inner mix's record
    checkpoint.interpolate_checkpoints(out, pc, 0.5, tmp_path / "nested.pt")
    nested = load_checkpoint(tmp_path / "nested.pt")[1]["metadata"]["interpolation"]["first"]
    assert nested["interpolation"]["second"]["version"] == vb


def test_interpolate_refuses_different_networks_and_bad_alpha(saved, tmp_path):
    _, pa, _ = _fine_tune(tmp_path, "a", 1, {})
    other = CatscreenNet(TINY, ("H", "O", "Cu", "Fe"), FIDELITIES)
    save_checkpoint(other, tmp_path / "other.pt")
    runner = CliRunner()
    out = tmp_path / "mix.pt"
    for args, message in (
        ([str(pa), str(tmp_path / "other.pt"), "--alpha", "0.5"], "differ in their elements"),
        ([str(pa), str(saved[1]), "--alpha", "1.5"], "alpha must be between 0 and 1"),
        ([str(pa), str(tmp_path / "none.pt"), "--alpha", "0.5"], "checkpoint not found"),
    ):
        res = runner.invoke(app, ["model", "interpolate", *args, "-o", str(out)])
        assert res.exit_code == 2 and message in res.output, res.output
        assert len(res.output.strip().splitlines()) == 1
    assert not out.exists()


def test_saving_the_bundled_weights_again_keeps_their_version(tmp_path):
    """Config fields added later (zbl) are left out when off, so the content hash holds."""
    net, payload = load_checkpoint(data_dir() / "models" / "bundled.pt")
    assert save_checkpoint(net, tmp_path / "again.pt", payload["metadata"]) == payload["version"]
    assert "zbl" not in json.loads(net.config.to_json())


def test_zbl_checkpoint_keeps_its_radii(tmp_path, monkeypatch):
    """The ZBL switch reads covalent radii saved with the weights, not ASE's table at load
    time; a ZBL checkpoint saved before the radii were stored loads with ASE's."""
    from dataclasses import replace

    from ase.data import covalent_radii

    from catscreen.model import blocks

    torch.manual_seed(0)
    net = CatscreenNet(replace(TINY, zbl=True), ELEMENTS, FIDELITIES)
    path = tmp_path / "zbl.pt"
    save_checkpoint(net, path, {"name": "zbl"})
    squeezed = slab()
    squeezed.positions[-1] = squeezed.positions[-5] + [0.0, 0.0, 0.7]  # O at 0.55 sums of Ni
    batch = net.collate([squeezed], ["on"], ["gpaw-pbe"])
    before = float(net.eval()(batch, forces=False)["energy"].detach())
    monkeypatch.setattr(blocks, "covalent_radii", covalent_radii * 1.5)
    fresh = CatscreenNet(replace(TINY, zbl=True), ELEMENTS, FIDELITIES)
    fresh.load_state_dict(
        {k: v for k, v in net.state_dict().items() if k != "zbl.radius_mA"}, strict=False
    )
    assert abs(float(fresh.eval()(batch, forces=False)["energy"].detach()) - before) > 1.0
    loaded, payload = load_checkpoint(path)
    assert loaded.zbl.radius_mA.tolist() == net.zbl.radius_mA.tolist()
    again = loaded.collate([squeezed], ["on"], ["gpaw-pbe"])
    assert float(loaded(again, forces=False)["energy"].detach()) == pytest.approx(before, abs=1e-9)
    monkeypatch.undo()
    old = dict(payload)
    old["state_dict"] = {k: v for k, v in payload["state_dict"].items() if k != "zbl.radius_mA"}
    old["version"] = checkpoint.content_version(
        old["config"], old["elements"], old["fidelities"], old["state_dict"]
    )
    torch.save(old, tmp_path / "old.pt")
    legacy, _ = load_checkpoint(tmp_path / "old.pt")
    assert legacy.zbl.radius_mA.tolist() == net.zbl.radius_mA.tolist()
    assert float(legacy(again, forces=False)["energy"].detach()) == pytest.approx(before, abs=1e-9)


def test_device_choice(saved, monkeypatch):
    """auto is CUDA when torch sees a GPU and the CPU otherwise; CATSCREEN_DEVICE chooses;
    a GPU asked for and absent, or an unknown device, is a one-line error."""
    from catscreen.model.inference import resolve_device

    monkeypatch.delenv("CATSCREEN_DEVICE", raising=False)
    gpu = torch.cuda.is_available()
    assert resolve_device().type == ("cuda" if gpu else "cpu")
    assert resolve_device("cpu").type == "cpu"
    for bad in ("gpu", "tpu", "mps"):
        with pytest.raises(CatscreenError, match=f"unknown device '{bad}'"):
            resolve_device(bad)
    if not gpu:
        with pytest.raises(CatscreenError, match="torch sees no CUDA GPU"):
            resolve_device("cuda")
        monkeypatch.setenv("CATSCREEN_DEVICE", "cuda")
        with pytest.raises(CatscreenError, match="torch sees no CUDA GPU"):
            load_checkpoint_model(saved[1])
    monkeypatch.setenv("CATSCREEN_DEVICE", "cpu")
    model = load_checkpoint_model(saved[1])
    assert model.device.type == "cpu" and model.max_batch_atoms == 256
    assert next(model.net.parameters()).device.type == "cpu"


def test_bundled_weights_know_every_element_enumerate_can_build():
    """Every element of the bulk catalogue and the adsorbate library, so a default campaign
    never stops on an unknown element."""
    from catscreen.build.adsorbates import adsorbate_library
    from catscreen.build.bulks import bulk_library

    needed = set()
    for name, entry in bulk_library().items():
        needed |= set(entry.get("elements", [name]))
    for ads in adsorbate_library().values():
        needed |= set(ads.atoms.get_chemical_symbols())
    known = set(load_model("bundled").info.elements)
    assert len(needed) >= 40 and not sorted(needed - known)


def test_a_checkpoint_that_cannot_be_written_whole_keeps_the_previous_one(tmp_path) -> None:
    """A full disk (a file size limit here): torch raised RuntimeError with a traceback and
    left model.pt.tmp behind. Now one line; the previous checkpoint and the folder untouched."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        f"""
        import resource, signal
        from catscreen.errors import CatscreenError
        from catscreen.model.checkpoint import save_checkpoint
        from catscreen.model.network import CatscreenNet, ModelConfig
        small = CatscreenNet(ModelConfig(n_scalars=4, n_vectors=2, n_layers=1), ["H"], ["pbe"])
        big = CatscreenNet(ModelConfig(n_scalars=32, n_vectors=8, n_layers=2), ["H"], ["pbe"])
        path = {str(tmp_path / "model.pt")!r}
        save_checkpoint(small, path)
        size = __import__("os").path.getsize(path)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 1000, size + 1000))
        try:
            save_checkpoint(big, path)
        except CatscreenError as exc:
            print("ERROR", exc)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip().splitlines()[-1]
    assert line.startswith("ERROR cannot write") and "previous version is unchanged" in line
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
    net, _ = load_checkpoint(tmp_path / "model.pt")  # the small one, whole
    assert net.config.n_scalars == 4


def test_a_missing_checkpoint_given_as_a_path_object_is_one_clear_error(tmp_path):
    """`"/" in name` raised TypeError for a Path without a suffix."""
    from catscreen.errors import CatscreenError
    from catscreen.model.api import load_model

    with pytest.raises(CatscreenError, match="checkpoint not found"):
        load_model(tmp_path / "runs" / "best")


def test_host_atoms_are_told_by_the_adsorbates_formula_then_by_tags():
    """ASE's layer tags give a 2-layer slab's bottom tag 2: read as the adsorbate, O of the
    Cu+O adslab was a host; the adsorbate's formula decides first."""
    from ase.build import add_adsorbate, fcc111

    from catscreen.model.api import host_symbols

    slab = fcc111("Cu", (1, 1, 2), vacuum=5.0)  # ASE tags 1, 2
    add_adsorbate(slab, "O", 1.8, "fcc")  # tag 0
    assert host_symbols(slab, "adslab", "O") == ["Cu", "Cu"]
    assert host_symbols(slab, "adslab", "my-molecule") is None  # tags 0/1/2, not OC's: none
    slab.set_tags([1, 1, 2])
    assert host_symbols(slab, "adslab", "my-molecule") == ["Cu", "Cu"]
    assert host_symbols(slab, "slab") == ["Cu", "Cu", "O"]
    assert host_symbols(slab, "gas") == []
    assert host_symbols(slab, None, None) == ["Cu", "Cu"]
    slab.set_tags([0, 0, 0])
    assert host_symbols(slab, None, None) is None
