"""Which reference a spin-on candidate should be compared with: the reference surface in its
own spin context (spin off under `--spin auto` for Ru) or relaxed again in the candidate's.

    OMP_NUM_THREADS=1 python benchmarks/reference_context.py [OUT]

The ammonia recipe with N only (recipes/ammonia_synthesis.yaml: ten candidates, Ru(0001) the
reference, 4-layer 1/4 ML cells) runs as a campaign with the bundled model, which relaxes Ru
again spin-on (`relax --reference`). Its dE_N is then ranked twice: with the reference in the
candidate's context (what rank does now) and with the results' copies left out (the reference
in its own context, as before). The same placements relaxed with CHGNet (the teacher, trained
on spin-polarised Materials Project PBE) give the comparison. About 12 minutes on 2 cores, most
of it CHGNet.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pandas as pd
import yaml

from catscreen.analysis.rank import RankSettings, rank_results
from catscreen.campaign.runner import RunOptions, run_campaign
from catscreen.workflow.runner import RelaxSettings, relax_configurations

REFERENCE = "Ru(0001)"


def _rel_n(results: pd.DataFrame) -> pd.DataFrame:
    out = rank_results(results, RankSettings(reference_candidate=REFERENCE)).ranked
    return out.set_index("candidate")[["spin", "reference_spin", "rel_N"]]


def main(folder: Path) -> None:
    shipped = Path(__file__).resolve().parents[1] / "recipes" / "ammonia_synthesis.yaml"
    recipe = yaml.safe_load(shipped.read_text())
    recipe["adsorbates"] = ["N"]
    recipe["ranking"]["descriptors"] = [d for d in recipe["ranking"]["descriptors"]
                                        if d["adsorbate"] == "N"]  # fmt: skip
    path = folder / "ammonia_n.yaml"
    path.write_text(yaml.safe_dump(recipe))
    run_campaign(path, folder / "campaign", RunOptions(progress=False), lambda m: None)
    results = pd.read_parquet(folder / "campaign" / "results.parquet")
    within = _rel_n(results)
    own = _rel_n(results[results.spin_mode != "reference"])
    teacher_path = folder / "chgnet.parquet"
    settings = RelaxSettings(model="chgnet", spin="auto", steps=recipe["relax"]["steps"])
    relax_configurations(folder / "campaign" / "enumerate", teacher_path, settings, progress=False)
    teacher = _rel_n(pd.read_parquet(teacher_path))
    print(f"dE_N = min E_ads(N) - same on {REFERENCE} (eV); CHGNet 0.3.0 relaxes the same "
          "placements")  # fmt: skip
    print(f"{'candidate':10} {'spin':>4} {'ref. own ctx':>12} {'ref. same ctx':>13} {'CHGNet':>7}")
    errors: dict[str, list[float]] = {"own": [], "same": []}
    for name in within.index:
        t = teacher.loc[name, "rel_N"]
        a, b = own.loc[name, "rel_N"], within.loc[name, "rel_N"]
        print(f"{name:10} {within.loc[name, 'spin']:>4} {a:12.3f} {b:13.3f} {t:7.3f}")
        if within.loc[name, "spin"] == "on":
            errors["own"].append(abs(a - t))
            errors["same"].append(abs(b - t))
    n = len(errors["own"])
    for key, words in (("own", "reference in its own context"), ("same", "in the candidate's")):
        e = errors[key]
        print(f"{n} spin-on candidates, {words}: MAE {sum(e) / n:.3f} eV, max {max(e):.3f} eV")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
