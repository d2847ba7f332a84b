"""``torchrun --nproc_per_node=K -m tise_bench ...``: K processes share the image feature extraction.

Each rank computes the features of every K-th image (its shard) into the shared feature cache, which is
content-addressed and append-only, so concurrent writers are safe; after a barrier every rank's view of
the cache is refreshed and rank 0 reads all features from it and goes on alone (text embeddings,
reference statistics, metrics, ``metrics.json``). The other ranks only extract, then exit. The numbers
are those of a single-process run: the features are the same, only who computed them differs.

Without ``WORLD_SIZE>1`` in the environment (a plain ``python -m tise_bench``) nothing here does anything.
"""

from __future__ import annotations

import atexit
import datetime
import logging
import os
from dataclasses import dataclass

import torch

from .backbones.base import forward_counts

log = logging.getLogger(__name__)

# A rank waits at the barrier for the slowest rank's shard; long runs must not trip the default timeout.
_TIMEOUT_S = float(os.environ.get("TISE_DIST_TIMEOUT_S", 6 * 3600))


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, items: list) -> list:
        """This rank's share of ``items`` (strided, so every rank gets a similar mix)."""
        return items[self.rank :: self.world_size]

    def barrier(self) -> None:
        if not self.enabled:
            return
        import torch.distributed as td

        if self.backend == "nccl":
            td.barrier(device_ids=[self.local_rank])
        else:
            td.barrier()


def _wants_cuda(device: str) -> bool:
    return (torch.cuda.is_available() and device in ("auto", "cuda")) or device.startswith("cuda")


def init_from_env(device: str = "auto") -> Dist:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT), if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as td

    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = _wants_cuda(device)
    if cuda:
        torch.cuda.set_device(local)
    if not td.is_initialized():
        # One group per process, torn down at exit, not per run: under ``-m`` the runs of a sweep follow one
        # another in each rank, and rank 1 may reach the next run's barrier while rank 0 still writes.
        td.init_process_group(backend="nccl" if cuda else "gloo", timeout=datetime.timedelta(seconds=_TIMEOUT_S))
        atexit.register(_destroy)
    d = Dist(rank=td.get_rank(), world_size=td.get_world_size(), local_rank=local, backend=td.get_backend())
    log.info("distributed: rank %d of %d (backend %s)", d.rank, d.world_size, d.backend)
    return d


def _destroy() -> None:
    import torch.distributed as td

    if td.is_initialized():
        td.destroy_process_group()


def rank_device(device: str, dist: Dist) -> str:
    """``auto``/``cuda`` -> this rank's GPU (``cuda:LOCAL_RANK``) under torchrun; anything else unchanged."""
    if dist.enabled and _wants_cuda(device) and ":" not in device:
        return f"cuda:{dist.local_rank}"
    return device


def extract_shard(bank, paths: list[str], needs: dict[str, set[str]], *, on_bad: str, crops, dist: Dist) -> None:
    """Every rank fills the shared cache with its shard of ``paths``; on return all ranks see all features.

    A rank whose shard fails (an unreadable image under ``on_bad_image=fail``, say) only logs it: rank 0's
    full pass afterwards meets the same image and raises the error the user should see, instead of the
    other ranks hanging at the barrier.
    """
    mine = dist.shard(list(paths))
    before = _images_forwarded(bank)
    try:
        bank.images(mine, needs, on_bad=on_bad, crops=crops)
        log.info(
            "distributed: rank %d extracted its shard of %d/%d images (%d backbone forwards)",
            dist.rank,
            len(mine),
            len(paths),
            _images_forwarded(bank) - before,
        )
    except Exception as e:  # noqa: BLE001 - re-raised by rank 0's full pass, see docstring
        log.warning("distributed: rank %d could not extract its shard (%s); rank 0 will redo it", dist.rank, e)
    dist.barrier()
    bank.refresh()


def _images_forwarded(bank) -> int:
    return sum(v for k, v in forward_counts(bank.backbones).items() if not k.endswith(".text"))
