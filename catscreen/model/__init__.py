"""The bundled spin-conditioned MLIP and everything that calls a model.

One way in: `load_model("bundled" | path | "chgnet" | "emt")` returns an object that follows
the `Model` protocol (batched `predict` over many structures with per-structure contexts);
`CatscreenCalculator(model, spin="auto")` is its ASE calculator (`atoms.calc = ...`).

The network itself, for training and for anyone who needs tensors: `graph` (structures ->
`GraphBatch`, neighbour lists), `blocks` (irreps-declaring modules), `network` (`ModelConfig`,
`CatscreenNet`), `checkpoint` (`save_checkpoint`, `load_checkpoint`, `load_checkpoint_model`),
`inference` (`CatscreenModel`), `chgnet_adapter`.
They are not imported here, so `import catscreen.model` stays light.
"""

from catscreen.model.api import (
    Model,
    ModelInfo,
    Prediction,
    load_model,
    magnetic_elements,
    resolve_spin,
)
from catscreen.model.calculator import CatscreenCalculator

__all__ = [
    "CatscreenCalculator",
    "Model",
    "ModelInfo",
    "Prediction",
    "load_model",
    "magnetic_elements",
    "resolve_spin",
]
