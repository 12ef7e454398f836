"""The table of attacks: one ``AttackSpec`` per attack (its label, settings, budgets and batch
function), the paper's FGM, MIM, PGD, DeepFool, C&W and PGN, and APGD, FAB, FMN, Square and
AutoAttack's worst case (``tf_pgn.evaluation`` describes them)."""
import dataclasses
import functools
from typing import Callable

import tensorflow as tf

from tf_pgn import perturbation
from tf_pgn.attacks import carlini_wagner_l2, deepfool_l2
from tf_pgn.attacks import apgd, fab, fmn, square
from tf_pgn.attacks.common import worst_case
from tf_pgn.attacks.pgn_attack import MARGIN_KAPPA, PGNAttack
from tf_pgn.evaluation.common import EvalError, NORM_LABELS

# DeepFool (Moosavi-Dezfooli et al. 2016): linearisation steps and candidate classes.
DEEPFOOL_MAX_ITER = 50
DEEPFOOL_CLASSES = 10
# AutoAttack's 'standard' version (Croce & Hein 2020; fra31/auto-attack): these attacks in turn,
# each on the examples the earlier ones left robust.
AUTOATTACK_PARTS = ('apgd_ce', 'apgd_t', 'fab_t', 'square')


def _eps_budgets(cfg) -> list:
  return [{'eps': float(e)} for e in cfg.eps_list]


def _no_budget(cfg) -> list:
  del cfg
  return [{}]


@dataclasses.dataclass(frozen=True)
class AttackSpec:
  """One attack of the evaluation, declared once: adding an attack is one entry of ATTACK_TABLE.

  Attributes:
    label: its name in results.md and the plots.
    minimal_norm: unbounded, minimising the perturbation: one result with an accuracy curve
      over the radii of the norm it runs at; otherwise one result per budget.
    params: cfg -> its fixed settings (budgets aside), as results.json reports them; a finished
      partial result is reused only under the same ones.
    attack: cfg -> its batch function, ``(model, x, y, eps) -> x_adv`` if bounded (eps a tensor,
      so one trace serves every budget), ``(model, x, y) -> x_adv`` if minimal-norm.
    budgets: cfg -> its budgets, one dict per result: {'eps': e}, {'c_l': c} or {}.
    make: instead of ``attack``, (cfg, context) -> a function of (crafting model, budget)
      returning (batch function, extra numbers for the results): PGN, which trains first.
    parts: a worst case over these attacks: its batch function returns (x_adv, which part broke
      each example: ``attacks.common.worst_case``) and its results count them.
    gradient_free: reads only the model's outputs (score-based, black-box).
    selectable: whether --attacks may name it (not the soundness check's unbounded PGD).
    norm: the norm it runs at whatever the evaluation's (L2: the paper's minimal-norm attacks,
      PGN's L2 penalty, the unbounded PGD; Linf: FAB-Linf); None: the evaluation's ``norm``,
      which ``attack`` reads.
  """
  label: str
  minimal_norm: bool
  params: Callable
  attack: Callable | None = None
  budgets: Callable = _eps_budgets
  make: Callable | None = None
  parts: tuple = ()
  gradient_free: bool = False
  selectable: bool = True
  norm: str | None = None


def attack_norm(name: str, norm: str) -> str:
  """The norm attack ``name`` runs at in an evaluation at ``norm``."""
  return ATTACK_TABLE[name].norm or norm


@dataclasses.dataclass(frozen=True)
class AttackContext:
  """What an attack's ``make`` may need besides its settings."""
  num_classes: int
  train_data: Callable | None  # () -> float32 training images and labels (the PGN attack's)


def _pgd(steps: int, norm: str):
  return lambda m, x, y, eps: perturbation.gradient_ascent(m, x, y, eps, 2.5 * eps / steps, steps,
                                                           norm)


def _pgd_params(steps: int) -> dict:
  return dict(steps=steps, step_size='2.5 * eps / steps', random_start=False)


# APGD's random start per norm (tf_pgn.attacks.apgd), as results.json states it.
_APGD_STARTS = {'l2': 'eps * n / ||n||, n ~ N(0, I)',
                'linf': 'eps * u / ||u||_inf, u ~ U(-1, 1) per pixel'}


def _apgd_params(cfg, loss: str) -> dict:
  return dict(loss=loss, iterations=cfg.apgd_iterations, restarts=cfg.apgd_restarts,
              checkpoints=apgd.checkpoints(cfg.apgd_iterations), initial_step='2 * eps',
              momentum=apgd.MOMENTUM, rho=apgd.RHO, random_start=_APGD_STARTS[cfg.norm],
              seed=cfg.seed)


def _apgd_args(cfg) -> dict:
  return dict(norm=cfg.norm, n_iter=cfg.apgd_iterations, restarts=cfg.apgd_restarts,
              seed=cfg.seed)


def _fab_params(cfg, targeted: bool) -> dict:
  targets = dict(targets=cfg.fab_targets, target_classes='highest clean logits other than y')
  return dict(iterations=cfg.fab_iterations, restarts=1, alpha_max=fab.ALPHA_MAX, eta=fab.ETA,
              beta=fab.BETA, final_search_steps=fab.FINAL_SEARCH_STEPS, seed=cfg.seed,
              **(targets if targeted else {}))


def _fab_args(cfg, norm: str) -> dict:
  return dict(norm=norm, n_iter=cfg.fab_iterations, num_targets=cfg.fab_targets, seed=cfg.seed)


def _worst_case_make(cfg, parts: tuple):
  """The ``make`` of a worst case over ``parts``: each part compiled on its own and run in turn
  on the examples left (``attacks.common.worst_case``), its batch function returning (x_adv,
  broken_by); its extra numbers are the seconds each part took (over the batches attacked, not
  those resumed)."""
  compiled = [tf.function(ATTACK_TABLE[name].attack(cfg), reduce_retracing=True)
              for name in parts]

  def make(model, setting):
    del model  # run_attack passes the crafting model to the attack
    eps = tf.constant(setting['eps'], tf.float32)
    seconds = dict.fromkeys(parts, 0.0)
    fns = [lambda m, x, y, f=f: f(m, x, y, eps) for f in compiled]

    def add(i, part_seconds):
      seconds[parts[i]] += part_seconds

    return (lambda m, x, y: worst_case(m, x, y, fns, add)), dict(seconds_by_part=seconds)

  return make


# The PGN attack's loss as results.json's attack_settings state it, per --pgn_attack_loss.
PGN_ATTACK_LOSS_TEXT = {
    'ce': '-CE(F(x_adv), y) + c_L * mean ||x_adv - x||^2',
    'margin': f'mean max(Z_y - max_(j != y) Z_j, -{MARGIN_KAPPA:g}) + c_L * mean ||x_adv - x||^2'}


def _pgn_budgets(cfg) -> list:
  eps = {} if cfg.pgn_eps is None else dict(eps=float(cfg.pgn_eps))
  return [dict(c_l=float(c), **eps) for c in cfg.pgn_c_l_list]


def _make_pgn(cfg, context: AttackContext):
  def make(model, setting):
    if context.train_data is None:
      raise EvalError('the pgn attack trains a generator: pass training images (train_data)')
    x, y = context.train_data()
    attack = PGNAttack(model, context.num_classes, setting['c_l'], cfg.pgn_gen_width, cfg.pgn_lr,
                       cfg.pgn_batch_size, cfg.seed, cfg.pgn_grad_input, setting.get('eps'),
                       x.shape[1:], cfg.pgn_attack_loss)
    history = attack.fit(x[:cfg.pgn_attack_train_size], y[:cfg.pgn_attack_train_size],
                         cfg.pgn_attack_epochs, progress_desc=f'train PGN c_L={setting["c_l"]:g}',
                         progress_seconds=cfg.progress_seconds)
    return attack.attack_fn, dict(train_history=history,
                                  train_seconds=sum(h['seconds'] for h in history))
  return make


ATTACK_TABLE = {
    'fgm': AttackSpec('FGM', False, lambda c: dict(norm=NORM_LABELS[c.norm]),
                      attack=lambda c: functools.partial(perturbation.fgm, norm=c.norm)),
    'mim': AttackSpec(
        'MIM', False, lambda c: dict(steps=c.mim_steps, step_size='eps / steps', decay=1.0),
        attack=lambda c: lambda m, x, y, eps: perturbation.mim(m, x, y, eps, eps / c.mim_steps,
                                                               c.mim_steps, norm=c.norm)),
    'pgd': AttackSpec('PGD', False, lambda c: _pgd_params(c.pgd_steps),
                      attack=lambda c: _pgd(c.pgd_steps, c.norm)),
    'apgd_ce': AttackSpec('APGD-CE', False, lambda c: _apgd_params(c, 'ce'),
                          attack=lambda c: functools.partial(apgd.apgd, loss='ce',
                                                             **_apgd_args(c))),
    'apgd_dlr': AttackSpec('APGD-DLR', False, lambda c: _apgd_params(c, 'dlr'),
                           attack=lambda c: functools.partial(apgd.apgd, loss='dlr',
                                                              **_apgd_args(c))),
    'apgd_t': AttackSpec(
        'APGD-T', False,
        lambda c: dict(_apgd_params(c, 'targeted_dlr'), targets=c.apgd_targets,
                       target_classes='highest clean logits other than y'),
        attack=lambda c: functools.partial(apgd.apgd_targeted, num_targets=c.apgd_targets,
                                           **_apgd_args(c))),
    'square': AttackSpec(
        'Square', False,
        lambda c: dict(queries=c.square_queries, p_init=c.square_p_init, loss='margin',
                       p_schedule='halved after iterations 10, 50, 200, 500, 1000, 2000, 4000, '
                                  '6000, 8000', seed=c.seed),
        attack=lambda c: functools.partial(square.square, norm=c.norm,
                                           n_queries=c.square_queries, p_init=c.square_p_init,
                                           seed=c.seed),
        gradient_free=True),
    'fab_t': AttackSpec(
        'FAB-T', False, lambda c: _fab_params(c, targeted=True),
        attack=lambda c: functools.partial(fab.fab, targeted=True, **_fab_args(c, c.norm))),
    'autoattack': AttackSpec(
        'AutoAttack', False,
        lambda c: dict(version='standard', order=list(AUTOATTACK_PARTS),
                       **{p: ATTACK_TABLE[p].params(c) for p in AUTOATTACK_PARTS}),
        make=lambda c, context: _worst_case_make(c, AUTOATTACK_PARTS), parts=AUTOATTACK_PARTS),
    'deepfool': AttackSpec(
        'DeepFool', True,
        lambda c: dict(overshoot=c.deepfool_overshoot, max_iter=DEEPFOOL_MAX_ITER,
                       num_classes_considered=DEEPFOOL_CLASSES),
        attack=lambda c: lambda m, x, y: deepfool_l2(m, x, y, DEEPFOOL_CLASSES, DEEPFOOL_MAX_ITER,
                                                     c.deepfool_overshoot),
        budgets=_no_budget, norm='l2'),
    'cw': AttackSpec(
        'C&W', True,
        lambda c: dict(max_iterations=c.cw_iterations, binary_search_steps=c.cw_search_steps,
                       learning_rate=c.cw_lr, initial_const=c.cw_initial_const, confidence=0.0,
                       abort_early=True),
        attack=lambda c: functools.partial(
            carlini_wagner_l2, max_iterations=c.cw_iterations,
            binary_search_steps=c.cw_search_steps, initial_const=c.cw_initial_const,
            learning_rate=c.cw_lr),
        budgets=_no_budget, norm='l2'),
    'fmn': AttackSpec(
        'FMN', True,
        lambda c: dict(steps=c.fmn_steps, alpha_init=c.fmn_alpha_init,
                       alpha_final=c.fmn_alpha_init / 100, gamma_init=c.fmn_gamma_init,
                       gamma_final=fmn.GAMMA_FINAL, loss='logit margin', annealing='cosine'),
        attack=lambda c: functools.partial(fmn.fmn_l2, steps=c.fmn_steps,
                                           alpha_init=c.fmn_alpha_init,
                                           gamma_init=c.fmn_gamma_init),
        budgets=_no_budget, norm='l2'),
    'fab': AttackSpec(
        'FAB', True, lambda c: _fab_params(c, targeted=False),
        attack=lambda c: functools.partial(fab.fab, **_fab_args(c, 'l2')),
        budgets=_no_budget, norm='l2'),
    'fab_linf': AttackSpec(
        'FAB-Linf', True, lambda c: _fab_params(c, targeted=False),
        attack=lambda c: functools.partial(fab.fab, **_fab_args(c, 'linf')),
        budgets=_no_budget, norm='linf'),
    'pgn': AttackSpec(
        'PGN', False,
        lambda c: dict(gen_width=c.pgn_gen_width, lr=c.pgn_lr, epochs=c.pgn_attack_epochs,
                       train_size=c.pgn_attack_train_size, batch_size=c.pgn_batch_size,
                       seed=c.seed, grad_input=c.pgn_grad_input,
                       loss=PGN_ATTACK_LOSS_TEXT[c.pgn_attack_loss]),
        budgets=_pgn_budgets, make=_make_pgn, norm='l2'),
    'pgd_unbounded': AttackSpec(
        'PGD (unbounded)', False, lambda c: _pgd_params(c.unbounded_steps),
        attack=lambda c: _pgd(c.unbounded_steps, 'l2'),
        budgets=lambda c: [{'eps': float(c.unbounded_eps)}], selectable=False, norm='l2'),
}
ATTACKS = tuple(name for name, spec in ATTACK_TABLE.items() if spec.selectable)
MINIMAL_NORM = tuple(name for name, spec in ATTACK_TABLE.items() if spec.minimal_norm)
# The default: the paper's attacks (section 4.2) and PGN as an attack (Figure 3).
DEFAULT_ATTACKS = ('fgm', 'mim', 'pgd', 'deepfool', 'cw', 'pgn')
