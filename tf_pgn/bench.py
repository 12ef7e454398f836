"""Training-speed benchmark: the train step of every defense, measured in one process.

  python -m tf_pgn.bench --width=0.5 --batch_size=128        # table on stdout, bench.json
  python -m tf_pgn.bench --jit_compile                       # XLA
  python -m tf_pgn.bench --norm=linf --defenses=fgm,fgsm_rs,n_fgsm,pgd7,pgd10,pgn:normalized

Reports images/s and ms/step (median of --repeats timed steps after --warmup steps) of naive,
FGM-AT, PGD-AT (7 and 10 steps) and PGN (and FGSM-RS, N-FGSM), each also as a ratio to the
FGM and PGD steps of the same process; the ratios PGN/FGM and PGD-10/PGN behind the paper's
speed claim (FGM < PGN < PGD, section 4.4); the classifier step's FLOP/s against a dense matmul's
on the same device; the input pipeline's images/s on its own; and the evaluation attacks' speed
(DeepFool images/s, C&W iterations x images/s) on the naive step's classifier.
"""
import os
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import keras  # pylint: disable=g-import-not-at-top
import numpy as np
import tensorflow as tf
from absl import app, flags

from tf_pgn import data as data_lib
from tf_pgn.config import make_config
from tf_pgn.defenses import AdversarialTrainer
from tf_pgn.io_utils import write_json_atomic
from tf_pgn.timing import median_seconds

flags.DEFINE_float('width', 0.5, 'Classifier width multiplier.')
flags.DEFINE_float('gen_width', None, 'Generator width multiplier (default: --width).')
flags.DEFINE_integer('batch_size', 128, 'Batch size.')
flags.DEFINE_integer('warmup', 2, 'Untimed steps (tracing, compilation).')
flags.DEFINE_integer('repeats', 5, 'Timed rounds (one step of each defense per round); the '
                     'median is reported.')
flags.DEFINE_bool('jit_compile', False, 'Compile the train steps with XLA.')
flags.DEFINE_string('defenses', 'naive,fgm,pgd7,pgd10,pgn', 'Which steps to time (naive, fgm, '
                    'fgsm_rs, n_fgsm, pgd<steps>, pgn); a suffix '
                    ':bf16 times the step under --mixed_precision=bfloat16 (e.g. pgn,pgn:bf16), '
                    ':through the PGN step with --pgn_grad_through_adv, :normalized with '
                    '--pgn_grad_input=normalized, :normalized_gen2 also with --pgn_gen_steps=2.')
flags.DEFINE_enum('norm', 'l2', ['l2', 'linf'], 'Threat model of the budgeted steps: l2 at eps '
                  '0.5 or linf at eps 8/255 (fgsm_rs and n_fgsm are steps of either).')
flags.DEFINE_string('out', 'bench.json', 'Where to write the results.')
flags.DEFINE_integer('intra_op_threads', 0, 'TensorFlow intra-op threads (0: its default).')
flags.DEFINE_integer('inter_op_threads', 0, 'TensorFlow inter-op threads (0: its default).')
flags.DEFINE_bool('attacks', True, 'Also time DeepFool and C&W on the naive classifier.')
FLAGS = flags.FLAGS


def forward_flops(model: keras.Model) -> float:
  """Multiply-adds x 2 of the conv and dense layers of one forward pass of one image."""
  total = 0.0
  for layer in model.layers:
    if isinstance(layer, keras.layers.Conv2D):
      h, w, cout = layer.output.shape[1:]
      cin = layer.input.shape[-1]
      kh, kw = layer.kernel_size
      total += 2.0 * h * w * kh * kw * cin * cout
    elif isinstance(layer, keras.layers.Dense):
      total += 2.0 * layer.input.shape[-1] * layer.units
  return total


def matmul_flops_per_second(n: int = 2048, repeats: int = 5) -> float:
  a, b = tf.random.normal([n, n]), tf.random.normal([n, n])
  mm = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
  return 2.0 * n**3 / median_seconds({'matmul': lambda: mm().numpy()}, 2, repeats)['matmul']


def pipeline_images_per_second(batch_size: int, batches: int = 200) -> float:
  """The training input pipeline (shuffle, uint8 -> float, flip + shift) alone, after its first
  batch (tracing)."""
  rng = np.random.default_rng(0)
  split = data_lib.Split(rng.integers(0, 256, (batch_size * batches, 32, 32, 3), np.uint8),
                         rng.integers(0, 10, batch_size * batches).astype(np.int32))
  batches_iter = iter(data_lib.train_pipeline(split, batch_size, seed=0, epoch=0))
  next(batches_iter)
  t0 = time.perf_counter()
  for _ in batches_iter:
    pass
  return batch_size * (batches - 1) / (time.perf_counter() - t0)


def attack_rates(classifier, x, y, cw_iterations: int = 20) -> dict:
  """DeepFool images/s and C&W (one search step, no early abort) iterations x images/s."""
  from tf_pgn.attacks.cw import carlini_wagner_l2  # pylint: disable=g-import-not-at-top
  from tf_pgn.attacks.deepfool import deepfool_l2  # pylint: disable=g-import-not-at-top
  seconds = median_seconds({
      'deepfool': lambda: np.asarray(deepfool_l2(classifier, x, y)),
      'cw': lambda: np.asarray(carlini_wagner_l2(classifier, x, y, max_iterations=cw_iterations,
                                                  binary_search_steps=1, abort_early=False))},
                           1, 3)
  return dict(deepfool_images_per_second=x.shape[0] / seconds['deepfool'],
              cw_iterations_images_per_second=cw_iterations * x.shape[0] / seconds['cw'])


# Suffixes of --defenses (defense:variant) and the config fields each sets; a plain pgn step is
# the paper's (raw gradient input).
PGN_VARIANTS = {'through': dict(pgn_grad_through_adv=True),
                'normalized': dict(pgn_grad_input='normalized'),
                'normalized_zero_init': dict(pgn_grad_input='normalized', pgn_zero_init=True),
                'normalized_gen2': dict(pgn_grad_input='normalized', pgn_gen_steps=2)}
STEP_VARIANTS = {'': {}, 'bf16': dict(mixed_precision='bfloat16'), **PGN_VARIANTS}


def bench_steps(names: list, x, y) -> dict:
  """{name: row} for the train steps ``names``, timed round-robin (``median_seconds``)."""
  trainers = {}
  for name in names:
    step_name, _, variant = name.partition(':')
    if variant not in STEP_VARIANTS or (variant in PGN_VARIANTS and step_name != 'pgn'):
      raise app.UsageError(f'--defenses: unknown suffix :{variant} in {name} (use :bf16, or '
                           f'after pgn one of {", ".join(":" + v for v in PGN_VARIANTS)})')
    defense, pgd_steps = (('pgd', int(step_name[3:])) if step_name.startswith('pgd')
                          else (step_name, 10))
    overrides = {'pgn_grad_input': 'raw', 'pgn_zero_init': False, 'mixed_precision': 'float32',
                 **STEP_VARIANTS[variant]}
    eps = 8.0 / 255.0 if FLAGS.norm == 'linf' else 0.5
    cfg = make_config('paper', defense=defense, pgd_steps=pgd_steps, eps=eps, norm=FLAGS.norm,
                      width=FLAGS.width,
                      gen_width=FLAGS.gen_width or FLAGS.width, batch_size=FLAGS.batch_size,
                      jit_compile=FLAGS.jit_compile, **overrides)
    trainers[name] = AdversarialTrainer(cfg, 10)
  seconds = median_seconds({name: lambda t=t: t.train_step(x, y)['loss'].numpy()
                            for name, t in trainers.items()}, FLAGS.warmup, FLAGS.repeats)
  rows = {name: dict(defense=name, ms_per_step=1e3 * seconds[name],
                     images_per_second=x.shape[0] / seconds[name],
                     classifier_forward_flops=forward_flops(trainers[name].classifier))
          for name in trainers}
  if 'naive' in rows and FLAGS.attacks:
    rows['naive'].update(attack_rates(trainers['naive'].classifier, x, y))
  if 'pgn' in rows:
    rows['pgn']['parts_ms'] = pgn_parts_ms(trainers['pgn'], x, y)
  return rows


def pgn_parts_ms(trainer, x, y) -> dict:
  """Where a PGN step's time goes: its forward parts alone (median ms, round-robin), to set
  against the whole step (forward + one backward pass through all of them + two Adam updates)."""
  from tf_pgn import models  # pylint: disable=g-import-not-at-top
  onehot = tf.one_hot(y, 10)
  grad = tf.function(lambda: models.true_class_gradient(trainer.players.logits, x, onehot)[0])
  parts = {
      'input_gradient': grad,  # F forward + backward to x
      'generator_forward': tf.function(lambda: trainer.generate(x, onehot)[0]),  # incl. the above
      'classifier_forward': tf.function(lambda: trainer.players.logits(x, training=True)),
  }
  seconds = median_seconds({name: lambda fn=fn: np.asarray(fn()) for name, fn in parts.items()},
                           1, FLAGS.repeats)
  return {name: 1e3 * s for name, s in seconds.items()}


def main(argv):
  del argv
  tf.config.threading.set_intra_op_parallelism_threads(FLAGS.intra_op_threads)
  tf.config.threading.set_inter_op_parallelism_threads(FLAGS.inter_op_threads)
  x = tf.random.uniform([FLAGS.batch_size, 32, 32, 3], seed=0)
  y = tf.random.uniform([FLAGS.batch_size], 0, 10, tf.int32, seed=1)
  rows = bench_steps(FLAGS.defenses.split(','), x, y)
  result = dict(device=tf.config.list_physical_devices()[-1].device_type, width=FLAGS.width,
                gen_width=FLAGS.gen_width or FLAGS.width, batch_size=FLAGS.batch_size,
                jit_compile=FLAGS.jit_compile, intra_op_threads=FLAGS.intra_op_threads,
                inter_op_threads=FLAGS.inter_op_threads, steps=rows,
                matmul_flops_per_second=matmul_flops_per_second(),
                pipeline_images_per_second=pipeline_images_per_second(FLAGS.batch_size))
  fastest = max(r['images_per_second'] for r in rows.values())
  result['pipeline_over_fastest_step'] = result['pipeline_images_per_second'] / fastest
  if 'naive' in rows:  # forward + backward ~ 3x forward FLOPs
    naive = rows['naive']
    result['naive_step_flops_per_second'] = (3 * naive['classifier_forward_flops'] *
                                             naive['images_per_second'])
    result['naive_step_fraction_of_matmul'] = (result['naive_step_flops_per_second'] /
                                               result['matmul_flops_per_second'])
  if {'pgn', 'fgm'} <= rows.keys():
    result['pgn_over_fgm_time'] = rows['pgn']['ms_per_step'] / rows['fgm']['ms_per_step']
  if {'pgn', 'pgd10'} <= rows.keys():
    result['pgd10_over_pgn_time'] = rows['pgd10']['ms_per_step'] / rows['pgn']['ms_per_step']
  # Every step's time as a ratio to FGM(-AT)'s and to the PGD-AT steps' of the same process.
  references = [name for name in rows if name == 'fgm' or name.startswith('pgd')]
  for r in rows.values():
    r.update({f'over_{name}': r['ms_per_step'] / rows[name]['ms_per_step'] for name in references})
  result['norm'] = FLAGS.norm
  print(f'{"defense":18} {"ms/step":>9} {"images/s":>9}' +
        ''.join(f' {"/" + name:>8}' for name in references))
  for r in rows.values():
    print(f'{r["defense"]:18} {r["ms_per_step"]:9.1f} {r["images_per_second"]:9.1f}' +
          ''.join(f' {r["over_" + name]:8.2f}' for name in references))
  if 'pgn' in rows:
    print('PGN parts (forward only), ms: ' + ', '.join(
        f'{k} {v:.1f}' for k, v in rows['pgn']['parts_ms'].items()))
  attack_speeds = {k: v for k, v in rows.get('naive', {}).items() if k.endswith('_per_second')
                   and k != 'images_per_second'}
  for k, v in list(result.items()) + list(attack_speeds.items()):
    if isinstance(v, float):
      print(f'{k}: {v:.4g}')
  write_json_atomic(FLAGS.out, result)


if __name__ == '__main__':
  app.run(main)
