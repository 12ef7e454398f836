"""The classifier F (ConvPool-CNN, Table 1) and the perturbation generator G (Figure 1)."""
import keras
import tensorflow as tf

_LEAK = 0.2
_BOX = 0.999999  # keeps atanh finite at pixels 0 and 1 (Carlini & Wagner 2017)


def _channels(base: int, width: float) -> int:
  return max(1, int(round(base * width)))


def build_classifier(num_classes: int, width: float = 1.0, name: str = 'classifier'
                    ) -> keras.Model:
  """ConvPool-CNN of Table 1: three blocks Conv3x3(64*2^s) -> Conv3x3(64*2^(s+1)) -> AvgPool2,
  then Conv3x3(num_classes) and a spatial mean. LeakyReLU(0.2), He-normal init, no batch norm.

  Input float32 [N, 32, 32, 3] in [0, 1]; output logits [N, num_classes].
  """
  x = inputs = keras.Input((32, 32, 3), name='image')
  for s in range(3):
    for base in (64 * 2**s, 64 * 2**(s + 1)):
      x = keras.layers.Conv2D(_channels(base, width), 3, padding='same',
                              kernel_initializer='he_normal')(x)
      x = keras.layers.LeakyReLU(_LEAK)(x)
    x = keras.layers.AveragePooling2D(2)(x)
  x = keras.layers.Conv2D(num_classes, 3, padding='same', kernel_initializer='he_normal')(x)
  logits = keras.layers.GlobalAveragePooling2D(name='logits')(x)
  return keras.Model(inputs, logits, name=name)


@keras.saving.register_keras_serializable('tf_pgn')
class TileLabels(keras.layers.Layer):
  """Concatenates a one-hot label, tiled over space, to a feature map (Figure 1)."""

  def call(self, inputs):
    features, onehot = inputs
    shape = tf.shape(features)
    tiled = tf.tile(onehot[:, None, None, :], [1, shape[1], shape[2], 1])
    return tf.concat([features, tf.cast(tiled, features.dtype)], axis=-1)


def build_generator(num_classes: int, gen_width: float = 1.0, name: str = 'generator',
                    input_shape: tuple = (32, 32, 3)) -> keras.Model:
  """Perturbation generator G(grad_x F, x, y) of Figure 1, for images of ``input_shape``.

  y -> Dense 1024 -> concat y -> Dense 128*h*w -> h x w x 128 -> concat tiled y -> ConvT4x4 128
  s2 -> concat tiled y -> ConvT4x4 128 s2 -> concat [grad, 2x - 1] -> Conv3x3 128 -> Conv3x3 C,
  with h x w = ceil(H/4) x ceil(W/4) (8 x 8 for CIFAR's 32 x 32 x 3); the upsampled map is
  cropped to H x W where 4h > H or 4w > W. Returns the pre-box perturbation l (linear output);
  see ``tanh_box``.
  """
  height, width, channels = (int(d) for d in input_shape)
  h0, w0 = -(-height // 4), -(-width // 4)
  grad = keras.Input((height, width, channels), name='input_gradient')
  image = keras.Input((height, width, channels), name='image')
  onehot = keras.Input((num_classes,), name='label_onehot')
  act = lambda: keras.layers.LeakyReLU(_LEAK)
  dense_units, ch = _channels(1024, gen_width), _channels(128, gen_width)
  h = act()(keras.layers.Dense(dense_units, kernel_initializer='he_normal')(onehot))
  h = keras.layers.Concatenate()([h, onehot])
  h = act()(keras.layers.Dense(ch * h0 * w0, kernel_initializer='he_normal')(h))
  h = keras.layers.Reshape((h0, w0, ch))(h)
  for _ in range(2):
    h = TileLabels()([h, onehot])
    h = keras.layers.Conv2DTranspose(ch, 4, strides=2, padding='same',
                                     kernel_initializer='he_normal')(h)
    h = act()(h)
  if (4 * h0, 4 * w0) != (height, width):
    h = keras.layers.Cropping2D(((0, 4 * h0 - height), (0, 4 * w0 - width)))(h)
  centred = keras.layers.Rescaling(2.0, offset=-1.0)(image)
  h = keras.layers.Concatenate()([h, grad, centred])
  h = act()(keras.layers.Conv2D(ch, 3, padding='same', kernel_initializer='he_normal')(h))
  l = keras.layers.Conv2D(channels, 3, padding='same', kernel_initializer='he_normal',
                          name='perturbation')(h)
  return keras.Model([grad, image, onehot], l, name=name)


def tanh_box(x: tf.Tensor, l: tf.Tensor) -> tf.Tensor:
  """x_adv = (tanh(atanh((2x - 1) * 0.999999) + l) + 1) / 2: in [0, 1] for any l, x for l = 0.

  The change of variables of Carlini & Wagner (2017) used by the paper (section 4.1) so that the
  generator needs no clipping.
  """
  return (tf.tanh(tf.atanh((2.0 * x - 1.0) * _BOX) + l) + 1.0) / 2.0


def zero_output_layer(generator: keras.Model) -> None:
  """Zeroes G's last layer (``perturbation``): G starts at l = 0, i.e. x_adv = x, and grows its
  perturbation only as far as its loss asks (a He-initialised G starts at L2 ~ 5)."""
  for weight in generator.get_layer('perturbation').weights:
    weight.assign(tf.zeros_like(weight))


def true_class_gradient(classifier, x: tf.Tensor, onehot: tf.Tensor, batch_size=None):
  """grad_x of the batch-mean softmax probability of the true class (the input of G, section 3.1).

  The mean is over ``batch_size`` examples (default: those of ``x``), so the gradient scales as
  1 / batch_size: a replica of a distributed step passes the global batch, and the PGN attack
  its training batch, to keep the scale G was trained on.
  Returns (gradient, logits of x) so that callers reuse the forward pass. Recorded on any outer
  tape, so a caller may differentiate through it (double backprop). ``classifier`` is called as
  ``classifier(x)``: any callable on [0, 1] images (a Keras model runs in inference mode; a
  train step that wants F's training mode passes a function that asks for it).
  """
  if batch_size is None:
    batch_size = tf.shape(x)[0]
  with tf.GradientTape() as tape:
    tape.watch(x)
    logits = classifier(x)
    p_true = tf.reduce_sum(tf.nn.softmax(logits) * onehot) / tf.cast(batch_size, logits.dtype)
  return tape.gradient(p_true, x), logits


def _true_class_log_prob_gradient(classifier, x: tf.Tensor, onehot: tf.Tensor):
  """(grad_x sum_i log softmax(F(x_i))_{y_i}, logits): per example, p_y times the gradient of
  ``true_class_gradient`` (d p = p d log p), so the same direction; it keeps its size where p_y
  is tiny or saturated, where d p underflows in float32."""
  with tf.GradientTape() as tape:
    tape.watch(x)
    logits = classifier(x)
    log_p_true = tf.reduce_sum(tf.nn.log_softmax(tf.cast(logits, tf.float32)) * onehot)
  return tape.gradient(log_p_true, x), logits


def generator_input_gradient(classifier, x: tf.Tensor, onehot: tf.Tensor, mode: str = 'raw',
                             batch_size=None):
  """G's gradient input and F's logits on x.

  - ``raw`` (the paper, section 3.1): ``true_class_gradient``, of order 1e-6 per pixel on
    CIFAR, six orders of magnitude below G's other inputs (2x - 1 and the label features).
  - ``normalized``: per example, the true-class gradient divided by its L2 norm and scaled to
    unit RMS per pixel (L2 norm sqrt(H W C)); a zero gradient stays zero. It depends neither on
    the batch size nor on the classifier's confidence.
  - ``sign``: its per-pixel sign (the direction FGSM steps along), also of unit RMS.
  """
  if mode == 'raw':
    return true_class_gradient(classifier, x, onehot, batch_size)
  grad, logits = _true_class_log_prob_gradient(classifier, x, onehot)
  if mode == 'sign':
    return tf.sign(grad), logits
  if mode != 'normalized':
    raise ValueError(f'unknown gradient input {mode!r}: use raw, normalized or sign')
  norm = tf.norm(tf.reshape(grad, [tf.shape(grad)[0], -1]), axis=-1)
  pixels = tf.cast(tf.reduce_prod(tf.shape(grad)[1:]), grad.dtype)
  scale = tf.math.divide_no_nan(tf.sqrt(pixels), norm)
  return grad * tf.reshape(scale, [-1] + [1] * (grad.shape.rank - 1)), logits

