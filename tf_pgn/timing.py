"""Timing of callables on a shared machine (tf_pgn.bench, tf_pgn.attack_bench)."""
import time

import numpy as np

__all__ = ['median_seconds']


def median_seconds(fns: dict, warmup: int, repeats: int) -> dict:
  """{name: median seconds of one call} of the callables ``fns``, timed round-robin (one call of
  each per round, ``repeats`` rounds, after ``warmup`` untimed calls each) so that a slow spell
  of a shared machine slows all of them alike instead of biasing their ratios."""
  for fn in fns.values():
    for _ in range(warmup):
      fn()
  times = {name: [] for name in fns}
  for _ in range(repeats):
    for name, fn in fns.items():
      t0 = time.perf_counter()
      fn()
      times[name].append(time.perf_counter() - t0)
  return {name: float(np.median(t)) for name, t in times.items()}
