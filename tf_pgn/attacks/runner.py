"""Batched execution of attacks and predictions over numpy arrays."""

import io
import os
import time

import numpy as np
import tensorflow as tf

from tf_pgn.io_utils import write_bytes_atomic
from tf_pgn.progress import DEFAULT_SECONDS, Progress

__all__ = ['finished_batches', 'predict', 'run_attack']

# Attacks compute in float32; anything further outside [0, 1] than this is a bug, not rounding.
_RANGE_TOLERANCE = 1e-5


def _batch_slices(n, batch_size):
  return [slice(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]


def finished_batches(resume_dir: str) -> int:
  """How many batches ``run_attack`` has saved in ``resume_dir``."""
  return len([n for n in os.listdir(resume_dir) if n.endswith(('.npy', '.npz'))])


def run_attack(attack_fn, model, x, y, batch_size=256, progress_desc=None, resume_dir=None,
               aux=False, progress_seconds=DEFAULT_SECONDS):
  """Run ``attack_fn(model, x_batch, y_batch) -> x_adv_batch`` over ``x, y`` in batches.

  Args:
    attack_fn: callable returning adversarial inputs for one batch (tensor or array).
    model: the classifier, passed through to ``attack_fn``.
    x: float32 numpy inputs ``[N, ...]`` in [0, 1].
    y: integer numpy labels ``[N]``.
    batch_size: examples per call of ``attack_fn``.
    progress_desc: if given, progress with this description is shown (``tf_pgn.progress``: a
      bar on a terminal, else a line every ``progress_seconds``), with the mean images/s.
    resume_dir: if given, each finished batch is saved there (``<index>.npy``, atomically) and
      a batch already saved is loaded instead of attacked again: a killed run loses at most
      the batch in progress. The caller owns the folder (and must empty it when the attack or
      its settings change).
    aux: ``attack_fn`` returns ``(x_adv_batch, aux_batch)``, ``aux_batch`` one integer per
      example (a worst case's which-attack-broke-it); saved with the batch (``<index>.npz``).

  Returns:
    float32 numpy ``x_adv`` shaped like ``x``, clipped to [0, 1]; with ``aux``, the pair
    ``(x_adv, aux)``, ``aux`` an int32 array [N].

  Raises:
    AssertionError: if the attack returns values outside [0, 1] by more than rounding.
  """
  x = np.asarray(x, np.float32)
  y = np.asarray(y)
  x_adv = np.empty_like(x)
  aux_all = np.empty(len(x), np.int32)
  bar = Progress(progress_desc, len(x), unit='img', every_seconds=progress_seconds,
                 enabled=bool(progress_desc))
  start_time = time.perf_counter()
  with bar:
    for index, batch in enumerate(_batch_slices(len(x), batch_size)):
      saved = resume_dir and os.path.join(resume_dir, f'{index:05d}.{"npz" if aux else "npy"}')
      if saved and os.path.exists(saved):
        loaded = np.load(saved)
        adv, extra = (loaded['x_adv'], loaded['aux']) if aux else (loaded, None)
      else:
        out = attack_fn(model, tf.constant(x[batch]), tf.constant(y[batch]))
        adv, extra = ((np.asarray(out[0], np.float32), np.asarray(out[1], np.int32)) if aux
                      else (np.asarray(out, np.float32), None))
        if saved:
          buffer = io.BytesIO()
          if aux:
            np.savez(buffer, x_adv=adv, aux=extra)
          else:
            np.save(buffer, adv)
          write_bytes_atomic(saved, buffer.getvalue())
      assert adv.shape == x[batch].shape, (adv.shape, x[batch].shape)
      assert adv.min() >= -_RANGE_TOLERANCE and adv.max() <= 1.0 + _RANGE_TOLERANCE, (
          f'attack returned values in [{adv.min()}, {adv.max()}], outside [0, 1]')
      x_adv[batch] = np.clip(adv, 0.0, 1.0)
      if aux:
        aux_all[batch] = extra
      bar.update(batch.stop - batch.start,
                 img_s=f'{batch.stop / (time.perf_counter() - start_time):.1f}')
  return (x_adv, aux_all) if aux else x_adv


def predict(model, x, batch_size=256):
  """Logits of ``model`` on numpy ``x``, computed in batches, as a float32 numpy array."""
  x = np.asarray(x, np.float32)
  return np.concatenate([np.asarray(model(tf.constant(x[batch])), np.float32)
                         for batch in _batch_slices(len(x), batch_size)])
