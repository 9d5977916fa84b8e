"""The rank stage as a Python API: results table in, ranked tables and DFT flags out.

`rank_results(results, RankSettings(...))` is what `catscreen rank` and the campaign runner
call; `write_rank_outputs` writes the tables atomically with the exact reference scheme,
targets, thresholds and tolerances in the parquet metadata.
"""

from __future__ import annotations

import math
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from catscreen import code_version
from catscreen.analysis.anomalies import (
    DEFAULT_BOND_TOLERANCE,
    LAYER_SLIDE,
    RECONSTRUCTION_CUSHION,
    SLAB_DISPLACEMENT,
)
from catscreen.analysis.candidates import Candidate, candidate_of, find_candidate
from catscreen.analysis.energies import REQUIRED, adsorption_table
from catscreen.analysis.flags import flag_configs
from catscreen.analysis.ranking import Target, apply_targets, descriptor_table, system_table
from catscreen.analysis.references import References, default_references
from catscreen.errors import CatscreenError
from catscreen.io import atomic_path, parquet_table, read_parquet
from catscreen.model.api import domain_warnings

MAX_BOND_TOLERANCE = 3.0
UNCERTAINTY_MODEL = (
    "std over ensemble heads of each head's E_ads = E_adslab - E_slab - sum_m w_m E_m "
    "(w_m the gas-molecule weights; fixed potentials' stds added in quadrature); rows without "
    "head energies: independent errors, var(E_ads) = std_adslab^2 + std_slab^2 + "
    "sum_m w_m^2 std_m^2. Relative descriptors, the distance and the gap between neighbours "
    "in the ranking: spread over heads as well (linearised), what heads do not carry added "
    "as independent"
)
# Columns too bulky for the per-configuration table; flagged.parquet keeps them for DFT.
DFT_COLUMNS = ("slab_structure", "reference_weights", "reference_structures")


RANK_TABLES = ("ranked", "systems", "adsorption", "flagged")  # <name>.parquet each


@dataclass
class RankSettings:
    """Everything that decides a ranking; recorded verbatim in the output metadata."""

    references: References = field(default_factory=default_references)
    targets: dict[str, Target] = field(default_factory=dict)
    reference_candidate: str | None = None  # e.g. "Ru(0001)"; descriptors become relative
    default_tolerance: float = 0.2  # eV, for targets given without one and for --reference
    keep_anomalies: bool = False
    bond_tolerance: float = DEFAULT_BOND_TOLERANCE
    top_k: int = 5
    uncertainty_threshold: float = 0.15  # eV on E_ads std
    flip_sigma: float = 1.0
    spin: str | None = None  # only the rows of this spin context (`rank --spin`)

    def __post_init__(self) -> None:
        positive = {
            "tolerance": self.default_tolerance,
            "bond tolerance": self.bond_tolerance,
            "uncertainty threshold": self.uncertainty_threshold,
        }
        for name, value in positive.items():
            if not 0 < value < math.inf:
                raise CatscreenError(f"the {name} must be positive and finite, got {value}")
        if not 0 < self.bond_tolerance <= MAX_BOND_TOLERANCE:  # 60: 7 GB, still running at 150 s
            raise CatscreenError(
                f"the bond tolerance is a multiple of covalent radii sums, at most "
                f"{MAX_BOND_TOLERANCE:g} (AdsorbML's cutoffs are 1.5-1.7), got {self.bond_tolerance}"
            )
        if not 0 <= self.flip_sigma < math.inf or self.top_k < 0:  # NaN flagged nothing
            raise CatscreenError("--flip-sigma must be finite, and it and --top-k not negative")
        wrong = [k for k, v in self.targets.items() if not isinstance(v, Target)]
        if wrong:  # {"O": -1.0}: an AttributeError deep in the ranking
            raise CatscreenError(
                f"targets[{wrong[0]!r}] is {self.targets[wrong[0]]!r}, not a Target(value, "
                "tolerance)"
            )

    def as_metadata(self) -> dict[str, Any]:
        meta = asdict(self)
        meta["references"] = self.references.as_metadata()
        meta["targets"] = {k: asdict(v) for k, v in self.targets.items()}
        meta["uncertainty_model"] = UNCERTAINTY_MODEL
        meta["bond_criterion"] = (
            f"d < (r_cov_i + r_cov_j) * {self.bond_tolerance} (ASE covalent radii); a slab "
            f"bond formed or broken only across {RECONSTRUCTION_CUSHION} x that cutoff; "
            f"reconstructed also when a slab atom ends over {SLAB_DISPLACEMENT} A from its "
            f"place in the relaxed clean slab, or the surface layer shifts sideways as a whole "
            f"by over {LAYER_SLIDE} A"
        )
        return meta


@dataclass
class RankOutput:
    configs: pd.DataFrame  # every non-failed adslab: E_ads, std, anomalies, flags
    systems: pd.DataFrame  # per system: minimum, site, spread
    ranked: pd.DataFrame  # per candidate: descriptors, distance, sorted
    flagged: pd.DataFrame  # flagged configurations with what DFT needs
    counts: dict[str, int]
    metadata: dict[str, Any]


def read_results(path: str | Path) -> pd.DataFrame:
    return read_parquet(path, required=REQUIRED)


def of_configs(results: pd.DataFrame, config_ids: set[str]) -> pd.DataFrame:
    """The rows of these configurations, and the gas references (no configuration file holds
    them): a table resumed across recipe changes holds earlier runs' placements too."""
    return results[results.config_id.astype(str).isin(config_ids) | (results.kind == "gas")]


def rank_results(
    results: pd.DataFrame, settings: RankSettings | None = None, source: Path | None = None
) -> RankOutput:
    """Adsorption energies, anomalies, minima, descriptor ranking and DFT flags; `source`, the
    results file, is recorded in the tables' metadata."""
    settings = settings or RankSettings()
    if settings.spin is not None:
        results = results[results.spin.astype(str) == settings.spin]
        if results.empty:
            raise CatscreenError(f"{source or 'the results'}: no rows with spin {settings.spin}")
    configs, counts = adsorption_table(results, settings.references, settings.bond_tolerance)
    configs["valid"] = (
        ~configs.anomalous if not settings.keep_anomalies else pd.Series(True, configs.index)
    )
    configs, copies = split_reference_copies(configs, results)
    counts["adslabs"] -= len(copies)  # those ranked
    counts["reference_copies"] = len(copies)
    reference = None
    if settings.reference_candidate is not None:
        known = sorted(
            {candidate_of(r.bulk, r.miller, r.termination) for r in configs.itertuples()}
        )
        reference = _reference(settings.reference_candidate, known, results)
    systems = system_table(configs)
    copy_systems = system_table(copies) if len(copies) else None
    contexts = descriptor_table(copy_systems) if copy_systems is not None else None
    if contexts is not None:
        contexts = contexts[contexts.candidate == reference]  # an earlier reference's: unused
    ranked, targets = apply_targets(
        descriptor_table(systems),
        settings.targets,
        reference,
        settings.default_tolerance,
        contexts,
    )
    configs = flag_configs(
        configs,
        ranked,
        list(targets),
        settings.top_k,
        settings.uncertainty_threshold,
        settings.flip_sigma,
    )
    flagged = configs[configs.flagged].reset_index(drop=True)
    counts.update(
        anomalous=int(configs.anomalous.sum()),
        flagged=len(flagged),
        systems=len(systems),
        candidates=len(ranked),
    )
    metadata = {
        "stage": "rank",
        "catscreen": code_version(),
        "results_file": str(source.resolve()) if source is not None else None,
        # what was ranked: one model, version and fidelity (checked), the spin contexts
        "results": {
            col: sorted(results[col].astype(str).unique())
            for col in ("model", "model_version", "fidelity", "spin")
        },
        "settings": settings.as_metadata(),
        "effective_targets": {k: asdict(v) for k, v in targets.items()},
        "reference_candidate": reference,
        # the reference's minima in the other spin contexts candidates were compared with
        "reference_contexts": []
        if contexts is None
        else [
            {
                "spin": r["spin"],
                **{c: float(r[c]) for c in r.index if c.startswith("E_")},
                "minima": _copy_minima(copy_systems, reference, r["spin"]),  # type: ignore[arg-type]
            }
            for _, r in contexts.iterrows()
        ],
        "counts": counts,
    }
    return RankOutput(
        configs=configs.drop(columns=list(DFT_COLUMNS)),
        systems=systems,
        ranked=ranked,
        flagged=flagged,
        counts=counts,
        metadata=metadata,
    )


def split_reference_copies(
    configs: pd.DataFrame, results: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The placements relaxed as copies of a reference surface in another spin context
    (spin_mode 'reference', `relax --reference`) set apart from the ranked ones: they only
    serve as the reference for candidates in that context. A surface with no rows of its own
    here (`--spin` picked the copies' context) is ranked from its copies."""
    if "spin_mode" not in results.columns:
        return configs, configs.iloc[:0]
    marked = results[results.spin_mode.astype(str) == "reference"]
    keys = set(zip(marked.config_id.astype(str), marked.spin.astype(str), strict=True))
    is_copy = pd.Series(
        [(c, s) in keys for c, s in zip(configs.config_id, configs.spin, strict=True)],
        index=configs.index,
    )
    own = set(configs.loc[~is_copy, "candidate"])
    is_copy &= configs.candidate.isin(own)
    return configs[~is_copy], configs[is_copy]


def _copy_minima(systems: pd.DataFrame, reference: str | None, spin: str) -> dict[str, dict]:
    """Which placement each of the reference's copies in `spin` took its minimum from: they
    are in no table (not ranked), and a copy's minimum may sit on another site than the
    reference's own (H on Pt(111) spin-on: an fcc start that ended on the bridge)."""
    rows = systems[(systems.candidate == reference) & (systems.spin == spin)]
    return {
        str(r.adsorbate): {
            "config_id": str(r.best_config_id),
            "site_type": str(r.best_site_type),
            "final_site_type": str(r.best_final_site_type),
        }
        for r in rows.itertuples()
        if isinstance(r.best_config_id, str) and r.best_config_id
    }


def _reference(text: str, known: list[Candidate], results: pd.DataFrame) -> str:
    """The reference candidate among those ranked; one in the results without a ranked
    placement is named as such (it was "not in this run" when its gas reference failed)."""
    try:
        return find_candidate(text, known).name
    except CatscreenError:
        adslabs = results[results.kind == "adslab"]
        present = {candidate_of(r.bulk, r.miller, r.termination) for r in adslabs.itertuples()}
        find_candidate(text, sorted(present))  # not in the results at all: said so
        raise CatscreenError(
            f"reference candidate {text!r} has no adsorption energy: its placements failed, or "
            "its clean slab or a gas reference did (see the failed rows of the results)"
        ) from None


def uncertainty_note(output: RankOutput) -> str | None:
    """A model without an ensemble (CHGNet, EMT) gives every E_ads a std of 0: not "certain"
    but unknown, so the uncertainty and rank-flip flags cannot fire; say so once. Rows whose
    std the results leave empty (NaN) count as 0 too, so they are counted."""
    if len(output.configs) and (output.configs.e_ads_std == 0).all():
        model = output.configs.model.iloc[0]
        return (
            f"model {model} gives no uncertainty (no ensemble): every E_ads std is 0, so only "
            "the top-k flags DFT checks, not the uncertainty or rank-flip rules"
        )
    if unknown := output.counts.get("std_unknown", 0):
        return (
            f"{unknown} of {output.counts['adslabs']} placements have an empty energy_std (and no "
            "head energies) in a row they need: taken as 0, their uncertainty flags may miss"
        )
    return None


def domain_notes(results: pd.DataFrame, spin: str | None = None) -> list[str]:
    """What relax warned of the rows being ranked (surfaces outside the model's training,
    hosts it measured poor; of one spin context with `spin`), said again beside their
    numbers: each row keeps its `domain`."""
    if "domain" not in results.columns:  # tables from before the column
        return []
    rows = results[(results.kind != "gas") & (results.status != "failed")]
    if spin is not None:
        rows = rows[rows.spin.astype(str) == spin]
    model = ", ".join(sorted(rows.model.astype(str).unique()))
    names = rows.config_id
    for column in ("formula", "bulk"):  # a user's file has no bulk name: its formula
        if column in rows:
            names = rows[column].where(rows[column].notna() & (rows[column] != ""), names)
    domains = rows.domain.fillna("").astype(str)
    return domain_warnings(model, zip(names.astype(str), domains, strict=True))


def rank_output_paths(out_dir: str | Path) -> dict[str, Path]:
    """Where `write_rank_outputs` writes, known before ranking (the CLI checks its input is
    none of them)."""
    return {name: Path(out_dir) / f"{name}.parquet" for name in RANK_TABLES}


def write_rank_outputs(output: RankOutput, out_dir: str | Path) -> dict[str, Path]:
    """ranked.parquet, systems.parquet, adsorption.parquet, flagged.parquet (atomic)."""
    paths = rank_output_paths(out_dir)
    tables = {
        "ranked": output.ranked,
        "systems": output.systems,
        "adsorption": output.configs,
        "flagged": output.flagged,
    }
    # every table written beside its file first, the four renames last and back to back: a
    # kill while one table was serialised left the others of the previous run beside it
    with ExitStack() as stack:
        for name, path in paths.items():
            tmp = stack.enter_context(atomic_path(path))
            pq.write_table(parquet_table(tables[name], {**output.metadata, "table": name}), tmp)
    return paths
