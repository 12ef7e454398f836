"""Fault injection: kill -9 during training, and a corrupt latest checkpoint."""
import glob
import os
import signal
import subprocess
import sys
import time

import numpy as np

from conftest import REPO
from tf_pgn.config import make_config
from tf_pgn.export import load_saved_model
from tf_pgn.trainer import Trainer

_TRAIN = ['train.py', '--preset=tiny', '--defense=pgn', '--epochs=3', '--deterministic',
          '--checkpoint_every_steps=2']


def _train_cmd(run_dir, data_dir):
  return [sys.executable, *_TRAIN, f'--run_dir={run_dir}', f'--data_dir={data_dir}']


def _logits(run_dir):
  serve = load_saved_model(os.path.join(run_dir, 'export', 'classifier'))
  x = np.random.default_rng(0).uniform(size=(8, 32, 32, 3)).astype(np.float32)
  return serve(x).numpy()


def test_kill_9_mid_training_then_rerun_matches_uninterrupted(cifar10_dir, tmp_path):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  ref, killed = str(tmp_path / 'ref'), str(tmp_path / 'killed')
  subprocess.run(_train_cmd(ref, cifar10_dir), cwd=REPO, env=env, check=True,
                 capture_output=True, timeout=300)
  proc = subprocess.Popen(_train_cmd(killed, cifar10_dir), cwd=REPO, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 240
  while time.time() < deadline and not glob.glob(os.path.join(killed, 'ckpt', 'ckpt-6.index')):
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)  # during epoch 1 (8 steps per epoch), after a checkpoint
  proc.wait()
  assert proc.returncode == -signal.SIGKILL
  assert not os.path.exists(os.path.join(killed, 'export'))
  rerun = subprocess.run(_train_cmd(killed, cifar10_dir), cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
  assert rerun.returncode == 0, rerun.stderr[-2000:]
  assert 'resuming' in rerun.stdout
  np.testing.assert_array_equal(_logits(ref), _logits(killed))


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
