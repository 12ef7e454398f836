"""FAB and FAB-T, L2 and Linf: the exact box-constrained projection, minimal distances against the
closed form on affine classifiers, and AutoAttack's use with a budget on a small CIFAR-10 model.

For an affine classifier ``Z = W^T x + b`` the smallest perturbation in a norm that leaves the
region of class ``y`` is ``min_{j != y} |Z_y - Z_j| / ||w_y - w_j||_q``, ``q`` the dual norm (2 for
L2, 1 for Linf), as long as the perturbation stays inside the [0, 1] box; where the box binds and
there are two classes it is the box-constrained projection onto the one hyperplane, computed here
in float64 by bisection on its multiplier.
"""
import numpy as np
import pytest
import tensorflow as tf

from tf_pgn.attacks import predict
from tf_pgn.attacks.fab import fab, project_on_hyperplane

EPS = {'l2': 0.5, 'linf': 2 / 255}


def _sizes(x, x_adv, norm):
  delta = (np.asarray(x_adv, np.float64) - x).reshape(len(x), -1)
  return np.linalg.norm(delta, axis=1) if norm == 'l2' else np.abs(delta).max(axis=1)


def _labels(model, x):
  return predict(model, np.asarray(x), batch_size=64).argmax(axis=1)


def _tf_affine(w, b):
  w, b = tf.constant(w), tf.constant(b)
  return lambda x: tf.matmul(tf.reshape(x, [tf.shape(x)[0], -1]), w) + b


def _bisected_projection(p, w, c, norm):
  """Reference for ``project_on_hyperplane``: bisection on the multiplier, in float64; also
  whether the hyperplane meets the box."""
  w = w * np.sign(c)[:, None]
  c = np.abs(c)
  room = np.where(w > 0, p, 1.0 - p)
  rate = np.abs(w) if norm == 'l2' else np.ones_like(w)
  removed = lambda lam: np.sum(np.abs(w) * np.minimum(lam[:, None] * rate, room), axis=1)
  low, high = np.zeros(len(p)), np.full(len(p), 1e6)
  for _ in range(200):
    short = removed((low + high) / 2) < c
    low, high = np.where(short, (low + high) / 2, low), np.where(short, high, (low + high) / 2)
  return -np.sign(w) * np.minimum(high[:, None] * rate, room), removed(np.full(len(p), 1e9)) >= c


def _affine_problem(shape, num_classes, n, seed, norm):
  """Affine model and n inputs whose minimal perturbation in ``norm`` (closed form) is not tiny
  and stays inside the box."""
  rng = np.random.default_rng(seed)
  dim = int(np.prod(shape))
  w = (rng.normal(size=(dim, num_classes)) / np.sqrt(dim)).astype(np.float32)
  b = (rng.normal(size=num_classes) * 0.1).astype(np.float32)
  x = (0.5 + 0.25 * rng.uniform(-1, 1, size=(50 * n, dim))).astype(np.float32)
  logits = x.astype(np.float64) @ w + b
  y = logits.argmax(axis=1)
  rows = np.arange(len(x))
  normals = w[:, None, :] - w[:, :, None]  # [dim, y, j]: w_j - w_y
  dual = np.linalg.norm(normals, ord=2 if norm == 'l2' else 1, axis=0)  # [y, j]
  dist = (logits[rows, y][:, None] - logits) / np.where(dual[y] > 0, dual[y], 1.0)
  dist[rows, y] = np.inf
  nearest = dist.argmin(axis=1)
  dist = dist[rows, nearest]
  normal = normals[:, y, nearest].T
  direction = (normal / np.linalg.norm(normal, axis=1, keepdims=True) if norm == 'l2'
               else np.sign(normal))
  in_box = np.all(np.abs(x - 0.5 + dist[:, None] * direction) <= 0.5, axis=1)
  low, high = (0.1, 0.45) if norm == 'l2' else (0.01, 0.2)
  keep = np.flatnonzero((dist > low) & (dist < high) & in_box)[:n]
  assert len(keep) == n
  return _tf_affine(w, b), x[keep].reshape((n,) + shape), y[keep], dist[keep]


@pytest.mark.parametrize('norm', ['l2', 'linf'])
def test_projection_is_the_exact_box_constrained_minimum(norm):
  rng = np.random.default_rng(0)
  p = rng.uniform(size=(300, 40))
  p[:, :5] = rng.integers(0, 2, size=(300, 5))  # on the faces of the box
  w = rng.normal(size=(300, 40))
  w[:, 5:8] = 0.0
  c = np.sum(w * rng.uniform(size=p.shape), axis=1) * rng.uniform(-6, 6, size=300)
  p, w, c = (v.astype(np.float32) for v in (p, w, c))
  d = project_on_hyperplane(tf.constant(p), tf.constant(w), tf.constant(c), norm).numpy()
  expected, meets = _bisected_projection(p.astype(np.float64), w.astype(np.float64),
                                         c.astype(np.float64), norm)
  assert 20 < np.sum(~meets) < 100 and np.sum(meets) > 200  # both cases are exercised
  np.testing.assert_allclose(d, expected, atol=1e-5)
  np.testing.assert_allclose(np.sum(w * d, axis=1)[meets], -c[meets], atol=1e-4)
  assert np.all(p + d >= -1e-6) and np.all(p + d <= 1 + 1e-6)


@pytest.mark.parametrize('targeted', [False, True])
@pytest.mark.parametrize('norm', ['l2', 'linf'])
def test_fab_matches_closed_form(norm, targeted):
  model, x, y, dist = _affine_problem((6, 6, 3), 10, n=12, seed=1, norm=norm)
  x_adv = fab(model, x, y, norm=norm, targeted=targeted).numpy()  # the published settings
  assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
  assert np.all(_labels(model, x_adv) != y)
  sizes = _sizes(x, x_adv, norm)
  assert np.all(sizes >= dist * (1 - 1e-4))  # never below the minimum: the closed form holds
  np.testing.assert_allclose(sizes, dist, rtol=0.01)


@pytest.mark.parametrize('norm', ['l2', 'linf'])
def test_fab_finds_the_minimum_where_the_box_binds(norm):
  # Two classes: the minimal perturbation is the box-constrained projection onto the boundary.
  rng = np.random.default_rng(3)
  w = rng.normal(size=(48, 2)).astype(np.float32)
  x = rng.uniform(size=(400, 48)).astype(np.float32)
  x[:, :24] = 0.05 + 0.9 * rng.integers(0, 2, size=(400, 24))  # near the faces
  y = (x @ w).argmax(axis=1)
  normal = np.tile(w[:, 1] - w[:, 0], (len(x), 1)).astype(np.float64)
  d, meets = _bisected_projection(x.astype(np.float64), normal,
                                  np.sum(normal * x, axis=1), norm)
  dist = _sizes(x, x + d, norm)
  unbounded = np.abs(x @ (w[:, 1] - w[:, 0])) / np.linalg.norm(w[:, 1] - w[:, 0],
                                                               ord=2 if norm == 'l2' else 1)
  keep = np.flatnonzero(meets & (dist > 1.05 * unbounded))[:12]  # the box adds 5% or more
  assert len(keep) == 12
  model = _tf_affine(w, np.zeros(2, np.float32))
  x_adv = fab(model, x[keep], y[keep], norm=norm).numpy()
  assert np.all(_labels(model, x_adv) != y[keep])
  np.testing.assert_allclose(_sizes(x[keep], x_adv, norm), dist[keep], rtol=0.01)


@pytest.fixture(scope='module')
def bounded(small_cifar_model):
  """x_adv of FAB and FAB-T with the L2 and Linf budgets of ``EPS`` (the published settings)."""
  model, x, y = small_cifar_model
  return {(norm, targeted): fab(model, x, y, EPS[norm], norm=norm, targeted=targeted).numpy()
          for norm in EPS for targeted in (False, True)}


@pytest.mark.parametrize('norm', ['l2', 'linf'])
def test_fab_t_fools_at_least_as_many_as_fab(norm, bounded, small_cifar_model):
  model, x, y = small_cifar_model
  correct = _labels(model, x) == y
  fooled = {t: _labels(model, bounded[norm, t]) != y for t in (False, True)}
  assert 0 < np.sum(fooled[False] & correct) < np.sum(correct)  # the budget matters
  assert np.sum(fooled[True]) >= np.sum(fooled[False])


def test_bounded_fab_returns_x_or_a_point_within_eps(bounded, small_cifar_model):
  model, x, y = small_cifar_model
  correct = _labels(model, x) == y
  for (norm, _), x_adv in bounded.items():
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    fooled = _labels(model, x_adv) != y
    # float32 norms compared with eps in float32: a rounding's worth of slack
    assert np.all(_sizes(x, x_adv, norm)[fooled] <= EPS[norm] * (1 + 1e-6))
    np.testing.assert_array_equal(x_adv[~fooled | ~correct], x[~fooled | ~correct])


def test_restarts_are_reproducible_and_seeded(small_cifar_model):
  model, x, y = small_cifar_model
  x, y = tf.constant(x[:24]), tf.constant(y[:24])
  first = fab(model, x, y, restarts=3, n_iter=20, seed=1).numpy()
  again = fab(model, x, y, restarts=3, n_iter=20, seed=1).numpy()
  other = fab(model, x, y, restarts=3, n_iter=20, seed=2).numpy()
  np.testing.assert_array_equal(again, first)
  assert np.any(other != first)  # the second run starts at a random point


@pytest.mark.parametrize('kwargs', [dict(norm='l1'), dict(restarts=0), dict(beta=1.0),
                                    dict(alpha_max=-0.1), dict(eta=0.9)])
def test_bad_settings_raise(kwargs):
  model = _tf_affine(np.eye(4, 3, dtype=np.float32), np.zeros(3, np.float32))
  with pytest.raises(ValueError):
    fab(model, np.full((2, 4), 0.5, np.float32), np.zeros(2, np.int32), **kwargs)
