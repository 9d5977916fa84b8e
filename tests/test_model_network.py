"""Physics of the network: symmetries, conservative forces, stress, conditioning, batching.

Tiny random networks in float64, so finite differences are meaningful and the file runs in
seconds. FiLM layers and reference energies are randomised: at initialisation FiLM is the
identity and references are zero, which would hide conditioning bugs.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import add_adsorbate, bulk, fcc111, molecule

from catscreen.errors import CatscreenError
from catscreen.model.graph import collate, context_index
from catscreen.model.network import (
    SPIN_CAP_WIDTH,
    CatscreenNet,
    ModelConfig,
    deepened,
    reconfigured,
    spin_cap,
    widened,
)

ELEMENTS = ("H", "O", "Ni", "Cu")
FIDELITIES = ("teacher-pbe", "gpaw-pbe")
TINY = ModelConfig(
    cutoff=4.0,
    l_max=2,
    n_scalars=8,
    n_vectors=4,
    n_layers=2,
    n_basis=6,
    radial_hidden=8,
    context_dim=4,
    readout_hidden=4,
    n_heads=3,
    avg_num_neighbors=20.0,
)


def make_net(seed: int = 0, config: ModelConfig = TINY) -> CatscreenNet:
    torch.manual_seed(seed)
    net = CatscreenNet(config, ELEMENTS, FIDELITIES).double()
    with torch.no_grad():
        for layer in net.layers:
            layer.film.linear.weight.normal_(0.0, 0.5)
            layer.film.linear.bias.normal_(0.0, 0.1)
        net.reference_energies.normal_(-3.0, 1.0)
        if net.stoner is not None:
            net.stoner.uniform_(0.5, 1.5)
    return net.eval()


@pytest.fixture(
    scope="module",
    params=[
        (1, False, False, ()),
        (3, False, False, ()),
        (3, True, False, ()),
        (1, False, True, ()),
        (3, True, True, ("gpaw-pbe",)),
    ],
    ids=["nequip", "c3", "c3-zbl", "nequip-spin-energy", "c3-zbl-spin-energy-cap"],
)
def net(request) -> CatscreenNet:
    """Every physics test runs on the NequIP layers, the MACE-style product layers, the
    product layers with the ZBL core repulsion (active in the `squeezed` structure), the
    NequIP layers with the moment-based spin energy, and all of these with the spin cap
    (gpaw-pbe spin on, the default context of `evaluate`: a second, spin-off pass)."""
    correlation, zbl, spin_energy, cap = request.param
    config = replace(TINY, correlation=correlation, zbl=zbl, spin_energy=spin_energy, spin_cap=cap)
    return make_net(config=config)


def small_bulk() -> Atoms:
    """Two Ni atoms in a skewed 2.5 A cell: every atom sees several of its own images."""
    atoms = bulk("Ni", "fcc", a=3.52) * (2, 1, 1)
    atoms.symbols[1] = "Cu"
    atoms.rattle(0.05, seed=3)
    atoms.set_cell(atoms.cell.array + np.array([[0, 0.1, 0], [0, 0, 0.2], [0.1, 0, 0]]), True)
    return atoms


def slab() -> Atoms:
    atoms = fcc111("Ni", (2, 2, 3), vacuum=6.0)
    add_adsorbate(atoms, "O", 1.3, "fcc")
    atoms.rattle(0.04, seed=4)
    return atoms


def water() -> Atoms:
    atoms = molecule("H2O")
    atoms.rattle(0.02, seed=5)
    return atoms


def squeezed() -> Atoms:
    """The skewed bulk with an O pushed to 0.55 covalent sums of Ni (1.04 A), inside the ZBL
    switch, and an H at 0.75 sums of Cu, in a cell where every atom sees its own images."""
    atoms = small_bulk()
    ni = atoms.positions[0]
    atoms += Atoms("OH", positions=[ni + [0.6, 0.6, 0.6], atoms.positions[1] - [0.7, 0.8, 0.6]])
    return atoms


STRUCTURES = {"bulk": small_bulk, "slab": slab, "molecule": water, "squeezed": squeezed}


def evaluate(net, atoms, spin="on", fidelity="gpaw-pbe", stress=False):
    out = net(net.collate([atoms], [spin], [fidelity]), forces=True, stress=stress)
    return {k: v.detach().numpy() for k, v in out.items()}


def random_rotation(seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


@pytest.mark.parametrize("kind", STRUCTURES)
def test_energy_invariant_and_forces_equivariant(net, kind):
    atoms = STRUCTURES[kind]()
    ref = evaluate(net, atoms)

    rot = random_rotation(1)
    moved = atoms.copy()
    moved.positions = atoms.positions @ rot.T + np.array([0.3, -1.2, 2.0])
    moved.set_cell(atoms.cell.array @ rot.T, scale_atoms=False)
    out = evaluate(net, moved)
    np.testing.assert_allclose(out["energy"], ref["energy"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(out["forces"], ref["forces"] @ rot.T, atol=1e-10)
    np.testing.assert_allclose(out["magmoms"], ref["magmoms"], atol=1e-10)

    inverted = atoms.copy()
    inverted.positions = -atoms.positions
    inverted.set_cell(-atoms.cell.array, scale_atoms=False)
    np.testing.assert_allclose(evaluate(net, inverted)["energy"], ref["energy"], atol=1e-10)

    perm = np.random.default_rng(2).permutation(len(atoms))
    out = evaluate(net, atoms[perm])
    np.testing.assert_allclose(out["energy"], ref["energy"], atol=1e-10)
    np.testing.assert_allclose(out["forces"], ref["forces"][perm], atol=1e-10)


@pytest.mark.parametrize("kind", ["bulk", "slab"])
def test_energy_independent_of_periodic_image(net, kind):
    atoms = STRUCTURES[kind]()
    ref = evaluate(net, atoms)
    shifted = atoms.copy()
    offsets = np.zeros((len(atoms), 3))
    offsets[::2, 0] = 2  # whole lattice vectors along periodic directions only
    offsets[1::2, 1] = -1
    shifted.positions += offsets @ atoms.cell.array
    out = evaluate(net, shifted)
    np.testing.assert_allclose(out["energy"], ref["energy"], atol=1e-10)
    np.testing.assert_allclose(out["forces"], ref["forces"], atol=1e-10)
    shifted.wrap()
    np.testing.assert_allclose(evaluate(net, shifted)["energy"], ref["energy"], atol=1e-10)


@pytest.mark.parametrize("kind", STRUCTURES)
def test_forces_are_minus_energy_gradient(net, kind):
    """Directional finite difference along a random displacement of every atom."""
    atoms = STRUCTURES[kind]()
    forces = evaluate(net, atoms)["forces"]
    direction = np.random.default_rng(0).normal(size=forces.shape)
    h = 1e-5
    e = []
    for sign in (1, -1):
        d = atoms.copy()
        d.positions += sign * h * direction
        e.append(evaluate(net, d)["energy"][0])
    fd = (e[0] - e[1]) / (2 * h)
    assert fd == pytest.approx(-(forces * direction).sum(), abs=1e-7)


@pytest.mark.parametrize("kind", ["bulk", "slab", "squeezed"])
def test_stress_is_strain_derivative(net, kind):
    """V * sigma : eps equals dE along a random symmetric strain eps (atoms follow the cell)."""
    atoms = STRUCTURES[kind]()
    stress = evaluate(net, atoms, stress=True)["stress"][0]
    np.testing.assert_allclose(stress, stress.T, atol=1e-12)
    eps = np.random.default_rng(1).normal(size=(3, 3))
    eps = 0.5 * (eps + eps.T)
    h = 1e-5
    e = []
    for sign in (1, -1):
        d = atoms.copy()
        d.set_cell(atoms.cell.array @ (np.eye(3) + sign * h * eps), scale_atoms=True)
        e.append(evaluate(net, d)["energy"][0])
    fd = (e[0] - e[1]) / (2 * h)
    assert fd == pytest.approx(atoms.get_volume() * (stress * eps).sum(), abs=1e-7)


def test_molecule_has_zero_stress(net):
    assert np.all(evaluate(net, water(), stress=True)["stress"] == 0.0)


def test_conditioning_changes_magnetic_energy_and_is_deterministic(net):
    atoms = slab()
    on = evaluate(net, atoms, spin="on")
    off = evaluate(net, atoms, spin="off")
    other = evaluate(net, atoms, spin="on", fidelity="teacher-pbe")
    assert abs(on["energy"][0] - off["energy"][0]) > 1e-3
    assert abs(on["energy"][0] - other["energy"][0]) > 1e-3
    assert not np.allclose(on["forces"], off["forces"])
    again = evaluate(net, atoms, spin="on")
    assert again["energy"][0] == on["energy"][0]
    np.testing.assert_array_equal(again["forces"], on["forces"])


def test_film_starts_as_identity():
    """An untrained network with zero references cannot tell contexts apart."""
    torch.manual_seed(0)
    fresh = CatscreenNet(TINY, ELEMENTS, FIDELITIES).double()
    on = evaluate(fresh, slab(), spin="on")["energy"]
    off = evaluate(fresh, slab(), spin="off", fidelity="teacher-pbe")["energy"]
    np.testing.assert_allclose(on, off, atol=1e-12)


def test_reference_energies_are_per_context_and_element(net):
    o = Atoms("O", positions=[[0, 0, 0]])
    out = evaluate(net, o, spin="off", fidelity="teacher-pbe")
    assert np.all(out["forces"] == 0.0)  # no neighbours, no forces
    row = context_index(FIDELITIES, "off", "teacher-pbe")
    net2 = make_net(config=net.config)
    with torch.no_grad():
        net2.reference_energies[row, ELEMENTS.index("O")] += 1.5
    shifted = evaluate(net2, o, spin="off", fidelity="teacher-pbe")["energy"][0]
    assert shifted - out["energy"][0] == pytest.approx(1.5, abs=1e-12)
    assert evaluate(net2, o, spin="on", fidelity="teacher-pbe")["energy"][0] == pytest.approx(
        evaluate(net, o, spin="on", fidelity="teacher-pbe")["energy"][0], abs=1e-12
    )


def test_batched_matches_one_by_one(net):
    structures = [small_bulk(), slab(), water(), slab()]
    spins = ["on", "off", "off", "on"]
    fids = ["gpaw-pbe", "teacher-pbe", "gpaw-pbe", "teacher-pbe"]
    batch = net.collate(structures, spins, fids)
    out = net(batch, forces=True, stress=True)
    forces = batch.split(out["forces"].detach())
    for k, atoms in enumerate(structures):
        single = evaluate(net, atoms, spins[k], fids[k], stress=True)
        np.testing.assert_allclose(out["energy"][k].item(), single["energy"][0], atol=1e-10)
        np.testing.assert_allclose(forces[k].numpy(), single["forces"], atol=1e-10)
        np.testing.assert_allclose(
            out["stress"][k].detach().numpy(), single["stress"][0], atol=1e-10
        )
        np.testing.assert_allclose(
            out["energy_heads"][k].detach().numpy(), single["energy_heads"][0], atol=1e-10
        )


def test_ensemble_heads_disagree_and_mean_is_energy(net):
    out = evaluate(net, slab())
    assert out["energy_heads"].shape == (1, TINY.n_heads)
    assert out["energy_heads"].std() > 0
    np.testing.assert_allclose(out["energy_heads"].mean(axis=1), out["energy"])


def test_spin_off_structures_have_no_moments(net):
    """Unpolarised means no moments: the magmom head's value there was never trained, and a
    spin-off Fe run reported 2 muB per atom. A batch of both contexts keeps each its own."""
    atoms = slab()
    on, off = evaluate(net, atoms, "on"), evaluate(net, atoms, "off")
    assert np.abs(on["magmoms"]).max() > 0 and not np.any(off["magmoms"])
    both = net(net.collate([atoms, atoms], ["on", "off"], ["gpaw-pbe"] * 2), forces=False)
    m = both["magmoms"].detach().numpy()
    np.testing.assert_allclose(m[: len(atoms)], on["magmoms"], atol=1e-6)
    assert not np.any(m[len(atoms) :])


def test_training_mode_keeps_graph_for_force_loss():
    net = make_net().train()
    out = net(net.collate([slab()], ["on"], ["gpaw-pbe"]), forces=True)
    (out["forces"] ** 2).sum().backward()
    assert all(p.grad is not None for p in net.layers[0].radial.parameters())


def test_unknown_context_and_element_are_errors(net):
    with pytest.raises(CatscreenError, match="fidelity"):
        net.collate([slab()], ["on"], ["r2scan"])
    with pytest.raises(CatscreenError, match="spin"):
        net.collate([slab()], ["up"], ["gpaw-pbe"])
    with pytest.raises(CatscreenError, match="Pt"):
        net.collate([bulk("Pt")], ["on"], ["gpaw-pbe"])
    batch = collate([slab()], ELEMENTS, TINY.cutoff, [net.n_contexts])
    with pytest.raises(CatscreenError, match="context"):
        net(batch)


def test_float32_is_close_to_float64(net):
    atoms = slab()
    ref = evaluate(net, atoms)
    net32 = make_net(config=net.config).float()
    out = evaluate(net32, atoms)
    assert out["energy"].dtype == np.float64  # totals are accumulated in float64
    np.testing.assert_allclose(out["energy"], ref["energy"], atol=1e-4)
    np.testing.assert_allclose(out["forces"], ref["forces"], atol=1e-4)


@pytest.mark.parametrize("kind", ["bulk", "slab", "molecule"])
def test_float32_outputs_do_not_depend_on_how_far_from_the_origin(kind):
    """Unwrapped trajectories and molecules far out: float32 keeps ~3e-5 A at 500 A, which
    moved forces by ~1e-4 eV/A before positions were taken relative to the structure."""
    net32 = make_net(config=replace(TINY, correlation=3)).float()
    atoms = STRUCTURES[kind]()
    moved = atoms.copy()
    far = np.array([317.0, -251.0, 433.0])
    moved.positions += far if kind == "molecule" else 40 * atoms.cell[0] - 30 * atoms.cell[1] + far
    a, b = evaluate(net32, atoms, stress=True), evaluate(net32, moved, stress=True)
    for key, atol in (("energy", 1e-6), ("forces", 1e-6), ("stress", 1e-7)):
        np.testing.assert_allclose(b[key], a[key], atol=atol, err_msg=key)


def test_an_atom_unwrapped_far_from_the_others_is_taken_to_its_nearest_image():
    """One atom 60 cells away (an unwrapped trajectory) is the same crystal; its edges lost
    float32 precision (4.4e-5 eV/A of force with the bundled weights, measured) until atoms
    beyond `graph.FAR` were moved to their nearest image."""
    from catscreen.model.api import load_model

    model = load_model("bundled")
    slab = fcc111("Pt", (2, 2, 3), vacuum=7.0)
    add_adsorbate(slab, "O", 1.5, "fcc")
    slab.rattle(0.05, seed=1)
    apart = slab.copy()
    apart.positions[0] += 60 * slab.cell[0] - 40 * slab.cell[1]
    near, far = model.predict([slab, apart], ["off"] * 2, ["chgnet-pbe"] * 2)
    np.testing.assert_allclose(far.forces, near.forces, atol=1e-5)
    assert far.energy == pytest.approx(near.energy, abs=1e-5)


def assert_same_outputs(net: CatscreenNet, other: CatscreenNet) -> None:
    """Every structure, both kinds of context: energies, heads, forces, stress and moments."""
    for kind, make in STRUCTURES.items():
        for spin, fidelity in [("on", "gpaw-pbe"), ("off", "teacher-pbe")]:
            a = evaluate(net, make(), spin, fidelity, stress=True)
            b = evaluate(other, make(), spin, fidelity, stress=True)
            for key in ("energy", "energy_heads", "forces", "stress", "magmoms"):
                np.testing.assert_allclose(b[key], a[key], atol=1e-10, err_msg=f"{kind} {key}")


def test_deepened_network_starts_as_the_original_and_can_learn(net):
    deeper = deepened(net, 2).eval()
    assert deeper.config.n_layers == net.config.n_layers + 2
    assert deeper.n_parameters > net.n_parameters
    assert_same_outputs(net, deeper)
    # The inserted layers are live: their message branch gets a gradient and changes energies.
    batch = deeper.collate([slab()], ["on"], ["gpaw-pbe"])
    energy = deeper(batch, forces=False)["energy"].sum()
    new_layer = deeper.layers[1]
    (grad,) = torch.autograd.grad(energy, [new_layer.linear_down.weight])
    assert grad.abs().max() > 0
    with torch.no_grad():
        new_layer.linear_down.weight.normal_(0.0, 0.1)
    changed = evaluate(deeper, slab())["energy"][0]
    assert abs(changed - evaluate(net, slab())["energy"][0]) > 1e-6
    with pytest.raises(CatscreenError, match="at least 1"):
        deepened(net, 0)


def test_widened_network_keeps_old_predictions_and_starts_new_elements_as_a_generic_metal(net):
    wider = widened(net, ["Pt", "Cu"]).eval()  # Cu is known already: only Pt is added
    assert wider.elements == (*ELEMENTS, "Pt")
    assert_same_outputs(net, wider)
    metals = [ELEMENTS.index("Ni"), ELEMENTS.index("Cu")]
    emb = wider.species_embedding.weight.detach()
    torch.testing.assert_close(emb[-1], emb[metals].mean(dim=0))
    assert torch.all(wider.reference_energies[:, -1] == 0)
    if wider.stoner is not None:
        assert torch.all(wider.stoner[:, -1] == 0)
    # The new element is live: a Pt slab has finite energies and forces, and its embedding
    # gets a gradient.
    pt = fcc111("Pt", (2, 2, 2), vacuum=5.0)
    out = evaluate(wider, pt)
    assert np.isfinite(out["energy"]).all() and np.isfinite(out["forces"]).all()
    energy = wider(wider.collate([pt], ["off"], ["teacher-pbe"]), forces=False)["energy"].sum()
    (grad,) = torch.autograd.grad(energy, [wider.species_embedding.weight])
    assert grad[-1].abs().max() > 0 and grad[0].abs().max() == 0
    with pytest.raises(CatscreenError, match="no new elements"):
        widened(net, ["Cu"])


@pytest.mark.parametrize("correlation", [1, 2, 3])
def test_product_layers_see_angles_that_pair_sums_miss(correlation):
    """One layer, an atom with two neighbours at the same distance: its energy depends on the
    angle between them only through the products of its neighbour density (body order > 2)."""
    config = replace(TINY, n_layers=1, correlation=correlation, cutoff=3.0)
    torch.manual_seed(2)
    one_layer = CatscreenNet(config, ELEMENTS, FIDELITIES).double().eval()

    def centre_energy(angle: float) -> float:
        a = np.radians(angle)
        atoms = Atoms(
            "NiOO", positions=[[0, 0, 0], [1.8, 0, 0], [1.8 * np.cos(a), 1.8 * np.sin(a), 0]]
        )
        out = one_layer(one_layer.collate([atoms], ["off"], ["gpaw-pbe"]), forces=False)
        return float(out["atomic_energies"][0].mean())

    energies = [centre_energy(angle) for angle in (115.0, 130.0, 145.0, 160.0)]  # O-O > cutoff
    spread = max(energies) - min(energies)
    if correlation == 1:
        assert spread < 1e-12
    else:
        assert spread > 1e-5


def test_correlation_must_be_positive():
    with pytest.raises(CatscreenError, match="correlation"):
        ModelConfig.from_dict({"correlation": 0})


def dimer(r: float, symbols: str = "OH") -> Atoms:
    return Atoms(symbols, positions=[[0, 0, 0], [0.3 * r, 0.4 * r, np.sqrt(0.75) * r]])


def test_zbl_takes_over_where_no_frame_reaches():
    """Below 0.4 covalent sums the network no longer sees the pair and the ZBL repulsion is
    all that changes with distance; beyond 0.7 sums the prior is exactly zero."""
    plain = make_net(config=replace(TINY, correlation=3))
    with_zbl = reconfigured(plain, zbl=True)
    with_zbl.eval()
    d = 0.66 + 0.31  # O-H covalent radii sum (ase.data)
    ratios = np.linspace(0.1, 0.7, 13)
    energies = np.array([evaluate(with_zbl, dimer(x * d))["energy"][0] for x in ratios])
    assert np.all(np.diff(energies) < 0), energies  # repulsive all the way in
    rest = [e - zbl_pair(8, 1, x * d, d) for e, x in zip(energies, ratios, strict=True) if x <= 0.4]
    assert np.ptp(rest) < 1e-9
    for r in (0.7 * d + 1e-6, d, 1.3, 2.5):
        a, b = evaluate(plain, dimer(r)), evaluate(with_zbl, dimer(r))
        assert b["energy"][0] == pytest.approx(a["energy"][0], abs=1e-12)
        np.testing.assert_allclose(b["forces"], a["forces"], rtol=0, atol=1e-12)


def zbl_pair(z1: int, z2: int, r: float, d: float, outer: float = 0.7) -> float:
    """Ziegler-Biersack-Littmark (1985) universal screened repulsion in eV, with r and the
    screening length in A, times NequIP's p=6 envelope at outer * d; written out by hand."""
    a = 0.8854 * 0.529177 / (z1**0.23 + z2**0.23)
    x = r / a
    phi = (
        0.18175 * np.exp(-3.19980 * x)
        + 0.50986 * np.exp(-0.94229 * x)
        + 0.28022 * np.exp(-0.40290 * x)
        + 0.02817 * np.exp(-0.20162 * x)
    )
    u = r / (outer * d)
    envelope = (1 - 28 * u**6 + 48 * u**7 - 21 * u**8) if u < 1 else 0.0
    return 14.399645 * z1 * z2 / r * phi * envelope


def test_zbl_energy_is_the_published_pair_potential_counted_once():
    net = make_net(config=replace(TINY, correlation=3, zbl=True))
    for r in (0.2, 0.45):
        batch = net.collate([dimer(r)], ["on"], ["gpaw-pbe"])
        centre, neighbour = batch.edge_index
        lengths = (batch.positions[neighbour] - batch.positions[centre]).norm(dim=-1)
        ratio = net.zbl.ratio(lengths, batch.edge_index, batch.species)
        total = float(net.zbl(lengths, ratio, batch.edge_index, batch.species).sum())
        assert total == pytest.approx(zbl_pair(8, 1, r, 0.97), rel=1e-9)


def test_zbl_leaves_triple_bonds_alone():
    """N2 and CO, the gas references of N and C, sit at 0.77-0.79 covalent sums: untouched."""
    torch.manual_seed(3)
    plain = CatscreenNet(replace(TINY, correlation=3), ("C", "N", "O"), FIDELITIES).double()
    with_zbl = reconfigured(plain, zbl=True)
    for name in ("N2", "CO"):
        atoms = molecule(name)
        a, b = evaluate(plain.eval(), atoms), evaluate(with_zbl.eval(), atoms)
        assert b["energy"][0] == a["energy"][0]
        np.testing.assert_array_equal(b["forces"], a["forces"])


@pytest.mark.parametrize("ratio", [0.3, 0.55, 0.8])
def test_zbl_forces_are_minus_energy_gradient(ratio):
    """Inside the switch (0.4-0.7 sums) and the envelope, forces stay conservative."""
    net = make_net(config=replace(TINY, correlation=3, zbl=True))
    atoms = dimer(ratio * 0.97) + Atoms("Ni", positions=[[1.5, 0.2, 0.1]])
    forces = evaluate(net, atoms)["forces"]
    direction = np.random.default_rng(1).normal(size=forces.shape)
    h = 1e-6
    e = [evaluate(net, _moved(atoms, sign * h * direction))["energy"][0] for sign in (1, -1)]
    fd = (e[0] - e[1]) / (2 * h)
    assert fd == pytest.approx(-(forces * direction).sum(), rel=1e-6, abs=1e-6)


def test_zbl_far_edges_add_exact_zeros_to_gradients():
    """Every edge is evaluated (no host sync on a GPU): those beyond `outer` sums give exactly
    0, never NaN, to the gradient and to its gradient (training differentiates forces)."""
    net = make_net(config=replace(TINY, correlation=3, zbl=True))
    atoms = dimer(0.3) + Atoms("Ni", positions=[[1.5, 0.2, 0.1]])
    batch = net.collate([atoms], ["on"], ["gpaw-pbe"])
    centre, neighbour = batch.edge_index
    lengths = (batch.positions[neighbour] - batch.positions[centre]).norm(dim=-1).double()
    lengths.requires_grad_(True)
    ratio = net.zbl.ratio(lengths, batch.edge_index, batch.species)
    energy = net.zbl(lengths, ratio, batch.edge_index, batch.species).sum()
    (grad,) = torch.autograd.grad(energy, lengths, create_graph=True)
    (curvature,) = torch.autograd.grad(grad.sum(), lengths)
    far = ratio.detach() >= net.zbl.outer
    assert far.any() and not far.all()
    assert torch.isfinite(grad).all() and torch.isfinite(curvature).all()
    assert (grad[far] == 0).all() and (curvature[far] == 0).all()
    assert (grad[~far] != 0).all()


def _moved(atoms: Atoms, displacement: np.ndarray) -> Atoms:
    out = atoms.copy()
    out.positions += displacement
    return out


def test_zbl_switch_range_is_checked():
    with pytest.raises(CatscreenError, match="zbl_inner and zbl_outer"):
        ModelConfig.from_dict({"zbl": True, "zbl_inner": 0.8, "zbl_outer": 0.5})


def test_spin_energy_starts_inert_and_is_minus_i_m2_over_4():
    """Switched on, it changes nothing until trained; then spin-on energies gain exactly
    -I m^2 / 4 per atom from the predicted moments, and spin-off energies nothing."""
    plain = make_net()
    with_term = reconfigured(plain, spin_energy=True)
    atoms = slab()
    for spin, fidelity in [("on", "gpaw-pbe"), ("off", "gpaw-pbe"), ("on", "teacher-pbe")]:
        a, b = evaluate(plain, atoms, spin, fidelity), evaluate(with_term, atoms, spin, fidelity)
        assert b["energy"][0] == a["energy"][0]
        np.testing.assert_array_equal(b["forces"], a["forces"])
    ni, o = ELEMENTS.index("Ni"), ELEMENTS.index("O")
    with torch.no_grad():
        with_term.stoner[FIDELITIES.index("gpaw-pbe"), ni] = 0.8
        with_term.stoner[FIDELITIES.index("gpaw-pbe"), o] = 0.3
    on, on_plain = evaluate(with_term, atoms, "on"), evaluate(plain, atoms, "on")
    m = on_plain["magmoms"]
    coupling = np.where(atoms.numbers == 28, 0.8, 0.3)
    assert on["energy"][0] - on_plain["energy"][0] == pytest.approx(-0.25 * (coupling * m**2).sum())
    assert not np.allclose(on["forces"], on_plain["forces"])  # the moments depend on positions
    for spin, fidelity in [("off", "gpaw-pbe"), ("on", "teacher-pbe")]:
        a, b = evaluate(plain, atoms, spin, fidelity), evaluate(with_term, atoms, spin, fidelity)
        assert b["energy"][0] == a["energy"][0]


def test_trained_spin_energy_cannot_be_switched_off():
    with_term = make_net(config=replace(TINY, spin_energy=True))
    with pytest.raises(CatscreenError, match="spin_energy cannot be switched off"):
        reconfigured(with_term, spin_energy=False)


def test_zbl_can_be_switched_off_again():
    """Dropping the ZBL drops its radii with it and leaves the network as it was."""
    plain = make_net(config=replace(TINY, correlation=3))
    back = reconfigured(reconfigured(plain, zbl=True), zbl=False)
    a, b = evaluate(plain, slab()), evaluate(back, slab())
    assert b["energy"][0] == a["energy"][0]


def test_spin_cap_is_a_smooth_min_with_zero():
    delta = torch.linspace(-1.0, 0.5, 30001, dtype=torch.float64, requires_grad=True)
    capped = spin_cap(delta)
    assert torch.all(capped <= 0.0) and torch.all(capped[delta >= 0] == 0.0)
    far = delta < -0.4  # 20 widths below zero: within width^2 / r of delta
    assert torch.allclose(capped[far], delta[far], atol=SPIN_CAP_WIDTH**2 / 0.4)
    (grad,) = torch.autograd.grad(capped.sum(), delta, create_graph=True)
    (curvature,) = torch.autograd.grad(grad.sum(), delta)
    # continuous first and second derivatives through 0, on a 5e-5 eV grid: a kink (min) would
    # jump the slope by 1, a C1 joint the curvature by ~2/width = 100
    assert grad.diff().abs().max() < 0.01 and curvature.diff().abs().max() < 2.0


def test_spin_cap_keeps_each_capped_atom_at_or_below_its_spin_off_energy():
    """gpaw-pbe spin-on atoms become off + spin_cap(on - off) with the uncapped network's own
    on and off energies; spin off and the uncapped fidelity are untouched; batched as one."""
    plain = make_net(config=replace(TINY, spin_energy=True))
    capped = reconfigured(plain, spin_cap=["gpaw-pbe"])  # a YAML list
    assert capped.config.spin_cap == ("gpaw-pbe",)
    atoms = slab()
    on, off = evaluate(plain, atoms, "on"), evaluate(plain, atoms, "off")
    delta = on["atomic_energies"] - off["atomic_energies"]
    assert (delta > 0).any() and (delta < 0).any()  # both sides of the cap are exercised
    out = evaluate(capped, atoms, "on")
    expected = off["atomic_energies"] + spin_cap(torch.from_numpy(delta)).numpy()
    np.testing.assert_allclose(out["atomic_energies"], expected, atol=1e-12)
    assert np.all(out["atomic_energies"] <= off["atomic_energies"] + 1e-12)
    assert out["energy"][0] < off["energy"][0]
    for spin, fidelity in [("off", "gpaw-pbe"), ("on", "teacher-pbe")]:
        a, b = evaluate(plain, atoms, spin, fidelity), evaluate(capped, atoms, spin, fidelity)
        assert b["energy"][0] == a["energy"][0]
        np.testing.assert_array_equal(b["forces"], a["forces"])
    structures = [water(), atoms, small_bulk(), atoms]
    spins, fids = ["on", "on", "on", "off"], ["teacher-pbe", "gpaw-pbe", "gpaw-pbe", "gpaw-pbe"]
    batch = capped.collate(structures, spins, fids)
    batched = capped(batch, forces=True)
    forces = batch.split(batched["forces"].detach())
    for k, one in enumerate(structures):
        single = evaluate(capped, one, spins[k], fids[k])
        assert batched["energy"][k].item() == pytest.approx(single["energy"][0], abs=1e-10)
        np.testing.assert_allclose(forces[k].numpy(), single["forces"], atol=1e-10)


def test_spin_cap_config_round_trips_and_names_known_fidelities():
    config = replace(TINY, spin_cap=("gpaw-pbe",))
    back = ModelConfig.from_dict(json.loads(config.to_json()))
    assert back == config and back.spin_cap == ("gpaw-pbe",)
    assert "spin_cap" not in json.loads(TINY.to_json())  # off: the content version is kept
    assert ModelConfig(spin_cap="gpaw-pbe").spin_cap == ("gpaw-pbe",)  # one name, not letters
    with pytest.raises(CatscreenError, match="spin_cap names fidelities the model lacks"):
        make_net(config=replace(TINY, spin_cap=("vasp-pbe",)))
