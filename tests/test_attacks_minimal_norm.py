"""Minimal-norm L2 attacks (DeepFool, Carlini & Wagner, FMN) against closed-form distances.

For an affine classifier ``Z = W^T x + b`` the minimal L2 perturbation that leaves the region of
class ``y`` is ``min_{j != y} |(w_y - w_j) . x + b_y - b_j| / ||w_y - w_j||`` (the distance to
the nearest of the hyperplanes bounding that convex region). Inputs are drawn so that this
distance lies in [0.1, 0.45] and the minimal perturbation stays inside the [0, 1] box.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_pgn.attacks import carlini_wagner_l2, deepfool_l2, predict, run_attack
from tf_pgn.attacks.fmn import fmn_l2
from tf_pgn.metrics import perturbation_norms

CW_PRECISE = dict(max_iterations=1000, binary_search_steps=9, initial_const=1.0,
                  learning_rate=1e-2)


def _closed_form(w, b, x_flat, y):
  """Distance to the nearest boundary and the minimal perturbation itself, per example."""
  logits = x_flat @ w + b
  dists, deltas = [], []
  for i, yi in enumerate(y):
    normals = [w[:, j] - w[:, yi] for j in range(w.shape[1]) if j != yi]
    margins = [logits[i, yi] - logits[i, j] for j in range(w.shape[1]) if j != yi]
    d, k = min((m / np.linalg.norm(n), k) for k, (m, n) in enumerate(zip(margins, normals)))
    dists.append(d)
    deltas.append(d * normals[k] / np.linalg.norm(normals[k]))
  return np.array(dists), np.array(deltas)


def _affine_problem(shape, num_classes, n, seed):
  """Affine model and n inputs whose minimal perturbation has L2 norm in [0.1, 0.45] and
  stays inside the [0, 1] box."""
  rng = np.random.default_rng(seed)
  dim = int(np.prod(shape))
  w = (rng.normal(size=(dim, num_classes)) / np.sqrt(dim)).astype(np.float32)
  b = (rng.normal(size=num_classes) * 0.1).astype(np.float32)
  x = (0.5 + 0.25 * rng.uniform(-1, 1, size=(100 * n, dim))).astype(np.float32)
  y = (x @ w + b).argmax(axis=1)
  dist, delta = _closed_form(w, b, x, y)
  in_box = np.all((x + delta >= 0) & (x + delta <= 1), axis=1)
  keep = np.flatnonzero((dist > 0.1) & (dist < 0.45) & in_box)[:n]
  assert len(keep) == n
  return w, b, x[keep].reshape((n,) + shape), y[keep], dist[keep]


def _tf_affine(w, b):
  w, b = tf.constant(w), tf.constant(b)
  return lambda x: tf.matmul(tf.reshape(x, [tf.shape(x)[0], -1]), w) + b


def _keras_affine(w, b, shape):
  model = keras.Sequential([keras.Input(shape), keras.layers.Flatten(),
                            keras.layers.Dense(w.shape[1])])
  model.layers[-1].set_weights([w, b])
  return model


@pytest.fixture(scope='module')
def binary_image_problem():
  shape = (8, 8, 3)
  w, b, x, y, dist = _affine_problem(shape, 2, n=8, seed=0)
  return _keras_affine(w, b, shape), x, y, dist


@pytest.fixture(scope='module')
def multiclass_flat_problem():
  w, b, x, y, dist = _affine_problem((20,), 5, n=12, seed=1)
  return _tf_affine(w, b), x, y, dist


@pytest.fixture(scope='module')
def tiny_cnn():
  keras.utils.set_random_seed(0)
  return keras.Sequential([
      keras.Input((16, 16, 3)),
      keras.layers.Conv2D(8, 3, padding='same', activation='relu'),
      keras.layers.AveragePooling2D(2),
      keras.layers.Conv2D(16, 3, padding='same', activation='relu'),
      keras.layers.GlobalAveragePooling2D(),
      keras.layers.Dense(4),
  ])


def _labels(model, x):
  return predict(model, x, batch_size=64).argmax(axis=1)


@pytest.mark.parametrize('problem', ['binary_image_problem', 'multiclass_flat_problem'])
def test_deepfool_matches_closed_form(problem, request):
  model, x, y, dist = request.getfixturevalue(problem)
  x_adv = deepfool_l2(model, x, y, overshoot=0.02).numpy()
  norms = perturbation_norms(x, x_adv) / 1.02
  np.testing.assert_allclose(norms, dist, rtol=0.01)
  assert np.all(_labels(model, x_adv) != y)


@pytest.mark.parametrize('problem', ['binary_image_problem', 'multiclass_flat_problem'])
def test_carlini_wagner_matches_closed_form(problem, request):
  model, x, y, dist = request.getfixturevalue(problem)
  x_adv = carlini_wagner_l2(model, x, y, **CW_PRECISE).numpy()
  norms = perturbation_norms(x, x_adv)
  assert np.all(_labels(model, x_adv) != y)
  # The best C&W iterate sits just past the boundary: never closer than the true distance.
  assert np.all(norms >= dist * (1 - 1e-4))
  np.testing.assert_allclose(norms, dist, rtol=0.01)


@pytest.mark.parametrize('problem', ['binary_image_problem', 'multiclass_flat_problem'])
def test_fmn_matches_closed_form(problem, request):
  model, x, y, dist = request.getfixturevalue(problem)
  x_adv = fmn_l2(model, x, y).numpy()  # the published settings, 100 steps
  assert np.all(_labels(model, x_adv) != y)
  np.testing.assert_allclose(perturbation_norms(x, x_adv), dist, rtol=0.02)


def test_attacks_on_cnn_succeed_and_stay_in_box(tiny_cnn):
  x = np.random.default_rng(2).uniform(size=(16, 16, 16, 3)).astype(np.float32)
  y = _labels(tiny_cnn, x)
  y[:3] = (y[:3] + 1) % 4  # three already misclassified examples must be left unchanged
  x_cw = carlini_wagner_l2(tiny_cnn, x, y, max_iterations=100, binary_search_steps=6,
                           initial_const=0.1, learning_rate=5e-2).numpy()
  x_df = deepfool_l2(tiny_cnn, x, y).numpy()
  x_fmn = fmn_l2(tiny_cnn, x, y).numpy()
  for x_adv in (x_cw, x_df, x_fmn):
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert np.all(_labels(tiny_cnn, x_adv) != y)
  np.testing.assert_allclose(x_cw[:3], x[:3], atol=1e-5)
  np.testing.assert_array_equal(x_df[:3], x[:3])
  np.testing.assert_array_equal(x_fmn[:3], x[:3])


def test_attacks_never_leave_box_at_corners():
  # Gradients point out of the box at pixels 0 and 1; a large overshoot must still be clipped.
  w = np.array([[-1.0, 1.0]] * 4 + [[1.0, -1.0]] * 4, np.float32)
  model = _tf_affine(w, np.array([0.5, 0.0], np.float32))
  x = np.array([[0.0] * 4 + [1.0] * 4, [0.0, 0.3, 0.6, 1.0] * 2], np.float32)
  y = np.zeros(2, np.int64)
  for x_adv in (deepfool_l2(model, x, y, overshoot=5.0),
                carlini_wagner_l2(model, x, y, max_iterations=50, learning_rate=0.1),
                fmn_l2(model, x, y, steps=20, alpha_init=5.0)):
    x_adv = x_adv.numpy()
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0


def test_runner_batched_equals_unbatched(multiclass_flat_problem):
  model, x, y, _ = multiclass_flat_problem
  whole = run_attack(deepfool_l2, model, x, y, batch_size=len(x))
  batched = run_attack(deepfool_l2, model, x, y, batch_size=5, progress_desc='deepfool')
  np.testing.assert_allclose(batched, whole, atol=1e-6)
  np.testing.assert_allclose(predict(model, x, batch_size=5), predict(model, x, batch_size=64),
                             atol=1e-6)


def test_runner_rejects_out_of_box_attack(multiclass_flat_problem):
  model, x, y, _ = multiclass_flat_problem
  with pytest.raises(AssertionError):
    run_attack(lambda m, xb, yb: xb + 2.0, model, x, y, batch_size=4)
