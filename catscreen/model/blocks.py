"""The network's building blocks: small modules that declare the irreps they take and give.

The design follows NequIP: a smooth radial basis and spherical harmonics describe each edge,
tensor-product convolutions with radially learned weights pass messages, gated nonlinearities
keep equivariance, and only scalars reach the readout. With `correlation` > 1 each layer also
takes channel-wise products of its aggregated features with element-dependent weights (MACE's
product basis): a sum over neighbours is a two-body density, and its products are the
three-, four-body angular features that a NequIP layer only builds through depth. catscreen adds
FiLM conditioning of the scalar channels on the structure's context (spin, fidelity) and a
shallow ensemble of readouts, and an optional ZBL pair repulsion (MACE's `ZBLBasis`) that keeps
atoms from passing through each other where the training data has no frames.
"""

from __future__ import annotations

import math

import torch
from ase.data import atomic_numbers, covalent_radii
from e3nn import nn as e3nn_nn
from e3nn import o3
from torch import nn


def scatter_sum(src: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """Sum rows of a 2-d `src` into `size` bins given by `index` (differentiable, twice)."""
    out = src.new_zeros((size, src.shape[1]))
    return out.index_add(0, index, src)


class BesselBasis(nn.Module):
    """sin(n pi r / rc) / r: a complete radial basis on [0, rc] (DimeNet), trainable frequencies."""

    def __init__(self, cutoff: float, n_basis: int) -> None:
        super().__init__()
        self.cutoff = cutoff
        self.prefactor = math.sqrt(2.0 / cutoff)
        self.frequencies = nn.Parameter(torch.arange(1, n_basis + 1) * math.pi / cutoff)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        r = r.unsqueeze(-1)
        return self.prefactor * torch.sin(self.frequencies * r) / r


class PolynomialCutoff(nn.Module):
    """Goes to zero at rc with its first two derivatives (NequIP's envelope), so energies,
    forces and their gradients in training stay continuous."""

    def __init__(self, cutoff: float, p: int = 6) -> None:
        super().__init__()
        self.cutoff = cutoff
        self.p = p

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        x = r / self.cutoff
        p = self.p
        out = (
            1.0
            - (p + 1.0) * (p + 2.0) / 2.0 * x**p
            + p * (p + 2.0) * x ** (p + 1)
            - p * (p + 1.0) / 2.0 * x ** (p + 2)
        )
        return out * (x < 1.0)


class RadialEmbedding(nn.Module):
    """Edge length -> smooth radial features that vanish at the cutoff."""

    def __init__(self, cutoff: float, n_basis: int, p: int) -> None:
        super().__init__()
        self.basis = BesselBasis(cutoff, n_basis)
        self.envelope = PolynomialCutoff(cutoff, p)
        self.dim = n_basis

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return self.basis(r) * self.envelope(r).unsqueeze(-1)


class ContextFiLM(nn.Module):
    """Scale and shift of the first `n_scalars` channels per context; starts as the identity.

    The scale and shift come from a context embedding through a linear map initialised to zero,
    so an untrained conditioning changes nothing and training decides how much each context
    bends each block.
    """

    def __init__(self, context_dim: int, n_scalars: int) -> None:
        super().__init__()
        self.n_scalars = n_scalars
        self.linear = nn.Linear(context_dim, 2 * n_scalars)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, node_batch: torch.Tensor
    ) -> torch.Tensor:
        """x [n_atoms, dim] (scalars first), context [n_structures, context_dim]."""
        scale, shift = self.linear(context).chunk(2, dim=-1)
        rest = (0, x.shape[1] - self.n_scalars)
        scale = torch.nn.functional.pad(scale, rest)[node_batch]
        shift = torch.nn.functional.pad(shift, rest)[node_batch]
        return x * (1.0 + scale) + shift


def _gate(irreps_out: o3.Irreps) -> e3nn_nn.Gate:
    """Gated nonlinearity producing `irreps_out`: SiLU on scalars, sigmoid gates on the rest."""
    scalars = o3.Irreps([(mul, ir) for mul, ir in irreps_out if ir.l == 0])
    gated = o3.Irreps([(mul, ir) for mul, ir in irreps_out if ir.l > 0])
    gates = o3.Irreps(f"{gated.num_irreps}x0e") if gated.num_irreps else o3.Irreps("")
    return e3nn_nn.Gate(
        scalars,
        [torch.nn.functional.silu] * len(scalars),
        gates,
        [torch.sigmoid] * len(gates),
        gated,
    )


class ProductBasis(nn.Module):
    """Channel-wise powers of node features up to `correlation`, element-dependent weights.

    Takes `irreps_in` whose first blocks are `n x (0e, 1o, ...)` (one block per l, equal
    multiplicities, `irreps_product`), and gives `irreps_in + (correlation - 1) x
    irreps_product`: B_1 = A, B_k = (B_{k-1} x A) channel by channel, every coupling that lands
    in `irreps_product` weighted per centre element. Products of the two-body density A are
    the many-body invariants (|A_1o|^2 is a three-body angular term); they cost per atom, not
    per edge, so they add body order almost for free.
    """

    def __init__(
        self, irreps_in: o3.Irreps, irreps_product: o3.Irreps, correlation: int, n_elements: int
    ) -> None:
        super().__init__()
        self.irreps_in = o3.Irreps(irreps_in)
        self.irreps_product = o3.Irreps(irreps_product)
        n = len(self.irreps_product)
        if [ir for _, ir in self.irreps_in[:n]] != [ir for _, ir in self.irreps_product] or {
            mul for mul, _ in self.irreps_product
        } != {self.irreps_product[0].mul}:
            raise ValueError("irreps_in must start with irreps_product, one multiplicity for all")
        tps, weights = [], []
        left = self.irreps_in
        for _ in range(correlation - 1):
            instructions = [
                (i, j, k, "uuu", True)
                for i, (_, ir1) in enumerate(left[:n])
                for j, (_, ir2) in enumerate(self.irreps_product)
                for k, (_, ir3) in enumerate(self.irreps_product)
                if ir3 in ir1 * ir2
            ]
            tp = o3.TensorProduct(
                left,
                self.irreps_in,
                self.irreps_product,
                instructions,
                shared_weights=False,
                internal_weights=False,
            )
            tps.append(tp)
            weights.append(nn.Parameter(torch.randn(n_elements, tp.weight_numel)))
            left = self.irreps_product
        self.tps = nn.ModuleList(tps)
        self.weights = nn.ParameterList(weights)
        self.irreps_out = self.irreps_in + self.irreps_product * (correlation - 1)

    def forward(self, a: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        outs, b = [a], a
        for tp, w in zip(self.tps, self.weights, strict=True):
            b = tp(b, a, w[species])
            outs.append(b)
        return torch.cat(outs, dim=-1)


class Interaction(nn.Module):
    """One message-passing layer: irreps_in -> irreps_out, equivariant, context-conditioned.

    linear (into one block per path) -> tensor product with the edge's spherical harmonics,
    weights from an MLP of the radial features -> sum over neighbours -> [correlation > 1:
    linear -> product basis] -> linear -> FiLM on scalars -> gate, plus a linear
    self-connection (a residual when shapes allow).

    With correlation 1 the messages carry only what the output needs (NequIP). With more, and
    `irreps_hidden` given, they carry those irreps even into a scalars-only last layer, whose
    products of its vector density are then angular invariants too; without it (the network's
    `last_layer_vectors: false`) a scalars-only layer multiplies its scalars only, at no extra
    cost per edge.
    """

    def __init__(
        self,
        irreps_in: o3.Irreps,
        irreps_out: o3.Irreps,
        irreps_sh: o3.Irreps,
        radial_dim: int,
        radial_hidden: int,
        context_dim: int,
        avg_num_neighbors: float,
        correlation: int = 1,
        irreps_hidden: o3.Irreps | None = None,
        n_elements: int = 1,
        n_product: int = 1,
    ) -> None:
        super().__init__()
        self.irreps_in = o3.Irreps(irreps_in)
        self.gate = _gate(o3.Irreps(irreps_out))
        self.irreps_out = self.gate.irreps_out
        self.norm = 1.0 / math.sqrt(avg_num_neighbors)
        self.correlation = correlation
        vectors = correlation > 1 and irreps_hidden is not None
        message_irreps = o3.Irreps(irreps_hidden) if vectors else self.gate.irreps_in

        # One input block per path, as wide as the output it feeds needs: a scalar input
        # feeding the 16 vector outputs gets 16 channels, not all 64 (half the edge tensors).
        target = {ir: mul for mul, ir in message_irreps.simplify()}
        blocks, mid, instructions = [], [], []
        for mul_in, ir_in in self.irreps_in.simplify():
            for j, (_, ir_edge) in enumerate(irreps_sh):
                for ir_out in ir_in * ir_edge:
                    if ir_out in target:
                        mul = min(mul_in, target[ir_out])
                        instructions.append((len(blocks), j, len(mid), "uvu", True))
                        blocks.append((mul, ir_in))
                        mid.append((mul, ir_out))
        irreps_tp_in = o3.Irreps(blocks)
        irreps_mid, perm, _ = o3.Irreps(mid).sort()
        instructions = [(i, j, perm[k], mode, train) for i, j, k, mode, train in instructions]

        self.linear_up = o3.Linear(self.irreps_in, irreps_tp_in)
        self.tp = o3.TensorProduct(
            irreps_tp_in,
            irreps_sh,
            irreps_mid,
            instructions,
            shared_weights=False,
            internal_weights=False,
        )
        self.radial = e3nn_nn.FullyConnectedNet(
            [radial_dim, radial_hidden, radial_hidden, self.tp.weight_numel],
            torch.nn.functional.silu,
        )
        if correlation > 1:
            # A = n_product x (0e, 1o, ...) for the products, then the remaining scalars.
            targets = message_irreps.simplify()
            n_s = sum(mul for mul, ir in targets if ir.l == 0)
            product = o3.Irreps([(n_product, ir) for _, ir in targets])
            irreps_a = product + o3.Irreps(f"{n_s - n_product}x0e") if n_s > n_product else product
            self.linear_mid = o3.Linear(irreps_mid, irreps_a)
            self.product = ProductBasis(irreps_a, product, correlation, n_elements)
            irreps_mid = self.product.irreps_out
        self.linear_down = o3.Linear(irreps_mid, self.gate.irreps_in)
        n_scalars = sum(mul for mul, ir in self.gate.irreps_in if ir.l == 0)
        self.film = ContextFiLM(context_dim, n_scalars)
        self.self_connection = o3.Linear(self.irreps_in, self.irreps_out)

    def forward(
        self,
        x: torch.Tensor,
        edge_sh: torch.Tensor,
        edge_radial: torch.Tensor,
        edge_index: torch.Tensor,
        context: torch.Tensor,
        node_batch: torch.Tensor,
        species: torch.Tensor,
    ) -> torch.Tensor:
        centre, neighbour = edge_index[0], edge_index[1]
        h = self.linear_up(x)
        messages = self.tp(h[neighbour], edge_sh, self.radial(edge_radial))
        agg = scatter_sum(messages, centre, x.shape[0]) * self.norm
        if self.correlation > 1:
            agg = self.product(self.linear_mid(agg), species)
        y = self.film(self.linear_down(agg), context, node_batch)
        return self.gate(y) + self.self_connection(x)


class EnsembleReadout(nn.Module):
    """Scalars -> `n_heads` per-atom outputs; each head its own small MLP (a shallow ensemble).

    The heads share the backbone, so they cost almost nothing; their spread is the uncertainty.
    """

    def __init__(self, n_scalars: int, hidden: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.hidden = hidden
        self.first = nn.Linear(n_scalars, n_heads * hidden)
        self.weight = nn.Parameter(torch.randn(n_heads, hidden) / math.sqrt(hidden))
        self.bias = nn.Parameter(torch.zeros(n_heads))

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        h = torch.nn.functional.silu(self.first(s)).view(-1, self.n_heads, self.hidden)
        return (h * self.weight).sum(-1) + self.bias


def ase_radii_mA(elements: tuple[str, ...]) -> list[int]:
    """ASE's covalent radii in mA (its table has 0.01 A steps, so integers are exact)."""
    return [round(1000 * float(covalent_radii[atomic_numbers[el]])) for el in elements]


class ZBLRepulsion(nn.Module):
    """Screened nuclear repulsion (Ziegler-Biersack-Littmark) where no chemical bond reaches.

    Why: an equivariant network is free to do anything where the data has no frames; a
    product-basis candidate opened an energy hole that pulled N-H to 0.2 A. In units of the
    pair's covalent radii sum d (ASE's radii):
    - `switch` weighs the network's edges by a smoothstep from 0 at `inner` d to 1 at `outer`
      d: a pair pushed closer than any bond leaves the network;
    - the universal ZBL pair potential fills in, times the polynomial envelope (zero with two
      derivatives) that reaches zero at `outer` d.
    Beyond `outer` d the network is untouched. The defaults (0.4, 0.7) leave every real bond
    alone: the shortest, triple bonds, sit at 0.77-0.79 d (N2, CO, C-N, C-C), H2 at 1.19 d.
    MACE's `ZBLBasis` reaches out to d itself, which puts ~0.1 eV per bond into bcc W or Mo at
    equilibrium (their d is 1.2x the bond). No parameters: it can be switched on for a trained
    network. It bounds pairs, not crowds: MODEL_CARD has a case where it is not enough.
    """

    COULOMB = 14.399645  # e^2 / (4 pi eps0) in eV A
    SCREENING = 0.8854 * 0.529177  # 0.8854 Bohr radii, in A
    COEFFICIENTS = (0.18175, 0.50986, 0.28022, 0.02817)
    EXPONENTS = (3.19980, 0.94229, 0.40290, 0.20162)

    def __init__(
        self, elements: tuple[str, ...], inner: float = 0.4, outer: float = 0.7, p: int = 6
    ) -> None:
        super().__init__()
        if not 0.0 <= inner < outer:
            raise ValueError(f"ZBL switch needs 0 <= inner < outer, not {inner}, {outer}")
        self.inner, self.outer = inner, outer
        # Integer buffers: moved with the network, never cast to float32 with it. The radii
        # are saved with the weights: a checkpoint keeps its switch if ASE's table changes.
        z = [atomic_numbers[el] for el in elements]
        self.register_buffer("z", torch.tensor(z), persistent=False)
        self.register_buffer("radius_mA", torch.tensor(ase_radii_mA(elements)))
        self.envelope = PolynomialCutoff(self.outer, p)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        # Weights saved before the radii were stored (or without a ZBL) used ASE's table, as
        # this module was built with: every load path (checkpoints, resume, fine-tunes) agrees.
        state_dict.setdefault(prefix + "radius_mA", self.radius_mA.clone())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def ratio(
        self, lengths: torch.Tensor, edge_index: torch.Tensor, species: torch.Tensor
    ) -> torch.Tensor:
        """Edge length / covalent radii sum [n_edges] (float64): what `switch` and the
        envelope read, computed once per evaluation."""
        radius = self.radius_mA.double() / 1000.0
        return lengths.double() / (radius[species[edge_index[0]]] + radius[species[edge_index[1]]])

    def switch(self, ratio: torch.Tensor) -> torch.Tensor:
        """Edge weights [n_edges] for the network: smoothstep from `inner` d to `outer` d."""
        t = ((ratio - self.inner) / (self.outer - self.inner)).clamp(0.0, 1.0)
        return t**3 * (10.0 - 15.0 * t + 6.0 * t**2)

    def forward(
        self,
        lengths: torch.Tensor,
        ratio: torch.Tensor,
        edge_index: torch.Tensor,
        species: torch.Tensor,
    ) -> torch.Tensor:
        """Per-atom repulsion energies [n_atoms] in eV (float64); each pair split in half.

        On a GPU every edge is evaluated, so no shape depends on the data (no host sync). Beyond
        `outer` d the envelope is exactly 0 and every factor stays finite (r >= outer d > 0), so
        those edges add exactly 0 to the energies and their gradients."""
        out = torch.zeros(species.shape[0], dtype=torch.float64, device=lengths.device)
        if not lengths.is_cuda and not bool((ratio < self.outer).any()):
            return out  # the common case in a relaxation; a free check on the CPU
        centre, r = edge_index[0], lengths.double()
        z = self.z.double()
        zi, zj = z[species[centre]], z[species[edge_index[1]]]
        a = self.SCREENING / (zi**0.23 + zj**0.23)
        x = r / a
        phi = sum(
            c * torch.exp(-d * x) for c, d in zip(self.COEFFICIENTS, self.EXPONENTS, strict=True)
        )
        pair = self.COULOMB * zi * zj / r * phi * self.envelope(ratio)
        return out.index_add(0, centre, 0.5 * pair)
