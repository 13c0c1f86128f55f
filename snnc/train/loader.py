"""Batches for the runner: in this process, or from loader processes that read, bin and augment ahead.

A split's batch is a pure function of (split, sample ids, epoch, seed): workers change where it is computed,
never what it is, so a run gives the same metrics with any number of workers and resumes exactly. Images in
memory and memory-mapped frames are cut in this process (a gather and a cast: a worker would only add
copies); events binned again each epoch and a user's own dataset use worker processes (`--data-workers`),
each with one compute thread, prefetching two batches, with pinned memory when the run is on a GPU.
"""
from __future__ import annotations

import os
from typing import Iterator

import torch

from .data import Batch, Split


def default_workers(split, augment) -> int:
    """Loader processes when the run does not say: none where a batch is a gather from memory or from the
    memory-mapped frames (measured: an in-process gather serves N-MNIST frames at 2x the rate of one worker on 2
    cores, `benchmarks/data_speed.py`); one per four cores, at least one, where every batch reads or bins samples
    again (augmentations that act on events, a user's own dataset)."""
    from .data import Frames

    if isinstance(split, Split) or (isinstance(split, Frames) and not ev_augment(augment)):
        return 0
    return max(1, (os.cpu_count() or 1) // 4)


def ev_augment(augment) -> bool:
    from .data.events import on_events

    return on_events(augment)


class _Chunks(torch.utils.data.Dataset):
    """Batch k of an epoch: what a worker computes (on the CPU)."""

    def __init__(self, split, chunks, augment, seed, epoch):
        self.split, self.chunks, self.augment, self.seed, self.epoch = split, chunks, augment, seed, epoch

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, k: int) -> Batch:
        return self.split.batch(self.chunks[k], "cpu", augment=self.augment, seed=self.seed, epoch=self.epoch)


def _one_thread(_worker: int) -> None:
    torch.set_num_threads(1)


def batches(split, chunks: list[torch.Tensor], device: torch.device, *, augment=(), seed: int = 0, epoch: int = 0,
            workers: int = 0) -> Iterator[tuple[torch.Tensor, Batch]]:
    """(sample ids, batch) for each chunk of sample ids, in order, on `device`."""
    if workers <= 0 or len(chunks) <= 1:
        for index in chunks:
            yield index, split.batch(index, device, augment=augment, seed=seed, epoch=epoch)
        return
    loader = torch.utils.data.DataLoader(
        _Chunks(split, chunks, augment, seed, epoch), batch_size=None, shuffle=False, num_workers=workers,
        pin_memory=device.type == "cuda", prefetch_factor=2, worker_init_fn=_one_thread)
    for index, b in zip(chunks, loader):
        yield index, Batch(*(t.to(device, non_blocking=True) if t is not None else None for t in b))
