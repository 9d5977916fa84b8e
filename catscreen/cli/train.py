"""`catscreen train CONFIG` and `catscreen evaluate MODEL DATA`: thin wrappers over training."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from catscreen.cli.common import cli_errors, console, err_console, output_option
from catscreen.errors import CatscreenError


@cli_errors
def train_command(
    config: Path = typer.Argument(
        ...,
        help="Training config (YAML), e.g. data/training/bundled.yaml; `extends: BASE.yaml` in it "
        "starts from another config and changes only the keys it gives.",
    ),
    out: Path | None = output_option(
        None, "--out", "-o", help="Run folder (overrides the config)."
    ),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Override the step budget."),
    max_minutes: float | None = typer.Option(
        None,
        "--max-minutes",
        help="Stop cleanly after this much training-step time, validation and checkpoints not "
        "counted (overrides the config).",
    ),
) -> None:
    """Train CatscreenNet jointly on the config's datasets; rerun to resume from OUT/state.pt.

    Writes OUT/best.pt (EMA weights with the best validation score, loadable with
    --model OUT/best.pt), OUT/last.pt and OUT/state.pt (optimiser state for resuming);
    with max_steps 0 (a checkpoint rewritten, e.g. with model.zbl on) only OUT/last.pt.

    Fine-tuning: `init_from: bundled` (or a checkpoint's path, beside the config or from the
    working directory) starts from those weights; `refit_references: true` fits the reference
    energies to the new data, `add_elements: true` adds its new elements, `default_fidelity`
    names the context relax predicts in (else the checkpoint's). A run whose loss turns NaN
    stops with an error. Ctrl-C or SIGTERM (a job's time limit) stops after the step in
    progress with its state saved; rerun to go on.
    """
    from dataclasses import replace

    from catscreen.training.trainer import TrainConfig, Trainer

    cfg = TrainConfig.load(config)
    overrides = {
        "out": str(out) if out else None,
        "max_steps": max_steps,
        "max_minutes": max_minutes,
    }
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    cfg.check_ranges()  # the overrides too
    if Path(cfg.out).exists() and not Path(cfg.out).is_dir():  # found after loading the data
        raise CatscreenError(f"out {cfg.out} is a file; give a folder for the run")
    trainer = Trainer(cfg, log=lambda m: console.print(m, highlight=False))
    console.print(
        f"{len(trainer.train)} training and {len(trainer.val)} validation frames; "
        f"{trainer.net.n_parameters} parameters; elements {', '.join(trainer.net.elements)}; "
        f"fidelities {', '.join(trainer.net.fidelities)}; device {trainer.device}"
    )
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("training", total=cfg.max_steps, completed=trainer.step, loss=0.0)
        best = trainer.run(lambda step, m: bar.update(task, completed=step, loss=m["loss"]))
    console.print(f"model: {best}")


@cli_errors
def evaluate_command(
    model: str = typer.Argument(..., help="bundled | checkpoint PATH | chgnet | chgnet-r2scan."),
    data: list[Path] = typer.Argument(..., help="Labelled frames: extxyz files, folders, .db."),
    held_out: bool = typer.Option(
        False,
        "--held-out",
        help="Only systems the checkpoint never trained on that its split puts on the validation "
        "side (data made after training included).",
    ),
    table: Path | None = output_option(None, "--table", help="Write the MAE table (CSV)."),
    plot: Path = output_option(Path("parity.png"), "--plot", help="Parity plot (PNG)."),
    fidelity: str | None = typer.Option(
        None,
        "--fidelity",
        help="Fidelity of frames without a 'fidelity' key (with an is_low_fi flag: the "
        "high-fidelity name), e.g. for AQCat25-style databases.",
    ),
    low_fidelity: str = typer.Option(
        "low-fi", "--low-fidelity", help="Fidelity of frames whose is_low_fi flag is true."
    ),
    spin: str | None = typer.Option(
        None, "--spin", help="on | off for frames with neither a spin nor an is_spin_off key."
    ),
    spin_off_key: str = typer.Option(
        "is_spin_off",
        "--spin-off-key",
        help="Key of the spin-off flag in an ASE database (a training config's spin_off_key).",
    ),
    low_fi_key: str = typer.Option(
        "is_low_fi",
        "--low-fi-key",
        help="Key of the low-fidelity flag in an ASE database (a training config's low_fi_key).",
    ),
    energy_unit: str = typer.Option(
        "eV",
        "--energy-unit",
        help="Energy unit of the labels: eV, meV, kcal/mol or kJ/mol (forces per A).",
    ),
) -> None:
    """Energy (meV/atom) and force (eV/A) MAE per source, fidelity, spin and element."""
    from catscreen.io import atomic_path, is_same_file
    from catscreen.model import load_model
    from catscreen.training.datasets import ContextDefaults
    from catscreen.training.evaluate import evaluate_frames, load_eval_frames, parity_plot, summary

    if spin not in (None, "on", "off"):
        raise CatscreenError(f"--spin must be on or off, not {spin!r}")
    for option, path in (("--table", table), ("--plot", plot)):  # before the predictions
        if path is not None and (path.is_dir() or path.parent.is_file()):
            raise CatscreenError(f"{option} {path}: not a file path (a folder is in the way)")
        if path is not None and any(is_same_file(path, p) for p in (*data, Path(model))):
            raise CatscreenError(f"{option} {path} is an input (left unchanged): write apart")
    defaults = ContextDefaults(
        spin=spin,
        fidelity=fidelity,
        low_fidelity=low_fidelity,
        spin_off_key=spin_off_key,
        low_fi_key=low_fi_key,
        energy_unit=energy_unit,
    )
    m = load_model(model)
    frames = load_eval_frames(data, m, held_out, defaults)
    ev = evaluate_frames(m, frames)
    untrained = m.info.untrained_note(zip(ev.frames.fidelity, ev.frames.spin, strict=True))
    if untrained:  # a row of the table then measures a context the model never learned
        err_console.print(f"warning: {untrained}", highlight=False)
    df = summary(ev)
    out = Table(
        title=f"{m.info.name} {m.info.version}: {len(frames)} frames",
        caption="element rows: energy MAE over the frames that contain the element, force MAE "
        "over its atoms",
    )
    for col in ("group", "value", "frames", "energy meV/atom", "force eV/A"):
        out.add_column(col, justify="right" if col not in ("group", "value") else "left")
    for r in df.itertuples():
        out.add_row(
            r.group,
            str(r.value),
            str(r.frames),
            f"{r.energy_mae_meV_atom:.1f}",
            f"{r.force_mae_eV_A:.3f}",
        )
    console.print(out)
    if table:
        with atomic_path(table) as tmp:  # which weights: a saved table outlives the run
            df.assign(model=m.info.name, model_version=m.info.version).to_csv(tmp, index=False)
        console.print(f"table: {table}")
    console.print(f"parity plot: {parity_plot(ev, plot, title=f'{m.info.name} {m.info.version}')}")
