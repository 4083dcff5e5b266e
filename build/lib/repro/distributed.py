"""Where this process stands among several (torchrun / accelerate launch): read in one place only."""

from __future__ import annotations

import os


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the world size (0, 1 when not launched by torchrun or accelerate)."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Only rank 0 writes shared outputs (manifests, model folders) or deletes anything."""
    return rank_and_world()[0] == 0
