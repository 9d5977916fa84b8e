"""Read training frames from extxyz (plain, gzip or xz) and ASE databases, context normalised.

Datasets name their context differently: catscreen's own files carry `spin`/`fidelity`/`source`
in `atoms.info`; AQCat25-style ASE databases carry `is_spin_off` and a low-fidelity flag. The
trainer must see one convention, so every frame leaves here with `info['spin']` ('on'/'off'),
`info['fidelity']`, `info['source']`, `info['sid']` (str, the system: the train/validation split
unit) and `info['fid']` (int, the frame within its system).
"""

from __future__ import annotations

import gzip
import io
import lzma
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from ase import Atoms, units
from ase.io import read, write

from catscreen.errors import CatscreenError, first_line, unreadable
from catscreen.io import atomic_path, text_keeping_parser

EXTXYZ_SUFFIXES = (".extxyz", ".xyz", ".extxyz.gz", ".xyz.gz", ".extxyz.xz", ".xyz.xz")
DB_SUFFIXES = (".db",)
_TRUE = {"1", "true", "t", "yes", "y"}
_FALSE = {"0", "false", "f", "no", "n"}
# energy units labels may come in, in eV; lengths are always A (forces: unit/A, stress: unit/A^3)
ENERGY_UNITS = {
    "eV": 1.0,
    "meV": 1e-3,
    "kcal/mol": units.kcal / units.mol,
    "kJ/mol": units.kJ / units.mol,
}
_ENERGY_KEYS = ("energy", "free_energy", "energies", "forces", "stress")


@dataclass(frozen=True)
class ContextDefaults:
    """How to fill context a file does not state; the AQCat25 key names are configurable."""

    spin: str | None = None  # None: a frame without a spin key is an error
    fidelity: str | None = None  # high-fidelity name when only a low-fi flag is present
    low_fidelity: str = "low-fi"  # name given to frames whose low-fi flag is true
    source: str | None = None  # None: the file's stem
    spin_off_key: str = "is_spin_off"
    low_fi_key: str = "is_low_fi"
    require_energy: bool = True
    energy_unit: str = "eV"  # one of ENERGY_UNITS: labels are converted to eV on reading
    # training with a validation split: a frame without its system's id would be a system of
    # its own, and a trajectory's frames would land on both sides
    require_sid: bool = False

    def __post_init__(self) -> None:
        check_energy_unit(self.energy_unit, "energy unit")


def check_energy_unit(unit: str, what: str) -> None:
    if unit not in ENERGY_UNITS:
        raise CatscreenError(f"{what} {unit!r}; expected one of {', '.join(ENERGY_UNITS)}")


def drop_stated_context(info: dict[str, Any]) -> None:
    """New labels state their own spin and fidelity: an input's AQCat25 flags would tell an
    AQCat-convention reader the input's context instead."""
    for key in (ContextDefaults.spin_off_key, ContextDefaults.low_fi_key):
        info.pop(key, None)


def _as_bool(value: Any, key: str, where: str) -> bool:
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise CatscreenError(f"{where}: {key}={value!r} is not a boolean")


def _spin(info: dict[str, Any], opts: ContextDefaults, where: str) -> str:
    if "spin" in info:
        spin = str(info["spin"]).strip().lower()
        if spin not in ("on", "off"):
            raise CatscreenError(f"{where}: spin={info['spin']!r}; expected 'on' or 'off'")
        return spin
    if opts.spin_off_key in info:
        return "off" if _as_bool(info[opts.spin_off_key], opts.spin_off_key, where) else "on"
    if opts.spin is not None:
        return opts.spin
    raise CatscreenError(f"{where}: no 'spin' or '{opts.spin_off_key}' key; give a default spin")


def _fidelity(info: dict[str, Any], opts: ContextDefaults, where: str) -> str:
    if "fidelity" in info:
        return str(info["fidelity"])
    if opts.low_fi_key in info and _as_bool(info[opts.low_fi_key], opts.low_fi_key, where):
        return opts.low_fidelity
    if opts.fidelity is not None:
        return opts.fidelity
    raise CatscreenError(f"{where}: no 'fidelity' key; give a default fidelity")


def label_energy(atoms: Atoms) -> float:
    """The energy a model should learn: the force-consistent (free) energy when the label has one.

    With smearing, DFT forces are derivatives of the Mermin free energy, not of the zero-width
    extrapolated `energy`; training on the latter makes energies and forces disagree.
    """
    res = atoms.calc.results
    return float(res["free_energy"] if "free_energy" in res else res["energy"])


def normalise_context(
    frames: list[Atoms],
    name: str,
    opts: ContextDefaults = ContextDefaults(),
    origins: list[str] | None = None,
) -> list[Atoms]:
    """Set spin/fidelity/source/sid/fid on every frame in place; `name` labels errors, or
    `origins` (`file frame k`, one per frame: a folder's shards) where given."""
    next_fid: dict[str, int] = defaultdict(int)
    # pt.ecut300.extxyz and pt.ecut400.extxyz stay apart (a split at the first dot)
    stem = extxyz_stem(Path(name).name).removesuffix(".db")
    for i, atoms in enumerate(frames):
        where = origins[i] if origins is not None else f"{name} frame {i}"
        info = atoms.info
        if opts.require_energy and "energy" not in (atoms.calc.results if atoms.calc else {}):
            raise CatscreenError(f"{where} has no energy label")
        info["spin"] = _spin(info, opts, where)
        info["fidelity"] = _fidelity(info, opts, where)
        info["source"] = str(info.get("source", opts.source or stem))
        if opts.require_sid and "sid" not in info and "system_id" not in info:
            raise CatscreenError(
                f"{where} has no sid (system id): the validation split keeps each system's "
                "frames together, so every frame needs its system's id (or give the dataset "
                "holdout: false)"
            )
        sid = info.get("sid", info.get("system_id", f"{stem}-{i}"))
        info["sid"] = str(sid)
        if "fid" in info:
            try:
                info["fid"] = int(info["fid"])
            except (TypeError, ValueError):
                raise CatscreenError(f"{where}: fid={info['fid']!r} is not an integer") from None
        else:
            info["fid"] = next_fid[info["sid"]]
        next_fid[info["sid"]] = info["fid"] + 1
    return frames


def extxyz_stem(name: str) -> str:
    """A file name without its extxyz suffix (`EXTXYZ_SUFFIXES`), dots before it kept:
    pt.v1.extxyz.gz -> pt.v1 (a split at the first dot made two shards one)."""
    for suffix in sorted(EXTXYZ_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def opener_for(path: Path) -> Callable[..., IO[str]]:
    """How to open an extxyz file named `path`: gzip (.gz), xz (.xz: the committed teacher
    passes, a third smaller than gzip) or plain."""
    return {".gz": gzip.open, ".xz": lzma.open}.get(path.suffix, open)  # type: ignore[return-value]


def extxyz_files(root: Path, pattern: str) -> list[Path]:
    """The extxyz files under `root` (any of `EXTXYZ_SUFFIXES`) whose names before the suffix
    match the glob `pattern`, in name order."""
    return sorted(p for p in root.glob(f"{pattern}.*") if p.name.endswith(EXTXYZ_SUFFIXES))


def folder_shards(folder: Path) -> list[Path]:
    """A folder's extxyz files in name order, each stem once: gas.extxyz.gz beside
    gas.extxyz.xz would train on (or label) the same frames twice."""
    files = extxyz_files(folder, "*")
    if not files:
        raise CatscreenError(f"no extxyz files in folder {folder}")
    stems = [extxyz_stem(f.name) for f in files]
    twice = sorted({s for s in stems if stems.count(s) > 1})
    if twice:
        raise CatscreenError(
            f"{folder} holds {', '.join(twice)} in two files (another compression?); keep one"
        )
    return files


def write_extxyz(frames: Iterable[Atoms], path: Path) -> None:
    """extxyz compressed as the name says (.gz; .xz as `xz -9e`, the committed passes' form;
    else plain), written atomically. The same frames give the same bytes (no time or temporary
    name in a gzip header), so a shard made again shows no change to git."""
    text = io.StringIO()
    write(text, list(frames), format="extxyz")
    data = text.getvalue().encode()
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    elif path.suffix == ".xz":
        data = lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


# Ids and names read as written: ASE's parser made sids 007 and 7 one system (both 7).
_TEXT_INFO = text_keeping_parser(
    ("sid", "source", "fidelity", "kind", "host", "facet", "adsorbate", "site")
)


def read_extxyz(path: Path) -> list[Atoms]:
    """Every frame of an extxyz file, compressed or not.

    The file is decompressed once, up front: ASE's reader seeks back at every frame, and each
    seek in a gzip stream decompresses it again from the start (two thirds of a training run's
    start-up went there)."""
    if not path.exists():
        raise CatscreenError(f"file not found: {path}")
    try:
        with opener_for(path)(path, "rt") as fh:
            text = io.StringIO(fh.read())
        return list(read(text, index=":", format="extxyz", properties_parser=_TEXT_INFO))
    except Exception as exc:  # ASE raises many types for damaged text
        why = unreadable(exc)
        raise CatscreenError(f"cannot read {path} as extxyz: {why}") from exc


def _read_db(path: Path) -> list[Atoms]:
    import ase.db

    frames = []
    try:
        # ase.db.connect creates its tables in any SQLite file: look read-only first
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as con:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
        if "systems" not in tables:
            raise CatscreenError(f"{path} is not an ASE database (no 'systems' table)")
        with ase.db.connect(path, type="db") as db:
            for row in db.select():
                atoms = row.toatoms()
                atoms.info.update(row.key_value_pairs)
                atoms.info.setdefault("db_id", row.id)
                frames.append(atoms)
    except CatscreenError:
        raise
    except Exception as exc:  # sqlite3 and ASE raise several types for a bad file
        msg = first_line(exc)
        raise CatscreenError(f"cannot read {path} as an ASE database: {msg}") from exc
    return frames


def load_frames(path: str | Path, defaults: ContextDefaults = ContextDefaults()) -> list[Atoms]:
    """Frames with labels (ASE SinglePointCalculator) and normalised context from one file.

    `path`: extxyz (.extxyz/.xyz, optionally .gz or .xz), an ASE SQLite database (.db), or a folder
    whose extxyz files are read in name order.
    """
    p = Path(path)
    if not p.exists():
        raise CatscreenError(f"file not found: {p}")
    origins = None  # a folder's errors name the shard
    if p.is_dir():
        files = folder_shards(p)
        shards = [read_extxyz(f) for f in files]
        frames = [a for shard in shards for a in shard]
        origins = [f"{f} frame {k}" for f, shard in zip(files, shards, strict=True)
                   for k in range(len(shard))]  # fmt: skip
    elif p.name.endswith(EXTXYZ_SUFFIXES):
        frames = read_extxyz(p)
    elif p.name.endswith(DB_SUFFIXES):
        frames = _read_db(p)
    else:
        raise CatscreenError(
            f"unknown dataset format: {p.name}; expected {', '.join(EXTXYZ_SUFFIXES + DB_SUFFIXES)}"
        )
    if not frames:
        raise CatscreenError(f"{p} holds no frames")
    if defaults.energy_unit != "eV":
        _scale_labels(frames, ENERGY_UNITS[defaults.energy_unit])
    return normalise_context(frames, str(p), defaults, origins)


def _scale_labels(frames: list[Atoms], factor: float) -> None:
    """Energies, forces and stress in eV-based units; magnetic moments are not energies."""
    for atoms in frames:
        if atoms.calc is not None:
            res = atoms.calc.results
            for key in _ENERGY_KEYS:
                if key in res:
                    res[key] = np.asarray(res[key], dtype=float) * factor
