"""Shared fixtures: quiet TensorFlow, the real CIFAR-10 (rebuilt once), and the repo root."""
import fcntl
import os
import subprocess
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import pytest  # pylint: disable=g-import-not-at-top

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PREPARE = os.path.join(REPO, '..', 'shared', 'data', 'prepare_cifar10.py')


@pytest.fixture(scope='session')
def cifar10_dir():
  """Folder holding cifar-10-batches-py: $TF_PGN_DATA_DIR, else rebuilt once into ~/.cache."""
  path = os.environ.get('TF_PGN_DATA_DIR') or os.path.expanduser('~/.cache/tf_pgn')
  os.makedirs(path, exist_ok=True)
  # pytest-xdist workers share the folder: one rebuilds while the others wait on the lock.
  with open(os.path.join(path, '.tests-rebuild.lock'), 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not os.path.exists(os.path.join(path, 'cifar-10-batches-py', 'test_batch')):
      if not os.path.exists(PREPARE):
        pytest.fail(f'no CIFAR-10 at {path} and no {PREPARE} to rebuild it: set TF_PGN_DATA_DIR')
      subprocess.run([sys.executable, PREPARE, '--out', path], check=True)
  return path


def run_cli(*args, timeout=300):
  """Runs a command-line entry point of the repo; returns the CompletedProcess."""
  return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                        timeout=timeout, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))
