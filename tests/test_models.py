import os

import keras
import numpy as np
import tensorflow as tf

from tf_pgn import models


def test_tanh_box_stays_in_unit_box_and_is_identity_at_zero():
  x = tf.random.uniform([4, 32, 32, 3], seed=1)
  x = tf.concat([x, tf.zeros([1, 32, 32, 3]), tf.ones([1, 32, 32, 3])], 0)
  np.testing.assert_allclose(models.tanh_box(x, tf.zeros_like(x)), x, atol=1e-6)
  for scale in (1.0, 10.0, 1e4):
    x_adv = models.tanh_box(x, scale * tf.random.normal(x.shape, seed=2)).numpy()
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0


def test_classifier_matches_table1():
  f = models.build_classifier(10, width=1.0)
  # Table 1 at width 1: 64,128 | 128,256 | 256,512 filters, then 10; 2.33 M parameters.
  convs = [l.filters for l in f.layers if isinstance(l, keras.layers.Conv2D)]
  assert convs == [64, 128, 128, 256, 256, 512, 10]
  assert abs(f.count_params() - 2.33e6) < 0.01e6
  assert f(tf.zeros([2, 32, 32, 3])).shape == (2, 10)
  half = models.build_classifier(100, width=0.5)
  assert [l.filters for l in half.layers if isinstance(l, keras.layers.Conv2D)][:2] == [32, 64]


def test_generator_shapes_and_reload(tmp_path):
  g = models.build_generator(10, gen_width=1.0)
  assert abs(g.count_params() - 9.2e6) < 0.2e6  # reference: 9.2 M at the paper's size
  small = models.build_generator(10, gen_width=0.125)
  inputs = [tf.random.normal([2, 32, 32, 3]), tf.random.uniform([2, 32, 32, 3]),
            tf.one_hot([1, 3], 10)]
  out = small(inputs)
  assert out.shape == (2, 32, 32, 3)
  path = os.path.join(tmp_path, 'g.keras')
  small.save(path)
  np.testing.assert_allclose(keras.models.load_model(path)(inputs), out, atol=1e-6)


def test_true_class_gradient_is_gradient_of_mean_probability():
  f = models.build_classifier(10, width=0.0625)
  x = tf.random.uniform([3, 32, 32, 3], seed=3)
  onehot = tf.one_hot([0, 4, 9], 10)
  grad, logits = models.true_class_gradient(f, x, onehot)
  np.testing.assert_allclose(logits, f(x), atol=1e-5)
  # Finite difference along the gradient direction.
  d = grad / tf.norm(grad)
  p = lambda z: tf.reduce_mean(tf.reduce_sum(tf.nn.softmax(f(z)) * onehot, -1))
  h = 1e-2
  fd = (p(x + h * d) - p(x - h * d)) / (2 * h)
  np.testing.assert_allclose(fd, tf.norm(grad), rtol=0.05)
