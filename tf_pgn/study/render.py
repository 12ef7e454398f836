"""The reproduction report of a sweep root: its numbers beside the PGN paper's claims.

  python -m tf_pgn.experiments report      # results/<root name>/ and docs/REPRODUCTION.md

``write_report`` copies the small outputs of every job of a sweep root (config.json,
metrics.jsonl, and each evaluation's results.json, results.md and accuracy_vs_l2.png, eval/ and
the PGN-attack folders eval_pgn_*/; never checkpoints, SavedModels or TensorBoard logs) into
``<out>/<root name>/`` beside the summary, Figure 5 (robustness curves), Figure 4 (balanced C&W
curves), Figure 3 (PGN as an attack) and Figure 2 right (training progress), and writes a
Markdown report. Its verdict on each claim of the paper is computed by ``claims`` (claims 1, 4
and 5 per PGN curve variant, claim 3 for the raw PGN attack and the strongest other); a claim
without the data it needs is 'not measured yet', with the command that measures it. The
generated text quotes the root and flags as the commands were given, never this machine's paths.
Each run rewrites the report whole, but for the block between NOTES_BEGIN and NOTES_END:
hand-written notes, kept verbatim.
"""
import collections
import dataclasses
import os
import re
import statistics

from tf_pgn import evaluation, plots
from tf_pgn.config import TrainConfig
from tf_pgn.io_utils import write_bytes_atomic, write_text_atomic
from tf_pgn.study import claims
from tf_pgn.study import results as results_lib
from tf_pgn.study.claims import (ACC_TOL, BALANCED_METRICS, Curve, Verdict, experiments_command,
                                 run_command)
from tf_pgn.study.protocol import (AUTOATTACK_DIR, AUTOATTACK_KEY, BENCH_PGN_STEPS,
                                   BEST_PGN_VARIANT, BUDGET_ATTACKS, CURVE_VARIANTS, DEFENSES,
                                   EVAL_SETTINGS, EXTRA_SEEDS, FIGURE3_DEFENSES,
                                   FIGURE3_PGN_VARIANTS, HPARAMS, LABELS, MIN_SEEDS, PGN_CURVES,
                                   PGN_EVAL_PREFIX, SEED_POINTS, SPREAD_METRICS, STRONG_PGD_EPS,
                                   TABLE2, VARIANT_FIELDS, ExperimentError, curve_label, job_label,
                                   paper_value, variant_text)

__all__ = ['NOTES_BEGIN', 'NOTES_END', 'Study', 'balanced_at', 'plot_robustness_curves',
           'robustness_curves', 'verdicts', 'write_report']

NOTES_BEGIN, NOTES_END = '<!-- notes -->', '<!-- /notes -->'
EVAL_FILES = ('results.json', 'results.md', 'accuracy_vs_l2.png')  # of each evaluation folder
JOB_FILES = ('config.json', 'metrics.jsonl') + tuple(os.path.join('eval', n) for n in EVAL_FILES)
# Points (defense, benign accuracy, rho_cw) read off the paper's Figure 5 by eye
# (shared/design/reference.md): full width, 200 epochs.
PAPER_FIGURE5 = {
    'cifar10': (('naive', 0.920, 0.18), ('pgn', 0.907, 0.62), ('pgn', 0.855, 0.89),
                ('pgd', 0.865, 0.86)),
    'cifar100': (('naive', 0.707, 0.10), ('pgn', 0.66, 0.45), ('pgd', 0.633, 0.45)),
}
PGD_KEY = f'pgd_eps{STRONG_PGD_EPS:g}_acc'
AUTOATTACK_COLUMN = f'AutoAttack-style worst case at eps {STRONG_PGD_EPS:g}'


@dataclasses.dataclass
class Study:
  """A loaded sweep root (``results.load``) and how the report's commands reach it: ``root`` and
  ``run_flags`` as given on the command line (a relative root, ~ in --data_dir)."""
  sweep: results_lib.Sweep
  root: str
  run_flags: str
  data_dir: str | None = None

  @classmethod
  def load(cls, root: str, run_flags: str | None = None, data_dir: str | None = None,
           root_text: str | None = None) -> 'Study':
    root_text = root_text or root
    return cls(results_lib.load(root), root_text, run_flags or f'--root={root_text}', data_dir)


# -- helpers ---------------------------------------------------------------------------------
def _fmt(value, digits: int = 3) -> str:
  return '-' if value is None else f'{value:.{digits}f}'


def _table(header: list, rows: list) -> list:
  return (['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)] +
          ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows])


def _values(values) -> str:
  return ', '.join('all' if v is None else f'{v:g}' for v in sorted(
      set(values), key=lambda v: -1 if v is None else v))


def _order(row: dict) -> tuple:
  return (DEFENSES.index(row['defense']), row['variant'], row['hparam_value'] or 0.0,
          row['width'], row['seed'], row['job'])


def _image(figures: dict, name: str, report_path: str, alt: str) -> list:
  if name not in figures:
    return []
  return ['', f'![{alt}]({os.path.relpath(figures[name], os.path.dirname(report_path) or ".")})']


def _rho(row: dict) -> str:
  return f'{_fmt(row["rho_cw_mean"])} / {_fmt(row["rho_cw_median"])}'


def _curve(study: Study, defense: str, variant: str = '') -> Curve:
  """A robustness curve for the claims, with the sweep that trains it and its seed spread."""
  sweep = study.sweep
  return Curve(curve_label(dict(defense=defense, variant=variant)),
               sweep.curve(defense, variant),
               f'{variant}_curve' if variant else 'robustness_curve',
               claims.curve_spread(sweep.seed_groups(), defense, variant, sweep.main_width()))


def _baselines(study: Study) -> list:
  return [_curve(study, d) for d in ('fgm', 'pgd')]


def _main_seed_rows(study: Study, defense: str, variant: str) -> list:
  sweep = study.sweep
  return [r for r in sweep.evaluated() if (r['defense'], r['variant'], r['seed']) ==
          (defense, variant, sweep.main_seed)]


# -- balancing (Table 2, Figure 4) ----------------------------------------------------------
def _levels(study: Study) -> list:
  """The common benign accuracies of claim 1, for each PGN curve variant with the baselines."""
  baselines = [c.rows for c in _baselines(study)]
  return claims.merge_levels(*(claims.balance_levels([_curve(study, 'pgn', v).rows] + baselines)
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


# -- PGN as an attack (Figure 3) -------------------------------------------------------------
def _attack_targets(study: Study) -> list:
  """Evaluated FGM-AT / PGD-AT jobs (Figure 3's fixed classifiers), by eps."""
  return [r for r in sorted(study.sweep.rows, key=_order)
          if r['defense'] in FIGURE3_DEFENSES and r['job'] in study.sweep.results]


def _attack_variants(study: Study) -> list:
  """The PGN attack variants measured on any target, 'raw' first."""
  found = {v for r in _attack_targets(study) for v in study.sweep.pgn_attacks.get(r['job'], {})}
  return sorted(found, key=lambda v: (v != 'raw', v))


def _targets(study: Study, variant: str) -> dict:
  """{target job: (its eval results, its PGN entries of ``variant``)} for claims 3."""
  attacks = study.sweep.pgn_attacks
  return {r['job']: (study.sweep.results[r['job']],
                     attacks.get(r['job'], {}).get(variant, {}).get('entries', []))
          for r in _attack_targets(study)}


def _evaluate_command(study: Study, job: str, folder: str, flags: str) -> str:
  """evaluate.py with ``flags`` on the job into its ``folder``."""
  results = study.sweep.results[job]
  run_dir = os.path.join(study.root, job)
  return (f'`python evaluate.py --ckpt={run_dir} --out={os.path.join(run_dir, folder)} '
          f'--dataset={results["dataset"]} --num_examples={results["num_examples"]} {flags}' +
          (f' --data_dir={study.data_dir}' if study.data_dir else '') + '`')


def _pgn_attack_command(study: Study, job: str, variant: str) -> str:
  """The evaluation that adds PGN attack ``variant`` (results.pgn_attack_variant) to the job:
  raw into eval/ with the job's own attacks and budgets (what exists is reused), one of
  FIGURE3_PGN_VARIANTS by `experiments figure3`, another into eval_pgn_<variant>/ at the raw
  attack's c_L."""
  settings = study.sweep.results[job]['attack_settings']
  grad_input, _, budget = variant.partition('_eps')
  if variant == 'raw':
    eps = sorted({b['eps'] for a in BUDGET_ATTACKS for b in settings.get(a, {}).get('budgets',
                                                                                    [])})
    return _evaluate_command(
        study, job, 'eval', f'--attacks={",".join(list(settings) + ["pgn"])} '
        f'--eps_list={",".join(f"{e:g}" for e in eps)}' +
        (f' --pgd_steps={settings["pgd"]["steps"]}' if 'pgd' in settings else ''))
  if variant in FIGURE3_PGN_VARIANTS:
    return experiments_command(f'figure3 --jobs={job} --variants={variant}', study.run_flags)
  c_ls = sorted({b['c_l'] for b in settings.get('pgn', {}).get('budgets', [])})
  return _evaluate_command(study, job, PGN_EVAL_PREFIX + variant,
                           f'--attacks=pgn --pgn_grad_input={grad_input}' +
                           (f' --pgn_eps={budget}' if budget else '') +
                           (f' --pgn_c_l_list={",".join(f"{c:g}" for c in c_ls)}' if c_ls else ''))


def _attack_verdict(study: Study, variant: str) -> Verdict:
  """Claim 3 for a PGN attack variant; unmeasured, the command measuring it on the job of the
  largest eps."""
  targets = _attack_targets(study)
  command = _pgn_attack_command(study, targets[-1]['job'], variant) if targets else ''
  return claims.pgn_attack_stronger(_targets(study, variant), command, study.run_flags)


def _attack_verdicts(study: Study) -> dict:
  """{attack variant: (claim 3's verdict, attack_margin over every target)} of the measured
  variants, 'raw' first."""
  out = {}
  for variant in _attack_variants(study):
    compared = [p for t in _targets(study, variant).values() if t[1]
                for p in claims.pgn_comparisons(*t)[0]]
    out[variant] = (_attack_verdict(study, variant), claims.attack_margin(compared))
  return out


def _strongest(attack_verdicts: dict, exclude=()) -> str | None:
  """The attack variant whose PGN accuracy lies farthest below FGM's and PGD's."""
  scored = [(m, v) for v, (_, m) in attack_verdicts.items() if m is not None and v not in exclude]
  return max(scored)[1] if scored else None


# -- the verdicts ----------------------------------------------------------------------------
def verdicts(study: Study) -> list:
  """[(claim number, qualifier or '', Verdict)] of the report's verdict table: claims 1, 4 and 5
  for each PGN curve variant (CURVE_VARIANTS: the paper's PGN first), claim 3 for the raw PGN
  attack and the strongest other attack variant (BEST_PGN_VARIANT's command where none is
  measured)."""
  sweep, flags = study.sweep, study.run_flags
  paper = [r for r in sweep.rows if not r['variant']]
  rows = [(1, variant_text(v), claims.robust_at_equal_accuracy(_curve(study, 'pgn', v),
                                                                _baselines(study), flags))
          for v in CURVE_VARIANTS]
  rows.append((2, '', claims.fgm_trades_robustness(
      [dict(row=r, epochs=sweep.epochs[r['job']], progress=sweep.progress.get(r['job'], []),
            probe_size=sweep.configs[r['job']].probe_size) for r in paper], flags)))
  other = (_strongest(_attack_verdicts(study), ('raw',)) or
           PGN_CURVES[BEST_PGN_VARIANT]['fields'].get('pgn_grad_input', 'raw'))
  rows += [(3, variant_text(v), _attack_verdict(study, v)) for v in ('raw', other)]
  rows += [(4, variant_text(v), claims.capacity_moves_curve(
      _main_seed_rows(study, 'pgn', v), f'{v}_capacity' if v else 'capacity', flags,
      rho_std=_curve(study, 'pgn', v).rho_std)) for v in CURVE_VARIANTS]
  rows += [(5, variant_text(v), claims.speed_order(
      sweep.bench, [r for r in sweep.rows if r['variant'] == v or r['defense'] != 'pgn'], flags,
      BENCH_PGN_STEPS[v], curve_label(dict(defense='pgn', variant=v))))
           for v in CURVE_VARIANTS]
  return rows


def _verdicts_section(rows: list) -> list:
  claim = {n: (text, where, rule) for n, text, where, rule in claims.CLAIMS}
  lines = ['## Verdicts', ''] + _table(
      ['#', 'claim (paper)', 'verdict', 'why'],
      [(f'{n} ({q})' if q else n, f'{claim[n][0]} ({claim[n][1]})', f'**{v.verdict}**', v.why)
       for n, q, v in rows])
  lines += ['', 'Rules (computed by `tf_pgn/study/claims.py` from the numbers below):', '']
  return lines + [f'{n}. {rule}.' for n, _, _, rule in claims.CLAIMS]


# -- sections --------------------------------------------------------------------------------
def _data_provenance(provenances: list) -> str:
  """What the evaluations record of the data, without the paths they record it with."""
  kinds = {'official files (MD5 verified)' if p.startswith('official') else
           'a copy pinned by its own checksums.md5, not the official files'
           if p.startswith('verified') else
           'not the official files and not pinned by checksums (structural checks only)'
           for p in provenances}
  return '; '.join(sorted(kinds)) if kinds else 'provenance not recorded by these evaluations'


def _scale(study: Study) -> list:
  """How these jobs differ from the paper's setting: configs, data, evaluation."""
  sweep = study.sweep
  paper, configs = TrainConfig(), list(sweep.configs.values())
  fields = (('width', 'classifier width (Table 1 filters x)'),
            ('gen_width', 'generator width (Figure 1 filters x)'), ('epochs', 'epochs'),
            ('batch_size', 'batch size'), ('lr', 'Adam learning rate, classifier'),
            ('gen_lr', 'Adam learning rate, generator'),
            ('ema_decay', 'EMA decay of the evaluated classifier'),
            ('train_size', 'training images (all: 50,000)'))
  lines = ['## Scale: these jobs against the paper', ''] + _table(
      ['setting', 'paper (section 4.1)', 'these jobs'],
      [(label, _values([getattr(paper, f)]), _values(getattr(c, f) for c in configs))
       for f, label in fields]) + ['']
  provenances = sorted({r['data']['provenance'] for r in sweep.results.values() if 'data' in r})
  official = provenances and all(p.startswith('official') for p in provenances)
  lines.append(f'Data: {", ".join(sorted({c.dataset for c in configs}))}, '
               f'{_data_provenance(provenances)}, as the evaluations record it' +
               ('.' if official else '; the notes block is the place to say how the data was '
                'made.'))
  evaluated = [r for r in sweep.rows if r['num_examples']]
  if evaluated:
    worst = any(r[f'{AUTOATTACK_KEY}_acc'] is not None for r in evaluated)
    lines += ['', f'Evaluation: each job\'s EMA classifier on the first '
              f'{_values(r["num_examples"] for r in evaluated)} test images; C&W L2 (rho_cw), '
              f'DeepFool, and FGM / MIM / PGD ({_values(r["pgd_steps"] for r in evaluated)} '
              f'steps) at L2 eps {_values(EVAL_SETTINGS["eps_list"])}' +
              (f'; where run, the {AUTOATTACK_COLUMN}' if worst else '') +
              '. Benign "test acc" is on the whole test split, "benign acc" on the evaluated '
              'images.']
  return lines


def _jobs(study: Study) -> list:
  sweep = study.sweep
  counts = collections.Counter(r['status'] for r in sweep.rows)
  pending = [f'{r["job"]} (training, epoch {r["epochs"]} of {sweep.configs[r["job"]].epochs})'
             if r['status'] == 'training' else f'{r["job"]} (trained, evaluation pending)'
             for r in sweep.rows if r['status'] != 'evaluated']
  lines = ['## Jobs', '', f'{len(sweep.rows)} jobs in `{study.root}`: ' +
           ', '.join(f'{n} {s}' for s, n in sorted(counts.items())) + '.']
  if pending:
    lines += ['', f'Pending: {"; ".join(pending)}. {run_command("<sweep>", study.run_flags)} '
              'goes on with them.']
  hours = sweep.recorded_hours()
  return lines + ['', 'Time the jobs record: ' + ', '.join(f'{k} {v:.2f} h' for k, v in
                                                          hours.items()) +
                  f', total {sum(hours.values()):.2f} h (wall clock; work redone after an '
                  'interruption is not counted).']


def _accuracies(row: dict, eps: float) -> str:
  return ' / '.join(_fmt(row[f'{a}_eps{eps:g}_acc']) for a in BUDGET_ATTACKS)


def _table2(study: Study) -> list:
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
    rows.append([label, r['status'], _fmt(r['test_acc']), _fmt(r['benign_accuracy']), _rho(r),
                 _fmt(r['rho_deepfool_mean'])] + [_accuracies(r, e) for e in eps] +
                [_fmt(r['train_seconds_per_epoch'], 0)])
  lines = ['## Table 2: defenses at the paper\'s eps 0.02 and c_L 50', '',
           f'Width {width:g}; {run_command("table2", study.run_flags)}.', ''] + _table(
               ['defense', 'status', 'test acc', 'benign acc', 'rho_cw mean / median',
                'DeepFool rho'] + [f'FGM / MIM / PGD acc, eps {e:g}' for e in eps] +
               ['s/epoch'], rows)
  paper = PAPER_FIGURE5.get(sweep.dataset, ())
  ours = {d: r for (d, _), r in found.items() if r and r['status'] == 'evaluated'}
  lines += ['', f'The paper\'s Figure 5 ({sweep.dataset}, read off by eye: full width, 200 '
            'epochs) beside the Table 2 jobs:', ''] + _table(
                ['defense', 'paper: benign acc / rho_cw', 'ours: test acc / rho_cw'],
                [(LABELS[d], '; '.join(f'{a:.3f} / {rho:.2f}' for p, a, rho in paper if p == d)
                  or '-', f'{_fmt(ours[d]["test_acc"])} / {_fmt(ours[d]["rho_cw_mean"])}'
                  if ours.get(d) else '-') for d in DEFENSES])
  return lines


def _curves_section(study: Study, figures: dict, report_path: str) -> list:
  rows = [(r['job'], r['status'], job_label(r), f'{r["width"]:g}', _fmt(r['test_acc']),
           _fmt(r['benign_accuracy']), _rho(r), _fmt(r['cw_success_rate']), _fmt(r[PGD_KEY]),
           _fmt(r[f'{AUTOATTACK_KEY}_acc']), r['failed_checks'] or '-')
          for r in sorted(study.sweep.rows, key=_order)]
  sweeps = ' and '.join(run_command(c.sweep, study.run_flags) for c in
                        [_curve(study, 'pgn', v) for v in CURVE_VARIANTS])
  lines = ['## Robustness curves (Figure 5 left)', '',
           f'Every job, by defense, PGN variant and hyper-parameter; {sweeps} train the curves '
           f'(the paper\'s PGN, whose generator sees the raw input gradient, and PGN with G\'s '
           f'input {", ".join(v for v in CURVE_VARIANTS if v)}). The figure draws the seed-'
           f'{study.sweep.main_seed} job of each point; the other seeds give the seed spread '
           'below.', ''] + _table(
               ['job', 'status', 'defense', 'width', 'test acc', 'benign acc',
                'rho_cw mean / median', 'C&W success',
                f'PGD eps {STRONG_PGD_EPS:g} acc', AUTOATTACK_COLUMN,
                'failed checks'], rows)
  return lines + _image(figures, 'robustness_curves', report_path,
                        'benign accuracy against rho_cw')


def _spread_cell(values: list) -> str:
  s = claims.spread(values)
  if s['n'] == 0:
    return '-'
  if s['n'] == 1:
    return f'{s["mean"]:.3f} (1 seed)'
  return f'{s["mean"]:.3f} ± {s["std"]:.3f} ({s["min"]:.3f}-{s["max"]:.3f})'


def _seeds_section(study: Study) -> list:
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
           ''] + _table(
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


# (column, attack key in results.json) of the AutoAttack-level table: eval/'s PGD and
# minimal-norm attacks, and AUTOATTACK_DIR's attacks run alone where they were.
_EVAL_PGD = (f'PGD-{EVAL_SETTINGS["pgd_steps"]}', f'pgd_eps{STRONG_PGD_EPS:g}')
_ALONE = (('APGD-T alone', f'apgd_t_eps{STRONG_PGD_EPS:g}'),
          ('Square alone', f'square_eps{STRONG_PGD_EPS:g}'))
_RHOS = (('C&W', 'cw', 'eval'), ('FMN', 'fmn', AUTOATTACK_DIR), ('DeepFool', 'deepfool', 'eval'))


def _after_each(worst: dict, n: int, parts: list) -> list:
  """The robust accuracy left after each of ``parts`` of a worst case (AutoAttack's report),
  from the examples each broke first; None for a part this worst case did not run."""
  left, out = n - worst['broken_by']['clean'], []
  for part in parts:
    if part not in worst['broken_by']:
      out.append(None)
      continue
    left -= worst['broken_by'][part]
    out.append(left / n)
  return out


def _worst_case_parts(results: list) -> list:
  """The parts the evaluations' worst cases ran (as their results.json state them), in
  AutoAttack's order: results made before FAB-T joined it lack FAB-T."""
  ran = {p for r in results for p in r['attack_settings']['autoattack']['order']}
  return [p for p in evaluation.AUTOATTACK_PARTS if p in ran]


def _autoattack_section(study: Study) -> list:
  """The AutoAttack-level evaluation (protocol.AUTOATTACK_SETTINGS) of the jobs that have one,
  beside their eval/ PGD and minimal-norm attacks."""
  sweep = study.sweep
  jobs = sorted((r for r in sweep.rows if r['job'] in sweep.autoattack and r['job'] in
                 sweep.results), key=_order)
  jobs = [r for r in jobs if AUTOATTACK_KEY in sweep.autoattack[r['job']]['attacks']]
  part_names = _worst_case_parts([sweep.autoattack[r['job']] for r in jobs])
  parts = [evaluation.ATTACK_TABLE[a].label for a in part_names]
  version = 'standard version' + ('' if 'fab_t' in part_names else ' without FAB-T')
  lines = ['## Evaluation at AutoAttack level', '',
           f'White-box robust accuracy at L2 eps {STRONG_PGD_EPS:g} '
           f'({experiments_command("autoattack", study.run_flags)}, into '
           f'`<job>/{AUTOATTACK_DIR}/`): the AutoAttack-style worst case runs '
           f'{", then ".join(parts)} each on the examples the earlier ones left robust '
           f'(AutoAttack\'s {version}); "after X" is the accuracy left '
           f'then, the last the worst case. Beside it eval/\'s {_EVAL_PGD[0]} and, where run, '
           'APGD-T and Square each alone on every image; rho (Eq. 6) of the minimal-norm attacks '
           'C&W and DeepFool (eval/) and FMN.', '']
  if not jobs:
    return lines + ['No job has it yet.']
  acc_rows, time_rows = [], []
  for r in jobs:
    results = {'eval': sweep.results[r['job']], AUTOATTACK_DIR: sweep.autoattack[r['job']]}
    label = job_label(r) + (f' seed {r["seed"]}' if r['seed'] != sweep.main_seed else '')

    def found(key, folder):
      return results[folder]['attacks'].get(key, {}).get('whitebox')

    worst = found(AUTOATTACK_KEY, AUTOATTACK_DIR)
    n = results[AUTOATTACK_DIR]['num_examples']
    pgd = found(_EVAL_PGD[1], 'eval')
    alone = [found(key, AUTOATTACK_DIR) for _, key in _ALONE]
    rhos = [found(key, folder) for _, key, folder in _RHOS]
    failed = sorted({c['name'] for res in results.values() for c in res.get('checks', [])
                     if not c['passed']})
    acc_rows.append((label, n, _fmt(results[AUTOATTACK_DIR]['benign_accuracy']),
                     _fmt(pgd and pgd['accuracy']), *(_fmt(a) for a in _after_each(worst, n, part_names)),
                     *(_fmt(a and a['accuracy']) for a in alone),
                     ' / '.join(_fmt(e and e['rho_mean']) for e in rhos),
                     ', '.join(failed) or '-'))
    time_rows.append((label, *(_fmt(e and e['seconds'], 0) for e in
                                      [pgd, worst] + alone + rhos)))
  lines += _table(['job', 'images', 'benign acc', _EVAL_PGD[0]] +
                  [f'after {p}' for p in parts] + [c for c, _ in _ALONE] +
                  ['rho C&W / FMN / DeepFool', 'failed checks'], acc_rows)
  lines += ['', 'Seconds per attack (wall clock, on the machine that ran it):', ''] + _table(
      ['job', _EVAL_PGD[0], 'worst case'] + [c for c, _ in _ALONE] + [c for c, _, _ in _RHOS],
      time_rows)
  return lines


def _balanced_section(study: Study, figures: dict, report_path: str) -> list:
  lines = ['## Balanced comparison (Table 2, Figure 4)', '']
  levels = _levels(study)
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
  rows = [[f'{level:.3f}', label, b['jobs'], _rho(b), _fmt(b['rho_deepfool_mean'])] +
          [_accuracies(b, e) for e in eps]
          for level in levels for label, b in balanced_at(study, level).items()]
  lines += _table(['benign test acc', 'defense', 'from jobs', 'rho_cw mean / median',
                   'DeepFool rho'] + [f'FGM / MIM / PGD acc, eps {e:g}' for e in eps], rows)
  return lines + _image(figures, 'balanced_cw', report_path,
                        'C&W accuracy against L2 at common benign accuracies')


def _pgn_attack_section(study: Study, figures: dict, report_path: str) -> list:
  lines = ['## PGN as an attack (Figure 3)', '']
  attack = _attack_verdicts(study)
  if not attack:
    return lines + [_attack_verdict(study, 'raw').why]
  sweep = study.sweep
  lines += ['White-box accuracy of fixed FGM-AT and PGD-AT classifiers: FGM and PGD at L2 eps '
            '(PGD steps as in the evaluation), PGN as a fresh generator trained against the '
            'fixed classifier for each c_L (`evaluate.py --attacks=pgn`), placed at the mean L2 '
            'of its perturbations. A PGN attack variant is its G input (its loss where not the '
            'paper\'s CE, its L2 budget where it has one): raw in each job\'s eval/, others in '
            f'`{PGN_EVAL_PREFIX}<variant>/` '
            f'({experiments_command("figure3", study.run_flags)}: '
            f'{", ".join(FIGURE3_PGN_VARIANTS)}). The figure shows, per defense, the job '
            'of the largest eps.', '']
  targets = [r for r in _attack_targets(study) if r['job'] in sweep.pgn_attacks]
  rows = []
  for r in targets:
    results = sweep.results[r['job']]
    rows.append([r['job'], _fmt(results['benign_accuracy'])] + [', '.join(
        f'{e:g}: {a:.3f}' for e, a in sorted((e['eps'], e['whitebox']['accuracy'])
                                             for e in results['attacks'].values()
                                             if e['attack'] == name)) for name in ('fgm', 'pgd')])
  lines += _table(['job', 'benign acc', 'FGM: eps: acc', 'PGD: eps: acc'], rows)
  for variant, (verdict, margin) in attack.items():
    rows = []
    for job, (results, entries) in _targets(study, variant).items():
      compared, outside = claims.pgn_comparisons(results, entries)
      points = [(p, 'yes' if p['acc'] < min(p['fgm'], p['pgd']) - claims.ACC_MARGIN else 'no')
                for p in compared] + [(p, 'beyond the budgets') for p in outside]
      rows += [(job, f'{p["c_l"]:g}', _fmt(p['eps'], 2), f'{p["l2"]:.3f}', f'{p["acc"]:.3f}',
                _fmt(p.get('fgm')), _fmt(p.get('pgd')), lower)
               for p, lower in sorted(points, key=lambda t: (t[0]['c_l'], t[0]['l2']))]
    folders = sorted({sweep.pgn_attacks[j][variant]['folder'] for j in sweep.pgn_attacks
                      if variant in sweep.pgn_attacks[j]})
    lines += ['', f'### PGN attack, {variant_text(variant)} '
              f'({", ".join(f"{f}/" for f in folders)})', ''] + _table(
                  ['job', 'c_L', 'PGN eps', 'mean L2', 'PGN acc', 'FGM acc at that L2',
                   'PGD acc at that L2', 'PGN lower than both'], rows)
    lines += ['', f'Claim 3, {variant_text(variant)}: {verdict.verdict}' +
              (f'; the better of FGM and PGD minus PGN\'s accuracy, on average: {margin:+.3f}.'
               if margin is not None else '.')]
  best = _strongest(attack)
  if best:
    lines += ['', f'Strongest PGN attack variant: {variant_text(best)} (average margin '
              f'{attack[best][1]:+.3f}).']
  return lines + _image(figures, 'pgn_attack', report_path,
                        'accuracy against L2 of FGM, PGD and PGN on fixed classifiers')


def _flag(field: str, value) -> str:
  """The train.py flag that sets a config field to ``value``."""
  return f'--{field}' if value is True else f'--{field}={value}'


TWIN_MARK = " (the twin's)"


def _ablation_section(study: Study) -> list:
  """Each PGN job off the curves beside its twin (``Sweep.twin``): what the one change does to
  test accuracy and robustness, against the twin's seed spread, the curves at its accuracy and
  bench.json's step time."""
  sweep = study.sweep
  pairs, changed = [], {}
  for r in sorted(sweep.ablation, key=_order):
    twin, change = sweep.twin(r)
    cfg = dataclasses.asdict(sweep.configs[r['job']])
    # Against the twin, or with none, the job's VARIANT_FIELDS off the paper's value.
    new = ({k: v for k, (_, v) in change.items()} if twin else
           {k: cfg[k] for k in VARIANT_FIELDS if cfg[k] != paper_value(k, cfg)})
    changed.update(new)
    pairs.append((r, twin, ', '.join(_flag(k, v) for k, v in new.items())))
  # Jobs sharing a twin side by side, under one row of it.
  by_twin = {}
  for pair in pairs:
    by_twin.setdefault((pair[1] or pair[0])['job'], []).append(pair)
  pairs = [pair for group in by_twin.values() for pair in group]
  helps = {f.name: f.metadata['help'] for f in dataclasses.fields(TrainConfig)}
  lines = ['## Ablations: one change to PGN at a time', '',
           'Each PGN job off the robustness curves beside its twin, the curve job whose config '
           'differs from it only in the change (a job without a twin: its changes from the '
           'paper\'s PGN); '
           f'{run_command("through_adv", study.run_flags)} and '
           f'{run_command("levers", study.run_flags)} train them.' +
           ''.join(f' `{_flag(k, v)}`: {helps[k]}' for k, v in changed.items()), '']
  if not pairs:
    return lines + ['No ablation job yet.']
  rows = {t['job']: (t, c) for r, twin, text in pairs
          for t, c in ((twin, 'twin'), (r, text)) if t}
  table = [(job, c, t['status'], _fmt(t['test_acc']), _rho(t), _fmt(t[PGD_KEY]),
            _fmt(t['train_seconds_per_epoch'], 0)) for job, (t, c) in rows.items()]
  lines += _table(['job', 'change', 'status', 'test acc', 'rho_cw mean / median',
                   f'PGD eps {STRONG_PGD_EPS:g} acc', 's/epoch'], table)
  curves, cw = sweep.curves(), sweep.cw_curves()
  groups = {row['job']: g['rows'] for g in sweep.seed_groups() for row in g['rows']}
  steps = (sweep.bench or {}).get('steps', {})
  metrics = (('test acc', 'test_acc'), ('rho_cw mean', 'rho_cw_mean'),
             (f'PGD eps {STRONG_PGD_EPS:g} acc', PGD_KEY))
  effects = []
  for on, off, text in pairs:
    if off and None not in (on['rho_cw_mean'], off['rho_cw_mean']):
      seeds = groups.get(off['job'], [])
      stds = [claims.spread([g[key] for g in seeds])['std'] for _, key in metrics]
      effects.append(
          f'{job_label(off)} at width {on["width"]:g}: `{text}` changes ' + ', '.join(
              f'{name} by {on[key] - off[key]:+.3f}' for name, key in metrics
              if None not in (on[key], off[key])) + '.' +
          (f' The twin\'s seed spread over {len(seeds)} seeds (sample std): ' + ', '.join(
              f'{name} {_fmt(std)}' for (name, _), std in zip(metrics, stds)) + '.'
           if len(seeds) >= MIN_SEEDS else ''))
    at = {label: b for label, rows in curves.items()
          if on['rho_cw_mean'] is not None and rows and rows[0]['width'] == on['width']
          and (b := claims.balanced(rows, on['test_acc'], cw))}
    if at:
      effects.append(
          f'{job_label(on)}: at its test acc {on["test_acc"]:.3f} the curves above interpolate '
          f'to rho_cw / PGD eps {STRONG_PGD_EPS:g} acc of ' + ', '.join(
              f'{label}{TWIN_MARK * (off is not None and label == curve_label(off))} '
              f'{_fmt(b["rho_cw_mean"])} / {_fmt(b[PGD_KEY])}' for label, b in at.items()) +
          f'; with `{text}`: {_fmt(on["rho_cw_mean"])} / {_fmt(on[PGD_KEY])}.')
    names = [BENCH_PGN_STEPS.get(row['variant']) for row in (off, on) if row]
    if len(names) == 2 and all(n in steps for n in names):
      before, after = (steps[n]['ms_per_step'] for n in names)
      effects.append(f'Step time (bench.json, one process, round-robin): {names[0]} '
                     f'{before:.1f} ms, {names[1]} ({text}) {after:.1f} ms '
                     f'({after / before:.2f}x); the s/epoch column compares jobs run at '
                     'different times and loads.')
  return lines + [line for effect in effects for line in ('', effect)]


def _capacity(study: Study) -> list:
  sweep = study.sweep
  pgn = sorted((r for r in sweep.rows if r['defense'] == 'pgn' and r['variant'] in CURVE_VARIANTS
                and r['seed'] == sweep.main_seed), key=_order)
  sweeps = ', '.join(run_command(f'{v}_capacity' if v else 'capacity', study.run_flags)
                     for v in CURVE_VARIANTS)
  lines = ['## Capacity (Figure 5 right)', '',
           f'PGN by classifier width, for each PGN curve variant (the paper\'s, '
           f'{", ".join(v for v in CURVE_VARIANTS if v)}); {sweeps}.', '']
  if not pgn:
    return lines + ['No PGN job yet.']
  return lines + _table(
      ['job', 'status', 'PGN variant', 'c_L', 'width', 'generator width', 'test acc',
       'rho_cw mean / median'],
      [(r['job'], r['status'], r['variant'] or 'raw', f'{r["hparam_value"]:g}', f'{r["width"]:g}',
        f'{r["gen_width"]:g}', _fmt(r['test_acc']), _rho(r)) for r in pgn])


def _progress_jobs(study: Study) -> list:
  """The jobs of Figure 2 right: the curves' variants at the main seed, with an epoch done."""
  sweep = study.sweep
  return [r['job'] for r in sorted(sweep.rows, key=_order) if r['variant'] in CURVE_VARIANTS
          and r['seed'] == sweep.main_seed and sweep.epochs[r['job']]]


def _progress(study: Study, figures: dict, report_path: str) -> list:
  sweep = study.sweep
  jobs = _progress_jobs(study)
  lines = ['## Training progress (Figure 2 right)', '']
  if not jobs:
    return lines + ['No epoch finished yet.']
  cfg = sweep.configs[jobs[0]]
  measured = sorted({p['num_examples'] for j in jobs for p in sweep.progress.get(j, [])})
  lines += [f'Per epoch: benign test accuracy of the EMA classifier / accuracy under the '
            f'robustness probe (PGD-L2 eps {cfg.probe_eps:g}, {cfg.probe_steps} steps, first '
            f'{cfg.probe_size} test images) / rho_cw at the epoch snapshot (C&W as in the '
            f'evaluation, first {_values(measured) if measured else "-"} test images; '
            f'{experiments_command("progress", study.run_flags)} measures the FGM-AT and PGN '
            'jobs\' snapshots; "-" where not measured). The seed-'
            f'{sweep.main_seed} jobs of the curves.']
  lines += _image(figures, 'training_progress', report_path, 'accuracy and probe by epoch')
  epochs = sorted({e['epoch'] for j in jobs for e in sweep.epochs[j]})
  cells = {}
  for j in jobs:
    key = claims.probe_key(sweep.epochs[j])
    rho = {p['epoch']: p['rho_cw_mean'] for p in sweep.progress.get(j, [])}
    for e in sweep.epochs[j]:
      cells[j, e['epoch']] = (f'{e["test_acc"]:.3f} / {_fmt(e.get(key))} / '
                              f'{_fmt(rho.get(e["epoch"]))}')
  return lines + [''] + _table(['epoch'] + jobs,
                               [[n] + [cells.get((j, n), '-') for j in jobs] for n in epochs])


def _speed(study: Study) -> list:
  sweep = study.sweep
  by = collections.defaultdict(list)
  for r in sweep.rows:
    if r['train_seconds_per_epoch'] is not None and not r['variant']:
      by[r['defense'], r['width']].append(r['train_seconds_per_epoch'])
  lines = ['## Speed (section 4.4)', '', 'Seconds per epoch of the paper\'s defenses\' jobs (wall '
           'clock, mean over epochs not resumed mid-way; jobs run at different times and loads '
           'compare poorly):', '']
  if by:
    lines += _table(['defense', 'width', 'jobs', 's/epoch (median)'],
                    [(LABELS[d], f'{w:g}', len(by[d, w]), f'{statistics.median(by[d, w]):.0f}')
                     for d, w in sorted(by, key=lambda k: (DEFENSES.index(k[0]), k[1]))])
  else:
    lines.append('No epoch timed yet.')
  bench = sweep.bench
  if not bench:
    return lines + ['', f'No `{os.path.join(study.root, "bench.json")}` yet: '
                    f'{experiments_command("speed", study.run_flags)} times every train step in '
                    'one process.']
  xla = 'on' if bench['jit_compile'] else 'off'
  lines += ['', f'`bench.json`: train steps in one process (width {bench["width"]:g}, batch '
            f'{bench["batch_size"]}, {bench["device"]}, XLA {xla}):', '']
  lines += _table(['step', 'ms/step', 'images/s'],
                  [(s['defense'], f'{s["ms_per_step"]:.1f}', f'{s["images_per_second"]:.1f}')
                   for s in bench['steps'].values()])
  ratios = [f'{k} {bench[k]:.2f}' for k in ('pgn_over_fgm_time', 'pgd10_over_pgn_time')
            if k in bench]
  return lines + (['', f'Ratios: {", ".join(ratios)}.'] if ratios else [])


def _cifar100(study: Study) -> list:
  lines = ['## CIFAR-100', '']
  if study.sweep.dataset == 'cifar100':
    return lines + ['This report is the CIFAR-100 column.']
  return lines + ['This root holds no CIFAR-100 job. Given the official '
                  '`cifar-100-python.tar.gz` in DIR, the same commands make the column:', '',
                  '    python -m tf_pgn.experiments run --sweep=table2 --dataset=cifar100 '
                  '--data_dir=DIR',
                  '    python -m tf_pgn.experiments report --dataset=cifar100 '
                  '--report=docs/REPRODUCTION_cifar100.md']


def _notes(report_path: str) -> str:
  """The notes block of the existing report, else an empty one."""
  if os.path.isfile(report_path):
    with open(report_path) as f:
      found = re.search(f'{re.escape(NOTES_BEGIN)}.*?{re.escape(NOTES_END)}', f.read(), re.S)
    if found:
      return found.group(0)
  return (f'{NOTES_BEGIN}\n_No notes yet: text between the two `notes` comments of this file '
          f'survives regeneration._\n{NOTES_END}')


# -- figures ---------------------------------------------------------------------------------
def _points(rows: list, key) -> dict:
  """{label: [(rho_cw, test accuracy, hyper-parameter text), ...] sorted by rho_cw}, one curve per
  ``key(row)``."""
  curves = collections.defaultdict(list)
  for r in rows:
    text = f'{LABELS[r["hparam"]]}={r["hparam_value"]:g}' if r['hparam'] else ''
    curves[key(r)].append((r['rho_cw_mean'], r['test_acc'], text))
  return {label: sorted(points) for label, points in curves.items()}


def robustness_curves(rows: list) -> list:
  """Figure 5's two panels as [(title, curves)] of the summary rows' jobs at the seed most share:
  left, one curve per defense at the width most of them share (PGN's CURVE_VARIANTS each a curve
  of its own); right, PGN per curve variant and classifier width. Ablation jobs (other
  variants) are not on the curves."""
  done = [r for r in rows if r['rho_cw_mean'] is not None and r['test_acc'] is not None and
          r['variant'] in CURVE_VARIANTS]
  if not done:
    raise ExperimentError('no job has a C&W result yet: run the sweep (or finish its '
                          'evaluations) first')
  datasets = sorted({r['dataset'] for r in done})
  if len(datasets) > 1:
    raise ExperimentError(f'the root mixes datasets {", ".join(datasets)}: use one --root each')
  seed = collections.Counter(r['seed'] for r in done).most_common(1)[0][0]
  done = [r for r in done if r['seed'] == seed]
  width = collections.Counter(r['width'] for r in done).most_common(1)[0][0]
  return [(f'{datasets[0]}: defenses at width {width:g}',
           _points([r for r in done if r['width'] == width], curve_label)),
          (f'{datasets[0]}: PGN by classifier width',
           _points([r for r in done if r['defense'] == 'pgn'],
                   lambda r: f'width {r["width"]:g}' + (f' ({r["variant"]})' if r['variant']
                                                        else '')))]


def plot_robustness_curves(rows: list, path: str) -> None:
  """Writes Figure 5 for the summary rows (see plots.robustness_curves)."""
  plots.robustness_curves(robustness_curves(rows), path)


def _balanced_panels(study: Study) -> list:
  """Figure 4: C&W accuracy against L2, one panel per common benign accuracy."""
  panels = []
  for level in _levels(study):
    series = [dict(label=label, x=b['cw_curve']['radii'], y=b['cw_curve']['accuracy'],
                   curve=True) for label, b in balanced_at(study, level).items() if b['cw_curve']]
    if series:
      panels.append(dict(title=f'C&W, benign test accuracy {level:.3f}', series=series,
                         benign_accuracy=level))
  return panels


def _pgn_attack_panels(study: Study) -> list:
  """Figure 3: per defense, its job of the largest eps (the paper's are eps 0.5) under FGM, PGD
  and each PGN attack variant, white-box; PGN at the mean L2 of its perturbations."""
  sweep = study.sweep
  largest = {r['defense']: r for r in _attack_targets(study) if r['job'] in sweep.pgn_attacks}
  panels = []
  for r in largest.values():
    results = sweep.results[r['job']]
    series = evaluation.accuracy_vs_l2_series(results, 'whitebox', ('fgm', 'pgd'))
    for variant, attack in sweep.pgn_attacks[r['job']].items():
      points = sorted(p for part in claims.pgn_comparisons(results, attack['entries'])
                      for p in [(q['l2'], q['acc']) for q in part])
      series.append(dict(label=LABELS['pgn'] + (f' ({variant})' if variant != 'raw' else ''),
                         x=[p[0] for p in points], y=[p[1] for p in points], curve=False))
    panels.append(dict(title=f'{job_label(r)} (fixed), white-box',
                       benign_accuracy=results['benign_accuracy'], series=series))
  return panels


def _training_runs(study: Study) -> list:
  """Figure 2 right's runs (plots.training_progress) of the jobs with a probe."""
  sweep = study.sweep
  return [dict(label=job, epoch=[e['epoch'] for e in epochs],
               test_acc=[e['test_acc'] for e in epochs], probe=[e[key] for e in epochs],
               rho_epoch=[p['epoch'] for p in sweep.progress.get(job, [])],
               rho_cw=[p['rho_cw_mean'] for p in sweep.progress.get(job, [])])
          for job in _progress_jobs(study)
          for epochs, key in [(sweep.epochs[job], claims.probe_key(sweep.epochs[job]))] if key]


# -- outputs ---------------------------------------------------------------------------------
def _copy(src: str, dst: str) -> None:
  with open(src, 'rb') as f:
    write_bytes_atomic(dst, f.read())


def _write_outputs(study: Study, folder: str) -> dict:
  """Summary, each job's small files, bench.json and the figures into ``folder``; returns
  {figure name: path} of the figures drawn."""
  sweep = study.sweep
  results_lib.write_summary(sweep.root, folder)
  for row in sweep.rows:
    job = row['job']
    names = list(JOB_FILES) + [
        os.path.join(a['folder'], n) for a in sweep.pgn_attacks.get(job, {}).values()
        if a['folder'] != 'eval' for n in EVAL_FILES] + [
            os.path.join('progress', f'epoch-{p["epoch"]}', 'results.json')
            for p in sweep.progress.get(job, [])] + (
                [os.path.join(AUTOATTACK_DIR, n) for n in EVAL_FILES]
                if job in sweep.autoattack else [])
    for name in dict.fromkeys(names):
      src = os.path.join(sweep.root, job, name)
      if os.path.isfile(src):
        _copy(src, os.path.join(folder, job, name))
  if sweep.bench:
    _copy(os.path.join(sweep.root, 'bench.json'), os.path.join(folder, 'bench.json'))
  figures = {}
  if any(r['variant'] in CURVE_VARIANTS for r in sweep.evaluated()):
    figures['robustness_curves'] = os.path.join(folder, 'robustness_curves.png')
    plot_robustness_curves(sweep.rows, figures['robustness_curves'])
  for name, panels in (('balanced_cw', _balanced_panels(study)),
                       ('pgn_attack', _pgn_attack_panels(study))):
    if panels:
      figures[name] = os.path.join(folder, f'{name}.png')
      plots.accuracy_vs_l2(panels, figures[name])
  runs = _training_runs(study)
  if runs:
    figures['training_progress'] = os.path.join(folder, 'training_progress.png')
    keys = sorted({claims.probe_key(sweep.epochs[r['label']]) for r in runs})
    plots.training_progress(runs, figures['training_progress'],
                            f'robustness probe: {", ".join(keys)}')
  return figures


def write_report(root: str, out: str = 'results',
                 report_path: str = os.path.join('docs', 'REPRODUCTION.md'),
                 command: str = 'python -m tf_pgn.experiments report', run_flags: str | None = None,
                 data_dir: str | None = None, root_text: str | None = None) -> str:
  """Copies ``root``'s small outputs and figures into ``<out>/<root name>/`` and rewrites
  ``report_path`` (keeping its notes block); ``command`` is what the report says made it,
  ``root_text`` and ``run_flags`` how its commands reach this root (default: ``root``).
  Returns ``report_path``.

  Raises:
    ExperimentError: ``root`` holds no job, or mixes datasets.
  """
  study = Study.load(root, run_flags, data_dir, root_text)
  name = os.path.basename(os.path.normpath(root))
  folder = os.path.join(out, name)
  figures = _write_outputs(study, folder)
  lines = [f'# Reproduction report: {name}', '',
           f'Generated by `{command}` from the jobs in `{study.root}`; rerunning it rewrites this '
           f'file but for the notes block. Per-job configs, metrics and evaluations, the summary '
           f'and the figures: `{folder}/`.', '']
  lines += _scale(study) + ['', '## Notes', '', _notes(report_path), ''] + _jobs(study)
  for section in (_verdicts_section(verdicts(study)), _table2(study),
                  _curves_section(study, figures, report_path), _seeds_section(study),
                  _balanced_section(study, figures, report_path),
                  _autoattack_section(study), _pgn_attack_section(study, figures, report_path),
                  _capacity(study),
                  _ablation_section(study), _progress(study, figures, report_path),
                  _speed(study), _cifar100(study)):
    lines += [''] + section
  write_text_atomic(report_path, '\n'.join(lines) + '\n')
  return report_path
