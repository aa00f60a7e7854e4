"""The corpus half (captions table, caption image cache) once, then one pretraining template per target.

``pretraining.<target>`` (``clip``, ``siglip``; config/models.py) reads ``params:pretraining.<target>.model``,
``.training`` and ``.seed`` and writes ``pretraining.<target>.backbone`` (a pointer to the saved model folder),
``.history`` and ``.run_info``; the training template of every model takes its target's ``backbone``.
"""

from functools import partial, update_wrapper

from kedro.pipeline import Node, Pipeline

from har_kedro.config.models import PRETRAINING_TARGETS
from har_kedro.pipelines.pretraining.nodes import build_caption_cache, ingest_captions, prepare_corpus, pretrain_backbone


def _target(name: str) -> Pipeline:
    pretrain = update_wrapper(partial(pretrain_backbone, target=f"pretraining.{name}"), pretrain_backbone)
    template = Pipeline(
        [
            Node(
                pretrain,
                ["caption_cache", "store", "checkpoints", "params:model", "params:training", "params:seed"],
                ["backbone", "history", "run_info"],
                name="pretrain_backbone",
            )
        ],
        tags=["pretraining", f"pretrain_{name}"],
    )
    return Pipeline(template, namespace=f"pretraining.{name}", inputs={"caption_cache"})


def create_pipeline(**kwargs: object) -> Pipeline:
    corpus = Pipeline(
        [
            Node(prepare_corpus, "params:pretraining.corpus", "caption_corpus", name="prepare_corpus"),
            Node(ingest_captions, ["caption_corpus", "params:pretraining.cache"], ["caption_pairs", "rejected_captions"], name="ingest_captions"),
            Node(build_caption_cache, ["caption_pairs", "params:pretraining.cache"], "caption_cache", name="build_caption_cache"),
        ],
        tags="pretraining",
    )
    return sum((_target(name) for name in PRETRAINING_TARGETS), corpus)
