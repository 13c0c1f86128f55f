"""Data-parallel training: processes spawned by `--nproc N` or launched by torchrun.

Each rank trains on its shard of the in-memory dataset with the model wrapped in
DistributedDataParallel (gloo on CPU, nccl on CUDA); rank 0 alone logs and writes.
"""
from __future__ import annotations

import os
import pickle
import signal
import socket
import sys
from dataclasses import replace

import torch
import torch.multiprocessing as mp

from ..compiler.source import SnncError


def spawn_train(exp, options, process) -> dict:
    """Train in options.nproc spawned processes (gloo on CPU, nccl on CUDA) and return rank 0's result.

    `process(exp, options, rank, world)` trains in one process (the runner's); the caller has checked the
    output folder."""
    try:
        payload = pickle.dumps(exp)
    except Exception as exc:
        raise SnncError(f"--nproc needs a picklable experiment; {exp.name}'s is not ({exc})",
                        hint="launch with torchrun --nproc-per-node N instead") from None
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    port = _free_port()
    old = signal.getsignal(signal.SIGINT)
    quiet = old not in (signal.SIG_IGN, None)  # an ignored SIGINT stays ignored, here and in the workers
    if quiet:
        signal.signal(signal.SIGINT, lambda *a: None)  # the workers see Ctrl-C too and stop cleanly
    try:
        mp.start_processes(_spawn_worker, args=(payload, _loaded_packages(), options, port, queue, process),
                           nprocs=options.nproc,
                           join=True, start_method="spawn")
    except mp.ProcessExitedException as exc:
        raise SnncError(
            f"training process {exc.error_index} died ({exc}); its output is above",
            hint="spawned processes re-import the main script: guard its top level with "
            "`if __name__ == '__main__':`, or launch with torchrun --nproc-per-node N",
        ) from None
    finally:
        if quiet:
            signal.signal(signal.SIGINT, old)
    replies = []
    while not queue.empty():
        replies.append(queue.get())
    errors = [payload for kind, payload in replies if kind == "error"]
    if errors:
        raise SnncError(diagnostics=errors[0])
    return next(payload for kind, payload in replies if kind == "result")


def _spawn_worker(rank: int, payload: bytes, packages: list, options, port: int, queue, process):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(options.nproc))
    from ..runtime.loader import import_package

    for name, folder in packages:
        import_package(name, folder)
    _install_fused_backends()
    exp = pickle.loads(payload)
    try:
        result = train_torchrun(exp, replace(options, nproc=1), options.nproc, process)
    except SnncError as exc:
        queue.put(("error", exc.diagnostics))
        return
    queue.put(("result", result) if rank == 0 else ("done", None))


def _loaded_packages() -> list[tuple[str, str]]:
    """Top-level packages imported from outside sys.path (such as compiled .snn models): a spawned
    process must import them the same way before it can unpickle the experiment."""
    on_path = {os.path.realpath(p or os.getcwd()) for p in sys.path}
    found = []
    for name, module in list(sys.modules.items()):
        spec = getattr(module, "__spec__", None)
        if "." in name or spec is None or not spec.submodule_search_locations or not spec.origin:
            continue
        folder = os.path.dirname(spec.origin)
        if os.path.isfile(spec.origin) and os.path.realpath(os.path.dirname(folder)) not in on_path:
            found.append((name, folder))
    return found


def _install_fused_backends():
    """snnc.load() installs snnc's backend table in the parent; do the same here."""
    from ..runtime import ops

    ops.install()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_torchrun(exp, options, world: int, process) -> dict:
    """One rank of a torchrun (or spawned) run: join the process group, train with `process`, leave."""
    import torch.distributed as dist

    from ..runtime.backends import run_device

    rank = int(os.environ.get("RANK", "0"))
    device = run_device(options.device, options.backend, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        return process(exp, replace(options, device=str(device)), rank, world)
    finally:
        _leave_group(owned)


def _leave_group(owned: bool):
    """Wait for all ranks (rank 0 may still be writing; errors are raised by all ranks together), then leave."""
    import torch.distributed as dist

    try:
        dist.barrier()
    except Exception:  # a peer is gone; nothing left to wait for
        pass
    if owned:
        dist.destroy_process_group()


def wrap_ddp(net: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel without buffer broadcasts in forward (neuron state is per rank): the keyword
    that says so differs between torch versions, so it is looked up, not assumed."""
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    params = inspect.signature(DistributedDataParallel.__init__).parameters
    extra = {key: False for key in ("forward_sync_buffers", "broadcast_buffers") if key in params}
    return DistributedDataParallel(net, device_ids=ids, **dict(list(extra.items())[:1]))


def all_sum(world: int, values: list, device: torch.device) -> list:
    """Sum a few numbers over all ranks (a no-op in one process)."""
    if world == 1:
        return values
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def all_max(values: list, device: torch.device) -> list:
    """Element-wise maximum over all ranks."""
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.tolist()
