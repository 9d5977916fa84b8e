"""An ASE calculator over any catscreen `Model`: energy, forces, stress, magmoms, uncertainty.

    atoms.calc = CatscreenCalculator(load_model("bundled"), spin="auto")
    atoms.get_potential_energy(); atoms.calc.results["energy_std"]

`spin="auto"` decides per structure (a magnetic element outside the adsorbate switches spin
on, see `resolve_spin`; the adsorbate is Open Catalyst's tag 2, so new tags mean a new
calculation) and records the decision in `results["spin"]`, the fidelity in
`results["fidelity"]`. Assigning `calc.spin` or `calc.fidelity`, or `calc.set(spin=...)`, checks
the value and drops the stored results, so the next call recomputes in the new context;
`todict()` (what ase.db stores) names them with the model.

Float32 by default: the forces match central differences of the energy to 2e-4 eV/A at 3e-3 A
steps but only 6e-3 eV/A at 1e-4 A (O on Pt(111), the bundled weights); for small steps call
`model.net.double()` first (float64: 7e-8 eV/A at 1e-4 A).
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

    def set(self, **kwargs: object) -> dict[str, object]:
        """`spin` and `fidelity` only: ASE's base stored any keyword and used none of them
        (`set(spin="off")` left a spin-on calculator that todict() called spin off)."""
        if unknown := sorted(set(kwargs) - {"spin", "fidelity", "model", "model_version"}):
            raise CatscreenError(
                f"unknown parameter(s) {', '.join(unknown)}: CatscreenCalculator takes spin and "
                "fidelity"
            )
        if {"model", "model_version"} & kwargs.keys():  # what todict() names, given back
            info = self.model.info
            given = (kwargs.pop("model", info.name), kwargs.pop("model_version", info.version))
            if given != (info.name, info.version):
                raise CatscreenError(
                    f"this calculator runs {info.name} {info.version}: another model needs a "
                    "CatscreenCalculator of its own"
                )
        changed = {k: v for k, v in kwargs.items() if getattr(self, k) != v}
        for key, value in changed.items():
            setattr(self, key, value)  # checked, and the results dropped
        return changed

    def todict(self, skip_default: bool = True) -> dict[str, str]:
        info = self.model.info
        return {
            "model": info.name,
            "model_version": info.version,
            "spin": self.spin,
            "fidelity": self.fidelity,
        }

    def check_state(self, atoms: Atoms, tol: float = 1e-15) -> list[str]:
        """ASE's changes, and the tags: they decide `spin="auto"`'s context (a retagged
        adsorbate gave the other context's energy, 0.29 eV off)."""
        changes = super().check_state(atoms, tol)
        if self.atoms is not None and not np.array_equal(self.atoms.get_tags(), atoms.get_tags()):
            changes.append("tags")
        return changes

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
