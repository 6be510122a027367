"""Real datasets from the package registries (VADER, fortunes, Reuters) and the probe fidelity metrics.

``padless.data.datasets`` fetches, parses and caches; ``padless.data.metrics`` scores a backend's
embeddings against the fp32 reference (scikit-learn is imported only when a metric runs).
"""

from padless.data.datasets import DATASETS, Dataset, load_dataset, read_lines, read_tsv, write_tsv
from padless.data.metrics import cosine_rows, probe_eval

__all__ = [
    "DATASETS",
    "Dataset",
    "load_dataset",
    "read_lines",
    "read_tsv",
    "write_tsv",
    "cosine_rows",
    "probe_eval",
]
