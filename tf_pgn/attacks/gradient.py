"""Gradient L2 attacks with a fixed budget: FGM, PGD and MIM.

FGM and MIM call cleverhans 4.0.0's TF2 functions (``sanity_checks=False``: its sanity checks
crash inside ``tf.function`` and, eagerly, on numpy 2). PGD is written here: cleverhans draws its
random start from stateful global random ops, whose stream restarts in a resumed process, so a
resumed PGD-AT run would not reproduce an uninterrupted one; ours draws from a
``tf.random.Generator`` that the checkpoint saves.
"""
import numpy as np
import tensorflow as tf
from cleverhans.tf2.attacks.fast_gradient_method import fast_gradient_method
from cleverhans.tf2.attacks.momentum_iterative_method import momentum_iterative_method

_TINY = 1e-12


def l2_norm(t: tf.Tensor) -> tf.Tensor:
  """Per-example L2 norm, keeping dims for broadcasting; at least 1e-6, so that a zero vector
  divided by it stays zero."""
  axes = list(range(1, len(t.shape)))
  return tf.sqrt(tf.maximum(tf.reduce_sum(tf.square(t), axes, keepdims=True), _TINY))


def _ce_gradient(model, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
  with tf.GradientTape() as tape:
    tape.watch(x)
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(y, model(x))
  return tape.gradient(loss, x)


def project_l2(x0: tf.Tensor, x: tf.Tensor, eps) -> tf.Tensor:
  """Projects x onto the L2 ball of radius eps around x0, then into [0, 1] (stays in the ball)."""
  delta = x - x0
  delta = delta * tf.minimum(1.0, eps / l2_norm(delta))
  return tf.clip_by_value(x0 + delta, 0.0, 1.0)


def fgm_l2(model, x: tf.Tensor, y: tf.Tensor, eps) -> tf.Tensor:
  """FGM (Goodfellow et al. 2015, L2): clip(x + eps * g / ||g||_2), g = grad_x CE(F(x), y)."""
  return fast_gradient_method(model, x, eps, 2, clip_min=0.0, clip_max=1.0,
                              y=tf.cast(y, tf.int64), sanity_checks=False)


def pgd_l2(model, x: tf.Tensor, y: tf.Tensor, eps, step_size, steps: int,
           rng: tf.random.Generator | None = None) -> tf.Tensor:
  """PGD (Madry et al. 2018, L2): ``steps`` normalised-gradient ascent steps on CE, each followed
  by projection onto the eps-ball and [0, 1]; a uniform random start in the ball if ``rng``.
  """
  x0 = x
  if rng is not None:
    direction = rng.normal(tf.shape(x))
    dims = float(np.prod(x.shape[1:]))
    radius = eps * rng.uniform(tf.shape(x)[:1]) ** (1.0 / dims)
    radius = tf.reshape(radius, [-1] + [1] * (len(x.shape) - 1))
    x = project_l2(x0, x + direction / l2_norm(direction) * radius, eps)
  for _ in range(steps):
    g = _ce_gradient(model, x, y)
    x = project_l2(x0, x + step_size * g / l2_norm(g), eps)
  return tf.stop_gradient(x)


def mim_l2(model, x: tf.Tensor, y: tf.Tensor, eps, step_size, steps: int = 10,
           decay: float = 1.0) -> tf.Tensor:
  """MIM (Dong et al. 2018, L2), cleverhans' momentum iterative method."""
  return momentum_iterative_method(model, x, eps=eps, eps_iter=step_size, nb_iter=steps, norm=2,
                                   clip_min=0.0, clip_max=1.0, y=tf.cast(y, tf.int64),
                                   decay_factor=decay, sanity_checks=False)
