"""`write_report`: one HTML page that opens offline (figures embedded as base64) plus the PNGs.

Everything is read from the campaign folder, so a report can be made on another machine from
the uploaded CI artifact.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from catscreen.analysis.energies import structure_cell
from catscreen.campaign import figures
from catscreen.campaign.leaderboard import descriptor_formula, descriptor_targets
from catscreen.campaign.recipe import Recipe
from catscreen.campaign.runner import (
    RANK_DIR,
    campaign_warnings,
    load_leaderboard,
    ranked_model_version,
    read_campaign_recipe,
)
from catscreen.campaign.state import STAGES, require_ranked
from catscreen.campaign.summary import (
    context_line,
    descriptor_frame,
    flags_frame,
    uncertainty_line,
)
from catscreen.errors import CatscreenError, first_line
from catscreen.io import atomic_path, read_parquet
from catscreen.model.api import magnetic_elements

CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f3f5f7; } td:nth-child(2), td:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; } .muted { color: #666; font-size: 0.9em; }
.warn { background: #fff4e5; border-left: 4px solid #f0a030; padding: 4px 8px; }
"""


@dataclass
class Report:
    html: Path
    figures: list[Path]


def spin_reasons(configs: pd.DataFrame, board: pd.DataFrame, spin_mode: str) -> pd.DataFrame:
    """Per candidate: the spin context used and why (auto: which magnetic element, if any)."""
    magnetic = magnetic_elements()
    first = configs.drop_duplicates("candidate").set_index("candidate")
    rows = []
    for cand, spin in zip(board["candidate"], board["spin"], strict=True):
        if spin_mode != "auto":
            why = f"forced by the recipe (spin: {spin_mode})"
        elif cand in first.index:
            atoms = structure_cell(
                first.at[cand, "final_structure"], "final_structure", first.at[cand, "config_id"]
            )
            surface = {
                s
                for s, t in zip(atoms.get_chemical_symbols(), atoms.get_tags(), strict=True)
                if t != 2
            }
            found = sorted(surface & magnetic)
            why = (
                f"auto: {', '.join(found)} magnetic"
                if found
                else f"auto: no magnetic element ({', '.join(sorted(surface))})"
            )
        else:
            why = "auto: no valid placement to inspect"
        rows.append({"candidate": cand, "spin": spin or "n/a", "why": why})
    return pd.DataFrame(rows)


def _img(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (
        f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption class='muted'>{html.escape(caption)}</figcaption></figure>"
    )


def _table(df: pd.DataFrame) -> str:
    return df.to_html(
        index=False, float_format=lambda x: f"{x:.3f}", na_rep="n/a", border=0, escape=True
    )


def _header(recipe: Recipe, version: str = "") -> str:
    items = [
        f"<li><code>{html.escape(d.name)}</code> = {html.escape(descriptor_formula(recipe, d))}; "
        f"target {t.value:.2f} ± {t.tolerance:.2f} eV"
        + (
            f" <span class='muted'>({html.escape(d.correction_source)})</span>"
            if d.correction_source
            else ""
        )
        + "</li>"
        for d, t in zip(
            recipe.ranking.descriptors, descriptor_targets(recipe).values(), strict=True
        )
    ]
    ref = recipe.ranking.reference
    ref_line = (
        f"<p>Reference surface {html.escape(ref.candidate)}"
        + (f" <span class='muted'>({html.escape(ref.source)})</span>" if ref.source else "")
        + "</p>"
        if ref
        else ""
    )
    return (
        f"<h1>catscreen campaign <code>{html.escape(recipe.name)}</code></h1>"
        f"<p>{html.escape(recipe.description)}</p>"
        f"<p class='muted'>Model <code>{html.escape(recipe.model.name)}</code>"
        + (f" (version <code>{html.escape(version)}</code>)" if version else "")
        + ", spin "
        f"<code>{recipe.model.spin}</code>; energies in eV. Distance = sqrt(sum over descriptors of "
        f"((value - target) / tolerance)^2): lower is better.</p>"
        f"<ul>{''.join(items)}</ul>{ref_line}"
    )


def write_report(root: Path, out: Path | None = None) -> Report:
    """DIR/report/index.html and its PNGs, from a campaign folder whose rank stage is done."""
    root = root.resolve()
    state = require_ranked(root)
    recipe = read_campaign_recipe(root, ranked=True)
    out = (out or root / "report").resolve()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file of that name, no permission
        raise CatscreenError(f"cannot write the report to {out}: {first_line(exc)}") from exc
    board = load_leaderboard(root, recipe)
    if board.empty:  # rank refuses to rank nothing: only a damaged table gets here
        raise CatscreenError(f"{root / RANK_DIR / 'ranked.parquet'} has no candidates to report")
    targets = descriptor_targets(recipe)
    configs = read_parquet(
        root / RANK_DIR / "adsorption.parquet",
        required=("config_id", "candidate", "adsorbate", "site_type", "e_ads", "valid",
                  "final_structure"),
    )  # fmt: skip
    flagged = read_parquet(root / RANK_DIR / "flagged.parquet")
    valid = configs[configs["valid"]]
    spins = spin_reasons(configs, board, recipe.model.spin)
    context = context_line(board)  # candidates compared with the reference relaxed again

    figs = [
        (
            figures.plot_descriptor_ranking(board, recipe, targets, out / "descriptor_ranking.png"),
            "Descriptor value per candidate in rank order; the shaded band is the target ± tolerance.",
        ),
        (
            figures.plot_top_sites(
                board, recipe, valid.set_index("config_id"), out / "top_sites.png"
            ),
            "Relaxed best placement on each top candidate, seen from above; the star marks the adsorbate's binding atom.",
        ),
        (
            figures.plot_energy_spread(configs, board, recipe, out / "energy_spread.png"),
            "Adsorption energy of every placement; grey crosses were excluded (not converged, or anomalous: desorbed, dissociated, ...); the black bar is each candidate's minimum, from which its descriptor is computed (less the reference's minimum, or plus the recipe's correction)."
            + (
                " The reference relaxed again in another spin context (see above) is not drawn: those candidates' descriptors are against its minima there."
                if context
                else ""
            ),
        ),
        (
            figures.plot_spin(spins, out / "spin.png"),
            "Spin context per candidate: spin-polarised (on) when the surface holds a magnetic element under spin: auto.",
        ),
    ]
    stages = pd.DataFrame(
        [
            {
                "stage": name,
                "status": rec.status,
                "seconds": rec.seconds,
                "counts": ", ".join(f"{k} {v}" for k, v in rec.counts.items()),
            }
            for name in STAGES
            if (rec := state.stages.get(name)) is not None
        ]
    )
    warnings = "".join(
        f"<p class='warn'><b>Warning:</b> {html.escape(w)}</p>"
        for w in campaign_warnings(root, board, recipe)
    )
    body = [
        _header(recipe, ranked_model_version(root)),  # as summary.md names it
        "".join(
            f"<p>{html.escape(line)}</p>" for line in context + uncertainty_line(recipe, board)
        ),
        warnings,
        f"<h2>Top {recipe.ranking.top_n} candidates</h2>",
        _table(descriptor_frame(board, recipe, recipe.ranking.top_n)),
        "<h2>Descriptor ranking</h2>",
        _img(*figs[0]),
        "<h2>Best sites of the top candidates</h2>",
        _img(*figs[1]),
        "<h2>Energy spread across placements</h2>",
        _img(*figs[2]),
        "<h2>Spin decision per candidate</h2>",
        _img(*figs[3]),
        _table(spins),
        f"<h2>DFT validation list ({len(flagged)} placements)</h2>",
        "<p class='muted'>Why each placement deserves a DFT check; inputs are under rank/dft/ when the "
        "recipe asks for them.</p>",
        _table(flags_frame(flagged, board, {d.adsorbate for d in recipe.ranking.descriptors}))
        if len(flagged)
        else "<p>Nothing flagged.</p>",
        f"<h2>All candidates ({len(board)})</h2>",
        _table(descriptor_frame(board, recipe)),
        "<h2>Run</h2>",
        _table(stages),
    ]
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>catscreen: {html.escape(recipe.name)}</title><style>{CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )
    index = out / "index.html"
    with atomic_path(index) as tmp:
        tmp.write_text(page, encoding="utf-8")  # as its meta charset says, whatever the locale
    return Report(html=index, figures=[f for f, _ in figs])
