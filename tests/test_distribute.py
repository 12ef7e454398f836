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
# PGN: the input gradient, the generator and both optimizers all cross the replicas; G
# He-initialised (not the default zero-init, whose first x_adv is x), so that its perturbation
# crosses them from the first step.
_TRAIN = ['train.py', '--preset=tiny', '--defense=pgn', '--nopgn_zero_init']


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


# model.fit of AdversarialModel (PGN, F's loss mixing clean and adversarial terms) on one device
# and under MirroredStrategy over 2 logical CPUs, from the same weights: prints the largest
# relative difference of F's, G's and the EMA's weights after 4 steps of global batch 16.
_FIT_MIRRORED = """
import keras, numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices('CPU')[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import tf_pgn

def train(strategy, weights=None):
  with strategy.scope():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(8, 3, padding='same', activation='relu')(inputs)
    classifier = keras.Model(inputs, keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(h)))
    generator = tf_pgn.build_generator(4, 0.0625, input_shape=(8, 8, 1))
    if weights:
      classifier.set_weights(weights[0])
      generator.set_weights(weights[1])
    start = classifier.get_weights(), generator.get_weights()
    model = tf_pgn.AdversarialModel(classifier, tf_pgn.PGN(c_l=1.0, adv_coeff=0.7),
                                    generator=generator, ema_decay=0.5, seed=0)
    model.compile(classifier_optimizer=keras.optimizers.Adam(1e-2),
                  generator_optimizer=keras.optimizers.Adam(1e-2))
  rng = np.random.default_rng(0)
  ds = tf.data.Dataset.from_tensor_slices((rng.uniform(size=(64, 8, 8, 1)).astype('float32'),
                                           rng.integers(0, 4, 64))).batch(16)
  history = model.fit(ds, epochs=1, verbose=0).history
  nets = [model.classifier, model.generator, model.ema_classifier]
  return start, [w for net in nets for w in net.get_weights()], history

start, one, h1 = train(tf.distribute.get_strategy())
cpus = [d.name for d in tf.config.list_logical_devices('CPU')]
mirrored = tf.distribute.MirroredStrategy(cpus, cross_device_ops=tf.distribute.ReductionToOneDevice(
    reduce_to_device=cpus[0]))
_, two, h2 = train(mirrored, start)
print('replicas', mirrored.num_replicas_in_sync)
print('max_rel_diff', max(float(np.max(np.abs(a - b)) / (np.max(np.abs(a)) + 1e-12))
                          for a, b in zip(one, two)))
print('loss', h1['loss'][0], h2['loss'][0])
"""


def test_fit_under_two_cpu_replicas_matches_one_device():
  proc = subprocess.run([sys.executable, '-c', _FIT_MIRRORED], cwd=REPO, capture_output=True,
                        text=True, timeout=300, env=dict(_ENV, PYTHONPATH=REPO))
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = dict(line.split(' ', 1) for line in proc.stdout.splitlines() if ' ' in line)
  assert out['replicas'] == '2'
  assert float(out['max_rel_diff']) < 1e-4, proc.stdout
  one, two = map(float, out['loss'].split())
  assert abs(one - two) < 1e-5 * abs(one), proc.stdout
