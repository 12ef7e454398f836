"""Untargeted Carlini & Wagner L2 attack (Carlini & Wagner, IEEE S&P 2017).

The PGN paper (section 4.2, Eq. 6) measures robustness by rho_cw, the mean L2 norm of C&W
adversarial examples (at most 100 iterations). We write our own attack because cleverhans
4.0.0's ``cleverhans.tf2.attacks.carlini_wagner_l2`` is broken four ways with Keras 3:

1. it calls ``optimizer.variables()``, which is a property, not a method, in Keras 3;
2. the constant is built as ``tf.ones(shape)`` (one per pixel) instead of one per example
   (``shape[:1]``);
3. it resets all optimizer variables between binary-search steps, which in Keras 3 also zeroes
   the learning rate and iteration counter, and a Keras 3 optimizer refuses variables it was
   not built with;
4. ``targeted = y is not None``, so passing the true labels makes it a *targeted* attack towards
   the true class instead of an untargeted one.

Here Adam is written out by hand, so its state is simply re-initialised per search step.
"""

import tensorflow as tf

__all__ = ['carlini_wagner_l2']

_TANH_SCALE = 0.999999  # keeps atanh finite at pixels 0 and 1
_ADAM_BETA1 = 0.9
_ADAM_BETA2 = 0.999
_ADAM_EPS = 1e-8
_CONST_UPPER_INIT = 1e10  # "no success yet" marker for the upper bound on c
_CONST_UPPER_FOUND = 1e9


def carlini_wagner_l2(model, x, y, *, max_iterations=100, binary_search_steps=5,
                      initial_const=1e-2, learning_rate=5e-3, confidence=0.0,
                      abort_early=True):
  """Untargeted C&W L2 attack (Carlini & Wagner 2017, section V.A), batched.

  Optimises ``w`` with ``x_adv = (tanh(w) + 1) / 2`` (so ``x_adv`` stays in [0, 1]) to minimise
  ``||x_adv - x||_2^2 + c * f(x_adv)`` with ``f = max(Z_y - max_{j != y} Z_j, -confidence)``,
  using Adam from ``w = atanh((2x - 1) * 0.999999)`` in every binary-search step. The constant
  ``c`` is per example: multiplied by 10 while no adversarial example was found for it yet,
  bisected once one was. The smallest-L2 successful example (``max_{j != y} Z_j > Z_y +
  confidence``) seen over all iterations and search steps is returned.

  Args:
    model: callable mapping float32 ``[N, ...]`` inputs in [0, 1] to logits ``[N, K]``.
    x: float32 inputs ``[N, ...]`` with pixels in [0, 1].
    y: integer true labels ``[N]``.
    max_iterations: Adam steps per binary-search step.
    binary_search_steps: number of values of ``c`` tried per example.
    initial_const: first value of ``c``.
    learning_rate: Adam learning rate on ``w``.
    confidence: required logit margin ``kappa``.
    abort_early: stop a search step when the total loss has not decreased by 0.01% over the
      last ``max_iterations // 10`` iterations.

  Returns:
    ``x_adv``, a float32 tensor shaped like ``x`` in [0, 1]. Examples never fooled are returned
    unchanged (the caller detects failure by the model still being right).
  """
  x = tf.convert_to_tensor(x, tf.float32)
  y = tf.cast(tf.convert_to_tensor(y), tf.int32)
  n = tf.shape(x)[0]
  lower = tf.zeros([n])
  upper = tf.fill([n], _CONST_UPPER_INIT)
  const = tf.fill([n], float(initial_const))
  best_l2 = tf.fill([n], float('inf'))
  best_adv = x
  for _ in range(binary_search_steps):
    best_l2, best_adv, step_success = _optimize(
        model, x, y, const, best_l2, best_adv, int(max_iterations), float(learning_rate),
        float(confidence), bool(abort_early))
    upper = tf.where(step_success, tf.minimum(upper, const), upper)
    lower = tf.where(step_success, lower, tf.maximum(lower, const))
    const = tf.where(upper < _CONST_UPPER_FOUND, (lower + upper) / 2.0, const * 10.0)
  return best_adv


@tf.function(reduce_retracing=True)
def _optimize(model, x, y, const, best_l2, best_adv, max_iterations, learning_rate,
              confidence, abort_early):
  """One binary-search step: Adam on ``w`` for a fixed per-example ``c``.

  Returns the updated ``(best_l2, best_adv)`` and whether each example was fooled in this step.
  """
  feature_axes = list(range(1, x.shape.rank))
  w = tf.atanh((2.0 * x - 1.0) * _TANH_SCALE)
  m = tf.zeros_like(w)
  v = tf.zeros_like(w)
  step_success = tf.zeros(tf.shape(y), tf.bool)
  check_every = max(max_iterations // 10, 1)
  prev_loss = tf.constant(float('inf'))
  for t in tf.range(1, max_iterations + 1):
    with tf.GradientTape() as tape:
      tape.watch(w)
      x_adv = (tf.tanh(w) + 1.0) / 2.0
      z = model(x_adv)
      is_true = tf.one_hot(y, tf.shape(z)[-1]) > 0
      z_true = tf.gather(z, y, batch_dims=1)
      z_other = tf.reduce_max(tf.where(is_true, z.dtype.min, z), axis=-1)
      f = tf.maximum(z_true - z_other, -confidence)
      l2 = tf.reduce_sum(tf.square(x_adv - x), axis=feature_axes)
      loss = tf.reduce_sum(l2 + const * f)
    grad = tape.gradient(loss, w)

    fooled = z_other - z_true > confidence
    improved = fooled & (l2 < best_l2)
    best_l2 = tf.where(improved, l2, best_l2)
    best_adv = tf.where(tf.reshape(improved, [-1] + [1] * len(feature_axes)), x_adv,
                        best_adv)
    step_success = step_success | fooled

    if abort_early and t % check_every == 0:
      if loss > prev_loss * 0.9999:
        break
      prev_loss = loss

    t_float = tf.cast(t, tf.float32)
    m = _ADAM_BETA1 * m + (1.0 - _ADAM_BETA1) * grad
    v = _ADAM_BETA2 * v + (1.0 - _ADAM_BETA2) * tf.square(grad)
    m_hat = m / (1.0 - _ADAM_BETA1 ** t_float)
    v_hat = v / (1.0 - _ADAM_BETA2 ** t_float)
    w = w - learning_rate * m_hat / (tf.sqrt(v_hat) + _ADAM_EPS)
  return best_l2, best_adv, step_success
