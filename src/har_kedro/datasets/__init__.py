"""Custom Kedro datasets of the project."""

from har_kedro.datasets.array_store import ArrayBundle, ContentAddressedArrayDataset, LazyArray, StoredArrays

__all__ = ["ArrayBundle", "ContentAddressedArrayDataset", "LazyArray", "StoredArrays"]
