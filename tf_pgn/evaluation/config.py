"""``EvalConfig``: every setting of an evaluation, named once (evaluate.py's flags are made from
its fields), and ``make_eval_config``."""
import dataclasses


from tf_pgn import data as data_lib
from tf_pgn.attacks import apgd, fab, fmn, square
from tf_pgn.attacks.pgn_attack import LOSSES as PGN_ATTACK_LOSSES
from tf_pgn.config import GRAD_INPUTS, NORMS, setting
from tf_pgn.evaluation.common import EvalError, NORM_LABELS, result_key
from tf_pgn.evaluation.attack_table import ATTACKS, ATTACK_TABLE, DEFAULT_ATTACKS, attack_norm

_NON_NEGATIVE = ('deepfool_overshoot', 'seed', 'progress_seconds')


@dataclasses.dataclass
class EvalConfig:
  """Attack settings of one evaluation; the defaults follow the paper where it has one. Each
  field is a flag of ``evaluate.py`` (``tf_pgn.cli.flags``)."""
  dataset: str = setting('cifar10', 'cifar10 or cifar100.')
  # The first test images (exact pixels here; RobustBench's convention).
  num_examples: int = setting(1000, 'Evaluate on the first N test images.')
  attacks: tuple = setting(DEFAULT_ATTACKS, f'Comma list of {",".join(ATTACKS)} (default: the '
                           'paper\'s attacks and PGN as an attack).')
  # The threat model of the bounded attacks; the minimal-norm attacks and PGN are L2 at either.
  norm: str = setting('l2', 'Norm of the bounded attacks (FGM, MIM, PGD, APGD, Square, '
                      'autoattack): l2 (the paper\'s) or linf; DeepFool, C&W, FMN and PGN stay '
                      'L2.', NORMS)
  # Budgets of the bounded attacks; Table 2 of the paper uses L2 eps = 0.02, RobustBench Linf
  # 8/255.
  eps_list: tuple = setting((0.1, 0.25, 0.5, 1.0), 'Budgets of the bounded attacks at --norm, '
                            'on the [0, 1] pixel scale; a/b for pixel levels, e.g. 8/255 (Table '
                            '2 of the paper uses L2 0.02).')
  pgd_steps: int = setting(20, 'PGD iterations, step 2.5 * eps / steps (Madry et al. 2018).')
  mim_steps: int = setting(10, 'MIM iterations, step eps / steps.')
  deepfool_overshoot: float = setting(0.02, 'DeepFool overshoot.')
  # C&W L2: at most 100 iterations in the paper (section 4.2).
  cw_iterations: int = setting(100, 'C&W Adam steps per search step (100 in the paper).')
  cw_search_steps: int = setting(5, 'C&W binary-search steps over c.')
  cw_lr: float = setting(5e-3, 'C&W Adam learning rate.')
  cw_initial_const: float = setting(1e-2, 'C&W first value of c.')
  # PGN as an attack (Figure 3): a fresh generator against the fixed classifier, one per c_L,
  # trained on the whole training set ("fully trained", section 4.3). Its loss -CE + c_L ||d||^2
  # has its optimum near ||d|| = (slope of CE along d) / (2 c_L). With the normalized gradient
  # input (the default; the paper's raw one is ~1e-6 per pixel and G hardly uses it) c_L 1 to 8
  # span mean L2 ~0.1-0.4 on the cpu preset's eps-0.5 FGM-AT model, inside Figure 3's FGM / PGD
  # budgets; with --pgn_grad_input=raw, c_L 2, 4, 8 reach only L2 0.07, 0.03, 0.01 there and
  # c_L 1 runs away to L2 ~3 within one epoch.
  pgn_c_l_list: tuple = setting((1.0, 2.0, 4.0, 8.0), 'PGN attack: distance weights c_L, one '
                                'generator each.')
  pgn_gen_width: float = setting(0.25, 'PGN attack: generator width multiplier.')
  pgn_lr: float = setting(2e-3, 'PGN attack: Adam learning rate of the generator.')
  pgn_attack_epochs: int = setting(2, 'PGN attack: training epochs.')
  pgn_attack_train_size: int = setting(50000, 'PGN attack: first N training images (50000: '
                                       'all).')
  pgn_batch_size: int = setting(128, 'PGN attack: training batch size.')
  # G's gradient input (models.generator_input_gradient) and an optional hard L2 budget on its
  # perturbation (then each c_L's key carries the eps: pgn_c_l2_eps0.5).
  pgn_grad_input: str = setting('normalized', 'PGN attack: G\'s gradient input: the paper\'s raw '
                                'gradient, or scale-free.', GRAD_INPUTS)
  pgn_eps: float | None = setting(None, 'PGN attack: project x_adv into this L2 ball (none: no '
                                  'budget, c_L alone sets the size).')
  pgn_attack_loss: str = setting('ce', 'PGN attack: G\'s adversarial term: the paper\'s -CE, or '
                                 'C&W\'s clipped logit margin (stops spending L2 on examples '
                                 'already misclassified).', PGN_ATTACK_LOSSES)
  # APGD (Croce & Hein 2020; AutoAttack's standard version).
  apgd_iterations: int = setting(apgd.N_ITER, 'APGD iterations per run.')
  apgd_restarts: int = setting(1, 'APGD-CE / APGD-DLR random restarts, APGD-T runs per target '
                               'class (1, as AutoAttack\'s standard version).')
  apgd_targets: int = setting(apgd.NUM_TARGETS, 'APGD-T target classes: the highest clean '
                              'logits other than the true class.')
  # Square L2 (Andriushchenko et al. 2020); AutoAttack's standard version: 5000 and 0.8.
  square_queries: int = setting(square.N_QUERIES, 'Square attack: query budget per example.')
  square_p_init: float = setting(square.P_INIT, 'Square attack: share of the pixels its first '
                                 'windows cover.')
  # FAB (Croce & Hein, ICML 2020); FAB-T in AutoAttack's standard version: 100 iterations, 9
  # targets, 1 restart.
  fab_iterations: int = setting(fab.N_ITER, 'FAB / FAB-T iterations per run.')
  fab_targets: int = setting(fab.NUM_TARGETS, 'FAB-T target classes: the highest clean logits '
                             'other than the true class.')
  # FMN L2 (Pintor et al. 2021).
  fmn_steps: int = setting(fmn.STEPS, 'FMN steps, one gradient each.')
  fmn_alpha_init: float = setting(fmn.ALPHA_INIT, 'FMN initial step size, cosine-annealed to '
                                  '1/100 of it.')
  fmn_gamma_init: float = setting(fmn.GAMMA_INIT, 'FMN initial factor of the epsilon update, '
                                  'annealed to 0.001.')
  # Soundness check: PGD with a budget no image needs.
  unbounded_eps: float = setting(8.0, 'Soundness check: L2 budget of the unbounded PGD.')
  unbounded_steps: int = setting(50, 'Soundness check: iterations of the unbounded PGD.')
  unbounded_check: bool = setting(True, 'Soundness check: run the unbounded PGD (the study\'s '
                                  'per-epoch probes leave it to the final evaluation).')
  batch_size: int = setting(256, 'Examples per attack batch.')
  seed: int = setting(1234, 'Seed of the PGN attack generators, the random starts of APGD and '
                      'the Square attack\'s search.')
  progress_seconds: float = setting(60.0, 'Off a terminal (nohup, a batch scheduler, a log '
                                    'file), print a progress line every N seconds within an '
                                    'attack (0: only the result lines).')

  def validate(self) -> 'EvalConfig':
    """Raises EvalError with a one-line fix for the first invalid field."""
    if self.dataset not in data_lib.NUM_CLASSES:
      raise EvalError(f'unknown dataset {self.dataset!r}: use one of '
                      f'{", ".join(data_lib.NUM_CLASSES)}')
    unknown = [a for a in self.attacks if a not in ATTACKS]
    if unknown or not self.attacks:
      raise EvalError(f'unknown attack(s) {unknown}: --attacks takes a comma list of '
                      f'{",".join(ATTACKS)}')
    if self.norm not in NORMS:
      raise EvalError(f'unknown --norm={self.norm}: use one of {", ".join(NORMS)}')
    for name in ('eps_list', 'pgn_c_l_list'):
      if not getattr(self, name) or min(getattr(self, name)) <= 0:
        raise EvalError(f'--{name}={",".join(map(str, getattr(self, name)))} needs one or '
                        'more positive values')
    if self.norm == 'linf' and max(self.eps_list) >= 1.0:
      raise EvalError(f'--eps_list={",".join(f"{e:g}" for e in self.eps_list)} at --norm=linf '
                      f'holds {max(self.eps_list):g}, the whole pixel range: give Linf budgets '
                      'on the [0, 1] scale, e.g. --eps_list=8/255')
    if self.pgn_grad_input not in GRAD_INPUTS:
      raise EvalError(f'unknown --pgn_grad_input={self.pgn_grad_input}: use one of '
                      f'{", ".join(GRAD_INPUTS)}')
    if self.pgn_attack_loss not in PGN_ATTACK_LOSSES:
      raise EvalError(f'unknown --pgn_attack_loss={self.pgn_attack_loss}: use one of '
                      f'{", ".join(PGN_ATTACK_LOSSES)}')
    if self.pgn_eps is not None and not self.pgn_eps > 0:
      raise EvalError(f'--pgn_eps={self.pgn_eps} must be positive (omit it for no budget)')
    if not 0 < self.square_p_init <= 1:
      raise EvalError(f'--square_p_init={self.square_p_init} is a share of the pixels: give a '
                      'value in (0, 1]')
    if not 0 < self.fmn_gamma_init < 1:
      raise EvalError(f'--fmn_gamma_init={self.fmn_gamma_init} must lie in (0, 1): epsilon '
                      'changes by a factor 1 -/+ gamma')
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      if field.type in (int, float) and field.name not in _NON_NEGATIVE and not value > 0:
        raise EvalError(f'--{field.name}={value} must be positive')
    for name in _NON_NEGATIVE:
      if not getattr(self, name) >= 0:
        raise EvalError(f'--{name}={getattr(self, name)} is negative: give a value >= 0')
    return self

  def attack_params(self) -> dict:
    """{attack: its fixed settings (budgets aside)}, as reported in results.json; a partial
    result is reused only under the same ones. Each names the norm it runs at, so that no Linf
    result passes for an L2 one, except an L2 attack in an L2 evaluation: those are as before
    evaluations had a norm, so that earlier partial results stay valid."""
    params = {name: spec.params(self) for name, spec in ATTACK_TABLE.items()}
    return {name: p if self.norm == attack_norm(name, self.norm) == 'l2' else
            dict(p, norm=NORM_LABELS[attack_norm(name, self.norm)]) for name, p in params.items()}

  def settings(self) -> dict:
    """{attack: its budgets}, one dict per budget: {'eps': e}, {'c_l': c}, or {} (minimal-norm)."""
    return {name: spec.budgets(self) for name, spec in ATTACK_TABLE.items()}

  def result_keys(self) -> list:
    """The keys of results.json's ``attacks`` an evaluation with this config writes."""
    settings = self.settings()
    return [result_key(name, s) for name in self.attacks for s in settings[name]]


def _number(value) -> float:
  """A number, or a fraction ``a/b`` (Linf budgets in pixel levels: ``8/255``)."""
  if isinstance(value, str) and '/' in value:
    numerator, _, denominator = value.partition('/')
    return float(numerator) / float(denominator)
  return float(value)


def make_eval_config(**overrides) -> EvalConfig:
  """EvalConfig from flag values (None: the default); comma strings or lists for the lists, whose
  numbers may be fractions (``eps_list='8/255,16/255'``)."""
  fields = {k: v for k, v in overrides.items() if v is not None}
  if isinstance(fields.get('attacks'), str):
    fields['attacks'] = fields['attacks'].split(',')
  if 'attacks' in fields:
    fields['attacks'] = tuple(a.strip().lower() for a in fields['attacks'] if a.strip())
  for name in ('eps_list', 'pgn_c_l_list'):
    if name in fields:
      values = fields[name].split(',') if isinstance(fields[name], str) else fields[name]
      try:
        fields[name] = tuple(_number(v) for v in values)
      except (ValueError, ZeroDivisionError):
        raise EvalError(f'--{name}={",".join(map(str, values))} is not a comma list of '
                        'numbers or fractions a/b with b != 0, e.g. 0.5 or 8/255') from None
  return EvalConfig(**fields).validate()
