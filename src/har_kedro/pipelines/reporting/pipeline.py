from kedro.pipeline import Pipeline


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline([])
