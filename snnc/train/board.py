"""TensorBoard events of a run, as SpikingJelly's examples log them and more.

In the run's folder, one point per epoch: every column of metrics.csv and `lr`. In its `batches/` folder, one
point per training batch (x: batches since the run began): `batch/loss`, `batch/accuracy`, `batch/lr` and
`firing_rate/<layer>` for every spiking layer (the share of its neurons that fired, over the batch's steps).
Batches are buffered and written at each epoch's end (or when the run stops), so that importing TensorBoard
is not on the way to the first batch. A resumed run replaces what its checkpoint had not reached; a run
started afresh with --overwrite removes the old event files first (two runs never merge).
"""
from __future__ import annotations

from pathlib import Path

EVENTS = "events.out.tfevents.*"
BATCHES = "batches"


def remove_events(out_dir: Path) -> None:
    """The event files of an earlier run in `out_dir` (and its batches/ folder), before a run starts afresh."""
    for folder in (out_dir, out_dir / BATCHES):
        for path in folder.glob(EVENTS):
            path.unlink(missing_ok=True)


def spiking_layers(net) -> dict:
    """The spiking neuron layers of `net` by their path in the network ('2', '4.out'), in order."""
    from ..runtime.support import NeuronBase

    return {name.removeprefix("layers."): m for name, m in net.named_modules()
            if isinstance(m, NeuronBase) and not m.NONSPIKING}


class Board:
    """One run's TensorBoard writers (rank 0 only): `epoch(row, lr)`, `batch(step, loss, accuracy, lr)`."""

    def __init__(self, out_dir: Path, start_epoch: int, net):
        self.out_dir, self.start_epoch = out_dir, start_epoch
        self.writers: dict = {}
        self.pending: list = []
        self.rates: dict = {}  # layer -> its last forward's firing rate (a 0-d tensor: read when written)
        self.hooks = [m.register_forward_hook(self._hook(name)) for name, m in spiking_layers(net).items()]

    def _hook(self, name: str):
        def record(module, inputs, output):
            if hasattr(output, "detach") and module.training:
                self.rates[name] = output.detach().float().mean()
        return record

    def batch(self, step: int, loss: float, accuracy: float, lr: float) -> None:
        self.pending.append((step, loss, accuracy, lr, dict(self.rates)))

    def epoch(self, row: dict, columns, lr: float) -> None:
        self.flush_batches()
        writer = self._writer(self.out_dir, self.start_epoch + 1)
        for key in columns:
            writer.add_scalar(key, row[key], row["epoch"])
        writer.add_scalar("lr", lr, row["epoch"])
        writer.flush()

    def flush_batches(self) -> None:
        if not self.pending:
            return
        writer = self._writer(self.out_dir / BATCHES, self.pending[0][0])
        for step, loss, accuracy, lr, rates in self.pending:
            writer.add_scalar("batch/loss", loss, step)
            writer.add_scalar("batch/accuracy", accuracy, step)
            writer.add_scalar("batch/lr", lr, step)
            for name, rate in rates.items():
                writer.add_scalar(f"firing_rate/{name}", float(rate), step)
        writer.flush()
        self.pending = []

    def _writer(self, folder: Path, purge_step: int):
        """The writer of `folder`, opened at its first use; `purge_step`: where a resumed run takes over."""
        if folder not in self.writers:
            from torch.utils.tensorboard import SummaryWriter

            self.writers[folder] = SummaryWriter(str(folder), purge_step=purge_step)
        return self.writers[folder]

    def close(self) -> None:
        self.flush_batches()
        for hook in self.hooks:
            hook.remove()
        for writer in self.writers.values():
            writer.close()
