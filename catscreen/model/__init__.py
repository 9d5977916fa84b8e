"""The bundled spin-conditioned MLIP and everything that calls a model.

One way in: `load_model("bundled" | path | "chgnet" | "emt")` returns an object that follows
the `Model` protocol (batched `predict` over many structures with per-structure contexts).
"""

from catscreen.model.api import (
    Model,
    ModelInfo,
    Prediction,
    load_model,
    magnetic_elements,
    resolve_spin,
)

__all__ = ["Model", "ModelInfo", "Prediction", "load_model", "magnetic_elements", "resolve_spin"]
