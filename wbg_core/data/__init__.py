"""Bundled Materials Project data: registry with checksums, typed loaders, the split."""
from .loaders import StructurePool, bandgap_counts, load_bandgaps, load_element_embedding, load_structures
from .registry import DataError, data_path
from .splits import split, split_labels, subset_mask

__all__ = [
    "DataError", "StructurePool", "bandgap_counts", "data_path", "load_bandgaps",
    "load_element_embedding", "load_structures", "split", "split_labels", "subset_mask",
]
