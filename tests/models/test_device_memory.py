"""Peak memory is per model: on CPU (Linux) the process's peak RSS is reset before each model trains."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import har_kedro.models.device as device_module
from har_kedro.models.device import memory_kind, peak_memory_mb, reset_peak_memory

CPU = torch.device("cpu")
LINUX_PROC = Path("/proc/self/clear_refs").exists() and Path("/proc/self/status").exists()


@pytest.mark.skipif(not LINUX_PROC, reason="needs Linux's /proc/self/clear_refs and VmHWM; elsewhere the lifetime peak is reported")
def test_a_reset_forgets_the_peak_of_what_ran_before():
    block = np.ones(400 * 2**20 // 8)  # 400 MiB, touched: "another model" trained earlier in this process
    before = peak_memory_mb(CPU)
    del block
    assert reset_peak_memory(CPU) is True
    after = peak_memory_mb(CPU)
    assert after < before - 300, (before, after)
    assert memory_kind(CPU) == "process_peak_rss"
    grown = np.ones(100 * 2**20 // 8)  # and a new peak is seen again
    assert peak_memory_mb(CPU) >= after + 90
    del grown


def test_without_proc_it_says_the_peak_is_the_lifetime_one(monkeypatch, tmp_path):
    monkeypatch.setattr(device_module, "_PROC", tmp_path / "no-proc")
    assert reset_peak_memory(CPU) is False
    assert memory_kind(CPU) == "process_lifetime_peak_rss"
    assert peak_memory_mb(CPU) > 0  # getrusage's lifetime peak
