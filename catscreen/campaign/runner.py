"""`run_campaign`: enumerate -> relax -> rank (+ DFT inputs) -> summary, resumable, in one folder.

Layout of a campaign folder DIR:

    recipe.yaml           the recipe as given (its hashes decide what reruns)
    campaign.json         stage log: hash, status, times, files, counts per stage
    enumerate/            configs.parquet + configs.extxyz
    results.parquet       relaxations (the relax stage resumes row by row by itself)
    rank/                 ranked, systems, adsorption, flagged .parquet; dft/<engine>/...
    leaderboard.csv       the ranking in the recipe's descriptor names, and the model
    summary.md            the Markdown summary (also appended to $GITHUB_STEP_SUMMARY)
    campaign.lock         while a run writes the folder (a second run is refused)

A stage is skipped when the log says it finished with the same hash and its files exist. The
hashes chain (relax includes enumerate's, rank includes relax's), so changing a target reruns
only rank (as does another catscreen version or commit), and changing the model (its name
or its weights) reruns relax and rank; a stage that reruns marks the later ones stale until
they rerun too. The relax stage reuses every finished row that still applies (adding a
candidate relaxes only the new one; a higher step limit only the rows that stopped at the
old one); results made with another model, spin, fidelity, optimizer, fmax or a step limit
above the recipe's are kept aside as results.<hash>.parquet (results.old.parquet
without a stage log; .1, .2, ... never onto an earlier one) rather than mixed with new ones.
Rank uses the rows of the current configurations only.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from catscreen import code_version
from catscreen.analysis import (
    RankSettings,
    domain_notes,
    of_configs,
    rank_results,
    read_results,
    uncertainty_note,
    write_rank_outputs,
)
from catscreen.analysis.anomalies import anomaly_rules
from catscreen.analysis.candidates import candidate_of, find_candidate
from catscreen.campaign.baseline import Baseline, Comparison, compare, read_baseline
from catscreen.campaign.enumerate_adapter import check_recipe_inputs, enumerate_recipe
from catscreen.campaign.leaderboard import (
    board_warnings,
    build_leaderboard,
    descriptor_targets,
    rank_targets,
)
from catscreen.campaign.recipe import (
    Recipe,
    find_recipe,
    load_recipe,
    parse_recipe,
    section_hash,
)
from catscreen.campaign.state import (
    STATE_FILE,
    CampaignState,
    StageRecord,
    load_state,
    now,
    save_state,
)
from catscreen.campaign.summary import render_summary
from catscreen.dft import DftSettings, write_dft_inputs
from catscreen.dft.tasks import foreign_files
from catscreen.errors import CatscreenError, first_line
from catscreen.io import atomic_path, read_parquet, read_parquet_metadata
from catscreen.model.api import ModelInfo, check_model_name, spin_conditioned
from catscreen.workflow import RelaxSettings, relax_configurations
from catscreen.workflow.executors import check_scheduler
from catscreen.workflow.inputs import config_ids
from catscreen.workflow.jobs import cached_model
from catscreen.workflow.runner import unfinished
from catscreen.workflow.store import OutputLock

Log = Callable[[str], None]

RECIPE_COPY = "recipe.yaml"
ENUMERATE_DIR = "enumerate"
RESULTS = "results.parquet"
RANK_DIR = "rank"
LEADERBOARD = "leaderboard.csv"
SUMMARY = "summary.md"
LOCK_FILE = "campaign.lock"  # held by the one run writing the folder


@dataclass(frozen=True)
class RunOptions:
    """What the command line adds to a recipe; none of it changes a stage's result."""

    executor: str | None = None
    workers: int | None = None
    scheduler: str | None = None  # an existing Dask scheduler, as `relax --scheduler`
    ci: bool = False
    baseline: Path | None = None
    progress: bool = True


@dataclass
class Outcome:
    root: Path
    state: CampaignState
    board: pd.DataFrame
    summary: str
    summary_path: Path
    comparison: Comparison | None
    ran: list[str]
    skipped: list[str]


STAGES = ("enumerate", "relax", "rank")
# What decides a relaxation's result (batch size, executor and workers only decide its speed).
RELAX_KEYS = ("model", "spin", "fidelity", "optimizer", "fmax", "steps")


def stage_hashes(recipe: Recipe, model_version: str) -> dict[str, str]:
    """One hash per stage over what that stage depends on; `model_version` is the content hash
    of the weights, so new weights under the same name rerun relax; new anomaly rules or
    another catscreen (`code_version`: a commit in a checkout) rerun rank, which takes seconds:
    an upgrade's checks, flags and DFT inputs apply to a finished campaign's next run."""
    h_enum = section_hash(recipe, ("candidates", "facets", "slab", "adsorbates", "placement"))
    relax = recipe.relax.model_dump(exclude={"executor", "workers", "batch_size"})
    parent = f"{h_enum}|{sorted(relax.items())}|{model_version}"
    if (reference := _compared_with(recipe)) is not None:  # its copies in the other context
        parent += f"|reference {reference}"
    h_relax = section_hash(recipe, ("model",), parent=parent)
    ranked_by = f"{h_relax}|{anomaly_rules()}|{code_version()}"
    h_rank = section_hash(recipe, ("ranking", "validation"), parent=ranked_by)
    return {"enumerate": h_enum, "relax": h_relax, "rank": h_rank}


def read_campaign_recipe(root: Path, ranked: bool = False) -> Recipe:
    """The recipe copy in a campaign folder (candidate files are not needed after enumerate).

    `ranked`: the copy the rank stage ran with (rank/recipe.yaml), for what reads its outputs;
    DIR/recipe.yaml is the latest run's, which may have failed before rank (folders of older
    versions have only that one).
    """
    path = root / RECIPE_COPY
    if ranked and (root / RANK_DIR / RECIPE_COPY).is_file():
        path = root / RANK_DIR / RECIPE_COPY
    if not path.is_file():
        raise CatscreenError(
            f"{root} is not a campaign folder (no {RECIPE_COPY}); run `catscreen campaign run` first"
        )
    return parse_recipe(path.read_text(encoding="utf-8"), path)


def _rel(root: Path, paths: list[Path]) -> list[str]:
    return [str(p.relative_to(root)) for p in paths]


Body = Callable[[], tuple[list[Path], dict[str, int]]]


def _run_stage(
    state: CampaignState, root: Path, name: str, hash_: str, log: Log, body: Body, force: bool
) -> bool:
    """Run one stage unless it is done (`force`: an upstream stage ran, so its inputs changed);
    record it in the stage log however it ends."""
    if not force and state.is_done(name, hash_, root):
        log(f"{name}: up to date, skipped")
        return False
    prev = state.stages.get(name)
    runs = prev.runs + 1 if prev is not None and prev.hash == hash_ else 1
    record = StageRecord(
        status="running",
        hash=hash_,
        started=now(),
        runs=runs,
        host=socket.gethostname(),
        pid=os.getpid(),
        catscreen=code_version(),
    )
    state.stages[name] = record
    for later in STAGES[STAGES.index(name) + 1 :]:  # until they rerun, they follow the old recipe
        if later in state.stages and state.stages[later].status == "done":
            state.stages[later].status = "stale"
    save_state(root, state)
    t0 = time.perf_counter()
    try:
        files, counts = body()
    except BaseException as exc:  # interrupted or failed: the log must say so, then re-raise
        record.status = "failed"
        record.message = (  # SIGTERM arrives as one too: no failure of the stage itself
            "interrupted (Ctrl-C or SIGTERM); `campaign run` resumes it"
            if isinstance(exc, KeyboardInterrupt)
            else first_line(exc)
        )
        record.seconds = time.perf_counter() - t0
        save_state(root, state)
        raise
    record.status = "done"
    record.finished = now()
    record.seconds = round(time.perf_counter() - t0, 2)
    record.files = _rel(root, files)
    record.counts = counts
    save_state(root, state)
    log(
        f"{name}: done in {record.seconds:.1f} s ({', '.join(f'{k} {v}' for k, v in counts.items())})"
    )
    return True


def _reusable_steps(
    path: Path, now_: dict[str, object], version: str, default_fidelity: str | None
) -> int | None:
    """The step limit of a results file whose rows were made with these relax settings and
    model version but perhaps a lower step limit (its converged rows stand, the relax stage
    reruns those that stopped short); None when they were made otherwise. No fidelity and the
    model's default fidelity named explicitly are the same setting."""
    made = dict(read_parquet_metadata(path).get("settings", {}))
    now_ = dict(now_)
    if default_fidelity is not None:
        made["fidelity"] = made.get("fidelity") or default_fidelity
        now_["fidelity"] = now_["fidelity"] or default_fidelity
    versions = set(read_parquet(path, ("model_version",), columns=["model_version"]).model_version)
    steps = made.pop("steps", None)
    if not isinstance(steps, int) or steps > now_.pop("steps"):  # type: ignore[operator]
        return None
    same = all(made.get(k) == v for k, v in now_.items()) and versions <= {version}
    return steps if same else None


def _set_aside_stale_results(
    state: CampaignState,
    root: Path,
    settings: RelaxSettings,
    version: str,
    log: Log,
    default_fidelity: str | None = None,
) -> None:
    """Keep results.parquet when its rows were made as this recipe would make them (the relax
    stage then reuses them row by row; a lower step limit too, unless a table set aside was
    made with this one); otherwise move it aside, never mix the two, and bring back results set
    aside earlier that were made this way (a recipe changed and changed back)."""
    results = root / RESULTS
    now_ = {k: getattr(settings, k) for k in RELAX_KEYS}
    usable: dict[Path, int] = {}
    if results.exists():  # an unreadable one is an error: the user's results
        steps = _reusable_steps(results, now_, version, default_fidelity)
        if steps is not None:
            usable[results] = steps
    for kept in sorted(root.glob("results.*.parquet")):
        try:
            steps = _reusable_steps(kept, now_, version, default_fidelity)
        except (CatscreenError, OSError, ValueError):  # pyarrow's errors are ValueErrors
            continue  # an unreadable leftover is not ours to reuse
        if steps is not None:
            usable[kept] = steps
    # the table run nearest these settings: this step limit itself (a change back) before a
    # lower one, whose rows that stopped short rerun; the current table on a tie
    best = max(usable, key=lambda p: (usable[p], p == results), default=None)
    if best == results:
        return
    if results.exists():
        prev = state.stages.get("relax")
        label = prev.hash if prev is not None else "old"
        # never onto a table set aside before: without campaign.json every label was 'old',
        # and a kill after a rename left the next run the same hash
        aside = _unused(lambda n: root / f"results.{label}{f'.{n}' if n else ''}.parquet")
        results.rename(aside)
        log(f"relax: model or relax settings changed; kept the old results as {aside.name}")
    if best is not None:
        best.rename(results)
        log(f"relax: these settings were run before; reusing {best.name}")


def _relax_settings(recipe: Recipe, options: RunOptions, folder: Path) -> RelaxSettings:
    """The recipe's relax stage; a relative checkpoint path is found next to the recipe first,
    like its candidate files (the name as written is what the relax hash sees)."""
    executor = options.executor or recipe.relax.executor
    workers = options.workers or recipe.relax.workers
    if options.scheduler is not None:
        if options.workers is not None:  # it would be ignored: the cluster has its own
            raise CatscreenError(
                "--workers sets the processes of catscreen's own LocalCluster; an existing "
                "--scheduler has its own workers"
            )
        workers = None  # the recipe's are for catscreen's own cluster
    if executor == "local" and workers is not None and (options.workers or workers > 1):
        raise CatscreenError(  # the local executor runs one batch at a time
            f"{workers} workers need the dask executor (--executor dask, or relax.executor: "
            "dask in the recipe); the local one runs one batch at a time"
        )
    return RelaxSettings(
        model=recipe.model.name,
        model_base=str(folder),
        spin=recipe.model.spin,
        fidelity=recipe.model.fidelity,
        optimizer=recipe.relax.optimizer,
        fmax=recipe.relax.fmax,
        steps=recipe.relax.steps,
        batch_size=recipe.relax.batch_size,
        executor=executor,
        scheduler=options.scheduler,
        **({} if workers is None else {"workers": workers}),  # unset: relax's default
        reference=_compared_with(recipe),
    )


def _compared_with(recipe: Recipe) -> str | None:
    """The reference candidate relax also runs in the other spin context (`spin: auto` with a
    spin-conditioned model)."""
    ref = recipe.ranking.reference
    auto = recipe.model.spin == "auto" and spin_conditioned(recipe.model.name)
    return ref.candidate if ref is not None and auto else None


def _unused(name: Callable[[int], Path]) -> Path:
    """name(0), or the first of name(1), name(2), ... that does not exist: what is set aside
    never lands on what was set aside before."""
    n = 0
    while (path := name(n)).exists():
        n += 1
    return path


def _clear_dft_sets(folder: Path, log: Callable[[str], None]) -> None:
    """The last rank's DFT inputs make way for the new flags (no folder of an old flag stays);
    if anything there is not as catscreen wrote it (calculations run in place, edited inputs),
    the old sets move aside whole instead of being deleted."""
    if not folder.exists():
        return
    theirs = foreign_files(folder)
    try:  # another user's files, a read-only folder: one line, before any table is replaced
        if not theirs:
            shutil.rmtree(folder)
            return
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        kept = _unused(
            lambda n: folder.with_name(f"{folder.name}-kept-{stamp}{f'-{n}' if n else ''}")
        )
        folder.rename(kept)
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise CatscreenError(
            f"cannot replace the old DFT inputs in {folder}: {exc.strerror}{where}; the rank "
            "tables are unchanged: give the folder back its write permission, or move it aside"
        ) from exc
    where = f"{folder.parent.name}/{folder.name}"
    log(
        f"rank: note: {where}/ held {len(theirs)} file(s) catscreen did not write "
        f"({theirs[0].relative_to(folder)}, ...): the old DFT sets are kept in "
        f"{folder.parent.name}/{kept.name}/"
    )


def _rank_settings(recipe: Recipe) -> RankSettings:
    ref = recipe.ranking.reference
    return RankSettings(
        targets=rank_targets(recipe),
        reference_candidate=ref.candidate if ref is not None else None,
        default_tolerance=ref.tolerance if ref is not None else RankSettings.default_tolerance,
        top_k=recipe.validation.top_k,
        uncertainty_threshold=recipe.validation.uncertainty_threshold,
    )


def ranked_model_version(root: Path) -> str:
    """The weights the rank stage's placements were relaxed with (one per ranking)."""
    versions = read_parquet(root / RANK_DIR / "adsorption.parquet").model_version
    return str(versions.iloc[0]) if len(versions) else ""


def load_leaderboard(root: Path, recipe: Recipe) -> pd.DataFrame:
    """The leaderboard of a finished rank stage."""
    rank = root / RANK_DIR
    ranked = read_parquet(
        rank / "ranked.parquet",
        required=("rank", "candidate", "bulk", "miller", "termination", "slab_id", "distance",
                  "distance_std"),
    )  # fmt: skip
    systems = read_parquet(
        rank / "systems.parquet",
        required=("candidate", "adsorbate", "spin", "best_config_id", "best_site_type",
                  "best_final_site_type"),
    )  # fmt: skip
    return build_leaderboard(ranked, systems, recipe)


def campaign_warnings(root: Path, board: pd.DataFrame, recipe: Recipe) -> list[str]:
    """board_warnings, with every surface enumerate made: a facet that dropped out of the
    ranking went unmentioned while its bulk had another one on the board."""
    configs = read_parquet(
        root / ENUMERATE_DIR / "configs.parquet", required=("kind", "bulk", "miller", "termination")
    )
    slabs = configs[configs.kind == "slab"]
    surfaces = {
        candidate_of(r.bulk, r.miller, r.termination).name: str(r.bulk) for r in slabs.itertuples()
    }
    return board_warnings(board, recipe, surfaces)


def run_campaign(recipe_path: Path, out: Path, options: RunOptions, log: Log) -> Outcome:
    """Run (or resume) a campaign; returns what the CLI prints and the CI verdict."""
    recipe_path = find_recipe(recipe_path)
    recipe = load_recipe(recipe_path)
    folder = recipe_path.resolve().parent
    relax_settings = _relax_settings(recipe, options, folder)
    model_ref = relax_settings.model_ref()
    try:  # before enumerate
        check_model_name(model_ref, f"{folder} and the working directory")
    except CatscreenError as exc:  # named as the recipe's field, as its other errors
        raise CatscreenError(f"{recipe_path}: model.name: {exc}") from None
    if relax_settings.scheduler is not None:  # before enumerate, as the model
        check_scheduler(relax_settings.scheduler)
    baseline = read_baseline(options.baseline) if options.baseline else None  # before any work
    if baseline is not None and baseline.recipe != recipe.name:  # else any top-N could pass
        raise CatscreenError(
            f"baseline {options.baseline} is for recipe {baseline.recipe!r}, not {recipe.name!r}"
        )
    info = cached_model(model_ref).info
    if recipe.model.fidelity is not None:  # before enumerate, not after it
        info.check_context("off", recipe.model.fidelity)
    root = out.resolve()
    if root.exists() and not root.is_dir():
        raise CatscreenError(f"--out {out} is a file; give a folder for the campaign")
    check_recipe_inputs(recipe)  # a typo must not touch a finished campaign's folder
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # under a file, in a folder not the user's
        raise CatscreenError(
            f"cannot create the campaign folder {out}: {first_line(exc)}"
        ) from None
    # one run per folder: a second one's enumerate replaced the first's configurations under
    # its stage log, and the next run ranked the other recipe's candidates as up to date
    with OutputLock(root, by="catscreen campaign run", lock=root / LOCK_FILE):
        return _run_locked(root, recipe, recipe_path, relax_settings, options, log, info, baseline)


def _refuse_foreign_files(root: Path, recipe_path: Path) -> None:
    """A folder with no stage log and no enumerate/ or rank/ folder was never a campaign (a
    damaged log, once deleted, leaves those behind; a results.parquet may be a plain relax's):
    the files a run writes there would replace a user's own summary.md, leaderboard.csv or
    recipe.yaml without a word."""
    if any((root / name).is_dir() for name in (ENUMERATE_DIR, RANK_DIR)):
        return
    copy = root / RECIPE_COPY
    found = [root / SUMMARY, root / LEADERBOARD]
    if not copy.is_file() or copy.read_bytes() != recipe_path.read_bytes():
        found.append(copy)  # the recipe itself, or a copy of it, is no loss
    if names := [path.name for path in found if path.exists()]:
        raise CatscreenError(
            f"--out {root} holds {', '.join(names)} that no campaign wrote (no {STATE_FILE}); "
            "give another --out, or move them"
        )


def _run_locked(
    root: Path,
    recipe: Recipe,
    recipe_path: Path,
    relax_settings: RelaxSettings,
    options: RunOptions,
    log: Log,
    info: ModelInfo,
    baseline: Baseline | None,
) -> Outcome:
    """The stages, with the folder's lock held."""
    version = info.version
    state = load_state(root)
    if state is None:
        _refuse_foreign_files(root, recipe_path)
        state = CampaignState(recipe=recipe.name, recipe_file=str(recipe_path))
    if state.recipe != recipe.name:
        log(
            f"note: {root} held campaign '{state.recipe}'; stages rerun where '{recipe.name}' differs"
        )
        state.recipe = recipe.name
    state.recipe_file = str(recipe_path)
    with atomic_path(root / RECIPE_COPY) as tmp:
        tmp.write_bytes(recipe_path.read_bytes())
    hashes = stage_hashes(recipe, version)
    ran: list[str] = []
    skipped: list[str] = []

    def stage(name: str, body: Body, retry: bool = False) -> None:
        if _run_stage(state, root, name, hashes[name], log, body, force=bool(ran) or retry):
            ran.append(name)
        else:
            skipped.append(name)

    configs = root / ENUMERATE_DIR / "configs.parquet"
    stage("enumerate", lambda: enumerate_recipe(recipe, root / ENUMERATE_DIR, log))
    if recipe.ranking.reference is not None:  # a facet enumerate names otherwise: before relax
        rows = read_parquet(configs).itertuples()
        known = sorted({candidate_of(r.bulk, r.miller, r.termination) for r in rows})
        find_candidate(recipe.ranking.reference.candidate, known)

    def relax() -> tuple[list[Path], dict[str, int]]:
        s = relax_configurations(configs, root / RESULTS, relax_settings, progress=options.progress)
        counts = {
            "rows": s.total,
            "reused": s.reused,
            "ran": s.ran,
            "converged": s.converged,
            "not_converged": s.not_converged,
            "failed": s.failed,
        }
        return [root / RESULTS], counts

    _set_aside_stale_results(state, root, relax_settings, version, log, info.default_fidelity)
    # a relax stage that would be skipped is up to date only if every configuration has a
    # final row: those of a batch that failed as a whole are not final, and rerun
    retry = (
        not ran
        and state.is_done("relax", hashes["relax"], root)
        and unfinished(configs, root / RESULTS, relax_settings)
    )
    if retry:
        why = "a failed batch or rows removed"
        log(f"relax: {retry} configuration(s) without a final row ({why}); rerunning")
    stage("relax", relax, retry=bool(retry))

    def keep_ranked_recipe() -> None:
        """What report and baseline read beside the ranking: written before rank is recorded
        done (a kill in between left the old copy) and after a skipped rank, since a name or
        description changes no hash and the copy follows the latest run."""
        with atomic_path(root / RANK_DIR / RECIPE_COPY) as tmp:
            tmp.write_bytes((root / RECIPE_COPY).read_bytes())

    def rank() -> tuple[list[Path], dict[str, int]]:
        for name in (LEADERBOARD, SUMMARY):  # they describe the ranking being replaced: a kill
            (root / name).unlink(missing_ok=True)  # before they are written again leaves none
        results = of_configs(read_results(root / RESULTS), config_ids(configs))
        settings = _rank_settings(recipe)
        output = rank_results(results, settings, root / RESULTS)
        output.metadata["configs"] = str(configs.resolve())  # as `rank --configs` records
        _clear_dft_sets(root / RANK_DIR / "dft", log)  # before the tables: it may be refused
        paths = list(write_rank_outputs(output, root / RANK_DIR).values())
        for warning in domain_notes(results, settings.spin):
            log(f"rank: warning: {warning}")
        if (note := uncertainty_note(output)) is not None:
            log(f"rank: note: {note}")
        counts = {k: output.counts[k] for k in ("adslabs", "anomalous", "candidates", "flagged")}
        for engine in recipe.validation.write:
            folders = write_dft_inputs(
                output.flagged, engine, root / RANK_DIR / "dft" / engine, DftSettings(xc="auto"),
                lambda why: log(f"rank: note: {why}"),
            )  # fmt: skip
            counts[f"{engine}_inputs"] = len(folders)
        keep_ranked_recipe()
        return paths, counts

    stage("rank", rank)
    keep_ranked_recipe()

    board = load_leaderboard(root, recipe)
    warnings = campaign_warnings(root, board, recipe)
    for line in warnings:
        log(f"warning: {line}")
    with atomic_path(root / LEADERBOARD) as tmp:  # the file names what made its numbers
        board.assign(model=recipe.model.name, model_version=version).to_csv(tmp, index=False)
    names = [d.name for d in recipe.ranking.descriptors]
    comparison = compare(board, baseline, version, names) if baseline is not None else None
    flagged = read_parquet(root / RANK_DIR / "flagged.parquet")
    summary = render_summary(
        recipe, board, descriptor_targets(recipe), flagged, state, comparison, warnings, version
    )
    summary_path = root / SUMMARY
    with atomic_path(summary_path) as tmp:
        tmp.write_text(summary, encoding="utf-8")
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if options.ci and step_summary:
        try:  # GitHub collects every step's appends
            with open(step_summary, "a", encoding="utf-8") as fh:
                fh.write(summary)
        except OSError as exc:  # else it reads like a failed baseline check in CI
            raise CatscreenError(
                f"cannot append to GITHUB_STEP_SUMMARY: {first_line(exc)}"
            ) from exc
        summary_path = Path(step_summary)
    return Outcome(root, state, board, summary, summary_path, comparison, ran, skipped)
