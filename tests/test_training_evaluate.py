"""Evaluation: the MAE table per group and a non-empty parity plot, from the CLI too."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ase import Atoms
from ase.build import fcc111
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import covalent_radii
from ase.geometry import find_mic
from ase.io import read, write
from typer.testing import CliRunner

from catscreen.analysis import anomalies
from catscreen.analysis.anomalies import anomaly_rules
from catscreen.build.enumerate import EnumerateSettings, enumerate_configurations
from catscreen.build.gas import scheme_molecules
from catscreen.cli.main import app
from catscreen.errors import CatscreenError
from catscreen.io import atoms_from_text, atoms_to_text
from catscreen.model import load_model
from catscreen.model.checkpoint import load_checkpoint_model
from catscreen.training.evaluate import (
    adsorption_spin_parts,
    evaluate_frames,
    fit_moment_couplings,
    held_out_rule,
    interval,
    load_eval_frames,
    moment_spin_energy,
    parity_plot,
    spin_pair_table,
    summary,
    system_bootstrap,
)
from catscreen.training.generate import read_avoid
from catscreen.training.trainer import Trainer, is_validation
from tests.test_training_trainer import emt_labelled, make_dataset, tiny_config


def test_evaluate_table_and_plot(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "d.extxyz", n_systems=9)
    best = Trainer(
        tiny_config(tmp_path, [data], max_steps=2, eval_every=2), log=lambda m: None
    ).run()
    model = load_checkpoint_model(best)
    frames = load_eval_frames([data], model, held_out=True)
    assert {a.info["sid"] for a in frames} == set(
        model.metadata["metadata"]["training_data"]["validation_systems"]
    )
    ev = evaluate_frames(model, frames)
    # a NaN label left its frame out of the mean, under the full frame count; inf gave inf
    for key, k in (("energy", 0), ("forces", -1)):
        bad = [a.copy() for a in frames]
        for a, b in zip(frames, bad, strict=True):
            b.calc = SinglePointCalculator(b, **a.calc.results)
        values = np.array(bad[k].calc.results[key], dtype=float)
        values.flat[0] = np.nan if key == "energy" else np.inf
        bad[k].calc.results[key] = values.item() if key == "energy" else values
        bad[k].calc.results.pop("free_energy", None)
        with pytest.raises(CatscreenError, match=r"has a non-finite energy or force label"):
            evaluate_frames(model, bad)
    table = summary(ev)
    assert {"all", "source", "fidelity", "spin", "element", "fidelity/spin"} <= set(table.group)
    assert table.energy_mae_meV_atom.notna().all() and (table.force_mae_eV_A >= 0).all()
    png = parity_plot(ev, tmp_path / "p.png")
    assert png.stat().st_size > 1000

    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            str(best),
            str(data),
            "--table",
            str(tmp_path / "t.csv"),
            "--plot",
            str(tmp_path / "q.png"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "q.png").stat().st_size > 1000
    written = pd.read_csv(tmp_path / "t.csv")
    assert "element" in set(written.group)
    assert set(written.model_version) == {model.info.version}
    assert sorted(p.name for p in tmp_path.glob("*.tmp")) == []  # written through atomic_path
    (tmp_path / "afile").write_text("")
    for option, path in (("--table", tmp_path), ("--plot", tmp_path / "afile" / "p.png")):
        bad = CliRunner().invoke(app, ["evaluate", str(best), str(data), option, str(path)])
        assert bad.exit_code == 2 and f"{option} {path}: not a file path" in bad.output


def test_evaluate_missing_file_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["evaluate", "emt", str(tmp_path / "nope.extxyz")])
    assert result.exit_code != 0
    assert "not found" in result.output


def test_held_out_rule_judges_data_made_after_training(tmp_path: Path) -> None:
    """Systems the checkpoint never saw count as held out when its split puts them on the
    validation side, so a later generator pass can be benchmarked against an older model."""
    data = make_dataset(tmp_path / "d.extxyz", n_systems=9)
    best = Trainer(
        tiny_config(tmp_path, [data], max_steps=2, eval_every=2), log=lambda m: None
    ).run()
    model = load_checkpoint_model(best)
    td = model.metadata["metadata"]["training_data"]
    fraction, seed = td["validation_fraction"], td["split_seed"]
    new = [f"later-{k}" for k in range(200)]
    val_side = next(s for s in new if is_validation(s, fraction, seed))
    train_side = next(s for s in new if not is_validation(s, fraction, seed))
    frames = read(data, index=":")
    for a, sid in zip(frames[:3], [val_side, train_side, td["training_systems"][0]], strict=True):
        a.info["sid"] = sid
    later = tmp_path / "later.extxyz"
    write(later, frames[:3], format="extxyz")

    rule = held_out_rule(model)
    assert rule(val_side) and not rule(train_side)
    assert all(rule(s) for s in td["validation_systems"])
    assert not any(rule(s) for s in td["training_systems"])
    assert [a.info["sid"] for a in load_eval_frames([later], model, held_out=True)] == [val_side]


def _flagged_db(path: Path, spin_off_key: str, low_fi_key: str) -> Path:
    """Two rattled Cu(111) frames of one system, spin-off, the second flagged low-fidelity."""
    import ase.db

    from tests.test_training_trainer import emt_labelled

    with ase.db.connect(path) as db:
        for fid, low in enumerate((False, True)):
            slab = fcc111("Cu", (2, 2, 2), vacuum=5.0)
            slab.rattle(0.05, seed=fid)
            db.write(emt_labelled(slab), sid=1, fid=fid, **{spin_off_key: True, low_fi_key: low})
    return path


def test_evaluate_an_aqcat_style_database_names_its_context(tmp_path: Path) -> None:
    """A database with is_spin_off / is_low_fi flags and no fidelity key: --fidelity and
    --low-fidelity name its contexts; without them it is one clear line."""
    path = _flagged_db(tmp_path / "aq.db", "is_spin_off", "is_low_fi")
    plot = str(tmp_path / "p.png")
    result = CliRunner().invoke(app, ["evaluate", "emt", str(path), "--plot", plot])
    assert result.exit_code == 2 and "give a default fidelity" in result.output
    args = ["evaluate", "emt", str(path), "--plot", plot, "--fidelity", "emt"]
    result = CliRunner().invoke(app, [*args, "--low-fidelity", "emt"])
    assert result.exit_code == 0, result.output
    assert "2 frames" in result.output
    result = CliRunner().invoke(app, args)  # low-fi frames default to "low-fi": EMT lacks it
    assert (
        result.exit_code == 2 and "fidelities ['low-fi'] the model does not know" in result.output
    )
    # keys renamed, as a training config's spin_off_key / low_fi_key read them (train could,
    # evaluate could not, and --spin off then called the low-fi frames high-fidelity)
    renamed = _flagged_db(tmp_path / "renamed.db", "spin_off", "low")
    keys = ["--spin-off-key", "spin_off", "--low-fi-key", "low", "--low-fidelity", "lo"]
    result = CliRunner().invoke(app, ["evaluate", "emt", str(renamed), "--plot", plot,
                                      "--fidelity", "emt", *keys])  # fmt: skip
    assert result.exit_code == 2 and "fidelities ['lo'] the model does not know" in result.output
    result = CliRunner().invoke(app, ["evaluate", "emt", str(renamed), "--plot", plot,
                                      "--fidelity", "emt", "--spin-off-key", "spin_off"])  # fmt: skip
    assert result.exit_code == 0 and "2 frames" in result.output, result.output


class SpinShifted:
    """EMT, 0.1 eV higher and 0.2 muB per atom in a spin-on context; records the contexts it is
    asked for."""

    def __init__(self) -> None:
        self.inner = load_model("emt")
        self.info = self.inner.info
        self.contexts: list[tuple[str, str]] = []

    def predict(self, structures, spins, fidelities, stress=False):  # noqa: ANN001, ANN201
        self.contexts += list(zip(spins, fidelities, strict=True))
        preds = self.inner.predict(structures, spins, fidelities)
        for p, spin in zip(preds, spins, strict=True):
            p.energy += 0.1 if spin == "on" else 0.0
            p.magmoms = np.full(len(p.forces), 0.2 if spin == "on" else 0.0)
        return preds


def test_spin_pair_table_pairs_frames_by_system() -> None:
    """One row per system with both spins, in the order of the frames; each frame predicted
    in the context asked for (the unconditioned one too); error = model - DFT."""
    frames = []
    for sid, metal, shift, spins in [
        ("pt", "Pt", 0.0, ("on", "off")),
        ("cu", "Cu", 0.3, ("off", "on")),
        ("alone", "Cu", 0.0, ("off",)),  # no partner: skipped
    ]:
        for spin in spins:
            a = emt_labelled(fcc111(metal, (2, 2, 2), vacuum=5.0))
            a.calc.results["energy"] += shift if spin == "on" else 0.0
            if sid == "cu" and spin == "on":
                a.calc.results["magmoms"] = np.linspace(0.3, -0.6, len(a))
            a.info.update(sid=sid, spin=spin)
            frames.append(a)
    model = SpinShifted()
    table = spin_pair_table(model, frames, fidelity="emt")
    assert list(table.columns) == ["sid", "dft", "model", "moment_dft", "moment_model", "error"]
    assert list(table.sid) == ["pt", "cu"]
    assert table.dft.tolist() == pytest.approx([0.0, 0.3])
    assert table.model.tolist() == pytest.approx([0.1, 0.1])
    assert table.error.tolist() == pytest.approx([0.1, -0.2])
    assert np.isnan(table.moment_dft[0]) and table.moment_dft[1] == pytest.approx(0.6)
    assert table.moment_model.tolist() == pytest.approx([0.2, 0.2])
    assert model.contexts == [("off", "emt"), ("on", "emt")] * 2
    model.contexts.clear()
    blind = spin_pair_table(model, frames, spins=("off", "off"), fidelity="emt")
    assert blind.model.tolist() == pytest.approx([0.0, 0.0])
    assert blind.error.tolist() == pytest.approx([0.0, -0.3])
    assert set(model.contexts) == {("off", "emt")}
    assert spin_pair_table(model, frames[-1:]).empty


def test_adsorption_spin_parts_subtract_the_clean_pair_of_the_same_cell() -> None:
    """Only `PREFIX-ADS` pairs with a `PREFIX-clean` pair: another cell's clean slab, a sid with
    a suffix after the adsorbate, or no clean pair at all give no row."""
    table = pd.DataFrame(
        {
            "sid": [
                "g-Ni111-2x2x3-clean", "g-Ni111-2x2x3-O", "g-Ni111-2x2x3-H",
                "g-Ni111-1x1x3-O", "g-Ni111-2x2x3-O-ontop", "g-Fe110-2x2x3-O",
            ],
            "dft": [-0.80, -0.70, -0.85, -0.2, -0.5, -1.0],
            "model": [-0.75, -0.70, -0.70, -0.1, -0.4, -0.9],
        }
    )  # fmt: skip
    parts = adsorption_spin_parts(table.assign(error=table.model - table.dft))
    assert parts.sid.tolist() == ["g-Ni111-2x2x3-O", "g-Ni111-2x2x3-H"]
    assert set(parts.clean) == {"g-Ni111-2x2x3-clean"}
    assert parts.dft.tolist() == pytest.approx([0.10, -0.05])
    assert parts.model.tolist() == pytest.approx([0.05, 0.05])
    assert parts.error.tolist() == pytest.approx([-0.05, 0.10])
    assert adsorption_spin_parts(table.iloc[1:]).empty
    with pytest.raises(CatscreenError, match="one row per sid"):
        adsorption_spin_parts(pd.concat([table, table.iloc[:1]]))


def stoner_pair(sid: str, symbols: str, moments: list[float], couplings: dict[str, float]):
    """A spin pair whose spin energy is exactly -sum I m^2 / 4 of its moments."""
    positions = 2.5 * np.arange(3 * len(Atoms(symbols))).reshape(-1, 3)
    off = emt_labelled(Atoms(symbols, positions=positions))
    on = off.copy()
    spin_energy = -0.25 * sum(
        couplings.get(el, 0.0) * m**2
        for el, m in zip(off.get_chemical_symbols(), moments, strict=True)
    )
    on.calc = SinglePointCalculator(
        on, energy=off.calc.results["energy"] + spin_energy, forces=off.get_forces(),
        magmoms=np.array(moments),
    )  # fmt: skip
    off.info.update(sid=sid, spin="off")
    on.info.update(sid=sid, spin="on")
    return [off, on]


def test_moment_couplings_recover_a_stoner_energy_and_score_models() -> None:
    """The fit recovers the I that made the spin energies, ignores elements no pair has, and
    the table sets the Stoner energy of the DFT moments against that of the model's."""
    truth = {"Ni": 0.37, "Pt": 0.34}  # EMT elements, so that SpinShifted can predict them
    frames = (
        stoner_pair("ni", "Ni2", [2.2, 2.9], truth)
        + stoner_pair("nipt", "NiPtO", [2.6, 0.6, 0.1], truth)
        + stoner_pair("pt", "Pt3", [0.6, 0.7, 0.5], truth)
    )
    fitted = fit_moment_couplings(frames, ["Co", "Ni", "Pt"])
    assert set(fitted) == {"Ni", "Pt"}
    assert fitted["Ni"] == pytest.approx(0.37) and fitted["Pt"] == pytest.approx(0.34)
    assert moment_spin_energy(["Ni", "O"], np.array([2.0, 1.0]), fitted) == pytest.approx(-0.37)
    assert np.isnan(moment_spin_energy(["Ni"], None, fitted))
    table = spin_pair_table(SpinShifted(), frames, fidelity="emt", couplings=fitted)
    assert table.stoner_dft.tolist() == pytest.approx(table.dft.tolist())
    model_moments = [-0.25 * 0.37 * 0.04 * 2, -0.25 * (0.37 + 0.34) * 0.04, -0.25 * 0.34 * 0.04 * 3]
    assert table.stoner_model.tolist() == pytest.approx(model_moments)  # 0.2 muB per atom
    with pytest.raises(CatscreenError, match="no spin pair with moments on Co"):
        fit_moment_couplings(frames, ["Co"])


def test_system_bootstrap_resamples_whole_systems() -> None:
    """One system with ten placements of error 1, nine with one placement of error 0: a draw
    holding that system k times pools 10k ones among 10k + (10 - k) values, nothing else."""
    sample = {"big": [1.0] * 10, **{f"s{i}": [0.0] for i in range(9)}}
    draws = system_bootstrap([sample], resamples=500, seed=3)[:, 0]
    allowed = {round(10 * k / (10 * k + 10 - k), 12) for k in range(11)}
    assert {round(d, 12) for d in draws} <= allowed
    assert len(set(draws)) > 3  # the draws vary
    np.testing.assert_array_equal(draws, system_bootstrap([sample], resamples=500, seed=3)[:, 0])


def test_system_bootstrap_interval_matches_the_standard_error() -> None:
    rng = np.random.default_rng(0)
    sample = {f"s{i}": [float(v)] for i, v in enumerate(rng.normal(size=400))}
    lo, hi = interval(system_bootstrap([sample], resamples=2000)[:, 0])
    expected = 2 * 1.96 * np.std(list(sample.values())) / np.sqrt(400)
    assert lo < np.mean(list(sample.values())) < hi
    assert abs((hi - lo) / expected - 1) < 0.06  # a 90% interval would be 0.82 of it
    top = system_bootstrap([sample], statistic=np.max, resamples=200)[:, 0]
    assert top.max() == max(v[0] for v in sample.values())  # the statistic is applied


def test_system_bootstrap_is_paired_and_refuses_different_systems() -> None:
    a = {"x": [0.1, 0.3], "y": [0.2], "z": [0.5]}
    shifted = {k: [v + 0.05 for v in vals] for k, vals in a.items()}
    draws = system_bootstrap([a, shifted], resamples=300)
    np.testing.assert_allclose(draws[:, 1] - draws[:, 0], 0.05)  # same systems in every draw
    with pytest.raises(CatscreenError, match="different systems: w"):
        system_bootstrap([a, {"x": [0.0], "y": [0.0], "w": [0.0]}])
    with pytest.raises(CatscreenError, match="at least one system"):
        system_bootstrap([{}])


def accuracy_benchmark():  # noqa: ANN201
    """benchmarks/accuracy.py as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        "accuracy_benchmark", Path(__file__).parents[1] / "benchmarks" / "accuracy.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def adsorption_run(shift: float = 0.0) -> dict:
    """A saved run's adsorption section: two systems, three placements."""
    rows = [
        {"placement": "Pt-111-2x2x3-O:fcc", "model": -1.00 + shift, "teacher": -1.10},
        {"placement": "Pt-111-2x2x3-O:ontop", "model": 0.20 + shift, "teacher": 0.00},
        {"placement": "Cu-100-2x2x3-H:hollow", "model": -0.30 + shift, "teacher": -0.45},
    ]
    per_system = [
        # AdsorbML within 0.1 (0.08 off); ML+SP 0.05 above: both succeed
        {"sid": "Pt-111-2x2x3-O", "model_min": -1.02, "teacher_min": -1.10, "teacher_sp": -1.05},
        # 0.15 off: AdsorbML fails; the teacher's single point lies below its own lowest: ML+SP
        # succeeds
        {"sid": "Cu-100-2x2x3-H", "model_min": -0.30, "teacher_min": -0.45, "teacher_sp": -0.50},
    ]
    protocol = {"nudge": 0.0, "fmax": 0.05, "steps": 100}
    return {"rows": rows, "per_system": per_system, "protocol": protocol}


def test_accuracy_benchmark_values_and_comparisons(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    acc = accuracy_benchmark()
    values = acc.per_system_values(adsorption_run())
    np.testing.assert_allclose(values["placement_errors"]["Pt-111-2x2x3-O"], [0.1, 0.2])
    np.testing.assert_allclose(values["placement_errors"]["Cu-100-2x2x3-H"], [0.15])
    assert values["adsorbml"] == {"Pt-111-2x2x3-O": [100.0], "Cu-100-2x2x3-H": [0.0]}
    assert values["ml_sp"] == {"Pt-111-2x2x3-O": [100.0], "Cu-100-2x2x3-H": [100.0]}

    # every placement 0.01 eV closer to the teacher: every paired draw says -0.01
    out = acc.report_intervals(adsorption_run(-0.01), adsorption_run(), "base")
    assert out["placement_errors"]["value"] == pytest.approx(0.14)
    assert out["placement_errors"]["base"] == pytest.approx(0.15)
    np.testing.assert_allclose(out["placement_errors"]["difference_interval_95"], [-0.01, -0.01])
    assert out["placement_errors"]["better_share"] == 1.0
    assert out["adsorbml"]["better_share"] == out["adsorbml"]["worse_share"] == 0.0  # ties
    assert "base 0.150, difference -0.010" in capsys.readouterr().out

    short = adsorption_run()
    short["rows"] = short["rows"][:2]
    with pytest.raises(SystemExit, match="different placements .*Cu-100-2x2x3-H:hollow"):
        acc.report_intervals(adsorption_run(), short, "short")
    other = adsorption_run() | {"protocol": {"nudge": 0.1, "fmax": 0.05, "steps": 300}}
    with pytest.raises(SystemExit, match="protocols differ"):
        acc.report_intervals(adsorption_run(), other, "other")
    with pytest.raises(SystemExit, match="different systems"):
        acc.check_comparable(
            adsorption_run(),
            other["protocol"] | {"nudge": 0.0, "steps": 100},
            systems=["Pt-111-2x2x3-O"],
        )

    # the same (host, facet, adsorbate) in another cell: enumerate's Pt(111) kept only
    elsewhere = {"per_system": [{"sid": "Pt-111-t0-O"}, {"sid": "Cu-110-t0-H"}]}
    cut = acc.same_systems(adsorption_run(), elsewhere)
    assert [r["sid"] for r in cut["per_system"]] == ["Pt-111-2x2x3-O"] and cut["systems"] == 1
    assert [r["placement"] for r in cut["rows"]] == ["Pt-111-2x2x3-O:fcc", "Pt-111-2x2x3-O:ontop"]
    assert acc.signed_lowest(adsorption_run()) == (pytest.approx(0.115), 2)
    assert acc.report_intervals(cut)["lowest_signed"] == {
        "value": pytest.approx(0.08),
        "model_weaker": 1,
    }

    good = tmp_path / "run.json"
    good.write_text(json.dumps({"adsorption": adsorption_run()}))
    assert acc.read_adsorption(good)["per_system"][0]["sid"] == "Pt-111-2x2x3-O"
    for name, text in (("cut.json", good.read_text()[:50]), ("null.json", '{"adsorption": null}')):
        (tmp_path / name).write_text(text)
        with pytest.raises(SystemExit, match="is not an accuracy --json file"):
            acc.read_adsorption(tmp_path / name)
    with pytest.raises(SystemExit, match="cannot read"):
        acc.read_adsorption(tmp_path)


def test_teacher_cache_of_another_anomaly_rule_is_refused(tmp_path: Path) -> None:
    """Cached anomalies decide the teacher's minima: a cache made before the reconstruction
    cushion (its protocol lacks it), or under other rules, cannot be judged again without
    structures, so it is refused."""
    acc = accuracy_benchmark()
    now = acc.run_protocol(0.0, 100)
    assert now["anomaly_rules"] == anomaly_rules()  # every rule, as rank's stage hash has them
    assert acc.run_protocol(0.0, 100, "3x3x3") == now | {"size": "3x3x3"}
    cache = tmp_path / "teacher.json"
    payload = {"energies": {"gas:H2": -6.8}, "unconverged": [], "anomalies": {}}
    before = {"nudge": 0.0, "fmax": 0.05, "steps": 100}  # what such caches hold
    older = before | {"reconstruction_cushion": 1.2, "slab_displacement": 1.0}  # 0.11's
    for made in (before, older, before | {"anomaly_rules": "bonds 1.3x radii"}):
        cache.write_text(json.dumps(payload | {"protocol": made, "structures": {}}))
        with pytest.raises(SystemExit, match="was made with"):
            acc.read_teacher_cache(cache, now)
    cache.write_text(json.dumps(payload | {"protocol": now}))
    assert acc.read_teacher_cache(cache, now).energies == {"gas:H2": -6.8}


def test_accuracy_in_enumerate_cells_and_a_resumed_teacher_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--size enumerate`: the placements are the ones `catscreen enumerate` makes (its cell,
    sites and nudges), keyed per site with repeats numbered; the teacher cache is written
    after each system, so a run stopped part-way resumes without redoing finished systems."""
    acc = accuracy_benchmark()
    held = [
        ("Ru", "0001", "N", "Ru-0001-2x2x3-N"),
        ("Ru", "0001", "N", "Ru-0001-2x2x3-N"),  # held out in two passes: one system
        ("Au", "111", "H", "Au-111-2x2x3-H"),  # pass 10 holds Au(111)+H in a 3x3x3 cell
    ]
    systems = acc.at_size(held, "enumerate", 0.1)
    assert systems == [("Ru", "0001", "N", "Ru-001-t0-N")]
    assert acc.enumerated("Ru", "0001", "N", 0.1) is acc.enumerated("Ru", "001", "N", 0.1)
    assert acc.at_size(held, "3x3x3", 0.1) == [("Ru", "0001", "N", "Ru-0001-3x3x3-N")]
    with pytest.raises(SystemExit, match="expected AxBxC"):
        acc.at_size(systems, "4x4", 0.1)
    assert acc.parse_sid("Fe-1-10-t2-CH3") == {
        "host": "Fe",
        "facet": "1-10",
        "cell": "t2",
        "ads": "CH3",
    }
    assert acc.parse_sid("Ru-0001-2x2x3-OH")["facet"] == "0001"
    assert acc.parse_sid("Fe--110-t0-N")["facet"] == "-110"  # (-1, 1, 0)
    assert acc.triple("Fe--110-t0-N") == ("Fe", (-1, 1, 0), "N")
    with pytest.raises(SystemExit, match="not a benchmark system id"):
        acc.parse_sid("gpaw-Ni111-2x2x3-N")
    made = enumerate_configurations(
        EnumerateSettings(bulks=["Fe"], miller=["110"], adsorbates=["H"], nudge=0.1)
    )
    clean, starts = acc.system_starts("Fe-110-t0-H", "H", 0.1)
    assert clean.info["config_id"] == made[0].info["config_id"]
    assert list(starts) == [f"Fe-110-t0-H:{s}" for s in ("ontop", "bridge", "bridge2", "hollow")]
    for start, config in zip(starts.values(), made[1:], strict=True):
        np.testing.assert_allclose(start.positions, config.positions)  # nudged as enumerate does
    unnudged = acc.system_starts("Fe-110-t0-H", "H", 0.0)[1]
    assert list(unnudged) == list(starts)
    assert not np.allclose(
        unnudged["Fe-110-t0-H:hollow"].positions, starts["Fe-110-t0-H:hollow"].positions
    )

    protocol = acc.run_protocol(0.1, 2, "enumerate")
    assert protocol["enumerate"] == {
        "min_slab_size": 7.0,
        "vacuum": EnumerateSettings(bulks=[]).vacuum,
        "min_ab": 8.0,
        "placement": "heuristic",
        "seed": 0,
        "nudge": 0.1,
    }
    cache, model = tmp_path / "teacher.json", load_model("bundled")
    two = [("Ru", "001", "N", "Ru-001-t0-N"), ("Fe", "110", "H", "Fe-110-t0-H")]
    seen: list[list[str]] = []
    relaxations = Counter()
    relax = acc.relaxed

    def counted(atoms, *args):  # noqa: ANN001, ANN202
        relaxations[len(atoms)] += 1
        return relax(atoms, *args)

    monkeypatch.setattr(acc, "relaxed", counted)

    def save(r) -> None:  # noqa: ANN001
        acc.write_teacher_cache(cache, protocol, r)
        seen.append(sorted(k for k in r.energies if k.startswith("slab:")))
        if len(seen) == 1:
            raise KeyboardInterrupt  # killed after the first system

    with pytest.raises(KeyboardInterrupt):
        acc.relax_systems(model, two, 0.1, 2, log=lambda _: None, saved=save)
    kept = acc.read_teacher_cache(cache, protocol)
    assert seen == [["slab:Ru-001-t0-N"]]
    assert set(kept.energies) == {f"gas:{m}" for m in scheme_molecules()} | {
        "slab:Ru-001-t0-N",
        *acc.system_starts("Ru-001-t0-N", "N", 0.1)[1],
    }
    first = dict(kept.energies)
    relaxations.clear()
    kept, teacher = acc.teacher_relaxations(
        two, 0.1, 2, cache, protocol, load_teacher=lambda: model, log=lambda _: None
    )
    assert teacher is model
    fe_clean, fe_starts = acc.system_starts("Fe-110-t0-H", "H", 0.1)
    # only the second system is relaxed on resuming: its slab and placements, no gas again
    assert sum(relaxations.values()) == 1 + len(fe_starts)
    assert relaxations[len(fe_clean)] == 1
    assert {k: kept.energies[k] for k in first} == first  # gas and the first system kept
    assert acc.read_teacher_cache(cache, protocol).energies == kept.energies
    relaxations.clear()  # all cached: nothing relaxed, the teacher not even loaded
    again, teacher = acc.teacher_relaxations(
        two, 0.1, 2, cache, protocol, load_teacher=lambda: pytest.fail("loaded")
    )
    assert teacher is None and not relaxations and again.energies == kept.energies
    assert set(acc.adsorption_energies(kept.energies, two)) == {
        k for _, _, ads, sid in two for k in acc.system_starts(sid, ads, 0.1)[1]
    }

    # New anomaly rules re-judge the stored structures (a slid top layer now counts), and
    # the cache is rewritten under them; relaxing rules that differ are still refused.
    data = json.loads(cache.read_text())
    key = "Ru-001-t0-N:fcc"
    slid = atoms_from_text(data["structures"][key])
    z = np.where(slid.get_tags() != 2, slid.positions[:, 2], -np.inf)
    top = np.flatnonzero(z > z.max() - 0.5)
    below = np.flatnonzero((z < z.max() - 0.5) & (z > z.max() - 3.0))  # hcp layers 2.2 A apart
    # hcp's top layer into the other stacking: opposite to where the layer below sits
    v, _ = find_mic(slid.positions[below] - slid.positions[top[0]], slid.cell, pbc=slid.pbc)
    stacking = -v[np.argmin(np.linalg.norm(v, axis=1))] * [1, 1, 0]
    slid.positions[top] += stacking
    assert np.linalg.norm(stacking) == pytest.approx(1.56, abs=0.05)  # a / sqrt(3)
    start = acc.system_starts("Ru-001-t0-N", "N", 0.1)[1][key]
    clean = atoms_from_text(data["structures"]["slab:Ru-001-t0-N"])
    with monkeypatch.context() as m:  # the slab's bonds alone do not see the slide
        m.setattr(anomalies, "SLAB_DISPLACEMENT", 5.0)
        m.setattr(anomalies, "LAYER_SLIDE", 5.0)
        assert "reconstructed" not in acc.excluding(start, slid, clean)
    data["structures"][key] = atoms_to_text(slid)
    data["protocol"] = protocol | {"anomaly_rules": "bonds only"}
    data["anomalies"][key] = []
    cache.write_text(json.dumps(data))
    assert "reconstructed" in acc.read_teacher_cache(cache, protocol).anomalies[key]
    assert json.loads(cache.read_text())["protocol"] == protocol
    assert "reconstructed" in acc.read_teacher_cache(cache, protocol).anomalies[key]
    # a cache of 0.11 named two rules, not `anomaly_rules`: judged again too, not refused
    old = {k: v for k, v in protocol.items() if k != "anomaly_rules"}
    data["protocol"] = old | {"reconstruction_cushion": 1.2, "slab_displacement": 1.0}
    cache.write_text(json.dumps(data))
    assert "reconstructed" in acc.read_teacher_cache(cache, protocol).anomalies[key]
    assert json.loads(cache.read_text())["protocol"] == protocol
    data["protocol"] = protocol | {"steps": 300, "anomaly_rules": "bonds only"}
    cache.write_text(json.dumps(data))
    with pytest.raises(SystemExit, match="was made with"):
        acc.read_teacher_cache(cache, protocol)
    # a stored placement today's enumerate no longer makes cannot be judged again
    data["protocol"] = protocol | {"anomaly_rules": "bonds only"}
    data["structures"]["Ru-001-t0-N:nowhere"] = data["structures"][key]
    cache.write_text(json.dumps(data))
    with pytest.raises(SystemExit, match="cannot judge Ru-001-t0-N:nowhere again"):
        acc.read_teacher_cache(cache, protocol)


def test_enumerate_cells_leave_out_what_any_teacher_pass_holds_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A (host, facet, adsorbate) any pass holds in another cell goes as a whole, facets
    compared as Miller indices (a pass's Ru-001-t1-N is the held-out Ru-0001 system); the
    held-out systems' own frames keep theirs."""
    acc = accuracy_benchmark()
    shards = {
        "slab-Ru-0001-2x2x3.extxyz.gz": ["Ru-0001-2x2x3-N", "Ru-0001-2x2x3-clean"],
        "enum-Ru.extxyz.xz": ["Ru-001-t1-N", "bulk-Ru"],  # the committed passes are xz
    }
    folder = tmp_path / "training" / "teacher_x" / "chgnet-pbe"
    folder.mkdir(parents=True)
    for name in shards:
        (folder / name).touch()
    monkeypatch.setattr(acc, "data_dir", lambda: tmp_path)
    monkeypatch.setattr(
        acc, "load_frames", lambda path: [Atoms(info={"sid": sid}) for sid in shards[path.name]]
    )
    held = [("Ru", "0001", "N", "Ru-0001-2x2x3-N"), ("Ru", "0001", "O", "Ru-0001-2x2x3-O")]
    assert acc.at_size(held, "enumerate", 0.1) == [("Ru", "0001", "O", "Ru-001-t0-O")]
    shards["enum-Ru.extxyz.xz"] = ["Ru-001-t1-CO"]
    assert [s[3] for s in acc.at_size(held, "enumerate", 0.1)] == ["Ru-001-t0-N", "Ru-001-t0-O"]
    # what a new pass must stay off, as `data generate --avoid` reads it
    acc.write_held_out(tmp_path / "held.txt", held)
    assert read_avoid(tmp_path / "held.txt") == {("Ru", (0, 0, 1), "N"), ("Ru", (0, 0, 1), "O")}


def test_placement_check_finds_the_pressed_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    """The contact that marks a hole: an H 0.96 A from Rh is 0.55 of their covalent sum."""
    monkeypatch.setitem(sys.modules, "accuracy", accuracy_benchmark())
    spec = importlib.util.spec_from_file_location(
        "placement_check", Path(__file__).parents[1] / "benchmarks" / "placement_check.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    atoms = Atoms(
        "Rh2H", positions=[[0, 0, 0], [2.7, 0, 0], [0, 0, 0.96]], cell=[8, 8, 8], pbc=True
    )
    ratio, distance, pair = module.shortest_contact(atoms)
    assert pair in ("Rh-H", "H-Rh") and distance == pytest.approx(0.96)
    assert ratio == pytest.approx(0.96 / (covalent_radii[45] + covalent_radii[1]))
    atoms.positions[2] = [1.35, 0, 1.6]  # bridging H: the Rh-Rh pair is the closest, relatively
    assert module.shortest_contact(atoms)[2] == "Rh-Rh"


def test_slab_depth_cuts_the_slab_to_its_top_layers(monkeypatch: pytest.MonkeyPatch) -> None:
    """benchmarks/slab_depth.py: the layers counted top first, the slab cut below the N-th,
    the adsorbate kept, and a cut at the full depth leaves the structure whole."""
    monkeypatch.setitem(sys.modules, "accuracy", accuracy_benchmark())
    spec = importlib.util.spec_from_file_location(
        "slab_depth", Path(__file__).parents[1] / "benchmarks" / "slab_depth.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    slab = fcc111("Pt", size=(2, 2, 6), vacuum=6.0)
    adslab = slab.copy() + Atoms("O", positions=[slab.positions[-1] + [0, 0, 2.0]])
    layers = module.layer_heights(slab)
    assert len(layers) == 6 and layers == sorted(layers, reverse=True)
    cut = module.top_layers(adslab, len(slab), layers, 3)
    assert cut.get_chemical_formula() == "OPt12"
    assert cut.positions[:12, 2].min() == pytest.approx(layers[2])
    assert len(module.top_layers(adslab, len(slab), layers, 6)) == len(adslab)


def test_slab_moves_lists_pairs_across_the_cutoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """benchmarks/slab_moves.py: a pair pulled across 1.25x the radii sum is listed with both
    ratios; pairs that stay on one side are not."""
    monkeypatch.setitem(sys.modules, "accuracy", accuracy_benchmark())
    spec = importlib.util.spec_from_file_location(
        "slab_moves", Path(__file__).parents[1] / "benchmarks" / "slab_moves.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    clean = Atoms("Cu3", positions=[[0, 0, 0], [3.5, 0, 0], [0, 2.5, 0]], cell=[12, 12, 12])
    final = clean.copy()
    final.positions[1] = [3.0, 0, 0]  # 1.33x -> 1.14x of 2 x 1.32 A
    ((i, j, before, after),) = module.crossings(clean, final)
    assert (i, j) == (0, 1)
    assert before == pytest.approx(3.5 / 2.64) and after == pytest.approx(3.0 / 2.64)
    assert module.crossings(clean, clean.copy()) == []


def test_evaluate_reads_labels_in_another_energy_unit(tmp_path: Path) -> None:
    """kcal/mol labels of EMT frames: read as eV they are 23x off; with --energy-unit they match
    EMT itself; an unknown unit is one line before any model is loaded."""
    from ase import units

    kcal = units.kcal / units.mol
    frames = read(make_dataset(tmp_path / "ev.extxyz", n_systems=2), index=":")
    for a in frames:
        res = a.calc.results
        res["energy"], res["forces"] = res["energy"] / kcal, res["forces"] / kcal
        res.pop("stress", None)
    write(tmp_path / "kcal.extxyz", frames, format="extxyz")
    args = ["evaluate", "emt", str(tmp_path / "kcal.extxyz"), "--plot", str(tmp_path / "p.png")]
    maes = []
    for extra in ([], ["--energy-unit", "kcal/mol"]):
        table = tmp_path / f"t{len(extra)}.csv"
        result = CliRunner().invoke(app, [*args, *extra, "--table", str(table)])
        assert result.exit_code == 0, result.output
        overall = pd.read_csv(table).query("group == 'all'").iloc[0]
        maes.append((overall["energy_mae_meV_atom"], overall["force_mae_eV_A"]))
    assert maes[0][1] > 1.0 and maes[0][0] > 100.0
    assert maes[1][0] < 1e-3 and maes[1][1] < 1e-6
    result = CliRunner().invoke(app, [*args, "--energy-unit", "Hartree"])
    assert result.exit_code == 2
    assert "energy unit 'Hartree'; expected one of eV, meV, kcal/mol, kJ/mol" in result.output
