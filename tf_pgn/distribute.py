"""tf.distribute for training: one strategy per run, chosen by ``--distribute``.

  none          the default strategy (one device; what ``tf.distribute.get_strategy()`` gives)
  mirrored      MirroredStrategy over every local GPU, else over ``--cpu_replicas`` logical CPUs
  multi_worker  MultiWorkerMirroredStrategy over the hosts of ``$TF_CONFIG``

Every worker runs the same program. The chief (worker 0, or the only process) owns the run
directory; the other workers write their checkpoints and exports to a folder of their own inside
it, which is deleted when they finish (the pattern of the TF multi-worker guide: every worker must
take part in a save, only the chief's is kept).
"""
import json
import os

import tensorflow as tf

from tf_pgn.config import STRATEGIES


class DistributeError(ValueError):
  """The requested strategy cannot be built here; the message says what to change."""


def make_strategy(name: str, cpu_replicas: int | None = None) -> tf.distribute.Strategy:
  """The strategy ``name`` (see the module docstring). Call before any other TensorFlow op: the
  logical CPU devices and the multi-worker runtime can only be set up first."""
  if name not in STRATEGIES:
    raise DistributeError(f'unknown --distribute={name}: use one of {", ".join(STRATEGIES)}')
  if cpu_replicas and cpu_replicas > 1:
    cpu = tf.config.list_physical_devices('CPU')[0]
    try:
      tf.config.set_logical_device_configuration(
          cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_replicas)
    except RuntimeError:  # devices already initialised: set it at the start of the program
      raise DistributeError('--cpu_replicas must be set before TensorFlow starts: pass it to '
                            'train.py, not after other TensorFlow work') from None
  if name == 'none':
    return tf.distribute.get_strategy()
  if name == 'mirrored':
    if tf.config.list_logical_devices('GPU'):
      return tf.distribute.MirroredStrategy()
    cpus = [d.name for d in tf.config.list_logical_devices('CPU')]
    return tf.distribute.MirroredStrategy(cpus, cross_device_ops=(
        tf.distribute.ReductionToOneDevice(reduce_to_device=cpus[0])))
  if 'TF_CONFIG' not in os.environ:
    raise DistributeError('--distribute=multi_worker needs $TF_CONFIG naming the cluster and this '
                          'task (see docs/TRAINING.md, "Scaling out")')
  try:
    json.loads(os.environ['TF_CONFIG'])
  except ValueError as e:
    raise DistributeError(f'$TF_CONFIG is not JSON ({e})') from None
  return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """True for the process that owns the run directory."""
  resolver = getattr(strategy, 'cluster_resolver', None)
  if resolver is None or not resolver.task_type:  # one process
    return True
  return resolver.task_type == 'chief' or (
      resolver.task_type == 'worker' and resolver.task_id == 0 and
      'chief' not in resolver.cluster_spec().as_dict())


def worker_dir(run_dir: str, strategy: tf.distribute.Strategy) -> str:
  """Where this process writes what only the chief keeps: ``run_dir`` on the chief, else a
  folder of its own inside it."""
  if is_chief(strategy):
    return run_dir
  resolver = strategy.cluster_resolver
  return os.path.join(run_dir, f'.{resolver.task_type}-{resolver.task_id}')
