"""A plotly 3D figure of a crystal structure, built from Crystal Toolkit's scene.

Crystal Toolkit turns a StructureGraph (bonds from CrystalNN) into a tree of primitives:
Spheres (atoms in VESTA's element colours, from pymatgen's table, radii), Cylinders (half-bonds, each in
the colour of its atom), Lines (unit cell edges, consecutive point pairs) and Convex
(coordination polyhedra as vertex clouds). Here each becomes a plotly trace: one Scatter3d
of markers per element (so the legend lists elements), bond segments as lines, the cell as
black lines and polyhedra as translucent Mesh3d convex hulls (alphahull=0).

Disordered structures (partial occupancies) are a known gap: Crystal Toolkit draws them as
sphere sections, which plotly markers cannot show. Such sites are drawn in the colour of
their majority species, the legend names the mixture, and the figure title says so; if
bonding cannot be worked out the atoms and cell are drawn without bonds, and the title says
that too. Anything that still fails raises SceneError with a message for the user.
"""
from __future__ import annotations

import numpy as np

MARKER_SCALE = 28.0  # plotly marker size (px) per Angstrom of Crystal Toolkit radius


class SceneError(ValueError):
    """The structure cannot be drawn; the message says why."""


def _walk(scene, origin=np.zeros(3)):
    from crystal_toolkit.core.scene import Scene

    if isinstance(scene, Scene):
        # nested scenes translate like three.js groups: a child's origin is relative to its
        # parent's, and a child without one sits at its parent's (the cell lines do)
        o = origin + np.asarray(scene.origin if scene.origin is not None else (0, 0, 0), dtype=float)
        for child in scene.contents:
            yield from _walk(child, o)
    else:
        yield scene, origin


def _site_label(structure, tooltip: str | None, fallback: str) -> str:
    if tooltip:
        return tooltip.split(" (")[0]
    return fallback


COLOR_SCHEME = "VESTA"  # VESTA's element colours; Jmol's (Crystal Toolkit's default) make Ba, Ca, Sr and F all green


def element_colors() -> dict[str, tuple[int, int, int]]:
    """Element -> RGB of COLOR_SCHEME, from pymatgen's own table (pymatgen/vis/ElementColorSchemes.yaml,
    the table Crystal Toolkit ships a copy of)."""
    from importlib.resources import files

    import yaml

    table = yaml.safe_load(files("pymatgen.vis").joinpath("ElementColorSchemes.yaml").read_text())
    return {el: tuple(int(c) for c in rgb) for el, rgb in table[COLOR_SCHEME].items()}


def element_legend(structure):
    """Crystal Toolkit's Legend with pymatgen's VESTA colours (spheres and half-bonds take them)."""
    from crystal_toolkit.core.legend import Legend

    legend = Legend(structure, color_scheme=COLOR_SCHEME)
    legend.el_colors = {**legend.el_colors, COLOR_SCHEME: element_colors()}
    return legend


def structure_scene(structure, *, bonds: bool = True, polyhedra: bool = False,
                    draw_image_atoms: bool = True):
    """Crystal Toolkit Scene of a Structure (bonds by CrystalNN); returns (scene, notes)."""
    import warnings

    from ._ctk import crystal_toolkit

    crystal_toolkit()
    from pymatgen.analysis.graphs import StructureGraph
    from pymatgen.analysis.local_env import CrystalNN

    notes: list[str] = []
    if len(structure) == 0:
        raise SceneError("the structure has no sites to draw")
    if not structure.is_ordered:
        notes.append("partially occupied sites drawn in the colour of their majority species")
    graph = None
    if bonds:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                graph = StructureGraph.from_local_env_strategy(structure, CrystalNN())
        except Exception as exc:  # CrystalNN fails on some disordered or odd cells
            notes.append(f"bonds not drawn ({type(exc).__name__})")
    if graph is None:
        graph = StructureGraph.from_empty_graph(structure)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scene = graph.get_scene(
                legend=element_legend(structure),
                draw_image_atoms=draw_image_atoms,
                bonded_sites_outside_unit_cell=False,
                hide_incomplete_edges=True,
                explicitly_calculate_polyhedra_hull=False,
            )
    except Exception as exc:
        raise SceneError(f"Crystal Toolkit could not build a scene for this structure: {exc}") from exc
    if not polyhedra:
        scene.contents = [c for c in scene.contents if getattr(c, "name", "") != "polyhedra"]
    return scene, notes


def conventional(structure, symprec: float = 0.1):
    """The conventional standard cell (what CIF export writes), or the structure as is."""
    if not structure.is_ordered or len(structure) == 0:
        return structure
    try:
        from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

        return SpacegroupAnalyzer(structure, symprec=symprec).get_conventional_standard_structure()
    except Exception:  # spglib finds no cell: draw what we were given
        return structure


def structure_figure(structure, *, bonds: bool = True, polyhedra: bool = False,
                     conventional_cell: bool = True, title: str | None = None, height: int = 560):
    """plotly Figure of a pymatgen Structure: atoms (legend by element), bonds, cell, polyhedra.

    conventional_cell: draw the conventional standard cell (as in the CIF), which shows
    coordination better than a primitive cell.
    """
    import plotly.graph_objects as go

    from ._ctk import crystal_toolkit

    crystal_toolkit()
    from crystal_toolkit.core.scene import Convex, Cylinders, Lines, Spheres

    if conventional_cell:
        structure = conventional(structure)
    scene, notes = structure_scene(structure, bonds=bonds, polyhedra=polyhedra)
    spheres: dict[tuple[str, str], dict] = {}
    bond_lines: dict[str, list] = {}
    cell: list = []
    meshes = []
    mixed: dict[tuple, list] = {}  # position -> sphere sections of a partially occupied site
    for prim, origin in _walk(scene):
        if isinstance(prim, Spheres):
            label = _site_label(structure, prim.tooltip, "site")
            if prim.phiStart is not None or prim.phiEnd is not None:
                share = ((prim.phiEnd or 2 * np.pi) - (prim.phiStart or 0.0)) / (2 * np.pi)
                for pos in prim.positions:
                    xyz_ = np.asarray(pos, float) + origin
                    mixed.setdefault(tuple(np.round(xyz_, 4)), []).append(
                        (share, label, prim.color or "#888888", prim.radius or 0.5, xyz_))
                continue
            key = (label, prim.color or "#888888")
            d = spheres.setdefault(key, {"xyz": [], "size": [], "text": []})
            for pos in prim.positions:
                d["xyz"].append(np.asarray(pos, float) + origin)
                d["size"].append((prim.radius or 0.5) * MARKER_SCALE)
                d["text"].append(prim.tooltip or label)
        elif isinstance(prim, Cylinders):
            seg = bond_lines.setdefault(prim.color or "#888888", [])
            for a, b in prim.positionPairs:
                seg += [np.asarray(a, float) + origin, np.asarray(b, float) + origin, None]
        elif isinstance(prim, Lines):
            pts = [np.asarray(p, float) + origin for p in prim.positions]
            for a, b in zip(pts[0::2], pts[1::2]):
                cell += [a, b, None]
        elif isinstance(prim, Convex):
            pts = np.asarray(prim.positions, float) + origin
            if len(pts) >= 4:
                meshes.append((pts, prim.color or "#888888"))

    for sections in mixed.values():
        sections.sort(key=lambda t: -t[0])
        share, label, color, radius, pos = sections[0]
        mixture = " + ".join(f"{lab} {sh:.2f}" for sh, lab, *_ in sections)
        d = spheres.setdefault((f"{label} (mixed sites)", color), {"xyz": [], "size": [], "text": []})
        d["xyz"].append(pos)
        d["size"].append(radius * MARKER_SCALE)
        d["text"].append(f"partially occupied: {mixture}")

    def xyz(points):
        cols = [[], [], []]
        for p in points:
            for k in range(3):
                cols[k].append(None if p is None else float(p[k]))
        return cols

    fig = go.Figure()
    for (label, color), d in sorted(spheres.items()):
        x, y, z = xyz(d["xyz"])
        fig.add_trace(go.Scatter3d(
            x=x, y=y, z=z, mode="markers", name=label, legendgroup=label,
            marker=dict(size=d["size"], color=color, line=dict(width=0.5, color="#333333"), opacity=1.0),
            text=d["text"], hoverinfo="text",
        ))
    for color, seg in bond_lines.items():
        x, y, z = xyz(seg)
        fig.add_trace(go.Scatter3d(x=x, y=y, z=z, mode="lines", line=dict(color=color, width=5),
                                   hoverinfo="skip", showlegend=False, name="bonds"))
    if cell:
        x, y, z = xyz(cell)
        fig.add_trace(go.Scatter3d(x=x, y=y, z=z, mode="lines", line=dict(color="black", width=2),
                                   hoverinfo="skip", name="unit cell"))
    for pts, color in meshes:
        fig.add_trace(go.Mesh3d(x=pts[:, 0], y=pts[:, 1], z=pts[:, 2], alphahull=0, color=color,
                                opacity=0.3, hoverinfo="skip", showlegend=False, name="polyhedron"))
    heading = title or structure.composition.reduced_formula
    if notes:
        heading += "<br><sup>" + "; ".join(notes) + "</sup>"
    # the frame fits the cell: each axis spans every drawn point plus the largest sphere radius
    # (plotly's own ranges clip spheres at the faces), and an orthographic camera from a
    # distance keeps a long cell inside the view, as VESTA's parallel projection does
    drawn = [p for d in spheres.values() for p in d["xyz"]] + [p for p in cell if p is not None]
    pad = max((r for d in spheres.values() for r in d["size"]), default=0.0) / MARKER_SCALE
    lo = np.min(drawn, axis=0) - pad if drawn else np.zeros(3)
    hi = np.max(drawn, axis=0) + pad if drawn else np.ones(3)
    span = hi - lo
    axes = {f"{k}axis": dict(visible=False, showbackground=False, range=[float(lo[i]), float(hi[i])])
            for i, k in enumerate("xyz")}
    fig.update_layout(
        title=dict(text=heading), height=height, margin=dict(l=0, r=0, t=60, b=0),
        scene=dict(**axes, aspectmode="manual",
                   aspectratio=dict(zip("xyz", (span / span.max()).round(4).tolist())),
                   camera=dict(eye=dict(x=1.9, y=1.5, z=1.1), projection=dict(type="orthographic"))),
        legend=dict(itemsizing="constant", title=dict(text="elements")),
    )
    fig.layout.meta = {"notes": notes}
    return fig
