"""Start the training processes from inside the Kedro node, and bring rank 0's result back.

Kedro stays one process per machine. When ``distributed.num_processes > 1`` the runner calls
:func:`fit_in_processes` instead of ``fit()``: it starts ``num_processes / num_machines`` workers on
this machine through PyTorch's elastic launcher (what ``torchrun`` and ``accelerate launch`` use),
with the ``spawn`` start method, because the Kedro process has usually touched CUDA already and a
forked child cannot use CUDA after that. Rendezvous is static, at ``main_process_ip:main_process_port``
(machine 0 hosts it), so several machines each run the same ``kedro run`` with their own
``machine_rank`` and join the same job.

Each worker (:func:`train_worker`) gets a small, picklable :class:`WorkerJob`: the image cache goes
by its path (the arrays are memory-mapped again in the worker, never pickled), the backbone by its id
or folder, the head by value (a few kB; it changed in the Kedro process if a linear probe ran first).
The worker builds the same classifier from the same seed, creates an ``accelerate.Accelerator``
(process group, device of its local rank, DDP) and runs the ordinary ``fit()`` with
:class:`~har_kedro.training.distributed.Ranks`. Local rank 0 writes the result (history, best
weights, A-CLIP's EMA state) in the checkpoint format (safetensors + JSON, no pickle, no shared
memory) to a scratch folder; the Kedro process reads it and goes on as after a one-process ``fit()``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
from torch.distributed.elastic.multiprocessing.errors import record

from har_kedro.config.distributed import DistributedSettings
from har_kedro.models.backbones import load_backbone
from har_kedro.training.checkpoint import TrainingState, latest_checkpoint, load_checkpoint, save_checkpoint
from har_kedro.training.distributed import Ranks
from har_kedro.training.fast_path import training_classifier
from har_kedro.training.loop import FitResult, fit, load_trainable_state
from har_kedro.training.run_inputs import RunInputs
from har_kedro.training.seeding import seed_everything

logger = logging.getLogger(__name__)

# Environment variables that mean this process was itself started by torchrun / accelerate launch.
_LAUNCHED_MARKERS = ("TORCHELASTIC_RUN_ID", "LOCAL_RANK")


class DistributedTrainingError(RuntimeError):
    """The training processes could not start, or one of them failed; the message says which and why."""


@dataclass(frozen=True)
class WorkerJob:
    """Everything a training process needs, small enough to pickle (no arrays, no model)."""

    run: RunInputs  # the cache by its path (memory-mapped again in the worker), the backbone by its source
    head_state: dict[str, torch.Tensor]
    result_dir: Path
    log_level: int = logging.INFO
    # What the worker trains: None = the run's classifier (training_classifier); pretraining passes its own
    # module-level builder (picklable by name), so one launcher serves both.
    builder: Callable[[RunInputs, torch.device], torch.nn.Module] | None = None
    stage: str = "fine_tune"


# --------------------------------------------------------------------------- the Kedro side


def fit_in_processes(
    model: torch.nn.Module, run: RunInputs, builder: Callable[[RunInputs, torch.device], torch.nn.Module] | None = None, stage: str = "fine_tune",
) -> FitResult:
    """Train in ``distributed.num_processes`` processes; ``model`` ends with the best epoch's weights, as after ``fit()``.
    Each worker builds ``model`` again with ``builder(run, device)`` (default: the run's classifier)."""
    settings, device = run.config.distributed, run.device
    _check_can_launch(settings, device)
    port = settings.main_process_port or _free_port(settings.main_process_ip)
    if settings.machine_rank == 0 and settings.main_process_port is not None:
        _check_port_free(settings.main_process_ip, port)
    head_state = {name: p.detach().cpu().clone() for name, p in model.named_parameters() if name.startswith("head.")}
    model.to("cpu")  # the workers need the GPUs' memory; the model comes back after
    if device.type == "cuda":
        torch.cuda.empty_cache()
    scratch = Path(tempfile.mkdtemp(prefix="har_kedro_processes_"))
    try:
        job = WorkerJob(_portable(run), head_state, scratch / "result", logging.getLogger("har_kedro").getEffectiveLevel(), builder, stage)
        logger.info(
            "Training in %d processes (%d on this machine, machine %d of %d, %s backend, rendezvous %s:%d)",
            settings.num_processes, settings.processes_per_machine, settings.machine_rank, settings.num_machines,
            settings.resolved_backend(device.type), settings.main_process_ip, port,
        )
        launch_processes(settings, port, train_worker, (job,), scratch / "logs")
        result = load_fit_result(job.result_dir)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        model.to(device)
    load_trainable_state(model, result.best_state)
    model_state = result.extra.get("model_state")
    if model_state is not None and hasattr(model, "load_extra_state"):
        model.load_extra_state(model_state)
    return result


def _portable(run: RunInputs) -> RunInputs:
    """``run`` with absolute paths and plain containers, for processes that may start in another directory."""
    return dataclasses.replace(
        run,
        cache=type(run.cache)(dataclasses.replace(run.cache.stored, path=Path(run.cache.stored.path).resolve())),
        class_names=list(run.class_names),
        class_prompts={k: list(v) for k, v in run.class_prompts.items()},
        device=torch.device(run.device.type),
        checkpoint_dir=Path(run.checkpoint_dir).resolve() if run.checkpoint_dir is not None else None,
        identity=dict(run.identity),
    )


def _check_can_launch(settings: DistributedSettings, device: torch.device) -> None:
    launched = [name for name in _LAUNCHED_MARKERS if name in os.environ]
    if launched:
        raise DistributedTrainingError(
            f"this Kedro process was itself started by torchrun or accelerate launch ({', '.join(launched)} is set), "
            "but with distributed.num_processes > 1 the training node starts its own processes: run `kedro run` as a plain command."
        )
    if device.type not in ("cuda", "cpu"):
        raise DistributedTrainingError(f"training on several processes needs CUDA GPUs or the CPU, but the device is {device}; set device: cuda or cpu.")
    if device.type == "cpu" and settings.backend == "nccl":
        raise DistributedTrainingError("distributed.backend is nccl, which needs CUDA GPUs, but this run is on the CPU: use backend: auto or gloo.")
    if device.type == "cuda" and torch.cuda.device_count() < settings.processes_per_machine:
        raise DistributedTrainingError(
            f"distributed asks for {settings.processes_per_machine} processes on this machine, one GPU each, but only "
            f"{torch.cuda.device_count()} GPU(s) are visible: lower num_processes or check CUDA_VISIBLE_DEVICES."
        )


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port a finished run left in TIME_WAIT is free
        try:
            probe.bind((host, port))
        except OSError as error:
            raise DistributedTrainingError(
                f"distributed: cannot open {host}:{port} on this machine ({error.strerror}); choose a free main_process_port "
                "(or null on one machine), and run machine_rank 0 on the machine that main_process_ip names."
            ) from None


def launch_processes(settings: DistributedSettings, port: int, entrypoint: Callable[..., object], args: tuple, log_dir: Path) -> None:
    """Run ``entrypoint(*args)`` in this machine's processes of the job and wait for all of them.

    ``entrypoint`` must be importable by name (``spawn``) and decorated with ``@record`` so that a
    failure's message reaches :class:`DistributedTrainingError`.
    """
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    timeout = int(settings.timeout_minutes * 60)
    launch = LaunchConfig(
        min_nodes=settings.num_machines,
        max_nodes=settings.num_machines,
        nproc_per_node=settings.processes_per_machine,
        run_id="har_kedro",
        rdzv_backend="static",
        rdzv_endpoint=f"{settings.main_process_ip}:{port}",
        rdzv_configs={"rank": settings.machine_rank, "timeout": timeout},
        max_restarts=0,
        start_method="spawn",
        logs_specs=DefaultLogsSpecs(log_dir=str(log_dir)),
    )
    try:
        with _kedro_signal_handlers_kept():
            elastic_launch(launch, entrypoint)(*args)
    except ChildFailedError as error:
        rank, failure = error.get_first_failure()
        message = failure.message.get("message", "") if isinstance(failure.message, dict) else str(failure.message)
        raise DistributedTrainingError(f"training process {rank} of {settings.num_processes} failed: {message}") from error
    except SignalException as error:  # the launcher turns Ctrl-C into this after stopping the workers
        if error.sigval == signal.SIGINT:
            raise KeyboardInterrupt from error
        raise


@contextlib.contextmanager
def _kedro_signal_handlers_kept() -> Iterator[None]:
    """The elastic launcher installs its own SIGINT/SIGTERM/... handlers for good; put Kedro's back afterwards."""
    names = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT")
    signals = [getattr(signal, name) for name in names if hasattr(signal, name)]
    saved = {sig: signal.getsignal(sig) for sig in signals} if threading.current_thread() is threading.main_thread() else {}
    variable = os.environ.get("TORCHELASTIC_SIGNALS_TO_HANDLE")
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        if variable is None:
            os.environ.pop("TORCHELASTIC_SIGNALS_TO_HANDLE", None)
        else:
            os.environ["TORCHELASTIC_SIGNALS_TO_HANDLE"] = variable


# --------------------------------------------------------------------------- the worker side


@record
def train_worker(job: WorkerJob) -> None:
    """One training process: joins the process group, fine-tunes its share, local rank 0 writes the result."""
    from accelerate import Accelerator  # imported in the worker only: the Kedro process never needs it
    from accelerate.utils import DistributedDataParallelKwargs, InitProcessGroupKwargs

    run = job.run
    settings = run.config.distributed
    on_cpu = run.device.type == "cpu"
    if on_cpu and "OMP_NUM_THREADS" not in os.environ:  # share the cores instead of every process taking all
        threads = max(1, (os.cpu_count() or 1) // settings.processes_per_machine)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)
    accelerator = Accelerator(
        cpu=on_cpu,
        kwargs_handlers=[
            InitProcessGroupKwargs(backend=settings.resolved_backend(run.device.type), timeout=timedelta(minutes=settings.timeout_minutes)),
            # Not every trainable tensor is used by every objective (a SigLIP bias under the contrastive loss,
            # A-CLIP's predictor without distillation): DDP must look for the unused ones (one warning per process).
            DistributedDataParallelKwargs(find_unused_parameters=True),
        ],
    )
    ranks = Ranks(accelerator)
    _configure_worker_logging(ranks, job.log_level)
    device = accelerator.device
    model = _worker_model(job, device)
    seed_everything(ranks.seed(run.seed))
    result = fit(
        model, run.split("train"), run.split("val"), run.config, device, run.seed, run.checkpoint_dir,
        stage=job.stage, ranks=ranks, inputs=run.identity, on_epoch_end=run.on_epoch_end if ranks.is_main else None,
    )
    extra_state = getattr(model, "extra_state", None)
    if accelerator.is_local_main_process:
        save_fit_result(job.result_dir, dataclasses.replace(result, extra={**result.extra, "model_state": extra_state() if extra_state else None}))
    accelerator.wait_for_everyone()
    # Drop the DDP wrapper (and its reducer) while the process group is still registered. Otherwise the
    # last reference to a gloo group goes with the wrapper after end_training, and its destructor joins
    # gloo's worker thread while holding the GIL that thread may need: a hang at exit (seen in a test).
    del model
    accelerator.free_memory()
    accelerator.end_training()


def _worker_model(job: WorkerJob, device: torch.device) -> torch.nn.Module:
    """The same classifier as the Kedro process's, from the same seed, with its (possibly probed) head."""
    run = job.run
    seed_everything(run.seed)
    if job.builder is not None:
        model = job.builder(run, device)
    else:
        model = training_classifier(load_backbone(run.backbone_source), run.class_names, run.class_prompts, run.config, device, run.image_size)
    with torch.no_grad():
        params = dict(model.named_parameters())
        for name, value in job.head_state.items():
            params[name].copy_(value.to(params[name].device, params[name].dtype))
    return model


def _configure_worker_logging(ranks: Ranks, level: int) -> None:
    """Rank 0 logs the epochs like the Kedro process would; the others only warnings, so lines are not repeated."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"[rank {ranks.rank}] %(levelname)s %(name)s: %(message)s"))
    package = logging.getLogger("har_kedro")
    package.addHandler(handler)
    package.setLevel(level if ranks.is_main else logging.WARNING)
    package.propagate = False


# --------------------------------------------------------------------------- the result, through files


def save_fit_result(directory: Path, result: FitResult) -> Path:
    """Write ``result`` in the checkpoint format: the weights in safetensors, the rest in JSON."""
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(FitResult) if f.name != "best_state"}
    state = TrainingState(epoch=result.best_epoch, model=result.best_state, optimizer={}, scheduler={}, scaler=None, rng={}, extra=fields)
    return save_checkpoint(directory, state, keep=1)


def load_fit_result(directory: Path) -> FitResult:
    found = latest_checkpoint(directory)
    if found is None:
        raise DistributedTrainingError(f"the training processes finished without writing their result to {directory}.")
    state = load_checkpoint(found)
    return FitResult(best_state=state.model, **state.extra)
