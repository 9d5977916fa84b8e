"""CatscreenNet: the spin- and fidelity-conditioned E(3)-equivariant potential.

Training API (torch level):

    from catscreen.model.network import CatscreenNet, ModelConfig
    from catscreen.model.checkpoint import save_checkpoint, load_checkpoint
    net = CatscreenNet(ModelConfig(), elements=("H", "C", "N", "O", "Ni", ...),
                       fidelities=("chgnet-pbe", "chgnet-r2scan", "gpaw-pbe"))
    batch = net.collate(atoms_list, spins=["on", ...], fidelities=["chgnet-pbe", ...])
    out = net(batch, forces=True, stress=True)   # create_graph follows net.training
    out["energy"]        [n_struct] float64, mean over heads (eV)
    out["energy_heads"]  [n_struct, n_heads] float64
    out["forces"]        [n_atoms, 3]  -dE/dr of the mean energy (eV/A)
    out["stress"]        [n_struct, 3, 3] (1/V) dE/d(strain), ASE sign; zeros for molecules
    out["magmoms"]       [n_atoms] (muB)
    out["atomic_energies"] [n_atoms, n_heads]

Before training, fit per-context per-element reference energies by least squares and set
`net.reference_energies = tensor[n_contexts, n_elements]` (a buffer: saved, not trained), and
`net.energy_scale` (e.g. the RMS force of the data) so that the network learns O(1) numbers.
Context rows are `2 * fidelity_index + (spin == "on")` (`graph.context_index`); `fidelities`
is ordered from lowest to highest level of theory. `save_checkpoint(net, path, metadata)`
writes it; `load_checkpoint(path) -> (net, payload)` reads it back for more training.

`ModelConfig(spin_cap=("gpaw-pbe",))` makes each atom's spin-on energy of that fidelity its
spin-off energy plus a non-positive term (a second, spin-off pass over those structures), so
E(on) <= E(off) holds by construction where the spin flag is a real DFT switch.

Energies are accumulated in float64 even when the network runs in float32, so totals of
hundreds of eV keep meV precision.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import torch
from ase import Atoms
from e3nn import o3
from torch import nn

from catscreen.errors import CatscreenError
from catscreen.model.blocks import (
    EnsembleReadout,
    Interaction,
    RadialEmbedding,
    ZBLRepulsion,
    scatter_sum,
)
from catscreen.model.graph import GraphBatch, collate, context_index, split_context

# ModelConfig fields newer than the first checkpoints, with the value that leaves them inert
# (the zbl fields are inert whenever zbl is off).
LATER_FIELDS = {
    "correlation": 1,
    "last_layer_vectors": True,
    "zbl": False,
    "zbl_inner": None,
    "zbl_outer": None,
    "spin_energy": False,
    "spin_cap": (),
}
# eV per atom: the smooth cap of the spin energy bends over this width (see `spin_cap`).
SPIN_CAP_WIDTH = 0.02


@dataclass(frozen=True)
class ModelConfig:
    """Hyperparameters; saved in every checkpoint so a checkpoint rebuilds its own network."""

    cutoff: float = 5.0
    l_max: int = 1
    n_scalars: int = 64
    n_vectors: int = 16
    n_layers: int = 2
    n_basis: int = 8
    cutoff_p: int = 6
    radial_hidden: int = 32
    context_dim: int = 16
    readout_hidden: int = 16
    n_heads: int = 4
    avg_num_neighbors: float = 40.0
    # body order per layer: 1 = NequIP messages; 2, 3 add MACE-style products of them
    correlation: int = 1
    # with correlation > 1: the last layer's messages carry vectors too (angular products)
    last_layer_vectors: bool = True
    # a parameter-free ZBL pair repulsion that takes over from the network below zbl_outer
    # covalent-radii sums (the network fades out between zbl_inner and zbl_outer)
    zbl: bool = False
    zbl_inner: float = 0.4
    zbl_outer: float = 0.7
    # a Landau/Stoner-like spin energy -I m_i^2 / 4 per atom in spin-on contexts, from the
    # magmom head's own moments, I learned per fidelity and element (zero at the start)
    spin_energy: bool = False
    # fidelities whose spin flag is a real DFT switch (e.g. gpaw-pbe): there each atom's
    # spin-on energy is its spin-off energy plus a non-positive term, so E(on) <= E(off) by
    # construction, as for any spin-polarised DFT minimum. Costs a spin-off pass for the
    # spin-on structures of those fidelities. Not for the teacher fidelities: their spin flag
    # marks magnetic systems, with no spin-off label to stay below. The spin_energy term, if
    # on, is part of the capped spin-on energy.
    spin_cap: tuple[str, ...] = ()

    def hidden_irreps(self) -> o3.Irreps:
        """n_scalars x 0e + n_vectors x (1o, 2e, ...) up to l_max: the parity of real geometry."""
        parts = [f"{self.n_scalars}x0e"]
        parts += [
            f"{self.n_vectors}x{ell}{'o' if ell % 2 else 'e'}" for ell in range(1, self.l_max + 1)
        ]
        return o3.Irreps("+".join(parts))

    def __post_init__(self) -> None:
        cap = (self.spin_cap,) if isinstance(self.spin_cap, str) else tuple(self.spin_cap)
        object.__setattr__(self, "spin_cap", cap)  # JSON gives a list
        if not isinstance(self.correlation, int) or self.correlation < 1:
            raise CatscreenError(f"correlation must be an integer >= 1, not {self.correlation!r}")
        at_least = {"l_max": 0, "n_scalars": 1, "n_vectors": 1, "n_layers": 1, "n_basis": 1,
                    "cutoff_p": 1, "radial_hidden": 1, "context_dim": 1, "readout_hidden": 1,
                    "n_heads": 1}  # fmt: skip
        for name, low in at_least.items():
            if getattr(self, name) < low:
                raise CatscreenError(f"model.{name} must be >= {low}, not {getattr(self, name)}")
        if not self.cutoff > 0 or not self.avg_num_neighbors > 0:
            raise CatscreenError("model.cutoff and model.avg_num_neighbors must be positive")
        if not 0.0 <= self.zbl_inner < self.zbl_outer:
            raise CatscreenError(
                f"zbl_inner and zbl_outer must satisfy 0 <= inner < outer, not "
                f"{self.zbl_inner}, {self.zbl_outer}"
            )

    def to_json(self) -> str:
        """Fields added after the first checkpoints are left out where they change nothing,
        so a checkpoint saved again keeps its content version."""
        data = asdict(self)
        for key in LATER_FIELDS:
            inert = not self.zbl if key.startswith("zbl") else data[key] == LATER_FIELDS[key]
            if inert:
                del data[key]
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise CatscreenError(f"checkpoint config has unknown fields {sorted(unknown)}")
        return cls(**data)


class CatscreenNet(nn.Module):
    """Species embedding -> n_layers of Interaction -> ensemble energy heads + magmom head."""

    def __init__(
        self, config: ModelConfig, elements: Sequence[str], fidelities: Sequence[str]
    ) -> None:
        super().__init__()
        if not elements or not fidelities:
            raise CatscreenError("a model needs at least one element and one fidelity")
        if len(set(fidelities)) != len(fidelities) or len(set(elements)) != len(elements):
            raise CatscreenError("elements and fidelities must not repeat")
        self.config = config
        self.elements = tuple(elements)
        self.fidelities = tuple(fidelities)
        self.n_contexts = 2 * len(self.fidelities)
        unknown = sorted(set(config.spin_cap) - set(self.fidelities))
        if unknown:
            raise CatscreenError(f"spin_cap names fidelities the model lacks: {unknown}")

        irreps_sh = o3.Irreps.spherical_harmonics(config.l_max)
        self.sh = o3.SphericalHarmonics(irreps_sh, normalize=True, normalization="component")
        self.radial = RadialEmbedding(config.cutoff, config.n_basis, config.cutoff_p)
        self.species_embedding = nn.Embedding(len(self.elements), config.n_scalars)
        self.spin_embedding = nn.Embedding(2, config.context_dim)
        self.fidelity_embedding = nn.Embedding(len(self.fidelities), config.context_dim)

        hidden = config.hidden_irreps()
        scalars_only = o3.Irreps(f"{config.n_scalars}x0e")
        irreps = scalars_only
        layers = []
        for k in range(config.n_layers):
            # The last layer only feeds scalars to the readout: skip its higher-l outputs.
            out = scalars_only if k == config.n_layers - 1 else hidden
            layers.append(
                Interaction(
                    irreps,
                    out,
                    irreps_sh,
                    config.n_basis,
                    config.radial_hidden,
                    config.context_dim,
                    config.avg_num_neighbors,
                    correlation=config.correlation,
                    irreps_hidden=None
                    if k == config.n_layers - 1 and not config.last_layer_vectors
                    else hidden,
                    n_elements=len(self.elements),
                    n_product=min(config.n_vectors, config.n_scalars),
                )
            )
            irreps = layers[-1].irreps_out
        self.layers = nn.ModuleList(layers)
        self.energy_head = EnsembleReadout(config.n_scalars, config.readout_hidden, config.n_heads)
        self.magmom_head = EnsembleReadout(config.n_scalars, config.readout_hidden, 1)
        self.zbl = (
            ZBLRepulsion(self.elements, config.zbl_inner, config.zbl_outer, config.cutoff_p)
            if config.zbl
            else None
        )
        # Zero at the start, so switching it on in a fine-tune changes no prediction.
        self.stoner = (
            nn.Parameter(torch.zeros(len(self.fidelities), len(self.elements)))
            if config.spin_energy
            else None
        )
        self.register_buffer("reference_energies", torch.zeros(self.n_contexts, len(self.elements)))
        self.register_buffer("energy_scale", torch.tensor(1.0))
        # Derived from the config, so not saved with the weights.
        capped = torch.tensor([f in config.spin_cap for f in self.fidelities], dtype=torch.bool)
        self.register_buffer("capped_fidelities", capped, persistent=False)

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def context_index(self, spin: str, fidelity: str) -> int:
        return context_index(self.fidelities, spin, fidelity)

    def collate(
        self, atoms_list: Sequence[Atoms], spins: Sequence[str], fidelities: Sequence[str]
    ) -> GraphBatch:
        """Structures with their contexts -> a GraphBatch in this network's dtype."""
        if len(spins) != len(atoms_list) or len(fidelities) != len(atoms_list):
            raise CatscreenError("one spin and one fidelity per structure are needed")
        contexts = [self.context_index(s, f) for s, f in zip(spins, fidelities, strict=True)]
        dtype = self.energy_scale.dtype
        return collate(atoms_list, self.elements, self.config.cutoff, contexts, dtype=dtype)

    def context_vectors(self, context: torch.Tensor) -> torch.Tensor:
        """Context row -> embedding (spin and fidelity embeddings add up)."""
        if context.numel() and (context.min() < 0 or context.max() >= self.n_contexts):
            raise CatscreenError(f"context index out of range 0..{self.n_contexts - 1}")
        spin, fidelity = split_context(context)
        return torch.nn.functional.silu(
            self.spin_embedding(spin) + self.fidelity_embedding(fidelity)
        )

    def atomic_outputs(
        self,
        batch: GraphBatch,
        edge_vectors: torch.Tensor,
        lengths: torch.Tensor,
        edge_weight: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-atom network energies [n_atoms, n_heads] (before references) and magmoms;
        `edge_weight` (the ZBL switch) fades edges out of the network."""
        edge_sh = self.sh(edge_vectors)
        edge_radial = self.radial(lengths)
        if edge_weight is not None:
            edge_radial = edge_radial * edge_weight.to(edge_radial.dtype)[:, None]
        ctx = self.context_vectors(batch.context)
        x = self.species_embedding(batch.species)
        for layer in self.layers:
            x = layer(x, edge_sh, edge_radial, batch.edge_index, ctx, batch.batch, batch.species)
        return self.energy_head(x), self.magmom_head(x).squeeze(-1)

    def scaled(
        self, heads: torch.Tensor, atom_context: torch.Tensor, species: torch.Tensor
    ) -> torch.Tensor:
        """Network outputs -> atomic energies in eV (float64): scale, plus context references."""
        refs = self.reference_energies.double()[atom_context, species]
        return heads.double() * self.energy_scale.double() + refs.unsqueeze(-1)

    def capped_spin(
        self,
        atomic: torch.Tensor,
        batch: GraphBatch,
        edge_vectors: torch.Tensor,
        lengths: torch.Tensor,
        edge_weight: torch.Tensor | None,
    ) -> torch.Tensor:
        """Atomic energies of the spin-on structures of `config.spin_cap` fidelities replaced by
        their spin-off energies plus `spin_cap(on - off)` (<= 0); the others unchanged.

        The spin-off pass runs on the subgraph of those structures only (edges never cross
        structures), with their own atoms, so a batch without them costs nothing more.
        """
        spin_on, fidelity = split_context(batch.context)
        chosen = (spin_on == 1) & self.capped_fidelities[fidelity]
        if not bool(chosen.any()):
            return atomic
        atom_mask = chosen[batch.batch]
        edge_mask = atom_mask[batch.edge_index[0]]
        renumber = torch.cumsum(atom_mask, 0) - 1
        off_context = batch.context - chosen.long()  # the spin bit of the chosen rows cleared
        sub = replace(  # the chosen structures' atoms and edges; structure rows kept
            batch,
            positions=batch.positions[atom_mask],
            species=batch.species[atom_mask],
            batch=batch.batch[atom_mask],
            edge_index=renumber[batch.edge_index[:, edge_mask]],
            edge_shift_vectors=batch.edge_shift_vectors[edge_mask],
            shifts=batch.shifts[edge_mask],
            context=off_context,
            n_atoms=torch.where(chosen, batch.n_atoms, 0),
        )
        weight = None if edge_weight is None else edge_weight[edge_mask]
        heads, _ = self.atomic_outputs(sub, edge_vectors[edge_mask], lengths[edge_mask], weight)
        off = self.scaled(heads, off_context[sub.batch], sub.species)
        capped = off + spin_cap(atomic[atom_mask] - off)
        return atomic.masked_scatter(atom_mask[:, None], capped)

    def moment_energy(self, batch: GraphBatch, magmoms: torch.Tensor) -> torch.Tensor:
        """-I m^2 / 4 per atom in spin-on contexts, zero with spin off.

        Ties the spin energy to the predicted moments: at the minimum of a Landau energy
        -A m^2 + B m^4 the energy is -A m0^2 / 2, so an atom whose environment raises its
        moment (a surface, a dilute alloy) gains spin energy with it, as in Stoner theory.
        """
        spin_on, fidelity = split_context(batch.context[batch.batch])
        coupling = self.stoner.double()[fidelity, batch.species]
        return -0.25 * spin_on.double() * coupling * magmoms.double() ** 2

    def forward(
        self,
        batch: GraphBatch,
        forces: bool = True,
        stress: bool = False,
        create_graph: bool | None = None,
    ) -> dict[str, torch.Tensor]:
        """Energies, and forces and stress by autograd; see the module docstring."""
        create_graph = self.training if create_graph is None else create_graph
        n_struct = batch.n_structures
        positions = batch.positions
        if forces or stress:
            positions = positions.detach().requires_grad_(True)
        centre, neighbour = batch.edge_index
        edge_vectors = positions[neighbour] - positions[centre] + batch.edge_shift_vectors
        strain = None
        if stress:
            # Displacement trick: E(r (1 + eps)) differentiated at eps = 0 gives the virial.
            strain = torch.zeros(
                n_struct, 3, 3, dtype=positions.dtype, device=positions.device, requires_grad=True
            )
            sym = 0.5 * (strain + strain.transpose(1, 2))
            edge_vectors = edge_vectors + torch.einsum(
                "ei,eij->ej", edge_vectors, sym[batch.batch[centre]]
            )

        lengths = edge_vectors.norm(dim=-1)
        ratio = None
        if self.zbl is not None:  # pairs closer than any training frame leave the network
            ratio = self.zbl.ratio(lengths, batch.edge_index, batch.species)
        weight = None if ratio is None else self.zbl.switch(ratio)
        heads, magmoms = self.atomic_outputs(batch, edge_vectors, lengths, weight)
        atomic = self.scaled(heads, batch.context[batch.batch], batch.species)
        if self.stoner is not None:
            atomic = atomic + self.moment_energy(batch, magmoms).unsqueeze(-1)
        if self.config.spin_cap:  # uncapped models skip the mask work (and a device sync)
            atomic = self.capped_spin(atomic, batch, edge_vectors, lengths, weight)
        if ratio is not None:
            repulsion = self.zbl(lengths, ratio, batch.edge_index, batch.species)
            atomic = atomic + repulsion.unsqueeze(-1)
        energy_heads = scatter_sum(atomic, batch.batch, n_struct)
        energy = energy_heads.mean(dim=1)
        spin_on = split_context(batch.context)[0][batch.batch]
        out = {
            "energy": energy,
            "energy_heads": energy_heads,
            "atomic_energies": atomic,
            # a spin-off (unpolarised) structure has no moments: the head's value there is an
            # untrained output (the moment loss sees spin-on frames only)
            "magmoms": magmoms * spin_on.to(magmoms.dtype),
        }
        if forces or stress:
            inputs = [positions] + ([strain] if stress else [])
            grads = torch.autograd.grad(
                energy.sum(), inputs, create_graph=create_graph, allow_unused=True
            )
            if forces:
                out["forces"] = -_zeros_if_none(grads[0], positions)
            if stress:
                virial = _zeros_if_none(grads[1], strain)
                volume = torch.linalg.det(batch.cell).abs()
                periodic = batch.pbc.any(dim=1) & (volume > 1e-9)  # a slab without c: none
                volume = torch.where(periodic, volume, torch.ones_like(volume))
                out["stress"] = torch.where(
                    periodic[:, None, None], virial / volume[:, None, None], 0.0
                )
        return out


def spin_cap(delta: torch.Tensor, width: float = SPIN_CAP_WIDTH) -> torch.Tensor:
    """A smooth min(delta, 0): -r^3 / (r^2 + width^2) with r = max(-delta, 0).

    Exactly zero for delta >= 0 (a non-magnetic atom gains no spin energy), within
    width^2 / r of delta below it, and twice differentiable at 0, so forces and their
    parameter gradients stay continuous when an atom's moment switches on.
    """
    r = torch.relu(-delta)
    return -(r**3) / (r**2 + width**2)


def reconfigured(net: CatscreenNet, **changes: object) -> CatscreenNet:
    """`net` with config fields changed that keep its weights: the parameter-free zbl fields,
    `spin_cap` (no parameters: it changes only the spin-on energies it caps), or `spin_energy`
    switched on (its couplings start at zero, so no prediction changes)."""
    out = CatscreenNet(replace(net.config, **changes), net.elements, net.fidelities)
    out = out.to(net.energy_scale.device, net.energy_scale.dtype)
    missing, unexpected = out.load_state_dict(net.state_dict(), strict=False)
    if "stoner" in unexpected:
        raise CatscreenError("spin_energy cannot be switched off: its couplings were trained")
    # Switched on, the couplings start at zero; switched off, the ZBL leaves its radii behind.
    if set(missing) - {"stoner"} or set(unexpected) - {"zbl.radius_mA"}:
        raise CatscreenError("the network does not match the original's parameters")
    return out.train(net.training)


NON_METALS = frozenset({"H", "C", "N", "O"})


def widened(net: CatscreenNet, new_elements: Sequence[str]) -> CatscreenNet:
    """`net` that also knows `new_elements`, appended after its own (old indices unchanged).

    Every prediction for structures of the old elements stays exactly what `net` gave. A new
    element's per-element weights (species embedding, product weights) start at the mean of
    the old metals' rows, a generic metal that training then specialises; its reference
    energies and spin couplings start at zero: fit the references on the new data before
    training (the trainer does), or the network starts eV per atom off.
    """
    new = [e for e in new_elements if e not in net.elements]
    if not new:
        raise CatscreenError("no new elements to add")
    wider = CatscreenNet(net.config, (*net.elements, *new), net.fidelities)
    wider = wider.to(net.energy_scale.device, net.energy_scale.dtype)
    n_old = len(net.elements)
    metals = [k for k, e in enumerate(net.elements) if e not in NON_METALS] or list(range(n_old))
    state = wider.state_dict()
    for key, old in net.state_dict().items():
        target = state[key]
        if target.shape == old.shape:
            state[key] = old
            continue
        dims = [d for d in range(old.dim()) if old.shape[d] != target.shape[d]]
        if len(dims) != 1 or old.shape[dims[0]] != n_old:
            raise CatscreenError(f"cannot widen {key}: shape {tuple(old.shape)}")
        d = dims[0]
        grown = target.clone()
        grown.narrow(d, 0, n_old).copy_(old)
        added = grown.narrow(d, n_old, len(new))  # a view: writing it writes `grown`
        if key == "species_embedding.weight" or key.startswith("layers."):
            mean = old.index_select(d, torch.tensor(metals)).mean(dim=d, keepdim=True)
            added.copy_(mean.expand_as(added))
        elif key != "zbl.radius_mA":  # the ZBL radii come from the elements themselves
            added.zero_()
        state[key] = grown
    wider.load_state_dict(state)
    return wider.train(net.training)


def deepened(net: CatscreenNet, extra_layers: int) -> CatscreenNet:
    """`net` with `extra_layers` hidden -> hidden interactions inserted before its last layer.

    Each new layer starts as the identity (its message branch outputs zero, its
    self-connection is the identity), so the deeper network computes exactly what `net` did
    and training adds capacity from there: a trained network grows instead of restarting.
    """
    if extra_layers < 1:
        raise CatscreenError("extra_layers must be at least 1")
    n_old = net.config.n_layers
    if n_old < 2:
        raise CatscreenError("only a network with at least 2 layers can be deepened")
    config = replace(net.config, n_layers=n_old + extra_layers)
    deeper = CatscreenNet(config, net.elements, net.fidelities).to(net.energy_scale.dtype)
    inserted = [f"layers.{k}." for k in range(n_old - 1, n_old - 1 + extra_layers)]
    last_old, last_new = f"layers.{n_old - 1}.", f"layers.{config.n_layers - 1}."
    state = {
        (last_new + key[len(last_old) :] if key.startswith(last_old) else key): value
        for key, value in net.state_dict().items()
    }
    missing, unexpected = deeper.load_state_dict(state, strict=False)
    if unexpected or not all(key.startswith(tuple(inserted)) for key in missing):
        raise CatscreenError("the deeper network does not match the original's parameters")
    with torch.no_grad():
        for layer in deeper.layers[n_old - 1 : -1]:
            for p in layer.linear_down.parameters():
                p.zero_()
            # e3nn's Linear divides each path by sqrt(fan_in): the identity is sqrt(mul) * 1.
            dtype = layer.self_connection.weight.dtype
            eye = [torch.eye(mul, dtype=dtype).flatten() * mul**0.5 for mul, _ in layer.irreps_in]
            layer.self_connection.weight.copy_(torch.cat(eye))
    return deeper


def _zeros_if_none(grad: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """An input the energy does not depend on (an isolated atom) has zero gradient."""
    return torch.zeros_like(like) if grad is None else grad
