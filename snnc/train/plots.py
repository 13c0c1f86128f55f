"""Plots (matplotlib, Agg, no pyplot global state): training curves, one neuron's
membrane potential and spikes, and an output layer's voltages and spike raster."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def _figure(width: float = 6.4, height: float = 4.0):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _array(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _steps(*axes) -> None:
    """Time steps are whole numbers: ticks only at integers (a run of T = 4 has no step 1.5)."""
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _save(fig, path: str | os.PathLike) -> Path:
    from .checkpoint import atomic_write_bytes
    import io

    path = Path(path)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=path.suffix.lstrip(".") or "png")
    atomic_write_bytes(path, buffer.getvalue())
    return path


def plot_curves(rows: list[dict], out_dir: str | os.PathLike, name: str | None = None) -> tuple[Path, Path]:
    """accuracy.png and loss.png (train, validation and test per epoch) from metrics rows, titled with the
    run's name; each point is labelled with its value, so that a run of one or two epochs reads too."""
    out_dir = Path(out_dir)
    epochs = [int(r["epoch"]) for r in rows]
    paths = []
    for key, label in (("acc", "accuracy"), ("loss", "loss")):
        fig = _figure()
        ax = fig.add_subplot()
        for split, shown in (("train", "train"), ("val", "validation"), ("test", "test")):
            values = [float(r.get(f"{split}_{key}", float("nan"))) for r in rows]
            if not any(v == v for v in values):
                continue
            line, = ax.plot(epochs, values, marker="o", label=shown)
            if len(epochs) <= 3:
                for e, v in zip(epochs, values):
                    ax.annotate(f"{v:.2%}" if key == "acc" else f"{v:.4f}", (e, v), textcoords="offset points",
                                xytext=(6, 4), fontsize=8, color=line.get_color())
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_xticks(epochs if len(epochs) <= 12 else ax.get_xticks())
        if len(epochs) == 1:
            ax.set_xlim(epochs[0] - 1, epochs[0] + 1)
        ax.set_title(f"{name}: {label} per epoch" if name else f"{label} per epoch")
        ax.grid(alpha=0.3)
        ax.legend()
        paths.append(_save(fig, out_dir / f"{label}.png"))
    return paths[0], paths[1]


def plot_neuron(v, s, path: str | os.PathLike, v_threshold: float | None = None, title: str | None = None) -> Path:
    """One neuron over time: its membrane potential v [T] (or several states, {name: [T]}) above, spikes s [T]
    below."""
    traces = {k: _array(x).reshape(-1) for k, x in v.items()} if isinstance(v, dict) else {"v": _array(v).reshape(-1)}
    s = _array(s).reshape(-1)
    t = np.arange(len(s))
    fig = _figure(7.0, 4.0)
    ax_v, ax_s = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    for name, values in traces.items():
        ax_v.plot(t, values, label=name)
    if v_threshold is not None and "v" in traces:
        ax_v.axhline(v_threshold, color="tab:red", linestyle="--", label="threshold")
    if len(traces) > 1 or (v_threshold is not None and "v" in traces):
        ax_v.legend(loc="upper right")
    ax_v.set_ylabel("membrane potential" if list(traces) == ["v"] else "states")
    ax_s.eventplot(t[s > 0], lineoffsets=0.5, linelengths=0.8, colors="black")
    ax_s.set_ylim(0, 1)
    ax_s.set_yticks([])
    ax_s.set_ylabel("spikes")
    ax_s.set_xlabel("time step")
    ax_s.set_xlim(-0.5, max(len(t) - 0.5, 0.5))
    _steps(ax_v, ax_s)
    if title:
        ax_v.set_title(title)
    return _save(fig, path)


def plot_output(v, s, path: str | os.PathLike, title: str | None = None) -> Path:
    """An output layer for one input: voltage heatmap v [T, C] and spike raster s [T, C]."""
    v, s = _array(v), _array(s)
    T, C = v.shape
    fig = _figure(10.0, 4.0)
    ax_v, ax_s = fig.subplots(1, 2)
    image = ax_v.imshow(v.T, aspect="auto", origin="lower", cmap="viridis", interpolation="nearest")
    fig.colorbar(image, ax=ax_v, label="membrane potential")
    ax_v.set_xlabel("time step")
    ax_v.set_ylabel("neuron")
    ax_v.set_title("voltage")
    ax_s.eventplot([np.nonzero(s[:, c] > 0)[0] for c in range(C)], lineoffsets=np.arange(C),
                   linelengths=0.8, colors="black")
    ax_s.set_xlim(-0.5, T - 0.5)
    ax_s.set_ylim(-0.5, C - 0.5)
    ax_s.set_xlabel("time step")
    ax_s.set_ylabel("neuron")
    ax_s.set_title("spikes")
    _steps(ax_v, ax_s)
    rate = s.mean(axis=0)
    ax_s.set_yticks(np.arange(C), [f"{c} ({r:.2f})" for c, r in enumerate(rate)] if C <= 20 else None)
    if title:
        fig.suptitle(title)
    return _save(fig, path)
