"""The four defenses of the paper as compiled train steps: naive, FGM-AT, PGD-AT and PGN.

Each step is one ``tf.function`` with GradientTape. Baselines share one classifier update on
x_adv = perturb(x, y); PGN (Eq. 4) computes the input gradient, runs G and updates F and G from
the same forward pass with their own Adam optimizers.
"""
import keras
import tensorflow as tf

from tf_pgn import models
from tf_pgn.attacks.gradient import fgm_l2, pgd_l2
from tf_pgn.config import TrainConfig


def cross_entropy(y, logits):
  return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))


def accuracy(y, logits):
  return tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, -1, tf.int32), y), tf.float32))


def mean_sq_l2(x_adv, x):
  """mean over the batch of sum over pixels (x_adv - x)^2: the distance term of Eq. 4."""
  return tf.reduce_mean(tf.reduce_sum(tf.square(x_adv - x), axis=[1, 2, 3]))


def mean_l2(x_adv, x):
  return tf.reduce_mean(tf.sqrt(tf.reduce_sum(tf.square(x_adv - x), axis=[1, 2, 3])))


class AdversarialTrainer:
  """Classifier F (+ its EMA), generator G for PGN, their optimizers and the train step."""

  def __init__(self, cfg: TrainConfig, num_classes: int):
    self.cfg = cfg
    self.num_classes = num_classes
    keras.utils.set_random_seed(cfg.seed)
    self.classifier = models.build_classifier(num_classes, cfg.width)
    self.ema_classifier = models.build_classifier(num_classes, cfg.width, name='ema_classifier')
    self.ema_classifier.set_weights(self.classifier.get_weights())
    self.opt_f = keras.optimizers.Adam(cfg.lr)
    # Keras 3 optimizers create slots lazily; build them so checkpoints restore into them.
    self.opt_f.build(self.classifier.trainable_variables)
    self.generator = self.opt_g = None
    if cfg.defense == 'pgn':
      self.generator = models.build_generator(num_classes, cfg.gen_width)
      self.opt_g = keras.optimizers.Adam(cfg.gen_lr)
      self.opt_g.build(self.generator.trainable_variables)
    self.rng = tf.random.Generator.from_seed(cfg.seed)
    step = self.pgn_train_step if cfg.defense == 'pgn' else self.baseline_train_step
    self.train_step = tf.function(step, jit_compile=cfg.jit_compile)

  # -- baselines ---------------------------------------------------------------------------
  def perturb(self, x, y):
    """x_adv of the baseline defense: x (naive), FGM-L2 or PGD-L2 with random start."""
    cfg = self.cfg
    if cfg.defense == 'fgm':
      return tf.stop_gradient(fgm_l2(self.classifier, x, y, cfg.eps))
    if cfg.defense == 'pgd':
      return pgd_l2(self.classifier, x, y, cfg.eps, cfg.pgd_step, cfg.pgd_steps, rng=self.rng)
    return x

  def baseline_train_step(self, x, y):
    """min_F (1 - a) CE(F(x), y) + a CE(F(x_adv), y), x_adv a constant (Madry et al. 2018)."""
    x_adv = self.perturb(x, y)
    # naive: x_adv is x, so the adversarial term alone is the clean loss (one forward pass).
    a = self.cfg.adv_coeff if self.cfg.defense != 'naive' else 1.0
    with tf.GradientTape() as tape:
      logits_adv = self.classifier(x_adv, training=True)
      loss = a * cross_entropy(y, logits_adv)
      if a < 1.0:
        loss += (1.0 - a) * cross_entropy(y, self.classifier(x, training=True))
    variables = self.classifier.trainable_variables
    self.opt_f.apply(tape.gradient(loss, variables), variables)
    self._update_ema()
    return dict(loss=loss, train_acc=accuracy(y, logits_adv), pert_l2=mean_l2(x_adv, x))

  # -- PGN ---------------------------------------------------------------------------------
  def generate(self, x, onehot):
    """x_adv = tanh_box(x, G(grad_x F, x, y)) and F's logits on x (section 3.2, Figure 1)."""
    grad_x, logits = models.true_class_gradient(self.classifier, x, onehot)
    if not self.cfg.pgn_grad_through_adv:
      grad_x = tf.stop_gradient(grad_x)  # x_adv then depends on G only: F sees it as a constant
    l = self.generator([grad_x, x, onehot], training=True)
    return models.tanh_box(x, l), logits

  def pgn_train_step(self, x, y, train_classifier=True):
    """One step of the minimax game of Eq. 4, both networks updated from one forward pass:

      F: min (1 - a) CE(F(x), y) + a CE(F(x_adv), y)
      G: min -CE(F(x_adv), y) + c_L * mean ||x_adv - x||_2^2,   x_adv = box(x, G(grad_x F, x, y))
    """
    cfg = self.cfg
    onehot = tf.one_hot(y, self.num_classes)
    with tf.GradientTape(persistent=True) as tape:
      x_adv, logits = self.generate(x, onehot)
      logits_adv = self.classifier(x_adv, training=True)
      ce_adv = cross_entropy(y, logits_adv)
      dist = mean_sq_l2(x_adv, x)
      loss_g = -ce_adv + cfg.c_l * dist
      loss_f = cfg.adv_coeff * ce_adv + (1.0 - cfg.adv_coeff) * cross_entropy(y, logits)
    g_vars, f_vars = self.generator.trainable_variables, self.classifier.trainable_variables
    grads_g = tape.gradient(loss_g, g_vars)
    grads_f = tape.gradient(loss_f, f_vars) if train_classifier else None
    del tape
    self.opt_g.apply(grads_g, g_vars)
    if train_classifier:
      self.opt_f.apply(grads_f, f_vars)
      self._update_ema()
    return dict(loss=loss_f, gen_loss=loss_g, train_acc=accuracy(y, logits_adv),
                clean_acc=accuracy(y, logits), pert_l2=mean_l2(x_adv, x), pert_sq_l2=dist)

  def _update_ema(self):
    d = self.cfg.ema_decay
    for ema_w, w in zip(self.ema_classifier.weights, self.classifier.weights):
      ema_w.assign(d * ema_w + (1.0 - d) * w)

  # -- checkpointing -----------------------------------------------------------------------
  def trackables(self) -> dict:
    """Everything a checkpoint must hold to resume bit-identically (besides epoch/step)."""
    objs = dict(classifier=self.classifier, ema_classifier=self.ema_classifier,
                opt_f=self.opt_f, rng=self.rng)
    if self.generator is not None:
      objs.update(generator=self.generator, opt_g=self.opt_g)
    return objs
