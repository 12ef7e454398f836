"""APGD-Linf (Croce & Hein 2020) and Square-Linf (Andriushchenko et al. 2020, Algorithm 2): their
starts and budgets."""
import numpy as np
import pytest
import tensorflow as tf

from tf_pgn.attacks.apgd import apgd, apgd_targeted
from tf_pgn.attacks.square import square
from tf_pgn.metrics import perturbation_norms


def _linear(num_classes=3, masked=False):
  """A linear classifier of 20 inputs; ``masked``: its input gradient is zero everywhere."""
  w = tf.constant(np.random.default_rng(0).normal(size=(20, num_classes)).astype(np.float32))
  if masked:
    return lambda x: tf.matmul(x - x + tf.stop_gradient(x), w)
  return lambda x: tf.matmul(x, w)


def _inputs(shape, seed=1):
  """Inputs in [0.25, 0.75]: a budget of 0.1 never meets the pixel box."""
  return np.random.default_rng(seed).uniform(0.25, 0.75, size=shape).astype(np.float32)


def _assert_in_box_and_budget(x_adv, x, eps, label=''):
  x_adv = np.asarray(x_adv)
  assert x_adv.shape == x.shape and x_adv.min() >= 0.0 and x_adv.max() <= 1.0, label
  assert np.abs(x_adv.astype(np.float64) - x).max() <= eps + 1e-6, label


@pytest.mark.parametrize('norm', ['l2', 'linf'])
def test_apgd_starts_where_the_reference_does(norm):
  # A zero gradient leaves APGD at its start, x + eps * n / ||n||: on the L2 sphere; at Linf a
  # uniform point of the box whose largest pixel is at eps.
  model = _linear(masked=True)
  x = _inputs((6, 20))
  y = tf.argmax(model(x), -1, output_type=tf.int32)
  delta = np.asarray(apgd(model, x, y, 0.1, norm=norm, n_iter=5)) - x
  if norm == 'l2':
    np.testing.assert_allclose(perturbation_norms(x, x + delta), 0.1, rtol=1e-5)
  else:
    np.testing.assert_allclose(np.abs(delta).max(axis=1), 0.1, rtol=1e-5)
    assert np.abs(delta).min() < 0.05 and (delta > 0).any() and (delta < 0).any()


def test_apgd_linf_takes_any_input_shape_and_stays_in_the_box():
  model = _linear()
  x = _inputs((6, 20))
  y = tf.argmax(model(x), -1, output_type=tf.int32)
  for loss in ('ce', 'dlr'):
    x_adv = apgd(model, x, y, 0.1, norm='linf', loss=loss, n_iter=10, restarts=2)
    _assert_in_box_and_budget(x_adv, x, 0.1, loss)
    assert np.mean(np.argmax(model(x_adv), -1) == y) < 1.0, loss  # it moves along sign(g)
  with pytest.raises(ValueError, match="unknown norm 'l1'"):
    apgd_targeted(_linear(4), x, y, 0.1, norm='l1')


def test_square_linf_starts_with_vertical_stripes_of_plus_minus_eps():
  # A model whose margin never falls keeps the start: per example, column and channel one sign.
  x = _inputs((3, 8, 6, 2))
  model = lambda images: tf.zeros([tf.shape(images)[0], 3]) + tf.constant([1.0, 0.0, 0.0])
  delta = np.asarray(square(model, x, np.zeros(3, np.int32), 0.1, norm='linf',
                                   n_queries=20)) - x
  np.testing.assert_allclose(np.abs(delta), 0.1, rtol=1e-5)
  np.testing.assert_array_equal(np.sign(delta), np.broadcast_to(np.sign(delta[:, :1]), x.shape))
  assert len(np.unique(np.sign(delta))) == 2
  with pytest.raises(ValueError, match="unknown norm 'l1' for the Square attack"):
    square(model, x, np.zeros(3, np.int32), 0.1, norm='l1')
