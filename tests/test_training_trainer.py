"""The trainer: loss goes down, resume continues, the split is by system, refs are fitted."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from ase import Atoms
from ase.build import bulk, fcc111
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

from catscreen.errors import CatscreenError
from catscreen.model.checkpoint import load_checkpoint
from catscreen.model.inference import resolve_device
from catscreen.training.trainer import (
    DatasetSpec,
    TrainConfig,
    Trainer,
    fit_reference_energies,
    is_validation,
    load_dataset,
    split_by_system,
)


def read_frames(path: Path) -> list[Atoms]:
    return read(path, index=":", format="extxyz")


def emt_labelled(a: Atoms) -> Atoms:
    """The frame with EMT energy, forces (and stress when fully periodic) frozen as labels."""
    a.calc = EMT()
    res = {"energy": a.get_potential_energy(), "forces": a.get_forces()}
    if all(a.pbc):
        res["stress"] = a.get_stress()
    a.calc = SinglePointCalculator(a, **res)
    return a


def make_dataset(path: Path, fidelity: str = "emt", n_systems: int = 6, seed: int = 0) -> Path:
    """EMT-labelled Cu/Pt slabs with O, bulk cells and rattled copies, several frames per sid."""
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n_systems):
        metal = ("Cu", "Pt", "Ni")[k % 3]
        base = bulk(metal, cubic=True) if k % 2 else fcc111(metal, (2, 2, 2), vacuum=5.0)
        if k % 2 == 0:
            base.append("O")
            base.positions[-1] = base.positions[4] + [0, 0, 1.8]
        for j in range(3):
            a = base.copy()
            a.positions += rng.normal(0, 0.08, a.positions.shape)
            emt_labelled(a)
            spin = "on" if metal == "Ni" else "off"
            a.info.update(
                {"spin": spin, "fidelity": fidelity, "source": "emt", "sid": f"s{k}", "fid": j}
            )
            frames.append(a)
    write(path, frames, format="extxyz")
    return path


def tiny_config(tmp_path: Path, data: list[Path], **kw) -> TrainConfig:
    base = {
        "datasets": [str(p) for p in data],
        "out": str(tmp_path / "run"),
        "model": {
            "n_scalars": 8,
            "n_vectors": 4,
            "n_heads": 2,
            "readout_hidden": 8,
            "radial_hidden": 8,
        },
        "validation_fraction": 0.3,
        "batch_size": 4,
        "max_steps": 12,
        "eval_every": 6,
        "max_eval_frames": 8,
        "lr": 2e-2,
        "warmup_steps": 2,
        "stress_weight": 0.1,
    }
    return TrainConfig.from_dict({**base, **kw})


def test_loss_goes_down(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "d.extxyz")
    tr = Trainer(tiny_config(tmp_path, [data]), log=lambda m: None)
    fixed = tr.train[:8]
    before, _ = tr.loss(tr.net, fixed, train=False)
    best = tr.run()
    after, _ = tr.loss(tr.net, fixed, train=False)
    assert float(after.detach()) < float(before.detach())
    assert best.exists() and (tmp_path / "run" / "state.pt").exists()


def test_resume_continues(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "d.extxyz")
    Trainer(tiny_config(tmp_path, [data], max_steps=4, eval_every=2), log=lambda m: None).run()
    logs: list[str] = []
    tr = Trainer(tiny_config(tmp_path, [data], max_steps=6, eval_every=2), log=logs.append)
    tr.run()
    assert "resumed at step 4" in logs
    assert tr.step == 6
    again: list[str] = []  # a rerun of a finished run said "resumed" and showed a 0/N bar
    Trainer(tiny_config(tmp_path, [data], max_steps=6, eval_every=2), log=again.append).run()
    assert (
        again[0] == "resumed at step 6: max_steps 6 reached, nothing to train (raise it to go on)"
    )
    # the run's folder or its state.pt as a model: "IsADirectoryError" / "not a checkpoint"
    from catscreen.model import load_model

    with pytest.raises(CatscreenError, match=r"run is a folder: give a checkpoint in it, e\.g\. "):
        load_model(str(tmp_path / "run"))
    with pytest.raises(CatscreenError, match=r"state.pt is a training run's resume state: give"):
        load_model(str(tmp_path / "run" / "state.pt"))
    # the same out with another network or seed: refused, not resumed as if it were this run
    wider = {**tiny_config(tmp_path, [data]).model, "n_scalars": 12}
    for other in ({"model": wider}, {"seed": 1}):
        # named: the field that changed (all ten were listed)
        named = rf"state of a run with other data or network settings \({next(iter(other))}\)"
        with pytest.raises(CatscreenError, match=named):
            Trainer(tiny_config(tmp_path, [data], max_steps=8, **other), log=lambda m: None).run()
    # other loss weights change the score best.pt is chosen by: a resume replaced a good
    # best.pt with a 10x worse one (energy_weight 20 -> 0.5)
    best = (tmp_path / "run" / "best.pt").read_bytes()
    with pytest.raises(CatscreenError, match=r"other settings \(energy_weight 20.0 -> 0.5"):
        Trainer(tiny_config(tmp_path, [data], max_steps=8, energy_weight=0.5), log=print).run()
    assert (tmp_path / "run" / "best.pt").read_bytes() == best
    state = tmp_path / "run" / "state.pt"
    saved = torch.load(state, weights_only=False)
    del saved["run"]  # a state from before runs were named: its weights must still fit
    torch.save(saved, state)
    with pytest.raises(CatscreenError, match=r"cannot resume from .*RuntimeError.*start afresh"):
        Trainer(tiny_config(tmp_path, [data], max_steps=8, model=wider), log=lambda m: None).run()
    state.write_bytes(state.read_bytes()[:3000])  # cut off
    with pytest.raises(CatscreenError, match=r"cannot resume from .*\(damaged"):
        Trainer(tiny_config(tmp_path, [data], max_steps=8), log=lambda m: None).run()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_stops_after_the_step_with_its_state_and_resumes_the_same(
    tmp_path: Path, signum: int
) -> None:
    """State was saved every eval_every steps only: Ctrl-C at step 4 resumed at 0 (up to 499
    steps lost with the shipped cadence), and a batch system's SIGTERM killed the run. Now
    either stops after its step, state saved, and the resumed run ends where an uninterrupted
    one does."""
    data = make_dataset(tmp_path / "d.extxyz")
    whole = Trainer(tiny_config(tmp_path / "a", [data], eval_every=6), log=lambda m: None)
    whole.run()
    logs: list[str] = []
    tr = Trainer(tiny_config(tmp_path / "b", [data], eval_every=6), log=logs.append)
    real = tr.loss

    def interrupted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        if tr.step == 3:
            os.kill(os.getpid(), signum)  # mid-step, as a user's Ctrl-C lands
        return real(*args, **kwargs)

    tr.loss = interrupted
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (a
    outer_term = signal.signal(signal.SIGTERM, signal.SIG_DFL)  # test run in the background
    try:  # of a shell ignores Ctrl-C, and so would train)
        with pytest.raises(KeyboardInterrupt):
            tr.run()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGINT, outer)
        signal.signal(signal.SIGTERM, outer_term)
    assert "interrupted at step 4; state saved, rerun to go on" in logs
    name = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
    assert f"{name}: stopping after this step, its state saved (again: now, unsaved)" in logs
    again = Trainer(tiny_config(tmp_path / "b", [data], eval_every=6), log=logs.append)
    again.run()
    assert "resumed at step 4" in logs
    for name in ("best.pt", "last.pt"):
        a = load_checkpoint(tmp_path / "a" / "run" / name)[0].state_dict()
        b = load_checkpoint(tmp_path / "b" / "run" / name)[0].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_a_damaged_best_checkpoint_stops_the_resume(tmp_path: Path) -> None:
    """A cut-off best.pt stood through a resume (exit 0, "model: best.pt") until a better score
    came, and was the model the run named."""
    data = make_dataset(tmp_path / "d.extxyz")
    Trainer(tiny_config(tmp_path, [data], max_steps=4, eval_every=2), log=lambda m: None).run()
    best = tmp_path / "run" / "best.pt"
    best.write_bytes(best.read_bytes()[:10000])
    damaged = best.read_bytes()
    with pytest.raises(CatscreenError, match=r"cannot read checkpoint .*best.pt.*delete it"):
        Trainer(tiny_config(tmp_path, [data], max_steps=6, eval_every=2), log=print).run()
    assert best.read_bytes() == damaged  # nothing written
    best.unlink()
    tr = Trainer(tiny_config(tmp_path, [data], max_steps=6, eval_every=2), log=lambda m: None)
    assert tr.run() == best and load_checkpoint(best)[1]["metadata"]


def test_a_run_moved_to_another_folder_still_resumes(tmp_path: Path) -> None:
    """A run and its data copied elsewhere (a GPU machine's checkout) are the same run."""
    a = tmp_path / "a"
    a.mkdir()
    data = make_dataset(a / "d.extxyz")
    Trainer(tiny_config(a, [data], max_steps=4, eval_every=2), log=lambda m: None).run()
    shutil.move(a, tmp_path / "b")
    b = tmp_path / "b"
    logs: list[str] = []
    Trainer(tiny_config(b, [b / "d.extxyz"], max_steps=6, eval_every=2), log=logs.append).run()
    assert "resumed at step 4" in logs


def test_split_has_no_system_leakage(tmp_path: Path) -> None:
    frames = load_dataset(
        tiny_config(tmp_path, [make_dataset(tmp_path / "d.extxyz", n_systems=30)]).datasets[0]
    )
    train, val = split_by_system(frames, 0.3, seed=1)
    assert val and train
    assert not {f.sid for f in train} & {f.sid for f in val}
    again, _ = split_by_system(frames, 0.3, seed=1)
    assert [f.sid for f in again] == [f.sid for f in train]


def test_a_system_a_kept_dataset_trains_on_never_validates(tmp_path: Path) -> None:
    """A small set marked `holdout: false` (every frame trains) labels some of the systems of a
    larger set: their frames in the larger set train too, or validation would score them."""
    big = make_dataset(tmp_path / "big.extxyz", n_systems=30)
    small = make_dataset(tmp_path / "small.extxyz", fidelity="emt2", n_systems=30, seed=1)
    cfg = tiny_config(tmp_path, [], datasets=[str(big), {"path": str(small), "holdout": False}])
    frames = [f for k, spec in enumerate(cfg.datasets) for f in load_dataset(spec, k)]
    train, val = split_by_system(frames, 0.3, seed=1, keep=frozenset({1}))
    assert not val  # the small set holds every system of the big one
    few = [f for f in frames if f.dataset == 0 or f.sid in ("s0", "s1")]
    train, val = split_by_system(few, 0.3, seed=1, keep=frozenset({1}))
    assert val and not {f.sid for f in train} & {f.sid for f in val}
    assert {f.sid for f in train if f.dataset == 1} == {"s0", "s1"}


def test_split_seed_reseeds_training_but_keeps_the_held_out_systems(tmp_path: Path) -> None:
    """A second seed of a candidate must hold out the same systems, or the benchmark that reads
    the checkpoint's split measures the two seeds on different systems (and a reseeded fine-tune,
    whose parent's training systems never validate it, on almost none)."""
    data = make_dataset(tmp_path / "d.extxyz", n_systems=30)

    def trained(name: str, **kw) -> tuple[Trainer, dict]:
        config = tiny_config(tmp_path, [data], out=str(tmp_path / name), max_steps=2, **kw)
        tr = Trainer(config, log=lambda m: None)
        return tr, load_checkpoint(tr.run())[1]["metadata"]["training_data"]

    base, base_td = trained("base", seed=0)
    again, again_td = trained("again", seed=1, split_seed=0)
    other, other_td = trained("other", seed=1)
    assert {f.sid for f in again.val} == {f.sid for f in base.val}
    assert again_td["validation_systems"] == base_td["validation_systems"]
    assert (again_td["split_seed"], other_td["split_seed"]) == (0, 1)
    assert {f.sid for f in other.val} != {f.sid for f in base.val}
    # the same split fits the same reference energies; the weights start and train differently
    a, b = base.net.state_dict(), again.net.state_dict()
    assert torch.equal(a["reference_energies"], b["reference_energies"])
    assert any(not torch.equal(a[k], b[k]) for k in a if k != "reference_energies")


def test_reference_energies_cover_every_context(tmp_path: Path) -> None:
    frames = load_dataset(tiny_config(tmp_path, [make_dataset(tmp_path / "d.extxyz")]).datasets[0])
    elements = ("Cu", "Ni", "O", "Pt")
    refs = fit_reference_energies(frames, elements, ("emt", "other"))
    assert refs.shape == (4, 4) and np.isfinite(refs).all()
    # Composition fit reproduces the data to well under an eV per atom.
    x = np.array([[f.atoms.get_chemical_symbols().count(e) for e in elements] for f in frames])
    pred = (x * refs[[2 * 0 + (f.spin == "on") for f in frames]]).sum(axis=1)
    per_atom = np.abs(pred - [f.energy for f in frames]) / x.sum(axis=1)
    assert per_atom.mean() < 0.5


def test_config_errors(tmp_path: Path) -> None:
    with pytest.raises(CatscreenError, match="unknown training config"):
        TrainConfig.from_dict({"datasets": ["x"], "bogus": 1})
    with pytest.raises(CatscreenError, match="at least one dataset"):
        TrainConfig.from_dict({"datasets": []})
    cfg = tmp_path / "c.yaml"
    cfg.write_text("datasets:\n  - path: d.extxyz\n    weight: 2\nmax_steps: 3\n")
    loaded = TrainConfig.load(cfg)
    assert loaded.datasets[0].path == str(tmp_path / "d.extxyz") and loaded.datasets[0].weight == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("lr: 5e-3\n", "lr must be a number.*5.0e-3"),  # YAML 1.1 reads 5e-3 as text
        ("max_steps: ten\n", "max_steps must be an integer"),
        ("model: {n_scalars: '8'}\n", "model.n_scalars must be an integer"),
        ("model: 3\n", "model must be a mapping"),
        ("model: {n_layers: 2, bogus: 1}\n", "unknown model key.*bogus"),
        ("seed: true\n", "seed must be an integer, not True"),  # a bool is not a number
        ("lr: yes\n", "lr must be a number, not True"),
        ("fidelities: [pbe, 3]\n", "fidelities must be a list of text"),
        ("dtype: float16\n", "dtype 'float16'"),
        ("device: gpu\n", "unknown device 'gpu'"),
        # types right, values training cannot use: one line, not a ZeroDivisionError mid-run
        ("eval_every: 0\n", "eval_every and max_eval_frames must be >= 1"),
        ("max_eval_frames: 0\n", "eval_every and max_eval_frames must be >= 1"),
        ("validation_fraction: -0.5\n", "validation_fraction must be in"),
        ("ema_decay: 2.0\n", "ema_decay must be in"),
        ("datasets: [{path: d.extxyz, weight: 0.0}]\n", "at least one of them positive"),
        ("datasets: [{path: d.extxyz, weight: -1.0}]\n", "weights must be finite and >= 0"),
        ("model: {n_heads: 0}\n", "model.n_heads must be >= 1, not 0"),
        ("model: {l_max: -1}\n", "model.l_max must be >= 0"),
        ("model: {cutoff: 0.0}\n", "model.cutoff and model.avg_num_neighbors must be positive"),
        ("elements: [Cu, Xx]\n", "elements: Xx is not an element symbol"),
        # a traceback from numpy/torch after the data had loaded
        ("seed: -1\n", r"seed and split_seed must be in \[0, 2\*\*63\)"),
        ("seed: 99999999999999999999999\n", "seed and split_seed must be in"),
        ("split_seed: -3\n", "seed and split_seed must be in"),
        ("threads: -2\n", "threads and workers must be >= 0"),  # trained as 0
        ("workers: -1\n", "threads and workers must be >= 0"),
        # the last of two values won; the same frames twice counted twice
        ("max_steps: 2\nmax_steps: 3\n", r"c.yaml:3: invalid YAML: duplicate key 'max_steps'"),
        ("datasets: [d.extxyz, ./d.extxyz]\n", "d.extxyz is listed twice with the same settings"),
        ("lr: [1\n", r"c.yaml:3: invalid YAML: expected ',' or '\]', but got '<stream end>'$"),
    ],
)
def test_config_wrong_types_are_errors(tmp_path: Path, extra: str, message: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(("datasets: [d.extxyz]\n" if "datasets" not in extra else "") + extra)
    with pytest.raises(CatscreenError, match=message) as caught:
        resolve_device(TrainConfig.load(cfg).device)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("datasets: d.extxyz\n", "datasets must be a list"),  # was read letter by letter
        ("- d.extxyz\n", "must be a mapping"),
        ("datasets: [{path: d.extxyz, weight: heavy}]\n", "dataset weight must be a number"),
        ("datasets: [{weight: 2}]\n", "dataset .* needs a path"),
        ("datasets:\n  - {path: d.extxyz, bogus: 1, kinds: 3}\n", "unknown dataset key.*bogus"),
        (
            "datasets:\n  - {path: d.extxyz, kinds: 3}\n",
            "dataset kinds must be a list of text, not 3",
        ),
    ],
)
def test_config_shape_errors(tmp_path: Path, text: str, message: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(CatscreenError, match=message):
        TrainConfig.load(cfg)


def test_config_yaml_merge_keys_and_unhashable_keys(tmp_path: Path) -> None:
    """The duplicate-key check refused `<<: *base` (a merge key overrides, it is no repeat)
    and an unhashable key was a TypeError traceback."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "datasets:\n  - &d {path: d.extxyz, weight: 2.0}\n  - <<: *d\n    path: e.extxyz\n"
    )
    loaded = TrainConfig.load(cfg)
    assert [(Path(d.path).name, d.weight) for d in loaded.datasets] == [
        ("d.extxyz", 2.0),
        ("e.extxyz", 2.0),
    ]
    cfg.write_text("datasets: [d.extxyz]\n? [a, b]\n: 1\n")
    with pytest.raises(CatscreenError, match=r"c.yaml:2: invalid YAML: found unhashable key"):
        TrainConfig.load(cfg)


def test_config_shorthands_and_values_kept_as_written(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "datasets:\n  - {path: d.extxyz, kinds: slab, weight: 2}\n"
        "fidelities: pbe\nelements: [Cu, O]\ndescription:\nmax_minutes: 3\n"
    )
    c = TrainConfig.load(cfg)
    assert (c.fidelities, c.elements, c.description) == (("pbe",), ("Cu", "O"), None)
    assert c.datasets[0].kinds == ("slab",)
    # ints stay ints where floats are expected: the saved config is what was written
    assert type(c.max_minutes) is int and type(c.datasets[0].weight) is int


def test_config_extends_a_base_with_paths_relative_to_each_file(tmp_path: Path) -> None:
    (tmp_path / "base").mkdir()
    (tmp_path / "cands").mkdir()
    (tmp_path / "base" / "base.yaml").write_text(
        "datasets: [d.extxyz]\nmodel: {n_scalars: 8, n_layers: 2}\nlr: 0.01\nseed: 3\n"
    )
    child = tmp_path / "cands" / "child.yaml"
    child.write_text(
        "extends: ../base/base.yaml\nmodel: {n_layers: 3}\nseed: 4\n"
        "extra_datasets:\n  - {path: e.extxyz, kinds: slab}\n"
    )
    (tmp_path / "cands" / "grandchild.yaml").write_text("extends: child.yaml\nout: runs/g\n")
    c = TrainConfig.load(tmp_path / "cands" / "grandchild.yaml")
    assert [d.path for d in c.datasets] == [
        str(tmp_path / "base" / "d.extxyz"),
        str(tmp_path / "cands" / "e.extxyz"),
    ]
    assert c.datasets[1].kinds == ("slab",)
    assert c.model == {"n_scalars": 8, "n_layers": 3}  # merged key by key
    assert (c.lr, c.seed, c.out) == (0.01, 4, "runs/g")
    child.write_text("extends: ../base/base.yaml\ndatasets: [f.extxyz]\n")  # replaces
    assert [d.path for d in TrainConfig.load(child).datasets] == [
        str(tmp_path / "cands" / "f.extxyz")
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("extends: c.yaml\n", "extend each other in a cycle"),
        ("extends: missing.yaml\n", "config not found"),
        ("extends: 3\n", "extends must be the path of another config"),
        ("datasets: [d.extxyz]\nextra_datasets: [e.extxyz]\n", "extra_datasets needs extends"),
    ],
)
def test_config_extends_errors(tmp_path: Path, text: str, message: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(CatscreenError, match=message):
        TrainConfig.load(cfg)


def test_committed_configs_load_and_reseeds_differ_only_where_they_say() -> None:
    folder = Path(__file__).parents[1] / "data" / "training" / "candidates"
    for path in [*folder.parent.glob("*.yaml"), *folder.glob("*.yaml")]:
        missing = [d.path for d in TrainConfig.load(path).datasets if not Path(d.path).exists()]
        assert not missing, (path.name, missing)
    for name in ("l2_stage2", "l1_45k_stage2", "restart_stage1"):
        base = asdict(TrainConfig.load(folder / f"{name}.yaml"))
        reseed = asdict(TrainConfig.load(folder / f"{name}_seed1.yaml"))
        assert {k for k in base if base[k] != reseed[k]} <= {"seed", "split_seed", "out"}
        assert (reseed["seed"], reseed["split_seed"]) == (1, 0)


def test_bundled_weights_record_their_committed_configs() -> None:
    """The shipped weights are the half-and-half mix of two fine-tunes (`catscreen model
    interpolate`) and record how each half was trained: candidates/steps_ft_seed1.yaml and
    thin_thick_pairs_a0.3_f2.5_seed1.yaml as committed, apart from init_from (the first half
    started from 57bfd211ed58 when it was the bundled file, now a run folder) and the
    description inside the recorded config (the first half's described only the from-scratch
    stage); each half's checkpoint description is its committed config's."""
    from catscreen.paths import data_dir

    def relative(config: dict) -> dict:  # the recorded paths are absolute, of that checkout
        for d in config["datasets"]:
            d["path"] = "data/training/" + str(d["path"]).split("data/training/", 1)[1]
        return {k: v for k, v in config.items() if k not in ("init_from", "description")}

    folder = Path(__file__).parents[1] / "data" / "training" / "candidates"
    _, payload = load_checkpoint(data_dir() / "models" / "bundled.pt")
    mix = payload["metadata"]["interpolation"]
    assert mix["alpha"] == 0.5
    assert (mix["first"]["version"], mix["second"]["version"]) == ("ea1c8fc69826", "bcaf36e65fe7")
    defaults = asdict(DatasetSpec(path=""))
    for half, name in ((mix["first"], "steps_ft_seed1.yaml"), (mix["second"], "thin_thick_pairs_a0.3_f2.5_seed1.yaml")):  # fmt: skip
        # through JSON, as the checkpoint stores it (tuples become lists)
        committed = json.loads(json.dumps(asdict(TrainConfig.load(folder / name))))
        recorded, expected = relative(half["train_config"]), relative(committed)
        for r, e in zip(recorded["datasets"], expected["datasets"], strict=True):
            for key in set(e) - set(r):  # dataset options added since: at their defaults
                assert e.pop(key) == defaults[key]
        assert recorded == expected, name
        assert half["description"] == committed["description"], name
    assert "then fine-tuned with a teacher pass of stepped" in mix["first"]["description"]
    assert "adsorption-pair loss" in mix["second"]["description"]


def test_config_spin_on_off_survive_yaml(tmp_path: Path) -> None:
    """YAML 1.1 reads a bare `spin: on` as True: it must mean spin on, not fail mid-training."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "datasets:\n  - {path: a.extxyz, spin: on}\n  - {path: b.extxyz, as_spin: off}\n"
    )
    a, b = TrainConfig.load(cfg).datasets
    assert (a.spin, b.as_spin) == ("on", "off")
    cfg.write_text("datasets:\n  - {path: a.extxyz, spin: up}\n")
    with pytest.raises(CatscreenError, match="spin='up'"):
        TrainConfig.load(cfg)


def test_sampling_weights(tmp_path: Path) -> None:
    a = make_dataset(tmp_path / "a.extxyz", "fa")
    b = make_dataset(tmp_path / "b.extxyz", "fb", seed=1)
    cfg = tiny_config(tmp_path, [a, b])
    cfg = TrainConfig.from_dict(
        {
            **{k: v for k, v in cfg.__dict__.items() if k != "datasets"},
            "datasets": [{"path": str(a), "weight": 3.0}, {"path": str(b), "weight": 1.0}],
        }
    )
    tr = Trainer(cfg, log=lambda m: None)
    share_a = sum(p for p, f in zip(tr.sampling, tr.train, strict=True) if f.dataset == 0)
    assert share_a == pytest.approx(0.75)
    assert tr.net.fidelities == ("fa", "fb")


def test_fine_tune_and_relabel(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "d.extxyz")
    best = Trainer(
        tiny_config(tmp_path, [data], max_steps=2, eval_every=2), log=lambda m: None
    ).run()
    cfg = tiny_config(tmp_path / "ft", [data], max_steps=2, eval_every=2, init_from=str(best))
    cfg = TrainConfig.from_dict(
        {
            **{k: v for k, v in cfg.__dict__.items() if k != "datasets"},
            "datasets": [{"path": str(data), "as_spin": "off"}],
        }
    )
    tr = Trainer(cfg, log=lambda m: None)
    assert {f.spin for f in tr.train} == {"off"}
    assert tr.net.elements == ("Cu", "Ni", "O", "Pt")
    tuned = tr.run()
    # the parent by its version (init_from is only a path) and the seed, shown by `model info`
    from typer.testing import CliRunner

    from catscreen.cli.main import app
    from catscreen.model.checkpoint import load_checkpoint

    parent = load_checkpoint(best)[1]["version"]
    meta = load_checkpoint(tuned)[1]["metadata"]
    assert meta["parent"] == {"version": parent, "path": str(best)}
    shown = CliRunner().invoke(app, ["model", "info", str(tuned), "--json"]).output
    info = json.loads(shown)
    assert info["fine_tuned_from"] == f"{parent} ({best})" and info["seed"] == cfg.seed
    assert info["metrics"]["units"]["energy_mae"] == "eV/atom"
    table = CliRunner().invoke(app, ["model", "info", str(tuned)], env={"COLUMNS": "200"}).output
    e_mev = 1000 * meta["metrics"]["validation"]["energy_mae"]
    # of how many steps: a killed run's best.pt said "step 140" alone
    assert f"energy MAE {e_mev:.1f} meV/atom" in table and "(validation, step 2 of 2)" in table
    bad = TrainConfig.from_dict(
        {**cfg.__dict__, "datasets": [{"path": str(data), "as_fidelity": "new"}]}
    )
    with pytest.raises(CatscreenError, match="does not know new.*one of the checkpoint's.*as_fi"):
        Trainer(bad, log=lambda m: None)


def test_fine_tuning_keeps_inherited_systems_out_of_validation_and_unseen_references(
    tmp_path: Path,
) -> None:
    data = make_dataset(tmp_path / "d.extxyz")
    best = Trainer(
        tiny_config(tmp_path, [data], max_steps=2, eval_every=2), log=lambda m: None
    ).run()
    net, payload = load_checkpoint(best)
    parent_train = set(payload["metadata"]["training_data"]["training_systems"])
    before = net.reference_energies.clone()
    cu = tmp_path / "cu.extxyz"
    frames = [a for a in read_frames(data) if a.get_chemical_formula() == "Cu4"]
    write(cu, frames, format="extxyz")
    for seed in range(6):  # another seed splits differently; inherited systems must train
        cfg = tiny_config(
            tmp_path / f"ft{seed}", [data], seed=seed, max_steps=1, init_from=str(best)
        )
        tr = Trainer(cfg, log=lambda m: None)
        assert not {f.sid for f in tr.val} & parent_train
    cfg = tiny_config(
        tmp_path / "cu", [cu], max_steps=1, init_from=str(best), refit_references=True,
        validation_fraction=0.0,
    )  # fmt: skip
    tr = Trainer(cfg, log=lambda m: None)
    after = tr.net.reference_energies
    cu_col = tr.net.elements.index("Cu")
    others = [k for k in range(len(tr.net.elements)) if k != cu_col]
    torch.testing.assert_close(after[:, others], before[:, others].to(after))
    # only the context the new frames are in (emt, spin off): the spin-on row, which no Cu
    # frame of the fine-tune holds, keeps the checkpoint's value (it took the spin-off fit)
    assert not torch.allclose(after[0, cu_col], before[0, cu_col].to(after))
    torch.testing.assert_close(after[1:, cu_col], before[1:, cu_col].to(after))


def test_a_fidelity_whose_elements_come_in_one_ratio_takes_the_split_of_the_others() -> None:
    """Pt8O adslabs alone fix E(Pt8O), not Pt and O apart: the split towards zero put 3.9 eV
    into a clean Pt8 slab. With another fidelity that separates them, take its split."""
    from ase.build import fcc111

    from catscreen.training.trainer import Frame

    def frame(atoms, energy, fidelity):  # noqa: ANN001, ANN202
        return Frame(
            atoms=atoms, energy=energy, forces=np.zeros((len(atoms), 3)), stress=None,
            magmoms=None, spin="off", fidelity=fidelity, source="t", sid="s", dataset=0,
        )  # fmt: skip

    mu = {"O": -5.0, "Pt": -6.0}
    pt = fcc111("Pt", (2, 2, 2), vacuum=5.0)
    pto = pt.copy()
    pto.append("O")
    frames = []
    for n in range(1, 5):  # fidelity a: Pt slabs of several sizes, with and without O
        frames.append(frame(pt * (n, 1, 1), 8 * n * mu["Pt"], "a"))
        frames.append(frame(pto * (n, 1, 1), n * (8 * mu["Pt"] + mu["O"]), "a"))
    frames += [frame(pto, 8 * mu["Pt"] + mu["O"] + 0.5, "b")] * 3  # b: one ratio, 0.5 eV up
    refs = fit_reference_energies(frames, ("O", "Pt"), ("a", "b"))
    np.testing.assert_allclose(refs[0], [-5.0, -6.0], atol=1e-3)
    b = refs[2]  # (b, off)
    assert 8 * b[1] + b[0] == pytest.approx(8 * mu["Pt"] + mu["O"] + 0.5, abs=0.05)
    assert 8 * b[1] == pytest.approx(8 * mu["Pt"], abs=0.5)  # a clean slab near a's value


@pytest.mark.parametrize(
    ("extra", "message"),
    [  # each trained (rc 0): a negative weight maximised its error and chose best.pt by it
        ({"energy_weight": -20.0}, "loss weights and weight_decay must be finite and >= 0"),
        ({"magmom_weight": -1.0}, "loss weights and weight_decay must be finite and >= 0"),
        ({"weight_decay": -0.5}, "loss weights and weight_decay must be finite and >= 0"),
        ({"energy_weight": 0.0, "force_weight": 0.0}, "energy_weight, force_weight or adsorpt"),
        ({"min_lr": 0.1}, "min_lr in \\[0, lr\\]"),
        ({"out": None}, "out must name a folder"),
    ],
)
def test_training_settings_that_cannot_train_are_refused(tmp_path, extra, message) -> None:
    with pytest.raises(CatscreenError, match=message):
        tiny_config(tmp_path, [tmp_path / "d.extxyz"], **extra)


def test_a_split_that_leaves_nothing_to_train_or_validate_on_is_named(tmp_path: Path) -> None:
    """No validation system picked best.pt on training error without a word; no weighted
    training frame crashed in the sampler (NaN probabilities)."""
    data = make_dataset(tmp_path / "d.extxyz", n_systems=6)
    logs: list[str] = []
    tr = Trainer(tiny_config(tmp_path, [data]), log=logs.append)
    assert tr.val and tr.train and not logs
    held, kept = {f.sid for f in tr.val}, {f.sid for f in tr.train}
    frames = read_frames(data)
    write(tmp_path / "train.extxyz", [a for a in frames if a.info["sid"] in kept])
    Trainer(tiny_config(tmp_path, [tmp_path / "train.extxyz"]), log=logs.append)
    assert any("no system fell on the validation side" in m for m in logs), logs
    write(tmp_path / "held.extxyz", [a for a in frames if a.info["sid"] in held])
    spec = [{"path": str(tmp_path / "held.extxyz")}, {"path": str(data), "weight": 0.0}]
    with pytest.raises(CatscreenError, match="no dataset with a positive weight has training"):
        Trainer(tiny_config(tmp_path, [], datasets=spec), log=lambda m: None)


def test_bad_labels_and_settings_fail_before_training(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "d.extxyz")
    with pytest.raises(CatscreenError, match="default_fidelity 'emt-typo' is not one of"):
        Trainer(tiny_config(tmp_path, [data], default_fidelity="emt-typo"), log=lambda m: None)
    frames = read_frames(data)
    no_forces = frames[0].copy()
    no_forces.calc = SinglePointCalculator(no_forces, energy=-3.0)
    write(tmp_path / "nf.extxyz", [no_forces], format="extxyz")
    with pytest.raises(CatscreenError, match="frame of s0 has no forces"):
        Trainer(tiny_config(tmp_path, [tmp_path / "nf.extxyz"]), log=lambda m: None)
    nan = frames[0].copy()
    nan.calc = SinglePointCalculator(nan, energy=float("nan"), forces=frames[0].get_forces())
    write(tmp_path / "nan.extxyz", [nan], format="extxyz")
    with pytest.raises(CatscreenError, match="frame of s0 has a non-finite energy"):
        Trainer(tiny_config(tmp_path, [tmp_path / "nan.extxyz"]), log=lambda m: None)


def test_a_spent_time_budget_trains_nothing_more(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "d.extxyz")
    cfg = tiny_config(tmp_path, [data], max_minutes=1e-9, max_steps=50)
    Trainer(cfg, log=lambda m: None).run()
    steps = [Trainer(cfg, log=lambda m: None) for _ in range(2)]
    for tr in steps:
        tr.run()
        assert tr.step == 1


def test_add_layers_deepens_the_checkpoint_and_keeps_its_energies(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "d.extxyz")
    best = Trainer(
        tiny_config(tmp_path, [data], max_steps=2, eval_every=2), log=lambda m: None
    ).run()
    cfg = tiny_config(
        tmp_path / "deep", [data], max_steps=4, eval_every=2, init_from=str(best), add_layers=1
    )
    tr = Trainer(cfg, log=lambda m: None)
    assert tr.net.config.n_layers == 3
    original, _ = load_checkpoint(best)
    frames = tr.val[:3]
    batch = original.collate(
        [f.atoms for f in frames], [f.spin for f in frames], [f.fidelity for f in frames]
    )
    before = original.float().eval()(batch, forces=False)["energy"]
    after = tr.net.eval()(batch.to(tr.device, tr.dtype), forces=False)["energy"]
    torch.testing.assert_close(after, before, atol=1e-5, rtol=0)
    tr.net.train()
    deep_best = tr.run()
    net, _ = load_checkpoint(deep_best)
    assert net.config.n_layers == 3
    with pytest.raises(CatscreenError, match="add_layers needs init_from"):
        tiny_config(tmp_path / "bad", [data], add_layers=1)


def test_add_elements_widens_the_checkpoint_and_fits_the_new_references(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "d.extxyz")  # Cu, Pt, Ni, O
    best = Trainer(
        tiny_config(tmp_path, [data], max_steps=2, eval_every=2), log=lambda m: None
    ).run()
    # Au and Ag cells whose labels sit 3 eV per atom below EMT's: a reference the widened
    # network cannot know before the fit.
    rng = np.random.default_rng(3)
    frames = []
    for k, metal in enumerate(("Au", "Ag", "Au", "Ag")):
        for _ in range(3):
            a = bulk(metal, cubic=True)
            a.positions += rng.normal(0, 0.05, a.positions.shape)
            emt_labelled(a)
            res = dict(a.calc.results)
            res["energy"] -= 3.0 * len(a)
            a.calc = SinglePointCalculator(a, **res)
            a.info.update({"spin": "off", "fidelity": "emt", "source": "emt", "sid": f"n{k}"})
            frames.append(a)
    extra = tmp_path / "new.extxyz"
    write(extra, frames, format="extxyz")
    kw = {"max_steps": 2, "eval_every": 2, "init_from": str(best), "validation_fraction": 0.0}
    with pytest.raises(CatscreenError, match="does not know Ag, Au.*add_elements: true"):
        Trainer(tiny_config(tmp_path / "no", [data, extra], **kw), log=lambda m: None)
    tr = Trainer(
        tiny_config(tmp_path / "wide", [data, extra], add_elements=True, **kw), log=lambda m: None
    )
    original, _ = load_checkpoint(best)
    assert tr.net.elements == (*original.elements, "Ag", "Au")
    torch.testing.assert_close(
        tr.net.reference_energies[:, : len(original.elements)],
        original.reference_energies.to(tr.net.reference_energies),
    )
    old = [f for f in tr.train if not {"Ag", "Au"} & set(f.atoms.get_chemical_symbols())][:3]
    new = [f for f in tr.train if {"Ag", "Au"} & set(f.atoms.get_chemical_symbols())]

    def energies(net, fs):
        batch = net.collate([f.atoms for f in fs], [f.spin for f in fs], [f.fidelity for f in fs])
        return net.float().eval()(batch.to(tr.device, tr.dtype), forces=False)["energy"]

    torch.testing.assert_close(energies(tr.net, old), energies(original, old), atol=1e-5, rtol=0)
    per_atom = (energies(tr.net, new).detach().double().cpu().numpy() - [f.energy for f in new]) / [
        len(f.atoms) for f in new
    ]
    assert np.abs(per_atom).mean() < 0.3  # 3 eV/atom off without the fit
    tr.net.train()
    net, _ = load_checkpoint(tr.run())
    assert net.elements[-2:] == ("Ag", "Au")


def make_adsorption_dataset(path: Path) -> Path:
    """EMT clean slabs and O on them (rattled), sids `<slab>-clean` and `<slab>-O` as generate
    writes them."""
    rng = np.random.default_rng(1)
    frames = []
    for metal in ("Cu", "Pt", "Ni", "Au"):
        slab = fcc111(metal, (2, 2, 2), vacuum=5.0)
        ads = slab.copy()
        ads.append("O")
        ads.positions[-1] = ads.positions[4] + [0, 0, 1.8]
        for kind, base, sid in [("slab", slab, "clean"), ("adslab", ads, "O")]:
            for j in range(3):
                a = base.copy()
                a.positions += rng.normal(0, 0.05 * j, a.positions.shape)
                emt_labelled(a)
                a.info.update(
                    spin="off",
                    fidelity="emt",
                    source="emt",
                    sid=f"{metal}-111-2x2x2-{sid}",
                    kind=kind,
                    fid=j,
                )
                frames.append(a)
    write(path, frames, format="extxyz")
    return path


def test_adsorption_pairs_and_loss(tmp_path: Path) -> None:
    """Every adslab frame pairs with its own slab's lowest clean frame; the pair loss trains."""
    from catscreen.training.trainer import adsorption_pairs

    data = make_adsorption_dataset(tmp_path / "ads.extxyz")
    frames = load_dataset(TrainConfig.from_dict({"datasets": [str(data)]}).datasets[0])
    pairs = adsorption_pairs(frames, frames)
    assert len(pairs) == 12
    for ads, slab in pairs:
        assert slab.sid == ads.sid.replace("-O", "-clean")
        assert slab.energy == min(f.energy for f in frames if f.sid == slab.sid)
    other = [f for f in frames if f.sid.startswith("Cu")]
    relabelled = [f for f in frames if f.sid.startswith("Pt")]
    for f in relabelled:
        f.spin = "on"  # a clean slab of another context is no partner
    assert len(adsorption_pairs(other + relabelled, other + relabelled)) == 6
    assert adsorption_pairs([f for f in frames if f.sid.endswith("-O")], []) == []

    cfg = tiny_config(
        tmp_path,
        [data],
        adsorption_weight=5.0,
        validation_fraction=0.0,
        max_steps=30,
        eval_every=10,
        energy_weight=0.0,
        force_weight=0.0,
        stress_weight=0.0,
    )
    tr = Trainer(cfg, log=lambda m: None)
    with torch.no_grad():
        before = tr.pair_loss(tr.net, tr.pairs)[1]
    tr.run()
    with torch.no_grad():
        after = tr.pair_loss(tr.net, tr.pairs)[1]
    assert after < 0.75 * before
    assert all("adsorption_mae" in h for h in tr.history)

    no_pairs = make_dataset(tmp_path / "plain.extxyz")
    with pytest.raises(CatscreenError, match="no .adsorbate.slab, clean slab. pairs"):
        Trainer(tiny_config(tmp_path, [no_pairs], adsorption_weight=1.0), log=lambda m: None)


def test_pairs_come_from_the_datasets_marked_for_them(tmp_path: Path) -> None:
    """`pairs: true` on a dataset: only its adsorbate+slab frames pair (clean slabs from any);
    `pairs: false`: all but its; true on a dataset without adslab frames is a one-line error."""
    a = make_adsorption_dataset(tmp_path / "a.extxyz")
    b = make_adsorption_dataset(tmp_path / "b.extxyz")
    kw = {"adsorption_weight": 1.0, "validation_fraction": 0.0}

    def pair_sets(datasets: list) -> set[int]:
        tr = Trainer(tiny_config(tmp_path, [], datasets=datasets, **kw), log=lambda m: None)
        return {ads.dataset for ads, _ in tr.pairs}

    assert pair_sets([str(a), str(b)]) == {0, 1}
    assert pair_sets([str(a), {"path": str(b), "pairs": True}]) == {1}
    assert pair_sets([str(a), {"path": str(b), "pairs": False}]) == {0}
    plain = make_dataset(tmp_path / "plain.extxyz")
    with pytest.raises(CatscreenError, match="no .* pairs in the pairs: true datasets"):
        pair_sets([str(a), {"path": str(plain), "pairs": True}])


def test_pair_weight_shares_the_pair_draws_between_datasets(tmp_path: Path) -> None:
    """`pair_weight` gives each pair dataset its share of the draws whatever its pair count;
    set on some pair datasets only, or on one that forms no pairs, it is a one-line error."""
    a = make_adsorption_dataset(tmp_path / "a.extxyz")
    b = make_adsorption_dataset(tmp_path / "b.extxyz")
    kw = {"adsorption_weight": 1.0, "validation_fraction": 0.0, "adsorption_pairs": 4}
    few = {"path": str(b), "pair_weight": 3.0}

    def trainer(datasets: list) -> Trainer:
        return Trainer(tiny_config(tmp_path, [], datasets=datasets, **kw), log=lambda m: None)

    def draws(tr: Trainer) -> tuple[set[int], float]:
        """500 steps' frame datasets and the share of pairs drawn from dataset 1."""
        frames, pairs = (
            np.concatenate(x) for x in zip(*(tr.draw() for _ in range(500)), strict=True)
        )
        share = np.mean([tr.pairs[i][0].dataset == 1 for i in pairs])
        return {tr.train[i].dataset for i in frames}, float(share)

    _, share = draws(trainer([{"path": str(a), "pair_weight": 1.0}, few]))
    assert abs(share - 0.75) < 0.05  # uniform over pairs: 0.5
    # weight 0: a dataset listed again only for its pairs, its frames never drawn as frames
    frames, share = draws(trainer([{"path": str(a), "pair_weight": 1.0}, {**few, "weight": 0.0}]))
    assert frames == {0} and abs(share - 0.75) < 0.05
    assert trainer([str(a), str(b)]).pair_sampling is None
    with pytest.raises(CatscreenError, match="pair_weight must be set on every dataset"):
        trainer([str(a), few])
    with pytest.raises(CatscreenError, match="pair_weight must be set .* on no other"):
        trainer([str(a), {**few, "pairs": False}])
    plain = make_dataset(tmp_path / "plain.extxyz")
    with pytest.raises(CatscreenError, match="must be > 0, on datasets with adsorption pairs"):
        trainer([{"path": str(a), "pair_weight": 1.0}, {"path": str(plain), "pair_weight": 1.0}])


def test_a_fine_tune_keeps_the_checkpoint_name_and_default_context(tmp_path: Path) -> None:
    """Without its own name, default_fidelity and description, a fine-tune (or a rewrite with
    max_steps 0) keeps the checkpoint's: relax predicts in the default fidelity unless told."""
    data = [make_dataset(tmp_path / "a.extxyz"), make_dataset(tmp_path / "b.extxyz", "emt2")]
    meta = {"name": "my-model", "default_fidelity": "emt2", "description": "use emt2"}
    best = Trainer(
        tiny_config(tmp_path, data, max_steps=2, eval_every=2, **meta), log=lambda m: None
    ).run()
    parent = load_checkpoint(best)[1]
    assert parent["metadata"]["default_fidelity"] == "emt2"
    rewrite = Trainer(
        tiny_config(tmp_path / "re", data, max_steps=0, init_from=str(best)), log=lambda m: None
    ).run()
    got = load_checkpoint(rewrite)[1]["metadata"]
    assert (got["name"], got["default_fidelity"]) == ("my-model", "emt2")
    assert got["description"] == f"fine-tune of my-model {parent['version']}: use emt2"
    own = {"name": "other", "default_fidelity": "emt", "description": "mine"}
    cfg = tiny_config(tmp_path / "own", data, max_steps=0, init_from=str(best), **own)
    got = load_checkpoint(Trainer(cfg, log=lambda m: None).run())[1]["metadata"]
    assert {k: got[k] for k in own} == own
    # a fine-tune on emt alone keeps predicting in emt2 by default: said (it was silent)
    said: list[str] = []
    Trainer(tiny_config(tmp_path / "emt", data[:1], max_steps=0, init_from=str(best)), said.append)
    assert any("default fidelity 'emt2'" in m and "no training frame" in m for m in said), said
    said.clear()
    Trainer(tiny_config(tmp_path / "both", data, max_steps=0, init_from=str(best)), said.append)
    assert not any("no training frame is in it" in m for m in said)


def test_a_diverged_run_stops_with_one_line_and_leaves_no_nan_checkpoint(tmp_path: Path) -> None:
    """lr 50 went to NaN, exited 0 and saved the NaN weights as best.pt."""
    data = make_dataset(tmp_path / "d.extxyz")
    tr = Trainer(tiny_config(tmp_path, [data], max_steps=6, eval_every=3), log=lambda m: None)
    real = tr.loss

    def poisoned(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        loss, metrics = real(*args, **kwargs)
        return (loss * math.nan if tr.step >= 4 else loss), metrics

    tr.loss = poisoned
    with pytest.raises(CatscreenError, match="training diverged at step 5 .*lower lr"):
        tr.run()
    net, _ = load_checkpoint(tmp_path / "run" / "best.pt")  # the step-3 one, finite
    assert all(torch.isfinite(p).all() for p in net.parameters())
    assert not (tmp_path / "run" / "last.pt").exists()
    # a state that diverged already (an older catscreen saved one): lowering lr cannot help
    state = tmp_path / "run" / "state.pt"
    saved = torch.load(state, weights_only=False)
    next(iter(saved["net"].values())).fill_(math.nan)
    torch.save(saved, state)
    again = Trainer(tiny_config(tmp_path, [data], max_steps=6, eval_every=3), log=print)
    with pytest.raises(CatscreenError, match="holds non-finite weights"):
        again.run()


def test_ctrl_c_ignored_stays_ignored_and_the_handler_is_put_back_as_it_was() -> None:
    """A script's `train &` runs with Ctrl-C ignored: the handler made it stop; SIG_DFL came
    back as Python's KeyboardInterrupt handler."""
    from catscreen.training.trainer import _StopAtStep

    outer = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for signum in outer:
            for before in (signal.SIG_IGN, signal.SIG_DFL, signal.default_int_handler):
                signal.signal(signum, before)
                stop = _StopAtStep(print)
                during = signal.getsignal(signum)
                assert (during is signal.SIG_IGN) == (before is signal.SIG_IGN)
                stop.restore()
                assert signal.getsignal(signum) is before
    finally:
        for signum, handler in outer.items():
            signal.signal(signum, handler)


def test_init_from_takes_bundled_and_a_path_beside_the_config(tmp_path: Path) -> None:
    """`init_from: bundled` was 'checkpoint not found', and a relative path was the working
    directory's while the datasets were the config's."""
    from catscreen.model.checkpoint import bundled_path

    make_dataset(tmp_path / "d.extxyz", "chgnet-pbe")  # beside the configs
    shutil.copy(bundled_path(), tmp_path / "parent.pt")
    for parent in ("bundled", "parent.pt"):
        config = tmp_path / f"ft-{parent}.yaml"
        config.write_text(
            f"init_from: {parent}\nout: {tmp_path / parent}\ndatasets: [d.extxyz]\n"
            "max_steps: 0\nvalidation_fraction: 0.3\n"
        )
        tr = Trainer(TrainConfig.load(config), log=lambda m: None)
        assert tr.parent_version == load_checkpoint(bundled_path())[1]["version"]
    # the parent's weak hosts (Ba, Ce) are warned of for the fine-tune too: it lost them
    notes = load_checkpoint(bundled_path())[1]["metadata"]["host_notes"]
    assert notes and tr.metadata({})["host_notes"] == notes


def test_fine_tune_can_switch_on_zbl_but_not_reshape(tmp_path: Path) -> None:
    """model.zbl adds no parameters, so a checkpoint takes it on; a new width is refused."""
    data = make_dataset(tmp_path / "d.extxyz")
    best = Trainer(
        tiny_config(tmp_path, [data], max_steps=2, eval_every=2), log=lambda m: None
    ).run()
    model = {**tiny_config(tmp_path, [data]).model, "zbl": True}
    cfg = tiny_config(tmp_path / "zbl", [data], max_steps=0, init_from=str(best), model=model)
    tr = Trainer(cfg, log=lambda m: None)
    original, _ = load_checkpoint(best)
    assert tr.net.config.zbl and not original.config.zbl
    state = tr.net.state_dict()
    assert tr.net.elements == ("Cu", "Ni", "O", "Pt")
    assert state.pop("zbl.radius_mA").tolist() == [1320, 1240, 660, 1360]  # ASE's, in mA
    torch.testing.assert_close(state, original.float().state_dict())
    written = tr.run()
    assert written.name == "last.pt" and not written.with_name("best.pt").exists()
    net, _ = load_checkpoint(written)
    assert net.config.zbl
    squeezed = Atoms("OCu", positions=[[0, 0, 0], [0, 0, 0.5]], cell=[9, 9, 9])
    batch = net.collate([squeezed], ["off"], ["emt"])
    with_zbl = net.eval()(batch, forces=False)["energy"]
    without = original.eval()(original.collate([squeezed], ["off"], ["emt"]), forces=False)
    assert float((with_zbl - without["energy"]).detach()) > 10.0  # 0.26 covalent sums: ZBL only
    wider = {**model, "n_scalars": 16}
    cfg = tiny_config(tmp_path / "w", [data], init_from=str(best), model=wider)
    with pytest.raises(CatscreenError, match=r"model.n_scalars cannot change from 8"):
        Trainer(cfg, log=lambda m: None)


def test_fine_tune_can_switch_on_the_spin_energy_and_trains_it(tmp_path: Path) -> None:
    """model.spin_energy adds couplings that start at zero: the checkpoint's energies are kept,
    training moves the couplings of the spin-on elements only, and the checkpoint keeps them."""
    data = make_dataset(tmp_path / "d.extxyz")
    best = Trainer(
        tiny_config(tmp_path, [data], max_steps=2, eval_every=2), log=lambda m: None
    ).run()
    original, _ = load_checkpoint(best)
    model = {**tiny_config(tmp_path, [data]).model, "spin_energy": True}
    cfg = tiny_config(tmp_path / "se", [data], max_steps=6, init_from=str(best), model=model)
    tr = Trainer(cfg, log=lambda m: None)
    assert tr.net.config.spin_energy and float(tr.net.stoner.detach().abs().sum()) == 0.0
    ni = read_frames(data)[6]  # a spin-on Ni slab
    batch = tr.net.collate([ni], ["on"], ["emt"]).to(tr.device)
    start = tr.net.eval()(batch, forces=False)["energy"].cpu()
    before = original.eval()(original.collate([ni], ["on"], ["emt"]), forces=False)["energy"]
    assert float(start.detach()) == pytest.approx(float(before.detach()), abs=1e-5)
    net, _ = load_checkpoint(tr.run())
    assert net.config.spin_energy
    moved = net.stoner.detach().abs() > 0
    assert moved[0, net.elements.index("Ni")]  # the only spin-on metal of the data
    assert not moved[0, net.elements.index("Cu")] and not moved[0, net.elements.index("Pt")]


def test_fine_tune_can_switch_on_the_spin_cap_and_keeps_it(tmp_path: Path) -> None:
    """model.spin_cap (one text, as YAML may give it) caps the spin-on energies of a trained
    checkpoint without new parameters: spin-off energies are kept at the start, and after
    training each atom of a spin-on slab is still at or below its spin-off energy."""
    data = make_dataset(tmp_path / "d.extxyz")
    best = Trainer(
        tiny_config(tmp_path, [data], max_steps=2, eval_every=2), log=lambda m: None
    ).run()
    original, _ = load_checkpoint(best)
    model = {**tiny_config(tmp_path, [data]).model, "spin_cap": "emt"}
    cfg = tiny_config(tmp_path / "cap", [data], max_steps=6, init_from=str(best), model=model)
    tr = Trainer(cfg, log=lambda m: None)
    assert tr.net.config.spin_cap == ("emt",)
    ni = read_frames(data)[6]  # a spin-on Ni slab

    def atomic(net, spin):
        out = net.eval()(net.collate([ni], [spin], ["emt"]).to(tr.device), forces=False)
        return out["atomic_energies"].detach().cpu().double()

    torch.testing.assert_close(atomic(tr.net, "off"), atomic(original, "off"))
    assert not torch.equal(atomic(tr.net, "on"), atomic(original, "on"))  # the cap is active
    net, _ = load_checkpoint(tr.run())
    assert net.config.spin_cap == ("emt",)
    assert torch.all(atomic(net, "on") <= atomic(net, "off") + 1e-6)
    assert not torch.equal(atomic(net, "off"), atomic(original, "off"))  # it trained


def test_training_device_follows_the_config_then_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No `device` in the config: CATSCREEN_DEVICE decides, as for inference."""
    data = make_dataset(tmp_path / "d.extxyz")
    monkeypatch.setenv("CATSCREEN_DEVICE", "cpu")
    assert Trainer(tiny_config(tmp_path, [data]), log=lambda m: None).device.type == "cpu"
    if not torch.cuda.is_available():
        monkeypatch.setenv("CATSCREEN_DEVICE", "cuda")
        with pytest.raises(CatscreenError, match="torch sees no CUDA GPU"):
            Trainer(tiny_config(tmp_path, [data]), log=lambda m: None)
        cfg = tiny_config(tmp_path, [data], device="cpu")  # the config wins
        assert Trainer(cfg, log=lambda m: None).device.type == "cpu"


def test_a_file_listed_twice_is_read_once_and_relabelling_stays_with_its_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Configs list a file again to weight its clean slabs; the second listing reuses the first
    read, and a relabelled listing (`as_fidelity`) leaves the shared frames as they were."""
    import gzip

    import catscreen.training.trainer as trainer_module

    plain = make_dataset(tmp_path / "d.extxyz")
    data = tmp_path / "d.extxyz.gz"
    data.write_bytes(gzip.compress(plain.read_bytes()))
    reads: list[str] = []
    real = trainer_module.load_frames

    def counting(path, defaults):  # noqa: ANN001, ANN202
        reads.append(str(path))
        return real(path, defaults)

    monkeypatch.setattr(trainer_module, "load_frames", counting)
    spec = {"path": str(data)}
    config = tiny_config(
        tmp_path,
        [],
        datasets=[spec, {**spec, "weight": 0.5}, {**spec, "as_fidelity": "dft"}],
        validation_fraction=0.0,
        fidelities=["emt", "dft"],
        max_steps=0,
    )
    frames = Trainer(config, log=lambda m: None).train
    assert reads == [str(data)]
    expected = read_frames(plain)
    by_set = [[f for f in frames if f.dataset == k] for k in range(3)]
    assert [len(s) for s in by_set] == [len(expected)] * 3
    assert {f.fidelity for f in by_set[0] + by_set[1]} == {"emt"}
    assert {f.atoms.info["fidelity"] for f in by_set[0]} == {"emt"}
    assert {f.fidelity for f in by_set[2]} == {"dft"}
    for f, a in zip(by_set[2], expected, strict=True):  # labels travel with the relabelled copy
        assert f.energy == pytest.approx(a.get_potential_energy())
        np.testing.assert_allclose(f.forces, a.get_forces())


@pytest.mark.timeout(300)
def test_collate_workers_train_the_same_and_resume_the_same(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Batches collated ahead in forked workers are the batches the serial loop draws: the same
    weights (and random stream) after a run, and after a run whose worker was killed (one-line
    error, batches still queued at its last checkpoint) and that was then resumed."""
    data = make_adsorption_dataset(tmp_path / "ads.extxyz")
    # one torch thread: with several, a float sum may take another path between two runs (it
    # failed 1 in 2 at OMP_NUM_THREADS=2 with the serial run alone differing in the last bit)
    kw = {"adsorption_weight": 1.0, "max_steps": 30, "eval_every": 2, "stress_weight": 0.0}
    kw["threads"] = 1
    threads = torch.get_num_threads()
    request.addfinalizer(lambda: torch.set_num_threads(threads))

    def trainer(out: str, **extra) -> Trainer:
        cfg = tiny_config(tmp_path, [data], out=str(tmp_path / out), **kw, **extra)
        return Trainer(cfg, log=lambda m: None)

    def trained(out: str, **extra) -> Trainer:
        tr = trainer(out, **extra)
        tr.run()
        return tr

    serial = trained("serial")
    pooled = trained("pooled", workers=2)
    assert pooled.rng.bit_generator.state == serial.rng.bit_generator.state

    killed = trainer("resumed", workers=2)

    def kill_a_worker(step: int, metrics: dict) -> None:
        if step == 2:  # just after the checkpoint of step 2, with 4 batches drawn ahead
            process = next(iter(killed._prefetch.pool._processes.values()))
            os.kill(process.pid, signal.SIGKILL)
            process.join()

    with pytest.raises(CatscreenError, match="worker died.*resumes from the last checkpoint"):
        killed.run(progress=kill_a_worker)
    assert 2 <= killed.step < 30
    resumed = trained("resumed", workers=2)
    for key, value in serial.net.state_dict().items():
        assert torch.equal(value, pooled.net.state_dict()[key]), key
        assert torch.equal(value, resumed.net.state_dict()[key]), key


@pytest.mark.timeout(300)
def test_collate_workers_die_with_a_trainer_killed_outright(tmp_path: Path) -> None:
    """SIGKILL skips every `finally`: the workers must not stay behind, waiting forever."""
    data = make_dataset(tmp_path / "d.extxyz")
    script = tmp_path / "train.py"
    script.write_text(
        "import sys, time\n"
        "from catscreen.training.trainer import TrainConfig, Trainer\n"
        f"cfg = TrainConfig.from_dict({{'datasets': [{str(data)!r}], 'out': {str(tmp_path / 'run')!r},"
        " 'model': {'n_scalars': 8, 'n_vectors': 4}, 'max_steps': 10**6, 'workers': 2})\n"
        "tr = Trainer(cfg, log=lambda m: None)\n"
        "def hold(step, metrics):\n"
        "    if step == 2:\n"
        "        print(*tr._prefetch.pool._processes, flush=True)\n"
        "        time.sleep(600)\n"
        "tr.run(progress=hold)\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env
    )
    workers = [int(pid) for pid in proc.stdout.readline().split()]
    assert len(workers) == 2
    proc.kill()
    proc.wait()

    def running(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
        except OSError:
            return False

    deadline = time.monotonic() + 30
    alive = workers
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in workers if running(pid)]
    assert not alive, f"workers {alive} outlived their trainer"


def test_frames_without_system_ids_and_datasets_left_out_of_training(tmp_path: Path) -> None:
    """Without sids every frame was its own system, so one trajectory's frames landed on both
    sides of the split; a dataset whose systems all validate lost its batch share unsaid."""
    data = make_dataset(tmp_path / "d.extxyz")
    frames = read_frames(data)
    for a in frames:
        del a.info["sid"]
    write(tmp_path / "nosid.extxyz", frames, format="extxyz")
    with pytest.raises(CatscreenError, match="frame 0 has no sid"):
        Trainer(tiny_config(tmp_path, [tmp_path / "nosid.extxyz"]), log=lambda m: None)
    for ok in (
        {"validation_fraction": 0.0},
        {"datasets": [{"path": str(tmp_path / "nosid.extxyz"), "holdout": False}]},
    ):
        Trainer(tiny_config(tmp_path, [tmp_path / "nosid.extxyz"], **ok), log=lambda m: None)
    one = tmp_path / "one.extxyz"
    write(one, [a for a in read_frames(data) if a.info["sid"] == "s0"], format="extxyz")
    seed = next(s for s in range(100) if is_validation("s0", 0.3, s))
    messages: list[str] = []
    Trainer(tiny_config(tmp_path, [data, one], split_seed=seed), log=messages.append)
    assert any("dataset 1" in m and "has no training frames" in m for m in messages), messages


def test_pair_options_and_cli_overrides_are_range_checked(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from catscreen.cli.main import app

    data = make_dataset(tmp_path / "d.extxyz")
    ignored = {"datasets": [{"path": str(data), "pairs": True}]}
    for kw, message in (
        (ignored, "need adsorption_weight > 0"),
        ({"adsorption_weight": 1.0, "adsorption_pairs": 0}, "adsorption_pairs >= 1"),
        ({"adsorption_weight": -1.0}, "loss weights and weight_decay must be finite and >= 0"),
    ):
        with pytest.raises(CatscreenError, match=message):
            tiny_config(tmp_path, [data], **kw).check_ranges()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"datasets: [{data}]\nout: {tmp_path / 'run'}\n")
    result = CliRunner().invoke(app, ["train", str(cfg), "--max-steps", "-3"])
    assert result.exit_code == 2 and "max_steps and warmup_steps must be >= 0" in result.output
    assert not (tmp_path / "run").exists()


def test_a_dataset_in_another_energy_unit_is_named_and_converted(tmp_path: Path) -> None:
    """The same frames written in kcal/mol beside eV ones: read as eV they are flagged (forces
    23x off), the eV set beside them in the same context is not; with energy_unit: kcal/mol
    they read as the eV frames, unflagged. In meV with forces left out, the energies alone
    give it away."""
    from ase import units

    kcal = units.kcal / units.mol
    ev = make_dataset(tmp_path / "ev.extxyz")
    frames = read_frames(ev)
    for a in frames:
        res = a.calc.results
        for key in ("energy", "forces", "stress"):
            if key in res:
                res[key] = res[key] / kcal
        a.info["source"] = "kcal"
    write(tmp_path / "kcal.extxyz", frames, format="extxyz")
    logs: list[str] = []
    plain = tiny_config(tmp_path, [ev, tmp_path / "kcal.extxyz"])
    Trainer(plain, log=logs.append)
    (warning,) = [m for m in logs if "out of scale" in m]
    assert warning.startswith("warning: dataset 1 (") and "set its energy_unit" in warning
    datasets = [str(ev), {"path": str(tmp_path / "kcal.extxyz"), "energy_unit": "kcal/mol"}]
    logs.clear()
    tr = Trainer(tiny_config(tmp_path, [], datasets=datasets), log=logs.append)
    assert not [m for m in logs if "out of scale" in m]
    kcal_frames = [f for f in tr.train + tr.val if f.dataset == 1]
    ev_frames = {(f.sid, f.energy): f for f in tr.train + tr.val if f.dataset == 0}
    assert len(kcal_frames) == len(ev_frames)
    for f in kcal_frames:
        twin = min(ev_frames.values(), key=lambda g: abs(g.energy - f.energy))
        assert f.energy == pytest.approx(twin.energy, abs=1e-6)
        np.testing.assert_allclose(f.forces, twin.forces, atol=1e-6)
    for a in frames:
        res = a.calc.results
        res["energy"] = res["energy"] * kcal * 1000  # meV
        res["forces"] = 0 * res["forces"]
        res.pop("stress", None)
    write(tmp_path / "mev.extxyz", frames, format="extxyz")
    logs.clear()
    Trainer(tiny_config(tmp_path, [ev, tmp_path / "mev.extxyz"]), log=logs.append)
    (warning,) = [m for m in logs if "out of scale" in m]
    assert warning.startswith("warning: dataset 1 (") and "forces 0 eV/A" in warning
    with pytest.raises(CatscreenError, match="energy_unit 'Hartree'; expected one of eV, meV"):
        tiny_config(tmp_path, [], datasets=[{"path": str(ev), "energy_unit": "Hartree"}])


def test_a_dataset_names_its_aqcat_flags_and_low_fidelity(tmp_path: Path) -> None:
    """An AQCat25-style database whose flags have other names, its low-fi frames named in the
    config: both fidelities train, spin read from the flag."""
    import ase.db

    path = tmp_path / "aq.db"
    with ase.db.connect(path) as db:
        for k in range(6):
            slab = fcc111("Cu", (2, 2, 2), vacuum=5.0)
            slab.rattle(0.05, seed=k)
            db.write(emt_labelled(slab), sid=k // 2, fid=k % 2, no_spin=k % 3 == 0, cheap=k % 2)
    spec = {
        "path": str(path),
        "fidelity": "hi",
        "low_fidelity": "lo",
        "spin_off_key": "no_spin",
        "low_fi_key": "cheap",
    }
    tr = Trainer(tiny_config(tmp_path, [], datasets=[spec], validation_fraction=0.0), log=print)
    assert set(tr.net.fidelities) == {"hi", "lo"}
    contexts = sorted((f.sid, f.spin, f.fidelity) for f in tr.train)
    assert contexts[:2] == [("0", "off", "hi"), ("0", "on", "lo")]


def test_a_context_no_frame_trained_is_named_by_model_info_and_relax(tmp_path: Path) -> None:
    """A network trained on spin-off frames alone has a spin-on context too, which
    `--spin auto` picks for Fe, Co, Ni: relax ran it without a word."""
    from test_cli_relax import write_configs
    from typer.testing import CliRunner

    from catscreen.cli.main import app
    from catscreen.model import load_model

    data = make_dataset(tmp_path / "d.extxyz")
    cfg = tiny_config(tmp_path, [data], max_steps=2, eval_every=2)
    cfg = TrainConfig.from_dict(
        {**{k: v for k, v in cfg.__dict__.items() if k != "datasets"},
         "datasets": [{"path": str(data), "as_spin": "off"}]}
    )  # fmt: skip
    best = Trainer(cfg, log=lambda m: None).run()
    assert load_model(str(best)).info.untrained == ("emt/spin-on",)
    shown = CliRunner().invoke(app, ["model", "info", str(best), "--json"]).output
    assert "emt/spin-on (no training frames)" in json.loads(shown)["contexts"]
    configs = tmp_path / "c.extxyz"
    write_configs(configs, 1)

    def relax(spin: str):  # noqa: ANN202
        out = tmp_path / f"{spin}.parquet"
        cmd = ["relax", str(configs), "--out", str(out), "--model", str(best), "--spin", spin]
        return CliRunner().invoke(app, [*cmd, "--steps", "2", "--quiet"])

    on = relax("on")
    assert on.exit_code == 0, on.output
    assert "was trained on no frame of emt/spin-on" in " ".join(on.stderr.split())
    off = relax("off")
    assert off.exit_code == 0 and "trained on no frame" not in off.stderr
    # evaluate's table has rows for the Ni frames' spin-on context: they measure no training
    plot = ["--plot", str(tmp_path / "p.png")]
    shown = CliRunner().invoke(app, ["evaluate", str(best), str(data), *plot])
    assert shown.exit_code == 0, shown.output
    said = " ".join(shown.stderr.split())
    assert "was trained on no frame of emt/spin-on (6 structures): its numbers there" in said
    spin_off = tmp_path / "off.extxyz"
    write(spin_off, [a for a in read(data, ":") if a.info["spin"] == "off"])
    shown = CliRunner().invoke(app, ["evaluate", str(best), str(spin_off), *plot])
    assert shown.exit_code == 0 and "trained on no frame" not in shown.stderr
    # a fine-tune counts its own data only: what its parent trained is not known here
    tuned = Trainer(
        tiny_config(tmp_path / "ft", [data], max_steps=1, eval_every=1, init_from=str(best)),
        log=lambda m: None,
    ).run()
    assert load_model(str(tuned)).info.untrained == ()
    # the parent's file replaced by other weights: the refused resume names init_from
    shutil.copy(tuned, best)
    again = tiny_config(tmp_path / "ft", [data], max_steps=2, eval_every=1, init_from=str(best))
    with pytest.raises(CatscreenError, match=r"settings \(init_from: init_from's file holds other"):
        Trainer(again, log=lambda m: None).run()


def test_the_host_elements_a_network_trained_on_are_recorded_and_warned_beyond(
    tmp_path: Path,
) -> None:
    """O only as an adsorbate (tag 2) is no host: relax on a Cu-O 'oxide' slab is warned of,
    a user's untagged Cu+O adslab is not; a fine-tune adds its own hosts to its parent's, a
    weight mix knows both parents', and frames that cannot tell claim nothing."""
    from ase.build import fcc100
    from ase.constraints import FixAtoms
    from typer.testing import CliRunner

    from catscreen.cli.main import app
    from catscreen.model import load_model
    from catscreen.model.checkpoint import interpolate_checkpoints

    frames = read(make_dataset(tmp_path / "d.extxyz", n_systems=12), index=":")
    for a in frames:
        a.set_tags([2 if s == "O" else 1 for s in a.get_chemical_symbols()])
        a.info["kind"] = "adslab" if "O" in a.symbols else "bulk"
    write(tmp_path / "tagged.extxyz", frames, format="extxyz")
    cfg = tiny_config(tmp_path, [tmp_path / "tagged.extxyz"], max_steps=2, eval_every=2)
    best = Trainer(cfg, log=lambda m: None).run()
    assert load_model(str(best)).info.hosts == ("Cu", "Ni", "Pt")
    shown = json.loads(CliRunner().invoke(app, ["model", "info", str(best), "--json"]).output)
    assert shown["host_elements"] == ["Cu", "Ni", "Pt"]

    slab = fcc100("Cu", (2, 2, 2), vacuum=6.0)
    slab.symbols[[4, 6]] = "O"  # O in the surface: an oxide-like host
    slab.append("O")
    slab.positions[-1] = slab.positions[5] + [0, 0, 1.8]
    slab.set_tags([0, 0, 0, 0, 1, 1, 1, 1, 2])
    slab.set_constraint(FixAtoms(indices=[0, 1, 2, 3]))
    slab.info.update(config_id="c0", system_id="s", kind="adslab", adsorbate="O")
    metal = slab.copy()
    metal.symbols[[4, 6]] = "Cu"
    metal.set_tags([0] * len(metal))  # a user's structure: no tags, the adsorbate named
    metal.info.update(config_id="c1", system_id="t")
    write(tmp_path / "c.extxyz", [slab, metal], format="extxyz")
    out = tmp_path / "r.parquet"
    cmd = ["relax", str(tmp_path / "c.extxyz"), "--out", str(out), "--model", str(best)]
    res = CliRunner().invoke(app, [*cmd, "--spin", "off", "--steps", "2", "--quiet"])
    assert res.exit_code == 0, res.output
    said = " ".join(res.stderr.split())
    assert (
        "was trained on no surface or bulk holding O (only as adsorbates or gas molecules)" in said
    )
    assert ": Cu3O (1 structure) are outside its training" in said  # c1 (no tags) is not
    assert list(pd.read_parquet(out).set_index("config_id").domain[["c0", "c1"]]) == [
        "outside:O",
        "",
    ]

    # a fine-tune on slabs with O in them: the union of its parent's hosts and its own
    for a in frames:
        a.set_tags([1] * len(a))
        a.info["kind"] = "slab"
    write(tmp_path / "slabs.extxyz", frames, format="extxyz")
    tuned = Trainer(
        tiny_config(tmp_path / "ft", [tmp_path / "slabs.extxyz"], max_steps=1, eval_every=1,
                    init_from=str(best)),
        log=lambda m: None,
    ).run()  # fmt: skip
    assert load_model(str(tuned)).info.hosts == ("Cu", "Ni", "O", "Pt")
    mixed = tmp_path / "mix.pt"
    interpolate_checkpoints(str(best), str(tuned), 0.5, mixed, "")
    assert load_model(str(mixed)).info.hosts == ("Cu", "Ni", "O", "Pt")
    # untagged adslabs without an adsorbate name cannot tell O the adsorbate from O the host
    for a in frames:
        a.set_tags([0] * len(a))
        del a.info["kind"]
    write(tmp_path / "untagged.extxyz", frames, format="extxyz")
    blind = Trainer(
        tiny_config(tmp_path / "bl", [tmp_path / "untagged.extxyz"], max_steps=1, eval_every=1),
        log=lambda m: None,
    ).run()
    assert load_model(str(blind)).info.hosts is None
