"""Compute precision: float32, bfloat16, or bfloat16 where the hardware computes it natively.

bfloat16 compute with float32 variables (Keras' ``mixed_bfloat16`` policy) has float32's exponent
range, so neither optimizer needs loss scaling and G's small input gradients do not underflow
(float16 would need both). It is native on CPUs with AVX512-BF16 or AMX-BF16 and on NVIDIA GPUs of
compute capability 8.0 (Ampere) or newer, where a step takes about half its float32 time; elsewhere
it is emulated and slower than float32. ``auto`` picks it only where it is native.

Library use, before building the classifier::

    keras.mixed_precision.set_global_policy(tf_pgn.precision_policy('auto'))
"""
import tensorflow as tf

from tf_pgn.config import PRECISIONS

__all__ = ['MIXED_POLICY', 'native_bfloat16', 'precision_policy', 'resolve']

MIXED_POLICY = 'mixed_bfloat16'
_CPU_FLAGS = ('amx_bf16', 'avx512_bf16')  # /proc/cpuinfo's names


def _cpu_flags(cpuinfo: str = '/proc/cpuinfo') -> set:
  """The CPU's feature flags (Linux); empty where they cannot be read."""
  try:
    with open(cpuinfo) as f:
      for line in f:
        if line.startswith('flags'):
          return set(line.partition(':')[2].split())
  except OSError:
    pass
  return set()


def native_bfloat16(cpuinfo: str = '/proc/cpuinfo') -> str | None:
  """What computes bfloat16 natively here, in words, or None. With a GPU, the GPU decides (it
  runs the steps); else the CPU's flags."""
  gpus = tf.config.list_physical_devices('GPU')
  if gpus:
    details = tf.config.experimental.get_device_details(gpus[0])
    capability = details.get('compute_capability')
    if capability and tuple(capability) >= (8, 0):
      name = details.get('device_name', gpus[0].name)
      return f'GPU {name} (compute capability {capability[0]}.{capability[1]})'
    return None
  flags = _cpu_flags(cpuinfo)
  found = [flag for flag in _CPU_FLAGS if flag in flags]
  return f'this CPU ({", ".join(found)})' if found else None


def resolve(precision: str, cpuinfo: str = '/proc/cpuinfo') -> tuple:
  """(Keras dtype policy, a line saying which and why) for a precision in PRECISIONS."""
  if precision not in PRECISIONS:
    raise ValueError(f'unknown precision {precision!r}: use one of {", ".join(PRECISIONS)}')
  if precision == 'float32':
    return 'float32', 'precision: float32'
  if precision == 'bfloat16':
    return MIXED_POLICY, 'precision: bfloat16 compute, float32 variables'
  native = native_bfloat16(cpuinfo)
  if native:
    return MIXED_POLICY, f'precision: bfloat16 compute, float32 variables (auto: {native})'
  return 'float32', ('precision: float32 (auto: no AVX512-BF16/AMX-BF16 CPU or Ampere+ GPU here, '
                     'bfloat16 would be emulated)')


def precision_policy(precision: str = 'auto') -> str:
  """The Keras dtype policy for ``precision`` here: ``'mixed_bfloat16'`` or ``'float32'``."""
  return resolve(precision)[0]
