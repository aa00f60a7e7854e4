"""Turn one GPU acceptance run (benchmarks/gpu_acceptance.sh) into a dated Markdown block for docs/benchmarks.md.

    python benchmarks/acceptance_report.py --rows rows.json --run-info-root data/smoke/08_reporting \\
        --timings steps.tsv --command "bash benchmarks/gpu_acceptance.sh" --out docs/benchmarks.md

Inputs:

* ``--rows``: the JSON rows that ``benchmarks/gpu_training.py --json`` wrote (img/s, MFU, peak memory per
  model and method, the Trainer and naive baselines among them);
* ``--run-info-root``: the folder holding ``<model>/run_info.json/<version>/run_info.json`` (the versioned
  ``{model}.run_info`` dataset of conf/base/catalog.yml, under the smoke environment's data root); the
  newest version of each model is read, and with ``--since`` / ``--until`` only versions written in
  that window (the acceptance script passes its start and the end of its step 3);
* ``--timings``: ``step<TAB>seconds<TAB>status<TAB>note`` lines, one per acceptance step.

The block is appended to ``--out`` (printed when it is ``-``). The date, device name and library versions
are read here, on the machine that ran the steps. MFU of the Kedro runs is derived as in gpu_training.py:
FLOPs per image from the vision shape in the backbone's ``config.json`` and the method, times the run's
mean img/s (every epoch, warm-up included), over the device's dense bf16 peak.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_training import (  # noqa: E402
    PEAK_BF16_TFLOPS,
    Row,
    Shape,
    peer_ratios,
    train_flops_per_image,
)

SMOKE_MODELS = ("clip", "aclip", "siglip")


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def device_description() -> tuple[str, str]:
    """(device name, library versions) of this machine, as the block's header states them."""
    import torch
    import transformers

    name = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({platform.processor() or platform.machine()})"
    versions = f"torch {torch.__version__}, transformers {transformers.__version__}, Python {platform.python_version()}"
    return name, versions


def peak_for(device_name: str) -> float | None:
    """The dense bf16 peak (TFLOP/s) that gpu_training.py uses for a device of this name."""
    return next((peak for key, peak in PEAK_BF16_TFLOPS if key in device_name), None)


def read_rows(path: Path | None) -> list[dict[str, Any]]:
    """gpu_training.py's rows; an absent file (its step failed) gives none."""
    if path is None or not path.is_file():
        return []
    return list(json.loads(path.read_text(encoding="utf-8")))


def latest_run_info(root: Path, model: str, since: float | None = None, until: float | None = None) -> dict[str, Any] | None:
    """The newest ``<root>/<model>/run_info.json/<version>/run_info.json`` (or an unversioned file), or None.

    Only files written from ``since`` to ``until`` (Unix times) count, where those are given.
    """
    base = root / model / "run_info.json"
    candidates = sorted(base.glob("*/run_info.json")) if base.is_dir() else ([base] if base.is_file() else [])
    if since is not None:
        candidates = [c for c in candidates if c.stat().st_mtime >= since]
    if until is not None:
        candidates = [c for c in candidates if c.stat().st_mtime <= until]
    if not candidates:
        return None
    return json.loads(candidates[-1].read_text(encoding="utf-8"))


def shape_from_backbone(directory: str | Path) -> Shape | None:
    """The vision shape of a saved CLIP/SigLIP (its ``config.json``); None when there is none to read."""
    path = Path(directory) / "config.json"
    if not path.is_file():
        return None
    config = json.loads(path.read_text(encoding="utf-8"))
    vision, text = config.get("vision_config", {}), config.get("text_config", {})
    family = "siglip" if "siglip" in str(config.get("model_type", "")) else "clip"
    return Shape(
        name=Path(directory).name, family=family, image_size=int(vision.get("image_size", 224)), patch=int(vision.get("patch_size", 16)),
        width=int(vision.get("hidden_size", 768)), depth=int(vision.get("num_hidden_layers", 12)), heads=int(vision.get("num_attention_heads", 12)),
        mlp=int(vision.get("intermediate_size", 3072)), embed=int(config.get("projection_dim", vision.get("hidden_size", 768))),
        text_width=int(text.get("hidden_size", 512)), text_depth=int(text.get("num_hidden_layers", 12)), text_heads=int(text.get("num_attention_heads", 8)),
        text_mlp=int(text.get("intermediate_size", 2048)), text_len=int(text.get("max_position_embeddings", 77)), vocab=int(text.get("vocab_size", 0)),
    )


def run_flops_per_image(info: dict[str, Any]) -> float | None:
    """Model FLOPs per training image of a Kedro run (full, LoRA on q/k/v/out, A-CLIP); None for other methods."""
    shape = shape_from_backbone(info.get("backbone", ""))
    config = info.get("config", {})
    if shape is None:
        return None
    if config.get("aclip"):
        aclip = config["aclip"]
        return train_flops_per_image(shape, "aclip", keep_ratio=float(aclip.get("keep_ratio", 0.5)), ema_scale=float(aclip.get("ema_image_scale", 1.0)))
    if info.get("method") == "full":
        return train_flops_per_image(shape, "full")
    lora = config.get("lora") or {}
    targets = set(lora.get("targets", []))
    if info.get("method") == "lora" and targets <= {"q_proj", "k_proj", "v_proj", "out_proj"}:
        return train_flops_per_image(shape, "lora", lora_rank=int(lora.get("rank", 16)), lora_targets=len(targets))
    return None


def benchmark_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    """gpu_training.py's rows as a Markdown table, then ours (full) over the Trainer and the naive loop per model."""
    if not rows:
        return ["_benchmarks/gpu_training.py wrote no rows (its step failed; see the log)._"]
    lines = ["| model | method | img/s | s / 10,080-image epoch | MFU | peak GiB | note |", "|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['method']} | {_fmt(r.get('images_per_second'), ',.0f')} | {_fmt(r.get('epoch_seconds'), '.1f')} | "
            f"{_pct(r.get('mfu'))} | {_fmt(r.get('peak_memory_gib'), '.1f')} | {r.get('note', '')} |"
        )
    lines += ["", "| model | ours (full) / Trainer | ours (full) / naive |", "|---|---:|---:|"]
    for model, peers in peer_ratios([Row(**r) for r in rows]).items():
        lines.append(f"| {model} | {_fmt(peers.get('trainer'), '.2f')}× | {_fmt(peers.get('naive'), '.2f')}× |".replace("–×", "–"))
    return lines


def kedro_table(infos: dict[str, dict[str, Any] | None], seconds: dict[str, float]) -> list[str]:
    """One row per smoke model from its run_info: method, device, img/s, derived MFU, peak memory, wall time of its run."""
    lines = [
        "| model | method | device | epochs | optimizer steps (max_steps) | img/s (mean, warm-up incl.) | MFU | peak GiB | test acc. | `kedro run` of `train_<model>`, s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for model, info in infos.items():
        wall = _fmt(seconds.get(f"train_{model}"), ".0f")
        if info is None:
            lines.append(f"| {model} | – | – | – | – | – | – | – | – | {wall} |")
            continue
        rate = float(info.get("mean_images_per_second") or 0.0)
        flops, peak = run_flops_per_image(info), peak_for(str(info.get("device_name", "")))
        mfu = flops * rate / 1e12 / peak if flops and peak and rate and str(info.get("device", "")).startswith("cuda") else None
        lines.append(
            f"| {model} | {info.get('method')} | {info.get('device_name', info.get('device'))} | {info.get('epochs_run', '–')} | "
            f"{info.get('config', {}).get('max_steps', '–')} | {_fmt(rate, ',.1f')} | {_pct(mfu)} | {_fmt(float(info.get('peak_memory_mb', 0)) / 1024, '.2f')} | "
            f"{_fmt(info.get('test_accuracy'), '.3f')} | {wall} |"
        )
    return lines


def read_timings(path: Path | None) -> list[tuple[str, float, str, str]]:
    """(step, seconds, status, note) per line of the acceptance script's timing file."""
    if path is None or not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t") + ["", "", ""]
        if parts[0]:
            out.append((parts[0], float(parts[1] or 0.0), parts[2], parts[3]))
    return out


def build_block(args: argparse.Namespace) -> str:
    """The whole dated Markdown block."""
    name, versions = device_description()
    timings = read_timings(args.timings)
    seconds = {step: s for step, s, _, _ in timings}
    infos = {model: latest_run_info(args.run_info_root, model, args.since, args.until) for model in SMOKE_MODELS} if args.run_info_root else {}
    today = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"### {today}: {name}{' (dry run)' if args.dry else ''}", "",
        f"{versions}. Command: `{args.command}`. Total wall time {sum(seconds.values()):.0f} s.", "",
        "| step | wall s | status | note |", "|---|---:|---|---|",
    ]
    lines += [f"| {step} | {s:.1f} | {status} | {note} |" for step, s, status, note in timings]
    lines += ["", f"`{args.benchmark_command}`:" if args.benchmark_command else "benchmarks/gpu_training.py:", ""]
    lines += benchmark_table(read_rows(args.rows))
    if infos:
        lines += ["", "Kedro smoke runs (`--env=smoke`, real shapes, random weights; run_info of each model):", ""]
        lines += kedro_table(infos, seconds)
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=Path, help="gpu_training.py --json output")
    parser.add_argument("--run-info-root", type=Path, help="e.g. data/smoke/08_reporting")
    parser.add_argument("--since", type=float, help="ignore run_info versions written before this Unix time")
    parser.add_argument("--until", type=float, help="ignore run_info versions written after this Unix time (e.g. the whole-DAG run's)")
    parser.add_argument("--timings", type=Path, help="the acceptance script's step timings (TSV)")
    parser.add_argument("--command", default="bash benchmarks/gpu_acceptance.sh", help="the command that ran the steps")
    parser.add_argument("--benchmark-command", default="", help="the exact gpu_training.py command")
    parser.add_argument("--dry", action="store_true", help="mark the block as a dry (CPU) run")
    parser.add_argument("--out", default="-", help="append the block to this file; - prints it")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> str:
    """Build the block, append it to ``--out`` (or print it) and return it."""
    args = parse_args(argv)
    block = build_block(args)
    if args.out == "-":
        print(block, end="")
    else:
        with open(args.out, "a", encoding="utf-8") as handle:
            handle.write("\n" + block)
        print(f"appended the acceptance block to {args.out}")
    return block


if __name__ == "__main__":
    main()
