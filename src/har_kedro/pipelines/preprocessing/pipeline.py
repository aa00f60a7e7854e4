from kedro.pipeline import Node, Pipeline

from har_kedro.pipelines.preprocessing.nodes import (
    build_image_cache,
    class_names_from_manifest,
    make_class_prompts,
)


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            Node(class_names_from_manifest, "manifest", "class_names", name="class_names_from_manifest"),
            Node(make_class_prompts, ["class_names", "params:prompts"], "class_prompts", name="make_class_prompts"),
            Node(
                build_image_cache,
                ["manifest", "class_names", "params:preprocessing"],
                "image_cache",
                name="build_image_cache",
            ),
        ],
        tags="preprocessing",
    )
