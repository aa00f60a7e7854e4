"""Several training processes (gloo, CPU) optimise like one; bad settings are refused clearly.

The launch tests start real worker processes through the same path ``kedro run`` takes
(runner → training/launch.py → torch elastic, spawn → Accelerate/DDP), so each costs the start-up
of two Python processes that import torch and transformers.
"""

from __future__ import annotations

import dataclasses
import shutil
import signal
import socket
import time

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from har_kedro.config.distributed import DistributedSettings
from har_kedro.config.training import TrainConfig, TrainingConfigError
from har_kedro.data.classes import HAR_CLASSES
from har_kedro.data.image_cache import ImageCache
from har_kedro.models.backbones import load_backbone
from har_kedro.models.factory import build_classifier
from har_kedro.training.checkpoint import latest_checkpoint, load_checkpoint
from har_kedro.training.distributed import SINGLE_PROCESS, derived_seed
from har_kedro.training.launch import (
    DistributedTrainingError,
    fit_in_processes,
    launch_processes,
)
from har_kedro.training.run_inputs import RunInputs
from har_kedro.training.runner import run_training
from tests.models.conftest import PROMPTS
from tests.training.distributed_workers import (
    compare_gathered_losses,
    fail_in_the_last_process,
)

CPU = torch.device("cpu")
TWO = {"num_processes": 2}


def _run(cache: ImageCache, source: str, config: TrainConfig) -> RunInputs:
    return RunInputs(cache, HAR_CLASSES, PROMPTS, source, config, 0, 32, CPU, None, {"backbone": source})


def _config(**overrides) -> TrainConfig:
    # No augmentation and no dropout: then one and two processes see exactly the same numbers.
    base = dict(
        method="full", epochs=2, batch_size=8, effective_batch_size=16, lr=1e-3, device="cpu", progress=False,
        early_stopping_patience=0, warmup_ratio=0.2, augment={"random_resized_crop": False, "horizontal_flip": False},
    )
    base.update(overrides)
    return TrainConfig.from_params(base)


def _assert_same_training(one, two) -> None:
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"):
        np.testing.assert_allclose(two.history[key], one.history[key], rtol=1e-4, atol=1e-6, err_msg=key)
    assert set(two.trained_model.state) == set(one.trained_model.state)
    for name, value in one.trained_model.state.items():
        torch.testing.assert_close(two.trained_model.state[name], value, rtol=0, atol=2e-4, msg=lambda m, n=name: f"{n}: {m}")
    np.testing.assert_allclose(two.test_predictions.filter(like="prob_").to_numpy(), one.test_predictions.filter(like="prob_").to_numpy(), atol=1e-4)


# --------------------------------------------------------------------------- the gather-based losses


def test_losses_over_gathered_shards_equal_the_one_process_loss_and_gradients(tmp_path):
    """Batches of 7 (shards 4 + 3) and 1 (shards 1 + a stand-in row): loss and DDP-averaged gradients as in one process."""
    processes = mp.spawn(compare_gathered_losses, args=(2, str(tmp_path / "rendezvous"), [7, 1]), nprocs=2, join=False)
    deadline = time.monotonic() + 300  # a hang (e.g. in gloo's teardown) fails the test instead of the whole CI run
    while not processes.join(timeout=5):
        if time.monotonic() > deadline:
            for process in processes.processes:
                process.kill()
            pytest.fail("the two processes did not finish within 300 s")


# --------------------------------------------------------------------------- two processes train like one


@pytest.mark.slow
def test_aclip_in_two_processes_trains_like_one_and_resumes(tiny_backbones, image_cache, tmp_path):
    """The whole launch path ``kedro run`` takes (runner → launcher → spawned workers → DDP) trains like one
    process: A-CLIP's contrastive, cross-entropy and distillation terms over the gathered batch; rank 0 writes
    the checkpoints (with every process's random streams) and a resumed run ends where the whole run did.

    Each launch costs two interpreters importing torch and transformers, so this is the one end-to-end
    launch of a training run; every loss (SigLIP's sigmoid with its learned scale and bias, FLYP's prompts,
    shards with a stand-in row) is checked over gathered shards, value and gradients, in the DDP test above."""
    config = _config(loss="contrastive", aclip={"selection": "attentive", "measure_speedup": False})
    one = run_training("aclip", image_cache, HAR_CLASSES, PROMPTS, tiny_backbones["clip"], config, 3, tmp_path / "one")
    config_two = dataclasses.replace(config, distributed=DistributedSettings(**TWO))
    two = run_training("aclip", image_cache, HAR_CLASSES, PROMPTS, tiny_backbones["clip"], config_two, 3, tmp_path / "two")
    assert two.run_info["processes"] == 2 and one.run_info["processes"] == 1
    _assert_same_training(one, two)
    # The weights moved far more than the tolerance, so the comparison says something.
    start = build_classifier(load_backbone(tiny_backbones["clip"]), HAR_CLASSES, PROMPTS, config, CPU, 32)
    moved = max(float((value - dict(start.named_parameters())[name].detach()).abs().max()) for name, value in one.trained_model.state.items())
    assert moved > 50 * 2e-4
    for key in ("ema_val_accuracy", "ema_test_accuracy", "tokens_kept_fraction", "views_trained"):
        assert two.run_info["aclip"][key] == pytest.approx(one.run_info["aclip"][key], abs=1e-6), key

    stage = tmp_path / "two" / "fine_tune"
    assert sorted(p.name for p in stage.iterdir()) == ["epoch_0001", "epoch_0002"]
    saved = load_checkpoint(stage / "epoch_0001")
    assert {"augment", "augment@1", "torch@1"} <= set(saved.rng["generators"])
    shutil.rmtree(stage / "epoch_0002")  # as if the run had been killed during epoch 2
    resumed = run_training("aclip", image_cache, HAR_CLASSES, PROMPTS, tiny_backbones["clip"], dataclasses.replace(config_two, resume=True), 3, tmp_path / "two")
    assert resumed.run_info["resumed_from_epoch"] == 2
    _assert_same_training(two, resumed)
    assert latest_checkpoint(stage).name == "epoch_0002"


def test_a_failing_process_stops_the_launch_with_its_message_and_kedro_keeps_its_signal_handlers(tmp_path):
    before = signal.getsignal(signal.SIGINT)
    settings = DistributedSettings.from_params(TWO)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DistributedTrainingError, match="training process 1 of 2 failed: ValueError: process 1 cannot go on"):
        launch_processes(settings, port, fail_in_the_last_process, (), tmp_path / "logs")
    assert signal.getsignal(signal.SIGINT) is before


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("distributed", "overrides", "message"),
    [
        ({"num_processes": 0}, {}, "num_processes must be a positive integer"),
        ({"num_processes": 3, "num_machines": 2, "main_process_port": 29500, "main_process_ip": "10.0.0.1"}, {}, "must be a multiple of num_machines"),
        ({"num_processes": 4, "num_machines": 2, "machine_rank": 2, "main_process_port": 29500, "main_process_ip": "10.0.0.1"}, {}, "machine_rank must be"),
        ({"num_processes": 4, "num_machines": 2, "main_process_ip": "10.0.0.1"}, {}, "main_process_port must be set"),
        ({"num_processes": 4, "num_machines": 2, "main_process_port": 29500}, {}, "other machines can reach"),
        ({"num_processes": 2, "backend": "mpi"}, {}, "backend is 'mpi'"),
        ({"num_processes": 2, "main_process_port": 70000}, {}, "main_process_port must be a port number"),
        ({"num_processes": 2, "gpus": 2}, {}, "unknown keys \\['gpus'\\]"),
        (TWO, {"device": "mps"}, "several processes cannot share"),
        (TWO, {"device": "cuda:1"}, "a single GPU"),
        ({"num_processes": 2, "backend": "nccl"}, {"device": "cpu"}, "backend is nccl, which needs CUDA"),
        ({"num_processes": 4}, {"batch_size": 2, "effective_batch_size": 8}, "use batch_size >= 4"),
    ],
)
def test_bad_distributed_settings_are_refused_with_the_key_named(distributed, overrides, message):
    with pytest.raises(TrainingConfigError, match=message) as error:
        TrainConfig.from_params({**dataclasses.asdict(_config(**overrides)), "distributed": distributed}, where="clip.training")
    assert str(error.value).startswith("clip.training.distributed")


def test_settings_defaults_mean_one_process():
    settings = DistributedSettings.from_params(None)
    assert not settings.enabled and settings.resolved_backend("cuda") == "nccl" and settings.resolved_backend("cpu") == "gloo"
    assert DistributedSettings.from_params({"num_processes": 8, "num_machines": 2, "main_process_port": 1, "main_process_ip": "node0"}).processes_per_machine == 4


def test_each_process_gets_its_own_seed_and_rank_zero_keeps_the_run_seed():
    seeds = [derived_seed(7, rank) for rank in range(4)]
    assert seeds[0] == 7 and len(set(seeds)) == 4
    assert SINGLE_PROCESS.seed(7) == 7 and SINGLE_PROCESS.shard(np.arange(5)).tolist() == [0, 1, 2, 3, 4]


def test_kedro_started_by_torchrun_is_refused(tiny_backbones, image_cache, monkeypatch):
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "abc")
    config = _config(distributed=TWO)
    model = build_classifier(load_backbone(tiny_backbones["clip"]), HAR_CLASSES, PROMPTS, config, CPU, 32)
    with pytest.raises(DistributedTrainingError, match="run `kedro run` as a plain command"):
        fit_in_processes(model, _run(image_cache, tiny_backbones["clip"], config))


def test_a_port_in_use_is_refused_before_anything_starts(tiny_backbones, image_cache):
    config = _config(distributed=TWO)
    model = build_classifier(load_backbone(tiny_backbones["clip"]), HAR_CLASSES, PROMPTS, config, CPU, 32)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = dataclasses.replace(config, distributed=DistributedSettings(**TWO, main_process_port=busy.getsockname()[1]))
        with pytest.raises(DistributedTrainingError, match="choose a free main_process_port"):
            fit_in_processes(model, _run(image_cache, tiny_backbones["clip"], taken))

