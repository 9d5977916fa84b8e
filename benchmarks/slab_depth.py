"""How the model's adsorption error depends on slab depth, at the teacher's own geometry.

    python benchmarks/slab_depth.py TEACHER_CACHE [--model bundled] [--layers 3 4 5]
        [--systems SID ...]

TEACHER_CACHE is a `benchmarks/accuracy.py --teacher-cache` file that holds its structures
(made since the slab-displacement rule), e.g. from `--size enumerate`. For every placement of
every system in it, the teacher's relaxed adslab and clean slab are evaluated with the model
and with the teacher (single points, no relaxation), whole and with the slab cut to its top N
layers (the adsorbate kept): the difference model - teacher of E(adslab) - E(slab) is the
model's adsorption-energy error at a fixed geometry, without gas references or relaxation.
Printed per system (mean over its placements) and over all systems, one column per depth.
If the error shrinks when deep layers are cut, it comes from atoms the training slabs never
had below an adsorbate.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from accuracy import TEACHER_FIDELITY, cached_structures, single_point
from ase import Atoms

from catscreen.build.slabs import atom_layers
from catscreen.model import load_model

LAYER_GAP = 0.5  # A: atoms closer in height belong to one layer


def layer_heights(slab: Atoms) -> list[float]:
    """The heights of the slab's layers (their highest atom), top first."""
    layer = atom_layers(slab, LAYER_GAP)
    return [float(slab.positions[layer == k, 2].max()) for k in range(layer.max() + 1)]


def top_layers(atoms: Atoms, n_slab: int, layers: list[float], keep: int) -> Atoms:
    """The first `n_slab` atoms cut to the top `keep` layers, every later atom (the
    adsorbate) kept; constraints dropped (single points only)."""
    if keep >= len(layers):
        out = atoms.copy()
    else:
        cut = layers[keep - 1] - LAYER_GAP
        kept = [i for i in range(len(atoms)) if i >= n_slab or atoms.positions[i, 2] > cut]
        out = atoms[kept]
    out.set_constraint()
    return out


def binding_error(model, teacher, slab: Atoms, adslab: Atoms) -> float:  # noqa: ANN001
    """Model - teacher of E(adslab) - E(slab), at these geometries."""

    def binding(calc) -> float:  # noqa: ANN001
        return single_point(adslab, calc, TEACHER_FIDELITY) - single_point(
            slab, calc, TEACHER_FIDELITY
        )

    return binding(model) - binding(teacher)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cache", type=Path, help="an accuracy.py teacher cache with structures")
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--layers", type=int, nargs="+", default=[3, 4, 5])
    parser.add_argument("--systems", nargs="*", help="system ids (default: all in the cache)")
    args = parser.parse_args()
    _, structures = cached_structures(args.cache)
    sids = args.systems or sorted(k.removeprefix("slab:") for k in structures if k[:5] == "slab:")
    model, teacher = load_model(args.model), load_model("chgnet-pbe")
    depths = sorted(set(args.layers))
    print(
        f"model {model.info.name} {model.info.version} against the teacher at the teacher's "
        f"relaxed geometry ({args.cache}): mean of model - teacher E(adslab) - E(slab) (eV) "
        "per system, whole slab and its top N layers"
    )
    print(
        f"  {'system':<24}{'layers':>7}{'whole':>9}" + "".join(f"{f'top {n}':>9}" for n in depths)
    )
    table = []
    for sid in sids:
        slab = structures[f"slab:{sid}"]
        layers = layer_heights(slab)
        placements = [a for k, a in structures.items() if k.startswith(f"{sid}:")]
        row = [
            np.mean(
                [
                    binding_error(
                        model,
                        teacher,
                        top_layers(slab, len(slab), layers, keep),
                        top_layers(a, len(slab), layers, keep),
                    )
                    for a in placements
                ]
            )
            for keep in [len(layers), *depths]
        ]
        table.append(row)
        print(f"  {sid:<24}{len(layers):>7}" + "".join(f"{v:>+9.3f}" for v in row), flush=True)
    table_arr = np.array(table)
    print(
        f"  {'mean over ' + str(len(sids)) + ' systems':<31}"
        + "".join(f"{v:>+9.3f}" for v in table_arr.mean(axis=0))
    )
    print(
        f"  {'mean absolute':<31}" + "".join(f"{v:>9.3f}" for v in np.abs(table_arr).mean(axis=0))
    )


if __name__ == "__main__":
    main()
