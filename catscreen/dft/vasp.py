"""VASP inputs for a flagged configuration: POSCAR, INCAR, KPOINTS and the POTCAR symbols.

Settings follow OC20/AdsorbML practice for slabs (ENCUT 400 eV here vs OC20's 350, raised to
the highest ENMAX of a set's POTCARs where that is more, e.g. Li_sv; EDIFFG
-0.03 eV/A, ISYM 0, LREAL Auto) with Fermi-Dirac smearing to match the GPAW scripts, a dipole
correction along z (LDIPOL, IDIPOL 3, DIPOL at the centre of mass), LASPH and NELMIN as
pymatgen's MPRelaxSet/MVLSlabSet, and spin from the rank row: ISPIN 1 for spin off (ISPIN 2
for an odd electron count on a host not all metal, settings.surface_spin), ISPIN 2 with MAGMOM from the element defaults raised to the model's moments otherwise (Cr
antiferromagnetic on its two sublattices; MP's default 0.6 muB where the POTCAR freezes the 4f
shell in the core, Nd_3 and Sm_3: no 4f moment to start); gas molecules in their own
ground-state spin (O2 a triplet); MP's +U on transition-metal oxide and fluoride surfaces.
r2SCAN as MP runs it (METAGGA, LMIXTAU, ALGO All, 680 eV, PBE_54 POTCARs). POTCARs are
licensed, so only their symbols (Materials Project choices) are written.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms
from pymatgen.core import Element
from pymatgen.io.ase import AseAtomsAdaptor
from pymatgen.io.vasp import Incar, Kpoints, Poscar
from pymatgen.io.vasp.sets import MPRelaxSet, MPScanRelaxSet

from catscreen.dft.settings import OTHER_MAGMOM, DftSettings, kpoints
from catscreen.workflow.relax import fixed_mask


def group_species(atoms: Atoms) -> Atoms:
    """Atoms of one element made contiguous (POSCAR/POTCAR blocks), first-appearance order."""
    symbols = atoms.get_chemical_symbols()
    first = {s: symbols.index(s) for s in symbols}
    order = sorted(range(len(atoms)), key=lambda i: (first[symbols[i]], i))
    return atoms[order]


def potcar_symbols(species: list[str], xc: str = "PBE") -> list[str]:
    """MP's choices: its PBE set's, or its r2SCAN set's (PBE_54, which meta-GGAs need: the
    kinetic-energy density; W_sv and Yb_3 where PBE has W_pv and Yb_2)."""
    table = (MPScanRelaxSet if xc == "r2SCAN" else MPRelaxSet).CONFIG["POTCAR"]
    return [table.get(el, el) for el in species]


def f_in_core(potcar: str) -> bool:
    """A lanthanide POTCAR with the 4f shell frozen in the core (MP's Nd_3, Sm_3, Yb_2 and
    others): its valence cannot carry the 4f moment that GPAW's setups (4f in valence) start
    from."""
    element, _, valence = potcar.partition("_")
    return valence in ("2", "3") and Element(element).is_lanthanoid


def vasp_magmoms(atoms: Atoms, xc: str) -> list[float]:
    """The start moments as `prepare` set them, at MP's default where `f_in_core`: a 3 muB
    start on Nd_3 (valence 5s5p5d6s) asks for a moment that the 4f electrons would carry."""
    potcars = potcar_symbols(atoms.get_chemical_symbols(), xc)
    moments = atoms.get_initial_magnetic_moments()
    return [
        round(float(np.sign(m) * OTHER_MAGMOM if f_in_core(p) else m), 3)
        for m, p in zip(moments, potcars, strict=True)
    ]


def potcar_family(xc: str) -> str:
    return "PAW_PBE_54 (MP r2SCAN)" if xc == "r2SCAN" else "PAW_PBE (MP)"


# ENMAX (eV, from the PAW_PBE headers) of the MP POTCARs above the default 400 eV cutoff
POTCAR_ENMAX = {"Li_sv": 499.0, "Mg_pv": 404.0}
R2SCAN_ENCUT = 680.0  # eV: MP's r2SCAN calculations (the level of theory of chgnet-r2scan)


def vasp_cutoff(elements: set[str], encut: float, xc: str = "PBE") -> tuple[float, str | None]:
    """The cutoff for a set of calculations and why it was raised: below a POTCAR's ENMAX that
    element's energies are not converged (Li_sv wants 499 eV, the default is 400); r2SCAN as
    MP ran it. One cutoff for the whole set, since an E_ads subtracts energies of its slab,
    adslab and gas runs."""
    if xc == "r2SCAN" and encut < R2SCAN_ENCUT:
        return R2SCAN_ENCUT, (
            f"VASP ENCUT raised from {encut:g} to {R2SCAN_ENCUT:g} eV for every calculation, as "
            "MP's r2SCAN calculations"
        )
    potcars = potcar_symbols(sorted(elements), xc)
    hardest = {p: POTCAR_ENMAX[p] for p in potcars if p in POTCAR_ENMAX}
    if not hardest or max(hardest.values()) <= encut:
        return encut, None
    needed = float(math.ceil(max(hardest.values())))
    names = ", ".join(f"{p} {e:g} eV" for p, e in hardest.items())
    return (
        needed,
        f"VASP ENCUT raised from {encut:g} to {needed:g} eV for every calculation (ENMAX: {names})",
    )


def hubbard_u(surface: Sequence[str], xc: str) -> dict[str, float]:
    """MP's +U (Dudarev, eV) per element where MPRelaxSet sets it: a transition-metal oxide
    or fluoride (Co, Cr, Fe, Mn, Mo, Ni, V, W), as the chgnet-pbe teacher's MP data hold it;
    none on metals, none with r2SCAN (MP's r2SCAN set). The clean surface decides, for its
    adslabs too: MP's rule on the whole cell put U on Ni(111)+O and not on Ni(111), whose
    energies would then not cancel."""
    if xc == "r2SCAN" or not surface:
        return {}
    anion = max(surface, key=lambda el: Element(el).X)
    table = MPRelaxSet.CONFIG["INCAR"]["LDAUU"].get(anion, {})
    return {el: float(table[el]) for el in surface if table.get(el, 0) > 0}


def hubbard_note(surface: Sequence[str], xc: str) -> list[str]:
    """'Co U 3.32 eV' for each element that gets a U on this surface."""
    return [f"{el} U {u:g} eV" for el, u in hubbard_u(surface, xc).items()]


def incar(
    atoms: Atoms,
    spin: str,
    kind: str,
    settings: DftSettings,
    system: str,
    surface: Sequence[str] = (),
) -> Incar:
    params: dict[str, object] = {
        "SYSTEM": system,
        "PREC": "Accurate",
        "ENCUT": settings.cutoff("vasp"),
        "EDIFF": settings.ediff,
        "EDIFFG": -settings.fmax,
        "ISMEAR": -1,
        "SIGMA": settings.smearing,
        "IBRION": 2 if settings.relax_steps else -1,
        "NSW": settings.relax_steps,
        "ISIF": 0,
        "ISYM": 0,
        "LREAL": "Auto",
        "NELM": 200,
        "NELMIN": 6,  # as MVLSlabSet: a few SCF steps at least after each ionic step
        "LASPH": True,  # aspherical PAW terms, as MPRelaxSet: tens of meV for O/N/C on 3d metals
        "LWAVE": False,
        "LCHARG": False,
        "ISPIN": 2 if spin == "on" else 1,
    }
    if settings.xc == "r2SCAN":  # as MP's r2SCAN sets: tau mixed, the all-band algorithm
        params.update(METAGGA="R2SCAN", LMIXTAU=True, ALGO="All")
    else:
        params["GGA"] = "RP" if settings.xc == "RPBE" else "PE"
    if spin == "on":  # LORBIT: per-site moments in OUTCAR, to compare with the model's
        params.update(MAGMOM=vasp_magmoms(atoms, settings.xc), LORBIT=11)
    if u := hubbard_u(surface, settings.xc):  # per POSCAR species, as MPRelaxSet writes it
        species = list(dict.fromkeys(atoms.get_chemical_symbols()))
        params.update(
            LDAU=True,
            LDAUTYPE=2,
            LDAUL=[2 if el in u else 0 for el in species],
            LDAUU=[u.get(el, 0.0) for el in species],
            LDAUJ=[0.0] * len(species),
            LDAUPRINT=1,
            LMAXMIX=6 if any(Element(el).Z > 56 for el in species) else 4,
        )
    if kind != "gas":
        com = atoms.cell.scaled_positions(atoms.get_center_of_mass()[None, :])[0]
        params.update(LDIPOL=True, IDIPOL=3, DIPOL=[round(float(x), 4) for x in com])
    return Incar(params)


def write_vasp_inputs(
    atoms: Atoms,
    spin: str,
    kind: str,
    settings: DftSettings,
    folder: Path,
    system: str,
    surface: Sequence[str] = (),
) -> Path:
    """Write POSCAR (selective dynamics: what `prepare` fixed), INCAR, KPOINTS, POTCAR.symbols."""
    folder.mkdir(parents=True, exist_ok=True)
    atoms = group_species(atoms)
    structure = AseAtomsAdaptor.get_structure(atoms)
    dynamics = (~fixed_mask(atoms)).tolist()  # prepare(): what the relaxation fixed, per axis
    structure = structure.copy(site_properties={"selective_dynamics": dynamics})
    Poscar(structure, comment=system).write_file(folder / "POSCAR")
    incar(atoms, spin, kind, settings, system, surface).write_file(folder / "INCAR")
    Kpoints.gamma_automatic(kpoints(atoms, kind, settings)).write_file(folder / "KPOINTS")
    species = list(dict.fromkeys(atoms.get_chemical_symbols()))
    (folder / "POTCAR.symbols").write_text(
        "# POTCARs are licensed and not shipped: concatenate these "
        f"{potcar_family(settings.xc)} files, in order.\n"
        + "\n".join(potcar_symbols(species, settings.xc))
        + "\n"
    )
    return folder
