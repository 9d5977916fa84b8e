"""catscreen: screen heterogeneous catalysts with a spin-conditioned equivariant MLIP."""

from functools import cache
from pathlib import Path

__version__ = "0.1.0"


@cache
def code_version() -> str:
    """The version with the git commit when catscreen runs from its own checkout
    (`0.1.0+g1a2b3c4d5e6f`, `.dirty` with uncommitted changes): between releases the number
    alone does not tell two commits' results apart. A wheel gives the number."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    # reading one's own checkout is safe: git refused another user's ("dubious ownership"),
    # and the results of a shared checkout looked like a release's
    git = ["git", "-c", f"safe.directory={root}", "-C", str(root)]
    try:
        top = subprocess.run(
            [*git, "rev-parse", "--show-toplevel"], capture_output=True, text=True, timeout=10
        )
        if top.returncode or Path(top.stdout.strip()).resolve() != root:
            return __version__  # installed, or inside someone else's repository
        described = subprocess.run(
            [*git, "describe", "--always", "--dirty=.dirty", "--abbrev=12", "--exclude=*"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return __version__
    commit = described.stdout.strip()
    return f"{__version__}+g{commit}" if described.returncode == 0 and commit else __version__
