"""End to end: learning on real CIFAR-10, resume, export, and the NaN guard."""
import dataclasses
import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from conftest import run_cli
from tf_pgn import data
from tf_pgn.config import make_config
from tf_pgn.export import export_saved_model, load_classifier, load_saved_model
from tf_pgn.trainer import Trainer, TrainError


def test_a_few_hundred_steps_on_real_cifar10_beat_chance(cifar10_dir, tmp_path, capsys):
  cfg = make_config('tiny', defense='naive', width=0.125, train_size=4000, test_size=500,
                    epochs=2, lr=2e-3, checkpoint_every_steps=1000, progress_seconds=0.2)
  final = Trainer(cfg, str(tmp_path), cifar10_dir).run()
  assert final['step'] == 250
  assert final['test_acc'] > 0.3, final  # chance is 0.1
  # Off a terminal (pytest's capture) a progress line within each epoch, beside the epoch lines.
  out = capsys.readouterr().out
  assert re.search(r'^precision: float32$', out, re.M), out[:300]  # said at start
  for epoch in (1, 2):
    assert re.search(rf'^epoch {epoch}/2: \d+/125 step \(\d+%\), \dm\d\ds.* loss=\d', out,
                     re.M), out[-2000:]
  rows = [json.loads(l) for l in open(tmp_path / 'metrics.jsonl')]
  assert [(r['epoch'], r['precision']) for r in rows] == [(1, 'float32'), (2, 'float32')]
  assert json.load(open(tmp_path / 'config.json'))['defense'] == 'naive'
  # Each epoch's EMA classifier stays in epochs/epoch-N, which evaluate.py --ckpt loads; the last
  # one is the exported classifier.
  assert sorted(os.listdir(tmp_path / 'epochs')) == [
      'epoch-1.data-00000-of-00001', 'epoch-1.index', 'epoch-2.data-00000-of-00001',
      'epoch-2.index']
  x = data.to_float(data.load('cifar10', cifar10_dir).test.x[:16])
  exported = load_saved_model(str(tmp_path / 'export' / 'classifier'))(x).numpy()
  logits = {n: load_classifier(str(tmp_path / 'epochs' / f'epoch-{n}'))[0](x).numpy()
            for n in (1, 2)}
  np.testing.assert_allclose(logits[2], exported, rtol=1e-5, atol=1e-5)
  assert np.abs(logits[1] - exported).max() > 1e-3


def test_each_epoch_records_the_precision_it_computed_in(cifar10_dir, tmp_path, capsys):
  # A run resumed under another --mixed_precision (or 'auto' on another machine) says so in the
  # epochs it trained that way.
  cfg = make_config('tiny', defense='fgm', width=0.0625, train_size=256, test_size=64,
                    epochs=1, mixed_precision='bfloat16')
  Trainer(cfg, str(tmp_path), cifar10_dir).run()
  Trainer(dataclasses.replace(cfg, epochs=2, mixed_precision='float32'), str(tmp_path),
          cifar10_dir).run()
  rows = [json.loads(l) for l in open(tmp_path / 'metrics.jsonl')]
  assert [(r['epoch'], r['precision']) for r in rows] == [(1, 'bfloat16'), (2, 'float32')]
  out = capsys.readouterr().out
  assert 'precision: bfloat16 compute, float32 variables' in out and 'precision: float32' in out


def _weights(trainer):
  nets = [trainer.model.classifier, trainer.model.ema_classifier]
  if trainer.model.generator is not None:
    nets.append(trainer.model.generator)
  return [w.numpy() for net in nets for w in net.weights]


@pytest.mark.parametrize('defense', ['pgn', 'pgd'])
def test_interrupt_and_resume_reaches_the_same_weights(cifar10_dir, tmp_path, defense):
  cfg = make_config('tiny', defense=defense, epochs=2, pgd_steps=2, eps=0.5,
                    checkpoint_every_steps=3, deterministic=True)
  reference = Trainer(cfg, str(tmp_path / 'ref'), cifar10_dir)
  reference.run()

  interrupted = Trainer(cfg, str(tmp_path / 'int'), cifar10_dir)
  step = interrupted.model.train_step
  calls = []

  def crash_on_eleventh(x, y):  # mid epoch 2 (8 steps per epoch), after the step-9 checkpoint
    calls.append(1)
    if len(calls) == 11:
      raise KeyboardInterrupt
    return step(x, y)

  interrupted.model.train_step = crash_on_eleventh
  with pytest.raises(KeyboardInterrupt):
    interrupted.run()
  resumed = Trainer(cfg, str(tmp_path / 'int'), cifar10_dir)
  assert resumed.restore() and int(resumed.step.numpy()) == 9
  resumed.run()
  for a, b in zip(_weights(reference), _weights(resumed)):
    np.testing.assert_array_equal(a, b)


def test_exported_saved_model_gives_the_keras_logits(cifar10_dir, tmp_path):
  cfg = make_config('tiny', defense='pgn', train_size=64, epochs=1)
  trainer = Trainer(cfg, str(tmp_path), cifar10_dir)
  trainer.run()
  serve = load_saved_model(str(tmp_path / 'export' / 'classifier'))
  x = tf.constant(data.to_float(trainer.test_split.x[:16]))
  np.testing.assert_allclose(serve(x).numpy(), trainer.model.ema_classifier(x).numpy(),
                             atol=1e-5)
  assert tf.saved_model.contains_saved_model(str(tmp_path / 'export' / 'generator'))
  # Re-exporting over an existing export replaces it whole.
  export_saved_model(trainer.model.ema_classifier, str(tmp_path / 'export' / 'classifier'))
  assert sorted(os.listdir(tmp_path / 'export')) == ['classifier', 'generator']


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(cifar10_dir, tmp_path):
  cfg = make_config('tiny', defense='naive', epochs=1, checkpoint_every_steps=2)
  trainer = Trainer(cfg, str(tmp_path), cifar10_dir)
  step = trainer.model.train_step
  calls = []

  def nan_on_fifth(x, y):
    calls.append(1)
    out = step(x, y)
    return dict(out, loss=tf.constant(float('nan'))) if len(calls) == 5 else out

  trainer.model.train_step = nan_on_fifth
  with pytest.raises(TrainError, match='non-finite loss at step 5'):
    trainer.run()
  assert trainer.manager.latest_checkpoint.endswith('ckpt-4')


def test_debug_numerics_names_the_op_that_made_the_nan(cifar10_dir, tmp_path):
  # A fresh process (another test may have enabled op determinism, see config.validate). An
  # absurd learning rate: step 1 sets weights to ~1e38, step 2's first conv overflows.
  out = run_cli('train.py', '--preset=tiny', '--defense=fgm', '--lr=1e38', '--debug_numerics',
                f'--run_dir={tmp_path}', f'--data_dir={cifar10_dir}')
  assert out.returncode == 2, out.stderr[-2000:]
  assert re.search(r'^train.py: error: --debug_numerics: op "Conv2D"( \(\w+\.py:\d+\))? in '
                   r'"\w+" made a NaN/Inf at step 2; the last good checkpoint is kept', out.stderr,
                   re.M), out.stderr[-2000:]


def test_checkpoint_every_minutes_saves_between_step_intervals(cifar10_dir, tmp_path):
  cfg = make_config('tiny', defense='naive', epochs=1, checkpoint_every_steps=1000,
                    checkpoint_every_minutes=1e-9)  # due after every step
  trainer = Trainer(cfg, str(tmp_path), cifar10_dir)
  trainer.run()
  assert [os.path.basename(p) for p in trainer.manager.checkpoints] == ['ckpt-6', 'ckpt-7',
                                                                         'ckpt-8']


def test_a_run_directory_trained_on_other_data_is_refused(cifar10_dir, tmp_path):
  cfg = make_config('tiny', defense='naive', epochs=1)
  Trainer(cfg, str(tmp_path), cifar10_dir).run()
  with open(tmp_path / 'data.json') as f:
    record = json.load(f)
  assert len(record['fingerprint']) == 12 and record['dataset'] == 'cifar10'
  record['fingerprint'] = '0123456789ab'
  with open(tmp_path / 'data.json', 'w') as f:
    json.dump(record, f)
  with pytest.raises(TrainError, match='trained on data with fingerprint 0123456789ab, this '
                     r'--data_dir gives \w{12}'):
    Trainer(cfg, str(tmp_path), cifar10_dir).run()
