"""GPAW for real on a tiny cell: Al(111) 1x1x2 + H, PW 200 eV, k 2x2x1 (~10 s CPU in total)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer
from ase import Atoms
from ase.build import add_adsorbate, fcc111
from test_analysis_helpers import relax, row
from typer.testing import CliRunner

from catscreen.analysis import RankSettings, rank_results
from catscreen.cli.validate import validate_command
from catscreen.dft import DftSettings, write_dft_inputs
from catscreen.io import read_parquet, write_parquet

pytestmark = pytest.mark.gpaw
pytest.importorskip("gpaw")

TINY = ["--encut", "200", "--kpt-density", "0.6"]


@pytest.fixture(scope="module")
def flagged_file(tmp_path_factory):
    clean = fcc111("Al", (1, 1, 2), vacuum=2.5)
    clean.set_tags([0, 1])
    clean.pbc = (True, True, False)
    ads = clean.copy()
    add_adsorbate(ads, "H", 0.8, "fcc")  # H-Al 1.83 A, bonded (cutoff 1.90 A)
    ads.set_tags([0, 1, 2])
    h2 = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]], cell=[4.0, 4.0, 4.5])
    h2.center()
    h2.set_tags([2, 2])
    rows = []
    for kind, ads_name, atoms in (("gas", "H2", h2), ("slab", "none", clean), ("adslab", "H", ads)):
        final, energy = relax(atoms, steps=0)  # EMT parks H far from Al: keep it bonded
        rows.append(
            row(
                kind,
                "Al",
                ads_name,
                atoms,
                final,
                energy,
                site="fcc" if kind == "adslab" else "none",
            )
        )
    import pandas as pd

    out = rank_results(pd.DataFrame.from_records(rows), RankSettings(top_k=1))
    path = tmp_path_factory.mktemp("tiny") / "flagged.parquet"
    write_parquet(out.flagged, path)
    return path


def test_gpaw_script_runs(tmp_path, flagged_file):
    flagged = read_parquet(flagged_file)
    # one step towards an unreachable fmax: result.json says it did not converge
    settings = DftSettings(encut=200, kpt_density=0.6, relax_steps=1, fmax=1e-6, ediff=1e-3)
    write_dft_inputs(flagged, "gpaw", tmp_path, settings)
    script = tmp_path / flagged.config_id[0] / "run_gpaw.py"
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((script.parent / "result.json").read_text())
    assert result["name"] == flagged.config_id[0] and result["energy"] < 0
    assert result["converged"] is False and result["steps"] == 1


def test_validate_compares_ml_with_gpaw(tmp_path, flagged_file):
    app = typer.Typer()
    app.command("validate")(validate_command)
    app.command("noop")(lambda: None)
    res = CliRunner().invoke(app, ["validate", str(flagged_file), "--out", str(tmp_path), *TINY])
    assert res.exit_code == 0, res.output
    table = read_parquet(tmp_path / "validation.parquet")
    row = table.iloc[0]
    assert row.dft_error == ""
    # EMT vs PBE for H on Al: same sign and order of magnitude is all a 200 eV cutoff allows
    assert -3.0 < row.e_ads_dft < 2.0 and row.error == pytest.approx(row.e_ads_ml - row.e_ads_dft)
    assert "ML vs GPAW" in res.stdout
    # every finished energy was kept as it came: a rerun (after a kill, say) runs nothing
    from catscreen.dft import validate

    assert len(list((tmp_path / "validation.parts").iterdir())) == 3  # adslab, slab, H2

    def no_gpaw(*args, **kwargs):
        raise RuntimeError("computed again")

    with pytest.MonkeyPatch.context() as m:
        m.setattr(validate, "single_point", no_gpaw)
        again = CliRunner().invoke(
            app, ["validate", str(flagged_file), "--out", str(tmp_path), *TINY]
        )
        assert again.exit_code == 0, again.output
        assert "3 GPAW energies reused" in again.output
        assert read_parquet(tmp_path / "validation.parquet").equals(table)
        # rows relaxed at an r2SCAN fidelity: GPAW's PBE is another functional, and said so
        r2scan = tmp_path / "r2scan" / "flagged.parquet"
        r2scan.parent.mkdir()
        write_parquet(read_parquet(flagged_file).assign(fidelity="chgnet-r2scan"), r2scan)
        res = CliRunner().invoke(app, ["validate", str(r2scan), "--out", str(tmp_path), *TINY])
        assert res.exit_code == 0 and "3 GPAW energies reused" in res.output, res.output
        assert (
            "note: the rows were relaxed at fidelity chgnet-r2scan (r2SCAN); GPAW computes PBE: "
            "the comparison crosses functionals" in " ".join(res.output.split())
        )
        # other settings are other calculations: run again, here into the stand-in's error
        other = ["--encut", "250", "--kpt-density", "0.6"]
        CliRunner().invoke(app, ["validate", str(flagged_file), "--out", str(tmp_path), *other])
        assert "computed again" in read_parquet(tmp_path / "validation.parquet").dft_error[0]
        # a damaged record (cut off; edited to hold no energy) is computed again, no traceback
        cut, emptied, _ = sorted((tmp_path / "validation.parts").glob("*.json"))
        cut.write_text(cut.read_text()[:10])
        emptied.write_text("{}")
        again = CliRunner().invoke(
            app, ["validate", str(flagged_file), "--out", str(tmp_path), *TINY]
        )
        assert again.exit_code == 2, again.output  # the stand-in's error: no DFT energy
        assert "1 GPAW energies reused" in again.output
        assert "computed again" in read_parquet(tmp_path / "validation.parquet").dft_error[0]


def test_gpaw_records_of_the_default_cutoff_are_the_given_one_s(tmp_path, flagged_file):
    """`DftSettings()` (the engine's cutoff) and `--encut 600` are one calculation: their
    records were keyed apart (encut None and 600.0) and the same GPAW work ran twice."""
    from catscreen.dft import validate
    from catscreen.dft.tasks import dft_tasks

    tasks = dft_tasks(read_parquet(flagged_file))
    given = DftSettings(encut=600.0, relax_steps=0)
    for task in tasks:  # finished records of the CLI's default cutoff
        record = validate.task_record(tmp_path, task, given)
        record.write_text(json.dumps({"energy": -1.0, "magmom": 0.0, "wall_time": 0.0}))
    results, reused = validate.run_gpaw(tasks, DftSettings(relax_steps=0), tmp_path)
    assert reused == len(tasks) == len(results) == 3
