"""Pieces shared by APGD, Square, FMN and the worst case over attacks.

The restart helper ``attack_unbroken`` runs an attack on the examples that are still classified
correctly and keeps the ones it fools: APGD's restarts, APGD-T's target classes and AutoAttack's
sequence of attacks (Croce & Hein 2020, section 4: "each attack is run only on the points which
are still robust") are all this one step.
"""
import time

import tensorflow as tf

__all__ = ['attack_unbroken', 'expand', 'is_correct', 'margin', 'value_and_gradient',
           'worst_case']


def expand(v: tf.Tensor, rank: int) -> tf.Tensor:
  """[N] -> [N, 1, ..., 1] of ``rank`` axes, to broadcast a per-example value over an input."""
  return tf.reshape(v, [-1] + [1] * (rank - 1))


def margin(logits: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
  """``Z_y - max_{j != y} Z_j`` per example: negative once the example is misclassified."""
  z_y = tf.gather(logits, y, batch_dims=1)
  others = tf.where(tf.one_hot(y, tf.shape(logits)[-1]) > 0, logits.dtype.min, logits)
  return z_y - tf.reduce_max(others, axis=-1)


def is_correct(model, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
  """Whether ``model`` classifies each example of ``x`` as ``y``."""
  return tf.argmax(model(x), axis=-1, output_type=tf.int32) == y


def value_and_gradient(model, x: tf.Tensor, loss_fn):
  """(logits, per-example loss ``loss_fn(logits)``, gradient of their sum with respect to ``x``).

  A model that cuts its input from its output (``tf.stop_gradient``: gradient masking) gets a zero
  gradient, not None, so that the attacks run on and the masking shows in their results.
  """
  with tf.GradientTape() as tape:
    tape.watch(x)
    logits = model(x)
    loss = loss_fn(logits)
    total = tf.reduce_sum(loss)
  grad = tape.gradient(total, x, unconnected_gradients=tf.UnconnectedGradients.ZERO)
  return logits, loss, grad


def attack_unbroken(model, x: tf.Tensor, y: tf.Tensor, x_adv: tf.Tensor, attack):
  """Runs ``attack(model, x_i, y_i) -> x_adv_i`` on the examples ``x_adv`` does not fool yet.

  Their ``x_adv`` becomes the attack's output (its best point when it fails too); the others keep
  theirs. Returns ``(x_adv, broken)``, ``broken`` marking the examples this attack fooled. Where
  every example is fooled already neither the attack nor the model runs: a Keras convolution
  returns its input unchanged on an empty batch, so the next layer would fail on it.
  """
  y = tf.cast(y, tf.int32)
  todo = tf.where(is_correct(model, x_adv, y))[:, 0]

  def run():
    y_todo = tf.gather(y, todo)
    x_todo = attack(model, tf.gather(x, todo), y_todo)
    return x_todo, ~is_correct(model, x_todo, y_todo)

  x_todo, fooled = tf.cond(tf.size(todo) > 0, run,
                           lambda: (tf.gather(x_adv, todo), tf.zeros([0], tf.bool)))
  x_adv = tf.tensor_scatter_nd_update(x_adv, todo[:, None], x_todo)
  broken = tf.scatter_nd(todo[:, None], fooled, tf.shape(y, out_type=tf.int64))
  return x_adv, broken


def worst_case(model, x: tf.Tensor, y: tf.Tensor, attacks, on_part_done=None) -> tuple:
  """The per-example worst case over ``attacks``, each ``(model, x, y) -> x_adv``, run in turn on
  the examples still classified correctly (AutoAttack's 'standard' protocol, Croce & Hein 2020).
  ``on_part_done(i, seconds)`` (eager only) is told each part's wall-clock time.

  Returns ``(x_adv, broken_by)``: ``broken_by`` is -1 where no attack fooled the example, 0 where
  it was misclassified clean (``x_adv = x``) and ``i + 1`` where ``attacks[i]`` fooled it first.
  """
  y = tf.cast(y, tf.int32)
  broken_by = tf.where(is_correct(model, x, y), -1, 0)
  x_adv = x
  for i, attack in enumerate(attacks):
    start = time.perf_counter()
    x_adv, broken = attack_unbroken(model, x, y, x_adv, attack)
    if on_part_done is not None:
      broken.numpy()  # the part has finished (a device runs ahead of the host)
      on_part_done(i, time.perf_counter() - start)
    broken_by = tf.where(broken, i + 1, broken_by)
  return x_adv, broken_by
