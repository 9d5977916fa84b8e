"""What every subcommand shares: consoles and the one-line error contract."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from catscreen.errors import CatscreenError

# Text is printed as written: a path holding brackets (camp[draft]) was read as markup,
# printed as camp/, or raised MarkupError after a finished run; a line is one line in a log
# (wrapped at 80 columns, `grep '^warning'` found fragments). Styled text says so (`markup=True`).
console = Console(markup=False, soft_wrap=True)
err_console = Console(stderr=True, markup=False, soft_wrap=True)

P = ParamSpec("P")
R = TypeVar("R")


def cli_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn a CatscreenError into `error: <message>` on stderr and exit code 2, Ctrl-C into one
    line and 130 (the shell's code for SIGINT)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except CatscreenError as exc:
            # escaped: a message holding brackets ('catscreen[dft]', a path) is not markup
            err_console.print(
                f"[bold red]error:[/] {escape(str(exc))}", highlight=False, markup=True
            )
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:  # Ctrl-C ended relax, campaign and train silently (exit 130)
            err_console.print(
                "[bold red]interrupted:[/] no file is left half-written; relax, campaign run, "
                "train, data generate and data label --dft go on from where they stopped when "
                "rerun",
                highlight=False,
                markup=True,
            )
            raise typer.Exit(130) from None

    return wrapper


def split_csv(value: str | None) -> list[str]:
    """`"O, CO,NH2"` -> `["O", "CO", "NH2"]`; empty or None -> []."""
    if not value:
        return []
    return [item.strip() for item in value.split(",") if item.strip()]


def output_path(text: str) -> Path:
    """Where to write; given empty (`--out "$DIR"` with DIR unset) it was the working folder,
    and the outputs landed among whatever was there."""
    if not str(text).strip():
        raise typer.BadParameter("is empty (an unset variable?): give a path")
    return Path(text)


def output_option(default: Any, *decls: str, help: str) -> Any:  # noqa: A002 (Typer's name)
    """An option naming where to write (`output_path`)."""
    return typer.Option(default, *decls, help=help, parser=output_path, metavar="<path>")
