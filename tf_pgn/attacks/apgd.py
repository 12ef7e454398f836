"""Auto-PGD at L2 or Linf (Croce & Hein, ICML 2020, "Reliable evaluation of adversarial robustness
with an ensemble of diverse parameter-free attacks", section 3, Algorithm 1), with the CE loss, the
DLR loss (section 4) and the targeted DLR loss of APGD-T.

The norm enters as its step object (``tf_pgn.perturbation``: ``ascend`` and ``project``), so both
norms run the same loop. Each run starts at ``x + eps * n / ||n||``, clipped to [0, 1] (L2: ``n``
Gaussian, on the eps-sphere; Linf: ``n`` uniform in [-1, 1]^d, scaled so that its largest pixel
is eps), with step size ``2 eps``; every iterate is

  z       = P(ascend(x_k, g_k, eta))       (L2: x_k + eta g_k / ||g_k||; Linf: x_k + eta sign(g_k))
  x_{k+1} = P(x_k + alpha (z - x_k) + (1 - alpha) (x_k - x_{k-1})),   alpha 0.75 (1 at k = 0),

P the projection onto the eps-ball (L2: rescaling; Linf: clipping to [x - eps, x + eps]) and
[0, 1]. At the checkpoints ``w_j`` (``checkpoints``) the step size of an example is halved and its
iterate restarted from its highest-loss point when (1) its loss rose in at most ``rho = 0.75`` of
the steps since the last checkpoint or (2) its step was not halved at the last checkpoint and its
best loss has not risen since. The settings, the starts and the integer form of the checkpoints
are those of the reference implementation (fra31/auto-attack, ``autopgd_base.py``). Randomness is
stateless, seeded by ``(seed, run)``: a batch's result does not depend on what ran before it, so
an evaluation resumed batch by batch reproduces an uninterrupted one.
"""
import tensorflow as tf

from tf_pgn.attacks.common import attack_unbroken, expand, margin, value_and_gradient
from tf_pgn.perturbation import get_norm, l2_norm

__all__ = ['apgd', 'apgd_targeted', 'checkpoints', 'dlr_loss', 'targeted_dlr_loss']

N_ITER = 100
RHO = 0.75  # fraction of loss-raising steps below which the step size is halved
MOMENTUM = 0.75  # alpha
INITIAL_STEP = 2.0  # x eps, at L2 and at Linf
NUM_TARGETS = 9  # APGD-T in AutoAttack's standard version
_DLR_EPS = 1e-12


def checkpoints(n_iter: int) -> list:
  """The iterations (1-based counts) after which APGD checks its step size.

  Section 3.2: ``w_j = ceil(p_j n_iter)`` with ``p_0 = 0, p_1 = 0.22`` and ``p_{j+1} = p_j +
  max(p_j - p_{j-1} - 0.03, 0.06)``; computed as the reference implementation does, in whole
  iterations (a first interval of int(0.22 n), each next one int(0.03 n) shorter down to
  int(0.06 n)), which for n = 100 gives 22, 41, 57, 70, 80, 87, 93, 99.
  """
  interval = max(int(0.22 * n_iter), 1)
  shrink, shortest = max(int(0.03 * n_iter), 1), max(int(0.06 * n_iter), 1)
  points, at = [], interval
  while at <= n_iter:
    points.append(at)
    interval = max(interval - shrink, shortest)
    at += interval
  return points


def ce_loss(logits, y, target):
  del target
  return tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits)


def dlr_loss(logits, y, target=None):
  """DLR (Eq. 6): ``-(Z_y - max_{i != y} Z_i) / (Z_pi1 - Z_pi3)``, pi the logits sorted in
  decreasing order: invariant to shifting and rescaling the logits. Needs 3 classes."""
  del target
  top = tf.math.top_k(logits, 3).values
  return -margin(logits, y) / (top[:, 0] - top[:, 2] + _DLR_EPS)


def targeted_dlr_loss(logits, y, target):
  """Targeted DLR (Eq. 7): ``-(Z_y - Z_t) / (Z_pi1 - (Z_pi3 + Z_pi4) / 2)``. Needs 4 classes."""
  top = tf.math.top_k(logits, 4).values
  gap = tf.gather(logits, y, batch_dims=1) - tf.gather(logits, target, batch_dims=1)
  return -gap / (top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + _DLR_EPS)


_LOSSES = {'ce': ce_loss, 'dlr': dlr_loss, 'targeted_dlr': targeted_dlr_loss}
_MIN_CLASSES = {'ce': 2, 'dlr': 3, 'targeted_dlr': 4}


# The start (the reference's): x + eps * n / ||n||, clipped to [0, 1], per norm the noise n and
# its norm ||n|| ([N, 1, ..., 1]): Gaussian at L2, a point of the eps-sphere; uniform in [-1, 1]^d
# at Linf, a point of the box whose largest pixel sits at eps.
_START = {
    'l2': (tf.random.stateless_normal, l2_norm),
    'linf': (lambda shape, seed: tf.random.stateless_uniform(shape, seed, -1.0, 1.0),
             lambda n: tf.reduce_max(tf.abs(n), axis=list(range(1, n.shape.rank)), keepdims=True)),
}


def apgd(model, x, y, eps, *, norm='l2', loss: str = 'ce', n_iter: int = N_ITER,
         restarts: int = 1, seed: int = 0):
  """Untargeted APGD on the CE (APGD-CE) or DLR (APGD-DLR) loss, at L2 or Linf, batched.

  Restart ``r`` starts at its own random point and runs only on the examples no earlier run
  fooled. An example's ``x_adv`` is its last misclassified iterate if a run fooled it, else the
  highest-loss iterate of the last run; always in the eps-ball around ``x`` and in [0, 1].

  Args:
    model: callable mapping float32 ``[N, ...]`` inputs in [0, 1] to logits ``[N, K]``.
    x: float32 inputs ``[N, ...]`` in [0, 1].
    y: integer true labels ``[N]``.
    eps: budget on the [0, 1] pixel scale (Linf 8/255 is ``8 / 255``); a float or a scalar
      tensor: one trace serves every budget.
    norm: 'l2' or 'linf' (or its ``tf_pgn.perturbation`` step object).
    loss: 'ce' or 'dlr' (K >= 3).
    n_iter: iterations per run.
    restarts: runs per example (AutoAttack's standard version: 1).
    seed: seeds the random starting points.
  """
  x, y, eps, norm = _inputs(x, y, eps, norm)
  _check_classes(model, x, loss)
  x_adv = x
  for run in range(restarts):
    x_adv, _ = attack_unbroken(model, x, y, x_adv, lambda m, xs, ys, run=run: _run(
        m, xs, ys, ys, eps, norm, loss, n_iter, tf.constant([seed, run], tf.int64)))
  return x_adv


def apgd_targeted(model, x, y, eps, *, norm='l2', n_iter: int = N_ITER,
                  num_targets: int = NUM_TARGETS, restarts: int = 1, seed: int = 0):
  """APGD-T: APGD on the targeted DLR loss towards each of the ``num_targets`` classes with the
  highest clean logits other than ``y`` in turn (capped at K - 1), each target (and restart) run
  only on the examples still classified correctly. Arguments as ``apgd``; K >= 4."""
  x, y, eps, norm = _inputs(x, y, eps, norm)
  num_classes = _check_classes(model, x, 'targeted_dlr')
  x_adv = x
  for rank in range(min(num_targets, num_classes - 1)):
    for restart in range(restarts):
      run = rank * restarts + restart
      x_adv, _ = attack_unbroken(model, x, y, x_adv, lambda m, xs, ys, rank=rank, run=run: _run(
          m, xs, ys, _target(m, xs, ys, rank), eps, norm, 'targeted_dlr', n_iter,
          tf.constant([seed, run], tf.int64)))
  return x_adv


def _inputs(x, y, eps, norm):
  norm = get_norm(norm)
  if norm.name not in _START:
    raise ValueError(f'APGD has no random start for the norm {norm.name!r}: use one of '
                     f'{", ".join(_START)}')
  return (tf.convert_to_tensor(x, tf.float32), tf.cast(tf.convert_to_tensor(y), tf.int32),
          tf.cast(eps, tf.float32), norm)


def _check_classes(model, x, loss: str) -> int:
  num_classes = int(model(x[:1]).shape[-1])
  if num_classes < _MIN_CLASSES[loss]:
    raise ValueError(f'the {loss} loss needs at least {_MIN_CLASSES[loss]} classes; the model '
                     f'has {num_classes}: use the CE loss')
  return num_classes


def _target(model, x, y, rank: int):
  """The class with the (rank + 1)-th highest clean logit other than y."""
  logits = model(x)
  others = tf.where(tf.one_hot(y, tf.shape(logits)[-1]) > 0, logits.dtype.min, logits)
  return tf.math.top_k(others, rank + 1).indices[:, rank]


@tf.function(reduce_retracing=True)
def _run(model, x, y, target, eps, norm, loss: str, n_iter: int, seed):
  """One APGD run (Algorithm 1) at ``norm`` (a step object) from a random point; the last
  misclassified iterate where one was found, else the highest-loss iterate."""
  rank = x.shape.rank
  loss_fn = lambda logits: _LOSSES[loss](logits, y, target)
  # Per iteration: whether a checkpoint follows it and, if so, the steps since the previous one.
  window, previous = [0.0] * n_iter, 0
  for point in checkpoints(n_iter):
    window[point - 1], previous = float(point - previous), point
  is_check = tf.constant([w > 0 for w in window])
  window = tf.constant(window)

  sample, size = _START[norm.name]
  noise = sample(tf.shape(x), seed)
  x_adv = tf.clip_by_value(x + eps * noise / size(noise), 0.0, 1.0)
  logits, loss_now, grad = value_and_gradient(model, x_adv, loss_fn)
  fooled = tf.argmax(logits, axis=-1, output_type=tf.int32) != y
  x_fooled = x_adv
  x_best, grad_best, loss_best = x_adv, grad, loss_now
  x_prev = x_adv
  step = tf.fill(tf.shape(y), INITIAL_STEP) * eps
  n_rises = tf.zeros_like(loss_now)
  halved_last = tf.ones_like(fooled)  # no halving is due at the first checkpoint for condition 2
  best_at_last = loss_best
  for i in tf.range(n_iter):
    alpha = tf.where(i == 0, 1.0, MOMENTUM)
    z = norm.project(x, norm.ascend(x_adv, grad, expand(step, rank)), eps)
    x_next = norm.project(x, x_adv + alpha * (z - x_adv) + (1.0 - alpha) * (x_adv - x_prev), eps)
    x_prev, x_adv = x_adv, x_next
    logits, loss_next, grad = value_and_gradient(model, x_adv, loss_fn)
    wrong = tf.argmax(logits, axis=-1, output_type=tf.int32) != y
    fooled |= wrong
    x_fooled = tf.where(expand(wrong, rank), x_adv, x_fooled)
    n_rises += tf.cast(loss_next > loss_now, tf.float32)
    loss_now = loss_next
    better = loss_now > loss_best
    x_best = tf.where(expand(better, rank), x_adv, x_best)
    grad_best = tf.where(expand(better, rank), grad, grad_best)
    loss_best = tf.where(better, loss_now, loss_best)
    # Checkpoint (section 3.2): halve the step and go back to the best point where progress
    # stalled; at the other iterations (most of them) nothing changes and nothing is computed.
    def checkpoint():
      halve = (n_rises <= window[i] * RHO) | (~halved_last & (best_at_last >= loss_best))
      return (tf.where(halve, step / 2.0, step), tf.where(expand(halve, rank), x_best, x_adv),
              tf.where(expand(halve, rank), grad_best, grad), tf.zeros_like(n_rises), halve,
              loss_best)

    step, x_adv, grad, n_rises, halved_last, best_at_last = tf.cond(
        is_check[i], checkpoint,
        lambda: (step, x_adv, grad, n_rises, halved_last, best_at_last))
  return tf.where(expand(fooled, rank), x_fooled, x_best)
