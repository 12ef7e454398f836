"""Square Attack, L2 (Andriushchenko, Croce, Flammarion & Hein, ECCV 2020, "Square Attack: a
query-efficient black-box adversarial attack via random search", section 3.2, Algorithm 3).

Score-based: it reads only the model's logits, never a gradient, so a model that hides its
gradients (gradient masking) does not stop it; AutoAttack runs it for that reason. From a grid of
square "stripes" on the eps-sphere it does random search on the margin loss ``Z_y - max_{j != y}
Z_j``: per iteration one window of side ``s`` (the same position for the whole batch) gets a new
perturbation, the mass of a second window moves into it, the result is rescaled onto the
eps-sphere and kept where it lowers the margin. ``s`` follows the share of pixels ``p`` of the
paper's schedule, ``p_init`` halved after iterations 10, 50, 200, 500, 1000, 2000, 4000, 6000
and 8000 (of 10,000; ``rescale_schedule`` stretches it to ``n_queries``; AutoAttack's standard
version runs 5000 queries with p_init 0.8 and the schedule as it is). Details (the window
update, the grid at start, the ``eta`` profile) follow the reference implementation
(fra31/auto-attack, ``square.py``). Only examples not yet fooled are queried. Randomness is
stateless, seeded by ``(seed, iteration)``: a batch's result does not depend on what ran before.
"""
import numpy as np
import tensorflow as tf

from tf_pgn.attacks.common import margin
from tf_pgn.perturbation import l2_norm

__all__ = ['eta', 'p_schedule', 'square_l2', 'window_sizes']

N_QUERIES = 5000
P_INIT = 0.8
_P_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
_SCHEDULE_QUERIES = 10000  # the budget the schedule was written for
_TINY = 1e-12


def p_schedule(iteration: int, n_queries: int = N_QUERIES, p_init: float = P_INIT,
               rescale_schedule: bool = False) -> float:
  """The share of pixels ``p`` a window covers at ``iteration`` (0-based)."""
  if rescale_schedule:
    iteration = int(iteration / n_queries * _SCHEDULE_QUERIES)
  return p_init / 2 ** sum(iteration > t for t in _P_HALVINGS)


def window_sizes(height: int, width: int, n_queries: int = N_QUERIES, p_init: float = P_INIT,
                 rescale_schedule: bool = False) -> list:
  """The window side per iteration: ``round(sqrt(p h w))``, at least 3, odd, at most the image."""
  sizes = []
  for i in range(n_queries):
    side = max(int(round(np.sqrt(p_schedule(i, n_queries, p_init, rescale_schedule) * height *
                                 width))), 3)
    sizes.append(min(side + 1 - side % 2, height, width))
  return sizes


def _rectangle(rows: int, cols: int) -> np.ndarray:
  """Nested rectangles around the centre, ring k weighted 1 / (k + 1)^2; unit L2 norm."""
  if rows == 0:
    return np.zeros((0, cols))
  ring = np.maximum(np.abs(np.arange(rows)[:, None] - rows // 2),
                    np.abs(np.arange(cols)[None, :] - cols // 2))
  weights = 1.0 / np.arange(1, max(rows // 2, cols // 2) + 2) ** 2
  profile = np.cumsum(weights[::-1])[::-1][ring]  # sum of the weights of the rings covering it
  return profile / np.sqrt(np.sum(profile ** 2))


def eta(side: int) -> np.ndarray:
  """The ``side x side`` perturbation profile of a window: a positive upper half and a negative
  lower half of nested rectangles, unit L2 norm (the paper's Figure 2)."""
  profile = np.concatenate([_rectangle(side // 2, side), -_rectangle(side - side // 2, side)])
  return (profile / np.sqrt(np.sum(profile ** 2))).astype(np.float32)


def square_l2(model, x, y, eps, *, n_queries: int = N_QUERIES, p_init: float = P_INIT,
              rescale_schedule: bool = False, seed: int = 0):
  """Untargeted Square Attack, L2, on float32 images ``[N, H, W, C]`` in [0, 1], batched.

  Args:
    model: callable mapping the images to logits ``[N, K]``; only its outputs are used.
    x: float32 images ``[N, H, W, C]`` in [0, 1].
    y: integer true labels ``[N]``.
    eps: L2 budget (a float or a scalar tensor: one trace serves every budget).
    n_queries: iterations (one model query each per example still to fool) after the first.
    p_init: share of the pixels the first windows cover.
    rescale_schedule: stretch the schedule of ``p`` (written for 10,000) to ``n_queries``.
    seed: seeds the random search.

  Returns:
    ``x_adv`` with ``||x_adv - x|| <= eps`` in [0, 1]: the first point found that fools the
    model, else the lowest-margin point.
  """
  x = tf.convert_to_tensor(x, tf.float32)
  if x.shape.rank != 4:
    raise ValueError(f'square_l2 takes images [N, H, W, C], not inputs of shape {x.shape}')
  return _square_graph(model, x, tf.cast(tf.convert_to_tensor(y), tf.int32),
                       tf.cast(eps, tf.float32), int(n_queries), float(p_init),
                       bool(rescale_schedule), tf.constant(seed, tf.int64))


def _window(top, left, side, height: int, width: int):
  """[1, H, W, 1]: 1 inside the ``side x side`` window at (top, left), 0 elsewhere."""
  rows = tf.range(height)
  cols = tf.range(width)
  inside = (((rows >= top) & (rows < top + side))[:, None] &
            ((cols >= left) & (cols < left + side))[None, :])
  return tf.cast(inside, tf.float32)[None, :, :, None]


def _start(x, eps, seed):
  """The reference's start: a grid of windows of side min(H, W) // 5, each ``eta`` with a random
  sign per example and channel, scaled onto the eps-sphere."""
  _, height, width, channels = x.shape
  side = max(min(height, width) // 5, 1)
  rows, cols = height // side, width // side
  top, left = (height - rows * side) // 2, (width - cols * side) // 2
  signs = tf.sign(tf.random.stateless_uniform(tf.stack([tf.shape(x)[0], rows, cols, channels]),
                                              tf.stack([seed, 0]), -1.0, 1.0))
  pattern = tf.repeat(tf.repeat(signs, side, axis=1), side, axis=2) * np.tile(
      eta(side), (rows, cols))[None, :, :, None]
  delta = tf.pad(pattern, [[0, 0], [top, height - top - rows * side],
                           [left, width - left - cols * side], [0, 0]])
  return tf.clip_by_value(x + delta / l2_norm(delta) * eps, 0.0, 1.0)


@tf.function(reduce_retracing=True)
def _square_graph(model, x, y, eps, n_queries: int, p_init: float, rescale_schedule: bool, seed):
  _, height, width, channels = x.shape
  sizes = window_sizes(height, width, n_queries, p_init, rescale_schedule)
  distinct = sorted(set(sizes))
  largest = max(distinct)
  profiles = tf.constant(np.stack([np.pad(eta(s), [[0, largest - s], [0, largest - s]])
                                   for s in distinct]))
  sizes, size_index = tf.constant(sizes), tf.constant([distinct.index(s) for s in sizes])

  x_best = _start(x, eps, seed)
  margin_best = margin(model(x_best), y)

  def step(i, x_best, margin_best):
    todo = tf.where(margin_best > 0.0)[:, 0]
    x_i, y_i = tf.gather(x, todo), tf.gather(y, todo)
    x_best_i, margin_i = tf.gather(x_best, todo), tf.gather(margin_best, todo)
    delta = x_best_i - x_i
    side = sizes[i]
    draws = tf.random.stateless_uniform([5], tf.stack([seed, 2 * tf.cast(i, tf.int64) + 1]))
    top, left, top2, left2 = tf.unstack(tf.cast(
        draws[:4] * tf.cast(tf.stack([height - side + 1, width - side + 1] * 2), tf.float32),
        tf.int32))
    profile = profiles[size_index[i], :side, :side]
    profile = tf.cond(draws[4] > 0.5, lambda: tf.transpose(profile), lambda: profile)
    window = _window(top, left, side, height, width)
    both = tf.maximum(window, _window(top2, left2, side, height, width))
    spatial_norm = lambda t: tf.sqrt(tf.reduce_sum(tf.square(t), axis=[1, 2], keepdims=True))
    signs = tf.sign(tf.random.stateless_uniform(
        tf.stack([tf.shape(todo)[0], 1, 1, channels]),
        tf.stack([seed, 2 * tf.cast(i, tf.int64) + 2]), -1.0, 1.0))
    placed = tf.pad(profile, [[top, height - top - side], [left, width - left - side]])
    new = placed[None, :, :, None] * signs + delta * window / (spatial_norm(delta * window) + _TINY)
    # The window gets what the eps-sphere has left plus what both windows held, per channel.
    room = tf.maximum(eps ** 2 - tf.square(l2_norm(delta)), 0.0) / channels
    new = new / (spatial_norm(new) + _TINY) * tf.sqrt(room + tf.square(spatial_norm(delta * both)))
    delta = delta * (1.0 - both) + new * window
    x_new = tf.clip_by_value(x_i + delta / l2_norm(delta) * eps, 0.0, 1.0)
    margin_new = margin(model(x_new), y_i)
    better = margin_new < margin_i
    x_best_i = tf.where(better[:, None, None, None], x_new, x_best_i)
    margin_i = tf.where(better, margin_new, margin_i)
    return (i + 1, tf.tensor_scatter_nd_update(x_best, todo[:, None], x_best_i),
            tf.tensor_scatter_nd_update(margin_best, todo[:, None], margin_i))

  _, x_best, _ = tf.while_loop(
      lambda i, _, margin_best: (i < n_queries) & tf.reduce_any(margin_best > 0.0), step,
      (tf.constant(0), x_best, margin_best))
  return x_best
