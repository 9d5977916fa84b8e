"""Adsorbates: the library in data/adsorbates.yaml and custom molecules from structure files.

An adsorbate lives in its adsorbed frame: binding atom(s) at z = 0 (a bidentate species with
its two binding atoms on the x axis, centred on the origin), the rest of the molecule above.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import numpy as np
import yaml
from ase import Atoms
from ase.geometry import find_mic
from ase.io import read

from catscreen.build.bulks import check_atoms
from catscreen.errors import CatscreenError, did_you_mean, unreadable
from catscreen.paths import data_path


@dataclass(frozen=True, eq=False)
class Adsorbate:
    """A molecule in its adsorbed frame and the indices of its binding atoms (1 or 2)."""

    name: str
    atoms: Atoms
    binding: tuple[int, ...]
    description: str = ""

    @property
    def bidentate(self) -> bool:
        return len(self.binding) == 2

    def identity(self) -> dict[str, object]:
        """Name and geometry, so editing a geometry changes the ids built on it."""
        geometry = {
            "symbols": self.atoms.get_chemical_symbols(),
            "positions": (np.round(self.atoms.positions, 3) + 0.0).tolist(),  # -0.0 as 0.0
            "binding": list(self.binding),
        }
        digest = hashlib.sha256(json.dumps(geometry, sort_keys=True).encode()).hexdigest()[:16]
        return {"name": self.name, "geometry": digest}


def adsorbate_library() -> dict[str, Adsorbate]:
    """The built-in adsorbates, each a copy: rotating one a caller was given placed CO O-down
    in every later enumeration of the process, under new config ids."""
    return {name: replace(a, atoms=a.atoms.copy()) for name, a in _library().items()}


@cache
def _library() -> dict[str, Adsorbate]:
    with open(data_path("adsorbates.yaml")) as fh:
        raw = yaml.safe_load(fh)["adsorbates"]
    library = {}
    for name, entry in raw.items():
        atoms = Atoms(
            [row[0] for row in entry["atoms"]], positions=[row[1:] for row in entry["atoms"]]
        )
        library[str(name)] = Adsorbate(
            str(name), atoms, tuple(entry["binding"]), entry.get("description", "")
        )
    return library


def unknown_adsorbate(name: str, alternative: str = "") -> str | None:
    """Why `name` is no library adsorbate (None if it is); `alternative` names another way."""
    library = _library()
    if name in library:
        return None
    return (
        f"unknown adsorbate {name!r}{did_you_mean(name, library)}; library: {', '.join(library)}"
        + (f" ({alternative})" if alternative else "")
    )


def get_adsorbate(name: str) -> Adsorbate:
    why = unknown_adsorbate(name, "or --custom-adsorbate FILE:INDEX")
    if why is not None:
        raise CatscreenError(why)
    adsorbate = _library()[name]
    return replace(adsorbate, atoms=adsorbate.atoms.copy())  # the library's own stays intact


def _rotation_to(v: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rotation matrix turning unit vector v onto unit vector target (Rodrigues)."""
    v, target = v / np.linalg.norm(v), target / np.linalg.norm(target)
    axis = np.cross(v, target)
    s, c = np.linalg.norm(axis), float(np.dot(v, target))
    if s < 1e-9:
        if c > 0:
            return np.eye(3)
        perp = np.array([1.0, 0, 0]) if abs(v[0]) < 0.9 else np.array([0, 1.0, 0])
        axis = np.cross(v, perp)
        axis /= np.linalg.norm(axis)
        return 2 * np.outer(axis, axis) - np.eye(3)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]]) / s
    return np.eye(3) + s * k + (1 - c) * k @ k


CENTRED = 0.1  # A: the other atoms' centroid this close to the binding atom has no "up"


def _up(rest: np.ndarray) -> np.ndarray:
    """Where "up" points from a single binding atom at the origin: the other atoms' centroid
    when every atom is then above the binding one; else the direction that keeps them highest
    (CH3OH through O: the centroid is near C and put the OH hydrogen below O, nearer the
    surface than the binding atom). A zero vector: no direction has them all above."""
    units = rest / np.linalg.norm(rest, axis=1, keepdims=True)
    centroid = rest.mean(axis=0)
    if np.linalg.norm(centroid) > CENTRED and (units @ centroid).min() > 0:
        return centroid
    n = 20000  # a Fibonacci sphere: directions ~1.5 degrees apart
    k = np.arange(n) + 0.5
    polar, azimuth = np.arccos(1 - 2 * k / n), np.pi * (1 + 5**0.5) * k
    dirs = np.stack(
        [np.sin(polar) * np.cos(azimuth), np.sin(polar) * np.sin(azimuth), np.cos(polar)], axis=1
    )
    lowest = (units @ dirs.T).min(axis=0)
    best = int(np.argmax(lowest))
    return dirs[best] if lowest[best] > 0 else centroid


def to_adsorbed_frame(atoms: Atoms, binding: tuple[int, ...]) -> Atoms:
    """Move binding atom(s) to the origin (bidentate: along x) with the rest of the molecule up."""
    atoms = atoms.copy()
    pos = atoms.positions
    rest = [i for i in range(len(atoms)) if i not in binding]
    if len(binding) == 1:
        pos = pos - pos[binding[0]]
        if rest:
            up = _up(pos[rest])
            if np.linalg.norm(up) > CENTRED:
                pos = pos @ _rotation_to(up, np.array([0.0, 0, 1])).T
            else:  # bound through its centre (CO2 through C): lay it flat, long axis along x
                _, _, axes = np.linalg.svd(pos[rest])
                if np.linalg.det(axes) < 0:
                    axes[2] = -axes[2]
                pos = pos @ axes.T
    else:
        b0, b1 = binding
        pos = pos - (pos[b0] + pos[b1]) / 2
        pos = pos @ _rotation_to(pos[b1] - pos[b0], np.array([1.0, 0, 0])).T
        if rest:
            _, y, z = pos[rest].mean(axis=0)
            angle = np.arctan2(y, z)  # rotate about x so the rest points to +z
            yz = pos[rest][:, 1:]
            if (np.sin(angle) * yz[:, 0] + np.cos(angle) * yz[:, 1]).min() < -1e-6:
                # some atom below the binding axis: a centrosymmetric molecule (trans-HNNH)
                # has no centroid direction, and one H pointed into the surface or lay flat
                # as the file happened to be drawn; the turn that keeps them highest instead
                turns = np.linspace(-np.pi, np.pi, 1440, endpoint=False)
                low = np.sin(turns)[:, None] * yz[:, 0] + np.cos(turns)[:, None] * yz[:, 1]
                angle = float(turns[int(np.argmax(low.min(axis=1)))])
            c, s = np.cos(angle), np.sin(angle)
            pos = pos @ np.array([[1, 0, 0], [0, c, -s], [0, s, c]]).T
    atoms.positions = pos
    atoms.cell = None
    atoms.pbc = False
    return atoms


def load_custom_adsorbate(spec: str) -> Adsorbate:
    """`FILE:I` or `FILE:I,J` (0-based binding atom indices); the name is the file stem."""
    path_text, sep, index_text = spec.rpartition(":")
    if not sep or not path_text:
        raise CatscreenError(f"custom adsorbate {spec!r}: expected FILE:INDEX, e.g. mol.xyz:0")
    path = Path(path_text)
    try:
        binding = tuple(int(i) for i in index_text.split(","))
    except ValueError:
        raise CatscreenError(
            f"custom adsorbate {spec!r}: bad binding index {index_text!r}"
        ) from None
    if path.is_dir():
        raise CatscreenError(f"custom adsorbate file {path} is a folder; give a structure file")
    if not path.is_file():
        raise CatscreenError(f"custom adsorbate file not found: {path}")
    try:
        frames = read(path, index=":")
    except Exception as exc:  # ASE raises many types for unreadable files
        raise CatscreenError(f"cannot read adsorbate file {path}: {unreadable(exc)}") from exc
    if len(frames) != 1:  # read(path) took the last of several silently; INDEX names an atom
        raise CatscreenError(
            f"custom adsorbate file {path} holds {len(frames)} structures; give one molecule"
        )
    (atoms,) = frames
    check_atoms(atoms, f"custom adsorbate file {path}")
    if len(binding) not in (1, 2) or len(set(binding)) != len(binding):
        raise CatscreenError(f"custom adsorbate {spec!r}: give one or two distinct binding atoms")
    if any(not 0 <= i < len(atoms) for i in binding):
        raise CatscreenError(f"custom adsorbate {spec!r}: {path} has only {len(atoms)} atoms")
    if path.stem in _library():
        raise CatscreenError(
            f"custom adsorbate {path.stem!r} clashes with a library adsorbate: rename the file"
        )
    positions = atoms.positions
    if atoms.pbc.any():  # a molecule from a periodic file may be split across the cell boundary
        shifts, _ = find_mic(positions - positions[0], atoms.cell, atoms.pbc)
        positions = positions[0] + shifts
    bare = Atoms(atoms.get_chemical_symbols(), positions=positions)
    return Adsorbate(path.stem, to_adsorbed_frame(bare, binding), binding, f"from {path.name}")
