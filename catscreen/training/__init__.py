"""Training data for the bundled model: real DFT spin pairs, teacher labels, loaders, trainer.

Every frame carries its context in `atoms.info` (`spin`, `fidelity`, `source`, `sid`, `fid`)
so that datasets from different sources can be mixed and still be told apart.
"""
