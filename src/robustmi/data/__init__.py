"""robustmi.data: offline dataset loaders, dataset registry, synthetic sets and batched augmentations.

Nothing here downloads. See :mod:`robustmi.data.sources` for where files are looked for.
"""

from robustmi.data.dataset import Dataset, DatasetInfo, get_dataset_info, list_datasets
from robustmi.data.loading import check_datasets, dataset_splits, load_dataset
from robustmi.data.transforms import horizontal_flip, random_crop

__all__ = [
    "Dataset",
    "DatasetInfo",
    "check_datasets",
    "dataset_splits",
    "get_dataset_info",
    "horizontal_flip",
    "list_datasets",
    "load_dataset",
    "random_crop",
]
