"""GPAW: calculator parameters, standalone scripts and in-process single points.

The parameters are plain Python data (GPAW accepts dicts for mode and occupations) so the same
dict is rendered into a script a user can run anywhere with GPAW and no catscreen, and used
in-process by `catscreen validate`. Physics as the VASP inputs: PW mode, PBE/RPBE,
Fermi-Dirac smearing, spin polarisation with initial moments, dipole layer correction along z
for slabs (pbc = T T F), fixed what the ML relaxation fixed (tag 0, whole atoms or directions).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ase import Atoms

from catscreen.dft.settings import DftSettings, fixed_parts, kpoints, prepare
from catscreen.errors import CatscreenError
from catscreen.io import atoms_to_text
from catscreen.workflow.relax import fixed_mask


def require_gpaw() -> None:
    try:
        import gpaw  # noqa: F401
    except ImportError as exc:
        raise CatscreenError(
            "GPAW is not installed; it is an optional extra: pip install 'catscreen[dft]'"
        ) from exc


def gpaw_parameters(atoms: Atoms, kind: str, spin: str, settings: DftSettings) -> dict[str, Any]:
    params: dict[str, Any] = {
        "mode": {"name": "pw", "ecut": settings.cutoff("gpaw")},
        "xc": settings.xc,
        "kpts": {"size": list(kpoints(atoms, kind, settings)), "gamma": True},
        "occupations": {"name": "fermi-dirac", "width": settings.smearing},
        "spinpol": spin == "on",
        # absolute total-energy change, as VASP's EDIFF (GPAW's default is per valence electron)
        "convergence": {"energy": {"name": "energy", "tol": settings.ediff, "relative": False}},
    }
    if kind != "gas":
        params["poissonsolver"] = {"dipolelayer": "xy"}
    return params


_SCRIPT = '''"""GPAW calculation written by catscreen for {name}.

Run: python {script}   (needs GPAW and its PAW setups). Writes result.json next to this file
(energy in eV, magnetic moment, and whether the relaxation converged in RELAX_STEPS).
Set RELAX_STEPS = 0 for a single point on the ML-relaxed structure.
"""

import io
import json
from pathlib import Path

from ase.constraints import FixAtoms, FixCartesian
from ase.io import read
from ase.optimize import BFGS
from gpaw import GPAW

HERE = Path(__file__).resolve().parent
STRUCTURE = {structure!r}
PARAMETERS = {parameters!r}
PBC = {pbc!r}
MAGMOMS = {magmoms!r}
FIXED = {fixed!r}
FIXED_DIRECTIONS = {fixed_directions!r}  # (atom, (x, y, z)): True is fixed
RELAX_STEPS = {relax_steps!r}
FMAX = {fmax!r}

atoms = read(io.StringIO(STRUCTURE), format="extxyz")
atoms.calc = None
atoms.pbc = PBC
atoms.set_constraint(
    [FixAtoms(indices=FIXED)] + [FixCartesian(i, mask=m) for i, m in FIXED_DIRECTIONS]
)
atoms.set_initial_magnetic_moments(MAGMOMS)
atoms.calc = GPAW(**PARAMETERS, txt=str(HERE / "gpaw.txt"))
converged, steps = True, 0
if RELAX_STEPS:
    optimizer = BFGS(atoms, trajectory=str(HERE / "relax.traj"))
    converged = bool(optimizer.run(fmax=FMAX, steps=RELAX_STEPS))
    steps = optimizer.nsteps
energy = atoms.get_potential_energy()
result = {{
    "name": {name!r},
    "energy": energy,
    "magmom": atoms.calc.get_magnetic_moment(),
    "converged": converged,  # False: RELAX_STEPS ran out before forces fell below FMAX
    "steps": steps,
}}
(HERE / "result.json").write_text(json.dumps(result, indent=2))
print(json.dumps(result))
'''


def gpaw_script(structure: str, kind: str, spin: str, settings: DftSettings, name: str) -> str:
    atoms = prepare(structure, kind, spin, settings)
    moments = atoms.get_initial_magnetic_moments()
    fixed, fixed_directions = fixed_parts(fixed_mask(atoms))
    return _SCRIPT.format(
        name=name,
        script="run_gpaw.py",
        structure=atoms_to_text(atoms),
        parameters=gpaw_parameters(atoms, kind, spin, settings),
        pbc=[bool(p) for p in atoms.pbc],
        magmoms=[round(float(m), 3) for m in moments] if spin == "on" else None,
        fixed=fixed,
        fixed_directions=fixed_directions,
        relax_steps=settings.relax_steps,
        fmax=settings.fmax,
    )


def write_gpaw_script(
    structure: str, kind: str, spin: str, settings: DftSettings, folder: Path, name: str
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "run_gpaw.py"
    path.write_text(gpaw_script(structure, kind, spin, settings, name))
    return path


def single_point(structure: str, kind: str, spin: str, settings: DftSettings) -> dict[str, float]:
    """GPAW energy of a structure as it is (no relaxation), in this process."""
    require_gpaw()
    from gpaw import GPAW

    atoms = prepare(structure, kind, spin, settings)
    atoms.calc = GPAW(**gpaw_parameters(atoms, kind, spin, settings), txt=None)
    start = time.perf_counter()
    energy = float(atoms.get_potential_energy())
    magmom = float(atoms.calc.get_magnetic_moment()) if spin == "on" else 0.0
    return {"energy": energy, "magmom": magmom, "wall_time": time.perf_counter() - start}
