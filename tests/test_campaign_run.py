"""The campaign end to end on a tiny EMT recipe: run, resume, CI baseline check, status, report."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import Result
from typer.testing import CliRunner

from catscreen.analysis import anomalies
from catscreen.cli.main import app
from catscreen.errors import CatscreenError
from catscreen.io import read_parquet_metadata
from catscreen.model import load_model
from catscreen.paths import data_dir

RECIPE = """\
# A reduced quickstart: EMT (ase) instead of the bundled model, two metals, thin 2x2 slabs.
name: tiny
description: O and H on Pt(111) and Cu(111) with EMT.
candidates: [Pt, Cu]
facets:
  miller: ["111"]
slab: {min_slab_size: 4.0, vacuum: 10.0, min_ab: 5.0, max_terminations: 1}
adsorbates: [O, H]
placement: {mode: heuristic}
model: {name: emt, spin: auto}
relax: {optimizer: fire, fmax: 0.1, steps: 60, batch_size: 64}
ranking:
  top_n: 2
  descriptors:
    - {name: dE_O, adsorbate: O, target: {value: -0.9, tolerance: 0.1}}
validation: {top_k: 1, uncertainty_threshold: 0.15, write: [vasp]}
"""

runner = CliRunner()


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("campaign")
    recipe = base / "tiny.yaml"
    recipe.write_text(RECIPE)
    out = base / "run"
    result = runner.invoke(
        app, ["campaign", "run", str(recipe), "--out", str(out), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    return recipe, out


def test_first_run_writes_every_stage(campaign: tuple[Path, Path]) -> None:
    _, out = campaign
    for name in (
        "recipe.yaml",
        "campaign.json",
        "enumerate/configs.parquet",
        "results.parquet",
        "rank/ranked.parquet",
        "rank/flagged.parquet",
        "leaderboard.csv",
        "summary.md",
    ):
        assert (out / name).exists(), name
    assert list((out / "rank" / "dft" / "vasp").iterdir())
    state = json.loads((out / "campaign.json").read_text())
    assert [state["stages"][s]["status"] for s in ("enumerate", "relax", "rank")] == ["done"] * 3
    summary = (out / "summary.md").read_text()
    assert "## Top 2 candidates" in summary and "Pt(111)" in summary and "Cu(111)" in summary
    assert f"Model `emt` (version `{load_model('emt').info.version}`)" in summary
    assert "ensemble heads" not in summary and "CHGNet" not in summary  # EMT: its own scale
    meta = read_parquet_metadata(out / "rank" / "ranked.parquet")
    assert meta["results_file"] == str((out / "results.parquet").resolve())


def test_second_run_resumes_without_recomputing(campaign: tuple[Path, Path]) -> None:
    recipe, out = campaign
    before = (out / "results.parquet").stat().st_mtime_ns
    state_before = json.loads((out / "campaign.json").read_text())
    result = runner.invoke(
        app, ["campaign", "run", str(recipe), "--out", str(out), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert "ran: nothing; skipped (up to date): enumerate, relax, rank" in result.output
    assert (out / "results.parquet").stat().st_mtime_ns == before
    assert "top 2 of 2 candidates" in result.output
    state = json.loads((out / "campaign.json").read_text())
    assert state["stages"] == state_before["stages"]


def test_the_top_table_counts_the_candidates_there_are(
    campaign: tuple[Path, Path], tmp_path: Path
) -> None:
    """top_n 3 over two candidates printed "top 3 of 2 candidates"."""
    recipe, finished = campaign
    out = tmp_path / "copy"
    shutil.copytree(finished, out)
    wider = tmp_path / "tiny.yaml"
    wider.write_text(recipe.read_text().replace("  top_n: 2\n", "  top_n: 3\n"))
    result = _run(wider, out)
    assert result.exit_code == 0, result.output
    assert "top 2 of 2 candidates" in result.output
    written = runner.invoke(app, ["campaign", "baseline", str(out), "--write", str(tmp_path / "b")])
    assert written.exit_code == 0, written.output
    assert "top 2 = " in written.output and "top 3" not in written.output  # said 3 of 2


def test_status_shows_stages(campaign: tuple[Path, Path]) -> None:
    _, out = campaign
    result = runner.invoke(app, ["campaign", "status", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for word in ("enumerate", "relax", "rank", "done", "results.parquet"):
        assert word in result.output
    narrow = runner.invoke(app, ["campaign", "status", str(out)], env={"COLUMNS": "80"})
    assert narrow.exit_code == 0 and "…" not in narrow.output  # folded, never cut


def test_status_tells_a_killed_stage_from_a_running_one(campaign: tuple[Path, Path]) -> None:
    """A SIGKILLed run's stage read "running" for ever; the record now names its process."""
    out = Path(shutil.copytree(campaign[1], campaign[1].parent / "copy"))
    state = json.loads((out / "campaign.json").read_text())
    relax = state["stages"]["relax"]
    assert relax["host"] == socket.gethostname() and relax["pid"] > 0  # recorded when it ran
    dead = subprocess.Popen(["true"])
    dead.wait()
    for pid, shown in ((dead.pid, "killed (pid"), (os.getpid(), "running")):
        relax.update(status="running", pid=pid)
        (out / "campaign.json").write_text(json.dumps(state))
        result = runner.invoke(app, ["campaign", "status", str(out)], env={"COLUMNS": "200"})
        assert result.exit_code == 0 and shown in result.output, result.output
    assert "killed (pid" not in result.output


def test_status_names_a_damaged_or_missing_file(campaign: tuple[Path, Path]) -> None:
    """It said "done" over a results.parquet overwritten with garbage."""
    out = Path(shutil.copytree(campaign[1], campaign[1].parent / "damaged"))
    (out / "results.parquet").write_bytes(b"not parquet" * 100)
    (out / "rank" / "flagged.parquet").unlink()
    result = runner.invoke(app, ["campaign", "status", str(out)], env={"COLUMNS": "250"})
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if "│" in line}
    assert result.exit_code == 0
    assert (
        "damaged (a file it wrote" in rows["relax"] and "results.parquet (damaged)" in rows["relax"]
    )
    assert (
        "damaged (a file it wrote" in rows["rank"] and "flagged.parquet (missing)" in rows["rank"]
    )
    assert " done " in rows["enumerate"] and "damaged" not in rows["enumerate"]


@pytest.mark.parametrize("command", [["campaign", "status"], ["report"]])
def test_not_a_campaign_folder_is_one_line(tmp_path: Path, command: list[str]) -> None:
    result = runner.invoke(app, [*command, str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert (
        result.output.strip()
        == f"error: {tmp_path / 'nowhere'} is not a campaign folder (no such folder)"
    )


def test_ci_against_changed_baseline_fails_readably(
    campaign: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe, out = campaign
    baseline = tmp_path / "baseline.json"
    result = runner.invoke(app, ["campaign", "baseline", str(out), "--write", str(baseline)])
    assert result.exit_code == 0, result.output
    step = tmp_path / "step_summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    args = ["campaign", "run", str(recipe), "--out", str(out), "--ci", "--baseline", str(baseline)]
    ok = runner.invoke(app, args)
    assert ok.exit_code == 0, ok.output
    assert "baseline check passed" in ok.output
    # the file in the campaign folder first, the step summary beside it (it named only that)
    assert f"summary: {out / 'summary.md'} (also in {step})" in " ".join(ok.output.split())
    # a folder given relative to the working one is named so (it printed the absolute path)
    monkeypatch.chdir(out.parent)
    again = runner.invoke(app, ["campaign", "run", str(recipe), "--out", out.name])
    assert again.exit_code == 0, again.output
    line = " ".join(again.output.split())
    assert f"summary: {out.name}/summary.md" in line
    assert f"leaderboard: {out.name}/leaderboard.csv" in line
    data = json.loads(baseline.read_text())
    first = data["top"][0]
    first["descriptors"]["dE_O"] += 0.3
    data["top"][1]["candidate"] = "Au(111)"
    baseline.write_text(json.dumps(data))
    step.unlink()
    bad = runner.invoke(app, args)
    assert bad.exit_code == 1, bad.output
    assert "baseline check failed" in bad.output
    assert "Au(111) left the top 2 (now missing)" in bad.output
    assert f"{first['candidate']} dE_O:" in bad.output and "exceeds tolerance" in bad.output
    markdown = step.read_text()
    assert "## Baseline check: FAILED" in markdown and "Au(111) left the top 2" in markdown
    # a step summary that cannot be written is its own error (exit 2), not a failed check (1)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "no" / "such" / "file.md"))
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "cannot append to GITHUB_STEP_SUMMARY" in result.output


def test_changed_target_reruns_only_rank(campaign: tuple[Path, Path], tmp_path: Path) -> None:
    recipe, out = campaign
    changed = tmp_path / "tiny.yaml"
    changed.write_text(
        recipe.read_text().replace("value: -0.9, tolerance: 0.1", "value: -0.5, tolerance: 0.1")
    )
    result = runner.invoke(
        app, ["campaign", "run", str(changed), "--out", str(out), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert "ran: rank; skipped (up to date): enumerate, relax" in result.output
    result = runner.invoke(
        app, ["campaign", "run", str(recipe), "--out", str(out), "--no-progress"]
    )
    assert result.exit_code == 0, result.output


def test_a_rerank_keeps_dft_run_in_the_old_inputs(
    campaign: tuple[Path, Path], tmp_path: Path
) -> None:
    """A rerun of rank deleted rank/dft whole, OUTCARs of calculations run there included."""
    recipe, first = campaign
    out = tmp_path / "run"
    shutil.copytree(first, out)
    changed = tmp_path / "tiny.yaml"
    changed.write_text(recipe.read_text().replace("value: -0.9,", "value: -0.5,"))
    result = _run(changed, out)
    assert result.exit_code == 0 and "ran: rank;" in result.output, result.output
    assert "kept in" not in result.output and not list((out / "rank").glob("dft-kept-*"))
    vasp = out / "rank" / "dft" / "vasp"
    (vasp / "gas-H2" / "OUTCAR").write_text("a finished run\n")
    result = _run(recipe, out)
    assert result.exit_code == 0 and "ran: rank;" in result.output, result.output
    assert (
        "rank: note: rank/dft/ held 1 file(s) catscreen did not write (vasp/gas-H2/OUTCAR, ...): "
        "the old DFT sets are kept in rank/dft-kept-" in " ".join(result.output.split())
    )
    (kept,) = (out / "rank").glob("dft-kept-*")
    assert (kept / "vasp" / "gas-H2" / "OUTCAR").read_text() == "a finished run\n"
    assert (vasp / "manifest.json").is_file() and not (vasp / "gas-H2" / "OUTCAR").exists()
    # inputs another user wrote (no write permission): a 67-line traceback after the tables
    # were replaced; now one line before, the tables as they were
    from catscreen.campaign import runner as campaign_runner

    def refused(path):  # noqa: ANN001, ANN202
        raise PermissionError(13, "Permission denied", "POSCAR")

    tables = {p.name: p.read_bytes() for p in (out / "rank").glob("*.parquet")}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(campaign_runner.shutil, "rmtree", refused)
        result = _run(changed, out)
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    assert f"cannot replace the old DFT inputs in {out.resolve() / 'rank' / 'dft'}" in said
    assert "Permission denied (POSCAR); the rank tables are unchanged" in said
    assert {p.name: p.read_bytes() for p in (out / "rank").glob("*.parquet")} == tables


def test_new_anomaly_rules_rerank_a_finished_campaign(
    campaign: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Flags made under other rules are not kept as up to date: rank reruns, relax does not."""
    import catscreen.campaign.runner as campaign_runner

    recipe, out = campaign
    for rule, value in (("RECONSTRUCTION_CUSHION", 1.1), ("SLAB_DISPLACEMENT", 2.0), (0, 0)):
        if rule == 0:  # an upgrade kept a stale ranking whose checks were its own
            monkeypatch.setattr(campaign_runner, "code_version", lambda: "9.9.9+gother")
        else:
            monkeypatch.setattr(anomalies, rule, value)
        result = runner.invoke(
            app, ["campaign", "run", str(recipe), "--out", str(out), "--no-progress"]
        )
        assert result.exit_code == 0, result.output
        assert "ran: rank; skipped (up to date): enumerate, relax" in result.output, rule
    stages = json.loads((out / "campaign.json").read_text())["stages"]
    assert stages["rank"]["catscreen"] == "9.9.9+gother"  # who ran each stage
    assert stages["relax"]["catscreen"] != "9.9.9+gother"
    monkeypatch.undo()
    result = runner.invoke(
        app, ["campaign", "run", str(recipe), "--out", str(out), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert "ran: rank;" in result.output


def test_report_renders(campaign: tuple[Path, Path]) -> None:
    _, out = campaign
    result = runner.invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output
    html = (out / "report" / "index.html").read_text()
    assert html.count("data:image/png;base64,") == 4
    assert "DFT validation list" in html and "Spin decision" in html
    assert "grey crosses were excluded (not converged, or anomalous" in html
    assert "is not drawn" not in html  # no reference relaxed again: nothing left out
    for png in ("descriptor_ranking", "top_sites", "energy_spread", "spin"):
        path = out / "report" / f"{png}.png"
        assert path.stat().st_size > 10_000, png
    board = pd.read_csv(out / "leaderboard.csv", keep_default_na=False)
    assert set(board.dE_O_final_site) <= {"ontop", "bridge", "hollow"}  # where it ended
    from catscreen.campaign.runner import ranked_model_version

    # the csv names the model that made its numbers (read alone, it did not)
    made = set(zip(board.model, board.model_version, strict=True))
    assert made == {("emt", ranked_model_version(out))}
    assert f"(version <code>{ranked_model_version(out)}</code>)" in html  # as summary.md
    (out / "afile").write_text("")
    bad = runner.invoke(app, ["report", str(out), "--out", str(out / "afile")])
    assert bad.exit_code == 2 and "cannot write the report to" in bad.output


@pytest.mark.parametrize(
    ("table", "column"),
    [("adsorption", "final_structure"), ("adsorption", "valid"), ("systems", "best_site_type")],
)
def test_report_of_a_table_without_its_columns_is_one_line(
    campaign: tuple[Path, Path], tmp_path: Path, table: str, column: str
) -> None:
    """A rank table cut down by hand gave a KeyError traceback (exit 1)."""
    out = tmp_path / "copy"
    shutil.copytree(campaign[1], out)
    path = out / "rank" / f"{table}.parquet"
    pd.read_parquet(path).drop(columns=[column]).to_parquet(path)
    result = runner.invoke(app, ["report", str(out)])
    assert result.exit_code == 2 and f"lacks required column(s): {column}" in result.output


def test_report_of_emptied_or_garbled_rank_tables_is_one_line(
    campaign: tuple[Path, Path], tmp_path: Path
) -> None:
    """An emptied ranked table gave a KeyError traceback, an unreadable structure an XYZError."""
    out = tmp_path / "copy"
    shutil.copytree(campaign[1], out)
    ranked = out / "rank" / "ranked.parquet"
    kept = ranked.read_bytes()
    pd.read_parquet(ranked).head(0).to_parquet(ranked)
    result = runner.invoke(app, ["report", str(out)])
    assert result.exit_code == 2 and "ranked.parquet has no candidates to report" in result.output
    ranked.write_bytes(kept)
    # the best placement the top-sites figure draws, not the first row spin_reasons reads
    best = pd.read_csv(out / "leaderboard.csv").dE_O_config.iloc[0]
    adsorption = out / "rank" / "adsorption.parquet"
    table = pd.read_parquet(adsorption)
    assert table.config_id.iloc[0] != best
    table.loc[table.config_id == best, "final_structure"] = "garbage"
    table.to_parquet(adsorption)
    result = runner.invoke(app, ["report", str(out)])
    assert result.exit_code == 2, result.output
    assert f"cannot read final_structure of {best}" in " ".join(result.output.split())


def test_figures_mark_the_bonded_atom_and_scale_to_valid_placements() -> None:
    """The star sat on OH's H (lowest, 2.4 A from any Pt), not the O bonded to the surface; one
    excluded placement at -40 eV flattened its panel; `$` in a name started maths."""
    from ase.build import add_adsorbate, fcc111, molecule

    from catscreen.campaign.figures import _anchor_xy, _text, _valid_range

    pt = fcc111("Pt", (2, 2, 3), vacuum=8.0)
    n = len(pt)
    oh = molecule("OH")  # O 1.9 A over a Pt; H lower (1.75 A) but 1.99 A from that Pt
    oh.positions = [[0.0, 0.0, 0.0], [0.95, 0.0, -0.15]]
    add_adsorbate(pt, oh, 1.9, "ontop", mol_index=0)
    pt.set_tags([1] * n + [2, 2])
    assert _anchor_xy(pt) == pytest.approx(tuple(pt.positions[n, :2]))
    configs = pd.DataFrame({"e_ads": [-0.5, -0.3, -40.0], "valid": [True, True, False]})
    assert _valid_range(configs) == pytest.approx((-0.7, -0.1))
    assert _text("Au$x$(111)") == r"Au\$x\$(111)"


def test_figures_keep_error_bars_labels_and_site_colours_in_frame(
    campaign: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """FePt's error bar ran past the ranking panel's edge; the reference read as the best
    candidate; a tall cell's top view shrank its box (its x label over the title below); site
    colours changed from one campaign to the next."""
    from catscreen.campaign import figures
    from catscreen.campaign.leaderboard import descriptor_targets
    from catscreen.campaign.runner import load_leaderboard, read_campaign_recipe

    _, out = campaign
    recipe = read_campaign_recipe(out, ranked=True)
    board = load_leaderboard(out, recipe)
    board["dE_O_std"] = [0.0] * (len(board) - 1) + [5.0]  # the last one's bar is wide
    board["is_reference"] = [True] + [False] * (len(board) - 1)
    saved = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: saved.append(fig) or path)
    figures.plot_descriptor_ranking(board, recipe, descriptor_targets(recipe), tmp_path / "d.png")
    ax = saved[0].axes[0]
    value = float(board["dE_O"].iloc[-1])
    low, high = ax.get_xlim()
    assert low <= value - 5.0 and high >= value + 5.0
    labels = [label.get_text() for label in ax.get_yticklabels()]
    assert labels[0].endswith(f"{board['candidate'].iloc[0]} (ref.)")  # the first (top) row
    assert sum("(ref.)" in label for label in labels) == 1
    configs = pd.read_parquet(out / "rank" / "adsorption.parquet").set_index("config_id")
    with warnings.catch_warnings():  # "Ignoring fixed x limits to fulfill fixed data aspect"
        warnings.simplefilter("error")
        figures.plot_top_sites(board, recipe, configs, tmp_path / "t.png")
    views = [(np.ptp(a.get_xlim()), np.ptp(a.get_ylim())) for a in saved[1].axes if a.axison]
    assert views and all(x == pytest.approx(y) for x, y in views)  # square: one box size
    assert figures._site_colours(["ontop", "fcc"])["fcc"] == figures._site_colours(["fcc"])["fcc"]


def test_site_words_name_where_the_relaxed_adsorbate_sits() -> None:
    from catscreen.campaign.figures import site_words

    assert site_words("fcc", "hollow") == " placed fcc, ends hollow"
    # the same site atoms: it stayed, and 'hollow' is only the final type's word for fcc
    assert site_words("fcc", "hollow", moved=False) == " on fcc"
    assert site_words("ontop", "ontop") == " on ontop" and site_words("", "") == ""


def test_report_reads_the_recipe_rank_ran_with(campaign: tuple[Path, Path], tmp_path: Path) -> None:
    """A rerun that fails before rank leaves a new DIR/recipe.yaml beside the old ranking; the
    report must describe the ranking, and a failed rank is named as failed."""
    _, finished = campaign
    out = tmp_path / "copy"
    shutil.copytree(finished, out)
    used = (out / "rank" / "recipe.yaml").read_text()
    assert used == (out / "recipe.yaml").read_text()
    (out / "recipe.yaml").write_text(used.replace("value: -0.9", "value: 0.7"))
    assert runner.invoke(app, ["report", str(out)]).exit_code == 0
    page = (out / "report" / "index.html").read_text()
    assert "target -0.90" in page and "target 0.70" not in page, page[:2000]
    # a rerun that changes only the description reranks nothing, and the copy follows it
    renamed = tmp_path / "tiny.yaml"
    renamed.write_text(used.replace("description: O and H", "description: Renamed, O and H"))
    result = _run(renamed, out)
    assert result.exit_code == 0 and "ran: nothing" in result.output, result.output
    assert "Renamed, O and H" in (out / "rank" / "recipe.yaml").read_text()
    state = json.loads((out / "campaign.json").read_text())
    state["stages"]["rank"].update(status="failed", message="no adsorbate configurations left")
    (out / "campaign.json").write_text(json.dumps(state))
    result = runner.invoke(app, ["report", str(out)])
    assert result.exit_code == 2
    assert "the rank stage failed (no adsorbate configurations left)" in result.output


def test_a_kill_right_after_rank_leaves_the_recipe_it_ranked_with(
    campaign: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run stops (as if killed) the moment the rank stage is recorded done: report and
    baseline must then read the recipe that ranking came from, not the previous one."""
    from catscreen.campaign import runner as campaign_runner

    recipe, finished = campaign
    out = tmp_path / "copy"
    shutil.copytree(finished, out)
    changed = tmp_path / "tiny.yaml"
    changed.write_text(recipe.read_text().replace("value: -0.9", "value: -0.5"))
    save = campaign_runner.save_state

    def save_then_stop(root: Path, state) -> None:
        save(root, state)
        if state.stages["rank"].status == "done":
            raise KeyboardInterrupt

    monkeypatch.setattr(campaign_runner, "save_state", save_then_stop)
    _run(changed, out)
    assert json.loads((out / "campaign.json").read_text())["stages"]["rank"]["status"] == "done"
    assert "value: -0.5" in (out / "rank" / "recipe.yaml").read_text()
    # the previous ranking's leaderboard and summary sat under an all-done status: gone, and
    # status says what writes them
    assert not (out / "leaderboard.csv").exists() and not (out / "summary.md").exists()
    said = " ".join(runner.invoke(app, ["campaign", "status", str(out)]).output.split())
    assert "leaderboard.csv and summary.md not written since the last rank" in said
    monkeypatch.setattr(campaign_runner, "save_state", save)
    assert "ran: nothing" in _run(changed, out).output
    assert "-0.5" in (out / "summary.md").read_text() and (out / "leaderboard.csv").exists()


def test_an_interrupted_stage_says_so(
    campaign: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C or SIGTERM during rank read "failed (KeyboardInterrupt)", with no word of
    resuming, where a SIGKILLed stage said `campaign run` resumes it."""
    from catscreen.campaign import runner as campaign_runner

    recipe, finished = campaign
    out = tmp_path / "copy"
    shutil.copytree(finished, out)
    changed = tmp_path / "tiny.yaml"
    changed.write_text(recipe.read_text().replace("value: -0.9", "value: -0.5"))

    def interrupted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise KeyboardInterrupt

    monkeypatch.setattr(campaign_runner, "rank_results", interrupted)
    _run(changed, out)
    rank = json.loads((out / "campaign.json").read_text())["stages"]["rank"]
    assert rank["status"] == "failed"
    assert rank["message"] == "interrupted (Ctrl-C or SIGTERM); `campaign run` resumes it"


def test_options_without_effect_and_a_damaged_state_are_one_line(tmp_path: Path) -> None:
    """--workers with the local executor did nothing; campaign.json as a folder a traceback."""
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(RECIPE)
    result = _run(recipe, tmp_path / "run", "--workers", "3")
    assert result.exit_code == 2 and "3 workers need the dask executor" in result.output
    assert not (tmp_path / "run").exists()
    (tmp_path / "broken" / "campaign.json").mkdir(parents=True)
    result = runner.invoke(app, ["campaign", "status", str(tmp_path / "broken")])
    assert result.exit_code == 2 and "campaign.json is damaged" in result.output


def test_dask_workers_default_as_relax(tmp_path: Path) -> None:
    """A dask campaign ran one worker (the recipe's old default) where `relax` runs two."""
    from catscreen.campaign.recipe import parse_recipe
    from catscreen.campaign.runner import RunOptions, _relax_settings
    from catscreen.workflow import RelaxSettings

    dask = RECIPE.replace("batch_size: 64}", "batch_size: 64, executor: dask}")
    recipe = parse_recipe(dask, tmp_path / "tiny.yaml")
    assert _relax_settings(recipe, RunOptions(), tmp_path).workers == RelaxSettings().workers == 2
    assert _relax_settings(recipe, RunOptions(workers=3), tmp_path).workers == 3
    three = parse_recipe(dask.replace("executor: dask", "executor: dask, workers: 3"), tmp_path)
    assert _relax_settings(three, RunOptions(), tmp_path).workers == 3
    local = parse_recipe(RECIPE.replace("batch_size: 64", "batch_size: 64, workers: 1"), tmp_path)
    assert _relax_settings(local, RunOptions(), tmp_path).executor == "local"
    with pytest.raises(CatscreenError, match="2 workers need the dask executor"):
        _relax_settings(parse_recipe(RECIPE, tmp_path), RunOptions(workers=2), tmp_path)
    given = RunOptions(scheduler="tcp://127.0.0.1:8786")  # the recipe's 3 are its own cluster's
    assert _relax_settings(three, given, tmp_path).scheduler == "tcp://127.0.0.1:8786"
    with pytest.raises(CatscreenError, match="an existing --scheduler has its own workers"):
        _relax_settings(three, RunOptions(scheduler="tcp://127.0.0.1:8786", workers=2), tmp_path)


def test_bad_recipe_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(RECIPE.replace("relax: {optimizer: fire,", "relax: {optimizer: bfgs,"))
    result = runner.invoke(app, ["campaign", "run", str(bad), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert f"{bad}:11: relax.optimizer:" in result.output


@pytest.mark.parametrize(
    "model, message",
    [
        ("name: weights/missing.pt,", "model.name: checkpoint not found: weights/missing.pt"),
        ("name: emt, fidelity: dft-x,", "has no fidelity 'dft-x'"),
        ("name: bundeled,", "badmodel.yaml: model.name: unknown model 'bundeled' (did you mean "),
    ],
)
def test_a_bad_model_fails_before_enumerate(tmp_path: Path, model: str, message: str) -> None:
    recipe = tmp_path / "badmodel.yaml"
    recipe.write_text(RECIPE.replace("model: {name: emt,", "model: {" + model))
    out = tmp_path / "run"
    result = runner.invoke(app, ["campaign", "run", str(recipe), "--out", str(out)])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert not (out / "enumerate").exists()


def _run(recipe: Path, out: Path, *extra: str):
    return runner.invoke(
        app, ["campaign", "run", str(recipe), "--out", str(out), "--no-progress", *extra]
    )


def test_a_folder_that_was_never_a_campaign_keeps_its_files(tmp_path: Path) -> None:
    """`--out` onto a user's folder replaced their summary.md, leaderboard.csv and recipe.yaml
    without a word; the recipe itself there, or a damaged campaign's leftovers, still run."""
    project = tmp_path / "project"
    project.mkdir()
    recipe = project / "recipe.yaml"
    recipe.write_text(RECIPE)
    (project / "summary.md").write_text("my notes\n")
    other = tmp_path / "other.yaml"
    other.write_text(RECIPE.replace("name: tiny", "name: other"))
    result = _run(other, project)
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and "holds summary.md, recipe.yaml that no campaign" in said
    assert (project / "summary.md").read_text() == "my notes\n"
    assert recipe.read_text() == RECIPE
    assert sorted(p.name for p in project.iterdir()) == ["recipe.yaml", "summary.md"]
    (project / "summary.md").unlink()
    assert _run(recipe, project).exit_code == 0  # its own recipe.yaml
    assert recipe.read_text() == RECIPE
    relaxed = tmp_path / "relaxed"  # a plain `catscreen relax` output is no campaign
    relaxed.mkdir()
    shutil.copy(project / "results.parquet", relaxed / "results.parquet")
    (relaxed / "summary.md").write_text("my notes\n")
    assert _run(other, relaxed).exit_code == 2
    assert (relaxed / "summary.md").read_text() == "my notes\n"
    (project / "campaign.json").unlink()  # what a damaged log's error says to do
    shutil.rmtree(project / "enumerate")  # rank/ still tells a campaign
    result = _run(other, project)
    assert result.exit_code == 0, result.output


def test_added_candidate_relaxes_only_itself_and_a_failed_rerun_leaves_rank_stale(
    tmp_path: Path,
) -> None:
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(RECIPE.replace("candidates: [Pt, Cu]", "candidates: [Pt]"))
    out = tmp_path / "run"
    assert _run(recipe, out).exit_code == 0
    first = json.loads((out / "campaign.json").read_text())["stages"]["relax"]["counts"]
    recipe.write_text(RECIPE.replace("batch_size: 64", "batch_size: 8"))  # + Cu, smaller batches
    result = _run(recipe, out)
    assert result.exit_code == 0, result.output
    counts = json.loads((out / "campaign.json").read_text())["stages"]["relax"]["counts"]
    assert counts["reused"] == first["rows"] and counts["ran"] == counts["rows"] - first["rows"]
    assert not list(out.glob("results.*.parquet"))  # nothing set aside
    board = (out / "leaderboard.csv").read_text()
    assert "Cu(111)" in board and "Pt(111)" in board
    # drop Cu again: its rows stay in results.parquet but not in the ranking
    recipe.write_text(RECIPE.replace("candidates: [Pt, Cu]", "candidates: [Pt]"))
    assert _run(recipe, out).exit_code == 0
    assert "Cu(111)" not in (out / "leaderboard.csv").read_text()
    # a typo'd bulk or adsorbate is refused before the folder is touched: the finished
    # campaign keeps its recipe copy and stages, and report still reads it
    before = {p: p.read_bytes() for p in (out / "recipe.yaml", out / "campaign.json")}
    pt = RECIPE.replace("candidates: [Pt, Cu]", "candidates: [Pt]")
    for text, named in [
        (RECIPE.replace("candidates: [Pt, Cu]", "candidates: [Pt, Unobtainium]"), "Unobtainium"),
        (pt.replace("adsorbates: [O, H]", "adsorbates: [O, Xq]"), "unknown adsorbate 'Xq'"),
    ]:
        recipe.write_text(text)
        result = _run(recipe, out)
        assert result.exit_code == 2 and named in result.output
        assert {p: p.read_bytes() for p in before} == before
    assert runner.invoke(app, ["report", str(out)]).exit_code == 0


def _rerun(recipe: Path, out: Path, text: str) -> tuple[str, dict[str, int]]:
    """Run the campaign with this recipe text; its output and the relax stage's counts."""
    recipe.write_text(text)
    result = _run(recipe, out)
    assert result.exit_code == 0, result.output
    counts = json.loads((out / "campaign.json").read_text())["stages"]["relax"]["counts"]
    return " ".join(result.output.split()), counts


def test_other_relax_settings_set_the_old_results_aside(tmp_path: Path) -> None:
    recipe, out = tmp_path / "tiny.yaml", tmp_path / "run"
    _rerun(recipe, out, RECIPE)
    _, counts = _rerun(recipe, out, RECIPE.replace("fmax: 0.1", "fmax: 0.08"))
    assert len(list(out.glob("results.*.parquet"))) == 1
    assert counts["reused"] == 0
    # changed back: the first results come back instead of relaxing everything again
    output, counts = _rerun(recipe, out, RECIPE)
    assert "reusing results." in output
    assert len(list(out.glob("results.*.parquet"))) == 1  # now the fmax 0.08 rows are aside
    assert counts["ran"] == 0 and counts["reused"] == counts["rows"]
    # a table without model_version (an older or hand-cut one) was a pyarrow traceback
    from catscreen.io import read_parquet, read_parquet_metadata, write_parquet

    path = out / "results.parquet"
    cut = read_parquet(path).drop(columns="model_version")
    write_parquet(cut, path, metadata=read_parquet_metadata(path))
    recipe.write_text(RECIPE.replace("fmax: 0.1", "fmax: 0.07"))
    result = _run(recipe, out)
    assert result.exit_code == 2 and "lacks required column(s): model_version" in result.output


def test_a_higher_step_limit_keeps_the_converged_rows(tmp_path: Path) -> None:
    """steps: 15 -> 60 set every row aside and relaxed all again; converged rows stand."""
    recipe, out = tmp_path / "tiny.yaml", tmp_path / "run"
    _rerun(recipe, out, RECIPE.replace("steps: 60", "steps: 15"))
    first = pd.read_parquet(out / "results.parquet")
    converged = int((first.status == "converged").sum())
    assert 0 < converged < len(first)
    output, counts = _rerun(recipe, out, RECIPE)
    assert not list(out.glob("results.*.parquet")) and "kept the old results" not in output
    assert counts["reused"] == converged and counts["ran"] == len(first) - converged
    _rerun(recipe, out, RECIPE.replace("steps: 60", "steps: 15"))  # the 60-step table aside
    # changed back: the 60-step table itself, not the 15-step one with its short rows rerun
    output, counts = _rerun(recipe, out, RECIPE)
    assert "reusing results." in output and counts["ran"] == 0


def test_rank_of_a_campaign_s_table_names_earlier_rows_and_configs_selects(tmp_path: Path) -> None:
    """After a recipe change the campaign ranks its current placements; `catscreen rank` of
    its results.parquet ranked the earlier ones too, without a word."""
    recipe, out = tmp_path / "tiny.yaml", tmp_path / "run"
    _rerun(recipe, out, RECIPE)
    _rerun(recipe, out, RECIPE.replace("adsorbates: [O, H]", "adsorbates: [O]"))
    results = out / "results.parquet"
    alone = runner.invoke(app, ["rank", str(results), "--out", str(tmp_path / "all")])
    assert alone.exit_code == 0, alone.output
    said = " ".join(alone.output.split())
    assert "rows are of configurations that" in said and "they are ranked too" in said
    chosen = runner.invoke(
        app,
        ["rank", str(results), "--out", str(tmp_path / "cur"), "--configs", str(out / "enumerate")],
    )
    assert chosen.exit_code == 0, chosen.output
    assert "ranked too" not in chosen.output and "have no row in" not in chosen.output
    mine = pd.read_parquet(tmp_path / "cur" / "adsorption.parquet")
    campaign_s = pd.read_parquet(out / "rank" / "adsorption.parquet")
    assert set(mine.adsorbate) == {"O"} and sorted(mine.config_id) == sorted(campaign_s.config_id)
    assert set(pd.read_parquet(tmp_path / "all" / "adsorption.parquet").adsorbate) == {"O", "H"}
    from catscreen.io import read_parquet_metadata

    meta = read_parquet_metadata(tmp_path / "cur" / "ranked.parquet")
    assert meta["configs"] == str((out / "enumerate").resolve())
    ours = read_parquet_metadata(out / "rank" / "ranked.parquet")["configs"]
    assert ours == str((out / "enumerate" / "configs.parquet").resolve())
    from ase.build import fcc111
    from ase.io import write

    slab = fcc111("Pt", (1, 1, 3), vacuum=5.0)
    slab.set_tags(0)
    write(tmp_path / "other.extxyz", slab)  # none of the table's configurations
    other = ["rank", str(results), "--out", str(tmp_path / "o"), "--configs"]
    res = runner.invoke(app, [*other, str(tmp_path / "other.extxyz")])
    assert res.exit_code == 2 and "holds no rows of the configurations in" in res.output
    # a configurations file with candidates never relaxed: they left the board without a word
    wider = tmp_path / "wider"
    args = ["-b", "Pt,Pd", "-m", "111", "--min-slab-size", "4", "--min-ab", "5", "-a", "O"]
    assert (
        runner.invoke(app, ["enumerate", *args, "--vacuum", "10", "--out", str(wider)]).exit_code
        == 0
    )
    res = runner.invoke(app, [*other, str(wider)])
    said = " ".join(res.output.split())
    assert res.exit_code == 0 and "configurations in" in said and "not ranked" in said, said


def test_rank_names_the_last_relax_run_s_configurations_without_a_row(
    campaign: tuple[Path, Path], tmp_path: Path
) -> None:
    """A killed relax's table ranked without a word on the placements it never reached; a run
    of a chosen part (--adsorbate O) is no such case."""
    import shutil

    from catscreen.io import read_parquet, read_parquet_metadata, write_parquet

    _, out = campaign
    configs = shutil.copytree(out / "enumerate", tmp_path / "enumerate")
    path = tmp_path / "r.parquet"
    relax = ["relax", str(configs), "--out", str(path), "--model", "emt", "-q"]
    done = runner.invoke(app, [*relax, "--adsorbate", "O", "--fmax", "0.1", "--steps", "20"])
    assert done.exit_code == 0, done.output
    ranked = runner.invoke(app, ["rank", str(path), "--out", str(tmp_path / "a")])
    assert ranked.exit_code == 0 and "have no row" not in ranked.output, ranked.output
    rows = read_parquet(path)
    planned = int((rows.kind != "gas").sum())
    cut = rows.drop(index=rows.index[rows.kind == "adslab"][:2])  # as a kill leaves it
    write_parquet(cut, path, metadata=read_parquet_metadata(path))
    ranked = runner.invoke(app, ["rank", str(path), "--out", str(tmp_path / "b")])
    said = " ".join(ranked.output.split())
    assert ranked.exit_code == 0, said
    assert f"2 of the {planned} configurations the last relax run took from" in said
    assert "have no row in" in said and "they are not ranked" in said
    # the input changed since (a recipe without O): the run's --adsorbate O chooses nothing
    # there, and the rows the input no longer holds are still named (the choice hid them)
    manifest = configs / "configs.parquet"
    table = read_parquet(manifest)
    write_parquet(table[table.adsorbate != "O"], manifest, metadata=read_parquet_metadata(manifest))
    ranked = runner.invoke(app, ["rank", str(path), "--out", str(tmp_path / "c")])
    said = " ".join(ranked.output.split())
    assert ranked.exit_code == 0 and "no longer holds; they are ranked too" in said, said
    assert "have no row" not in said


def test_results_set_aside_never_replace_ones_set_aside_before(tmp_path: Path) -> None:
    """Without campaign.json (what a damaged state's error says to delete) every table set
    aside was named results.old.parquet, and the second replaced the first: its relaxations
    were lost without a word and ran again."""
    recipe, out = tmp_path / "tiny.yaml", tmp_path / "run"
    tables = {}
    for fmax in ("0.1", "0.08", "0.06"):
        (out / "campaign.json").unlink(missing_ok=True)
        _rerun(recipe, out, RECIPE.replace("fmax: 0.1", f"fmax: {fmax}"))
        tables[fmax] = (out / "results.parquet").read_bytes()
    aside = sorted(path.name for path in out.glob("results.*.parquet"))
    assert aside == ["results.old.1.parquet", "results.old.parquet"]
    assert (out / "results.old.parquet").read_bytes() == tables["0.1"]
    assert (out / "results.old.1.parquet").read_bytes() == tables["0.08"]
    (out / "campaign.json").unlink()
    output, counts = _rerun(recipe, out, RECIPE)  # the first settings again: nothing reruns
    assert "reusing results.old.parquet" in output
    assert counts["ran"] == 0 and counts["reused"] == counts["rows"]


def test_a_damaged_rank_table_is_ranked_again(tmp_path: Path) -> None:
    """A cut-off rank/ranked.parquet counted as up to date and failed every later run."""
    recipe, out = tmp_path / "tiny.yaml", tmp_path / "run"
    _rerun(recipe, out, RECIPE)
    ranked = out / "rank" / "ranked.parquet"
    good = pd.read_parquet(ranked)
    ranked.write_bytes(ranked.read_bytes()[:300])
    output, _ = _rerun(recipe, out, RECIPE)
    assert "ran: rank; skipped (up to date): enumerate, relax" in output
    assert pd.read_parquet(ranked).equals(good)


def test_naming_the_default_fidelity_keeps_the_results(tmp_path: Path) -> None:
    recipe, out = tmp_path / "tiny.yaml", tmp_path / "run"
    _rerun(recipe, out, RECIPE)
    _, counts = _rerun(recipe, out, RECIPE.replace("spin: auto}", "spin: auto, fidelity: emt}"))
    assert not list(out.glob("results.*.parquet"))
    assert counts["ran"] == 0 and counts["reused"] == counts["rows"]


def test_a_candidate_whose_relaxations_all_fail_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every Au row fails (a calculator that raises on Au), the campaign goes on, and the
    reader is told."""
    from ase.build import bulk

    from catscreen.model.api import AseCalculatorModel

    predict = AseCalculatorModel.predict

    def fails_on_au(self, structures, *args, **kwargs):
        if any("Au" in a.get_chemical_symbols() for a in structures):
            raise RuntimeError("no Au today")
        return predict(self, structures, *args, **kwargs)

    monkeypatch.setattr(AseCalculatorModel, "predict", fails_on_au)
    # a file candidate whose name starts with Au_: its bulk is not Au's
    bulk("Cu", "fcc", a=3.6, cubic=True).write(tmp_path / "Au_doped.cif")
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(
        RECIPE.replace(
            "candidates: [Pt, Cu]", "candidates: [Pt, Au, {name: Au_doped, file: Au_doped.cif}]"
        )
    )
    out = tmp_path / "run"
    result = _run(recipe, out)
    assert result.exit_code == 0, result.output
    summary = (out / "summary.md").read_text()
    assert "Au: no surface in the ranking" in summary
    assert "Au_doped: no surface" not in summary
    board = (out / "leaderboard.csv").read_text()
    assert "Pt(111)" in board and "Au_doped(111)" in board


def test_batches_that_failed_as_a_whole_are_retried_on_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch whose job raised (out of memory, a lost worker) fails all its rows; that says
    nothing about the structures, so the next run relaxes them again instead of calling the
    stage up to date (the gas references of such a batch left nothing to rank)."""
    from catscreen.workflow import jobs

    real, calls = jobs.relax_items, []

    def flaky(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(1)
        if len(calls) == 1:
            raise MemoryError("simulated out-of-memory")
        return real(*args, **kwargs)

    recipe, out = tmp_path / "tiny.yaml", tmp_path / "run"
    recipe.write_text(RECIPE.replace("batch_size: 64", "batch_size: 8"))
    with monkeypatch.context() as m:
        m.setattr(jobs, "relax_items", flaky)
        _run(recipe, out)
    results = pd.read_parquet(out / "results.parquet")
    failed = int((results.status == "failed").sum())
    assert (
        failed == 8
        and results.reason[results.status == "failed"]
        .str.startswith("batch failed: MemoryError")
        .all()
    )
    result = _run(recipe, out)
    assert result.exit_code == 0, result.output
    assert f"{failed} configuration(s) without a final row (a failed batch or rows" in " ".join(
        result.output.split()
    )
    counts = json.loads((out / "campaign.json").read_text())["stages"]["relax"]["counts"]
    assert counts["ran"] == failed and counts["failed"] == 0
    assert (pd.read_parquet(out / "results.parquet").status != "failed").all()


def test_a_reference_facet_enumerate_does_not_make_fails_before_relax(tmp_path: Path) -> None:
    """(010) passes the recipe's max_index check, but enumerate names that facet Pt(100)."""
    text = RECIPE.replace('facets:\n  miller: ["111"]', "facets: {max_index: 1}")
    text = text.replace("candidates: [Pt, Cu]", "candidates: [Pt]").replace(
        "  top_n: 2\n", '  top_n: 2\n  reference: {bulk: Pt, miller: "010"}\n'
    )
    recipe = tmp_path / "ref.yaml"
    recipe.write_text(text)
    result = _run(recipe, tmp_path / "run")
    assert result.exit_code == 2, result.output
    assert "reference candidate 'Pt(010)' is not in this run" in " ".join(result.output.split())
    assert not (tmp_path / "run" / "results.parquet").exists()  # no relaxation ran
    (tmp_path / "afile").write_text("")
    result = _run(recipe, tmp_path / "afile")
    assert result.exit_code == 2 and "is a file" in result.output
    result = _run(recipe, tmp_path / "afile" / "sub")  # a traceback (exit 1) before
    assert result.exit_code == 2 and "cannot create the campaign folder" in result.output


def test_a_second_run_on_a_folder_in_use_is_refused_before_it_touches_it(tmp_path: Path) -> None:
    """Two runs on one folder: the second's enumerate replaced the first's configurations,
    and the next run ranked the other recipe's candidates as up to date (exit 0)."""
    from catscreen.campaign.runner import LOCK_FILE
    from catscreen.workflow.store import OutputLock

    recipe, out = tmp_path / "tiny.yaml", tmp_path / "run"
    _rerun(recipe, out, RECIPE)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    other = tmp_path / "other.yaml"
    other.write_text(RECIPE.replace("[Pt, Cu]", "[Ag, Au]"))
    with OutputLock(out, lock=out / LOCK_FILE):  # a run in progress (flock: in-process too)
        result = _run(other, out)
        assert result.exit_code == 2
        assert "being written by another catscreen campaign run" in result.output
        ranked = runner.invoke(app, ["rank", str(out / "results.parquet"), "--out", str(tmp_path)])
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert "being written by a running" not in ranked.output  # the relax lock: not held
    with OutputLock(out / "results.parquet"):  # its relax stage writing
        ranked = runner.invoke(app, ["rank", str(out / "results.parquet"), "--out", str(tmp_path)])
    said = " ".join(ranked.output.split())
    assert ranked.exit_code == 0 and "being written by a running catscreen relax" in said


def test_a_missing_baseline_fails_before_any_work(tmp_path: Path) -> None:
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(RECIPE)
    result = _run(recipe, tmp_path / "run", "--ci", "--baseline", str(tmp_path / "typo.json"))
    assert result.exit_code == 2 and "baseline not found" in result.output
    assert not (tmp_path / "run" / "enumerate").exists()
    other = tmp_path / "other.json"  # a baseline of another recipe passed any run before
    shipped = Path(__file__).parents[1] / "recipes" / "baselines" / "quickstart.json"
    other.write_text(shipped.read_text())
    result = _run(recipe, tmp_path / "run", "--ci", "--baseline", str(other))
    assert result.exit_code == 2, result.output
    assert "is for recipe 'quickstart', not 'tiny'" in " ".join(result.output.split())
    assert not (tmp_path / "run" / "enumerate").exists()


def test_yaml_off_and_no_stay_words(tmp_path: Path) -> None:
    from catscreen.campaign.recipe import load_recipe

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(
        RECIPE.replace("spin: auto", "spin: off").replace(
            "adsorbates: [O, H]", "adsorbates: [O, NO]"
        )
    )
    loaded = load_recipe(recipe)
    assert loaded.model.spin == "off" and loaded.adsorbates == ["O", "NO"]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("steps: 60", "steps: true", "relax.steps: true/false is no value here"),
        ("fmax: 0.1", "fmax: .inf", "relax.fmax: Input should be a finite number"),
        ("adsorbates: [O, H]", "adsorbates: [O, H, O]", "adsorbate(s) listed twice: O"),
        ('miller: ["111"]', 'miller: ["111", "1,1,1"]', "facet 1,1,1 is listed twice"),
        ("vacuum: 10.0", "vacuum: 1.0e9", "slab.vacuum: Input should be less than or equal to 100"),
    ],
)
def test_recipe_values_that_would_mislead_are_refused(tmp_path, old, new, message) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(RECIPE.replace(old, new))
    result = runner.invoke(app, ["campaign", "run", str(bad), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and message in result.output, result.output


def test_a_relative_checkpoint_is_found_next_to_the_recipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Like candidate files: `model: weights/m.pt` is read from the recipe's folder, whatever
    the working directory; the rows record that checkpoint's name and version."""
    folder = tmp_path / "project"
    (folder / "weights").mkdir(parents=True)
    shutil.copy(data_dir() / "models" / "bundled.pt", folder / "weights" / "m.pt")
    text = RECIPE.replace("model: {name: emt,", "model: {name: weights/m.pt,")
    text = text.replace("candidates: [Pt, Cu]", "candidates: [Pt]").replace("[O, H]", "[O]")
    (folder / "tiny.yaml").write_text(text)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = _run(Path("../project/tiny.yaml"), Path("run"))
    assert result.exit_code == 0, result.output
    rows = pd.read_parquet(elsewhere / "run" / "results.parquet")
    assert set(rows.model_version) == {load_model("bundled").info.version}


def test_a_reference_named_by_its_frame_in_a_file_of_several(tmp_path: Path) -> None:
    """Pt and Cu bulks as two frames of one file: the reference is metals_1, Cu(111)."""
    from ase.build import bulk
    from ase.io import write

    write(tmp_path / "metals.extxyz", [bulk("Pt", "fcc", a=3.92), bulk("Cu", "fcc", a=3.61)])
    text = RECIPE.replace(
        "candidates: [Pt, Cu]", "candidates: [{name: metals, file: metals.extxyz}]"
    )
    recipe = tmp_path / "frames.yaml"
    recipe.write_text(
        text.replace("  top_n: 2\n", "  top_n: 2\n  reference: {bulk: metals_5, miller: '111'}\n")
    )
    result = _run(recipe, tmp_path / "missing")
    assert result.exit_code == 2, result.output
    assert "reference candidate 'metals_5(111)' is not in this run" in " ".join(
        result.output.split()
    )
    assert not (tmp_path / "missing" / "results.parquet").exists()

    recipe.write_text(
        text.replace("  top_n: 2\n", "  top_n: 2\n  reference: {bulk: metals_1, miller: '111'}\n")
    )
    result = _run(recipe, tmp_path / "run")
    assert result.exit_code == 0, result.output
    board = pd.read_csv(tmp_path / "run" / "leaderboard.csv").set_index("candidate")
    assert board.loc["metals_1(111)", "is_reference"]
    assert board.loc["metals_1(111)", "dE_O"] == pytest.approx(0.0, abs=1e-9)
    assert board.loc["metals_0(111)", "dE_O"] != pytest.approx(0.0, abs=1e-3)
    # the tables say which row is the reference (it read as the best screened candidate)
    summary = (tmp_path / "run" / "summary.md").read_text()
    assert "| metals_1(111) (reference) |" in summary and "| metals_0(111) |" in summary
    said = " ".join(result.output.split())
    assert "candidates (* the reference)" in said and "metals_1(111)*" in said


def test_a_cut_dft_list_shows_the_best_ranked_candidates_first(
    campaign: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The summary cut the flagged list at 30 rows in enumerate order, without saying so: a
    Fischer-Tropsch run listed two surfaces and none of its top three."""
    from catscreen.campaign import summary
    from catscreen.campaign.leaderboard import descriptor_targets
    from catscreen.campaign.runner import load_leaderboard, read_campaign_recipe
    from catscreen.campaign.state import load_state

    _, out = campaign
    recipe = read_campaign_recipe(out, ranked=True)
    board = load_leaderboard(out, recipe)
    flagged = pd.read_parquet(out / "rank" / "flagged.parquet")
    best, worst = board.sort_values("rank")["candidate"].iloc[[0, -1]]
    assert {best, worst} <= set(flagged["candidate"])
    worst_first = pd.concat([flagged[flagged["candidate"] == worst], flagged])
    assert len(summary.flags_frame(worst_first, board)) == len(worst_first)  # labels repeat
    # the descriptors' placements first: CO and CH_x rows filled a Fischer-Tropsch list
    framed = list(summary.flags_frame(flagged, board, {"O"}).adsorbate)
    assert {"O", "H"} <= set(framed) and framed == sorted(framed, key=lambda a: a != "O")
    monkeypatch.setattr(summary, "MAX_TABLE_ROWS", 1)
    state = load_state(out)
    text = summary.render_summary(
        recipe, board, descriptor_targets(recipe), worst_first, state, None, []
    )
    section = text.split("## DFT validation")[1].split("## Run")[0]
    n = len(worst_first)
    assert (
        f"(1 of {n} flagged, best-ranked candidates first; all in rank/flagged.parquet)" in section
    )
    assert f"| {best} |" in section and f"| {worst} |" not in section
    assert "| site_type | final_site_type |" in section  # where the minimum is, not only its start


def _ranks_as(local: Path, root: Path, result: Result) -> dict:
    """A finished run in `root` whose descriptors are the local campaign's; its results'
    metadata, which says how it ran."""
    assert result.exit_code == 0, result.output
    board, expected = (
        pd.read_csv(folder / "leaderboard.csv").set_index("candidate") for folder in (root, local)
    )
    pd.testing.assert_series_equal(board["dE_O"], expected["dE_O"], atol=1e-4)
    return read_parquet_metadata(root / "results.parquet")


def test_a_dask_campaign_ranks_as_the_local_one(
    campaign: tuple[Path, Path], tmp_path: Path
) -> None:
    """The campaign's Dask path end to end on a real LocalCluster (two workers, relax's
    default): the same descriptors as the local run, and the run recorded as a Dask one."""
    recipe, local = campaign
    result = _run(recipe, tmp_path / "dask", "--executor", "dask")
    meta = _ranks_as(local, tmp_path / "dask", result)
    assert (meta["settings"]["executor"], meta["settings"]["workers"]) == ("dask", 2)
    assert [run["executor"] for run in meta["runs"]] == ["dask"]


def test_a_campaign_relaxes_on_an_existing_scheduler(
    campaign: tuple[Path, Path], tmp_path: Path
) -> None:
    """`relax --scheduler` had no campaign counterpart: a user's cluster could not be used."""
    from distributed import LocalCluster

    recipe, local = campaign
    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        address = cluster.scheduler_address
        result = _run(recipe, tmp_path / "s", "--executor", "dask", "--scheduler", address)
    meta = _ranks_as(local, tmp_path / "s", result)
    assert (meta["settings"]["executor"], meta["settings"]["scheduler"]) == ("dask", address)
    alone = _run(recipe, tmp_path / "l", "--scheduler", address)  # the recipe's local executor
    assert alone.exit_code == 2 and "--scheduler needs --executor dask" in alone.output
    bad = _run(
        recipe, tmp_path / "b", "--executor", "dask", "--scheduler", "tcp://nosuchhost.invalid:1"
    )
    assert bad.exit_code == 2 and "no host nosuchhost.invalid" in bad.output
    assert not (tmp_path / "b").exists()  # named before enumerate


def test_baseline_write_over_a_file_that_is_no_baseline_is_refused(
    campaign: tuple[Path, Path], tmp_path: Path
) -> None:
    """`--write R/results.parquet` replaced the relax results with JSON, exit 0."""
    _, out = campaign
    before = (out / "results.parquet").read_bytes()
    args = ["campaign", "baseline", str(out), "--write", str(out / "results.parquet")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "is not a catscreen baseline (left unchanged)" in result.output
    assert (out / "results.parquet").read_bytes() == before
    first = tmp_path / "b.json"  # an earlier baseline is replaced, as before
    for _ in range(2):
        result = runner.invoke(app, ["campaign", "baseline", str(out), "--write", str(first)])
        assert result.exit_code == 0, result.output
