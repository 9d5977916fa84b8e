"""`catscreen report DIR`: an offline HTML report with PNG figures for a campaign folder."""

from __future__ import annotations

from pathlib import Path

import typer

from catscreen.cli.common import cli_errors, err_console, output_option

EPILOG = (
    "[bold]Examples[/]:\n\n"
    "  catscreen report runs/quickstart\n\n"
    "  catscreen report runs/quickstart --out /tmp/quickstart-report"
)


@cli_errors
def report_command(
    root: Path = typer.Argument(..., help="Campaign folder (from `catscreen campaign run`)."),
    out: Path | None = output_option(
        None, "--out", "-o", help="Report folder (default DIR/report)."
    ),
) -> None:
    """Write DIR/report/index.html (figures embedded, opens offline) and the PNG figures."""
    from catscreen.campaign.report import write_report  # matplotlib: for this command only

    report = write_report(root, out)
    err_console.print(f"wrote {report.html} and {len(report.figures)} figures", highlight=False)
