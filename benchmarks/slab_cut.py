"""Time to cut a facet: pymatgen's `primitive=True` against catscreen's `make_slabs`.

    python benchmarks/slab_cut.py [--bulk Pt] [--facets 321 533 611 755 10,1,1] [--cap 300]

Both cut the same facet at enumerate's defaults (7 A slab, 20 A vacuum); catscreen's slabs
are pymatgen's (tests/test_build_parts.py checks ids, cells and positions), less pymatgen's
constrained reduction of the oriented bulk cell. pymatgen runs in a child process stopped
after --cap seconds (printed as "> cap"). One line per facet: both times and their ratio
(make_slabs also tags, fixes and repeats its slabs, so the ratio understates the cut's).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time

from pymatgen.core.surface import SlabGenerator

from catscreen.build.bulks import load_bulks
from catscreen.build.slabs import make_slabs, parse_facet, three_index


def pymatgen_cut(name: str, miller: tuple[int, int, int]) -> None:
    SlabGenerator(
        load_bulks([name])[0].structure,
        miller,
        min_slab_size=7.0,
        min_vacuum_size=20.0,
        lll_reduce=False,
        center_slab=False,
        primitive=True,
        max_normal_search=1,
    ).get_slabs(symmetrize=False)


def timed_child(name: str, miller: tuple[int, int, int], cap: float) -> float | None:
    """Seconds pymatgen took, or None when stopped at the cap."""
    child = mp.get_context("fork").Process(target=pymatgen_cut, args=(name, miller))
    start = time.perf_counter()
    child.start()
    child.join(cap)
    if child.is_alive():
        child.kill()
        child.join()
        return None
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bulk", default="Pt")
    parser.add_argument("--facets", nargs="+", default=["321", "533", "611", "755", "10,1,1"])
    parser.add_argument("--cap", type=float, default=300.0, help="seconds pymatgen may take")
    args = parser.parse_args()
    bulk = load_bulks([args.bulk])[0]
    print(f"{args.bulk}: facet, pymatgen primitive=True (s), catscreen make_slabs (s), ratio")
    for text in args.facets:
        miller = three_index(parse_facet(text))
        start = time.perf_counter()
        slabs = make_slabs(bulk, miller, 7.0, 20.0, 8.0)
        ours = time.perf_counter() - start
        theirs = timed_child(args.bulk, miller, args.cap)
        shown = f"> {args.cap:.0f}" if theirs is None else f"{theirs:.1f}"
        ratio = f"> {args.cap / ours:.1f}" if theirs is None else f"{theirs / ours:.1f}"
        atoms = ", ".join(str(len(s.atoms)) for s in slabs)
        print(f"({','.join(map(str, miller))}) {shown} {ours:.1f} {ratio}x  [atoms: {atoms}]")


if __name__ == "__main__":
    main()
