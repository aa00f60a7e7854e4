"""Code that runs inside the processes tests/training/test_distributed.py spawns.

Kept apart from the test module and light (torch, the losses, the gather) so that each spawned
process starts in seconds. Failures are assertions raised in the process; ``torch.multiprocessing``
re-raises them in the test.
"""

from __future__ import annotations

import gc
import os
from types import SimpleNamespace

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.distributed.elastic.multiprocessing.errors import record
from torch.nn.parallel import DistributedDataParallel

from har_kedro.models.losses import LOSSES, compute_loss, paired_contrastive_loss
from har_kedro.training.distributed import Ranks

CLASSES, FEATURES, DIM, PROMPTS = 3, 6, 4, 2
OBJECTIVES = (*LOSSES, "flyp")  # flyp: each image against its own prompt's text, gathered like the images


class TinyEncoder(nn.Module):
    """A linear image encoder, a class head with temperature and bias, and per-class prompt texts (FLYP): every kind of parameter the losses reach."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.encoder = nn.Parameter(torch.randn(DIM, FEATURES, generator=generator))
        self.head = nn.Parameter(torch.randn(CLASSES, DIM, generator=generator))
        self.logit_scale = nn.Parameter(torch.tensor(1.5))
        self.logit_bias = nn.Parameter(torch.tensor(-2.0))
        self.prompts = nn.Parameter(torch.randn(CLASSES, PROMPTS, DIM, generator=generator))  # FLYP's text side

    def forward(self, x: torch.Tensor, labels: torch.Tensor, loss: str, gather=None) -> torch.Tensor:
        embeddings = F.normalize(x @ self.encoder.T, dim=-1)
        if loss == "flyp":  # as models/flyp.py: this process's texts, one prompt per image, then gathered
            choice = (x[:, 0] > 0).long()  # a prompt per image that does not depend on how the batch is split
            texts = F.normalize(self.prompts[labels, choice], dim=-1)
            if gather is not None:
                embeddings, texts, labels = gather(embeddings), gather(texts), gather(labels)
            return paired_contrastive_loss(embeddings, texts, labels, self.logit_scale.exp())
        if gather is not None:
            embeddings, labels = gather(embeddings), gather(labels)
        return compute_loss(loss, embeddings, F.normalize(self.head, dim=-1), labels, self.logit_scale.exp(), self.logit_bias)


def batch(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and labels where classes repeat (the case the same-class masks exist for)."""
    generator = torch.Generator().manual_seed(size)
    return torch.randn(size, FEATURES, generator=generator), torch.arange(size) % CLASSES


def one_process(loss: str, size: int) -> tuple[torch.Tensor, dict[str, torch.Tensor | None]]:
    """The loss of the whole batch and its parameter gradients (None: unused, the contrastive loss's bias)."""
    model = TinyEncoder()
    x, labels = batch(size)
    value = model(x, labels, loss)
    value.backward()
    return value.detach(), {name: None if p.grad is None else p.grad.clone() for name, p in model.named_parameters()}


def compare_gathered_losses(rank: int, world: int, init_file: str, sizes: list[int]) -> None:
    """Each batch split over ``world`` DDP processes, gathered, must give the one-process loss and gradients."""
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        ranks = Ranks(SimpleNamespace(process_index=rank, num_processes=world))
        for loss in OBJECTIVES:
            for size in sizes:
                expected_value, expected_grads = one_process(loss, size)
                model = TinyEncoder()
                ddp = DistributedDataParallel(model, find_unused_parameters=True)
                x, labels = batch(size)
                index = np.arange(size)
                local = ranks.shard(index)
                value = ddp(x[local], labels[local], loss, ranks.gatherer(index))
                value.backward()  # DDP averages the parameter gradients over the processes
                where = f"{loss}, batch {size}, process {rank}"
                torch.testing.assert_close(value.detach(), expected_value, rtol=1e-5, atol=1e-6, msg=lambda m: f"{where}: loss {m}")
                for name, p in model.named_parameters():
                    if expected_grads[name] is None:
                        assert p.grad is None, f"{where}: {name} should get no gradient"
                        continue
                    torch.testing.assert_close(p.grad, expected_grads[name], rtol=1e-5, atol=1e-6, msg=lambda m, n=name: f"{where}: grad of {n} {m}")
                # Each DDP wrapper goes while the process group is alive: were the last one freed after
                # destroy_process_group, its reducer would hold the group's last reference and the gloo
                # destructor would join its worker thread with the GIL held (a deadlock seen in CI).
                del ddp, value
                gc.collect()
        dist.barrier()
    finally:
        dist.destroy_process_group()


@record
def fail_in_the_last_process() -> None:
    """An entrypoint for the launcher whose last process raises, as a worker that hits a bad setting would."""
    if int(os.environ["RANK"]) == int(os.environ["WORLD_SIZE"]) - 1:
        raise ValueError(f"process {os.environ['RANK']} cannot go on")
