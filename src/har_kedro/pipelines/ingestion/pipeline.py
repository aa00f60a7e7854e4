from kedro.pipeline import Node, Pipeline

from har_kedro.pipelines.ingestion.nodes import ingest_images, prepare_source


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            Node(prepare_source, "params:ingestion.source", "raw_source", name="prepare_source"),
            Node(
                ingest_images,
                ["raw_source", "params:ingestion"],
                ["manifest", "rejected_images", "ingestion_summary"],
                name="ingest_images",
            ),
        ],
        tags="ingestion",
    )
