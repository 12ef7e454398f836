"""Shared fixtures: quiet TensorFlow, the real CIFAR-10 (rebuilt or downloaded once), the repo root."""
import fcntl
import os
import pickle
import subprocess
import sys
import tarfile

import numpy as np

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import pytest  # pylint: disable=g-import-not-at-top,g-bad-import-order

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PREPARE = os.path.join(REPO, '..', 'shared', 'data', 'prepare_cifar10.py')


@pytest.fixture(scope='session')
def cifar10_dir():
  """Folder holding cifar-10-batches-py: $TF_PGN_DATA_DIR, else ~/.cache/tf_pgn (see
  ``provide_cifar10``)."""
  return provide_cifar10(os.environ.get('TF_PGN_DATA_DIR') or
                         os.path.expanduser('~/.cache/tf_pgn'))


def provide_cifar10(path, prepare=PREPARE):
  """``path``, once it holds cifar-10-batches-py: rebuilt there by ``prepare`` (the repo's
  offline CIFAR-10 in ../shared/data) or, without it, the official archive downloaded there by
  ``tf_pgn.data.download`` (MD5-checked). Without either the test is skipped, with the reason in
  one line."""
  os.makedirs(path, exist_ok=True)
  # pytest-xdist workers share the folder: one provides it while the others wait on the lock.
  with open(os.path.join(path, '.tests-rebuild.lock'), 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not os.path.exists(os.path.join(path, 'cifar-10-batches-py', 'test_batch')):
      if os.path.exists(prepare):
        subprocess.run([sys.executable, prepare, '--out', path], check=True)
      else:
        from tf_pgn import data  # pylint: disable=g-import-not-at-top
        try:
          data.download('cifar10', path)
        except data.DataError as e:
          pytest.skip(f'no CIFAR-10 in {path} and no {prepare} to rebuild it; {e}')
  return path


@pytest.fixture(scope='session')
def small_cifar_model(cifar10_dir):
  """(model, x, y): a small CNN trained for seconds on 4096 CIFAR-10 training images (about 36%
  test accuracy; PGD-20 at L2 eps 0.5 leaves about half of it) and the first 64 test images."""
  import keras  # pylint: disable=g-import-not-at-top
  from tf_pgn import data  # pylint: disable=g-import-not-at-top
  ds = data.load('cifar10', cifar10_dir)
  keras.utils.set_random_seed(0)
  convs = [keras.layers.Conv2D(c, 3, strides=2, padding='same', activation='relu')
           for c in (16, 32, 64)]
  model = keras.Sequential([keras.Input((32, 32, 3))] + convs +
                           [keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
  model.compile(keras.optimizers.Adam(3e-3),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  model.fit(data.to_float(ds.train.x[:4096]), ds.train.y[:4096], batch_size=64, epochs=8,
            verbose=0)
  return model, data.to_float(ds.test.x[:64]), ds.test.y[:64].astype(np.int32)


def pytest_sessionfinish(session, exitstatus):
  """A run in which every test was skipped (no data, say) exits 5, as one that collected no test:
  it must not read as a pass."""
  reporter = session.config.pluginmanager.get_plugin('terminalreporter')
  if hasattr(session.config, 'workerinput') or reporter is None:  # an xdist worker
    return
  if exitstatus == pytest.ExitCode.OK and not reporter.stats.get('passed'):
    session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED


def run_cli(*args, timeout=300):
  """Runs a command-line entry point of the repo; returns the CompletedProcess."""
  return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                        timeout=timeout, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))


def cifar100_dict(n, rng, label_max=99):
  """One CIFAR-100 pickle's dict of ``n`` random images and labels."""
  return {b'data': rng.integers(0, 256, (n, 3072), dtype=np.uint8),
          b'fine_labels': [int(v) for v in rng.integers(0, label_max + 1, n)],
          b'coarse_labels': [int(v) for v in rng.integers(0, 20, n)],
          b'filenames': [b'x.png'] * n, b'batch_label': b'training batch 1 of 1'}


def write_cifar100(root, train=None, as_tar=False, rng=None, test_size=20):
  """Writes cifar-100-python/{train,test,meta} (or its .tar.gz) in the official layout; 50
  training images unless ``train`` is given."""
  rng = rng or np.random.default_rng(0)
  members = {'train': train or cifar100_dict(50, rng), 'test': cifar100_dict(test_size, rng),
             'meta': {b'fine_label_names': [b'c%d' % i for i in range(100)]}}
  folder = os.path.join(root, 'cifar-100-python')
  os.makedirs(folder, exist_ok=True)
  for name, obj in members.items():
    with open(os.path.join(folder, name), 'wb') as f:
      pickle.dump(obj, f, protocol=2)
  if as_tar:
    path = os.path.join(root, 'cifar-100-python.tar.gz')
    with tarfile.open(path, 'w:gz') as tar:
      tar.add(folder, arcname='cifar-100-python')
    return path
  return folder


def record_attacks(mp) -> dict:
  """Patches the evaluation runner's ``run_attack`` (through ``mp``, a MonkeyPatch) to keep every
  attack's x_adv as well; returns the dict it fills, by progress label."""
  from tf_pgn import evaluation  # pylint: disable=g-import-not-at-top
  real_run_attack, raw = evaluation.runner.run_attack, {}

  def spy(attack_fn, model, x, y, batch_size, progress_desc, **kwargs):
    outputs = real_run_attack(attack_fn, model, x, y, batch_size, progress_desc, **kwargs)
    raw[progress_desc] = outputs[0] if kwargs.get('aux') else outputs
    return outputs

  mp.setattr(evaluation.runner, 'run_attack', spy)
  return raw
