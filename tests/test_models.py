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


def _tiny_classifier_inputs(n=8):
  f = models.build_classifier(10, width=0.0625)
  x = tf.random.uniform([n, 32, 32, 3], seed=5)
  onehot = tf.one_hot(tf.range(n) % 10, 10)
  return f, x, onehot


def test_normalized_gradient_input_has_unit_rms_and_ignores_the_batch():
  f, x, onehot = _tiny_classifier_inputs()
  grad, logits = models.generator_input_gradient(f, x, onehot, 'normalized')
  np.testing.assert_allclose(logits, f(x), atol=1e-5)
  rms = tf.sqrt(tf.reduce_mean(tf.square(grad), axis=[1, 2, 3]))
  np.testing.assert_allclose(rms, np.ones(8), rtol=1e-4)
  # Per example: the same gradient whether the example comes alone, in a half batch or the whole.
  alone = models.generator_input_gradient(f, x[:1], onehot[:1], 'normalized')[0]
  half = models.generator_input_gradient(f, x[:4], onehot[:4], 'normalized')[0]
  np.testing.assert_allclose(half, grad[:4], atol=1e-4)
  np.testing.assert_allclose(alone, grad[:1], atol=1e-4)
  # Along the raw gradient's direction (d p = p d log p), and the sign is its sign.
  raw = models.generator_input_gradient(f, x, onehot, 'raw')[0]
  cosine = tf.reduce_sum(tf.math.l2_normalize(tf.reshape(raw, [8, -1]), -1) *
                         tf.math.l2_normalize(tf.reshape(grad, [8, -1]), -1), -1)
  np.testing.assert_allclose(cosine, np.ones(8), atol=1e-3)
  sign = models.generator_input_gradient(f, x, onehot, 'sign')[0]
  np.testing.assert_array_equal(sign, np.sign(grad))


def test_normalized_gradient_input_keeps_a_zero_gradient_zero():
  constant = lambda z, training=False: 0.0 * tf.reduce_sum(z, [1, 2, 3])[:, None] + tf.ones([1, 10])
  _, x, onehot = _tiny_classifier_inputs(2)
  grad, _ = models.generator_input_gradient(constant, x, onehot, 'normalized')
  np.testing.assert_array_equal(grad, np.zeros_like(grad))


def test_generator_sees_the_normalized_gradient_but_not_the_raw_one():
  """G's output when its gradient input is the classifier's, against a zero gradient input: the
  raw gradient (~1e-6 per pixel) leaves G's output unchanged to ~1e-4, the normalized one moves
  it by a sizeable fraction."""
  f, x, onehot = _tiny_classifier_inputs()
  g = models.build_generator(10, gen_width=0.0625)
  base = g([tf.zeros_like(x), x, onehot])
  change = {}
  for mode in ('raw', 'normalized'):
    grad = models.generator_input_gradient(f, x, onehot, mode)[0]
    change[mode] = float(tf.norm(g([grad, x, onehot]) - base) / tf.norm(base))
  assert change['raw'] < 1e-3 and change['normalized'] > 0.05, change


def test_zero_output_layer_starts_generator_at_the_identity():
  _, x, onehot = _tiny_classifier_inputs(2)
  g = models.build_generator(10, gen_width=0.0625)
  models.zero_output_layer(g)
  l = g([tf.random.normal(x.shape), x, onehot])
  np.testing.assert_array_equal(l, np.zeros_like(l))


def test_generator_is_built_for_any_image_shape_and_keeps_the_cifar_layout():
  cifar = models.build_generator(10, gen_width=0.125)
  assert cifar.count_params() == models.build_generator(10, 0.125, input_shape=(32, 32, 3)
                                                        ).count_params()
  assert not any(isinstance(l, keras.layers.Cropping2D) for l in cifar.layers)
  for shape in ((8, 8, 1), (28, 28, 1), (30, 17, 2)):
    g = models.build_generator(5, gen_width=0.125, input_shape=shape)
    x = tf.random.uniform([2, *shape], seed=4)
    assert g([x, x, tf.one_hot([0, 4], 5)]).shape == (2, *shape)


def test_input_gradient_calls_the_classifier_without_a_training_flag():
  """A plain callable (no ``training`` argument) and a batch-norm model in inference mode: the
  moving statistics stay where they are."""
  x = tf.random.uniform([4, 8, 8, 1], seed=6)
  onehot = tf.one_hot([0, 1, 2, 3], 4)
  plain = lambda z: tf.reshape(z, [4, -1])[:, :4] * 3.0
  grad, logits = models.true_class_gradient(plain, x, onehot)
  assert grad.shape == x.shape and logits.shape == (4, 4)
  inputs = keras.Input((8, 8, 1))
  h = keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3)(inputs))
  bn_model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(h))
  moving = [w.numpy().copy() for w in bn_model.non_trainable_weights]
  for mode in ('raw', 'normalized', 'sign'):
    models.generator_input_gradient(bn_model, x, onehot, mode)
  for before, after in zip(moving, bn_model.non_trainable_weights):
    np.testing.assert_array_equal(before, after.numpy())
