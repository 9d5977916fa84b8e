"""Train a candidate on a lent GPU machine in one call, and bring back what the CPU side needs.

The image of the project's lent H200 machines has torch and e3nn but neither ASE, vesin and
pydantic (they travel as wheels in `.whl`, see benchmarks/gpu_check.py; e3nn travels too, to
match the version here) nor the CLI's packages, so this calls the trainer directly. The whole
device call, the CUDA checks first:

    python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site \\
        .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 \\
      && (timeout 100 python3 benchmarks/gpu_check.py 2>&1 | tee $OUT/gpu_check.txt; \\
          timeout 440 python3 benchmarks/gpu_train.py \\
            data/training/candidates/gpu_l2_stage{1,2}.yaml --copy-to $OUT 2>&1 \\
          | tee $OUT/train.log)

Several runs share one GPU well: a step is bound by kernel launches, so three runs at once each
kept 70% of one run's rate (benchmarks/results/collate_workers-h200.txt; set `workers: 3` in
each config). A device call brings back only a few files from $OUT (8 in the call of
2026-12-04, which ran these two and gpu_ft_lr3e-4.yaml unpacked and lost the rest), so copy to
a folder and pack it at the end, after the install line above:

    C=data/training/candidates; R=/tmp/results; \
    (timeout 480 python3 benchmarks/gpu_train.py $C/gpu_ft_stage2.yaml --copy-to $R > ft.log 2>&1 &
     timeout 480 python3 benchmarks/gpu_train.py $C/gpu_wide_stage{1,2}.yaml --copy-to $R \
       > wide.log 2>&1 &
     wait; cp *.log $R; tar czf $OUT/results.tgz -C $R .)

Runs the configs in order (a later stage's `init_from` names an earlier one's best.pt). For each
prints the time its data took to load, the trainer's validation lines, the steps run and the
training steps per second (validations left out), and copies its best.pt and validation history
to --copy-to as <config stem>.pt and <config stem>-history.json as soon as it ends, so a call cut
short keeps the stages it finished. The adsorption figures come from benchmarks/accuracy.py on
the CPU, with `--model <stem>.pt`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

from catscreen.errors import CatscreenError
from catscreen.training.trainer import TrainConfig, Trainer


def train(path: Path, args: argparse.Namespace, start: float) -> None:
    def stamp(message: str) -> None:
        print(f"[{time.perf_counter() - start:6.0f} s] {path.stem}: {message}")

    config = TrainConfig.load(path)
    if args.device:
        config = replace(config, device=args.device)
    if args.minutes > 0:
        config = replace(config, max_minutes=args.minutes)
    trainer = Trainer(config, log=stamp)
    params = sum(p.numel() for p in trainer.net.parameters())
    stamp(
        f"loaded {len(trainer.train)} training and {len(trainer.val)} held-out frames; "
        f"{params} parameters on {trainer.device}"
    )
    best = trainer.run()
    rate = trainer.step / max(trainer.elapsed, 1e-9)
    stamp(
        f"{trainer.step} steps of {config.batch_size} frames in {trainer.elapsed:.0f} s of "
        f"training: {rate:.1f} steps/s; best model {best}"
    )
    if args.copy_to:
        args.copy_to.mkdir(parents=True, exist_ok=True)
        shutil.copy(best, args.copy_to / f"{path.stem}.pt")
        history = json.dumps(trainer.history, indent=1)
        (args.copy_to / f"{path.stem}-history.json").write_text(history)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", type=Path, nargs="+", help="training configs, run in order")
    parser.add_argument("--device", default="", help="override the configs' device")
    parser.add_argument("--minutes", type=float, default=0.0, help="override max_minutes")
    parser.add_argument("--copy-to", type=Path, help="folder that receives the results")
    args = parser.parse_args()
    start = time.perf_counter()
    for path in args.configs:
        train(path, args, start)


if __name__ == "__main__":
    try:
        main()
    except CatscreenError as exc:  # no GPU, a missing file: one line, as the CLI says it
        raise SystemExit(f"error: {exc}") from None
