"""The four defenses of the paper as compiled train steps: naive, FGM-AT, PGD-AT and PGN.

Each step is one ``tf.function`` with GradientTape. Baselines share one classifier update on
x_adv = perturb(x, y); PGN (Eq. 4) computes the input gradient, runs G and updates F and G from
the same forward pass with their own Adam optimizers.

Distribution (``tf_pgn.distribute``): the steps run per replica under ``strategy.run``. Every
batch mean is a sum over the replica's examples divided by the global batch, so the optimizers'
all-reduce (a sum over replicas) gives the single-device gradient; the EMA is updated once per
step in cross-replica context.
"""
import contextlib

import keras
import tensorflow as tf

from tf_pgn import models
from tf_pgn.attacks.gradient import fgm_l2, pgd_l2, project_l2
from tf_pgn.config import TrainConfig


def per_example_ce(y, logits):
  return tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits)


def sq_l2(x_adv, x):
  """sum over pixels of (x_adv - x)^2, per example."""
  return tf.reduce_sum(tf.square(x_adv - x), axis=[1, 2, 3])


def cross_entropy(y, logits):
  return tf.reduce_mean(per_example_ce(y, logits))


def mean_sq_l2(x_adv, x):
  """mean over the batch of sum over pixels (x_adv - x)^2: the distance term of Eq. 4."""
  return tf.reduce_mean(sq_l2(x_adv, x))


def _global_batch(x):
  """The batch size summed over replicas (all replicas get equal batches)."""
  replicas = tf.distribute.get_replica_context().num_replicas_in_sync
  return tf.shape(x)[0] * replicas


def _mean(values, global_batch):
  """This replica's share of the mean over the global batch (the whole mean on one device)."""
  return tf.nn.compute_average_loss(tf.cast(values, tf.float32), global_batch_size=global_batch)


# --mixed_precision: bfloat16 compute, float32 variables. bfloat16 has float32's exponent range, so
# neither optimizer needs loss scaling and G's small input gradients do not underflow (float16
# would need both); it runs on CPUs with AVX512-BF16/AMX and on Ampere or newer GPUs.
MIXED_POLICY = 'mixed_bfloat16'


@contextlib.contextmanager
def _dtype_policy(name: str):
  """Layers built inside take Keras dtype policy ``name``; the global policy is restored."""
  old = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy(name)
  try:
    yield
  finally:
    keras.mixed_precision.set_global_policy(old)


def _correct(y, logits):
  return tf.equal(tf.argmax(logits, -1, tf.int32), y)


class AdversarialTrainer:
  """Classifier F (+ its EMA), generator G for PGN, their optimizers and the train step."""

  def __init__(self, cfg: TrainConfig, num_classes: int,
               strategy: tf.distribute.Strategy | None = None):
    self.cfg = cfg
    self.num_classes = num_classes
    self.strategy = strategy or tf.distribute.get_strategy()
    keras.utils.set_random_seed(cfg.seed)
    policy = MIXED_POLICY if cfg.mixed_precision else 'float32'
    with self.strategy.scope():
      with _dtype_policy(policy):
        self.classifier = models.build_classifier(num_classes, cfg.width)
      # The EMA (evaluated and exported) computes in float32 whatever the training policy.
      self.ema_classifier = models.build_classifier(num_classes, cfg.width,
                                                    name='ema_classifier')
      self.ema_classifier.set_weights(self.classifier.get_weights())
      self.opt_f = keras.optimizers.Adam(cfg.lr)
      # Keras 3 optimizers create slots lazily; build them so checkpoints restore into them.
      self.opt_f.build(self.classifier.trainable_variables)
      self.generator = self.opt_g = None
      if cfg.defense == 'pgn':
        with _dtype_policy(policy):
          self.generator = models.build_generator(num_classes, cfg.gen_width)
        if cfg.pgn_zero_init:
          models.zero_output_layer(self.generator)
        self.opt_g = keras.optimizers.Adam(cfg.gen_lr)
        self.opt_g.build(self.generator.trainable_variables)
      self.rng = tf.random.Generator.from_seed(cfg.seed)
    step = self.pgn_train_step if cfg.defense == 'pgn' else self.baseline_train_step
    replica_step = tf.function(step, jit_compile=True) if cfg.jit_compile else step
    self.train_step = tf.function(lambda x, y: self._run_replicated(replica_step, x, y))

  def _run_replicated(self, replica_step, x, y):
    """One optimisation step on every replica, then the EMA; returns the global-batch metrics."""
    out = self.strategy.run(replica_step, (x, y))
    self._update_ema()
    return {k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
            for k, v in out.items()}

  def logits(self, x, training=False):
    """F's logits in float32 (F computes in bfloat16 under --mixed_precision)."""
    return tf.cast(self.classifier(x, training=training), tf.float32)

  # -- baselines ---------------------------------------------------------------------------
  def perturb(self, x, y):
    """x_adv of the baseline defense: x (naive), FGM-L2 or PGD-L2 with random start."""
    cfg = self.cfg
    if cfg.defense == 'fgm':
      return tf.stop_gradient(fgm_l2(self.logits, x, y, cfg.eps))
    if cfg.defense == 'pgd':
      return pgd_l2(self.logits, x, y, cfg.eps, cfg.pgd_step, cfg.pgd_steps, rng=self.rng)
    return x

  def baseline_train_step(self, x, y):
    """min_F (1 - a) CE(F(x), y) + a CE(F(x_adv), y), x_adv a constant (Madry et al. 2018)."""
    n = _global_batch(x)
    x_adv = self.perturb(x, y)
    # naive: x_adv is x, so the adversarial term alone is the clean loss (one forward pass).
    a = self.cfg.adv_coeff if self.cfg.defense != 'naive' else 1.0
    with tf.GradientTape() as tape:
      logits_adv = self.logits(x_adv, training=True)
      loss = a * _mean(per_example_ce(y, logits_adv), n)
      if a < 1.0:
        loss += (1.0 - a) * _mean(per_example_ce(y, self.logits(x, training=True)), n)
    variables = self.classifier.trainable_variables
    self.opt_f.apply(tape.gradient(loss, variables), variables)
    return dict(loss=loss, train_acc=_mean(_correct(y, logits_adv), n),
                pert_l2=_mean(tf.sqrt(sq_l2(x_adv, x)), n))

  # -- PGN ---------------------------------------------------------------------------------
  def generate(self, x, onehot, batch_size=None):
    """x_adv = tanh_box(x, G(grad_x F, x, y)) and F's logits on x (section 3.2, Figure 1),
    projected into the L2 ball of radius ``pgn_eps`` if set; ``batch_size`` is that of the mean
    the raw input gradient is taken of (default this batch)."""
    cfg = self.cfg
    grad_x, logits = models.generator_input_gradient(self.logits, x, onehot, cfg.pgn_grad_input,
                                                     batch_size)
    if not cfg.pgn_grad_through_adv:
      grad_x = tf.stop_gradient(grad_x)  # x_adv then depends on G only: F sees it as a constant
    l = tf.cast(self.generator([grad_x, x, onehot], training=True), tf.float32)
    x_adv = models.tanh_box(x, l)
    if cfg.pgn_eps is not None:
      x_adv = project_l2(x, x_adv, cfg.pgn_eps)
    return x_adv, logits

  def pgn_train_step(self, x, y, train_classifier=True):
    """One step of the minimax game of Eq. 4, both networks updated from one forward pass:

      F: min (1 - a) CE(F(x), y) + a CE(F(x_adv), y)
      G: min -CE(F(x_adv), y) + c_L * mean ||x_adv - x||_2^2,   x_adv = box(x, G(grad_x F, x, y))

    and, unless F differentiates through x_adv, one backward pass: x_adv is then a constant for
    F, so grad_F of G's loss is -grad_F CE(F(x_adv)), and CE(F(x)) is a constant for G. With
    S = loss_G - (1 - a) / a * CE(F(x)):  grad_G S = grad_G loss_G  and  -a grad_F S = grad_F loss_F.
    With ``pgn_gen_steps`` k > 1, G first takes k - 1 steps of its own on the batch.
    """
    cfg, a = self.cfg, self.cfg.adv_coeff
    if train_classifier:
      for _ in range(cfg.pgn_gen_steps - 1):
        self.pgn_train_step(x, y, train_classifier=False)
    one_backward = train_classifier and a > 0 and not cfg.pgn_grad_through_adv
    n = _global_batch(x)
    onehot = tf.one_hot(y, self.num_classes)
    with tf.GradientTape(persistent=not one_backward) as tape:
      x_adv, logits = self.generate(x, onehot, n)
      logits_adv = self.logits(x_adv, training=True)
      ce_adv = _mean(per_example_ce(y, logits_adv), n)
      ce_clean = _mean(per_example_ce(y, logits), n)
      dist = _mean(sq_l2(x_adv, x), n)
      loss_g = -ce_adv + cfg.c_l * dist
      loss_f = a * ce_adv + (1.0 - a) * ce_clean
      joint = loss_g - (1.0 - a) / a * ce_clean if one_backward else None
    g_vars, f_vars = self.generator.trainable_variables, self.classifier.trainable_variables
    if one_backward:
      grads = tape.gradient(joint, g_vars + f_vars)
      grads_g, grads_f = grads[:len(g_vars)], [-a * g for g in grads[len(g_vars):]]
    else:
      grads_g = tape.gradient(loss_g, g_vars)
      grads_f = tape.gradient(loss_f, f_vars) if train_classifier else None
      del tape
    self.opt_g.apply(grads_g, g_vars)
    if train_classifier:
      self.opt_f.apply(grads_f, f_vars)
    return dict(loss=loss_f, gen_loss=loss_g, train_acc=_mean(_correct(y, logits_adv), n),
                clean_acc=_mean(_correct(y, logits), n), pert_l2=_mean(tf.sqrt(sq_l2(x_adv, x)), n),
                pert_sq_l2=dist)

  def _update_ema(self):
    """EMA of F's weights, in cross-replica context (applied to every replica's copy)."""
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
