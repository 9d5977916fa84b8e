"""Structures -> one batched graph, the only input the network takes.

Training and inference both go through `collate`:

    from catscreen.model.graph import collate, context_index
    batch = collate(atoms_list, elements=net.elements, cutoff=net.config.cutoff,
                    contexts=[context_index(net.fidelities, spin, fid) for ...])
    out = net(batch, forces=True, stress=True)

or the shortcut `net.collate(atoms_list, spins, fidelities)`.

Many structures of different sizes become one disconnected graph (`batch[i]` says which
structure atom `i` belongs to), so a relaxation of 32 slabs is one network call.

Neighbour lists come from vesin: on a 37-atom Ni(111) slab with a 5 A cutoff it took 0.13 ms
against 0.25 ms for matscipy and 7.6 ms for ASE's `primitive_neighbor_list`, it handles mixed
periodicity (slabs: pbc True, True, False), cells smaller than the cutoff (an atom then sees its
own periodic images, which appear as edges i -> i with a non-zero shift) and molecules without a
cell, which matscipy does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch
from ase import Atoms
from vesin import NeighborList

from catscreen.errors import CatscreenError

SPIN_INDEX = {"off": 0, "on": 1}


def context_index(fidelities: Sequence[str], spin: str, fidelity: str) -> int:
    """The row of a (spin, fidelity) context: `2 * fidelity_index + spin_index`.

    A context the model was not built for is an error, never a silent default.
    """
    if spin not in SPIN_INDEX:
        raise CatscreenError(f"unknown spin context {spin!r}; expected off or on")
    if fidelity not in fidelities:
        raise CatscreenError(f"unknown fidelity {fidelity!r}; the model knows {list(fidelities)}")
    return 2 * list(fidelities).index(fidelity) + SPIN_INDEX[spin]


def split_context(context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Context rows -> (spin index, 1 = on; fidelity index): the inverse of `context_index`."""
    return context % 2, torch.div(context, 2, rounding_mode="floor")


@dataclass
class GraphBatch:
    """A batch of structures as one graph.

    Edge `e` points from centre `edge_index[0, e]` to neighbour `edge_index[1, e]`, with
    vector `positions[j] - positions[i] + edge_shift_vectors[e]` (shift vectors are
    `shifts @ cell` of the structure, so a strain acting on positions also acts on them).
    """

    positions: torch.Tensor  # [n_atoms, 3] float
    species: torch.Tensor  # [n_atoms] long, index into the model's element list
    batch: torch.Tensor  # [n_atoms] long, structure of each atom
    edge_index: torch.Tensor  # [2, n_edges] long
    edge_shift_vectors: torch.Tensor  # [n_edges, 3] float, Angstrom
    shifts: torch.Tensor  # [n_edges, 3] long, integer cell offsets
    cell: torch.Tensor  # [n_structures, 3, 3] float (rows are cell vectors)
    pbc: torch.Tensor  # [n_structures, 3] bool
    context: torch.Tensor  # [n_structures] long, see `context_index`
    n_atoms: torch.Tensor  # [n_structures] long

    @property
    def n_structures(self) -> int:
        return int(self.n_atoms.shape[0])

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        """Move to a device; `dtype` applies to floating-point fields only."""
        moved = {}
        for f in fields(self):
            t = getattr(self, f.name)
            moved[f.name] = t.to(device=device, dtype=dtype if t.is_floating_point() else None)
        return GraphBatch(**moved)

    def split(self, per_atom: torch.Tensor) -> list[torch.Tensor]:
        """Per-atom tensor -> one tensor per structure."""
        return list(torch.split(per_atom, self.n_atoms.tolist()))


COINCIDENT = 1e-4  # A: closer than this, two atoms are one point to the network
FAR = 50.0  # A from a structure's centroid: atoms beyond are moved to their nearest image


def local_positions(atoms: Atoms) -> np.ndarray:
    """Positions moved near the origin: centred, and where atoms lie beyond FAR of the
    centroid (an unwrapped trajectory), each moved to its periodic image nearest it.

    The network sees only edge vectors, which neither move changes; but in float32 a position
    500 A from the origin keeps ~3e-5 A, and the forces of a slab moved that far changed by
    ~1.5e-4 eV/A. Any integer combination of periodic vectors is an image, so this needs no
    inverse of a cell whose non-periodic vector is zero.
    """
    positions = atoms.positions - atoms.positions.mean(axis=0)
    periodic = atoms.cell.array[np.asarray(atoms.pbc, dtype=bool)]
    # the image search (a pseudo-inverse per structure) took a fifth of `collate`'s time
    # (64 slabs of 37 atoms: 16.2 ms against 13.0 ms); within FAR float32 keeps 4e-6 A
    if len(periodic) and np.abs(positions).max() > FAR:
        positions = positions - np.rint(positions @ np.linalg.pinv(periodic)) @ periodic
    return positions


def neighbour_list(
    atoms: Atoms, cutoff: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(`local_positions`, i, j, integer shifts) of all pairs closer than `cutoff`, both
    directions, with images; the shifts are those of the local positions."""
    pbc = np.asarray(atoms.pbc, dtype=bool)
    cell = atoms.cell.array
    # the periodic directions need independent cell vectors; a non-periodic one may be zero
    # (ASE's fcc111 without vacuum, graphene)
    if len(atoms) == 0:  # a periodic one failed in numpy, an open one had energy 0
        raise CatscreenError("a structure without atoms cannot be evaluated")
    # finite first: the rank of a NaN cell raised numpy's "SVD did not converge"
    if not np.all(np.isfinite(atoms.positions)) or (pbc.any() and not np.all(np.isfinite(cell))):
        raise CatscreenError(f"{atoms.get_chemical_formula()} has non-finite positions or cell")
    if pbc.any() and np.linalg.matrix_rank(cell[pbc], tol=1e-6) < pbc.sum():
        raise CatscreenError(
            f"{atoms.get_chemical_formula()} is periodic but its periodic cell vectors are "
            "zero or parallel"
        )
    positions = local_positions(atoms)
    nl = NeighborList(cutoff=cutoff, full_list=True)
    i, j, s, d = nl.compute(positions, cell if pbc.any() else np.zeros((3, 3)), pbc, "ijSd")
    if len(d) and d.min() < COINCIDENT:  # the edge direction, and so every force, is undefined
        k = int(np.argmin(d))
        raise CatscreenError(
            f"{atoms.get_chemical_formula()}: atoms {i[k]} and {j[k]} coincide ({d[k]:.1e} A apart)"
        )
    return positions, i.astype(np.int64), j.astype(np.int64), s.astype(np.int64)


def collate(
    atoms_list: Sequence[Atoms],
    elements: Sequence[str],
    cutoff: float,
    contexts: Sequence[int],
    dtype: torch.dtype | None = None,
) -> GraphBatch:
    """Build one graph from many structures; `contexts[k]` is structure k's context row."""
    dtype = dtype or torch.get_default_dtype()
    if len(atoms_list) != len(contexts):
        raise CatscreenError(f"{len(atoms_list)} structures but {len(contexts)} contexts")
    if not atoms_list:
        raise CatscreenError("no structures to evaluate")
    index = {el: k for k, el in enumerate(elements)}
    pos, spec, bat, edges, shift_vecs, shifts = [], [], [], [], [], []
    offset = 0
    for k, atoms in enumerate(atoms_list):
        symbols = atoms.get_chemical_symbols()
        unknown = sorted(set(symbols) - index.keys())
        if unknown:
            raise CatscreenError(
                f"{atoms.get_chemical_formula()}: element(s) {', '.join(unknown)} unknown to the model"
            )
        positions, i, j, s = neighbour_list(atoms, cutoff)
        pos.append(positions)
        spec.append(np.fromiter((index[x] for x in symbols), dtype=np.int64, count=len(symbols)))
        bat.append(np.full(len(atoms), k, dtype=np.int64))
        edges.append(np.stack([i, j]) + offset)
        shifts.append(s)
        shift_vecs.append(s @ atoms.cell.array)
        offset += len(atoms)
    return GraphBatch(
        positions=torch.tensor(np.concatenate(pos), dtype=dtype),
        species=torch.from_numpy(np.concatenate(spec)),
        batch=torch.from_numpy(np.concatenate(bat)),
        edge_index=torch.from_numpy(np.concatenate(edges, axis=1)),
        edge_shift_vectors=torch.tensor(np.concatenate(shift_vecs), dtype=dtype),
        shifts=torch.from_numpy(np.concatenate(shifts)),
        cell=torch.tensor(np.stack([a.cell.array for a in atoms_list]), dtype=dtype),
        pbc=torch.tensor(np.stack([a.pbc for a in atoms_list]), dtype=torch.bool),
        context=torch.tensor(list(contexts), dtype=torch.long),
        n_atoms=torch.tensor([len(a) for a in atoms_list], dtype=torch.long),
    )
