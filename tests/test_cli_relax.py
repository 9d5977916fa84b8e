"""`catscreen relax` as a user runs it: a real subprocess, killed with SIGKILL and resumed."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from ase.build import add_adsorbate, fcc111
from ase.constraints import FixAtoms
from ase.io import write
from typer.testing import CliRunner

from catscreen.cli.main import app
from catscreen.schema import RESULT_COLUMNS
from catscreen.workflow.store import OutputLock

CATSCREEN = str(Path(sys.executable).parent / "catscreen")


def write_configs(path: Path, n: int) -> None:
    """n Cu/Pt(111)+O configurations with tags and FixAtoms, as enumerate writes frames."""
    images = []
    rng = np.random.default_rng(0)
    for i in range(n):
        slab = fcc111(("Cu", "Pt")[i % 2], (2, 2, 3), vacuum=7.0)
        surface = np.where(slab.get_tags() == 1, 1, 0)
        add_adsorbate(slab, "O", 1.5 + 0.5 * rng.random(), ("fcc", "hcp", "bridge", "ontop")[i % 4])
        slab.positions[-1, :2] += rng.normal(0, 0.2, 2)
        slab.set_tags(list(surface) + [2])
        slab.set_constraint(FixAtoms(mask=slab.get_tags() == 0))
        del slab.info["adsorbate_info"]
        slab.info.update(config_id=f"c{i:02d}", system_id="s", kind="adslab", adsorbate="O")
        images.append(slab)
    write(path, images, format="extxyz")


def relax_cmd(configs: Path, out: Path) -> list[str]:
    return [CATSCREEN, "relax", str(configs), "--out", str(out), "--model", "emt",
            "--spin", "off", "--batch-size", "1", "--fmax", "0.02", "--quiet"]  # fmt: skip


def rows_on_disk(out: Path) -> int:
    try:
        return pq.read_metadata(out).num_rows
    except (FileNotFoundError, OSError):
        return 0


def test_help_documents_the_results_schema():
    res = CliRunner().invoke(app, ["relax", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    for column in RESULT_COLUMNS:
        assert column in res.output


def started_relax(cmd: list[str], out: Path, rows: int, **kw) -> subprocess.Popen:
    """A relax subprocess, once `rows` rows are on disk and it still runs."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    deadline = time.monotonic() + 90
    while rows_on_disk(out) < rows and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be stopped"
    return proc


def test_sigkill_mid_run_then_resume(tmp_path):
    configs, out = tmp_path / "configs.extxyz", tmp_path / "results.parquet"
    write_configs(configs, 14)
    total = 14 + 4  # + gas references CO, H2, H2O, N2 for the one context
    proc = started_relax(relax_cmd(configs, out), out, 5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = pd.read_parquet(out)  # never a torn file
    assert 5 <= len(before) < total
    assert (tmp_path / "results.parquet.lock").exists()  # left behind; must not block

    res = subprocess.run(relax_cmd(configs, out), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert f"{total - len(before)} relaxed now, {len(before)} already done" in res.stdout
    after = pd.read_parquet(out).set_index("config_id")
    assert len(after) == total and after.index.is_unique
    assert (after.status == "converged").all()
    kept = after.loc[before.config_id]
    assert (kept.final_structure.values == before.final_structure.values).all()
    assert (kept.wall_time.values == before.wall_time.values).all()
    assert not (tmp_path / "results.parquet.lock").exists()  # a finished run removes it


def test_ctrl_c_says_what_happened_and_the_rerun_goes_on(tmp_path):
    """Ctrl-C (SIGINT) ended relax with exit 130 and nothing printed."""
    configs, out = tmp_path / "configs.extxyz", tmp_path / "results.parquet"
    write_configs(configs, 14)
    cmd = [c for c in relax_cmd(configs, out) if c != "--quiet"]
    # a shell's background job starts with SIGINT ignored (CI's `nohup ... &`), and Python
    # keeps an ignored SIGINT: the child gets it back as a terminal's foreground command has it
    default = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    proc = started_relax(cmd, out, 3, text=True, preexec_fn=default)
    os.kill(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted: no file is left half-written; relax, campaign run, train" in stderr
    done = len(pd.read_parquet(out))
    res = subprocess.run(relax_cmd(configs, out), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and f"{done} already done" in res.stdout, res.stderr


def test_concurrent_writer_is_refused(tmp_path):
    """A second writer gets one clear line and exit code 2 (flock conflicts even in-process)."""
    configs, out = tmp_path / "configs.extxyz", tmp_path / "results.parquet"
    write_configs(configs, 1)
    with OutputLock(out):
        res = CliRunner().invoke(app, relax_cmd(configs, out)[1:])
    assert res.exit_code == 2
    assert "being written by another catscreen relax" in res.stderr
    assert f"pid {os.getpid()}" in res.stderr
    assert not out.exists()
    # the lock takes the umask (a group's shared folder: 0o644 locked its members out)
    old = os.umask(0o002)
    try:
        with OutputLock(out) as lock:
            assert lock.path.stat().st_mode & 0o777 == 0o664
            assert OutputLock.holder(out) == str(os.getpid())  # what rank reads
    finally:
        os.umask(old)
    assert OutputLock.holder(out) is None
    # --out a link: its target written and locked (the link was replaced by a file, and a
    # writer by the other path was not excluded)
    target, link = tmp_path / "shared" / "r.parquet", tmp_path / "link.parquet"
    target.parent.mkdir()
    link.symlink_to(target)
    with OutputLock(target):
        res = CliRunner().invoke(app, relax_cmd(configs, link)[1:])
        assert OutputLock.holder(link) == str(os.getpid())  # rank asks by the link
    assert res.exit_code == 2 and "being written by another" in res.stderr
    assert CliRunner().invoke(app, relax_cmd(configs, link)[1:]).exit_code == 0
    assert link.is_symlink() and len(pd.read_parquet(target)) > 1


def test_bad_options_and_an_output_folder_are_one_line_errors(tmp_path):
    configs = tmp_path / "configs.extxyz"
    write_configs(configs, 1)
    (tmp_path / "adir").mkdir()
    cases = [
        (["--fmax", "inf"], tmp_path / "r.parquet", "--fmax must be a positive number"),
        (["--fmax", "0"], tmp_path / "r.parquet", "--fmax must be a positive number"),
        ([], tmp_path / "adir", "is a folder; give the parquet file"),
        # a cluster asked for without the dask executor: not silently a local run
        (
            ["--scheduler", "tcp://127.0.0.1:9"],
            tmp_path / "r.parquet",
            "--scheduler needs --executor dask",
        ),
        # a malformed address is dask's ValueError, not an OSError
        (
            ["--executor", "dask", "--scheduler", "foo://bar:1"],
            tmp_path / "r.parquet",
            "cannot reach the Dask scheduler foo://bar:1: unknown address scheme 'foo'",
        ),
        (
            ["--executor", "dask", "--scheduler", "tcp://127.0.0.1:notaport"],
            tmp_path / "r.parquet",
            "cannot reach the Dask scheduler tcp://127.0.0.1:notaport",
        ),
        # an unset $DASK_SCHEDULER started a LocalCluster instead
        (["--executor", "dask", "--scheduler", ""], tmp_path / "r.parquet", "--scheduler is empty"),
        # options that would be ignored
        (["--workers", "4"], tmp_path / "r.parquet", "--workers sets the processes"),
        (
            ["--executor", "dask", "--scheduler", "tcp://127.0.0.1:9", "--workers", "4"],
            tmp_path / "r.parquet",
            "--workers sets the processes",
        ),
    ]
    for extra, out, message in cases:
        res = CliRunner().invoke(app, [*relax_cmd(configs, out)[1:], *extra])
        lines = res.stderr.strip().splitlines()
        assert res.exit_code == 2 and len(lines) == 1 and message in lines[0], res.stderr
    assert not (tmp_path / "r.parquet").exists() and not any((tmp_path / "adir").iterdir())


def test_other_convergence_settings_on_a_finished_output_are_refused(tmp_path):
    """Rows relaxed to --fmax 0.02 are not reused for 0.01, and the file is left as it was."""
    configs, out = tmp_path / "configs.extxyz", tmp_path / "results.parquet"
    write_configs(configs, 2)
    first = CliRunner().invoke(app, relax_cmd(configs, out)[1:])
    assert first.exit_code == 0, first.output
    before = out.read_bytes()
    for extra, named in [
        (["--fmax", "0.01"], "--fmax 0.02 (this run: 0.01)"),
        (["--steps", "50"], "--steps 300 (this run: 50)"),
        (["--optimizer", "lbfgs"], "--optimizer fire (this run: lbfgs)"),
    ]:
        res = CliRunner().invoke(app, [*relax_cmd(configs, out)[1:], *extra])
        lines = res.stderr.strip().splitlines()
        assert res.exit_code == 2 and len(lines) == 1 and named in lines[0], res.stderr
        assert "another --out" in lines[0]
    # another model's rows went in beside the first's (rank then refused the table), and
    # the metadata named the last run's model only
    res = CliRunner().invoke(app, [*relax_cmd(configs, out)[1:], "--model", "bundled"])
    lines = res.stderr.strip().splitlines()
    assert res.exit_code == 2 and len(lines) == 1, res.stderr
    assert "holds rows of model emt" in lines[0] and "one model per results table" in lines[0]
    assert out.read_bytes() == before
    assert "failed rows only" not in lines[0]
    import shutil

    from catscreen.io import read_parquet, read_parquet_metadata, write_parquet

    failed = tmp_path / "failed.parquet"  # a run that failed whole: the message says so
    shutil.copy(out, failed)
    meta = read_parquet_metadata(failed)
    write_parquet(read_parquet(failed).assign(status="failed"), failed, metadata=meta)
    res = CliRunner().invoke(app, [*relax_cmd(configs, failed)[1:], "--model", "bundled"])
    assert res.exit_code == 2 and "or delete it: it holds failed rows only" in res.stderr
    # a pandas round trip drops catscreen's metadata: its rows were reused under any --fmax
    bare = tmp_path / "bare.parquet"
    read_parquet(out).to_parquet(bare, index=False)
    before_bare = bare.read_bytes()
    res = CliRunner().invoke(app, [*relax_cmd(configs, bare)[1:], "--fmax", "0.01"])
    assert res.exit_code == 2 and "does not record the settings" in res.stderr, res.output
    assert bare.read_bytes() == before_bare
    from catscreen import code_version

    (run,) = read_parquet_metadata(out)["runs"]  # each run that wrote the table, in order
    assert (run["catscreen"], run["device"], run["executor"]) == (code_version(), "cpu", "local")
    assert read_parquet_metadata(out)["configs"] == str(configs.resolve())
    assert read_parquet_metadata(out)["settings"]["workers"] is None  # local: no Dask workers
    assert run["device"] == "cpu" and run["batch_size"] == 1
    # the record asks the model where it runs: a CATSCREEN_DEVICE naming a missing GPU stopped
    # every EMT run, which never uses catscreen's torch device
    reused = CliRunner().invoke(app, relax_cmd(configs, out)[1:], env={"CATSCREEN_DEVICE": "cuda"})
    assert reused.exit_code == 0, reused.output
    # a resumed-for-ever run keeps the last MAX_RUNS records, not every one
    from catscreen.workflow.store import MAX_RUNS, ResultTable

    meta = read_parquet_metadata(out)
    write_parquet(read_parquet(out), out, metadata={**meta, "runs": [run] * MAX_RUNS})
    runs = ResultTable(out, {}, {"new": True}).metadata["runs"]
    assert len(runs) == MAX_RUNS and runs[-1] == {"new": True}
    before = out.read_bytes()
    again = CliRunner().invoke(app, [*relax_cmd(configs, out)[1:], "--batch-size", "4"])
    assert again.exit_code == 0, again.output  # batching is not a convergence setting
    assert out.read_bytes() == before  # every row reused, nothing rewritten


def test_references_adds_the_molecules_of_ranks_scheme_and_resumes_with_them(tmp_path):
    """`--references` relaxes the scheme's own molecules (NH3 here) besides the default four;
    a finished output gains only the new molecule; an unknown one is refused before any work."""
    configs, out = tmp_path / "configs.extxyz", tmp_path / "results.parquet"
    write_configs(configs, 2)
    first = CliRunner().invoke(app, relax_cmd(configs, out)[1:])
    assert first.exit_code == 0, first.output
    scheme = tmp_path / "nh3.yaml"
    scheme.write_text("elements:\n  N: {NH3: 1, H2: -1.5}\n  O: {H2O: 1, H2: -1}\n")
    res = CliRunner().invoke(app, [*relax_cmd(configs, out)[1:], "--references", str(scheme)])
    assert res.exit_code == 0, res.output
    assert "1 relaxed now, 6 already done" in " ".join(res.stdout.split())
    gas = pd.read_parquet(out).query("kind == 'gas'")
    assert sorted(gas.adsorbate) == ["CO", "H2", "H2O", "N2", "NH3"]
    nh3 = gas[gas.adsorbate == "NH3"].iloc[0]
    assert nh3.status == "converged" and nh3.formula == "H3N" and np.isfinite(nh3.energy)

    before = out.read_bytes()
    unknown = tmp_path / "c2h6.yaml"
    unknown.write_text("elements:\n  C: {C2H6: 0.5, H2: -1.5}\n")
    bad = CliRunner().invoke(app, [*relax_cmd(configs, out)[1:], "--references", str(unknown)])
    lines = bad.stderr.strip().splitlines()
    assert bad.exit_code != 0 and len(lines) == 1, bad.output
    assert "no gas-phase geometry for 'C2H6'" in lines[0]
    assert out.read_bytes() == before


def test_ase_layer_tags_are_refused_not_read_as_frozen_adsorbates(tmp_path):
    """ASE numbers slab layers 1..n and tags the adsorbate 0: read as Open Catalyst tags the O
    was fixed where it was put, and its row converged 0.2 eV too high. Bad input writes nothing."""
    for layers in (4, 2):  # tags 1-4 and 0; a two-layer slab has only 0/1/2, but O is tag 0
        slab = fcc111("Pt", (2, 2, layers), vacuum=7.0)
        add_adsorbate(slab, "O", 2.0, "fcc")
        del slab.info["adsorbate_info"]
        slab.info.update(config_id=f"ase{layers}", kind="adslab", adsorbate="O")
        write(tmp_path / f"ase{layers}.extxyz", slab, format="extxyz")
        out = tmp_path / "new" / "r.parquet"
        res = CliRunner().invoke(app, relax_cmd(tmp_path / f"ase{layers}.extxyz", out)[1:])
        lines = res.stderr.strip().splitlines()
        assert res.exit_code == 2 and len(lines) == 1, res.output
        reason = "tags 3, 4 besides 0/1/2" if layers == 4 else "a tag-0 (fixed subsurface) atom"
        assert f"configuration ase{layers} has {reason}" in lines[0]
        assert "not ASE's layer numbers" in lines[0]
        assert not (tmp_path / "new").exists()  # not even the output's folder or lock
    slab.set_tags(0)  # untagged: FixAtoms alone decides, everything here moves
    write(tmp_path / "untagged.extxyz", slab, format="extxyz")
    res = CliRunner().invoke(app, relax_cmd(tmp_path / "untagged.extxyz", out)[1:])
    assert res.exit_code == 0, res.output
    (tmp_path / "empty.extxyz").write_text("")
    res = CliRunner().invoke(app, relax_cmd(tmp_path / "empty.extxyz", tmp_path / "e.parquet")[1:])
    assert res.exit_code == 2 and "empty.extxyz holds no configurations" in res.stderr


def test_a_higher_step_limit_reruns_only_the_rows_that_stopped_at_the_old_one(tmp_path):
    """--steps 20 then 300 reran everything (refused, or a new campaign table): the converged
    rows are what a 300-step run makes again; those that stopped at 20 go on."""
    configs, out, fresh = (tmp_path / n for n in ("c.extxyz", "r.parquet", "fresh.parquet"))
    write_configs(configs, 4)
    short = CliRunner().invoke(app, [*relax_cmd(configs, out)[1:], "--steps", "20"])
    assert short.exit_code == 0, short.output
    first = pd.read_parquet(out).set_index("config_id")
    stopped = set(first.index[first.status == "not_converged"])
    assert stopped and (first.status == "converged").any()  # gas converged, placements not
    # a part first (or a run killed part-way): the table then says 300, and the rest that
    # stopped at 20 were reused as final
    part = CliRunner().invoke(app, [*relax_cmd(configs, out)[1:], "--steps", "300", "--id", "c01"])
    assert part.exit_code == 0, part.output
    longer = CliRunner().invoke(app, [*relax_cmd(configs, out)[1:], "--steps", "300"])
    assert longer.exit_code == 0, longer.output
    said = " ".join(longer.stdout.split())
    assert f"{len(stopped) - 1} relaxed now, {len(first) - len(stopped) + 1} already done" in said
    assert CliRunner().invoke(app, relax_cmd(configs, fresh)[1:]).exit_code == 0  # 300 steps
    mine = pd.read_parquet(out).set_index("config_id").sort_index()
    again = pd.read_parquet(fresh).set_index("config_id").sort_index()
    assert (mine.status == again.status).all() and (mine.steps == again.steps).all()
    assert np.allclose(mine.energy, again.energy, rtol=0, atol=1e-9)
    shorter = CliRunner().invoke(app, [*relax_cmd(configs, out)[1:], "--steps", "100"])
    assert shorter.exit_code == 2 and "--steps 300 (this run: 100)" in shorter.stderr


def test_a_row_is_reused_only_for_the_structure_it_was_relaxed_from(tmp_path):
    """Two slabs of one facet and atom count but other cells share an id; the second reused the
    first's energy (a campaign's edited slab settings ranked every O placement +1.7 eV)."""
    configs, out = tmp_path / "configs.extxyz", tmp_path / "results.parquet"
    write_configs(configs, 2)
    first = CliRunner().invoke(app, relax_cmd(configs, out)[1:])
    assert first.exit_code == 0, first.output
    from ase.io import read

    frames = read(configs, index=":")
    frames[1].positions[-1, 2] += 0.3  # same config_id, another start
    write(configs, frames, format="extxyz")
    from catscreen import code_version
    from catscreen.io import read_parquet_metadata, write_parquet

    assert set(pd.read_parquet(out).catscreen) == {code_version()}
    earlier = pd.read_parquet(out).assign(catscreen="0.0.1")  # as an earlier version made them
    write_parquet(earlier, out, metadata=read_parquet_metadata(out))
    again = CliRunner().invoke(app, relax_cmd(configs, out)[1:])
    assert again.exit_code == 0, again.output
    assert "1 relaxed now, 5 already done" in " ".join(again.stdout.split())
    rows = pd.read_parquet(out)
    assert len(rows) == 6 and rows.config_id.is_unique
    # each row names the catscreen that relaxed it: the reused keep theirs
    made = rows.set_index("config_id").catscreen
    assert made["c01"] == code_version() and (made.drop("c01") == "0.0.1").all()


def test_a_run_in_which_every_configuration_failed_exits_non_zero(tmp_path, monkeypatch):
    """A model that fails on everything (a broken checkpoint, a calculator that raises) wrote
    a table of failed rows and exited 0, as if the screen had finished."""
    from catscreen.model.api import AseCalculatorModel

    def broken(self, *args, **kwargs):
        raise RuntimeError("calculator crashed")

    monkeypatch.setattr(AseCalculatorModel, "predict", broken)
    write_configs(tmp_path / "c.extxyz", 2)
    out = tmp_path / "r.parquet"
    result = CliRunner().invoke(app, relax_cmd(tmp_path / "c.extxyz", out)[1:])
    assert result.exit_code == 2, result.output
    assert "every configuration failed (the reason column of" in " ".join(result.output.split())
    assert (pd.read_parquet(out).status == "failed").all()  # the reasons are kept


def test_sigterm_ends_the_run_as_ctrl_c_does_with_its_rows_written(tmp_path):
    """A batch system's time limit sends SIGTERM: the run says so, keeps every finished row
    and the rerun goes on."""
    configs, out = tmp_path / "configs.extxyz", tmp_path / "results.parquet"
    write_configs(configs, 14)
    proc = started_relax(relax_cmd(configs, out), out, 3)
    os.kill(proc.pid, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and b"interrupted: no file is left half-written" in stderr
    done = len(pd.read_parquet(out))
    res = subprocess.run(relax_cmd(configs, out), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and f"{done} already done" in res.stdout, res.stderr


def test_an_oxide_surface_is_warned_of_by_relax_and_again_by_rank(tmp_path):
    """The bundled weights saw O only in adsorbates and gas molecules: an MgO(100) screen ran
    without a word (its E_H std did not always show it; Mo2C's did not). Rank warns of the rows
    it ranks, once, however many runs wrote them."""
    from pymatgen.core import Lattice, Structure

    mgo = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(4.21), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )
    mgo.to(filename=str(tmp_path / "MgO.cif"))
    runner = CliRunner()
    cfg, pt, out = tmp_path / "cfg", tmp_path / "pt", tmp_path / "results.parquet"
    args = ["-m", "100", "--layers", "3", "--repeat", "1x1", "-a", "H"]
    res = runner.invoke(
        app, ["enumerate", "-b", f"{tmp_path / 'MgO.cif'},Pt", *args, "--out", str(cfg)]
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["enumerate", "-b", "Pt", *args, "--out", str(pt)])
    assert res.exit_code == 0, res.output
    relax = ["relax", str(cfg), "--out", str(out), "--steps", "2", "--quiet"]
    df = pd.read_parquet(cfg / "configs.parquet")
    one = df[(df.bulk == "MgO") & (df.kind == "adslab")].config_id.iloc[0]
    res = runner.invoke(app, [*relax, "--id", one])  # one run, then the rest
    assert res.exit_code == 0 and "MgO (2 structures) are outside" in " ".join(res.stderr.split())
    res = runner.invoke(app, relax)
    assert res.exit_code == 0, res.output
    said = " ".join(res.stderr.split())
    assert "warning: model catscreen-bundled was trained on no surface or bulk holding O" in said
    assert "MgO (5 structures) are outside its training" in said and "Pt (" not in said
    res = runner.invoke(app, ["rank", str(out)])
    assert res.exit_code == 0, res.output
    said = " ".join(res.stderr.split())
    assert said.count("trained on no surface or bulk holding O") == 1
    assert "MgO (5 structures) are outside its training" in said
    res = runner.invoke(app, ["rank", str(out), "--configs", str(pt)])  # Pt's rows only
    assert res.exit_code == 0 and "outside its training" not in res.stderr, res.output
    info = runner.invoke(app, ["model", "info", "bundled", "--json"])
    hosts = json.loads(info.output)["host_elements"]
    assert len(hosts) == 36 and not {"H", "C", "N", "O"} & set(hosts)


def test_hosts_the_model_card_measured_poor_are_warned_of(tmp_path):
    """The bundled weights' Ba and Ce adsorption energies are not usable (MODEL_CARD): relax
    on Ce said nothing of it; Pt, measured well, is not named."""
    runner = CliRunner()
    cfg, out = tmp_path / "cfg", tmp_path / "cfg" / "results.parquet"
    args = ["-b", "Ce,Pt", "-m", "111", "--layers", "3", "--repeat", "1x1", "-a", "H"]
    assert runner.invoke(app, ["enumerate", *args, "--out", str(cfg)]).exit_code == 0
    res = runner.invoke(app, ["relax", str(cfg), "--out", str(out), "--steps", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    said = " ".join(res.stderr.split())
    assert (
        "warning: model catscreen-bundled: its adsorption energies on surfaces holding Ba or Ce"
        in said
    )
    assert "are not usable" in said and "'The new elements')" in said
    assert ": Ce (5 structures)" in said and "Pt (" not in said and "outside" not in said
    info = json.loads(runner.invoke(app, ["model", "info", "bundled", "--json"]).output)
    assert len(info["host_notes"]) == 2


def test_rows_from_before_the_domain_column_get_it_on_the_next_relax(tmp_path):
    """A table written before the column: its reused rows were never warned of by rank."""
    from catscreen.io import read_parquet_metadata, write_parquet

    runner = CliRunner()
    cfg, out = tmp_path / "cfg", tmp_path / "cfg" / "results.parquet"
    args = ["-b", "Ce", "-m", "111", "--layers", "3", "--repeat", "1x1", "-a", "H"]
    assert runner.invoke(app, ["enumerate", *args, "--out", str(cfg)]).exit_code == 0
    relax = ["relax", str(cfg), "--out", str(out), "--steps", "1", "--quiet"]
    assert runner.invoke(app, relax).exit_code == 0
    meta = read_parquet_metadata(out)
    write_parquet(pd.read_parquet(out).drop(columns="domain"), out, metadata=meta)
    assert "not usable" not in runner.invoke(app, ["rank", str(out)]).stderr
    res = runner.invoke(app, relax)
    assert res.exit_code == 0 and "0 relaxed now" in res.stdout, res.output
    assert pd.read_parquet(out).query("kind != 'gas'").domain.str.startswith("note:").all()
    said = " ".join(runner.invoke(app, ["rank", str(out)]).stderr.split())
    assert "are not usable" in said and ": Ce (5 structures)" in said


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a checkout to another user needs root")
def test_a_checkout_another_user_owns_still_names_its_commit(tmp_path):
    """git refuses a repository another user owns ("dubious ownership"): a shared checkout's
    results recorded the bare version, as if from a release."""
    import shutil

    import catscreen

    shutil.copytree(Path(catscreen.__file__).parent, tmp_path / "catscreen")
    git = ["git", "-C", str(tmp_path), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "t"], check=True)
    shutil.chown(tmp_path, "nobody")
    for path in tmp_path.rglob("*"):
        shutil.chown(path, "nobody")
    shown = subprocess.run(
        [sys.executable, "-c", "import catscreen; print(catscreen.code_version())"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )  # fmt: skip
    assert re.fullmatch(r"\d+\.\d+\.\d+\+g[0-9a-f]{12}\n", shown.stdout), shown.stdout
