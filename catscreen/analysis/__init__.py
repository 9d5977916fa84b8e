"""Adsorption energies, anomalies, ranking, uncertainty and DFT-validation flags (`catscreen rank`)."""

from catscreen.analysis.rank import (
    RankOutput,
    RankSettings,
    domain_notes,
    of_configs,
    rank_output_paths,
    rank_results,
    read_results,
    uncertainty_note,
    write_rank_outputs,
)
from catscreen.analysis.ranking import (
    Target,
    absolute_offset_note,
    context_offset_note,
    parse_target,
    parse_targets,
)
from catscreen.analysis.references import References, load_references

__all__ = [
    "RankOutput",
    "RankSettings",
    "References",
    "Target",
    "absolute_offset_note",
    "context_offset_note",
    "domain_notes",
    "load_references",
    "of_configs",
    "parse_target",
    "parse_targets",
    "rank_output_paths",
    "rank_results",
    "read_results",
    "uncertainty_note",
    "write_rank_outputs",
]
