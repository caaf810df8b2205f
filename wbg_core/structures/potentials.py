"""Interatomic potentials behind one interface: CHGNet and SevenNet as ASE calculators.

Why one interface: the relaxed geometry, the formation energy, the hull distance and the
template ranking all depend on the potential, and a scientist should be able to switch it
and compare. Every potential relaxes the same way (ASE FIRE on a FrechetCellFilter, the
optimiser CHGNet's own StructOptimizer uses), so the numbers differ by the model only.

Weights ship inside the wheels (chgnet 0.3.0, sevenn 0.13.0); nothing is downloaded. They are
read with `torch.load(weights_only=True)`, torch's restricted unpickler (tensors, numpy arrays,
plain containers), never as arbitrary pickles: the wheels' own loaders would use
weights_only=False.

Potentials are loaded by name from `POTENTIALS` (as CHGNet loads its weights by name);
an unknown name raises a ValueError naming the known ones.
"""
from __future__ import annotations

import contextlib
import io
import time
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

DEFAULT_FMAX = 0.1  # eV/A
DEFAULT_STEPS = 200


class UnsupportedElementError(ValueError):
    """The potential has no parameters for an element of the structure."""


@dataclass(frozen=True)
class PotentialInfo:
    name: str  # the key users type: `wbg structure --potential NAME`
    label: str  # what pages and READMEs print
    description: str


POTENTIALS: dict[str, PotentialInfo] = {
    "chgnet": PotentialInfo("chgnet", "CHGNet 0.3.0",
                            "CHGNet 0.3.0 (Deng et al. 2023), trained on MPtrj; 412k parameters"),
    "sevennet-0": PotentialInfo("sevennet-0", "SevenNet-0 (11Jul2024)",
                                "SevenNet-0 (Park et al. 2024), NequIP-type equivariant network trained on MPtrj; "
                                "842k parameters"),
}


def potential_label(name: str) -> str:
    """What pages print for a potential's name; a name this version does not know (read from an
    older file) is printed as it is."""
    return POTENTIALS[name].label if name in POTENTIALS else name


@dataclass
class Relaxation:
    structure: object  # relaxed pymatgen Structure
    energy_per_atom: float  # eV/atom of the relaxed structure
    initial_energy_per_atom: float
    steps: int
    converged: bool  # max force below fmax within the step budget
    max_force: float  # eV/A at the end
    volume_change: float  # relaxed / initial volume
    seconds: float


class Potential:
    """A pretrained potential: its ASE calculator, the elements it knows, energies, relaxation."""

    def __init__(self, info: PotentialInfo, calculator, elements: frozenset[str]):
        self.info = info
        self.calculator = calculator
        self.elements = elements

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def label(self) -> str:
        return self.info.label

    def __repr__(self) -> str:
        return f"Potential({self.name!r})"

    def check_elements(self, structure) -> None:
        missing = sorted({el.symbol for el in structure.composition.elements} - self.elements)
        if missing:
            raise UnsupportedElementError(
                f"{self.label} has no parameters for {', '.join(missing)}: choose another potential")

    def _energy(self, structure) -> float:
        """Total energy (eV) of one structure; ValueError where the model refuses it."""
        from pymatgen.io.ase import AseAtomsAdaptor

        atoms = AseAtomsAdaptor.get_atoms(structure)
        atoms.calc = self.calculator
        return float(atoms.get_potential_energy())

    def energies(self, structures) -> np.ndarray:
        """Static energies per atom (eV/atom) of one or several Structures; NaN where refused."""
        items = list(structures) if isinstance(structures, (list, tuple)) else [structures]
        out = np.full(len(items), np.nan)
        with _quiet():
            for k, s in enumerate(items):
                self.check_elements(s)
                try:
                    out[k] = self._energy(s) / len(s)
                except ValueError:
                    pass
        return out

    def relax(self, structure, *, fmax: float = DEFAULT_FMAX, steps: int = DEFAULT_STEPS,
              relax_cell: bool = True) -> Relaxation:
        """Relax positions (and the cell) with FIRE until every force is below fmax, at most `steps` steps."""
        from ase.filters import FrechetCellFilter
        from ase.optimize import FIRE
        from pymatgen.io.ase import AseAtomsAdaptor

        if not structure.is_ordered:
            raise ValueError(f"{self.label} cannot relax a disordered structure (partial occupancies)")
        self.check_elements(structure)
        t0 = time.perf_counter()
        atoms = AseAtomsAdaptor.get_atoms(structure)
        atoms.calc = self.calculator
        energies: list[float] = []
        with _quiet(), _one_thread():
            try:
                energies.append(float(atoms.get_potential_energy()))
                target = FrechetCellFilter(atoms) if relax_cell else atoms
                opt = FIRE(target, logfile=None)
                opt.attach(lambda: energies.append(float(atoms.get_potential_energy())))
                opt.run(fmax=fmax, steps=steps)
                forces = atoms.get_forces()
            except ValueError as exc:
                if "isolated" in str(exc):
                    raise ValueError(f"{self.label} cannot relax this structure: an atom has no neighbour "
                                     "within the cutoff") from exc
                raise
        final = AseAtomsAdaptor.get_structure(atoms)
        n = len(final)
        max_force = float(np.linalg.norm(forces, axis=1).max()) if n else 0.0
        return Relaxation(
            structure=final,
            energy_per_atom=energies[-1] / n,
            initial_energy_per_atom=energies[0] / n,
            steps=int(opt.nsteps),
            converged=max_force <= fmax,
            max_force=max_force,
            volume_change=float(final.volume / structure.volume),
            seconds=time.perf_counter() - t0,
        )


class CHGNetPotential(Potential):
    """CHGNet: static energies in batches through its own predict_structure (faster than ASE)."""

    def __init__(self, info: PotentialInfo, model):
        from chgnet.model.dynamics import CHGNetCalculator
        from pymatgen.core import Element

        with _quiet():
            calc = CHGNetCalculator(model=model, use_device="cpu", on_isolated_atoms="error")
        n_el = int(model.composition_model.max_num_elements)  # atomic numbers 1..n
        super().__init__(info, calc, frozenset(Element.from_Z(z).symbol for z in range(1, n_el + 1)))
        self.model = model

    def energies(self, structures, batch_size: int = 16) -> np.ndarray:
        items = list(structures) if isinstance(structures, (list, tuple)) else [structures]
        if not items:
            return np.empty(0)
        for s in items:
            self.check_elements(s)
        self.model.graph_converter.set_isolated_atom_response("error")
        try:
            with _quiet():
                preds = self.model.predict_structure(items, task="e", batch_size=batch_size)
        except ValueError:
            if len(items) == 1:
                return np.array([np.nan])
            return np.concatenate([self.energies([s], batch_size) for s in items])
        if isinstance(preds, dict):
            preds = [preds]
        return np.array([float(p["e"]) for p in preds])


def _load_chgnet(info: PotentialInfo) -> Potential:
    import importlib.resources

    import torch
    from chgnet.model import CHGNet

    path = importlib.resources.files("chgnet") / "pretrained/0.3.0/chgnet_0.3.0_e29f68s314m37.pth.tar"
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    with _quiet():
        model = CHGNet.from_dict(state["model"], mlp_out_bias=False, version="0.3.0")
    return CHGNetPotential(info, model.eval())


def _sevennet_globals() -> list:
    """What SevenNet's checkpoints hold besides tensors: numpy arrays in their config."""
    import codecs

    return [(np._core.multiarray._reconstruct, "numpy.core.multiarray._reconstruct"), np.ndarray, np.dtype,
            codecs.encode, np.dtypes.Float32DType, np.dtypes.Float64DType, np.dtypes.Int64DType,
            np.dtypes.Int32DType, np.dtypes.BoolDType]


def _load_sevennet(info: PotentialInfo, pretrained: str) -> Potential:
    import torch
    from pymatgen.core import Element
    from sevenn import _keys as keys
    from sevenn.calculator import SevenNetCalculator
    from sevenn.checkpoint import SevenNetCheckpoint
    from sevenn.util import pretrained_name_to_path

    class _WeightsOnlyCheckpoint(SevenNetCheckpoint):
        def _load(self) -> None:  # SevenNet's own reads with weights_only=False
            with torch.serialization.safe_globals(_sevennet_globals()):
                cp = torch.load(self.checkpoint_path, map_location="cpu", weights_only=True)
            self._config_original = cp.get("config", {})
            self._model_state_dict = cp.get("model_state_dict", {})
            self._optimizer_state_dict = self._scheduler_state_dict = {}
            self._epoch, self._time, self._hash = cp.get("epoch"), "Not found", "Not found"
            from sevenn.checkpoint import _config_cp_routine

            self._config = _config_cp_routine(self._config_original)
            self._loaded = True

    cp = _WeightsOnlyCheckpoint(pretrained_name_to_path(pretrained))
    with _quiet():
        model = cp.build_model()
        model.set_is_batch_data(False)
        calc = SevenNetCalculator(model, file_type="model_instance", device="cpu")
    elements = frozenset(Element.from_Z(int(z)).symbol for z in cp.config[keys.TYPE_MAP])
    return Potential(info, calc, elements)


_LOADERS = {"chgnet": _load_chgnet, "sevennet-0": lambda info: _load_sevennet(info, "7net-0")}


def make_potential(name: str) -> Potential:
    """The pretrained potential `name` (a key of POTENTIALS), loaded now (3-5 s); the app caches it itself."""
    if name not in POTENTIALS:
        raise ValueError(f"Unknown potential {name!r}: choose one of {', '.join(POTENTIALS)}")
    from ..settings import set_torch_threads

    set_torch_threads()
    return _LOADERS[name](POTENTIALS[name])


@lru_cache(maxsize=None)
def load_potential(name: str) -> Potential:
    """make_potential, once per process (the CLI, the engine, the benchmarks)."""
    return make_potential(name)


@contextlib.contextmanager
def _quiet():
    """The potentials print banners and warn about tensors that require grad: not the user's business."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@contextlib.contextmanager
def _one_thread():
    """One thread for torch, OpenMP and BLAS while relaxing: between model calls the cell filter
    solves 3x3 systems while idle OpenMP workers spin-wait; on a busy 2-core machine a 12-step
    relaxation of 4-atom GaN took 7-25 s instead of 0.5 s."""
    import torch
    from threadpoolctl import threadpool_limits

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(n)
