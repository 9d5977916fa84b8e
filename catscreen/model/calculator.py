"""An ASE calculator over any catscreen `Model`: energy, forces, stress, magmoms, uncertainty.

    atoms.calc = CatscreenCalculator(load_model("bundled"), spin="auto")
    atoms.get_potential_energy(); atoms.calc.results["energy_std"]

`spin="auto"` decides per structure (a magnetic element switches spin on, see
`resolve_spin`) and records the decision in `results["spin"]`, the fidelity in
`results["fidelity"]`. Assigning `calc.spin` or `calc.fidelity` checks the value and drops the
stored results, so the next call recomputes in the new context.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from catscreen.errors import CatscreenError
from catscreen.model.api import SPIN_MODES, Model, resolve_spin


class CatscreenCalculator(Calculator):
    """ASE view of a `Model` under one context (spin mode, fidelity)."""

    implemented_properties: ClassVar[list[str]] = [
        "energy",
        "free_energy",
        "forces",
        "stress",
        "magmoms",
        "magmom",
    ]

    def __init__(self, model: Model, spin: str = "auto", fidelity: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.model = model
        self.spin = spin
        self.fidelity = fidelity or model.info.default_fidelity

    @property
    def spin(self) -> str:
        return self._spin

    @spin.setter
    def spin(self, value: str) -> None:
        if value not in SPIN_MODES:
            raise CatscreenError(f"unknown spin mode {value!r}; expected auto, on or off")
        self._spin = value
        self.reset()

    @property
    def fidelity(self) -> str:
        return self._fidelity

    @fidelity.setter
    def fidelity(self, value: str) -> None:
        self.model.info.check_context("off", value)
        self._fidelity = value
        self.reset()

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: list[str] | None = None,
        system_changes: list[str] = all_changes,
    ) -> None:
        super().calculate(atoms, properties or ["energy"], system_changes)
        spin = resolve_spin(self.atoms, self.spin)
        want_stress = "stress" in (properties or []) and bool(self.atoms.pbc.any())
        (pred,) = self.model.predict([self.atoms], [spin], [self.fidelity], stress=want_stress)
        self.results = {
            "energy": pred.energy,
            "free_energy": pred.energy,
            "forces": pred.forces,
            "energy_std": pred.energy_std,
            "spin": spin,
            "fidelity": self.fidelity,
        }
        if pred.stress is not None:
            self.results["stress"] = pred.stress
        if pred.magmoms is not None:
            self.results["magmoms"] = pred.magmoms
            self.results["magmom"] = float(np.sum(pred.magmoms))
        if pred.forces_std is not None:
            self.results["forces_std"] = pred.forces_std
