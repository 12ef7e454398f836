"""The defenses as train steps: the paper's naive, FGM-AT, PGD-AT and PGN, and the fast
single-step defenses of the Linf literature, FGSM-RS and N-FGSM.

A defense is a small frozen dataclass (``Naive()``, ``FGM(eps)``, ``PGD(eps, steps)``,
``FGSMRS(eps)``, ``NFGSM(eps)``, ``PGN(c_l)``) whose ``train_step(players, x, y)`` is one
optimisation step on one batch with GradientTape. Each budgeted defense has a ``norm``, 'l2' (the
paper's) or 'linf', whose steps come from ``tf_pgn.perturbation``. A defense knows no
architecture: the networks and their optimizers come in ``Players``. Baselines share one
classifier update on x_adv = perturb(x, y); PGN (Eq. 4) computes the input gradient, runs G and
updates F and G from the same forward pass with their own optimizers. The
same steps run in the command line's loop (``AdversarialTrainer``, ``tf_pgn.trainer``) and in
``model.fit`` (``tf_pgn.adversarial_model.AdversarialModel``).

Distribution (``tf_pgn.distribute``): the steps run per replica under ``strategy.run``. Every
batch mean is a sum over the replica's examples divided by the global batch, so the optimizers'
all-reduce (a sum over replicas) gives the single-device gradient; the EMA is updated once per
step in cross-replica context.
"""
import contextlib
import dataclasses
from typing import ClassVar

import keras
import tensorflow as tf

from tf_pgn import models
from tf_pgn import perturbation
from tf_pgn import precision
from tf_pgn.config import GRAD_INPUTS, NORMS, TrainConfig


def per_example_ce(y, logits):
  return tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits)


def sq_l2(x_adv, x):
  """sum over pixels of (x_adv - x)^2, per example."""
  return tf.reduce_sum(tf.square(x_adv - x), axis=list(range(1, x.shape.rank)))


def max_abs(x_adv, x):
  """max over pixels of |x_adv - x|, per example: the Linf size of the perturbation."""
  return tf.reduce_max(tf.abs(x_adv - x), axis=list(range(1, x.shape.rank)))


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


@dataclasses.dataclass
class Players:
  """What a train step plays with: the two players of Eq. 4's game, F and (PGN only) G, each
  with its optimizer, F's number of classes, and the random generator of PGD's start."""
  classifier: keras.Model
  classifier_optimizer: keras.optimizers.Optimizer
  num_classes: int
  generator: keras.Model | None = None
  generator_optimizer: keras.optimizers.Optimizer | None = None
  rng: tf.random.Generator | None = None

  def logits(self, x, training=False):
    """F's logits in float32 (F computes in bfloat16 under ``tf_pgn.precision``'s policy)."""
    return tf.cast(self.classifier(x, training=training), tf.float32)


# -- baselines -------------------------------------------------------------------------------
class _Baseline:
  """The baselines' step; a subclass says how x_adv is made (``perturb``)."""
  uses_generator: ClassVar[bool] = False
  metrics: ClassVar[tuple] = ('loss', 'train_acc', 'pert_l2', 'pert_linf')
  adv_coeff = 1.0

  def train_step(self, players: Players, x, y) -> dict:
    """min_F (1 - a) CE(F(x), y) + a CE(F(x_adv), y), x_adv a constant (Madry et al. 2018).

    Returns this replica's share of the global-batch means of the loss, the accuracy on x_adv and
    the L2 norm of x_adv - x."""
    n = _global_batch(x)
    x_adv = self.perturb(players, x, y)
    a = self.adv_coeff
    with tf.GradientTape() as tape:
      logits_adv = players.logits(x_adv, training=True)
      loss = a * _mean(per_example_ce(y, logits_adv), n)
      if a < 1.0:
        loss += (1.0 - a) * _mean(per_example_ce(y, players.logits(x, training=True)), n)
    variables = players.classifier.trainable_variables
    players.classifier_optimizer.apply(tape.gradient(loss, variables), variables)
    return dict(loss=loss, train_acc=_mean(_correct(y, logits_adv), n),
                pert_l2=_mean(tf.sqrt(sq_l2(x_adv, x)), n), pert_linf=_mean(max_abs(x_adv, x), n))


@dataclasses.dataclass(frozen=True)
class Naive(_Baseline):
  """Standard training, min_F CE(F(x), y): x_adv is x, so the adversarial term alone is the clean
  loss (one forward pass)."""

  def perturb(self, players, x, y):
    del players, y
    return x


def _check_budget(defense, *names) -> None:
  """Refuses, at construction, a norm that is not one and budgets that are not positive."""
  if defense.norm not in NORMS:
    raise ValueError(f'{type(defense).__name__}: unknown norm={defense.norm!r}: use one of '
                     f'{", ".join(NORMS)}')
  for name in ('eps',) + names:
    value = getattr(defense, name)
    if value is not None and not value > 0:
      raise ValueError(f'{type(defense).__name__}: {name}={value} must be positive')
  if not 0.0 <= defense.adv_coeff <= 1.0:
    raise ValueError(f'{type(defense).__name__}: adv_coeff={defense.adv_coeff} must lie in [0, 1]')


@dataclasses.dataclass(frozen=True)
class FGM(_Baseline):
  """FGM-AT (Goodfellow et al. 2015): x_adv = clip(x + eps d), d = g / ||g||_2 at L2 and sign(g)
  at Linf (FGSM-AT, no random start), g = grad_x CE(F(x), y); F's loss weighs CE on x_adv by
  ``adv_coeff``, CE on x by 1 - adv_coeff."""
  eps: float = 0.02
  adv_coeff: float = 1.0
  norm: str = 'l2'

  def __post_init__(self):
    _check_budget(self)

  def perturb(self, players, x, y):
    return tf.stop_gradient(perturbation.fgm(players.logits, x, y, self.eps, self.norm))


@dataclasses.dataclass(frozen=True)
class PGD(_Baseline):
  """PGD-AT (Madry et al. 2018): ``steps`` projected ascent steps from a uniform random start in
  the eps-ball; ``step_size`` defaults to the authors' eps / steps * 5/3 at L2 and to Madry's
  eps / 4 at Linf (2/255 at 8/255)."""
  eps: float = 0.02
  steps: int = 10
  step_size: float | None = None
  adv_coeff: float = 1.0
  norm: str = 'l2'

  def __post_init__(self):
    _check_budget(self, 'steps', 'step_size')

  @property
  def step(self) -> float:
    if self.step_size is not None:
      return self.step_size
    return self.eps / 4.0 if self.norm == 'linf' else self.eps / self.steps * 5.0 / 3.0

  def perturb(self, players, x, y):
    return perturbation.gradient_ascent(players.logits, x, y, self.eps, self.step, self.steps,
                                        self.norm, rng=players.rng)


@dataclasses.dataclass(frozen=True)
class FGSMRS(_Baseline):
  """FGSM-RS (Wong, Rice & Kolter 2020, "Fast is better than free"): one ascent step of
  ``step_scale`` eps (their alpha 1.25 eps) from a uniform random start in the eps-ball, projected
  back into it."""
  eps: float = 8.0 / 255.0
  step_scale: float = TrainConfig.fgsm_rs_step
  adv_coeff: float = 1.0
  norm: str = 'linf'

  def __post_init__(self):
    _check_budget(self, 'step_scale')

  def perturb(self, players, x, y):
    return perturbation.gradient_ascent(players.logits, x, y, self.eps,
                                        self.step_scale * self.eps, 1, self.norm,
                                        rng=players.rng)


@dataclasses.dataclass(frozen=True)
class NFGSM(_Baseline):
  """N-FGSM (de Jorge et al. 2022, "Make some noise"): one ascent step of eps from a uniform
  noise of ``noise_scale`` eps (their k = 2), not projected back into the eps-ball: x_adv - x may
  reach (noise_scale + 1) eps, by design."""
  eps: float = 8.0 / 255.0
  noise_scale: float = TrainConfig.n_fgsm_noise
  adv_coeff: float = 1.0
  norm: str = 'linf'

  def __post_init__(self):
    _check_budget(self, 'noise_scale')

  def perturb(self, players, x, y):
    return perturbation.gradient_ascent(players.logits, x, y, self.eps, self.eps, 1, self.norm,
                                        rng=players.rng, start_radius=self.noise_scale * self.eps,
                                        project=False)


# -- PGN -------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class PGN:
  """The perturbation generator network's minimax game (Eq. 4), with the levers of G as an
  adversary: ``grad_input`` (G's gradient input, ``models.generator_input_gradient``), ``gen_steps``
  G updates per F update, ``zero_init`` (G's output layer zeroed at the start: x_adv = x), ``eps``
  and ``norm`` (the budget: at L2 x_adv is projected into the eps-ball, None: no budget; at Linf
  x_adv = clip(x + eps tanh(l), 0, 1), eps required) and ``grad_through_adv`` (F's update also
  differentiates through x_adv and the input gradient, as the authors' code does). The defaults
  are the command line's (``TrainConfig``): the measured winners, not always the paper's."""
  c_l: float = TrainConfig.c_l
  adv_coeff: float = TrainConfig.adv_coeff
  grad_input: str = TrainConfig.pgn_grad_input
  gen_steps: int = TrainConfig.pgn_gen_steps
  zero_init: bool = TrainConfig.pgn_zero_init
  eps: float | None = TrainConfig.pgn_eps
  grad_through_adv: bool = TrainConfig.pgn_grad_through_adv
  norm: str = TrainConfig.norm
  uses_generator: ClassVar[bool] = True
  metrics: ClassVar[tuple] = ('loss', 'gen_loss', 'train_acc', 'clean_acc', 'pert_l2',
                              'pert_sq_l2', 'pert_linf', 'pert_fgm_cos')

  def __post_init__(self):
    if self.norm == 'linf' and self.eps is None:
      raise ValueError('PGN: norm=linf needs a budget: give eps (e.g. eps=8/255)')
    _check_budget(self, 'gen_steps')
    if not self.c_l >= 0:
      raise ValueError(f'PGN: c_l={self.c_l} is negative: give a value >= 0')
    if self.grad_input not in GRAD_INPUTS:
      raise ValueError(f'PGN: unknown grad_input={self.grad_input!r}: use one of '
                       f'{", ".join(GRAD_INPUTS)}')

  def prepare_generator(self, generator: keras.Model) -> keras.Model:
    """G at the start of training: its output layer zeroed if ``zero_init``."""
    if self.zero_init:
      models.zero_output_layer(generator)
    return generator

  def generate(self, players: Players, x, onehot, batch_size=None):
    """x_adv = tanh_box(x, G(grad_x F, x, y)) and F's logits on x (section 3.2, Figure 1),
    projected into the L2 ball of radius ``eps`` if set; at Linf x_adv = clip(x + eps tanh(G(...)),
    0, 1), G's output read as a direction in the eps-box; ``batch_size`` is that of the mean the
    raw input gradient is taken of (default this batch). F runs in training mode: this forward
    pass also gives F's clean loss."""
    x_adv, logits, _ = self._generate(players, x, onehot, batch_size)
    return x_adv, logits

  def _generate(self, players: Players, x, onehot, batch_size=None):
    """``generate``'s x_adv and logits, and G's gradient input (the true class's: its negative
    points where the loss rises)."""
    grad_x, logits = models.generator_input_gradient(
        lambda z: players.logits(z, training=True), x, onehot, self.grad_input, batch_size)
    if not self.grad_through_adv:
      grad_x = tf.stop_gradient(grad_x)  # x_adv then depends on G only: F sees it as a constant
    l = tf.cast(players.generator([grad_x, x, onehot], training=True), tf.float32)
    if self.norm == 'linf':
      return tf.clip_by_value(x + self.eps * tf.tanh(l), 0.0, 1.0), logits, grad_x
    x_adv = models.tanh_box(x, l)
    if self.eps is not None:
      x_adv = perturbation.project_l2(x, x_adv, self.eps)
    return x_adv, logits, grad_x

  def train_step(self, players: Players, x, y, train_classifier=True) -> dict:
    """One step of the minimax game of Eq. 4, both networks updated from one forward pass:

      F: min (1 - a) CE(F(x), y) + a CE(F(x_adv), y)
      G: min -CE(F(x_adv), y) + c_L * mean ||x_adv - x||_2^2,   x_adv = box(x, G(grad_x F, x, y))

    and, unless F differentiates through x_adv, one backward pass: x_adv is then a constant for
    F, so grad_F of G's loss is -grad_F CE(F(x_adv)), and CE(F(x)) is a constant for G. With
    S = loss_G - (1 - a) / a * CE(F(x)):  grad_G S = grad_G loss_G  and  -a grad_F S = grad_F loss_F.
    With ``gen_steps`` k > 1, G first takes k - 1 steps of its own on the batch.
    """
    a = self.adv_coeff
    if train_classifier:
      for _ in range(self.gen_steps - 1):
        self.train_step(players, x, y, train_classifier=False)
    one_backward = train_classifier and a > 0 and not self.grad_through_adv
    n = _global_batch(x)
    onehot = tf.one_hot(y, players.num_classes)
    with tf.GradientTape(persistent=not one_backward) as tape:
      x_adv, logits, grad_x = self._generate(players, x, onehot, n)
      logits_adv = players.logits(x_adv, training=True)
      ce_adv = _mean(per_example_ce(y, logits_adv), n)
      ce_clean = _mean(per_example_ce(y, logits), n)
      dist = _mean(sq_l2(x_adv, x), n)
      loss_g = -ce_adv + self.c_l * dist
      loss_f = a * ce_adv + (1.0 - a) * ce_clean
      joint = loss_g - (1.0 - a) / a * ce_clean if one_backward else None
    g_vars, f_vars = players.generator.trainable_variables, players.classifier.trainable_variables
    if one_backward:
      grads = tape.gradient(joint, g_vars + f_vars)
      grads_g, grads_f = grads[:len(g_vars)], [-a * g for g in grads[len(g_vars):]]
    else:
      grads_g = tape.gradient(loss_g, g_vars)
      grads_f = tape.gradient(loss_f, f_vars) if train_classifier else None
      del tape
    players.generator_optimizer.apply(grads_g, g_vars)
    if train_classifier:
      players.classifier_optimizer.apply(grads_f, f_vars)
    # Is G's perturbation the fixed single-step attack's (FGM at L2, FGSM at Linf)?
    fgm_cos = perturbation.single_step_cosine(x_adv - x, -tf.stop_gradient(grad_x), self.norm)
    return dict(loss=loss_f, gen_loss=loss_g, train_acc=_mean(_correct(y, logits_adv), n),
                clean_acc=_mean(_correct(y, logits), n), pert_l2=_mean(tf.sqrt(sq_l2(x_adv, x)), n),
                pert_sq_l2=dist, pert_linf=_mean(max_abs(x_adv, x), n),
                pert_fgm_cos=_mean(fgm_cos, n))


def update_ema(ema_classifier: keras.Model, classifier: keras.Model, decay: float) -> None:
  """EMA of F's trainable weights, in cross-replica context (applied to every replica's copy).
  F's other weights (batch-norm statistics, moving averages already) are copied, as Keras'
  optimizer EMA leaves them: averaged again they would lag behind, from their initial values,
  the weights they normalise (the ConvPool-CNN has none)."""
  for ema_w, w in zip(ema_classifier.weights, classifier.weights):
    ema_w.assign(decay * ema_w + (1.0 - decay) * w if w.trainable else w)


def from_config(cfg: TrainConfig):
  """The defense ``cfg`` names, with its settings."""
  if cfg.defense == 'naive':
    return Naive()
  if cfg.defense == 'fgm':
    return FGM(cfg.eps, cfg.adv_coeff, cfg.norm)
  if cfg.defense == 'pgd':
    return PGD(cfg.eps, cfg.pgd_steps, cfg.pgd_step_size, cfg.adv_coeff, cfg.norm)
  if cfg.defense == 'fgsm_rs':
    return FGSMRS(cfg.eps, cfg.fgsm_rs_step, cfg.adv_coeff, cfg.norm)
  if cfg.defense == 'n_fgsm':
    return NFGSM(cfg.eps, cfg.n_fgsm_noise, cfg.adv_coeff, cfg.norm)
  return PGN(cfg.c_l, cfg.adv_coeff, cfg.pgn_grad_input, cfg.pgn_gen_steps, cfg.pgn_zero_init,
             cfg.pgn_budget, cfg.pgn_grad_through_adv, cfg.norm)


class AdversarialTrainer:
  """The command line's players, built from a ``TrainConfig``: the ConvPool-CNN F (+ its EMA),
  G for PGN, an Adam each, and ``train_step``: the defense's step on every replica, then the
  EMA."""

  def __init__(self, cfg: TrainConfig, num_classes: int,
               strategy: tf.distribute.Strategy | None = None):
    self.cfg = cfg
    self.num_classes = num_classes
    self.strategy = strategy or tf.distribute.get_strategy()
    self.defense = from_config(cfg)
    keras.utils.set_random_seed(cfg.seed)
    policy, self.precision_note = precision.resolve(cfg.mixed_precision)
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
      if self.defense.uses_generator:
        with _dtype_policy(policy):
          self.generator = self.defense.prepare_generator(
              models.build_generator(num_classes, cfg.gen_width))
        self.opt_g = keras.optimizers.Adam(cfg.gen_lr)
        self.opt_g.build(self.generator.trainable_variables)
      self.rng = tf.random.Generator.from_seed(cfg.seed)
    self.players = Players(self.classifier, self.opt_f, num_classes, self.generator, self.opt_g,
                           self.rng)
    replica_step = lambda x, y: self.defense.train_step(self.players, x, y)
    if cfg.jit_compile:
      replica_step = tf.function(replica_step, jit_compile=True)
    self.train_step = tf.function(lambda x, y: self._run_replicated(replica_step, x, y))

  def _run_replicated(self, replica_step, x, y):
    """One optimisation step on every replica, then the EMA; returns the global-batch metrics."""
    out = self.strategy.run(replica_step, (x, y))
    update_ema(self.ema_classifier, self.classifier, self.cfg.ema_decay)
    return {k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
            for k, v in out.items()}

  def generate(self, x, onehot):
    """PGN's x_adv and F's logits on x (``PGN.generate``)."""
    return self.defense.generate(self.players, x, onehot)

  def trackables(self) -> dict:
    """Everything a checkpoint must hold to resume bit-identically (besides epoch/step)."""
    objs = dict(classifier=self.classifier, ema_classifier=self.ema_classifier,
                opt_f=self.opt_f, rng=self.rng)
    if self.generator is not None:
      objs.update(generator=self.generator, opt_g=self.opt_g)
    return objs
