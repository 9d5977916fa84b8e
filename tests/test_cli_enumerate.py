"""`catscreen enumerate` from the command line: outputs readable by plain ASE and pandas."""

from __future__ import annotations

import pandas as pd
import pytest
from ase.io import read
from typer.testing import CliRunner

from catscreen.cli.main import app
from catscreen.errors import CatscreenError
from catscreen.schema import MANIFEST_COLUMNS

runner = CliRunner()


def test_ni_max_index_2(tmp_path):
    out = tmp_path / "ni"
    result = runner.invoke(
        app,
        [
            "enumerate",
            "--bulk",
            "Ni",
            "--max-index",
            "2",
            "--adsorbates",
            "O,CO",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    df = pd.read_parquet(out / "configs.parquet")
    images = read(out / "configs.extxyz", index=":")
    assert list(df.columns) == list(MANIFEST_COLUMNS)
    assert len(images) == len(df) > 0
    assert set(df["miller"]) == {"1,0,0", "1,1,0", "1,1,1", "2,1,0", "2,1,1", "2,2,1"}
    assert set(df["adsorbate"]) == {"none", "O", "CO"}
    assert (df["n_atoms"].to_numpy() == [len(a) for a in images]).all()
    assert df["config_id"].is_unique


def test_dry_run_writes_nothing(tmp_path):
    result = runner.invoke(
        app,
        [
            "enumerate",
            "-b",
            "Pt",
            "-m",
            "1,1,1",
            "-a",
            "O",
            "--dry-run",
            "--out",
            str(tmp_path / "x"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "5 configurations" in result.output
    assert not (tmp_path / "x").exists()


# A CuAu random alloy: ASE would keep one species per site and call it pure Au.
MIXED_CIF = """data_CuAu
_cell_length_a 3.8
_cell_length_b 3.8
_cell_length_c 3.8
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'F m -3 m'
_symmetry_Int_Tables_number 225
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
Cu1 Cu 0 0 0 0.5
Au1 Au 0 0 0 0.5
"""


def test_repeated_adsorbate_options_add_up(tmp_path):
    result = runner.invoke(
        app, ["enumerate", "-b", "Pt", "-m", "1,1,1", "-a", "O", "-a", "CO,H", "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert "O, CO, H" in " ".join(result.output.split())


def test_a_bulk_file_with_a_comma_in_its_name_is_one_bulk(tmp_path):
    """`--bulk` splits on commas: a file named `Cu,fcc.cif` was two unknown bulks."""
    from ase.build import bulk
    from ase.io import write

    path = tmp_path / "Cu,fcc.cif"
    write(path, bulk("Cu", "fcc", a=3.6))
    args = ["enumerate", "-b", str(path), "-b", "Pt,Au", "-m", "1,1,1", "-a", "O", "--dry-run"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert {"Cu,fcc", "Pt", "Au"} <= set(result.output.split())


def test_out_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("keep")
    result = runner.invoke(app, ["enumerate", "-b", "Pt", "-a", "O", "--out", str(tmp_path / "f")])
    assert result.exit_code == 2 and "is a file; give a folder" in result.output
    assert (tmp_path / "f").read_text() == "keep"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bulk", "Xx", "-a", "O"], "unknown bulk 'Xx'"),
        (["--bulk", "Hg", "-a", "O"], "element Hg"),
        (["--bulk", "Pt", "-a", "O,Foo"], "unknown adsorbate 'Foo'"),
        (["--bulk", "pt", "-a", "O"], "unknown bulk 'pt' (did you mean 'Pt'?)"),
        (["--bulk", "Pt", "-a", "oh"], "unknown adsorbate 'oh' (did you mean 'OH'?)"),
        (["--bulk", "Pt", "--miller", "0,0,0"], "cannot read Miller index"),
        (["--bulk", "Pt", "--miller", "1,1"], "cannot read Miller index"),
        (["--bulk", "{junk}", "-a", "O"], "cannot read bulk file"),
        (["--bulk", "Pt", "--custom-adsorbate", "{missing}:0"], "custom adsorbate file not found"),
        (["--bulk", "Pt", "--placement", "sideways"], "bad setting placement"),
        (["--bulk", "Pt", "--max-index", "0"], "bad setting max_index"),
        (["--bulk", "{mixed}", "-a", "O"], "partial occupancies (Cu 0.5, Au 0.5)"),
        (["--bulk", "{qq}", "-a", "O"], "unknown element symbol 'Qq'"),
        (["--bulk", "Pt", "--custom-adsorbate", "{qq}:0"], "unknown element symbol 'Qq'"),
        (["--bulk", "Pt", "-m", "1,1,1", "-m", "-1,1,1"], "facets 1,1,1 and -1,1,1 are the same"),
        (["--bulk", "Pt", "-m", "1,1,1", "-m", "2,2,2"], "Pt: facet 1,1,1 given twice"),
        (["--bulk", "Pt", "-m", "1,1,1", "-m", "111"], "Pt: facet 1,1,1 given twice"),
        (["--bulk", "Pt", "-a", "O", "--vacuum", "4"], "bad setting vacuum"),
        # no upper bound: 1e9 filled 24 GB, --min-ab 1e5 asked for 58 GiB
        (
            ["--bulk", "Pt", "-a", "O", "--vacuum", "1e9"],
            "bad setting vacuum: Input should be less",
        ),
        (
            ["--bulk", "Pt", "-a", "O", "--min-ab", "1e5"],
            "bad setting min_ab: Input should be less",
        ),
        (["-b", "Pt", "-a", "O", "--repeat", "1000x1000"], "bad setting repeat"),
        (["-b", "Pt", "-a", "O", "--layers", "100000"], "bad setting layers: Input should be less"),
        (["-b", "{nan}", "-a", "O"], "holds a NaN or infinite coordinate or cell length"),
        (["-b", "Pt", "-a", "O", "--n", "3"], "--n counts random placements: give it with"),
        (["-b", "Pt", "-m", "111", "--max-index", "2"], "give --miller or --max-index, not both"),
        (["-b", "Pt", "--layers", "4", "--min-slab-size", "5"], "give --min-slab-size or --layers"),
        (["-b", "Pt", "--repeat", "2x2", "--min-ab", "5"], "give --min-ab or --repeat, not both"),
        (["-b", "Pt", "--repeat", "2x"], "bad setting repeat: bad repeat '2x'"),
        (["-b", "Pt", "-m", "2,1,1", "--layers", "3"], "Pt (2,1,1) needs at least 4 layers"),
        (["-b", "Ru", "-m", "20-21", "--layers", "6"], "Ru (2,0,-2,1) needs at least 8 layers"),
        (["-b", "Ru", "-m", "0001", "-m", "001"], "Ru: facet 0,0,0,1 given twice (a multiple"),
        (["-b", "Pt", "--max-terminations", "0"], "bad setting max_terminations"),
        # "cannot read bulk file ...: AssertionError", and a folder was "not found"
        (["-b", "{binary}", "-a", "O"], "binary.cif: not a structure file ASE can parse"),
        (["-b", "{folder}", "-a", "O"], "bulk file {folder} is a folder"),
        (["-b", "Pt", "--custom-adsorbate", "{folder}:0"], "adsorbate file {folder} is a folder"),
        # "unknown file format 'Could not guess file type'"
        (["-b", "{noname}", "-a", "O"], "cannot tell its format: name it *.cif, POSCAR*, *.vasp"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, args, message):
    (tmp_path / "junk.cif").write_text("data_junk\n_cell_length_a oops\n")
    (tmp_path / "qq.xyz").write_text("2\n\nQq 0 0 0\nPt 0 0 2\n")
    (tmp_path / "mixed.cif").write_text(MIXED_CIF)
    (tmp_path / "nan.extxyz").write_text(
        '1\nLattice="nan 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3 pbc="T T T"\nPt 0 0 0\n'
    )
    (tmp_path / "binary.cif").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "folder.cif").mkdir()
    (tmp_path / "NiAl_B2").write_text(
        "Ni Al\n2.88\n1 0 0\n0 1 0\n0 0 1\nNi Al\n1 1\nDirect\n0 0 0\n"
    )
    names = (("junk", "junk.cif"), ("qq", "qq.xyz"), ("mixed", "mixed.cif"), ("nan", "nan.extxyz"))
    names += (("binary", "binary.cif"), ("folder", "folder.cif"), ("noname", "NiAl_B2"))
    files = {n: tmp_path / f for n, f in names}
    args = [a.format(missing=tmp_path / "no.xyz", **files) for a in args]
    message = message.format(**files)
    out = tmp_path / "out"
    result = runner.invoke(app, ["enumerate", *args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], lines
    assert not out.exists()


def test_layers_and_repeat_cut_every_bulk_alike(tmp_path):
    out = tmp_path / "out"
    args = ["enumerate", "-b", "Pt,Au,Ni", "-m", "111", "--layers", "4", "--repeat", "2x2"]
    result = runner.invoke(app, [*args, "--no-clean", "-a", "O", "--out", str(out)])
    assert result.exit_code == 0, result.output
    df = pd.read_parquet(out / "configs.parquet")
    assert set(df.n_atoms) == {17} and set(df.bulk) == {"Pt", "Au", "Ni"}
    assert df.groupby("bulk").size().to_dict() == {"Au": 4, "Ni": 4, "Pt": 4}  # 4 sites each
    # the thickness rule: 7 A is 6 layers of Pt, 3 of Au, and 8 A wide is 3x3
    result = runner.invoke(app, ["enumerate", "-b", "Pt,Au", "-m", "111", "--out", str(out / "d")])
    assert result.exit_code == 0, result.output
    slabs = pd.read_parquet(out / "d" / "configs.parquet").query("kind == 'slab'")
    assert slabs.set_index("bulk").n_atoms.to_dict() == {"Pt": 54, "Au": 27}
    # the summary says how many layers each slab has
    args = ["enumerate", "-b", "Pt,Au", "-m", "111", "-a", "O", "--dry-run"]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    rows = {
        line.split("│")[1].strip(): line.split("│")[4].strip()
        for line in result.output.splitlines()
        if line.count("│") > 5 and "(1,1,1)" in line
    }
    assert rows == {"Pt": "6", "Au": "3"}, result.output


def test_max_terminations_keeps_the_first_of_each_facet(tmp_path):
    """Ru(10-11) has two terminations; the second needs 4 layers, the first 3."""
    args = ["enumerate", "-b", "Ru", "-m", "10-11", "--layers", "3", "--no-clean", "-a", "H"]
    result = runner.invoke(app, [*args, "--dry-run"])
    assert result.exit_code == 2 and "0: 3, 1: 4 (max_terminations / --max-terminations 1" in (
        result.output
    )
    result = runner.invoke(app, [*args, "--max-terminations", "1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    df = pd.read_parquet(tmp_path / "configs.parquet")
    assert set(df.termination) == {0} and len(df) > 1


def test_help_reads_like_a_man_page():
    result = runner.invoke(app, ["enumerate", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for word in (
        "--bulk",
        "--miller",
        "--max-index",
        "--adsorbates",
        "--custom-adsorbate",
        "--placement",
        "--seed",
        "--min-ab",
        "--dry-run",
        "configs.parquet",
        "Example",
    ):
        assert word in result.output, word


def test_miller_written_with_spaces_is_one_index(tmp_path):
    out = tmp_path / "x"
    result = runner.invoke(
        app, ["enumerate", "--bulk", "Pt", "--miller", "1 1 1", "-a", "O", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert set(pd.read_parquet(out / "configs.parquet")["miller"]) == {"1,1,1"}


@pytest.mark.parametrize(
    ("given", "facets"),
    [
        (["1, 1, 1"], ["1,1,1"]),  # "cannot read Miller index '1,'" before
        (["(1 1 1) (1 0 0)"], ["1,1,1", "1,0,0"]),
        (["111 100"], ["111", "100"]),
        (["1,1,1 1,0,0;1 -1 0"], ["1,1,1", "1,0,0", "1,-1,0"]),
    ],
)
def test_miller_spellings_people_write(given, facets):
    from catscreen.cli.enumerate import _many_miller

    assert _many_miller(given) == facets


def test_settings_that_are_no_number_or_no_facet_are_refused():
    """`--min-ab inf` was an OverflowError traceback; (0, 0, 0) divided by zero in the API and
    an inconsistent (1, 0, 0, 1) was cut as (1, 0, 1)."""
    from catscreen.build.enumerate import EnumerateSettings

    result = runner.invoke(
        app, ["enumerate", "-b", "Pt", "-a", "O", "--min-ab", "inf", "--dry-run"]
    )
    assert result.exit_code == 2 and "min_ab: Input should be a finite number" in result.output
    for bad, why in (((0, 0, 0), "cannot read Miller index"), ((1, 0, 0, 1), "inconsistent")):
        with pytest.raises(CatscreenError, match=why):
            EnumerateSettings(bulks=["Pt"], miller=[bad])
    assert EnumerateSettings(bulks=["Pt"], miller=[(1, 1, 1)]).miller == [(1, 1, 1)]


def test_flags_show_no_value_type_in_help():
    for args in (["--help"], ["enumerate", "--help"]):
        result = runner.invoke(app, args, env={"COLUMNS": "200"})
        assert result.exit_code == 0 and "--help" in result.output
        assert "<bool>" not in result.output, args
    assert "<float>" in runner.invoke(app, ["enumerate", "--help"]).output


def test_a_bulk_file_whose_symmetry_is_noise_lowered_is_noted(tmp_path):
    """Primitive fcc Pt with 0.5% of cell noise reads as R-3m at 0.01 A, and `1,0,0` then
    means another facet; the user is told, the cell is not changed behind their back."""
    from ase.build import bulk
    from ase.io import write

    noisy = bulk("Pt", "fcc", a=3.92)
    noisy.set_cell(noisy.cell * [[1.005], [1.0], [1.0]], scale_atoms=True)
    write(tmp_path / "pt_noisy.extxyz", noisy)
    write(tmp_path / "pt_clean.extxyz", bulk("Pt", "fcc", a=3.92))
    strained = bulk("Pt", "fcc", a=3.92)  # 1%: pymatgen finds no group (a traceback before)
    strained.set_cell(strained.cell * [[1.01], [1.0], [1.0]], scale_atoms=True)
    write(tmp_path / "pt_strained.extxyz", strained)
    args = ["enumerate", "--bulk", str(tmp_path / "pt_strained.extxyz"), "--miller", "1,1,1"]
    res = runner.invoke(app, [*args, "--dry-run"])
    assert res.exit_code == 2 and "no space group found for Pt at 0.01 A" in res.stderr
    for name, noted in (("pt_noisy", True), ("pt_clean", False)):
        args = ["enumerate", "--bulk", str(tmp_path / f"{name}.extxyz"), "--miller", "1,1,1"]
        res = runner.invoke(app, [*args, "--dry-run"])
        assert res.exit_code == 0, res.output
        text = " ".join(res.stderr.split())
        assert ("Fm-3m at 0.1 A: Miller indices refer to the" in text) == noted, text


def _write_compounds(tmp_path):
    """Fluorite CeO2 and wurtzite ZnO as a user's CIF files."""
    from pymatgen.core import Lattice, Structure

    ceo2 = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(5.41), ["Ce", "O"], [[0, 0, 0], [0.25, 0.25, 0.25]]
    )
    zno = Structure.from_spacegroup(
        "P6_3mc",
        Lattice.hexagonal(3.25, 5.21),
        ["Zn", "O"],
        [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, 0.382]],
    )
    ceo2.to(filename=str(tmp_path / "CeO2.cif"))
    zno.to(filename=str(tmp_path / "ZnO.cif"))
    return tmp_path / "CeO2.cif", tmp_path / "ZnO.cif"


def test_slabs_off_their_bulks_composition_and_polar_slabs_are_noted(tmp_path):
    """Layers cut CeO2(111) into CeO and CeO3 slabs (ranked as CeO2); ZnO(0001) and CeO2(100)
    carry a dipole across the slab (Tasker type 3); a metal and the default thickness are
    noted for neither."""
    from pymatgen.core import Lattice, Structure

    ceo2, zno = _write_compounds(tmp_path)
    args = ["enumerate", "--no-clean", "-a", "H", "--dry-run"]
    result = runner.invoke(app, [*args, "-b", str(ceo2), "-m", "111", "--layers", "4"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split("┏")[0].split())  # the notes
    assert "composition: CeO2(1,1,1) termination 0 Ce18O18, 1 Ce9O27, 2 Ce9O27;" in text
    assert "polar slabs" in text and "CeO2(1,1,1) termination 1, 2" in text
    result = runner.invoke(app, [*args, "-b", str(ceo2), "-m", "111"])  # whole bulk cells
    text = " ".join(result.output.split("┏")[0].split())  # the notes
    assert result.exit_code == 0 and "composition" not in text, text
    result = runner.invoke(app, [*args, "-b", str(ceo2), "-m", "110", "-m", "100"])
    text = " ".join(result.output.split("┏")[0].split())  # the notes
    assert (
        "polar slabs" in text and "CeO2(1,0,0) termination 0, 1;" in text and "(1,1,0)" not in text
    )
    result = runner.invoke(app, [*args, "-b", str(zno), "-m", "0001", "--max-terminations", "1"])
    text = " ".join(result.output.split("┏")[0].split())  # the notes
    assert "polar slabs" in text and "ZnO(0,0,0,1) [miller 0,0,1] termination 0;" in text
    assert "(another composition on an alloy or compound)" in text
    result = runner.invoke(app, [*args, "-b", "Pt3Ni,Pt", "-m", "111", "--layers", "3"])
    assert result.exit_code == 0 and "note" not in result.output, result.output
    # a carbide's formal charges (W4+ C4-) called every facet of metallic WC polar
    wc = Structure.from_spacegroup("P-6m2", Lattice.hexagonal(2.91, 2.84), ["W", "C"],
                                   [[0, 0, 0], [1 / 3, 2 / 3, 0.5]])  # fmt: skip
    wc.to(filename=str(tmp_path / "WC.cif"))
    result = runner.invoke(app, [*args, "-b", str(tmp_path / "WC.cif"), "--max-index", "1"])
    assert result.exit_code == 0 and "polar" not in result.output, result.output


def test_paths_with_brackets_are_printed_as_written_and_lines_stay_whole(tmp_path):
    """`--out cfg[v2]` was read as markup and printed `cfg/...`; `r[/old]` raised MarkupError
    after the work was done. A note is one line in a log (it was wrapped at 80 columns)."""
    out = tmp_path / "cfg[/old]"
    args = ["enumerate", "-b", "Co", "-m", "10-10", "-a", "O", "--layers", "4", "--out", str(out)]
    result = runner.invoke(app, [*args, "--max-terminations", "1", "--repeat", "1x1"])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}/configs.parquet and {out}/configs.extxyz" in result.output
    assert (out / "configs.parquet").is_file()
    notes = [line for line in result.stderr.splitlines() if line.startswith("note:")]
    assert notes and all(len(line) > 80 for line in notes)  # each whole on its line
