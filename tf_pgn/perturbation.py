"""Perturbation primitives for L2 and Linf: the floor below the defenses and the attacks.

A norm is a small step object (``L2``, ``Linf``; MadryLab ``robustness``' ``attack_steps``): its
random start, its ascent step, its projection onto the eps-ball intersected with the pixel
box [0, 1], and the size of a perturbation. ``gradient_ascent`` is the one loop every fixed-budget
gradient attack and training perturbation runs: PGD (Madry et al. 2018), FGSM-RS (Wong, Rice &
Kolter 2020, one step from a uniform start) and N-FGSM (de Jorge et al. 2022, one step from a
larger noise, not projected back) are settings of it. ``fgm`` (Goodfellow et al. 2015) and ``mim``
(Dong et al. 2018) are cleverhans 4.0.0's TF2 functions for either norm.

eps is on the [0, 1] pixel scale: 8/255 at Linf is ``8 / 255``.
"""
import dataclasses

import numpy as np
import tensorflow as tf
from cleverhans.tf2.attacks.fast_gradient_method import fast_gradient_method
from cleverhans.tf2.attacks.momentum_iterative_method import momentum_iterative_method

__all__ = ['L2', 'Linf', 'NORMS', 'Norm', 'ce_gradient', 'fgm', 'get_norm', 'gradient_ascent',
           'l2_norm', 'mim', 'project_l2', 'single_step_cosine']

_TINY = 1e-12


def _reduce_axes(t: tf.Tensor) -> list:
  return list(range(1, len(t.shape)))


def l2_norm(t: tf.Tensor) -> tf.Tensor:
  """Per-example L2 norm, keeping dims for broadcasting; at least 1e-6, so that a zero vector
  divided by it stays zero."""
  return tf.sqrt(tf.maximum(tf.reduce_sum(tf.square(t), _reduce_axes(t), keepdims=True), _TINY))


def project_l2(x0: tf.Tensor, x: tf.Tensor, eps) -> tf.Tensor:
  """Projects x onto the L2 ball of radius eps around x0, then into [0, 1] (stays in the ball)."""
  delta = x - x0
  delta = delta * tf.minimum(1.0, eps / l2_norm(delta))
  return tf.clip_by_value(x0 + delta, 0.0, 1.0)


class Norm:
  """One norm's steps. ``radius=None`` in ``project`` means the pixel box alone."""
  name: str
  order: float  # cleverhans' ``norm`` argument

  def random_start(self, x, radius, rng: tf.random.Generator) -> tf.Tensor:
    """x plus a random point of the radius-ball, projected into the ball and [0, 1]."""
    raise NotImplementedError

  def ascend(self, x, grad: tf.Tensor, step_size) -> tf.Tensor:
    """x moved by ``step_size`` along the norm's steepest-ascent direction of ``grad``."""
    raise NotImplementedError

  def project(self, x0, x, radius) -> tf.Tensor:
    """x projected onto the radius-ball around x0 (if ``radius`` is not None), then [0, 1]."""
    raise NotImplementedError

  def size(self, delta) -> tf.Tensor:
    """Per-example norm of ``delta`` ([N])."""
    raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class L2(Norm):
  """L2: a uniform start in the ball (a Gaussian direction, radius eps u^(1/d)), normalised-
  gradient steps, projection by rescaling."""
  name: str = 'l2'
  order: float = 2

  def random_start(self, x, radius, rng):
    direction = rng.normal(tf.shape(x))
    dims = float(np.prod(x.shape[1:]))
    r = radius * rng.uniform(tf.shape(x)[:1]) ** (1.0 / dims)
    r = tf.reshape(r, [-1] + [1] * (len(x.shape) - 1))
    return self.project(x, x + direction / l2_norm(direction) * r, radius)

  def ascend(self, x, grad, step_size):
    return x + step_size * grad / l2_norm(grad)

  def project(self, x0, x, radius):
    if radius is None:
      return tf.clip_by_value(x, 0.0, 1.0)
    return project_l2(x0, x, radius)

  def size(self, delta):
    return tf.sqrt(tf.reduce_sum(tf.square(delta), _reduce_axes(delta)))


@dataclasses.dataclass(frozen=True)
class Linf(Norm):
  """Linf: a uniform start in the box [-eps, eps] per pixel, sign-gradient steps, projection by
  clipping each pixel to [x0 - eps, x0 + eps]."""
  name: str = 'linf'
  order: float = np.inf

  def random_start(self, x, radius, rng):
    return self.project(x, x + rng.uniform(tf.shape(x), -radius, radius), radius)

  def ascend(self, x, grad, step_size):
    return x + step_size * tf.sign(grad)

  def project(self, x0, x, radius):
    if radius is not None:
      x = tf.clip_by_value(x, x0 - radius, x0 + radius)
    return tf.clip_by_value(x, 0.0, 1.0)

  def size(self, delta):
    return tf.reduce_max(tf.abs(delta), _reduce_axes(delta))


NORMS = {'l2': L2(), 'linf': Linf()}


def get_norm(norm) -> Norm:
  """The step object of ``norm``: 'l2', 'linf' or a ``Norm``."""
  if isinstance(norm, Norm):
    return norm
  if norm not in NORMS:
    raise ValueError(f'unknown norm {norm!r}: use one of {", ".join(NORMS)}')
  return NORMS[norm]


def single_step_cosine(delta: tf.Tensor, grad: tf.Tensor, norm) -> tf.Tensor:
  """Per-example cosine ([N]) between a perturbation ``delta`` and the single-step attack's
  direction of the loss gradient ``grad`` at ``norm``: FGM's grad / ||grad||_2 at L2, FGSM's
  sign(grad) at Linf. Near 1: ``delta`` is that fixed attack's step (up to its size and the
  pixel box's clipping); 0 where either is zero."""
  direction = get_norm(norm).ascend(tf.zeros_like(grad), grad, 1.0)
  dot = tf.reduce_sum(delta * direction, _reduce_axes(delta))
  return dot / tf.reshape(l2_norm(delta) * l2_norm(direction), [-1])


def ce_gradient(model, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
  """grad_x of the summed per-example cross-entropy of ``model``'s logits."""
  with tf.GradientTape() as tape:
    tape.watch(x)
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(y, model(x))
  return tape.gradient(loss, x)


def gradient_ascent(model, x: tf.Tensor, y: tf.Tensor, eps, step_size, steps: int,
                    norm='l2', rng: tf.random.Generator | None = None, start_radius=None,
                    project: bool = True) -> tf.Tensor:
  """``steps`` ascent steps on CE, each ``x <- P(norm.ascend(x, grad, step_size))``.

  PGD (Madry et al. 2018) with ``rng`` (a uniform random start in the eps-ball) or without (from
  x). ``start_radius`` draws the start from a ball of another radius; ``project=False`` keeps only
  the pixel box, not the eps-ball, so the result may lie farther than eps from x (N-FGSM: a
  2 eps noise then one step of eps, up to 3 eps at Linf).
  """
  norm = get_norm(norm)
  radius = eps if project else None
  x0 = x
  if rng is not None:
    x = norm.random_start(x0, eps if start_radius is None else start_radius, rng)
    if project and start_radius is not None:
      x = norm.project(x0, x, radius)
  for _ in range(steps):
    x = norm.project(x0, norm.ascend(x, ce_gradient(model, x, y), step_size), radius)
  return tf.stop_gradient(x)


def fgm(model, x: tf.Tensor, y: tf.Tensor, eps, norm='l2') -> tf.Tensor:
  """FGM (Goodfellow et al. 2015): clip(x + eps * direction(g)), g = grad_x CE(F(x), y); at
  Linf the direction is sign(g) (FGSM), at L2 g / ||g||_2. cleverhans' function with
  ``sanity_checks=False`` (its checks crash inside ``tf.function`` and, eagerly, on numpy 2)."""
  return fast_gradient_method(model, x, eps, get_norm(norm).order, clip_min=0.0, clip_max=1.0,
                              y=tf.cast(y, tf.int64), sanity_checks=False)


def mim(model, x: tf.Tensor, y: tf.Tensor, eps, step_size, steps: int = 10, decay: float = 1.0,
        norm='l2') -> tf.Tensor:
  """MIM (Dong et al. 2018), cleverhans' momentum iterative method."""
  return momentum_iterative_method(model, x, eps=eps, eps_iter=step_size, nb_iter=steps,
                                   norm=get_norm(norm).order, clip_min=0.0, clip_max=1.0,
                                   y=tf.cast(y, tf.int64), decay_factor=decay,
                                   sanity_checks=False)
