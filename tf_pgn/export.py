"""SavedModel export of trained networks and loading of a classifier from either form."""
import hashlib
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf

from tf_pgn.io_utils import reporting_write_errors


class ModelLoadError(ValueError):
  """A path is neither a run directory nor a SavedModel."""


def export_saved_model(model, path: str) -> None:
  """Writes ``model`` as a SavedModel (endpoint ``serve``) at ``path``, atomically: a reader sees
  the old export or the complete new one, never a half-written folder.

  Raises:
    WriteError: the export could not be written (a full disk); its temporary folder is removed.
  """
  parent = os.path.dirname(os.path.abspath(path))
  with reporting_write_errors(path):
    os.makedirs(parent, exist_ok=True)
    for stale in os.listdir(parent):  # left by an export that was killed
      if stale.startswith(('.export-', '.old-')):
        shutil.rmtree(os.path.join(parent, stale), ignore_errors=True)
    tmp = tempfile.mkdtemp(prefix='.export-', dir=parent)
    try:
      model.export(os.path.join(tmp, 'model'), format='tf_saved_model', verbose=False)
      old = None
      if os.path.exists(path):
        old = tempfile.mkdtemp(prefix='.old-', dir=parent)
        os.rename(path, os.path.join(old, 'model'))
      os.rename(os.path.join(tmp, 'model'), path)
      if old:
        shutil.rmtree(old)
    finally:
      shutil.rmtree(tmp, ignore_errors=True)


def load_saved_model(path: str):
  """A callable mapping float32 [N, H, W, C] images in [0, 1] to logits."""
  if not tf.saved_model.contains_saved_model(path):
    raise ModelLoadError(f'{path} holds no SavedModel')
  loaded = tf.saved_model.load(path)
  if not hasattr(loaded, 'serve'):
    raise ModelLoadError(f'{path} has no "serve" endpoint: export it with tf_pgn (train.py)')
  return SavedModelClassifier(loaded)


class SavedModelClassifier:
  """Calls a loaded SavedModel's ``serve`` endpoint; holds the object that owns its variables.
  ``input_shape`` is the endpoint's, batch axis included."""

  def __init__(self, loaded):
    self._loaded = loaded
    signature = loaded.serve.concrete_functions[0].structured_input_signature
    self.input_shape = tuple(signature[0][0].shape)

  @property
  def weights(self) -> list:
    """The variables ``serve`` reads (what ``weights_digest`` hashes)."""
    return list(self._loaded.serve.concrete_functions[0].variables)

  def __call__(self, x, training=False):
    del training  # inference only
    return self._loaded.serve(x)


def weights_digest(model) -> str | None:
  """A digest of ``model``'s weights (its ``weights``, else ``variables``): equal for two models
  with equal weights, whatever their paths, names or variable order (a run directory's EMA
  classifier and its SavedModel export agree), different once one weight differs. None for a
  callable without variables, which nothing but its name identifies."""
  variables = getattr(model, 'weights', None)
  if variables is None:
    variables = getattr(model, 'variables', None)
  if not variables:
    return None
  parts = sorted(hashlib.sha256(str(a.dtype).encode() + str(a.shape).encode() +
                                np.ascontiguousarray(a).tobytes()).hexdigest()
                 for a in (np.asarray(v) for v in variables))
  return hashlib.sha256(''.join(parts).encode()).hexdigest()[:16]


def load_classifier(path: str):
  """The classifier at ``path``: a run directory (EMA weights of its newest checkpoint) or a
  SavedModel directory. Returns (callable model, number of classes, description)."""
  import json  # pylint: disable=g-import-not-at-top
  from tf_pgn import data, models  # pylint: disable=g-import-not-at-top
  from tf_pgn.config import TrainConfig  # pylint: disable=g-import-not-at-top
  config_path = os.path.join(path, 'config.json')
  snapshot = os.path.isfile(path + '.index')  # <run>/epochs/epoch-N (trainer._snapshot)
  if snapshot:
    config_path = os.path.join(os.path.dirname(os.path.dirname(path)), 'config.json')
  if os.path.isfile(config_path):
    with open(config_path) as f:
      cfg = TrainConfig.from_dict(json.load(f))
    num_classes = data.NUM_CLASSES[cfg.dataset]
    model = models.build_classifier(num_classes, cfg.width, name='ema_classifier')
    latest = path if snapshot else tf.train.latest_checkpoint(os.path.join(path, 'ckpt'))
    if latest is None:
      raise ModelLoadError(f'run directory {path} has no checkpoint yet: train it first')
    tf.train.Checkpoint(ema_classifier=model).restore(latest).expect_partial()
    return model, num_classes, f'{path} (EMA weights of {os.path.basename(latest)})'
  if os.path.isdir(path) and tf.saved_model.contains_saved_model(path):
    model = load_saved_model(path)
    num_classes = int(model(tf.zeros([1, *model.input_shape[1:]])).shape[-1])
    return model, num_classes, f'{path} (SavedModel)'
  raise ModelLoadError(f'{path} is neither a run directory (with config.json), an epoch snapshot '
                       'of one nor a SavedModel directory: pass --ckpt=runs/NAME, '
                       'runs/NAME/epochs/epoch-N or runs/NAME/export/classifier')
