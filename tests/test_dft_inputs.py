"""VASP inputs parse back with pymatgen; GPAW scripts compile and carry the same physics."""

from __future__ import annotations

import ast
import json
import re

import numpy as np
import pandas as pd
import pytest
from pymatgen.io.vasp import Incar, Kpoints, Poscar
from test_analysis_helpers import emt_results, hand_results

from catscreen.analysis import RankSettings, rank_results
from catscreen.dft import DftSettings, dft_tasks, write_dft_inputs
from catscreen.dft.tasks import foreign_files
from catscreen.dft.vasp import potcar_symbols
from catscreen.errors import CatscreenError
from catscreen.io import atoms_from_text, atoms_to_text


@pytest.fixture(scope="module")
def flagged_off():
    df = emt_results(metals=("Pt",), placements=(("O", "fcc"),))
    return rank_results(df, RankSettings(top_k=1)).flagged


@pytest.fixture(scope="module")
def flagged_on():
    """A spin-on Ni-labelled table whose adslab carries predicted moments."""
    gases = {"H2": (-6.8, 0.0), "H2O": (-14.2, 0.0)}
    df = hand_results({"Ni": -70.0}, [("Ni", "O", "fcc", -78.0, 0.0)], gases)
    df["spin"] = "on"
    i = df.index[df.kind == "adslab"][0]
    atoms = atoms_from_text(df.at[i, "final_structure"])
    atoms.set_chemical_symbols(["Ni"] * 12 + ["O"])
    moments = np.linspace(0.1, 1.3, len(atoms))
    moments[0] = -2.0  # an antiparallel moment keeps its direction
    atoms.arrays["magmoms"] = moments
    df.at[i, "final_structure"] = atoms_to_text(atoms)
    start = atoms_from_text(df.at[i, "initial_structure"])
    start.set_chemical_symbols(["Ni"] * 12 + ["O"])  # the same atoms as the final frame
    df.at[i, "initial_structure"] = atoms_to_text(start)
    j = df.index[df.kind == "slab"][0]
    clean = atoms_from_text(df.at[j, "final_structure"])
    clean.set_chemical_symbols(["Ni"] * 12)
    df.at[j, "final_structure"] = atoms_to_text(clean)
    return rank_results(df, RankSettings(top_k=1)).flagged


def test_oxide_surfaces_get_mp_s_plus_u_and_metals_none(tmp_path, flagged_on):
    """No +U was written: the chgnet-pbe teacher is MP's PBE+U on oxides of Co, Cr, Fe, Mn,
    Mo, Ni, V, W. The clean surface decides for its adslabs too (MP's rule on the whole cell
    would put U on Ni(111)+O and not on Ni(111)); gas molecules never."""
    gases = {"H2": (-6.8, 0.0), "H2O": (-14.2, 0.0)}
    df = hand_results({"NiO": -70.0}, [("NiO", "O", "fcc", -78.0, 0.0)], gases)
    oxide = ["Ni", "O"] * 6
    for kind, extra in (("slab", []), ("adslab", ["O"])):
        i = df.index[df.kind == kind][0]
        for column in ("initial_structure", "final_structure"):
            atoms = atoms_from_text(df.at[i, column])
            atoms.set_chemical_symbols(oxide + extra)
            df.at[i, column] = atoms_to_text(atoms)
    flagged = rank_results(df, RankSettings(top_k=1)).flagged
    notes: list[str] = []
    write_dft_inputs(flagged, "vasp", tmp_path / "v", DftSettings(), notes.append)
    for name in (flagged.config_id[0], flagged.slab_config_id[0]):
        incar = Incar.from_file(tmp_path / "v" / name / "INCAR")
        assert Poscar.from_file(tmp_path / "v" / name / "POSCAR").site_symbols == ["Ni", "O"]
        assert incar["LDAU"] is True and incar["LDAUTYPE"] == 2 and incar["LMAXMIX"] == 4
        assert incar["LDAUU"] == [6.2, 0.0] and incar["LDAUL"] == [2, 0]
    assert "LDAU" not in Incar.from_file(tmp_path / "v" / "gas-H2O" / "INCAR")
    assert notes == [
        "VASP inputs use MP's +U on oxide and fluoride surfaces (Ni U 6.2 eV), as the "
        "chgnet-pbe teacher's data"
    ]
    notes.clear()
    write_dft_inputs(flagged, "gpaw", tmp_path / "g", DftSettings(), notes.append)
    assert any(n.startswith("GPAW scripts carry no +U") for n in notes)
    notes.clear()
    write_dft_inputs(flagged, "vasp", tmp_path / "r", DftSettings(xc="r2SCAN"), notes.append)
    assert "LDAU" not in Incar.from_file(tmp_path / "r" / flagged.config_id[0] / "INCAR")
    write_dft_inputs(flagged_on, "vasp", tmp_path / "m", DftSettings())  # Ni(111)+O: a metal
    assert "LDAU" not in Incar.from_file(tmp_path / "m" / flagged_on.config_id[0] / "INCAR")


def test_tasks_cover_adslab_slab_and_gases(flagged_off):
    kinds = {t.name: t.kind for t in dft_tasks(flagged_off)}
    assert kinds == {
        flagged_off.config_id[0]: "adslab",
        flagged_off.slab_config_id[0]: "slab",
        "gas-H2": "gas",
        "gas-H2O": "gas",
    }


def test_vasp_inputs_spin_off(tmp_path, flagged_off):
    folders = write_dft_inputs(flagged_off, "vasp", tmp_path, DftSettings())
    assert len(folders) == 4
    ads = tmp_path / flagged_off.config_id[0]
    poscar = Poscar.from_file(ads / "POSCAR")
    tags = atoms_from_text(flagged_off.final_structure[0]).get_tags()
    dynamics = np.array(poscar.selective_dynamics)
    assert (dynamics.all(axis=1) == (tags != 0)).all() and (~dynamics[tags == 0]).all()
    assert poscar.site_symbols == ["Pt", "O"]
    incar = Incar.from_file(ads / "INCAR")
    assert incar["ISPIN"] == 1 and "MAGMOM" not in incar and "LORBIT" not in incar
    assert incar["LDIPOL"] is True and incar["IDIPOL"] == 3
    assert incar["ENCUT"] == 400 and incar["ISMEAR"] == -1 and incar["GGA"] == "Pe"
    kpts = Kpoints.from_file(ads / "KPOINTS").kpts[0]
    assert kpts[2] == 1 and kpts[0] >= 2
    assert (ads / "POTCAR.symbols").read_text().splitlines()[1:] == ["Pt", "O"]
    assert incar["LASPH"] is True and incar["NELMIN"] == 6
    gas_incar = Incar.from_file(tmp_path / "gas-H2O" / "INCAR")
    assert "LDIPOL" not in gas_incar and gas_incar["ISPIN"] == 1
    assert tuple(Kpoints.from_file(tmp_path / "gas-H2O" / "KPOINTS").kpts[0]) == (1, 1, 1)


def test_vasp_inputs_spin_on_start_from_predicted_or_default_moments(tmp_path, flagged_on):
    """The larger of the predicted moment and the element default (Ni 1.0, O 0.6), so a model
    that underestimates a moment does not start the SCF near the non-magnetic solution."""
    write_dft_inputs(flagged_on, "vasp", tmp_path, DftSettings(xc="RPBE"))
    incar = Incar.from_file(tmp_path / flagged_on.config_id[0] / "INCAR")
    assert incar["ISPIN"] == 2 and incar["GGA"] == "Rp"
    assert incar["LORBIT"] == 11  # per-site moments in OUTCAR, as MPRelaxSet
    predicted = np.linspace(0.1, 1.3, 13)
    predicted[0] = -2.0
    default = np.array([1.0] * 12 + [0.6])
    expected = np.sign(predicted) * np.maximum(np.abs(predicted), default)
    assert incar["MAGMOM"][0] == -2.0 and incar["MAGMOM"][5] == 1.0
    assert incar["MAGMOM"] == pytest.approx(np.round(expected, 3))
    slab_incar = Incar.from_file(tmp_path / flagged_on.slab_config_id[0] / "INCAR")
    assert slab_incar["MAGMOM"] == [1.0] * 12  # no predicted moments: the Ni default
    assert (tmp_path / flagged_on.config_id[0] / "POTCAR.symbols").read_text().split()[-2:] == [
        "Ni_pv",
        "O",
    ]


def test_predicted_moments_count_up_to_the_free_atom_limit():
    """An unbounded moment head must not start DFT from an unphysical moment: Fe at most 4
    (3d6), Ni 2 (3d8), H 1; a non-finite prediction falls back to the element default."""
    from ase import Atoms

    from catscreen.dft.settings import free_atom_moment, initial_magmoms

    assert [free_atom_moment(s) for s in ("Fe", "Cr", "Ni", "Cu", "O", "Gd")] == [
        4.0,
        6.0,
        2.0,
        1.0,
        2.0,
        8.0,
    ]
    atoms = Atoms("FeNiCuHCo", positions=np.arange(15.0).reshape(5, 3))
    atoms.arrays["magmoms"] = np.array([9.0, -7.0, 0.3, 50.0, np.nan])
    moments = initial_magmoms(atoms, "on", DftSettings())
    assert moments.tolist() == [4.0, -2.0, 0.6, 1.0, 2.0]
    assert initial_magmoms(atoms, "off", DftSettings()) is None


def test_gpaw_scripts_carry_the_physics(tmp_path, flagged_on):
    notes: list[str] = []
    write_dft_inputs(flagged_on, "gpaw", tmp_path, DftSettings(), notes.append)
    text = (tmp_path / flagged_on.config_id[0] / "run_gpaw.py").read_text()
    tree = ast.parse(text)
    consts = {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id.isupper()
        and node.targets[0].id != "HERE"
    }
    params = consts["PARAMETERS"]
    # GPAW's setups at VASP's 400 eV moved gas reaction energies by up to 0.17 eV
    assert params["mode"] == {"name": "pw", "ecut": 600.0} and params["xc"] == "PBE"
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["encut_eV"] == 600.0 and "experimental" in manifest["cells"]
    (entry,) = manifest["adsorption"]  # where it started, and where the model left it
    assert (entry["site_type"], entry["final_site_type"]) == tuple(
        flagged_on[["site_type", "final_site_type"]].iloc[0]
    )
    assert any("GPAW scripts use 600 eV plane waves" in n for n in notes)
    assert params["spinpol"] is True and params["poissonsolver"] == {"dipolelayer": "xy"}
    assert params["occupations"] == {"name": "fermi-dirac", "width": 0.1}
    assert params["kpts"]["size"][2] == 1
    assert consts["FIXED"] == list(range(8)) and consts["PBC"] == [True, True, False]
    given = tmp_path / "given"  # a cutoff given is the cutoff used, without a note
    write_dft_inputs(flagged_on, "gpaw", given, DftSettings(encut=450), notes.append)
    script = (given / flagged_on.config_id[0] / "run_gpaw.py").read_text()
    assert "'ecut': 450" in script and len(notes) == 1
    assert len(consts["MAGMOMS"]) == 13
    assert params["convergence"] == {
        "energy": {"name": "energy", "tol": 1e-5, "relative": False}
    }  # a total-energy tolerance, as VASP's EDIFF
    gas = (tmp_path / "gas-H2" / "run_gpaw.py").read_text()
    assert "dipolelayer" not in gas and "'size': [1, 1, 1]" in gas
    assert "'spinpol': False" in gas  # H2 is closed-shell, whatever the Ni row's spin


def test_bad_engine_and_bad_flagged_table(tmp_path, flagged_off):
    with pytest.raises(CatscreenError, match="unknown DFT engine 'cp2k'"):
        write_dft_inputs(flagged_off, "cp2k", tmp_path, DftSettings())
    with pytest.raises(CatscreenError, match="not a flagged table"):
        dft_tasks(flagged_off.drop(columns=["slab_structure"]))
    with pytest.raises(CatscreenError, match="unknown xc"):
        DftSettings(xc="LDA")
    assert json.loads(flagged_off.reference_weights[0]) == {"H2": -1.0, "H2O": 1.0}
    # another tool's rows: named before any calculation, not a traceback after all of them
    row = flagged_off.config_id[0]
    for cells, message in [
        ({"spin": "true"}, f"flagged row {row}: spin 'true', not on or off"),
        ({"reference_weights": "H2:0.5"}, "reference_weights is not a JSON mapping"),
        ({"reference_weights": json.dumps({"H2": 0.5, "N2": 1.0})}, "molecule(s) N2"),
        ({"reference_structures": json.dumps({"H2": "H 0 0 0", "H2O": ""})}, "H2 is not extxyz"),
        ({"slab_structure": "junk"}, f"slab_structure of {row} is not extxyz"),
        # ids name folders: empty, a path, or an adslab's id would write elsewhere or lose one
        ({"slab_config_id": ""}, "slab_config_id of flagged row 0 is '', not an id"),
        ({"config_id": "../escaped"}, "config_id of flagged row 0 is '../escaped', not an id"),
        ({"slab_config_id": row}, f"flagged row {row}: its slab has the id of an adslab"),
        # structures the writers cannot use: a singular cell (a traceback), nan in the inputs
        ({"slab_structure": _cellless(flagged_off.slab_structure[0])}, "has no 3D cell"),
        ({"final_structure": _nan(flagged_off.final_structure[0])}, "non-finite positions"),
    ]:
        with pytest.raises(CatscreenError, match=re.escape(message)):
            dft_tasks(flagged_off.assign(**cells))


def _cellless(text: str) -> str:
    atoms = atoms_from_text(text)
    atoms.cell = None
    atoms.pbc = False
    return atoms_to_text(atoms)


def _nan(text: str) -> str:
    atoms = atoms_from_text(text)
    atoms.positions[0, 2] = np.nan
    return atoms_to_text(atoms)


def test_a_slab_flagged_in_both_spin_contexts_is_one_calculation_per_spin(tmp_path):
    """O ranked spin on and H spin off on one Ni slab (a --spin off relax appended to a spin
    on one): the slab was written once, in the first row's spin, and served both."""
    gases = {"H2": (-6.8, 0.0), "H2O": (-14.2, 0.0)}
    off = hand_results(
        {"Ni": -70.0}, [("Ni", "O", "fcc", -78.0, 0.0), ("Ni", "H", "fcc", -73.6, 0.0)], gases
    )
    on = off.assign(spin="on", energy=off.energy - 1.0)
    mixed = pd.concat([off[off.adsorbate != "O"], on[on.adsorbate != "H"]], ignore_index=True)
    flagged = rank_results(mixed, RankSettings(top_k=1)).flagged
    assert sorted(flagged.spin) == ["off", "on"] and flagged.slab_config_id.nunique() == 1
    slab = flagged.slab_config_id[0]
    slabs = {t.name: t.spin for t in dft_tasks(flagged) if t.kind == "slab"}
    assert slabs == {f"{slab}-spin-on": "on", f"{slab}-spin-off": "off"}
    write_dft_inputs(flagged, "vasp", tmp_path / "v", DftSettings())
    for spin, ispin in (("on", 2), ("off", 1)):
        assert Incar.from_file(tmp_path / "v" / f"{slab}-spin-{spin}" / "INCAR")["ISPIN"] == ispin


def test_a_noise_moment_starts_parallel_and_a_slab_at_the_cell_edge_is_centred():
    """-0.02 muB predicted under CO on Ni(111) started that atom fully antiparallel in a
    ferromagnetic slab; a slab at z = 0 with pbc off along z made GPAW refuse it."""
    from ase import Atoms
    from ase.build import fcc111

    from catscreen.dft.settings import initial_magmoms, prepare

    atoms = Atoms("Ni3", positions=np.zeros((3, 3)))
    atoms.arrays["magmoms"] = np.array([-0.0187, -0.9, 0.3])
    assert initial_magmoms(atoms, "on", DftSettings()).tolist() == [1.0, -1.0, 1.0]
    afm = Atoms("Cr2Mn2", positions=np.zeros((4, 3)))  # antiferromagnetic: real, kept
    afm.arrays["magmoms"] = np.array([1.1, -1.1, 1.8, -1.8])
    signs = np.sign(initial_magmoms(afm, "on", DftSettings()))
    assert signs.tolist() == [1.0, -1.0, 1.0, -1.0]
    slab = fcc111("Al", (1, 1, 3), vacuum=6.0)
    slab.positions[:, 2] -= slab.positions[:, 2].min()  # at the bottom, vacuum only above
    ready = prepare(atoms_to_text(slab), "slab", "off", DftSettings())
    gap = ready.cell[2, 2] - np.ptp(ready.positions[:, 2])
    assert ready.positions[:, 2].min() == pytest.approx(gap / 2)
    np.testing.assert_allclose(
        ready.get_all_distances(mic=True), slab.get_all_distances(mic=True), atol=1e-9
    )


def test_an_adslab_takes_its_clean_slabs_antiferromagnetic_sublattices():
    """An adsorbate distorts Cr(110) until first and second neighbours overlap in distance:
    3 of 4 relaxed Cr(110)+O adslabs did not split and started parallel beside their
    antiparallel clean slab."""
    from ase.build import add_adsorbate, bcc110

    from catscreen.dft.settings import prepare, slab_sublattices, sublattice_signs

    slab = bcc110("Cr", (2, 2, 3), vacuum=6.0)
    pattern = sublattice_signs(slab)
    assert (pattern < 0).sum() == len(slab) // 2
    adslab = slab.copy()
    add_adsorbate(adslab, "O", 1.2, "longbridge")
    adslab.positions[: len(slab)] += np.random.default_rng(3).normal(0, 0.12, (len(slab), 3))
    assert (sublattice_signs(adslab) > 0).all()  # its own geometry no longer splits
    text = slab_sublattices(atoms_to_text(adslab), atoms_to_text(slab))
    moments = prepare(text, "adslab", "on", DftSettings()).get_initial_magnetic_moments()
    assert np.sign(moments[: len(slab)]).tolist() == pattern.tolist()
    assert moments[-1] > 0  # the O starts as before
    iron = bcc110("Fe", (2, 2, 3), vacuum=6.0)  # no antiferromagnet: the text as it was
    assert slab_sublattices(atoms_to_text(iron), atoms_to_text(iron)) == atoms_to_text(iron)
    shuffled = adslab[list(range(len(adslab)))[::-1]]  # not the slab's order: its own split
    assert slab_sublattices(atoms_to_text(shuffled), atoms_to_text(slab)) == atoms_to_text(shuffled)


def test_gas_molecules_take_their_ground_state_spin(tmp_path):
    """O2 is a triplet on a spin-off Pt row too; a molecule without a cell gets a box."""
    from ase import Atoms

    from catscreen.analysis import load_references

    gases = {"H2": (-6.8, 0.0), "O2": (-9.9, 0.0)}
    df = hand_results({"Pt": -100.0}, [("Pt", "O", "fcc", -106.5, 0.0)], gases)
    bare = Atoms("O2", positions=[[0, 0, 0], [0, 0, 1.21]])  # from another tool: no cell
    df.loc[df.adsorbate == "O2", "final_structure"] = atoms_to_text(bare)
    (tmp_path / "r.yaml").write_text("elements:\n  O: {O2: 0.5}\n  H: {H2: 0.5}\n")
    refs = load_references(tmp_path / "r.yaml")
    flagged = rank_results(df, RankSettings(top_k=1, references=refs)).flagged
    assert set(flagged.spin) == {"off"}
    tasks = {t.name: t for t in dft_tasks(flagged)}
    assert tasks["gas-O2"].spin == "on" and "gas-H2" not in tasks  # O from O2 alone
    write_dft_inputs(flagged, "vasp", tmp_path / "vasp", DftSettings())
    incar = Incar.from_file(tmp_path / "vasp" / "gas-O2" / "INCAR")
    assert incar["ISPIN"] == 2 and incar["MAGMOM"] == [1.0, 1.0]
    poscar = Poscar.from_file(tmp_path / "vasp" / "gas-O2" / "POSCAR")
    assert min(poscar.structure.lattice.abc) >= 12.0


def test_untagged_structures_keep_the_relaxation_s_fixed_atoms(tmp_path, flagged_off):
    """A user structure without tags (all 0) was relaxed with every atom free, or with its own
    FixAtoms; the DFT inputs must not freeze every atom of it."""
    from ase.constraints import FixAtoms

    from catscreen.dft.gpaw import gpaw_script

    flagged = flagged_off.copy()
    for col in ("final_structure", "slab_structure"):
        atoms = atoms_from_text(flagged.at[0, col])
        atoms.set_constraint()
        atoms.set_tags(0)
        if col == "slab_structure":
            atoms.set_constraint(FixAtoms(indices=[0, 1]))
        flagged.at[0, col] = atoms_to_text(atoms)
    write_dft_inputs(flagged, "vasp", tmp_path, DftSettings())
    ads = Poscar.from_file(tmp_path / flagged.config_id[0] / "POSCAR").selective_dynamics
    assert ads is None or np.array(ads).all()  # pymatgen: all free -> None
    slab = atoms_from_text(flagged.at[0, "slab_structure"])
    dyn = np.array(
        Poscar.from_file(tmp_path / flagged.slab_config_id[0] / "POSCAR").selective_dynamics
    )
    assert (~dyn[:2]).all() and dyn[2:].all() and len(dyn) == len(slab)
    script = gpaw_script(flagged.at[0, "final_structure"], "adslab", "off", DftSettings(), "x")
    assert "FIXED = []" in script


def test_directions_the_relaxation_fixed_stay_fixed_in_dft(tmp_path, flagged_off):
    """An atom held in z only (FixCartesian, kept through relax's extxyz) moves in x and y in
    the ML relaxation; VASP's selective dynamics and the GPAW script keep exactly that."""
    from ase.constraints import FixAtoms, FixCartesian

    from catscreen.dft.gpaw import gpaw_script
    from catscreen.workflow.relax import fixed_mask

    flagged = flagged_off.copy()
    atoms = atoms_from_text(flagged.at[0, "final_structure"])
    o = len(atoms) - 1
    whole = [c for c in atoms.constraints if isinstance(c, FixAtoms)]
    atoms.set_constraint([*whole, FixCartesian(o, mask=(False, False, True))])
    flagged.at[0, "final_structure"] = atoms_to_text(atoms)
    want = fixed_mask(atoms_from_text(flagged.at[0, "final_structure"]))
    assert want[o].tolist() == [False, False, True] and want.all(axis=1).sum() > 0

    write_dft_inputs(flagged, "vasp", tmp_path, DftSettings())
    poscar = Poscar.from_file(tmp_path / flagged.config_id[0] / "POSCAR")
    dyn = np.array(poscar.selective_dynamics)
    symbols = [site.specie.symbol for site in poscar.structure]
    assert dyn[symbols.index("O")].tolist() == [True, True, False]  # free in x, y
    assert (~dyn).all(axis=1).sum() == want.all(axis=1).sum()

    script = gpaw_script(flagged.at[0, "final_structure"], "adslab", "off", DftSettings(), "x")
    values = {
        t.id: ast.literal_eval(n.value)
        for n in ast.parse(script).body
        if isinstance(n, ast.Assign) and isinstance(t := n.targets[0], ast.Name)
        and t.id in ("FIXED", "FIXED_DIRECTIONS")
    }  # fmt: skip
    assert values["FIXED_DIRECTIONS"] == [(o, (False, False, True))]
    assert values["FIXED"] == np.flatnonzero(want.all(axis=1)).tolist()


def test_triplet_molecules_are_found_by_their_hill_formula():
    from ase import Atoms

    from catscreen.dft.settings import gas_unpaired

    assert [gas_unpaired(Atoms(s)) for s in ("O2", "CH2", "NH", "H2O", "OH")] == [2, 2, 2, 0, 1]


def test_an_odd_electron_count_gets_spin_polarised_inputs(tmp_path, flagged_off):
    """H on MgO(100) was written ISPIN 1 under --spin auto: restricted, its unpaired electron
    sits in a half-filled level, not its ground state on an insulator. On a metal the row's
    spin stands (ISPIN 2 for H on Pt(111) doubled the cost for the restricted energy)."""
    metal = flagged_off.copy()
    atoms = atoms_from_text(metal.at[0, "final_structure"])
    atoms[-1].symbol = "H"  # O -> H: an odd count on the even Pt slab
    metal.at[0, "final_structure"] = atoms_to_text(atoms)
    notes: list[str] = []
    write_dft_inputs(metal, "vasp", tmp_path / "metal", DftSettings(), notes.append)
    (entry,) = json.loads((tmp_path / "metal" / "manifest.json").read_text())["adsorption"]
    assert entry["dft_spin"] == {"adslab": "off", "slab": "off"} and not notes
    assert Incar.from_file(tmp_path / "metal" / entry["adslab"] / "INCAR")["ISPIN"] == 1

    flagged = metal.copy()  # one Pt of the slab and the adslab -> O: an oxide host
    for column in ("final_structure", "slab_structure"):
        host = atoms_from_text(flagged.at[0, column])
        host[0].symbol = "O"
        flagged.at[0, column] = atoms_to_text(host)
    atoms = atoms_from_text(flagged.at[0, "final_structure"])
    write_dft_inputs(flagged, "vasp", tmp_path / "v", DftSettings(), notes.append)
    (entry,) = json.loads((tmp_path / "v" / "manifest.json").read_text())["adsorption"]
    assert entry["spin"] == "off" and entry["dft_spin"] == {"adslab": "on", "slab": "off"}
    adslab = Incar.from_file(tmp_path / "v" / entry["adslab"] / "INCAR")
    assert adslab["ISPIN"] == 2 and len(adslab["MAGMOM"]) == len(atoms)
    assert Incar.from_file(tmp_path / "v" / entry["slab"] / "INCAR")["ISPIN"] == 1
    assert any(n.startswith("1 spin-off adslab(s) with an odd electron count") for n in notes)
    write_dft_inputs(flagged_off, "vasp", tmp_path / "even", DftSettings(), notes.append)
    (even,) = json.loads((tmp_path / "even" / "manifest.json").read_text())["adsorption"]
    assert Incar.from_file(tmp_path / "even" / even["adslab"] / "INCAR")["ISPIN"] == 1


def test_vasp_cutoff_is_raised_to_the_hardest_potcar_for_the_whole_set(tmp_path, flagged_off):
    """Li_sv's ENMAX is 499 eV: at the default 400 its energies are not converged. Every
    calculation of the set gets the one raised cutoff (an E_ads subtracts their energies)."""
    flagged = flagged_off.copy()
    for col in ("final_structure", "slab_structure"):
        atoms = atoms_from_text(flagged.at[0, col])
        atoms[0].symbol = "Li"  # a Li-doped Pt slab
        flagged.at[0, col] = atoms_to_text(atoms)
    notes: list[str] = []
    folders = write_dft_inputs(flagged, "vasp", tmp_path / "li", DftSettings(), notes.append)
    assert {Incar.from_file(f / "INCAR")["ENCUT"] for f in folders} == {499}  # gases too
    assert [n for n in notes if "ENCUT" in n] == [  # Li for Pt: an odd count, noted too
        "VASP ENCUT raised from 400 to 499 eV for every calculation (ENMAX: Li_sv 499 eV)"
    ]
    notes.clear()
    folders = write_dft_inputs(flagged_off, "vasp", tmp_path / "pt", DftSettings(), notes.append)
    assert {Incar.from_file(f / "INCAR")["ENCUT"] for f in folders} == {400} and not notes
    folders = write_dft_inputs(flagged, "vasp", tmp_path / "hi", DftSettings(encut=520))
    assert {Incar.from_file(f / "INCAR")["ENCUT"] for f in folders} == {520}


def test_the_manifest_says_which_calculations_make_each_e_ads(tmp_path, flagged_off):
    """The folder stands alone: each adslab's slab and gas folders with their weights, the
    model's E_ads; the files it wrote with their hashes tell a rerun what is the user's."""
    sets = tmp_path / "dft"
    write_dft_inputs(flagged_off, "vasp", sets / "vasp", DftSettings())
    manifest = json.loads((sets / "vasp" / "manifest.json").read_text())
    (entry,) = manifest["adsorption"]
    row = flagged_off.iloc[0]
    weights = json.loads(row.reference_weights)
    assert entry["adslab"] == row.config_id and entry["slab"] == row.slab_config_id
    assert entry["gas"] == {f"gas-{m}": w for m, w in weights.items()} and weights
    assert entry["model_e_ads"] == pytest.approx(row.e_ads)
    assert entry["model_reference_energy"] is None and "zero smearing" in manifest["e_ads"]
    for folder in (entry["adslab"], entry["slab"], *entry["gas"]):
        assert (sets / "vasp" / folder / "INCAR").is_file()
    assert manifest["xc"] == "PBE" and manifest["model"]["fidelity"] == row.fidelity
    assert (
        f"{row.config_id}/INCAR" in manifest["files"] and "manifest.json" not in manifest["files"]
    )
    assert foreign_files(sets) == []
    outcar = sets / "vasp" / "gas-H2" / "OUTCAR"
    outcar.write_text("run here\n")
    incar = sets / "vasp" / row.config_id / "INCAR"
    incar.write_text(incar.read_text().replace("ENCUT = 400", "ENCUT = 520"))
    (sets / "notes.txt").write_text("mine\n")
    assert foreign_files(sets) == [sets / "notes.txt", incar, outcar]
    # a set written before manifests: its input files by name are catscreen's, the rest not
    (sets / "vasp" / "manifest.json").unlink()
    (sets / "notes.txt").unlink()
    assert foreign_files(sets) == [outcar]


def test_the_functional_follows_the_rows_fidelity(tmp_path, flagged_off):
    """Rows relaxed at an r2SCAN fidelity got PBE inputs without a word."""
    r2scan = flagged_off.assign(fidelity="chgnet-r2scan")
    notes = []
    write_dft_inputs(r2scan, "vasp", tmp_path / "v", DftSettings(xc="auto"), notes.append)
    incar = Incar.from_file(tmp_path / "v" / r2scan.config_id[0] / "INCAR")
    assert incar["METAGGA"] == "R2scan" and incar["LMIXTAU"] is True and "GGA" not in incar
    assert incar["LASPH"] is True and incar["ENCUT"] == 680  # as MP's r2SCAN runs
    assert notes == [
        "vasp inputs use r2SCAN, the level of theory of fidelity chgnet-r2scan",
        "VASP ENCUT raised from 400 to 680 eV for every calculation, as MP's r2SCAN calculations",
    ]
    symbols = (tmp_path / "v" / r2scan.config_id[0] / "POTCAR.symbols").read_text()
    assert "PAW_PBE_54 (MP r2SCAN)" in symbols  # meta-GGAs need the kinetic-energy density
    assert potcar_symbols(["W", "Yb"], "r2SCAN") == ["W_sv", "Yb_3"]
    assert potcar_symbols(["W", "Yb"]) == ["W_pv", "Yb_2"]
    assert json.loads((tmp_path / "v" / "manifest.json").read_text())["xc"] == "r2SCAN"
    notes.clear()
    write_dft_inputs(r2scan, "gpaw", tmp_path / "g", DftSettings(xc="auto"), notes.append)
    assert "'xc': 'PBE'" in (tmp_path / "g" / r2scan.config_id[0] / "run_gpaw.py").read_text()
    assert notes and notes[0].startswith("GPAW scripts use PBE for candidates relaxed at")
    notes.clear()
    write_dft_inputs(flagged_off, "vasp", tmp_path / "p", DftSettings(xc="auto"), notes.append)
    assert Incar.from_file(tmp_path / "p" / r2scan.config_id[0] / "INCAR")["GGA"] == "Pe"
    assert notes == []  # emt: PBE, nothing to say
    with pytest.raises(CatscreenError, match="GPAW scripts are written for PBE or RPBE"):
        write_dft_inputs(r2scan, "gpaw", tmp_path / "x", DftSettings(xc="r2SCAN"))
    mixed = pd.concat([flagged_off, r2scan], ignore_index=True)
    with pytest.raises(CatscreenError, match="several fidelities .chgnet-r2scan, emt"):
        write_dft_inputs(mixed, "vasp", tmp_path / "y", DftSettings(xc="auto"))
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_chromium_starts_antiferromagnetic_on_its_two_sublattices():
    """bcc Cr started ferromagnetic (3 muB on every atom, the model predicts magnitudes only):
    the SCF settles above the antiferromagnetic ground state. Nearest neighbours now start
    antiparallel; where they cannot (fcc's triangles) and for Fe, every moment is parallel."""
    from ase.build import bcc100, bcc110, fcc111
    from ase.neighborlist import neighbor_list

    from catscreen.dft.settings import prepare

    for build in (bcc110, bcc100):
        slab = build("Cr", (2, 2, 4), vacuum=8.0)
        slab.rattle(0.05, seed=1)  # relaxed, not ideal: the shortest pair is no yardstick
        slab.set_tags([1] * len(slab))
        slab.append("O")
        slab.positions[-1] = slab.positions[-2] + [0.0, 0.0, 1.8]
        atoms = prepare(atoms_to_text(slab), "adslab", "on", DftSettings())
        moments = atoms.get_initial_magnetic_moments()
        assert moments[-1] == pytest.approx(0.6)  # O: the default, parallel
        cr = atoms[:-1]
        i, j, d = neighbor_list("ijd", cr, 2.65)
        assert len(i) and (moments[i] * moments[j] < 0).all()  # every nearest pair antiparallel
        assert np.abs(moments[:-1]) == pytest.approx(np.full(len(cr), 3.0))
        assert moments[:-1].sum() == 0
    for symbol, slab in (("Cr", fcc111("Cr", (2, 2, 3), a=3.6, vacuum=8.0)), ("Fe", None)):
        slab = slab if slab is not None else bcc110("Fe", (2, 2, 4), vacuum=8.0)
        slab.set_tags([1] * len(slab))
        moments = prepare(atoms_to_text(slab), "slab", "on", DftSettings())
        assert (moments.get_initial_magnetic_moments() > 0).all(), symbol
    # a model that predicts antiparallel moments keeps its own
    slab = bcc110("Cr", (2, 2, 4), vacuum=8.0)
    slab.set_tags([1] * len(slab))
    slab.arrays["magmoms"] = np.array([1.0, -1.0] * (len(slab) // 2))
    moments = prepare(
        atoms_to_text(slab), "slab", "on", DftSettings()
    ).get_initial_magnetic_moments()
    assert np.sign(moments) == pytest.approx(np.sign(slab.arrays["magmoms"]))


def test_a_4f_in_core_potcar_starts_at_the_valence_default(tmp_path):
    """VASP inputs for Nd and Sm started at 3 and 5 muB, moments of the 4f shell that MP's
    Nd_3/Sm_3 POTCARs freeze in the core; GPAW (4f in valence) keeps them, Gd (MP's Gd
    POTCAR has its 4f in valence) too."""
    from ase.build import fcc111

    from catscreen.dft.settings import prepare
    from catscreen.dft.vasp import incar

    for element, gpaw_start, vasp_start in (("Nd", 3.0, 0.6), ("Sm", 5.0, 0.6), ("Gd", 7.0, 7.0)):
        slab = fcc111(element, (1, 1, 3), a=5.2, vacuum=8.0)
        slab.set_tags([1] * len(slab))
        slab.append("O")
        slab.positions[-1] = slab.positions[-2] + [0.0, 0.0, 2.0]
        atoms = prepare(atoms_to_text(slab), "adslab", "on", DftSettings())
        assert atoms.get_initial_magnetic_moments()[:3] == pytest.approx([gpaw_start] * 3)
        made = incar(atoms, "on", "adslab", DftSettings(), element)
        assert made["MAGMOM"] == pytest.approx([vasp_start] * 3 + [0.6]), element
