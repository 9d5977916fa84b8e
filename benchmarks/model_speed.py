"""Speed of the bundled network against CHGNet: energy+forces calls on Ni(111) 3x3x4 + O.

Run by hand (not a test), on a quiet machine or with `nice` on a shared one:

    nice python benchmarks/model_speed.py                  # shipped config vs CHGNet
    nice python benchmarks/model_speed.py --variants all   # + float64, torch.compile
    nice python benchmarks/model_speed.py --variants fp32,c3,c3v  # + product basis (below)
    nice python benchmarks/model_speed.py --variants fp32,zbl --no-chgnet  # ZBL's cost
    nice python benchmarks/model_speed.py --variants fp32,l2 --no-chgnet   # l_max 2's cost
    nice python benchmarks/model_speed.py --variants fp32,cap --no-chgnet  # the spin cap's cost

Prints atom-steps per second (atoms x energy+forces evaluations per second) for one slab and
for a batch of 32 slabs, on 1 and 2 threads, and the ratio to CHGNet measured in the same run.
Random weights: the speed of a network does not depend on their values.

Variants: fp32 (the default ModelConfig), fp64, compile (torch.compile of the network body),
c2 / c3 (correlation 2 / 3 with the last layer's messages scalar, `last_layer_vectors: false`),
c3v (correlation 3 with vector messages into the last layer), zbl / c3zbl (fp32 / c3 with the
ZBL core repulsion, `zbl: true`), l2 (features up to l = 2, `l_max: 2`), cap (the spin cap on
gpaw-pbe, `spin_cap: [gpaw-pbe]`: the slab is evaluated spin on in gpaw-pbe, so it pays the
spin-off pass).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import replace

import torch
from ase import Atoms
from ase.build import add_adsorbate, fcc111

from catscreen.model.api import ModelInfo
from catscreen.model.checkpoint import CatscreenModel
from catscreen.model.network import CatscreenNet, ModelConfig

ELEMENTS = ("H", "C", "N", "O", "Fe", "Co", "Ni", "Cu", "Ru", "Rh", "Pd", "Ag", "Ir", "Pt", "Au")
FIDELITIES = ("chgnet-pbe", "chgnet-r2scan", "gpaw-pbe")


def slab() -> Atoms:
    atoms = fcc111("Ni", (3, 3, 4), vacuum=7.5)
    add_adsorbate(atoms, "O", 1.2, "fcc")
    return atoms


def timed(fn: Callable[[], object], min_time: float = 3.0, min_calls: int = 3) -> float:
    """Seconds per call: the fastest of repeated calls after one warm-up call.

    The fastest call is the least disturbed by other processes on a shared machine.
    """
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - start < min_time:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def ours(config: ModelConfig, dtype: torch.dtype, compile_: bool) -> CatscreenModel:
    net = CatscreenNet(config, ELEMENTS, FIDELITIES).to(dtype)
    if compile_:
        net.atomic_outputs = torch.compile(net.atomic_outputs, dynamic=True)
    info = ModelInfo(
        name="catscreen",
        version="bench",
        fidelities=FIDELITIES,
        default_fidelity=FIDELITIES[-1],
        spin_conditioned=True,
        predicts_magmoms=True,
        n_heads=config.n_heads,
        elements=ELEMENTS,
    )
    return CatscreenModel(net, info, {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--variants",
        default="fp32",
        help="comma-separated: fp32, fp64, compile, c2, c3, c3v, zbl, c3zbl, l2, cap; or all",
    )
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--no-chgnet", action="store_true")
    args = parser.parse_args()
    config = ModelConfig()
    variants = ["fp32", "fp64", "compile"] if args.variants == "all" else args.variants.split(",")
    product = {
        "c2": {"correlation": 2, "last_layer_vectors": False},
        "c3": {"correlation": 3, "last_layer_vectors": False},
        "c3v": {"correlation": 3, "last_layer_vectors": True},
        "zbl": {"zbl": True},
        "c3zbl": {"correlation": 3, "last_layer_vectors": False, "zbl": True},
        "l2": {"l_max": 2},
        "cap": {"spin_cap": ("gpaw-pbe",)},
    }
    models = {}
    for v in variants:
        dtype = torch.float64 if v == "fp64" else torch.float32
        cfg = replace(config, **product.get(v, {}))
        models[f"catscreen-{v}"] = ours(cfg, dtype, compile_=v == "compile")
    if not args.no_chgnet:
        from catscreen.model.chgnet_adapter import load_chgnet

        models["chgnet"] = load_chgnet("chgnet")
    print(f"default config: {config}")
    for name, m in models.items():
        if name != "chgnet":
            print(f"  {name}: {m.net.n_parameters} parameters")
    one = [slab()]
    many = one * args.batch
    n_atoms = len(one[0])
    rows = []
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for name, model in models.items():
            fid = model.info.default_fidelity
            for label, structs in (("single", one), (f"batch{args.batch}", many)):
                sec = timed(
                    lambda m=model, s=structs, f=fid: m.predict(s, ["on"] * len(s), [f] * len(s))
                )
                rows.append((threads, name, label, sec, n_atoms * len(structs) / sec))
                print(
                    f"  measured {threads} thread(s) {name} {label}: {sec * 1e3:.1f} ms", flush=True
                )
    print(
        f"\n{'threads':>7} {'model':<18} {'input':<8} {'ms/call':>9} {'atom-steps/s':>13} {'x chgnet':>9}"
    )
    ref = {(t, lab): aps for t, n, lab, _, aps in rows if n == "chgnet"}
    for threads, name, label, sec, aps in rows:
        ratio = f"{aps / ref[(threads, label)]:.1f}" if (threads, label) in ref else "-"
        print(f"{threads:>7} {name:<18} {label:<8} {sec * 1e3:>9.1f} {aps:>13.0f} {ratio:>9}")


if __name__ == "__main__":
    main()
