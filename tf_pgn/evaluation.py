"""Robustness evaluation of a trained classifier: section 4.2 of the PGN paper and beyond.

Every attack runs through the shared runner (``attacks.run_attack``), white-box on the evaluated
model and, given a source model, black-box (crafted on the source, measured on the evaluated
model). Each attack is one entry of ``ATTACK_TABLE``: the paper's FGM, MIM, PGD, DeepFool, C&W and
PGN; APGD-CE, APGD-DLR and APGD-T (Croce & Hein 2020), Square (Andriushchenko et al. 2020), FMN
(Pintor et al. 2021), FAB and FAB-T (Croce & Hein, ICML 2020); and ``autoattack``, the
per-example worst case over APGD-CE, APGD-T, FAB-T and Square run in turn on the examples still
robust (AutoAttack's 'standard' version). The bounded attacks (FGM, MIM, PGD, APGD, FAB-T,
Square, AutoAttack) run at the evaluation's ``norm``: L2 (the paper's) or Linf (budgets on the
[0, 1] pixel scale; RobustBench's CIFAR setting is AutoAttack at 8/255); DeepFool, C&W, FAB and
FMN (minimal-norm) and PGN (an L2 penalty) are L2 at either. Per attack and budget: adversarial
accuracy; rho (Eq. 6), the mean and median L2 norm of the perturbation over successful
adversarial examples, and the authors' variant of it (``*_paper``); in a Linf evaluation also
the mean Linf norm over the same examples; for the minimal-norm attacks the accuracy-vs-L2
curve; for the worst case which attack broke each example. Soundness checks from Carlini et al. 2019 ("On Evaluating Adversarial Robustness") and
AutoAttack's flags flag gradient masking.

An output folder holds ``results.json``, ``results.md`` (Table 2's layout),
``accuracy_vs_l2.png`` (Figures 3-4) and ``partial/<box>_<attack>.json``, one per finished
(attack, budget), which a rerun of the same evaluation reuses. One evaluation at a time writes a
folder (``tf_pgn.locks``).
"""
import contextlib
import dataclasses
import functools
import json
import math
import os
import shutil
import time
from typing import Callable

import numpy as np
import tensorflow as tf

from tf_pgn import data as data_lib
from tf_pgn import inputs, locks, metrics, plots
from tf_pgn.attacks import carlini_wagner_l2, deepfool_l2, predict, run_attack
from tf_pgn.attacks import apgd, fab, fmn, square
from tf_pgn.attacks.common import margin, value_and_gradient, worst_case
from tf_pgn import perturbation
from tf_pgn.attacks.pgn_attack import LOSSES as PGN_ATTACK_LOSSES
from tf_pgn.attacks.pgn_attack import MARGIN_KAPPA, PGNAttack
from tf_pgn.attacks.runner import finished_batches
from tf_pgn.config import GRAD_INPUTS, NORMS, setting
from tf_pgn.export import SavedModelClassifier, load_classifier, weights_digest
from tf_pgn.io_utils import write_json_atomic, write_text_atomic

__all__ = ['ATTACKS', 'ATTACK_TABLE', 'AttackSpec', 'DEFAULT_ATTACKS', 'EvalConfig', 'EvalError',
           'accuracy_vs_l2_series', 'attack_norm', 'evaluate', 'evaluate_model', 'make_eval_config',
           'masking_probes', 'results_markdown', 'soundness_checks']

BOXES = {'whitebox': 'white-box', 'blackbox': 'black-box'}
CURVE_RADII = tuple(round(0.05 * i, 2) for i in range(41))  # 0 to 2 in steps of 0.05
# DeepFool (Moosavi-Dezfooli et al. 2016): linearisation steps and candidate classes.
DEEPFOOL_MAX_ITER = 50
DEEPFOOL_CLASSES = 10
# AutoAttack's 'standard' version (Croce & Hein 2020; fra31/auto-attack): these attacks in turn,
# each on the examples the earlier ones left robust. FAB-T, its third attack, is not built here.
AUTOATTACK_PARTS = ('apgd_ce', 'apgd_t', 'fab_t', 'square')
# Soundness: an unbounded attack should fool (almost) every clean-correct example, and a few
# examples of noise are tolerated in the comparisons between accuracies.
SUCCESS_THRESHOLD = 0.99
NOISE_EXAMPLES = 1
# Masking flag for Square inside a worst case: the share of the examples it may break after the
# gradient attacks (AutoAttack's check_square_sr, alpha 0.002).
SQUARE_GAIN_TOLERANCE = 0.002
# Masking flag for randomness: the largest change of the L2-normalised logits between two
# identical calls that still counts as none (AutoAttack's check_randomized, alpha 1e-4).
REPEAT_TOLERANCE = 1e-4
_NOTES = {
    'rho_mean': 'mean L2 norm of x_adv - x over successful adversarial examples: classified '
                'correctly clean and wrongly after the attack (Eq. 6)',
    'rho_mean_paper': "the paper's variant (authors' code): the mean over all adversarial "
                      'examples classified wrongly, clean mistakes (perturbation ~0) included, '
                      'which biases rho down',
    'success_rate': 'n_success / n_clean_correct',
    'blackbox': 'crafted on the source model, measured on the evaluated model',
    'accuracy_vs_l2': 'accuracy when every perturbation larger than the radius counts as a '
                      'failed attack (minimal-norm attacks)',
    'broken_by': 'worst case (autoattack): per attack, the examples it broke first, as the '
                 'crafting model saw them (clean: misclassified without attack); '
                 'broken_by_example names it per example (null: none did)',
    'probes': 'masking flags: examples whose input gradient of the logit margin is exactly zero; '
              'the change of the L2-normalised logits between two identical calls',
    'null': 'a mean or median over no examples',
}
# What a Linf evaluation's results add to the notes.
_LINF_NOTES = {
    'norm': 'the bounded attacks (eps budgets) run at Linf, eps on the [0, 1] pixel scale; the '
            'minimal-norm attacks, PGN and the unbounded PGD of the soundness check at L2; '
            'rho stays the L2 norm',
    'linf_mean': 'mean Linf norm of x_adv - x over the successful adversarial examples of rho',
}
_NORM_LABELS = {'l2': 'L2', 'linf': 'Linf'}


_NON_NEGATIVE = ('deepfool_overshoot', 'seed')


class EvalError(ValueError):
  """The evaluation cannot run as asked; the message says why and what to pass instead."""


# -- the table of attacks --------------------------------------------------------------------
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
    minimal_norm: unbounded, minimising the perturbation: one result with an accuracy-vs-L2
      curve; otherwise one result per budget.
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
    norm: the norm it runs at whatever the evaluation's (L2: the minimal-norm attacks, PGN's
      L2 penalty, the unbounded PGD); None: the evaluation's ``norm``, which ``attack`` reads.
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
class _Context:
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


def _worst_case_attack(cfg, parts: tuple):
  """(model, x, y, eps) -> (x_adv, broken_by): ``parts`` in turn, each on the examples left."""
  fns = [ATTACK_TABLE[name].attack(cfg) for name in parts]

  def attack(model, x, y, eps):
    return worst_case(model, x, y, [lambda m, xs, ys, f=f: f(m, xs, ys, eps) for f in fns])

  return attack


# The PGN attack's loss as results.json's attack_settings state it, per --pgn_attack_loss.
PGN_ATTACK_LOSS_TEXT = {
    'ce': '-CE(F(x_adv), y) + c_L * mean ||x_adv - x||^2',
    'margin': f'mean max(Z_y - max_(j != y) Z_j, -{MARGIN_KAPPA:g}) + c_L * mean ||x_adv - x||^2'}


def _pgn_budgets(cfg) -> list:
  eps = {} if cfg.pgn_eps is None else dict(eps=float(cfg.pgn_eps))
  return [dict(c_l=float(c), **eps) for c in cfg.pgn_c_l_list]


def _make_pgn(cfg, context: _Context):
  def make(model, setting):
    if context.train_data is None:
      raise EvalError('the pgn attack trains a generator: pass training images (train_data)')
    x, y = context.train_data()
    attack = PGNAttack(model, context.num_classes, setting['c_l'], cfg.pgn_gen_width, cfg.pgn_lr,
                       cfg.pgn_batch_size, cfg.seed, cfg.pgn_grad_input, setting.get('eps'),
                       x.shape[1:], cfg.pgn_attack_loss)
    history = attack.fit(x[:cfg.pgn_attack_train_size], y[:cfg.pgn_attack_train_size],
                         cfg.pgn_attack_epochs, progress_desc=f'train PGN c_L={setting["c_l"]:g}')
    return attack.attack_fn, dict(train_history=history,
                                  train_seconds=sum(h['seconds'] for h in history))
  return make


ATTACK_TABLE = {
    'fgm': AttackSpec('FGM', False, lambda c: dict(norm=_NORM_LABELS[c.norm]),
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
        attack=lambda c: _worst_case_attack(c, AUTOATTACK_PARTS), parts=AUTOATTACK_PARTS),
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
  batch_size: int = setting(256, 'Examples per attack batch.')
  seed: int = setting(1234, 'Seed of the PGN attack generators, the random starts of APGD and '
                      'the Square attack\'s search.')

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
    result is reused only under the same ones. At Linf each names the norm it runs at, so that no
    Linf result passes for an L2 one; at L2 they are as before evaluations had a norm, so that
    earlier partial results stay valid."""
    params = {name: spec.params(self) for name, spec in ATTACK_TABLE.items()}
    if self.norm == 'l2':
      return params
    return {name: dict(p, norm=_NORM_LABELS[attack_norm(name, self.norm)])
            for name, p in params.items()}

  def settings(self) -> dict:
    """{attack: its budgets}, one dict per budget: {'eps': e}, {'c_l': c}, or {} (minimal-norm)."""
    return {name: spec.budgets(self) for name, spec in ATTACK_TABLE.items()}

  def result_keys(self) -> list:
    """The keys of results.json's ``attacks`` an evaluation with this config writes."""
    settings = self.settings()
    return [_key(name, s) for name in self.attacks for s in settings[name]]


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


# -- building the attacks --------------------------------------------------------------------
@dataclasses.dataclass
class _Attack:
  """An attack of ATTACK_TABLE, its budgets, and how to get its batch function for run_attack."""
  name: str
  spec: AttackSpec
  settings: list  # one dict per budget: {'eps': e}, {'c_l': c}, or {} (minimal-norm)
  make: Callable  # (crafting model, setting) -> (attack_fn, extra numbers for the results)


def _compile(spec: AttackSpec, cfg: EvalConfig, context: _Context) -> Callable:
  """The ``make`` of an attack: its batch function compiled once (``tf.function``); a bounded
  attack's eps is a tensor argument, so one trace serves every budget."""
  if spec.make is not None:
    return spec.make(cfg, context)
  compiled = tf.function(spec.attack(cfg), reduce_retracing=True)
  if spec.minimal_norm:
    return lambda model, setting: (compiled, {})

  def make(model, setting):
    del model  # run_attack passes the crafting model to the attack
    eps = tf.constant(setting['eps'], tf.float32)
    return (lambda m, x, y: compiled(m, x, y, eps)), {}

  return make


def _build_attacks(cfg: EvalConfig, names, context: _Context) -> dict:
  """The attacks ``names`` of ATTACK_TABLE, each compiled once."""
  return {name: _Attack(name, ATTACK_TABLE[name], ATTACK_TABLE[name].budgets(cfg),
                        _compile(ATTACK_TABLE[name], cfg, context)) for name in names}


def _key(name: str, setting: dict) -> str:
  return name + ''.join(f'_{k}{v:g}' for k, v in setting.items())


# -- metrics ---------------------------------------------------------------------------------
def _json_safe(obj):
  """numpy scalars to Python numbers, tuples to lists, NaN and infinities to None."""
  if isinstance(obj, dict):
    return {str(k): _json_safe(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_json_safe(v) for v in obj]
  if isinstance(obj, (float, np.floating)):
    return float(obj) if math.isfinite(obj) else None
  if isinstance(obj, np.integer):
    return int(obj)
  return obj


def _summarize(x, x_adv, y, pred_clean, pred_adv, curve: bool, linf: bool) -> dict:
  """The numbers derived from one attack's x_adv (section 4.2, Eq. 6); with ``linf`` (a Linf
  evaluation) also the mean Linf norm over the successful examples of rho and the largest."""
  norms = metrics.perturbation_norms(x, x_adv)
  n_clean_correct = int(np.sum(pred_clean == y))
  out = dict(accuracy=metrics.accuracy(pred_adv, y), n_correct=int(np.sum(pred_adv == y)),
             n_clean_correct=n_clean_correct, mean_l2=float(norms.mean()),
             max_l2=float(norms.max()), **metrics.rho(x, x_adv, y, pred_clean, pred_adv))
  out['success_rate'] = out['n_success'] / n_clean_correct if n_clean_correct else math.nan
  if linf:
    sizes = np.abs(np.asarray(x_adv, np.float64) - np.asarray(x, np.float64)).reshape(
        len(x), -1).max(axis=1)
    success = (pred_clean == y) & (pred_adv != y)
    out.update(linf_mean=float(sizes[success].mean()) if success.any() else math.nan,
               max_linf=float(sizes.max()))
  if curve:
    out['accuracy_vs_l2'] = dict(radii=list(CURVE_RADII), accuracy=metrics.accuracy_vs_l2_curve(
        x, x_adv, y, pred_clean, pred_adv, CURVE_RADII).tolist())
  return out


def _broken_by(codes: np.ndarray, parts: tuple) -> dict:
  """A worst case's per-example codes (``attacks.common.worst_case``) as counts and names."""
  names = ('clean',) + tuple(parts)
  return dict(broken_by={name: int(np.sum(codes == i)) for i, name in enumerate(names)},
              n_unbroken=int(np.sum(codes < 0)),
              broken_by_example=[names[c] if c >= 0 else None for c in codes.tolist()])


@dataclasses.dataclass
class _Model:
  """A classifier, what the results call it, and what its partial results are keyed by: the
  digest of its weights, so that a model moved or spelled by another path reuses them and one
  retrained in place does not (the description where it has no weights)."""
  model: Callable
  description: str
  weights_of: Callable | None = None  # the model whose weights identify it (default ``model``)

  @functools.cached_property
  def identity(self) -> str:
    digest = weights_digest(self.weights_of or self.model)
    return f'weights {digest}' if digest else self.description


class _Session:
  """Runs (attack, budget, box) evaluations on fixed examples, reusing finished ones when it has
  a ``partial_dir``."""

  def __init__(self, cfg: EvalConfig, target: _Model, x, y, partial_dir: str | None,
               dataset: str, data: str):
    self.cfg, self.target, self.x, self.y = cfg, target, x, y
    self.partial_dir, self.dataset, self.data = partial_dir, dataset, data
    self.params = cfg.attack_params()  # at Linf naming each attack's norm
    self.pred_clean = predict(target.model, x, cfg.batch_size).argmax(-1)

  def result(self, attack: _Attack, setting: dict, box: str, crafter: _Model) -> dict:
    """x_adv made on ``crafter``, measured on the target; from partial/ when already done."""
    key = f'{box}_{_key(attack.name, setting)}'
    if self.partial_dir is None:
      return self._measure(attack, setting, crafter, key)
    path = os.path.join(self.partial_dir, f'{key}.json')
    fingerprint = _json_safe(dict(
        target=self.target.identity, crafted_on=crafter.identity,
        dataset=self.dataset, data=self.data, num_examples=len(self.y), attack=attack.name,
        params=self.params[attack.name], setting=setting))
    cached = _read_partial(path, fingerprint)
    if cached is not None:
      print(f'{key}: reusing {path}', flush=True)
      return cached
    # Finished batches of an interrupted run of this very attack are reused (run_attack).
    batches = os.path.join(self.partial_dir, f'{key}.batches')
    if _read_partial(os.path.join(batches, 'fingerprint.json'), fingerprint,
                     'fingerprint') is None:
      shutil.rmtree(batches, ignore_errors=True)
      write_json_atomic(os.path.join(batches, 'fingerprint.json'), dict(fingerprint=fingerprint))
    reused = finished_batches(batches)
    if reused:
      print(f'{key}: resuming after {reused} finished batch(es) in {batches}', flush=True)
    out = self._measure(attack, setting, crafter, key, batches, reused)
    write_json_atomic(path, dict(fingerprint=fingerprint, result=out))
    shutil.rmtree(batches, ignore_errors=True)
    return out

  def _measure(self, attack: _Attack, setting: dict, crafter: _Model, key: str,
               resume_dir: str | None = None, reused: int = 0) -> dict:
    """Runs the attack (after ``reused`` batches saved in ``resume_dir``) and summarizes it."""
    attack_fn, extra = attack.make(crafter.model, setting)
    start = time.perf_counter()
    x_adv = run_attack(attack_fn, crafter.model, self.x, self.y, self.cfg.batch_size,
                       progress_desc=key, resume_dir=resume_dir, aux=bool(attack.spec.parts))
    seconds = time.perf_counter() - start
    if attack.spec.parts:
      x_adv, broken_by = x_adv
      extra = dict(extra, **_broken_by(broken_by, attack.spec.parts))
    attacked = len(self.y) - min(len(self.y), reused * self.cfg.batch_size)
    pred_adv = predict(self.target.model, x_adv, self.cfg.batch_size).argmax(-1)
    out = _json_safe(dict(
        _summarize(self.x, x_adv, self.y, self.pred_clean, pred_adv, attack.spec.minimal_norm,
                   self.cfg.norm == 'linf'),
        seconds=seconds, images_per_second=attacked / seconds if attacked else None,
        resumed_examples=len(self.y) - attacked, **extra))
    print(f'{key}: accuracy={out["accuracy"]:.4f} rho_mean={_fmt(out["rho_mean"])} '
          f'n_success={out["n_success"]} ({seconds:.1f} s for {attacked} images)',
          flush=True)
    return out


def _read_partial(path: str, fingerprint: dict, field: str = 'result'):
  """The cached ``field`` at ``path`` if it was made with the same fingerprint, else None."""
  try:
    with open(path) as f:
      cached = json.load(f)
  except (OSError, ValueError):
    return None
  if not isinstance(cached, dict) or cached.get('fingerprint') != fingerprint:
    return None
  return cached.get(field)


# -- the evaluation --------------------------------------------------------------------------
def _load_model(path: str, dataset: str, flag: str) -> _Model:
  model, num_classes, description = load_classifier(path)
  if num_classes != data_lib.NUM_CLASSES[dataset]:
    raise EvalError(f'{flag}={path} has {num_classes} classes but {dataset} has '
                    f'{data_lib.NUM_CLASSES[dataset]}: pass the --dataset the model was trained on')
  return _Model(model, description)


def evaluate(cfg: EvalConfig, ckpt: str, out_dir: str | None = None,
             data_dir: str | None = None, source_ckpt: str | None = None) -> dict:
  """Evaluates the classifier at ``ckpt`` (run directory or SavedModel) under every attack of
  ``cfg``, black-box too when ``source_ckpt`` is given; writes results.json, results.md and
  accuracy_vs_l2.png to ``out_dir`` (default ``<ckpt>/eval``) and returns the results (JSON-safe:
  equal to what results.json holds).

  Raises:
    ModelLoadError: a path is neither a run directory nor a SavedModel.
    EvalError: a model's number of classes does not match ``cfg.dataset``.
    DataError: the dataset cannot be read.
    LockError: another process evaluates into ``out_dir``.
    WriteError: a result could not be written (a full disk); a rerun reuses the finished ones.
  """
  start = time.perf_counter()
  out_dir = out_dir or os.path.join(ckpt, 'eval')
  target = _load_model(ckpt, cfg.dataset, '--ckpt')
  crafters = {'whitebox': target}
  if source_ckpt:
    crafters['blackbox'] = _load_model(source_ckpt, cfg.dataset, '--source_ckpt')
  with locks.hold(out_dir):
    ds = data_lib.load(cfg.dataset, data_dir)
    test = data_lib.subset(ds.test, cfg.num_examples)
    x, y = data_lib.to_float(test.x), test.y
    if ds.provenance.startswith('unverified'):
      print(f'warning: data {ds.provenance}', flush=True)
    train = data_lib.subset(ds.train, cfg.pgn_attack_train_size)
    results = dict(model=target.description, ckpt=ckpt, dataset=cfg.dataset,
                   num_examples=len(y), num_classes=ds.num_classes, out_dir=out_dir,
                   data=dict(fingerprint=ds.fingerprint, provenance=ds.provenance),
                   **_attack_all(cfg, crafters, x, y, ds.num_classes,
                                 lambda: (data_lib.to_float(train.x), train.y),
                                 os.path.join(out_dir, 'partial'), cfg.dataset, ds.fingerprint))
    if source_ckpt:
      results['source_ckpt'] = source_ckpt
    return _finish(results, start, out_dir)


def evaluate_model(classifier, x, y, attacks=None, eps_list=None, source=None, train_data=None,
                   out_dir: str | None = None, data_name: str = 'data', labels: str = 'sparse',
                   from_logits: bool = True, **settings) -> dict:
  """Evaluates any classifier on images in memory under the attacks of ``tf_pgn.evaluation``:
  ``tf_pgn.evaluate(classifier, x_test, y_test, attacks=['pgd', 'cw'])``.

  Args:
    classifier: a Keras model, a SavedModel (its path, or what ``tf.saved_model.load`` gives) or
      any callable mapping float32 [N, ...] images in [0, 1] to logits [N, K]; called without a
      ``training`` argument (a Keras model runs in inference mode).
    x, y: the images (in [0, 1], any shape: scale 0-255 images by 1 / 255 and give budgets on
      that scale) and their labels; every one is attacked. Bad values (NaN, pixels outside
      [0, 1], labels out of range or of the other form) stop it with a one-line InputError.
    attacks: names of ``ATTACKS`` (default ``DEFAULT_ATTACKS``, the paper's; ``pgn`` only with
      ``train_data``).
    eps_list: budgets of the bounded attacks at ``norm`` (a setting; default 'l2'), numbers or
      fractions such as '8/255' (default ``EvalConfig``'s).
    source: a classifier (as ``classifier``) for black-box results: crafted on it.
    train_data: (images, labels) the PGN attack's generator trains on.
    out_dir: if given, results.json, results.md, accuracy_vs_l2.png and partial/ (finished
      attacks, reused by a rerun) are written there.
    data_name: what the results call the data.
    labels: 'sparse' (class ids [N]) or 'categorical' (one-hot rows [N, K]), as Keras' losses.
    from_logits: False for classifiers that output probabilities (attacked on their logarithm).
    **settings: any other ``EvalConfig`` field (pgd_steps, cw_iterations, batch_size, ...).

  Returns:
    The results (JSON-safe): benign accuracy, and per attack and budget accuracy, rho (Eq. 6)
    and the rest, with the soundness checks, as ``evaluate`` gives them for a checkpoint.
  """
  start = time.perf_counter()
  if attacks is None:
    attacks = [a for a in DEFAULT_ATTACKS if a != 'pgn' or train_data is not None]
  cfg = make_eval_config(attacks=attacks, eps_list=eps_list, **settings)
  conventions = inputs.Conventions(labels, from_logits)
  crafters = {'whitebox': _as_model(classifier, conventions)}
  if source is not None:
    crafters['blackbox'] = _as_model(source, conventions)
  with inputs.reported():
    num_classes = predict(crafters['whitebox'].model, np.asarray(x[:1], np.float32)).shape[-1]
  x, y = inputs.check_arrays(x, y, num_classes, conventions)
  train = None
  if train_data is not None:
    train = inputs.check_arrays(*train_data, num_classes, conventions)
  with locks.hold(out_dir) if out_dir else contextlib.nullcontext():
    results = dict(model=crafters['whitebox'].description, dataset=data_name,
                   num_examples=len(y), num_classes=num_classes, out_dir=out_dir,
                   **_attack_all(cfg, crafters, x, y, num_classes,
                                 None if train is None else lambda: train,
                                 out_dir and os.path.join(out_dir, 'partial'), data_name,
                                 data_lib.fingerprint(data_lib.Split(x, y))))
    return _finish(results, start, out_dir)


def _as_model(classifier, conventions=inputs.Conventions()) -> _Model:
  """A ``_Model`` from a Keras model, a SavedModel (path or loaded object) or a callable; one
  that outputs probabilities (``conventions.from_logits`` False) is attacked on their log."""
  if not conventions.from_logits:
    found = _as_model(classifier)
    return _Model(inputs.UnitLogits(found.model, conventions), found.description,
                  found.model)
  if isinstance(classifier, (str, os.PathLike)):
    model, _, description = load_classifier(os.fspath(classifier))
    return _Model(model, description)
  if hasattr(classifier, 'serve'):  # what tf.saved_model.load gives
    return _Model(SavedModelClassifier(classifier), 'a loaded SavedModel')
  if not callable(classifier):
    raise EvalError(f'{type(classifier).__name__} is not a classifier: pass a Keras model, a '
                    'SavedModel or a callable mapping images to logits')
  name = getattr(classifier, 'name', None) or getattr(classifier, '__name__', '')
  return _Model(classifier, f'{type(classifier).__name__} {name}'.strip())


def _attack_all(cfg: EvalConfig, crafters: dict, x, y, num_classes: int,
                train_data: Callable | None, partial_dir: str | None, dataset: str,
                data: str) -> dict:
  """Every attack and budget of ``cfg`` on (x, y), white-box on ``crafters['whitebox']`` and
  black-box from ``crafters['blackbox']`` if given; the results' benign accuracy, settings,
  entries and unbounded PGD (the soundness check's)."""
  target = crafters['whitebox']
  session = _Session(cfg, target, x, y, partial_dir, dataset, data)
  attacks = _build_attacks(cfg, cfg.attacks + ('pgd_unbounded',),
                           _Context(num_classes, train_data))
  params = cfg.attack_params()
  entries = {}
  for name in cfg.attacks:
    for budget in attacks[name].settings:
      entries[_key(name, budget)] = dict(
          attack=name, **budget,
          **{box: session.result(attacks[name], budget, box, crafter)
             for box, crafter in crafters.items()})
  unbounded = attacks['pgd_unbounded']
  results = dict(
      norm=cfg.norm,
      benign_accuracy=metrics.accuracy(session.pred_clean, y),
      attack_settings={name: dict(params[name], budgets=attacks[name].settings)
                       for name in cfg.attacks},
      attacks=entries,
      unbounded_pgd=dict(eps=cfg.unbounded_eps, **params['pgd_unbounded'], **session.result(
          unbounded, unbounded.settings[0], 'whitebox', target)),
      probes=masking_probes(target.model, x, y, cfg.batch_size),
      notes=_NOTES if cfg.norm == 'l2' else dict(_NOTES, **_LINF_NOTES))
  if 'blackbox' in crafters:
    results.update(source_model=crafters['blackbox'].description,
                   source_benign_accuracy=metrics.accuracy(
                       predict(crafters['blackbox'].model, x, cfg.batch_size), y))
  return results


def _finish(results: dict, start: float, out_dir: str | None) -> dict:
  """Adds the soundness checks (printed) and the seconds; writes results.json, results.md and
  accuracy_vs_l2.png (when an attack ran at L2) to ``out_dir`` if given. Returns the JSON-safe
  results."""
  results['checks'] = soundness_checks(results)
  for check in results['checks']:
    print(f'check {check["name"]}: {"ok" if check["passed"] else "WARNING"}: {check["detail"]}')
  results['seconds'] = time.perf_counter() - start
  results = _json_safe(results)
  if out_dir:
    write_json_atomic(os.path.join(out_dir, 'results.json'), results)
    write_text_atomic(os.path.join(out_dir, 'results.md'), results_markdown(results))
    panels, figure = _plot_panels(results), os.path.join(out_dir, 'accuracy_vs_l2.png')
    if panels:
      plots.accuracy_vs_l2(panels, figure)
    else:  # an earlier evaluation's figure would not show these results
      with contextlib.suppress(FileNotFoundError):
        os.remove(figure)
  return results


def masking_probes(model, x, y, batch_size: int = 256) -> dict:
  """What the masking flags of ``soundness_checks`` read, in the spirit of AutoAttack's checks
  (fra31/auto-attack, ``checks.py``):

  - ``zero_gradient``: the examples whose input gradient of the logit margin ``Z_y - max_{j != y}
    Z_j`` is exactly zero (AutoAttack tests the DLR loss's; both are ratios or differences of
    logits, so unlike CE's gradient they do not vanish when the softmax saturates);
  - ``repeated_call``: the largest L2 change of the L2-normalised logits of the first batch
    between two identical calls, and whether the predictions agree (a randomised classifier).
  """
  gradient = tf.function(lambda xb, yb: value_and_gradient(
      model, xb, lambda logits: margin(logits, tf.cast(yb, tf.int32)))[2], reduce_retracing=True)
  zero = 0
  for start in range(0, len(y), batch_size):
    g = gradient(tf.constant(x[start:start + batch_size]), tf.constant(y[start:start + batch_size]))
    zero += int(tf.reduce_sum(tf.cast(tf.reduce_all(tf.equal(
        tf.reshape(g, [tf.shape(g)[0], -1]), 0.0), axis=-1), tf.int32)))
  first = tf.constant(x[:batch_size])
  calls = [np.asarray(model(first), np.float64) for _ in range(2)]
  unit = [c / (np.linalg.norm(c, axis=-1, keepdims=True) + 1e-10) for c in calls]
  return dict(
      zero_gradient=dict(examples=zero, of=len(y), fraction=zero / len(y), loss='logit margin'),
      repeated_call=dict(examples=len(first), tolerance=REPEAT_TOLERANCE,
                         max_change=float(np.linalg.norm(unit[0] - unit[1], axis=-1).max()),
                         predictions_equal=bool(np.array_equal(calls[0].argmax(-1),
                                                               calls[1].argmax(-1)))))


# -- checks and reports ----------------------------------------------------------------------
def _success_check(name: str, result: dict, what: str) -> dict:
  rate = result['success_rate']
  passed = rate is not None and rate >= SUCCESS_THRESHOLD
  detail = (f'{what} fools {result["n_success"]} of {result["n_clean_correct"]} clean-correct '
            f'examples ({_fmt(rate)})')
  if not passed:
    detail += (f', below {SUCCESS_THRESHOLD:.0%}: an unbounded attack should fool them all; '
               'suspect gradient masking or a too weak attack')
  return dict(name=name, passed=passed, detail=detail)


def soundness_checks(results: dict) -> list:
  """Checks of Carlini et al. 2019, each ``{name, passed, detail}``:

  1. unbounded attacks (PGD at a huge eps; C&W) fool >= 99% of the clean-correct examples;
  2. accuracy under PGD does not rise with eps (one example of noise allowed);
  3. black-box accuracy is not below white-box accuracy for the same attack and budget (one
     example of noise allowed);

  and masking flags in the spirit of AutoAttack's (Croce & Hein 2020; ``masking_probes``):

  4. no example has an exactly zero input gradient (``zero_gradients``);
  5. two identical calls give the same outputs (``deterministic_outputs``; else randomness);
  6. Square, which reads no gradient, leaves no lower accuracy than every white-box attack at
     the same norm and eps (one example of noise allowed) and in a worst case breaks at most 0.2% of the
     examples after the gradient attacks (AutoAttack's check_square_sr; at least one example)
     (``square_not_stronger``).
  """
  entries = results['attacks']
  unbounded = results['unbounded_pgd']
  norm = f' {unbounded["norm"]}' if 'norm' in unbounded else ''  # named in Linf evaluations
  checks = [_success_check('unbounded_pgd_success', unbounded,
                           f'PGD{norm} at eps={unbounded["eps"]:g} ({unbounded["steps"]} steps)')]
  if 'cw' in entries:
    cw = results['attack_settings']['cw']
    checks.append(_success_check('cw_success', entries['cw']['whitebox'],
                                 f'C&W ({cw["max_iterations"]} iterations, '
                                 f'{cw["binary_search_steps"]} search steps)'))
  pgd = sorted((e['eps'], e['whitebox']['n_correct']) for e in entries.values()
               if e['attack'] == 'pgd')
  if len(pgd) > 1:
    rises = [f'{a[0]:g} -> {b[0]:g}' for a, b in zip(pgd, pgd[1:]) if b[1] > a[1] + NOISE_EXAMPLES]
    detail = ('correct examples under PGD by eps: ' + ', '.join(f'{e:g}: {n}' for e, n in pgd)
              + f'; must not rise with eps ({NOISE_EXAMPLES} example of noise allowed)')
    checks.append(dict(name='pgd_monotone_in_eps', passed=not rises,
                       detail=detail + (f'; rises at eps {", ".join(rises)}' if rises else '')))
  black = {k: e for k, e in entries.items() if 'blackbox' in e}
  if black:
    stronger = [k for k, e in black.items()
                if e['blackbox']['n_correct'] < e['whitebox']['n_correct'] - NOISE_EXAMPLES]
    detail = (f'black-box accuracy >= white-box accuracy for {len(black) - len(stronger)} of '
              f'{len(black)} attacks and budgets ({NOISE_EXAMPLES} example of noise allowed)')
    if stronger:
      detail += (f'; black-box is stronger for {", ".join(stronger)}: the white-box attack '
                 'is too weak there (gradient masking?)')
    checks.append(dict(name='blackbox_not_stronger', passed=not stronger, detail=detail))
  return checks + _masking_checks(results)


def _masking_checks(results: dict) -> list:
  """Checks 4-6 of ``soundness_checks``."""
  checks = []
  probes = results.get('probes')
  if probes:
    zero = probes['zero_gradient']
    detail = (f'{zero["examples"]} of {zero["of"]} examples have an exactly zero input gradient '
              f'of the {zero["loss"]}')
    if zero['examples']:
      detail += ': gradient attacks cannot move them; suspect gradient masking'
    checks.append(dict(name='zero_gradients', passed=zero['examples'] == 0, detail=detail))
    repeat = probes['repeated_call']
    passed = repeat['predictions_equal'] and repeat['max_change'] <= repeat['tolerance']
    detail = (f'two identical calls on {repeat["examples"]} examples change the normalised '
              f'logits by at most {repeat["max_change"]:.2g} (tolerance {repeat["tolerance"]:g})'
              + ('' if repeat['predictions_equal'] else ' and change predictions'))
    if not passed:
      detail += ': a randomised classifier; attack its expectation (EOT) instead'
    checks.append(dict(name='deterministic_outputs', passed=passed, detail=detail))
  entries = results['attacks']
  norm = results.get('norm', 'l2')  # results from before evaluations had a norm are L2
  white = {}  # eps -> [(n_correct, key)] of the white-box gradient attacks at the same norm
  for key, e in entries.items():
    spec = ATTACK_TABLE.get(e['attack'])
    if ('eps' in e and spec and not spec.gradient_free and not spec.parts and
        attack_norm(e['attack'], norm) == norm):
      white.setdefault(e['eps'], []).append((e['whitebox']['n_correct'], key))
  compared, found = [], []
  for key, e in entries.items():
    spec = ATTACK_TABLE.get(e['attack'])
    if spec and spec.gradient_free and white.get(e.get('eps')):
      n_white, strongest = min(white[e['eps']])
      compared.append(key)
      if e['whitebox']['n_correct'] < n_white - NOISE_EXAMPLES:
        found.append(f'{key} leaves {e["whitebox"]["n_correct"]} correct, {strongest} '
                     f'{n_white}')
    for part in spec.parts if spec else ():
      broken = e['whitebox']['broken_by'][part]
      if ATTACK_TABLE[part].gradient_free:
        compared.append(f'{key} ({part})')
        if broken > max(NOISE_EXAMPLES, SQUARE_GAIN_TOLERANCE * results['num_examples']):
          found.append(f'{part} broke {broken} examples the gradient attacks of {key} left')
  if compared:
    detail = (f'the black-box Square attack is not stronger than the white-box attacks in '
              f'{", ".join(compared)} ({NOISE_EXAMPLES} example of noise allowed)')
    if found:
      detail = (f'Square is stronger: {"; ".join(found)}: suspect gradient masking, or '
                'white-box attacks too weak')
    checks.append(dict(name='square_not_stronger', passed=not found, detail=detail))
  return checks


def _fmt(value, digits: int = 3) -> str:
  return '-' if value is None or value != value else f'{value:.{digits}f}'


def _eps_text(eps: float, norm: str) -> str:
  """eps as results.md writes it: at Linf in pixel levels (8/255) where it is a whole number."""
  levels = eps * 255.0
  if norm == 'linf' and abs(levels - round(levels)) < 1e-6:
    return f'{round(levels)}/255'
  return f'{eps:g}'


def _label(entry: dict, norm: str = 'l2') -> str:
  """The row name: the attack and its budget (PGN: c_L and the white-box mean L2 it gave); in a
  Linf evaluation first the norm the attack ran at."""
  label = ATTACK_TABLE[entry['attack']].label
  runs_at = attack_norm(entry['attack'], norm)
  details = [] if norm == 'l2' else [_NORM_LABELS[runs_at]]
  if 'eps' in entry:
    details.append(f'eps={_eps_text(entry["eps"], runs_at)}')
  elif 'c_l' in entry:
    details.append(f'c_L={entry["c_l"]:g}, mean L2 {_fmt(entry["whitebox"]["mean_l2"])}')
  return f'{label} ({", ".join(details)})' if details else label


def results_markdown(results: dict) -> str:
  """Table 2's layout: one row per attack and budget; white-box accuracy and rho (in a Linf
  evaluation also the Linf mean), black-box accuracy; then the soundness checks."""
  norm = results.get('norm', 'l2')  # results from before evaluations had a norm are L2
  source = (f'; black-box examples crafted on {results["source_model"]} (benign accuracy '
            f'{_fmt(results["source_benign_accuracy"])})' if 'source_model' in results else '')
  linf = norm == 'linf'
  if linf:
    at_l2 = [ATTACK_TABLE[n].label for n in results['attack_settings']
             if attack_norm(n, norm) == 'l2']
    scope = ('Bounded attacks (eps) at Linf, eps on the [0, 1] pixel scale'
             + (f'; {", ".join(at_l2)} at L2.' if at_l2 else '.'))
  else:
    scope = 'All attacks L2.'
  lines = [
      f'# Robustness of {results["model"]}', '',
      f'{results["dataset"]}, first {results["num_examples"]} test images; benign accuracy '
      f'{_fmt(results["benign_accuracy"])}{source}.', '',
      f'{scope} rho: mean / median L2 norm of the perturbation over successful '
      'adversarial examples (clean-correct, then misclassified). rho (paper\'s variant): the '
      "authors' code's mean over all misclassified adversarial examples, clean mistakes "
      f'included. {", ".join(ATTACK_TABLE[n].label for n in MINIMAL_NORM)} are minimal-norm '
      '(unbounded) attacks.' + (' Linf mean: the mean Linf norm over the examples of rho.'
                                if linf else ''), '',
      "| attack | white-box acc | rho mean | rho median | rho mean (paper's variant) "
      f'{"| Linf mean " if linf else ""}| black-box acc |',
      '|---|' + '---:|' * (6 if linf else 5),
  ]
  for entry in results['attacks'].values():
    wb = entry['whitebox']
    bb = _fmt(entry['blackbox']['accuracy']) if 'blackbox' in entry else '-'
    linf_mean = f'{_fmt(wb["linf_mean"], 4)} | ' if linf else ''
    lines.append(f'| {_label(entry, norm)} | {_fmt(wb["accuracy"])} | {_fmt(wb["rho_mean"])} | '
                 f'{_fmt(wb["rho_median"])} | {_fmt(wb["rho_mean_paper"])} | {linf_mean}{bb} |')
  worst = [e for e in results['attacks'].values() if 'broken_by' in e['whitebox']]
  if worst:
    lines += ['', '## Worst case per example', '',
              'Which attack broke each example first, on the crafting model (clean: '
              'misclassified without attack).', '']
  for entry in worst:
    wb = entry['whitebox']
    broken = ', '.join(f'{ATTACK_TABLE[n].label if n in ATTACK_TABLE else n} {k}'
                       for n, k in wb['broken_by'].items())
    lines.append(f'- {_label(entry, norm)}: robust accuracy {_fmt(wb["accuracy"])}; broken by '
                 f'{broken}; unbroken {wb["n_unbroken"]}')
  lines += ['', '## Soundness checks', '']
  lines += [f'- {"ok" if c["passed"] else "**WARNING**"} `{c["name"]}`: {c["detail"]}'
            for c in results['checks']]
  return '\n'.join(lines) + '\n'


def accuracy_vs_l2_series(results: dict, box: str = 'whitebox', attacks=None) -> list:
  """The ``plots.accuracy_vs_l2`` series of ``results`` for ``box``, one per L2 attack (all of
  ``results``' by default; in a Linf evaluation the Linf attacks have no place on the L2 axis): a
  curve for a minimal-norm attack; points at eps for the bounded attacks and at the mean
  perturbation L2 for PGN (Figure 3)."""
  norm = results.get('norm', 'l2')  # results from before evaluations had a norm are L2
  series = []
  for name in attacks or results['attack_settings']:
    entries = [e for e in results['attacks'].values() if e['attack'] == name and box in e]
    if not entries or attack_norm(name, norm) != 'l2':
      continue
    label = ATTACK_TABLE[name].label
    if ATTACK_TABLE[name].minimal_norm:
      curve = entries[0][box]['accuracy_vs_l2']
      series.append(dict(label=label, x=curve['radii'], y=curve['accuracy'], curve=True))
    else:
      points = sorted((e['eps'] if 'eps' in e else e[box]['mean_l2'], e[box]['accuracy'])
                      for e in entries if 'eps' in e or e[box]['mean_l2'] is not None)
      series.append(dict(label=label, x=[p[0] for p in points],
                         y=[p[1] for p in points], curve=False))
  return series


def _plot_panels(results: dict) -> list:
  """Accuracy vs L2, one panel per box (white-box, black-box) with every L2 attack; none in a
  Linf evaluation without one."""
  return [dict(title=f'{title}, {results["dataset"]}', series=series,
               benign_accuracy=results['benign_accuracy'])
          for box, title in BOXES.items()
          if (series := accuracy_vs_l2_series(results, box))]
