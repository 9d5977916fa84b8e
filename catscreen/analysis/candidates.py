"""Candidate surfaces (bulk + facet + termination): canonical names and parsing of user spellings.

Canonical name: `Pt(111)` for termination 0, `Pt(111)t1` otherwise; indices are written
compactly when each is a single digit (`Pt(1-10)` for (1,-1,0)) and comma-separated otherwise
(`Pt(1,0,12)`). Accepted spellings of the same candidate: `Pt(111)`, `Pt(1,1,1)`, `Pt (1 1 1)`,
`Pt 1,1,1`, `Pt 1,1,1 t0`, `Pt(111)t0`, and the hcp Miller-Bravais form `Ru(0001)` /
`Ru(10-10)` (hkil with i = -(h+k)), which becomes the three-index (hkl) that pymatgen uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from catscreen.build.slabs import parse_miller
from catscreen.errors import CatscreenError

_NAME = re.compile(
    r"^\s*(?P<bulk>[^\s(]+)\s*(?:\((?P<paren>[^)]*)\)|(?P<bare>[-\d, ]+?))\s*(?:t(?P<term>\d+))?\s*$"
)


@dataclass(frozen=True, order=True)
class Candidate:
    bulk: str
    miller: tuple[int, ...]
    termination: int = 0

    @property
    def name(self) -> str:
        if all(-9 <= m <= 9 for m in self.miller):
            indices = "".join(str(m) for m in self.miller)
        else:
            indices = ",".join(str(m) for m in self.miller)
        suffix = f"t{self.termination}" if self.termination else ""
        return f"{self.bulk}({indices}){suffix}"


def parse_candidate(text: str) -> Candidate:
    """A user's spelling of a candidate -> Candidate (termination 0 unless `tN` is given)."""
    match = _NAME.match(text)
    if not match:
        raise CatscreenError(
            f"cannot read candidate {text!r}; expected e.g. Pt(111), Ru(0001) or 'Pt 1,1,1 t0'"
        )
    indices = match.group("paren") if match.group("paren") is not None else match.group("bare")
    term = int(match.group("term")) if match.group("term") else 0
    return Candidate(match.group("bulk"), parse_miller(indices), term)


def candidate_of(bulk: str, miller: str, termination: object) -> Candidate:
    """The candidate of a results row (`miller` as 'h,k,l')."""
    try:
        term = int(termination)  # type: ignore[call-overload]
    except (TypeError, ValueError) as exc:
        raise CatscreenError(
            f"row of {bulk} ({miller}) has termination {termination!r}; expected an integer"
        ) from exc
    return Candidate(str(bulk), parse_miller(str(miller)), term)


def find_candidate(text: str, known: list[Candidate]) -> Candidate:
    """Match a user's spelling against the candidates in this run (bulk case-insensitive)."""
    wanted = parse_candidate(text)
    for cand in known:
        if (
            cand.bulk.lower() == wanted.bulk.lower()
            and cand.miller == wanted.miller
            and cand.termination == wanted.termination
        ):
            return cand
    names = ", ".join(sorted(c.name for c in known)) or "none"
    raise CatscreenError(f"reference candidate {text!r} is not in this run; candidates: {names}")
