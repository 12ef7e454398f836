"""FGM / PGD / MIM obey their L2 budget and stay in [0, 1]."""
import keras
import numpy as np
import tensorflow as tf

from tf_pgn import models
from tf_pgn import perturbation


def _setup():
  keras.utils.set_random_seed(0)  # independent of the tests that ran before
  f = models.build_classifier(10, width=0.0625)
  # Interior pixels so that a 0.05 perturbation never reaches the box: no clipping.
  x = 0.25 + 0.5 * tf.random.uniform([8, 32, 32, 3], seed=4)
  y = tf.constant([0, 1, 2, 3, 4, 5, 6, 7])
  return f, x, y


def _norms(a, b):
  return np.sqrt(np.sum(np.square((a - b).numpy().astype(np.float64)), axis=(1, 2, 3)))


def test_fgm_has_norm_eps_before_clipping():
  f, x, y = _setup()
  np.testing.assert_allclose(_norms(perturbation.fgm(f, x, y, 0.05), x), 0.05, rtol=1e-4)


def test_pgd_and_mim_stay_in_ball_and_box_and_raise_loss():
  f, x, y = _setup()
  eps = 0.5
  rng = tf.random.Generator.from_seed(0)
  x_pgd = perturbation.gradient_ascent(f, x, y, eps, eps / 4, 8, rng=rng)
  x_mim = perturbation.mim(f, x, y, eps, eps / 4, 8)
  ce = lambda z: tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, f(z)))
  for x_adv in (x_pgd, x_mim):
    assert np.all(_norms(x_adv, x) <= eps * (1 + 1e-5))
    assert float(tf.reduce_min(x_adv)) >= 0.0 and float(tf.reduce_max(x_adv)) <= 1.0
    assert float(ce(x_adv)) > float(ce(x))
  assert float(ce(x_pgd)) >= float(ce(perturbation.fgm(f, x, y, eps))) - 1e-3
  # A large budget near the box edges: the projection onto [0, 1] keeps it in the ball.
  x_edge = tf.cast(tf.random.uniform([8, 32, 32, 3], seed=5) > 0.5, tf.float32)
  x_adv = perturbation.gradient_ascent(f, x_edge, y, 3.0, 1.0, 5, rng=rng)
  assert np.all(_norms(x_adv, x_edge) <= 3.0 * (1 + 1e-5))
  assert float(tf.reduce_min(x_adv)) >= 0.0 and float(tf.reduce_max(x_adv)) <= 1.0


def test_pgd_random_start_is_reproducible_from_generator_state():
  f, x, y = _setup()
  a = perturbation.gradient_ascent(f, x, y, 0.5, 0.1, 2, rng=tf.random.Generator.from_seed(7))
  b = perturbation.gradient_ascent(f, x, y, 0.5, 0.1, 2, rng=tf.random.Generator.from_seed(7))
  np.testing.assert_array_equal(a.numpy(), b.numpy())
