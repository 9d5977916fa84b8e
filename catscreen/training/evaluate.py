"""`catscreen evaluate MODEL DATA`: errors of a model against labelled frames, and a parity plot.

Errors are broken down per source, fidelity, spin and element because an average over a mixed
dataset hides exactly the failures that matter (a magnetic element, one level of theory).
`held_out=True` keeps only the systems the checkpoint recorded as its validation split.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from ase import Atoms

from catscreen.errors import CatscreenError
from catscreen.io import atomic_path
from catscreen.model import Model
from catscreen.training.datasets import ContextDefaults, label_energy, load_frames
from catscreen.training.trainer import is_validation


@dataclass
class Evaluation:
    frames: pd.DataFrame  # one row per frame: context, energies, force error
    atoms: pd.DataFrame  # one row per atom: element, force component errors (for the table)
    parity: dict[str, np.ndarray]  # reference and predicted per-atom energies and forces


def evaluate_frames(model: Model, frames: Sequence[Atoms], chunk: int = 64) -> Evaluation:
    """Predict every frame in its own context and collect per-frame and per-atom errors."""
    if not frames:
        raise CatscreenError("no frames to evaluate")
    unlabelled = [
        k for k, a in enumerate(frames) if a.calc is None or "forces" not in a.calc.results
    ]
    if unlabelled:
        raise CatscreenError(
            f"{len(unlabelled)} frame(s) have no force labels (first: frame {unlabelled[0]}, "
            f"sid {frames[unlabelled[0]].info.get('sid')}); evaluate needs labelled frames"
        )
    for k, a in enumerate(frames):  # pandas' means skip NaN: an MAE over fewer frames than said
        if not (np.isfinite(label_energy(a)) and np.isfinite(a.calc.results["forces"]).all()):
            raise CatscreenError(
                f"frame {k} (sid {a.info.get('sid')}) has a non-finite energy or force label"
            )
    rows, atom_rows = [], []
    f_ref_all, f_pred_all = [], []
    for start in range(0, len(frames), chunk):
        part = list(frames[start : start + chunk])
        preds = model.predict(
            part, [a.info["spin"] for a in part], [a.info["fidelity"] for a in part]
        )
        for a, p in zip(part, preds, strict=True):
            res = a.calc.results
            n = len(a)
            f_ref = np.asarray(res["forces"], dtype=float)
            df = np.abs(p.forces - f_ref)
            rows.append(
                {
                    "source": a.info["source"],
                    "fidelity": a.info["fidelity"],
                    "spin": a.info["spin"],
                    "sid": a.info["sid"],
                    "kind": str(a.info.get("kind", "")),
                    "formula": a.get_chemical_formula(),
                    "elements": ",".join(sorted(set(a.get_chemical_symbols()))),
                    "n_atoms": n,
                    "energy_ref": label_energy(a),
                    "energy_pred": p.energy,
                    "energy_std": p.energy_std,
                    "energy_error_per_atom": (p.energy - label_energy(a)) / n,
                    "force_mae": float(df.mean()),
                }
            )
            for sym, err in zip(a.get_chemical_symbols(), df, strict=True):
                atom_rows.append(
                    {
                        "source": a.info["source"],
                        "fidelity": a.info["fidelity"],
                        "spin": a.info["spin"],
                        "kind": str(a.info.get("kind", "")),
                        "element": sym,
                        "force_abs_error": float(err.mean()),
                    }
                )
            f_ref_all.append(f_ref.ravel())
            f_pred_all.append(p.forces.ravel())
    df_frames = pd.DataFrame(rows)
    parity = {
        "energy_ref": (df_frames.energy_ref / df_frames.n_atoms).to_numpy(),
        "energy_pred": (df_frames.energy_pred / df_frames.n_atoms).to_numpy(),
        "fidelity": df_frames.fidelity.to_numpy(),
        "force_ref": np.concatenate(f_ref_all),
        "force_pred": np.concatenate(f_pred_all),
    }
    return Evaluation(df_frames, pd.DataFrame(atom_rows), parity)


def spin_pair_table(
    model: Model,
    frames: Sequence[Atoms],
    spins: tuple[str, str] = ("off", "on"),
    fidelity: str = "gpaw-pbe",
    couplings: dict[str, float] | None = None,
) -> pd.DataFrame:
    """The model's E(on) - E(off) against the labels' per system with both spins among `frames`
    (GPAW spin pairs, grouped by info["sid"]), one row per system in the order of `frames`.

    The spin-off frame is predicted in context (spins[0], fidelity), the spin-on frame in
    (spins[1], fidelity): a model trained without conditioning is asked ("off", "off") in its
    one fidelity. Each pair is its own call. Columns: sid, dft, model, error (model - dft; eV),
    and the largest site moment of the spin-on frame by DFT and by the model's moment head
    (moment_dft, moment_model; muB). With `couplings` (`fit_moment_couplings`), also the
    Stoner-like spin energy from the DFT moments and from the model's (stoner_dft,
    stoner_model; eV): which of moments and energy a model gets wrong.
    """
    rows = []
    for sid, pair in _pairs(frames).items():
        p_off, p_on = model.predict([pair["off"], pair["on"]], list(spins), [fidelity] * 2)
        labelled = _moments(pair["on"])
        row = {
            "sid": sid,
            "dft": label_energy(pair["on"]) - label_energy(pair["off"]),
            "model": p_on.energy - p_off.energy,
            "moment_dft": _largest(labelled),
            "moment_model": _largest(p_on.magmoms),
        }
        if couplings is not None:
            symbols = pair["on"].get_chemical_symbols()
            row["stoner_dft"] = moment_spin_energy(symbols, labelled, couplings)
            row["stoner_model"] = moment_spin_energy(symbols, p_on.magmoms, couplings)
        rows.append(row)
    columns = ["sid", "dft", "model", "moment_dft", "moment_model"]
    columns += [] if couplings is None else ["stoner_dft", "stoner_model"]
    table = pd.DataFrame(rows, columns=columns)
    return table.assign(error=table.model - table.dft)


def adsorption_spin_parts(table: pd.DataFrame) -> pd.DataFrame:
    """The spin part of adsorption energies from a `spin_pair_table`: for each adsorbate pair
    `PREFIX-ADS` with a clean pair `PREFIX-clean` of the same cell, E_spin(adsorbate+slab) -
    E_spin(clean slab), by DFT and by the model (the closed-shell gas references have none).

    Why: an adsorption energy subtracts the clean slab, so what a screening sees of the spin
    condition is this difference, not either pair's spin energy. Columns: sid (the adsorbate
    pair's), clean (the clean pair's sid), dft, model, error (model - dft; eV).
    """
    if table.sid.duplicated().any():
        raise CatscreenError("a spin-pair table holds one row per sid")
    by_sid = table.set_index("sid")
    rows = []
    for sid in table.sid:
        prefix, _, adsorbate = sid.rpartition("-")
        clean = f"{prefix}-clean"
        if adsorbate != "clean" and clean in by_sid.index:
            ads, ref = by_sid.loc[sid], by_sid.loc[clean]
            rows.append((sid, clean, ads.dft - ref.dft, ads.model - ref.model))
    parts = pd.DataFrame(rows, columns=["sid", "clean", "dft", "model"])
    return parts.assign(error=parts.model - parts.dft)


def fit_moment_couplings(frames: Sequence[Atoms], elements: Sequence[str]) -> dict[str, float]:
    """I per element of E(on) - E(off) = -sum_i I m_i^2 / 4 over the atoms of `elements`, by
    least squares on the spin pairs among `frames` with their labelled (DFT) moments.

    Why: at the minimum of a Landau energy -A m^2 + B m^4 the energy is -A m0^2 / 2, so a
    few numbers and the moments alone predict spin energies; a model's spin energy can be
    set against what its own moments would give. Elements with no atom in a pair are left out.
    """
    pairs = _pairs(frames)
    x = np.zeros((len(pairs), len(elements)))
    for row, p in zip(x, pairs.values(), strict=True):
        row[:] = _stoner_features(p["on"].get_chemical_symbols(), _moments(p["on"]), elements)
    y = np.array([label_energy(p["on"]) - label_energy(p["off"]) for p in pairs.values()])
    used = np.abs(x).sum(axis=0) > 0
    if not used.any():
        raise CatscreenError(f"no spin pair with moments on {', '.join(elements)} to fit")
    coef = np.linalg.lstsq(x[:, used], y, rcond=None)[0]
    return dict(zip(np.asarray(elements)[used].tolist(), coef.tolist(), strict=True))


def moment_spin_energy(
    symbols: Sequence[str], moments: np.ndarray | None, couplings: dict[str, float]
) -> float:
    """-sum_i I m_i^2 / 4 (eV) over the atoms whose element has a coupling; NaN without moments."""
    if moments is None:
        return float("nan")
    features = _stoner_features(symbols, moments, list(couplings))
    return float(features @ np.array(list(couplings.values()), dtype=float))


def _stoner_features(
    symbols: Sequence[str], moments: np.ndarray | None, elements: Sequence[str]
) -> np.ndarray:
    """-sum m_i^2 / 4 over the atoms of each of `elements` (zeros without moments)."""
    if moments is None:
        return np.zeros(len(elements))
    m2 = np.asarray(moments, dtype=float).reshape(-1) ** 2
    symbols = np.asarray(symbols)
    return np.array([-0.25 * m2[symbols == el].sum() for el in elements])


def _pairs(frames: Sequence[Atoms]) -> dict[str, dict[str, Atoms]]:
    """sid -> {"off": frame, "on": frame}, for the systems that have both spins."""
    by_sid: dict[str, dict[str, Atoms]] = {}
    for a in frames:
        by_sid.setdefault(a.info["sid"], {})[a.info["spin"]] = a
    return {sid: pair for sid, pair in by_sid.items() if set(pair) == {"off", "on"}}


def _moments(atoms: Atoms) -> np.ndarray | None:
    return atoms.calc.results.get("magmoms") if atoms.calc is not None else None


def _largest(moments: np.ndarray | None) -> float:
    """The largest site moment by size (muB); NaN where there are none."""
    return float(np.abs(moments).max()) if moments is not None and len(moments) else float("nan")


def system_bootstrap(
    samples: Sequence[Mapping[str, Sequence[float]]],
    statistic: Callable[[np.ndarray], float] = np.mean,
    resamples: int = 2000,
    seed: int = 0,
) -> np.ndarray:
    """`statistic` of each sample's values pooled over systems drawn with replacement:
    an array (resamples, len(samples)); every sample sees the same draw (paired).

    Why systems, not values: the placements of one system share a slab, an adsorbate and often
    a basin, so their errors are not independent, and 41 systems, not 154 placements, set how
    far a benchmark figure can move. Each sample maps system -> values (one per placement, or
    a single one per system for a success flag); all must name the same systems.
    """
    if not samples:
        raise CatscreenError("system_bootstrap needs at least one sample")
    systems = sorted(samples[0])
    for other in samples[1:]:
        if sorted(other) != systems:
            diff = sorted(set(systems) ^ set(other))
            raise CatscreenError(f"samples name different systems: {', '.join(diff[:5])}")
    if not systems:
        raise CatscreenError("system_bootstrap needs at least one system")
    values = [[np.asarray(s[k], dtype=float).reshape(-1) for k in systems] for s in samples]
    rng = np.random.default_rng(seed)
    out = np.empty((resamples, len(samples)))
    for i in range(resamples):
        idx = rng.integers(0, len(systems), len(systems))
        for j, per_system in enumerate(values):
            out[i, j] = statistic(np.concatenate([per_system[k] for k in idx]))
    return out


def interval(draws: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central percentile interval of bootstrap draws."""
    tail = 50.0 * (1.0 - level)
    lo, hi = np.percentile(draws, [tail, 100.0 - tail])
    return float(lo), float(hi)


def summary(ev: Evaluation) -> pd.DataFrame:
    """MAE table: energy meV/atom and force eV/A, overall and per source, fidelity, spin, kind
    (gas, bulk, slab, adslab; when the frames say) and element.

    Energy per element averages over frames that contain the element; force per element
    averages over atoms of that element.
    """
    f, a = ev.frames.assign(e_abs=lambda d: d.energy_error_per_atom.abs() * 1000), ev.atoms
    out = [
        {
            "group": "all",
            "value": "all",
            "frames": len(f),
            "energy_mae_meV_atom": f.e_abs.mean(),
            "force_mae_eV_A": a.force_abs_error.mean(),
        }
    ]
    for key in ("source", "fidelity", "spin", "kind"):
        for value, g in f.groupby(key):
            if key == "kind" and not value:
                continue
            out.append(
                {
                    "group": key,
                    "value": value,
                    "frames": len(g),
                    "energy_mae_meV_atom": g.e_abs.mean(),
                    "force_mae_eV_A": a[a[key] == value].force_abs_error.mean(),
                }
            )
    for (fid, spin), g in f.groupby(["fidelity", "spin"]):
        sel = a[(a.fidelity == fid) & (a.spin == spin)]
        out.append(
            {
                "group": "fidelity/spin",
                "value": f"{fid}/{spin}",
                "frames": len(g),
                "energy_mae_meV_atom": g.e_abs.mean(),
                "force_mae_eV_A": sel.force_abs_error.mean(),
            }
        )
    for el in sorted(a.element.unique()):
        g = f[f.elements.str.split(",").apply(lambda s, el=el: el in s)]
        out.append(
            {
                "group": "element",
                "value": el,
                "frames": len(g),
                "energy_mae_meV_atom": g.e_abs.mean(),
                "force_mae_eV_A": a[a.element == el].force_abs_error.mean(),
            }
        )
    return pd.DataFrame(out)


def parity_plot(ev: Evaluation, path: str | Path, title: str = "") -> Path:
    """Energy per atom and force component parity, coloured by fidelity; PNG via Agg."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = ev.parity
    fig, (ax_e, ax_f) = plt.subplots(1, 2, figsize=(10, 4.5))
    for fid in sorted(set(p["fidelity"])):
        m = p["fidelity"] == fid
        ax_e.scatter(p["energy_ref"][m], p["energy_pred"][m], s=6, alpha=0.6, label=fid)
    ax_f.scatter(p["force_ref"], p["force_pred"], s=2, alpha=0.3)
    for ax, name in ((ax_e, "energy (eV/atom)"), (ax_f, "force component (eV/A)")):
        lo = min(ax.get_xlim()[0], ax.get_ylim()[0])
        hi = max(ax.get_xlim()[1], ax.get_ylim()[1])
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlabel(f"reference {name}")
        ax.set_ylabel(f"model {name}")
    ax_e.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(path)
    try:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)
    return out


def held_out_rule(model: Model) -> Callable[[str], bool]:
    """Whether a system id is held out from a catscreen checkpoint: on the validation side of
    its recorded split and never trained on. Applying the split rule, not only the recorded
    list, lets data made after training (a later generator pass) be judged the same way."""
    data = getattr(model, "metadata", {}).get("metadata", {}).get("training_data", {})
    recorded = data.get("validation_systems")
    if recorded is None:
        raise CatscreenError(f"model {model.info.name} records no validation systems")
    trained, seed = data.get("training_systems"), data.get("split_seed")
    if trained is None or seed is None:  # checkpoints that record only the list
        return set(recorded).__contains__
    trained, fraction = set(trained), data["validation_fraction"]
    return lambda sid: is_validation(sid, fraction, seed) and sid not in trained


def load_eval_frames(
    paths: Sequence[str | Path],
    model: Model,
    held_out: bool,
    defaults: ContextDefaults = ContextDefaults(),
) -> list[Atoms]:
    """Frames from files/folders, restricted to the model's held-out systems when asked;
    `defaults` fills context the files do not state (AQCat25-style databases)."""
    frames = [a for p in paths for a in load_frames(p, defaults)]
    if held_out:
        held = held_out_rule(model)
        frames = [a for a in frames if held(a.info["sid"])]
        if not frames:
            raise CatscreenError("none of the frames belongs to the model's held-out systems")
    fids = set(model.info.fidelities)
    skipped = {a.info["fidelity"] for a in frames} - fids
    if skipped:
        raise CatscreenError(
            f"the data has fidelities {sorted(skipped)} the model does not know ({sorted(fids)})"
        )
    return frames
