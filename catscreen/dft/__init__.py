"""DFT inputs (VASP, GPAW) for flagged configurations and embedded GPAW validation."""

from catscreen.dft.settings import DftSettings
from catscreen.dft.tasks import DftTask, dft_tasks, write_dft_inputs

__all__ = ["DftSettings", "DftTask", "dft_tasks", "write_dft_inputs"]
