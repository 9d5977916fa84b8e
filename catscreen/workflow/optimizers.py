"""Optimizers that advance many structures at once, each with its own state.

The relaxation engine makes one model call per step for every active structure, so the
optimizer must take a step for a changing subset of a batch without looping over ASE
optimizer objects. Both follow ASE's update rules and default parameters: a batched FIRE run
and ASE's FIRE take the same path; L-BFGS too, except where a step pair with non-positive
curvature comes up, which ASE keeps and this drops (an uphill direction otherwise), so the two
part ways there (2 of 59 EMT relaxations, each then converging in fewer steps).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

OPTIMIZERS: tuple[str, ...] = ("fire", "lbfgs")


class BatchOptimizer(Protocol):
    def step(
        self, active: Sequence[int], positions: Sequence[np.ndarray], forces: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        """Displacements for the structures `active` (indices into the batch), given their
        positions and forces (fixed atoms already zeroed), in the same order."""
        ...


class BatchedFIRE:
    """ASE's FIRE (downhill_check off) vectorised over the atoms of all active structures.

    Per-structure scalars (dt, alpha, steps since the last uphill move) live in arrays; dot
    products are segment sums over the concatenated atoms. As in ASE, `maxstep` caps the norm
    of the whole displacement of one structure.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        dt: float = 0.1,
        maxstep: float = 0.2,
        dtmax: float = 1.0,
        nmin: int = 5,
        finc: float = 1.1,
        fdec: float = 0.5,
        astart: float = 0.1,
        fa: float = 0.99,
    ) -> None:
        self.sizes = np.asarray(sizes, dtype=int)
        self.offsets = np.concatenate(([0], np.cumsum(self.sizes)))
        n = len(self.sizes)
        self.v = np.zeros((int(self.offsets[-1]), 3))
        self.dt = np.full(n, dt)
        self.a = np.full(n, astart)
        self.nsteps = np.zeros(n, dtype=int)
        self.started = np.zeros(n, dtype=bool)
        self.maxstep, self.dtmax, self.nmin = maxstep, dtmax, nmin
        self.finc, self.fdec, self.astart, self.fa = finc, fdec, astart, fa

    def step(
        self, active: Sequence[int], positions: Sequence[np.ndarray], forces: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        idx = np.asarray(active, dtype=int)
        counts = self.sizes[idx]
        atoms = np.concatenate([np.arange(self.offsets[i], self.offsets[i + 1]) for i in idx])
        seg = np.repeat(np.arange(len(idx)), counts)

        def per_structure(values: np.ndarray) -> np.ndarray:
            return np.bincount(seg, weights=values, minlength=len(idx))

        f = np.concatenate(forces)
        v = self.v[atoms]
        vf = per_structure(np.einsum("ij,ij->i", f, v))
        fnorm = np.sqrt(per_structure(np.einsum("ij,ij->i", f, f)))
        vnorm = np.sqrt(per_structure(np.einsum("ij,ij->i", v, v)))
        started = self.started[idx]
        downhill = started & (vf > 0.0)
        uphill = started & ~downhill
        dt, a, n = self.dt[idx], self.a[idx], self.nsteps[idx]

        # downhill: v <- (1 - a) v + a |v| f/|f|; uphill: v <- 0; first step: v stays 0
        keep = np.where(downhill, 1.0 - a, np.where(uphill, 0.0, 1.0))
        safe_fnorm = np.where(fnorm > 0.0, fnorm, 1.0)
        mix = np.where(downhill, a * vnorm / safe_fnorm, 0.0)
        v = v * keep[seg, None] + f * mix[seg, None]

        grow = downhill & (n > self.nmin)
        dt = np.where(grow, np.minimum(dt * self.finc, self.dtmax), dt)
        a = np.where(grow, a * self.fa, a)
        n = np.where(downhill, n + 1, n)
        dt = np.where(uphill, dt * self.fdec, dt)
        a = np.where(uphill, self.astart, a)
        n = np.where(uphill, 0, n)

        v = v + dt[seg, None] * f
        dr = dt[seg, None] * v
        drnorm = np.sqrt(per_structure(np.einsum("ij,ij->i", dr, dr)))
        cap = np.where(drnorm > self.maxstep, self.maxstep / np.where(drnorm > 0, drnorm, 1), 1.0)
        dr = dr * cap[seg, None]

        self.v[atoms] = v
        self.dt[idx], self.a[idx], self.nsteps[idx] = dt, a, n
        self.started[idx] = True
        return np.split(dr, np.cumsum(counts)[:-1])


class _LBFGSState:
    """History of one structure: ASE's LBFGS two-loop recursion with a constant H0 = 1/alpha."""

    def __init__(self, memory: int, alpha: float) -> None:
        self.memory, self.h0 = memory, 1.0 / alpha
        self.s: list[np.ndarray] = []
        self.y: list[np.ndarray] = []
        self.rho: list[float] = []
        self.r0: np.ndarray | None = None
        self.g0: np.ndarray | None = None

    def direction(self, r: np.ndarray, g: np.ndarray) -> np.ndarray:
        if self.r0 is not None and self.g0 is not None:
            s, y = r - self.r0, g - self.g0
            sy = float(np.dot(y, s))
            # ASE keeps every pair; a pair with non-positive curvature would make the
            # direction uphill, so it is dropped here (the usual L-BFGS safeguard).
            if sy > 1e-12:
                self.s.append(s)
                self.y.append(y)
                self.rho.append(1.0 / sy)
                if len(self.s) > self.memory:
                    del self.s[0], self.y[0], self.rho[0]
        self.r0, self.g0 = r.copy(), g.copy()
        q = g.copy()
        alphas = np.empty(len(self.s))
        for i in range(len(self.s) - 1, -1, -1):
            alphas[i] = self.rho[i] * np.dot(self.s[i], q)
            q -= alphas[i] * self.y[i]
        z = self.h0 * q
        for i in range(len(self.s)):
            beta = self.rho[i] * np.dot(self.y[i], z)
            z += self.s[i] * (alphas[i] - beta)
        return -z


class BatchedLBFGS:
    """ASE's LBFGS (maxstep 0.2, memory 100, damping 1, alpha 70) with one history per structure.

    L-BFGS histories have different lengths per structure, so the recursion runs per
    structure; it costs microseconds next to the model call that the batch shares.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        maxstep: float = 0.2,
        memory: int = 100,
        damping: float = 1.0,
        alpha: float = 70.0,
    ) -> None:
        self.states = [_LBFGSState(memory, alpha) for _ in sizes]
        self.maxstep, self.damping = maxstep, damping

    def step(
        self, active: Sequence[int], positions: Sequence[np.ndarray], forces: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        out = []
        for i, r, f in zip(active, positions, forces, strict=True):
            p = self.states[i].direction(r.ravel(), -f.ravel()).reshape(-1, 3)
            longest = float(np.linalg.norm(p, axis=1).max()) if len(p) else 0.0
            if longest >= self.maxstep:
                p *= self.maxstep / longest
            out.append(p * self.damping)
        return out


def make_optimizer(name: str, sizes: Sequence[int]) -> BatchOptimizer:
    if name == "fire":
        return BatchedFIRE(sizes)
    if name == "lbfgs":
        return BatchedLBFGS(sizes)
    raise ValueError(f"unknown optimizer {name!r}; expected one of {OPTIMIZERS}")
