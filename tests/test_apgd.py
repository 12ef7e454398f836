"""APGD-L2 (CE, DLR, targeted): the published schedule, its losses, and its strength against PGD
on a small trained CIFAR-10 model (APGD-Linf: tests/test_linf_attacks.py)."""
import math

import numpy as np
import pytest
import tensorflow as tf

from tf_pgn.attacks import predict
from tf_pgn.attacks.apgd import apgd, apgd_targeted, checkpoints, dlr_loss, targeted_dlr_loss
from tf_pgn import perturbation
from tf_pgn.metrics import perturbation_norms

EPS = 0.5


def _accuracy(model, x_adv, y):
  return np.mean(predict(model, np.asarray(x_adv)).argmax(-1) == y)


def _assert_in_ball_and_box(x_adv, x, eps):
  x_adv = np.asarray(x_adv)
  assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
  assert perturbation_norms(x, x_adv).max() <= eps * (1 + 1e-5)


def test_checkpoints_follow_the_papers_recurrence():
  # p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06); w_j = ceil(p_j n).
  p = [0.0, 0.22]
  while p[-1] + max(p[-1] - p[-2] - 0.03, 0.06) <= 1.0:
    p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
  assert checkpoints(100) == [math.ceil(round(v * 100, 6)) for v in p[1:]]
  assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
  assert checkpoints(1) == [1]


def test_dlr_losses_are_the_papers_and_scale_free():
  logits = tf.constant([[4.0, 1.0, 2.0, 0.0], [1.0, 3.0, 0.5, 0.0]])
  y = tf.constant([0, 0])
  # Sorted: 4, 2, 1, 0 and 3, 1, 0.5, 0.
  np.testing.assert_allclose(dlr_loss(logits, y), [-(4 - 2) / (4 - 1), -(1 - 3) / (3 - 0.5)],
                             rtol=1e-6)
  target = tf.constant([2, 1])
  np.testing.assert_allclose(targeted_dlr_loss(logits, y, target),
                             [-(4 - 2) / (4 - 0.5), -(1 - 3) / (3 - 0.25)], rtol=1e-6)
  np.testing.assert_allclose(dlr_loss(3.0 * logits + 7.0, y), dlr_loss(logits, y), rtol=1e-5)


@pytest.fixture(scope='module')
def attacked(small_cifar_model):
  """Accuracy and x_adv of PGD-20 and APGD-CE / -DLR / -T at L2 eps 0.5 (published settings)."""
  model, x, y = small_cifar_model
  xs, ys = tf.constant(x), tf.constant(y)
  x_adv = dict(pgd20=perturbation.gradient_ascent(model, xs, ys, EPS, 2.5 * EPS / 20, 20),
               apgd_ce=apgd(model, xs, ys, EPS),
               apgd_dlr=apgd(model, xs, ys, EPS, loss='dlr'),
               apgd_t=apgd_targeted(model, xs, ys, EPS))
  return {k: (_accuracy(model, v, y), v) for k, v in x_adv.items()}


def test_apgd_is_at_least_as_strong_as_pgd(attacked, small_cifar_model):
  _, x, y = small_cifar_model
  acc = {k: a for k, (a, _) in attacked.items()}
  clean = np.mean(predict(small_cifar_model[0], x).argmax(-1) == y)
  assert acc['pgd20'] < clean - 0.1  # the budget matters on this model
  assert acc['apgd_ce'] <= acc['pgd20']
  assert acc['apgd_dlr'] <= acc['pgd20'] + 1 / len(y)
  assert acc['apgd_t'] <= acc['apgd_ce'] + 1 / len(y)


def test_apgd_stays_in_the_ball_and_the_box(attacked, small_cifar_model):
  _, x, _ = small_cifar_model
  for _, x_adv in attacked.values():
    _assert_in_ball_and_box(x_adv, x, EPS)


def test_apgd_is_reproducible_eagerly_and_compiled(small_cifar_model, attacked):
  model, x, y = small_cifar_model
  again = apgd(model, tf.constant(x), tf.constant(y), EPS)
  np.testing.assert_array_equal(np.asarray(again), np.asarray(attacked['apgd_ce'][1]))
  # A tensor eps inside tf.function (one trace for every budget) gives the same points.
  compiled = tf.function(lambda xs, ys, eps: apgd(model, xs, ys, eps))
  np.testing.assert_allclose(compiled(tf.constant(x), tf.constant(y), tf.constant(EPS)),
                             attacked['apgd_ce'][1], atol=1e-5)


def test_apgd_takes_any_input_shape_and_checks_the_number_of_classes():
  rng = np.random.default_rng(0)
  w = tf.constant(rng.normal(size=(20, 3)).astype(np.float32))
  model = lambda x: tf.matmul(x, w)
  x = tf.constant(rng.uniform(0.25, 0.75, size=(6, 20)).astype(np.float32))
  y = tf.argmax(model(x), -1, output_type=tf.int32)
  for loss in ('ce', 'dlr'):
    x_adv = apgd(model, x, y, 0.3, loss=loss, n_iter=10, restarts=2)
    _assert_in_ball_and_box(x_adv, x.numpy(), 0.3)
  with pytest.raises(ValueError, match='needs at least 4 classes'):
    apgd_targeted(model, x, y, 0.3, n_iter=10)
