"""`catscreen campaign run|status|baseline`: the whole chain from a recipe, resumable, CI-aware."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from catscreen.campaign.baseline import (
    DEFAULT_TOLERANCE,
    make_baseline,
    read_baseline,
    write_baseline,
)
from catscreen.campaign.runner import (
    LEADERBOARD,
    SUMMARY,
    RunOptions,
    campaign_warnings,
    load_leaderboard,
    ranked_model_version,
    read_campaign_recipe,
    run_campaign,
)
from catscreen.campaign.state import STAGES, intact, require_ranked, require_state
from catscreen.campaign.summary import descriptor_frame
from catscreen.cli.common import cli_errors, console, err_console, output_option
from catscreen.errors import CatscreenError

app = typer.Typer(
    help=(
        "Run a screening campaign from a recipe (recipes/*.yaml): enumerate -> relax -> rank -> "
        "DFT flags, each stage's files kept in one folder, resumable."
    ),
    no_args_is_help=True,
)


def _log(message: str) -> None:
    err_console.print(f"[dim]campaign[/] {escape(message)}", highlight=False, markup=True)


def _top_table(title: str, frame) -> Table:  # noqa: ANN001 - a DataFrame
    table = Table(title=title)
    for col in frame.columns:
        table.add_column(str(col), justify="left" if col == "candidate" else "right")
    for row in frame.itertuples(index=False):
        table.add_row(
            *(("-" if v != v else f"{v:.3f}") if isinstance(v, float) else str(v) for v in row)
        )
    return table


@app.command("run")
@cli_errors
def run_command(
    recipe: Path = typer.Argument(
        ...,
        help="Recipe YAML, e.g. recipes/quickstart.yaml, or a shipped recipe's name: quickstart.",
    ),
    out: Path = output_option(
        ..., "--out", "-o", help="Campaign folder (created; reused to resume)."
    ),
    executor: str | None = typer.Option(None, help="local | dask (overrides the recipe)."),
    workers: int | None = typer.Option(
        None,
        min=1,
        help="Dask LocalCluster workers, with the dask executor (overrides relax.workers; "
        "default 2).",
    ),
    scheduler: str | None = typer.Option(
        None,
        help="Existing Dask scheduler (tcp://host:8786) for the relax stage, with the dask "
        "executor; its workers need catscreen and the model.",
    ),
    ci: bool = typer.Option(
        False,
        "--ci",
        help="CI mode: Markdown summary to $GITHUB_STEP_SUMMARY; exit 1 if the baseline check fails.",
    ),
    baseline: Path | None = typer.Option(
        None,
        help="Baseline JSON to compare the top candidates with, or a shipped recipe's name "
        "(quickstart).",
    ),
    progress: bool = typer.Option(True, help="Show the relaxation progress bar."),
) -> None:
    """Run or resume a campaign: stages already done with the same recipe are skipped.

    OUT holds recipe.yaml (the copy run), campaign.json (each stage's state), enumerate/
    (configs.parquet and .extxyz), results.parquet (relax), rank/ (the rank tables and DFT
    inputs), leaderboard.csv and summary.md; `catscreen report OUT` adds report/. The recipe's
    keys are listed by `catscreen campaign keys` and shown in the commented recipes shipped in
    recipes/ (quickstart.yaml first).
    """
    if executor is not None and executor not in ("local", "dask"):
        raise CatscreenError(f"unknown --executor {executor!r}; expected local or dask")
    options = RunOptions(
        executor=executor,
        workers=workers,
        scheduler=scheduler,
        ci=ci,
        baseline=baseline,
        progress=progress and not ci,
    )
    outcome = run_campaign(recipe, out, options, _log)
    recipe_obj = read_campaign_recipe(outcome.root)
    n = recipe_obj.ranking.top_n
    board = outcome.board
    shows_reference = "is_reference" in board.columns and board["is_reference"].head(n).any()
    marked = " (* the reference)" if shows_reference else ""
    console.print(
        _top_table(
            f"top {min(n, len(board))} of {len(board)} candidates{marked}",  # not 3 of 2
            descriptor_frame(board, recipe_obj, n, mark="*"),
        )
    )
    ran = ", ".join(outcome.ran) or "nothing"
    skipped = ", ".join(outcome.skipped) or "nothing"
    err_console.print(f"ran: {ran}; skipped (up to date): {skipped}", highlight=False)
    written = outcome.root / SUMMARY
    also = f" (also in {outcome.summary_path})" if outcome.summary_path != written else ""
    err_console.print(
        f"summary: {_as_given(written)}{also}; "
        f"leaderboard: {_as_given(outcome.root / 'leaderboard.csv')}",
        highlight=False,
    )
    cmp = outcome.comparison
    if cmp is not None:
        for line in cmp.failures:
            err_console.print(
                f"[bold red]baseline:[/] {escape(line)}", highlight=False, markup=True
            )
        for line in cmp.notes:
            err_console.print(f"baseline: {line}", highlight=False)
        if cmp.ok:
            err_console.print(
                f"[green]baseline check passed[/] ({escape(str(baseline))})",
                highlight=False,
                markup=True,
            )
        else:
            err_console.print(
                f"[bold red]baseline check failed[/] ({escape(str(baseline))}): "
                f"{len(cmp.failures)} difference(s)",
                markup=True,
            )
            if ci:
                raise typer.Exit(1)


@app.command("keys")
@cli_errors
def keys_command() -> None:
    """Every key a recipe takes: type, default and meaning (`a[].b`: b of each item of a)."""
    from catscreen.campaign.recipe import recipe_keys

    table = Table(title="recipe keys (recipes/*.yaml are examples)")
    for col in ("key", "type", "default", "meaning"):
        table.add_column(col, overflow="fold")
    for row in recipe_keys():
        table.add_row(*row)
    console.print(table)


@app.command("status")
@cli_errors
def status_command(root: Path = typer.Argument(..., help="Campaign folder.")) -> None:
    """What is done in a campaign folder: stage, status, files, counts, time."""
    state = require_state(root)
    table = Table(title=f"campaign '{state.recipe}' in {root} (times in UTC)")
    for col in ("stage", "status", "time (s)", "finished", "counts", "files"):
        # wrap between items and fold long words, never cut: no "…" on a narrow terminal
        table.add_column(
            col,
            overflow="fold",
            justify="right" if col == "time (s)" else "left",
        )
    for name in STAGES:
        rec = state.stages.get(name)
        if rec is None:
            table.add_row(name, "[dim]not started[/]", "", "", "", "")
            continue
        damaged = [f for f in rec.files if not intact(root / f)]
        present = [
            Path(f).name
            + ("" if f not in damaged else " (damaged)" if (root / f).exists() else " (missing)")
            for f in rec.files
        ]
        colour = {"done": "green", "running": "yellow", "failed": "red", "stale": "yellow"}[
            rec.status
        ]
        status = f"[{colour}]{rec.status}[/]" + (f" ({escape(rec.message)})" if rec.message else "")
        if rec.status == "done" and damaged:  # it said "done" over a results file cut off
            status = "[red]damaged[/] (a file it wrote is missing or unreadable since)"
        if rec.killed():  # it said "running" for a run killed long ago
            status = f"[red]killed[/] (pid {rec.pid} is gone; `campaign run` resumes it)"
        table.add_row(
            name,
            Text.from_markup(status),
            f"{rec.seconds:.1f}" if rec.seconds is not None else "",
            (rec.finished or "")[:19].replace("T", "\n"),
            ", ".join(f"{k} {v}" for k, v in rec.counts.items()),
            ", ".join(present),
        )
    console.print(table)
    rank = state.stages.get("rank")
    unwritten = [n for n in (LEADERBOARD, SUMMARY) if not (root / n).is_file()]
    if rank is not None and rank.status == "done" and unwritten:  # stopped just after rank
        console.print(
            f"{' and '.join(unwritten)} not written since the last rank (the run stopped after "
            "it): `campaign run` writes them without ranking again"
        )


@app.command("baseline")
@cli_errors
def baseline_command(
    root: Path = typer.Argument(..., help="Campaign folder whose rank stage is done."),
    write: Path = output_option(
        ..., "--write", help="Baseline JSON to write (commit it next to the recipe)."
    ),
    tolerance: float = typer.Option(
        DEFAULT_TOLERANCE, help="Allowed descriptor change (eV), positive."
    ),
) -> None:
    """Record the current top candidates and descriptors as the baseline for `run --ci --baseline`."""
    require_ranked(root)
    if not 0 < tolerance < float("inf"):  # inf passed every later run
        raise CatscreenError("--tolerance must be a positive finite number (eV)")
    if write.exists():  # results.parquet given as --write was replaced by JSON, exit 0
        try:
            read_baseline(write)
        except CatscreenError:
            raise CatscreenError(
                f"--write {write} exists and is not a catscreen baseline (left unchanged): "
                "give a new file or an earlier baseline"
            ) from None
    recipe = read_campaign_recipe(root, ranked=True)
    board = load_leaderboard(root, recipe)
    for line in campaign_warnings(root, board, recipe):  # what the baseline is made without
        err_console.print(f"warning: {line}", highlight=False)
    baseline = make_baseline(board, recipe, ranked_model_version(root), tolerance)
    write_baseline(baseline, write)
    names = ", ".join(e.candidate for e in baseline.top)
    err_console.print(
        f"wrote {write}: top {len(baseline.top)} = {names}; tolerance {tolerance} eV",  # not 3 of 2
        highlight=False,
    )


def _as_given(path: Path) -> Path:
    """Relative to the working folder when inside it, as `--out runs/x` was given (the
    campaign resolves its folder to record it)."""
    cwd = Path.cwd()
    return path.relative_to(cwd) if path.is_relative_to(cwd) else path
