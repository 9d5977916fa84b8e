"""The campaign's stage log (DIR/campaign.json): what ran, with which inputs, how long, what came out.

Resuming and `campaign status` both read it. A stage is done when its record says so, its hash
matches the recipe's, and its files still exist (parquet ones with a readable footer); anything
else reruns that stage.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from catscreen.errors import CatscreenError, first_line
from catscreen.io import atomic_path, read_parquet_metadata

STAGES: tuple[str, ...] = ("enumerate", "relax", "rank")
STATE_FILE = "campaign.json"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class StageRecord(BaseModel):
    # stale: it was done, then an earlier stage reran, so its outputs no longer follow the recipe
    status: Literal["running", "done", "failed", "stale"]
    hash: str
    started: str
    finished: str | None = None
    seconds: float | None = None
    files: list[str] = Field(default_factory=list)  # relative to the campaign folder
    counts: dict[str, int] = Field(default_factory=dict)
    message: str = ""
    runs: int = 1  # how many times this stage has been (re)started
    # who runs it, so that `campaign status` can tell a running stage from a killed one
    host: str | None = None
    pid: int | None = None
    catscreen: str | None = None  # the version that ran it (`code_version`: with its commit)

    def killed(self) -> bool:
        """Recorded as running by a process of this machine that is gone (SIGKILL, power)."""
        if self.status != "running" or self.pid is None or self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            pass
        return False


class CampaignState(BaseModel):
    recipe: str
    recipe_file: str
    stages: dict[str, StageRecord] = Field(default_factory=dict)

    def is_done(self, stage: str, hash_: str, root: Path) -> bool:
        rec = self.stages.get(stage)
        return (
            rec is not None
            and rec.status == "done"
            and rec.hash == hash_
            and all(intact(root / f) for f in rec.files)
        )


def intact(path: Path) -> bool:
    """There, and a parquet file's footer readable (a cut-off file; damage inside is found when
    read): a cut-off rank table reran nothing and failed every later read (a cut-off results
    table is then refused by the relax stage)."""
    if not path.exists():
        return False
    if path.suffix != ".parquet":
        return True
    try:
        read_parquet_metadata(path)
    except (CatscreenError, ValueError):  # ValueError: catscreen's metadata itself damaged
        return False
    return True


def state_path(root: Path) -> Path:
    return root / STATE_FILE


def load_state(root: Path) -> CampaignState | None:
    path = state_path(root)
    if not path.exists():
        return None
    try:
        return CampaignState.model_validate(json.loads(path.read_text()))
    except (OSError, ValueError, ValidationError) as exc:  # not JSON, not a file, not ours
        raise CatscreenError(
            f"{path} is damaged ({first_line(exc)}); delete it to start over"
        ) from None


def require_state(root: Path) -> CampaignState:
    """The state of an existing campaign folder; anything else is a one-line error."""
    state = load_state(root)
    if state is None:
        why = "no such folder" if not root.exists() else f"no {STATE_FILE}"
        raise CatscreenError(f"{root} is not a campaign folder ({why})")
    return state


def require_ranked(root: Path) -> CampaignState:
    """The state of a campaign folder whose rank stage is done (for report and baseline)."""
    state = require_state(root)
    rank = state.stages.get("rank")
    if rank is not None and rank.status == "done":
        return state
    why = "has not run"
    if rank is not None:
        why = {
            "stale": "is out of date with its recipe (an earlier stage reran)",
            "failed": f"failed ({rank.message})",
            "running": "did not finish (still running, or the run was killed)",
        }[rank.status]
    raise CatscreenError(f"{root}: the rank stage {why}; run `catscreen campaign run` first")


def save_state(root: Path, state: CampaignState) -> None:
    with atomic_path(state_path(root)) as tmp:
        tmp.write_text(json.dumps(state.model_dump(), indent=2) + "\n")
