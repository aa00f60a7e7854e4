from click.testing import CliRunner
from kedro.framework.cli.cli import KedroCLI

from har_kedro.pipeline_registry import register_pipelines

EXPECTED = {
    "ingestion", "preprocessing", "pretraining", "train_clip", "train_aclip", "train_siglip", "reporting",
    "inference_clip", "inference_aclip", "inference_siglip", "inference", "__default__",
}


def test_registry_has_every_pipeline():
    pipelines = register_pipelines()
    assert set(pipelines) == EXPECTED
    default_nodes = {n.name for n in pipelines["__default__"].nodes}
    assert {n.name for n in pipelines["ingestion"].nodes} | {n.name for n in pipelines["preprocessing"].nodes} <= default_nodes


def test_kedro_cli_lists_every_pipeline(project):
    # The `kedro` command's own CLI object, invoked in this process (a subprocess would spend ~10 s on
    # importing torch; `.ci/run` also runs `kedro registry list` as a command).
    result = CliRunner().invoke(KedroCLI(project_path=project), ["registry", "list"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = result.output
    listed = {line.strip().lstrip("- ").strip() for line in out.splitlines() if line.strip().startswith("-")}
    assert EXPECTED <= listed, out
