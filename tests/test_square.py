"""Square Attack L2: the published schedule and window profile, the budget, and that it needs no
gradient (a model whose gradient is zero everywhere falls to it as the ordinary model does).
Square-Linf: tests/test_linf_attacks.py."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_pgn.attacks import predict
from tf_pgn.attacks.square import eta, p_schedule, square, window_sizes
from tf_pgn.metrics import perturbation_norms


def test_p_halves_at_the_published_iterations():
  assert [p_schedule(i) for i in (0, 10, 11, 50, 51, 200, 201, 4999)] == [
      0.8, 0.8, 0.4, 0.4, 0.2, 0.2, 0.1, 0.8 / 128]
  assert p_schedule(8001, 10000, rescale_schedule=True) == 0.8 / 512
  assert p_schedule(2500, 5000, rescale_schedule=True) == p_schedule(5000)
  sizes = window_sizes(32, 32)
  # round(sqrt(0.8 * 1024)) = 29 at first; at least 3, odd, never larger than the image.
  assert sizes[0] == 29 and sizes[-1] == 3 and all(s % 2 == 1 for s in sizes)
  assert max(window_sizes(12, 20)) == 12 and min(window_sizes(2, 40)) == 2


def test_linf_windows_follow_the_same_schedule_at_any_side_from_1():
  # The reference's Linf side: round(sqrt(p h w)) for p = 0.8, 0.4, ..., 0.8 / 128, at least 1,
  # even ones too (at L2 they would be 21, 15, 11, 5).
  sizes = window_sizes(32, 32, norm='linf')
  assert [sizes[i] for i in (0, 11, 51, 201, 501, 1001, 2001, 4001)] == [29, 20, 14, 10, 7, 5, 4,
                                                                         3]
  assert min(window_sizes(4, 4, norm='linf')) == 1 and min(window_sizes(4, 4)) == 3


@pytest.mark.parametrize('side', [1, 2, 3, 6, 29])
def test_window_profile_has_unit_norm_and_opposite_halves(side):
  profile = eta(side)
  assert profile.shape == (side, side)
  assert np.sum(profile ** 2) == pytest.approx(1.0, rel=1e-5)
  assert np.all(profile[side // 2:] < 0) and np.all(profile[:side // 2] > 0)


def test_square_lowers_accuracy_within_its_budget_and_reproducibly(small_cifar_model):
  model, x, y = small_cifar_model
  eps = 1.0
  x_adv = square(model, tf.constant(x), tf.constant(y), eps, n_queries=300).numpy()
  assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
  assert perturbation_norms(x, x_adv).max() <= eps * (1 + 1e-5)
  accuracy = lambda images: np.mean(predict(model, images).argmax(-1) == y)
  assert accuracy(x_adv) < accuracy(x) - 0.05
  again = square(model, tf.constant(x), tf.constant(y), eps, n_queries=300).numpy()
  np.testing.assert_array_equal(again, x_adv)
  # Its gradient-free search does the same against a model that hides its gradient.
  masked = lambda images: model(images - images + tf.stop_gradient(images))
  np.testing.assert_allclose(square(masked, tf.constant(x), tf.constant(y), eps,
                                       n_queries=300), x_adv, atol=1e-6)


def test_square_takes_non_square_images_with_any_number_of_channels():
  keras.utils.set_random_seed(1)
  model = keras.Sequential([keras.Input((12, 20, 2)), keras.layers.Flatten(),
                            keras.layers.Dense(3)])
  x = np.random.default_rng(0).uniform(size=(5, 12, 20, 2)).astype(np.float32)
  y = predict(model, x).argmax(-1)
  x_adv = square(model, x, y, 0.3, n_queries=50, rescale_schedule=True).numpy()
  assert x_adv.shape == x.shape and x_adv.min() >= 0.0 and x_adv.max() <= 1.0
  assert perturbation_norms(x, x_adv).max() <= 0.3 * (1 + 1e-5)
  with pytest.raises(ValueError, match='images'):
    square(model, x.reshape(5, -1), y, 0.3)
