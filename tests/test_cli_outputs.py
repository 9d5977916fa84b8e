"""Outputs never replace inputs, and odd input is one line: cases a sweep of every command
found writing over a user's files or printing a traceback."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from ase.build import fcc111
from ase.calculators.emt import EMT
from ase.io import write
from typer.testing import CliRunner

from catscreen.cli.main import app

runner = CliRunner()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _labelled(path: Path) -> Path:
    frames = []
    for metal in ("Cu", "Pt"):
        atoms = fcc111(metal, (1, 1, 2), vacuum=5.0)
        atoms.calc = EMT()
        atoms.get_potential_energy()
        atoms.get_forces()
        atoms.info.update(spin="off", fidelity="emt", source="emt", sid=metal)
        frames.append(atoms)
    write(path, frames, format="extxyz")
    return path


def _one_line_error(args: list[str]) -> str:
    result = runner.invoke(app, args)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:"), (
        result.output,
        result.exception,
    )
    return lines[0]


def test_an_output_that_is_an_input_is_refused_and_the_input_kept(tmp_path: Path) -> None:
    data = _labelled(tmp_path / "data.extxyz")
    digest = _digest(data)
    line = _one_line_error(
        ["data", "label", str(data), "--teacher", "chgnet-pbe", "--out", str(data)]
    )
    assert "is the input" in line
    line = _one_line_error(["evaluate", "emt", str(data), "--table", str(data)])
    assert "--table" in line and "is an input (left unchanged)" in line
    line = _one_line_error(["evaluate", "emt", str(data), "--plot", str(data)])
    assert "--plot" in line
    assert _digest(data) == digest
    cfg = tmp_path / "cfg"
    args = ["-m", "111", "--layers", "3", "--repeat", "1x1", "-a", "O", "--out", str(cfg)]
    assert runner.invoke(app, ["enumerate", "-b", "Pt", *args]).exit_code == 0
    written = cfg / "configs.extxyz"
    digest = _digest(written)
    line = _one_line_error(["enumerate", "-b", str(written), *args])
    assert "is an output of --out" in line and _digest(written) == digest


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["campaign", "run", "{binary}", "--out", "{tmp}/c"], "cannot read recipe"),
        (["data", "generate", "{tmp}/g", "--bulks", "Pt", "--metals", "none",
          "--min-slab-size", "-1"], "--min-slab-size must be a length in (0, 100] A"),
        (["data", "generate", "{tmp}/g", "--bulks", "Pt", "--metals", "none",
          "--min-ab", "nan"], "--min-ab must be a length in (0, 100] A"),
        (["data", "generate", "{tmp}/g", "--metals", "Pt", "--avoid", "{binary}"],
         "--avoid"),
        (["relax", "{tmp}", "--out", "{tmp}", "--model", "emt"], "is a folder; give the parquet"),
    ],
)  # fmt: skip
def test_odd_input_found_by_the_sweep_is_one_line(tmp_path: Path, args, message) -> None:
    binary = tmp_path / "garbage.yaml"
    binary.write_bytes(bytes(range(256)) * 4)
    args = [a.format(tmp=tmp_path, binary=binary) for a in args]
    assert message in _one_line_error(args)


def test_a_run_folder_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    data = _labelled(tmp_path / "data.extxyz")
    (tmp_path / "afile").write_text("x")
    config = tmp_path / "t.yaml"
    config.write_text(
        f"datasets: [{data}]\nout: {tmp_path / 'afile' / 'run'}\nmax_steps: 1\n"
        "model: {n_scalars: 4, n_vectors: 2, n_heads: 1, readout_hidden: 4, radial_hidden: 4}\n"
        "validation_fraction: 0.5\n"
    )
    result = runner.invoke(app, ["train", str(config)])  # PermissionError, NotADirectoryError
    assert result.exit_code == 2 and result.exception.__class__ is SystemExit
    assert "error: cannot make the run folder" in " ".join(result.output.split())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["rank", "r.parquet", "--top-k", "-1"], "Invalid value for '--top-k'"),
        (["rank"], "Missing argument 'results'."),
        (["rank", "r.parquet", "--nope"], "No such option: --nope"),
        (["campaign", "run"], "Missing argument 'recipe'. (see `catscreen campaign run --help`)"),
        (["frobnicate"], "No such command 'frobnicate'. (see `catscreen --help`)"),
    ],
)
def test_usage_errors_are_one_line(args: list[str], message: str) -> None:
    """Typer drew the usage, a hint and a boxed panel: eight lines for `--top-k -1`."""
    assert message in _one_line_error(args)


@pytest.mark.parametrize(
    "args",
    [
        ["enumerate", "-b", "Pt", "-a", "O", "--out", ""],
        ["relax", "cfg", "--out", ""],
        ["rank", "r.parquet", "--out", ""],
        ["report", "run", "-o", " "],
        ["train", "t.yaml", "--out", ""],
        ["evaluate", "m.pt", "d.extxyz", "--plot", ""],
        ["campaign", "run", "quickstart", "--out", ""],
        ["campaign", "baseline", "run", "--write", ""],
        ["data", "generate", "--out", ""],
        ["data", "generate", ""],
        ["data", "label", "x.extxyz", "--dft", "gpaw", "--out", "y.extxyz", "--work", ""],
        ["model", "interpolate", "a.pt", "b.pt", "--alpha", "0.5", "--out", ""],
        ["validate", "f.parquet", "--out", ""],
    ],
)
def test_an_empty_output_path_is_refused(tmp_path: Path, monkeypatch, args: list[str]) -> None:
    """`--out "$DIR"` with DIR unset was the working folder: the outputs landed among whatever
    was there (relax alone refused it, as "a folder")."""
    monkeypatch.chdir(tmp_path)
    assert "is empty (an unset variable?): give a path" in _one_line_error(args)
    assert list(tmp_path.iterdir()) == []


def _commands(group: object, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, command in getattr(group, "commands", {}).items():
        out += [(*path, name), *_commands(command, (*path, name))]  # a group's own
    return out


def test_help_shows_value_types_a_user_reads() -> None:
    """`<list[str]>` on every repeatable option, `<list[Path]>` on evaluate's DATA: Python's
    type names, read as "type a list"."""
    import typer

    from catscreen.cli.main import app

    commands = _commands(typer.main.get_command(app))
    assert ("data", "generate") in commands and ("rank",) in commands
    for command in commands:
        shown = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
        assert shown.exit_code == 0, command
        assert "list[" not in shown.output, command
    rank = CliRunner().invoke(app, ["rank", "--help"], env={"COLUMNS": "200"}).output
    assert "--target          -t      <str>" in rank
