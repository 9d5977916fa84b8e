"""The CHGNet adapter agrees with CHGNet's own ASE calculator, batched and in ASE units."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk, molecule

from catscreen.errors import CatscreenError
from catscreen.model import load_model

pytest.importorskip("chgnet")
pytestmark = pytest.mark.chgnet


def test_chgnet_adapter_matches_its_calculator():
    from chgnet.model.dynamics import CHGNetCalculator

    model = load_model("chgnet")
    assert model.info.fidelities == ("chgnet-pbe",) and not model.info.spin_conditioned
    ni = bulk("Ni", cubic=True)
    ni.rattle(0.05, seed=0)
    water = molecule("H2O")
    preds = model.predict([ni, water], ["on", "off"], ["chgnet-pbe"] * 2, stress=True)

    ref = ni.copy()
    ref.calc = CHGNetCalculator(model=model.model, use_device="cpu")
    assert preds[0].energy == pytest.approx(
        ref.get_potential_energy(), abs=1e-4
    )  # total, not per atom
    np.testing.assert_allclose(preds[0].forces, ref.get_forces(), atol=1e-4)
    np.testing.assert_allclose(preds[0].stress, ref.get_stress(), atol=1e-5)  # eV/A^3, ASE sign
    assert preds[0].magmoms.shape == (4,)
    assert preds[1].stress is None and preds[1].forces.shape == (3, 3)
    with pytest.raises(CatscreenError, match="fidelity"):
        model.predict([ni], ["on"], ["chgnet-r2scan"])


def test_chgnet_stress_of_a_slab_is_of_its_own_cell():
    """Non-periodic directions are boxed for CHGNet, whose stress is per boxed volume: a slab
    with vacuum wider than the cutoff must get the stress of the same cell made periodic
    (it was 0.86x), and a slab without a c vector none; EMT gives a molecule none too."""
    from ase.build import fcc111

    model = load_model("chgnet")
    slab = fcc111("Cu", (2, 2, 3), vacuum=4.0)
    open_z = slab.copy()
    open_z.pbc = (True, True, False)
    flat = open_z.copy()
    flat.cell[2] = 0.0
    preds = model.predict([slab, open_z, flat], ["off"] * 3, ["chgnet-pbe"] * 3, stress=True)
    np.testing.assert_allclose(preds[1].stress, preds[0].stress, atol=2e-5)
    assert preds[2].stress is None
    emt = load_model("emt")
    co = emt.predict([molecule("CO"), slab], ["off"] * 2, ["emt"] * 2, stress=True)
    assert co[0].stress is None and co[1].stress.shape == (6,)


def test_an_oblique_open_direction_gets_its_vacuum_across_the_cell():
    """The vacuum check measured |c|, not the spacing of the planes: a slab whose open c
    leant over (|c| 22 A, 5 A of real vacuum) and a molecule in a skewed box met their images
    (forces 0.06 eV/A, energy 0.065 eV off)."""
    from ase.build import add_adsorbate, fcc111

    from catscreen.model.chgnet_adapter import MOLECULE_VACUUM, boxed, open_gap

    slab = fcc111("Pt", (2, 2, 3), vacuum=7.0)
    add_adsorbate(slab, "O", 1.5, "fcc")
    slab.pbc = (True, True, False)
    leaning = slab.copy()
    leaning.set_cell([slab.cell[0], slab.cell[1], [14.0, 0.0, 12.0]], scale_atoms=False)
    assert open_gap(leaning) < 7.0 < np.linalg.norm(leaning.cell[2]) - np.ptp(slab.positions[:, 2])
    box = boxed(leaning)
    box.pbc = leaning.pbc  # boxed makes it periodic; its open gap is the vacuum asked for
    assert open_gap(box) == pytest.approx(MOLECULE_VACUUM)
    water = molecule("H2O")
    skewed = water.copy()
    skewed.set_cell([[12, 0, 0], [11.5, 3, 0], [0, 0, 12]])
    model = load_model("chgnet")
    preds = model.predict([slab, leaning, water, skewed], ["off"] * 4, ["chgnet-pbe"] * 4)
    np.testing.assert_allclose(preds[1].forces, preds[0].forces, atol=1e-3)
    assert preds[1].energy == pytest.approx(preds[0].energy, abs=1e-3)
    assert preds[3].energy == pytest.approx(preds[2].energy, abs=1e-4)
