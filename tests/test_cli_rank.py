"""`catscreen rank` end to end: outputs, formats, DFT inputs, and every bad input as one line."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest
import typer
from test_analysis_helpers import emt_results
from typer.testing import CliRunner

from catscreen.cli.rank import rank_command
from catscreen.io import read_parquet, read_parquet_metadata, write_parquet

app = typer.Typer()
app.command("rank")(rank_command)
app.command("noop")(lambda: None)  # two commands: invoked as `rank ...`, as under catscreen
runner = CliRunner()


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> pd.DataFrame:
    return emt_results()


@pytest.fixture
def results_file(tmp_path, results):
    path = tmp_path / "run" / "results.parquet"
    write_parquet(results, path)
    return path


def test_rank_writes_tables_with_metadata(results_file):
    res = runner.invoke(app, ["rank", str(results_file), "--target", "O=-0.9:0.1", "--top-k", "1"])
    assert res.exit_code == 0, res.output
    assert "Pt(111)" in res.stdout and "distance" in res.stdout
    run = results_file.parent
    ranked = read_parquet(run / "ranked.parquet")
    assert list(ranked.candidate) == ["Pt(111)", "Cu(111)"]  # EMT: O on Pt -0.92, on Cu -0.82
    flagged = read_parquet(run / "flagged.parquet")
    assert len(flagged) == 4 and flagged.flag_top_k.all()
    meta = read_parquet_metadata(run / "ranked.parquet")
    assert meta["settings"]["targets"] == {"O": {"value": -0.9, "tolerance": 0.1}}
    assert meta["settings"]["references"]["scheme"]["H"] == {"H2": 0.5}
    assert meta["settings"]["uncertainty_threshold"] == 0.15
    assert len(read_parquet(run / "adsorption.parquet")) == 8


def test_absolute_targets_with_a_chgnet_scale_model_are_warned(tmp_path, results):
    """A dE_O target from PBE papers against CHGNet's gas references: every candidate came out
    off target by the teacher's O offset, and nothing said so (EMT: no scale to warn of)."""
    said = " ".join(runner.invoke(app, ["rank", _bad(tmp_path, results), "--target",
                                        "O=-0.9:0.1"]).stderr.split())  # fmt: skip
    assert "descriptors are absolute" not in said
    for name in ("chgnet", "catscreen-bundled"):  # results name the bundled weights so
        named = results.assign(model=name)
        ran = runner.invoke(app, ["rank", _bad(tmp_path, named), "--target", "O=-0.9:0.1"])
        assert ran.exit_code == 0, ran.output
        said = " ".join(ran.stderr.split())
        assert f"descriptors are absolute (no reference surface): model {name} has CHGNet" in said
    mine = results.assign(model="my-ptcu")  # a user's checkpoint: what it learned is unknown
    said = " ".join(runner.invoke(app, ["rank", _bad(tmp_path, mine), "--target",
                                        "O=-0.9:0.1"]).stderr.split())  # fmt: skip
    assert "model my-ptcu, if it learned CHGNet labels as the bundled weights did" in said
    chgnet = results.assign(model="chgnet")
    quiet = runner.invoke(
        app, ["rank", _bad(tmp_path, chgnet), "--target", "O=0:0.1", "--reference", "Pt(111)"]
    )
    assert quiet.exit_code == 0, quiet.output
    assert "descriptors are absolute" not in " ".join(quiet.stderr.split())


def test_a_failed_write_leaves_the_previous_set_of_tables(tmp_path, results, monkeypatch):
    """The four tables were each replaced in turn: a kill while the last was written left a
    new ranked.parquet beside the old systems, adsorption and flagged tables."""
    import pyarrow.parquet as pq

    path = _bad(tmp_path, results)
    out = tmp_path / "out"
    assert (
        runner.invoke(app, ["rank", path, "--target", "O=-0.5:0.2", "-o", str(out)]).exit_code == 0
    )
    write = pq.write_table

    def full_disk_at_flagged(table, where):  # noqa: ANN001, ANN202
        if ".flagged.parquet." in str(where):
            raise OSError(28, "No space left on device")
        return write(table, where)

    monkeypatch.setattr(pq, "write_table", full_disk_at_flagged)
    res = runner.invoke(app, ["rank", path, "--target", "O=-1.0:0.2", "-o", str(out)])
    assert res.exit_code != 0 and "No space left on device" in res.output
    for name in ("ranked", "systems", "adsorption", "flagged"):
        meta = read_parquet_metadata(out / f"{name}.parquet")
        assert meta["settings"]["targets"]["O"]["value"] == -0.5, name
    assert not list(out.glob(".*.tmp"))


def test_a_killed_write_s_temporaries_are_removed_by_the_next_one(tmp_path, results):
    """SIGKILL skips every cleanup: .systems.parquet.*.tmp files piled up beside the tables
    (one per kill) and a partial DFT set stayed beside its folder, through successful reruns.
    Fresh ones (a concurrent writer's) and a user's own look-alikes stay."""
    out = tmp_path / "out"
    out.mkdir()
    stale = [out / ".systems.parquet.ab12cd_9.tmp", out / ".dftv.x1y2z3w4"]
    stale[0].write_bytes(b"half a table")
    (stale[1] / "cfg-1").mkdir(parents=True)
    kept = [out / ".systems.parquet.qwertyui.tmp", out / ".systems.parquet.mine.tmp"]
    for path in kept:
        path.write_bytes(b"")
    hour_ago = os.path.getmtime(out) - 3600
    for path in (*stale, kept[1]):
        os.utime(path, (hour_ago, hour_ago))
    res = runner.invoke(app, ["rank", _bad(tmp_path, results), "--top-k", "1", "-o", str(out),
                              "--write-dft", "vasp", str(out / "dftv")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)
    assert (out / "dftv" / "manifest.json").is_file()


def test_summary_counts_placements_skipped_for_a_failed_slab(tmp_path, results):
    df = results.copy()
    df.loc[(df.kind == "slab") & (df.bulk == "Cu"), "status"] = "failed"
    res = runner.invoke(app, ["rank", _bad(tmp_path, df)])
    assert res.exit_code == 0, res.output
    assert "4 skipped: their clean slab or gas reference failed" in " ".join(res.stderr.split())


def test_formats_and_out_dir(results_file, tmp_path):
    res = runner.invoke(
        app, ["rank", str(results_file), "--format", "csv", "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 0
    assert res.stdout.splitlines()[0].startswith("candidate,")
    assert "distance_heads" not in res.stdout.splitlines()[0]  # per-head lists, unreadable
    assert (tmp_path / "o" / "ranked.parquet").exists()
    table = runner.invoke(app, ["rank", str(results_file), "--reference", "Cu(111)"],
                          env={"COLUMNS": "200"})  # fmt: skip
    assert table.exit_code == 0, table.output
    assert "(* the reference)" in table.stdout and "Cu(111)*" in table.stdout
    assert "rel_O (eV)" in table.stdout and " spin " in table.stdout
    res = runner.invoke(
        app, ["rank", str(results_file), "--format", "json", "--reference", "Cu 1,1,1 t0"]
    )
    assert res.exit_code == 0
    records = json.loads(res.stdout)
    assert records[0]["candidate"] == "Cu(111)" and records[0]["distance"] == 0


@pytest.mark.parametrize("name", ["adsorption", "ranked", "systems", "flagged"])
def test_results_named_like_a_rank_table_are_not_overwritten(tmp_path, results, name):
    """Results saved as adsorption.parquet were replaced by rank's own table of that name (exit
    0): every relaxation lost, and the next rank or relax refused the file."""
    path = tmp_path / f"{name}.parquet"
    write_parquet(results, path)
    before = path.read_bytes()
    res = runner.invoke(app, ["rank", str(path)])
    assert res.exit_code == 2
    line = " ".join(res.output.split())
    assert f"rank writes {name}.parquet into" in line and "would overwrite its input" in line
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == [path.name]
    res = runner.invoke(app, ["rank", str(path), "--out", str(tmp_path / "ranked")])
    assert res.exit_code == 0, res.output
    assert path.read_bytes() == before and len(read_parquet(tmp_path / "ranked" / path.name))
    # a link to the table is refused under the table's name, the file rank would replace
    (tmp_path / "mine.parquet").symlink_to(path)
    res = runner.invoke(app, ["rank", str(tmp_path / "mine.parquet")])
    assert res.exit_code == 2 and f"rank writes {name}.parquet into" in " ".join(res.output.split())


def test_write_dft(results_file, tmp_path):
    res = runner.invoke(
        app,
        ["rank", str(results_file), "--top-k", "1", "--write-dft", "vasp", str(tmp_path / "dft")],
    )
    assert res.exit_code == 0, res.output
    folders = sorted(p.name for p in (tmp_path / "dft").iterdir() if p.is_dir())
    assert len(folders) == 4 + 2 + 3  # 4 minima, 2 clean slabs; H2, H2O and N2
    assert (tmp_path / "dft" / "manifest.json").is_file()
    res = runner.invoke(app, ["rank", str(results_file), "--dft-xc", "RPBE"])  # was ignored
    assert res.exit_code == 2 and "--dft-xc sets the functional of --write-dft" in res.stderr
    res = runner.invoke(
        app, ["rank", str(results_file), "--write-dft", "vasp", str(tmp_path / "b"), "--dft-xc",
              "bogus"],
    )  # fmt: skip
    assert res.exit_code == 2 and "unknown xc 'bogus'" in res.stderr
    res = runner.invoke(
        app, ["rank", str(results_file), "--write-dft", "gpaw", str(tmp_path / "g"), "--dft-xc",
              "r2SCAN"],
    )  # fmt: skip
    assert res.exit_code == 2 and "GPAW scripts are written for PBE or RPBE" in res.stderr
    assert not (tmp_path / "g").exists()
    assert all((tmp_path / "dft" / f / "INCAR").exists() for f in folders)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no leftovers
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "dft").stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's 0700

    # A second set of flags never lands among the first one's folders (where DFT may have run):
    # refused before the rank tables are touched, as is a file in the folder's place.
    (tmp_path / "dft" / folders[0] / "OUTCAR").write_text("a finished run")
    tables = {p: p.read_bytes() for p in results_file.parent.glob("*.parquet") if p != results_file}
    for target in (tmp_path / "dft", results_file):
        res = runner.invoke(
            app, ["rank", str(results_file), "--top-k", "2", "--write-dft", "gpaw", str(target)]
        )
        assert res.exit_code == 2, res.output
        assert ("is not empty" if target.is_dir() else "is a file") in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
    assert {p: p.read_bytes() for p in tables} == tables
    assert sorted(p.name for p in (tmp_path / "dft").iterdir()) == [*folders, "manifest.json"]
    assert (tmp_path / "dft" / folders[0] / "OUTCAR").read_text() == "a finished run"
    res = runner.invoke(  # the tables would land in DIR first: refused up front
        app,
        ["rank", str(results_file), "--out", str(tmp_path / "new" / "rank"),
         "--write-dft", "vasp", str(tmp_path / "new")],
    )  # fmt: skip
    assert res.exit_code == 2 and "would hold the rank tables" in res.stderr
    assert not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()  # an empty folder is as good as a new one
    res = runner.invoke(
        app, ["rank", str(results_file), "--write-dft", "gpaw", str(tmp_path / "empty")]
    )
    assert res.exit_code == 0 and (tmp_path / "empty" / folders[0] / "run_gpaw.py").exists()
    # fixed potentials have no gas calculation behind them: said, not left to be found out
    (tmp_path / "mu.yaml").write_text("potentials: {H: -3.4, O: -7.4, N: -8.3}\n")
    res = runner.invoke(
        app,
        ["rank", str(results_file), "--top-k", "1", "--references", str(tmp_path / "mu.yaml"),
         "--out", str(tmp_path / "fixed"), "--write-dft", "vasp", str(tmp_path / "fixed-dft")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "only adslabs and clean slabs were written" in " ".join(res.stderr.split())
    assert not [p for p in (tmp_path / "fixed-dft").iterdir() if p.name.startswith("gas-")]
    # the potentials' sum is on the model's zero: a script subtracting it from DFT totals
    # ("- reference_energy when given") was off by the two zeros' difference
    manifest = json.loads((tmp_path / "fixed-dft" / "manifest.json").read_text())
    for entry in manifest["adsorption"]:
        assert entry["gas"] == {} and "reference_energy" not in entry
        assert entry["model_reference_energy"] == {"O": -7.4, "N": -8.3}[entry["adsorbate"]]
    assert "your DFT's values of them" in manifest["e_ads"]


def _bad(tmp_path, results: pd.DataFrame) -> str:
    path = tmp_path / "bad.parquet"
    write_parquet(results, path)
    return str(path)


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (lambda p, r: str(p / "missing.parquet"), [], "file not found"),
        # brackets in a message are text, not rich markup (it printed 'catscreen' for
        # 'catscreen[dft]' and dropped '[x]' from paths)
        (lambda p, r: str(p / "run[x]" / "missing.parquet"), [], "run[x]/missing.parquet"),
        (
            lambda p, r: (p / "x.parquet").write_bytes(b"junk") and str(p / "x.parquet"),
            [],
            "cannot read",
        ),
        (lambda p, r: _bad(p, r) and str(p), [], "is a folder; give the parquet file"),
        (
            lambda p, r: _bad(p, r.assign(termination=float("nan"))),
            [],
            "has termination nan; expected an integer",
        ),
        (lambda p, r: _bad(p, r.drop(columns=["energy"])), [], "lacks required column(s): energy"),
        (lambda p, r: _bad(p, r[r.adsorbate != "H2"]), [], "no gas reference row for H2"),
        (lambda p, r: _bad(p, r[r.kind != "slab"]), [], "no clean slab row for slab_id"),
        (
            lambda p, r: _bad(p, r.assign(spin=r.kind.map({"gas": "on"}).fillna("off"))),
            [],
            "no gas reference row",
        ),
        (
            lambda p, r: _bad(p, r.assign(spin=r.kind.map({"slab": "on"}).fillna("off"))),
            [],
            "context mismatch",
        ),
        (lambda p, r: _bad(p, r), ["--target", "O:-0.5"], "cannot read target"),
        (
            lambda p, r: _bad(p, r),
            ["--target", "C=-0.5:0.2"],
            "target adsorbate(s) C not in the results",
        ),
        (
            lambda p, r: _bad(p, r),
            ["--reference", "Ru(0001)"],
            "reference candidate 'Ru(0001)' is not in this run",
        ),
        (lambda p, r: _bad(p, r), ["--format", "xml"], "unknown --format"),
        (
            lambda p, r: _bad(p, r),
            ["--references", "/nonexistent/nope.yaml"],
            "references file not found",
        ),
        (lambda p, r: _bad(p, r), ["--write-dft", "cp2k", "/tmp/unused"], "unknown DFT engine"),
        (lambda p, r: _bad(p, r), ["--tolerance", "0"], "tolerance must be positive"),
    ],
)
def test_bad_inputs_exit_2_with_one_line(tmp_path, results, make, args, message):
    res = runner.invoke(app, ["rank", make(tmp_path, results), *args])
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], res.stderr


def test_bad_dft_engine_is_refused_before_anything_is_written(tmp_path, results_file):
    res = runner.invoke(
        app, ["rank", str(results_file), "--out", str(tmp_path / "o"), "--write-dft", "orca", "d"]
    )
    assert res.exit_code == 2 and "unknown DFT engine 'orca'" in res.stderr
    assert not (tmp_path / "o").exists()


def test_help_documents_outputs_and_examples():
    from catscreen.cli.main import app as catscreen

    res = runner.invoke(catscreen, ["rank", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    for word in ("E_ads =", "distance =", "ranked.parquet", "flagged.parquet", "Examples"):
        assert word in res.output, word


def test_spin_picks_one_context_of_a_file_that_holds_two(tmp_path):
    """`rank` refuses to mix contexts and said "rank each context separately" with no way to."""
    off = emt_results()
    on = off.assign(spin="on", config_id=off.config_id + "-on")
    on.loc[on.kind == "adslab", "energy"] -= 0.5
    path = tmp_path / "both.parquet"
    write_parquet(pd.concat([off, on], ignore_index=True), path)
    mixed = runner.invoke(app, ["rank", str(path)])
    assert mixed.exit_code == 2 and "`catscreen rank --spin on`" in mixed.stderr
    picked = {}
    for spin in ("on", "off"):
        res = runner.invoke(app, ["rank", str(path), "--spin", spin, "--out", str(tmp_path / spin)])
        assert res.exit_code == 0, res.stderr
        configs = read_parquet(tmp_path / spin / "adsorption.parquet")
        assert set(configs.spin) == {spin}
        # the tables say what they ranked: the spin asked for, the rows' context, the file
        meta = read_parquet_metadata(tmp_path / spin / "ranked.parquet")
        assert meta["settings"]["spin"] == spin and meta["results"]["spin"] == [spin]
        assert meta["results"]["model"] == ["emt"] and meta["results_file"] == str(path)
        picked[spin] = configs.set_index("system_id").e_ads
    assert (picked["on"] - picked["off"]).round(6).eq(-0.5).all()
    bad = runner.invoke(app, ["rank", str(path), "--spin", "up"])
    assert bad.exit_code == 2 and "--spin must be on or off" in bad.stderr


def test_domain_notes_name_the_rows_ranked_only():
    """`rank --spin on` warned of spin-off rows it did not rank, and of failed rows."""
    import pandas as pd

    from catscreen.analysis import domain_notes

    rows = pd.DataFrame(
        {
            "config_id": ["a", "b", "c", "d", "e", "g"],
            "kind": ["adslab", "slab", "adslab", "adslab", "adslab", "gas"],
            "bulk": ["MgO", "MgO", "Al", "MgO", None, None],
            "formula": ["Mg4O5", "Mg4O4", "Al4O", "Mg4O5", "Zn2O3", "H2O"],
            "status": ["converged", "converged", "converged", "failed", "converged", "converged"],
            "spin": ["off", "off", "on", "off", "off", "off"],
            "model": ["m"] * 6,
            "domain": ["outside:O", "outside:O", "note:coarse", "outside:O", "outside:O", ""],
        }
    )
    off = domain_notes(rows, "off")
    assert (
        len(off) == 1
        and "holding O" in off[0]
        and "MgO (2 structures), Zn2O3 (1 structure)" in off[0]
    )
    (on,) = domain_notes(rows, "on")
    assert on == "model m: coarse: Al (1 structure)"
    assert len(domain_notes(rows)) == 2
    assert domain_notes(rows.drop(columns="domain")) == []


def test_dft_inputs_that_cannot_be_written_say_the_tables_are(results_file, tmp_path, monkeypatch):
    """A full disk while the DFT inputs were written: one line, and nothing said that the rank
    tables had been replaced already."""
    import catscreen.cli.rank as rank_cli
    from catscreen.errors import CatscreenError

    def full(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise CatscreenError("cannot write dft: [Errno 28] No space left on device")

    monkeypatch.setattr(rank_cli, "write_dft_inputs", full)
    out = tmp_path / "tables"
    res = runner.invoke(
        app,
        ["rank", str(results_file), "--out", str(out), "--write-dft", "vasp", str(tmp_path / "d")],
    )
    said = " ".join(res.output.split())
    assert res.exit_code == 2 and "No space left on device; the rank tables are written" in said
    assert (out / "ranked.parquet").is_file()
