"""Bulks, slabs, sites, adsorbates and placements one by one."""

from __future__ import annotations

import copy
import json
import re
from collections import Counter

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.io import write
from pydantic import ValidationError
from pymatgen.core.surface import SlabGenerator

import catscreen.build.slabs as slabs_module
from catscreen.build.adsorbates import adsorbate_library, get_adsorbate, load_custom_adsorbate
from catscreen.build.bulks import Bulk, bulk_library, library_bulk, load_bulks
from catscreen.build.enumerate import EnumerateSettings, enumerate_configurations
from catscreen.build.placements import (
    Orientation,
    distance_ratios,
    min_distance_ratio,
    nudged,
    place,
)
from catscreen.build.sites import find_sites
from catscreen.build.slabs import atom_layers, make_slabs, parse_miller
from catscreen.errors import CatscreenError


def test_bulk_library_covers_the_metals_of_catalysis_with_sources():
    library = bulk_library()
    needed = "Sc Ti V Cr Mn Fe Co Ni Cu Zn Y Zr Nb Mo Tc Ru Rh Pd Ag Cd Hf Ta W Re Os Ir Pt Au"
    assert set(needed.split()) | {"Al", "Mg", "Li", "Ba", "La", "Ce"} <= set(library)
    assert sum(1 for e in library.values() if "elements" in e) >= 5  # binary alloys
    assert all(e["source"] for e in library.values())


@pytest.mark.parametrize("name", ["Pt", "Fe", "Co", "Ni3Al", "CuPd", "PtCo"])
def test_library_bulks_build_with_the_right_density(name):
    b = library_bulk(name)
    entry = bulk_library()[name]
    s = b.structure
    assert s.is_ordered and s.lattice.volume > 0
    if entry["structure"] in ("fcc", "L1_2"):
        assert s.lattice.volume / len(s) == pytest.approx(entry["a"] ** 3 / 4, rel=1e-6)
    if entry["structure"] == "B2":
        assert b.formula == "".join(entry["elements"]) or len(s) == 2


def test_bulk_from_files_and_bad_bulks(tmp_path):
    write(tmp_path / "CuX.cif", bulk("Cu", "fcc", a=3.6))
    write(tmp_path / "two.extxyz", [bulk("Cu", "fcc", a=3.6), bulk("Ag", "fcc", a=4.09)])
    names = [b.name for b in load_bulks([str(tmp_path / "CuX.cif"), str(tmp_path / "two.extxyz")])]
    assert names == ["CuX", "two_0", "two_1"]
    (tmp_path / "junk.cif").write_text("not a cif\n")
    with pytest.raises(CatscreenError, match="cannot read bulk file"):
        load_bulks([str(tmp_path / "junk.cif")])
    with pytest.raises(CatscreenError, match="element Hg has no entry"):
        load_bulks(["Hg"])
    with pytest.raises(CatscreenError, match="unknown bulk"):
        load_bulks(["Unobtainium"])
    doubled = bulk("Pt", "fcc", a=3.92, cubic=True)
    doubled += doubled[:1]  # a site listed twice (CIF readers merge these; POSCAR does not)
    write(tmp_path / "POSCAR", doubled, format="vasp")
    with pytest.raises(CatscreenError, match=r"atoms 0 and 4 \(Pt, Pt\) are 0.00 A apart"):
        load_bulks([str(tmp_path / "POSCAR")])


def test_files_that_are_no_bulk_crystal_are_refused(tmp_path):
    """Each was enumerated before (exit 0): graphene with 20 A of c cut through the sheet, a
    boxed CO as a solid, a POSCAR in units of a with 2160-atom slabs, a ghost atom."""
    from ase.build import graphene

    sheet = graphene(vacuum=10.0)
    sheet.pbc = True
    co = molecule("CO", vacuum=5.0)
    co.pbc = True
    units_of_a = bulk("Pt", "fcc", a=1.0, cubic=True)
    ghost = bulk("Cu", "fcc", a=3.6, cubic=True)
    ghost.numbers[0] = 0
    cases = [
        (sheet, "20.0 A of empty space across its cell (along c)"),
        (co, "of empty space across its cell"),
        (units_of_a, "under half a Pt-Pt bond: is the cell in other units"),
        (ghost, "holds ghost atoms (X)"),
    ]
    for k, (atoms, message) in enumerate(cases):
        write(tmp_path / f"b{k}.extxyz", atoms)
        with pytest.raises(CatscreenError, match=re.escape(message)):
            load_bulks([str(tmp_path / f"b{k}.extxyz")])
    with pytest.raises(CatscreenError, match="bulk file not found: nope/Pt.cif"):
        load_bulks(["nope/Pt.cif"])
    (tmp_path / "x.txt").write_text("hello\n")
    with pytest.raises(CatscreenError, match="unknown file format 'txt'"):
        load_bulks([str(tmp_path / "x.txt")])
    write(tmp_path / "ar.cif", bulk("Ar", "fcc", a=5.26))  # a van der Waals solid is one
    assert load_bulks([str(tmp_path / "ar.cif")])[0].formula == "Ar"


def test_a_cif_occupancy_of_question_mark_is_a_full_site(tmp_path):
    """`?` and `.` are legal CIF values; ASE keeps them as text (a traceback before)."""
    text = (
        "data_m\n_cell_length_a 3.92\n_cell_length_b 3.92\n_cell_length_c 3.92\n"
        "_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n"
        "_symmetry_space_group_name_H-M 'F m -3 m'\nloop_\n_atom_site_label\n"
        "_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n"
        "_atom_site_occupancy\nPt1 Pt 0 0 0 {}\n"
    )
    for k, occupancy in enumerate(("?", ".", "1.0")):
        (tmp_path / f"pt{k}.cif").write_text(text.format(occupancy))
        assert len(load_bulks([str(tmp_path / f"pt{k}.cif")])[0].structure) == 4
    (tmp_path / "half.cif").write_text(text.format("0.5"))
    with pytest.raises(CatscreenError, match="partial occupancies"):
        load_bulks([str(tmp_path / "half.cif")])


def _symbol_only_cif(cellpar: str, symmetry: str, site: str) -> str:
    a, alpha = cellpar.split()
    cell = "".join(f"_cell_length_{x} {a}\n" for x in "abc")
    cell += "".join(f"_cell_angle_{x} {alpha}\n" for x in ("alpha", "beta", "gamma"))
    return (
        f"data_x\n{cell}{symmetry}\nloop_\n_atom_site_label\n_atom_site_type_symbol\n"
        f"_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n{site}\n"
    )


@pytest.mark.parametrize(
    ("cellpar", "symmetry", "site", "atoms", "number"),
    [  # diamond Si in origin choice 2, by symbol suffix and by coordinate-system code
        (
            "5.431 90",
            "_symmetry_space_group_name_H-M 'F d -3 m :2'",
            "Si Si .125 .125 .125",
            8,
            227,
        ),
        (
            "5.431 90",
            "_symmetry_Int_Tables_number 227\n_space_group.IT_coordinate_system_code 2",
            "Si Si .125 .125 .125",
            8,
            227,
        ),  # the same in origin choice 1, as before
        ("5.431 90", "_symmetry_space_group_name_H-M 'F d -3 m :1'", "Si Si 0 0 0", 8, 227),
        # Bi (A7) given on rhombohedral axes: 6 atoms in the hexagonal conventional cell
        (
            "4.746 57.23",
            "_symmetry_space_group_name_H-M 'R -3 m :R'",
            "Bi Bi .2339 .2339 .2339",
            6,
            166,
        ),
    ],
)
def test_a_cif_is_read_in_the_setting_its_symbol_names(
    tmp_path, cellpar, symmetry, site, atoms, number
):
    """ASE read a CIF without symmetry operations in the first setting whatever its symbol said:
    Si in origin choice 2 came out with 16 atoms 1.92 A apart, unnoticed."""
    (tmp_path / "x.cif").write_text(_symbol_only_cif(cellpar, symmetry, site))
    (x,) = load_bulks([str(tmp_path / "x.cif")])
    assert len(x.structure) == atoms and x.structure.get_space_group_info()[1] == number
    bond = min(x.structure.get_neighbors(x.structure[0], 3.2), key=lambda n: n.nn_distance)
    assert bond.nn_distance > 2.3  # Si-Si 2.35, Bi-Bi 3.07


def test_a_cif_setting_that_cannot_be_applied_is_one_line(tmp_path):
    symmetry = "_symmetry_space_group_name_H-M 'P 1 1 21/c :c2'\n_symmetry_Int_Tables_number 14"
    (tmp_path / "m.cif").write_text(_symbol_only_cif("5.0 90", symmetry, "Si Si .1 .2 .3"))
    with pytest.raises(CatscreenError, match="setting 'c2' cannot be applied without symmetry"):
        load_bulks([str(tmp_path / "m.cif")])


def test_a_cif_with_symmetry_operations_only_is_read_by_pymatgen(tmp_path):
    """ASE needs a space-group symbol or number; a CIF giving only the operations failed."""
    (tmp_path / "pt_ops.cif").write_text(
        "data_pt\n_cell_length_a 3.92\n_cell_length_b 3.92\n_cell_length_c 3.92\n"
        "_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n"
        "loop_\n_symmetry_equiv_pos_as_xyz\n 'x, y, z'\n '-x, -y, -z'\n"
        "loop_\n_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n"
        "_atom_site_fract_y\n_atom_site_fract_z\nPt1 Pt 0 0 0\nPt2 Pt 0 0.5 0.5\n"
        "Pt3 Pt 0.5 0 0.5\nPt4 Pt 0.5 0.5 0\n"
    )
    (pt,) = load_bulks([str(tmp_path / "pt_ops.cif")])
    assert pt.name == "pt_ops" and pt.structure.get_space_group_info()[1] == 225
    for sub in ("a", "b"):  # VASP's naming: every file a POSCAR
        (tmp_path / sub).mkdir()
        write(tmp_path / sub / "POSCAR", bulk("Cu", "fcc", a=3.6, cubic=True), format="vasp")
    names = [str(tmp_path / sub / "POSCAR") for sub in ("a", "b")]
    with pytest.raises(CatscreenError, match="a file is named by its stem: rename one"):
        load_bulks(names)


def test_a_strained_bulk_keeps_its_lattice(tmp_path):
    """Standardising picks the setting; it must not average away a strain put in on purpose."""
    strained = bulk("Pt", "fcc", a=3.92, cubic=True)
    strained.set_cell(np.diag([3.92, 3.92, 4.00]), scale_atoms=True)
    write(tmp_path / "PtT.cif", strained)
    (pt,) = load_bulks([str(tmp_path / "PtT.cif")])
    # body-centred tetragonal in its standard cell: a = 3.92 / sqrt(2), c = 4.00 (was cubic)
    a = 3.92 / np.sqrt(2)
    assert sorted(pt.structure.lattice.abc) == pytest.approx([a, a, 4.00], abs=1e-6)
    assert pt.structure.volume / len(pt.structure) == pytest.approx(3.92**2 * 4.00 / 4)


def test_ids_do_not_follow_a_file_s_atom_order_or_origin(tmp_path):
    """The same Pt3Ni written in another atom order got other slab, config ids and seeds."""
    atoms = library_bulk("Pt3Ni").structure.to_ase_atoms()
    for folder, order in (("a", [0, 1, 2, 3]), ("b", [3, 1, 0, 2])):
        (tmp_path / folder).mkdir()
        write(tmp_path / folder / "Pt3Ni.vasp", atoms[order], format="vasp")

    def ids(folder):
        images = enumerate_configurations(
            EnumerateSettings(
                bulks=[str(tmp_path / folder / "Pt3Ni.vasp")], miller=["1,1,1"], adsorbates=["O"]
            )
        )
        return sorted(a.info["config_id"] for a in images)

    first, second = (load_bulks([str(tmp_path / d / "Pt3Ni.vasp")])[0] for d in "ab")
    assert np.allclose(first.structure.frac_coords, second.structure.frac_coords)
    assert first.fingerprint() == second.fingerprint()
    assert ids("a") == ids("b")
    # nor its origin: spglib's standard cell put Ni or a Pt at 0 as the file had it (and hcp
    # either inversion centre; a polar axis anywhere): other slab shifts and ids
    for folder, shift in (("c", [0.5, 0.5, 0.5]), ("d", [0.37, 0.11, 0.9])):
        (tmp_path / folder).mkdir()
        moved = atoms.copy()
        moved.translate(np.dot(shift, moved.cell))
        moved.wrap()
        write(tmp_path / folder / "Pt3Ni.vasp", moved, format="vasp")
        assert load_bulks([str(tmp_path / folder / "Pt3Ni.vasp")])[0].fingerprint() == (
            first.fingerprint()
        )
    assert ids("c") == ids("a") == ids("d")
    fingerprints = set()
    for k, shift in enumerate(([0, 0, 0], [0.1, 0.2, 0.3], [0.37, 0.11, 0.9])):
        polar = bulk("ZnO", "wurtzite", a=3.25, c=5.2)  # P6_3mc: free along c
        polar.translate(np.dot(shift, polar.cell))
        polar.wrap()
        write(tmp_path / f"ZnO{k}.vasp", polar, format="vasp")
        (made,) = load_bulks([str(tmp_path / f"ZnO{k}.vasp")])
        fingerprints.add(Bulk("ZnO", made.structure, "").fingerprint())  # names differ
    assert len(fingerprints) == 1


# one P-1 AuCu crystal written with two origins and atom orders (a review's case)
AUCU_FILES = {
    "a": """Cu Au Cu
 1.0000000000000000
     3.8999999999999999    0.0000000000000000    0.0000000000000000
    -0.9222993228098456    3.9949172656194643    0.0000000000000000
    -0.5362251109826485    0.3482258400161947    4.3532977608586192
 Cu  Au  Cu
   1   2   1
Cartesian
  1.8906465042286646  1.6502007822502149  0.6529946641287929
  2.3968029640642694  3.4396919005069075  3.0473084326010333
  0.0446726021432364  0.9034512051287512  1.3059893282575856
  0.5508290619788417  2.6929423233854446  3.7003030967298263
""",
    "b": """Au Cu Au
 1.0000000000000000
     3.8999999999999999    0.0000000000000000    0.0000000000000000
    -0.9222993228098456    3.9949172656194643    0.0000000000000000
    -0.5362251109826485    0.3482258400161947    4.3532977608586192
 Au  Cu  Au
   1   2   1
Cartesian
 -1.1980125901597916  3.9825847887113652  3.5914706527083613
  2.1958309500046025  2.1930936704546724  1.1971568842361204
  0.8560135077547800  3.2358352115899014  4.2444653168371538
  0.3498570479191745  1.4463440933332088  1.8501515483649129
""",
}


def test_a_triclinic_file_s_origin_gives_one_set_of_slabs_and_ids(tmp_path):
    """The same fingerprint, but one copy stored a coordinate as 0.9999999999999998 where the
    other had 0: slab shifts 1.0 and 0.0, and 113 of 152 config ids in common; the origin
    was chosen by float remainders (0.35230000000000006) before."""
    ids = []
    for name, text in AUCU_FILES.items():
        (tmp_path / name).mkdir()
        path = tmp_path / name / "AuCu.vasp"
        path.write_text(text)
        images = enumerate_configurations(
            EnumerateSettings(bulks=[str(path)], miller=["1,0,0"], adsorbates=["O"])
        )
        assert max(float(a.info["shift"]) for a in images) < 1.0
        ids.append(sorted(a.info["config_id"] for a in images))
    assert ids[0] == ids[1] and len(ids[0]) > 100


def test_ids_do_not_follow_the_sign_of_a_rounded_zero():
    """A -2e-16 in Pt's lattice (one numpy/pymatgen) rounded to -0.0 where another's 6e-16
    gave 0.0: the bulk's fingerprint, and so every id of a campaign, changed with the install.
    The adsorbate geometry and orientation hashes round the same way."""
    from pymatgen.core import Lattice, Structure

    pt = library_bulk("Pt")
    fingerprints = set()
    for noise in (6.3e-16, -2.4e-16):
        matrix = pt.structure.lattice.matrix.copy()
        matrix[0, 1] = noise
        structure = Structure(Lattice(matrix), pt.structure.species, pt.structure.frac_coords)
        fingerprints.add(Bulk(pt.name, structure, pt.source).fingerprint())
    assert fingerprints == {pt.fingerprint()}
    co = adsorbate_library()["CO"]
    moved = copy.deepcopy(co)
    moved.atoms.positions[:, 0] = -1e-9  # rounds to -0.0
    assert moved.identity() == co.identity()
    turned = (Orientation(-1e-9, 0.0, -1e-9), Orientation(0.0, 0.0, 0.0))  # -0.0 == 0.0: as JSON
    assert json.dumps(turned[0].identity()) == json.dumps(turned[1].identity())


def test_slab_and_site_ids_follow_the_vacuum_not_float_noise():
    def ids(vacuum):
        images = enumerate_configurations(
            EnumerateSettings(bulks=["Pt"], miller=["1,1,1"], adsorbates=["O"], vacuum=vacuum)
        )
        return {a.info["site_type"]: (a.info["slab_id"], a.info["config_id"]) for a in images}

    default, other, again = ids(20.0), ids(12.0), ids(20.0)
    assert default == again
    assert {s for s, _ in default.values()}.isdisjoint({s for s, _ in other.values()})
    assert len({c for _, c in default.values()} | {c for _, c in other.values()}) == 10


def test_non_binding_atoms_start_clear_of_the_surface():
    """CH4 binds through C; its downward H must not start inside a Pt-H bond (was 1.3 A)."""
    from ase.data import covalent_radii
    from ase.geometry import get_distances

    images = enumerate_configurations(
        EnumerateSettings(bulks=["Pt"], miller=["1,1,1"], adsorbates=["CH4"], include_clean=False)
    )
    assert len(images) == 4
    bond = covalent_radii[1] + covalent_radii[78]
    for atoms in images:
        h = np.flatnonzero(atoms.numbers == 1)
        pt = np.flatnonzero(atoms.numbers == 78)
        _, d = get_distances(atoms.positions[h], atoms.positions[pt], atoms.cell, atoms.pbc)
        assert d.min() >= bond - 1e-6, atoms.info["site_type"]


def test_an_adsorbate_overlapping_its_own_image_is_an_error():
    settings = EnumerateSettings(bulks=["Pt"], miller=["1,1,1"], adsorbates=["C2H4"], min_ab=2.0)
    with pytest.raises(CatscreenError, match="C2H4 overlaps its own periodic image"):
        enumerate_configurations(settings)


def test_parse_miller():
    assert parse_miller("1,1,1") == (1, 1, 1)
    assert parse_miller("111") == (1, 1, 1)
    assert parse_miller("0,0,0,1") == (0, 0, 1)
    assert parse_miller("1,-1,0") == (1, -1, 0)
    for bad in ("0,0,0", "1,1", "a,b,c", "1,0,0,1"):
        with pytest.raises(CatscreenError):
            parse_miller(bad)


def test_fcc100_sites_and_slab_defaults():
    (slab,) = make_slabs(library_bulk("Pt"), (1, 0, 0), 7.0, 20.0, 8.0)
    a = slab.atoms
    assert min(a.cell.lengths()[:2]) >= 8.0
    assert a.cell[2, 2] - np.ptp(a.positions[:, 2]) >= 20.0 - 1e-6
    assert np.ptp(a.positions[:, 2]) >= 7.0 - 2.0  # min_slab_size counts one interlayer gap
    sites = find_sites(a, slab.bulk.d_nn)
    assert Counter(s.kind for s in sites) == {"ontop": 1, "bridge": 1, "4fold": 1}
    assert [len(s.atoms) for s in sites] == [1, 2, 4]
    assert all(a.get_tags()[list(s.atoms)].tolist() == [1] * len(s.atoms) for s in sites)


@pytest.mark.parametrize(
    ("name", "miller", "layers"),
    [("Pt", (1, 1, 1), 1), ("Pt", (1, 0, 0), 1), ("Fe", (1, 0, 0), 1), ("Fe", (1, 1, 0), 1),
     ("Ru", (0, 0, 1), 1), ("Pt", (1, 1, 0), 2), ("Fe", (1, 1, 1), 3), ("Pt", (2, 1, 1), 3)],
)  # fmt: skip
def test_surface_atoms_are_the_ones_not_surrounded_from_above(name, miller, layers):
    """Flat facets expose their top layer; the trough of fcc(110), three layers of bcc(111) and
    the whole terrace of fcc(211) are exposed, the step's foot included: the step-edge atom
    above covers it from one side only (as near in-plane as the atoms over a bcc(100) hollow,
    which stays subsurface). Every bridge and hollow is then made of neighbours (bcc: within
    its second shell, the lattice constant)."""
    slab = make_slabs(library_bulk(name), miller, 7.0, 20.0, 8.0)[0]
    a, d_nn = slab.atoms, slab.bulk.d_nn
    z = np.round(a.positions[:, 2], 2)
    heights = sorted(set(z), reverse=True)
    assert (a.get_tags() == 1).tolist() == (z >= heights[layers - 1]).tolist()
    for site in find_sites(a, d_nn):
        for i in site.atoms:
            others = [j for j in site.atoms if j != i]
            if others:
                assert a.get_distances(i, others, mic=True).min() < 1.2 * d_nn, site  # bcc: a


def test_asymmetric_slab_contributes_its_bottom_termination():
    slabs = make_slabs(library_bulk("Ni3Al"), (1, 0, 0), 7.0, 20.0, 8.0)
    sides = [s.side for s in slabs]
    assert "bottom" in sides and len({s.slab_id for s in slabs}) == len(slabs)
    tops = set()
    for s in slabs:
        surface = s.atoms[s.atoms.get_tags() == 1]
        tops.add(surface.get_chemical_formula())
    assert len(tops) == 2  # one termination exposes Al, the other only Ni


def test_adsorbate_library():
    library = adsorbate_library()
    assert len(library) >= 25
    for name in ("H", "O", "OOH", "COOH", "CH4", "NNH", "N2H2", "C2H2", "C2H4", "HCOO", "NO"):
        assert name in library
    for ads in library.values():
        z = ads.atoms.positions[:, 2]
        assert np.allclose(z[list(ads.binding)], 0.0)
        d = ads.atoms.get_all_distances()[np.triu_indices(len(ads.atoms), 1)]
        assert (d > 0.9).all(), ads.name
    assert {n for n, a in library.items() if a.bidentate} >= {"C2H2", "C2H4", "N2H2", "HCOO"}
    with pytest.raises(CatscreenError, match="unknown adsorbate"):
        get_adsorbate("XYZ")
    # what a caller is given is its own: rotating it placed CO O-down in later enumerations
    before = get_adsorbate("CO").atoms.positions.copy()
    get_adsorbate("CO").atoms.rotate(180, "x")
    library["CO"].atoms.positions += 1.0
    assert np.array_equal(get_adsorbate("CO").atoms.positions, before)
    assert np.array_equal(adsorbate_library()["CO"].atoms.positions, before)


def test_sites_of_an_untagged_slab_ask_for_tags():
    """scipy's "No points given" said nothing of the tags find_sites reads."""
    from ase.build import fcc111

    untagged = fcc111("Pt", (2, 2, 3), vacuum=6.0)
    untagged.set_tags(0)
    with pytest.raises(CatscreenError, match=r"no surface atoms \(tag 1.*tag_and_fix"):
        find_sites(untagged, 2.77)


def test_bidentate_placed_with_both_binding_atoms_down():
    (slab,) = make_slabs(library_bulk("Pt"), (1, 1, 1), 7.0, 20.0, 8.0)
    sites = find_sites(slab.atoms, slab.bulk.d_nn)
    bridge = next(s for s in sites if s.kind == "bridge")
    ads = get_adsorbate("C2H4")
    atoms = place(slab.atoms, bridge, ads, Orientation())
    n = len(slab.atoms)
    z = atoms.positions[n:, 2]
    assert np.allclose(z[list(ads.binding)], z.min())
    assert min_distance_ratio(slab.atoms, atoms[n:]) >= 0.7


def test_custom_adsorbate(tmp_path):
    write(tmp_path / "methanol.xyz", molecule("CH3OH"))
    o_index = molecule("CH3OH").get_chemical_symbols().index("O")
    ads = load_custom_adsorbate(f"{tmp_path / 'methanol.xyz'}:{o_index}")
    assert ads.name == "methanol" and ads.binding == (o_index,)
    assert np.allclose(ads.atoms.positions[o_index], 0.0)
    # every other atom above the binding O: the centroid rule put the OH hydrogen 0.17 A below
    assert (np.delete(ads.atoms.positions[:, 2], o_index) > 0.1).all()
    settings = EnumerateSettings(
        bulks=["Cu"], miller=["1,1,1"], custom_adsorbates=[f"{tmp_path / 'methanol.xyz'}:{o_index}"]
    )
    images = enumerate_configurations(settings)
    assert {a.info["adsorbate"] for a in images} == {"none", "methanol"}
    for bad in ("methanol.xyz", f"{tmp_path / 'methanol.xyz'}:99", f"{tmp_path / 'nope.xyz'}:0"):
        with pytest.raises(CatscreenError):
            load_custom_adsorbate(bad)


@pytest.mark.parametrize(
    ("frames", "message"),
    [  # read() took the last of several frames; X has no element; two atoms on one spot
        (
            [
                Atoms("CO", positions=[[0, 0, 0], [0, 0, 1.15]]),
                Atoms("CO", positions=[[0] * 3, [0, 0, 3]]),
            ],
            "holds 2 structures; give one molecule",
        ),
        ([Atoms("CX", positions=[[0, 0, 0], [0, 0, 1.2]])], "unknown element X"),
        ([Atoms("COO", positions=[[0, 0, 0], [0, 0, 1.2], [0, 0, 1.2]])], "are 0.00 A apart"),
    ],
)
def test_custom_adsorbate_files_that_would_mislead_are_refused(tmp_path, frames, message):
    write(tmp_path / "m.xyz", frames)
    with pytest.raises(CatscreenError, match=message):
        load_custom_adsorbate(f"{tmp_path / 'm.xyz'}:0")


@pytest.mark.parametrize(("name", "miller"), [("Pt", (2, 1, 1)), ("Pt", (1, 1, 0))])
def test_a_bidentate_across_a_step_bridge_binds_with_both_ends(name, miller):
    """Across a bridge whose atoms differ in height the species tilts with it: flat, one
    binding O of HCOO sat 3.0 A from Pt on Pt(211) (1.5x the bond); flat bridges as before."""
    settings = EnumerateSettings(
        bulks=[name], miller=[",".join(map(str, miller))], adsorbates=["HCOO"],
        include_clean=False, nudge=0.0,
    )  # fmt: skip
    ads = get_adsorbate("HCOO")
    tilted = 0
    for image in enumerate_configurations(settings):
        if image.info["site_type"] != "bridge":
            continue
        n = int((image.get_tags() != 2).sum())
        slab, binding = image[:n], image[n:][list(ads.binding)]
        assert distance_ratios(slab, binding).max() < 1.15, image.info["site_atoms"]
        i, j = map(int, image.info["site_atoms"].split(","))
        tilted += abs(image.positions[i, 2] - image.positions[j, 2]) > 0.1
    assert tilted


def test_custom_adsorbate_with_partial_occupancies_is_refused(tmp_path):
    """ASE keeps one species of a mixed site: CO with a half-N O site would silently become CN."""
    (tmp_path / "dis.cif").write_text(
        "data_m\n_cell_length_a 10\n_cell_length_b 10\n_cell_length_c 10\n"
        "_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n"
        "_symmetry_space_group_name_H-M 'P 1'\nloop_\n_atom_site_label\n_atom_site_type_symbol\n"
        "_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n_atom_site_occupancy\n"
        "C1 C 0.5 0.5 0.5 1\nO1 O 0.5 0.5 0.615 0.5\nN1 N 0.5 0.5 0.615 0.5\n"
    )
    with pytest.raises(CatscreenError, match="partial occupancies"):
        load_custom_adsorbate(f"{tmp_path / 'dis.cif'}:0")


def test_custom_adsorbate_split_across_a_periodic_boundary_is_made_whole(tmp_path):
    co = Atoms("CO", positions=[[0.2, 5, 5], [9.35, 5, 5]], cell=[10, 10, 10], pbc=True)
    write(tmp_path / "co.extxyz", co)
    ads = load_custom_adsorbate(f"{tmp_path / 'co.extxyz'}:0")
    assert ads.atoms.get_distance(0, 1) == pytest.approx(0.85)


def test_custom_adsorbate_bound_through_its_centre_lies_flat(tmp_path):
    """CO2 standing along z and bound through C: no "up" to point; it must not stand on an O."""
    co2 = Atoms("OCO", positions=[[0, 0, -1.16], [0, 0, 0], [0, 0, 1.16]])
    write(tmp_path / "co2.xyz", co2)
    ads = load_custom_adsorbate(f"{tmp_path / 'co2.xyz'}:1")
    np.testing.assert_allclose(ads.atoms.positions[:, 2], 0.0, atol=1e-9)
    assert np.ptp(ads.atoms.positions[:, 0]) == pytest.approx(2.32)
    (image,) = [
        a
        for a in enumerate_configurations(
            EnumerateSettings(
                bulks=["Pt"], miller=["1,1,1"], custom_adsorbates=[f"{tmp_path / 'co2.xyz'}:1"],
                include_clean=False, nudge=0.0,
            )
        )
        if a.info["site_type"] == "ontop"
    ]  # fmt: skip
    z = image.positions[image.get_tags() == 2, 2]
    assert np.ptp(z) < 1e-6  # flat over the surface, C not above an O


def test_nudged_moves_only_the_adsorbate_and_pivots_on_its_lowest_atom():
    (slab,) = make_slabs(library_bulk("Pt"), (1, 1, 1), 7.0, 20.0, 8.0)
    ontop = next(s for s in find_sites(slab.atoms, slab.bulk.d_nn) if s.kind == "ontop")
    atoms = place(slab.atoms, ontop, get_adsorbate("OH"), Orientation())
    n = len(slab.atoms)
    a = nudged(atoms, np.random.default_rng(7), 0.1)
    b = nudged(atoms, np.random.default_rng(7), 0.1)
    assert np.array_equal(a.positions, b.positions)
    assert np.array_equal(a.positions[:n], atoms.positions[:n])
    shift = a.positions[n] - atoms.positions[n]  # O, the lowest adsorbate atom, is the pivot
    assert np.hypot(*shift[:2]) == pytest.approx(0.1) and shift[2] == pytest.approx(0.0)
    assert np.linalg.norm(a.positions[n + 1] - a.positions[n]) == pytest.approx(
        np.linalg.norm(atoms.positions[n + 1] - atoms.positions[n])
    )
    with pytest.raises(CatscreenError, match="no adsorbate"):
        nudged(slab.atoms, np.random.default_rng(0))


def test_l10_close_packed_face_is_101_and_the_recipes_ask_for_it():
    """L1_0 bulks are in their primitive tetragonal cell, where (111) is an open face."""
    from pathlib import Path

    from catscreen.campaign.recipe import load_recipe

    def kinds(name: str, miller: tuple[int, int, int]) -> set[str]:
        slab = make_slabs(library_bulk(name), miller, 7.0, 20.0, 5.0)[0]
        return {s.kind for s in find_sites(slab.atoms, slab.bulk.d_nn)}

    assert {"fcc", "hcp"} <= kinds("PtCo", (1, 0, 1))
    assert not {"fcc", "hcp"} & kinds("PtCo", (1, 1, 1))
    l10 = {n for n, e in bulk_library().items() if e["structure"] == "L1_0"}
    recipes = sorted((Path(__file__).parents[1] / "recipes").glob("*.yaml"))
    asked = [
        (r.name, c.name, m)
        for r in map(load_recipe, recipes)
        for c in r.candidates
        if c.name in l10
        for m in c.miller or []
    ]
    assert asked and all(m == (1, 0, 1) for _, _, m in asked), asked


@pytest.mark.parametrize(
    ("name", "miller", "site"), [("Al", "1,1,1", "fcc"), ("Pt", "1,0,0", "4fold")]
)
def test_a_small_binding_atom_starts_above_its_site_not_inside_the_surface(name, miller, site):
    """H's covalent radius (0.31 A) is shorter than these sites' in-plane distances: the height
    rule reached an atom under the site and put H 3.2 A (Al) and 0.3 A (Pt) below the top
    layer, an intercalated start."""
    from catscreen.analysis.anomalies import detect_anomalies
    from catscreen.build.placements import MIN_SITE_HEIGHT

    images = enumerate_configurations(  # not nudged: a 4-fold H is near its bond cutoff
        EnumerateSettings(bulks=[name], miller=[miller], adsorbates=["H"], min_ab=5.0, nudge=0.0)
    )
    (start,) = [a for a in images if a.info.get("site_type") == site]
    atoms = [int(i) for i in str(start.info["site_atoms"]).split(",")]
    height = start.positions[-1, 2] - start.positions[atoms, 2].mean()
    assert height == pytest.approx(MIN_SITE_HEIGHT, abs=1e-6)
    assert start.positions[-1, 2] > start.positions[start.get_tags() == 1, 2].max()
    report = detect_anomalies(start, start.copy(), None, atoms)  # the start is a fine adslab
    assert report.names == [] and report.final_site_atoms == atoms


@pytest.mark.parametrize(
    ("name", "miller", "kinds"),
    [
        ("Pt", "1,1,1", {"ontop", "bridge", "fcc", "hcp"}),
        ("Ru", "0,0,0,1", {"ontop", "bridge", "fcc", "hcp"}),
        ("Cu", "1,0,0", {"ontop", "bridge", "4fold"}),
    ],
)
def test_a_p1x1_cell_has_the_tags_and_sites_of_a_larger_one(name, miller, kinds):
    """In a 1x1 surface cell the atoms around a hollow are images of one atom: with only the
    nearest image seen, every layer but the bottom was "exposed" (free, with ontop sites on
    subsurface atoms, a "4fold" site on hcp(0001), H placed between layers)."""
    from catscreen.analysis.anomalies import detect_anomalies

    small = enumerate_configurations(
        EnumerateSettings(bulks=[name], miller=[miller], adsorbates=["H"], min_ab=2.0, nudge=0.0)
    )
    clean = next(a for a in small if a.info["kind"] == "slab")
    top = clean.positions[:, 2].max()
    assert list(np.flatnonzero(clean.get_tags() == 1)) == [int(np.argmax(clean.positions[:, 2]))]
    placed = [a for a in small if a.info["kind"] == "adslab"]
    assert {a.info["site_type"] for a in placed} == kinds
    for a in placed:
        assert a.positions[-1, 2] > top  # above the surface, never between layers
    sunk = next(a for a in placed if a.info["site_type"] == "ontop").copy()
    sunk.positions[-1, 2] = top - 1.0  # between the top two layers
    start = next(a for a in placed if a.info["site_type"] == "ontop")
    assert detect_anomalies(start, sunk, clean, None).intercalated


def test_exposure_of_a_sheared_but_equal_cell():
    """b' = b + 3a spans the same surface lattice; the image search must reach far enough
    along each vector (it took the other vector's reach)."""
    from catscreen.build.slabs import exposed_atoms

    slab = enumerate_configurations(
        EnumerateSettings(bulks=["Pt"], miller=["1,1,1"], adsorbates=["O"], min_ab=2.0)
    )[0]
    sheared = slab.copy()
    cell = sheared.cell.array.copy()
    cell[1] += 3 * cell[0]
    sheared.set_cell(cell, scale_atoms=False)
    d_nn = 3.92 / np.sqrt(2)
    assert exposed_atoms(sheared, d_nn).tolist() == exposed_atoms(slab, d_nn).tolist()
    assert exposed_atoms(slab, d_nn).sum() == 1


@pytest.mark.parametrize(
    ("name", "miller", "hollows"),
    [("PtCo", (2, 2, 1), 5), ("Co", (2, 1, 2), 12), ("Pt", (2, 1, 0), 3), ("Fe", (2, 2, 1), 5)],
)
def test_distinct_sites_do_not_depend_on_the_cell_size(name, miller, hollows):
    """Symmetry images matched within a fraction of the cell: 0.02 of a 13 A cell merged
    distinct hollows 0.24 A apart. And the repeated cell's own symmetry was used: a 2x3 repeat
    of Pt(210)'s oblique cell lacks its mirror and two-fold axis (6 hollows at min_ab 8, 3 at
    5; Fe(221) 10 at 5 and 12 A, 5 at 8), each extra one the same site by its surroundings."""
    bulk = load_bulks([name])[0]
    counts = []
    for min_ab in (5.0, 8.0, 12.0):
        slab = make_slabs(bulk, miller, 5.0, 12.0, min_ab)[0]
        sites = find_sites(slab.atoms, bulk.d_nn, repeat=slab.repeat)
        counts.append(Counter(s.kind for s in sites))
    assert counts[0] == counts[1] == counts[2], counts
    assert counts[0]["hollow"] == hollows


def test_a_flip_through_thin_vacuum_merges_no_top_site_with_a_bottom_one():
    """The probe above the top, flipped, lands below the bottom: through 4 A of vacuum that
    is 2 A above the top again, and Pt(110) lost half its sites (ontop 1, bridge 2, hollow 1)."""
    bulk = load_bulks(["Pt"])[0]
    kinds = []
    for vacuum in (4.0, 12.0):  # below MIN_VACUUM: make_slabs directly, as no setting allows it
        slab = make_slabs(bulk, (1, 1, 0), 5.0, vacuum, 5.0)[0]
        kinds.append(Counter(s.kind for s in find_sites(slab.atoms, bulk.d_nn)))
    assert kinds[0] == kinds[1] and kinds[1]["ontop"] == 2, kinds


def test_no_ontop_site_off_its_atom_on_rough_hcp_facets():
    """The midpoint of a long Delaunay edge across an obtuse angle is nearer the third atom:
    it was an "ontop" site 1.1 A off that atom on Ru(10-11), beside the real one."""
    bulk = load_bulks(["Ru"])[0]
    for slab in make_slabs(bulk, (1, 0, 1), 7.0, 12.0, 8.0):
        a = slab.atoms
        for site in find_sites(a, bulk.d_nn, unique=False):
            if site.kind != "ontop":
                continue
            offset = a.positions[site.atoms[0], :2] - np.array(site.position[:2])
            frac = offset @ np.linalg.inv(a.cell.array[:2, :2])
            frac -= np.round(frac)
            assert np.linalg.norm(frac @ a.cell.array[:2, :2]) < 0.05, (slab.termination, site)


def test_facets_are_told_apart_by_the_crystal_s_point_group_not_its_lattice_s(tmp_path):
    """Pyrite (Pa-3, point group m-3) has no operation taking (210) to (120): pymatgen's
    lattice symmetry refused them as one surface and `--max-index 2` dropped (120)."""
    from pymatgen.core import Lattice, Structure

    from catscreen.build.slabs import check_distinct_facets, distinct_millers

    pyrite = Structure.from_spacegroup(
        "Pa-3", Lattice.cubic(5.418), ["Fe", "S"], [[0, 0, 0], [0.385, 0.385, 0.385]]
    )
    pyrite.to(filename=str(tmp_path / "FeS2.cif"))
    (fes2,) = load_bulks([str(tmp_path / "FeS2.cif")])
    assert {(2, 1, 0), (2, 0, 1)} <= set(distinct_millers(fes2, 2))  # (201) ~ (120) by the 3
    check_distinct_facets(fes2, [(2, 1, 0), (1, 2, 0)])
    pt = load_bulks(["Pt"])[0]  # m-3m: one surface, as before
    assert (2, 0, 1) not in distinct_millers(pt, 2)
    with pytest.raises(CatscreenError, match="2,1,0 and 1,2,0 are the same surface"):
        check_distinct_facets(pt, [(2, 1, 0), (1, 2, 0)])


def test_a_recessed_site_s_adsorbate_bonds_to_the_site_not_to_the_step_above_it():
    """O "ontop" a recessed atom of Ru(10-11) sat 3.24 A from it and 2.12 A from the atom a
    step above: the height came from the highest atom near the site. It now bonds to its own
    atom and keeps every other atom at least a bond away; placements of the old rule that
    were already right are unchanged."""
    from ase.data import covalent_radii
    from ase.geometry import get_distances

    from catscreen.build.adsorbates import get_adsorbate
    from catscreen.build.placements import heuristic_orientation, place

    bulk = load_bulks(["Ru"])[0]
    oxygen = get_adsorbate("O")
    wrong = {True: 0, False: 0}
    moved = 0
    for slab in make_slabs(bulk, (1, 0, 1), 7.0, 12.0, 8.0):
        n = len(slab.atoms)
        for site in find_sites(slab.atoms, bulk.d_nn, repeat=slab.repeat):
            orientation = heuristic_orientation(slab.atoms, site, oxygen)
            placed = {}
            for rule in (False, True):
                atoms = place(
                    slab.atoms, site, oxygen, orientation, np.random.default_rng(0), 0.1, rule
                )
                _, d = get_distances(
                    atoms.positions[n],
                    atoms.positions[:n],
                    cell=atoms.cell,
                    pbc=[True, True, False],
                )
                ratio = d[0] / (covalent_radii[8] + covalent_radii[atoms.numbers[:n]])
                wrong[rule] += int(np.argmin(ratio)) not in site.atoms
                placed[rule] = (atoms.positions[n], ratio)
            if not np.allclose(placed[True][0], placed[False][0]):
                moved += 1
                ratio = placed[True][1]
                mine = ratio[list(site.atoms)]
                assert mine.min() == pytest.approx(1.0, abs=0.05)  # a bond to its own atom
                others = np.delete(ratio, list(site.atoms))
                assert others.min() >= 1.0 - 1e-6 and mine.min() < others.min()
    assert moved >= 2 and (wrong[False], wrong[True]) == (3, 1)


def test_a_centrosymmetric_bidentate_keeps_its_atoms_off_the_surface_however_drawn(tmp_path):
    """trans-HNNH bound through N,N: drawn in the xz plane one H pointed 0.99 A into the
    surface and the lift left N 2.55-2.73 A from Pt; drawn in xy both H lay level."""
    from ase import Atoms
    from ase.io import write

    from catscreen.build.adsorbates import load_custom_adsorbate

    tilt = np.radians(74)
    flat = np.array(
        [[-0.625, 0, 0], [0.625, 0, 0], [-0.625 - 1.03 * np.cos(tilt), 0, 1.03 * np.sin(tilt)],
         [0.625 + 1.03 * np.cos(tilt), 0, -1.03 * np.sin(tilt)]]
    )  # fmt: skip
    frames = []
    for name, turn in (("xz", 0.0), ("xy", 90.0)):
        mol = Atoms("N2H2", positions=flat)
        mol.rotate(turn, "x")
        write(tmp_path / f"hnnh_{name}.xyz", mol)
        frames.append(load_custom_adsorbate(f"{tmp_path / f'hnnh_{name}.xyz'}:0,1").atoms)
    for atoms in frames:
        assert atoms.positions[2:, 2].min() > -1e-6  # no H below the N=N axis
    np.testing.assert_allclose(frames[0].positions[:, 2], frames[1].positions[:, 2], atol=1e-6)


def test_a_compound_s_subsurface_layer_is_covered_at_its_own_distances(tmp_path):
    """In SrTiO3 d_nn is the Ti-O bond (1.95 A): the O under the SrO layer's hollows, 1.95 A
    in-plane from the Sr and O around it (2.76 A apart in the bulk), was tagged surface, free,
    and given ontop and bridge sites 1.95 A down. Metals keep d_nn's rule (no pair table)."""
    from pymatgen.core import Lattice, Structure

    sto = Structure.from_spacegroup(
        "Pm-3m",
        Lattice.cubic(3.905),
        ["Sr", "Ti", "O"],
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0]],
    )
    sto.to(filename=str(tmp_path / "SrTiO3.cif"))
    (bulk,) = load_bulks([str(tmp_path / "SrTiO3.cif")])
    assert bulk.pair_nn[("O", "Sr")] == pytest.approx(3.905 / np.sqrt(2), abs=1e-3)
    assert load_bulks(["Pt"])[0].pair_nn == {} and load_bulks(["PtCo"])[0].pair_nn == {}
    slabs = make_slabs(bulk, (1, 0, 0), 7.0, 12.0, 5.0)
    sro = next(s for s in slabs if "Sr" in s.atoms[int(np.argmax(s.atoms.positions[:, 2]))].symbol)
    depth = sro.atoms.positions[:, 2].max() - sro.atoms.positions[:, 2]
    tags = sro.atoms.get_tags()
    assert (tags[depth < 0.5] == 1).all() and (tags[depth > 1.0] == 0).all()
    kinds = Counter(s.kind for s in find_sites(sro.atoms, bulk.d_nn, repeat=sro.repeat))
    assert kinds == {"ontop": 2, "bridge": 1, "4fold": 1}, kinds


def test_layers_and_repeat_give_every_bulk_of_a_facet_one_thickness_and_coverage():
    """pymatgen rounds min_slab_size up to whole oriented cells (7 A: Pt(111) 6 layers, Au(111)
    3) and min_ab picks each metal's repeat (5 A: Ni(111) 3x3, Pt 2x2); layers and repeat do
    not, and the top termination is the one the thickness rule cuts."""
    for name in ("Pt", "Au", "Ni"):
        bulk = library_bulk(name)
        (default,) = make_slabs(bulk, (1, 1, 1), 7.0, 12.0, 5.0)
        (slab,) = make_slabs(bulk, (1, 1, 1), 7.0, 12.0, 5.0, layers=4, repeat=(2, 2))
        layer = atom_layers(slab.atoms)
        assert layer.max() + 1 == 4 and len(slab.atoms) == 16 and slab.repeat == (2, 2)
        assert (slab.atoms.get_tags()[layer == 0] == 1).all()
        assert (slab.atoms.get_tags()[layer > 0] == 0).all()
        spacing = np.diff(np.unique(slab.atoms.positions[:, 2].round(3)))
        assert np.allclose(spacing, bulk.structure.lattice.d_hkl((1, 1, 1)), atol=1e-3)
        # the thickness rule's slab, cut the same way, has the same top layer in its own cell
        top = default.atoms[atom_layers(default.atoms) == 0]
        assert len(top) / np.prod(default.repeat) == (layer == 0).sum() / 4
        assert "layers" not in default.identity() and "repeat" not in default.identity()
    # an asymmetric slab: each side keeps its own termination and loses its bottom layers
    bulk = library_bulk("Ni3Al")
    full = make_slabs(bulk, (1, 1, 0), 7.0, 12.0, 5.0)
    thin = make_slabs(bulk, (1, 1, 0), 7.0, 12.0, 5.0, layers=4, repeat=(2, 1))
    assert [s.side for s in thin] == [s.side for s in full] == ["top", "bottom"]
    for a, b in zip(full, thin, strict=True):
        assert a.repeat == b.repeat == (2, 1)
        tops = [sorted(s.atoms[atom_layers(s.atoms) == 0].get_chemical_symbols()) for s in (a, b)]
        assert tops[0] == tops[1]
        assert atom_layers(b.atoms).max() + 1 == 4 and atom_layers(a.atoms).max() + 1 == 8
    # n_atoms alone named 2x2 cells of 4 layers like 2x1 cells of 8 (32 atoms each)
    wide = make_slabs(bulk, (1, 1, 0), 7.0, 12.0, 5.0, layers=4, repeat=(2, 2))[0]
    assert len(wide.atoms) == len(full[0].atoms) and wide.slab_id != full[0].slab_id


def test_layers_keep_every_exposed_atom_and_a_covered_layer_under_them():
    """A layer is one height: 3 of fcc(211) is one terrace row deep, a sheet with nothing
    fixed; Ru(20-21)'s exposed atoms reach its seventh layer, and a cut at 6 kept a covered
    layer but dropped exposed atoms (24 surface atoms in 2x2 became 20, and their sites)."""
    with pytest.raises(
        CatscreenError,
        match=r"^Pt \(2,1,1\) needs at least 4 layers \(slab\.layers / --layers\): exposed",
    ):
        make_slabs(library_bulk("Pt"), (2, 1, 1), 7.0, 12.0, 8.0, layers=3)
    bulk = library_bulk("Ru")
    with pytest.raises(CatscreenError, match=r"^Ru \(2,0,-2,1\) needs at least 8 layers"):
        make_slabs(bulk, (2, 0, 1), 7.0, 12.0, 8.0, layers=6, repeat=(2, 2))
    cut = make_slabs(bulk, (2, 0, 1), 7.0, 12.0, 8.0, layers=8, repeat=(2, 2))
    full = make_slabs(bulk, (2, 0, 1), 7.0, 12.0, 8.0, repeat=(2, 2))
    assert len(cut) == len(full) == 2
    for a, b in zip(full, cut, strict=True):
        assert atom_layers(b.atoms).max() + 1 == 8 < atom_layers(a.atoms).max() + 1
        exposed = [sorted(atom_layers(s.atoms)[s.atoms.get_tags() == 1]) for s in (a, b)]
        assert exposed[0] == exposed[1] and exposed[1][-1] < 7  # layer 7 covered
        kinds = [
            Counter(site.kind for site in find_sites(s.atoms, bulk.d_nn, s.repeat)) for s in (a, b)
        ]
        assert kinds[0] == kinds[1]


def test_layers_or_thickness_and_repeat_or_min_ab_not_both():
    ok = EnumerateSettings(bulks=["Pt"], layers=3, repeat="3x2")
    assert ok.repeat == (3, 2) and ok.min_slab_size == 7.0
    for kwargs, message in (
        ({"layers": 3, "min_slab_size": 5.0}, "give min_slab_size or layers, not both"),
        ({"repeat": (2, 2), "min_ab": 5.0}, "give min_ab or repeat, not both"),
        ({"repeat": "2y2"}, "bad repeat '2y2'"),
        ({"repeat": (0, 2)}, "greater than or equal to 1"),
        ({"layers": 0}, "greater than or equal to 1"),
    ):
        with pytest.raises(ValidationError, match=message):
            EnumerateSettings(bulks=["Pt"], **kwargs)


def test_layers_are_checked_on_the_terminations_kept():
    """Ru(10-11)'s first termination needs 3 layers, its second 4: `layers: 3` under
    `max_terminations: 1` was refused for the termination the recipe drops."""
    bulk = library_bulk("Ru")
    with pytest.raises(CatscreenError, match=r"by termination: 0: 3, 1: 4 \(max_term.* 1 keeps"):
        make_slabs(bulk, (1, 0, 1), 7.0, 12.0, 5.0, layers=3)
    # Co's first (10-11) termination is its deepest: keeping fewer is no way out, not offered
    with pytest.raises(CatscreenError, match=r"by termination: 0: 4, 1: 3$"):
        make_slabs(library_bulk("Co"), (1, 0, 1), 7.0, 12.0, 5.0, layers=3)
    (kept,) = make_slabs(bulk, (1, 0, 1), 7.0, 20.0, 8.0, layers=3, max_terminations=1)
    both = make_slabs(bulk, (1, 0, 1), 7.0, 20.0, 8.0, layers=4)
    assert atom_layers(kept.atoms).max() == 2 and kept.termination == 0
    assert kept.shift == both[0].shift and kept.side == both[0].side
    # a recipe's max_terminations reaches the cut: the whole campaign stage enumerates
    settings = EnumerateSettings(bulks=["Ru"], miller=["10-11"], layers=3, max_terminations=1)
    (slab,) = [a for a in enumerate_configurations(settings) if a.info["kind"] == "slab"]
    assert slab.info["slab_id"] == kept.slab_id


def test_a_facet_with_a_common_factor_is_the_reduced_one():
    """pymatgen cuts (2,2,2) as (1,1,1): the same slab got another id in another run."""
    bulk = library_bulk("Pt")
    (one,) = make_slabs(bulk, (1, 1, 1), 7.0, 12.0, 5.0)
    (two,) = make_slabs(bulk, (2, 2, 2), 7.0, 12.0, 5.0)
    assert two.miller == (1, 1, 1) and two.slab_id == one.slab_id
    settings = EnumerateSettings(bulks=["Pt"], miller=["222", (2, 0, 0), "0,0,0,2", "2,-2,0"])
    assert settings.miller == [(1, 1, 1), (1, 0, 0), (0, 0, 0, 1), (1, -1, 0)]


@pytest.mark.parametrize(
    ("name", "miller"),
    [("Ag", (1, 0, 0)), ("Fe", (1, 1, 0)), ("Cu", (2, 1, 0)), ("Co", (1, 0, 1)), ("Cd", (1, 0, 2))],
)
def test_slabs_are_the_ones_pymatgen_s_primitive_cut_gives(monkeypatch, name, miller):
    """catscreen skips pymatgen's reduction of the oriented bulk cell (minutes on high-index
    facets), not its slabs: the same ids, cells and positions as `primitive=True`. A first
    version reduced each slab after Slab() had turned its lattice, and rounding noise picked
    another of two equal in-plane cells on bcc(110) and fcc(210) (other site ids)."""
    bulk = library_bulk(name)
    ours = make_slabs(bulk, miller, 7.0, 20.0, 8.0)

    def pymatgen_primitive(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        return SlabGenerator(*args, **{**kwargs, "primitive": True})

    monkeypatch.setattr(slabs_module, "_SlabGenerator", pymatgen_primitive)
    theirs = make_slabs(bulk, miller, 7.0, 20.0, 8.0)
    assert [t.slab_id for t in ours] == [t.slab_id for t in theirs]
    for a, b in zip(ours, theirs, strict=True):
        assert a.atoms.get_chemical_symbols() == b.atoms.get_chemical_symbols()
        np.testing.assert_allclose(a.atoms.cell.array, b.atoms.cell.array, atol=1e-8)
        np.testing.assert_allclose(a.atoms.positions, b.atoms.positions, atol=1e-8)
        assert (a.atoms.get_tags() == b.atoms.get_tags()).all()
    # the Slab's own record of its cell in the bulk's (pymatgen's scale_factor) too
    kwargs = {"min_slab_size": 7.0, "min_vacuum_size": 20.0, "max_normal_search": 1}
    mine = slabs_module._SlabGenerator(bulk.structure, miller, primitive=False, **kwargs)
    pymatgen = SlabGenerator(bulk.structure, miller, primitive=True, **kwargs)
    for a, b in zip(mine.get_slabs(), pymatgen.get_slabs(), strict=True):
        np.testing.assert_allclose(a.scale_factor, b.scale_factor, atol=1e-8)


@pytest.mark.timeout(60)  # a hang guard: pymatgen's own primitive cut took 133 s here
def test_a_high_index_facet_is_cut_without_pymatgen_s_oriented_cell_search():
    """Pt(611), a stepped facet: 24 atoms as pymatgen's primitive slab has them, every atom its
    own height, the exposed ones the topmost heights down to the step's foot."""
    (term,) = make_slabs(library_bulk("Pt"), (6, 1, 1), 7.0, 20.0, 1.0)
    assert len(term.atoms) == 24 and term.repeat == (1, 1)
    layer = atom_layers(term.atoms)
    exposed = term.atoms.get_tags() == 1
    assert layer.max() == 23 and 3 <= exposed.sum() < 12
    assert sorted(layer[exposed]) == list(range(exposed.sum()))


def test_terminations_left_out_by_max_terminations_are_named():
    """FeCo(100) has an Fe and a Co termination; max_terminations 1 (a recipe's default)
    kept the Fe one without a word."""
    notes: list[str] = []
    settings = EnumerateSettings(bulks=["FeCo", "Pt"], miller=["1,0,0"], adsorbates=["O"])
    every = enumerate_configurations(settings, notes.append)
    assert notes == [] and {a.info["termination"] for a in every} == {0, 1}
    one = settings.model_copy(update={"max_terminations": 1})
    kept = enumerate_configurations(one, notes.append)
    assert {a.info["termination"] for a in kept} == {0}
    (note,) = notes
    assert note.startswith("terminations kept (max_terminations): FeCo(1,0,0) 1 of 2;")
    assert "Pt(" not in note  # Pt(100) has one termination: nothing was left out
    # a hexagonal facet as written (1,0,-1,0) and as the tables hold it (1,0,0)
    hcp = EnumerateSettings(bulks=["Co"], miller=["1,0,0"], adsorbates=["O"], max_terminations=1)
    enumerate_configurations(hcp, notes.append)
    assert notes[-1].startswith("terminations kept (max_terminations): Co(1,0,-1,0) [miller "
                                "1,0,0] 1 of 2;")  # fmt: skip


HCP_CO_POSCAR = """Co
1.0
2.507 0.0 0.0
-1.2535 {y} 0.0
0.0 0.0 4.069
Co
2
Direct
0.333333333333 0.666666666667 0.25
0.666666666667 0.333333333333 0.75
"""


def test_rounding_in_a_file_does_not_change_slab_ids_or_termination_order(tmp_path):
    """hcp Co written with b_y 2.1711256872875877 or 2.17112 (5e-6 A apart): pymatgen gave
    shifts [0, 0.5] for one and [0.5, 1.0] for the other, so the same surfaces got other
    slab_ids and --max-terminations 1 screened the other one."""
    found = []
    for k, y in enumerate(("2.1711256872875877", "2.17112")):
        (tmp_path / str(k)).mkdir()
        (tmp_path / str(k) / "Co.vasp").write_text(HCP_CO_POSCAR.format(y=y))
        (co,) = load_bulks([str(tmp_path / str(k) / "Co.vasp")])
        slabs = make_slabs(co, (1, 0, 0), 7.0, 10.0, 5.0)
        found.append([(s.slab_id, s.termination, round(s.shift, 6)) for s in slabs])
        assert all(0.0 <= s.shift < 1.0 for s in slabs)
    assert found[0] == found[1] and len(found[0]) == 2


CIF_CELL = """data_x
_symmetry_space_group_name_H-M '{symbol}'
_cell_length_a {a}
_cell_length_b {a}
_cell_length_c {c}
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma {gamma}
"""
SITES = "loop_\n_atom_site_label\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n"
MCIF_FE = """data_Fe_bcc
_space_group_magn.name_BNS "I4/mm'm'"
_cell_length_a 2.8665
_cell_length_b 2.8665
_cell_length_c 2.8665
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
loop_
_space_group_symop_magn_operation.id
_space_group_symop_magn_operation.xyz
1 x,y,z,+1
2 -x,-y,z,+1
3 -y,x,z,+1
4 y,-x,z,+1
5 -x,y,-z,-1
6 x,-y,-z,-1
7 y,x,-z,-1
8 -y,-x,-z,-1
9 -x,-y,-z,+1
10 x,y,-z,+1
11 y,-x,-z,+1
12 -y,x,-z,+1
13 x,-y,z,-1
14 -x,y,z,-1
15 -y,-x,z,-1
16 y,x,z,-1
loop_
_space_group_symop_magn_centering.id
_space_group_symop_magn_centering.xyz
1 x,y,z,+1
2 x+1/2,y+1/2,z+1/2,+1
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
Fe1 Fe 0.0 0.0 0.0
loop_
_atom_site_moment.label
_atom_site_moment.crystalaxis_x
_atom_site_moment.crystalaxis_y
_atom_site_moment.crystalaxis_z
Fe1 0.0 0.0 2.2
"""


@pytest.mark.parametrize(
    ("name", "text", "formula", "nearest"),
    [
        # ICSD's origin-choice suffix: read as a one-Si cubic cell
        (
            "Si.cif",
            CIF_CELL.format(symbol="F d -3 m Z", a=5.431, c=5.431, gamma=90)
            + SITES
            + "Si1 0.125 0.125 0.125\n",
            "Si8",
            2.352,
        ),
        # SHELX's upper-case labels, no type symbols: CO1 was carbon
        (
            "Co.cif",
            CIF_CELL.format(symbol="P 63/m m c", a=2.507, c=4.069, gamma=120)
            + SITES
            + "CO1 0.33333 0.66667 0.25\n",
            "Co2",
            2.497,
        ),
        # SHELX labels with an origin choice: pymatgen would lose the origin (S8 before)
        (
            "Si2.cif",
            CIF_CELL.format(symbol="F d -3 m :2", a=5.431, c=5.431, gamma=90)
            + SITES
            + "SI1 0.125 0.125 0.125\n",
            "Si8",
            2.352,
        ),
        # mixed-case labels are ASE's as before: HO1 is a hydroxyl H, not holmium
        (
            "MgOH.cif",
            CIF_CELL.format(symbol="P 1", a=5.0, c=5.0, gamma=90)
            + SITES
            + "Mg1 0 0 0\nO1 0.5 0 0\nHO1 0.5 0.2 0\n",
            "MgHO3",
            1.0,
        ),
        # a magnetic CIF's operations and centring: ASE read simple-cubic Fe (2.87 A apart)
        ("Fe.mcif", MCIF_FE, "Fe2", 2.482),
        ("Fe_magnetic.cif", MCIF_FE, "Fe2", 2.482),
    ],
)
def test_real_world_cifs_read_as_the_crystal_they_hold(tmp_path, name, text, formula, nearest):
    (tmp_path / name).write_text(text)
    if name == "MgOH.cif":  # a P 1 cell is no bulk a slab can be cut from: the reading alone
        from catscreen.build.bulks import _cif_frames

        (atoms,) = _cif_frames(tmp_path / name)
        assert atoms.get_chemical_symbols() == ["Mg", "O", "H"]
        return
    (made,) = load_bulks([str(tmp_path / name)])
    structure = made.structure
    assert structure.composition.reduced_formula == formula.rstrip("0123456789")
    assert len(structure) == int(
        formula.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
    )
    distances = structure.distance_matrix[np.triu_indices(len(structure), 1)]
    assert distances.min() == pytest.approx(nearest, abs=2e-3)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        # an older symbol pymatgen does not know either: it read Pt as one atom per cube
        (
            "Pt.cif",
            CIF_CELL.format(symbol="F m 3 m", a=3.924, c=3.924, gamma=90) + SITES + "Pt1 0 0 0\n",
            "space group 'F m 3 m' is not one ASE or pymatgen knows, and the file lists no",
        ),
        # VASP 4: ASE took the elements from the comment line (POSCAR with 1 1: P and O)
        (
            "POSCAR",
            "POSCAR\n2.88\n1 0 0\n0 1 0\n0 0 1\n1 1\nDirect\n0 0 0\n0.5 0.5 0.5\n",
            "a VASP 4 POSCAR (no element line above the atom counts) whose first line names",
        ),
        # two elements 0.4 A apart: neither a site listed twice nor a rounded special position
        (
            "PtO.vasp",
            "x\n1.0\n4 0 0\n0 4 0\n0 0 4\nPt O\n1 1\nCartesian\n0 0 0\n0 0 0.4\n",
            "0.400 A apart; a typo in a coordinate, or a cell in other units",
        ),
        (
            "POSCAR",
            "NiAl_B2\n2.88\n1 0 0\n0 1 0\n0 0 1\n1 1\nDirect\n0 0 0\n0.5 0.5 0.5\n",
            "names more elements than it has counts ('NiAl_B2': Ni, Al, B for 1 1)",
        ),
        # three decimals for 1/3: the copies land 0.003 A apart ("is a site listed twice?")
        (
            "Co3.cif",
            CIF_CELL.format(symbol="P 63/m m c", a=2.507, c=4.069, gamma=120)
            + SITES
            + "Co1 0.333 0.667 0.25\n",
            "a special position rounded (0.333 for 1/3)",
        ),
    ],
)
def test_files_read_wrong_without_a_word_are_refused(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(CatscreenError, match=re.escape(message)):
        load_bulks([str(tmp_path / name)])


@pytest.mark.parametrize("comment", ["Ni Al", "NiAl", "Cu Au L12", "Pt fcc"])
def test_a_vasp4_poscar_naming_its_elements_in_the_comment_is_read(tmp_path, comment):
    """Refused only where ASE would take the first of more names than counts."""
    one = comment == "Pt fcc"
    counts, sites = ("1", "0 0 0\n") if one else ("1 1", "0 0 0\n0.5 0.5 0.5\n")
    (tmp_path / "POSCAR").write_text(
        f"{comment}\n{3.92 if one else 2.88}\n1 0 0\n0 1 0\n0 0 1\n{counts}\nDirect\n{sites}"
    )
    (made,) = load_bulks([str(tmp_path / "POSCAR")])
    expected = {"Ni Al": "AlNi", "NiAl": "AlNi", "Cu Au L12": "CuAu", "Pt fcc": "Pt"}
    assert made.structure.composition.reduced_formula == expected[comment]


def test_a_library_name_is_read_as_the_library_bulk_beside_a_folder_of_that_name(
    tmp_path, monkeypatch
):
    """`enumerate -b Pt --out Pt` run twice: the second was "bulk file Pt is a folder"."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "Pt").mkdir()
    (made,) = load_bulks(["Pt"])
    assert made.structure.composition.reduced_formula == "Pt"
    with pytest.raises(CatscreenError, match="bulk file Pt/ is a folder|bulk file Pt is a folder"):
        load_bulks(["Pt/"])
    with pytest.raises(CatscreenError, match="bulk file Qq is a folder"):
        (tmp_path / "Qq").mkdir()
        load_bulks(["Qq"])
