"""Each anomaly on a hand-made structure: O (or OH) on a 2x2x3 Pt(111) slab."""

from __future__ import annotations

import numpy as np
import pytest
from ase.neighborlist import natural_cutoffs
from test_analysis_helpers import adslab, slab

from catscreen.analysis import anomalies
from catscreen.analysis.anomalies import SlabReference, bond_matrix, detect_anomalies
from catscreen.training.generate import add_adsorbate_at, make_slab

FCC_SITE = [8, 9, 10]


def pair(ads: str = "O", site: str = "fcc"):
    initial = adslab("Pt", ads, site)
    return initial, initial.copy()


def test_clean_placement_has_no_anomaly():
    initial, final = pair()
    report = detect_anomalies(initial, final, slab("Pt"), FCC_SITE)
    assert report.names == [] and not report.excluding
    assert report.final_site_atoms == FCC_SITE and report.final_site_type == "hollow"


def test_desorbed():
    initial, final = pair()
    final.positions[-1, 2] += 4.0
    report = detect_anomalies(initial, final, slab("Pt"), FCC_SITE)
    assert report.names == ["desorbed"] and report.excluding


@pytest.mark.parametrize(("height", "desorbed"), [(2.6, False), (3.5, False), (3.8, True)])
def test_desorption_is_adsorbml_s_looser_test(height, desorbed):
    """AdsorbML's cutoff: 1.5x the radii sum plus 0.3 A per atom (O-Pt 3.63 A). At the bond
    cutoff (2.53 A) H2O held H-down on Pt(111) was "desorbed" at E_ads -0.63 eV."""
    initial = adslab("Pt", "O", "ontop", height=2.0)
    final = adslab("Pt", "O", "ontop", height=height)  # O straight above one Pt
    report = detect_anomalies(initial, final, slab("Pt"), None)
    assert report.desorbed is desorbed and report.excluding is desorbed
    if not desorbed:  # held beyond a bond: its site is read at the looser cutoff, not "none"
        assert report.final_site_type == "ontop" and not report.migrated


def test_a_slab_without_surface_tags_is_not_intercalated():
    """Adsorbate tagged 2, slab all 0: every bonded placement was "intercalated" through its
    bond to a (tag 0) slab atom; the surface is then every slab atom, as for the site."""
    initial = adslab("Pt", "O", "fcc")
    tags = initial.get_tags()
    initial.set_tags(np.where(tags == 1, 0, tags))
    clean = slab("Pt")
    clean.set_tags(0)
    report = detect_anomalies(initial, initial.copy(), clean, FCC_SITE)
    assert report.names == [] and report.final_site_atoms == FCC_SITE
    below = initial.copy()
    below.positions[-1, 2] = below.positions[:12, 2].min() - 0.5  # under the whole slab
    assert detect_anomalies(initial, below, clean, FCC_SITE).intercalated


def test_dissociated():
    initial, final = pair("OH", "ontop")
    final.positions[-1] += [2.0, 0.0, -0.5]  # H leaves O, still on the surface
    report = detect_anomalies(initial, final, slab("Pt"), None)
    assert report.dissociated and report.excluding
    assert not report.desorbed


def test_reconstructed_against_the_clean_slab():
    initial, final = pair()
    clean = slab("Pt")
    final.positions[11] += [0.0, 0.0, 1.8]  # a surface atom pops out of the layer
    report = detect_anomalies(initial, final, clean, FCC_SITE)
    assert report.reconstructed and report.excluding
    # the reference is the relaxed clean slab, not the adslab's start
    moved_clean = clean.copy()
    moved_clean.positions[11] += [0.0, 0.0, 1.8]
    assert not detect_anomalies(initial, final, moved_clean, FCC_SITE).reconstructed


def test_intercalated_below_the_surface_layer():
    initial, final = pair()
    top_z = final.positions[final.get_tags() == 1, 2].min()
    final.positions[-1, 2] = top_z - 1.2  # between the first and second layer
    report = detect_anomalies(initial, final, slab("Pt"), FCC_SITE)
    assert report.intercalated and report.excluding


def test_migrated_is_recorded_not_excluding():
    initial = adslab("Pt", "O", "fcc")
    final = adslab("Pt", "O", "hcp")
    report = detect_anomalies(initial, final, slab("Pt"), FCC_SITE)
    assert report.names == ["migrated"] and not report.excluding
    assert report.final_site_atoms == [9, 10, 11]


@pytest.mark.parametrize("tolerance", [1.0, 1.25])
def test_ontop_site_is_one_atom(tolerance):
    initial, final = pair("O", "ontop")
    report = detect_anomalies(initial, final, slab("Pt"), [8], tolerance)
    assert report.final_site_type == "ontop" and not report.migrated


@pytest.mark.parametrize("height, expected", [(0.5, False), (-0.3, True)])
def test_bcc100_hollow_binds_the_second_layer_without_intercalating(height, expected):
    """N in the Fe(100) 4-fold hollow bonds the (fixed, tag 0) atom under it: a minimum, not a
    subsurface adsorbate; pushed below the top layer it is one."""
    from ase import Atoms
    from ase.build import add_adsorbate, bcc100

    fe = bcc100("Fe", size=(2, 2, 3), a=2.87, vacuum=6.0)
    fe.set_tags(np.where(fe.get_tags() == 1, 1, 0))
    n = len(fe)
    add_adsorbate(fe, Atoms("N"), height, position="hollow")
    tags = fe.get_tags()
    tags[n:] = 2
    fe.set_tags(tags)
    report = detect_anomalies(fe, fe.copy(), None, None)
    assert report.intercalated is expected and not report.desorbed
    assert report.excluding is expected


def _bidentate(first: int, second: int, dz: float = 0.0):
    """The two binding O atoms (tag 2) of a formate-like bidentate, 2.0 A over Pt atoms
    `first` and `second`, the second `dz` higher."""
    from ase import Atom

    atoms = slab("Pt")
    for i, lift in ((first, 0.0), (second, dz)):
        atoms.append(Atom("O", atoms.positions[i] + [0.0, 0.0, 2.0 + lift], tag=2))
    return atoms


def test_a_bidentate_site_is_both_ends_and_a_tilt_is_no_migration():
    """Formate-like O..O over Pt 8 and Pt 9: a bridge (it was read from the lower O alone, so
    "ontop", and flagged migrated when the other O came 0.01 A lower)."""
    initial = _bidentate(8, 9, dz=0.01)
    final = _bidentate(8, 9, dz=-0.01)
    report = detect_anomalies(initial, final, slab("Pt"), [8, 9])
    assert report.final_site_atoms == [8, 9] and report.final_site_type == "bridge"
    assert not report.migrated
    moved = detect_anomalies(initial, _bidentate(8, 10), slab("Pt"), [8, 9])
    assert moved.migrated and moved.final_site_atoms == [8, 10]


def test_a_monodentate_start_is_the_site_it_was_placed_on():
    """One binding atom: the manifest says where it was placed; bonds read at its covalent-
    height, nudged start can name other atoms. High above the surface (no bond) too."""
    initial, final = pair("O", "ontop")
    assert not detect_anomalies(initial, final, slab("Pt"), [8]).migrated
    placed_bridge = detect_anomalies(initial, final, slab("Pt"), [8, 9])
    assert placed_bridge.migrated and placed_bridge.final_site_type == "ontop"
    high = adslab("Pt", "O", "fcc", height=3.0)  # no bond at the start: the manifest's site
    assert detect_anomalies(high, adslab("Pt", "O", "hcp"), slab("Pt"), FCC_SITE).migrated
    assert not detect_anomalies(high, adslab("Pt", "O", "fcc"), slab("Pt"), FCC_SITE).migrated


def test_the_final_frame_must_hold_the_initial_atoms_and_takes_their_tags():
    """Frames from other tools lose tags (every check was silently off) or come sorted by
    element (an untouched adsorbate read as dissociated)."""
    from ase.build import sort

    from catscreen.errors import CatscreenError

    initial, final = pair("OH", "ontop")
    final.positions[-2:, 2] += 6.0  # desorbed
    untagged = final.copy()
    untagged.set_tags(0)
    assert detect_anomalies(initial, untagged, slab("Pt"), [8]).names == ["desorbed"]
    with pytest.raises(CatscreenError, match="does not hold the initial one's atoms"):
        detect_anomalies(initial, sort(initial), slab("Pt"), [8])
    with pytest.raises(CatscreenError, match="does not hold"):
        detect_anomalies(initial, initial[:-1], slab("Pt"), [8])


def _upright(first: str, second: str, bond: float, height: float = 1.9):
    """A diatomic upright on top of Pt atom 8 of the 2x2x3 Pt(111) slab, tagged 2."""
    from ase import Atom

    atoms = slab("Pt")
    top = atoms.positions[8]
    atoms.append(Atom(first, top + [0.0, 0.0, height], tag=2))
    atoms.append(Atom(second, top + [0.0, 0.0, height + bond], tag=2))
    return atoms


def test_overlap_excludes_a_collapsed_adsorbate_that_still_looks_bonded():
    """N-H collapsed from 1.02 A to 0.3 A (a hole in the potential): the bonds are unchanged,
    so only the overlap check catches it."""
    initial = _upright("N", "H", 1.02)
    final = _upright("N", "H", 0.3)
    report = detect_anomalies(initial, final, slab("Pt"), [8])
    assert report.names == ["overlapping"] and report.excluding
    assert detect_anomalies(initial, initial.copy(), slab("Pt"), [8]).names == []


@pytest.mark.parametrize("height, expected", [(1.2, True), (1.8, False)])
def test_overlap_of_an_adsorbate_pushed_into_the_surface(height, expected):
    """O on top of Pt: 1.2 A is 0.59x the covalent radii sum, 1.8 A a short real bond."""
    initial = _upright("O", "H", 0.97)
    final = _upright("O", "H", 0.97, height=height)
    assert detect_anomalies(initial, final, slab("Pt"), [8]).overlapping is expected


@pytest.mark.parametrize("first, second, bond", [("C", "O", 1.13), ("N", "N", 1.10)])
def test_triple_bonds_are_not_overlaps(first, second, bond):
    """CO (0.80x) and N2 (0.77x): the shortest bonds relative to their covalent radii."""
    atoms = _upright(first, second, bond)
    assert detect_anomalies(atoms, atoms.copy(), slab("Pt"), [8]).names == []


def _pair_at(slab_atoms, ratio: float) -> tuple[int, int]:
    """The first two surface atoms whose distance is `ratio` x their covalent radii sum."""
    radii = np.array(natural_cutoffs(slab_atoms, mult=1.0))
    top = np.flatnonzero(slab_atoms.get_tags() == 1)
    top = top[slab_atoms.positions[top, 2] > slab_atoms.positions[top, 2].max() - 0.1]
    for i in top:
        for j in top[top > i]:
            d = slab_atoms.get_distance(i, j, mic=True) / (radii[i] + radii[j])
            if abs(d - ratio) < 0.01:
                return int(i), int(j)
    raise AssertionError(f"no surface pair at {ratio}x")


def _move_pair_to(atoms, i: int, j: int, ratio: float) -> None:
    """Move i and j symmetrically along their separation to `ratio` x their radii sum."""
    radii = np.array(natural_cutoffs(atoms, mult=1.0))
    v = atoms.get_distance(i, j, mic=True, vector=True)
    shift = (ratio * (radii[i] + radii[j]) / np.linalg.norm(v) - 1.0) / 2 * v
    atoms.positions[i] -= shift
    atoms.positions[j] += shift


@pytest.mark.parametrize(
    ("host", "facet", "ads", "site", "start", "end"),
    [
        ("Cu", "110", "CH", "hollow", 1.367, 1.16),  # the cross-trough pair pulled in
        ("Fe", "110", "C", "longbridge", 1.087, 1.39),  # bcc second neighbours pushed apart
    ],
)
def test_local_relaxation_across_the_bond_cutoff_is_not_reconstruction(
    host, facet, ads, site, start, end
):
    """What the CHGNet teacher does around these adsorbates (slab atoms move < 0.4 A): the pair
    crosses the 1.25x cutoff but stays inside the cushion, so the placement stays valid."""
    clean = make_slab(host, facet, (3, 3, 3), 6.0)
    initial = add_adsorbate_at(clean, ads, site)
    final = initial.copy()
    i, j = _pair_at(clean, start)
    _move_pair_to(final, i, j, end)
    assert bond_matrix(final)[i, j] != bond_matrix(clean)[i, j]  # a bond flip without cushion
    report = detect_anomalies(initial, final, clean)
    assert not report.reconstructed and not report.excluding


def test_a_bond_stretched_beyond_the_cushion_is_reconstruction():
    """The bcc(110) pair of the test above pushed on to 1.55x the radii sum: bond breaking."""
    clean = make_slab("Fe", "110", (3, 3, 3), 6.0)
    initial = add_adsorbate_at(clean, "C", "longbridge")
    final = initial.copy()
    i, j = _pair_at(clean, 1.087)
    _move_pair_to(final, i, j, 1.45)
    assert not detect_anomalies(initial, final, clean).reconstructed
    _move_pair_to(final, i, j, 1.55)
    assert detect_anomalies(initial, final, clean).reconstructed


def test_a_far_pair_pulled_into_a_bond_is_reconstruction():
    """Surface atoms from beyond the cushion (1.5x the radii sum) brought within bonding."""
    clean = make_slab("Cu", "110", (3, 3, 3), 6.0)
    initial = add_adsorbate_at(clean, "CH", "hollow")
    final = initial.copy()
    i, j = _pair_at(clean, 1.674)  # fcc(110) third neighbours across the trough
    _move_pair_to(final, i, j, 1.2)
    assert detect_anomalies(initial, final, clean).reconstructed


def test_a_slab_reference_judges_as_its_clean_slab_does():
    """`rank` builds one SlabReference per slab: the same flags as from the clean slab itself,
    and one made at another bond tolerance is rebuilt at the one asked for, not used."""
    clean = make_slab("Cu", "110", (3, 3, 3), 6.0)
    initial = add_adsorbate_at(clean, "CH", "hollow")
    final = initial.copy()
    i, j = _pair_at(clean, 1.367)  # fcc(110) across the trough
    _move_pair_to(final, i, j, 0.95)
    reference = SlabReference(clean)
    assert detect_anomalies(initial, final, reference).names == (
        detect_anomalies(initial, final, clean).names
    )
    assert not detect_anomalies(initial, final, reference).reconstructed  # inside 1.5x
    # at tolerance 1.0 the cushion ends at 1.2x: the pair came from beyond it, a bond formed;
    # the 1.25 reference kept would still count it inside its cushion
    strict = detect_anomalies(initial, final, reference, tolerance=1.0)
    assert strict.reconstructed
    assert strict.names == detect_anomalies(initial, final, clean, tolerance=1.0).names


def test_a_sliding_layer_is_reconstruction(monkeypatch: pytest.MonkeyPatch):
    """The Os(0001) top layer shifted into the other stacking (what the teacher did under N on
    top): every bond stays inside the cushion, the 1.6 A displacement flags it; a 0.4 A shift
    (relaxation) and a drift of the whole free slab do not."""
    clean = make_slab("Os", "0001", (2, 2, 3), 6.0)
    initial = add_adsorbate_at(clean, "N", "ontop")
    z = clean.positions[:, 2]
    top = np.flatnonzero(z > z.max() - 0.1)
    stacking = (clean.cell[0] + clean.cell[1]) / 6  # (a1 + a2) / 3 of the 1x1 cell
    final = initial.copy()
    final.positions[[*top, len(clean)]] += stacking  # the layer and its N
    assert anomalies.slab_displacement(clean, final[: len(clean)]) == pytest.approx(1.58, abs=0.01)
    assert detect_anomalies(initial, final, clean).names == ["reconstructed"]
    monkeypatch.setattr(anomalies, "SLAB_DISPLACEMENT", 2.0)  # bonds alone: no change seen
    monkeypatch.setattr(anomalies, "LAYER_SLIDE", 2.0)
    assert not detect_anomalies(initial, final, clean).reconstructed
    monkeypatch.undo()
    small = initial.copy()
    small.positions[top] += 0.4 * stacking / np.linalg.norm(stacking)
    assert not detect_anomalies(initial, small, clean).reconstructed
    free = clean.copy()
    free.set_constraint()
    free.set_tags(1)  # no subsurface atoms: the median shift is the drift
    drifted = add_adsorbate_at(free, "N", "ontop")
    drifted.positions += [1.5, 0.7, 0.3]
    assert not detect_anomalies(add_adsorbate_at(free, "N", "ontop"), drifted, free).reconstructed


def test_a_surface_layer_sliding_as_a_whole_is_reconstruction():
    """The bundled model holds Re(0001)'s clean top layer on a saddle of its stacking: N and
    NH_x placements slid the layer 0.6 A towards bridge registry (no atom 1 A, no bond out of
    the cushion), 0.16-0.2 eV below those that did not, and were the descriptors. Atoms pushed
    apart around an adsorbate move as far without moving the layer."""
    from catscreen.build.bulks import library_bulk
    from catscreen.build.slabs import make_slabs

    (surface,) = make_slabs(library_bulk("Re"), (0, 0, 1), 7.0, 10.0, 5.0, layers=3, repeat=(2, 2))
    clean = surface.atoms  # enumerate's tags: the 4 top atoms 1, the rest 0 (fixed)
    top = np.flatnonzero(clean.get_tags() == 1)
    assert len(top) == 4
    initial = clean.copy()
    initial.append("N")
    initial.positions[-1] = clean.positions[top[0]] + [0.0, 0.0, 1.7]
    initial.set_tags([*clean.get_tags(), 2])
    slid = initial.copy()
    slid.positions[[*top, len(clean)]] += [0.6, 0.0, 0.0]
    assert anomalies.layer_slide(clean, slid[: len(clean)]) == pytest.approx(0.6)
    assert detect_anomalies(initial, slid, clean).names == ["reconstructed"]
    pushed = initial.copy()  # two atoms 0.6 A apart in opposite directions: the mean is 0
    pushed.positions[top[0]] += [0.6, 0.0, 0.0]
    pushed.positions[top[1]] -= [0.6, 0.0, 0.0]
    assert anomalies.layer_slide(clean, pushed[: len(clean)]) == pytest.approx(0.0, abs=1e-9)
    assert not detect_anomalies(initial, pushed, clean).reconstructed
    nudged = initial.copy()
    nudged.positions[top] += [0.3, 0.0, 0.0]
    assert not detect_anomalies(initial, nudged, clean).reconstructed


def test_slab_displacement_counts_the_nearest_image():
    """An atom that crossed the cell boundary (wrapped back in by a cell's length) moved only
    its short way: 0.3 A, not a cell vector."""
    clean = make_slab("Pt", "111", (2, 2, 3), 6.0)
    moved = clean.copy()
    top = int(np.argmax(clean.positions[:, 2]))
    moved.positions[top] += [0.3, 0.0, 0.0] + clean.cell[0]
    assert anomalies.slab_displacement(clean, moved) == pytest.approx(0.3, abs=1e-6)
    moved.positions[top] -= 2 * clean.cell[1]
    assert anomalies.slab_displacement(clean, moved) == pytest.approx(0.3, abs=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_overlap_read_from_the_bond_list_matches_its_own_neighbour_list(seed):
    """`detect_anomalies` reads overlaps from the 1.25x bond matrix it has; the answer must be
    the 0.7x neighbour list's, an atom pushed onto another from across the periodic boundary
    included."""
    rng = np.random.default_rng(seed)
    atoms = _upright("N", "H", 1.02)
    atoms.rattle(0.05, seed=seed)
    z = atoms.positions[: len(atoms) - 2, 2]  # the slab
    top = [k for k in np.flatnonzero(z > z.max() - 0.5) if k != 8]  # not the one under N
    i, j = int(rng.choice(top)), 0  # a bottom-layer atom brought up over a top one
    direction = np.array([rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), 1.0])
    found = []
    for ratio in (0.5, 0.65, 0.75, 0.9):  # of the pair's radii sum: both sides of 0.7
        moved = atoms.copy()
        radii = np.array(natural_cutoffs(moved, mult=1.0))
        target = ratio * (radii[i] + radii[j]) * direction / np.linalg.norm(direction)
        moved.positions[j] = moved.positions[i] + target + moved.cell[0] * rng.integers(-1, 2)
        found.append(anomalies.overlapping(moved, bonds=bond_matrix(moved)))
        assert found[-1] == anomalies.overlapping(moved)
    assert found == [True, True, False, False]


def test_an_adsorbate_staying_in_a_bcc100_hollow_has_not_migrated():
    """It bonds the atom under the hollow too; the site is the four surface atoms around it,
    as enumerate placed it (read with the subsurface atom, every unmoved one "migrated")."""
    from catscreen.build.enumerate import EnumerateSettings, enumerate_configurations

    images = enumerate_configurations(
        EnumerateSettings(bulks=["Fe"], miller=["1,0,0"], adsorbates=["N", "O"], nudge=0.0)
    )
    clean = next(a for a in images if a.info["kind"] == "slab")
    hollows = [a for a in images if a.info.get("site_type") == "4fold"]
    assert hollows
    for start in hollows:
        site = [int(i) for i in str(start.info["site_atoms"]).split(",")]
        report = detect_anomalies(start, start.copy(), clean, site)
        assert not report.migrated and report.final_site_type == "4fold", report


@pytest.mark.parametrize(
    ("site", "height", "expected"),
    [
        ("bridge", 0.5, True),  # the bundled model's Pt(111) minimum: two 1.50 A bonds, 0.90x
        ("bridge", 0.02, True),  # Au(111)'s: in the top layer
        ("bridge", 1.1, False),  # a bridging H as DFT has it: two 1.75 A bonds
        ("fcc", 0.9, False),  # the hollow: three 1.85 A bonds
        ("ontop", 1.56, False),  # one short bond is an ontop H's own (0.93x)
    ],
)
def test_an_h_with_two_surface_bonds_shorter_than_an_ontop_one_is_compressed(
    site, height, expected
):
    initial = adslab("Pt", "H", site, height=1.0)
    final = adslab("Pt", "H", site, height=height)
    report = detect_anomalies(initial, final, slab("Pt"), None)
    assert report.compressed is expected
    assert report.excluding is expected and ("compressed" in report.names) is expected


def test_compression_is_read_for_an_h_bonded_to_its_own_adsorbate_not():
    """The H of OH sits over its O; a hydroxyl tilted so that its H nears two Pt atoms is not
    an H held by the slab (its O holds it)."""
    initial = adslab("Pt", "OH", "bridge", height=1.5)
    final = initial.copy()
    o, h = len(final) - 2, len(final) - 1
    assert final[o].symbol == "O" and final[h].symbol == "H"
    final.positions[h] = final.positions[o] + [0.0, 0.0, -1.1]  # 0.4 A over the bridge, O-H
    report = detect_anomalies(initial, final, slab("Pt"), None)
    assert not report.compressed


@pytest.mark.parametrize(("height", "expected"), [(1.0, False), (0.5, True)])
def test_the_metal_radius_is_read_from_the_slab(height, expected):
    """Cordero's radii of the early metals are large (the teacher's H on a Y(0001) bridge, 2.0
    A from two Y atoms, is 0.91x their sum): the metal's radius is half its nearest-neighbour
    distance in the slab, so Pt(111)'s geometry under Hf's symbols is judged as Pt(111)'s."""
    initial = adslab("Pt", "H", "bridge", height=1.0)
    final = adslab("Pt", "H", "bridge", height=height)
    for atoms in (initial, final):
        atoms.symbols[atoms.get_tags() != 2] = "Hf"
    clean = slab("Pt")
    clean.symbols[:] = "Hf"
    report = detect_anomalies(initial, final, clean, None)
    assert report.compressed is expected, report.names


@pytest.mark.parametrize("size", [(1, 1), (1, 2), (2, 2)])
def test_an_h_between_an_atom_and_its_own_image_is_compressed(size):
    """In a 1x1 or Nx1 cell a bridge joins an atom and its periodic image: one atom, two bonds
    (a bond matrix by atom counts it once, and the H passed)."""
    from ase.build import add_adsorbate, fcc111

    atoms = fcc111("Pt", size=(*size, 3), vacuum=8.0)
    atoms.set_tags(np.where(atoms.get_tags() == 1, 1, 0))  # ASE numbers layers from the top
    top = atoms.positions[:, 2].max()
    a = atoms.cell[0] / size[0]
    bridge = atoms.positions[atoms.positions[:, 2] > top - 0.1][0] + a / 2
    add_adsorbate(atoms, "H", 0.15, position=tuple(bridge[:2]))
    atoms.set_tags([*atoms.get_tags()[:-1], 2])
    report = detect_anomalies(atoms, atoms.copy(), None, None)
    assert report.compressed


@pytest.mark.parametrize(("tolerance", "skin"), [(1.25, 0.0), (1.5, 0.3), (0.9, 0.0)])
def test_bond_matrix_is_ases_neighbor_list_connectivity(tolerance, skin):
    """vesin finds the pairs now (ASE's NeighborList was half of a rank's time): the same
    matrix, periodic images and an atom's bond to its own image in a small cell included."""
    from ase import Atoms
    from ase.build import add_adsorbate, bcc110, fcc111, molecule
    from ase.neighborlist import build_neighbor_list, natural_cutoffs

    from catscreen.analysis.anomalies import bond_matrix

    rng = np.random.default_rng(0)
    slab = fcc111("Pt", (2, 2, 3), vacuum=6.0)
    add_adsorbate(slab, molecule("CO"), 1.9, "fcc")
    slab.positions += rng.normal(0, 0.15, slab.positions.shape)
    small = fcc111("Cu", (1, 1, 2), vacuum=1.5)  # images within bond reach in every direction
    small.pbc = True
    mixed = bcc110("Fe", (2, 2, 3), vacuum=5.0)  # pbc (True, True, False)
    cases = [slab, small, mixed, molecule("H2O"), Atoms("H"), Atoms()]
    for atoms in cases:
        ase = build_neighbor_list(
            atoms, natural_cutoffs(atoms, mult=tolerance), self_interaction=False,
            bothways=True, skin=skin,
        )  # fmt: skip
        expected = ase.get_connectivity_matrix(sparse=False).astype(bool)
        got = bond_matrix(atoms, tolerance, skin)
        assert got.shape == expected.shape and (got == expected).all(), atoms
    assert bond_matrix(small, 1.25).diagonal().all()  # each Cu bonded to its own image
