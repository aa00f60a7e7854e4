import subprocess
import sys

from har_kedro.pipeline_registry import register_pipelines

EXPECTED = {
    "ingestion", "preprocessing", "train_clip", "train_aclip", "train_siglip", "reporting",
    "inference_clip", "inference_aclip", "inference_siglip", "inference", "__default__",
}


def test_registry_has_every_pipeline():
    pipelines = register_pipelines()
    assert set(pipelines) == EXPECTED
    default_nodes = {n.name for n in pipelines["__default__"].nodes}
    assert {n.name for n in pipelines["ingestion"].nodes} | {n.name for n in pipelines["preprocessing"].nodes} <= default_nodes


def test_kedro_cli_lists_every_pipeline(project):
    out = subprocess.run(
        [sys.executable, "-m", "kedro", "registry", "list"], cwd=project, capture_output=True, text=True, timeout=120, check=True
    ).stdout
    listed = {line.strip().lstrip("- ").strip() for line in out.splitlines() if line.strip().startswith("-")}
    assert EXPECTED <= listed, out
