"""Elemental chemical potentials mu_i for adsorption energies, from gas rows or a user file.

A reference scheme maps each element to a linear combination of gas-molecule total energies
(`{"O": {"H2O": 1.0, "H2": -1.0}}`), evaluated on the gas rows of the results in the same
context as the slabs. A user file may instead give fixed potentials (`{"O": -7.2}`), which
catscreen cannot check against the model context, so the metadata records them verbatim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from ase.formula import Formula

from catscreen.build.gas import default_scheme
from catscreen.errors import CatscreenError
from catscreen.io import read_yaml

Scheme = dict[str, dict[str, float]]


@dataclass(frozen=True)
class References:
    """Either a gas-molecule scheme (`scheme`) or fixed potentials (`potentials`, `stds`)."""

    scheme: Scheme = field(default_factory=dict)
    potentials: dict[str, float] = field(default_factory=dict)
    stds: dict[str, float] = field(default_factory=dict)
    source: str = "default"

    def __post_init__(self) -> None:
        # a blank cell reads as NaN, which would pass silently into every E_ads and flag
        bad = [
            f"{el} {m}"
            for el, combo in self.scheme.items()
            for m, c in combo.items()
            if not math.isfinite(c)
        ]
        bad += [el for el, mu in self.potentials.items() if not math.isfinite(mu)]
        bad += [f"{el} std" for el, sd in self.stds.items() if not (math.isfinite(sd) and sd >= 0)]
        if bad:
            raise CatscreenError(f"references {self.source}: no valid number for {', '.join(bad)}")
        for element, combo in self.scheme.items():
            self._check_balance(element, combo)

    def _check_balance(self, element: str, combo: dict[str, float]) -> None:
        """The molecules of an element's combination must add up to one atom of it and none of
        anything else (O = H2O - H2): a forgotten term shifted every E_ads silently."""
        atoms: dict[str, float] = {}
        for molecule, c in combo.items():
            try:
                counts = Formula(molecule).count()
            except ValueError:
                raise CatscreenError(
                    f"references {self.source}: {molecule!r} (for {element}) is not a molecule "
                    "formula such as H2O"
                ) from None
            for el, n in counts.items():
                atoms[el] = atoms.get(el, 0.0) + c * n
        wrong = {el: n for el, n in atoms.items() if abs(n - (el == element)) > 1e-6}
        if wrong or abs(atoms.get(element, 0.0) - 1.0) > 1e-6:
            have = " ".join(f"{n:+g} {el}" for el, n in sorted(atoms.items()) if abs(n) > 1e-9)
            raise CatscreenError(
                f"references {self.source}: {element} = "
                + " ".join(f"{c:+g} {m}" for m, c in combo.items())
                + f" gives {have or 'nothing'}, not one {element} atom"
            )

    @property
    def fixed(self) -> bool:
        return bool(self.potentials)

    def as_metadata(self) -> dict[str, object]:
        if self.fixed:
            return {"source": self.source, "potentials": self.potentials, "stds": self.stds}
        return {"source": self.source, "scheme": self.scheme}

    def weights(self, composition: dict[str, int], what: str) -> dict[str, float]:
        """Molecule -> net coefficient w_m so that sum_i n_i mu_i = sum_m w_m E_m."""
        out: dict[str, float] = {}
        for element, n in composition.items():
            if element not in self.scheme:
                raise CatscreenError(
                    f"reference scheme ({self.source}) has no element {element} needed by {what}; "
                    f"it defines {', '.join(sorted(self.scheme)) or 'nothing'}"
                )
            for molecule, c in self.scheme[element].items():
                out[molecule] = out.get(molecule, 0.0) + n * c
        return {m: w for m, w in out.items() if abs(w) > 1e-12}

    def fixed_energy(self, composition: dict[str, int], what: str) -> tuple[float, float]:
        """sum n_i mu_i and its std for fixed potentials (independent errors per element)."""
        missing = sorted(set(composition) - set(self.potentials))
        if missing:
            raise CatscreenError(
                f"references file {self.source} has no potential for {', '.join(missing)} "
                f"needed by {what}"
            )
        energy = sum(n * self.potentials[el] for el, n in composition.items())
        var = sum((n * self.stds.get(el, 0.0)) ** 2 for el, n in composition.items())
        return energy, math.sqrt(var)


def default_references() -> References:
    return References(scheme=default_scheme(), source="default (data/references.yaml)")


def load_references(path: str | Path | None) -> References:
    """Read a YAML (`elements:` scheme or `potentials:`) or CSV references file; None: default.

    CSV: columns `element,molecule,coefficient` (a scheme) or `element,mu[,mu_std]` (fixed).
    """
    if path is None:
        return default_references()
    p = Path(path)
    if not p.exists():
        raise CatscreenError(f"references file not found: {p}")
    try:
        if p.suffix.lower() == ".csv":
            return _from_csv(p)
        return _from_mapping(read_yaml(p), str(p))
    except CatscreenError:
        raise
    except Exception as exc:
        raise CatscreenError(
            f"cannot read references file {p}: {str(exc).splitlines()[0]}"
        ) from exc


def _from_mapping(raw: object, source: str) -> References:
    if not isinstance(raw, dict) or not ({"elements", "potentials"} & set(raw)):
        raise CatscreenError(
            f"references file {source} needs an 'elements:' or 'potentials:' mapping"
        )
    if {"elements", "potentials"} <= set(raw):
        raise CatscreenError(
            f"references file {source} gives both 'elements:' and 'potentials:'; keep one"
        )
    if "elements" in raw:
        scheme = {
            str(el): {str(m): float(c) for m, c in combo.items()}
            for el, combo in raw["elements"].items()
        }
        return References(scheme=scheme, source=source)
    pots: dict[str, float] = {}
    stds: dict[str, float] = {}
    for el, value in raw["potentials"].items():
        if isinstance(value, dict):
            pots[str(el)] = float(value["mu"])
            stds[str(el)] = float(value.get("std", 0.0))
        else:
            pots[str(el)] = float(value)
    return References(potentials=pots, stds=stds, source=source)


def _from_csv(p: Path) -> References:
    df = pd.read_csv(p)
    cols = set(df.columns)
    key = ["element", "molecule"] if {"molecule", "coefficient"} <= cols else ["element"]
    if set(key) <= cols and df.duplicated(key).any():  # else the last row wins silently
        twice = df[df.duplicated(key)].iloc[0]
        raise CatscreenError(
            f"references CSV {p}: {' '.join(str(twice[k]) for k in key)} is given twice"
        )
    if {"element", "molecule", "coefficient"} <= cols:
        scheme: Scheme = {}
        for row in df.itertuples():
            scheme.setdefault(str(row.element), {})[str(row.molecule)] = float(row.coefficient)
        return References(scheme=scheme, source=str(p))
    if {"element", "mu"} <= cols:
        # a blank std is no error bar, as a YAML potential without `std`
        stds = df.set_index("element")["mu_std"].fillna(0.0) if "mu_std" in cols else {}
        return References(
            potentials={str(k): float(v) for k, v in df.set_index("element")["mu"].items()},
            stds={str(k): float(v) for k, v in stds.items()},
            source=str(p),
        )
    raise CatscreenError(
        f"references CSV {p} needs columns element,molecule,coefficient or element,mu[,mu_std]"
    )
