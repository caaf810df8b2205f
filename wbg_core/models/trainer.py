"""One Trainer for every model's epochs: resume, seeding, best state, timing, progress, saving.

Why: the autoencoder, the oracle's members and the GAN each repeated the same bookkeeping
(resume signature, best-state copies, timer, per-epoch save) around their own step; a fix to
one (resuming the scheduler) did not reach the others. A model now supplies only its epoch
body and says what it measured (`trainer.log(...)`); the Trainer does the rest. Progress goes
to stderr (tqdm, for people) and, when a progress file is set (`wbg train --progress-file`,
which the app's job runner passes), one JSON line per epoch that the app reads instead of
scraping tqdm's text.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .progress_log import append_progress
from .training import TrainState, Timer, progress, seed_epoch

class Trainer:
    """for epoch, rng in trainer.epochs(): <one epoch>; trainer.log(val_x=..., ...)

    modules and optimizers are saved and restored by name; `scheduler` (optional) too.
    `best_key`: the logged value whose lowest epoch is kept as the best state (None: the last).
    Each epoch reseeds torch and numpy from (seed, epoch), so a resumed run continues exactly
    as the uninterrupted one would have.
    """

    def __init__(self, directory: Path, signature: dict, modules: dict[str, torch.nn.Module],
                 optimizers: dict[str, torch.optim.Optimizer], *, label: str, seed: int, scheduler=None,
                 best_key: str | None = None, best_module: str | None = None):
        self.state = TrainState(Path(directory), signature=signature)
        self.modules, self.optimizers, self.scheduler = modules, optimizers, scheduler
        self.label, self.seed, self.best_key = label, seed, best_key
        self.best_module = best_module or next(iter(modules))
        self._best: dict[str, torch.Tensor] | None = None
        self._record: dict | None = None
        resumed = self.state.try_resume(modules, optimizers)
        if resumed:
            tensors, extra = resumed
            if scheduler is not None:
                scheduler.load_state_dict({**scheduler.state_dict(), **extra.get("sched", {})})
            self._best = {k[len("best."):]: v for k, v in tensors.items() if k.startswith("best.")} or None
            print(f"resuming {label} after epoch {self.state.epoch}", file=sys.stderr)

    @property
    def net(self) -> torch.nn.Module:
        return self.modules[self.best_module]

    def best_state(self) -> dict[str, torch.Tensor]:
        """The best epoch's weights (or the current ones when nothing was kept yet)."""
        return self._best if self._best is not None else {k: v.clone() for k, v in self.net.state_dict().items()}

    def log(self, **metrics) -> None:
        """What this epoch measured: goes to the history, the progress line and the best-state choice."""
        self._record = metrics

    def epochs(self, total: int) -> Iterator[tuple[int, np.random.Generator]]:
        bar = progress(total, self.state.epoch, self.label)
        for epoch in bar:
            rng = seed_epoch(self.seed, epoch)
            timer = Timer()
            self._record = None
            yield epoch, rng
            if self._record is None:
                raise RuntimeError(f"{self.label}: the epoch body must call trainer.log(...)")
            self._end_epoch(epoch, total, timer(), bar)

    def _end_epoch(self, epoch: int, total: int, seconds: float, bar) -> None:
        st = self.state
        st.epoch = epoch + 1
        st.history.append({"epoch": epoch + 1, **self._record})
        if self.best_key is not None and self._record[self.best_key] < st.best:
            st.best = float(self._record[self.best_key])
            self._best = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        st.elapsed_s += seconds
        shown = {k: v for k, v in self._record.items() if isinstance(v, float)}
        if shown and hasattr(bar, "set_postfix"):
            bar.set_postfix({k: f"{v:.4g}" for k, v in list(shown.items())[:3]})
        extra_tensors = {f"best.{k}": v for k, v in self._best.items()} if self._best is not None else None
        extra = {"sched": {k: v for k, v in self.scheduler.state_dict().items() if isinstance(v, (int, float, list))}} \
            if self.scheduler is not None else None
        st.save(self.modules, self.optimizers, extra_tensors=extra_tensors, extra=extra)
        rate = st.elapsed_s / max(1, len(st.history))
        append_progress({"label": self.label, "epoch": epoch + 1, "epochs": total, "elapsed_s": round(st.elapsed_s, 1),
                         "eta_s": round(rate * (total - epoch - 1), 1),
                         **{k: v for k, v in self._record.items() if isinstance(v, (int, float))}})
