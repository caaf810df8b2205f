"""Import Crystal Toolkit with the one compatibility alias it needs (the only place we do this).

crystal_toolkit 2026.7.20 still calls StructureGraph.with_local_env_strategy and
with_empty_graph, which pymatgen-core 2026.7.27 renamed to from_local_env_strategy and
from_empty_graph. Importing crystal_toolkit (about 3 s) also adds .get_scene() to pymatgen
objects.
"""
from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def crystal_toolkit():
    from pymatgen.analysis.graphs import StructureGraph

    for old, new in (("with_local_env_strategy", "from_local_env_strategy"),
                     ("with_empty_graph", "from_empty_graph")):
        if not hasattr(StructureGraph, old) and hasattr(StructureGraph, new):
            setattr(StructureGraph, old, getattr(StructureGraph, new))
    import crystal_toolkit as ctk

    return ctk
