"""Every bad input to the library refused in one line that names the fix (AdversarialModel's
construction, fit and evaluate, RobustnessProbe, tf_pgn.inputs.check_arrays for evaluate), and
the conventions said once: one-hot labels, probabilities, a 0-255 pixel scale."""
import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_pgn
from tf_pgn import inputs
from tf_pgn.callbacks import RobustnessProbe
from tf_pgn.errors import DivergedError, InputError

K = 3


def _one_line(excinfo, *phrases):
  """The error's message is one line holding each of ``phrases`` (the fix)."""
  message = str(excinfo.value)
  assert '\n' not in message, message
  for phrase in phrases:
    assert phrase in message, message


def _classifier(softmax=False, shape=(4, 4, 1)):
  inputs_ = keras.Input(shape)
  h = keras.layers.Dense(K, activation='softmax' if softmax else None)(
      keras.layers.Flatten()(inputs_))
  return keras.Model(inputs_, h, name='tiny')


def _data(n=16, shape=(4, 4, 1)):
  rng = np.random.default_rng(0)
  return rng.uniform(size=(n, *shape)).astype(np.float32), rng.integers(0, K, n)


def _model(defense=None, classifier=None, **kwargs):
  keras.utils.set_random_seed(0)
  model = tf_pgn.AdversarialModel(classifier or _classifier(), defense, seed=0, **kwargs)
  model.compile(classifier_optimizer=keras.optimizers.SGD(0.1))
  return model


def _fit(model, x, y, **kwargs):
  return model.fit(x, y, batch_size=8, epochs=1, verbose=0, **kwargs).history


# -- labels ----------------------------------------------------------------------------------
def test_one_hot_labels_under_sparse_and_ids_under_categorical_name_the_other_convention():
  x, y = _data()
  with pytest.raises(InputError) as e:
    _fit(_model(), x, np.eye(K)[y])
  _one_line(e, "3] but labels='sparse' takes class ids", "pass labels='categorical'")
  with pytest.raises(InputError) as e:
    _fit(_model(labels='categorical'), x, y)
  _one_line(e, "labels of shape [8] but labels='categorical'", "pass labels='sparse'")


def test_one_hot_labels_said_once_train_as_class_ids_do():
  x, y = _data()
  sparse, categorical = _model(tf_pgn.FGM(0.1)), _model(tf_pgn.FGM(0.1), labels='categorical')
  h_sparse, h_categorical = _fit(sparse, x, y), _fit(categorical, x, np.eye(K)[y])
  assert h_sparse['loss'] == pytest.approx(h_categorical['loss'], rel=1e-6)
  for a, b in zip(sparse.classifier.weights, categorical.classifier.weights):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)


def test_soft_label_rows_and_rows_of_another_width_are_refused():
  x, y = _data()
  with pytest.raises(InputError) as e:
    _fit(_model(labels='categorical'), x, np.full((16, K), 1.0 / K, np.float32))
  _one_line(e, 'label rows are not one-hot', 'soft labels are not supported')
  with pytest.raises(InputError) as e:
    _fit(_model(labels='categorical'), x, np.eye(K + 2)[y])
  _one_line(e, '5] but labels=', 'give rows of width 3')


@pytest.mark.parametrize('labels', [[0, 1, 2, 3] * 4, [-1, 0, 1, 2] * 4, [0.5, 1, 2, 0] * 4])
def test_labels_outside_the_class_range_or_not_integers_are_refused(labels):
  x, _ = _data()
  with pytest.raises(InputError) as e:
    _fit(_model(), x, np.asarray(labels))
  _one_line(e, 'but the classifier has 3 classes', 'give integer class ids 0 to 2')


def test_a_batch_with_fewer_labels_than_images_is_refused():
  x, y = _data()
  ds = tf.data.Dataset.zip((tf.data.Dataset.from_tensor_slices(x).batch(8),
                            tf.data.Dataset.from_tensor_slices(y).batch(4)))
  with pytest.raises(InputError) as e:
    _model().fit(ds, verbose=0)
  _one_line(e, '4 labels for 8 images', 'one label per image')


def test_a_dataset_of_images_alone_is_refused():
  x, _ = _data()
  with pytest.raises(InputError) as e:
    _model().fit(tf.data.Dataset.from_tensor_slices(x).batch(8), verbose=0)
  _one_line(e, 'give (images, labels) pairs')


# -- pixels ----------------------------------------------------------------------------------
@pytest.mark.parametrize('bad', [np.nan, np.inf])
def test_nan_or_inf_pixels_are_refused_in_fit_and_evaluate(bad):
  x, y = _data()
  x[5, 1, 2, 0] = bad
  model = _model()
  with pytest.raises(InputError) as e:
    _fit(model, x, y)
  _one_line(e, 'images hold 1 NaN or Inf pixels', 'np.nan_to_num')
  with pytest.raises(InputError) as e:
    model.evaluate(x, y, verbose=0)
  _one_line(e, 'NaN or Inf pixels')


def test_the_checks_hold_when_the_step_is_compiled_with_xla():
  """XLA drops asserts: under jit_compile=True they run outside the compiled defense step."""
  x, y = _data()
  x[0, 0, 0, 0] = np.nan
  model = _model(tf_pgn.FGM(0.1))
  model.compile(classifier_optimizer=keras.optimizers.SGD(0.1), jit_compile=True)
  with pytest.raises(InputError) as e:
    _fit(model, x, y)
  _one_line(e, 'images hold 1 NaN or Inf pixels')


def test_images_on_0_255_are_refused_under_the_default_range_and_the_fix_is_named():
  x, y = _data()
  with pytest.raises(InputError) as e:
    _fit(_model(), (x * 255).astype(np.uint8), y)
  _one_line(e, 'outside value_range=(0, 1)', 'pass value_range=(low, high)', '(0, 255)')
  with pytest.raises(InputError) as e:
    _fit(_model(value_range=(0, 255)), x - 0.5, y)
  _one_line(e, 'outside value_range=(0, 255)', 'rescale them into [0, 255]')


@pytest.mark.parametrize('defense', [tf_pgn.PGD(eps=0.5, steps=3), tf_pgn.PGN(c_l=1.0)])
def test_a_0_255_range_said_once_trains_as_0_1_images_with_rescaled_budgets(defense):
  """F255 = F1 after a 1/255 rescaling, from the same weights: training F255 on x * 255 with eps
  (and c_L's squared length) on the 0-255 scale takes F1's step on x."""
  x, y = _data()
  unit = _classifier()
  start = unit.get_weights()
  inputs_ = keras.Input((4, 4, 1))
  wide = keras.Model(inputs_, unit(keras.layers.Rescaling(1 / 255)(inputs_)), name='wide')
  scaled = {'eps': 255 * defense.eps} if defense.eps else {}
  if isinstance(defense, tf_pgn.PGN):
    scaled['c_l'] = defense.c_l / 255 ** 2
  h255 = _fit(_model(dataclasses.replace(defense, **scaled), wide, value_range=(0, 255)),
              x * 255, y)
  wide_weights = [w.numpy() for w in unit.weights]
  unit.set_weights(start)
  m1 = _model(defense, unit)
  h1 = _fit(m1, x, y)
  for a, b in zip(wide_weights, m1.classifier.weights):
    np.testing.assert_allclose(a, b.numpy(), rtol=1e-3, atol=1e-5)
  assert h255['loss'] == pytest.approx(h1['loss'], rel=1e-3)
  assert h255['pert_l2'][0] == pytest.approx(255 * h1['pert_l2'][0], rel=1e-3)  # 0-255 scale


@pytest.mark.parametrize('shape, fix', [((16, 4, 4), 'x[..., None]'),
                                        ((16, 8, 8, 1), 'give batches of that shape')])
def test_images_of_another_rank_or_size_are_refused(shape, fix):
  x, y = _data(shape=shape[1:])
  with pytest.raises(InputError) as e:
    _fit(_model(), x, y)
  _one_line(e, f'images of shape [8, {", ".join(map(str, shape[1:]))}]',
            'the classifier takes [N, 4, 4, 1]', fix)


def test_an_image_shape_unknown_when_traced_is_checked_at_run_time():
  """After a batch of the right rank, Keras retraces fit's step for a batch of another rank
  with the shape relaxed to unknown: the check then runs in the graph."""
  x, y = _data()
  model = _model()
  _fit(model, x, y)
  with pytest.raises(InputError) as e:
    _fit(model, x[..., 0], y)
  _one_line(e, 'images of shape [8, 4, 4]', 'x[..., None]')


# -- the classifier and the generator --------------------------------------------------------
def test_a_softmax_output_under_from_logits_is_refused_and_probabilities_said_once_train():
  with pytest.raises(InputError) as e:
    _model(classifier=_classifier(softmax=True))
  _one_line(e, 'tiny ends in a softmax', 'pass from_logits=False')
  x, y = _data()
  history = _fit(_model(tf_pgn.PGD(0.5, steps=2), _classifier(softmax=True), from_logits=False),
                 x, y)
  assert np.isfinite(history['loss'][0]) and 0.0 < history['pert_l2'][0] <= 0.5 + 1e-5


def test_logits_under_from_logits_false_are_refused():
  x, y = _data()
  with pytest.raises(InputError) as e:
    _fit(_model(from_logits=False), x, y)
  _one_line(e, 'from_logits=False but the classifier outputs no probabilities',
            'pass from_logits=True')


class _Subclassed(keras.Model):

  def __init__(self):
    super().__init__(name='sub')
    self.head = keras.layers.Dense(K)

  def call(self, x):
    return self.head(keras.ops.reshape(x, (-1, 16)))


def test_an_uncalled_subclassed_classifier_and_a_non_image_classifier_are_named():
  with pytest.raises(InputError) as e:
    _model(classifier=_Subclassed())
  _one_line(e, 'sub has not been called yet', 'classifier(x[:1])')
  inputs_ = keras.Input((16,))
  with pytest.raises(InputError) as e:
    _model(classifier=keras.Model(inputs_, keras.layers.Dense(K)(inputs_), name='flat'))
  _one_line(e, 'flat takes inputs [N, 16]', 'expected images [N, H, W, C] to logits [N, K]')


def test_a_generator_for_other_images_is_refused_at_construction():
  with pytest.raises(InputError) as e:
    _model(tf_pgn.PGN(), generator=tf_pgn.build_generator(K, input_shape=(8, 8, 1)))
  _one_line(e, "generator 'generator' does not take",
            'tf_pgn.build_generator(3, input_shape=(4, 4, 1))')
  inputs_ = [keras.Input((4, 4, 1)), keras.Input((4, 4, 1)), keras.Input((K,))]
  flat = keras.layers.Dense(8)(keras.layers.Flatten()(inputs_[1]))
  with pytest.raises(InputError) as e:
    _model(tf_pgn.PGN(), generator=keras.Model(inputs_, flat, name='flat_g'))
  _one_line(e, "generator 'flat_g' outputs [N, 8] for images [N, 4, 4, 1]",
            'tf_pgn.build_generator(3, input_shape=(4, 4, 1))')


# -- settings --------------------------------------------------------------------------------
@pytest.mark.parametrize('make, phrase', [
    (lambda: tf_pgn.PGD(eps=-1.0), 'eps=-1.0 must be positive'),
    (lambda: tf_pgn.FGM(0.1, norm='l3'), "unknown norm='l3'"),
    (lambda: _model(ema_decay=1.5), 'ema_decay=1.5 must lie in [0, 1)'),
    (lambda: _model(labels='onehot'), "use 'sparse'"),
    (lambda: _model(value_range=(255, 0)), 'low < high'),
    (lambda: _model(from_logits='yes'), 'use True'),
    (lambda: RobustnessProbe(*_data(), 'cw', eps=0.5), "unknown attack='cw'"),
    (lambda: RobustnessProbe(*_data(), eps=0.0), 'eps=0.0 must be positive'),
    (lambda: RobustnessProbe(*_data(), eps=0.5, every=0), 'every=0 must be a positive integer'),
])
def test_invalid_settings_are_refused_at_construction(make, phrase):
  with pytest.raises(ValueError) as e:
    make()
  _one_line(e, phrase)


def test_class_weight_and_sample_weight_batches_are_refused_and_validation_weights_applied():
  x, y = _data()
  for kwargs in (dict(class_weight={0: 1.0, 1: 2.0, 2: 1.0}), dict(sample_weight=np.ones(16))):
    with pytest.raises(InputError) as e:
      _fit(_model(), x, y, **kwargs)
    _one_line(e, 'sample weights', 'resample the data instead')
  model = _model()
  weights = np.arange(16, dtype=np.float32)
  logits = model.ema_classifier(x).numpy()
  ce = -tf.nn.log_softmax(logits).numpy()[np.arange(16), y]
  result = model.evaluate(x, y, sample_weight=weights, verbose=0, return_dict=True)
  assert result['loss'] == pytest.approx(np.sum(weights * ce) / np.sum(weights), rel=1e-5)
  assert result['accuracy'] == pytest.approx(
      np.sum(weights * (logits.argmax(-1) == y)) / np.sum(weights), rel=1e-5)


def test_a_diverging_step_stops_fit_naming_the_step():
  x, y = _data()
  model = _model()
  model.compile(classifier_optimizer=keras.optimizers.SGD(float('inf')))
  with pytest.raises(DivergedError) as e:
    _fit(model, x, y)
  _one_line(e, 'training diverged at step 2', 'lower the learning rate')
  assert int(model.classifier_optimizer.iterations) == 2


def test_robustness_probe_refuses_bad_held_out_data_and_a_plain_keras_model():
  x, y = _data()
  model = _model()
  with pytest.raises(InputError) as e:
    _fit(model, x, y, callbacks=[RobustnessProbe(x, y + 1, eps=0.5)])
  _one_line(e, 'labels span [1, 3]', 'give integer class ids 0 to 2')
  plain = _classifier()
  plain.compile('sgd', keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  with pytest.raises(InputError) as e:
    plain.fit(x, y, verbose=0, callbacks=[RobustnessProbe(x, y, eps=0.5)])
  _one_line(e, "probes an AdversarialModel's EMA classifier", 'tf_pgn.evaluate')


def test_check_arrays_refuses_in_memory_data_as_a_batch_is_refused():
  """What tf_pgn.evaluate checks its arrays with."""
  x, y = _data()
  conventions = inputs.Conventions(value_range=(0, 255))
  checked_x, checked_y = inputs.check_arrays(x * 255, y, K, conventions, (4, 4, 1))
  assert checked_x.dtype == np.float32 and checked_y.dtype == np.int32
  np.testing.assert_array_equal(checked_y, y)
  for bad_x, bad_y, phrase in ((x * 255, y, 'outside value_range=(0, 1)'),
                               (x, y + 1, 'labels span [1, 3]'),
                               (x, y[:8], '8 labels for 16 images'),
                               (x[..., 0], y, 'images of shape [16, 4, 4]')):
    with pytest.raises(InputError) as e:
      inputs.check_arrays(bad_x, bad_y, K, image_shape=(4, 4, 1))
    _one_line(e, phrase)


def test_evaluate_takes_labels_and_probabilities_as_said_and_refuses_bad_arrays():
  x, y = _data(32)
  logits_model = _classifier()
  probs_model = keras.Model(logits_model.input, keras.layers.Softmax()(logits_model.output))
  settings = dict(attacks=['fgm'], eps_list=[0.1], batch_size=16)
  reference = tf_pgn.evaluate(logits_model, x, y, **settings)
  said = tf_pgn.evaluate(probs_model, x, np.eye(K)[y], labels='categorical', from_logits=False,
                         **settings)
  fgm = lambda r: r['attacks']['fgm_eps0.1']['whitebox']['accuracy']
  assert said['benign_accuracy'] == reference['benign_accuracy']
  assert fgm(said) == fgm(reference)
  for bad_x, bad_y, kwargs, phrase in (
      (x * 255, y, {}, 'outside value_range=(0, 1)'),
      (x, np.eye(K)[y], {}, "pass labels='categorical'"),
      (np.where(x > 0.5, np.nan, x), y, {}, 'NaN or Inf'),
      (x, y, dict(from_logits=False), 'outputs no probabilities')):
    with pytest.raises(InputError) as e:
      tf_pgn.evaluate(logits_model, bad_x, bad_y, **settings, **kwargs)
    _one_line(e, phrase)
