"""catscreen: screen heterogeneous catalysts with a spin-conditioned equivariant MLIP."""

__version__ = "0.1.0"
