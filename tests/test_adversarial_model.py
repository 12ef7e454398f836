"""AdversarialModel: any Keras classifier (functional, Sequential, subclassed) trained by model.fit
with the command line's step, Keras callbacks, the EMA's shadow weights validated, checkpointed
and exported, RobustnessProbe feeding EarlyStopping, tf_pgn.evaluate, and BackupAndRestore across
a SIGKILL."""
import json
import os
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_pgn
from conftest import REPO
from tf_pgn import models
from tf_pgn.callbacks import RobustnessProbe
from tf_pgn.config import make_config
from tf_pgn.defenses import AdversarialTrainer
from tf_pgn.errors import InputError
from tf_pgn.export import load_saved_model


def _bn_cnn(shape=(8, 8, 1), num_classes=4):
  """A user's classifier with batch norm, on images that are not CIFAR's."""
  inputs = keras.Input(shape)
  h = keras.layers.Conv2D(8, 3, padding='same', use_bias=False)(inputs)
  h = keras.layers.ReLU()(keras.layers.BatchNormalization(momentum=0.5)(h))
  h = keras.layers.GlobalAveragePooling2D()(h)
  return keras.Model(inputs, keras.layers.Dense(num_classes)(h), name='user_cnn')


def _data(n=64, shape=(8, 8, 1), num_classes=4, batch=16):
  rng = np.random.default_rng(0)
  x = rng.uniform(size=(n, *shape)).astype(np.float32)
  y = rng.integers(0, num_classes, n)
  return x, y, tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)


def test_fit_with_callbacks_trains_a_user_model_and_exports_its_ema(tmp_path):
  keras.utils.set_random_seed(0)
  classifier = _bn_cnn()
  model = tf_pgn.AdversarialModel(classifier, tf_pgn.PGN(c_l=1.0, gen_steps=2, zero_init=True),
                                  ema_decay=0.5, seed=0)
  assert model.generator.output_shape == (None, 8, 8, 1)  # Figure 1's G, built for 8x8x1
  model.compile(classifier_optimizer=keras.optimizers.Adam(1e-2),
                generator_optimizer=keras.optimizers.Adam(1e-3))
  x, y, ds = _data()
  bn = classifier.layers[2]
  moving_mean = bn.moving_mean.numpy().copy()
  history = model.fit(ds, epochs=2, validation_data=ds, verbose=0, callbacks=[
      keras.callbacks.ModelCheckpoint(str(tmp_path / 'best.weights.h5'), 'val_accuracy',
                                      mode='max', save_best_only=True, save_weights_only=True),
      keras.callbacks.EarlyStopping('val_loss', patience=5),
      keras.callbacks.TensorBoard(str(tmp_path / 'tb'))])
  assert {'loss', 'gen_loss', 'train_acc', 'clean_acc', 'pert_l2', 'val_accuracy',
          'val_loss'} <= history.history.keys()
  assert int(model.classifier_optimizer.iterations) == 8
  assert int(model.generator_optimizer.iterations) == 16  # gen_steps G updates per F update
  assert model.optimizer is model.classifier_optimizer
  assert not np.array_equal(moving_mean, bn.moving_mean.numpy())  # F's loss in training mode
  assert os.path.exists(tmp_path / 'best.weights.h5') and os.listdir(tmp_path / 'tb')
  ema = model.ema_classifier
  assert len(ema.weights) == len(classifier.trainable_weights)  # shadows of F's trainable weights
  assert any(not np.array_equal(a, b.numpy())
             for a, b in zip(ema.get_weights(), classifier.trainable_weights))
  model.export_classifier(str(tmp_path / 'classifier'))
  served = load_saved_model(str(tmp_path / 'classifier'))
  np.testing.assert_allclose(served(x).numpy(), ema(x, training=False).numpy(), atol=1e-5)
  np.testing.assert_allclose(model.predict(x, verbose=0), served(x).numpy(), atol=1e-5)
  report = tf_pgn.evaluate(str(tmp_path / 'classifier'), x, y, attacks=['pgd', 'cw'],
                           eps_list=[0.5], pgd_steps=2, cw_iterations=3, cw_search_steps=1,
                           unbounded_steps=2)
  assert report['num_examples'] == 64 and list(report['attacks']) == ['pgd_eps0.5', 'cw']
  assert report['benign_accuracy'] == pytest.approx(np.mean(served(x).numpy().argmax(-1) == y))
  assert report['attacks']['pgd_eps0.5']['whitebox']['max_l2'] <= 0.5 + 1e-4


class _SubclassedCNN(keras.Model):
  """A user's subclassed classifier with batch norm: no input shape until it is called."""

  def __init__(self, num_classes=4):
    super().__init__(name='subclassed_cnn')
    self.conv = keras.layers.Conv2D(8, 3, padding='same', use_bias=False)
    self.bn = keras.layers.BatchNormalization(momentum=0.5)
    self.head = keras.layers.Dense(num_classes)

  def call(self, x, training=False):
    h = keras.ops.relu(self.bn(self.conv(x), training=training))
    return self.head(keras.ops.mean(h, axis=(1, 2)))


def _built_subclassed(x):
  classifier = _SubclassedCNN()
  classifier(x[:1])
  return classifier


def test_a_subclassed_classifier_trains_uncloned_and_its_ema_is_validated_saved_and_exported(
    tmp_path):
  keras.utils.set_random_seed(0)
  x, y, ds = _data()
  with pytest.raises(InputError, match=r'call it once on a batch'):
    tf_pgn.AdversarialModel(_SubclassedCNN())
  classifier = _built_subclassed(x)
  model = tf_pgn.AdversarialModel(classifier, tf_pgn.PGD(0.5, steps=2), ema_decay=0.5, seed=0)
  assert model.ema_classifier.classifier is classifier  # F itself: no clone
  model.compile(classifier_optimizer=keras.optimizers.Adam(1e-2))
  moving_mean = classifier.bn.moving_mean.numpy().copy()
  weights = str(tmp_path / 'last.weights.h5')
  history = model.fit(ds, epochs=2, validation_data=ds, verbose=0, callbacks=[
      keras.callbacks.ModelCheckpoint(weights, save_weights_only=True)]).history
  assert not np.array_equal(moving_mean, classifier.bn.moving_mean.numpy())  # F trained
  live = [w.numpy() for w in classifier.weights]
  # The EMA classifier is F's layers on the shadows of its trainable weights and on its own
  # batch-norm statistics: a twin holding those weights gives its logits.
  twin = _built_subclassed(x)
  twin.set_weights(live)
  for w, shadow in zip(twin.trainable_weights, model.ema_classifier.shadows):
    w.assign(shadow)
  assert any(not np.array_equal(a.numpy(), b) for a, b in zip(twin.weights, live))
  expected = twin(x, training=False).numpy()
  np.testing.assert_allclose(model.ema_classifier(x).numpy(), expected, atol=1e-5)
  np.testing.assert_allclose(model.predict(x, verbose=0), expected, atol=1e-5)
  assert history['val_accuracy'][-1] == pytest.approx(np.mean(expected.argmax(-1) == y))
  model.export_classifier(str(tmp_path / 'classifier'))
  np.testing.assert_allclose(load_saved_model(str(tmp_path / 'classifier'))(x).numpy(), expected,
                             atol=1e-5)
  for a, b in zip(classifier.weights, live):  # the export put F's own weights back
    np.testing.assert_array_equal(a.numpy(), b)
  restored = tf_pgn.AdversarialModel(_built_subclassed(x), tf_pgn.PGD(0.5, steps=2), seed=0)
  restored.compile(classifier_optimizer=keras.optimizers.Adam(1e-2))
  restored.load_weights(weights)  # the checkpoint holds F and its EMA
  np.testing.assert_allclose(restored.predict(x, verbose=0), expected, atol=1e-5)
  for a, b in zip(restored.classifier.weights, live):
    np.testing.assert_array_equal(a.numpy(), b)


def test_robustness_probe_feeds_early_stopping_and_checkpoints_wherever_it_is_listed(tmp_path):
  keras.utils.set_random_seed(0)
  classifier = keras.Sequential([
      keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation='relu'),
      keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(4)])
  model = tf_pgn.AdversarialModel(classifier, tf_pgn.FGM(0.1), ema_decay=0.5, seed=0)
  # A learning rate of 0: the weights, hence the probes' numbers, stay put from epoch to epoch.
  model.compile(classifier_optimizer=keras.optimizers.SGD(0.0))
  x, y, ds = _data()
  stop = keras.callbacks.EarlyStopping('val_robust_accuracy', patience=1, mode='max')
  best = str(tmp_path / 'best.weights.h5')
  history = model.fit(ds, epochs=6, verbose=0, callbacks=[  # the readers listed first
      stop, keras.callbacks.ModelCheckpoint(best, 'val_robust_accuracy', mode='max',
                                            save_best_only=True, save_weights_only=True),
      RobustnessProbe(x, y, eps=1e-6, steps=2, name='val_robust_tiny'),
      RobustnessProbe(x, y, eps=2.0, steps=5)]).history
  assert len(history['val_robust_accuracy']) == 2 and stop.stopped_epoch == 1
  assert os.path.exists(best)
  clean = model.evaluate(x, y, verbose=0, return_dict=True)['accuracy']
  assert history['val_robust_tiny'] == [pytest.approx(clean)] * 2  # eps ~0: the clean accuracy
  assert history['val_robust_accuracy'][0] < clean


@pytest.mark.parametrize('defense', ['pgn', 'pgd'])
def test_fit_runs_the_command_lines_step(defense):
  """From the same networks, one fit step of AdversarialModel and one step of the command line's
  AdversarialTrainer give the same weights: one step code, two loops."""
  cfg = make_config('tiny', defense=defense, adv_coeff=0.7, eps=0.5, pgd_steps=2)
  cli = AdversarialTrainer(cfg, 10)
  classifier = models.build_classifier(10, cfg.width)
  classifier.set_weights(cli.classifier.get_weights())
  generator = None
  if cli.generator is not None:
    generator = models.build_generator(10, cfg.gen_width)
    generator.set_weights(cli.generator.get_weights())
  model = tf_pgn.AdversarialModel(classifier, cli.defense, generator=generator,
                                  ema_decay=cfg.ema_decay, seed=cfg.seed)
  model.compile(classifier_optimizer=keras.optimizers.Adam(cfg.lr),
                generator_optimizer=keras.optimizers.Adam(cfg.gen_lr))
  x = tf.random.uniform([16, 32, 32, 3], seed=11)
  y = tf.random.uniform([16], 0, 10, tf.int32, seed=12)
  cli.train_step(x, y)
  model.fit(tf.data.Dataset.from_tensors((x, y)), epochs=1, verbose=0)
  pairs = [(cli.classifier, classifier), (cli.ema_classifier, model.ema_classifier)]
  if generator is not None:
    pairs.append((cli.generator, generator))
  for a, b in pairs:
    for wa, wb in zip(a.weights, b.weights):
      np.testing.assert_allclose(wa.numpy(), wb.numpy(), rtol=1e-5, atol=1e-6)


def test_a_generator_is_refused_for_a_baseline_and_a_shapeless_classifier_is_named():
  with pytest.raises(ValueError, match='uses no generator'):
    tf_pgn.AdversarialModel(_bn_cnn(), tf_pgn.FGM(0.1), generator=models.build_generator(4))
  with pytest.raises(ValueError, match='expected images'):
    inputs = keras.Input((16,))
    tf_pgn.AdversarialModel(keras.Model(inputs, keras.layers.Dense(3)(inputs)))


# A tiny fit with BackupAndRestore every 3 steps (8 steps per epoch, 3 epochs); prints the state
# (both optimizers' iterations, checksums of G, F, the EMA and G's Adam moments) after every
# step and when training begins, and SIGKILLs itself after step ``kill_at`` (0: never).
_FIT = """
import json, os, signal, sys
import keras, numpy as np, tensorflow as tf
import tf_pgn
backup, kill_at = sys.argv[1], int(sys.argv[2])
keras.utils.set_random_seed(0)
inputs = keras.Input((8, 8, 1))
h = keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3)(inputs))
classifier = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(h)))
model = tf_pgn.AdversarialModel(classifier, tf_pgn.PGN(c_l=1.0, gen_steps=2), seed=0,
    generator=tf_pgn.build_generator(3, 0.0625, input_shape=(8, 8, 1)))
model.compile(classifier_optimizer=keras.optimizers.Adam(1e-3),
              generator_optimizer=keras.optimizers.Adam(1e-3))
rng = np.random.default_rng(0)
ds = tf.data.Dataset.from_tensor_slices((rng.uniform(size=(64, 8, 8, 1)).astype('float32'),
                                         rng.integers(0, 3, 64))).batch(8)

def state():
  total = lambda ws: float(sum(np.abs(np.asarray(w, np.float64)).sum() for w in ws))
  return dict(f=int(model.classifier_optimizer.iterations),
              g=int(model.generator_optimizer.iterations), generator=total(
                  model.generator.weights), classifier=total(classifier.weights),
              ema=total(model.ema_classifier.weights),
              adam_g=total(model.generator_optimizer.variables))

class Report(keras.callbacks.Callback):
  def on_train_begin(self, logs=None):
    print('BEGIN', json.dumps(state()), flush=True)
  def on_epoch_begin(self, epoch, logs=None):
    print('EPOCH', epoch, flush=True)
  def on_train_batch_end(self, batch, logs=None):
    print('STEP', json.dumps(state()), flush=True)
    if int(model.classifier_optimizer.iterations) == kill_at:
      os.kill(os.getpid(), signal.SIGKILL)

model.fit(ds, epochs=3, verbose=0, callbacks=[
    keras.callbacks.BackupAndRestore(backup, save_freq=3), Report()])
print('END', json.dumps(state()), flush=True)
"""


def _fit(backup, kill_at):
  proc = subprocess.run([sys.executable, '-c', _FIT, backup, str(kill_at)], cwd=REPO,
                        capture_output=True, text=True, timeout=300,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=REPO))
  lines = [l.split(' ', 1) for l in proc.stdout.splitlines() if l.split(' ')[0].isupper()]
  return proc, [(tag, json.loads(rest)) for tag, rest in lines]


def test_backup_and_restore_continues_a_sigkilled_fit_from_its_last_backup(tmp_path):
  backup = str(tmp_path / 'backup')
  killed, log = _fit(backup, kill_at=11)  # in epoch 2 (1-based), after the step-9 backup
  assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
  steps = {s['f']: s for tag, s in log if tag == 'STEP'}
  assert max(steps) == 11 and os.path.exists(os.path.join(backup, 'latest.weights.h5'))
  rerun, log = _fit(backup, kill_at=0)
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  begin = dict(log)['BEGIN']
  # The state of step 9, the last backup: F's and G's weights, the EMA, both optimizers (G takes
  # two steps per F step) and G's Adam moments; not a fresh start (iterations 0).
  assert begin == steps[9] and (begin['f'], begin['g']) == (9, 18)
  epochs = [e for tag, e in log if tag == 'EPOCH']
  # Keras restores the epoch of the backup (the second, index 1) and runs it from its start.
  assert epochs == [1, 2]
  assert dict(log)['END']['f'] == 9 + 16
  assert not os.path.exists(backup)  # deleted when the fit completes
