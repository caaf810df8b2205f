"""plotly figures from Crystal Toolkit's scene."""
import pytest

from wbg_core.data import load_structures
from wbg_core.structures.scene import SceneError, structure_figure


@pytest.fixture(scope="module")
def nacl():
    pool = load_structures()
    return pool.structure(pool.index_of("mp-22862"))


def test_ordered_structure_has_atoms_bonds_cell_and_legend(nacl):
    fig = structure_figure(nacl, polyhedra=True)
    names = [t.name for t in fig.data]
    atoms = [t for t in fig.data if t.type == "scatter3d" and t.mode == "markers"]
    assert sorted(t.name for t in atoms) == ["Cl", "Na"]
    assert len({t.marker.color for t in atoms}) == 2
    assert "bonds" in names and "unit cell" in names
    assert any(t.type == "mesh3d" for t in fig.data)
    # conventional rock-salt cell drawn with image atoms on faces and corners
    assert sum(len(t.x) for t in atoms) >= 8
    assert fig.layout.scene.aspectmode == "manual" and fig.layout.scene.aspectratio.x == 1  # a cube
    assert fig.to_json()


def test_without_polyhedra_or_bonds(nacl):
    fig = structure_figure(nacl, bonds=False)
    assert not any(t.type == "mesh3d" for t in fig.data)
    assert "bonds" not in [t.name for t in fig.data]


def test_disordered_structure_renders_with_a_message():
    from pymatgen.core import Lattice, Structure

    s = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), [{"Na": 0.6, "K": 0.4}, "Cl"],
                                  [[0, 0, 0], [0.5, 0.5, 0.5]])
    fig = structure_figure(s)
    mixed = [t for t in fig.data if t.name and "mixed" in t.name]
    assert len(mixed) == 1 and mixed[0].name.startswith("Na")
    assert "Na 0.60 + K 0.40" in mixed[0].text[0]
    assert "partially occupied" in fig.layout.title.text


def test_empty_structure_is_a_clear_error():
    from pymatgen.core import Lattice, Structure

    with pytest.raises(SceneError, match="no sites"):
        structure_figure(Structure(Lattice.cubic(3), [], []))


@pytest.mark.parametrize("mp_id", ["mp-22862", "mp-2133"])  # rock salt (cubic), ZnO (hexagonal)
def test_atoms_sit_inside_the_drawn_unit_cell(mp_id):
    import numpy as np

    pool = load_structures()
    fig = structure_figure(pool.structure(pool.index_of(mp_id)), bonds=False)
    cell = next(t for t in fig.data if t.name == "unit cell")
    corners = np.array([(x, y, z) for x, y, z in zip(cell.x, cell.y, cell.z) if x is not None], float)
    atoms = np.concatenate([np.column_stack([t.x, t.y, t.z]) for t in fig.data
                            if t.type == "scatter3d" and t.mode == "markers"]).astype(float)
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    # the cell and the atoms share one frame: every atom (images on faces and corners
    # included) lies in the cell's bounding box
    assert (atoms >= lo - 0.05).all() and (atoms <= hi + 0.05).all()  # 0.05 A: image atoms on a face


def test_the_frame_holds_every_atom_and_the_whole_cell():
    """A long cell (BaYF5's template has c about 3x a) stays inside the axis ranges, spheres included."""
    import numpy as np

    from wbg_core.structures.pipeline import predict_structures

    c = predict_structures("SrYF5", top_k=1)[0]
    fig = structure_figure(c.structure)
    sc = fig.layout.scene
    lo = np.array([sc.xaxis.range[0], sc.yaxis.range[0], sc.zaxis.range[0]])
    hi = np.array([sc.xaxis.range[1], sc.yaxis.range[1], sc.zaxis.range[1]])
    for t in fig.data:
        pts = np.array([p for p in zip(t.x, t.y, t.z) if None not in p], float)
        if len(pts):
            assert (pts >= lo - 1e-6).all() and (pts <= hi + 1e-6).all(), t.name
    ratio = np.array([sc.aspectratio.x, sc.aspectratio.y, sc.aspectratio.z])
    assert np.allclose(ratio / ratio.max(), (hi - lo) / (hi - lo).max(), atol=1e-3)
    assert sc.camera.projection.type == "orthographic"
