"""Training checkpoints: atomic writes, safe loading, and Ctrl-C/SIGTERM handling.

A checkpoint is a plain dict of tensors and primitives (loadable with
`torch.load(weights_only=True)`):

    format, name, model_hash, model (state_dict), optimizer, scheduler, scaler,
    epoch (next epoch to run), batch (batches of that epoch already done),
    partial (running train sums of that epoch), rng, metrics (rows so far),
    best_acc, settings (the run's resolved options)
"""
from __future__ import annotations

import contextlib
import io
import os
import signal
import tempfile
import threading
from pathlib import Path

import torch

from ..compiler.source import SnncError
from ..runtime.cache import usual_mode
from ..runtime.files import write_atomic

FORMAT = "snnc-checkpoint-1"
LAST, BEST = "last.pt", "best.pt"


def atomic_write_bytes(path: str | os.PathLike, data: bytes):
    """A run's output file: written atomically and durably (it survives a crash once this returns), with the
    user's usual permissions (not a temporary's 0600)."""
    path = Path(path)
    write_atomic(path, data, mode=usual_mode(), durable=True, on_rename=lambda when: fault_point(path.name, when))


_WRITES: dict[str, int] = {}


def fault_point(name: str, when: str) -> None:
    """Fault injection for the resume tests: SNNC_KILL_AT="<file>:<n>:<before|after>" kills this process
    (SIGKILL, no clean-up) at the n-th write of that file, before or after it is renamed into place; "run"
    for the file is the run itself, before its setup and after its training loop. SNNC_KILL_SIGNAL=TERM
    sends SIGTERM instead (the run goes on to where it stops cleanly)."""
    spec = os.environ.get("SNNC_KILL_AT")
    if not spec:
        return
    file, n, at = spec.split(":")
    if file != name:
        return
    if when == "before":
        _WRITES[name] = _WRITES.get(name, 0) + 1
    if _WRITES.get(name) == int(n) and at == when:
        os.kill(os.getpid(), signal.SIGTERM if os.environ.get("SNNC_KILL_SIGNAL") == "TERM" else signal.SIGKILL)


def remove_temporaries(folder: str | os.PathLike) -> None:
    """Temporary files of writes a killed process never finished (".<name>.<random>.tmp")."""
    for entry in Path(folder).glob(".*.tmp"):
        try:
            entry.unlink()
        except OSError:
            pass


def atomic_write_text(path: str | os.PathLike, text: str):
    atomic_write_bytes(path, text.encode("utf-8"))


def save(state: dict, path: str | os.PathLike):
    """Atomically save a checkpoint dict."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buffer)
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as exc:
        raise SnncError(f"cannot write checkpoint {path}: {exc.strerror or exc}",
                        hint="check free disk space and permissions of the output folder") from None


def load(path: str | os.PathLike, model_hash: str | None = None) -> dict:
    """Load a checkpoint (weights only) and check it belongs to the model `model_hash`."""
    path = resolve(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise SnncError(f"checkpoint {path} does not exist", hint="pass the path of a last.pt/best.pt written by training") from None
    except Exception as exc:  # unpickling/zip/IO errors come in many types
        raise SnncError(f"checkpoint {path} is corrupt or not an snnc checkpoint ({_why_unreadable(exc)})",
                        hint="use another checkpoint (best.pt or last.pt of the run) or start a new run without "
                             "--resume") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise SnncError(f"{path} is not an snnc checkpoint", hint="pass a last.pt/best.pt written by snnc training")
    validate(state, path)
    if model_hash is not None and state.get("model_hash") != model_hash:
        raise SnncError(
            f"checkpoint {path} was trained for a different model "
            f"('{state.get('name')}', hash {str(state.get('model_hash'))[:12]}), not this one (hash {model_hash[:12]})",
            hint="use the .snn file (and network) this checkpoint was trained with; if you changed the network "
            "since, its weights no longer fit: train it afresh",
        )
    return state


# A metrics row, one an epoch: what checkpoints hold under "metrics" and metrics.csv's columns (logs.py).
METRIC_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc",
                  "train_images_per_s", "seconds")
_NONE = type(None)
_KEYS = {  # what snnc writes under each key (steps: since --max-steps runs resume exactly; older files lack it)
    "name": ((str,), "a name"), "model_hash": ((str,), "a hash"), "model": ((dict,), "a state dict"),
    "optimizer": ((dict,), "a state dict"), "scheduler": ((dict, _NONE), "a state dict or None"),
    "scaler": ((dict, _NONE), "a state dict or None"), "epoch": ((int,), "a whole number"),
    "batch": ((int,), "a whole number"), "partial": ((dict, _NONE), "a dict or None"),
    "rng": ((dict,), "a dict of generator states"), "metrics": ((list, tuple), "a list of rows"),
    "best_acc": ((int, float), "a number"), "settings": ((dict,), "a dict of settings"),
}
_LIMIT = 2**31 - 1


def validate(state: dict, path) -> None:
    """Every key a run reads, of the type and within the range snnc writes: else an error naming the key and
    what was expected (a hand-made or damaged file ends in exit 1, never in an internal error)."""
    def bad(key: str, expected: str, value=None) -> SnncError:
        got = "missing" if value is _MISSING else f"{type(value).__name__} {_short(value)}"
        return SnncError(f"checkpoint {path} is malformed: '{key}' is {got}, expected {expected}",
                         hint="use a last.pt/best.pt written by snnc training, or start a new run without --resume")

    for key, (types, what) in (*_KEYS.items(), *((("steps", ((int,), "a whole number")),) if "steps" in state
                                               else ())):
        value = state.get(key, _MISSING)
        if value is _MISSING or not isinstance(value, types) or isinstance(value, bool) and bool not in types:
            raise bad(key, what, value)
    for key in ("epoch", "batch", "steps"):
        if key in state and not 0 <= state[key] <= _LIMIT:
            raise bad(key, f"a whole number from 0 to {_LIMIT}", state[key])
    if not -1.0 <= state["best_acc"] <= 1.0:
        raise bad("best_acc", "an accuracy in [0, 1] (or -1: none yet)", state["best_acc"])
    if len(state["metrics"]) != state["epoch"]:
        raise bad("metrics", f"one row for each of the {state['epoch']} epochs done", state["metrics"])
    for i, row in enumerate(state["metrics"]):
        if not isinstance(row, dict) or any(not isinstance(row.get(c), (int, float)) or isinstance(row.get(c), bool)
                                            for c in METRIC_COLUMNS) or row["epoch"] != i + 1:
            raise bad(f"metrics[{i}]", f"a row of numbers {', '.join(METRIC_COLUMNS)} for epoch {i + 1}", row)
    if state["partial"] is not None and any(not isinstance(state["partial"].get(k), (int, float))
                                            for k in ("loss", "correct", "count", "seconds")):
        raise bad("partial", "the running sums loss, correct, count and seconds", state["partial"])
    generator = state["rng"].get("torch", _MISSING)
    if not isinstance(generator, torch.Tensor) or generator.dtype != torch.uint8 or \
            generator.shape != torch.get_rng_state().shape:
        raise bad("rng['torch']", f"a CPU generator state (uint8 tensor of {torch.get_rng_state().numel()})",
                  generator)
    _validate_settings(state["settings"], bad)


def _validate_settings(settings: dict, bad) -> None:
    from .recipe import DEFAULTS

    for key, default in (*DEFAULTS.items(), ("T", 1), ("subset", None), ("test_subset", None), ("max_steps", None)):
        if key not in settings:
            continue
        value = settings[key]
        if value is None and default is None:
            continue
        if key in ("frames", "transform", "augment"):
            if not _steps(value if key != "frames" else [value]):
                raise bad(f"settings['{key}']", "data steps as snnc writes them", value)
            continue
        kind = _kind(key, default)
        ok = isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool) or \
            kind is float and isinstance(value, int) and not isinstance(value, bool)
        if not ok or kind in (int, float) and not abs(value) < 2**63:
            raise bad(f"settings['{key}']", f"a {kind.__name__}", value)


def _kind(key: str, default) -> type:
    """The type a setting holds: its default's, or the one an optional train-block field (ir.Train) names."""
    import typing

    from ..compiler import ir

    if default is not None:
        return type(default)
    field = ir.Train.model_fields.get(key)
    named = [a for a in typing.get_args(field.annotation) if a is not type(None)] if field else []
    if len(named) == 1 and isinstance(named[0], type):
        return named[0]
    return str if key == "dataset" else int


def _steps(values) -> bool:
    """Whether `values` are data steps (`ir.Step` dumps)."""
    from pydantic import ValidationError

    from ..compiler import ir

    if not isinstance(values, (list, tuple)):
        return False
    try:
        for v in values:
            ir.Step.model_validate(v)
    except ValidationError:
        return False
    return True


class _Missing:
    pass


_MISSING = _Missing()


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _why_unreadable(exc: Exception) -> str:
    """Why torch.load refused a file, in snnc's words. PyTorch's own message for a file that holds more than
    tensors and plain values advises weights_only=False, which would let the file run code: never passed on."""
    text = str(exc)
    if "weights_only" in text or "Unsupported global" in text:
        return ("it holds Python objects besides tensors and plain values; snnc loads weights only, never code "
                "from a checkpoint")
    return f"{type(exc).__name__}: {text[:200]}"


def epoch_of(path: str | os.PathLike) -> int | None:
    """The epoch a checkpoint file holds, or None (missing or unreadable)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        return int(state["epoch"])
    except Exception:  # noqa: BLE001 - any unreadable file is "none"
        return None


def copy(source: str | os.PathLike, target: str | os.PathLike) -> None:
    atomic_write_bytes(target, Path(source).read_bytes())


def load_into(module, state: dict, key: str, path) -> None:
    """Load `state[key]` (a state_dict) into `module`, naming the first mismatching key or shape."""
    saved = state.get(key)
    if not isinstance(saved, dict):
        raise SnncError(f"checkpoint {path} has no {key} state", hint="use a last.pt/best.pt written by snnc")
    try:
        expected = module.state_dict()
    except Exception:  # noqa: BLE001 - an optimizer or scheduler without the usual state_dict
        expected = None
    if key == "model" and expected is not None:
        missing = [k for k in expected if k not in saved]
        extra = [k for k in saved if k not in expected]
        shapes = [k for k in expected if k in saved and hasattr(saved[k], "shape")
                  and tuple(saved[k].shape) != tuple(expected[k].shape)]
        if missing or extra or shapes:
            what = (f"has no '{missing[0]}'" if missing else f"has an unknown '{extra[0]}'" if extra else
                    f"has '{shapes[0]}' of shape {list(saved[shapes[0]].shape)} where the model's is "
                    f"{list(expected[shapes[0]].shape)}")
            raise SnncError(f"checkpoint {path} does not fit the model: it {what}"
                            + (f" (and {len(missing) + len(extra) + len(shapes) - 1} more)"
                               if len(missing) + len(extra) + len(shapes) > 1 else ""),
                            hint="use the checkpoint of this network, or train it afresh")
    try:
        module.load_state_dict(saved)
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise SnncError(f"checkpoint {path} does not fit the run's {key}: {str(exc).splitlines()[0][:300]}",
                        hint="resume with the settings the run was started with, or start a new run") from None


def resolve(path: str | os.PathLike) -> Path:
    """A checkpoint path; a folder means its last.pt."""
    path = Path(path).expanduser()
    return path / LAST if path.is_dir() else path


@contextlib.contextmanager
def run_lock(folder: str | os.PathLike):
    """Hold the run folder for this run: a second run into the same folder (whose "holds a run" check could
    pass before the first writes anything) is refused while this one lives. An flock: released by the kernel
    when the process ends, however it ends."""
    folder = check_writable(folder)
    path = folder / ".snnc-run.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # the umask gives it the usual mode of a run's files
    except OSError as exc:
        raise SnncError(f"cannot lock the output folder {folder}: {exc.strerror or exc}",
                        hint="choose another --out-dir or fix its permissions") from None
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # no flock (Windows): unguarded, as before
            pass
        except OSError:
            raise SnncError(f"another snnc run is writing to {folder}",
                            hint="wait for it to finish, or choose another --out-dir") from None
        yield folder
    finally:
        os.close(fd)


def check_writable(folder: str | os.PathLike) -> Path:
    """Create `folder` if needed and prove a file can be written there."""
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".write-test.", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise SnncError(f"output folder {folder} is not writable: {exc.strerror or exc}",
                        hint="choose another --out-dir or fix its permissions") from None
    return folder


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict):
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class InterruptGuard:
    """Turns SIGINT/SIGTERM into a flag while training, so the loop can finish the
    batch and save. A second signal restores the handler the guard found and re-raises.

    A signal the process was started ignoring stays ignored (a background job of a script, or one started by
    nohup, ignores SIGINT so that a Ctrl-C meant for the script does not reach it), and so does one whose
    handler Python did not install (it could not be put back). On exit each signal's disposition is exactly
    what the guard found."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signal: int | None = None
        self._old: dict = {}

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def __enter__(self) -> "InterruptGuard":
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                if signal.getsignal(sig) not in (signal.SIG_IGN, None):
                    self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        self._old.clear()
        return False

    def _handle(self, sig, frame):
        if self.signal is not None:
            self.__exit__()
            signal.raise_signal(sig)
            return
        self.signal = sig
