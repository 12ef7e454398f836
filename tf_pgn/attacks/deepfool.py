"""Multi-class DeepFool, L2 (Moosavi-Dezfooli, Fawzi & Frossard, CVPR 2016).

DeepFool linearises the classifier around the current point and steps to the nearest
linearised decision boundary among a fixed set of candidate classes (Algorithm 2 of the
paper), repeating until the label changes. It is the minimal-norm attack used in section 4.2
of the PGN paper next to Carlini & Wagner. cleverhans 4.0.0 has no TF2 DeepFool, so this is
our own batched implementation.
"""

import tensorflow as tf

__all__ = ['deepfool_l2']

# Added to the step length so that each step lands just past the linearised boundary
# (the 1e-4 of the authors' reference implementation).
_STEP_EPS = 1e-4
# Guards divisions by the norm of a zero gradient difference.
_NORM_EPS = 1e-12


def deepfool_l2(model, x, y, num_classes_considered=10, max_iter=50, overshoot=0.02):
  """Untargeted L2 DeepFool (Moosavi-Dezfooli et al. 2016, Algorithm 2), batched.

  The true label ``y`` plays the role of the original class. The candidate classes are ``y``
  and the ``num_classes_considered - 1`` other classes with the highest clean logits, fixed
  for the whole run as in the paper. Each iteration takes, for every example still classified
  as ``y``, the step ``r_i`` to the nearest linearised boundary
  ``min_k |f_k| / ||w_k||`` with ``f_k = Z_k - Z_y`` and ``w_k = grad Z_k - grad Z_y``;
  examples stop as soon as they are misclassified (those misclassified clean are never moved).
  The iterate is ``clip(x + (1 + overshoot) * r_total, 0, 1)``.

  Args:
    model: callable mapping float32 ``[N, ...]`` inputs in [0, 1] to logits ``[N, K]``.
    x: float32 inputs ``[N, ...]`` with pixels in [0, 1].
    y: integer true labels ``[N]``.
    num_classes_considered: size of the candidate set, the true class included (>= 2;
      capped at K).
    max_iter: maximum number of linearisation steps.
    overshoot: the final perturbation is ``(1 + overshoot) * r_total``.

  Returns:
    ``x_adv``, a float32 tensor shaped like ``x`` with values in [0, 1].
  """
  if num_classes_considered < 2:
    raise ValueError('num_classes_considered must be at least 2')
  x = tf.convert_to_tensor(x, tf.float32)
  y = tf.cast(tf.convert_to_tensor(y), tf.int32)
  return _deepfool_graph(model, x, y, int(num_classes_considered), int(max_iter),
                         float(overshoot))


@tf.function(reduce_retracing=True)
def _deepfool_graph(model, x, y, num_classes_considered, max_iter, overshoot):
  logits = model(x)
  num_candidates = min(num_classes_considered, logits.shape[-1])
  # Candidate classes: the true class first, then the top other classes by clean logit.
  others = tf.where(tf.one_hot(y, tf.shape(logits)[-1]) > 0,
                    tf.fill(tf.shape(logits), logits.dtype.min), logits)
  top_others = tf.math.top_k(others, k=num_candidates - 1).indices
  candidates = tf.concat([y[:, None], top_others], axis=1)

  feature_axes = list(range(2, x.shape.rank + 1))  # non-batch axes of a [N, K-1, ...] tensor
  r_total = tf.zeros_like(x)
  x_cur = x
  for _ in tf.range(max_iter):
    with tf.GradientTape() as tape:
      tape.watch(x_cur)
      z = model(x_cur)
      z_candidates = tf.gather(z, candidates, batch_dims=1)
    active = tf.argmax(z, axis=-1, output_type=tf.int32) == y
    if not tf.reduce_any(active):
      break
    jac = tape.batch_jacobian(z_candidates, x_cur)  # [N, C, ...]
    f = z_candidates[:, 1:] - z_candidates[:, :1]  # [N, C-1], negative while not fooled
    w = jac[:, 1:] - jac[:, :1]  # [N, C-1, ...]
    w_norm = tf.sqrt(tf.reduce_sum(tf.square(w), axis=feature_axes)) + _NORM_EPS
    dist = tf.abs(f) / w_norm
    nearest = tf.argmin(dist, axis=1, output_type=tf.int32)
    dist_l = tf.gather(dist, nearest, batch_dims=1)
    w_l = tf.gather(w, nearest, batch_dims=1)  # [N, ...]
    w_norm_l = tf.gather(w_norm, nearest, batch_dims=1)
    scale = (dist_l + _STEP_EPS) / w_norm_l * tf.cast(active, x.dtype)
    r_total += tf.reshape(scale, [-1] + [1] * (x.shape.rank - 1)) * w_l
    x_cur = tf.clip_by_value(x + (1.0 + overshoot) * r_total, 0.0, 1.0)
  return x_cur
