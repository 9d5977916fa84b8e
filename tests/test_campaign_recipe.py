"""Recipes: every shipped recipe validates, and a bad recipe names its line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from catscreen.build.enumerate import enumerate_configurations
from catscreen.campaign.enumerate_adapter import enumerate_settings, size_note
from catscreen.campaign.leaderboard import rank_targets
from catscreen.campaign.recipe import load_recipe, parse_recipe, section_hash
from catscreen.errors import CatscreenError

RECIPES = sorted((Path(__file__).parent.parent / "recipes").glob("*.yaml"))

GOOD = """\
name: t
candidates: [Pt, Cu]
facets:
  miller: ["111"]
adsorbates: [O, H]
placement:
  mode: heuristic
ranking:
  descriptors:
    - name: dG_H
      adsorbate: H
      correction: 0.24
      target: {value: 0.0, tolerance: 0.1}
"""


def test_shipped_recipes_validate() -> None:
    names = {p.stem for p in RECIPES}
    assert {"quickstart", "ammonia_synthesis", "fischer_tropsch", "hydrogen_evolution"} <= names
    for path in RECIPES:
        recipe = load_recipe(path)
        assert recipe.name == path.stem


def test_hydrogen_evolution_states_the_correction() -> None:
    recipe = load_recipe(Path(__file__).parent.parent / "recipes" / "hydrogen_evolution.yaml")
    (d,) = recipe.ranking.descriptors
    assert d.correction == pytest.approx(0.24) and "Norskov" in d.correction_source
    # dG_H = 0 on the free-energy scale is dE_H = -0.24 eV on the adsorption-energy scale.
    assert rank_targets(recipe)["H"].value == pytest.approx(-0.24)


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("mode: heuristic", "mode: heuristik", "r.yaml:7: placement.mode:"),
        (
            "  mode: heuristic",
            "  mode: heuristic\n  nn: 3",
            "r.yaml:8: placement.nn: unknown field",
        ),
        (  # a typo'd required field: the typo is named, not the field that is then missing
            "adsorbates: [O, H]",
            "adsorbate: [O, H]",
            "r.yaml:5: adsorbate: unknown field (did you mean 'adsorbates'?)",
        ),
        ("value: 0.0", "value: zero", "r.yaml:13: ranking.descriptors.0.target.value:"),
        ("adsorbate: H", "adsorbate: N", "r.yaml:11: ranking.descriptors.0.adsorbate:"),
        ('["111"]', '["11"]', "r.yaml:4: facets.miller.0:"),
        ("[Pt, Cu]", "[Pt, Pt]", "r.yaml:2: candidates.1: duplicate candidate Pt"),
        (  # names are checked against the libraries, with the line, before any work
            "[Pt, Cu]",
            "[Pt,\n  Cuu]",
            "r.yaml:3: candidates.1.name: unknown bulk 'Cuu' (did you mean 'Cu'?)",
        ),
        ("[Pt, Cu]", "[Pt, Sn]", "r.yaml:2: candidates.1.name: element Sn has no entry"),
        ("[O, H]", "[O, H, OHH]", "r.yaml:5: adsorbates.2: unknown adsorbate 'OHH'"),
        # a descriptor named like a leaderboard column overwrote it (and its baseline)
        ("name: dG_H", "name: distance", "r.yaml:10: ranking.descriptors.0.name: distance names"),
        ("name: dG_H", "name: rank", "r.yaml:10: ranking.descriptors.0.name: rank names a"),
        ("name: dG_H", "name: model", "r.yaml:10: ranking.descriptors.0.name: model names"),
        ("name: t\n", "name: t\nname: u\n", "r.yaml:2: invalid YAML: duplicate key 'name'"),
        ("[Pt, Cu]", "[Pt, Cu", "r.yaml:3: invalid YAML"),
        (
            "      target: {value: 0.0, tolerance: 0.1}\n",
            "",
            "r.yaml:10: ranking.descriptors.0: descriptor dG_H has no target",
        ),
        # a 4-index facet of a cubic bulk failed at enumerate, naming the CLI's --miller
        ("[Pt, Cu]", "[Pt, {name: Cu, miller: ['0001']}]", "r.yaml:2: candidates.1.miller: Cu is"),
        ('["111"]', '["0001"]', "r.yaml:4: facets.miller: Pt is not hexagonal"),
        # true/false became 1.0 / 1 / 0 without a word (fmax: true relaxed to 1 eV/A)
        ("tolerance: 0.1", "tolerance: true", "r.yaml:13: ranking.descriptors.0.target.tol"),
        ("mode: heuristic", "mode: heuristic\nrelax: {fmax: true}", "r.yaml:8: relax.fmax: true"),
        ("correction: 0.24", "correction: false", "r.yaml:12: ranking.descriptors.0.correct"),
        ('["111"]', "[[1, true, 1]]", "r.yaml:4: facets.miller: true/false is no value"),
        # a new user's mistakes that got raw pydantic words or no hint (the recipe review)
        (
            "  mode: heuristic",
            "  mode: heuristic\nslab: {layer: 4}",
            "r.yaml:8: slab.layer: unknown field (did you mean 'layers'?)",
        ),
        (
            "  mode: heuristic",
            "  mode: heuristic\nrelax: {f_max: 0.1}",
            "r.yaml:8: relax.f_max: unknown field (did you mean 'fmax'?)",
        ),
        (
            "target: {value: 0.0, tolerance: 0.1}",
            "target: zero",
            "r.yaml:13: ranking.descriptors.0.target: give a mapping here, e.g. -0.3 or {value: "
            "-0.3, tolerance: 0.2}",
        ),
        ("name: t\n", "name: co binding\n", "r.yaml:1: name: 'co binding' names files: letters"),
        ("name: dG_H", "name: dG H", "r.yaml:10: ranking.descriptors.0.name: 'dG H' names table"),
        (  # dE_O and dE_H swapped: the table's dE_O column held H's values
            "name: dG_H",
            "name: dE_O",
            "r.yaml:11: ranking.descriptors.0.adsorbate: descriptor dE_O is named for O but "
            "measures H",
        ),
        (  # the recipe's facets were silently unused
            "[Pt, Cu]",
            "[{name: Pt, miller: ['111']}, {name: Cu, miller: ['111']}]",
            "r.yaml:3: facets: every candidate gives its own miller, so these facets apply to none",
        ),
    ],
)
def test_errors_name_line_and_field(old: str, new: str, where: str) -> None:
    assert old in GOOD
    with pytest.raises(CatscreenError) as info:
        parse_recipe(GOOD.replace(old, new, 1), Path("r.yaml"))
    message = str(info.value)
    assert message.startswith(where), message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (  # the typo's right name is the one missing key: nothing more to fix
            "adsorbates: [O, H]",
            "adsorbate: [O, H]",
            "r.yaml:5: adsorbate: unknown field (did you mean 'adsorbates'?)",
        ),
        (  # miller is missing too: "1 more", as the next run would fail on it
            "ranking:\n",
            "ranking:\n  reference: {bulk: Pt, tolerence: 0.3}\n",
            "r.yaml:9: ranking.reference.tolerence: unknown field (did you mean 'tolerance'?) "
            "(and 1 more error(s): fix this one and run again)",
        ),
        (
            "[Pt, Cu]",
            "[Pt, 5]",
            'r.yaml:2: candidates.1: give a mapping here, e.g. Pt, {name: Pt, miller: ["111"]} '
            "or {file: Ag.cif}",
        ),
    ],
)
def test_errors_count_what_is_left_to_fix(old: str, new: str, message: str) -> None:
    assert old in GOOD
    with pytest.raises(CatscreenError) as info:
        parse_recipe(
            GOOD.replace(old, new, 1).replace("      correction: 0.24\n", ""), Path("r.yaml")
        )
    assert str(info.value) == message


def test_a_new_user_s_spellings_are_read() -> None:
    """`reference: "Pt(111)"` as `rank --reference` takes it, `miller: "111"` as one facet and
    a file candidate named by its file were refused with pydantic's words."""
    text = GOOD.replace("ranking:\n", "ranking:\n  reference: 'Pt(111)'\n").replace(
        "      correction: 0.24\n", ""
    )
    ref = parse_recipe(text, Path("r.yaml")).ranking.reference
    assert ref is not None and (ref.bulk, ref.miller, ref.candidate) == ("Pt", (1, 1, 1), "Pt(111)")
    with pytest.raises(CatscreenError, match=r"r.yaml:9: ranking.reference: a reference names no "
                       r"termination: drop t1"):  # fmt: skip
        parse_recipe(text.replace("'Pt(111)'", "'Pt(111)t1'"), Path("r.yaml"))
    one = GOOD.replace("[Pt, Cu]", '[{name: Pt, miller: "111"}, {name: Cu, miller: 100}]')
    one = one.replace('facets:\n  miller: ["111"]\n', "")
    assert [c.miller for c in parse_recipe(one, Path("r.yaml")).candidates] == [
        [(1, 1, 1)],
        [(1, 0, 0)],
    ]
    filed = parse_recipe(GOOD.replace("[Pt, Cu]", "[Pt, {file: Ag.cif}]"), Path("r.yaml"))
    assert filed.candidates[1].name == "Ag" and filed.candidates[1].file == Path("Ag.cif")
    # a target as `rank --target dG_H=0.0` takes it: the tolerance defaults to rank's 0.2 eV
    for given in ("target: -0.1", "target: {value: -0.1}"):
        text = GOOD.replace("target: {value: 0.0, tolerance: 0.1}", given)
        target = parse_recipe(text, Path("r.yaml")).ranking.descriptors[0].target
        assert target is not None and (target.value, target.tolerance) == (-0.1, 0.2)
    # beside a reference, its tolerance, as `rank --reference X --tolerance 0.5` takes both
    text = GOOD.replace(
        "ranking:\n", "ranking:\n  reference: {bulk: Pt, miller: '111', tolerance: 0.5}\n"
    )
    text = text.replace("      correction: 0.24\n", "")
    for given, tolerance in (("target: 0.1", 0.5), ("target: {value: 0.1, tolerance: 0.3}", 0.3)):
        ranked = parse_recipe(
            text.replace("target: {value: 0.0, tolerance: 0.1}", given), Path("r")
        )
        assert rank_targets(ranked)["H"].tolerance == tolerance


def test_reference_mode_rejects_correction() -> None:
    text = GOOD.replace("ranking:\n", "ranking:\n  reference: {bulk: Pt, miller: '111'}\n")
    with pytest.raises(CatscreenError, match=r"r.yaml:13: ranking.descriptors.0.correction"):
        parse_recipe(text, Path("r.yaml"))


def test_shipped_recipes_use_library_names() -> None:
    import yaml

    from catscreen.paths import data_path

    bulks = yaml.safe_load(data_path("bulks.yaml").read_text())["bulks"]
    adsorbates = yaml.safe_load(data_path("adsorbates.yaml").read_text())["adsorbates"]
    for path in RECIPES:
        recipe = load_recipe(path)
        assert {c.name for c in recipe.candidates if c.file is None} <= set(bulks), path.name
        assert set(recipe.adsorbates) <= set(adsorbates), path.name


def test_reference_facet_beyond_max_index_is_refused() -> None:
    """With facets.max_index the reference facet must be one that enumerate can make; found
    only after the relaxations otherwise."""
    text = GOOD.replace('  miller: ["111"]', "  max_index: 1").replace(
        "ranking:\n", "ranking:\n  reference: {bulk: Pt, miller: '211'}\n"
    )
    with pytest.raises(CatscreenError, match=r"r.yaml:9: ranking.reference.miller: .*max_index 1"):
        parse_recipe(text.replace("      correction: 0.24\n", ""), Path("r.yaml"))
    ok = text.replace("'211'", "'110'").replace("      correction: 0.24\n", "")
    assert parse_recipe(ok, Path("r.yaml")).ranking.reference is not None


def test_an_unquoted_facet_with_a_leading_zero_is_not_octal() -> None:
    """YAML 1.1 reads 011 as the octal number 9; the recipe reads the facet (0, 1, 1)."""
    text = GOOD.replace('miller: ["111"]', "miller: [011, 111]")
    assert parse_recipe(text, Path("r.yaml")).facets.miller == [(0, 1, 1), (1, 1, 1)]


def test_a_hexagonal_facet_applies_to_hexagonal_candidates_only() -> None:
    """`0001` became (0, 0, 1) for every candidate: beside Co(0001) the recipe cut Pt(100),
    where `enumerate --miller 0001` skips Pt."""
    from catscreen.build.enumerate import enumerate_slabs
    from catscreen.campaign.enumerate_adapter import enumerate_settings

    text = GOOD.replace("[Pt, Cu]", "[Pt, Co]").replace('["111"]', '["111", "0001"]')
    recipe = parse_recipe(text, Path("r.yaml"))
    assert recipe.facets.miller == [(1, 1, 1), (0, 0, 0, 1)]
    slabs = enumerate_slabs(enumerate_settings(recipe, ["Pt", "Co"], tuple(recipe.facets.miller)))
    assert {(s.bulk.name, s.miller) for s in slabs} == {
        ("Pt", (1, 1, 1)),
        ("Co", (1, 1, 1)),
        ("Co", (0, 0, 1)),
    }
    with pytest.raises(CatscreenError, match="facet 0,0,1 is listed twice"):
        parse_recipe(text.replace('"0001"]', '"0001", "001"]'), Path("r.yaml"))
    # a reference on a facet only the hexagonal candidates get is refused up front (it failed
    # at rank, after enumerate and relax)
    ranked = "ranking:\n  reference: {bulk: %s, miller: '001'}\n"
    referenced = text.replace("      correction: 0.24\n", "")
    with pytest.raises(CatscreenError, match="facet 0,0,1 is not among Pt's facets"):
        parse_recipe(referenced.replace("ranking:\n", ranked % "Pt"), Path("r.yaml"))
    assert parse_recipe(referenced.replace("ranking:\n", ranked % "Co"), Path("r.yaml"))


def test_a_reference_can_be_one_frame_of_a_file_with_several() -> None:
    """enumerate names the frames of metals.extxyz metals_0, metals_1, ...; the reference names
    one of them, with the file candidate's facets."""
    text = GOOD.replace("candidates: [Pt, Cu]", "candidates: [{name: metals, file: metals.extxyz}]")
    text = text.replace("      correction: 0.24\n", "")
    for bulk in ("metals_0", "metals_12", "metals"):
        ref = f"ranking:\n  reference: {{bulk: {bulk}, miller: '111'}}\n"
        recipe = parse_recipe(text.replace("ranking:\n", ref), Path("r.yaml"))
        assert recipe.ranking.reference.candidate == f"{bulk}(111)"
    for bulk in ("metals_01", "metals_x", "metals_", "other_0"):
        ref = f"ranking:\n  reference: {{bulk: {bulk}, miller: '111'}}\n"
        with pytest.raises(CatscreenError, match="ranking.reference.bulk: .* not among"):
            parse_recipe(text.replace("ranking:\n", ref), Path("r.yaml"))
    wrong_facet = text.replace(
        "ranking:\n", "ranking:\n  reference: {bulk: metals_1, miller: '100'}\n"
    )
    with pytest.raises(CatscreenError, match="facet 1,0,0 is not among metals_1's facets"):
        parse_recipe(wrong_facet, Path("r.yaml"))
    builtin = GOOD.replace("ranking:\n", "ranking:\n  reference: {bulk: Pt_0, miller: '111'}\n")
    with pytest.raises(CatscreenError, match="not among the candidates"):  # only files have frames
        parse_recipe(builtin.replace("      correction: 0.24\n", ""), Path("r.yaml"))


def test_a_shipped_recipe_is_found_by_its_name(tmp_path, monkeypatch) -> None:
    from catscreen.campaign.recipe import find_recipe

    monkeypatch.chdir(tmp_path)  # not next to recipes/
    assert find_recipe("quickstart").name == "quickstart.yaml"
    assert load_recipe("ammonia_synthesis.yaml").name == "ammonia_synthesis"
    with pytest.raises(CatscreenError, match=r"recipe not found: quickstar \(shipped recipes: "):
        find_recipe("quickstar")
    (tmp_path / "quickstart").write_text("not a recipe: [")  # a file of that name wins
    with pytest.raises(CatscreenError, match="quickstart"):
        load_recipe("quickstart")


def test_a_missing_candidate_file_names_its_line(tmp_path) -> None:
    """Files are relative to the recipe; a missing one (or a folder) is named with its line."""
    text = GOOD.replace("candidates: [Pt, Cu]", "candidates:\n  - Pt\n  - {name: m, file: m.cif}")
    (tmp_path / "r.yaml").write_text(text)
    for make in (lambda: None, lambda: (tmp_path / "m.cif").mkdir()):
        make()
        with pytest.raises(CatscreenError) as info:
            load_recipe(tmp_path / "r.yaml")
        assert str(info.value) == (
            f"{tmp_path / 'r.yaml'}:4: candidates.1.file: file not found: {tmp_path / 'm.cif'}"
        )
    (tmp_path / "m.cif").rmdir()
    (tmp_path / "m.cif").write_text("not read here: enumerate reads it")
    assert load_recipe(tmp_path / "r.yaml").candidates[1].file == tmp_path / "m.cif"


RANKED = """\
name: t
candidates: [Pt, Au, Ni]
facets:
  miller: ["111"]
adsorbates: [O]
slab:
  min_ab: 5.0
ranking:
  descriptors:
    - name: E_H
      adsorbate: O
      target: {value: 0.0, tolerance: 0.1}
"""
ENUMERATE_SECTIONS = ("candidates", "facets", "slab", "adsorbates", "placement")


def test_slab_layers_and_repeat_reach_enumerate_and_the_stage_hash() -> None:
    recipe = parse_recipe(RANKED.replace("Au, Ni", "Cu"), Path("r.yaml"))
    # the hash the recipe had before layers and repeat existed: a finished campaign resumed
    # with this version keeps its stages
    assert section_hash(recipe, ENUMERATE_SECTIONS) == "8bdfe7cfd114adf5"
    text = RANKED.replace("  min_ab: 5.0\n", "  layers: 3\n  repeat: 2x2\n")
    sized = parse_recipe(text, Path("r.yaml"))
    assert (sized.slab.layers, sized.slab.repeat) == (3, (2, 2))
    settings = enumerate_settings(sized, ["Pt"], ((1, 1, 1),))
    assert (settings.layers, settings.repeat) == (3, (2, 2))
    assert section_hash(sized, ENUMERATE_SECTIONS) != section_hash(recipe, ENUMERATE_SECTIONS)
    with pytest.raises(CatscreenError, match=r"^r.yaml:8: slab.repeat: give min_ab or repeat, not"):
        parse_recipe(
            RANKED.replace("  min_ab: 5.0\n", "  min_ab: 5.0\n  repeat: [2, 2]\n"), Path("r.yaml")
        )
    for value, shown in (("two", "'two'"), ("22", "22")):  # YAML reads 22 as a number
        with pytest.raises(CatscreenError, match=rf"^r.yaml:7: slab.repeat: .*bad repeat {shown}"):
            parse_recipe(RANKED.replace("  min_ab: 5.0\n", f"  repeat: {value}\n"), Path("r.yaml"))


def test_enumerate_notes_candidates_of_one_facet_cut_differently() -> None:
    """Pt(111) 6 layers beside Au(111) 3 (pymatgen's whole cells at 7 A), Ni 3x3 beside 2x2
    (min_ab 5): said once, with the settings that make them alike; silent when alike."""
    recipe = parse_recipe(RANKED, Path("r.yaml"))
    images = enumerate_configurations(enumerate_settings(recipe, ["Pt", "Au", "Ni"], ((1, 1, 1),)))
    note = size_note(images)
    assert note is not None
    assert (
        "(1,1,1) Au: 3 layers, 4 top atoms; Ni: 6 layers, 9 top atoms; Pt: 6 layers, 4 top" in note
    )
    sized = parse_recipe(
        RANKED.replace("  min_ab: 5.0\n", "  layers: 3\n  repeat: 2x2\n"), Path("r.yaml")
    )
    images = enumerate_configurations(enumerate_settings(sized, ["Pt", "Au", "Ni"], ((1, 1, 1),)))
    assert size_note(images) is None


def test_campaign_keys_lists_every_key_the_shipped_recipes_use() -> None:
    """A new user writing a recipe had only the shipped examples to learn its keys from."""
    import yaml
    from typer.testing import CliRunner

    from catscreen.campaign.recipe import recipe_keys
    from catscreen.cli.main import app

    rows = {key: rest for key, *rest in recipe_keys()}
    assert all(meaning for _, _, meaning in rows.values())  # every key says what it is
    assert rows["ranking.descriptors[].target.tolerance"][:2] == ["number", "0.2"]
    assert rows["model.spin"][:2] == ["auto | on | off", '"auto"']
    assert rows["slab.repeat"][0] == "integer x integer" and rows["ranking"][1] == "required"

    def used(node: object, prefix: str = "") -> set[str]:
        if isinstance(node, dict):
            return {
                k for key, v in node.items() for k in {prefix + key} | used(v, prefix + key + ".")
            }
        if isinstance(node, list) and any(isinstance(v, dict) for v in node):
            return set().union(*(used(v, prefix.removesuffix(".") + "[].") for v in node))
        return set()

    for path in RECIPES:
        assert used(yaml.safe_load(path.read_text())) <= set(rows), path.name
    shown = CliRunner().invoke(app, ["campaign", "keys"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "ranking.descriptors[].target.tolerance" in shown.output
    assert all(f"│ {key} " in shown.output for key in rows)
