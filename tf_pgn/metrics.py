"""Evaluation metrics (pure numpy) for minimal-norm attacks.

Robustness is measured as in section 4.2 of the PGN paper (Lee, Han & Lee, 2020): Eq. 6 defines
rho as the mean L2 norm of the perturbation over successful adversarial examples (rho_cw for
Carlini & Wagner). The median is reported as well.
"""

import math

import numpy as np

__all__ = ['accuracy', 'perturbation_norms', 'rho', 'accuracy_vs_radius']


def _labels(logits_or_preds):
  """Class indices from logits ``[N, K]`` (argmax) or from labels ``[N]`` (unchanged)."""
  a = np.asarray(logits_or_preds)
  return a.argmax(axis=-1) if a.ndim == 2 else a


def accuracy(logits_or_preds, y):
  """Fraction of examples whose prediction (logits ``[N, K]`` or labels ``[N]``) equals ``y``.

  Used for benign accuracy and robust accuracy (section 4.2 of the PGN paper).
  """
  return float(np.mean(_labels(logits_or_preds) == np.asarray(y)))


def perturbation_norms(x, x_adv, norm: str = 'l2'):
  """Per-example L2 (or, ``norm='linf'``, Linf) norm of ``x_adv - x`` over all non-batch axes,
  as float64 ``[N]``.

  The L2 norm is the quantity averaged by rho (PGN paper, section 4.2, Eq. 6).
  """
  diff = (np.asarray(x_adv, np.float64) - np.asarray(x, np.float64)).reshape(len(x), -1)
  if norm == 'linf':
    return np.abs(diff).max(axis=1, initial=0.0)
  return np.sqrt(np.sum(np.square(diff), axis=1))


def _mean_median(values):
  if values.size == 0:
    return float('nan'), float('nan')
  return float(np.mean(values)), float(np.median(values))


def rho(x, x_adv, y, pred_clean, pred_adv):
  """Mean and median perturbation L2 norm of successful adversarial examples.

  rho (PGN paper, section 4.2, Eq. 6) is the mean L2 norm of the perturbation over successful
  adversarial examples. Here a successful example is one the model classifies correctly on the
  clean input and wrongly after the attack. The authors' code instead averages over all
  examples wrongly predicted after the attack, including those already misclassified clean
  (whose perturbation is typically ~0), which biases rho down; that variant is returned as
  ``rho_mean_paper`` / ``rho_median_paper``.

  Args:
    x, x_adv: clean and adversarial inputs ``[N, ...]``.
    y: true labels ``[N]``.
    pred_clean, pred_adv: predictions (labels ``[N]`` or logits ``[N, K]``) on ``x`` and
      ``x_adv``.

  Returns:
    dict with ``rho_mean``, ``rho_median``, ``rho_std_error`` (standard error of rho_mean:
    sample standard deviation / sqrt(n_success)), ``n_success``, ``rho_mean_paper``,
    ``rho_median_paper``, ``n_wrong_adv``. Means and medians are NaN (a float, not
    JSON-safe) when there are no such examples; converting them is the caller's job.
  """
  y = np.asarray(y)
  norms = perturbation_norms(x, x_adv)
  wrong_adv = _labels(pred_adv) != y
  success = (_labels(pred_clean) == y) & wrong_adv
  rho_mean, rho_median = _mean_median(norms[success])
  paper_mean, paper_median = _mean_median(norms[wrong_adv])
  n = int(success.sum())
  return {
      'rho_mean': rho_mean,
      'rho_median': rho_median,
      'rho_std_error': float(np.std(norms[success], ddof=1) / np.sqrt(n)) if n > 1 else math.nan,
      'n_success': n,
      'rho_mean_paper': paper_mean,
      'rho_median_paper': paper_median,
      'n_wrong_adv': int(wrong_adv.sum()),
  }


def accuracy_vs_radius(x, x_adv, y, pred_clean, pred_adv, radii, norm: str = 'l2'):
  """Robust accuracy at each L2 (or Linf) budget, given the results of a minimal-norm attack.

  For each radius r: the fraction of all examples that are classified correctly clean and
  whose attack either failed or needed a perturbation of norm > r. At L2 this is the
  accuracy-versus-rho view of the PGN paper's robustness evaluation (section 4.2, Eq. 6:
  rho is the mean L2 norm over successful adversarial examples).

  Args:
    x, x_adv: clean and adversarial inputs ``[N, ...]``.
    y: true labels ``[N]``.
    pred_clean, pred_adv: predictions (labels or logits) on ``x`` and ``x_adv``.
    radii: sequence of budgets in ``norm``.
    norm: 'l2' or 'linf', the norm of the attack's perturbations and of ``radii``.

  Returns:
    float64 numpy array, one robust accuracy per radius.
  """
  y = np.asarray(y)
  norms = perturbation_norms(x, x_adv, norm)
  clean_correct = _labels(pred_clean) == y
  attack_failed = _labels(pred_adv) == y
  radii = np.asarray(radii, np.float64)
  robust = clean_correct[None, :] & (attack_failed[None, :] | (norms[None, :] > radii[:, None]))
  return robust.mean(axis=1)
