"""The training loop: epochs, EMA evaluation, robustness probe, checkpoints/resume, logging.

A run directory holds ``config.json`` (the flags), ``ckpt/`` (CheckpointManager: both networks,
both optimizers, the EMA classifier, the random generator, epoch and step), ``tb/`` (TensorBoard),
``metrics.jsonl`` (one line per epoch) and, when training ends, ``export/classifier`` (SavedModel
of the EMA classifier) and, for PGN, ``export/generator``. Under ``--distribute`` only the chief
writes there (``tf_pgn.distribute``), holding the directory's lock (``tf_pgn.locks``) while it runs.
A write that fails (a full disk) stops the run in one line (``io_utils.WriteError``) and leaves the
last complete checkpoint.
"""
import contextlib
import json
import math
import os
import re
import shutil
import time

import numpy as np
import tensorflow as tf

from tf_pgn import data as data_lib
from tf_pgn import distribute
from tf_pgn import locks
from tf_pgn import perturbation
from tf_pgn.config import TrainConfig, budget_label
from tf_pgn.defenses import AdversarialTrainer
from tf_pgn.export import export_saved_model
from tf_pgn.io_utils import (read_jsonl, reporting_write_errors, write_json_atomic,
                             write_text_atomic)
from tf_pgn.progress import Progress


class TrainError(RuntimeError):
  """Training cannot go on; the message names the problem and the fix."""


def _check_run_dir(cfg: TrainConfig, run_dir: str) -> None:
  """Refuses a run directory made with another dataset, defense or architecture."""
  path = os.path.join(run_dir, 'config.json')
  if not os.path.exists(path):
    return
  try:
    with open(path) as f:
      old = TrainConfig.from_dict(json.load(f))
  except (ValueError, TypeError) as e:
    raise TrainError(f'{path} is unreadable ({e}): use a new --run_dir') from None
  diff = {k: (v, cfg.architecture()[k]) for k, v in old.architecture().items()
          if cfg.architecture()[k] != v}
  if diff:
    what = ', '.join(f'{k}={a} (now {b})' for k, (a, b) in diff.items())
    raise TrainError(f'{run_dir} was made with {what}: use a new --run_dir or the same flags')


def _check_data(run_dir: str, record: dict) -> None:
  """Writes ``record`` (dataset, fingerprint, provenance) to ``run_dir/data.json``, or refuses to
  resume a run directory whose record has another fingerprint."""
  path = os.path.join(run_dir, 'data.json')
  if os.path.exists(path):
    with open(path) as f:
      old = json.load(f)
    if old.get('fingerprint') != record['fingerprint']:
      raise TrainError(f'{run_dir} was trained on data with fingerprint {old.get("fingerprint")}, '
                       f'this --data_dir gives {record["fingerprint"]}: pass the same data or a '
                       'new --run_dir')
    return
  write_json_atomic(path, record)


def _numerics_culprit(error: tf.errors.InvalidArgumentError) -> str:
  """'op "Name" (file:line) in "graph"' from a check_numerics error: the first op that made a
  NaN/Inf, the last line of tf_pgn code that built it and the function graph it ran in, as far
  as the message tells (under strategy.run the user frames are elided)."""
  message = error.message
  op = re.search(r'op "([^"]+)"', message)
  where = re.findall(r'File "([^"]*tf_pgn[^"]*)", line (\d+)', message)
  graph = re.search(r'Graph name: "([^"]+)"', message)
  text = f'op "{op.group(1)}"' if op else 'an op'
  if where:
    text += f' ({os.path.basename(where[-1][0])}:{where[-1][1]})'
  if graph:
    text += f' in "{graph.group(1)}"'
  return text


def _remove(paths) -> None:
  """Removes each file or folder of ``paths``."""
  for path in paths:
    if os.path.isdir(path):
      shutil.rmtree(path, ignore_errors=True)
    else:
      with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def _remove_unlisted_checkpoints(directory: str) -> None:
  """Removes what a failed save left in a checkpoint folder: every file of a checkpoint its state
  file does not list (TF's ``ckpt-N_temp/``, a data or index file) and temporary state files."""
  state = tf.train.get_checkpoint_state(directory)
  listed = {os.path.basename(p) for p in state.all_model_checkpoint_paths} if state else set()
  _remove(os.path.join(directory, name) for name in os.listdir(directory)
          if name != 'checkpoint' and name.split('.')[0] not in listed)


def _predict_fn(model):
  return tf.function(lambda x: model(x, training=False))


def evaluate_accuracy(model, split: data_lib.Split, batch_size: int = 500) -> float:
  """Benign accuracy of ``model`` on ``split``."""
  predict = _predict_fn(model)
  correct = 0
  for x, y in data_lib.eval_pipeline(split, batch_size):
    correct += int(tf.reduce_sum(tf.cast(tf.argmax(predict(x), -1, tf.int32) == y, tf.int32)))
  return correct / max(1, len(split.y))


class Trainer:
  """Trains one defense into one run directory, resuming whatever it holds."""

  def __init__(self, cfg: TrainConfig, run_dir: str, data_dir: str | None = None):
    self.strategy = distribute.make_strategy(cfg.distribute, cfg.cpu_replicas)  # before any op
    replicas = self.strategy.num_replicas_in_sync
    if cfg.batch_size % replicas:
      raise TrainError(f'--batch_size={cfg.batch_size} does not split over {replicas} replicas: '
                       f'use a multiple of {replicas}')
    self.is_chief = distribute.is_chief(self.strategy)
    _check_run_dir(cfg, run_dir)
    self.cfg, self.run_dir = cfg, run_dir
    # Non-chief workers save into a folder of their own (deleted at the end): every worker must
    # take part in a save, only the chief's is kept.
    self.own_dir = distribute.worker_dir(run_dir, self.strategy)
    if cfg.deterministic:
      tf.config.experimental.enable_op_determinism()
    ds = data_lib.load(cfg.dataset, data_dir)
    if ds.provenance.startswith('unverified'):
      self._log(f'warning: data {ds.provenance}')
    self.data_record = dict(dataset=ds.name, fingerprint=ds.fingerprint,
                            provenance=ds.provenance)
    self.num_classes = ds.num_classes
    self.train_split = data_lib.subset(ds.train, cfg.train_size)
    self.test_split = data_lib.subset(ds.test, cfg.test_size)
    self.probe_split = data_lib.subset(ds.test, cfg.probe_size)
    self.steps_per_epoch = len(self.train_split.y) // cfg.batch_size
    if self.steps_per_epoch == 0:
      raise TrainError(f'{len(self.train_split.y)} training images is fewer than one batch of '
                       f'{cfg.batch_size}: lower --batch_size or raise --train_size')
    self.model = AdversarialTrainer(cfg, self.num_classes, self.strategy)
    with self.strategy.scope():
      self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name='epoch')
      self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name='step')
    self.ckpt = tf.train.Checkpoint(epoch=self.epoch, step=self.step,
                                    **self.model.trackables())
    # Every worker restores the chief's checkpoints and saves into its own folder.
    self.manager = tf.train.CheckpointManager(self.ckpt, os.path.join(run_dir, 'ckpt'),
                                              max_to_keep=cfg.keep_checkpoints)
    self.save_manager = self.manager if self.is_chief else tf.train.CheckpointManager(
        self.ckpt, os.path.join(self.own_dir, 'ckpt'), max_to_keep=1)
    self.metrics_path = os.path.join(run_dir, 'metrics.jsonl')
    # PGD from x (steps of 2.5 eps / steps) and FGM: a single-step defense that overfits to its
    # attack (catastrophic overfitting) shows FGM accuracy far above PGD accuracy.
    eps = cfg.probe_budget
    self._probes = {
        f'probe_pgd{budget_label(eps, cfg.norm)}_acc': tf.function(
            lambda x, y: perturbation.gradient_ascent(
                self.model.ema_classifier, x, y, eps, 2.5 * eps / cfg.probe_steps,
                cfg.probe_steps, cfg.norm)),
        f'probe_fgm{budget_label(eps, cfg.norm)}_acc': tf.function(
            lambda x, y: perturbation.fgm(self.model.ema_classifier, x, y, eps, cfg.norm))}

  # -- checkpoints -------------------------------------------------------------------------
  def restore(self) -> bool:
    """Restores the newest readable checkpoint; a corrupt one is reported and skipped."""
    for path in reversed(self.manager.checkpoints):
      try:
        self.ckpt.restore(path).assert_existing_objects_matched()
        return True
      except (tf.errors.OpError, AssertionError, ValueError, IndexError) as e:
        print(f'warning: checkpoint {path} is unreadable ({type(e).__name__}), trying the '
              'previous one', flush=True)
    return False

  def save(self) -> None:
    """Checkpoints the current step; a save that fails removes what it wrote, keeping the last
    complete checkpoint, and raises a WriteError."""
    number, directory = int(self.step.numpy()), self.save_manager.directory
    with reporting_write_errors(os.path.join(directory, f'ckpt-{number}'),
                                cleanup=lambda: _remove_unlisted_checkpoints(directory)):
      self.save_manager.save(checkpoint_number=number)
    self._last_save = time.monotonic()

  def _checkpoint_due(self, step: int) -> bool:
    minutes = self.cfg.checkpoint_every_minutes
    return step % self.cfg.checkpoint_every_steps == 0 or (
        minutes is not None and time.monotonic() - self._last_save >= 60 * minutes)

  # -- loop --------------------------------------------------------------------------------
  def run(self) -> dict:
    """Trains to ``cfg.epochs`` and exports; returns the last epoch's metrics. The chief holds the
    run directory's lock meanwhile.

    Raises:
      LockError: another process trains in the run directory.
      WriteError: a checkpoint, metrics, snapshot or export could not be written.
    """
    with locks.hold(self.run_dir) if self.is_chief else contextlib.nullcontext():
      return self._run()

  def _run(self) -> dict:
    cfg = self.cfg
    os.makedirs(self.own_dir, exist_ok=True)
    if self.is_chief:
      _check_data(self.run_dir, self.data_record)
      write_text_atomic(os.path.join(self.run_dir, 'config.json'), cfg.to_json())
    self._log(self.model.precision_note)
    if self.restore():
      self._log(f'resuming {self.run_dir} at epoch {int(self.epoch.numpy())}, step '
                f'{int(self.step.numpy())}')
    writer = (tf.summary.create_file_writer(os.path.join(self.run_dir, 'tb')) if self.is_chief
              else tf.summary.create_noop_writer())
    self._last_save, last = time.monotonic(), None
    if cfg.debug_numerics:
      tf.debugging.enable_check_numerics()
    try:
      while int(self.epoch.numpy()) < cfg.epochs:
        with writer.as_default():
          last = self._run_epoch(int(self.epoch.numpy()))
    finally:
      if cfg.debug_numerics:
        tf.debugging.disable_check_numerics()
    self._export()
    if not self.is_chief:
      shutil.rmtree(self.own_dir, ignore_errors=True)
    return last or (read_jsonl(self.metrics_path) or [{}])[-1]

  def _log(self, line: str) -> None:
    if self.is_chief:
      print(line, flush=True)

  def _run_epoch(self, epoch: int) -> dict:
    cfg = self.cfg
    done = int(self.step.numpy()) - epoch * self.steps_per_epoch
    batches = self.strategy.experimental_distribute_dataset(data_lib.train_pipeline(
        self.train_split, cfg.batch_size, cfg.seed, epoch, skip_batches=done,
        augment=cfg.augment))
    sums, count, t0 = {}, 0, time.perf_counter()
    bar = Progress(f'epoch {epoch + 1}/{cfg.epochs}', self.steps_per_epoch, initial=done,
                   unit='step', every_seconds=cfg.progress_seconds, enabled=self.is_chief)
    keep = 'the last good checkpoint is kept; lower --lr or raise --c_l and rerun'
    with bar:
      for x, y in batches:
        try:
          out = {k: float(v) for k, v in self.model.train_step(x, y).items()}
        except tf.errors.InvalidArgumentError as e:
          if not cfg.debug_numerics:
            raise
          raise TrainError(f'--debug_numerics: {_numerics_culprit(e)} made a NaN/Inf at step '
                           f'{int(self.step.numpy()) + 1}; {keep}') from None
        if not all(math.isfinite(v) for v in out.values()):
          bad = ', '.join(k for k, v in out.items() if not math.isfinite(v))
          raise TrainError(f'non-finite {bad} at step {int(self.step.numpy()) + 1}: {keep} (or '
                           'rerun with --debug_numerics to find the op)')
        self.step.assign_add(1)
        count += 1
        for k, v in out.items():
          sums[k] = sums.get(k, 0.0) + v
        step = int(self.step.numpy())
        if step % 20 == 0:
          for k, v in out.items():
            tf.summary.scalar(f'train/{k}', v, step=step)
        bar.update(1, loss=f'{out["loss"]:.3f}', acc=f'{out["train_acc"]:.3f}',
                   img_s=f'{count * cfg.batch_size / (time.perf_counter() - t0):.0f}')
        if self._checkpoint_due(step):
          self.save()
    seconds = time.perf_counter() - t0
    row = dict(epoch=epoch + 1, step=int(self.step.numpy()),
               **{f'train_{k}' if not k.startswith('train') else k: v / max(count, 1)
                  for k, v in sums.items()},
               epoch_seconds=seconds, images_per_second=count * cfg.batch_size / seconds,
               resumed_mid_epoch=done > 0, precision=self.model.classifier.compute_dtype)
    row['test_acc'] = evaluate_accuracy(self.model.ema_classifier, self.test_split)
    row.update(self._probe_accuracies())
    # The snapshot and the metrics row come before the epoch's checkpoint: a kill between redoes
    # them, where after it the rerun would go on without them.
    if cfg.snapshot_every_epochs and (epoch + 1) % cfg.snapshot_every_epochs == 0:
      self._snapshot(epoch + 1)
    if self.is_chief:
      self._append_metrics(row)
    self.epoch.assign(epoch + 1)
    self.save()
    for k, v in row.items():
      if isinstance(v, float):
        tf.summary.scalar(f'epoch/{k}', v, step=epoch + 1)
    if self.model.generator is not None:
      self._log_pgn_images(epoch + 1)
    self._log(' '.join(f'{k}={v:.4g}' if isinstance(v, float) else f'{k}={v}'
                       for k, v in row.items()))
    return row

  def _snapshot(self, epoch: int) -> None:
    """The EMA classifier's weights at the end of ``epoch`` in epochs/epoch-N (Figure 2 right:
    ``evaluate.py --ckpt=<run>/epochs/epoch-N``). Written under a temporary prefix, then renamed
    data file first, index last: a reader finds the index only beside complete data; a write that
    fails removes the temporary files. Every worker writes (a save is collective); the others'
    copies go with their own folder."""
    folder = os.path.join(self.own_dir, 'epochs')
    tmp = os.path.join(folder, '.tmp-snapshot')
    final = os.path.join(folder, f'epoch-{epoch}')
    with reporting_write_errors(final, cleanup=lambda: _remove(tf.io.gfile.glob(tmp + '*'))):
      tf.train.Checkpoint(ema_classifier=self.model.ema_classifier).write(tmp)
      suffixes = sorted((p[len(tmp):] for p in tf.io.gfile.glob(tmp + '.*')),
                        key=lambda suffix: suffix == '.index')
      for suffix in suffixes:
        os.replace(tmp + suffix, final + suffix)

  def _probe_accuracies(self) -> dict:
    """Accuracy of the EMA classifier under each probe (PGD, FGM at probe_eps) on the first test
    images."""
    x = tf.constant(data_lib.to_float(self.probe_split.x))
    y = self.probe_split.y
    accuracies = {}
    for key, probe in self._probes.items():
      pred = tf.argmax(self.model.ema_classifier(probe(x, tf.constant(y))), -1, tf.int32).numpy()
      accuracies[key] = float(np.mean(pred == y))
    return accuracies

  def _append_metrics(self, row: dict) -> None:
    """Rewrites metrics.jsonl atomically, replacing a line a killed run left for this epoch."""
    rows = [r for r in read_jsonl(self.metrics_path) if r['epoch'] < row['epoch']] + [row]
    write_text_atomic(self.metrics_path, ''.join(json.dumps(r) + '\n' for r in rows))

  def _log_pgn_images(self, epoch: int) -> None:
    """TensorBoard grid: x, x_adv and the perturbation amplified to fill [0, 1]."""
    x = tf.constant(data_lib.to_float(self.probe_split.x[:8]))
    onehot = tf.one_hot(self.probe_split.y[:8], self.num_classes)
    x_adv, _ = self.model.generate(x, onehot)
    delta = x_adv - x
    amp = 0.5 + 0.5 * delta / (tf.reduce_max(tf.abs(delta)) + 1e-12)
    grid = tf.concat([x, x_adv, amp], axis=2)  # each row: x | x_adv | amplified delta
    tf.summary.image('pgn/x_xadv_delta', grid, step=epoch, max_outputs=8)

  def _export(self) -> None:
    export_saved_model(self.model.ema_classifier, os.path.join(self.own_dir, 'export',
                                                               'classifier'))
    if self.model.generator is not None:
      export_saved_model(self.model.generator, os.path.join(self.own_dir, 'export',
                                                            'generator'))


def train(cfg: TrainConfig, run_dir: str, data_dir: str | None = None) -> dict:
  """Trains (or resumes) ``cfg`` in ``run_dir``; returns the last epoch's metrics."""
  return Trainer(cfg, run_dir, data_dir).run()
