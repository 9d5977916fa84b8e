"""`catscreen train CONFIG.yaml`: joint training of CatscreenNet on several labelled datasets.

Why it looks like this:
- datasets of different sources are mixed in every batch with configurable sampling weights,
  so no source is forgotten (training on one and then another forgets the first);
- the train/validation split is by system (`sid`), never by frame: frames of one system
  (relaxation snapshots, rattles) are near copies, and a frame split would leak; `split_seed`
  reseeds a run (weights, batches) while holding out the same systems, so two seeds of one
  candidate are benchmarked on the same held-out set;
- per-context element reference energies are fitted first by least squares, so the network
  only learns the O(1) remainder;
- `adsorption_weight` adds a loss on E(adsorbate+slab) - E(clean slab) for pairs of frames in
  the same context: screening ranks by that difference, and per-frame errors that are small
  per atom do not cancel in it by themselves; `kinds` on a dataset up-weights one kind of
  frame (the clean slabs every adsorption energy subtracts), `stages` one generator stage
  (`end`: the final frame of a converged teacher relaxation, where adsorption energies are
  read);
- `add_layers` with `init_from` deepens a trained network by identity-initialised layers
  (`network.deepened`): more capacity without paying again for what it already learned;
  `model: {zbl: true}` or `{spin_cap: [gpaw-pbe]}` (no parameters) or `{spin_energy: true}`
  (couplings that start at zero, so no prediction changes) can be switched on for a trained
  checkpoint, keeping its weights;
- EMA weights are what gets evaluated and saved; a time limit stops a CPU run cleanly, and a
  rerun resumes from `state.pt` (of the same run: other data, network or seed are refused);
- `workers` collates batches ahead in forked processes: on a GPU the step itself is
  launch-bound (~45 ms for 8 to 128 frames on an H200) and a 128-frame collate on the CPU took
  about as long again; the batches are drawn from the same random stream in the same order as
  without workers (a step-bounded CPU run ends with the same weights), and a run resumes the
  same; adsorption pairs (`adsorption_weight`) are still collated in the loop.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import math
import signal
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import suppress
from copy import deepcopy
from dataclasses import asdict, dataclass, field, replace
from functools import cache, cached_property
from pathlib import Path
from typing import Any, get_type_hints

import numpy as np
import torch
from ase import Atoms
from ase.data import chemical_symbols
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from catscreen.errors import CatscreenError, first_line
from catscreen.io import read_yaml
from catscreen.model.api import host_symbols
from catscreen.model.checkpoint import (
    checkpoint_file,
    load_checkpoint,
    merged_hosts,
    save_atomically,
    save_checkpoint,
)
from catscreen.model.graph import GraphBatch, collate
from catscreen.model.inference import resolve_device
from catscreen.model.network import CatscreenNet, ModelConfig, deepened, reconfigured, widened
from catscreen.training.datasets import (
    ContextDefaults,
    check_energy_unit,
    label_energy,
    load_frames,
)

# DatasetSpec fields added after runs had started, left out of a run's identity at their
# defaults so those runs still resume
LATER_FIELDS = {
    "energy_unit": "eV",
    "low_fidelity": "low-fi",
    "spin_off_key": "is_spin_off",
    "low_fi_key": "is_low_fi",
}
# ModelConfig fields a fine-tune (init_from) may switch while keeping the checkpoint's weights:
# the ZBL adds no parameters (it changes predictions only for pairs closer than any bond), the
# spin energy adds couplings that start at zero (it changes none), the spin cap adds no
# parameters (it changes only spin-on energies of its fidelities that lie above spin-off ones).
SWITCHABLE_FIELDS = ("zbl", "zbl_inner", "zbl_outer", "spin_energy", "spin_cap")


@dataclass(frozen=True)
class DatasetSpec:
    """One labelled dataset: a file or folder, its sampling weight, context defaults."""

    path: str
    weight: float = 1.0
    spin: str | None = None
    fidelity: str | None = None
    source: str | None = None
    holdout: bool = True  # False: every frame trains (a set too small to spare systems)
    as_spin: str | None = None  # relabel every frame (ablation: train without conditioning)
    as_fidelity: str | None = None
    # keep only frames of these kinds (info["kind"]: gas, bulk, slab, adslab): listing a
    # folder twice, once filtered, up-weights a kind the rest of it drowns out
    kinds: tuple[str, ...] = ()
    # keep only frames of these generator stages (info["stage"]; "end": the final frame of a
    # converged teacher relaxation that did not stop on a snapshot step, a minimum)
    stages: tuple[str, ...] = ()
    # with adsorption_weight > 0: true on some datasets = only their adsorbate+slab frames form
    # the pairs (a pass whose adsorption energies the per-atom loss barely sees, e.g. 96-atom
    # cells where 0.15 eV is 1.6 meV/atom); otherwise every dataset's but those set false
    pairs: bool | None = None
    # this dataset's share of the pair draws, as `weight` is of the frame draws: a few thick
    # cells' pairs beside many thin ones (set on every pair dataset or none; none: uniform)
    pair_weight: float | None = None
    energy_unit: str = "eV"  # the labels' energy unit (datasets.ENERGY_UNITS), read into eV
    # AQCat25-style databases: the fidelity named for frames whose low-fi flag is true, and the
    # keys of the two flags
    low_fidelity: str = "low-fi"
    spin_off_key: str = "is_spin_off"
    low_fi_key: str = "is_low_fi"


@dataclass(frozen=True)
class TrainConfig:
    datasets: tuple[DatasetSpec, ...]
    out: str = "runs/train"
    model: dict[str, Any] = field(default_factory=dict)  # ModelConfig fields
    fidelities: tuple[str, ...] = ()  # lowest to highest level of theory; () = order of datasets
    elements: tuple[str, ...] = ()  # () = every element in the data
    validation_fraction: float = 0.1
    seed: int = 0  # initial weights, batch sampling, and the split unless split_seed is set
    split_seed: int | None = None  # the train/validation split by system; None: seed
    max_steps: int = 1000
    # > 0: stop (and save) after this much training-step time, kept across resumes; validation,
    # checkpoints and data loading are not counted, so a job's wall limit needs a margin
    max_minutes: float = 0.0
    batch_size: int = 8
    lr: float = 5e-3
    min_lr: float = 1e-4
    warmup_steps: int = 50
    weight_decay: float = 0.0
    energy_weight: float = 20.0  # on per-atom energy (eV/atom)^2
    force_weight: float = 1.0  # (eV/A)^2
    stress_weight: float = 0.0  # (eV/A^3)^2, fully periodic frames only
    magmom_weight: float = 0.05  # muB^2, spin-on frames only
    # eV^2 on E(adsorbate+slab) - E(its clean slab), the difference screening ranks by
    adsorption_weight: float = 0.0
    adsorption_pairs: int = 4  # (adslab, clean slab) pairs per step when the weight is > 0
    ema_decay: float = 0.99
    grad_clip: float = 10.0
    eval_every: int = 100
    max_eval_frames: int = 400
    dtype: str = "float32"
    device: str = ""  # auto, cpu, cuda, cuda:N; "" = CATSCREEN_DEVICE, else auto
    threads: int = 0  # > 0: torch.set_num_threads
    workers: int = 0  # > 0: collate batches ahead in this many forked processes (for GPUs)
    init_from: str = ""  # a checkpoint to fine-tune: its weights (and references) are kept
    refit_references: bool = False  # with init_from: fit reference energies on the new data
    add_layers: int = 0  # with init_from: insert identity-initialised layers (deepen, then train)
    # with init_from: elements in the data the checkpoint lacks are added (`network.widened`),
    # their reference energies fitted to what the network leaves of the new data's energies
    add_elements: bool = False
    # "" = with init_from, the checkpoint's own (a fine-tune or a rewrite keeps what relax
    # predicts in by default); else "catscreen", the first fidelity, no description
    name: str = ""
    default_fidelity: str = ""
    description: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        if not isinstance(data, dict):
            raise CatscreenError("the training config must be a mapping of keys to values")
        data = dict(data)
        datasets = data.pop("datasets", None)
        for key in ("fidelities", "elements"):
            if key in data:
                data[key] = _text_tuple(data[key])
        _check_types(cls, data, "")
        unknown = [e for e in data.get("elements", ()) if e not in chemical_symbols[1:]]
        if unknown:  # a typo would be a network input no structure ever has
            raise CatscreenError(f"elements: {', '.join(unknown)} is not an element symbol")
        if data.get("add_layers") and not data.get("init_from"):
            raise CatscreenError("add_layers needs init_from: set model.n_layers to start deeper")
        if not datasets:
            raise CatscreenError("the training config needs at least one dataset")
        if not isinstance(datasets, list):
            raise CatscreenError("datasets must be a list of paths or {path: ...} mappings")
        specs = []
        for d in datasets:
            if not isinstance(d, str | dict):
                raise CatscreenError(f"dataset {d!r} is neither a path nor a {{path: ...}} mapping")
            d = {"path": d} if isinstance(d, str) else dict(d)
            if not isinstance(d.get("path"), str):
                raise CatscreenError(f"dataset {d!r} needs a path")
            for key in ("kinds", "stages"):
                if key in d:
                    d[key] = _text_tuple(d[key])
            for key in ("spin", "as_spin"):  # YAML 1.1 reads a bare on/off as true/false
                if isinstance(d.get(key), bool):
                    d[key] = "on" if d[key] else "off"
                if d.get(key) not in (None, "on", "off"):
                    raise CatscreenError(f"dataset {key}={d[key]!r}; expected on or off")
            _check_types(DatasetSpec, d, "dataset ")
            check_energy_unit(d.get("energy_unit", "eV"), f"dataset {d['path']}: energy_unit")
            specs.append(DatasetSpec(**d))
        if data.get("dtype", "float32") not in ("float32", "float64"):
            raise CatscreenError(f"dtype {data['dtype']!r}; expected float32 or float64")
        model = data.get("model", {})
        if isinstance(model, dict) and "spin_cap" in model:
            data["model"] = model = {**model, "spin_cap": _text_tuple(model["spin_cap"])}
        _check_types(ModelConfig, model, "model.")
        ModelConfig.from_dict(model)  # fail early on a bad model section
        config = cls(datasets=tuple(specs), **data)
        config.check_ranges()
        return config

    def check_ranges(self) -> None:
        """Values the types allow but training cannot use: one line, not a traceback mid-run."""
        checks = [
            (self.batch_size >= 1 and self.eval_every >= 1 and self.max_eval_frames >= 1,
             "batch_size, eval_every and max_eval_frames must be >= 1"),
            (0.0 <= self.validation_fraction < 1.0, "validation_fraction must be in [0, 1)"),
            (0.0 <= self.ema_decay < 1.0, "ema_decay must be in [0, 1)"),
            (self.max_steps >= 0 and self.warmup_steps >= 0, "max_steps and warmup_steps must be >= 0"),
            (0 < self.lr < math.inf and 0 <= self.min_lr <= self.lr,
             "lr must be positive and finite, min_lr in [0, lr]"),
            (all(0 <= w < math.inf for w in self.loss_weights().values())
             and self.weight_decay >= 0,
             "the loss weights and weight_decay must be finite and >= 0 (a negative one "
             "maximises that error)"),
            (self.energy_weight > 0 or self.force_weight > 0 or self.adsorption_weight > 0,
             "energy_weight, force_weight or adsorption_weight must be positive"),
            (bool(self.out), "out must name a folder"),
            (self.grad_clip > 0, "grad_clip must be positive"),
            (all(0 <= d.weight < math.inf for d in self.datasets)
             and any(d.weight > 0 for d in self.datasets),
             "dataset weights must be finite and >= 0, at least one of them positive"),
            (all(d.pair_weight is None or d.pair_weight >= 0 for d in self.datasets),
             "dataset pair_weight must be >= 0"),
            (self.adsorption_weight >= 0 and self.adsorption_pairs >= 1,
             "adsorption_weight must be >= 0 and adsorption_pairs >= 1"),
            (self.adsorption_weight > 0
             or all(d.pairs is None and d.pair_weight is None for d in self.datasets),
             "pairs and pair_weight on a dataset need adsorption_weight > 0 (they were ignored)"),
            (self.max_minutes >= 0, "max_minutes must be >= 0"),
            (all(0 <= s < 2**63 for s in (self.seed, self.split_seed or 0)),
             "seed and split_seed must be in [0, 2**63) (torch's and numpy's seeds)"),
            (self.threads >= 0 and self.workers >= 0, "threads and workers must be >= 0"),
        ]  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise CatscreenError(f"training config: {message}")
        same = [replace(d, path=str(Path(d.path).resolve())) for d in self.datasets]
        twice = next((d.path for i, d in enumerate(same) if d in same[:i]), None)
        if twice is not None:  # its frames would count twice, unannounced
            raise CatscreenError(
                f"training config: dataset {twice} is listed twice with the same settings; "
                "raise its weight instead"
            )

    def loss_weights(self) -> dict[str, float]:
        return {
            "energy_weight": self.energy_weight,
            "force_weight": self.force_weight,
            "stress_weight": self.stress_weight,
            "magmom_weight": self.magmom_weight,
            "adsorption_weight": self.adsorption_weight,
        }

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """Read YAML; dataset paths are relative to the file that lists them, and `init_from`
        too where the file is there (else the working directory's; `bundled`: the shipped
        weights).

        `extends: BASE.yaml` (relative to this file) starts from another config: keys given here
        replace the base's, `model` is merged key by key, and `extra_datasets` are appended to
        the base's datasets. A candidate thus states only what it changes.
        """
        return cls.from_dict(_read_config(Path(path), ()))


def _read_config(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    """One config file with its `extends` chain merged and its dataset paths made absolute."""
    if not path.is_file():
        raise CatscreenError(f"config not found: {path}" + (" (a folder)" if path.exists() else ""))
    if path.resolve() in chain:
        cycle = " -> ".join(str(p) for p in (*chain, path.resolve()))
        raise CatscreenError(f"training configs extend each other in a cycle: {cycle}")
    raw = read_yaml(path) or {}
    if not isinstance(raw, dict):
        raise CatscreenError("the training config must be a mapping of keys to values")
    for key in ("datasets", "extra_datasets"):
        if key in raw:
            raw[key] = _absolute_datasets(raw[key], path.parent)
    parent = raw.get("init_from")
    if isinstance(parent, str) and parent and parent != "bundled":  # bundled: the shipped weights
        beside = path.parent / parent  # next to the config first, as datasets; else the cwd's
        if not Path(parent).is_absolute() and beside.is_file():
            raw["init_from"] = str(beside.resolve())
    base, extra = raw.pop("extends", None), raw.pop("extra_datasets", None)
    if base is None:
        if extra is not None:
            raise CatscreenError(f"{path}: extra_datasets needs extends (the datasets they add to)")
        return raw
    if not isinstance(base, str):
        raise CatscreenError(f"{path}: extends must be the path of another config, not {base!r}")
    merged = _read_config(path.parent / base, (*chain, path.resolve()))
    if isinstance(merged.get("model"), dict) and isinstance(raw.get("model"), dict):
        raw["model"] = {**merged["model"], **raw["model"]}
    merged.update(raw)
    if extra is not None:
        if not isinstance(extra, list):
            raise CatscreenError("extra_datasets must be a list of paths or {path: ...} mappings")
        merged["datasets"] = [*(merged.get("datasets") or []), *extra]
    return merged


def _absolute_datasets(datasets: Any, folder: Path) -> Any:
    """Dataset paths relative to `folder` -> absolute; malformed entries are left for from_dict."""
    if not isinstance(datasets, list):
        return datasets
    out = []
    for d in datasets:
        path = d if isinstance(d, str) else d.get("path") if isinstance(d, dict) else None
        if isinstance(path, str) and not Path(path).is_absolute():
            path = str((folder / path).resolve())
            d = path if isinstance(d, str) else {**d, "path": path}
        out.append(d)
    return out


def _text_tuple(v: Any) -> Any:
    """One text or a list of texts -> a tuple (anything else is left for the type check)."""
    return (v,) if isinstance(v, str) else tuple(v) if isinstance(v, list) else v


@cache
def _schema(cls: type) -> type[BaseModel]:
    """A strict pydantic model of a config dataclass's fields; none is required, and text may
    also be None (an empty YAML value)."""
    fields = {k: (h | None if h is str else h, None) for k, h in get_type_hints(cls).items()}
    return create_model(cls.__name__, __config__=ConfigDict(strict=True, extra="forbid"), **fields)


_WHAT = {
    "float_type": "a number",
    "int_type": "an integer",
    "bool_type": "true or false",
    "string_type": "text",
    "tuple_type": "a list of text",
    "dict_type": "a mapping",
}


def _check_types(cls: type, data: dict[str, Any], prefix: str) -> None:
    """A wrong type or an unknown key in a config is an error naming the key, not a traceback
    deep in training. Only checks: the values are kept as given (an int where a float is
    expected stays an int). YAML 1.1 reads `5e-3` (no dot) as text."""
    try:
        _schema(cls).model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        unknown = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden")
        if unknown:
            name = prefix.strip(" .") or "training config"
            raise CatscreenError(f"unknown {name} key(s): {', '.join(unknown)}") from None
        (key, *inside), value = errors[0]["loc"], data[errors[0]["loc"][0]]
        # an error inside a list or mapping is about the whole value
        what = _WHAT.get(
            f"{type(value).__name__}_type" if inside else errors[0]["type"], "of another type"
        )
        hint = ""
        if what == "a number" and isinstance(value, str):
            try:
                float(value)
                hint = f" (YAML reads {value} as text: write it with a dot, e.g. 5.0e-3)"
            except ValueError:
                pass
        raise CatscreenError(f"{prefix}{key} must be {what}, not {value!r}{hint}") from None


@dataclass
class Frame:
    """A labelled structure ready for the network."""

    atoms: Atoms
    spin: str
    fidelity: str
    source: str
    sid: str
    dataset: int
    energy: float
    forces: np.ndarray
    stress: np.ndarray | None  # 3x3, fully periodic frames only
    magmoms: np.ndarray | None


def _frame(atoms: Atoms, dataset: int, where: str) -> Frame:
    res = atoms.calc.results
    what = f"{where}: frame of {atoms.info.get('sid')}"
    if "forces" not in res:
        raise CatscreenError(f"{what} has no forces")
    for key in ("energy", "free_energy", "forces", "stress"):
        if key in res and not np.all(np.isfinite(np.asarray(res[key], dtype=float))):
            raise CatscreenError(f"{what} has a non-finite {key}")
    stress = None
    if "stress" in res and all(atoms.pbc):
        s = np.asarray(res["stress"], dtype=float)
        stress = s if s.shape == (3, 3) else _voigt_to_matrix(s)
    magmoms = res.get("magmoms")
    info = atoms.info
    return Frame(
        atoms=atoms,
        spin=info["spin"],
        fidelity=info["fidelity"],
        source=info["source"],
        sid=info["sid"],
        dataset=dataset,
        energy=label_energy(atoms),
        forces=np.asarray(res["forces"], dtype=float),
        stress=stress,
        magmoms=None if magmoms is None else np.asarray(magmoms, dtype=float).reshape(-1),
    )


def _voigt_to_matrix(s: np.ndarray) -> np.ndarray:
    xx, yy, zz, yz, xz, xy = s
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


def load_dataset(
    spec: DatasetSpec,
    index: int = 0,
    read: dict[tuple[str, ContextDefaults], list[Atoms]] | None = None,
    split: bool = False,
) -> list[Frame]:
    """`read` keeps the files already read by path and context: configs list a file again to
    weight its clean slabs, and each file is parsed once. `split`: a validation split is made,
    so a held-out dataset's frames must name their systems."""
    defaults = ContextDefaults(
        spin=spec.spin,
        fidelity=spec.fidelity,
        source=spec.source,
        low_fidelity=spec.low_fidelity,
        spin_off_key=spec.spin_off_key,
        low_fi_key=spec.low_fi_key,
        energy_unit=spec.energy_unit,
        require_sid=split and spec.holdout,
    )
    read = {} if read is None else read
    key = (str(Path(spec.path).resolve()), defaults)
    if key not in read:
        read[key] = load_frames(spec.path, defaults)
    atoms = read[key]
    if spec.kinds:
        atoms = [a for a in atoms if a.info.get("kind") in spec.kinds]
        if not atoms:
            raise CatscreenError(f"{spec.path}: no frames of kind {', '.join(spec.kinds)}")
    if spec.stages:
        atoms = [a for a in atoms if a.info.get("stage") in spec.stages]
        if not atoms:
            raise CatscreenError(f"{spec.path}: no frames of stage {', '.join(spec.stages)}")
    if spec.as_spin or spec.as_fidelity:  # relabelled copies: the frames read may be shared
        atoms = [_relabelled(a, spec.as_spin, spec.as_fidelity) for a in atoms]
    return [_frame(a, index, str(spec.path)) for a in atoms]


def _relabelled(atoms: Atoms, spin: str | None, fidelity: str | None) -> Atoms:
    out = atoms.copy()  # the copy drops the calculator, which holds the labels
    out.calc = atoms.calc
    out.info["spin"] = spin or atoms.info["spin"]
    out.info["fidelity"] = fidelity or atoms.info["fidelity"]
    return out


def _files_of(path: Path) -> list[tuple[str, int]]:
    files = [path] if path.is_file() else sorted(f for f in path.iterdir() if f.is_file())
    return [(f.name, f.stat().st_size) for f in files]


def is_validation(sid: str, fraction: float, seed: int) -> bool:
    """A deterministic hash of the system id: every frame of a system falls on the same side."""
    h = hashlib.sha256(f"{seed}:{sid}".encode()).hexdigest()[:12]
    return int(h, 16) / float(16**12) < fraction


def split_by_system(
    frames: Sequence[Frame], fraction: float, seed: int, keep: frozenset[int] = frozenset()
) -> tuple[list[Frame], list[Frame]]:
    """Frames of datasets in `keep` always train, and so does every frame of their systems in
    the other datasets (a GPAW set labelling the teacher's structures): a system is on one side."""
    kept = {f.sid for f in frames if f.dataset in keep}
    train, val = [], []
    for f in frames:
        held = f.sid not in kept and is_validation(f.sid, fraction, seed)
        (val if held else train).append(f)
    return train, val


def adsorption_pairs(adslabs: Sequence[Frame], slabs: Sequence[Frame]) -> list[tuple[Frame, Frame]]:
    """Each adsorbate+slab frame with the lowest-energy frame of its clean slab in the same
    context (sid `<slab>-clean`, same metal atoms first). Per-atom energy errors of 10 meV are
    0.1 eV on a small slab; adsorption energies need those errors to cancel between the pair."""
    lowest: dict[tuple[str, str, str], Frame] = {}
    for f in slabs:
        if f.atoms.info.get("kind") == "slab" and f.sid.endswith("-clean"):
            key = (f.sid.removesuffix("-clean"), f.fidelity, f.spin)
            if key not in lowest or f.energy < lowest[key].energy:
                lowest[key] = f
    pairs = []
    for f in adslabs:
        if f.atoms.info.get("kind") != "adslab":
            continue
        parts = f.sid.split("-")
        for k in range(len(parts) - 1, 0, -1):
            s = lowest.get(("-".join(parts[:k]), f.fidelity, f.spin))
            if s is not None:
                symbols = s.atoms.get_chemical_symbols()
                if f.atoms.get_chemical_symbols()[: len(symbols)] == symbols:
                    pairs.append((f, s))
                break
    return pairs


def _pair_sampling(
    datasets: Sequence[DatasetSpec], chosen: set[int], pairs: Sequence[tuple[Frame, Frame]]
) -> np.ndarray | None:
    """Each pair's draw probability: its dataset's `pair_weight` shared among the dataset's
    pairs; None (uniform over pairs) when no dataset sets one."""
    weighted = {i for i, d in enumerate(datasets) if d.pair_weight is not None}
    if not weighted:
        return None
    if weighted != chosen:
        names = sorted(datasets[i].path for i in chosen ^ weighted)
        raise CatscreenError(
            "pair_weight must be set on every dataset whose frames form adsorption pairs "
            f"and on no other (differs on: {', '.join(names)})"
        )
    paired = {a.dataset for a, _ in pairs}
    bad = sorted(
        datasets[i].path for i in chosen if i not in paired or datasets[i].pair_weight <= 0
    )
    if bad:
        raise CatscreenError(
            f"pair_weight must be > 0, on datasets with adsorption pairs (not: {', '.join(bad)})"
        )
    return _shares([a.dataset for a, _ in pairs], [d.pair_weight or 0.0 for d in datasets])


def _shares(groups: Sequence[int], weights: Sequence[float]) -> np.ndarray:
    """Draw probabilities of items of dataset `groups[k]`: each dataset's weight split evenly
    among its items, so a dataset's share of the draws does not grow with its size."""
    g = np.asarray(groups)
    p = np.asarray(weights, dtype=float)[g] / np.bincount(g, minlength=len(weights))[g]
    return p / p.sum()


def _fixed_subset(items: list, n: int) -> list:
    """At most n items, the same ones at every evaluation (seed 0), so scores compare."""
    if len(items) <= n:
        return items
    idx = np.random.default_rng(0).choice(len(items), n, replace=False)
    return [items[i] for i in sorted(idx)]


def context_row(fidelities: Sequence[str], spin: str, fidelity: str) -> int:
    return 2 * list(fidelities).index(fidelity) + (spin == "on")


def _compositions(frames: Sequence[Frame], elements: Sequence[str]) -> np.ndarray:
    """Atom counts per listed element (atoms of other elements are not counted)."""
    index = {e: k for k, e in enumerate(elements)}
    x = np.zeros((len(frames), len(elements)))
    for i, f in enumerate(frames):
        for z in f.atoms.get_chemical_symbols():
            if z in index:
                x[i, index[z]] += 1
    return x


def _ridge(x: np.ndarray, y: np.ndarray, prior: np.ndarray, lam: float) -> np.ndarray:
    """argmin |x r - y|^2 + lam |r - prior|^2."""
    a = x.T @ x + lam * np.eye(x.shape[1])
    return np.linalg.solve(a, x.T @ y + lam * prior)


def _context_elements(
    frames: Sequence[Frame], elements: Sequence[str], fidelities: Sequence[str]
) -> np.ndarray:
    """[context, element]: whether some frame of that context holds that element."""
    seen = np.zeros((2 * len(fidelities), len(elements)), dtype=bool)
    index = {e: k for k, e in enumerate(elements)}
    for f in frames:
        row = context_row(fidelities, f.spin, f.fidelity)
        seen[row, [index[z] for z in set(f.atoms.get_chemical_symbols()) if z in index]] = True
    return seen


def _known_mean(values: np.ndarray) -> np.ndarray:
    """Per column, the mean of the rows that are not NaN (0 where none is)."""
    known = ~np.isnan(values)
    return np.where(known, values, 0.0).sum(axis=0) / np.maximum(known.sum(axis=0), 1)


def fit_reference_energies(
    frames: Sequence[Frame], elements: Sequence[str], fidelities: Sequence[str]
) -> np.ndarray:
    """Per-context element energies by least squares on compositions.

    Each fidelity is fitted first with both spins pooled; each context is then fitted with a
    ridge towards its fidelity's values, so a context with few frames (or elements that only
    appear together) stays well defined. An element a fidelity never saw takes the mean of the
    other fidelities, so every context can evaluate every element the model knows.
    """
    n_el = len(elements)
    refs = np.zeros((2 * len(fidelities), n_el))
    fid_refs = np.full((len(fidelities), n_el), np.nan)
    deficient = {}  # fidelity index -> (compositions, energies, present) of a singular fit
    for k, fid in enumerate(fidelities):
        rows = [f for f in frames if f.fidelity == fid]
        if rows:
            x = _compositions(rows, elements)
            present = x.sum(axis=0) > 0
            y = np.array([f.energy for f in rows])
            fid_refs[k, present] = _ridge(x[:, present], y, 0.0, 1e-6)
            if np.linalg.matrix_rank(x[:, present]) < present.sum():
                deficient[k] = (x[:, present], y, present)
    for k, (x, y, present) in deficient.items():
        # Elements only ever in one ratio (a set of Pt8O adslabs alone): the data fixes their
        # sum, not each; the split towards zero was arbitrary (3.9 eV off on a clean Pt8
        # slab), so take it from the other fidelities where they know those elements.
        others = np.delete(fid_refs, k, axis=0)
        if (~np.isnan(others[:, present])).any():
            fid_refs[k, present] = _ridge(x, y, _known_mean(others)[present], 1e-6)
    seen = ~np.isnan(fid_refs)
    fill = _known_mean(fid_refs)
    for k, fid in enumerate(fidelities):
        prior = np.where(seen[k], fid_refs[k], fill)
        for spin in ("off", "on"):
            rows = [f for f in frames if f.fidelity == fid and f.spin == spin]
            row = context_row(fidelities, spin, fid)
            if not rows:
                refs[row] = prior
                continue
            x = _compositions(rows, elements)
            refs[row] = _ridge(x, np.array([f.energy for f in rows]), prior, 1.0)
    return refs


# A collate worker's frames: set by its initializer, which a forked worker inherits with its
# arguments (nothing pickled), so the frames are shared copy-on-write.
_WORKER_FRAMES: list[Frame] = []
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_WORKER_WAIT_S = 600.0  # no batch in this long: a worker is stuck or gone


# Catalysis labels in eV leave about 0.2 eV/atom (RMS) after a least-squares fit of their
# own per-element energies and carry forces of about 0.6 eV/A (RMS) (data/training: teacher
# 0.24 and 0.66, relaxations 0.18-0.19, GPAW pairs 0.19 and 0.61, gas molecules 0.22): a
# dataset far above is in another unit (kcal/mol is 23x eV, meV 1000x). Near-equilibrium
# frames in kcal/mol can pass unseen.
RESIDUAL_LIMIT = 3.0  # eV/atom
FORCE_LIMIT = 10.0  # eV/A


def label_scale_warnings(frames: Sequence[Frame], datasets: Sequence[DatasetSpec]) -> list[str]:
    """Datasets whose labels are out of scale for eV: a unit mix-up trains without an error,
    its loss a thousand times the others'. Each dataset's energies are fitted on their own
    (per element and context), so a dataset sharing a context with a wrong one is not blamed."""
    warnings = []
    for k, spec in enumerate(datasets):
        mine = [f for f in frames if f.dataset == k]
        if not mine:
            continue
        elements = sorted({z for f in mine for z in f.atoms.get_chemical_symbols()})
        contexts = sorted({(f.spin, f.fidelity) for f in mine})
        x = np.zeros((len(mine), len(contexts) * len(elements)))
        comp = _compositions(mine, elements)
        for i, f in enumerate(mine):
            c = contexts.index((f.spin, f.fidelity))
            x[i, c * len(elements) : (c + 1) * len(elements)] = comp[i]
        energies = np.array([f.energy for f in mine])
        fitted = x @ np.linalg.lstsq(x, energies, rcond=None)[0]
        per_atom = (energies - fitted) / comp.sum(axis=1)
        residual = float(np.sqrt(np.mean(per_atom**2)))
        forces = np.concatenate([f.forces.ravel() for f in mine])
        force = float(np.sqrt(np.mean(forces**2)))
        if residual > RESIDUAL_LIMIT or force > FORCE_LIMIT:
            warnings.append(
                f"warning: dataset {k} ({spec.path}, energy_unit {spec.energy_unit}) looks out "
                f"of scale for eV: {residual:.3g} eV/atom (RMS) off a fit of per-element "
                f"energies (eV data: under {RESIDUAL_LIMIT:g}), forces {force:.3g} eV/A (RMS; "
                f"eV data: under {FORCE_LIMIT:g}); if it is in another unit, set its "
                "energy_unit (kcal/mol, kJ/mol, meV)"
            )
    return warnings


def _init_worker(frames: list[Frame]) -> None:
    """Share the frames, one thread, Ctrl-C left to the trainer, and die with the trainer
    (a trainer killed outright would leave its workers waiting forever). SIGTERM ends a worker
    (the pool's own way to stop one): the trainer's stop-after-this-step handler came with the
    fork, and a broken pool waited forever on a worker that only logged it."""
    global _WORKER_FRAMES
    _WORKER_FRAMES = frames
    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _collate_in_worker(
    idx: np.ndarray, elements: tuple[str, ...], cutoff: float, contexts: list[int], dtype
) -> GraphBatch:
    return collate([_WORKER_FRAMES[i].atoms for i in idx], elements, cutoff, contexts, dtype)


class _Prefetcher:
    """Steps' batches collated ahead by a process pool, in the order they were drawn.

    Each queued step keeps the random state from before its draw, so a checkpoint saved while
    batches wait records the stream as if they had never been drawn. Batches come back through
    shared memory (importing torch registers that pickling of tensors): /dev/shm holds up to
    `depth` of them."""

    def __init__(self, trainer: Trainer, workers: int, depth: int) -> None:
        self.trainer, self.depth = trainer, depth
        self.pool = ProcessPoolExecutor(
            workers,
            mp_context=torch.multiprocessing.get_context("fork"),
            initializer=_init_worker,
            initargs=(trainer.train,),
        )
        self.queue: deque[tuple[dict, np.ndarray, np.ndarray | None, Future]] = deque()
        self._fill()

    def _fill(self) -> None:
        t = self.trainer
        net = t.net
        args = (net.elements, net.config.cutoff)
        dtype = net.energy_scale.dtype
        while len(self.queue) < self.depth:
            state = t.rng.bit_generator.state
            idx, k = t.draw()
            contexts = [net.context_index(t.train[i].spin, t.train[i].fidelity) for i in idx]
            job = self.pool.submit(_collate_in_worker, idx, *args, contexts, dtype)
            self.queue.append((state, idx, k, job))

    def next(self) -> tuple[np.ndarray, np.ndarray | None, GraphBatch]:
        try:
            _, idx, k, job = self.queue.popleft()
            batch = job.result(timeout=_WORKER_WAIT_S)
            self._fill()
        except CatscreenError:
            raise  # the collate's own message (an unknown element)
        except (BrokenProcessPool, TimeoutError) as exc:  # a plain Pool would wait forever
            raise CatscreenError(
                "a batch-collating worker died or hung (killed, or out of memory?); "
                "the same command resumes from the last checkpoint"
            ) from exc
        except (OSError, RuntimeError) as exc:  # e.g. /dev/shm full
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise CatscreenError(
                f"a batch-collating worker failed ({first}); workers: 0 collates in the trainer"
            ) from exc
        return idx, k, batch

    def pending_state(self) -> dict | None:
        """The random state before the first batch drawn but not trained on."""
        return self.queue[0][0] if self.queue else None

    def close(self, rewind: bool) -> None:
        """Stop the workers; `rewind`: put the trainer's random stream back before the batches
        still queued, where a serial run would have it."""
        if rewind and self.queue:
            self.trainer.rng.bit_generator.state = self.queue[0][0]
        self.pool.shutdown(wait=True, cancel_futures=True)


def _training_systems(path: str) -> set[str]:
    _, payload = load_checkpoint(checkpoint_file(path))
    return set(payload["metadata"].get("training_data", {}).get("training_systems", []))


class _StopAtStep:
    """Ctrl-C, or a batch system's SIGTERM (a job's time limit), asks the training loop to stop
    after the step it is in (its state saved: a resume lost up to eval_every - 1 steps, and an
    interrupt inside the optimiser's update would save half of it); a second signal stops at
    once. A signal ignored (Ctrl-C under a script's `&`) stays ignored."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, log: Callable[[str], None]) -> None:
        self.asked = False
        self.log = log
        self._previous: dict[int, object] = {}
        for signum in self.SIGNALS:
            try:
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    self._previous[signum] = signal.signal(signum, self._ask)
            except ValueError:  # not the main thread: signals are not ours to catch
                break

    def _ask(self, signum: int, frame: object) -> None:
        if self.asked:
            raise KeyboardInterrupt
        self.asked = True
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        self.log(f"{name}: stopping after this step, its state saved (again: now, unsaved)")

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            # None: a handler not set from Python; Python's own is SIGINT's default
            if previous is None and signum == signal.SIGINT:
                previous = signal.default_int_handler
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)
        self._previous = {}


class Trainer:
    """Holds the data, the network, its EMA copy and the optimiser; `run` trains."""

    def __init__(self, config: TrainConfig, log: Callable[[str], None] = print) -> None:
        self.config = config
        self.log = log
        self.out = Path(config.out)
        if config.threads > 0:
            torch.set_num_threads(config.threads)
        self.device = resolve_device(config.device or None)
        self.dtype = {"float32": torch.float32, "float64": torch.float64}[config.dtype]
        torch.manual_seed(config.seed)

        frames: list[Frame] = []
        read: dict[tuple[str, ContextDefaults], list[Atoms]] = {}
        for k, spec in enumerate(config.datasets):
            frames += load_dataset(spec, k, read, split=config.validation_fraction > 0)
        del read
        keep = frozenset(k for k, d in enumerate(config.datasets) if not d.holdout)
        self.split_seed = config.seed if config.split_seed is None else config.split_seed
        self.train, self.val = split_by_system(
            frames, config.validation_fraction, self.split_seed, keep
        )
        if config.init_from:  # what the checkpoint trained on can never validate it
            inherited = _training_systems(config.init_from)
            self.train += [f for f in self.val if f.sid in inherited]
            self.val = [f for f in self.val if f.sid not in inherited]
        if not self.train:
            raise CatscreenError("no training frames after the split: lower validation_fraction")
        if config.validation_fraction > 0 and not self.val:  # validate() falls back on train
            self.log(
                f"warning: no system fell on the validation side (validation_fraction "
                f"{config.validation_fraction:g}): best.pt is chosen on training error; raise "
                "it or change split_seed for a held-out score"
            )
        trained = {f.dataset for f in self.train}
        if not any(config.datasets[k].weight > 0 for k in trained):
            raise CatscreenError(
                "no dataset with a positive weight has training frames: all their systems are "
                "on the validation side"
            )
        for k, spec in enumerate(config.datasets):
            if spec.weight > 0 and k not in trained:  # its share of the batches goes elsewhere
                self.log(
                    f"warning: dataset {k} ({spec.path}, weight {spec.weight:g}) has no training "
                    "frames: all its systems are on the validation side (holdout: false, or "
                    "another split_seed, trains on it)"
                )
        fidelities = config.fidelities or tuple(dict.fromkeys(f.fidelity for f in frames))
        unknown = {f.fidelity for f in frames} - set(fidelities)
        if unknown:
            raise CatscreenError(f"data has fidelities {sorted(unknown)} missing from the config")
        if config.default_fidelity and config.default_fidelity not in fidelities:
            raise CatscreenError(
                f"default_fidelity {config.default_fidelity!r} is not one of {list(fidelities)}"
            )
        seen = sorted({z for f in frames for z in f.atoms.get_chemical_symbols()})
        elements = config.elements or tuple(seen)
        if set(seen) - set(elements):
            raise CatscreenError(
                f"data has elements {sorted(set(seen) - set(elements))} not listed"
            )

        self.inherited_systems: set[str] = set()
        self.parent_metadata: dict[str, Any] = {}
        self.parent_version = ""
        if config.init_from:
            self.net = self._initial(config.init_from, elements, fidelities)
            if config.add_layers:
                self.net = deepened(self.net, config.add_layers)
                self.log(f"deepened to {self.net.config.n_layers} layers")
            if config.refit_references:  # only (context, element) entries the data has
                refs = fit_reference_energies(self.train, self.net.elements, self.net.fidelities)
                seen = _context_elements(self.train, self.net.elements, self.net.fidelities)
                current = self.net.reference_energies.detach().cpu().numpy()
                self.net.reference_energies.copy_(
                    torch.tensor(np.where(seen, refs, current)).to(self.net.reference_energies)
                )
        else:
            self.net = CatscreenNet(ModelConfig.from_dict(config.model), elements, fidelities)
            refs = fit_reference_energies(self.train, elements, fidelities)
            self.net.reference_energies.copy_(torch.tensor(refs))
            forces = np.concatenate([f.forces.ravel() for f in self.train])
            self.net.energy_scale.fill_(max(math.sqrt(float(np.mean(forces**2))), 1e-3))
        for warning in label_scale_warnings(frames, config.datasets):
            self.log(warning)
        parent_default = self.parent_metadata.get("default_fidelity")
        trained_in = sorted({f.fidelity for f in self.train})
        if config.init_from and not config.default_fidelity and parent_default not in trained_in:
            self.log(  # a fine-tune on gpaw-pbe relaxed in chgnet-pbe, E_O 3 eV apart
                f"note: the checkpoint predicts in its default fidelity {parent_default!r} unless "
                f"relax is given --fidelity, and no training frame is in it ({', '.join(trained_in)}"
                "): set default_fidelity in this config to change that"
            )
        self.net.to(self.device, self.dtype)
        self.ema = deepcopy(self.net).eval()
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.opt = torch.optim.AdamW(
            self.net.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        self.step = 0
        self.elapsed = 0.0  # training seconds, kept across resumes for the time budget
        self.best = math.inf
        self.history: list[dict[str, float]] = []
        self.sampling = _shares(
            [f.dataset for f in self.train], [d.weight for d in config.datasets]
        )
        self.rng = np.random.default_rng(config.seed)
        self._prefetch: _Prefetcher | None = None
        self.pairs: list[tuple[Frame, Frame]] = []
        self.pair_sampling: np.ndarray | None = None
        self.val_pairs: list[tuple[Frame, Frame]] = []
        if config.adsorption_weight > 0:
            marked = {i for i, d in enumerate(config.datasets) if d.pairs}
            chosen = marked or {i for i, d in enumerate(config.datasets) if d.pairs is None}
            train = [f for f in self.train if f.dataset in chosen]
            self.pairs = adsorption_pairs(train, self.train)
            val = [f for f in self.val if f.dataset in chosen]
            self.val_pairs = adsorption_pairs(val, self.train + self.val)
            if not self.pairs:
                where = "the pairs: true datasets" if marked else "the data"
                raise CatscreenError(
                    f"adsorption_weight > 0 but no (adsorbate+slab, clean slab) pairs in {where}"
                )
            self.pair_sampling = _pair_sampling(config.datasets, chosen, self.pairs)
            self.log(f"{len(self.pairs)} training adsorbate/clean-slab pairs")

    def _initial(
        self, path: str, elements: Sequence[str], fidelities: Sequence[str]
    ) -> CatscreenNet:
        """A checkpoint to fine-tune; it must know the data's elements and fidelities.

        Its training systems stay training systems: they are never reported as held out.
        """
        net, payload = load_checkpoint(checkpoint_file(path))
        reshaping = sorted(
            key
            for key, value in self.config.model.items()
            if key not in SWITCHABLE_FIELDS and getattr(net.config, key) != value
        )
        if reshaping:
            raise CatscreenError(
                f"init_from keeps the network's shape: model.{reshaping[0]} cannot change from "
                f"{getattr(net.config, reshaping[0])!r} (only {', '.join(SWITCHABLE_FIELDS)} can)"
            )
        if self.config.model:
            net = reconfigured(net, **self.config.model)
        self.parent_metadata, self.parent_version = payload["metadata"], payload["version"]
        data = self.parent_metadata.get("training_data", {})
        self.inherited_systems = set(data.get("training_systems", []))
        new = [e for e in elements if e not in net.elements]
        missing = sorted(set(fidelities) - set(net.fidelities))
        if not self.config.add_elements:
            missing = sorted(new) + missing
        if missing:
            hint = " (add_elements: true adds elements)" if new else ""
            if set(fidelities) - set(net.fidelities):  # a fine-tune adds no context
                hint += (
                    f"; a fidelity must be one of the checkpoint's ({', '.join(net.fidelities)}):"
                    " give the data the one of its level of theory (a dataset's `as_fidelity:`),"
                    " or train a network of your own"
                )
            raise CatscreenError(
                f"{path} does not know {', '.join(missing)}: cannot fine-tune{hint}"
            )
        net = net.float()
        if new:
            net = widened(net, new)
            self._fit_new_references(net, set(new))
            self.log(f"added elements {', '.join(new)}")
        return net

    def _fit_new_references(self, net: CatscreenNet, new: set[str], n_max: int = 2000) -> None:
        """Reference energies of added elements: per context, the least-squares fit of what
        the widened network (new references at zero) leaves of the training energies of
        frames holding them, ridge-pooled over spins as in `fit_reference_energies`."""
        rows = [f for f in self.train if new & set(f.atoms.get_chemical_symbols())]
        if not rows:
            raise CatscreenError(f"no training frames hold {', '.join(sorted(new))}")
        rng = np.random.default_rng(self.config.seed)
        if len(rows) > n_max:
            rows = [rows[k] for k in sorted(rng.choice(len(rows), n_max, replace=False))]
        net.eval()
        residual: list[float] = []
        for k in range(0, len(rows), 32):
            chunk = rows[k : k + 32]
            with torch.no_grad():
                batch = net.collate(
                    [f.atoms for f in chunk], [f.spin for f in chunk], [f.fidelity for f in chunk]
                )
                out = net(batch, forces=False)
            residual += [f.energy - float(e) for f, e in zip(chunk, out["energy"], strict=True)]
        net.train()
        cols = [k for k, e in enumerate(net.elements) if e in new]
        shifted = [replace(f, energy=r) for f, r in zip(rows, residual, strict=True)]
        refs = fit_reference_energies(shifted, [net.elements[k] for k in cols], net.fidelities)
        net.reference_energies[:, cols] = torch.tensor(refs).to(net.reference_energies)

    # -- pieces -------------------------------------------------------------------------------

    def progress_fraction(self) -> float:
        """How much of the budget is spent: steps or wall time, whichever runs out first."""
        c = self.config
        t = self.step / c.max_steps
        if c.max_minutes > 0:
            t = max(t, self.elapsed / (60 * c.max_minutes))
        return min(1.0, t)

    def lr_at(self, step: int) -> float:
        """Linear warm-up, then cosine decay to `min_lr` over the rest of the budget."""
        c = self.config
        if step < c.warmup_steps:
            return c.lr * (step + 1) / c.warmup_steps
        t = self.progress_fraction()
        return c.min_lr + 0.5 * (c.lr - c.min_lr) * (1 + math.cos(math.pi * t))

    def _batch(self, net: CatscreenNet, frames: Sequence[Frame]):  # noqa: ANN202
        batch = net.collate(
            [f.atoms for f in frames], [f.spin for f in frames], [f.fidelity for f in frames]
        )
        return batch.to(self.device, self.dtype)

    def draw(self) -> tuple[np.ndarray, np.ndarray | None]:
        """One step's training frames (and adsorption pairs), from the run's random stream."""
        c = self.config
        idx = self.rng.choice(len(self.train), size=c.batch_size, p=self.sampling)
        k = (
            self.rng.choice(len(self.pairs), size=c.adsorption_pairs, p=self.pair_sampling)
            if self.pairs
            else None
        )
        return idx, k

    def _batches(self) -> Iterator[tuple[np.ndarray, np.ndarray | None, GraphBatch | None]]:
        """Every step's draw, with its batch when workers collated it (None: collate here)."""
        if self.config.workers <= 0:
            while True:
                yield *self.draw(), None
        self._prefetch = _Prefetcher(self, self.config.workers, 2 * self.config.workers)
        rewind = False
        try:
            while True:
                yield self._prefetch.next()
        except GeneratorExit:  # closed by `run`: every batch it was given has been used
            rewind = True
            raise
        finally:
            self._prefetch.close(rewind)
            self._prefetch = None

    def loss(
        self,
        net: CatscreenNet,
        frames: Sequence[Frame],
        train: bool,
        batch: GraphBatch | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Weighted energy (every head, per atom), force, stress and magmom loss; `batch`:
        the frames already collated."""
        c = self.config
        batch = self._batch(net, frames) if batch is None else batch.to(self.device, self.dtype)
        need_stress = c.stress_weight > 0 and any(f.stress is not None for f in frames)
        out = net(batch, forces=True, stress=need_stress, create_graph=train)
        n = batch.n_atoms.to(torch.float64)
        e_ref = torch.tensor([f.energy for f in frames], dtype=torch.float64, device=self.device)
        de_heads = (out["energy_heads"] - e_ref[:, None]) / n[:, None]
        de = (out["energy"] - e_ref) / n
        f_ref = torch.tensor(np.concatenate([f.forces for f in frames]), device=self.device)
        df = out["forces"].double() - f_ref
        loss = c.energy_weight * (de_heads**2).mean() + c.force_weight * (df**2).mean()
        metrics = {
            "energy_mae": float(de.detach().abs().mean()),
            "force_mae": float(df.detach().abs().mean()),
        }
        if need_stress:
            mask = [f.stress is not None for f in frames]
            s_ref = torch.tensor(
                np.stack([f.stress for f in frames if f.stress is not None]), device=self.device
            )
            ds = out["stress"][torch.tensor(mask, device=self.device)].double() - s_ref
            loss = loss + c.stress_weight * (ds**2).mean()
            metrics["stress_mae"] = float(ds.detach().abs().mean())
        if c.magmom_weight > 0:
            per = batch.split(out["magmoms"].double())
            dm = [
                per[k] - torch.tensor(f.magmoms, device=self.device)
                for k, f in enumerate(frames)
                if f.spin == "on" and f.magmoms is not None
            ]
            if dm:
                loss = loss + c.magmom_weight * (torch.cat(dm) ** 2).mean()
        metrics["loss"] = float(loss.detach())
        return loss, metrics

    def pair_loss(
        self, net: CatscreenNet, pairs: Sequence[tuple[Frame, Frame]]
    ) -> tuple[torch.Tensor, float]:
        """Mean squared error of E(adslab) - E(slab) over every head (eV^2), and its MAE."""
        frames = [a for a, _ in pairs] + [s for _, s in pairs]
        out = net(self._batch(net, frames), forces=False)
        heads = out["energy_heads"].double()
        e_ref = torch.tensor([f.energy for f in frames], dtype=torch.float64, device=self.device)
        n = len(pairs)
        d = (heads[:n] - heads[n:]) - (e_ref[:n] - e_ref[n:])[:, None]
        return (d**2).mean(), float(d.detach().mean(dim=1).abs().mean())

    def _update_ema(self) -> None:
        d = self.config.ema_decay
        with torch.no_grad():
            for pe, p in zip(self.ema.parameters(), self.net.parameters(), strict=True):
                pe.mul_(d).add_(p.detach(), alpha=1 - d)
            for be, b in zip(self.ema.buffers(), self.net.buffers(), strict=True):
                be.copy_(b)

    def validate(self) -> dict[str, float]:
        """MAE of the EMA network on (at most `max_eval_frames` of) the held-out systems."""
        frames = _fixed_subset(self.val or self.train, self.config.max_eval_frames)
        e_err, f_err, n_f = 0.0, 0.0, 0
        for k in range(0, len(frames), 16):
            chunk = frames[k : k + 16]
            _, m = self.loss(self.ema, chunk, train=False)
            e_err += m["energy_mae"] * len(chunk)
            n_at = sum(len(f.atoms) for f in chunk)
            f_err += m["force_mae"] * n_at
            n_f += n_at
        val = {"energy_mae": e_err / len(frames), "force_mae": f_err / n_f}
        pairs = _fixed_subset(
            self.val_pairs if self.val else self.pairs, self.config.max_eval_frames
        )
        if pairs:
            with torch.no_grad():
                maes = [
                    self.pair_loss(self.ema, pairs[k : k + 16])[1] * len(pairs[k : k + 16])
                    for k in range(0, len(pairs), 16)
                ]
            val["adsorption_mae"] = sum(maes) / len(pairs)
        return val

    # -- checkpoints ----------------------------------------------------------------------------

    def metadata(self, metrics: dict[str, float]) -> dict[str, Any]:
        c = self.config
        counts: dict[str, int] = {}
        for f in self.train + self.val:
            key = f"{f.source}/{f.fidelity}/spin-{f.spin}"
            counts[key] = counts.get(key, 0) + 1
        parent = self.parent_metadata
        inherited_fidelity = parent.get("default_fidelity")
        if inherited_fidelity not in self.net.fidelities:
            inherited_fidelity = self.net.fidelities[0]
        description = c.description
        if not description and parent.get("description"):
            description = (
                f"fine-tune of {parent.get('name')} {self.parent_version}: {parent['description']}"
            )
        return {
            "name": c.name or parent.get("name") or "catscreen",
            "description": description,
            "default_fidelity": c.default_fidelity or inherited_fidelity,
            "training_data": {
                "datasets": [asdict(d) for d in c.datasets],
                "frames": counts,
                "train_systems": len({f.sid for f in self.train} | self.inherited_systems),
                "training_systems": sorted({f.sid for f in self.train} | self.inherited_systems),
                "validation_systems": sorted({f.sid for f in self.val} - self.inherited_systems),
                "validation_fraction": c.validation_fraction,
                "split_seed": self.split_seed,
            },
            "metrics": {"validation": metrics, "step": self.step},
            **({} if self.hosts is None else {"hosts": self.hosts}),
            # the parent's measured weak hosts (Ba, Ce): a fine-tune on other data keeps them
            **({"host_notes": parent["host_notes"]} if parent.get("host_notes") else {}),
            "train_config": json.loads(json.dumps(asdict(c))),
            # the parent by what it held: init_from is a path, whose file may change
            **(
                {"parent": {"version": self.parent_version, "path": c.init_from}}
                if c.init_from
                else {}
            ),
        }

    @cached_property  # read at every checkpoint; the frames do not change
    def hosts(self) -> list[str] | None:
        """Elements the training frames hold in a surface or bulk (`host_symbols`: not the
        adsorbate), the parent's with them: relax warns of hosts beyond them (an oxide
        surface, when O was only ever an adsorbate). None when a frame cannot tell (untagged
        adslabs without an adsorbate formula): nothing is claimed."""
        own: set[str] = set()
        for f in self.train:
            info = f.atoms.info
            host = host_symbols(f.atoms, info.get("kind"), info.get("adsorbate"))
            if host is None:
                return None
            own.update(host)
        if not self.config.init_from:
            return sorted(own)
        return merged_hosts(self.parent_metadata, {"hosts": sorted(own)})

    def save_state(self) -> None:
        state = {
            "step": self.step,
            "elapsed": self.elapsed,
            "best": self.best,
            "history": self.history,
            "net": self.net.state_dict(),
            "ema": self.ema.state_dict(),
            "opt": self.opt.state_dict(),
            # with workers, the stream as it was before the batches still queued
            "rng": (self._prefetch and self._prefetch.pending_state())
            or self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "run": self.run_identity,
            "run_fields": self.field_digests(),
            "settings": self.run_settings(),
        }
        save_atomically(state, self.out / "state.pt")

    def run_settings(self) -> dict[str, Any]:
        """How the steps so far were taken, beyond the run's identity: the loss weights set
        the validation score best.pt is chosen by (a resume with other ones replaced a good
        best.pt with a worse one), and precision, batch size and EMA how training went."""
        c = self.config
        return {**c.loss_weights(), "dtype": c.dtype, "batch_size": c.batch_size,
                "ema_decay": c.ema_decay}  # fmt: skip

    # what a resumed run must share with the one that saved its state; the step budget,
    # evaluation cadence and the like may change between the two
    RUN_FIELDS = ("datasets", "model", "fidelities", "elements", "seed", "split_seed",
                  "validation_fraction", "init_from", "add_layers", "add_elements")  # fmt: skip

    @cached_property
    def run_identity(self) -> str:
        """Worked out once (every saved state carries it). Paths by what they hold (file
        names and sizes; the checkpoint by its version), so a run copied to another machine or
        checkout still resumes there."""
        text = json.dumps(self.run_fields, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def field_digests(self) -> dict[str, str]:
        """A hash per identity field, kept beside the identity so that a refused resume names
        the fields that changed (a changed parent file listed all ten)."""
        return {
            k: hashlib.sha256(json.dumps(v, sort_keys=True, default=str).encode()).hexdigest()[:12]
            for k, v in self.run_fields.items()
        }

    @cached_property
    def run_fields(self) -> dict[str, Any]:
        c = asdict(self.config)
        fields = {k: c[k] for k in self.RUN_FIELDS}
        fields["datasets"] = [
            {
                **{k: v for k, v in d.items() if k not in LATER_FIELDS or v != LATER_FIELDS[k]},
                "path": _files_of(Path(d["path"])),
            }
            for d in fields["datasets"]
        ]
        fields["init_from"] = self.parent_version
        return fields

    def resume(self) -> bool:
        path = self.out / "state.pt"
        if not path.exists():
            return False
        fix = "delete it to start afresh or give another out"
        try:
            state = torch.load(path, map_location=self.device, weights_only=False)
        except Exception as exc:  # torch: pickle and zip errors of a cut-off file
            raise CatscreenError(
                f"cannot resume from {path} (damaged: {type(exc).__name__}); {fix}"
            ) from exc
        if state.get("run", self.run_identity) != self.run_identity:  # older states: none
            mine, theirs = self.field_digests(), state.get("run_fields") or {}
            changed = [k for k in self.RUN_FIELDS if k in theirs and theirs[k] != mine[k]]
            raise CatscreenError(
                f"{path} is the state of a run with other data or network settings "
                f"({', '.join(changed or self.RUN_FIELDS)}"
                + (": init_from's file holds other weights" if "init_from" in changed else "")
                + f"); {fix}"
            )
        old, new = state.get("settings", self.run_settings()), self.run_settings()
        changed = [f"{k} {old.get(k)} -> {v}" for k, v in new.items() if old.get(k) != v]
        if changed:
            raise CatscreenError(
                f"{path} was trained with other settings ({'; '.join(changed)}); {fix}"
            )
        try:
            self.net.load_state_dict(state["net"])
            self.ema.load_state_dict(state["ema"])
            self.opt.load_state_dict(state["opt"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise CatscreenError(
                f"cannot resume from {path} ({type(exc).__name__}); {fix}"
            ) from exc
        if not all(torch.isfinite(t).all() for t in state["net"].values() if t.is_floating_point()):
            raise CatscreenError(  # lowering lr cannot mend weights that are NaN already
                f"{path} holds non-finite weights (a run that diverged); {fix}"
            )
        best = self.out / "best.pt"
        if best.exists():  # a damaged one stood until a better score came, and was returned
            try:
                load_checkpoint(best)
            except CatscreenError as exc:
                raise CatscreenError(
                    f"{exc}; delete it to have this run's next evaluation write a new one"
                ) from exc
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"].cpu())  # map_location put it on the device
        self.step, self.best, self.history = state["step"], state["best"], state["history"]
        self.elapsed = state["elapsed"]
        return True

    # -- loop -----------------------------------------------------------------------------------

    def _diverged(self, what: str) -> str:
        return (
            f"training diverged at step {self.step + 1} ({what}): lower lr (or look for absurd "
            f"energies in the data); {self.out} keeps what was saved before it"
        )

    def run(self, progress: Callable[[int, dict[str, float]], None] | None = None) -> Path:
        """Train to `max_steps` (or `max_minutes`); returns the path of the best EMA model
        (`last.pt` when no step ran: `init_from` with `max_steps: 0` rewrites a checkpoint)."""
        c = self.config
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a read-only parent, a file in the way
            raise CatscreenError(
                f"cannot make the run folder {self.out}: {first_line(exc)}"
            ) from None
        if self.resume():
            done = self.step >= c.max_steps
            self.log(
                f"resumed at step {self.step}"
                + (f": max_steps {c.max_steps} reached, nothing to train (raise it to go on)"
                   if done else "")
            )  # fmt: skip
        best_path = self.out / "best.pt"
        saved_best = best_path.exists() and self.step > 0  # a resumed run has its best
        metrics: dict[str, float] = {}
        batches = self._batches()
        stop = _StopAtStep(self.log)
        try:
            while self.step < c.max_steps:
                if c.max_minutes > 0 and self.elapsed > 60 * c.max_minutes:
                    break  # a rerun after the budget is spent trains nothing more
                tick = time.monotonic()
                self.net.train()
                idx, k, batch = next(batches)
                for g in self.opt.param_groups:
                    g["lr"] = self.lr_at(self.step)
                loss, metrics = self.loss(self.net, [self.train[i] for i in idx], True, batch)
                if k is not None:
                    pl, metrics["adsorption_mae"] = self.pair_loss(
                        self.net, [self.pairs[i] for i in k]
                    )
                    loss = loss + c.adsorption_weight * pl
                    metrics["loss"] = float(loss.detach())
                if not torch.isfinite(loss):  # its weights next: a NaN best.pt, exit 0
                    raise CatscreenError(self._diverged(f"loss {float(loss.detach())}"))
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.net.parameters(), c.grad_clip)
                self.opt.step()
                self._update_ema()
                self.step += 1
                self.elapsed += time.monotonic() - tick
                out_of_time = c.max_minutes > 0 and self.elapsed > 60 * c.max_minutes
                if self.step % c.eval_every == 0 or self.step == c.max_steps or out_of_time:
                    val = self.validate()
                    self.history.append({"step": self.step, "train_loss": metrics["loss"], **val})
                    score = val["energy_mae"] * c.energy_weight + val["force_mae"]
                    score += c.adsorption_weight * val.get("adsorption_mae", 0.0)
                    if not math.isfinite(score):
                        raise CatscreenError(self._diverged(f"validation score {score}"))
                    if score < self.best or not best_path.exists():
                        self.best = score
                        save_checkpoint(self.ema, best_path, self.metadata(val))
                        saved_best = True
                    self.save_state()
                    ads = val.get("adsorption_mae")
                    self.log(
                        f"step {self.step}: val energy {1000 * val['energy_mae']:.1f} meV/atom, "
                        f"force {val['force_mae']:.3f} eV/A"
                        + ("" if ads is None else f", adsorption {1000 * ads:.0f} meV")
                    )
                if progress:
                    progress(self.step, metrics)
                if stop.asked and self.step < c.max_steps:  # this step's state: rerun goes on
                    self.save_state()
                    self.log(f"interrupted at step {self.step}; state saved, rerun to go on")
                    raise KeyboardInterrupt
                if out_of_time:
                    self.log(f"time limit of {c.max_minutes} min reached at step {self.step}")
                    break
        finally:
            stop.restore()
            batches.close()  # stops the workers
        last_path = self.out / "last.pt"
        val = self.validate()
        if not all(math.isfinite(v) for v in val.values()):
            raise CatscreenError(self._diverged(f"validation {val}"))
        save_checkpoint(self.ema, last_path, self.metadata(val))
        return best_path if saved_best else last_path  # no step ran: no best of this run
