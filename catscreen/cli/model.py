"""`catscreen model info [MODEL]`: what a model is, before trusting its numbers;
`catscreen model interpolate A B`: a weight-space mix of two fine-tunes of one network."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import typer
from rich.table import Table

from catscreen.cli.common import cli_errors, console, output_option

app = typer.Typer(
    help="Inspect models (the bundled network, a checkpoint, CHGNet) and interpolate two "
    "checkpoints.",
    no_args_is_help=True,
)


@app.command("info")
@cli_errors
def info_command(
    model: str = typer.Argument(
        "bundled", help="bundled, a checkpoint path, chgnet, chgnet-r2scan or emt."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Architecture, parameter count, elements, contexts, training data and metrics."""
    from catscreen.model import load_model
    from catscreen.model.inference import CatscreenModel

    loaded = load_model(model)
    info = loaded.info
    summary: dict = {
        "name": info.name,
        "version": info.version,
        "fidelities": list(info.fidelities),
        "default_fidelity": info.default_fidelity,
        "spin_conditioned": info.spin_conditioned,
        "predicts_magmoms": info.predicts_magmoms,
        "ensemble_heads": info.n_heads,
        "elements": list(info.elements) if info.elements else "any",
        "description": info.description,
    }
    if isinstance(loaded, CatscreenModel):
        from catscreen.model.checkpoint import checkpoint_file

        net, meta = loaded.net, loaded.metadata["metadata"]
        # where it is: an installed wheel's bundled weights sit deep in site-packages
        summary["file"] = str(checkpoint_file(model).resolve())
        summary["architecture"] = {
            "hidden_irreps": str(net.config.hidden_irreps()),
            "parameters": net.n_parameters,
            "dtype": str(net.energy_scale.dtype).removeprefix("torch."),
            **asdict(net.config),  # what the network is, defaults of older checkpoints included
        }
        summary["contexts"] = [
            f"{c} (no training frames)" if c in info.untrained else c
            for c in (f"{f}/spin-{s}" for f in net.fidelities for s in ("off", "on"))
        ]
        # what it saw in surfaces and bulks: others (an oxide's O) are outside its training
        summary["host_elements"] = list(info.hosts) if info.hosts else "not recorded"
        if info.host_notes:  # measured on these weights: relax warns of them
            summary["host_notes"] = [note for _, note in info.host_notes]
        if mix := meta.get("interpolation"):  # the parents' full recipes stay in the file
            summary["mixed_from"] = {"alpha": mix["alpha"]} | {
                k: f"{mix[k]['version']} ({mix[k]['path']})" for k in ("first", "second")
            }
        config = meta.get("train_config") or {}
        if parent := meta.get("parent"):
            summary["fine_tuned_from"] = f"{parent['version']} ({parent['path']})"
        elif config.get("init_from"):  # checkpoints from before the parent's version was kept
            summary["fine_tuned_from"] = f"{config['init_from']} (version not recorded)"
        if "seed" in config:
            summary["seed"] = config["seed"]
        summary["training_data"] = meta.get("training_data", "not recorded")
        metrics = meta.get("metrics")
        steps = {"max_steps": config["max_steps"]} if "max_steps" in config else {}
        summary["metrics"] = (
            {**metrics, **steps, "units": METRIC_UNITS}  # of how many: an unfinished run's best
            if metrics
            else {
                "note": "none in the checkpoint (a weight-space mix is not validated as it is "
                "made); the measured figures are in MODEL_CARD.md"
            }
        )
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    if model == "bundled" and "training_data" in summary:
        summary["training_data"] = _repository_paths(summary["training_data"])
    table = Table(title=f"model {model}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in summary.items():
        shown = _metrics_text(value) if key == "metrics" else _fmt(value)
        table.add_row(key.replace("_", " "), shown)
    console.print(table)


# what the trainer's validation metrics are in (the table printed 0.0849 for 85 meV/atom)
METRIC_UNITS = {"energy_mae": "eV/atom", "force_mae": "eV/A", "adsorption_mae": "eV"}


def _metrics_text(metrics: dict) -> str:
    if "note" in metrics:
        return str(metrics["note"])
    values = metrics.get("validation", metrics)
    parts = [
        f"energy MAE {1000 * values['energy_mae']:.1f} meV/atom" if k == "energy_mae"
        else f"{k.removesuffix('_mae')} MAE {v:.3f} {METRIC_UNITS[k]}" if k in METRIC_UNITS
        else f"{k} {v}"
        for k, v in values.items()
        if not isinstance(v, dict) and k != "max_steps"
    ]  # fmt: skip
    of = f" of {metrics['max_steps']}" if "max_steps" in metrics else ""
    step = f" (validation, step {metrics['step']}{of})" if "step" in metrics else ""
    return ", ".join(parts) + step


@app.command("interpolate")
@cli_errors
def interpolate_command(
    first: str = typer.Argument(..., help="A checkpoint path, or bundled."),
    second: str = typer.Argument(..., help="A checkpoint of the same network (a fine-tune)."),
    alpha: float = typer.Option(
        ..., "--alpha", help="Share of SECOND: weights (1 - alpha) * FIRST + alpha * SECOND."
    ),
    out: Path = output_option(..., "--out", "-o", help="Checkpoint to write."),
    description: str = typer.Option("", "--description", help="Recorded in the checkpoint."),
) -> None:
    """Mix two fine-tunes of one trained network in weight space (WiSE-FT).

    A fine-tune that corrects one kind of cell can cost accuracy on another; the mix with its
    parent often keeps most of both. Measure it (benchmarks/accuracy.py) before trusting it.
    """
    from catscreen.errors import CatscreenError
    from catscreen.io import is_same_file
    from catscreen.model.checkpoint import checkpoint_file, interpolate_checkpoints

    for parent in (first, second):  # the mix replaced its parent, whose fine-tunes name it
        path = checkpoint_file(parent)  # `bundled` too
        if is_same_file(out, path):
            raise CatscreenError(f"--out {out} is the checkpoint {parent}: write the mix apart")
    version = interpolate_checkpoints(first, second, alpha, out, description)
    console.print(f"model: {out} (version {version})", highlight=False)


SHOWN = 6  # list entries shown in the table (--json has them all): system ids run to thousands


def _fmt(value: object, depth: int = 0) -> str:
    pad = "  " * depth
    if isinstance(value, dict):
        if {"path", "weight"} <= set(value):  # a dataset: where, and how much it counts
            return f"{value['path']} (weight {value['weight']})"
        lines = [f"{pad}{k}: {_fmt(v, depth + 1).lstrip()}" for k, v in value.items()]
        return "\n".join(lines) or "-"
    if isinstance(value, list | tuple):
        if value and all(isinstance(v, dict) for v in value):
            return "\n" + "\n".join(f"{pad}- {_fmt(v, depth + 1).lstrip()}" for v in value)
        shown = ", ".join(str(v) for v in value[:SHOWN])
        more = f", ... ({len(value)} in all)" if len(value) > SHOWN else ""
        return shown + more or "-"
    return str(value)


def _repository_paths(value: object) -> object:
    """The bundled weights' training sets as the repository names them (data/training/...):
    they record absolute paths on the machine that trained them, meaningless elsewhere."""
    if isinstance(value, dict):
        if isinstance(value.get("path"), str) and "weight" in value:
            parts = Path(value["path"]).parts
            at = [i for i in range(len(parts) - 1) if parts[i : i + 2] == ("data", "training")]
            return {**value, "path": str(Path(*parts[at[-1] :]))} if at else value
        return {k: _repository_paths(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_repository_paths(v) for v in value]
    return value
