"""What README.md shows runs as shown."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The "From Python" block, as written (bundled model, 14 structures)."""
    section = README.read_text().split("## From Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    results = pd.read_parquet(tmp_path / "results.parquet")
    assert set(results.status) == {"converged"} and len(results) == 14
    assert set(results[results.kind == "adslab"].bulk) == {"Pt", "Cu"}
