"""Typed training configuration and named presets.

Every hyper-parameter of the paper (Lee, Han, Lee 2019, section 4.1 and the authors' code, see
``shared/design/reference.md``) is named once here, with its help text: ``train.py``'s flags are
made from the fields (``tf_pgn.cli.flags``) and override a preset field by field.
"""
import dataclasses
import json

DATASETS = ('cifar10', 'cifar100')
GRAD_INPUTS = ('raw', 'normalized', 'sign')  # tf_pgn.models.generator_input_gradient
# What a config.json written before a field existed meant by its absence (the behaviour of the
# code then), where that differs from today's default.
LEGACY_VALUES = dict(pgn_grad_input='raw', pgn_gen_steps=1, pgn_zero_init=False, pgn_eps=None,
                     mixed_precision='float32')
DEFENSES = ('naive', 'fgm', 'fgsm_rs', 'n_fgsm', 'pgd', 'pgn')
NORMS = ('l2', 'linf')  # tf_pgn.perturbation
PRECISIONS = ('float32', 'bfloat16', 'auto')  # tf_pgn.precision
STRATEGIES = ('none', 'mirrored', 'multi_worker')  # tf_pgn.distribute


class ConfigError(ValueError):
  """A configuration value is invalid; the message says which and how to fix it."""


def setting(default, help_text: str, choices: tuple | None = None):
  """A config field with its command-line help (and, for an enum flag, its choices): the flags
  of ``train.py`` and ``evaluate.py`` are made from these (``tf_pgn.cli.flags``)."""
  metadata = dict(help=help_text) if choices is None else dict(help=help_text, choices=choices)
  return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class TrainConfig:
  """One training run. Defaults are the paper's settings (``--preset=paper``) but for G's gradient
  input (pgn_grad_input): the measured winner (docs/TRAINING.md)."""
  # Free strings, not enum flags: validate() refuses an unknown one in one line.
  dataset: str = setting('cifar10', 'cifar10 or cifar100.')
  defense: str = setting('pgn', 'naive, fgm (FGSM at linf), fgsm_rs, n_fgsm, pgd or pgn.')
  # The threat model of every budgeted defense and of the robustness probe.
  norm: str = setting('l2', 'Norm of the budgets (eps, pgn_eps, probe_eps): l2 (the paper\'s) or '
                      'linf; eps on the [0, 1] pixel scale, e.g. --eps=8/255.', NORMS)
  # Classifier F (Table 1) and generator G (Figure 1) width multipliers.
  width: float = setting(1.0, 'Classifier width multiplier (Table 1 filters x width).')
  gen_width: float = setting(1.0, 'Generator width multiplier (Figure 1 channels x width).')
  # Optimisation (section 4.1; authors' code): Adam 5e-4 for both networks, batch 128, 200 epochs.
  epochs: int = setting(200, 'Training epochs.')
  batch_size: int = setting(128, 'Batch size.')
  lr: float = setting(5e-4, 'Adam learning rate of the classifier.')
  gen_lr: float = setting(5e-4, 'Adam learning rate of the generator.')
  ema_decay: float = setting(0.998, 'EMA decay of the classifier weights.')
  # Data: None means the whole split.
  train_size: int | None = setting(None, 'Use the first N training images.')
  test_size: int | None = setting(None, 'Use the first N test images for per-epoch accuracy.')
  augment: bool = setting(True, 'Random flip + shift augmentation.')
  # FGM / PGD adversarial training (Madry et al. 2018): step = eps / steps * 5/3 at L2, eps / 4
  # at Linf. FGSM-RS (Wong et al. 2020): one step of 1.25 eps from a uniform start in the ball.
  # N-FGSM (de Jorge et al. 2022): one step of eps from a uniform noise of 2 eps, not projected.
  eps: float = setting(0.02, 'Budget of FGM/FGSM-RS/N-FGSM/PGD adversarial training (--norm); '
                       'at linf also PGN\'s unless --pgn_eps.')
  pgd_steps: int = setting(10, 'PGD iterations.')
  pgd_step_size: float | None = setting(
      None, 'PGD step (default eps / pgd_steps * 5/3 at l2, eps / 4 at linf).')
  fgsm_rs_step: float = setting(1.25, 'FGSM-RS: step size as a multiple of eps.')
  n_fgsm_noise: float = setting(2.0, 'N-FGSM: radius of the uniform noise as a multiple of eps.')
  # PGN (Eq. 4): classifier loss (1 - adv_coeff) CE(F(x)) + adv_coeff CE(F(x_adv));
  # generator loss -CE(F(x_adv)) + c_l * mean ||x_adv - x||_2^2.
  c_l: float = setting(50.0, 'PGN: weight of the squared L2 distance in G\'s loss (Eq. 4).')
  adv_coeff: float = setting(1.0, 'Weight of the adversarial term in F\'s loss.')
  # Whether F's update differentiates through x_adv (and so through the input gradient, double
  # backprop) as the authors' code does. Off by default: standard adversarial training treats
  # x_adv as a constant for F, and the through-path lets F learn to weaken G's input.
  pgn_grad_through_adv: bool = setting(
      False, 'PGN: F\'s update differentiates through x_adv and the input gradient, as the '
      'authors\' code does.')
  # G as an adversary. G's gradient input (models.generator_input_gradient): 'raw' is the
  # paper's, ~1e-6 per pixel, which G cannot see beside its other inputs of order 1;
  # 'normalized' (the default: docs/TRAINING.md, "G's gradient input") and 'sign' are
  # scale-free. G's updates per F update; G's output layer zeroed at the start (x_adv = x; off,
  # the paper's He-initialised G: docs/TRAINING.md, "The other levers on G"); a budget on
  # x_adv - x (None: no budget at L2).
  # tf_pgn.PGN (the library's) takes its defaults from these.
  pgn_grad_input: str = setting(
      'normalized', 'PGN: G\'s gradient input: the paper\'s raw gradient of the mean true-class '
      'probability, or per example scaled to unit RMS (normalized) or its sign.', GRAD_INPUTS)
  pgn_gen_steps: int = setting(1, 'PGN: generator updates per classifier update.')
  pgn_zero_init: bool = setting(False, 'PGN: zero G\'s output layer at the start (x_adv = x).')
  pgn_eps: float | None = setting(
      None, 'PGN: its budget; l2: project x_adv into this ball around x (none: no budget); linf: '
      'x_adv = clip(x + pgn_eps tanh(G)) (none: --eps).')
  # Per-epoch robustness probe: PGD (and FGM) at probe_eps on the first probe_size test images.
  probe_eps: float | None = setting(
      None, 'eps of the per-epoch PGD and FGM robustness probes (--norm; none: 0.5 at l2, --eps '
      'at linf).')
  probe_size: int = setting(256, 'Test images in the per-epoch robustness probe.')
  probe_steps: int = setting(10, 'PGD iterations of the per-epoch robustness probe.')
  # Bookkeeping.
  seed: int = setting(1234, 'Random seed (weights, data order, augmentation, PGD).')
  checkpoint_every_steps: int = setting(200, 'Checkpoint interval in steps.')
  checkpoint_every_minutes: float | None = setting(
      None, 'Also checkpoint when this many minutes have passed since the last checkpoint.')
  keep_checkpoints: int = setting(3, 'Checkpoints kept in <run_dir>/ckpt.')
  progress_seconds: float = setting(
      60.0, 'Off a terminal (nohup, a batch scheduler, a log file), print a progress line every '
      'N seconds within an epoch (0: only the epoch lines).')
  # Figure 2 right's rho_cw by epoch.
  snapshot_every_epochs: int = setting(
      10, 'Keep the EMA classifier of every Nth epoch in <run_dir>/epochs/epoch-N (evaluate.py '
      '--ckpt takes it; 0: none).')
  jit_compile: bool = setting(False, 'Compile the train step with XLA.')
  # tf_pgn.precision; the EMA, the probes and the exports stay float32. auto is the default
  # because bfloat16 trained level with float32 (docs/PRECISION.md).
  mixed_precision: str = setting(
      'auto', 'Compute precision of the train step: auto (bfloat16 where the hardware computes '
      'it natively, else float32; said at start), float32, or bfloat16 (float32 variables; '
      'native on CPUs with AVX512-BF16/AMX and Ampere+ GPUs, emulated and slow elsewhere).',
      PRECISIONS)
  deterministic: bool = setting(False, 'Deterministic ops (bit-identical resume; slower).')
  # Not part of the architecture: a run resumes on any number of replicas.
  distribute: str = setting(
      'none', 'tf.distribute strategy (tf_pgn.distribute): one device, all local GPUs (or '
      '--cpu_replicas logical CPUs), or the hosts of $TF_CONFIG.', STRATEGIES)
  cpu_replicas: int | None = setting(
      None, 'Split the CPU into this many logical devices (for --distribute=mirrored without '
      'GPUs: tests, not speed).')
  debug_numerics: bool = setting(
      False, 'Check every op for NaN/Inf and name the first op that makes one '
      '(tf.debugging.enable_check_numerics; slow).')

  def validate(self) -> 'TrainConfig':
    """Raises ConfigError with a one-line fix for the first invalid field."""
    if self.dataset not in DATASETS:
      raise ConfigError(f'unknown dataset {self.dataset!r}: use one of {", ".join(DATASETS)}')
    if self.defense not in DEFENSES:
      raise ConfigError(f'unknown defense {self.defense!r}: use one of {", ".join(DEFENSES)}')
    if self.norm not in NORMS:
      raise ConfigError(f'unknown --norm={self.norm}: use one of {", ".join(NORMS)}')
    if self.norm == 'linf' and not self.eps < 1.0:
      raise ConfigError(f'--eps={self.eps} at --norm=linf is the whole pixel range: give it on '
                        'the [0, 1] scale, e.g. --eps=8/255')
    positive = dict(width=self.width, gen_width=self.gen_width, epochs=self.epochs,
                    batch_size=self.batch_size, lr=self.lr, gen_lr=self.gen_lr,
                    pgd_steps=self.pgd_steps, checkpoint_every_steps=self.checkpoint_every_steps,
                    pgn_gen_steps=self.pgn_gen_steps, fgsm_rs_step=self.fgsm_rs_step,
                    n_fgsm_noise=self.n_fgsm_noise)
    for name, value in positive.items():
      if not value > 0:
        raise ConfigError(f'--{name}={value} must be positive')
    for name in ('eps', 'c_l', 'snapshot_every_epochs', 'progress_seconds'):
      if not getattr(self, name) >= 0:
        raise ConfigError(f'--{name}={getattr(self, name)} is negative: give a value >= 0')
    if self.checkpoint_every_minutes is not None and not self.checkpoint_every_minutes > 0:
      raise ConfigError(f'--checkpoint_every_minutes={self.checkpoint_every_minutes} must be '
                        'positive')
    if self.mixed_precision not in PRECISIONS:
      raise ConfigError(f'unknown --mixed_precision={self.mixed_precision}: use one of '
                        f'{", ".join(PRECISIONS)}')
    if self.distribute not in STRATEGIES:
      raise ConfigError(f'unknown --distribute={self.distribute}: use one of '
                        f'{", ".join(STRATEGIES)}')
    if self.cpu_replicas is not None and not self.cpu_replicas > 0:
      raise ConfigError(f'--cpu_replicas={self.cpu_replicas} must be positive')
    if self.jit_compile and self.distribute != 'none':
      raise ConfigError(f'--jit_compile with --distribute={self.distribute}: XLA compiles the '
                        'whole replica step, optimizer updates included, and cannot reach the '
                        'other replicas\' variables; drop one of the two')
    if self.debug_numerics and self.deterministic:
      raise ConfigError('--debug_numerics with --deterministic: TF\'s deterministic cross-entropy '
                        'holds a NaN constant that the checks report; drop one of the two')
    if self.pgn_grad_input not in GRAD_INPUTS:
      raise ConfigError(f'unknown --pgn_grad_input={self.pgn_grad_input}: use one of '
                        f'{", ".join(GRAD_INPUTS)}')
    if self.pgn_eps is not None and not self.pgn_eps > 0:
      raise ConfigError(f'--pgn_eps={self.pgn_eps} must be positive (omit it for no budget)')
    if self.probe_eps is not None and not self.probe_eps > 0:
      raise ConfigError(f'--probe_eps={self.probe_eps} must be positive (omit it for the '
                        'default)')
    if self.defense != 'naive' and self.defense != 'pgn' and not self.eps > 0:
      raise ConfigError(f'--eps={self.eps} must be positive for --defense={self.defense}')
    if self.defense == 'pgn' and self.norm == 'linf' and not self.pgn_budget > 0:
      raise ConfigError('--defense=pgn --norm=linf needs a budget: give --eps (or --pgn_eps), '
                        'e.g. --eps=8/255')
    if self.pgd_step_size is not None and not self.pgd_step_size > 0:
      raise ConfigError(f'--pgd_step_size={self.pgd_step_size} must be positive')
    if not 0.0 <= self.adv_coeff <= 1.0:
      raise ConfigError(f'--adv_coeff={self.adv_coeff} must lie in [0, 1]')
    if not 0.0 <= self.ema_decay < 1.0:
      raise ConfigError(f'--ema_decay={self.ema_decay} must lie in [0, 1)')
    for name in ('train_size', 'test_size'):
      value = getattr(self, name)
      if value is not None and value < self.batch_size and name == 'train_size':
        raise ConfigError(f'--train_size={value} is smaller than --batch_size={self.batch_size}')
      if value is not None and value <= 0:
        raise ConfigError(f'--{name}={value} must be positive')
    return self

  @property
  def pgn_budget(self) -> float | None:
    """PGN's eps: --pgn_eps, else at Linf --eps (a Linf PGN always has a budget)."""
    if self.pgn_eps is None and self.norm == 'linf':
      return self.eps
    return self.pgn_eps

  @property
  def probe_budget(self) -> float:
    """The probes' eps: --probe_eps, else 0.5 at L2 (the paper's scale) and --eps at Linf."""
    if self.probe_eps is not None:
      return self.probe_eps
    return self.eps if self.norm == 'linf' else 0.5

  def architecture(self) -> dict:
    """The fields a checkpoint's variables depend on; a run directory must agree on them."""
    return dict(dataset=self.dataset, defense=self.defense, width=self.width,
                gen_width=self.gen_width)

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

  @classmethod
  def from_dict(cls, d: dict) -> 'TrainConfig':
    """The config a config.json describes; fields it predates take their LEGACY_VALUES."""
    names = {f.name for f in dataclasses.fields(cls)}
    fields = {**LEGACY_VALUES, **{k: v for k, v in d.items() if k in names}}
    if isinstance(fields.get('mixed_precision'), bool):  # before it had an 'auto'
      fields['mixed_precision'] = 'bfloat16' if fields['mixed_precision'] else 'float32'
    return cls(**fields)


# Named presets: only the fields that differ from the paper's defaults.
PRESETS = {
    # The paper: width 1, 200 epochs, batch 128, Adam 5e-4, EMA 0.998.
    'paper': {},
    # 2-core CPU: quarter-width classifier, eighth-width generator, 6 epochs, a 4x learning rate
    # and a shorter EMA to make up for the short schedule; sized with `python -m tf_pgn.bench
    # --width=0.25 --gen_width=0.125` so that PGD-10 AT, the slowest defense, trains in about
    # half an hour (docs/BENCHMARK.md); docs/REPRODUCTION.md lists what each defense reaches.
    'cpu': dict(width=0.25, gen_width=0.125, epochs=6, lr=2e-3, gen_lr=2e-3, ema_decay=0.99,
                checkpoint_every_steps=100, snapshot_every_epochs=1),
    # Unit tests: seconds per run, in float32 so that a run gives the same numbers on every CPU.
    'tiny': dict(width=0.0625, gen_width=0.0625, epochs=1, batch_size=32, train_size=256,
                 test_size=128, probe_size=32, probe_steps=2, ema_decay=0.9,
                 checkpoint_every_steps=4, snapshot_every_epochs=1, mixed_precision='float32'),
}


def budget_label(eps: float, norm: str) -> str:
  """eps as it appears in metric names: ``0.5`` at L2, ``8_255`` (8/255) at Linf where eps is a
  whole number of pixel levels."""
  levels = eps * 255.0
  if norm == 'linf' and abs(levels - round(levels)) < 1e-6:
    return f'{round(levels)}_255'
  return f'{eps:g}'


def make_config(preset: str = 'paper', **overrides) -> TrainConfig:
  """The preset's config with the given fields replaced; validated."""
  if preset not in PRESETS:
    raise ConfigError(f'unknown preset {preset!r}: use one of {", ".join(PRESETS)}')
  fields = dict(PRESETS[preset])
  fields.update({k: v for k, v in overrides.items() if v is not None})
  names = {f.name for f in dataclasses.fields(TrainConfig)}
  unknown = set(fields) - names
  if unknown:
    raise ConfigError(f'unknown config field(s) {sorted(unknown)}')
  return TrainConfig(**fields).validate()
