"""ganforge's data: ``load("mnist")`` / ``load("path/to/images")`` -> ``ImageData`` with a ``DataSpec``.

Downloading is a separate, explicit step (``python -m ganforge.data.download NAME``, or
``from ganforge.data.download import download``); ``load`` itself never touches the network.
"""

from ganforge.data.idx import read_idx, write_idx
from ganforge.data.images import ImageData, array_to_images, parse_size, resize_images, to_model_range
from ganforge.data.registry import available_datasets, canonical_name, load, register_dataset
from ganforge.data.sources import find_dataset, search_places, user_cache_dir
from ganforge.data.spec import DataSpec

__all__ = [
    "DataSpec",
    "ImageData",
    "array_to_images",
    "available_datasets",
    "canonical_name",
    "find_dataset",
    "load",
    "parse_size",
    "read_idx",
    "register_dataset",
    "resize_images",
    "search_places",
    "to_model_range",
    "user_cache_dir",
    "write_idx",
]
