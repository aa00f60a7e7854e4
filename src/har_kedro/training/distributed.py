"""Several training processes (GPUs, or CPU processes with gloo) that optimise like one.

The settings are :class:`har_kedro.config.distributed.DistributedSettings` (``num_processes`` is the
total over all machines, as in ``accelerate config``); the launcher that starts the processes is
:mod:`har_kedro.training.launch`. What lives here:

* :class:`Ranks` - what the training loop needs from the process group, wrapping an
  ``accelerate.Accelerator``. :data:`SINGLE_PROCESS` is the one-process default, whose every
  method is the identity, so ``fit()`` runs the same code with one process or many.

How the optimisation stays the same. ``batch_size`` stays the size of one forward pass of the
*whole job*: each micro-batch the one-process loop would run is split into one contiguous shard per
process (``np.array_split``, so uneven tails are fine). Each process embeds its shard and
:func:`gather_shards` all-gathers the embeddings, so every process computes the loss of the whole
micro-batch: the batch-coupled contrastive and sigmoid losses see every pair, exactly as in one
process. ``gather_shards`` is autograd-aware: its backward all-reduces (sums) the gradient of the
gathered rows and keeps this process's rows. As every process holds the same loss ``L``, each local
row's gradient becomes ``world × ∂L/∂row``; DDP then averages the parameter gradients over the
``world`` processes, which gives back ``Σ_rows ∂L/∂row · ∂row/∂θ``, the one-process gradient. The
class side (head, temperature, bias) is replicated, gets ``∂L/∂head`` on every process, and DDP's
average leaves it unchanged. Gradient accumulation, the learning-rate schedule and the loss
weighting are then untouched.

A process whose shard is empty (an epoch's last micro-batch can hold fewer images than there are
processes) still runs a forward and backward pass, on one image that :func:`gather_shards` leaves out
of the gathered batch, because every process must join every collective call and DDP's reduction.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn


if TYPE_CHECKING:
    from accelerate import Accelerator

Gather = Callable[[torch.Tensor], torch.Tensor]


def derived_seed(seed: int, rank: int) -> int:
    """A seed of its own for process ``rank`` (rank 0 keeps ``seed``, so one process is unchanged)."""
    if rank == 0:
        return seed
    return int(np.random.SeedSequence([seed, rank]).generate_state(1, dtype=np.uint64)[0] % 2**63)


# --------------------------------------------------------------------------- the autograd-aware gather


def gather_shards(local: torch.Tensor, sizes: Sequence[int], rank: int) -> torch.Tensor:
    """The rows of every process, in rank order: ``sizes[r]`` rows from process ``r``.

    ``local`` may hold more rows than ``sizes[rank]`` (the stand-in image of an empty shard); the
    extra rows are left out and get a zero gradient. Floating tensors that require a gradient
    keep it (see the module docstring for why the result is the one-process gradient); anything
    else (labels, EMA targets) is gathered as plain data.
    """
    if local.shape[0] < sizes[rank]:
        raise ValueError(f"process {rank} holds {local.shape[0]} rows but should send {sizes[rank]}")
    # torch.distributed.nn's all_gather carries the gradient (its backward sums every process's
    # gradient of the gathered rows and hands each its own: the rule above) but needs one shape on
    # every process, so each shard is padded to the largest and the padding cut off again.
    width = max(int(s) for s in sizes)
    own = local[: sizes[rank]]
    padded = torch.cat([own, own.new_zeros((width - own.shape[0], *own.shape[1:]))])
    if local.requires_grad and torch.is_grad_enabled():
        parts = dist_nn.all_gather(padded)
    else:
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded.detach())
    return torch.cat([part[:size] for part, size in zip(parts, sizes, strict=True)])


# --------------------------------------------------------------------------- what the loop sees


class Ranks:
    """The training loop's view of the process group; without an accelerator, one process and no-ops."""

    def __init__(self, accelerator: Accelerator | None = None) -> None:
        self.accelerator = accelerator
        self.rank = int(accelerator.process_index) if accelerator is not None else 0
        self.world = int(accelerator.num_processes) if accelerator is not None else 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes checkpoints and shows the progress bar."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def seed(self, seed: int) -> int:
        """This process's seed for augmentation and dropout (``seed`` itself on rank 0)."""
        return derived_seed(seed, self.rank)

    def _sizes(self, index: np.ndarray) -> tuple[int, ...]:
        return tuple(len(shard) for shard in np.array_split(index, self.world))

    def shard(self, index: np.ndarray) -> np.ndarray:
        """This process's rows of a micro-batch (a contiguous slice; one stand-in row if the slice is empty)."""
        if not self.distributed:
            return index
        sizes = self._sizes(index)
        start = sum(sizes[: self.rank])
        return index[start : start + sizes[self.rank]] if sizes[self.rank] else index[:1]

    def local_steps(self, steps: Sequence[Sequence[np.ndarray]]) -> list[list[np.ndarray]]:
        """An epoch's optimizer steps with every micro-batch cut down to this process's rows."""
        return [[self.shard(index) for index in step] for step in steps]

    def gatherer(self, index: np.ndarray) -> Gather | None:
        """The gather that turns this process's rows of micro-batch ``index`` back into the whole micro-batch.

        ``None`` with one process. With several, every process must call it the same number of times.
        """
        if not self.distributed:
            return None
        sizes, rank = self._sizes(index), self.rank

        def gather(tensor: torch.Tensor) -> torch.Tensor:
            return gather_shards(tensor, sizes, rank)

        return gather

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """``module`` in DDP (through ``accelerator.prepare``), which also copies rank 0's weights to every process."""
        if not self.distributed:
            return module
        assert self.accelerator is not None
        return self.accelerator.prepare(module)

    def accumulating(self, module: torch.nn.Module, sync: bool) -> contextlib.AbstractContextManager[Any]:
        """Skip DDP's gradient all-reduce on the micro-batches of a step before its last one."""
        if sync or not self.distributed:
            return contextlib.nullcontext()
        assert self.accelerator is not None
        return self.accelerator.no_sync(module)

    def backward(self, loss: torch.Tensor) -> None:
        if self.accelerator is not None:
            self.accelerator.backward(loss)
        else:
            loss.backward()

    def barrier(self) -> None:
        if self.distributed:
            assert self.accelerator is not None
            self.accelerator.wait_for_everyone()

    def _objects(self, value: Any) -> list[Any]:
        """``value`` of every process, in rank order."""
        from accelerate.utils import gather_object

        return list(gather_object([value]))

    def max(self, value: float) -> float:
        return max(self._objects(float(value))) if self.distributed else float(value)

    def require_same(self, value: Any, problem: str) -> None:
        """Raise on every process (so none waits forever) if ``value`` differs between processes."""
        if not self.distributed:
            return
        values = self._objects(value)
        if any(v != values[0] for v in values):
            raise RuntimeError(f"{problem} (by process: {values})")

    def predict(self, predict: Callable[[Any], torch.Tensor], inputs: Any) -> torch.Tensor:
        """``predict(inputs)``, with the rows shared out between the processes and the outputs gathered on each."""
        if not self.distributed or len(inputs) < self.world:
            return predict(inputs)
        assert self.accelerator is not None
        sizes = self._sizes(np.arange(len(inputs)))
        start = sum(sizes[: self.rank])
        mine = predict(inputs[start : start + sizes[self.rank]]).to(self.accelerator.device)
        padded = mine.new_zeros((max(sizes), *mine.shape[1:]))
        padded[: len(mine)] = mine
        gathered = self.accelerator.gather(padded).view(self.world, max(sizes), *mine.shape[1:])
        return torch.cat([gathered[r, :size] for r, size in enumerate(sizes)]).cpu()

    # -- random streams in checkpoints ------------------------------------------------------

    def _device_generator(self) -> torch.Generator:
        """The default generator of this process's device (dropout draws from it)."""
        device = self.accelerator.device if self.accelerator is not None else torch.device("cpu")
        if device.type == "cuda":
            return torch.cuda.default_generators[device.index or 0]
        return torch.default_generator

    def generators(self, augment: torch.Generator) -> dict[str, torch.Generator]:
        """This process's named generators as a checkpoint stores them (rank 0's are the one-process names)."""
        if self.rank == 0:
            return {"augment": augment}
        return {f"augment@{self.rank}": augment, f"torch@{self.rank}": self._device_generator()}

    def other_generator_states(self, augment: torch.Generator) -> dict[str, torch.Tensor]:
        """On rank 0: the generator states of the other processes, to be saved next to its own (a collective call)."""
        if not self.distributed:
            return {}
        mine = {} if self.rank == 0 else {name: g.get_state() for name, g in self.generators(augment).items()}
        return {name: state for states in self._objects(mine) for name, state in states.items()}


SINGLE_PROCESS = Ranks()
