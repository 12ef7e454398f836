"""Fault injection: kill -9 during a step, a checkpoint write or the export; a corrupt checkpoint."""
import glob
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO
from tf_pgn.config import make_config
from tf_pgn.export import load_saved_model
from tf_pgn.trainer import Trainer

_ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=REPO)
_TRAIN = ['train.py', '--preset=tiny', '--defense=pgn', '--epochs=3', '--deterministic',
          '--checkpoint_every_steps=2']


def _train_cmd(run_dir, data_dir):
  return [sys.executable, *_TRAIN, f'--run_dir={run_dir}', f'--data_dir={data_dir}']


def _logits(run_dir):
  serve = load_saved_model(os.path.join(run_dir, 'export', 'classifier'))
  x = np.random.default_rng(0).uniform(size=(8, 32, 32, 3)).astype(np.float32)
  return serve(x).numpy()


# Runs train.py's training in-process after arming a SIGKILL at one moment (argv[1]):
#   checkpoint_write: ckpt-10's files are written (its data file cut short, as by a kill inside the
#     write) but the checkpoint state file does not list it yet;
#   export: the classifier is exported and the generator's SavedModel is written to its temporary
#     folder, not yet renamed into place.
_KILL_AT = """
import os, signal, sys
import keras
import tensorflow as tf
from tf_pgn import config, trainer
where, run_dir, data_dir = sys.argv[1:4]

def die():
  os.kill(os.getpid(), signal.SIGKILL)

if where == 'checkpoint_write':
  record_state = tf.train.CheckpointManager._record_state
  def record_state_or_die(self):
    if self._latest_checkpoint.endswith('ckpt-10'):
      data = tf.io.gfile.glob(self._latest_checkpoint + '.data-*')[0]
      with open(data, 'r+b') as f:
        f.truncate(os.path.getsize(data) // 2)
      die()
    record_state(self)
  tf.train.CheckpointManager._record_state = record_state_or_die
if where == 'export':
  export = keras.Model.export
  def export_or_die(self, path, **kwargs):
    export(self, path, **kwargs)
    if self.name == 'generator':
      die()
  keras.Model.export = export_or_die
cfg = config.make_config('tiny', defense='pgn', epochs=3, deterministic=True,
                         checkpoint_every_steps=2)
trainer.train(cfg, run_dir, data_dir)
"""


@pytest.fixture(scope='module')
def uninterrupted(cifar10_dir, tmp_path_factory):
  """Logits of the run every interrupted run must end equal to."""
  ref = str(tmp_path_factory.mktemp('faults') / 'ref')
  subprocess.run(_train_cmd(ref, cifar10_dir), cwd=REPO, env=_ENV, check=True,
                 capture_output=True, timeout=300)
  return _logits(ref)


def _rerun_matches(run_dir, data_dir, reference):
  rerun = subprocess.run(_train_cmd(run_dir, data_dir), cwd=REPO, env=_ENV, capture_output=True,
                         text=True, timeout=300)
  assert rerun.returncode == 0, rerun.stderr[-2000:]
  assert 'resuming' in rerun.stdout
  np.testing.assert_array_equal(reference, _logits(run_dir))
  return rerun


def test_kill_9_mid_training_then_rerun_matches_uninterrupted(cifar10_dir, tmp_path,
                                                               uninterrupted):
  killed = str(tmp_path / 'killed')
  proc = subprocess.Popen(_train_cmd(killed, cifar10_dir), cwd=REPO, env=_ENV,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 240
  while time.time() < deadline and not glob.glob(os.path.join(killed, 'ckpt', 'ckpt-6.index')):
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)  # during epoch 1 (8 steps per epoch), after a checkpoint
  proc.wait()
  assert proc.returncode == -signal.SIGKILL
  assert not os.path.exists(os.path.join(killed, 'export'))
  _rerun_matches(killed, cifar10_dir, uninterrupted)


@pytest.mark.parametrize('where', ['checkpoint_write', 'export'])
def test_kill_9_while_writing_then_rerun_matches_uninterrupted(cifar10_dir, tmp_path,
                                                                uninterrupted, where):
  killed = str(tmp_path / 'killed')
  proc = subprocess.run([sys.executable, '-c', _KILL_AT, where, killed, cifar10_dir], cwd=REPO,
                        env=_ENV, capture_output=True, text=True, timeout=300)
  assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
  state = tf.train.get_checkpoint_state(os.path.join(killed, 'ckpt'))
  if where == 'checkpoint_write':  # ckpt-10 is on disk, half written, and not listed
    assert state.model_checkpoint_path.endswith('ckpt-8')
    assert glob.glob(os.path.join(killed, 'ckpt', 'ckpt-10.data-*'))
  else:  # training finished; the generator's export sits in a temporary folder
    names = os.listdir(os.path.join(killed, 'export'))
    assert 'classifier' in names and 'generator' not in names
    assert any(n.startswith('.export-') for n in names)
  _rerun_matches(killed, cifar10_dir, uninterrupted)
  assert sorted(os.listdir(os.path.join(killed, 'export'))) == ['classifier', 'generator']


def test_corrupt_latest_checkpoint_falls_back_to_the_previous(cifar10_dir, tmp_path, capsys):
  cfg = make_config('tiny', defense='naive', epochs=1, checkpoint_every_steps=3)
  Trainer(cfg, str(tmp_path), cifar10_dir).run()
  newest = sorted(glob.glob(str(tmp_path / 'ckpt' / 'ckpt-*.data-*')),
                  key=lambda p: int(p.split('ckpt-')[1].split('.')[0]))[-1]
  with open(newest, 'r+b') as f:
    f.truncate(16)
  resumed = Trainer(cfg, str(tmp_path), cifar10_dir)
  assert resumed.restore()
  assert int(resumed.step.numpy()) == 6
  assert 'unreadable' in capsys.readouterr().out
