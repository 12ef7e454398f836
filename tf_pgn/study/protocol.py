"""What the study measures (Figures 2-5 and Table 2 of the PGN paper): the hyper-parameter each
defense is swept by, PGN's variants, the seeds, the evaluation of every job and the labels of the
report. Plain constants and helpers: this module imports nothing of tf_pgn.
"""

__all__ = ['AUTOATTACK_DIR', 'AUTOATTACK_KEY', 'AUTOATTACK_POINTS', 'AUTOATTACK_SETTINGS',
           'BEST_PGN_VARIANT', 'CURVE_VARIANTS', 'EVAL_SETTINGS', 'EXTRA_SEEDS', 'ExperimentError',
           'FIGURE3_PGN_VARIANTS', 'HPARAMS', 'LABELS', 'LEVER_VARIANT', 'LONG_SCHEDULE_EPOCHS',
           'LONG_SCHEDULE_POINTS', 'LONG_SCHEDULE_PRECISION', 'LONG_SCHEDULE_WIDTH', 'MIN_SEEDS',
           'PGN_CURVES', 'SEED_POINTS',
           'SameAs', 'TABLE2', 'VARIANT_FIELDS', 'curve_label', 'job_label', 'paper_value',
           'variant_name', 'variant_text']


class ExperimentError(ValueError):
  """A sweep, job filter or root is unusable; the message says what to pass instead."""


# The hyper-parameter each defense trades benign accuracy against robustness with (Figure 5).
HPARAMS = {'naive': None, 'fgm': 'eps', 'pgd': 'eps', 'pgn': 'c_l'}
DEFENSES = tuple(HPARAMS)  # the report's order
LABELS = {'naive': 'naive', 'fgm': 'FGM-AT', 'pgd': 'PGD-AT', 'pgn': 'PGN', 'eps': 'eps',
          'c_l': 'c_L'}

# FGM-AT and PGD-AT: L2 budgets around RobustBench's eps = 0.5.
EPS_VALUES = (0.1, 0.25, 0.5)
# PGN: G maximises CE(F(x + d)) - c_L ||d||^2; to first order d = grad CE / (2 c_L), so the mean
# perturbation scales like ||grad CE|| / (2 c_L). The cpu preset's PGN run at the paper's
# c_L = 50 made mean perturbations of L2 0.22, 0.061, 0.045 in epochs 1-3: ||grad CE|| ~ 4.5 and
# falling; 2, 8 and 32 bracketed the FGM / PGD budgets 0.1-0.5 at that gradient. Measured, c_L
# moves PGN far less than eps moves FGM-AT: c_L 2, 8, 50 ended at test accuracy 0.736, 0.739,
# 0.746 (last-epoch mean L2 0.15, 0.09, 0.07) while FGM-AT eps 0.5 ended at 0.661, so the curve
# reaches FGM-AT's and PGD-AT's accuracies only below c_L 2: 0.5 replaced 32 (next to 50).
C_L_VALUES = (0.5, 2.0, 8.0)
# PGN with --pgn_grad_input=normalized: G sees the gradient, so a given c_L perturbs more than
# with the raw one (c_L 2 ended near test accuracy 0.705 in a probe); these span 0.70-0.75.
NORMALIZED_C_L_VALUES = (2.0, 8.0, 32.0)
# Table 2: the paper's eps for FGM-AT / PGD-AT and c_L for PGN (the naive job is the curve's).
REFERENCE_EPS = 0.02
PAPER_C_L = 50.0
TABLE2 = (('naive', None), ('fgm', REFERENCE_EPS), ('pgn', PAPER_C_L), ('pgd', REFERENCE_EPS))

class SameAs(str):
  """A paper value of VARIANT_FIELDS that is the value of another config field (named by the
  string): the paper, and every preset, trains G at the classifier's learning rate."""


# PGN's variants and ablations: config fields a job may set beyond the preset and its
# hyper-parameter, each with the paper's value and, in name order, what it adds to the job's name
# (a str value names itself; None: only the value).
VARIANT_FIELDS = {'pgn_grad_input': ('raw', None), 'pgn_zero_init': (False, 'zero_init'),
                  'pgn_gen_steps': (1, 'gen_steps'), 'pgn_eps': (None, 'pgn_eps'),
                  'gen_lr': (SameAs('lr'), 'gen_lr'),
                  'pgn_grad_through_adv': (False, 'through_adv')}


def paper_value(name: str, fields: dict):
  """The paper's value of VARIANT_FIELDS' ``name`` given a config's (or a job's) ``fields``."""
  paper = VARIANT_FIELDS[name][0]
  return fields.get(paper) if isinstance(paper, SameAs) else paper


def variant_name(fields: dict) -> str:
  """'normalized_zero_init', 'through_adv', ...: the fields of VARIANT_FIELDS that differ from
  the paper's value, in order; '' for the paper's PGN (and every baseline)."""
  parts = []
  for name, (_, text) in VARIANT_FIELDS.items():
    paper = paper_value(name, fields)
    value = fields.get(name, paper)
    if value == paper:
      continue
    parts.append(text if value is True else value if isinstance(value, str) else
                 f'{text}{value:g}')
  return '_'.join(parts)


# The PGN variants drawn as robustness curves of their own (Figure 5 left), each with its c_L
# values and VARIANT_FIELDS: the paper's G (raw input gradient), G given a gradient it can see
# (per example, unit RMS per pixel: train.py's default) and that G with a zero-initialised output
# layer (the levers sweep's winner at c_L 2, whose curve tells whether the gain holds at every
# c_L). Other variants are ablations, off the curves.
PGN_CURVES = {'': dict(c_l=C_L_VALUES, fields={}),
              'normalized': dict(c_l=NORMALIZED_C_L_VALUES,
                                 fields=dict(pgn_grad_input='normalized')),
              'normalized_zero_init': dict(c_l=NORMALIZED_C_L_VALUES,
                                           fields=dict(pgn_grad_input='normalized',
                                                       pgn_zero_init=True))}
CURVE_VARIANTS = tuple(PGN_CURVES)
# The PGN curve variant of train.py's defaults, the best measured along its curve: its seed point
# is the seeds sweep's, its G input claim 3's attack where no other is measured.
BEST_PGN_VARIANT = 'normalized'
# The curve the levers sweep changes one field of (its LEVER_C_L job is each lever's twin).
LEVER_VARIANT = 'normalized'
assert all(variant_name(spec['fields']) == v for v, spec in PGN_CURVES.items())
assert BEST_PGN_VARIANT in PGN_CURVES and BEST_PGN_VARIANT and LEVER_VARIANT in PGN_CURVES

# `experiments speed`: the train steps tf_pgn.bench times into <root>/bench.json (section 4.4's
# speed claim), with the bench step of each PGN variant the report compares (bench.PGN_VARIANTS'
# suffixes: pgn:<suffix> sets those config fields).
BENCH_PGN_STEPS = {'': 'pgn', 'through_adv': 'pgn:through', 'normalized': 'pgn:normalized',
                   'normalized_zero_init': 'pgn:normalized_zero_init',
                   'normalized_gen_steps2': 'pgn:normalized_gen2'}
BENCH_STEPS = ('naive', 'fgm', 'pgd7', 'pgd10') + tuple(BENCH_PGN_STEPS.values())

# The capacity and through_adv sweeps' PGN setting (its job at the main width is the curve's).
MIDDLE_C_L = 8.0
# The levers sweep's c_L (the best variant's job nearest test accuracy 0.70).
LEVER_C_L = 2.0
# A c_L near 0, so that G's L2 budget (pgn_eps) binds: PGN held to an eps-ball as FGM and PGD
# are, in training (the levers sweep, at the seed points' FGM-AT / PGD-AT eps) and as an attack.
BALL_C_L = 0.01
LEVER_PGN_EPS = 0.25
# G's Adam learning rate in the levers sweep: twice the cpu preset's (the classifier's) 2e-3, so
# that G keeps up with F (at another preset, the same absolute rate).
LEVER_GEN_LR = 4e-3
CAPACITY_WIDTHS = (0.125, 0.25, 0.5)  # classifier filters x width (Table 1); G keeps its width

# Seeds: a point of each curve near a common test accuracy (~0.72) trained again with
# EXTRA_SEEDS (the preset's seed 1234 trains the curves); (defense, hyper-parameter, variant).
SEED_POINTS = (('fgm', 0.25, ''), ('pgn', 0.5, ''), ('pgn', 2.0, BEST_PGN_VARIANT),
               ('pgd', 0.25, ''))
EXTRA_SEEDS = (1235, 1236)
# Claim 2 where the preset's 6 epochs cannot decide it (accuracy still rising at the last one):
# FGM-AT at eps 0.5 and the best PGN variant's seed point, LONG_SCHEDULE_EPOCHS at width
# LONG_SCHEDULE_WIDTH, the Linf study's regime; (defense, hyper-parameter, variant).
LONG_SCHEDULE_POINTS = (('fgm', 0.5, ''), ('pgn', 2.0, BEST_PGN_VARIANT))
LONG_SCHEDULE_WIDTH = 0.5
LONG_SCHEDULE_EPOCHS = 15
# Its jobs train in bfloat16 (named _bf16; about half the float32 step time, measured level with
# float32 in docs/PRECISION.md); both in the same precision, so the claim compares like with like.
LONG_SCHEDULE_PRECISION = 'bfloat16'
MIN_SEEDS = 1 + len(EXTRA_SEEDS)  # a seed spread is stated from this many seeds on

# Evaluation of every job (section 4.2): C&W gives rho_cw (Figure 5); DeepFool; FGM / MIM / PGD at
# Table 2's eps and at 0.5. One evaluation has one PGD setting, so PGD runs STRONG_PGD_STEPS at
# both budgets: at 0.5 (RobustBench's L2 budget) it is the strong PGD, at 0.02 more than needed.
STRONG_PGD_EPS = 0.5
STRONG_PGD_STEPS = 100
EVAL_SETTINGS = dict(attacks=('fgm', 'mim', 'pgd', 'deepfool', 'cw'),
                     eps_list=(REFERENCE_EPS, STRONG_PGD_EPS), pgd_steps=STRONG_PGD_STEPS)
BUDGET_ATTACKS = ('fgm', 'mim', 'pgd')
# Figure 3's PGN attack in <job>/eval: the paper's generator (raw gradient input) at the c_L that
# bracket the FGM / PGD budgets for it; other attack variants go to <job>/eval_pgn_<variant>
# (FIGURE3_PGN_VARIANTS).
FIGURE3_PGN = dict(pgn_grad_input='raw', pgn_c_l_list=(2.0, 4.0, 8.0))
# Evaluation at AutoAttack level (Croce & Hein 2020; RobustBench: L2 eps 0.5, the first 1,000
# test images) in <job>/AUTOATTACK_DIR, beside eval/: the per-example worst case (evaluation's
# `autoattack`: APGD-CE, then APGD-T, FAB-T and Square on the examples still robust, so its
# broken_by gives the robust accuracy after each, as AutoAttack reports it) and the minimal norms
# of FMN and of FAB (untargeted) beside rho_cw. Square's 5,000 queries make it a quarter hour per cpu-preset job and Square alone on
# every image as much again, so it is not in every job's evaluation: AUTOATTACK_POINTS by default
# (the naive job and the seed points, at the main seed); `evaluate.py --attacks=apgd_t,square`
# into the same folder adds the attacks alone, which the report shows where present.
AUTOATTACK_DIR = 'eval_autoattack'
AUTOATTACK_SETTINGS = dict(attacks=('autoattack', 'fmn', 'fab'), eps_list=(STRONG_PGD_EPS,))
AUTOATTACK_POINTS = (('naive', None, ''),) + SEED_POINTS
# The worst case's key in results.json's attacks (eval/ or AUTOATTACK_DIR).
AUTOATTACK_KEY = f'autoattack_eps{STRONG_PGD_EPS:g}'
# What the seed spread is stated for (summary-row fields, results.job_row).
SPREAD_METRICS = ('test_acc', 'rho_cw_mean', f'pgd_eps{STRONG_PGD_EPS:g}_acc')
# Figure 3 (section 4.3): on the FGM-AT and PGD-AT jobs trained at eps = 0.5 (the paper's fixed
# targets) PGN attacks too, and FGM / MIM / PGD run at more budgets, so that each attack draws an
# accuracy-vs-mean-L2 curve to read PGN against. (About 25 CPU minutes per job: not on every eps.)
FIGURE3_EPS = (REFERENCE_EPS, 0.1, 0.25, STRONG_PGD_EPS, 1.0)
FIGURE3_DEFENSES = ('fgm', 'pgd')
FIGURE3_TARGET_EPS = STRONG_PGD_EPS
# The folder prefix of a PGN attack of another G input, beside the job's eval/.
PGN_EVAL_PREFIX = 'eval_pgn_'
# Figure 3's other PGN attacks, run by `experiments figure3` into <job>/PGN_EVAL_PREFIX<variant>
# (the variant named as results.pgn_attack_variant names it: G input, '_margin' with that loss,
# '_eps<E>' with an L2 budget), each with its evaluation settings: the normalized and sign G
# inputs at the c_L that bracket the FGM / PGD budgets for a G that sees the gradient, the
# normalized G held to the eps-0.5 ball (c_L near 0, so that the ball binds), which meets PGD at
# equal eps, and the normalized G trained on C&W's clipped margin instead of CE
# (--pgn_attack_loss=margin).
FIGURE3_PGN_VARIANTS = {
    'normalized': dict(pgn_grad_input='normalized', pgn_c_l_list=(1.0, 2.0, 4.0, 8.0)),
    f'normalized_eps{STRONG_PGD_EPS:g}': dict(pgn_grad_input='normalized', pgn_eps=STRONG_PGD_EPS,
                                              pgn_c_l_list=(BALL_C_L,)),
    'sign': dict(pgn_grad_input='sign', pgn_c_l_list=(1.0, 2.0, 4.0, 8.0)),
    'normalized_margin': dict(pgn_grad_input='normalized', pgn_attack_loss='margin',
                              pgn_c_l_list=(1.0, 2.0, 4.0, 8.0)),
}
# Figure 2 right: C&W (EVAL_SETTINGS') on the first PROGRESS_EXAMPLES test images at every epoch
# snapshot (trainer: snapshot_every_epochs) of the FGM-AT and PGN jobs.
PROGRESS_EXAMPLES = 200
PROGRESS_DEFENSES = ('fgm', 'pgn')


def variant_text(variant: str) -> str:
  """'raw G input' for the paper's PGN (variant '' or 'raw'), else 'normalized G input',
  'normalized_eps0.5 G input', ..."""
  return f'{variant if variant else "raw"} G input'


def curve_label(row: dict) -> str:
  """The robustness curve a summary row is a point of: its defense and PGN variant."""
  return LABELS[row['defense']] + (f' ({row["variant"]})' if row['variant'] else '')


def job_label(row: dict) -> str:
  """'PGN c_L=8', 'PGN (normalized) c_L=2', 'FGM-AT eps=0.02', 'naive'."""
  hparam = f' {LABELS[row["hparam"]]}={row["hparam_value"]:g}' if row['hparam'] else ''
  return curve_label(row) + hparam
