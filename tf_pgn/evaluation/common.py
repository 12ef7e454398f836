"""What every part of the evaluation shares: its error, the result keys, JSON-safe numbers and
the labels of boxes and norms."""
import math

import numpy as np


BOXES = {'whitebox': 'white-box', 'blackbox': 'black-box'}

NORM_LABELS = {'l2': 'L2', 'linf': 'Linf'}


class EvalError(ValueError):
  """The evaluation cannot run as asked; the message says why and what to pass instead."""


def result_key(name: str, setting: dict) -> str:
  return name + ''.join(f'_{k}{v:g}' for k, v in setting.items())


# -- metrics ---------------------------------------------------------------------------------
def json_safe(obj):
  """numpy scalars to Python numbers, tuples to lists, NaN and infinities to None."""
  if isinstance(obj, dict):
    return {str(k): json_safe(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [json_safe(v) for v in obj]
  if isinstance(obj, (float, np.floating)):
    return float(obj) if math.isfinite(obj) else None
  if isinstance(obj, np.integer):
    return int(obj)
  return obj


def fmt(value, digits: int = 3) -> str:
  return '-' if value is None or value != value else f'{value:.{digits}f}'
