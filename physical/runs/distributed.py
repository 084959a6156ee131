"""Many processes: `torchrun --nproc_per_node=K -m physical run pipeline.yaml` (and `--nnodes` for
several machines) shards generate, classify and experiments by image across the K ranks.

- One device per rank: on cuda, LOCAL_RANK picks the GPU (`cuda:LOCAL_RANK`); NCCL carries tensors
  there and a gloo group carries the small Python objects the stages exchange (file names,
  predictions); on the CPU everything goes over gloo.
- Rank 0 alone runs the stage runner (the run lock, stage status, print, capture, align, report);
  for a sharded stage it tells the other ranks which one (`announce`), and every rank runs the
  stage's function on its share of the images (`shard`: image i goes to rank i mod K), then the
  shares are gathered (`gather`) and rank 0 writes the stage's files. Per-item outputs (generate's
  images) are written by the rank that made them, keyed by their content, so a rerun after a failed
  rank redoes only the images that are missing.
- In experiments, the predictions (every transformation, defence and target model) are sharded by
  batch; the defences' adaptive attacks run whole on every rank (a randomised defence draws from one
  stream batch after batch, so a share of the batches would draw differently), and rank 0's copy of
  the stage's files is the one kept.
- The run directory is the only thing ranks share: on several nodes it must be on a shared file
  system (the same path on every node).
- A rank that dies: torchrun stops the others and names it; a rank that meets the dead peer in a
  collective stops with one line naming the step and says that a rerun resumes.

Without torchrun (WORLD_SIZE unset or 1) every function here is the one-process identity.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.distributed as dist
import torch.distributed.run as torchrun
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

from physical.errors import UserError
from physical.log import write_line
from physical.models import pick_device

# how long a rank waits for the others in one step (rank 0 may spend long on print, capture and
# align while the others wait for the next sharded stage)
WAIT = datetime.timedelta(hours=12)


class RankFailed(UserError):
    """Another rank stopped in the middle of a collective step."""


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    group: Any = None  # gloo group for Python objects
    device: Optional[str] = None  # this rank's device when torchrun chose it (cuda:LOCAL_RANK)

    @property
    def main(self) -> bool:
        return self.rank == 0


_DIST = Dist()


def current() -> Dist:
    return _DIST


def world_from_env() -> int:
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def init(device_spec: str) -> tuple[Dist, Optional[str]]:
    """Join the torchrun job described by the environment (a no-op outside torchrun). Returns the
    rank's view and the device it uses (None: the config's own). On cuda every rank takes the GPU of
    its local rank; a machine with fewer GPUs than ranks per node is a UserError naming both."""
    global _DIST
    world = world_from_env()
    if world <= 1:
        return _DIST, None
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    device = None
    if check_devices(device_spec, local_world):
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    elif device_spec == "auto":
        device = "cpu"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device and device.startswith("cuda") else "gloo", timeout=WAIT)
    group = dist.new_group(backend="gloo", timeout=WAIT) if dist.get_backend() != "gloo" else dist.group.WORLD
    _DIST = Dist(rank, world, local, group, device)
    return _DIST, device


def check_devices(device_spec: str, per_node: int, flag: str = "--nproc_per_node") -> bool:
    """Whether `per_node` ranks on this machine use CUDA (one GPU each); a UserError naming both
    when the machine has fewer GPUs than that."""
    want_cuda = device_spec.startswith("cuda") or (device_spec == "auto" and torch.cuda.is_available())
    if want_cuda:
        have = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if have < per_node:
            raise UserError(f"run.device: {device_spec!r} with {per_node} processes per node needs {per_node} "
                            f"CUDA device(s); this machine has {have}: use {flag}={max(have, 1)}"
                            f"{'' if have else ' or run.device: cpu'}")
    return want_cuda


def launch(procs: int, argv: list[str]) -> int:
    """`physical run --procs K ...`: torchrun's launcher on this machine (--standalone) with K ranks
    of `physical run ...`, its failures as one line: ranks that stopped on bad input (exit 2) have
    named it themselves; any other failure names the rank and its exit code."""
    try:
        torchrun.run(torchrun.parse_args(["--standalone", f"--nproc_per_node={procs}", "-m", "physical", "run", *argv]))
    except ChildFailedError as e:
        codes = {f.exitcode for f in e.failures.values()}
        if codes == {2}:
            return 2
        rank, first = e.get_first_failure()
        how = f"signal {first.signal_name()}" if first.exitcode < 0 else f"exit code {first.exitcode}"
        write_line(f"physical: error: rank {rank} of {procs} stopped ({how}); finished images are kept: run the "
                   "same command again to resume")
        return 1  # not the user's input: the exit code of a failed run
    return 0


def device_for(spec: str) -> torch.device:
    """The device this process works on: its rank's, else the config's (`run.device`)."""
    return torch.device(_DIST.device) if _DIST.device else pick_device(spec)


def finish() -> None:
    global _DIST
    if _DIST.world > 1:
        if dist.is_initialized():
            dist.destroy_process_group()
    _DIST = Dist()


def shard(n: int) -> list[int]:
    """The indices of n images this rank works on (image i on rank i mod K: shares differ by one at most)."""
    d = _DIST
    return list(range(d.rank, n, d.world))


def _collective(what: str, fn):
    try:
        return fn()
    except (RuntimeError, ConnectionError) as e:  # a peer that died closes its connections
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise RankFailed(f"rank {_DIST.rank}: another rank stopped during {what} ({first[:160]}); "
                         "run the same command again to resume: finished work is kept") from None


def gather(obj, what: str) -> list:
    """Every rank's `obj`, in rank order, on every rank ([obj] in one process)."""
    d = _DIST
    if d.world <= 1:
        return [obj]
    out: list = [None] * d.world
    _collective(what, lambda: dist.all_gather_object(out, obj, group=d.group))
    return out


def merge(parts: dict | list, what: str):
    """The union of every rank's dict (or the concatenation of lists, in rank order)."""
    got = gather(parts, what)
    if isinstance(parts, dict):
        out: dict = {}
        for p in got:
            out.update(p)
        return out
    return [x for p in got for x in p]


def announce(stage: Optional[str]) -> Optional[str]:
    """Rank 0 tells the others the next sharded stage (None: the run is over); every rank returns it."""
    d = _DIST
    if d.world <= 1:
        return stage
    box = [stage if d.main else None]
    _collective("the wait for the next stage", lambda: dist.broadcast_object_list(box, src=0, group=d.group))
    return box[0]


def barrier(what: str) -> None:
    d = _DIST
    if d.world > 1:
        _collective(what, lambda: dist.barrier(group=d.group))
