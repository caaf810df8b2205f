"""The experiments' repeats as Ray tasks: independent runs, so they spread over cores or nodes.

Each repeat is `experiments.run_repeat` unchanged, with the shared inputs (the fixed pool, the
reference list, the test split) put in Ray's object store once. A repeat's randomness comes
from its index alone, so the rows equal the sequential run's (at one torch thread per task,
as each task runs). A task whose worker dies is retried.
"""
from __future__ import annotations

from typing import Callable

Progress = Callable[[float, str], None] | None


def _repeat_task(run_repeat, cfg, r, ref, pool_counts, pool_formulas, test, models) -> dict:
    from ..settings import set_torch_threads

    set_torch_threads(1)
    return run_repeat(cfg, r, ref, pool_counts, pool_formulas, test, models)


def run_repeats(run_repeat, cfg, ref, pool_counts, pool_formulas, test, models, progress_callback: Progress = None,
                address: str | None = None, kept: dict[int, dict] | None = None,
                on_row: Callable[[dict], None] | None = None) -> list[dict]:
    """Rows of run_repeat(cfg, r, ...) for r in 0..cfg.repeats-1, in order, on a local Ray or the
    cluster at `address` (the function is passed in: this module imports nothing of the experiments).
    kept: {r: row} finished earlier (a journal), not run again; on_row(row) as each new one arrives."""
    from .ray_screening import gather, start_ray

    rows = dict(kept or {})
    todo = [r for r in range(cfg.repeats) if r not in rows]
    if todo:
        ray = start_ray(address)
        task = ray.remote(num_cpus=1, max_retries=2)(_repeat_task)
        shared = [ray.put(x) for x in (ref, pool_counts, pool_formulas, test)]
        pending = {task.remote(run_repeat, cfg, r, *shared, models): r for r in todo}
        rows.update(gather(ray, pending, progress_callback, f"{cfg.name} repeat",
                           on_result=(lambda r, row: on_row(row)) if on_row else None, already=len(rows)))
    return [rows[r] for r in range(cfg.repeats)]
