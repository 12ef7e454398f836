"""Keras callbacks for ``AdversarialModel.fit``: ``RobustnessProbe``, the command line's per-epoch
attack probe for library users.

  probe = RobustnessProbe(x_val[:256], y_val[:256], 'pgd', eps=0.5, norm='l2', steps=10)
  model.fit(train_ds, epochs=30, callbacks=[
      probe, keras.callbacks.EarlyStopping('val_robust_accuracy', patience=5, mode='max')])
"""
import keras
import tensorflow as tf

from tf_pgn import defenses, inputs, perturbation
from tf_pgn.adversarial_model import AdversarialModel
from tf_pgn.errors import InputError

ATTACKS = ('pgd', 'fgm')


class RobustnessProbe(keras.callbacks.Callback):
  """Writes the accuracy of an ``AdversarialModel``'s EMA classifier under a white-box attack on
  held-out images into each epoch's logs (``val_robust_accuracy``), for the callbacks after it:
  TensorBoard, EarlyStopping and ModelCheckpoint can monitor it. ``AdversarialModel.fit`` runs
  it before the other callbacks wherever it is listed (under another ``fit`` list it first).

  Args:
    x, y: the held-out images and labels, on the model's conventions (``value_range``,
      ``labels``); checked as a batch is.
    attack: 'pgd' (``steps`` projected ascent steps on the cross-entropy from a uniform random
      start in the eps-ball, ``tf_pgn.perturbation.gradient_ascent``) or 'fgm' (one step of eps
      from x).
    eps: the budget, on the images' pixel scale.
    norm: 'l2' or 'linf'.
    steps, step_size: PGD's; ``step_size`` defaults to ``defenses.PGD``'s (eps / 4 at Linf,
      eps / steps * 5/3 at L2).
    every: probes after every ``every``-th epoch; the others' logs lack the number, and
      EarlyStopping and ModelCheckpoint skip them with a warning.
    batch_size: images attacked at once.
    seed: of PGD's random start, the same at every probe, so that epochs compare.
    name: the logs' key.
  """
  writes_epoch_logs = True  # AdversarialModel.fit runs it before the callbacks that read logs

  def __init__(self, x, y, attack: str = 'pgd', *, eps: float, norm: str = 'l2', steps: int = 10,
               step_size: float | None = None, every: int = 1, batch_size: int = 256,
               seed: int = 0, name: str = 'val_robust_accuracy'):
    super().__init__()
    if attack not in ATTACKS:
      raise InputError(f'RobustnessProbe: unknown attack={attack!r}: use one of '
                       f'{", ".join(ATTACKS)}')
    for key, value in (('every', every), ('batch_size', batch_size)):
      if not (isinstance(value, int) and value >= 1):
        raise InputError(f'RobustnessProbe: {key}={value!r} must be a positive integer')
    # The budget's settings, checked as the defenses' are; FGM is one step of eps from x.
    self.budget = (defenses.PGD(eps, steps, step_size, norm=norm) if attack == 'pgd'
                   else defenses.FGM(eps, norm=norm))
    self.attack, self.x, self.y = attack, x, y
    self.every, self.batch_size, self.seed, self.name = every, batch_size, seed, name
    self._data = self._rng = self._correct = None

  def on_train_begin(self, logs=None):
    """Checks the held-out data against the model and builds the attack on its EMA classifier."""
    model = self.model
    if not isinstance(model, AdversarialModel):
      raise InputError(f'RobustnessProbe probes an AdversarialModel\'s EMA classifier, not a '
                       f'{type(model).__name__}: use tf_pgn.evaluate for another model')
    c = model.conventions
    self._data = inputs.check_arrays(self.x, self.y, model.num_classes, c, model.image_shape)
    target = inputs.UnitLogits(model.ema_classifier, c)
    pgd = self.attack == 'pgd'
    eps = c.unit(self.budget.eps)
    step, steps = (c.unit(self.budget.step), self.budget.steps) if pgd else (eps, 1)
    rng = tf.random.Generator.from_seed(self.seed) if pgd else None

    @tf.function
    def correct(x, y):
      x_adv = perturbation.gradient_ascent(target, c.to_unit(x), y, eps, step, steps,
                                           self.budget.norm, rng=rng)
      return tf.reduce_sum(tf.cast(tf.equal(tf.argmax(target(x_adv), -1, tf.int32), y), tf.int32))

    self._rng, self._correct = rng, correct

  def robust_accuracy(self) -> float:
    """The EMA classifier's accuracy on the attacked held-out images, from the seed's start."""
    if self._rng is not None:
      self._rng.reset_from_seed(self.seed)
    x, y = self._data
    hits = sum(int(self._correct(x[i:i + self.batch_size], y[i:i + self.batch_size]))
               for i in range(0, len(y), self.batch_size))
    return hits / max(len(y), 1)

  def on_epoch_end(self, epoch, logs=None):
    if logs is not None and (epoch + 1) % self.every == 0:
      logs[self.name] = self.robust_accuracy()
