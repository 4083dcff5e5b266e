"""Where this process stands among several (torchrun / accelerate launch): read in one place only."""

from __future__ import annotations

import os


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the world size (0, 1 when not launched by torchrun or accelerate)."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Only rank 0 writes shared outputs (manifests, model folders) or deletes anything."""
    return rank_and_world()[0] == 0


def init_process_group() -> bool:
    """Join the torchrun group (gloo on CPU, nccl on GPUs) if launched as several processes; True if joined.

    Done before the Trainer would do it, so that rank 0 can prepare the output folders while the
    others wait at `barrier`; accelerate then uses the group that exists.
    """
    rank, world = rank_and_world()
    if world <= 1:
        return False
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return True


def barrier() -> None:
    """Wait for every rank (a no-op in a single process)."""
    if rank_and_world()[1] <= 1:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()


TEARDOWN_SECONDS = 120.0


def end_process_group(timeout_s: float = TEARDOWN_SECONDS) -> None:
    """Leave the torchrun group together (a no-op in a single process): every rank waits until rank 0
    has written the model, then the group is destroyed.

    Why destroy at all: a rank that exits with gloo's threads still running can abort at exit
    ("terminate called without an active exception", seen in the two-rank test) and fail the whole
    launch after training succeeded. Why bounded: destroying a group can itself hang, rarely
    (pytorch#75097, open); the outputs are complete by then, so after ``timeout_s`` every thread's
    stack is printed and the process exits 1 instead of holding the job forever. faulthandler's
    watchdog is a C thread, so it fires even if the hang holds the GIL.
    """
    if rank_and_world()[1] <= 1:
        return
    import faulthandler
    import gc

    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        faulthandler.dump_traceback_later(timeout_s, exit=True)
        try:
            # what still holds the group (a trainer's DDP wrapper kept by a reference cycle) is freed
            # here, inside the bound: once a rank hung freeing it after the group was destroyed
            gc.collect()
            dist.destroy_process_group()
        finally:
            faulthandler.cancel_dump_traceback_later()


def main_first(fn):
    """Run ``fn`` on rank 0 first, then on the other ranks; a user error on rank 0 ends every rank.

    Rank 0's outcome (None, or its error message) is broadcast, so the other ranks raise the same
    one-line error instead of waiting forever at a barrier rank 0 never reaches.
    """
    from repro.errors import ReproError

    rank, world = rank_and_world()
    if world <= 1:
        return fn()
    import torch.distributed as dist

    result, status = None, [None]
    if rank == 0:
        try:
            result = fn()
        except ReproError as err:
            status = [err.message]
            dist.broadcast_object_list(status, src=0)
            raise
        dist.broadcast_object_list(status, src=0)
        return result
    dist.broadcast_object_list(status, src=0)
    if status[0] is not None:
        raise ReproError(f"rank 0 stopped: {status[0]}")
    return fn()
