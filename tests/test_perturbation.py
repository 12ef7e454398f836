"""The perturbation floor (tf_pgn.perturbation) and the Linf defenses' budgets."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_pgn import defenses, perturbation
from tf_pgn.cli.flags import FractionParser
from tf_pgn.config import ConfigError, make_config

EPS = 8.0 / 255.0


def _linear(num_classes=3, dims=(4, 4, 2), seed=0):
  """A linear classifier on [N, 4, 4, 2] inputs: logits = flatten(x) W + b."""
  rng = np.random.default_rng(seed)
  w = tf.constant(rng.normal(size=(int(np.prod(dims)), num_classes)), tf.float32)
  b = tf.constant(rng.normal(size=(num_classes,)), tf.float32)
  return lambda x: tf.reshape(x, [tf.shape(x)[0], -1]) @ w + b


def _batch(n=16, dims=(4, 4, 2), seed=1):
  rng = np.random.default_rng(seed)
  x = tf.constant(rng.uniform(size=(n,) + dims), tf.float32)
  y = tf.constant(rng.integers(0, 3, size=n), tf.int32)
  return x, y


def _max_abs(a, b):
  return tf.reduce_max(tf.abs(a - b), axis=[1, 2, 3]).numpy()


@pytest.mark.parametrize('radius', [0.01, EPS, 0.3])
def test_linf_projection_stays_in_the_box_and_the_ball(radius):
  x0, _ = _batch()
  far = x0 + tf.random.stateless_normal(x0.shape, [3, 4])  # far outside both
  p = perturbation.Linf().project(x0, far, radius)
  assert np.all(_max_abs(p, x0) <= radius + 1e-7)
  assert float(tf.reduce_min(p)) >= 0.0 and float(tf.reduce_max(p)) <= 1.0
  # Inside both, projection is the identity.
  inside = tf.clip_by_value(x0 + 0.5 * radius * tf.sign(far - x0), 0.0, 1.0)
  np.testing.assert_array_equal(perturbation.Linf().project(x0, inside, radius), inside)


def test_linf_random_start_is_uniform_in_the_ball():
  x0 = tf.fill([64, 4, 4, 2], 0.5)
  start = perturbation.Linf().random_start(x0, EPS, tf.random.Generator.from_seed(0))
  delta = (start - x0).numpy()
  assert np.abs(delta).max() <= EPS + 1e-7
  assert abs(delta.mean()) < 0.05 * EPS and delta.std() == pytest.approx(EPS / np.sqrt(3), 0.05)


def test_fgsm_on_a_linear_model_moves_eps_sign_gradient_and_gains_eps_l1():
  """FGSM-Linf: x_adv - x = eps sign(g) away from the box, so the first-order loss increase
  <g, x_adv - x> is exactly eps ||g||_1; on a nearly linear stretch of CE the loss gain
  matches it."""
  model = _linear()
  x, y = _batch()
  x = 0.25 + 0.5 * x  # at least 0.25 from the box edges: no clipping at this eps
  g = perturbation.ce_gradient(model, x, y)
  x_adv = perturbation.fgm(model, x, y, 1e-3, 'linf')
  np.testing.assert_allclose((x_adv - x).numpy(), 1e-3 * np.sign(g.numpy()), atol=1e-6)
  first_order = tf.reduce_sum(g * (x_adv - x), axis=[1, 2, 3]).numpy()
  l1 = 1e-3 * tf.reduce_sum(tf.abs(g), axis=[1, 2, 3]).numpy()
  np.testing.assert_allclose(first_order, l1, rtol=1e-3)
  ce = lambda z: tf.nn.sparse_softmax_cross_entropy_with_logits(y, model(z)).numpy()
  np.testing.assert_allclose(ce(x_adv) - ce(x), l1, rtol=2e-2)


def test_pgd_linf_beats_fgsm_and_stays_in_budget():
  model = _linear()
  x, y = _batch()
  rng = tf.random.Generator.from_seed(0)
  x_pgd = perturbation.gradient_ascent(model, x, y, 0.1, 0.025, 10, 'linf', rng=rng)
  x_fgsm = perturbation.fgm(model, x, y, 0.1, 'linf')
  assert np.all(_max_abs(x_pgd, x) <= 0.1 + 1e-6)
  ce = lambda z: float(tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(y, model(z))))
  assert ce(x_pgd) >= ce(x_fgsm) - 1e-4


def _players(num_classes=3):
  inputs = keras.Input((4, 4, 2))
  classifier = keras.Model(inputs, keras.layers.Dense(num_classes)(keras.layers.Flatten()(inputs)))
  return defenses.Players(classifier, keras.optimizers.SGD(0.0), num_classes,
                          rng=tf.random.Generator.from_seed(5))


@pytest.mark.parametrize('defense, bound', [
    (defenses.FGM(EPS, norm='linf'), EPS),
    (defenses.FGSMRS(EPS), EPS),
    (defenses.PGD(EPS, steps=3, norm='linf'), EPS),
    # N-FGSM: 2 eps of noise, one step of eps, not projected back (de Jorge et al. 2022).
    (defenses.NFGSM(EPS), 3 * EPS),
])
def test_each_linf_defense_respects_its_budget(defense, bound):
  players = _players()
  x, y = _batch(64)
  x_adv = defense.perturb(players, x, y)
  size = _max_abs(x_adv, x)
  assert np.all(size <= bound + 1e-6)
  assert float(tf.reduce_min(x_adv)) >= 0.0 and float(tf.reduce_max(x_adv)) <= 1.0
  if isinstance(defense, defenses.NFGSM):
    assert np.mean(size > EPS + 1e-6) > 0.5  # beyond eps by design
  metrics = defense.train_step(players, x, y)
  assert float(metrics['pert_linf']) <= bound + 1e-6


def _pgn_players():
  """Players with a small CIFAR-shaped F and G, and a batch of 8 images of class 0."""
  from tf_pgn import models
  players = _players(10)
  inputs = keras.Input((32, 32, 3))
  players.classifier = keras.Model(
      inputs, keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(inputs)))
  players.generator = models.build_generator(10, 0.0625)
  players.generator_optimizer = keras.optimizers.Adam(1e-3)
  x = tf.random.stateless_uniform([8, 32, 32, 3], [1, 2])
  y = tf.zeros([8], tf.int32)
  return players, x, y


def test_pgn_linf_is_within_its_box_and_starts_at_x_when_zero_initialised():
  players, x, y = _pgn_players()
  pgn = defenses.PGN(c_l=0.0, eps=EPS, norm='linf', zero_init=False)
  x_adv, _ = pgn.generate(players, x, tf.one_hot(y, 10))
  assert np.all(_max_abs(x_adv, x) <= EPS + 1e-6)
  assert float(tf.reduce_max(_max_abs(x_adv, x))) > 0.5 * EPS  # G's He init moves pixels
  defenses.PGN(c_l=0.0, eps=EPS, norm='linf', zero_init=True).prepare_generator(players.generator)
  x_adv, _ = pgn.generate(players, x, tf.one_hot(y, 10))
  np.testing.assert_allclose(x_adv.numpy(), x.numpy(), atol=1e-6)


def test_single_step_cosine_is_one_on_the_fixed_attacks_step_and_zero_across_it():
  rng = np.random.default_rng(3)
  grad = tf.constant(rng.normal(size=(4, 4, 4, 2)), tf.float32)
  # Example i moves one pixel (the i-th) by sign(g) for even i, against it for odd i.
  one_pixel = np.eye(32)[:4] * np.array([1.0, -1.0, 1.0, -1.0])[:, None]
  across = tf.reshape(tf.constant(one_pixel, tf.float32), grad.shape) * tf.sign(grad)
  np.testing.assert_allclose(
      perturbation.single_step_cosine(EPS * tf.sign(grad), grad, 'linf').numpy(), 1.0, rtol=1e-6)
  np.testing.assert_allclose(
      perturbation.single_step_cosine(0.3 * grad, grad, 'l2').numpy(), 1.0, rtol=1e-6)
  np.testing.assert_allclose(
      perturbation.single_step_cosine(-grad, grad, 'l2').numpy(), -1.0, rtol=1e-6)
  # One pixel along sign(g) (and one against it) among 32: cosine +-1 / sqrt(32) at Linf.
  np.testing.assert_allclose(perturbation.single_step_cosine(across, grad, 'linf').numpy(),
                             [32 ** -0.5, -32 ** -0.5, 32 ** -0.5, -32 ** -0.5], rtol=1e-5)
  assert np.all(perturbation.single_step_cosine(tf.zeros_like(grad), grad, 'l2').numpy() == 0.0)


def test_pgn_logs_how_close_its_perturbation_is_to_the_single_step_attack():
  players, x, y = _pgn_players()
  pgn = defenses.PGN(c_l=0.0, eps=EPS, norm='linf', grad_input='sign')
  x_adv, _ = pgn.generate(players, x, tf.one_hot(y, 10))
  grad = perturbation.ce_gradient(players.classifier, x, y)
  expected = perturbation.single_step_cosine(x_adv - x, grad, 'linf').numpy().mean()
  logged = float(pgn.train_step(players, x, y)['pert_fgm_cos'])
  assert logged == pytest.approx(expected, abs=1e-5) and -1.0 <= logged <= 1.0


@pytest.mark.parametrize('make, message', [
    (lambda: defenses.PGD(eps=-1.0), 'eps=-1.0 must be positive'),
    (lambda: defenses.FGM(0.1, norm='l3'), "unknown norm='l3'"),
    (lambda: defenses.PGN(norm='linf'), 'norm=linf needs a budget'),
    (lambda: defenses.FGSMRS(EPS, adv_coeff=2.0), 'adv_coeff=2.0 must lie in [0, 1]'),
])
def test_invalid_defense_settings_are_refused_at_construction(make, message):
  with pytest.raises(ValueError, match=message.replace('[', r'\[').replace(']', r'\]')):
    make()


def test_fraction_flags_and_linf_config():
  assert FractionParser().parse('8/255') == pytest.approx(8 / 255)
  assert FractionParser().parse('0.5') == 0.5
  with pytest.raises(ValueError, match='not a number or a fraction'):
    FractionParser().parse('8/0')
  cfg = make_config('tiny', norm='linf', eps=EPS, defense='pgn')
  assert cfg.pgn_budget == EPS and cfg.probe_budget == EPS
  assert make_config('tiny').probe_budget == 0.5
  with pytest.raises(ConfigError, match='--eps=8.0 at --norm=linf'):
    make_config('tiny', norm='linf', eps=8.0)
