"""Where catscreen's bundled data lives, in a source checkout and in an installed wheel."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from catscreen.errors import CatscreenError


@cache
def data_dir() -> Path:
    """The wheel maps the repository's `data/` to `catscreen/_data`; a checkout uses `data/`."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_data", here.parent / "data"):
        if candidate.is_dir():
            return candidate
    raise CatscreenError("catscreen's data folder is missing: reinstall the package")


def data_path(*parts: str) -> Path:
    path = data_dir().joinpath(*parts)
    if not path.exists():
        raise CatscreenError(f"bundled data file not found: {'/'.join(parts)}")
    return path


@cache
def recipes_dir() -> Path | None:
    """The shipped recipes: catscreen/_data/recipes in a wheel, `recipes/` in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_data" / "recipes", here.parent / "recipes"):
        if candidate.is_dir():
            return candidate
    return None
