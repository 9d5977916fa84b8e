"""Where catscreen's bundled data lives, in a source checkout and in an installed wheel."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from catscreen.errors import CatscreenError

_HERE = Path(__file__).resolve().parent


def _first_dir(*candidates: Path) -> Path | None:
    return next((c for c in candidates if c.is_dir()), None)


@cache
def data_dir() -> Path:
    """The wheel maps the repository's `data/` to `catscreen/_data`; a checkout uses `data/`."""
    found = _first_dir(_HERE / "_data", _HERE.parent / "data")
    if found is None:
        raise CatscreenError("catscreen's data folder is missing: reinstall the package")
    return found


def data_path(*parts: str) -> Path:
    path = data_dir().joinpath(*parts)
    if not path.exists():
        raise CatscreenError(f"bundled data file not found: {'/'.join(parts)}")
    return path


@cache
def recipes_dir() -> Path | None:
    """The shipped recipes: catscreen/_data/recipes in a wheel, `recipes/` in a checkout."""
    return _first_dir(_HERE / "_data" / "recipes", _HERE.parent / "recipes")


def find_shipped(path: str | Path, kind: str, folder: Path | None, suffix: str) -> Path:
    """A file, or the bare name of one shipped in `folder` (`quickstart` ->
    folder/quickstart<suffix>), so an installed wheel finds its recipes and baselines."""
    p = Path(path)
    if p.is_file():
        return p
    names = sorted(f.stem for f in folder.glob(f"*{suffix}")) if folder else []
    if p.stem in names and p.parent == Path(".") and p.suffix in ("", suffix):
        return folder / f"{p.stem}{suffix}"  # type: ignore[operator]
    hint = f" (shipped {kind}s: {', '.join(names)})" if names else ""
    raise CatscreenError(f"{kind} not found: {p}{hint}")
