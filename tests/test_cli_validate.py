"""`catscreen validate` bad inputs: one line, exit 2 (no GPAW run needed)."""

from __future__ import annotations

import sys

import pytest
import typer
from test_analysis_helpers import hand_results
from typer.testing import CliRunner

from catscreen.analysis import RankSettings, rank_results
from catscreen.cli.validate import validate_command
from catscreen.io import write_parquet

app = typer.Typer()
app.command("validate")(validate_command)
app.command("noop")(lambda: None)
runner = CliRunner()


@pytest.fixture
def flagged_file(tmp_path):
    df = hand_results(
        {"Pt": -100.0}, [("Pt", "O", "fcc", -106.5, 0.0)], {"H2": (-6.8, 0.0), "H2O": (-14.2, 0.0)}
    )
    path = tmp_path / "flagged.parquet"
    write_parquet(rank_results(df, RankSettings(top_k=1)).flagged, path)
    return path


def _run(*args):
    res = runner.invoke(app, ["validate", *map(str, args)])
    lines = res.stderr.strip().splitlines()
    return res.exit_code, lines


def test_missing_gpaw_is_a_clear_error(flagged_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "gpaw", None)  # import gpaw -> ImportError
    code, lines = _run(flagged_file)
    assert code == 2 and len(lines) == 1 and "GPAW is not installed" in lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engine", "vasp"], "unknown engine 'vasp'"),
        (["--xc", "LDA"], "unknown xc"),
        (["--encut", "-100"], "encut (plane-wave cutoff) must be a positive number"),
        (["--encut", "inf"], "encut (plane-wave cutoff) must be a positive number"),  # hung GPAW
        (["--kpt-density", "0"], "kpt_density must be a positive number"),
        (["--kpt-density", "inf"], "kpt_density must be a positive number"),
        (["--smearing", "-0.1"], "smearing must be a number >= 0"),
        (["--smearing", "inf"], "smearing must be a number >= 0"),
    ],
)
def test_bad_options(flagged_file, args, message):
    code, lines = _run(flagged_file, *args)
    assert code == 2 and len(lines) == 1 and message in lines[0]


def test_not_a_flagged_table_and_empty(tmp_path, flagged_file):
    import pandas as pd

    write_parquet(pd.DataFrame({"a": [1]}), tmp_path / "x.parquet")
    code, lines = _run(tmp_path / "x.parquet")
    assert code == 2 and "lacks required column(s)" in lines[0]
    from catscreen.io import read_parquet

    write_parquet(read_parquet(flagged_file).head(0), tmp_path / "empty.parquet")
    code, lines = _run(tmp_path / "empty.parquet")
    assert code == 2 and "no flagged rows" in lines[0]
    code, lines = _run(tmp_path / "missing.parquet")
    assert code == 2 and "file not found" in lines[0]


@pytest.mark.parametrize(
    ("error", "recorded"),
    [(AssertionError(), "AssertionError"), (MemoryError("\n"), "MemoryError")],
)
def test_a_gpaw_failure_without_a_message_is_recorded(monkeypatch, error, recorded):
    """GPAW raises bare AssertionErrors; the row records the type and the other rows still run."""
    from catscreen.dft import validate

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(validate, "single_point", fail)
    out = validate.gpaw_single_point.original("", "slab", "off", {}, "/nonexistent/record.json")
    assert out["error"] == recorded and out["energy"] != out["energy"]  # NaN: and not kept


def test_limit_takes_each_systems_lowest_placements_first(tmp_path, monkeypatch):
    """The flagged table keeps the results' order: `--limit 1` spent its one GPAW run on
    whichever placement came first, not on a system minimum."""
    from catscreen.cli import validate as cli
    from catscreen.errors import CatscreenError

    df = hand_results(
        {"Pt": -100.0},
        [("Pt", "O", "hcp", -106.0, 0.0), ("Pt", "O", "fcc", -106.5, 0.0)],
        {"H2": (-6.8, 0.0), "H2O": (-14.2, 0.0)},
    )
    flagged = rank_results(df, RankSettings(top_k=2)).flagged
    path = tmp_path / "flagged.parquet"
    write_parquet(flagged, path)
    assert list(flagged.rank_in_system) == [2, 1]  # the results' order
    seen = []

    def fake(table, settings, parts):  # noqa: ANN001, ANN202
        seen.extend(table.site_type)
        raise CatscreenError("stop here")

    monkeypatch.setattr(cli, "validate", fake)
    code, _ = _run(path, "--limit", "1")
    assert code == 2 and seen == ["fcc"]


def test_rows_ranked_with_fixed_potentials_are_refused_before_any_gpaw_run(tmp_path):
    from catscreen.analysis.references import References

    df = hand_results(
        {"Pt": -100.0}, [("Pt", "O", "fcc", -106.5, 0.0)], {"H2": (-6.8, 0.0), "H2O": (-14.2, 0.0)}
    )
    refs = References(potentials={"O": -7.0}, source="mine.yaml")
    path = tmp_path / "flagged.parquet"
    write_parquet(rank_results(df, RankSettings(top_k=1, references=refs)).flagged, path)
    code, lines = _run(path)
    assert code == 2 and len(lines) == 1 and "fixed reference potentials" in lines[0]
    assert not (tmp_path / "validation.parts").exists()


def test_bad_cells_and_a_table_without_ranks(tmp_path, flagged_file, monkeypatch):
    import pandas as pd

    from catscreen.cli import validate as cli
    from catscreen.errors import CatscreenError

    table = pd.read_parquet(flagged_file)
    table.loc[0, "reference_weights"] = "H2:0.5"
    write_parquet(table, tmp_path / "bad.parquet")
    code, lines = _run(tmp_path / "bad.parquet")
    assert code == 2 and len(lines) == 1 and "reference_weights is not a JSON mapping" in lines[0]
    write_parquet(
        pd.read_parquet(flagged_file).drop(columns="rank_in_system"), tmp_path / "n.parquet"
    )
    seen = []

    def fake(table, settings, parts):  # noqa: ANN001, ANN202
        seen.append(len(table))
        raise CatscreenError("stop here")

    monkeypatch.setattr(cli, "validate", fake)
    code, _ = _run(tmp_path / "n.parquet", "--limit", "1")  # the table's order, no KeyError
    assert code == 2 and seen == [1]


def test_number_cells_that_are_text_are_refused_before_any_gpaw_run(tmp_path, flagged_file):
    """They were read only after every GPAW energy had been computed, and crashed there."""
    import json

    import pandas as pd

    table = pd.read_parquet(flagged_file)
    weights = json.loads(table.loc[0, "reference_weights"])
    table.loc[0, "reference_weights"] = json.dumps({m: str(w) for m, w in weights.items()})
    write_parquet(table, tmp_path / "w.parquet")
    code, lines = _run(tmp_path / "w.parquet")
    assert code == 2 and len(lines) == 1, lines
    assert "reference_weights H2 is '-1.0', not a number" in lines[0]
    table = pd.read_parquet(flagged_file)
    write_parquet(table.assign(e_ads=table.e_ads.astype(str)), tmp_path / "e.parquet")
    code, lines = _run(tmp_path / "e.parquet")
    assert code == 2 and len(lines) == 1 and "e_ads is '0.89" in lines[0]
    assert "not a number" in lines[0]
    assert not (tmp_path / "validation.parts").exists()


def test_an_out_that_is_a_file_is_refused_before_any_gpaw_run(tmp_path, flagged_file):
    (tmp_path / "afile").write_text("mine")
    code, lines = _run(flagged_file, "--out", tmp_path / "afile")
    assert code == 2 and len(lines) == 1 and "cannot keep DFT results in" in lines[0]
    assert (tmp_path / "afile").read_text() == "mine"


def test_no_dft_energy_at_all_is_an_error_and_the_table_says_why(
    tmp_path, flagged_file, monkeypatch
):
    """Every GPAW run failing exited 0 with "MAE nan eV over 0 rows"."""
    import pandas as pd

    from catscreen.dft import validate

    def fail(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError

    monkeypatch.setattr(validate, "single_point", fail)
    code, lines = _run(flagged_file, "--out", tmp_path / "v")
    assert code == 2 and len(lines) == 1, lines
    assert "no flagged row got a DFT energy (AssertionError)" in lines[0]
    table = pd.read_parquet(tmp_path / "v" / "validation.parquet")
    assert len(table) == 1 and table.dft_error[0].startswith("AssertionError")
