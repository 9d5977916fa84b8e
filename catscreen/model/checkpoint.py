"""Self-describing checkpoints: weights plus everything needed to rebuild and explain them.

A checkpoint is a plain dict loaded with `torch.load(weights_only=True)`, so opening one never
runs code:

    {"format": "catscreen-checkpoint/1",
     "config": {...ModelConfig...}, "elements": [...], "fidelities": [...],
     "metadata": {"name", "description", "default_fidelity", "training_data", "metrics", ...},
     "version": "<12 hex>", "state_dict": {name: tensor}}

`version` is a hash of the config, element and fidelity lists and the weights: two files
with the same version predict the same numbers, and every result row records it.

Training side: `save_checkpoint(net, path, metadata) -> version`.
Inference side: `load_checkpoint_model(path | None) -> CatscreenModel` (None: the bundled
weights in data/models/bundled.pt), or `load_checkpoint(path) -> (CatscreenNet, checkpoint)`
to continue training. `interpolate_checkpoints` mixes two fine-tunes of one network in weight
space (WiSE-FT: Wortsman et al., CVPR 2022), keeping both parents' training records.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from catscreen.errors import CatscreenError, first_line
from catscreen.io import atomic_path
from catscreen.model.api import ModelInfo
from catscreen.model.inference import CatscreenModel
from catscreen.model.network import CatscreenNet, ModelConfig
from catscreen.paths import data_dir

FORMAT = "catscreen-checkpoint/1"
BUNDLED = ("models", "bundled.pt")


def bundled_path() -> Path:
    """Where the shipped weights live (data/models/bundled.pt, catscreen/_data in a wheel)."""
    return data_dir().joinpath(*BUNDLED)


def content_version(
    config: dict, elements: list[str], fidelities: list[str], state_dict: dict
) -> str:
    """A hash of what determines the predictions; stable across save/load."""
    h = hashlib.sha256()
    h.update(json.dumps([config, elements, fidelities], sort_keys=True).encode())
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:12]


def save_checkpoint(
    net: CatscreenNet, path: str | Path, metadata: dict[str, Any] | None = None
) -> str:
    """Write `net` with JSON-able `metadata` (name, description, default_fidelity,
    training_data, metrics, ...); returns the content version.

    `default_fidelity` defaults to the last (highest) fidelity of the network.
    """
    metadata = dict(metadata or {})
    metadata.setdefault("name", "catscreen")
    metadata.setdefault("default_fidelity", net.fidelities[-1])
    if metadata["default_fidelity"] not in net.fidelities:
        raise CatscreenError(f"default_fidelity {metadata['default_fidelity']!r} is not a fidelity")
    try:
        json.dumps(metadata)
    except TypeError as exc:
        raise CatscreenError(f"checkpoint metadata must be JSON-serialisable: {exc}") from exc
    config = json.loads(net.config.to_json())
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    version = content_version(config, list(net.elements), list(net.fidelities), state)
    payload = {
        "format": FORMAT,
        "config": config,
        "elements": list(net.elements),
        "fidelities": list(net.fidelities),
        "metadata": metadata,
        "version": version,
        "state_dict": state,
    }
    save_atomically(payload, Path(path))
    return version


def save_atomically(payload: dict[str, Any], path: Path) -> None:
    """torch.save through `atomic_path`: a unique temporary name (training and `model
    interpolate` may write one path), fsync, and on a full disk (torch raises RuntimeError
    there) a one-line error with the previous file kept and no partial file left."""
    with atomic_path(path) as tmp:
        try:
            torch.save(payload, tmp)
        except RuntimeError as exc:
            raise OSError(first_line(exc)) from exc


_REQUIRED = ("config", "elements", "fidelities", "metadata", "version", "state_dict")


def load_checkpoint(path: str | Path) -> tuple[CatscreenNet, dict[str, Any]]:
    """Rebuild the network (in the dtype it was saved in) and return it with the raw payload."""
    path = Path(path)
    if path.is_dir():  # a train run's folder
        raise CatscreenError(
            f"{path} is a folder: give a checkpoint in it, e.g. {path / 'best.pt'}"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CatscreenError(f"checkpoint not found: {path}") from None
    except Exception as exc:  # torch's messages run to paragraphs: keep the first sentence
        why = (str(exc).strip().splitlines() or [""])[0].split(". ")[0]
        raise CatscreenError(
            f"cannot read checkpoint {path} (corrupt, truncated or not a torch file): "
            f"{type(exc).__name__}: {why}"
        ) from exc
    if isinstance(payload, dict) and "format" not in payload and "step" in payload:
        raise CatscreenError(  # state.pt beside best.pt: what `train` resumes from
            f"{path} is a training run's resume state: give its checkpoint, "
            f"{path.with_name('best.pt')} (or last.pt)"
        )
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CatscreenError(f"{path} is not a catscreen checkpoint (format {FORMAT})")
    missing = [k for k in _REQUIRED if k not in payload]
    if missing:
        raise CatscreenError(f"{path} is damaged: it lacks {', '.join(missing)}")
    shapes = {"config": dict, "metadata": dict, "elements": list, "fidelities": list}
    wrong = [k for k, kind in shapes.items() if not isinstance(payload[k], kind)]
    if wrong:
        raise CatscreenError(f"{path} is damaged: its {', '.join(wrong)} has the wrong type")
    try:  # a wrongly typed value (`cutoff: "5.0"`) raised a bare TypeError from the checks
        config = ModelConfig.from_dict(payload["config"])
    except (CatscreenError, KeyError, TypeError, ValueError) as exc:  # its own checks too
        raise CatscreenError(
            f"{path} is damaged: its config is not readable: {type(exc).__name__}: {exc}"
        ) from exc
    state = payload["state_dict"]
    try:
        net = CatscreenNet(config, payload["elements"], payload["fidelities"])
        dtype = state["energy_scale"].dtype
        net.to(dtype).load_state_dict(state)
    except (CatscreenError, KeyError, RuntimeError, TypeError, ValueError, AttributeError) as exc:
        why = (str(exc).strip().splitlines() or [""])[0].rstrip(":")
        raise CatscreenError(
            f"{path} is damaged: its weights do not fit its config: {type(exc).__name__}: {why}"
        ) from exc
    version = content_version(payload["config"], payload["elements"], payload["fidelities"], state)
    if version != payload["version"]:
        raise CatscreenError(f"{path} is corrupt: content hash {version} != {payload['version']}")
    return net.eval(), payload


def interpolate_checkpoints(
    first: str | Path, second: str | Path, alpha: float, out: str | Path, description: str = ""
) -> str:
    """Write (1 - alpha) * first + alpha * second ("bundled" names the shipped weights);
    returns the new version.

    Meaningful only for two fine-tunes of the same trained network (one loss basin): a
    fine-tune that corrects one kind of cell can give back accuracy on another, and the
    weight-space mix between it and its parent often keeps most of both. Everything either
    parent trained on counts as trained on, so held-out benchmarks stay held out.
    """
    if not 0.0 <= alpha <= 1.0:
        raise CatscreenError(f"alpha must be between 0 and 1 (got {alpha:g})")
    first, second = checkpoint_file(first), checkpoint_file(second)
    net, a = load_checkpoint(first)
    _, b = load_checkpoint(second)
    for key in ("config", "elements", "fidelities"):
        if a[key] != b[key]:
            raise CatscreenError(
                f"{first} and {second} differ in their {key}: only checkpoints of the same "
                "network (fine-tunes of one parent) can be interpolated"
            )
    sa, sb = a["state_dict"], b["state_dict"]
    mixed = {
        k: (1.0 - alpha) * v + alpha * sb[k].to(v.dtype) if v.is_floating_point() else v
        for k, v in sa.items()
    }
    net.load_state_dict(mixed)
    # each parent's recipe travels with the mix (a parent that is itself a mix brings its own
    # interpolation record), so the shipped file says how both halves were trained
    recipe = ("description", "train_config", "interpolation")
    parents = [
        {"path": str(p), "version": c["version"]}
        | {k: c["metadata"][k] for k in recipe if k in c["metadata"]}
        for p, c in ((first, a), (second, b))
    ]
    metadata = {
        **{k: a["metadata"][k] for k in ("name", "default_fidelity") if k in a["metadata"]},
        "description": description
        or f"{1 - alpha:g} x {a['version']} + {alpha:g} x {b['version']} (weight interpolation)",
        "training_data": _merged_training_data(
            a["metadata"].get("training_data", {}), b["metadata"].get("training_data", {})
        ),
        "interpolation": {"alpha": alpha, "first": parents[0], "second": parents[1]},
    }
    if (hosts := merged_hosts(a["metadata"], b["metadata"])) is not None:
        metadata["hosts"] = hosts
    return save_checkpoint(net, out, metadata)


def merged_hosts(*metadata: dict[str, Any]) -> list[str] | None:
    """The host elements of a network made from these (a mix's parents, a fine-tune's parent
    and its own run): known only when each of them recorded its own."""
    if any("hosts" not in m for m in metadata):
        return None
    return sorted({e for m in metadata for e in m["hosts"]})


def _merged_training_data(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Trained on what either parent trained on; held out only where both held out. The split
    rule (seed, fraction) is kept only when the parents share it."""
    trained = set(a.get("training_systems", [])) | set(b.get("training_systems", []))
    merged: dict[str, Any] = {
        "parents": [{k: v for k, v in d.items() if not k.endswith("_systems")} for d in (a, b)],
        "training_systems": sorted(trained),
    }
    if "validation_systems" in a and "validation_systems" in b:
        both = set(a["validation_systems"]) & set(b["validation_systems"])
        merged["validation_systems"] = sorted(both - trained)
    rule = ("split_seed", "validation_fraction")
    if all(k in a and k in b and a[k] == b[k] for k in rule):
        merged.update({k: a[k] for k in rule})
    return merged


def model_from_checkpoint(path: str | Path) -> CatscreenModel:
    net, payload = load_checkpoint(path)
    meta = payload["metadata"]
    if meta.get("default_fidelity") not in net.fidelities:
        raise CatscreenError(
            f"{path} is damaged: default_fidelity {meta.get('default_fidelity')!r} is not one "
            f"of its fidelities {list(net.fidelities)}"
        )
    info = ModelInfo(
        name=meta.get("name", "catscreen"),
        version=payload["version"],
        fidelities=net.fidelities,
        default_fidelity=meta["default_fidelity"],
        spin_conditioned=True,
        predicts_magmoms=True,
        n_heads=net.config.n_heads,
        elements=net.elements,
        description=meta.get("description", ""),
        untrained=untrained_contexts(meta, net.fidelities),
        hosts=tuple(meta["hosts"]) if meta.get("hosts") else None,
        host_notes=tuple((tuple(n["elements"]), n["note"]) for n in meta.get("host_notes", [])),
    )
    return CatscreenModel(net, info, {k: v for k, v in payload.items() if k != "state_dict"})


def untrained_contexts(meta: dict[str, Any], fidelities: Sequence[str]) -> tuple[str, ...]:
    """The (fidelity, spin) contexts none of a from-scratch run's frames was in: a network
    trained on spin-off frames alone still has a spin-on context, which `--spin auto` picks
    for Fe, Co, Ni. A fine-tune or a weight mix counts only its own data: unknown, none."""
    frames = (meta.get("training_data") or {}).get("frames")
    config = meta.get("train_config") or {}
    if not isinstance(frames, dict) or meta.get("parent") or meta.get("interpolation"):
        return ()  # a count per context is what the trainer records; anything else says nothing
    if config.get("init_from") or not frames:
        return ()
    keys = [str(k).split("/") for k in frames]
    if not all(len(k) == 3 and k[2] in ("spin-off", "spin-on") for k in keys):
        return ()  # not the trainer's source/fidelity/spin-x counts
    seen = {(k[1], k[2]) for k, n in zip(keys, frames.values(), strict=True) if n}
    return tuple(
        f"{f}/spin-{s}" for f in fidelities for s in ("off", "on") if (f, f"spin-{s}") not in seen
    )


def checkpoint_file(path: str | Path | None) -> Path:
    """A checkpoint's file; None or "bundled" is the shipped weights, which must exist."""
    if path is not None and str(path) != "bundled":
        return Path(path)
    bundled = bundled_path()
    if not bundled.exists():
        raise CatscreenError(
            f"bundled weights not found at {bundled}: train them (catscreen train) or pass "
            "a checkpoint file, or use the chgnet model"
        )
    return bundled


def load_checkpoint_model(path: str | Path | None) -> CatscreenModel:
    """A checkpoint as a `Model`; None loads the bundled weights."""
    return model_from_checkpoint(checkpoint_file(path))
