"""The training loop: AdamW, warmup-cosine, accumulation, clipping, AMP, early stopping, resume.

The loop is model-agnostic: it needs a module with ``embed(inputs, generator)`` and
``class_side()`` (see :mod:`har_kedro.models.classifier`), so the same code trains a
linear probe over cached features and a full fine-tune over uint8 images. Metrics are
accumulated on the device and read once per epoch, so the hot loop does not wait on the
host. The state is checkpointed every epoch; with ``resume`` a killed run continues from
the last completed epoch and, on CPU, ends exactly where an uninterrupted run would.

:func:`fit` reads as the sequence of its pieces, as open_clip's ``main``/``train_one_epoch``
do: :func:`make_optimisation`, :func:`restore`, then per epoch :func:`apply_unfreeze_schedule`
(staged unfreezing, when configured), :func:`train_one_epoch`, :func:`evaluate`,
:func:`record_epoch` (best weights, early stopping) and :func:`checkpoint`.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

from har_kedro.config.training import TrainConfig
from har_kedro.config.unfreeze import UnfreezeSettings
from har_kedro.models.device import autocast, autocast_dtype, peak_memory_mb, reset_peak_memory
from har_kedro.models.losses import class_logits
from har_kedro.models.methods import frozen_parameters, optimizer_groups, vision_layer_count
from har_kedro.models.predict import predict_logits
from har_kedro.training.checkpoint import TrainingState, capture_rng_state, latest_checkpoint, load_checkpoint, restore_rng_state, save_checkpoint
from har_kedro.training.distributed import SINGLE_PROCESS, Ranks
from har_kedro.training.fast_path import BatchFeed, nbytes, resolve_cache_mode
from har_kedro.training.fingerprint import check_resumable, run_fingerprint
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


@dataclass
class Optimisation:
    """The optimizer, its schedule and loss scaler, and the step budget they were laid over.

    ``names`` are the parameters the optimizer holds: the method's trainable set, which snapshots and
    checkpoints cover whatever staged unfreezing has frozen this epoch.
    """

    names: tuple[str, ...]
    groups: list[dict[str, Any]]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler | None
    dtype: torch.dtype | None  # autocast dtype; None = full precision
    steps_per_epoch: int
    total_steps: int


@dataclass
class Progress:
    """What an epoch changes besides the weights, and what a checkpoint restores."""

    history: list[dict[str, Any]]
    best_state: dict[str, torch.Tensor]
    best_epoch: int = 0
    best_accuracy: float = -1.0
    bad_epochs: int = 0
    stopped: bool = False
    next_epoch: int = 1
    resumed_from: int | None = None


def trainable_state(model: torch.nn.Module, names: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
    """CPU copies of the parameters being trained: what a checkpoint or best-epoch snapshot needs.

    ``names`` (:attr:`Optimisation.names`) are the method's whole trainable set; None = those with
    ``requires_grad`` now, which misses the blocks staged unfreezing has frozen this epoch.
    """
    wanted = set(names) if names is not None else None
    return {
        name: p.detach().to("cpu", copy=True).contiguous()
        for name, p in model.named_parameters() if (p.requires_grad if wanted is None else name in wanted)
    }


def load_trainable_state(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    missing = sorted(set(state) - set(params))
    if missing:
        raise KeyError(f"checkpoint holds parameters the model does not have: {missing[:5]}")
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value.to(params[name].device, params[name].dtype))


def top1(predicted: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> float:
    """The share of ``predicted`` class ids equal to ``labels`` (a float32 mean; NaN for no image)."""
    if not len(predicted):
        return float("nan")
    return float((torch.as_tensor(np.asarray(predicted)) == torch.as_tensor(np.asarray(labels, dtype=np.int64))).float().mean())


def evaluate(
    model: torch.nn.Module, split: Split, batch_size: int, device: torch.device, amp: str = "auto", ranks: Ranks = SINGLE_PROCESS
) -> dict[str, float]:
    """Cross-entropy and top-1 accuracy: comparable across objectives (rows shared out between ``ranks``)."""
    logits = ranks.predict(lambda part: predict_logits(model, part, batch_size, device, amp), split.inputs)
    labels = torch.as_tensor(np.array(split.labels, dtype=np.int64))
    return {"loss": float(torch.nn.functional.cross_entropy(logits, labels)), "accuracy": top1(logits.argmax(dim=1), labels)}


def _micro_batches(n: int, batch_size: int, accumulation: int, seed: int, epoch: int) -> list[list[np.ndarray]]:
    """This epoch's optimizer steps, each a list of micro-batch index arrays; the order depends only on (seed, epoch)."""
    order = np.random.default_rng([seed, epoch]).permutation(n)
    micro = [np.sort(order[i : i + batch_size]) for i in range(0, n, batch_size)]
    return [micro[i : i + accumulation] for i in range(0, len(micro), accumulation)]


def make_optimisation(model: torch.nn.Module, config: TrainConfig, device: torch.device, train_size: int, seed: int) -> Optimisation:
    """AdamW over the trainable groups, linear warmup then cosine decay per optimizer step (``max_steps`` caps the budget)."""
    names = tuple(name for name, p in model.named_parameters() if p.requires_grad)
    groups = optimizer_groups(model, config.lr, config.weight_decay, config.lr_multipliers, config.layer_decay)
    optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay, fused=device.type == "cuda")
    steps_per_epoch = len(_micro_batches(train_size, config.batch_size, config.accumulation_steps, seed, 0))
    total_steps = min(steps_per_epoch * config.epochs, config.max_steps or steps_per_epoch * config.epochs)
    scheduler = get_cosine_schedule_with_warmup(optimizer, round(total_steps * config.warmup_ratio), total_steps)
    dtype = autocast_dtype(config.amp, device)
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
    return Optimisation(names, groups, optimizer, scheduler, scaler, dtype, steps_per_epoch, total_steps)


def apply_unfreeze_schedule(model: torch.nn.Module, names: Sequence[str], schedule: UnfreezeSettings | None, epoch: int) -> int:
    """Set ``requires_grad`` on ``names`` (the optimizer's parameters) as staged unfreezing has it at ``epoch``
    (``schedule`` None: all of them); returns the number of weights trained, logged when the set changes.

    Frozen parameters stay in the optimizer: with no gradient (``zero_grad(set_to_none=True)``)
    AdamW skips them, so they get neither a moment update nor weight decay.
    """
    params = dict(model.named_parameters())
    num_layers = vision_layer_count(params)
    frozen = frozen_parameters(names, num_layers, schedule, epoch)
    changed = any(params[name].requires_grad == (name in frozen) for name in names)
    for name in names:
        params[name].requires_grad_(name not in frozen)
    trained = sum(params[name].numel() for name in names if name not in frozen)
    if changed and schedule is not None:
        depth = schedule.unfrozen_depth(epoch, num_layers)
        logger.info(
            "Staged unfreezing, epoch %d: the top %d of %d vision blocks%s train (%d weights)",
            epoch, min(depth, num_layers), num_layers, " and the embeddings" if depth > num_layers else "", trained,
        )
    return trained


def unfrozen_counts(model: torch.nn.Module, names: Sequence[str], schedule: UnfreezeSettings, epochs: Iterable[int]) -> list[int]:
    """The weights staged unfreezing trains at each of ``epochs`` (a function of the epoch alone, so a resumed
    run reports the epochs before its resume too)."""
    params = dict(model.named_parameters())
    num_layers = vision_layer_count(params)
    return [sum(params[n].numel() for n in set(names) - frozen_parameters(names, num_layers, schedule, epoch)) for epoch in epochs]


def restore(
    model: torch.nn.Module, opt: Optimisation, generator: torch.Generator, stage_dir: Path | None,
    fingerprint: Mapping[str, Any], config: TrainConfig, ranks: Ranks,
) -> Progress:
    """The progress to start from: the latest checkpoint's when resuming (refused if it does not fit), else a fresh one."""
    progress = Progress(history=[], best_state=trainable_state(model, opt.names))
    if stage_dir is None:
        return progress
    found = latest_checkpoint(stage_dir) if config.resume else None
    ranks.require_same(
        found.name if found else None,
        f"the processes found different checkpoints to resume from in {stage_dir}; on several machines put the "
        "checkpoints folder on a filesystem they all share, or set resume: false",
    )
    if found is not None:
        state = load_checkpoint(found)
        check_resumable(state.extra.get("fingerprint"), fingerprint, found)
        load_trainable_state(model, state.model)
        opt.optimizer.load_state_dict(state.optimizer)
        opt.scheduler.load_state_dict(state.scheduler)
        if opt.scaler is not None and state.scaler:
            opt.scaler.load_state_dict(state.scaler)
        restore_rng_state(state.rng, ranks.generators(generator))
        if getattr(model, "extra_state", None) is not None:
            model.load_extra_state(state.extra["model_state"])
        extra = state.extra
        progress = Progress(
            list(extra["history"]), state.best_model or trainable_state(model, opt.names), extra["best_epoch"], extra["best_accuracy"],
            extra["bad_epochs"], extra["stopped"], next_epoch=state.epoch + 1, resumed_from=state.epoch + 1,
        )
        logger.info("Resuming stage '%s' from %s (epoch %d done)", stage_dir.name, found, state.epoch)
    elif stage_dir.exists() and ranks.is_main:
        if not config.resume:
            logger.info("resume is off: clearing old checkpoints in %s", stage_dir)
        shutil.rmtree(stage_dir)
    ranks.barrier()
    return progress


@dataclass
class EpochTotals:
    loss_sum: torch.Tensor
    correct: torch.Tensor
    seen: int = 0


def _optimizer_step(opt: Optimisation, grad_clip: float | None) -> None:
    if opt.scaler is not None:
        opt.scaler.unscale_(opt.optimizer)
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_([p for g in opt.groups for p in g["params"]], grad_clip)
    if opt.scaler is not None:
        opt.scaler.step(opt.optimizer)
        opt.scaler.update()
    else:
        opt.optimizer.step()
    opt.scheduler.step()
    opt.optimizer.zero_grad(set_to_none=True)


def _train_micro_batches(
    step: list[np.ndarray], batches: Iterator[tuple[torch.Tensor, torch.Tensor]], train_step: torch.nn.Module,
    opt: Optimisation, generator: torch.Generator, labels_all: np.ndarray, totals: EpochTotals, device: torch.device, ranks: Ranks,
) -> None:
    """Forward and backward of one optimizer step's micro-batches (gradients accumulate), adding to ``totals``."""
    step_n = sum(len(mb) for mb in step)
    for micro, index in enumerate(step):
        inputs, labels = next(batches)  # this process's rows of micro-batch ``index``
        gather = ranks.gatherer(index)  # None with one process
        with ranks.accumulating(train_step, sync=micro == len(step) - 1):
            with autocast(device, opt.dtype):
                # With several processes: the loss and embeddings of the whole micro-batch.
                loss, embeddings, (classes, scale, bias), *targets = train_step(inputs, labels, generator, gather)
            weighted = loss * (len(index) / step_n)
            ranks.backward(opt.scaler.scale(weighted) if opt.scaler is not None else weighted)
        if targets:  # the step scored its embeddings against targets of its own (pretraining: in-batch captions)
            labels = targets[0]
        elif gather is not None:
            labels = torch.from_numpy(labels_all[index]).to(device, non_blocking=True)
        with torch.no_grad():
            totals.loss_sum += loss.detach() * len(index)
            logits = class_logits(embeddings.detach().float(), classes.detach().float(), scale.detach(), None if bias is None else bias.detach())
            totals.correct += (logits.argmax(1) == labels).sum()
        totals.seen += len(index)


def train_one_epoch(
    model: torch.nn.Module, train_step: torch.nn.Module, feed: BatchFeed, steps: list[list[np.ndarray]], opt: Optimisation,
    generator: torch.Generator, config: TrainConfig, device: torch.device, ranks: Ranks, first_step: int, bar_desc: str,
) -> EpochTotals:
    """One pass over ``steps`` (optimizer steps of micro-batch indices); returns the device-side loss and accuracy sums."""
    model.train()
    after_step = getattr(model, "after_optimizer_step", None)  # A-CLIP's EMA update
    totals = EpochTotals(torch.zeros((), device=device), torch.zeros((), device=device, dtype=torch.long))
    labels_all = feed.labels
    started = time.perf_counter()
    bar = tqdm(steps, desc=bar_desc, unit="step", disable=None if config.progress and ranks.is_main else True, dynamic_ncols=True, leave=False)
    batches = feed.epoch(ranks.local_steps(steps))
    for step_index, step in enumerate(bar):
        _train_micro_batches(step, batches, train_step, opt, generator, labels_all, totals, device, ranks)
        _optimizer_step(opt, config.grad_clip)
        if after_step is not None:
            after_step(first_step + step_index + 1, opt.total_steps)
        # Reading the loss waits for the device: only every log_every_steps, and only for a visible bar.
        if not bar.disable and (step_index % config.log_every_steps == 0 or step_index == len(steps) - 1):
            elapsed = max(time.perf_counter() - started, 1e-9)
            bar.set_postfix(loss=f"{float(totals.loss_sum) / max(totals.seen, 1):.4f}", lr=f"{opt.scheduler.get_last_lr()[0]:.2e}", img_s=f"{totals.seen / elapsed:.0f}")
    bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return totals


def record_epoch(progress: Progress, row: dict[str, Any], model: torch.nn.Module, patience: int, names: Iterable[str] | None = None) -> None:
    """Append ``row``; keep the weights of the best val accuracy (``names``: see :func:`trainable_state`);
    stop after ``patience`` epochs without a gain."""
    progress.history.append(row)
    if row["val_accuracy"] > progress.best_accuracy:
        progress.best_accuracy, progress.best_epoch, progress.bad_epochs = row["val_accuracy"], row["epoch"], 0
        progress.best_state = trainable_state(model, names)
    else:
        progress.bad_epochs += 1
        if patience and progress.bad_epochs >= patience:
            progress.stopped = True
            logger.info("Early stopping after epoch %d: no val-accuracy gain for %d epochs", row["epoch"], progress.bad_epochs)


def checkpoint(
    stage_dir: Path, epoch: int, model: torch.nn.Module, opt: Optimisation, generator: torch.Generator,
    progress: Progress, fingerprint: Mapping[str, Any], keep: int, ranks: Ranks,
) -> None:
    """Write the state after ``epoch`` (rank 0 writes; the other processes' random streams go with it)."""
    other_rng = ranks.other_generator_states(generator)  # a collective call: every process takes part
    if not ranks.is_main:
        return
    rng = capture_rng_state({"augment": generator})
    rng["generators"].update(other_rng)
    extra_state = getattr(model, "extra_state", None)
    extra = {
        "fingerprint": dict(fingerprint), "model_state": extra_state() if extra_state is not None else None, "history": progress.history,
        "best_epoch": progress.best_epoch, "best_accuracy": progress.best_accuracy, "bad_epochs": progress.bad_epochs, "stopped": progress.stopped,
    }
    state = TrainingState(
        epoch=epoch, model=trainable_state(model, opt.names), optimizer=opt.optimizer.state_dict(), scheduler=opt.scheduler.state_dict(),
        scaler=opt.scaler.state_dict() if opt.scaler is not None else None, rng=rng, extra=extra, best_model=progress.best_state,
    )
    save_checkpoint(stage_dir, state, keep=keep)


def _epoch_row(stage: str, epoch: int, totals: EpochTotals, seconds: float, val_metrics: dict[str, float], lr: float, peak: float) -> dict[str, Any]:
    return {
        "stage": stage, "epoch": epoch,
        "train_loss": float(totals.loss_sum) / totals.seen, "train_accuracy": float(totals.correct) / totals.seen,
        "val_loss": val_metrics["loss"], "val_accuracy": val_metrics["accuracy"],
        "lr": lr, "seconds": seconds, "images_per_second": totals.seen / seconds, "peak_memory_mb": peak,
    }


def _log_epoch(stage: str, epochs: int, row: dict[str, Any]) -> None:
    logger.info(
        "%s epoch %d/%d: train loss %.4f acc %.3f | val loss %.4f acc %.3f | %.1f s, %.0f img/s",
        stage, row["epoch"], epochs, row["train_loss"], row["train_accuracy"], row["val_loss"], row["val_accuracy"], row["seconds"], row["images_per_second"],
    )


def _feeds(train: Split, val: Split, config: TrainConfig, device: torch.device) -> tuple[BatchFeed, Split]:
    """Where the images live and how micro-batches reach the device (training/fast_path.py); val placed alike."""
    cache_mode = resolve_cache_mode(config.cache_on_device, device, nbytes(train.inputs) + nbytes(val.inputs))
    feed = BatchFeed(train.inputs, np.asarray(train.labels, dtype=np.int64), device, cache_mode)
    return feed, Split(feed.place(val.inputs), val.labels)


def _check_can_fit(model: torch.nn.Module, train: Split, val: Split, config: TrainConfig, stage: str) -> None:
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError(f"stage '{stage}': the model has no trainable parameters for method '{config.method}'")
    if len(train) == 0 or len(val) == 0:
        raise ValueError(f"stage '{stage}': the train and val splits must not be empty ({len(train)} / {len(val)} images)")


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
    inputs: Mapping[str, str] | None = None,
) -> FitResult:
    """Train ``model``'s trainable parameters and return the best epoch's weights and the history.

    ``inputs`` names what the run was trained from (backbone and its weights hash, image cache);
    a checkpoint written from other inputs is not resumed. With several ``ranks``
    (training/distributed.py) every process runs this on its share of each micro-batch; the
    optimisation, the history and the result are those of one process.
    """
    model.to(device)
    _check_can_fit(model, train, val, config, stage)
    opt = make_optimisation(model, config, device, len(train), seed)
    generator = torch.Generator().manual_seed(ranks.seed(seed))
    stage_dir = checkpoint_dir / stage if checkpoint_dir is not None else None
    fingerprint = run_fingerprint(config, seed, len(train), stage, ranks.world, inputs)
    progress = restore(model, opt, generator, stage_dir, fingerprint, config, ranks)
    # Wrapped after a resume has loaded the weights: DDP starts every process from rank 0's.
    train_step = ranks.wrap(TrainStep(model, config.loss, config.label_smoothing))
    feed, val = _feeds(train, val, config, device)
    reset_peak_memory(device)
    peak = 0.0
    for epoch in range(progress.next_epoch, config.epochs + 1):
        first_step = (epoch - 1) * opt.steps_per_epoch
        steps = _micro_batches(len(train), config.batch_size, config.accumulation_steps, seed, epoch)[: max(0, opt.total_steps - first_step)]
        if progress.stopped or not steps:  # early-stopped, or max_steps spent
            break
        apply_unfreeze_schedule(model, opt.names, config.unfreeze, epoch)  # staged unfreezing: a function of the epoch
        started = time.perf_counter()
        totals = train_one_epoch(model, train_step, feed, steps, opt, generator, config, device, ranks, first_step, f"{stage} epoch {epoch}/{config.epochs}")
        seconds = time.perf_counter() - started
        val_metrics = evaluate(model, val, config.eval_batch_size, device, config.amp, ranks)
        peak = max(peak, ranks.max(peak_memory_mb(device)))  # the largest process's
        row = _epoch_row(stage, epoch, totals, seconds, val_metrics, float(opt.scheduler.get_last_lr()[0]), peak)
        _log_epoch(stage, config.epochs, row)
        record_epoch(progress, row, model, config.early_stopping_patience, opt.names)
        if stage_dir is not None:
            checkpoint(stage_dir, epoch, model, opt, generator, progress, fingerprint, config.keep_checkpoints, ranks)
        if on_epoch_end is not None:
            on_epoch_end(epoch, row)
    apply_unfreeze_schedule(model, opt.names, None, 0)  # the method's whole trainable set again
    load_trainable_state(model, progress.best_state)
    extra = {"unfrozen_parameters": unfrozen_counts(model, opt.names, config.unfreeze, [r["epoch"] for r in progress.history])} if config.unfreeze else {}
    return FitResult(progress.history, progress.best_state, progress.best_epoch, progress.best_accuracy, progress.stopped, peak, progress.resumed_from, extra)
