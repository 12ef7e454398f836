"""Square Attack at L2 or Linf (Andriushchenko, Croce, Flammarion & Hein, ECCV 2020, "Square
Attack: a query-efficient black-box adversarial attack via random search", section 3).

Score-based: it reads only the model's logits, never a gradient, so a model that hides its
gradients (gradient masking) does not stop it; AutoAttack runs it for that reason. It does random
search on the margin loss ``Z_y - max_{j != y} Z_j``: per iteration one window of side ``s`` (the
same position for the whole batch) gets a new perturbation, kept where it lowers the margin. ``s``
follows the share of pixels ``p`` of the paper's schedule, ``p_init`` halved after iterations 10,
50, 200, 500, 1000, 2000, 4000, 6000 and 8000 (of 10,000; ``rescale_schedule`` stretches it to
``n_queries``; AutoAttack's standard version runs 5000 queries with p_init 0.8 and the schedule as
it is), at both norms. The norms differ in the start and the window's update:

- Linf (section 3.1, Algorithm 2): the start is vertical stripes, ``x +- eps`` per column and
  channel; a window of side ``round(sqrt(p h w))`` (at least 1) moves to ``x +- eps`` with one
  random sign per example and channel (the reference draws one per channel for the whole batch),
  clipped to the eps-box and [0, 1].
- L2 (section 3.2, Algorithm 3): the start is a grid of square "stripes" on the eps-sphere; a
  window of odd side (at least 3) gets a new perturbation, the mass of a second window moves into
  it and the result is rescaled onto the eps-sphere.

Details (the starts, the window sizes, the L2 window update and its ``eta`` profile) follow the
reference implementation (fra31/auto-attack, ``square.py``). Only examples not yet fooled are
queried. Randomness is stateless, seeded by ``(seed, iteration)``: a batch's result does not
depend on what ran before.
"""
import numpy as np
import tensorflow as tf

from tf_pgn.attacks.common import margin
from tf_pgn.perturbation import Linf, l2_norm

__all__ = ['eta', 'p_schedule', 'square', 'window_sizes']

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
                 rescale_schedule: bool = False, norm: str = 'l2') -> list:
  """The window side per iteration: ``round(sqrt(p h w))``, at most the image; at L2 at least 3
  and odd, at Linf at least 1."""
  sizes = []
  for i in range(n_queries):
    side = int(round(np.sqrt(p_schedule(i, n_queries, p_init, rescale_schedule) * height *
                             width)))
    if norm == 'l2':
      side = max(side, 3)
      side += 1 - side % 2
    sizes.append(min(max(side, 1), height, width))
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


def square(model, x, y, eps, *, norm: str = 'l2', n_queries: int = N_QUERIES,
           p_init: float = P_INIT, rescale_schedule: bool = False, seed: int = 0):
  """Untargeted Square Attack at L2 or Linf on float32 images ``[N, H, W, C]`` in [0, 1], batched.

  Args:
    model: callable mapping the images to logits ``[N, K]``; only its outputs are used.
    x: float32 images ``[N, H, W, C]`` in [0, 1].
    y: integer true labels ``[N]``.
    eps: budget on the [0, 1] pixel scale (Linf 8/255 is ``8 / 255``); a float or a scalar
      tensor: one trace serves every budget.
    norm: 'l2' or 'linf'.
    n_queries: iterations (one model query each per example still to fool) after the first.
    p_init: share of the pixels the first windows cover.
    rescale_schedule: stretch the schedule of ``p`` (written for 10,000) to ``n_queries``.
    seed: seeds the random search.

  Returns:
    ``x_adv`` in the eps-ball around ``x`` and in [0, 1]: the first point found that fools the
    model, else the lowest-margin point.
  """
  x = tf.convert_to_tensor(x, tf.float32)
  if x.shape.rank != 4:
    raise ValueError(f'the Square attack takes images [N, H, W, C], not inputs of shape '
                     f'{x.shape}')
  if norm not in _UPDATES:
    raise ValueError(f'unknown norm {norm!r} for the Square attack: use one of '
                     f'{", ".join(_UPDATES)}')
  return _square_graph(model, x, tf.cast(tf.convert_to_tensor(y), tf.int32),
                       tf.cast(eps, tf.float32), int(n_queries), float(p_init),
                       bool(rescale_schedule), tf.constant(seed, tf.int64), norm)


def _window(top, left, side, height: int, width: int):
  """[1, H, W, 1]: 1 inside the ``side x side`` window at (top, left), 0 elsewhere."""
  rows = tf.range(height)
  cols = tf.range(width)
  inside = (((rows >= top) & (rows < top + side))[:, None] &
            ((cols >= left) & (cols < left + side))[None, :])
  return tf.cast(inside, tf.float32)[None, :, :, None]


def _signs(shape, seed):
  """+-1, each with probability 1/2."""
  return tf.sign(tf.random.stateless_uniform(shape, seed, -1.0, 1.0))


def _l2_start(x, eps, seed):
  """The reference's start: a grid of windows of side min(H, W) // 5, each ``eta`` with a random
  sign per example and channel, scaled onto the eps-sphere."""
  _, height, width, channels = x.shape
  side = max(min(height, width) // 5, 1)
  rows, cols = height // side, width // side
  top, left = (height - rows * side) // 2, (width - cols * side) // 2
  signs = _signs(tf.stack([tf.shape(x)[0], rows, cols, channels]), tf.stack([seed, 0]))
  pattern = tf.repeat(tf.repeat(signs, side, axis=1), side, axis=2) * np.tile(
      eta(side), (rows, cols))[None, :, :, None]
  delta = tf.pad(pattern, [[0, 0], [top, height - top - rows * side],
                           [left, width - left - cols * side], [0, 0]])
  return tf.clip_by_value(x + delta / l2_norm(delta) * eps, 0.0, 1.0)


def _linf_start(x, eps, seed):
  """Algorithm 2's start: vertical stripes, ``x +- eps`` with one sign per example, column and
  channel, clipped to [0, 1]."""
  _, _, width, channels = x.shape
  signs = _signs(tf.stack([tf.shape(x)[0], 1, width, channels]), tf.stack([seed, 0]))
  return Linf().project(x, x + eps * signs, eps)


def _l2_proposal(sizes: list, height: int, width: int):
  """Algorithm 3's update for the windows of ``sizes``: ``propose(x, x_best, eps, side, corners,
  flip, signs)``, ``corners`` the top-left corners of the window and of the second window whose
  mass moves into it, ``flip`` > 0.5 transposing the profile, ``signs`` one per example and
  channel."""
  distinct = sorted(set(sizes))
  largest = max(distinct)
  profiles = tf.constant(np.stack([np.pad(eta(s), [[0, largest - s], [0, largest - s]])
                                   for s in distinct]))
  profile_of_side = tf.constant([distinct.index(s) if s in distinct else 0
                                 for s in range(largest + 1)])
  spatial_norm = lambda t: tf.sqrt(tf.reduce_sum(tf.square(t), axis=[1, 2], keepdims=True))

  def propose(x, x_best, eps, side, corners, flip, signs):
    delta = x_best - x
    channels = x.shape[-1]
    top, left, top2, left2 = tf.unstack(corners)
    profile = profiles[profile_of_side[side], :side, :side]
    profile = tf.cond(flip > 0.5, lambda: tf.transpose(profile), lambda: profile)
    window = _window(top, left, side, height, width)
    both = tf.maximum(window, _window(top2, left2, side, height, width))
    placed = tf.pad(profile, [[top, height - top - side], [left, width - left - side]])
    new = placed[None, :, :, None] * signs + delta * window / (spatial_norm(delta * window) + _TINY)
    # The window gets what the eps-sphere has left plus what both windows held, per channel.
    room = tf.maximum(eps ** 2 - tf.square(l2_norm(delta)), 0.0) / channels
    new = new / (spatial_norm(new) + _TINY) * tf.sqrt(room + tf.square(spatial_norm(delta * both)))
    delta = delta * (1.0 - both) + new * window
    return tf.clip_by_value(x + delta / l2_norm(delta) * eps, 0.0, 1.0)

  return propose


def _linf_proposal(sizes: list, height: int, width: int):
  """Algorithm 2's update, ``propose`` as ``_l2_proposal``'s: the window moves by ``2 eps`` times
  a sign per example and channel, and the projection onto the eps-box and [0, 1] leaves it at
  ``x +- eps`` (in [0, 1]). It needs no profile (``sizes``), no second window and no flip."""
  del sizes

  def propose(x, x_best, eps, side, corners, flip, signs):
    del flip
    window = _window(corners[0], corners[1], side, height, width)
    return Linf().project(x, x_best + 2.0 * eps * window * signs, eps)

  return propose


# norm -> (start, the factory of its window update).
_UPDATES = {'l2': (_l2_start, _l2_proposal), 'linf': (_linf_start, _linf_proposal)}


@tf.function(reduce_retracing=True)
def _square_graph(model, x, y, eps, n_queries: int, p_init: float, rescale_schedule: bool, seed,
                  norm: str):
  _, height, width, channels = x.shape
  sizes = window_sizes(height, width, n_queries, p_init, rescale_schedule, norm)
  start, proposal = _UPDATES[norm]
  propose = proposal(sizes, height, width)
  sizes = tf.constant(sizes)

  x_best = start(x, eps, seed)
  margin_best = margin(model(x_best), y)

  def step(i, x_best, margin_best):
    todo = tf.where(margin_best > 0.0)[:, 0]
    x_i, y_i = tf.gather(x, todo), tf.gather(y, todo)
    x_best_i, margin_i = tf.gather(x_best, todo), tf.gather(margin_best, todo)
    side = sizes[i]
    draws = tf.random.stateless_uniform([5], tf.stack([seed, 2 * tf.cast(i, tf.int64) + 1]))
    corners = tf.cast(
        draws[:4] * tf.cast(tf.stack([height - side + 1, width - side + 1] * 2), tf.float32),
        tf.int32)
    signs = _signs(tf.stack([tf.shape(todo)[0], 1, 1, channels]),
                   tf.stack([seed, 2 * tf.cast(i, tf.int64) + 2]))
    x_new = propose(x_i, x_best_i, eps, side, corners, draws[4], signs)
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
