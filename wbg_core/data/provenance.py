"""Where a bundled band gap comes from, in the words a user reads beside it.

The two sources of data/mp_bandgap.csv do not mean the same number: `roost2020` rows are
the MP ground state's PBE gap, with its mp-id; `matbench_mp_gap_max` rows carry the
*largest* gap over the MP polymorphs of that formula, and the ground state is unknown (Si
shows 1.36 eV there while diamond Si is ~0.6 eV in MP).
"""
from __future__ import annotations

import numpy as np

GROUND_STATE = "MP ground state"
POLYMORPH_MAX = "largest gap over MP polymorphs, ground state unknown"
EXPLANATION = ("Known values are Materials Project PBE gaps (CC-BY 4.0): \"MP ground state\" rows name "
               "their mp-id; \"largest gap over MP polymorphs\" rows (matbench_mp_gap) give the widest "
               "gap of any polymorph, so the ground state's may be smaller.")


def label_source(source, material_id) -> str | None:
    """'MP ground state, mp-149', or the polymorph-maximum wording; None without a source."""
    if source is None or (isinstance(source, float) and np.isnan(source)) or source == "":
        return None
    if source == "matbench_mp_gap_max":
        return POLYMORPH_MAX
    mid = material_id if isinstance(material_id, str) and material_id.strip() else None
    return f"{GROUND_STATE}, {mid}" if mid else f"{GROUND_STATE} (no mp-id bundled)"
