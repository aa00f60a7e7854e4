"""The ``distributed`` block of the training parameters: where the training processes run.

The names and meanings are those of ``accelerate config``; ``num_processes`` is the total over
all machines. How the processes then optimise like one is :mod:`har_kedro.training.distributed`.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from har_kedro.config.errors import TrainingConfigError, known_keys

BACKENDS = ("auto", "nccl", "gloo")
LOCAL_ADDRESSES = ("localhost", "127.0.0.1", "::1")

class DistributedConfigError(TrainingConfigError):
    """A ``distributed`` training parameter is unknown, out of range or does not fit the rest; the message names it."""


@dataclass(frozen=True)
class DistributedSettings:
    """Where the training processes run; the names and meanings are those of ``accelerate config``."""

    num_processes: int = 1  # total over all machines (1: train in the Kedro process itself)
    num_machines: int = 1
    machine_rank: int = 0  # this machine's index, 0 .. num_machines - 1; machine 0 hosts the rendezvous
    main_process_ip: str = "127.0.0.1"  # an address of machine 0 that every machine can reach
    main_process_port: int | None = None  # None: a free port on this machine (one machine only)
    backend: str = "auto"  # auto: nccl on CUDA, gloo on CPU
    timeout_minutes: float = 30.0  # how long a process waits for the others (rendezvous, collectives)

    @property
    def enabled(self) -> bool:
        """Whether training leaves the Kedro process for worker processes."""
        return self.num_processes > 1

    @property
    def processes_per_machine(self) -> int:
        return self.num_processes // self.num_machines

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None, where: str = "training.distributed") -> DistributedSettings:
        settings = cls(**known_keys(cls, params, where, DistributedConfigError))
        settings.validate(where)
        return settings

    def validate(self, where: str = "training.distributed") -> None:
        def fail(message: str) -> None:
            raise DistributedConfigError(f"{where}.{message}")

        for name in ("num_processes", "num_machines"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                fail(f"{name} must be a positive integer, got {value!r}.")
        if self.num_processes % self.num_machines:
            fail(
                f"num_processes ({self.num_processes}) is the total over all machines, as in `accelerate config`, "
                f"so it must be a multiple of num_machines ({self.num_machines})."
            )
        if isinstance(self.machine_rank, bool) or not isinstance(self.machine_rank, int) or not 0 <= self.machine_rank < self.num_machines:
            fail(f"machine_rank must be an integer from 0 to num_machines - 1 ({self.num_machines - 1}), got {self.machine_rank!r}.")
        if self.backend not in BACKENDS:
            fail(f"backend is {self.backend!r}; use one of {list(BACKENDS)}.")
        port = self.main_process_port
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535):
            fail(f"main_process_port must be a port number from 1 to 65535, or null for a free one, got {port!r}.")
        if not isinstance(self.main_process_ip, str) or not self.main_process_ip.strip():
            fail(f"main_process_ip must be a host name or IP address, got {self.main_process_ip!r}.")
        if isinstance(self.timeout_minutes, bool) or not isinstance(self.timeout_minutes, (int, float)) or not math.isfinite(self.timeout_minutes) or self.timeout_minutes <= 0:
            fail(f"timeout_minutes must be a number > 0, got {self.timeout_minutes!r}.")
        if self.num_machines > 1:
            if port is None:
                fail(f"main_process_port must be set when num_machines is {self.num_machines}: every machine connects to that port on machine 0.")
            if _is_loopback(self.main_process_ip):
                fail(
                    f"main_process_ip is {self.main_process_ip!r} but num_machines is {self.num_machines}: "
                    "set it to an address of machine 0 that the other machines can reach."
                )

    def check_fits(self, device: str, batch_size: int, where: str = "training.distributed") -> None:
        """Refuse settings that cannot work together with the rest of the training parameters."""
        if not self.enabled:
            return
        prefix = f"{where}.num_processes is {self.num_processes} but"
        kind = device.split(":")[0]
        if kind == "mps":
            raise DistributedConfigError(
                f"{prefix} device is mps, which several processes cannot share: use device: cuda or cpu, or set num_processes: 1."
            )
        if kind not in ("auto", "cuda", "cpu"):
            raise DistributedConfigError(f"{prefix} device is {device!r}: several processes run on cuda (one GPU each) or on cpu.")
        if kind == "cuda" and ":" in device:
            raise DistributedConfigError(
                f"{prefix} device is {device!r}, a single GPU: each process takes the GPU of its local rank, "
                "so use device: cuda or auto (and CUDA_VISIBLE_DEVICES to choose the GPUs)."
            )
        if kind == "cpu" and self.backend == "nccl":
            raise DistributedConfigError(f"{where}.backend is nccl, which needs CUDA GPUs, but device is cpu: use backend: auto or gloo.")
        if batch_size < self.num_processes:
            raise DistributedConfigError(
                f"{prefix} batch_size is {batch_size}: each forward pass of batch_size images is split across the processes, "
                f"so use batch_size >= {self.num_processes} (a multiple of {self.num_processes} keeps the shards equal)."
            )

    def resolved_backend(self, device_type: str) -> str:
        """The process-group backend for workers on ``device_type`` ('cuda' or 'cpu')."""
        if self.backend != "auto":
            return self.backend
        return "nccl" if device_type == "cuda" else "gloo"


def _is_loopback(host: str) -> bool:
    if host.strip().lower() in LOCAL_ADDRESSES:
        return True
    try:
        return ipaddress.ip_address(host.strip()).is_loopback
    except ValueError:
        return False
