"""Fast Adaptive Boundary attack, FAB, L2 and Linf (Croce & Hein, ICML 2020, "Minimally distorted
adversarial examples with a fast adaptive boundary attack", section 3, Algorithm 1), untargeted and
targeted: FAB-T, the third part of AutoAttack's standard version (Croce & Hein, ICML 2020,
"Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free
attacks", section 4).

A minimal-norm attack. At the iterate ``x_k`` it linearises the classifier and takes the nearest
linearised decision hyperplane

  pi_j = {z : f_j(x_k) - f_y(x_k) + <grad f_j(x_k) - grad f_y(x_k), z - x_k> = 0},
  j = argmin_{j != y} |f_j - f_y| / ||grad f_j - grad f_y||_q,

``q`` the dual norm (1 for Linf, 2 for L2); FAB-T takes the hyperplane of its target class. Both
``x_k`` and the original point ``x`` are projected onto ``pi_j`` intersected with the box [0, 1]^d
(section 3.1, "projection on a hyperplane with box constraints": the smallest ``d`` in the norm
with ``x + d`` on the hyperplane and in the box, here solved exactly by sorting, see
``project_on_hyperplane``), giving ``d_k`` and ``d_0``. The biased step (section 3.2) moves towards
both projections, overshooting by ``eta``, with a weight on the original point's:

  x_{k+1} = clip((1 - alpha) (x_k + eta d_k) + alpha (x + eta d_0), 0, 1),
  alpha   = min(||d_k|| / (||d_k|| + ||d_0||), alpha_max).

When ``x_{k+1}`` is misclassified it is recorded (the smallest such point is kept) and pulled back
towards ``x``, ``x_{k+1} <- x + beta (x_{k+1} - x)`` (the backward step). The published settings:
100 iterations, alpha_max 0.1, eta 1.05, beta 0.9. A final search then shrinks the smallest
adversarial point found: ``FINAL_SEARCH_STEPS`` bisections of the segment between it and ``x``,
keeping the adversarial end (the authors' first code, fra31/fab-attack, had an optional final
search on that segment, 3 linear-interpolation steps; AutoAttack's FAB has none: this one only
shortens adversarial points, so with ``eps`` no example the iterations broke is lost).

Random restarts follow the reference code (fra31/auto-attack, ``fab_base.py``; the first run of
each target starts at ``x``, run ``r > 0`` at ``x + min(rho, eps) / 2 * t / ||t||``, ``t``
uniform in [-1, 1]^d for Linf, Gaussian for L2, clipped to [0, 1]): ``rho`` is the smallest norm
found by the earlier runs in the original FAB and infinite in AutoAttack, where every run starts
afresh. FAB-T runs for each of the ``num_targets`` classes with the highest clean logits other
than ``y`` (AutoAttack: 9 targets, 1 restart, so no randomness at all). Randomness is stateless,
seeded by ``(seed, run)``: a batch's result does not depend on what ran before it.
"""
import tensorflow as tf

from tf_pgn.attacks.common import attack_unbroken, expand, is_correct
from tf_pgn.perturbation import get_norm

__all__ = ['fab', 'project_on_hyperplane']

N_ITER = 100
ALPHA_MAX = 0.1
ETA = 1.05
BETA = 0.9
NUM_TARGETS = 9  # FAB-T in AutoAttack's standard version
FINAL_SEARCH_STEPS = 10  # bisections of the segment between x and the best adversarial point
_TINY = 1e-12  # guards the nearest-hyperplane distances against a zero gradient difference
_MIN_STEP = 1e-8  # the reference's floor on ||d_k||, ||d_0|| in alpha
_NORMS = ('l2', 'linf')


def fab(model, x, y, eps=None, *, norm: str = 'l2', targeted: bool = False, n_iter: int = N_ITER,
        restarts: int = 1, num_targets: int = NUM_TARGETS, alpha_max: float = ALPHA_MAX,
        eta: float = ETA, beta: float = BETA, seed: int = 0):
  """FAB (``targeted=False``) or FAB-T (``targeted=True``) at L2 or Linf, batched.

  Without ``eps`` it is a minimal-norm attack: every run (``restarts`` per target; one target,
  the nearest hyperplane, untargeted) attacks every example classified correctly and the
  smallest adversarial point over all runs is kept; restart ``r > 0`` starts at half the smallest
  norm found so far (at ``x`` where none was found yet).

  With ``eps`` it is AutoAttack's FAB / FAB-T: an example counts as broken only if the smallest
  adversarial point of a run lies within ``eps`` of ``x``; each run (target, restart) attacks only
  the examples no earlier run broke (``attack_unbroken``), restart ``r > 0`` starting at
  ``eps / 2``.

  Args:
    model: callable mapping float32 ``[N, ...]`` inputs in [0, 1] to logits ``[N, K]``.
    x: float32 inputs ``[N, ...]`` (images ``[N, H, W, C]``) in [0, 1].
    y: integer true labels ``[N]``.
    eps: None (minimal norm) or the budget (a float or a scalar tensor).
    norm: 'l2' or 'linf'.
    targeted: FAB-T, towards each of the ``num_targets`` classes with the highest clean logits
      other than ``y`` in turn (capped at K - 1).
    n_iter: iterations per run (one gradient of the model per example for FAB-T, its Jacobian
      for FAB, and one prediction).
    restarts: runs per target.
    num_targets: FAB-T's target classes.
    alpha_max, eta, beta: the bias towards ``x``, the overshoot and the backward step.
    seed: seeds the random starting points of restarts after the first.

  Returns:
    ``x_adv`` in [0, 1]: the smallest adversarial point found (without ``eps``), or one within
    ``eps`` (with it); ``x`` itself where there is none (and for examples misclassified clean).
  """
  name = get_norm(norm).name
  if name not in _NORMS:
    raise ValueError(f'FAB supports the norms l2 and linf, not {name!r}')
  if min(n_iter, restarts, num_targets) < 1:
    raise ValueError('n_iter, restarts and num_targets must be at least 1')
  if not (0.0 <= alpha_max <= 1.0 and eta >= 1.0 and 0.0 < beta < 1.0):
    raise ValueError(f'need 0 <= alpha_max <= 1, eta >= 1 and 0 < beta < 1; got alpha_max='
                     f'{alpha_max}, eta={eta}, beta={beta}')
  x = tf.convert_to_tensor(x, tf.float32)
  y = tf.cast(tf.convert_to_tensor(y), tf.int32)
  num_classes = int(model(x[:1]).shape[-1])
  ranks = range(min(num_targets, num_classes - 1)) if targeted else [None]
  settings = dict(norm=name, n_iter=int(n_iter), alpha_max=float(alpha_max), eta=float(eta),
                  beta=float(beta))

  def run_on(model, xs, ys, rank, run, radius):
    if xs.shape[0] == 0:  # none left to attack (batch_jacobian needs a batch)
      return xs, radius
    target = ys if rank is None else _target(model, xs, ys, rank)
    return _run(model, xs, ys, target, radius, targeted=rank is not None,
                seed=tf.constant([seed, run], tf.int64), **settings)

  runs = [(i * restarts + r, rank, r) for i, rank in enumerate(ranks) for r in range(restarts)]
  if eps is None:
    return _minimal(model, x, y, runs, run_on)
  eps = tf.cast(eps, tf.float32)
  x_adv = x
  for run, rank, restart in runs:
    def bounded(model, xs, ys, run=run, rank=rank, restart=restart):
      radius = tf.fill(tf.shape(ys), eps / 2.0 if restart else 0.0)
      x_run, size = run_on(model, xs, ys, rank, run, radius)
      return tf.where(expand(size <= eps, xs.shape.rank), x_run, xs)
    x_adv, _ = attack_unbroken(model, x, y, x_adv, bounded)
  return x_adv


def _minimal(model, x, y, runs, run_on):
  """The smallest adversarial point over all ``runs`` on the examples classified correctly."""
  todo = tf.where(is_correct(model, x, y))[:, 0]
  xs, ys = tf.gather(x, todo), tf.gather(y, todo)
  best, best_size = xs, tf.fill(tf.shape(ys), float('inf'))
  for run, rank, restart in runs:
    radius = tf.zeros_like(best_size)
    if restart:
      radius = tf.where(tf.math.is_finite(best_size), best_size / 2.0, radius)
    x_run, size = run_on(model, xs, ys, rank, run, radius)
    better = size < best_size
    best = tf.where(expand(better, x.shape.rank), x_run, best)
    best_size = tf.where(better, size, best_size)
  return tf.tensor_scatter_nd_update(x, todo[:, None], best)


def _target(model, x, y, rank: int):
  """The class with the (rank + 1)-th highest clean logit other than y."""
  logits = model(x)
  others = tf.where(tf.one_hot(y, tf.shape(logits)[-1]) > 0, logits.dtype.min, logits)
  return tf.math.top_k(others, rank + 1).indices[:, rank]


def project_on_hyperplane(p, w, c, norm: str):
  """The smallest ``d`` (in L2 or Linf) with ``<w, d> = -c`` and ``p + d`` in [0, 1]^d, per row.

  ``c = <w, p> - b`` is the signed residual of ``p`` on the hyperplane ``<w, z> = b``; ``p, w``
  are ``[M, D]``, ``c`` is ``[M]``. Where the hyperplane misses the box the result is the box
  corner nearest to it (as in the reference code).

  After flipping the signs so that ``c >= 0``, every optimum moves coordinate ``i`` against
  ``w_i`` by ``min(lam v_i, m_i)``, ``m_i`` the room to the box edge that way (``p_i`` for
  ``w_i > 0``, ``1 - p_i`` otherwise): ``v_i = |w_i|`` for L2 (the KKT conditions of
  ``min ||d||_2^2``) and ``v_i = 1`` for Linf (radius ``lam``). The residual it removes,
  ``r(lam) = sum_i |w_i| min(lam v_i, m_i)``, is increasing, concave and piecewise linear, with
  kinks at ``m_i / v_i``, and ``lam`` solves ``r(lam) = c``. The reference sorts the kinks and
  bisects over them; here Newton's method from ``lam = 0`` solves it: each step solves the
  linear piece at the current ``lam`` (the coordinates past their kinks fixed at the edge, the
  others moving), which by concavity never overshoots, so ``lam`` rises monotonically and stops,
  exactly, on the piece holding the solution: after at most ``D + 1`` steps (each new step
  passes a kink), in practice a handful, with no sort.
  """
  w = tf.where((c < 0)[:, None], -w, w)
  c = tf.abs(c)
  abs_w = tf.abs(w)
  room = tf.where(w > 0, p, 1.0 - p)
  rate = abs_w if norm == 'l2' else tf.ones_like(w)
  slope, edge = abs_w * rate, abs_w * room  # a moving coordinate's rate, a fixed one's share
  kink = room / tf.where(rate > 0, rate, 1.0)  # (where v_i = 0, w_i = 0: it never counts)
  meets = tf.reduce_sum(edge, axis=1) >= c

  def newton(lam, _):
    fixed = kink <= lam[:, None]
    removed = tf.reduce_sum(tf.where(fixed, edge, 0.0), axis=1)
    moving = tf.reduce_sum(tf.where(fixed, 0.0, slope), axis=1)
    step = tf.where(moving > 0, (c - removed) / tf.where(moving > 0, moving, 1.0), lam)
    new = tf.maximum(step, lam)
    return new, tf.reduce_all(new == lam)

  lam, _ = tf.while_loop(lambda _, done: ~done, newton, (tf.zeros_like(c), tf.constant(False)),
                         maximum_iterations=tf.shape(w)[1] + 1)
  move = tf.where(meets[:, None], tf.minimum(lam[:, None] * rate, room), room)
  return -tf.sign(w) * move


def _nearest_hyperplane(model, x_flat, shape, y, target, norm: str, targeted: bool):
  """``(f_j - f_y, grad f_j - grad f_y)`` at ``x_flat`` for FAB's class ``j``: the nearest
  linearised boundary (untargeted, from the Jacobian) or the target; ``[N]`` and ``[N, D]``."""
  with tf.GradientTape() as tape:
    tape.watch(x_flat)
    logits = model(tf.reshape(x_flat, shape))
    if targeted:
      gap = tf.gather(logits, target, batch_dims=1) - tf.gather(logits, y, batch_dims=1)
  if targeted:
    return gap, tape.gradient(gap, x_flat, unconnected_gradients=tf.UnconnectedGradients.ZERO)
  jac = tape.batch_jacobian(logits, x_flat, unconnected_gradients=tf.UnconnectedGradients.ZERO)
  gaps = logits - tf.gather(logits, y, batch_dims=1)[:, None]  # [N, K]
  normals = jac - tf.gather(jac, y, batch_dims=1)[:, None]  # [N, K, D]
  dual = (tf.reduce_sum(tf.abs(normals), axis=2) if norm == 'linf'
          else tf.sqrt(tf.reduce_sum(tf.square(normals), axis=2)))
  dist = tf.where(tf.one_hot(y, tf.shape(logits)[-1]) > 0, float('inf'),
                  tf.abs(gaps) / (dual + _TINY))
  j = tf.argmin(dist, axis=1, output_type=tf.int32)
  return tf.gather(gaps, j, batch_dims=1), tf.gather(normals, j, batch_dims=1)


@tf.function(reduce_retracing=True)
def _run(model, x, y, target, radius, *, norm: str, targeted: bool, n_iter: int,
         alpha_max: float, eta: float, beta: float, seed):
  """One FAB run from ``x`` (``radius`` 0) or a random point at ``radius``; returns the smallest
  adversarial point after the final search (``x`` where none) and its norm (inf where none)."""
  shape = tf.shape(x)
  size_of = get_norm(norm).size
  x0 = tf.reshape(x, [shape[0], -1])
  predicts_y = lambda z: tf.argmax(model(tf.reshape(z, shape)), -1, output_type=tf.int32) == y
  if norm == 'linf':
    noise = tf.random.stateless_uniform(tf.shape(x0), seed, -1.0, 1.0)
  else:
    noise = tf.random.stateless_normal(tf.shape(x0), seed)
  noise /= tf.maximum(size_of(noise), _TINY)[:, None]
  x_k = tf.clip_by_value(x0 + radius[:, None] * noise, 0.0, 1.0)
  best, best_size = x0, tf.fill(tf.shape(y), float('inf'))
  for _ in tf.range(n_iter):
    gap, w = _nearest_hyperplane(model, x_k, shape, y, target, norm, targeted)
    # The hyperplane <w, z> = <w, x_k> - gap: residual gap at x_k, gap + <w, x0 - x_k> at x0.
    residual = tf.concat([gap, gap + tf.reduce_sum(w * (x0 - x_k), axis=1)], axis=0)
    d = project_on_hyperplane(tf.concat([x_k, x0], axis=0), tf.concat([w, w], axis=0), residual,
                              norm)
    d_k, d_0 = tf.split(d, 2)
    size_k = tf.maximum(size_of(d_k), _MIN_STEP)
    size_0 = tf.maximum(size_of(d_0), _MIN_STEP)
    alpha = tf.minimum(size_k / (size_k + size_0), alpha_max)[:, None]
    x_k = tf.clip_by_value((1.0 - alpha) * (x_k + eta * d_k) + alpha * (x0 + eta * d_0), 0.0, 1.0)
    adversarial = ~predicts_y(x_k)
    size = size_of(x_k - x0)
    smaller = adversarial & (size < best_size)
    best = tf.where(smaller[:, None], x_k, best)
    best_size = tf.where(smaller, size, best_size)
    x_k = tf.where(adversarial[:, None], x0 + beta * (x_k - x0), x_k)
  # Final search: bisect the segment [x0, best], keeping its adversarial end.
  far = best
  low, high = tf.zeros_like(best_size), tf.ones_like(best_size)
  for _ in range(FINAL_SEARCH_STEPS):
    mid = (low + high) / 2.0
    x_mid = x0 + mid[:, None] * (far - x0)
    adversarial = ~predicts_y(x_mid)
    best = tf.where(adversarial[:, None], x_mid, best)
    low, high = tf.where(adversarial, low, mid), tf.where(adversarial, mid, high)
  found = tf.math.is_finite(best_size)
  best_size = tf.where(found, size_of(best - x0), best_size)
  return tf.reshape(best, shape), best_size
