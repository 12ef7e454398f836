"""Fast Minimum-Norm attack, L2 (Pintor, Roli, Brendel & Biggio, NeurIPS 2021, "Fast Minimum-norm
Adversarial Attacks through Adaptive Norm Constraints", Algorithm 1).

A minimal-norm attack like C&W, at a fraction of its gradient evaluations: one per step. It
descends the logit margin ``Z_y - max_{j != y} Z_j`` with normalised gradient steps of size
``alpha`` inside an L2 ball of radius ``epsilon`` that adapts per example: before the first
adversarial point, ``epsilon`` is the linear estimate of the distance to the boundary,
``||delta|| + |margin| / ||grad||``; then it shrinks by a factor ``1 - gamma`` (down to the best
norm found) while the iterate is adversarial and grows by ``1 + gamma`` while it is not.
``alpha`` (from ``alpha_init`` to ``alpha_init / 100``) and ``gamma`` (from ``gamma_init`` to
0.001) decay with cosine annealing. Defaults as the authors' code (pralab/Fast-Minimum-Norm-FMN-
Attack, foolbox's ``L2FMNAttack``: alpha_init 1, gamma_init 0.05); 100 steps here.
"""
import math

import tensorflow as tf

from tf_pgn.attacks.common import expand, margin, value_and_gradient
from tf_pgn.perturbation import l2_norm, project_l2

__all__ = ['fmn_l2']

STEPS = 100
ALPHA_INIT = 1.0
GAMMA_INIT = 0.05
GAMMA_FINAL = 0.001


def fmn_l2(model, x, y, *, steps: int = STEPS, alpha_init: float = ALPHA_INIT,
           alpha_final: float | None = None, gamma_init: float = GAMMA_INIT,
           gamma_final: float = GAMMA_FINAL):
  """Untargeted FMN-L2 from ``x`` (no starting attack), batched.

  Args:
    model: callable mapping float32 ``[N, ...]`` inputs in [0, 1] to logits ``[N, K]``.
    x: float32 inputs ``[N, ...]`` in [0, 1].
    y: integer true labels ``[N]``.
    steps: gradient steps (one gradient evaluation each).
    alpha_init, alpha_final: step size at the first and last step (default alpha_init / 100).
    gamma_init, gamma_final: factor of the epsilon update at the first and last step.

  Returns:
    ``x_adv`` in [0, 1]: the smallest-L2 adversarial point seen; ``x`` itself where none was
    found (and for examples misclassified clean).
  """
  x = tf.convert_to_tensor(x, tf.float32)
  y = tf.cast(tf.convert_to_tensor(y), tf.int32)
  alpha_final = alpha_init / 100.0 if alpha_final is None else alpha_final
  return _fmn_graph(model, x, y, int(steps), float(alpha_init), float(alpha_final),
                    float(gamma_init), float(gamma_final))


@tf.function(reduce_retracing=True)
def _fmn_graph(model, x, y, steps: int, alpha_init: float, alpha_final: float,
               gamma_init: float, gamma_final: float):
  rank = x.shape.rank
  # Exact norms of perturbations (zero for none), so that examples misclassified clean stay put.
  norm = lambda t: tf.sqrt(tf.reduce_sum(tf.square(t), axis=list(range(1, rank))))
  delta = tf.zeros_like(x)
  best_delta = delta
  # No perturbation inside the box is longer than the distance to its farthest corner.
  worst_norm = norm(tf.maximum(x, 1.0 - x))
  best_norm = worst_norm
  epsilon = tf.fill(tf.shape(y), math.inf)
  found = tf.zeros(tf.shape(y), tf.bool)
  for i in tf.range(steps):
    anneal = (1.0 + tf.cos(math.pi * tf.cast(i, tf.float32) / steps)) / 2.0
    alpha = alpha_final + (alpha_init - alpha_final) * anneal
    gamma = gamma_final + (gamma_init - gamma_final) * anneal
    logits, loss, grad = value_and_gradient(model, x + delta, lambda z: -margin(z, y))
    adversarial = tf.argmax(logits, axis=-1, output_type=tf.int32) != y
    delta_norm = norm(delta)
    smaller = adversarial & (delta_norm <= best_norm)
    found |= adversarial
    best_norm = tf.where(smaller, delta_norm, best_norm)
    best_delta = tf.where(expand(smaller, rank), delta, best_delta)
    to_boundary = delta_norm + tf.abs(loss) / tf.reshape(l2_norm(grad), [-1])
    epsilon = tf.where(adversarial, tf.minimum(epsilon * (1.0 - gamma), norm(best_delta)),
                       tf.where(found, epsilon * (1.0 + gamma), to_boundary))
    epsilon = tf.minimum(epsilon, worst_norm)
    # A step up the loss -margin, then into the epsilon-ball and [0, 1].
    delta = project_l2(x, x + delta + alpha * grad / l2_norm(grad), expand(epsilon, rank)) - x
  return x + best_delta
