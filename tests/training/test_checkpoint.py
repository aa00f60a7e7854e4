"""Checkpoints: a resumed run continues bit for bit, files are safetensors + JSON only."""

from __future__ import annotations

import inspect
import json
import math
import random

import numpy as np
import pytest
import torch
from torch import nn

from har_kedro.training import checkpoint as ckpt_module
from har_kedro.training.checkpoint import (
    FORMAT_VERSION,
    TrainingState,
    capture_rng_state,
    latest_checkpoint,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)


def _cosine(total: int, warmup: int = 2):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Dropout(0.3), nn.Linear(16, 16))
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def _setup(seed: int):
    torch.manual_seed(seed)
    model = _Net()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.05, betas=(0.9, 0.98))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _cosine(total=6))
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    data_gen = torch.Generator().manual_seed(1000 + seed)
    return model, optimizer, scheduler, scaler, data_gen


def _train(model, optimizer, scheduler, scaler, data_gen, steps: int) -> None:
    model.train()
    for _ in range(steps):
        # Data from a named generator, noise/dropout from the global torch RNG, a numpy and a
        # python draw as a data pipeline might make: all must be restored for exactness.
        x = torch.randn(12, 8, generator=data_gen) + torch.randn(12, 8) * float(np.random.rand())
        y = torch.randint(0, 4, (12,), generator=data_gen)
        if random.random() < 2.0:  # always true, but consumes the python RNG
            x = x * 1.0
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()


def _draws(data_gen):
    return (random.random(), float(np.random.rand()), torch.rand(3), torch.rand(3, generator=data_gen))


def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path):
    random.seed(1)
    np.random.seed(1)
    model, optimizer, scheduler, scaler, data_gen = _setup(0)
    _train(model, optimizer, scheduler, scaler, data_gen, 3)
    state = TrainingState(
        epoch=3,
        model={k: v.detach().clone() for k, v in model.state_dict().items()},
        optimizer=optimizer.state_dict(),
        scheduler=scheduler.state_dict(),
        scaler=scaler.state_dict(),
        rng=capture_rng_state({"data": data_gen}),
        extra={"history": [{"epoch": 1, "val_loss": 1.5, "f1": float("nan")}], "best_epoch": 1, "patience": 0},
        best_model={k: v.detach().clone() for k, v in model.state_dict().items()},
    )
    path = save_checkpoint(tmp_path, state)
    _train(model, optimizer, scheduler, scaler, data_gen, 3)
    params_a = {k: v.detach().clone() for k, v in model.named_parameters()}
    draws_a = _draws(data_gen)
    lr_a = scheduler.get_last_lr()

    # A fresh process: different initial weights, RNGs elsewhere.
    random.seed(99)
    np.random.seed(99)
    model_b, optimizer_b, scheduler_b, scaler_b, data_gen_b = _setup(1)
    assert not torch.equal(model_b.head.weight, params_a["head.weight"])
    assert latest_checkpoint(tmp_path) == path
    loaded = load_checkpoint(path)
    assert loaded.epoch == 3
    model_b.load_state_dict(loaded.model)
    optimizer_b.load_state_dict(loaded.optimizer)
    scheduler_b.load_state_dict(loaded.scheduler)
    scaler_b.load_state_dict(loaded.scaler)
    restore_rng_state(loaded.rng, {"data": data_gen_b})
    _train(model_b, optimizer_b, scheduler_b, scaler_b, data_gen_b, 3)

    for name, param in model_b.named_parameters():
        assert torch.equal(param.detach(), params_a[name]), name
    assert scheduler_b.get_last_lr() == lr_a
    draws_b = _draws(data_gen_b)
    assert draws_b[0] == draws_a[0] and draws_b[1] == draws_a[1]
    assert torch.equal(draws_b[2], draws_a[2]) and torch.equal(draws_b[3], draws_a[3])
    # Extra and best weights come back too (NaN included).
    assert loaded.extra["best_epoch"] == 1 and loaded.extra["patience"] == 0
    assert math.isnan(loaded.extra["history"][0]["f1"]) and loaded.extra["history"][0]["val_loss"] == 1.5
    assert loaded.best_model is not None
    assert all(torch.equal(loaded.best_model[k], state.best_model[k]) for k in state.best_model)


def test_optimizer_state_dict_round_trips_with_exact_types(tmp_path):
    model, optimizer, scheduler, scaler, data_gen = _setup(0)
    _train(model, optimizer, scheduler, scaler, data_gen, 2)
    original = optimizer.state_dict()
    state = TrainingState(2, {}, original, scheduler.state_dict(), None, capture_rng_state(), {})
    loaded = load_checkpoint(save_checkpoint(tmp_path, state))

    opt = loaded.optimizer
    assert list(opt["state"]) == list(original["state"])
    assert all(isinstance(k, int) for k in opt["state"])
    for pid, entries in original["state"].items():
        assert set(opt["state"][pid]) == set(entries)
        for name, value in entries.items():
            got = opt["state"][pid][name]
            assert type(got) is type(value), (pid, name)
            if isinstance(value, torch.Tensor):
                assert got.dtype == value.dtype and got.shape == value.shape
                assert torch.equal(got, value)
            else:
                assert got == value
    assert isinstance(opt["state"][0]["step"], torch.Tensor) and opt["state"][0]["step"].dtype == torch.float32
    assert opt["param_groups"] == original["param_groups"]
    assert isinstance(opt["param_groups"][0]["betas"], tuple)
    assert loaded.scaler is None
    sched = dict(loaded.scheduler)
    assert sched["lr_lambdas"] == [None]
    assert sched == scheduler.state_dict()


def test_python_scalar_step_and_odd_values_keep_their_types(tmp_path):
    optimizer_like = {
        "state": {0: {"step": 5, "momentum_buffer": torch.arange(4.0)}, 7: {"step": 2.0, "flag": None}},
        "param_groups": [{"params": [0, 7], "lr": 0.1, "betas": (0.9, 0.99), "nesterov": True}],
    }
    extra = {
        "tuple_keys": {(1, "a"): "x"},
        "kinds": {"__kind__": "not a tag"},
        "inf": float("-inf"),
        "np": np.float32(0.25),
        "arr": np.arange(6, dtype=np.int16).reshape(2, 3),
        "dtype": torch.bfloat16,
    }
    scheduler = {"fn": lambda step: 1.0, "last_epoch": 3}
    state = TrainingState(0, {"w": torch.ones(2, dtype=torch.float16)}, optimizer_like, scheduler, {}, {}, extra)
    loaded = load_checkpoint(save_checkpoint(tmp_path, state))
    assert loaded.optimizer["state"][0]["step"] == 5 and type(loaded.optimizer["state"][0]["step"]) is int
    assert type(loaded.optimizer["state"][7]["step"]) is float
    assert loaded.optimizer["state"][7]["flag"] is None
    assert torch.equal(loaded.optimizer["state"][0]["momentum_buffer"], torch.arange(4.0))
    assert loaded.optimizer["param_groups"] == optimizer_like["param_groups"]
    assert loaded.extra["tuple_keys"] == {(1, "a"): "x"}
    assert loaded.extra["kinds"] == {"__kind__": "not a tag"}
    assert loaded.extra["inf"] == float("-inf") and loaded.extra["np"] == 0.25
    assert loaded.extra["arr"].dtype == np.int16 and np.array_equal(loaded.extra["arr"], extra["arr"])
    assert loaded.extra["dtype"] is torch.bfloat16
    assert loaded.scheduler == {"fn": None, "last_epoch": 3}  # callables are dropped
    assert loaded.scaler == {}
    assert loaded.model["w"].dtype == torch.float16
    assert loaded.best_model is None


def test_unstorable_values_are_refused_with_their_path(tmp_path):
    state = TrainingState(0, {}, {}, {}, None, {}, {"history": [{"when": object()}]})
    with pytest.raises(TypeError, match=r"extra\.history\.0\.when"):
        save_checkpoint(tmp_path, state)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_tied_and_non_contiguous_tensors_are_saved(tmp_path):
    weight = torch.randn(4, 6)
    model = {"a": weight, "tied": weight, "view": weight[1:3], "t": weight.t()}
    loaded = load_checkpoint(save_checkpoint(tmp_path, TrainingState(0, model, {}, {}, None, {}, {})))
    for k, v in model.items():
        assert torch.equal(loaded.model[k], v), k


def test_rng_round_trip_in_process():
    gen = torch.Generator().manual_seed(5)
    random.seed(3)
    np.random.seed(3)
    torch.manual_seed(3)
    np.random.randn()  # leaves a cached gaussian in numpy's legacy state
    state = capture_rng_state({"g": gen})
    expected = _draws(gen)
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    gen.manual_seed(0)
    restore_rng_state(state, {"g": gen})
    got = _draws(gen)
    assert got[:2] == expected[:2] and torch.equal(got[2], expected[2]) and torch.equal(got[3], expected[3])
    with pytest.raises(KeyError, match="missing"):
        restore_rng_state(state, {"missing": torch.Generator()})


def test_keep_prunes_old_epochs_and_resave_replaces(tmp_path):
    for epoch in range(1, 6):
        save_checkpoint(tmp_path, _tiny_state(epoch), keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_0004", "epoch_0005"]
    save_checkpoint(tmp_path, _tiny_state(5, value=7.0), keep=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_0004", "epoch_0005"]
    assert torch.equal(load_checkpoint(tmp_path / "epoch_0005").model["w"], torch.full((3,), 7.0))
    # Rewinding: saving epoch 4 again drops the now-stale epoch 5.
    save_checkpoint(tmp_path, _tiny_state(4), keep=2)
    assert latest_checkpoint(tmp_path) == tmp_path / "epoch_0004"
    with pytest.raises(ValueError, match="keep"):
        save_checkpoint(tmp_path, _tiny_state(6), keep=0)


def test_latest_checkpoint_ignores_partial_and_temp_dirs(tmp_path):
    assert latest_checkpoint(tmp_path / "nowhere") is None
    assert latest_checkpoint(tmp_path) is None
    save_checkpoint(tmp_path, _tiny_state(2))
    (tmp_path / ".partial-epoch_0003-abc").mkdir()  # a write killed before its rename
    (tmp_path / ".partial-epoch_0003-abc" / "tensors.safetensors").write_bytes(b"")
    broken = tmp_path / "epoch_0004"  # damaged: no state.json
    broken.mkdir()
    (broken / "tensors.safetensors").write_bytes(b"")
    (tmp_path / "epoch_0009.txt").write_text("not a dir")
    (tmp_path / "epoch_x").mkdir()
    assert latest_checkpoint(tmp_path) == tmp_path / "epoch_0002"
    with pytest.raises(FileNotFoundError):
        load_checkpoint(broken)


def test_failed_write_leaves_previous_checkpoint_as_latest(tmp_path, monkeypatch):
    first = save_checkpoint(tmp_path, _tiny_state(1))

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_module, "save_file", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, _tiny_state(2))
    assert latest_checkpoint(tmp_path) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_0001"]


def test_no_pickle_only_safetensors_and_json(tmp_path):
    model, optimizer, scheduler, scaler, data_gen = _setup(0)
    _train(model, optimizer, scheduler, scaler, data_gen, 1)
    state = TrainingState(
        1,
        model.state_dict(),
        optimizer.state_dict(),
        scheduler.state_dict(),
        scaler.state_dict(),
        capture_rng_state({"data": data_gen}),
        {"history": []},
    )
    path = save_checkpoint(tmp_path, state)
    files = sorted(p.name for p in path.rglob("*"))
    assert files == ["state.json", "tensors.safetensors"]
    assert all(p.suffix in {".json", ".safetensors"} for p in path.rglob("*"))
    payload = json.loads((path / "state.json").read_text())
    assert payload["format_version"] == FORMAT_VERSION and payload["epoch"] == 1
    assert "optimizer.state.0.exp_avg" in payload["tensors"]
    assert payload["tensors"]["rng.torch_cpu"]["dtype"] == "uint8"
    assert isinstance(payload["sections"]["rng"]["numpy"]["state"], list)
    source = inspect.getsource(ckpt_module)
    assert "torch.load" not in source.replace("``torch.load`` is not used", "")
    assert "import pickle" not in source


def test_load_rejects_other_format_versions(tmp_path):
    path = save_checkpoint(tmp_path, _tiny_state(1))
    payload = json.loads((path / "state.json").read_text())
    payload["format_version"] = 999
    (path / "state.json").write_text(json.dumps(payload))
    with pytest.raises(ValueError, match="format_version"):
        load_checkpoint(path)


def _tiny_state(epoch: int, value: float = 1.0) -> TrainingState:
    return TrainingState(
        epoch=epoch,
        model={"w": torch.full((3,), value)},
        optimizer={"state": {}, "param_groups": []},
        scheduler={"last_epoch": epoch},
        scaler=None,
        rng=capture_rng_state(),
        extra={"epoch": epoch},
    )
