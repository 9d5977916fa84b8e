"""File I/O shared by every stage: atomic writes, checked reads, structures as extxyz text.

Every stage reads files and writes files; a killed process must never leave a half-written
table behind, so every write goes to a temporary file in the same folder and is renamed.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from ase import Atoms
from ase.io import read, write
from ase.io.extxyz import key_val_str_to_dict

from catscreen.errors import CatscreenError, first_line, unreadable

METADATA_KEY = b"catscreen"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a key given twice: YAML keeps the last one silently (a
    training config's second `max_steps` won)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`; later keys override
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):  # PyYAML's own check names it
                continue
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def yaml_error(path: str | os.PathLike[str], exc: yaml.YAMLError) -> CatscreenError:
    """`FILE:LINE: invalid YAML: problem`, one line (PyYAML's own message runs to 8 lines with
    a drawing of the place)."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = f":{mark.line + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or first_line(exc)
    return CatscreenError(f"{path}{line}: invalid YAML: {problem}")


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """A YAML file's data (safe, duplicate keys refused); errors are one line."""
    try:
        return yaml.load(Path(path).read_text(), Loader=UniqueKeyLoader)  # a SafeLoader
    except yaml.YAMLError as exc:
        raise yaml_error(path, exc) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CatscreenError(f"cannot read {path}: {first_line(exc)}") from exc


def is_same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Both exist and are one file (a symlink followed): an output that would replace an
    input (`data label --out` its input, `evaluate --table` its data)."""
    return Path(a).exists() and Path(b).exists() and Path(a).samefile(b)


def check_writable(path: str | os.PathLike[str]) -> None:
    """Before work whose result would be lost at the end: `path` can be written where it is
    (a scratch file in its nearest existing folder, removed at once; no folder is made)."""
    target = Path(path).absolute()
    folder = next(p for p in target.parents if p.exists())
    try:
        if not folder.is_dir():
            raise NotADirectoryError(f"{folder} is not a folder")
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise CatscreenError(f"cannot write {path}: {first_line(exc)}") from exc


STALE_AFTER = 600.0  # s: a temporary this old is no running write's (theirs take seconds)


def _remove_stale(target: Path, folder: bool) -> None:
    """Temporaries of `target` left by a killed write (SIGKILL skips every cleanup): piled up
    beside the tables, and a partial DFT set beside its folder. Only names mkstemp/mkdtemp
    make for this target, and only old ones: a concurrent writer's are fresh."""
    own = re.compile(rf"\.{re.escape(target.name)}\.[a-z0-9_]{{8}}" + ("" if folder else r"\.tmp"))
    cutoff = time.time() - STALE_AFTER
    try:
        entries = list(target.parent.iterdir())
    except OSError:
        return
    for entry in entries:
        try:
            if own.fullmatch(entry.name) and entry.lstat().st_mtime < cutoff:
                if folder and entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                elif not folder and entry.is_file():
                    entry.unlink()
        except OSError:
            continue  # gone already, or not ours to remove: the write goes on


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it over `path` only on success.

    A failed write (disk full, quota, permissions) is one clear error and leaves `path` as it was.
    """
    target = Path(path)
    tmp_path: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(target, folder=False)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(tmp_path, target)
    except OSError as exc:
        kept = "; the previous version is unchanged" if target.exists() else ""
        raise CatscreenError(f"cannot write {target}: {first_line(exc)}{kept}") from exc
    finally:
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()


@contextmanager
def atomic_folder(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary folder next to `path` (absent or an empty folder); rename it to `path`
    only when the block succeeds, so a reader sees all of it or none."""
    target = Path(path)
    tmp_dir: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(target, folder=True)
        tmp_dir = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        yield tmp_dir
        os.chmod(tmp_dir, 0o777 & ~_umask())  # mkdtemp makes 0700; give the usual mode
        if target.is_dir():
            target.rmdir()  # empty, or this fails and says so
        os.replace(tmp_dir, target)
    except OSError as exc:
        raise CatscreenError(f"cannot write {target}: {first_line(exc)}") from exc
    finally:
        if tmp_dir is not None and tmp_dir.exists():
            shutil.rmtree(tmp_dir)


def write_parquet(
    df: pd.DataFrame, path: str | os.PathLike[str], metadata: dict[str, Any] | None = None
) -> None:
    """Write a table atomically; `metadata` (JSON-able) is stored in the parquet schema."""
    with atomic_path(path) as tmp:
        pq.write_table(parquet_table(df, metadata), tmp)


def parquet_table(df: pd.DataFrame, metadata: dict[str, Any] | None = None) -> pa.Table:
    table = pa.Table.from_pandas(df, preserve_index=False)
    if metadata is not None:
        meta = dict(table.schema.metadata or {})
        meta[METADATA_KEY] = json.dumps(metadata, default=str).encode()
        table = table.replace_schema_metadata(meta)
    return table


def read_parquet(
    path: str | os.PathLike[str],
    required: Iterable[str] = (),
    columns: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Read a catscreen table (`columns`: only those of them it has), turning a missing,
    corrupt or incomplete file into one clear line."""
    p = Path(path)
    if not p.exists():
        raise CatscreenError(f"file not found: {p}")
    if p.is_dir():  # pyarrow would read every parquet below it as one table
        raise CatscreenError(f"{p} is a folder; give the parquet file in it")
    try:
        names = pq.read_schema(p).names
        missing = [c for c in required if c not in names]
        if not missing:
            wanted = None if columns is None else [c for c in columns if c in names]
            df = pq.read_table(p, columns=wanted).to_pandas()
            if any(n is not None for n in df.index.names):  # pandas' set_index(...).to_parquet
                df = df.reset_index()
    except Exception as exc:  # pyarrow raises several types for damaged files
        raise CatscreenError(f"cannot read {p} as parquet: {first_line(exc)}") from exc
    if missing:
        raise CatscreenError(f"{p} lacks required column(s): {', '.join(missing)}")
    return df


def read_parquet_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The catscreen metadata stored by `write_parquet` (empty if none)."""
    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception as exc:
        raise CatscreenError(f"cannot read {path} as parquet: {first_line(exc)}") from exc
    raw = meta.get(METADATA_KEY)
    return json.loads(raw) if raw else {}


def atoms_to_text(atoms: Atoms) -> str:
    """One structure as extxyz text (tags, constraints and info kept), for a parquet cell."""
    buf = io.StringIO()
    write(buf, atoms, format="extxyz")
    return buf.getvalue()


def atoms_from_text(text: str) -> Atoms:
    return read(io.StringIO(text), format="extxyz")


# One key=value of an extxyz comment line: "double" (with \" and \\ escapes), 'single',
# {braced} or [bracketed] values are consumed whole, so a key=value inside one is not a key.
_EXTXYZ_PAIR = re.compile(
    r"""([^\s=]+)=(?:"((?:[^"\\]|\\.)*)"|'([^']*)'|\{([^}]*)\}|\[([^\]]*)\]|(\S*))"""
)


def text_keeping_parser(text_keys: Collection[str]) -> Callable[[str], dict[str, Any]]:
    """An extxyz comment-line parser that keeps `text_keys` as written: ASE's turns `007` into
    7, `F` into False and `1,1,1` into an array, so a bulk named 007 came back as 7."""
    keys = frozenset(text_keys)

    def parse(line: str) -> dict[str, Any]:
        info = key_val_str_to_dict(line)
        if keys.isdisjoint(info):
            return info
        for match in _EXTXYZ_PAIR.finditer(line):
            key, double, *others = match.groups()
            if key in keys:
                text = re.sub(r"\\(.)", r"\1", double) if double is not None else None
                info[key] = text if text is not None else next(v for v in others if v is not None)
        return info

    return parse


def read_structures(path: str | os.PathLike[str], text_keys: Collection[str] = ()) -> list[Atoms]:
    """Every frame of an extxyz file; the info keys `text_keys` stay text."""
    p = Path(path)
    if not p.exists():
        raise CatscreenError(f"file not found: {p}")
    try:
        images = read(
            p, index=":", format="extxyz", properties_parser=text_keeping_parser(text_keys)
        )
    except Exception as exc:
        raise CatscreenError(f"cannot read {p} as extxyz: {unreadable(exc)}") from exc
    return list(images)
