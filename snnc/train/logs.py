"""A run's outputs: metrics.csv, TensorBoard, progress bar and summary lines, checkpoints, plots."""
from __future__ import annotations

import csv
import io
import os
import sys
import time
from dataclasses import asdict

import torch

from . import checkpoint as ckpt
from .checkpoint import METRIC_COLUMNS
from .board import Board


def checkpoint_state(run, epoch: int, batch: int, sums: dict | None) -> dict:
    return {
        "name": run.exp.name,
        "model_hash": run.exp.model_hash,
        "model": run.net.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict() if run.scheduler is not None else None,
        "scaler": run.scaler.state_dict() if run.scaler is not None else None,
        "epoch": epoch,
        "batch": batch,
        "partial": dict(sums) if sums else None,
        "rng": ckpt.rng_state(),
        "metrics": [dict(r) for r in run.metrics],
        "best_acc": run.best_acc,
        "steps": run.steps,
        "settings": dict(run.settings),
        "options": {k: v for k, v in asdict(run.options).items() if isinstance(v, (str, int, float, bool, type(None)))},
    }


def best_row(rows: list[dict]) -> dict | None:
    """The epoch best.pt holds: the highest validation accuracy (the first such); None without validation."""
    rows = [r for r in rows if r.get("val_acc") is not None and r["val_acc"] == r["val_acc"]]
    return max(rows, key=lambda r: r["val_acc"], default=None)


def result(run) -> dict:
    best = best_row(run.metrics)
    return {
        "metrics": [dict(r) for r in run.metrics],
        "best_val_acc": best["val_acc"] if best else None,
        "best_epoch": best["epoch"] if best else None,
        "test_acc_at_best": best["test_acc"] if best else None,
        "out_dir": str(run.out_dir),
        "last": str(run.out_dir / ckpt.LAST),
        "best": str(run.out_dir / ckpt.BEST),
        "settings": dict(run.settings),
    }


def repair(run) -> None:
    """Bring a resumed run's files up to its last.pt, whatever instant a kill struck: metrics.csv holds every
    epoch last.pt has, best.pt holds the best epoch (last.pt itself, when that is its epoch), no temporary
    files are left, and the plots show the curves so far."""
    path = run.out_dir / "metrics.csv"
    try:
        current = read_metrics(path) if path.exists() else []
    except (OSError, ValueError, KeyError):
        current = []
    if [r["epoch"] for r in current] != [r["epoch"] for r in run.metrics]:
        write_metrics(run.metrics, path)
    best = best_row(run.metrics)
    if best is not None and best["epoch"] == run.start_epoch and run.start_batch == 0:
        best_path = run.out_dir / ckpt.BEST
        held = ckpt.epoch_of(best_path)
        if held != best["epoch"]:  # from the checkpoint resumed, which may sit in another folder
            ckpt.copy(ckpt.resolve(run.options.resume), best_path)
    if run.options.plots and run.metrics:
        from .plots import plot_curves

        plot_curves(run.metrics, run.out_dir, run.exp.name)


def write_metrics(rows: list[dict], path: str | os.PathLike):
    """Atomically (re)write metrics.csv with METRIC_COLUMNS, one row per epoch."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=METRIC_COLUMNS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    ckpt.atomic_write_text(path, text.getvalue())


def read_metrics(path: str | os.PathLike) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: (int(v) if k == "epoch" else float(v if v != "" else "nan")) for k, v in row.items()}
                for row in csv.DictReader(f)]


class Logger:
    """Rank 0's outputs: progress bar, summary lines, checkpoints, metrics.csv, TensorBoard, plots."""

    def __init__(self, run):
        self.run = run
        self.board = None
        self.show = run.main and not run.options.quiet

    def __enter__(self) -> "Logger":
        if self.run.main:
            self.board = Board(self.run.out_dir, self.run.start_epoch, self.run.net)
        if self.show:
            print(describe(self.run), flush=True)
        return self

    def __exit__(self, *exc):
        if self.board is not None:
            self.board.close()
        return False

    def step(self, step: int, loss: float, accuracy: float) -> None:
        """One training batch's loss and accuracy (and the layers' firing rates), for TensorBoard."""
        if self.board is not None:
            self.board.batch(step, loss, accuracy, self.run.optimizer.param_groups[0]["lr"])

    def bar(self, epoch: int, total: int, initial: int):
        from tqdm import tqdm

        enabled = self.show and sys.stderr.isatty()
        return tqdm(total=total, initial=initial, disable=not enabled, leave=False, unit="batch",
                    desc=f"epoch {epoch + 1}/{self.run.settings['epochs']}", mininterval=0.5)

    def first_batch(self, bar):
        """Say how long the way to the first batch took, and how much of it was compiling kernels."""
        if not self.show:
            return
        from ..runtime.cache import compile_seconds

        compiled = compile_seconds()
        what = f"compiling kernels took {compiled:.1f} s of it (not counted in images/s)" if compiled >= 0.05 \
            else "every kernel from the cache"
        bar.write(f"first batch done {seconds_since_start():.1f} s after start ({what})", file=sys.stdout)
        sys.stdout.flush()

    def batch(self, bar, sums: dict, seconds: float):
        if bar.disable:
            return
        bar.update(1)
        if bar.n % 20 == 0:
            world = self.run.world
            bar.set_postfix(loss=f"{sums['loss'] / sums['count']:.4f}", acc=f"{sums['correct'] / sums['count']:.3f}",
                            img_s=f"{sums['count'] * world / max(seconds, 1e-9):,.0f}", refresh=False)

    def epoch(self, row: dict):
        run = self.run
        run.metrics.append(row)
        validated = row["val_acc"] == row["val_acc"]  # NaN without a validation split
        improved = validated and row["val_acc"] > run.best_acc
        if validated:
            run.best_acc = max(run.best_acc, row["val_acc"])
        run.start_batch, run.partial = 0, {}
        if not run.main:
            return
        state = checkpoint_state(run, row["epoch"], 0, None)
        ckpt.save(state, run.out_dir / ckpt.LAST)
        if improved:
            ckpt.save(state, run.out_dir / ckpt.BEST)
        write_metrics(run.metrics, run.out_dir / "metrics.csv")
        self._tensorboard(row)
        if run.options.plots:
            from .plots import plot_curves

            plot_curves(run.metrics, run.out_dir, run.exp.name)
            plot_output(run)
        if self.show:
            print(summary(row, run.settings["epochs"], run.best_acc), flush=True)

    def _tensorboard(self, row: dict):
        self.board.epoch(row, METRIC_COLUMNS[1:], self.run.optimizer.param_groups[0]["lr"])


# Python reaches `import snnc` well within this many seconds of its start; a process that /proc says began
# earlier ran another program first (a shell runs the last command of `bash -c "setup && snnc train"` in its own
# process, and /proc keeps the shell's start): its time is not snnc's.
PYTHON_START_UP = 5.0


def seconds_since_start() -> float:
    """Wall seconds since this Python process started: from /proc on Linux, unless that is the start of a
    shell that then ran Python in its place; there, and where there is no /proc, since snnc was imported."""
    from ..started import IMPORTED_AT

    since_import = time.perf_counter() - IMPORTED_AT
    try:
        with open("/proc/self/stat") as f:
            started = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime, in clock ticks
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return since_import
    since_process = uptime - started / os.sysconf("SC_CLK_TCK")
    return since_process if since_process - since_import < PYTHON_START_UP else since_import


def describe(run) -> str:
    """One line saying what this run trains, on what, how, and where it writes."""
    s = run.settings
    backends = sorted({m.backend for m in run.net.modules() if hasattr(m, "backend") and hasattr(m, "single_step")})
    world = f", {run.world} processes" if run.world > 1 else ""
    start = f", resuming at epoch {run.start_epoch + 1}" if run.start_epoch or run.start_batch else ""
    n_train = len(run.train)
    held = f", {len(run.val):,} held out for validation" if len(run.val) else ", no validation split"
    limit = s["max_steps"]
    smoke = (f"; smoke run: at most {limit} training batch{'es' if limit > 1 else ''}, validation and test on "
             f"{limit} batch{'es' if limit > 1 else ''} each") if limit is not None else ""
    epochs = f"{s['epochs']} epoch{'s' if s['epochs'] > 1 else ''}"
    return (f"{run.exp.name}: {s['dataset']} ({n_train:,} training samples{held}), T={s['T']}, batch {s['batch_size']}, "
            f"{s['opt']} lr {s['lr']:g}, {epochs}, backend {'/'.join(backends) or 'torch'} "
            f"on {run.device}{world}{start}{smoke} -> {run.out_dir}")


def summary(row: dict, epochs: int, best: float) -> str:
    val = (f"val loss {row['val_loss']:.4f} acc {row['val_acc']:.2%} (best {best:.2%}) | "
           if row["val_acc"] == row["val_acc"] else "")
    return (f"epoch {row['epoch']}/{epochs}: train loss {row['train_loss']:.4f} acc {row['train_acc']:.2%} | {val}"
            f"test loss {row['test_loss']:.4f} acc {row['test_acc']:.2%} | "
            f"{row['train_images_per_s']:,.0f} images/s | {row['seconds']:.1f} s")
@torch.no_grad()
def plot_output(run) -> None:
    """`output.png`: the output layer's voltages and spikes over time for the first test image."""
    from .batch import TEST_STREAM, encode_batch, host_inputs
    from .plots import plot_output as plot

    readout = getattr(run.net, "readout_layer", lambda: None)()
    if readout is None or not hasattr(readout, "store_v_seq"):
        return
    was_training, backend = run.net.training, readout.backend
    run.net.eval()
    readout.store_v_seq, readout.backend = True, "torch"
    try:
        index = torch.arange(1)
        b = run.data.test.batch(index, run.device)
        x, y = b.x, b.y
        spikes = encode_batch(run.exp, x, run.settings, index, 0, TEST_STREAM, {}, host_inputs(run.net, run.device))
        out = run.net(spikes)[:, 0].float()
        s = out if readout.output == "spike" else (out >= readout.v_threshold).float()
        plot(readout.v_seq[:, 0], s, run.out_dir / "output.png",
                    title=f"{run.exp.name}: output layer, test image 0 (label {int(y[0])})")
    finally:
        readout.store_v_seq, readout.backend = False, backend
        run.exp.reset(run.net)
        run.net.train(was_training)
