"""The library's input conventions, said once, and its checks of every batch, each failing in one
line that names the fix.

``Conventions(labels, from_logits, value_range)`` is what a user says about their data and
classifier, as Keras says it: ``labels='sparse'`` (class ids, as SparseCategoricalCrossentropy
takes them) or ``'categorical'`` (one-hot rows, as CategoricalCrossentropy); ``from_logits=True``
(the classifier outputs logits) or ``False`` (probabilities); ``value_range=(0, 1)`` or the
images' own pixel scale, e.g. ``(0, 255)``, on which budgets are then given. The defenses and
attacks work on [0, 1] images and logits; ``UnitLogits`` shows them the classifier that way.

The checks of a batch run inside compiled steps as ``tf.debugging.Assert``s whose data is one
marked line; ``reported()`` turns a failed one into ``InputError`` (or ``DivergedError``) with
that line. Run eagerly (``check_arrays``) they check arrays in memory the same way.
"""
import contextlib
import dataclasses
import re

import keras
import numpy as np
import tensorflow as tf

from tf_pgn.errors import DivergedError, InputError

LABELS = ('sparse', 'categorical')
_ERRORS = {cls.__name__: cls for cls in (InputError, DivergedError)}
_MARK = re.compile(r'<tf_pgn (\w+)> (.*?) </tf_pgn>')
# Pixels may stray this fraction of the range outside it (float round-off of a rescaling).
_RANGE_SLACK = 1e-6
# How far from 1 a row of probabilities may sum (bfloat16 keeps 8 significant bits).
_SUM_SLACK = 2e-2


@dataclasses.dataclass(frozen=True)
class Conventions:
  """The labels' form, the classifier's output and the images' pixel range (module docstring)."""
  labels: str = 'sparse'
  from_logits: bool = True
  value_range: tuple = (0.0, 1.0)

  def __post_init__(self):
    if self.labels not in LABELS:
      raise InputError(f"labels={self.labels!r}: use 'sparse' (class ids [N]) or 'categorical' "
                       '(one-hot rows [N, K])')
    if not isinstance(self.from_logits, bool):
      raise InputError(f'from_logits={self.from_logits!r}: use True (the classifier outputs '
                       'logits) or False (probabilities)')
    try:
      low, high = (float(v) for v in self.value_range)
    except (TypeError, ValueError):
      raise InputError(f'value_range={self.value_range!r}: give the pixel range as (low, high), '
                       'e.g. (0, 255)') from None
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
      raise InputError(f'value_range={self.value_range!r}: give finite (low, high) with low < '
                       'high, e.g. (0, 255)')
    object.__setattr__(self, 'value_range', (low, high))

  @property
  def is_unit(self) -> bool:
    """Whether images are already on the [0, 1] scale (nothing to rescale)."""
    return self.value_range == (0.0, 1.0)

  @property
  def scale(self) -> float:
    return self.value_range[1] - self.value_range[0]

  def unit(self, value, power: int = 1):
    """``value``, a quantity on the images' pixel scale, on the [0, 1] scale: a length (a budget,
    a step) at ``power`` 1, a squared length at 2, the weight of a squared length (PGN's c_L) at
    -2; ``power`` -1 takes a [0, 1] length back to the pixel scale."""
    return value if self.is_unit else value / self.scale ** power

  def to_unit(self, x):
    """Images on the pixel scale -> [0, 1]."""
    return x if self.is_unit else (x - self.value_range[0]) / self.scale

  def from_unit(self, x):
    """[0, 1] images -> the pixel scale."""
    return x if self.is_unit else self.value_range[0] + x * self.scale

  def logits(self, outputs):
    """float32 logits of a classifier's ``outputs``: themselves, or for probabilities (checked)
    their logarithm, clipped at Keras' epsilon as its cross-entropy clips them."""
    outputs = tf.cast(outputs, tf.float32)
    if self.from_logits:
      return outputs
    sums = tf.reduce_sum(outputs, -1)
    check = assert_that(
        tf.reduce_all(outputs >= 0.0) & tf.reduce_all(tf.abs(sums - 1.0) <= _SUM_SLACK),
        InputError, 'from_logits=False but the classifier outputs no probabilities (rows sum to '
        '{} to {}, smallest output {}): pass from_logits=True if it outputs logits',
        [tf.reduce_min(sums), tf.reduce_max(sums), tf.reduce_min(outputs)])
    with tf.control_dependencies([check]):
      return tf.math.log(tf.clip_by_value(outputs, keras.config.epsilon(), 1.0))


class UnitLogits:
  """A classifier as the defenses and attacks see it: [0, 1] images in, float32 logits out
  (``Conventions``); its ``trainable_variables`` are the classifier's."""

  def __init__(self, classifier, conventions: Conventions):
    self.classifier, self.conventions = classifier, conventions

  @property
  def trainable_variables(self):
    return self.classifier.trainable_variables

  def __call__(self, x, training=False):
    c = self.conventions
    return c.logits(self.classifier(c.from_unit(x), training=training))


def assert_that(condition, error: type, template: str, values=()):
  """An assert of ``condition``; ``reported()`` turns its failure into ``error`` holding
  ``template`` (one line) with its ``{}`` placeholders filled in by ``values`` (numbers, or
  strings as they are)."""
  parts = f'<tf_pgn {error.__name__}> {template} </tf_pgn>'.split('{}')
  pieces = parts[:1]
  for value, part in zip(values, parts[1:]):
    value = tf.convert_to_tensor(value)
    pieces += [value if value.dtype == tf.string else tf.strings.format('{}', value), part]
  return tf.debugging.Assert(condition, [tf.strings.join(pieces)])


def _in_order(checks):
  """Runs the (condition, error, template, values) ``checks`` one after the other, so that the
  first that fails is the one reported; returns the last assert."""
  done = tf.no_op()
  for check in checks:
    with tf.control_dependencies([done]):
      done = assert_that(*check)
  return done


@contextlib.contextmanager
def reported():
  """Turns a failed ``assert_that`` (an InvalidArgumentError, from a compiled step or eagerly)
  into its error class with its one line; any other error passes unchanged."""
  try:
    yield
  except tf.errors.InvalidArgumentError as e:
    mark = _MARK.search(e.message)
    if mark is None:
      raise
    raise _ERRORS[mark.group(1)](mark.group(2)) from None


def _shape_text(shape) -> str:
  return '[' + ', '.join('N' if d is None else str(d) for d in shape) + ']'


def _shape_checks(t: tf.Tensor, what: str, dims: str, template: str) -> list:
  """Refuses ``t`` whose dimensions after the batch's, joined by ', ', do not match the regular
  expression ``dims``: now if its static shape tells, else by the run-time check returned (a
  list of at most one). ``template``'s ``{}`` takes the shape."""
  if not (t.dtype.is_floating or t.dtype.is_integer or t.dtype.is_bool):
    raise InputError(f'{what} of dtype {t.dtype.name}: give numbers')
  if t.shape.rank is not None and t.shape[1:].is_fully_defined():
    if not re.fullmatch(dims, ', '.join(map(str, t.shape[1:]))):
      raise InputError(template.format(_shape_text(t.shape)))
    return []
  shape = tf.strings.reduce_join(tf.strings.as_string(tf.shape(t)), separator=', ')
  after_batch = tf.strings.reduce_join(tf.strings.as_string(tf.shape(t)[1:]), separator=', ')
  return [(tf.strings.regex_full_match(after_batch, dims), InputError, template,
           [tf.strings.join(['[', shape, ']'])])]


def _gated(t, checks, shape=None):
  """``t`` once the ``checks`` pass (run in order), with the static ``shape`` if given."""
  with tf.control_dependencies([_in_order(checks)]):
    t = tf.identity(t)
  if shape is not None:  # static only: a run-time tf.ensure_shape may fail before the checks
    t.set_shape(shape)
  return t


def check_images(x, image_shape=None, value_range=(0.0, 1.0)) -> tf.Tensor:
  """``x`` as float32 images [N, *image_shape] (checked statically where the shape is known,
  else at run time) with finite pixels within ``value_range``."""
  x = tf.convert_to_tensor(x)
  if image_shape is not None:
    x = _gated(x, _shape_checks(
        x, 'images', ', '.join(map(str, image_shape)),
        f'images of shape {{}} but the classifier takes {_shape_text((None, *image_shape))}: give '
        'batches of that shape (x[..., None] adds a missing channel axis)'),
               (None, *image_shape))
  x = tf.cast(x, tf.float32)
  low, high = value_range
  slack = _RANGE_SLACK * (high - low)
  finite = tf.math.is_finite(x)
  return _gated(x, [
      (tf.reduce_all(finite), InputError, 'images hold {} NaN or Inf pixels: replace them '
       '(np.nan_to_num) or drop those images', [tf.reduce_sum(1 - tf.cast(finite, tf.int32))]),
      (tf.reduce_all((x >= low - slack) & (x <= high + slack)), InputError,
       f'pixels span [{{}}, {{}}] outside value_range=({low:g}, {high:g}): pass value_range=(low, '
       'high) of the images (e.g. (0, 255); eps is then on that scale) or rescale them into '
       f'[{low:g}, {high:g}]', [tf.reduce_min(x), tf.reduce_max(x)])])


def sparse_labels(y, num_classes: int, labels: str = 'sparse', batch_size=None) -> tf.Tensor:
  """Class ids int32 [N] from labels given as ``labels`` says ('sparse': ids [N] or [N, 1];
  'categorical': one-hot rows [N, K]), checked: their shape (statically where known), and at run
  time, given ``batch_size``, one per image and their values (ids in [0, K), rows one-hot)."""
  if y is None:
    raise InputError('batches hold images only: give (images, labels) pairs')
  y, k = tf.convert_to_tensor(y), num_classes
  if labels == 'sparse':
    checks = _shape_checks(y, 'labels', '(1)?', "labels of shape {} but labels='sparse' takes "
                           "class ids [N]: pass labels='categorical' for one-hot rows, or give "
                           'class ids')
  else:
    checks = _shape_checks(y, 'labels', str(k), "labels of shape {} but labels='categorical' "
                           f"takes one-hot rows [N, {k}]: pass labels='sparse' for class ids, or "
                           f'give rows of width {k}')
  if batch_size is not None:
    checks.append((tf.equal(tf.shape(y)[0], batch_size), InputError,
                   '{} labels for {} images in a batch: give one label per image',
                   [tf.shape(y)[0], batch_size]))
  y = _gated(tf.cast(y, tf.float32), checks, (None, k) if labels == 'categorical' else None)
  if labels == 'categorical':
    sums = tf.reduce_sum(y, -1)
    y = _gated(y, [(tf.reduce_all(tf.equal(y, 0.0) | tf.equal(y, 1.0)) &
                    tf.reduce_all(tf.equal(sums, 1.0)), InputError,
                    'label rows are not one-hot (values {} to {}, row sums {} to {}): give '
                    "one-hot rows, or class ids with labels='sparse' (soft labels are not "
                    'supported)', [tf.reduce_min(y), tf.reduce_max(y), tf.reduce_min(sums),
                                   tf.reduce_max(sums)])])
    return tf.argmax(y, -1, output_type=tf.int32)
  y = tf.reshape(y, [-1])
  y = _gated(y, [(tf.reduce_all((y >= 0.0) & (y <= k - 1.0) & tf.equal(y, tf.round(y))),
                  InputError, f'labels span [{{}}, {{}}] but the classifier has {k} classes: give '
                  f'integer class ids 0 to {k - 1}', [tf.reduce_min(y), tf.reduce_max(y)])])
  return tf.cast(y, tf.int32)


def check_arrays(x, y, num_classes: int, conventions: Conventions = Conventions(),
                 image_shape=None) -> tuple:
  """Images and labels in memory checked as a batch is (``check_images``, ``sparse_labels``),
  eagerly: (float32 images on their own scale, int32 class ids [N]), or InputError."""
  with reported():
    x = check_images(x, image_shape, conventions.value_range)
    y = sparse_labels(y, num_classes, conventions.labels, tf.shape(x)[0])
  return x.numpy(), y.numpy()


def _made_by_softmax(outputs) -> bool:
  """Whether graph tensor ``outputs`` is a softmax's (as Keras' TF backend tells)."""
  if hasattr(outputs, '_keras_logits'):  # set by keras.activations.softmax
    return True
  try:
    return outputs.op.type == 'Softmax'
  except AttributeError:  # an eager tensor
    return False


def _input_shape(classifier: keras.Model) -> tuple:
  """The input shape (batch axis included) of a functional or Sequential model, or of a
  subclassed one from its first call."""
  try:
    return tuple(classifier.input_shape)
  except (AttributeError, ValueError):  # subclassed, or Sequential without an Input
    config = classifier.get_build_config() if classifier.weights else None
    if not config or 'input_shape' not in config:
      raise InputError(f'{classifier.name} has not been called yet: call it once on a batch of '
                       'images (classifier(x[:1])) so that its input shape and weights '
                       'exist') from None
    return tuple(config['input_shape'])


def classifier_signature(classifier, from_logits: bool = True) -> tuple:
  """(image shape [H, W, C], number of classes K) of a built Keras classifier of images [N, H, W,
  C] -> [N, K], traced once in a graph, which also tells whether its output is a softmax's: one
  is refused while ``from_logits=True``."""
  if not isinstance(classifier, keras.Model):
    raise InputError(f'{type(classifier).__name__} is not a keras.Model: wrap the classifier in '
                     'one (functional, Sequential or subclassed)')
  shape = _input_shape(classifier)
  expected = 'expected images [N, H, W, C] to logits [N, K]'
  if len(shape) != 4 or None in shape[1:]:
    raise InputError(f'{classifier.name} takes inputs {_shape_text(shape)}: {expected}')
  found = []

  def trace(x):
    outputs = classifier(x, training=False)
    found.append((getattr(outputs, 'shape', None), _made_by_softmax(outputs)))
    return outputs

  tf.function(trace).get_concrete_function(tf.TensorSpec((None, *shape[1:]), tf.float32))
  out_shape, softmax = found[0]
  if out_shape is None or out_shape.rank != 2 or out_shape[-1] is None:
    raise InputError(f'{classifier.name} maps {_shape_text(shape)} to {out_shape}: {expected}')
  if from_logits and softmax:
    raise InputError(f'{classifier.name} ends in a softmax but from_logits=True: pass '
                     'from_logits=False (its probabilities are then used as such) or drop the '
                     'softmax so that it outputs logits')
  return tuple(shape[1:]), int(out_shape[-1])


def check_generator(generator: keras.Model, image_shape: tuple, num_classes: int) -> None:
  """Refuses a PGN generator that does not map (gradient, images, one-hot labels) to a
  perturbation of the images' shape."""
  batch = (None, *image_shape)
  fix = (f'give one built for them (tf_pgn.build_generator({num_classes}, '
         f'input_shape={tuple(image_shape)}))')
  try:
    out = generator.compute_output_spec([keras.KerasTensor(batch), keras.KerasTensor(batch),
                                         keras.KerasTensor((None, num_classes))])
  except (TypeError, ValueError) as e:
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise InputError(f"generator '{generator.name}' does not take (gradient, images, one-hot "
                     f'labels) for images {_shape_text(batch)} ({first}): {fix}') from None
  if tuple(getattr(out, 'shape', ())[1:]) != tuple(image_shape):
    raise InputError(f"generator '{generator.name}' outputs {_shape_text(out.shape)} for images "
                     f'{_shape_text(batch)}: {fix}')
