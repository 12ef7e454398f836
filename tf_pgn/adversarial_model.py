"""``AdversarialModel``: naive training, FGM-AT, PGD-AT or PGN for any Keras classifier, by ``fit``.

The Keras DCGAN pattern (a ``keras.Model`` with its own ``compile`` and ``train_step``): the model
holds the user's classifier F, an EMA copy of it (what ``evaluate``, ``predict`` and
``export_classifier`` use), for PGN a generator G (by default Figure 1's, built for F's input
shape and class count) and an optimizer for each network. Its ``train_step`` is the defense's
step of ``tf_pgn.defenses``, the one the command line's ``Trainer`` runs, followed by the EMA
update; ``fit`` brings the rest: any ``tf.data.Dataset`` of (image, label), validation data,
callbacks (ModelCheckpoint, BackupAndRestore, TensorBoard, EarlyStopping) and ``tf.distribute``.

  model = AdversarialModel(classifier, defense=PGN(c_l=8))
  model.compile(classifier_optimizer=keras.optimizers.Adam(1e-3))
  model.fit(train_ds, epochs=10, validation_data=val_ds)
"""
import keras
import tensorflow as tf

from tf_pgn import defenses, models
from tf_pgn.export import export_saved_model


def _signature(classifier: keras.Model) -> tuple:
  """(input shape without the batch axis, number of classes) of a built Keras classifier."""
  try:
    input_shape, output_shape = classifier.input_shape, classifier.output_shape
  except (AttributeError, ValueError):
    raise ValueError(f'{classifier.name} has no known input shape: build it on keras.Input '
                     '(a functional or Sequential model) before AdversarialModel') from None
  if len(input_shape) != 4 or len(output_shape) != 2 or None in (*input_shape[1:],
                                                                  output_shape[-1]):
    raise ValueError(f'{classifier.name} maps {input_shape} to {output_shape}: expected images '
                     '[N, H, W, C] to logits [N, K]')
  return tuple(input_shape[1:]), int(output_shape[-1])


class AdversarialModel(keras.Model):
  """Trains ``classifier`` (images in [0, 1] -> logits) with ``defense`` under ``fit``.

  Args:
    classifier: a built functional or Sequential Keras model, [N, H, W, C] -> [N, K] logits.
    defense: ``defenses.Naive()`` (default), ``FGM(eps)``, ``PGD(eps, steps)`` or ``PGN(c_l)``.
    generator: PGN's G(grad, x, onehot) -> pre-box perturbation (``models.build_generator``'s
      signature); default Figure 1's generator for the classifier's H x W x C and K.
    ema_decay: decay of the EMA copy of the classifier's weights, updated after every step.
    seed: seed of PGD's random start (default: a non-deterministic one).
  """

  def __init__(self, classifier: keras.Model, defense=None, generator: keras.Model | None = None,
               ema_decay: float = 0.998, seed: int | None = None, **kwargs):
    super().__init__(**kwargs)
    self.defense = defense or defenses.Naive()
    input_shape, self.num_classes = _signature(classifier)
    if generator is not None and not self.defense.uses_generator:
      raise ValueError(f'{type(self.defense).__name__} uses no generator: pass generator only '
                       'with PGN')
    if self.defense.uses_generator:
      generator = self.defense.prepare_generator(
          generator or models.build_generator(self.num_classes, input_shape=input_shape))
    self.classifier, self.generator = classifier, generator
    self.ema_classifier = keras.models.clone_model(classifier)
    self.ema_classifier.set_weights(classifier.get_weights())
    self.ema_classifier.trainable = False
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
    argument passes through. XLA is off unless ``jit_compile=True``."""
    classifier_optimizer = keras.optimizers.get(classifier_optimizer)
    super().compile(optimizer=classifier_optimizer, jit_compile=jit_compile, **kwargs)
    self.classifier_optimizer = classifier_optimizer
    self.generator_optimizer = None
    if self.generator is not None:
      self.generator_optimizer = keras.optimizers.get(generator_optimizer)
      if self.generator_optimizer is classifier_optimizer:
        raise ValueError('the classifier and the generator need optimizers of their own')
    for optimizer, net in ((self.classifier_optimizer, self.classifier),
                           (self.generator_optimizer, self.generator)):
      if optimizer is not None and not optimizer.built:  # so that backups restore into them
        optimizer.build(net.trainable_variables)
    self.players = defenses.Players(self.classifier, self.classifier_optimizer, self.num_classes,
                                    self.generator, self.generator_optimizer, self.rng)

  @property
  def metrics(self):
    return self.step_metrics + self.eval_metrics

  def call(self, x, training=False):
    """The EMA classifier's logits."""
    return self.ema_classifier(x, training=False)

  def train_step(self, data):
    """The defense's step (``tf_pgn.defenses``) on this replica, then the EMA, once per step in
    cross-replica context; logs the running means of the defense's metrics."""
    x, y = _images_labels(data)
    out = self.defense.train_step(self.players, x, y)
    context = tf.distribute.get_replica_context()
    context.merge_call(lambda _: defenses.update_ema(self.ema_classifier, self.classifier,
                                                     self.ema_decay))
    out = context.all_reduce(tf.distribute.ReduceOp.SUM, out)  # shares -> global-batch means
    for metric in self.step_metrics:
      metric.update_state(out[metric.name])
    return {m.name: m.result() for m in self.step_metrics}

  def test_step(self, data):
    """Benign cross-entropy and accuracy of the EMA classifier (what is evaluated and exported)."""
    x, y = _images_labels(data)
    logits = tf.cast(self.ema_classifier(x, training=False), tf.float32)
    loss, accuracy = self.eval_metrics
    loss.update_state(defenses.per_example_ce(y, logits))
    accuracy.update_state(y, logits)
    return {m.name: m.result() for m in self.eval_metrics}

  def export_classifier(self, path: str) -> None:
    """Writes the EMA classifier as a SavedModel (endpoint ``serve``: images -> logits)."""
    export_saved_model(self.ema_classifier, path)


def _images_labels(data):
  """(float32 images, int32 labels [N]) from a batch (x, y) or (x, y, sample_weight)."""
  x, y = data[0], data[1]
  return tf.cast(x, tf.float32), tf.reshape(tf.cast(y, tf.int32), [-1])
