"""One train step of each defense; the PGN step moves both networks the right way."""
import numpy as np
import pytest
import tensorflow as tf

from tf_pgn.config import TrainConfig, make_config
from tf_pgn.defenses import PGN, AdversarialTrainer, from_config, mean_sq_l2


# A He-initialised G (the default, pinned: a zero-initialised one's first x_adv is x): the PGN
# step's perturbation, its L2 term and F's gradient through it are non-trivial from step 1.
PERTURBING_G = dict(pgn_zero_init=False)


def _batch():
  x = tf.random.uniform([16, 32, 32, 3], seed=11)
  y = tf.random.uniform([16], 0, 10, tf.int32, seed=12)
  return x, y


def _snapshot(model):
  return [w.numpy().copy() for w in model.trainable_variables]


def _changed(before, model):
  return any(not np.array_equal(a, b.numpy()) for a, b in zip(before, model.trainable_variables))


@pytest.mark.parametrize('defense', ['naive', 'fgm', 'pgd'])
def test_baseline_step_updates_classifier_and_ema(defense):
  t = AdversarialTrainer(make_config('tiny', defense=defense, eps=0.3, pgd_steps=3), 10)
  x, y = _batch()
  f0, e0 = _snapshot(t.classifier), _snapshot(t.ema_classifier)
  out = t.train_step(x, y)
  assert _changed(f0, t.classifier) and _changed(e0, t.ema_classifier)
  expected_l2 = 0.0 if defense == 'naive' else 0.3
  assert float(out['pert_l2']) <= expected_l2 + 1e-4
  if defense == 'fgm':  # random pixels in [0, 1]: clipping may shorten a few coordinates
    assert float(out['pert_l2']) > 0.25


@pytest.mark.parametrize('through', [False, True])
def test_pgn_step_updates_both_networks(through):
  t = AdversarialTrainer(make_config('tiny', defense='pgn', pgn_grad_through_adv=through,
                                     **PERTURBING_G), 10)
  x, y = _batch()
  f0, g0 = _snapshot(t.classifier), _snapshot(t.generator)
  out = t.train_step(x, y)
  assert _changed(f0, t.classifier) and _changed(g0, t.generator)
  x_adv, _ = t.generate(x, tf.one_hot(y, 10))
  assert float(tf.reduce_min(x_adv)) >= 0.0 and float(tf.reduce_max(x_adv)) <= 1.0
  np.testing.assert_allclose(float(out['pert_sq_l2']), float(mean_sq_l2(x_adv, x)), rtol=0.5)


def test_pgn_generator_objective_decreases_against_fixed_classifier():
  cfg = make_config('tiny', defense='pgn', c_l=1.0, gen_lr=1e-3, **PERTURBING_G)
  t = AdversarialTrainer(cfg, 10)
  x, y = _batch()
  onehot = tf.one_hot(y, 10)

  def gen_objective():
    x_adv, _ = t.generate(x, onehot)
    ce = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, t.classifier(x_adv)))
    return float(-ce + cfg.c_l * mean_sq_l2(x_adv, x))

  f0 = _snapshot(t.classifier)
  before = gen_objective()
  step = tf.function(lambda a, b: t.defense.train_step(t.players, a, b, train_classifier=False))
  for _ in range(10):
    step(x, y)
  assert not _changed(f0, t.classifier)
  assert gen_objective() < before - 0.1 * abs(before)


def test_through_flag_changes_the_classifier_gradient():
  """With the flag, F's update also flows through x_adv and the input gradient."""
  x, y = _batch()
  deltas = []
  for through in (False, True):
    t = AdversarialTrainer(make_config('tiny', defense='pgn', pgn_grad_through_adv=through,
                                       **PERTURBING_G), 10)
    f0 = _snapshot(t.classifier)
    t.train_step(x, y)
    deltas.append(np.concatenate([(w.numpy() - a).ravel()
                                  for a, w in zip(f0, t.classifier.trainable_variables)]))
  assert not np.allclose(deltas[0], deltas[1], atol=1e-9)


@pytest.mark.parametrize('adv_coeff', [1.0, 0.7])
def test_pgn_step_with_one_backward_pass_equals_the_two_gradients_of_eq_4(adv_coeff):
  cfg = make_config('tiny', defense='pgn', adv_coeff=adv_coeff)
  fast, ref = AdversarialTrainer(cfg, 10), AdversarialTrainer(cfg, 10)  # same seed, same init
  x, y = _batch()
  fast.train_step(x, y)
  # Eq. 4 directly: each loss differentiated on its own, x_adv a constant for F.
  onehot = tf.one_hot(y, 10)
  with tf.GradientTape(persistent=True) as tape:
    x_adv, logits = ref.generate(x, onehot)
    ce_adv = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, ref.classifier(x_adv)))
    ce_clean = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
    loss_g = -ce_adv + cfg.c_l * mean_sq_l2(x_adv, x)
    loss_f = adv_coeff * ce_adv + (1 - adv_coeff) * ce_clean
  g_vars, f_vars = ref.generator.trainable_variables, ref.classifier.trainable_variables
  ref.opt_g.apply(tape.gradient(loss_g, g_vars), g_vars)
  ref.opt_f.apply(tape.gradient(loss_f, f_vars), f_vars)
  for model in ('generator', 'classifier'):
    for a, b in zip(getattr(fast, model).trainable_variables,
                    getattr(ref, model).trainable_variables):
      np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('defense', ['fgm', 'pgn'])
def test_mixed_precision_computes_in_bfloat16_and_steps_like_float32(defense):
  full = AdversarialTrainer(make_config('tiny', defense=defense), 10)
  mixed = AdversarialTrainer(make_config('tiny', defense=defense, mixed_precision='bfloat16'), 10)
  assert mixed.classifier.layers[1].compute_dtype == 'bfloat16'
  assert all(v.dtype == 'float32' for v in mixed.classifier.weights)  # float32 variables
  assert mixed.ema_classifier.layers[1].compute_dtype == 'float32'    # evaluated and exported
  assert mixed.ema_classifier(tf.zeros([1, 32, 32, 3])).dtype == tf.float32
  x, y = _batch()
  start = _snapshot(full.classifier)
  np.testing.assert_array_equal(start[0], mixed.classifier.trainable_variables[0].numpy())
  out_full, out_mixed = full.train_step(x, y), mixed.train_step(x, y)
  assert abs(float(out_mixed['loss']) - float(out_full['loss'])) < 0.05 * float(out_full['loss'])
  # Adam's first step moves each weight by ~lr * sign(gradient): the directions must agree.
  delta = lambda t: np.concatenate([(w.numpy() - s).ravel()
                                    for w, s in zip(t.classifier.trainable_variables, start)])
  d_full, d_mixed = delta(full), delta(mixed)
  cosine = d_full @ d_mixed / (np.linalg.norm(d_full) * np.linalg.norm(d_mixed))
  assert cosine > 0.8, cosine


def test_pgn_levers_budget_generator_steps_and_zero_init():
  cfg = make_config('tiny', defense='pgn', pgn_grad_input='normalized', pgn_gen_steps=3,
                    pgn_zero_init=True, pgn_eps=0.3)
  t = AdversarialTrainer(cfg, 10)
  x, y = _batch()
  x_adv, _ = t.generate(x, tf.one_hot(y, 10))
  np.testing.assert_allclose(x_adv, x, atol=1e-5)  # zero output layer: x_adv = x at the start
  for _ in range(3):
    out = t.train_step(x, y)
  assert int(t.opt_g.iterations) == 9 and int(t.opt_f.iterations) == 3
  x_adv, _ = t.generate(x, tf.one_hot(y, 10))
  norms = tf.norm(tf.reshape(x_adv - x, [16, -1]), axis=-1)
  assert float(tf.reduce_max(norms)) <= 0.3 + 1e-4 and float(out['pert_l2']) > 0
  assert float(tf.reduce_min(x_adv)) >= 0.0 and float(tf.reduce_max(x_adv)) <= 1.0


def test_the_library_pgn_defaults_are_the_command_lines():
  """tf_pgn.PGN() is what train.py --defense=pgn trains (its G sees the gradient)."""
  assert PGN() == from_config(TrainConfig(defense='pgn'))
  assert PGN().grad_input == 'normalized' and not PGN().zero_init
