"""CHGNet teacher labels: both fidelities, context in info, units of the ASE convention."""

from __future__ import annotations

import chgnet
import numpy as np
import pytest
from ase.build import bulk, fcc111

from catscreen.build.gas import gas_molecule
from catscreen.errors import CatscreenError
from catscreen.training.teacher import label


def test_labels_and_context() -> None:
    slab = fcc111("Ni", (1, 1, 3), vacuum=5.0)
    water = gas_molecule("H2O")
    cu = bulk("Cu", cubic=True)
    for teacher in ("chgnet-pbe", "chgnet-r2scan"):
        out = label([slab, water, cu], teacher)
        assert [a.info["spin"] for a in out] == ["on", "off", "off"]
        assert {a.info["fidelity"] for a in out} == {teacher}
        assert {a.info["source"] for a in out} == {"chgnet"}
        weights = {"chgnet-pbe": "0.3.0", "chgnet-r2scan": "r2scan"}[teacher]
        assert {a.info["labeller"] for a in out} == {f"chgnet-{chgnet.__version__}-{weights}"}
        for a, ref in zip(out, (slab, water, cu), strict=True):
            assert a.get_forces().shape == (len(ref), 3)
            assert np.isfinite(a.get_potential_energy())
            assert -12 * len(a) < a.get_potential_energy() < 0
        assert "stress" not in out[0].calc.results and "stress" not in out[1].calc.results
        assert out[2].get_stress().shape == (6,)
        assert out[0].calc.results["magmoms"].shape == (3,)
    assert water.calc is None  # inputs are left alone


def test_forced_spin_and_unknown_teacher() -> None:
    water = gas_molecule("H2O")
    assert label([water], "chgnet-pbe", spin="on")[0].info["spin"] == "on"
    with pytest.raises(CatscreenError, match="unknown teacher"):
        label([water], "mace")


def test_narrow_vacuum_is_widened_and_isolated_atoms_are_named() -> None:
    """A slab 3 A from its own image was labelled interacting with it (2.2 eV lower); now as
    `load_model("chgnet")` boxes it. Wide vacuum is left as it is. An atom CHGNet sees alone
    stopped the whole batch with a traceback from inside CHGNet."""
    from ase import Atoms

    from catscreen.model.chgnet_adapter import load_chgnet

    narrow = fcc111("Pt", (2, 2, 3), vacuum=1.5)
    wide = narrow.copy()
    wide.center(vacuum=8.0, axis=2)
    labels = label([narrow, wide], "chgnet-pbe")
    boxed = load_chgnet("chgnet-pbe").predict([narrow], ["off"], ["chgnet-pbe"])[0]
    assert labels[0].get_potential_energy() == pytest.approx(boxed.energy, abs=1e-4)
    assert labels[0].get_potential_energy() == pytest.approx(
        labels[1].get_potential_energy(), abs=1e-4
    )
    assert labels[0].cell[2, 2] == narrow.cell[2, 2]  # the frame keeps its own cell
    lone = Atoms("H", positions=[[6, 6, 6]], cell=[12, 12, 12], pbc=True)
    lone.info["sid"] = "gas-H"
    with pytest.raises(CatscreenError, match=r"frame 1 \(H, sid gas-H\): atom\(s\) 0 have no"):
        label([bulk("Cu", cubic=True), lone], "chgnet-pbe")


def test_cli_label_teacher(tmp_path) -> None:  # noqa: ANN001
    from ase.io import write
    from typer.testing import CliRunner

    from catscreen.cli.main import app
    from catscreen.training.datasets import read_extxyz

    src = tmp_path / "in.extxyz"
    write(src, [gas_molecule("CO"), bulk("Ni", cubic=True)], format="extxyz")
    out = tmp_path / "out.extxyz.gz"
    result = CliRunner().invoke(
        app, ["data", "label", str(src), "--out", str(out), "--teacher", "chgnet-pbe"]
    )
    assert result.exit_code == 0, result.output
    frames = read_extxyz(out)
    assert [a.info["spin"] for a in frames] == ["off", "on"]
    both = CliRunner().invoke(
        app,
        ["data", "label", str(src), "--out", str(out), "--teacher", "chgnet-pbe", "--dft", "gpaw"],
    )
    assert both.exit_code == 2 and "choose one labeller" in both.output
    twice = CliRunner().invoke(  # the last one was used, without a word
        app, ["data", "label", str(src), "--out", str(out), "--teacher", "chgnet-pbe",
              "--teacher", "chgnet-r2scan"],
    )  # fmt: skip
    assert twice.exit_code == 2 and "one --teacher per run" in twice.output
    for extra in (["--spin", "on"], ["--ecut", "400", "--work", str(tmp_path / "w")]):
        ignored = CliRunner().invoke(
            app, ["data", "label", str(src), "--out", str(tmp_path / "x.extxyz"), "--teacher",
                  "chgnet-pbe", *extra],
        )  # fmt: skip
        assert ignored.exit_code == 2 and "apply to --dft only" in ignored.output, ignored.output
        assert extra[0] in ignored.output and not (tmp_path / "x.extxyz").exists()
    (tmp_path / "empty.extxyz").write_text("")
    empty = CliRunner().invoke(
        app, ["data", "label", str(tmp_path / "empty.extxyz"), "-o", str(out), "--teacher",
              "chgnet-pbe"],
    )  # fmt: skip
    assert empty.exit_code == 2 and "holds no structures" in empty.output


def test_cli_label_reads_a_folder_of_shards(tmp_path) -> None:  # noqa: ANN001
    """train and evaluate read a folder of shards; label refused one ("cannot read")."""
    from typer.testing import CliRunner

    from catscreen.cli.main import app
    from catscreen.training.datasets import read_extxyz, write_extxyz

    shards = tmp_path / "shards"
    shards.mkdir()
    write_extxyz([bulk("Ni", cubic=True)], shards / "b.extxyz")
    write_extxyz([gas_molecule("CO"), bulk("Cu", cubic=True)], shards / "a.extxyz.gz")
    out = tmp_path / "out.extxyz"
    cmd = ["data", "label", str(shards), "--teacher", "chgnet-pbe", "--out"]
    result = CliRunner().invoke(app, [*cmd, str(out)])
    assert result.exit_code == 0, result.output
    assert [a.get_chemical_formula() for a in read_extxyz(out)] == ["CO", "Cu4", "Ni4"]
    inside = CliRunner().invoke(app, [*cmd, str(shards / "labels.extxyz")])  # a rerun's input
    assert inside.exit_code == 2 and "inside the input folder" in inside.output
    assert not (shards / "labels.extxyz").exists()
    inside = CliRunner().invoke(  # DFT labels likewise, refused before any work
        app, ["data", "label", str(shards), "--dft", "gpaw", "--out", str(shards / "l.extxyz")]
    )
    assert inside.exit_code == 2 and "inside the input folder" in inside.output


def test_elements_beyond_chgnet_are_named_before_any_labelling() -> None:
    """CHGNet's atom embedding ends at Pu (94): an Md atom failed in torch ("mat1 and mat2
    shapes cannot be multiplied"), a traceback; `load_model("chgnet")` relaxed into it too."""
    from catscreen.model import load_model

    odd = bulk("Cu", cubic=True)
    odd[0].symbol = "Md"
    with pytest.raises(
        CatscreenError, match="chgnet-pbe .CHGNet. knows elements H to Pu only, not Md"
    ):
        label([bulk("Cu"), odd], "chgnet-pbe")
    with pytest.raises(CatscreenError, match="model chgnet was not trained on element.s. Md"):
        load_model("chgnet").info.check_elements(odd)
    load_model("chgnet").info.check_elements(bulk("Pu", "fcc", a=4.6))
