"""Runtime: turn generated artifacts into running code (imports, shared libraries, CUDA kernels)."""
