"""The enumerate stage of a campaign: recipe -> EnumerateSettings -> configs.parquet/extxyz.

One recipe feature enumerate's API does not have is added here: per-candidate facets (one
enumerate call per group of candidates sharing a facet list; ids do not depend on grouping).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ase import Atoms

from catscreen.build.bulks import load_bulks
from catscreen.build.enumerate import (
    EnumerateSettings,
    enumerate_configurations,
    resolve_adsorbates,
    write_configurations,
)
from catscreen.build.slabs import Bravais, atom_layers
from catscreen.campaign.recipe import Candidate, Miller, Recipe


def _groups(recipe: Recipe) -> dict[tuple[Miller | Bravais, ...], list[Candidate]]:
    groups: dict[tuple[Miller | Bravais, ...], list[Candidate]] = {}
    default = tuple(recipe.facets.miller or ()) if recipe.facets else ()
    for cand in recipe.candidates:
        groups.setdefault(tuple(cand.miller or default), []).append(cand)
    return groups


def enumerate_settings(
    recipe: Recipe, bulks: list[str], miller: tuple[Miller | Bravais, ...]
) -> EnumerateSettings:
    """An empty `miller` means every distinct facet up to the recipe's max_index."""
    return EnumerateSettings(
        bulks=bulks,
        miller=list(miller),
        max_index=(recipe.facets.max_index if recipe.facets else None) or 1,
        vacuum=recipe.slab.vacuum,
        layers=recipe.slab.layers,
        repeat=recipe.slab.repeat,
        max_terminations=recipe.slab.max_terminations,
        # the recipe's defaults stand where layers or repeat do not replace them
        **({} if recipe.slab.layers is not None else {"min_slab_size": recipe.slab.min_slab_size}),
        **({} if recipe.slab.repeat is not None else {"min_ab": recipe.slab.min_ab}),
        adsorbates=list(recipe.adsorbates),
        placement=recipe.placement.mode,
        n_random=recipe.placement.n,
        seed=recipe.placement.seed,
        nudge=recipe.placement.nudge,
        include_clean=True,
    )


def check_recipe_inputs(recipe: Recipe) -> None:
    """The bulks and adsorbates the recipe names exist (library names, readable files): checked
    before the campaign folder is touched, so a typo leaves a finished campaign as it was."""
    for miller, cands in _groups(recipe).items():
        bulks = [str(c.file) if c.file is not None else c.name for c in cands]
        settings = enumerate_settings(recipe, bulks, miller)
        load_bulks(settings.bulks)
        resolve_adsorbates(settings)


def size_note(images: list[Atoms]) -> str | None:
    """Where candidates of one facet got slabs of different thickness or coverage (pymatgen's
    whole oriented cells, each metal's own min_ab repeat), a descriptor compares more than the
    metals: say so, with the settings that make them alike."""
    sizes: dict[str, dict[str, tuple[int, int]]] = {}
    for atoms in images:
        info = atoms.info
        if info["kind"] == "slab" and int(info["termination"]) == 0:
            layer = atom_layers(atoms)
            sizes.setdefault(info["miller"], {})[str(info["bulk"])] = (
                int(layer.max()) + 1,
                int((layer == 0).sum()),
            )
    differ = []
    for miller, by_bulk in sizes.items():
        if len(set(by_bulk.values())) > 1:
            each = "; ".join(
                f"{b}: {n} layers, {top} top atoms" for b, (n, top) in sorted(by_bulk.items())
            )
            differ.append(f"({miller}) {each}")
    if not differ:
        return None
    return (
        "candidates of one facet got slabs of different thickness or coverage (one adsorbate "
        f"per cell): {' | '.join(differ)}. slab.layers gives them one thickness; slab.repeat "
        "one coverage where their primitive cells match, else a min_ab that gives each cell "
        "as many top atoms"
    )


def enumerate_recipe(
    recipe: Recipe, out_dir: Path, log: Callable[[str], None]
) -> tuple[list[Path], dict[str, int]]:
    """Write out_dir/configs.parquet + configs.extxyz; returns the files and counts."""
    images: list[Atoms] = []
    settings = None
    for miller, cands in _groups(recipe).items():
        bulks = [str(c.file) if c.file is not None else c.name for c in cands]
        settings = enumerate_settings(recipe, bulks, miller)
        images += enumerate_configurations(settings, lambda m: log(f"enumerate: note: {m}"))
    assert settings is not None  # a recipe has at least one candidate
    # The manifest metadata records the last group's settings; the recipe copy records them all.
    structures, table = write_configurations(images, out_dir, settings)
    if (note := size_note(images)) is not None:
        log(f"enumerate: note: {note}")
    slabs = sum(1 for a in images if a.info["kind"] == "slab")
    return [table, structures], {
        "configurations": len(images),
        "slabs": slabs,
        "adslabs": len(images) - slabs,
    }
