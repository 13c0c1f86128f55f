"""Neuron forward + backward speed, side by side: every snnc backend, the generated module's own single steps,
and SpikingJelly 2.0.0 (its built-in neuron, and on CUDA its FlexSN path for neurons it has no built-in for).

Every contender runs the same neuron with the same parameters, input and output gradient. Reported per case:
the best of `--repeat` runs (median in brackets), the ratio to SpikingJelly's fastest path, and for the fused
kernels the bytes they move, the bandwidth achieved and its share of this device's copy bandwidth (a large
torch copy, read + write).

    python benchmarks/neuron_speed.py                       # CPU: LIF at T=100 N=64x784 and T=32 N=2^20
    python benchmarks/neuron_speed.py --device cuda         # the GPU table: every neuron, fp32 and fp16
    python benchmarks/neuron_speed.py --neurons LIF,PLIF --shapes 32x1048576
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

THREADS = int(os.environ.get("SNNC_BENCH_THREADS", "2"))
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import snnc  # noqa: E402
from snnc.runtime import backends  # noqa: E402
from snnc.runtime.plans import plan_for, spec_of  # noqa: E402

CPU_CASES = [("LIF", 100, (64, 784), "float32"), ("LIF", 32, (2**20,), "float32")]
BIG = (2**24,)
CUDA_CASES = [(n, 32, BIG, d) for n in ("LIF", "IF", "PLIF", "QIF", "EIF", "Izhikevich", "SquareIF", "AdaptiveLIF")
              for d in ("float32", "float16")] + [
    (n, 4, (2**23,), "float32") for n in ("LIF", "IF", "PLIF", "SquareIF", "AdaptiveLIF")] + [
    ("LIF", 4, (64, 128, 32, 32), "float32"), ("LIF", 100, (64, 784), "float32"), ("PLIF", 100, (64, 784), "float32")]


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, repeat: int, device: str) -> tuple[float, float]:
    for _ in range(2):
        fn()
    sync(device)
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync(device)
        ts.append(time.perf_counter() - t0)
    return min(ts), statistics.median(ts)


def copy_bandwidth(device: str, repeat: int) -> float:
    """Bytes read + written per second by a large torch copy (well past the caches)."""
    src = torch.rand(2**27 if device == "cpu" else 2**28, device=device)
    dst = torch.empty_like(src)
    best, _ = timed(lambda: dst.copy_(src), repeat, device)
    return 2 * src.numel() * 4 / best


def fused_bytes(p, T: int, N: int, io_bytes: int) -> int:
    """What a fused forward + backward must read and write: x in, spikes and H out; gS and H in, gx out
    (plus x when the backward reads it), the states once each way; H is fp32, the I/O `io_bytes` wide."""
    saved, S = len(p.saved), len(p.states)
    fwd = T * N * (2 * io_bytes + 4 * saved) + 8 * S * N
    bwd = T * N * (2 * io_bytes + 4 * saved + io_bytes * int(p.needs_x)) + 12 * S * N
    return fwd + bwd


def spikingjelly(name: str, device: str):
    """SpikingJelly's fastest path for a neuron: its built-in node, else (CUDA) FlexSN over the same charge."""
    from spikingjelly.activation_based import neuron as sjn

    # SpikingJelly 2.0 chooses its backend itself: Triton kernels on CUDA, PyTorch operations on the CPU.
    builtin = {"LIF": lambda: sjn.LIFNode(tau=2.0, step_mode="m"),
               "IF": lambda: sjn.IFNode(step_mode="m"),
               "PLIF": lambda: sjn.ParametricLIFNode(init_tau=2.0, step_mode="m"),
               "QIF": lambda: sjn.QIFNode(step_mode="m"), "EIF": lambda: sjn.EIFNode(step_mode="m"),
               "Izhikevich": lambda: sjn.IzhikevichNode(step_mode="m")}
    if name in builtin:
        return f"SpikingJelly {name}Node", builtin[name]().to(device)
    if device != "cuda" or name not in FLEXSN:
        return None, None
    from spikingjelly.activation_based.neuron.flexsn import FlexSN

    core, states = FLEXSN[name]
    return "SpikingJelly FlexSN", FlexSN(core=core, num_states=states, step_mode="m").to(device)


def _flexsn_cores():
    """The neurons SpikingJelly has no built-in for, as FlexSN step functions (the library's defaults)."""
    from spikingjelly.activation_based import surrogate

    sg = surrogate.Sigmoid(alpha=4.0)

    def square_if(x, v):
        h = v + x * x
        s = sg(h - 1.0)
        return s, h * (1.0 - s)

    def adaptive_lif(x, v, w):
        hv = v + (x - v - w) / 2.0
        hw = w + (0.0 * hv - w) / 20.0
        s = sg(hv - 1.0)
        return s, hv * (1.0 - s), hw + 0.1 * s

    return {"SquareIF": (square_if, 1), "AdaptiveLIF": (adaptive_lif, 2)}


try:
    FLEXSN = _flexsn_cores()
except Exception:  # noqa: BLE001 - SpikingJelly absent
    FLEXSN = {}


def case(lib, name: str, T: int, shape: tuple, dtype: str, device: str, repeat: int, bandwidth: float):
    N = math.prod(shape)
    tdtype = getattr(torch, dtype)
    g = torch.Generator(device=device).manual_seed(0)
    x0 = (torch.rand((T, *shape), generator=g, device=device) * 1.5).to(tdtype)
    grad = torch.rand((T, *shape), generator=g, device=device).to(tdtype)
    runs = {}

    def module_run(cell, per_step=False):
        x = x0.clone().requires_grad_(True)

        def go():
            x.grad = None
            cell.reset()
            out = torch.stack([cell(x[t]) for t in range(T)]) if per_step else cell(x)
            out.backward(grad)
        return go

    cls = lib.neurons[name]
    for backend in backends.available(device):
        runs[f"snnc {backend}"] = module_run(cls(step_mode="m", backend=backend).to(device))
    if T * N <= 2**23:
        runs["snnc module, single steps"] = module_run(cls(step_mode="s").to(device), per_step=True)
    try:
        label, node = spikingjelly(name, device)
        if node is not None:
            from spikingjelly.activation_based import functional

            def sj(node=node, x=x0.clone().requires_grad_(True)):
                x.grad = None
                functional.reset_net(node)
                node(x).backward(grad)
            runs[label] = sj
    except Exception as exc:  # noqa: BLE001 - SpikingJelly is optional here
        print(f"  (SpikingJelly skipped: {type(exc).__name__}: {exc})")
    results = {}
    for label, fn in runs.items():
        try:
            results[label] = timed(fn, repeat if T * N <= 2**23 else max(3, repeat // 4), device)
        except Exception as exc:  # noqa: BLE001 - report and go on
            print(f"  {label}: failed ({type(exc).__name__}: {exc})")
    print(f"\n{name} forward + backward, T={T}, N={'x'.join(map(str, shape))} ({N:,}), {dtype}, {device}")
    sj = next((v[0] for k, v in results.items() if k.startswith("SpikingJelly")), None)
    p = plan_for(spec_of(cls(step_mode="m")))
    moved = fused_bytes(p, T, N, tdtype.itemsize)
    for label, (best, median) in results.items():
        ratio = f"{sj / best:6.2f}x SpikingJelly" if sj and not label.startswith("SpikingJelly") else " " * 20
        traffic = ""
        if label.startswith("snnc") and "single" not in label and label != "snnc torch":
            traffic = f"  {moved / best / 1e9:7.1f} GB/s = {moved / best / bandwidth:5.1%} of copy"
        print(f"  {label:32s} {best * 1e3:9.3f} ms (median {median * 1e3:9.3f})  {ratio}{traffic}")
    print(f"  fused kernels move {moved / 1e6:,.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--neurons", help="comma-separated neuron names (default: the device's table)")
    ap.add_argument("--shapes", help="comma-separated TxN1xN2... shapes, e.g. 32x1048576")
    args = ap.parse_args()
    torch.set_num_threads(THREADS)
    lib = snnc.load(ROOT / "models" / "neurons.snn")
    cases = CPU_CASES if args.device == "cpu" else CUDA_CASES
    if args.neurons or args.shapes:
        names = args.neurons.split(",") if args.neurons else sorted({c[0] for c in cases})
        shapes = ([tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")] if args.shapes
                  else sorted({(c[1], *c[2]) for c in cases}))
        cases = [(n, s[0], s[1:], "float32") for n in names for s in shapes]
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"{THREADS} CPU threads"
    bw = copy_bandwidth(args.device, args.repeat)
    print(f"device: {where}; torch {torch.__version__}; copy bandwidth (read + write): {bw / 1e9:.1f} GB/s")
    for name, T, shape, dtype in cases:
        case(lib, name, T, shape, dtype, args.device, args.repeat, bw)


if __name__ == "__main__":
    main()
