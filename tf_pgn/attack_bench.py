"""Speed of the evaluation's attacks on one classifier: APGD-L2 against PGD-L2, FMN against C&W.

  python -m tf_pgn.attack_bench --ckpt=runs/sweeps/cifar10_cpu/pgd_eps0.25_w0.25_s1234 \\
      --data_dir=~/.cache/tf_pgn --num_examples=256          # a trained classifier, test images
  python -m tf_pgn.attack_bench --width=0.0625 --num_examples=8   # random weights and images

- APGD vs PGD: iterations x images per second of ``--iterations`` steps of each (1 restart for
  APGD; PGD with step 2.5 eps / steps, no random start, as the evaluation runs it), compiled,
  the median of ``--repeats`` timed calls after one untimed (``timing.median_seconds``), on the
  examples classified correctly (APGD does not attack the others), and the accuracy each leaves
  on them at ``--eps``.
- FMN vs C&W (the evaluation's settings: ``--fmn_steps``; ``--cw_iterations`` x
  ``--cw_search_steps``): rho (mean L2 over the successful examples, Eq. 6), the success rate,
  rho over the examples both fooled, seconds, and the model calls per image, counted by a
  wrapper around the model: each is one forward and one backward pass in both attacks (C&W stops
  a search step early once its loss stalls, so it makes at most iterations x search steps).

Writes --out (JSON) and prints a table.
"""
import math
import os
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import keras  # pylint: disable=g-import-not-at-top
import numpy as np
import tensorflow as tf
from absl import app, flags

from tf_pgn import data as data_lib
from tf_pgn import metrics, models
from tf_pgn.attacks import carlini_wagner_l2, predict
from tf_pgn.attacks.apgd import apgd
from tf_pgn.attacks.fmn import fmn_l2
from tf_pgn import perturbation
from tf_pgn.export import load_classifier
from tf_pgn.io_utils import write_json_atomic
from tf_pgn.timing import median_seconds

FLAGS = flags.FLAGS


def _define_flags() -> None:
  """The command line's flags; defined only when run as a program, so that importing the
  module (beside tf_pgn.bench, whose --width is its own) defines none."""
  flags.DEFINE_string('ckpt', None, 'Run directory or classifier SavedModel (default: a random '
                      'classifier of --width on random images).')
  flags.DEFINE_string('data_dir', None, 'Folder with the CIFAR python archive (with --ckpt).')
  flags.DEFINE_string('dataset', 'cifar10', 'Dataset of --ckpt.')
  flags.DEFINE_float('width', 0.25, 'Width of the random classifier (without --ckpt).')
  flags.DEFINE_integer('num_examples', 256, 'The first N test images: one batch.')
  flags.DEFINE_float('eps', 0.5, 'L2 budget of PGD and APGD.')
  flags.DEFINE_integer('iterations', 100, 'Iterations of PGD and APGD.')
  flags.DEFINE_integer('repeats', 3, 'Timed calls of PGD and APGD (the median is reported).')
  flags.DEFINE_integer('fmn_steps', 100, 'FMN steps.')
  flags.DEFINE_integer('cw_iterations', 100, 'C&W Adam steps per search step.')
  flags.DEFINE_integer('cw_search_steps', 5, 'C&W binary-search steps.')
  flags.DEFINE_string('out', 'attack_bench.json', 'Where to write the results.')


class CountingModel:
  """Calls ``model`` and counts the images it was called on (also inside tf.function)."""

  def __init__(self, model):
    self.model = model
    self.images = tf.Variable(0, dtype=tf.int64, trainable=False)

  def __call__(self, x):
    self.images.assign_add(tf.cast(tf.shape(x)[0], tf.int64))
    return self.model(x)


def apgd_vs_pgd(model, x, y, eps: float, iterations: int, repeats: int) -> dict:
  """Iterations x images / s of APGD-CE and PGD, both compiled with a tensor eps, on the
  examples ``model`` classifies correctly (APGD skips the others, PGD would not)."""
  correct = predict(model, x.numpy()).argmax(-1) == y.numpy()
  x, y = tf.boolean_mask(x, correct), tf.boolean_mask(y, correct)
  eps_t = tf.constant(eps, tf.float32)
  compiled = {
      'pgd': tf.function(lambda xs, ys, e: perturbation.gradient_ascent(model, xs, ys, e, 2.5 * e / iterations,
                                                  iterations)),
      'apgd': tf.function(lambda xs, ys, e: apgd(model, xs, ys, e, n_iter=iterations)),
  }
  outputs = {}

  def call(name):
    outputs[name] = np.asarray(compiled[name](x, y, eps_t))

  seconds = median_seconds({name: lambda name=name: call(name) for name in compiled}, 1, repeats)
  rows = {name: dict(seconds=seconds[name],
                     iterations_images_per_second=iterations * len(y) / seconds[name],
                     accuracy=metrics.accuracy(predict(model, outputs[name]), y))
          for name in compiled}
  return dict(rows, eps=eps, iterations=iterations, images=int(len(y)), apgd_over_pgd_speed=(
      rows['apgd']['iterations_images_per_second'] / rows['pgd']['iterations_images_per_second']))


def fmn_vs_cw(model, x, y, fmn_steps: int, cw_iterations: int, cw_search_steps: int) -> dict:
  """rho, success and model calls per image of FMN and C&W, each timed on its second call."""
  runs = {
      'fmn': lambda m: fmn_l2(m, x, y, steps=fmn_steps),
      'cw': lambda m: carlini_wagner_l2(m, x, y, max_iterations=cw_iterations,
                                        binary_search_steps=cw_search_steps),
  }
  pred_clean = predict(model, x.numpy()).argmax(-1)
  rows, fooled = {}, {}
  for name, run in runs.items():
    counting = CountingModel(model)
    run(counting)  # traces
    counting.images.assign(0)
    start = time.perf_counter()
    x_adv = np.asarray(run(counting))
    seconds = time.perf_counter() - start
    pred_adv = predict(model, x_adv).argmax(-1)
    fooled[name] = (pred_clean == y.numpy()) & (pred_adv != y.numpy())
    rows[name] = dict(seconds=seconds,
                      model_calls_per_image=int(counting.images.numpy()) / len(pred_clean),
                      norms=metrics.perturbation_norms(x.numpy(), x_adv),
                      **metrics.rho(x.numpy(), x_adv, y.numpy(), pred_clean, pred_adv))
  both = fooled['fmn'] & fooled['cw']
  for name, row in rows.items():
    norms = row.pop('norms')
    row['rho_mean_both_fooled'] = float(norms[both].mean()) if both.any() else None
    row['success_rate'] = row['n_success'] / max(int(np.sum(pred_clean == y.numpy())), 1)
    rows[name] = {k: None if isinstance(v, float) and not math.isfinite(v) else v  # none fooled
                  for k, v in row.items()}
  ratio = lambda field: (rows['fmn'][field] / rows['cw'][field]
                         if rows['fmn'][field] and rows['cw'][field] else None)
  return dict(rows, fmn_steps=fmn_steps, cw_iterations=cw_iterations,
              cw_search_steps=cw_search_steps, n_both_fooled=int(both.sum()),
              fmn_over_cw_rho=ratio('rho_mean'),
              fmn_over_cw_rho_both_fooled=ratio('rho_mean_both_fooled'),
              fmn_over_cw_model_calls=ratio('model_calls_per_image'))


def _inputs():
  if FLAGS.ckpt:
    model, _, description = load_classifier(os.path.expanduser(FLAGS.ckpt))
    test = data_lib.subset(data_lib.load(FLAGS.dataset, FLAGS.data_dir and os.path.expanduser(
        FLAGS.data_dir)).test, FLAGS.num_examples)
    return model, data_lib.to_float(test.x), test.y.astype(np.int32), description
  keras.utils.set_random_seed(0)
  model = models.build_classifier(10, FLAGS.width)
  x = np.random.default_rng(0).uniform(size=(FLAGS.num_examples, 32, 32, 3)).astype(np.float32)
  return model, x, predict(model, x).argmax(-1).astype(np.int32), (
      f'random classifier, width {FLAGS.width:g}, random images (labels: its predictions)')


def main(argv):
  del argv
  model, x, y, description = _inputs()
  x, y = tf.constant(x), tf.constant(y)
  result = dict(model=description, num_examples=int(len(y)),
                apgd_vs_pgd=apgd_vs_pgd(model, x, y, FLAGS.eps, FLAGS.iterations, FLAGS.repeats),
                fmn_vs_cw=fmn_vs_cw(model, x, y, FLAGS.fmn_steps, FLAGS.cw_iterations,
                                    FLAGS.cw_search_steps))
  speed, minimal = result['apgd_vs_pgd'], result['fmn_vs_cw']
  print(f'{description}, {len(y)} images')
  for name in ('pgd', 'apgd'):
    r = speed[name]
    print(f'{name:5} {FLAGS.iterations} iterations at eps {FLAGS.eps:g} on the '
          f'{speed["images"]} clean-correct images: '
          f'{r["iterations_images_per_second"]:.0f} iterations x images/s, '
          f'accuracy {r["accuracy"]:.3f}')
  print(f'APGD / PGD speed: {speed["apgd_over_pgd_speed"]:.2f}')
  fmt = lambda v: '-' if v is None else f'{v:.4f}'
  for name in ('fmn', 'cw'):
    r = minimal[name]
    print(f'{name:5} rho {fmt(r["rho_mean"])} (on the {minimal["n_both_fooled"]} both fooled: '
          f'{fmt(r["rho_mean_both_fooled"])}), success {r["success_rate"]:.3f}, '
          f'{r["model_calls_per_image"]:.0f} model calls per image, {r["seconds"]:.1f} s')
  print(f'FMN / C&W: rho {fmt(minimal["fmn_over_cw_rho"])}, on the both fooled '
        f'{fmt(minimal["fmn_over_cw_rho_both_fooled"])}, model calls '
        f'{fmt(minimal["fmn_over_cw_model_calls"])}')
  write_json_atomic(FLAGS.out, result)


if __name__ == '__main__':
  _define_flags()
  app.run(main)
