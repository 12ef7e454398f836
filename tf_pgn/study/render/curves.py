"""The robustness curves and what is read off them: Table 2's jobs beside the paper's Figure 5,
every job's evaluation (Figure 5 left), the seed spread, and the balanced comparison at common
benign accuracies (Table 2, Figure 4)."""
from tf_pgn.study import claims
from tf_pgn.study.claims import ACC_TOL, BALANCED_METRICS, run_command
from tf_pgn.study.protocol import (AUTOATTACK_KEY, BUDGET_ATTACKS, CURVE_VARIANTS, DEFENSES,
                                   EVAL_SETTINGS, EXTRA_SEEDS, HPARAMS, LABELS, MIN_SEEDS,
                                   SEED_POINTS, SPREAD_METRICS, STRONG_PGD_EPS, TABLE2, job_label)
from tf_pgn.study.render.common import (AUTOATTACK_COLUMN, PGD_KEY, Study, baseline_curves, fmt,
                                        image_link, job_order, md_table, rho_cell, study_curve)

# Points (defense, benign accuracy, rho_cw) read off the paper's Figure 5 by eye
# (shared/design/reference.md): full width, 200 epochs.
PAPER_FIGURE5 = {
    'cifar10': (('naive', 0.920, 0.18), ('pgn', 0.907, 0.62), ('pgn', 0.855, 0.89),
                ('pgd', 0.865, 0.86)),
    'cifar100': (('naive', 0.707, 0.10), ('pgn', 0.66, 0.45), ('pgd', 0.633, 0.45)),
}


def common_levels(study: Study) -> list:
  """The common benign accuracies of claim 1, for each PGN curve variant with the baselines."""
  base = [c.rows for c in baseline_curves(study)]
  return claims.merge_levels(*(claims.balance_levels([study_curve(study, 'pgn', v).rows] + base)
                               for v in CURVE_VARIANTS))


def balanced_at(study: Study, level: float) -> dict:
  """{curve label: its balanced metrics at ``level``} (``claims.balanced``) of FGM-AT, PGD-AT
  and each PGN curve variant that reaches it; the naive network only if it is within ACC_TOL."""
  sweep, cw = study.sweep, study.sweep.cw_curves()
  out = {}
  near = [r for r in sweep.curve('naive') if abs(r['test_acc'] - level) <= ACC_TOL]
  if near:
    out[LABELS['naive']] = dict({m: near[0][m] for m in BALANCED_METRICS},
                                cw_curve=cw.get(near[0]['job']),
                                jobs=f'{job_label(near[0])} ({near[0]["test_acc"]:.3f})')
  for label, rows in sweep.curves().items():
    if (b := claims.balanced(rows, level, cw)) is not None:
      out[label] = b
  return out


def _accuracies(row: dict, eps: float) -> str:
  """FGM / MIM / PGD accuracy at ``eps``."""
  return ' / '.join(fmt(row[f'{a}_eps{eps:g}_acc']) for a in BUDGET_ATTACKS)


def table2_section(study: Study) -> list:
  """Table 2's jobs at the main width, and Figure 5's points of the paper beside them."""
  sweep = study.sweep
  width = sweep.main_width(sweep.rows)
  found = {(d, v): next((r for r in sweep.rows if (r['defense'], r['hparam_value'], r['width'],
                                                    r['variant'], r['seed']) ==
                         (d, v, width, '', sweep.main_seed)), None) for d, v in TABLE2}
  eps = EVAL_SETTINGS['eps_list']
  rows = []
  for (d, v), r in found.items():
    label = job_label(dict(defense=d, variant='', hparam=HPARAMS[d], hparam_value=v))
    if r is None:
      rows.append([label, 'not started'] + ['-'] * (5 + len(eps)))
      continue
    rows.append([label, r['status'], fmt(r['test_acc']), fmt(r['benign_accuracy']), rho_cell(r),
                 fmt(r['rho_deepfool_mean'])] + [_accuracies(r, e) for e in eps] +
                [fmt(r['train_seconds_per_epoch'], 0)])
  lines = ['## Table 2: defenses at the paper\'s eps 0.02 and c_L 50', '',
           f'Width {width:g}; {run_command("table2", study.run_flags)}.', ''] + md_table(
               ['defense', 'status', 'test acc', 'benign acc', 'rho_cw mean / median',
                'DeepFool rho'] + [f'FGM / MIM / PGD acc, eps {e:g}' for e in eps] +
               ['s/epoch'], rows)
  paper = PAPER_FIGURE5.get(sweep.dataset, ())
  ours = {d: r for (d, _), r in found.items() if r and r['status'] == 'evaluated'}
  lines += ['', f'The paper\'s Figure 5 ({sweep.dataset}, read off by eye: full width, 200 '
            'epochs) beside the Table 2 jobs:', ''] + md_table(
                ['defense', 'paper: benign acc / rho_cw', 'ours: test acc / rho_cw'],
                [(LABELS[d], '; '.join(f'{a:.3f} / {rho:.2f}' for p, a, rho in paper if p == d)
                  or '-', f'{fmt(ours[d]["test_acc"])} / {fmt(ours[d]["rho_cw_mean"])}'
                  if ours.get(d) else '-') for d in DEFENSES])
  return lines


def curves_section(study: Study, figures: dict, report_path: str) -> list:
  """Every job's evaluation (Figure 5 left)."""
  rows = [(r['job'], r['status'], job_label(r), f'{r["width"]:g}', fmt(r['test_acc']),
           fmt(r['benign_accuracy']), rho_cell(r), fmt(r['cw_success_rate']), fmt(r[PGD_KEY]),
           fmt(r[f'{AUTOATTACK_KEY}_acc']), r['failed_checks'] or '-')
          for r in sorted(study.sweep.rows, key=job_order)]
  sweeps = ' and '.join(run_command(c.sweep, study.run_flags) for c in
                        [study_curve(study, 'pgn', v) for v in CURVE_VARIANTS])
  lines = ['## Robustness curves (Figure 5 left)', '',
           f'Every job, by defense, PGN variant and hyper-parameter; {sweeps} train the curves '
           f'(the paper\'s PGN, whose generator sees the raw input gradient, and PGN with G\'s '
           f'input {", ".join(v for v in CURVE_VARIANTS if v)}). The figure draws the seed-'
           f'{study.sweep.main_seed} job of each point, a panel per PGN curve beside FGM-AT, '
           'PGD-AT and the naive network, each point labelled with its eps or c_L; the other '
           'seeds give the seed spread below.', ''] + md_table(
               ['job', 'status', 'defense', 'width', 'test acc', 'benign acc',
                'rho_cw mean / median', 'C&W success',
                f'PGD eps {STRONG_PGD_EPS:g} acc', AUTOATTACK_COLUMN,
                'failed checks'], rows)
  return lines + image_link(figures, 'robustness_curves', report_path,
                            'benign accuracy against rho_cw')


def _spread_cell(values: list) -> str:
  """mean ± sample std (min-max) of ``values``."""
  s = claims.spread(values)
  if s['n'] == 0:
    return '-'
  if s['n'] == 1:
    return f'{s["mean"]:.3f} (1 seed)'
  return f'{s["mean"]:.3f} ± {s["std"]:.3f} ({s["min"]:.3f}-{s["max"]:.3f})'


def seeds_section(study: Study) -> list:
  """The seed spread of each group of jobs that differ only in the seed."""
  sweep = study.sweep
  width = sweep.main_width()
  groups = sweep.seed_groups()
  points = {}
  for d, v, variant in SEED_POINTS:
    points[d, v, variant] = next((g for g in groups if (
        g['rows'][0]['defense'], g['rows'][0]['hparam_value'], g['rows'][0]['variant'],
        g['rows'][0]['width']) == (d, v, variant, width)), None)
  shown = [g for g in points.values() if g] + [
      g for g in groups if len(g['rows']) > 1 and g not in points.values()]
  seeds = ', '.join(str(s) for s in EXTRA_SEEDS)
  lines = ['## Seed spread', '',
           f'The robustness curves use the seed-{sweep.main_seed} job of each point; '
           f'{run_command("seeds", study.run_flags)} trains a point of each curve near a common '
           f'test accuracy again with seeds {seeds}. Per group of jobs that differ only in the '
           'seed: mean ± sample std (min-max) over its evaluated seeds. Claim 1 calls PGN more '
           'robust than a baseline only by more than the sum of the two curves\' rho_cw stds.',
           ''] + md_table(
               ['jobs', 'seeds', 'test acc', 'rho_cw mean', f'PGD eps {STRONG_PGD_EPS:g} acc'],
               [(g['name'], ', '.join(str(r['seed']) for r in g['rows']),
                 *(_spread_cell([r[m] for r in g['rows']]) for m in SPREAD_METRICS))
                for g in shown])
  short = []
  for (d, v, variant), g in points.items():
    n = claims.spread([r['rho_cw_mean'] for r in g['rows']])['n'] if g else 0
    if n < MIN_SEEDS:
      label = job_label(dict(defense=d, variant=variant, hparam=HPARAMS[d], hparam_value=v))
      short.append(f'{label}: {n} of {MIN_SEEDS}')
  if short:
    lines += ['', f'Fewer than {MIN_SEEDS} seeds evaluated at width {width:g}: '
              f'{"; ".join(short)}. {run_command("seeds", study.run_flags)} completes them.']
  return lines


def balanced_section(study: Study, figures: dict, report_path: str) -> list:
  """The curves interpolated at their common benign accuracies (Table 2, Figure 4)."""
  lines = ['## Balanced comparison (Table 2, Figure 4)', '']
  levels = common_levels(study)
  if not levels:
    return lines + ['The FGM-AT, PGD-AT and PGN curves share no benign accuracy yet: '
                    f'{run_command("robustness_curve", study.run_flags)} widens them.']
  eps = EVAL_SETTINGS['eps_list']
  lines += ['The paper balances the defenses by choosing eps and c_L so that each reaches the '
            'same benign accuracy. With a few jobs per robustness curve we interpolate instead: '
            'at each common benign test accuracy of the baselines and a PGN curve (the top of '
            'the curves\' overlap, and its middle and bottom when it spans more than 2 points; '
            'for the paper\'s PGN and for each other PGN curve variant), every metric, and the '
            'C&W accuracy at every radius, is interpolated linearly between the two jobs of the '
            'curve around it ("from jobs" gives the weights). The naive network appears where '
            f'its own accuracy is within {ACC_TOL:g}. An interpolated row estimates a model '
            'nobody trained; it is a reading of the curves, not a measurement.', '']
  rows = [[f'{level:.3f}', label, b['jobs'], rho_cell(b), fmt(b['rho_deepfool_mean'])] +
          [_accuracies(b, e) for e in eps]
          for level in levels for label, b in balanced_at(study, level).items()]
  lines += md_table(['benign test acc', 'defense', 'from jobs', 'rho_cw mean / median',
                     'DeepFool rho'] + [f'FGM / MIM / PGD acc, eps {e:g}' for e in eps], rows)
  return lines + image_link(figures, 'balanced_cw', report_path,
                            'C&W accuracy against L2 at common benign accuracies')
