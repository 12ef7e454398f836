"""Hand-checked cases for tf_pgn.metrics (rho of PGN paper section 4.2, Eq. 6)."""

import numpy as np
import pytest

from tf_pgn import metrics


def _case():
  """Six 1x2 examples with known perturbation norms 0, 3, 5, 0, 1, 2.

  y          = 0 1 2 0 1 2
  pred_clean = 0 1 2 1 1 0   -> examples 3 and 5 already wrong clean
  pred_adv   = 1 1 0 1 2 1   -> example 1 not fooled; 0, 2, 4 fooled (successful)
  """
  x = np.zeros((6, 1, 2), np.float32)
  delta = np.array([[0, 0], [3, 0], [3, 4], [0, 0], [0, 1], [2, 0]], np.float32)
  x_adv = x + delta[:, None, :]
  y = np.array([0, 1, 2, 0, 1, 2])
  pred_clean = np.array([0, 1, 2, 1, 1, 0])
  pred_adv = np.array([1, 1, 0, 1, 2, 1])
  return x, x_adv, y, pred_clean, pred_adv


def test_accuracy_labels_and_logits():
  y = np.array([0, 1, 2, 1])
  assert metrics.accuracy(np.array([0, 1, 1, 1]), y) == 0.75
  logits = np.eye(3)[[0, 2, 2, 1]] * 5.0
  assert metrics.accuracy(logits, y) == 0.75


def test_perturbation_norms_all_axes_float64():
  x, x_adv, *_ = _case()
  norms = metrics.perturbation_norms(x, x_adv)
  assert norms.dtype == np.float64
  np.testing.assert_allclose(norms, [0, 3, 5, 0, 1, 2])


def test_rho_only_over_successful_examples():
  x, x_adv, y, pred_clean, pred_adv = _case()
  result = metrics.rho(x, x_adv, y, pred_clean, pred_adv)
  # Successful: 0 (norm 0), 2 (norm 5), 4 (norm 1).
  assert result['n_success'] == 3
  assert result['rho_mean'] == pytest.approx(2.0)
  assert result['rho_median'] == pytest.approx(1.0)
  assert result['rho_std_error'] == pytest.approx(np.std([0, 5, 1], ddof=1) / np.sqrt(3))
  # Authors' variant: all wrong after attack: 0, 2, 3, 4, 5 -> norms 0, 5, 0, 1, 2.
  assert result['rho_mean_paper'] == pytest.approx(1.6)
  assert result['rho_median_paper'] == pytest.approx(1.0)
  assert result['n_wrong_adv'] == 5


def test_rho_accepts_logits_and_is_nan_without_success():
  x, x_adv, y, pred_clean, _ = _case()
  logits_adv = np.eye(3)[y] * 3.0  # attack failed everywhere
  result = metrics.rho(x, x_adv, y, np.eye(3)[pred_clean], logits_adv)
  assert result['n_success'] == 0
  assert np.isnan(result['rho_mean']) and np.isnan(result['rho_median'])
  assert np.isnan(result['rho_mean_paper'])


def test_accuracy_vs_radius_hand_case():
  x, x_adv, y, pred_clean, pred_adv = _case()
  # Clean-correct: 0, 1, 2, 4. Attack failed on 1; fooled 0 (norm 0), 2 (norm 5), 4 (norm 1).
  curve = metrics.accuracy_vs_radius(x, x_adv, y, pred_clean, pred_adv,
                                     radii=[0.0, 0.5, 1.0, 4.0, 5.0, 10.0])
  np.testing.assert_allclose(curve, np.array([3, 3, 2, 2, 1, 1]) / 6)
  # Linf norms 0, 3, 4, 0, 1, 2: example 2 (L2 5) needs only 4.
  curve = metrics.accuracy_vs_radius(x, x_adv, y, pred_clean, pred_adv, norm='linf',
                                     radii=[0.0, 0.5, 1.0, 3.9, 4.0, 10.0])
  np.testing.assert_allclose(curve, np.array([3, 3, 2, 2, 1, 1]) / 6)
  np.testing.assert_array_equal(metrics.perturbation_norms(x, x_adv, 'linf'), [0, 3, 4, 0, 1, 2])
