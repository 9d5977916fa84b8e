"""The one error type users see: the CLI prints its message on one line and exits 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class CatscreenError(Exception):
    """A problem with the user's input or environment, explained in one line."""

    exit_code = 2


def first_line(exc: BaseException) -> str:
    """An exception as one line: its message's first line, or its type when it has no message
    (a bare `AssertionError` or `MemoryError()`)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def unreadable(exc: BaseException) -> str:
    """Why ASE could not read a structure file, as one line: its symbol lookup fails with a
    bare KeyError('Qq'), which alone reads as "'Qq'"."""
    if isinstance(exc, KeyError) and exc.args:
        return f"unknown element symbol {exc.args[0]!r}?"
    if type(exc).__name__ == "UnknownFileTypeError":  # its message is the bare suffix
        if first_line(exc) == "Could not guess file type":  # no suffix, no telling content
            return "cannot tell its format: name it *.cif, POSCAR*, *.vasp or *.extxyz"
        return f"unknown file format {first_line(exc)!r} (CIF, POSCAR, extxyz, ...)"
    if isinstance(exc, UnicodeDecodeError):  # its message is a byte offset
        return "not a text file (binary, or not UTF-8)"
    if not str(exc).strip():  # a parser's bare assert: "AssertionError" alone says nothing
        return f"not a structure file ASE can parse ({type(exc).__name__})"
    return first_line(exc)


def described(exc: BaseException) -> str:
    """'Type: first line' (or just 'Type'): for errors recorded in results, where the type of
    an unexpected failure (SCF, memory, NaN) is worth keeping."""
    name = type(exc).__name__
    line = first_line(exc)
    return name if line == name else f"{name}: {line}"


def closest(name: str, choices: Iterable[str]) -> str | None:
    """The choice a near miss such as `pt` or `Pt111` meant; None when nothing is close."""
    folded = {c.lower(): c for c in choices}
    if name.lower() in folded:
        return folded[name.lower()]
    close = difflib.get_close_matches(name.lower(), list(folded), n=1, cutoff=0.6)
    return folded[close[0]] if close else None


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' (did you mean 'Pt'?)' for a near miss; '' when nothing is close."""
    match = closest(name, choices)
    return "" if match is None else f" (did you mean {match!r}?)"
