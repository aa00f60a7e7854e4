"""benchmarks/acceptance_report.py: the GPU acceptance block from gpu_training rows, run_info files and step timings."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def report():
    """benchmarks/acceptance_report.py as a module (it imports gpu_training from its own folder)."""
    sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("acceptance_report", BENCHMARKS / "acceptance_report.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["acceptance_report"] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("acceptance_report", None)
        sys.path.remove(str(BENCHMARKS))


def _row(model: str, method: str, rate: float, mfu: float = 0.2) -> dict:
    return {
        "model": model, "method": method, "tokens": 197, "images_per_second": rate, "epoch_seconds": 10_080 / rate,
        "gflops_per_image": 105.1, "tflops": 1.0, "mfu": mfu, "peak_memory_gib": 12.5, "trainable_parameters": 86_000_000, "note": "",
    }


def _run_info(root: Path, model: str, version: str, backbone: Path, **extra) -> None:
    folder = root / model / "run_info.json" / version
    folder.mkdir(parents=True)
    info = {
        "model": model, "backbone": str(backbone), "method": "full", "device": "cuda:0", "device_name": "NVIDIA H200", "epochs_run": 1,
        "peak_memory_mb": 2048.0, "mean_images_per_second": 1000.0, "test_accuracy": 0.1, "config": {"max_steps": 20, "aclip": None}, **extra,
    }
    (folder / "run_info.json").write_text(json.dumps(info), encoding="utf-8")


def test_block_tables_rows_ratios_and_smoke_runs(report, tmp_path):
    rows = [_row("clip-b16", "full", 2000.0), _row("clip-b16", "naive", 500.0), _row("clip-b16", "trainer", 800.0), _row("siglip-b16", "full", 1800.0)]
    (tmp_path / "rows.json").write_text(json.dumps(rows), encoding="utf-8")
    backbone = tmp_path / "clip-vit-b-16"
    backbone.mkdir()
    vision = {"image_size": 224, "patch_size": 16, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072}
    (backbone / "config.json").write_text(json.dumps({"model_type": "clip", "projection_dim": 512, "vision_config": vision}), encoding="utf-8")
    runs = tmp_path / "08_reporting"
    _run_info(runs, "clip", "2026-01-01T00.00.00.000Z", backbone, test_accuracy=0.5)
    _run_info(runs, "clip", "2026-01-02T00.00.00.000Z", backbone)  # the newest version is the one read
    (tmp_path / "steps.tsv").write_text("1 environment\t3.5\tok\t\ntrain_clip\t41.0\tok\tkedro pipeline 30.1 sec\n", encoding="utf-8")
    out = tmp_path / "block.md"
    block = report.main([
        "--rows", str(tmp_path / "rows.json"), "--run-info-root", str(runs), "--timings", str(tmp_path / "steps.tsv"),
        "--command", "bash benchmarks/gpu_acceptance.sh", "--benchmark-command", "python benchmarks/gpu_training.py --device cuda", "--out", str(out),
    ])
    assert out.read_text(encoding="utf-8") == "\n" + block
    assert "Command: `bash benchmarks/gpu_acceptance.sh`. Total wall time 44 s." in block
    assert "| train_clip | 41.0 | ok | kedro pipeline 30.1 sec |" in block
    assert "| clip-b16 | trainer | 800 | 12.6 | 20.0 % | 12.5 |" in block
    assert "| clip-b16 | 2.50× | 4.00× |" in block  # ours (full) / Trainer, ours / naive
    assert "| siglip-b16 |" not in block.split("ours (full) / Trainer")[1]  # no baseline measured: no ratio row
    # The smoke CLIP: 1,000 img/s x 105.1 GFLOP = 105 TFLOP/s over the H200's 989 -> 10.6 %; aclip and siglip never ran.
    assert "| clip | full | NVIDIA H200 | 1 | 20 | 1,000.0 | 10.6 % | 2.00 | 0.100 | 41 |" in block
    assert "| aclip | – | – | – | – | – | – | – | – | – |" in block


def test_stale_run_info_and_missing_rows_are_reported_not_guessed(report, tmp_path):
    _run_info(tmp_path / "runs", "siglip", "v1", tmp_path / "absent")
    assert report.latest_run_info(tmp_path / "runs", "siglip") is not None
    assert report.latest_run_info(tmp_path / "runs", "siglip", since=4_000_000_000.0) is None  # written before --since
    assert report.latest_run_info(tmp_path / "runs", "siglip", until=0.0) is None  # written after --until
    block = report.main(["--run-info-root", str(tmp_path / "runs"), "--dry", "--out", "-"])
    assert "(dry run)" in block and "wrote no rows" in block
    assert "| siglip | full | NVIDIA H200 | 1 | 20 | 1,000.0 | – |" in block  # no config.json: no FLOPs, no MFU
