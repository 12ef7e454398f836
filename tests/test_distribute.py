"""tf.distribute: 2 logical CPU replicas and 2 localhost workers train what one device trains."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO

_ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
# PGN: the input gradient, the generator and both optimizers all cross the replicas.
_TRAIN = ['train.py', '--preset=tiny', '--defense=pgn']


def _train(run_dir, data_dir, *flags, env=None):
  return subprocess.Popen([sys.executable, *_TRAIN, f'--run_dir={run_dir}',
                           f'--data_dir={data_dir}', *flags], cwd=REPO, env=env or _ENV,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(*procs):
  outs = [p.communicate(timeout=300) for p in procs]
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  return [out for out, _ in outs]


def _variables(prefix):
  """{checkpoint key: value}: both networks, the EMA, both Adams' moments, step and epoch."""
  reader = tf.train.load_checkpoint(prefix)
  return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
          if k != '_CHECKPOINTABLE_OBJECT_GRAPH'}


def _assert_same_weights(a, b):
  """Equal up to float summation order, which drifts to ~2e-4 relative in Adam's moments over 16
  steps; a wrong loss or input-gradient scale (a per-replica instead of global batch mean)
  changes the moments by 2x or 4x."""
  wa, wb = _variables(a), _variables(b)
  assert wa.keys() == wb.keys() and any(k.startswith('opt_g/') for k in wa)
  for k in wa:
    np.testing.assert_allclose(wa[k], wb[k], rtol=1e-3, atol=1e-5, err_msg=k)


@pytest.fixture(scope='module')
def one_device(cifar10_dir, tmp_path_factory):
  """Two epochs (16 steps, a checkpoint every 4) on one device: the reference."""
  run_dir = str(tmp_path_factory.mktemp('distribute') / 'one_device')
  _finish(_train(run_dir, cifar10_dir, '--epochs=2'))
  return run_dir


def test_two_cpu_replicas_match_one_device_and_resume_on_one(cifar10_dir, tmp_path, one_device):
  mirrored = str(tmp_path / 'mirrored')
  out, = _finish(_train(mirrored, cifar10_dir, '--epochs=1', '--distribute=mirrored',
                        '--cpu_replicas=2'))
  assert 'done:' in out
  _assert_same_weights(os.path.join(mirrored, 'ckpt', 'ckpt-8'),
                       os.path.join(one_device, 'ckpt', 'ckpt-8'))
  # The 2-replica checkpoint resumes on one device and ends where the one-device run did.
  out, = _finish(_train(mirrored, cifar10_dir, '--epochs=2'))
  assert 'resuming' in out
  _assert_same_weights(os.path.join(mirrored, 'ckpt', 'ckpt-16'),
                       os.path.join(one_device, 'ckpt', 'ckpt-16'))


def _free_ports(n):
  socks = [socket.socket() for _ in range(n)]
  for s in socks:
    s.bind(('localhost', 0))
  ports = [s.getsockname()[1] for s in socks]
  for s in socks:
    s.close()
  return ports


def test_two_workers_on_localhost_train_and_only_the_chief_keeps_files(cifar10_dir, tmp_path,
                                                                        one_device):
  run_dir = str(tmp_path / 'multi_worker')
  workers = [f'localhost:{p}' for p in _free_ports(2)]
  procs = [_train(run_dir, cifar10_dir, '--epochs=1', '--distribute=multi_worker',
                  env=dict(_ENV, TF_CONFIG=json.dumps(dict(
                      cluster=dict(worker=workers), task=dict(type='worker', index=i)))))
           for i in range(2)]
  chief_out, worker_out = _finish(*procs)
  assert 'done:' in chief_out and 'epoch=1' in chief_out
  assert 'epoch=1' not in worker_out  # the other worker neither logs nor writes
  assert sorted(os.listdir(run_dir)) == ['ckpt', 'config.json', 'data.json', 'epochs', 'export',
                                         'metrics.jsonl', 'tb']
  assert sorted(os.listdir(os.path.join(run_dir, 'epochs'))) == [
      'epoch-1.data-00000-of-00001', 'epoch-1.index']
  assert tf.train.latest_checkpoint(os.path.join(run_dir, 'ckpt')).endswith('ckpt-8')
  _assert_same_weights(os.path.join(run_dir, 'ckpt', 'ckpt-8'),
                       os.path.join(one_device, 'ckpt', 'ckpt-8'))
