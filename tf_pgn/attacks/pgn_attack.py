"""The perturbation generator network used as an attack on a fixed classifier (Figure 3).

Section 4.3 of the PGN paper trains a fresh generator G (Figure 1) against a classifier that no
longer changes, with the generator's half of the minimax loss (Eq. 4):

  min_G  -CE(F(x_adv), y) + c_L * mean_batch ||x_adv - x||_2^2,
  x_adv = tanh_box(x, G(grad, x, y)),  grad = d/dx mean_batch softmax(F(x))_y  (a constant),

and reports accuracy against the mean L2 norm of the perturbation, one point per c_L. Only G is
differentiated, so F may be any callable (a Keras model or a reloaded SavedModel).

``loss='margin'`` replaces -CE by C&W's clipped logit margin (Carlini & Wagner 2017, f_6),
mean max(Z_y - max_{j != y} Z_j, -MARGIN_KAPPA): CE keeps rewarding an example already
misclassified, which spends L2 that lowers no accuracy; the margin stops rewarding it once it is
misclassified by MARGIN_KAPPA, so the distance term takes that L2 back.
"""
import time

import keras
import numpy as np
import tensorflow as tf

from tf_pgn import models
from tf_pgn.attacks.common import margin
from tf_pgn.perturbation import project_l2
from tf_pgn.defenses import cross_entropy, mean_sq_l2
from tf_pgn.progress import DEFAULT_SECONDS, Progress

__all__ = ['LOSSES', 'MARGIN_KAPPA', 'PGNAttack']

# G's adversarial term, to be minimised: the paper's -CE, or the clipped logit margin.
LOSSES = ('ce', 'margin')
# How far past the decision boundary (in logits) the margin loss still rewards an example.
MARGIN_KAPPA = 1.0


class PGNAttack:
  """A generator trained against the fixed classifier ``model`` with distance weight ``c_l``.

  Args:
    model: callable mapping float32 [N, H, W, C] images in [0, 1] to logits; never trained.
    num_classes: number of classes of ``model``.
    c_l: weight of the squared L2 distance in G's loss; smaller values give larger
      perturbations (the attack's budget).
    gen_width: generator width multiplier (Figure 1 channels x width).
    lr: Adam learning rate of G (the paper's 5e-4).
    batch_size: training batch size, and the batch the input gradient is scaled to.
    seed: seeds G's initial weights and the order of the training examples.
    grad_input: how G's gradient input is formed (``models.generator_input_gradient``).
    eps: if set, x_adv is projected into the L2 ball of this radius (a hard budget, so that
      PGN compares with PGD at equal eps).
    input_shape: H, W, C of the images.
    loss: G's adversarial term, one of LOSSES: 'ce' (Eq. 4) or 'margin' (module docstring).
  """

  def __init__(self, model, num_classes: int, c_l: float, gen_width: float = 0.25,
               lr: float = 5e-4, batch_size: int = 128, seed: int = 1234,
               grad_input: str = 'raw', eps: float | None = None,
               input_shape: tuple = (32, 32, 3), loss: str = 'ce'):
    if loss not in LOSSES:
      raise ValueError(f'unknown PGN attack loss {loss!r}: use one of {", ".join(LOSSES)}')
    keras.utils.set_random_seed(seed)
    self.loss = loss
    self.model = model
    self.num_classes = num_classes
    self.c_l = float(c_l)
    self.batch_size = batch_size
    self.seed = seed
    self.grad_input, self.eps = grad_input, eps
    self.generator = models.build_generator(num_classes, gen_width, 'pgn_attack_generator',
                                            input_shape)
    # The attack starts at x_adv = x (a He-initialised G starts at L2 ~ 5, which one epoch of
    # training does not undo).
    models.zero_output_layer(self.generator)
    self.optimizer = keras.optimizers.Adam(lr)
    self.optimizer.build(self.generator.trainable_variables)
    self._train_step = tf.function(self.train_step, reduce_retracing=True)
    # The attack for ``run_attack``: compiled once, retraced only for another classifier.
    self.attack_fn = tf.function(self.perturb, reduce_retracing=True)

  def perturb(self, model, x, y):
    """x_adv = tanh_box(x, G(grad, x, onehot(y))), grad the (constant) input gradient of the
    true-class probability of ``model`` (section 3.1), formed as ``grad_input`` says; projected
    into the eps-ball if ``eps``.

    The raw gradient is of a batch-mean probability, so it scales as 1 / batch size; it is taken
    as a mean over ``batch_size`` examples so that G sees the scale it was trained on whatever
    the number of examples passed (a last partial batch, the runner's batch size).
    """
    onehot = tf.one_hot(y, self.num_classes)
    grad = tf.stop_gradient(models.generator_input_gradient(
        model, x, onehot, self.grad_input, self.batch_size)[0])
    x_adv = models.tanh_box(x, self.generator([grad, x, onehot]))
    return x_adv if self.eps is None else project_l2(x, x_adv, self.eps)

  def train_step(self, x, y):
    """One Adam step of G on -CE(F(x_adv), y) + c_L * mean ||x_adv - x||^2 (Eq. 4, G's side),
    or with the clipped margin in place of -CE."""
    with tf.GradientTape() as tape:
      x_adv = self.perturb(self.model, x, y)
      logits = self.model(x_adv)
      ce_adv = cross_entropy(y, logits)
      adversarial = (-ce_adv if self.loss == 'ce' else tf.reduce_mean(
          tf.maximum(margin(logits, tf.cast(y, tf.int32)), -MARGIN_KAPPA)))
      sq_l2 = mean_sq_l2(x_adv, x)
      loss = adversarial + self.c_l * sq_l2
    variables = self.generator.trainable_variables
    self.optimizer.apply(tape.gradient(loss, variables), variables)
    return {'loss': loss, 'ce_adv': ce_adv, 'sq_l2': sq_l2}

  def fit(self, x, y, epochs: int = 1, progress_desc=None,
          progress_seconds=DEFAULT_SECONDS) -> list:
    """Trains G on float32 images ``x`` in [0, 1] and labels ``y``, reshuffled every epoch;
    progress shown as ``progress_desc`` (``tf_pgn.progress``) if given.

    Returns one dict per epoch: the epoch's mean loss, CE on x_adv, squared L2, and seconds.
    """
    history = []
    for epoch in range(epochs):
      order = np.random.default_rng([self.seed, epoch]).permutation(len(y))
      batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
      start = time.perf_counter()
      sums = {}
      with Progress(f'{progress_desc} epoch {epoch + 1}', len(batches), unit='batch',
                    every_seconds=progress_seconds, enabled=bool(progress_desc)) as bar:
        for idx in batches:
          for k, v in self._train_step(tf.constant(x[idx]), tf.constant(y[idx])).items():
            sums[k] = sums.get(k, 0.0) + float(v) * len(idx)
          bar.update(1)
      history.append(dict({k: v / len(y) for k, v in sums.items()}, epoch=epoch + 1,
                          seconds=time.perf_counter() - start))
    return history
