"""Device choice, mixed precision and memory readings, in one place."""

from __future__ import annotations

import contextlib
import resource
import sys
from pathlib import Path

import torch


def select_device(requested: str = "auto") -> torch.device:
    """``auto`` picks cuda > mps > cpu; an explicit device that is absent is an error, not a fallback."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{requested}' was requested but CUDA is not available here; use device: auto or cpu")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device '{requested}' was requested but MPS is not available here; use device: auto or cpu")
    return device


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """bf16 on GPUs by default; CPU runs stay in fp32 so they are exact and reproducible."""
    if amp == "off" or device.type == "cpu":
        return None
    if amp == "fp16":
        return torch.float16
    if amp == "bf16" or device.type == "cuda":
        return torch.bfloat16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[object]:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


# Linux keeps the peak resident set of a process as VmHWM in /proc/self/status, and writing "5" to
# /proc/self/clear_refs resets it to the current RSS (proc(5)). That makes a CPU peak per model: a
# `kedro run` that trains three models in one process would otherwise report the lifetime peak
# (getrusage's ru_maxrss), so every model after the first would carry the largest one before it.
_PROC = Path("/proc/self")


def _reset_peak_rss() -> bool:
    try:
        (_PROC / "clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_kib() -> int | None:
    """VmHWM in KiB, or None where /proc does not give it."""
    try:
        for line in (_PROC / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def reset_peak_memory(device: torch.device) -> bool:
    """Start a new peak: the CUDA allocator's, or on CPU the process's peak RSS where Linux allows it.
    False when only the process's lifetime peak can be read (not Linux, or /proc refused)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return True
    return _reset_peak_rss() and _peak_rss_kib() is not None


def peak_memory_mb(device: torch.device) -> float:
    """Peak accelerator memory allocated by torch since the last reset; on CPU, the process's peak
    resident set since the last reset (Linux), else over its lifetime."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    kib = _peak_rss_kib()
    if kib is not None:
        return kib / 2**10
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def memory_kind(device: torch.device) -> str:
    """How :func:`peak_memory_mb` measured: per model where the peak could be reset, else the lifetime peak."""
    if device.type == "cuda":
        return "cuda_max_allocated"
    return "process_peak_rss" if _peak_rss_kib() is not None and (_PROC / "clear_refs").exists() else "process_lifetime_peak_rss"


def upload(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on ``device`` without blocking the host.

    On CUDA a copy from pageable memory first waits for the stream to drain; a copy from pinned
    memory does not. The pinned block comes from torch's caching host allocator, which keeps it
    until the copy has finished, so the caller may drop it at once.
    """
    if device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)
