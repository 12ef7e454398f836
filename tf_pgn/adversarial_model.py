"""``AdversarialModel``: naive training, FGM-AT, PGD-AT, FGSM-RS, N-FGSM or PGN for any Keras
classifier, by ``fit``.

The Keras DCGAN pattern (a ``keras.Model`` with its own ``compile`` and ``train_step``): the model
holds the user's classifier F (functional, Sequential or subclassed; never cloned), the EMA of F's
trainable weights as shadow variables (``EMAClassifier``: F with them, what ``evaluate``,
``predict`` and ``export_classifier`` use), for PGN a generator G (by default Figure 1's, built
for F's input shape and class count) and an optimizer for each network. Its ``train_step`` checks
the batch, runs the defense's step of ``tf_pgn.defenses`` (the one the command line's ``Trainer``
runs) and updates the EMA; ``fit`` brings the rest: any ``tf.data.Dataset`` of (image, label),
validation data, callbacks (ModelCheckpoint, BackupAndRestore, TensorBoard, EarlyStopping,
``tf_pgn.callbacks.RobustnessProbe``) and ``tf.distribute``.

The data's conventions are said once, to the model (``tf_pgn.inputs.Conventions``): integer or
one-hot labels, logits or probabilities, the pixel range (budgets on that scale). A bad batch or a
diverged step stops ``fit`` with one line (``tf_pgn.errors.InputError``, ``DivergedError``).

  model = AdversarialModel(classifier, defense=PGN(c_l=8))
  model.compile(classifier_optimizer=keras.optimizers.Adam(1e-3))
  model.fit(train_ds, epochs=10, validation_data=val_ds)
"""
import contextlib
import dataclasses

import keras
import tensorflow as tf

from tf_pgn import defenses, inputs, models
from tf_pgn.errors import DivergedError, InputError
from tf_pgn.export import export_saved_model

# A defense's settings on the images' pixel scale, by the power of a pixel length they carry
# (``Conventions.unit``): budgets and steps are lengths, PGN's c_L weighs a squared length.
_SETTING_POWERS = {'eps': 1, 'step_size': 1, 'c_l': -2}
# The step's logs that are pixel lengths (or, pert_sq_l2, a squared one).
_LOG_POWERS = {'pert_l2': 1, 'pert_linf': 1, 'pert_sq_l2': 2}


class _Untracked:
  """Holds an object out of Keras' attribute tracking: its variables stay its owner's."""

  def __init__(self, obj):
    self.obj = obj


class EMAClassifier(keras.Model):
  """A classifier with the exponential moving average of its trainable weights in place of them.

  The averages are this model's own (non-trainable) variables, shadows of the classifier's
  trainable ones, so they are saved, restored and distributed with the model that holds this one;
  the classifier's other weights (batch-norm statistics, already moving averages) are its own, as
  Keras' optimizer EMA leaves them. Calling it runs the classifier in inference mode on the
  shadows (``keras.StatelessScope``): the classifier's outputs (logits or probabilities, images on
  its own pixel scale), without touching its weights.
  """

  def __init__(self, classifier: keras.Model, **kwargs):
    super().__init__(name=kwargs.pop('name', f'ema_{classifier.name}'), **kwargs)
    self._source = _Untracked(classifier)
    self._averaged = _Untracked(list(classifier.trainable_variables))
    self.shadows = [self._shadow(v) for v in self._averaged.obj]
    self.built = True

  def _shadow(self, variable):
    """A non-trainable variable of this model holding ``variable``'s value."""
    shadow = self.add_weight(shape=variable.shape, dtype=variable.dtype, initializer='zeros',
                             trainable=False, name=variable.path.replace('/', '_'))
    shadow.assign(variable)
    return shadow

  @property
  def classifier(self) -> keras.Model:
    return self._source.obj

  def call(self, x, training=False):
    """The classifier's outputs with the averaged weights, in inference mode."""
    del training  # the averages are only ever evaluated
    with keras.StatelessScope(state_mapping=list(zip(self._averaged.obj, self.shadows))):
      return self.classifier(x, training=False)

  def update(self, decay: float) -> None:
    """shadow <- decay shadow + (1 - decay) weight: ``defenses.update_ema``'s average, in
    cross-replica context."""
    for shadow, w in zip(self.shadows, self._averaged.obj):
      shadow.assign(decay * shadow + (1.0 - decay) * w)

  @contextlib.contextmanager
  def swapped(self):
    """Inside, the classifier holds the averaged weights (to save or export it as a plain
    Keras model); its own are back on leaving, also after an error."""
    own = [w.numpy() for w in self._averaged.obj]
    for shadow, w in zip(self.shadows, self._averaged.obj):
      w.assign(shadow)
    try:
      yield self.classifier
    finally:
      for value, w in zip(own, self._averaged.obj):
        w.assign(value)


def _on_unit_scale(defense, conventions: inputs.Conventions):
  """``defense`` with its pixel-scale settings on the [0, 1] scale its step works on."""
  return dataclasses.replace(defense, **{
      name: conventions.unit(getattr(defense, name), power)
      for name, power in _SETTING_POWERS.items() if getattr(defense, name, None) is not None})


class AdversarialModel(keras.Model):
  """Trains ``classifier`` with ``defense`` under ``fit``.

  Args:
    classifier: a built Keras model (functional, Sequential, or subclassed and called once),
      images [N, H, W, C] -> [N, K] logits (or probabilities, ``from_logits=False``).
    defense: ``defenses.Naive()`` (default), ``FGM``, ``PGD``, ``FGSMRS``, ``NFGSM`` or ``PGN``;
      budgets (eps, step_size) on the images' pixel scale, ``value_range``.
    generator: PGN's G(grad, x, onehot) -> pre-box perturbation (``models.build_generator``'s
      signature); default Figure 1's generator for the classifier's H x W x C and K.
    ema_decay: decay of the EMA of the classifier's weights, updated after every step.
    seed: seed of the random starts (default: a non-deterministic one).
    labels: 'sparse' (class ids [N], default) or 'categorical' (one-hot rows [N, K]).
    from_logits: whether the classifier outputs logits (default) or probabilities.
    value_range: (low, high) of the images' pixels, default (0, 1); e.g. (0, 255).
  """

  def __init__(self, classifier: keras.Model, defense=None, generator: keras.Model | None = None,
               ema_decay: float = 0.998, seed: int | None = None, labels: str = 'sparse',
               from_logits: bool = True, value_range=(0.0, 1.0), **kwargs):
    super().__init__(**kwargs)
    self.conventions = inputs.Conventions(labels, from_logits, value_range)
    self.defense = defense or defenses.Naive()
    self.image_shape, self.num_classes = inputs.classifier_signature(classifier, from_logits)
    if not 0.0 <= ema_decay < 1.0:
      raise InputError(f'ema_decay={ema_decay} must lie in [0, 1): e.g. 0.998')
    if generator is not None and not self.defense.uses_generator:
      raise InputError(f'{type(self.defense).__name__} uses no generator: pass generator only '
                       'with PGN')
    if self.defense.uses_generator:
      generator = generator or models.build_generator(self.num_classes,
                                                      input_shape=self.image_shape)
      inputs.check_generator(generator, self.image_shape, self.num_classes)
      generator = self.defense.prepare_generator(generator)
    self.classifier, self.generator = classifier, generator
    self.ema_classifier = EMAClassifier(classifier)
    self.ema_decay = ema_decay
    self.rng = (tf.random.Generator.from_seed(seed) if seed is not None
                else tf.random.Generator.from_non_deterministic_state())
    self.step_metrics = [keras.metrics.Mean(name=name) for name in self.defense.metrics]
    self.eval_metrics = [keras.metrics.Mean(name='loss'),
                         keras.metrics.SparseCategoricalAccuracy(name='accuracy')]
    self.built = True

  def compile(self, classifier_optimizer='adam', generator_optimizer='adam', jit_compile=False,
              **kwargs):
    """``classifier_optimizer`` updates F (it is also ``self.optimizer``, which learning-rate
    callbacks act on), ``generator_optimizer`` G (PGN only); any other ``keras.Model.compile``
    argument passes through. ``jit_compile=True`` compiles the defense's step with XLA, as the
    command line's ``--jit_compile`` does; the batch checks run outside it (XLA drops asserts)."""
    classifier_optimizer = keras.optimizers.get(classifier_optimizer)
    super().compile(optimizer=classifier_optimizer, jit_compile=False, **kwargs)
    self.classifier_optimizer = classifier_optimizer
    self.generator_optimizer = None
    if self.generator is not None:
      self.generator_optimizer = keras.optimizers.get(generator_optimizer)
      if self.generator_optimizer is classifier_optimizer:
        raise InputError('the classifier and the generator need optimizers of their own')
    for optimizer, net in ((self.classifier_optimizer, self.classifier),
                           (self.generator_optimizer, self.generator)):
      if optimizer is not None and not optimizer.built:  # so that backups restore into them
        optimizer.build(net.trainable_variables)
    self.players = defenses.Players(inputs.UnitLogits(self.classifier, self.conventions),
                                    self.classifier_optimizer, self.num_classes, self.generator,
                                    self.generator_optimizer, self.rng)
    defense = _on_unit_scale(self.defense, self.conventions)
    step = lambda x, y: defense.train_step(self.players, x, y)
    self._defense_step = tf.function(step, jit_compile=True) if jit_compile else step

  @property
  def metrics(self):
    return self.step_metrics + self.eval_metrics

  def call(self, x, training=False):
    """The EMA classifier's outputs."""
    return self.ema_classifier(x, training=False)

  def fit(self, *args, callbacks=None, **kwargs):
    """``keras.Model.fit``; a bad batch or a diverged step raises one line (``InputError``,
    ``DivergedError``). Callbacks that write epoch logs (``RobustnessProbe``) run before the
    others, so that EarlyStopping, ModelCheckpoint and TensorBoard read their numbers."""
    if isinstance(callbacks, (list, tuple)):
      callbacks = sorted(callbacks, key=lambda c: not getattr(c, 'writes_epoch_logs', False))
    with inputs.reported():
      return super().fit(*args, callbacks=callbacks, **kwargs)

  def evaluate(self, *args, **kwargs):
    """``keras.Model.evaluate``; a bad batch raises one line (``InputError``)."""
    with inputs.reported():
      return super().evaluate(*args, **kwargs)

  def _checked(self, data):
    """(float32 images on their pixel scale, int32 class ids [N], sample weights or None) of a
    batch (x, y) or (x, y, sample_weight), checked (``tf_pgn.inputs``)."""
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    x = inputs.check_images(x, self.image_shape, self.conventions.value_range)
    y = inputs.sparse_labels(y, self.num_classes, self.conventions.labels, tf.shape(x)[0])
    return x, y, sample_weight

  def train_step(self, data):
    """The defense's step (``tf_pgn.defenses``) on this replica on [0, 1] images, then the EMA,
    once per step in cross-replica context; logs the running means of the defense's metrics
    (pixel lengths on the images' scale) and stops at a NaN or Inf one."""
    x, y, sample_weight = self._checked(data)
    if sample_weight is not None:
      raise InputError('sample weights (class_weight= or (x, y, sample_weight) batches) are not '
                       'applied by the adversarial step: drop them and resample the data instead '
                       '(tf.data.Dataset.rejection_resample or sample_from_datasets)')
    out = self._defense_step(self.conventions.to_unit(x), y)
    context = tf.distribute.get_replica_context()
    context.merge_call(lambda _: self.ema_classifier.update(self.ema_decay))
    out = context.all_reduce(tf.distribute.ReduceOp.SUM, out)  # shares -> global-batch means
    out = {k: self.conventions.unit(v, -_LOG_POWERS.get(k, 0)) for k, v in out.items()}
    names = sorted(out)
    inputs.assert_that(
        tf.reduce_all([tf.math.is_finite(out[k]) for k in names]), DivergedError,
        'training diverged at step {}: ' + ', '.join(f'{k} {{}}' for k in names) + '; lower the '
        'learning rate (or, for PGN, raise c_l) and resume from the last checkpoint',
        [self.classifier_optimizer.iterations] + [out[k] for k in names])
    for metric in self.step_metrics:
      metric.update_state(out[metric.name])
    return {m.name: m.result() for m in self.step_metrics}

  def test_step(self, data):
    """Benign cross-entropy and accuracy of the EMA classifier (what is evaluated and exported),
    weighted by the batches' sample weights if they have them."""
    x, y, sample_weight = self._checked(data)
    logits = self.conventions.logits(self.ema_classifier(x, training=False))
    loss, accuracy = self.eval_metrics
    loss.update_state(defenses.per_example_ce(y, logits), sample_weight=sample_weight)
    accuracy.update_state(y, logits, sample_weight=sample_weight)
    return {m.name: m.result() for m in self.eval_metrics}

  def export_classifier(self, path: str) -> None:
    """Writes the classifier with the EMA weights as a SavedModel (endpoint ``serve``: images ->
    its outputs, on the data's conventions)."""
    with self.ema_classifier.swapped() as classifier:
      export_saved_model(classifier, path)
