"""The training loop: AdamW, warmup-cosine, accumulation, clipping, AMP, early stopping, resume.

The loop is model-agnostic: it needs a module with ``embed(inputs, generator)`` and
``class_side()`` (see :mod:`har_kedro.models.classifier`), so the same code trains a
linear probe over cached features and a full fine-tune over uint8 images. Metrics are
accumulated on the device and read once per epoch, so the hot loop does not wait on the
host. The state is checkpointed every epoch; with ``resume`` a killed run continues from
the last completed epoch and, on CPU, ends exactly where an uninterrupted run would.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from har_kedro.models.losses import class_logits
from har_kedro.models.methods import optimizer_groups
from har_kedro.training.checkpoint import (
    TrainingState,
    capture_rng_state,
    latest_checkpoint,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from har_kedro.training.config import TrainConfig
from har_kedro.training.device import autocast, autocast_dtype, peak_memory_mb, reset_peak_memory
from har_kedro.training.distributed import SINGLE_PROCESS, Ranks
from har_kedro.training.fast_path import BatchFeed, nbytes, resolve_cache_mode
from har_kedro.training.schedule import warmup_cosine
from har_kedro.training.step import TrainStep

logger = logging.getLogger(__name__)


@dataclass
class Split:
    """Inputs (uint8 images ``(N, S, S, 3)`` or features ``(N, D)``) and integer labels."""

    inputs: np.ndarray | torch.Tensor
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class FitResult:
    history: list[dict[str, Any]]
    best_state: dict[str, torch.Tensor]
    best_epoch: int
    best_val_accuracy: float
    stopped_early: bool
    peak_memory_mb: float
    resumed_from_epoch: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """CPU copies of the parameters being trained: what a checkpoint or best-epoch snapshot needs."""
    return {name: p.detach().to("cpu", copy=True).contiguous() for name, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    missing = sorted(set(state) - set(params))
    if missing:
        raise KeyError(f"checkpoint holds parameters the model does not have: {missing[:5]}")
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value.to(params[name].device, params[name].dtype))


# Settings that do not change what an epoch computes; a resumed run may change them freely.
_RESUME_FREE = (
    "resume", "progress", "keep_checkpoints", "eval_batch_size", "device", "distributed",
    "cache_on_device", "compile", "compile_mode", "activation_checkpointing", "tf32", "log_every_steps",
)


def run_fingerprint(config: TrainConfig, seed: int, train: Split, stage: str, processes: int = 1) -> dict[str, Any]:
    """What a checkpoint must agree with to be resumed: the settings, the seed and the data size."""
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in _RESUME_FREE}
    if processes > 1:  # each process has its own random streams, saved per rank: resume with as many
        settings["processes"] = processes
    return json.loads(json.dumps({"stage": stage, "seed": seed, "train_size": len(train), "settings": settings}, default=str))


class ResumeMismatchError(ValueError):
    """The checkpoint on disk was written by a run with other settings; resuming would mix the two."""


def _check_resumable(saved: dict[str, Any] | None, current: dict[str, Any], found: Path) -> None:
    if saved is None:
        return  # written before fingerprints existed
    differ = sorted(
        k for k in set(saved["settings"]) | set(current["settings"]) if saved["settings"].get(k) != current["settings"].get(k)
    ) + [k for k in ("seed", "train_size") if saved.get(k) != current.get(k)]
    if differ:
        detail = ", ".join(f"{k}: {_saved(saved, k)!r} -> {_saved(current, k)!r}" for k in differ[:5])
        raise ResumeMismatchError(
            f"cannot resume from {found}: it was written with other settings ({detail}). "
            "Restore those settings to continue it, or set resume: false to start this run over."
        )


def _saved(fingerprint: dict[str, Any], key: str) -> Any:
    return fingerprint[key] if key in ("seed", "train_size") else fingerprint["settings"].get(key)


def take(inputs: np.ndarray | torch.Tensor, index: np.ndarray) -> torch.Tensor:
    """Rows ``index`` (sorted, so memory-mapped reads stay sequential) as a tensor."""
    if isinstance(inputs, torch.Tensor):
        return inputs[torch.from_numpy(index).to(inputs.device)]
    return torch.from_numpy(np.ascontiguousarray(inputs[index]))


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module, inputs: np.ndarray | torch.Tensor, batch_size: int, device: torch.device, amp: str = "auto"
) -> torch.Tensor:
    """``(N, C)`` float32 class logits on the CPU, eval mode (no augmentation)."""
    was_training = model.training
    model.eval()
    dtype = autocast_dtype(amp, device)
    outputs = []
    with autocast(device, dtype):
        classes, scale, bias = model.class_side()
        for start in range(0, len(inputs), batch_size):
            index = np.arange(start, min(start + batch_size, len(inputs)))
            embeddings = model.embed(take(inputs, index).to(device))
            outputs.append(class_logits(embeddings, classes, scale, bias).float().cpu())
    model.train(was_training)
    if not outputs:
        return torch.empty(0, 0)
    return torch.cat(outputs)


def evaluate(
    model: torch.nn.Module, split: Split, batch_size: int, device: torch.device, amp: str = "auto", ranks: Ranks = SINGLE_PROCESS
) -> dict[str, float]:
    """Cross-entropy and top-1 accuracy: comparable across objectives (rows shared out between ``ranks``)."""
    logits = ranks.predict(lambda part: predict_logits(model, part, batch_size, device, amp), split.inputs)
    labels = torch.as_tensor(np.array(split.labels, dtype=np.int64))
    return {
        "loss": float(torch.nn.functional.cross_entropy(logits, labels)),
        "accuracy": float((logits.argmax(dim=1) == labels).float().mean()),
    }


def _micro_batches(n: int, batch_size: int, accumulation: int, seed: int, epoch: int) -> list[list[np.ndarray]]:
    """This epoch's optimizer steps, each a list of micro-batch index arrays; the order depends only on (seed, epoch)."""
    order = np.random.default_rng([seed, epoch]).permutation(n)
    micro = [np.sort(order[i : i + batch_size]) for i in range(0, n, batch_size)]
    return [micro[i : i + accumulation] for i in range(0, len(micro), accumulation)]


def fit(
    model: torch.nn.Module,
    train: Split,
    val: Split,
    config: TrainConfig,
    device: torch.device,
    seed: int,
    checkpoint_dir: Path | None = None,
    stage: str = "train",
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
    ranks: Ranks = SINGLE_PROCESS,
) -> FitResult:
    """Train ``model``'s trainable parameters and return the best epoch's weights and the history.

    With several ``ranks`` (training/distributed.py) every process runs this on its share of each
    micro-batch; the optimisation, the history and the result are those of one process.
    """
    model.to(device)
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError(f"stage '{stage}': the model has no trainable parameters for method '{config.method}'")
    if len(train) == 0 or len(val) == 0:
        raise ValueError(f"stage '{stage}': the train and val splits must not be empty ({len(train)} / {len(val)} images)")
    groups = optimizer_groups(model, config.lr, config.weight_decay, config.lr_multipliers)
    fused = device.type == "cuda"
    optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay, fused=fused)
    steps_per_epoch = len(_micro_batches(len(train), config.batch_size, config.accumulation_steps, seed, 0))
    total_steps = min(steps_per_epoch * config.epochs, config.max_steps or steps_per_epoch * config.epochs)
    scheduler = warmup_cosine(optimizer, total_steps, config.warmup_ratio)
    dtype = autocast_dtype(config.amp, device)
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
    augment_generator = torch.Generator().manual_seed(ranks.seed(seed))
    labels_all = np.asarray(train.labels, dtype=np.int64)
    # Optional hooks of models with their own objective (A-CLIP; TrainStep calls its loss).
    after_step = getattr(model, "after_optimizer_step", None)
    extra_state = getattr(model, "extra_state", None)

    history: list[dict[str, Any]] = []
    best_state = trainable_state(model)
    best_epoch, best_accuracy, bad_epochs, stopped = 0, -1.0, 0, False
    start_epoch, resumed_from = 1, None
    stage_dir = checkpoint_dir / stage if checkpoint_dir is not None else None
    fingerprint = run_fingerprint(config, seed, train, stage, ranks.world)
    if stage_dir is not None:
        found = latest_checkpoint(stage_dir) if config.resume else None
        ranks.require_same(
            found.name if found else None,
            f"the processes found different checkpoints to resume from in {stage_dir}; on several machines put the "
            "checkpoints folder on a filesystem they all share, or set resume: false",
        )
        if found is not None:
            state = load_checkpoint(found)
            _check_resumable(state.extra.get("fingerprint"), fingerprint, found)
            load_trainable_state(model, state.model)
            optimizer.load_state_dict(state.optimizer)
            scheduler.load_state_dict(state.scheduler)
            if scaler is not None and state.scaler:
                scaler.load_state_dict(state.scaler)
            restore_rng_state(state.rng, ranks.generators(augment_generator))
            if extra_state is not None:
                model.load_extra_state(state.extra["model_state"])
            history = list(state.extra["history"])
            best_state = state.best_model or trainable_state(model)
            best_epoch, best_accuracy = state.extra["best_epoch"], state.extra["best_accuracy"]
            bad_epochs, stopped = state.extra["bad_epochs"], state.extra["stopped"]
            start_epoch = resumed_from = state.epoch + 1
            logger.info("Resuming stage '%s' from %s (epoch %d done)", stage, found, state.epoch)
        elif stage_dir.exists() and ranks.is_main:
            if not config.resume:
                logger.info("resume is off: clearing old checkpoints in %s", stage_dir)
            shutil.rmtree(stage_dir)
        ranks.barrier()
    # Wrapped after a resume has loaded the weights: DDP starts every process from rank 0's.
    train_step = ranks.wrap(TrainStep(model, config.loss, config.label_smoothing))

    # Where the images live and how micro-batches reach the device (training/fast_path.py).
    cache_mode = resolve_cache_mode(config.cache_on_device, device, nbytes(train.inputs) + nbytes(val.inputs))
    feed = BatchFeed(train.inputs, labels_all, device, cache_mode)
    val = Split(feed.place(val.inputs), val.labels)
    reset_peak_memory(device)
    peak = 0.0
    for epoch in range(start_epoch, config.epochs + 1):
        if stopped:
            break
        model.train()
        steps = _micro_batches(len(train), config.batch_size, config.accumulation_steps, seed, epoch)
        steps = steps[: max(0, total_steps - (epoch - 1) * steps_per_epoch)]  # max_steps: the stage's budget
        if not steps:
            break
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        started = time.perf_counter()
        bar = tqdm(steps, desc=f"{stage} epoch {epoch}/{config.epochs}", unit="step", disable=None if config.progress and ranks.is_main else True, dynamic_ncols=True, leave=False)
        batches = feed.epoch(ranks.local_steps(steps))
        for step_index, step in enumerate(bar):
            step_n = sum(len(mb) for mb in step)
            for micro, index in enumerate(step):
                inputs, labels = next(batches)  # this process's rows of micro-batch ``index``
                gather = ranks.gatherer(index)  # None with one process
                with ranks.accumulating(train_step, sync=micro == len(step) - 1):
                    with autocast(device, dtype):
                        # With several processes: the loss and embeddings of the whole micro-batch.
                        loss, embeddings, (classes, scale, bias) = train_step(inputs, labels, augment_generator, gather)
                    weighted = loss * (len(index) / step_n)
                    ranks.backward(scaler.scale(weighted) if scaler is not None else weighted)
                if gather is not None:
                    labels = torch.from_numpy(labels_all[index]).to(device, non_blocking=True)
                with torch.no_grad():
                    loss_sum += loss.detach() * len(index)
                    correct += (class_logits(embeddings.detach().float(), classes.detach().float(), scale.detach(), None if bias is None else bias.detach()).argmax(1) == labels).sum()
                seen += len(index)
            if scaler is not None:
                scaler.unscale_(optimizer)
            if config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], config.grad_clip)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if after_step is not None:
                after_step((epoch - 1) * steps_per_epoch + step_index + 1, total_steps)
            # Reading the loss waits for the device: only every log_every_steps, and only for a visible bar.
            if not bar.disable and (step_index % config.log_every_steps == 0 or step_index == len(steps) - 1):
                elapsed = max(time.perf_counter() - started, 1e-9)
                bar.set_postfix(loss=f"{float(loss_sum) / max(seen, 1):.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}", img_s=f"{seen / elapsed:.0f}")
        bar.close()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - started
        val_metrics = evaluate(model, val, config.eval_batch_size, device, config.amp, ranks)
        peak = max(peak, ranks.max(peak_memory_mb(device)))  # the largest process's
        row = {
            "stage": stage,
            "epoch": epoch,
            "train_loss": float(loss_sum) / seen,
            "train_accuracy": float(correct) / seen,
            "val_loss": val_metrics["loss"],
            "val_accuracy": val_metrics["accuracy"],
            "lr": float(scheduler.get_last_lr()[0]),
            "seconds": seconds,
            "images_per_second": seen / seconds,
            "peak_memory_mb": peak,
        }
        history.append(row)
        logger.info(
            "%s epoch %d/%d: train loss %.4f acc %.3f | val loss %.4f acc %.3f | %.1f s, %.0f img/s",
            stage, epoch, config.epochs, row["train_loss"], row["train_accuracy"], row["val_loss"], row["val_accuracy"], seconds, row["images_per_second"],
        )
        if row["val_accuracy"] > best_accuracy:
            best_accuracy, best_epoch, bad_epochs = row["val_accuracy"], epoch, 0
            best_state = trainable_state(model)
        else:
            bad_epochs += 1
            if config.early_stopping_patience and bad_epochs >= config.early_stopping_patience:
                stopped = True
                logger.info("Early stopping after epoch %d: no val-accuracy gain for %d epochs", epoch, bad_epochs)
        other_rng = ranks.other_generator_states(augment_generator) if stage_dir is not None else {}
        if stage_dir is not None and ranks.is_main:  # one writer; the other processes' random streams are in other_rng
            rng = capture_rng_state({"augment": augment_generator})
            rng["generators"].update(other_rng)
            save_checkpoint(
                stage_dir,
                TrainingState(
                    epoch=epoch,
                    model=trainable_state(model),
                    optimizer=optimizer.state_dict(),
                    scheduler=scheduler.state_dict(),
                    scaler=scaler.state_dict() if scaler is not None else None,
                    rng=rng,
                    extra={"fingerprint": fingerprint, "model_state": extra_state() if extra_state is not None else None, "history": history, "best_epoch": best_epoch, "best_accuracy": best_accuracy, "bad_epochs": bad_epochs, "stopped": stopped},
                    best_model=best_state,
                ),
                keep=config.keep_checkpoints,
            )
        if on_epoch_end is not None:
            on_epoch_end(epoch, row)
    load_trainable_state(model, best_state)
    return FitResult(history, best_state, best_epoch, best_accuracy, stopped, peak, resumed_from)
