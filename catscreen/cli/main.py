"""`catscreen`: the root command; each subcommand lives in its own module."""

from __future__ import annotations

import re

import click
import typer
import typer.rich_utils
from typer.core import TyperArgument, TyperOption

from catscreen import code_version


def _readable(text: str | None) -> str | None:
    """`<list[str]>` -> `<str>`: a repeatable option takes one value at a time (Python's type
    name read as a list to type), `<list[Path]>` -> `<path>` as single paths show."""
    if not text:
        return text
    return re.sub(r"<list\[(\w+)\]>", lambda m: f"<{m.group(1).replace('Path', 'path')}>", text)


def _flag_type(self: TyperOption, ctx: object) -> str | None:
    """Rich help shows a value type for every option; an on/off flag takes no value, so none."""
    if self.is_flag and self.metavar is None:
        return None
    return _readable(_option_type(self, ctx))


def _argument_type(self: TyperArgument, ctx: object) -> str | None:
    return _readable(_argument_type_of(self, ctx))


_option_type = TyperOption.display_type_rich
TyperOption.display_type_rich = _flag_type  # type: ignore[method-assign]
_argument_type_of = TyperArgument.display_type_rich
TyperArgument.display_type_rich = _argument_type  # type: ignore[method-assign]


def _one_line_usage_error(exc: click.ClickException) -> None:
    """Click's usage errors (an unknown option, a value out of range) as one line, as
    catscreen's own errors are: Typer drew the usage, a hint and a boxed panel, eight lines
    for `--top-k -1`."""
    if exc.__class__.__name__ == "NoArgsIsHelpError":  # the help was the answer
        return
    ctx = getattr(exc, "ctx", None)
    hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    typer.echo(f"error: {exc.format_message()}{hint}", err=True)


typer.rich_utils.rich_format_error = _one_line_usage_error

app = typer.Typer(
    name="catscreen",
    help=(
        "Screen heterogeneous catalysts with a spin-conditioned equivariant MLIP.\n\n"
        "The chain: enumerate (bulk -> slabs -> sites -> placements) -> relax (jobflow, "
        "local or Dask) -> rank (adsorption energies, anomalies, descriptors, DFT flags) "
        "-> validate (optional GPAW). `catscreen campaign run` runs it all from a recipe.\n\n"
        "Units: eV, Angstrom, eV/Angstrom. Tags: 0 subsurface (fixed), 1 surface, 2 adsorbate."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"catscreen {code_version()}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """catscreen: screen heterogeneous catalysts from the command line."""


# Subcommands register themselves here, in chain order.
from catscreen.cli import enumerate as _enumerate  # noqa: E402

app.command("enumerate")(_enumerate.enumerate_command)

from catscreen.cli import relax as _relax  # noqa: E402

app.command("relax", epilog=_relax.EPILOG)(_relax.relax_command)
from catscreen.cli import rank as _rank  # noqa: E402

app.command("rank", epilog=_rank.EPILOG)(_rank.rank_command)
from catscreen.cli import validate as _validate  # noqa: E402

app.command("validate", epilog=_validate.EPILOG)(_validate.validate_command)

from catscreen.cli.data import data_app  # noqa: E402

app.add_typer(data_app, name="data")

from catscreen.cli import campaign as _campaign  # noqa: E402
from catscreen.cli import report as _report  # noqa: E402

app.add_typer(_campaign.app, name="campaign")
app.command("report", epilog=_report.EPILOG)(_report.report_command)

from catscreen.cli import train as _train  # noqa: E402

app.command("train")(_train.train_command)
app.command("evaluate")(_train.evaluate_command)

from catscreen.cli import model as _model  # noqa: E402

app.add_typer(_model.app, name="model")
