"""Training and evaluation of a compiled network on MNIST / Fashion-MNIST.

Mirrors SpikingJelly's lif_fc_mnist example (encode -> net over T steps -> mean
over T -> MSE against one-hot, Adam, reset after every batch) with a fast hot
path: datasets held in memory as uint8, a fused C++ Poisson encoder writing the
network's float input into a reused buffer, and no DataLoader.

Determinism: the weights come from torch's RNG seeded by `seed`; epoch e visits
the training set in the order of a torch.Generator seeded by (seed, e); each
sample's Poisson spikes depend only on (seed, sample id, epoch). Test spikes are
the same every epoch (stream 1, epoch 0), so test accuracy changes only with
the weights. Same seed on the same CPU => same metrics, also across a resume.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from ..compiler.source import Interrupted, SnncError, did_you_mean
from ..runtime import backends, support
from ..runtime.cache import compile_seconds
from . import checkpoint as ckpt
from . import data as datasets
from . import board, delays, distributed, loader, logs
from .batch import TEST_STREAM, TRAIN_STREAM, VAL_STREAM, autocast, encode_batch, loss_of, readout, run_net  # noqa: F401
from .encode import ENCODERS
from .experiment import Experiment
from .logs import METRIC_COLUMNS, read_metrics, write_metrics  # noqa: F401 (public API)
from ..compiler.datasets import DEFAULT as DEFAULT_DATASET
from .recipe import CHOICES, DEFAULTS, RUN_KEYS, TrainOptions  # noqa: F401 (public API)

MAX_PROCESSES = 64  # --nproc
MAX_SEED = 2**63 - 1  # seeds are 64-bit signed everywhere they go (torch, the encoders' counters)


@dataclass
class _Run:
    """Everything one process needs while training."""

    exp: Experiment
    settings: dict
    options: TrainOptions
    device: torch.device
    net: torch.nn.Module
    model: torch.nn.Module  # net, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    scheduler: object | None
    scaler: object | None
    data: datasets.Dataset
    train: object  # the training samples used (after the validation split and subset): a data split
    val: object
    out_dir: Path
    rank: int = 0
    world: int = 1
    start_epoch: int = 0
    start_batch: int = 0
    partial: dict = field(default_factory=dict)
    metrics: list = field(default_factory=list)
    best_acc: float = -1.0
    buffers: dict = field(default_factory=dict)
    nonfinite: list = field(default_factory=list)  # neuron layers whose state held NaN/inf after the last batch
    steps: int = 0  # training batches run (over the whole run: a resumed run goes on counting)

    @property
    def steps_left(self) -> int | None:
        limit = self.settings["max_steps"]
        return None if limit is None else max(0, limit - self.steps)

    @property
    def main(self) -> bool:
        return self.rank == 0


# ----------------------------------------------------------------------------- public API

def train(exp: Experiment, options: TrainOptions | None = None) -> dict:
    """Train `exp`; returns {"metrics", "best_test_acc", "out_dir", "last", "best", "settings"}.

    Runs distributed when launched by torchrun (WORLD_SIZE > 1) or when
    options.nproc > 1 (spawns that many processes). Batch size is per process.
    """
    options = options or TrainOptions()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if not isinstance(options.nproc, int) or not 1 <= options.nproc <= MAX_PROCESSES:
        raise SnncError(f"nproc must be a whole number of processes from 1 to {MAX_PROCESSES}, not {options.nproc!r}",
                        hint="--nproc 2 trains on two processes (one per GPU, or CPU cores split between them)")
    first = world == 1 or os.environ.get("RANK", "0") == "0"
    with ckpt.run_lock(_out_dir(exp, options)) if first else contextlib.nullcontext():  # one run per folder
        if world > 1:
            return distributed.train_torchrun(exp, options, world, _train_process)
        if options.nproc > 1:
            _check_out_dir(_out_dir(exp, options), options)
            return distributed.spawn_train(exp, options, _train_process)
        return _train_process(exp, options, 0, 1)


def evaluate(exp: Experiment, checkpoint: str | os.PathLike, options: TrainOptions | None = None) -> dict:
    """Test loss and accuracy of a checkpoint: {"test_loss", "test_acc", "samples", "epoch"}."""
    options = options or TrainOptions()
    state = ckpt.load(checkpoint, exp.model_hash)
    settings = _resolve(exp, TrainOptions(), state["settings"])
    settings.update({k: getattr(options, k) for k in ("T", "batch_size", "test_subset") if getattr(options, k)})
    device = backends.run_device(options.device, options.backend)
    _threads(options.workers, 1, device)
    _check_data(exp, settings)
    net = _build_net(exp, options.backend, device, settings["seed"])
    ckpt.load_into(net, state, "model", checkpoint)
    data = _load_data(exp, settings, options)
    test = data.test.head(settings["test_subset"])
    loss, acc, n = _evaluate(exp, net, test, settings, device, {}, fuse=options.fuse_input,
                             workers=_data_workers(options, test, ()))
    return {"test_loss": loss, "test_acc": acc, "samples": n, "epoch": state["epoch"]}


def dry_run(exp: Experiment, options: TrainOptions | None = None) -> dict:
    """Build the network and train it on one batch of random images (forward, backward, optimizer step),
    with the settings a run would use: nothing is read (no dataset) and nothing is written (no run folder).
    {"loss", "seconds", "compile_seconds", "backend", "device", "parameters", "settings"}"""
    options = options or TrainOptions()
    settings = _resolve(exp, options, None)
    device = backends.run_device(options.device, options.backend)
    _threads(options.workers, 1, device)
    _check_data(exp, settings)
    net = _build_net(exp, options.backend, device, settings["seed"])
    _plan_memory(exp, net, settings)
    delays.schedule(net, settings, 0)
    optimizer = _optimizer(net, settings)
    n = settings["batch_size"]
    x, y = _random_batch(exp, settings, n, device)
    start, compiled = time.perf_counter(), compile_seconds()
    with autocast(device, settings["amp"]):
        out = run_net(exp, net, x, settings, torch.arange(n), 0, TRAIN_STREAM, {}, options.fuse_input)
        loss = loss_of(readout(exp, net, out), y, settings["loss"], exp.num_classes)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    value = loss.item()  # waits for the device
    if not math.isfinite(value) or support.nonfinite_states(net):
        raise SnncError(f"{exp.name}: one batch of random images gives a loss of {value}",
                        hint="look for a division by a state that can be zero, or an exponential that overflows")
    names = sorted({m.resolved_backend(device) for m in net.modules() if isinstance(m, support.NeuronBase)})
    return {"loss": value, "seconds": time.perf_counter() - start - (compile_seconds() - compiled),
            "compile_seconds": compile_seconds() - compiled, "backend": "/".join(names) or "none",
            "device": str(device), "parameters": sum(p.numel() for p in net.parameters()), "settings": settings}


# ----------------------------------------------------------------------------- setup

def _train_process(exp: Experiment, options: TrainOptions, rank: int, world: int) -> dict:
    """The whole run under the guard: a signal before the first batch stops it with nothing written, one
    during an epoch at the next batch (saving last.pt there), one after an epoch's checkpoint or after the
    loop stops it with what is saved; each exits 130 and resumes exactly."""
    with ckpt.InterruptGuard() as guard:
        ckpt.fault_point("run", "before")
        run = _setup(exp, options, rank, world)
        if run.main:
            ckpt.remove_temporaries(run.out_dir)  # of writes a killed run never finished
            if options.overwrite and not options.resume:
                board.remove_events(run.out_dir)  # the earlier run's: two runs must not merge in TensorBoard
            if options.resume:
                logs.repair(run)
        _stop_between(run, guard, "before training started; nothing new was saved")
        ran = False
        with logs.Logger(run) as log:
            for epoch in range(run.start_epoch, run.settings["epochs"]):
                if run.steps_left == 0:
                    break
                log.epoch(_run_epoch(run, epoch, guard, log))
                ran = True
                _stop_between(run, guard, f"after epoch {epoch + 1}; checkpoint saved to {run.out_dir / ckpt.LAST}")
        if not ran and run.main and not options.quiet:
            done = (f"all {run.settings['epochs']} epochs" if run.steps_left != 0 else
                    f"all {run.settings['max_steps']} steps of --max-steps")
            print(f"{run.out_dir}: {done} already done", file=sys.stderr)
        ckpt.fault_point("run", "after")
        _stop_between(run, guard, f"after training finished; every output is saved in {run.out_dir}")
    return logs.result(run)


def _stop_between(run: _Run, guard: ckpt.InterruptGuard, where: str) -> None:
    """Stop (exit 130) if a signal came while no batch was running: what it leaves is already saved."""
    if _consensus(run, interrupted=guard.requested, bad_loss=False):
        raise Interrupted(f"interrupted {where}", hint=f"resume with --resume {run.out_dir / ckpt.LAST}"
                          if (run.out_dir / ckpt.LAST).exists() else "run the same command again")


def _setup(exp: Experiment, options: TrainOptions, rank: int, world: int) -> _Run:
    state = ckpt.load(options.resume, exp.model_hash) if options.resume else None
    settings = _resolve(exp, options, state["settings"] if state else None)
    out_dir = _out_dir(exp, options)
    _check_out_dir(out_dir, options)  # on every rank, so that all ranks stop together
    device = backends.run_device(options.device, options.backend)
    _threads(options.workers, world, device)
    _check_data(exp, settings)
    data = _load_data(exp, settings, options)
    net = _build_net(exp, options.backend, device, settings["seed"])
    _plan_memory(exp, net, settings, world)
    optimizer = _optimizer(net, settings)
    scheduler = _scheduler(optimizer, settings)
    scaler = torch.amp.GradScaler("cuda") if settings["amp"] and device.type == "cuda" else None
    model = distributed.wrap_ddp(net, device) if world > 1 else net
    # a published validation split (SSC) is the validation split; the others hold out val_split of the training set
    rest, val = (data.train, data.valid) if data.valid is not None else data.train.hold_out(settings["val_split"])
    run = _Run(exp, settings, options, device, net, model, optimizer, scheduler, scaler, data,
               rest.head(settings["subset"]), val, out_dir, rank, world)
    if state is not None:
        _restore(run, state)
    return run


def _resolve(exp: Experiment, options: TrainOptions, saved: dict | None, strict: bool = True) -> dict:
    """Concrete run settings: option > checkpoint > recipe > default (a resumed run keeps its settings)."""
    unknown = set(exp.recipe) - set(DEFAULTS)
    if unknown:
        key = sorted(unknown)[0]
        raise SnncError(f"unknown train setting '{key}' in {exp.name}'s recipe",
                        hint=did_you_mean(key, DEFAULTS) or f"known settings: {', '.join(DEFAULTS)}")
    recipe = {k: v for k, v in exp.recipe.items() if v is not None}  # None: not said (the dataset's default)
    base = {"T": exp.T, "subset": None, "test_subset": None, **DEFAULTS, **recipe}
    settings = {}
    for key in RUN_KEYS:
        given = getattr(options, key)
        if saved is not None and key in saved:
            if strict and given is not None and given != saved[key] and key not in ("epochs", "memory"):
                raise SnncError(
                    f"--{key.replace('_', '-')} {given} differs from the resumed run's {saved[key]}",
                    hint="a resumed run keeps its settings (only --epochs may grow); start a new run to change them",
                )
            settings[key] = saved[key] if given is None or key not in ("epochs", "memory") else given
        elif saved is not None and key == "val_split":
            settings[key] = 0.0  # a run from before validation splits trained on all training images
        elif key == "epochs" and given is None and options.subset is not None:
            settings[key] = 1  # a run on a subset is a quick one: one epoch unless --epochs says otherwise
        else:
            settings[key] = base[key] if given is None else given
    if exp.data is not None:  # a user's own data: named by it, not by the recipe
        settings["dataset"] = exp.data.name
    elif settings["dataset"] is None:  # not said
        settings["dataset"] = DEFAULT_DATASET
    if options.max_steps is not None and (not isinstance(options.max_steps, int) or options.max_steps < 1):
        raise SnncError(f"max_steps must be a positive number of batches, got {options.max_steps!r}",
                        hint="e.g. --max-steps 5 for a smoke run")
    settings["max_steps"] = _max_steps(options.max_steps, saved, strict)
    _validate(exp, settings)
    return settings


def _max_steps(given: int | None, saved: dict | None, strict: bool) -> int | None:
    """A smoke run's step budget: it shapes the run, so it rides in the checkpoint like the settings (a run
    resumed without --max-steps keeps its budget; one started without a budget gets none)."""
    if saved is None or "max_steps" not in saved:
        return given
    if strict and given is not None and given != saved["max_steps"]:
        raise SnncError(f"--max-steps {given} differs from the resumed run's {saved['max_steps']}",
                        hint="a resumed run keeps its settings; start a new run to change them")
    return saved["max_steps"]


def _validate(exp: Experiment, s: dict):
    for key, allowed in CHOICES.items():  # the dataset is checked against its table by _check_data
        if s[key] not in allowed:
            raise SnncError(f"{key} '{s[key]}' is not supported", hint=f"use one of: {', '.join(allowed)}")
    for key in ("T", "batch_size", "epochs"):
        if not isinstance(s[key], int) or s[key] < 1:
            raise SnncError(f"{key} must be a positive integer, got {s[key]!r}")
    if not isinstance(s["seed"], int) or isinstance(s["seed"], bool) or not 0 <= s["seed"] <= MAX_SEED:
        raise SnncError(f"seed must be a whole number from 0 to 2^63 - 1, not {s['seed']!r}")
    if not s["lr"] > 0:
        raise SnncError(f"learning rate must be positive, got {s['lr']}")
    if not isinstance(s["val_split"], (int, float)) or not 0.0 <= s["val_split"] < 1.0:
        raise SnncError(f"val_split must be a fraction of the training images in [0, 1), got {s['val_split']!r}",
                        hint="e.g. --val-split 0.1 holds out 10% of the training set to choose best.pt")
    for key in ("subset", "test_subset"):
        if s[key] is not None and (not isinstance(s[key], int) or s[key] < 1):
            raise SnncError(f"{key} must be a positive number of images, got {s[key]!r}")
    if exp.encoder not in ENCODERS:
        raise SnncError(f"unknown encoder '{exp.encoder}'", hint=f"use one of: {', '.join(ENCODERS)}")
    if exp.readout not in support.READOUTS:
        raise SnncError(f"unknown readout '{exp.readout}'", hint=f"use one of: {', '.join(support.READOUTS)}")


def _out_dir(exp: Experiment, options: TrainOptions) -> Path:
    if options.out_dir is not None:
        return Path(options.out_dir).expanduser()
    if options.resume:
        return ckpt.resolve(options.resume).parent
    return Path("runs") / exp.name


def _check_out_dir(out_dir: Path, options: TrainOptions):
    ckpt.check_writable(out_dir)
    taken = [n for n in (ckpt.LAST, "metrics.csv") if (out_dir / n).exists()]
    if taken and not options.resume and not options.overwrite:
        raise SnncError(f"{out_dir} already holds a training run ({', '.join(taken)})",
                        hint=f"resume it with --resume {out_dir / ckpt.LAST}, choose another --out-dir, or start afresh "
                             "there with --overwrite")


def _threads(workers: int | None, world: int, device: torch.device):
    if workers is None:
        workers = max(1, (os.cpu_count() or 1) // world) if device.type == "cpu" else min(4, os.cpu_count() or 1)
    most = 4 * (os.cpu_count() or 1)
    if not isinstance(workers, int) or not 1 <= workers <= most:
        raise SnncError(f"workers must be a number of threads from 1 to {most} (4 per core here), not {workers!r}",
                        hint=f"this machine has {os.cpu_count()} cores; the default uses them all")
    if torch.get_num_threads() != workers:
        torch.set_num_threads(workers)


def _check_data(exp: Experiment, s: dict):
    """The network takes what the dataset, binned, transformed and encoded as the run says, gives: the same
    rules `snnc check` applies to the train block (compiler/datasets.py), for the data a run actually uses."""
    from ..compiler.datasets import data_problems

    if exp.data is not None:
        from .data.custom import check

        why = check(exp.data, exp.encoder, tuple(exp.input_shape), exp.num_classes, s["T"])
        if why is not None:
            raise SnncError(f"{exp.name}: {why}", hint="give the network this data's shape and classes, or change "
                                                       "the dataset's kind or shape")
        return

    problems = data_problems(s["dataset"], datasets.as_step(s["frames"]), datasets.as_steps(s["transform"]),
                             datasets.as_steps(s["augment"]), exp.encoder, s["T"], tuple(exp.input_shape),
                             exp.num_classes)
    if problems:
        p = problems[0]
        raise SnncError(f"{exp.name}: {p.message}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
                        hint=p.hint)


def _load_data(exp: Experiment, s: dict, options: TrainOptions) -> datasets.Dataset:
    if exp.data is not None:
        return exp.data
    return datasets.load(s["dataset"], options.data_dir, options.download, T=s["T"], frames=s["frames"],
                         transform=s["transform"], augment=s["augment"])


def _data_workers(options: TrainOptions, split, augment) -> int:
    if options.data_workers is not None:
        if not isinstance(options.data_workers, int) or not 0 <= options.data_workers <= 64:
            raise SnncError(f"data_workers must be a whole number from 0 to 64, not {options.data_workers!r}",
                            hint="0 reads batches in the training process; 1 or 2 suit a few cores")
        return options.data_workers
    return loader.default_workers(split, augment)


def _random_batch(exp: Experiment, s: dict, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of random samples shaped like the dataset's (images in [0, 1], or frames of small counts)."""
    from ..compiler.datasets import DATASETS, frame_shape

    if exp.data is not None:
        kind, shape = exp.data.kind, tuple(exp.data.sample_shape)
    else:
        row = DATASETS[s["dataset"]]
        kind, (shape, _) = row.kind, frame_shape(row, datasets.as_steps(s["transform"]))
    generator = torch.Generator().manual_seed(s["seed"])
    if kind == "images":
        x = torch.randint(0, 256, (n, *shape), generator=generator, dtype=torch.uint8).float().div_(255)
    else:
        x = torch.randint(0, 3, (s["T"], n, *shape), generator=generator).float()
    return x.to(device), torch.randint(0, exp.num_classes, (n,), generator=generator).to(device)


def _build_net(exp: Experiment, backend: str | None, device: torch.device, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = exp.make_net().to(device)
    exp.set_backend(net, backend or backends.default(device))
    exp.reset(net)
    return net


def _plan_memory(exp: Experiment, net: torch.nn.Module, s: dict, world: int = 1) -> None:
    """The memory policy and gradient mode of the run, on a generated network (a user's module: fast, bptt)."""
    from ..runtime import memory, online

    if not isinstance(net, support.Network):
        for key, default in (("memory", "fast"), ("gradient", "bptt")):
            if s[key] != default:
                raise SnncError(f"{key} '{s[key]}' needs a network snnc generated; {exp.name} is a torch module",
                                hint=f"train it with {key} = {default}")
        return
    memory.apply(net, memory.policy_actions(net, s["memory"]))
    online.apply(net, s["gradient"])
    if s["gradient"] != "bptt" and world > 1:
        raise SnncError(f"gradient '{s['gradient']}' runs in one process", hint="leave out --nproc")


def _optimizer(net: torch.nn.Module, s: dict) -> torch.optim.Optimizer:
    params = delays.param_groups(net, s)
    if not any(g["params"] for g in params):
        raise SnncError("the network has no trainable parameters")
    if s["opt"] == "sgd":
        return torch.optim.SGD(params, lr=s["lr"], momentum=s["momentum"], weight_decay=s["weight_decay"])
    return torch.optim.Adam(params, lr=s["lr"], weight_decay=s["weight_decay"])


def _scheduler(optimizer: torch.optim.Optimizer, s: dict):
    if s["lr_schedule"] == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=s["epochs"])
    return None


def _restore(run: _Run, state: dict):
    where = run.options.resume
    ckpt.load_into(run.net, state, "model", where)
    ckpt.load_into(run.optimizer, state, "optimizer", where)
    if run.scheduler is not None and state.get("scheduler"):
        ckpt.load_into(run.scheduler, state, "scheduler", where)
        run.scheduler.T_max = run.settings["epochs"]
    if run.scaler is not None and state.get("scaler"):
        ckpt.load_into(run.scaler, state, "scaler", where)
    ckpt.set_rng_state(state["rng"])
    run.start_epoch, run.start_batch = state["epoch"], state["batch"]
    run.partial = dict(state.get("partial") or {})
    run.metrics = list(state["metrics"])
    run.best_acc = state["best_acc"]
    run.steps = state.get("steps", 0)


# ----------------------------------------------------------------------------- the loop

def _run_epoch(run: _Run, epoch: int, guard: ckpt.InterruptGuard, log: "logs.Logger") -> dict:
    train = run.train
    order = _epoch_order(len(train), run.settings["seed"], epoch, run.rank, run.world)
    batches = order.split(run.settings["batch_size"])
    first = run.start_batch if epoch == run.start_epoch else 0
    end = len(batches) if run.steps_left is None else min(len(batches), first + run.steps_left)
    sums = run.partial if epoch == run.start_epoch and run.partial else {"loss": 0.0, "correct": 0, "count": 0, "seconds": 0.0}
    run.model.train()
    delays.schedule(run.net, run.settings, epoch)
    start, compiled = time.perf_counter(), compile_seconds()
    bar = log.bar(epoch, len(batches), first)
    augment = datasets.as_steps(run.settings["augment"])
    feed = loader.batches(train, list(batches[first:end]), run.device, augment=augment, seed=run.settings["seed"],
                          epoch=epoch, workers=_data_workers(run.options, train, augment))
    for b, (index, batch) in enumerate(feed, start=first):
        loss, correct = _train_step(run, index, batch, epoch)
        n = len(index)
        sums["loss"] += loss * n
        sums["correct"] += correct
        sums["count"] += n
        log.step(epoch * len(batches) + b, loss, correct / n)
        run.steps += 1
        if run.steps == 1:
            log.first_batch(bar)
        log.batch(bar, sums, time.perf_counter() - start + sums["seconds"] - (compile_seconds() - compiled))
        stop = _consensus(run, interrupted=guard.requested, bad_loss=not math.isfinite(loss) or bool(run.nonfinite))
        if stop:
            bar.close()
            sums["seconds"] += time.perf_counter() - start - (compile_seconds() - compiled)
            _stop(run, epoch, b, sums, stop)
    bar.close()
    train_seconds = sums["seconds"] + time.perf_counter() - start - (compile_seconds() - compiled)  # not compiling
    totals = distributed.all_sum(run.world, [sums["loss"], sums["correct"], sums["count"]], run.device)
    val_loss, val_acc = float("nan"), float("nan")
    limit = run.settings["max_steps"]
    if len(run.val):
        val_loss, val_acc, _ = _evaluate(run.exp, run.net, run.val, run.settings, run.device, run.buffers,
                                         run.rank, run.world, run.options.fuse_input, VAL_STREAM, limit,
                                         _data_workers(run.options, run.val, ()))
    test = run.data.test.head(run.settings["test_subset"])
    test_loss, test_acc, _ = _evaluate(run.exp, run.net, test, run.settings, run.device, run.buffers, run.rank,
                                       run.world, run.options.fuse_input, TEST_STREAM, limit,
                                       _data_workers(run.options, test, ()))
    if run.scheduler is not None:
        run.scheduler.step()
    return {
        "epoch": epoch + 1,
        "train_loss": totals[0] / totals[2],
        "train_acc": totals[1] / totals[2],
        "val_loss": val_loss,
        "val_acc": val_acc,
        "test_loss": test_loss,
        "test_acc": test_acc,
        "train_images_per_s": totals[2] / max(train_seconds, 1e-9),
        "seconds": sums["seconds"] + time.perf_counter() - start,
    }


def _train_step(run: _Run, index: torch.Tensor, b: datasets.Batch, epoch: int) -> tuple[float, int]:
    s = run.settings
    x, y = b.x, b.y
    if s["gradient"] != "bptt":
        return _online_step(run, index, b, epoch)
    with autocast(run.device, s["amp"]):
        out = run_net(run.exp, run.model, x, s, index, epoch, TRAIN_STREAM, run.buffers, run.options.fuse_input)
        rate = readout(run.exp, run.model, out, b.lengths)
        loss = loss_of(rate, y, s["loss"], run.exp.num_classes)
    run.optimizer.zero_grad(set_to_none=True)
    if run.scaler is not None:
        run.scaler.scale(loss).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        loss.backward()
        run.optimizer.step()
    delays.project(run.net)
    run.nonfinite = support.nonfinite_states(run.net)  # checked with the loss: one extra sync per batch
    run.exp.reset(run.net)
    return loss.item(), int((rate.argmax(1) == y).sum())


def _online_step(run: _Run, index: torch.Tensor, b: datasets.Batch, epoch: int) -> tuple[float, int]:
    """One batch of online learning (runtime/online.py): each step's loss, (1/T) loss(output[t]), backpropagated
    at once; the optimizer steps once, on the gradients of all T steps."""
    from ..runtime import online
    from .batch import encode_batch, host_inputs

    s, exp = run.settings, run.exp
    x_seq = encode_batch(exp, b.x, s, index, epoch, TRAIN_STREAM, run.buffers, host_inputs(run.net, run.device))
    T = x_seq.shape[0]

    def loss_at(out, t):
        with autocast(run.device, s["amp"]):
            return loss_of(out.float(), b.y, s["loss"], exp.num_classes) / T

    backward = (lambda loss: run.scaler.scale(loss).backward()) if run.scaler is not None else None
    run.optimizer.zero_grad(set_to_none=True)
    with autocast(run.device, s["amp"]):
        out, loss = online.train_step(run.net, x_seq, loss_at, *([backward] if backward else []))
    if run.scaler is not None:
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        run.optimizer.step()
    run.nonfinite = support.nonfinite_states(run.net)
    rate = readout(exp, run.net, out, b.lengths)
    exp.reset(run.net)
    return float(loss), int((rate.argmax(1) == b.y).sum())


@torch.no_grad()
def _evaluate(exp: Experiment, net: torch.nn.Module, split, s: dict, device: torch.device,
              buffers: dict, rank: int = 0, world: int = 1, fuse: bool = True,
              stream: int = TEST_STREAM, max_batches: int | None = None, workers: int = 0) -> tuple[float, float, int]:
    """Mean loss and accuracy of a split over this rank's shard (summed over ranks); of its first
    `max_batches` batches when given (a smoke run)."""
    was_training = net.training
    net.eval()
    loss_sum, correct = 0.0, 0
    ids = torch.arange(len(split))[rank::world]
    if max_batches is not None:
        ids = ids[: max_batches * s["batch_size"]]
    chunks = [index for index in ids.split(s["batch_size"]) if len(index)]  # an empty split gives one empty chunk
    for index, b in loader.batches(split, chunks, device, workers=workers):
        x, y = b.x, b.y
        with autocast(device, s["amp"]):
            rate = readout(exp, net, run_net(exp, net, x, s, index, 0, stream, buffers, fuse), b.lengths)
            loss_sum += loss_of(rate, y, s["loss"], exp.num_classes).item() * len(index)
        correct += int((rate.argmax(1) == y).sum())
        exp.reset(net)
    net.train(was_training)
    loss_sum, correct, count = distributed.all_sum(world, [loss_sum, correct, len(ids)], device)
    if count == 0:
        raise SnncError("the evaluation set is empty", hint="check the data files, --test-subset or --val-split")
    return loss_sum / count, correct / count, int(count)


def _epoch_order(n: int, seed: int, epoch: int, rank: int, world: int) -> torch.Tensor:
    """This rank's sample ids for the epoch: a seeded permutation, padded to a multiple of world and strided."""
    generator = torch.Generator().manual_seed((seed * 1_000_003 + epoch) % (2**63))
    order = torch.randperm(n, generator=generator)
    if world > 1 and n % world:
        order = torch.cat([order, order[: world - n % world]])
    return order[rank::world]


def _consensus(run: _Run, interrupted: bool, bad_loss: bool) -> str | None:
    flags = [float(interrupted), float(bad_loss)]
    if run.world > 1:
        flags = distributed.all_max(flags, run.device)
    if flags[1]:
        return "nan"
    return "interrupt" if flags[0] else None


def _stop(run: _Run, epoch: int, batch: int, sums: dict, why: str):
    last = run.out_dir / ckpt.LAST
    if why == "nan":
        kept = f"the last good checkpoint {last} is kept" if last.exists() else "no checkpoint was written"
        what = (f"neuron state became NaN or infinite in {', '.join(run.nonfinite)}" if run.nonfinite
                else "training loss became NaN or infinite")
        raise SnncError(
            f"{what} at epoch {epoch + 1}, batch {batch + 1}; training stopped ({kept})",
            hint=f"the learning rate is probably too high: start a new run with a lower one "
            f"(e.g. --lr {run.settings['lr'] / 10:g})",
        )
    if run.main:
        ckpt.save(logs.checkpoint_state(run, epoch, batch + 1, sums), last)
    raise Interrupted(f"interrupted at epoch {epoch + 1}, batch {batch + 1}; checkpoint saved to {last}",
                      hint=f"resume with --resume {last}")


