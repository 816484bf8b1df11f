"""Free memory: how many bytes a new allocation can take on a device, for the checks made before allocating.

The engine's checks (:func:`~napari_colorize.plan.check_memory`: the attention at the working size; the colour
points' solve, :class:`~napari_colorize.hints.HintSolver`) compare their estimate with it and raise a
MemoryError that says what would fit, instead of the allocator's error midway.
"""

from __future__ import annotations

import torch

__all__ = ["available_memory"]


def available_memory(device) -> int | None:
    """Bytes free for a new allocation on ``device`` (None when unknown)."""
    device = torch.device(device)
    try:
        if device.type == "cuda":
            return int(torch.cuda.mem_get_info(device)[0])
        if device.type == "cpu":
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
    except (OSError, RuntimeError, ValueError):
        pass
    return None
