"""Custom Kedro datasets of the project."""

from har_kedro.datasets.array_store import ArrayBundle, ContentAddressedArrayDataset, LazyArray, StoredArrays
from har_kedro.datasets.optional import OptionalDataset
from har_kedro.datasets.trained_model import CheckpointStoreDataset, TrainedModelDataset

__all__ = [
    "ArrayBundle",
    "CheckpointStoreDataset",
    "ContentAddressedArrayDataset",
    "LazyArray",
    "OptionalDataset",
    "StoredArrays",
    "TrainedModelDataset",
]
