"""Whole-network helpers, SpikingJelly-style: reset_net, detach_net, set_step_mode, set_backend."""
from .runtime.ops import install as _install
from .runtime.support import detach_net, reset_net, set_backend, set_step_mode

_install()

__all__ = ["reset_net", "detach_net", "set_step_mode", "set_backend"]
