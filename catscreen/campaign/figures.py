"""The report's figures, drawn for a reader who has not seen the data: every axis has a unit,
every panel a title that says what it shows, and colours carry a legend."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from ase import Atoms  # noqa: E402
from ase.data import atomic_numbers, covalent_radii  # noqa: E402
from ase.data.colors import jmol_colors  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Polygon, Rectangle  # noqa: E402

from catscreen.analysis.energies import structure_cell  # noqa: E402
from catscreen.build.sites import SITE_TYPES  # noqa: E402
from catscreen.campaign.leaderboard import descriptor_formula  # noqa: E402
from catscreen.campaign.recipe import Recipe, Target  # noqa: E402
from catscreen.errors import CatscreenError, first_line  # noqa: E402
from catscreen.io import atomic_path  # noqa: E402

MAX_BARS = 25  # more bars than this stop being readable; the HTML table has the rest
ON_TARGET = "#2a9d8f"
OFF_TARGET = "#b0b7bf"


def _save(fig: plt.Figure, path: Path) -> Path:
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    except OSError as exc:
        raise CatscreenError(f"cannot write {path}: {first_line(exc)}") from exc
    finally:
        plt.close(fig)
    return path


def site_words(placed: str, final: str, moved: bool = True) -> str:
    """' on fcc', or ' placed ontop, ends hollow' where it moved: the picture is the relaxed
    structure, so a title naming only where it started would contradict it. The final type
    says 'hollow' for fcc and hcp alike, so one that stayed (`moved` False: the same site
    atoms) keeps its placed name (every O that stayed on Pt(111) read "placed fcc, ends
    hollow")."""
    if final and final != placed and moved:
        return f" placed {placed}, ends {final}" if placed else f" on {final}"
    return f" on {placed or final}" if placed or final else ""


def plot_descriptor_ranking(
    board: pd.DataFrame, recipe: Recipe, targets: dict[str, Target], path: Path
) -> Path:
    """One dot plot per descriptor, candidates in rank order (best at the top): a dot at the
    value with its ensemble spread, a line to the target, the target band shaded."""
    descs = recipe.ranking.descriptors
    shown = board.head(MAX_BARS)
    height = max(3.4, 1.9 + 0.34 * len(shown))
    fig, axes = plt.subplots(
        1, len(descs), figsize=(4.4 * len(descs) + 1.6, height), sharey=True, squeeze=False
    )
    y = np.arange(len(shown))[::-1]
    refs = shown["is_reference"] if "is_reference" in shown else pd.Series(False, shown.index)
    labels = [
        (f"{r}. " if r >= 1 else "-  ") + _text(c) + (" (ref.)" if is_ref else "")
        for r, c, is_ref in zip(shown["rank"], shown["candidate"], refs, strict=True)
    ]
    for ax, d in zip(axes[0], descs, strict=True):
        t = targets[d.name]
        vals = shown[d.name].to_numpy(dtype=float)
        stds = np.nan_to_num(shown[f"{d.name}_std"].to_numpy(dtype=float))
        ok = np.abs(vals - t.value) <= t.tolerance
        ax.axvspan(t.value - t.tolerance, t.value + t.tolerance, color=ON_TARGET, alpha=0.15, lw=0)
        ax.axvline(t.value, color=ON_TARGET, lw=1.5, ls="--")
        ax.hlines(y, t.value, vals, color="0.75", lw=1, zorder=1)
        colours = [ON_TARGET if o else OFF_TARGET for o in ok]
        ax.errorbar(vals, y, xerr=stds, fmt="none", ecolor="0.3", elinewidth=1, capsize=2, zorder=2)
        ax.scatter(vals, y, c=colours, s=60, edgecolors="0.2", zorder=3)
        for yi, v in zip(y, vals, strict=True):
            if np.isnan(v):
                ax.annotate(
                    "no valid placement",
                    (t.value, yi),
                    xytext=(4, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=8,
                    color="0.4",
                )
            else:
                ax.annotate(
                    f"{v:.2f}",
                    (v, yi),
                    xytext=(0, 7),
                    textcoords="offset points",
                    ha="center",
                    fontsize=8,
                )
        ax.set_title(
            f"{d.name} = {descriptor_formula(recipe, d)}\ntarget {t.value:.2f} ± {t.tolerance:.2f} eV",
            fontsize=10,
        )
        ax.set_xlabel(f"{d.name} (eV)")
        drawn = ~np.isnan(vals)  # with the error bars: FePt's ran past the right edge
        span = np.concatenate(
            [vals[drawn] - stds[drawn], vals[drawn] + stds[drawn], [t.value - t.tolerance],
             [t.value + t.tolerance]]
        )  # fmt: skip
        pad = 0.12 * (span.max() - span.min()) + 0.05
        ax.set_xlim(span.min() - pad, span.max() + pad)
        ax.set_ylim(-0.7, len(shown) - 0.1)  # the top row's value label inside the frame
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(y, labels)
    axes[0][0].set_ylabel("candidate (rank 1 = best)")
    handles = [
        Rectangle((0, 0), 1, 1, color=ON_TARGET, alpha=0.15, label="target ± tolerance"),
        Line2D([], [], marker="o", ls="", mfc=ON_TARGET, mec="0.2", ms=8, label="within tolerance"),
        Line2D([], [], marker="o", ls="", mfc=OFF_TARGET, mec="0.2", ms=8, label="outside"),
        Line2D([], [], color="0.3", marker="|", ls="-", label="ensemble spread"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=4, frameon=False)
    more = f" (top {MAX_BARS} of {len(board)})" if len(board) > MAX_BARS else ""
    fig.suptitle(f"Descriptor ranking, recipe '{recipe.name}'{more}", fontsize=12)
    fig.tight_layout(rect=(0, 0.9 / height, 1, 1))
    return _save(fig, path)


def _draw_surface(ax: plt.Axes, atoms: Atoms, site: tuple[float, float] | None) -> set[str]:
    """Top view: the cell tiled 3x3 for context (faded outside the cell), atoms drawn bottom to
    top, subsurface pale, adsorbate outlined; the site is a star. Returns the elements drawn."""
    cell = atoms.cell.array
    tags = atoms.get_tags() if atoms.has("tags") else np.ones(len(atoms), int)
    pos = atoms.positions
    order = np.argsort(pos[:, 2])
    elements: set[str] = set()
    for i in order:
        z = atoms.numbers[i]
        r = covalent_radii[z] * 0.75
        colour = jmol_colors[z]
        for na in (-1, 0, 1):
            for nb in (-1, 0, 1):
                inside = na == 0 and nb == 0
                if tags[i] == 2 and not inside:
                    continue
                x, y = pos[i, :2] + na * cell[0, :2] + nb * cell[1, :2]
                alpha = (0.35 if tags[i] == 0 else 1.0) * (1.0 if inside else 0.35)
                edge = "black" if tags[i] == 2 else "0.3"
                ax.add_patch(
                    plt.Circle(
                        (x, y),
                        r,
                        fc=colour,
                        ec=edge,
                        lw=1.2 if tags[i] == 2 else 0.4,
                        alpha=alpha,
                        zorder=3 + tags[i],
                    )
                )
        elements.add(atoms.get_chemical_symbols()[i])
    corners = np.array([[0, 0], cell[0, :2], cell[0, :2] + cell[1, :2], cell[1, :2]])
    ax.add_patch(Polygon(corners, closed=True, fill=False, ec="black", lw=1, ls="--", zorder=6))
    if site is not None:
        ax.plot(*site, marker="*", ms=16, mfc="gold", mec="black", zorder=7)
    # a square view around the cell, so every panel's box is one size: a tall bcc(110) cell's
    # box shrank in its row and its axis label ran over the title of the panel below
    centre = (corners.max(axis=0) + corners.min(axis=0)) / 2
    half = 0.75 * float((corners.max(axis=0) - corners.min(axis=0)).max())
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[1] - half, centre[1] + half)
    ax.set_aspect("equal")
    ax.set_xlabel("x (Å)")
    ax.set_ylabel("y (Å)")
    return elements


def _anchor_xy(atoms: Atoms) -> tuple[float, float] | None:
    """Where the adsorbate binds, seen from above: its atom nearest a slab atom (periodic
    images included). Its lowest atom marked the H of OH on Pt(211), 2.4 A from any Pt, not
    the O bonded at 2.05 A."""
    tags = atoms.get_tags()
    ads, slab = np.flatnonzero(tags == 2), np.flatnonzero(tags != 2)
    if not len(ads):
        return None
    if len(slab):
        gaps = [atoms.get_distances(i, slab, mic=True).min() for i in ads]
        i = ads[int(np.argmin(gaps))]
    else:
        i = ads[np.argmin(atoms.positions[ads, 2])]
    return float(atoms.positions[i, 0]), float(atoms.positions[i, 1])


def _text(name: object) -> str:
    """A name as matplotlib should print it: `$` would start maths (Au$x$ came out italic)."""
    return str(name).replace("$", r"\$")


def plot_top_sites(
    board: pd.DataFrame, recipe: Recipe, configs: pd.DataFrame, path: Path, max_panels: int = 6
) -> Path:
    """Each top candidate's best placement for the first descriptor, relaxed, seen from above.

    `configs` is the rank stage's per-configuration table indexed by config_id (it holds
    final_structure).
    """
    d = recipe.ranking.descriptors[0]
    top = board.head(min(recipe.ranking.top_n, max_panels))
    n = max(len(top), 1)
    ncol = min(n, 3)
    nrow = int(np.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.6 * ncol, 3.4 * nrow + 1.0), squeeze=False)
    elements: set[str] = set()
    for ax, (_, row) in zip(axes.flat, top.iterrows(), strict=False):
        cid = row[f"{d.name}_config"]
        if not cid or cid not in configs.index:
            ax.text(
                0.5,
                0.5,
                f"{_text(row['candidate'])}\nno valid {d.adsorbate} placement",
                ha="center",
                va="center",
            )
            ax.set_axis_off()
            continue
        atoms = structure_cell(configs.loc[cid, "final_structure"], "final_structure", cid)
        elements |= _draw_surface(ax, atoms, _anchor_xy(atoms))
        moved = bool(configs.loc[cid, "migrated"]) if "migrated" in configs.columns else True
        where = site_words(row[f"{d.name}_site"], row.get(f"{d.name}_final_site", ""), moved)
        rank = f"#{int(row['rank'])}" if row["rank"] >= 1 else "unranked"
        ax.set_title(
            f"{rank} {_text(row['candidate'])}: {d.adsorbate}{where}\n"
            f"{d.name} = {row[d.name]:.2f} eV",
            fontsize=10,
        )
    for ax in list(axes.flat)[len(top) :]:
        ax.set_axis_off()
    handles = [
        Line2D(
            [], [], marker="o", ls="", mfc=jmol_colors[atomic_numbers[e]], mec="0.3", ms=10, label=e
        )
        for e in sorted(elements)
    ]
    handles.append(
        Line2D([], [], marker="*", ls="", mfc="gold", mec="black", ms=14, label="binding atom")
    )
    handles.append(Line2D([], [], ls="--", color="black", label="surface cell"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    fig.suptitle(
        f"Best {d.adsorbate} site on the top candidates (top view, relaxed; pale = subsurface and periodic images)",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return _save(fig, path)


def plot_energy_spread(
    configs: pd.DataFrame, board: pd.DataFrame, recipe: Recipe, path: Path
) -> Path:
    """Adsorption energy of every placement per candidate: is the minimum well defined, and
    which placements were excluded (not converged, or anomalous: desorbed, dissociated, ...)?

    `configs` is the rank stage's per-configuration table (e_ads, site_type, valid, anomalies).
    """
    ads = list(dict.fromkeys(recipe.adsorbates))
    order = list(board["candidate"].head(MAX_BARS))
    width = max(6.0, 0.55 * len(order) + 2)
    fig, axes = plt.subplots(
        len(ads), 1, figsize=(width, 2.9 * len(ads) + 0.8), squeeze=False, sharex=True
    )
    rng = np.random.default_rng(0)  # jitter only; fixed so the picture is reproducible
    site_types = sorted(configs["site_type"].dropna().unique())
    colours = _site_colours(site_types)
    for ax, a in zip(axes[:, 0], ads, strict=True):
        sub = configs[configs["adsorbate"] == a]
        lo, hi = _valid_range(sub[sub["candidate"].isin(order)])
        off_scale = 0
        for xi, cand in enumerate(order):
            pts = sub[sub["candidate"] == cand]
            jitter = rng.uniform(-0.18, 0.18, len(pts))
            ok = pts["valid"].to_numpy(dtype=bool)
            ax.scatter(
                xi + jitter[ok],
                pts["e_ads"][ok],
                s=24,
                c=[colours[t] for t in pts["site_type"][ok]],
                alpha=0.9,
                edgecolors="none",
                zorder=3,
            )
            excluded = pts["e_ads"][~ok].to_numpy(dtype=float)
            off_scale += int(((excluded < lo) | (excluded > hi)).sum())
            ax.scatter(
                xi + jitter[~ok], np.clip(excluded, lo, hi), s=26, marker="x", c="0.55", zorder=2
            )
            if ok.any():
                low = pts["e_ads"][ok].min()
                ax.hlines(low, xi - 0.3, xi + 0.3, color="black", lw=1.5, zorder=4)
            else:
                ax.text(
                    xi,
                    0.93,
                    "no valid placement",
                    transform=ax.get_xaxis_transform(),
                    ha="center",
                    va="top",
                    fontsize=8,
                    color="0.3",
                )
        ax.set_ylim(lo, hi)
        if off_scale:
            ax.text(
                0.01, 0.02, f"{off_scale} excluded placement(s) off scale, drawn at the edge",
                transform=ax.transAxes, fontsize=8, color="0.3",
            )  # fmt: skip
        ax.set_ylabel(f"E_ads({a}) (eV)")
        ax.set_title(f"{a}: adsorption energy of each placement (black bar = minimum)", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.set_xlim(-0.6, len(order) - 0.4)
    axes[-1, 0].set_xticks(range(len(order)), [_text(c) for c in order], rotation=45, ha="right")
    axes[-1, 0].set_xlabel("candidate surface, in rank order")
    handles = [
        Line2D([], [], marker="o", ls="", ms=7, mfc=colours[t], mec="none", label=f"{t} site")
        for t in site_types
    ]
    handles.append(
        Line2D(
            [],
            [],
            marker="x",
            ls="",
            ms=7,
            color="0.55",
            label="excluded (not converged or anomalous)",
        )
    )
    ncol = max(2, min(len(handles), int(width // 1.9)))
    fig.legend(handles=handles, loc="lower center", ncol=ncol, frameon=False)
    fig.suptitle(
        "Spread of adsorption energies across placements (site = where it was placed)", fontsize=12
    )
    fig.tight_layout(rect=(0, 0.06 + 0.04 * int(np.ceil(len(handles) / ncol)), 1, 1))
    return _save(fig, path)


SITE_COLOURS = dict(zip(SITE_TYPES, plt.cm.tab10.colors[: len(SITE_TYPES)], strict=True))


def _site_colours(site_types: list[str]) -> dict[str, tuple[float, ...]]:
    """One colour per site type in every campaign (ontop was red in one report, purple in
    the next); types outside the six take the palette's later colours."""
    spare = iter(plt.cm.tab10.colors[len(SITE_COLOURS) :] * 10)
    return {t: SITE_COLOURS.get(t) or next(spare) for t in site_types}


def _valid_range(configs: pd.DataFrame) -> tuple[float, float]:
    """The energy axis of one adsorbate's panel: the valid placements with a margin. An excluded
    one can be anywhere (two atoms on one spot: -40 eV) and flattened the panel to a line."""
    e = configs["e_ads"].to_numpy(dtype=float)
    valid = e[configs["valid"].to_numpy(dtype=bool) & np.isfinite(e)]
    e = valid if len(valid) else e[np.isfinite(e)]
    if not len(e):
        return -1.0, 1.0
    margin = max(0.1 * float(e.max() - e.min()), 0.2)
    return float(e.min()) - margin, float(e.max()) + margin


def plot_spin(spins: pd.DataFrame, path: Path) -> Path:
    """The spin context used per candidate and why (`candidate`, `spin`, `why` columns)."""
    shown = spins.head(MAX_BARS)
    fig, ax = plt.subplots(figsize=(6.5, 0.9 + 0.36 * len(shown)))
    colours = {"on": "#e76f51", "off": "#8ecae6"}
    for i, row in enumerate(shown.itertuples(index=False)):
        y = len(shown) - 1 - i
        ax.add_patch(Rectangle((0, y - 0.4), 1, 0.8, color=colours.get(row.spin, "0.8")))
        ax.text(0.5, y, f"spin {row.spin}", ha="center", va="center", fontsize=9)
        ax.text(1.1, y, _text(row.why), ha="left", va="center", fontsize=9)
    ax.set_xlim(0, 3.6)
    ax.set_ylim(-0.6, len(shown) - 0.4)
    ax.set_yticks(range(len(shown))[::-1], [_text(c) for c in shown["candidate"]])
    ax.set_xticks([])
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    ax.set_title(
        "Spin context used for each candidate (on = spin-polarised model context)", fontsize=11
    )
    fig.tight_layout()
    return _save(fig, path)
