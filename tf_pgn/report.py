"""The reproduction report of a sweep root: its numbers beside the PGN paper's claims.

  python -m tf_pgn.experiments report      # results/<root name>/ and docs/REPRODUCTION.md

``write_report`` copies the small outputs of every job of a sweep root (config.json,
metrics.jsonl, and the evaluation's results.json, results.md and accuracy_vs_l2.png; never
checkpoints, SavedModels or TensorBoard logs) into ``<out>/<root name>/`` beside the summary,
Figure 5 (robustness curves) and Figure 2 right (training progress), and writes a Markdown
report. Its verdict on each claim of the paper is computed from those numbers by the rule the
report states (CLAIMS); a claim without the data it needs is 'not measured yet', with the command
that measures it. Each run rewrites the report whole, but for the block between NOTES_BEGIN and
NOTES_END: hand-written notes, kept verbatim.
"""
import collections
import dataclasses
import json
import math
import os
import re
import statistics

from tf_pgn import evaluation, experiments, plots
from tf_pgn.config import TrainConfig
from tf_pgn.experiments import LABELS
from tf_pgn.io_utils import read_jsonl, write_bytes_atomic, write_text_atomic

__all__ = ['CLAIMS', 'NOTES_BEGIN', 'NOTES_END', 'Sweep', 'Verdict', 'balance_levels', 'balanced',
           'capacity_moves_curve', 'fgm_trades_robustness', 'load', 'pgn_attack_stronger',
           'robust_at_equal_accuracy', 'speed_order', 'write_report']

NOTES_BEGIN, NOTES_END = '<!-- notes -->', '<!-- /notes -->'
JOB_FILES = ('config.json', 'metrics.jsonl', os.path.join('eval', 'results.json'),
             os.path.join('eval', 'results.md'), os.path.join('eval', 'accuracy_vs_l2.png'))
REPRODUCED, PARTLY, NOT_REPRODUCED, NOT_MEASURED = (
    'reproduced', 'partly', 'not reproduced', 'not measured yet')
# Noise allowances of the rules: benign accuracies this close count as equal (claim 1); rho_cw
# must exceed another by this fraction to count as more robust (claims 1, 4: the standard error
# of a mean over ~800 C&W perturbations is about 2%); attack accuracies this close count as
# equal (claim 3).
ACC_TOL = 0.01
RHO_MARGIN = 0.02
ACC_MARGIN = 0.01
# Points (defense, benign accuracy, rho_cw) read off the paper's Figure 5 by eye
# (shared/design/reference.md): full width, 200 epochs.
PAPER_FIGURE5 = {
    'cifar10': (('naive', 0.920, 0.18), ('pgn', 0.907, 0.62), ('pgn', 0.855, 0.89),
                ('pgd', 0.865, 0.86)),
    'cifar100': (('naive', 0.707, 0.10), ('pgn', 0.66, 0.45), ('pgd', 0.633, 0.45)),
}
_DEFENSES = ('naive', 'fgm', 'pgd', 'pgn')


@dataclasses.dataclass
class Sweep:
  """What the report reads from a sweep root: the summary rows (``experiments.collect``) and,
  per job name, its config, per-epoch metrics, evaluation results (if evaluated) and C&W at its
  epoch snapshots (if measured); <root>/bench.json if present."""
  root: str
  rows: list
  configs: dict
  epochs: dict
  results: dict
  bench: dict | None
  run_flags: str  # flags of `python -m tf_pgn.experiments run` that reach this root
  data_dir: str | None = None
  progress: dict = dataclasses.field(default_factory=dict)  # job: experiments.progress rows
  ablation: list = dataclasses.field(default_factory=list)  # rows of through_adv jobs


@dataclasses.dataclass(frozen=True)
class Verdict:
  verdict: str  # REPRODUCED, PARTLY, NOT_REPRODUCED or NOT_MEASURED
  why: str  # one sentence with the numbers


def _read_json(path: str):
  if not os.path.isfile(path):
    return None
  with open(path) as f:
    return json.load(f)


def load(root: str, run_flags: str | None = None, data_dir: str | None = None) -> Sweep:
  """Reads ``root``; jobs still training or not yet evaluated are kept (status in their row);
  the through-x_adv ablation's jobs go to ``ablation``, apart from the curves."""
  every = experiments.collect(root)
  rows = [r for r in every if not r['variant']]  # the curves', Table 2's and the claims'
  jobs = [r['job'] for r in every]
  configs = {j: TrainConfig.from_dict(_read_json(os.path.join(root, j, 'config.json')))
             for j in jobs}
  epochs = {j: read_jsonl(os.path.join(root, j, 'metrics.jsonl')) for j in jobs}
  results = {j: _read_json(os.path.join(root, j, 'eval', 'results.json')) for j in jobs}
  return Sweep(root, rows, configs, epochs, {j: r for j, r in results.items() if r},
               _read_json(os.path.join(root, 'bench.json')), run_flags or f'--root={root}',
               data_dir, {j: experiments.progress(os.path.join(root, j)) for j in jobs},
               [r for r in every if r['through_adv']])


# -- helpers ---------------------------------------------------------------------------------
def _fmt(value, digits: int = 3) -> str:
  return '-' if value is None else f'{value:.{digits}f}'


def _label(row: dict) -> str:
  """'PGN c_L=8', 'FGM-AT eps=0.02', 'naive'."""
  hparam = f' {LABELS[row["hparam"]]}={row["hparam_value"]:g}' if row['hparam'] else ''
  return LABELS[row['defense']] + hparam


def _evaluated(rows: list) -> list:
  return [r for r in rows if r['rho_cw_mean'] is not None and r['test_acc'] is not None]


def _main_width(rows: list):
  """The classifier width most of ``rows`` share (Figure 5 left compares defenses at one)."""
  return collections.Counter(r['width'] for r in rows).most_common(1)[0][0] if rows else None


def _tally(wins: list) -> str:
  return REPRODUCED if all(wins) else NOT_REPRODUCED if not any(wins) else PARTLY


def _interp(points: list, x: float, tol: float = 0.0):
  """y at x on the polyline through ``points`` (x, y), sorted by x; the end's y up to ``tol``
  beyond an end; None farther out."""
  if x < points[0][0] - tol or x > points[-1][0] + tol:
    return None
  if x <= points[0][0]:
    return points[0][1]
  for (x0, y0), (x1, y1) in zip(points, points[1:]):
    if x <= x1:
      return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
  return points[-1][1]


def _run_cmd(sweep: Sweep, sweep_name: str) -> str:
  return f'`python -m tf_pgn.experiments run --sweep={sweep_name} {sweep.run_flags}`'


def _probe_key(epochs: list):
  """The per-epoch robustness probe's key in metrics.jsonl (``probe_pgd<eps>_acc``)."""
  keys = [k for k in (epochs[-1] if epochs else {}) if k.startswith('probe_')]
  return keys[0] if keys else None


# -- balancing (Table 2, Figure 4) ----------------------------------------------------------
# The metrics balanced at a common benign accuracy: rho of C&W and DeepFool, accuracies under the
# budget attacks at Table 2's eps and the strong PGD's.
BALANCED_METRICS = ('rho_cw_mean', 'rho_cw_median', 'rho_deepfool_mean') + tuple(
    f'{a}_eps{e:g}_acc' for e in experiments.EVAL_SETTINGS['eps_list']
    for a in experiments.BUDGET_ATTACKS)


def _curve_rows(sweep: Sweep) -> dict:
  """{defense: its evaluated jobs at the main width, by benign test accuracy}."""
  done = _evaluated(sweep.rows)
  width = _main_width(done)
  return {d: sorted((r for r in done if r['defense'] == d and r['width'] == width),
                    key=lambda r: r['test_acc']) for d in _DEFENSES}


def balance_levels(sweep: Sweep) -> list:
  """Common benign test accuracies of FGM-AT, PGD-AT and PGN (Figure 4 has three): the top of
  their curves' overlap, where Table 2 balances them to the naive network, its bottom and its
  middle when the overlap is wider than 2 points; [] if the curves do not overlap."""
  curves = [rows for d, rows in _curve_rows(sweep).items() if d != 'naive']
  if not all(curves):
    return []
  top = min(rows[-1]['test_acc'] for rows in curves)
  bottom = max(rows[0]['test_acc'] for rows in curves)
  if bottom > top + ACC_TOL:
    return []
  if top - bottom <= 2 * ACC_TOL:
    return [top]
  return [top, (top + bottom) / 2, bottom]


def _cw_curve(sweep: Sweep, row: dict):
  """The C&W accuracy-vs-L2 curve of the job's evaluation (radii, accuracy), if any."""
  cw = sweep.results.get(row['job'], {}).get('attacks', {}).get('cw', {})
  return cw.get('whitebox', {}).get('accuracy_vs_l2')


def balanced(sweep: Sweep, rows: list, level: float) -> dict | None:
  """A defense's metrics at benign test accuracy ``level``: each of BALANCED_METRICS and the
  C&W accuracy-vs-L2 curve interpolated linearly between the two jobs of its curve (``rows``,
  by test accuracy) around ``level``; the nearest job up to ACC_TOL beyond an end; None farther.
  ``jobs`` says which jobs with which weights."""
  if not rows or not rows[0]['test_acc'] - ACC_TOL <= level <= rows[-1]['test_acc'] + ACC_TOL:
    return None
  nearest = min(rows, key=lambda r: abs(r['test_acc'] - level))
  pair = (nearest, nearest) if abs(nearest['test_acc'] - level) < 1e-6 else next(
      ((a, b) for a, b in zip(rows, rows[1:]) if a['test_acc'] <= level <= b['test_acc']),
      (nearest, nearest))  # else beyond an end
  lo, hi = pair
  span = hi['test_acc'] - lo['test_acc']
  w = (level - lo['test_acc']) / span if span > 0 else 0.0

  def mix(a, b):
    return None if a is None or b is None else (1 - w) * a + w * b

  out = {m: mix(lo[m], hi[m]) for m in BALANCED_METRICS}
  curves = _cw_curve(sweep, lo), _cw_curve(sweep, hi)
  out['cw_curve'] = curves[0] and curves[1] and dict(
      radii=curves[0]['radii'], accuracy=[mix(a, b) for a, b in zip(curves[0]['accuracy'],
                                                                     curves[1]['accuracy'])])
  out['jobs'] = (f'{_label(lo)} ({lo["test_acc"]:.3f})' if lo is hi else
                 f'{1 - w:.2f} x {_label(lo)} ({lo["test_acc"]:.3f}) + {w:.2f} x {_label(hi)} '
                 f'({hi["test_acc"]:.3f})')
  return out


# -- the claims ------------------------------------------------------------------------------
def robust_at_equal_accuracy(sweep: Sweep) -> Verdict:
  """Claim 1 (Table 2, Figures 4-5): rho_cw of PGN against FGM-AT and PGD-AT at the common
  benign accuracies of their robustness curves at the main width (``balance_levels``)."""
  curves = {d: rows for d, rows in _curve_rows(sweep).items() if d != 'naive'}
  missing = [LABELS[d] for d, rows in curves.items() if not rows]
  if missing:
    return Verdict(NOT_MEASURED, f'no evaluated {" / ".join(missing)} job yet: run '
                                 f'{_run_cmd(sweep, "table2")}.')
  levels = balance_levels(sweep)
  if not levels:
    spans = ', '.join(f'{LABELS[d]} {rows[0]["test_acc"]:.3f}-{rows[-1]["test_acc"]:.3f}'
                      for d, rows in curves.items())
    return Verdict(NOT_MEASURED, f'the benign accuracies ({spans}) do not overlap within '
                                 f'{ACC_TOL:g}: widen the curves with '
                                 f'{_run_cmd(sweep, "robustness_curve")}.')
  wins, parts = [], []
  for level in levels:
    rho = {d: balanced(sweep, rows, level)['rho_cw_mean'] for d, rows in curves.items()}
    ahead = [LABELS[d] for d in ('fgm', 'pgd') if rho['pgn'] > rho[d] * (1 + RHO_MARGIN)]
    wins += [LABELS[d] in ahead for d in ('fgm', 'pgd')]
    parts.append(f'at benign accuracy {level:.3f} rho_cw is PGN {rho["pgn"]:.3f}, FGM-AT '
                 f'{rho["fgm"]:.3f}, PGD-AT {rho["pgd"]:.3f} (PGN ahead of '
                 f'{" and ".join(ahead) or "neither"})')
  width = _main_width(_evaluated(sweep.rows))
  return Verdict(_tally(wins), f'{"; ".join(parts)}; width {width:g}.')


def _probe_fall(epochs: list, probe_size: int):
  """The probe accuracy's fall from its (first) peak epoch to the last one, the test accuracy's
  rise over the same epochs, and the standard error of the fall; None without two epochs."""
  key = _probe_key(epochs)
  if key is None or len(epochs) < 2:
    return None
  peak, last = max(epochs, key=lambda e: e[key]), epochs[-1]
  p = peak[key]
  return dict(key=key, peak=peak, last=last, fall=p - last[key],
              rise=last['test_acc'] - peak['test_acc'],
              se=math.sqrt(2 * p * (1 - p) / probe_size))


def _rho_fall(progress: list, epochs: list):
  """As _probe_fall for rho_cw at the epoch snapshots (``experiments.progress``): its fall from
  the peak epoch to the last, the standard error of that difference from the two means'."""
  test_acc = {e['epoch']: e['test_acc'] for e in epochs}
  rows = [dict(p, rho_cw=p['rho_cw_mean'], test_acc=test_acc[p['epoch']]) for p in progress
          if p['epoch'] in test_acc and p['rho_cw_mean'] is not None and p['rho_cw_std_error']]
  if len(rows) < 2:
    return None
  peak, last = max(rows, key=lambda p: p['rho_cw']), rows[-1]
  return dict(key='rho_cw', peak=peak, last=last, fall=peak['rho_cw'] - last['rho_cw'],
              rise=last['test_acc'] - peak['test_acc'],
              se=math.hypot(peak['rho_cw_std_error'], last['rho_cw_std_error']))


def fgm_trades_robustness(sweep: Sweep) -> Verdict:
  """Claim 2 (Figure 2 right): FGM-AT's robustness falls while its benign accuracy rises as
  training goes on: rho_cw at the epoch snapshots where measured, else the per-epoch PGD probe."""
  falls = {}
  for r in sweep.rows:
    if r['status'] != 'training':
      fall = (_rho_fall(sweep.progress.get(r['job'], []), sweep.epochs[r['job']]) or
              _probe_fall(sweep.epochs[r['job']], sweep.configs[r['job']].probe_size))
      if fall:
        falls[r['job']] = (r, fall)
  fgm = [(r, f) for r, f in falls.values() if r['defense'] == 'fgm']
  if not fgm:
    return Verdict(NOT_MEASURED, f'no finished FGM-AT training yet: run '
                                 f'{_run_cmd(sweep, "table2")}.')
  levels, parts = [], []
  for r, f in fgm:
    trade = f['rise'] > 0
    levels.append(REPRODUCED if trade and f['fall'] > 2 * f['se'] else
                  PARTLY if trade and f['fall'] > f['se'] else NOT_REPRODUCED)
    parts.append(f'{r["job"]}: {f["key"]} {f["peak"][f["key"]]:.3f} at epoch '
                 f'{f["peak"]["epoch"]} (test acc {f["peak"]["test_acc"]:.3f}) -> '
                 f'{f["last"][f["key"]]:.3f} at epoch {f["last"]["epoch"]} '
                 f'({f["last"]["test_acc"]:.3f}), a fall of {f["fall"]:.3f} against a standard '
                 f'error of {f["se"]:.3f}')
  others = [f'{r["job"]} {f["fall"]:.3f}' for r, f in falls.values() if r['defense'] != 'fgm']
  verdict = (levels[0] if len(set(levels)) == 1 else PARTLY)
  return Verdict(verdict, '; '.join(parts) + (f' (falls of the others: {", ".join(others)})'
                                               if others else '') + '.')


def _attack_points(results: dict, attack: str) -> list:
  """(mean L2 of the perturbation, white-box accuracy) of each budget of ``attack``."""
  return sorted((e['whitebox']['mean_l2'], e['whitebox']['accuracy'], e.get('c_l'))
                for e in results['attacks'].values()
                if e['attack'] == attack and e['whitebox']['mean_l2'] is not None)


def _pgn_attack_command(sweep: Sweep, job: str) -> str:
  """evaluate.py with the job's own attacks and budgets plus PGN: what exists is reused."""
  results = sweep.results[job]
  settings = results['attack_settings']
  eps = sorted({b['eps'] for a in ('fgm', 'mim', 'pgd') for b in
                settings.get(a, {}).get('budgets', [])})
  run_dir = os.path.join(sweep.root, job)
  return (f'`python evaluate.py --ckpt={run_dir} --out={os.path.join(run_dir, "eval")} '
          f'--dataset={results["dataset"]} --num_examples={results["num_examples"]} '
          f'--attacks={",".join(list(settings) + ["pgn"])} '
          f'--eps_list={",".join(f"{e:g}" for e in eps)}' +
          (f' --pgd_steps={settings["pgd"]["steps"]}' if 'pgd' in settings else '') +
          (f' --data_dir={sweep.data_dir}' if sweep.data_dir else '') + '`')


def pgn_attack_stronger(sweep: Sweep) -> Verdict:
  """Claim 3 (Figure 3): on fixed FGM-AT / PGD-AT classifiers, PGN as an attack gets a lower
  accuracy than FGM and PGD at the same mean L2 of the perturbation."""
  targets = sorted((r['hparam_value'], r['job']) for r in sweep.rows
                   if r['defense'] in ('fgm', 'pgd') and r['job'] in sweep.results)
  if not targets:
    return Verdict(NOT_MEASURED, 'no evaluated FGM-AT or PGD-AT job yet: run '
                                 f'{_run_cmd(sweep, "robustness_curve")}, then evaluate the '
                                 'PGN attack on them.')
  measured = [j for _, j in targets if _attack_points(sweep.results[j], 'pgn')]
  if not measured:
    return Verdict(NOT_MEASURED, 'no PGN attack on the FGM-AT / PGD-AT jobs yet: run '
                                 f'{_pgn_attack_command(sweep, targets[-1][1])} (likewise for '
                                 'the other FGM-AT / PGD-AT jobs).')
  wins, parts, outside = [], [], []
  for job in measured:
    results = sweep.results[job]
    for l2, acc, c_l in _attack_points(results, 'pgn'):
      rivals = {}
      for attack in ('fgm', 'pgd'):
        curve = [(0.0, results['benign_accuracy'])] + [
            p[:2] for p in _attack_points(results, attack)]
        rivals[attack] = _interp(curve, l2) if len(curve) > 1 else None
      if None in rivals.values():
        outside.append(f'{job} c_L={c_l:g} (mean L2 {l2:.3f})')
        continue
      wins += [acc < other - ACC_MARGIN for other in rivals.values()]
      parts.append(f'{job}, c_L={c_l:g} at mean L2 {l2:.3f}: PGN {acc:.3f}, FGM '
                   f'{rivals["fgm"]:.3f}, PGD {rivals["pgd"]:.3f}')
  if not wins:
    return Verdict(NOT_MEASURED, f'every PGN attack ({", ".join(outside)}) lies outside the '
                                 'L2 range FGM and PGD were measured at: rerun the evaluation '
                                 'with a --pgn_c_l_list whose mean L2 falls within the eps_list.')
  beyond = f' (beyond the budgets, not compared: {", ".join(outside)})' if outside else ''
  return Verdict(_tally(wins), 'white-box accuracy, ' + '; '.join(parts) + beyond + '.')


def capacity_moves_curve(sweep: Sweep) -> Verdict:
  """Claim 4 (Figure 5 right): a wider classifier gives PGN a larger rho_cw at the same c_L."""
  groups = collections.defaultdict(dict)
  for r in _evaluated(sweep.rows):
    if r['defense'] == 'pgn':
      groups[r['hparam_value'], r['gen_width']][r['width']] = r
  groups = [g for g in groups.values() if len(g) > 1]
  if not groups:
    return Verdict(NOT_MEASURED, 'no PGN setting evaluated at two classifier widths yet: run '
                                 f'{_run_cmd(sweep, "capacity")}.')
  points = sorted(max(groups, key=len).items())
  rho = [r['rho_cw_mean'] for _, r in points]
  rises = [b > a * (1 + RHO_MARGIN) for a, b in zip(rho, rho[1:])]
  wanted = len(experiments.CAPACITY_WIDTHS)
  verdict = (REPRODUCED if all(rises) and len(points) >= wanted else
             PARTLY if rho[-1] > rho[0] * (1 + RHO_MARGIN) else NOT_REPRODUCED)
  row = points[0][1]
  why = f'{_label(row)} (generator width {row["gen_width"]:g}): ' + ', '.join(
      f'rho_cw {r["rho_cw_mean"]:.3f} at width {w:g} (test acc {r["test_acc"]:.3f})'
      for w, r in points) + '.'
  if len(points) < wanted:
    why += (f' Only {len(points)} of the {wanted} widths the claim needs (at most partly): '
            f'run {_run_cmd(sweep, "capacity")}.')
  return Verdict(verdict, why)


def _bench_times(bench: dict | None):
  steps = (bench or {}).get('steps', {})
  pgd = 'pgd10' if 'pgd10' in steps else next((k for k in steps if k.startswith('pgd')), None)
  if not ({'fgm', 'pgn'} <= steps.keys() and pgd):
    return None
  return {d: steps[k]['ms_per_step'] for d, k in (('fgm', 'fgm'), ('pgn', 'pgn'), ('pgd', pgd))}


def _seconds_per_epoch(rows: list) -> tuple:
  """({defense: seconds per epoch}, width): a job's mean over its epochs, the median over the
  defense's jobs at the main width."""
  timed = [r for r in rows if r['train_seconds_per_epoch'] is not None]
  width = _main_width(timed)
  by = collections.defaultdict(list)
  for r in timed:
    if r['width'] == width:
      by[r['defense']].append(r['train_seconds_per_epoch'])
  return {d: statistics.median(t) for d, t in by.items()}, width


def speed_order(sweep: Sweep) -> Verdict:
  """Claim 5 (section 4.4): training time FGM-AT < PGN < PGD-AT; from bench.json (one process,
  back to back) if it has the three steps, else from the jobs' seconds per epoch."""
  times = _bench_times(sweep.bench)
  if times:
    source = (f'ms per train step in bench.json (width {sweep.bench["width"]:g}, batch '
              f'{sweep.bench["batch_size"]}, {sweep.bench["device"]})')
  else:
    times, width = _seconds_per_epoch(sweep.rows)
    source = (f'seconds per epoch at width {width} (wall clock; mean over epochs, median over '
              'jobs)')
  missing = [LABELS[d] for d in ('fgm', 'pgn', 'pgd') if d not in times]
  if missing:
    return Verdict(NOT_MEASURED, f'no time for {" / ".join(missing)} yet: run '
                                 f'`python -m tf_pgn.experiments speed {sweep.run_flags}`.')
  wins = [times['fgm'] < times['pgn'], times['pgn'] < times['pgd']]
  return Verdict(_tally(wins), f'{source}: FGM-AT {times["fgm"]:.4g}, PGN {times["pgn"]:.4g}, '
                               f'PGD-AT {times["pgd"]:.4g}.')


# (claim, where in the paper, rule, function)
CLAIMS = (
    ('PGN is more robust than FGM-AT and PGD-AT at equal benign accuracy',
     'Table 2, Figures 4-5', 'each defense\'s rho_cw (mean) is interpolated linearly in benign '
     'test accuracy along its robustness curve at the main width (up to 1 point beyond an end '
     'counts as the end) and compared at the common accuracies of the balanced comparison: the '
     'highest accuracy all three curves reach and, if their overlap is wider than 2 points, its '
     'middle and lowest; PGN wins a comparison when its rho_cw '
     f'exceeds the other\'s by more than {RHO_MARGIN:.0%}: reproduced if it wins all, not '
     'reproduced if none, partly otherwise', robust_at_equal_accuracy),
    ('FGM-AT trades robustness away as training goes on', 'Figure 2 right',
     'per finished FGM-AT job, rho_cw at its epoch snapshots (`experiments progress`; where not '
     'measured, the per-epoch PGD probe accuracy) from its peak epoch to the last: reproduced if '
     'it fell by more than 2 standard errors (of the two means; for the probe sqrt(2 p (1 - p) / '
     'probe_size)) while the test accuracy rose, partly if by more than 1, else not reproduced; '
     'several FGM-AT jobs that disagree give partly',
     fgm_trades_robustness),
    ('PGN is a stronger attack than FGM and PGD on fixed adversarially trained models',
     'Figure 3', 'on each evaluated FGM-AT / PGD-AT job with PGN attack results, each PGN '
     'point (its mean L2, accuracy) against FGM\'s and PGD\'s accuracy interpolated at that mean '
     'L2 (from the benign accuracy at 0 up to the largest budget measured); PGN wins a '
     f'comparison when its accuracy is lower by more than {ACC_MARGIN:g}: reproduced if it wins '
     'all, not reproduced if none, partly otherwise', pgn_attack_stronger),
    ('More classifier capacity moves the PGN robustness curve right', 'Figure 5 right',
     'PGN jobs of one c_L and generator width at two or more classifier widths: reproduced if '
     f'rho_cw rises by more than {RHO_MARGIN:.0%} at each wider step and all '
     f'{len(experiments.CAPACITY_WIDTHS)} widths of the capacity sweep are measured, partly if '
     'it rises only from the narrowest to the widest (or at fewer widths), else not reproduced',
     capacity_moves_curve),
    ('Training time: FGM-AT < PGN < PGD-AT', 'section 4.4', 'ms per step of bench.json '
     '(`tf_pgn.experiments speed`, PGD with 10 steps) if present, else seconds per epoch (mean '
     'over epochs, median over jobs) at the main width: reproduced if both inequalities hold, '
     'partly if one, else not reproduced', speed_order),
)


# -- outputs ---------------------------------------------------------------------------------
def _copy(src: str, dst: str) -> None:
  with open(src, 'rb') as f:
    write_bytes_atomic(dst, f.read())


def _write_outputs(sweep: Sweep, folder: str) -> dict:
  """Summary, each job's small files, bench.json and the figures into ``folder``; returns
  {figure name: path} of the figures drawn."""
  experiments.write_summary(sweep.root, folder)
  for row in sweep.rows + sweep.ablation:
    for name in JOB_FILES:
      src = os.path.join(sweep.root, row['job'], name)
      if os.path.isfile(src):
        _copy(src, os.path.join(folder, row['job'], name))
    for p in sweep.progress.get(row['job'], []):
      name = os.path.join('progress', f'epoch-{p["epoch"]}', 'results.json')
      _copy(os.path.join(sweep.root, row['job'], name), os.path.join(folder, row['job'], name))
  if sweep.bench:
    _copy(os.path.join(sweep.root, 'bench.json'), os.path.join(folder, 'bench.json'))
  figures = {}
  if _evaluated(sweep.rows):
    figures['robustness_curves'] = os.path.join(folder, 'robustness_curves.png')
    experiments.plot_robustness_curves(sweep.rows, figures['robustness_curves'])
  for name, panels in (('balanced_cw', _balanced_panels(sweep)),
                       ('pgn_attack', _pgn_attack_panels(sweep))):
    if panels:
      figures[name] = os.path.join(folder, f'{name}.png')
      plots.accuracy_vs_l2(panels, figures[name])
  runs = [dict(label=r['job'], epoch=[e['epoch'] for e in sweep.epochs[r['job']]],
               test_acc=[e['test_acc'] for e in sweep.epochs[r['job']]],
               probe=[e[_probe_key(sweep.epochs[r['job']])] for e in sweep.epochs[r['job']]],
               rho_epoch=[p['epoch'] for p in sweep.progress.get(r['job'], [])],
               rho_cw=[p['rho_cw_mean'] for p in sweep.progress.get(r['job'], [])])
          for r in sweep.rows if _probe_key(sweep.epochs[r['job']])]
  if runs:
    figures['training_progress'] = os.path.join(folder, 'training_progress.png')
    keys = sorted({_probe_key(sweep.epochs[r['label']]) for r in runs})
    plots.training_progress(runs, figures['training_progress'],
                            f'robustness probe: {", ".join(keys)}')
  return figures


def _at_level(sweep: Sweep, level: float) -> dict:
  """{defense: balanced metrics at ``level``}; the naive network only if it is at ``level``."""
  out = {}
  for d, rows in _curve_rows(sweep).items():
    if d == 'naive':
      near = [r for r in rows if abs(r['test_acc'] - level) <= ACC_TOL]
      if near:
        out[d] = dict({m: near[0][m] for m in BALANCED_METRICS},
                      cw_curve=_cw_curve(sweep, near[0]),
                      jobs=f'{_label(near[0])} ({near[0]["test_acc"]:.3f})')
    elif (b := balanced(sweep, rows, level)) is not None:
      out[d] = b
  return out


def _balanced_panels(sweep: Sweep) -> list:
  """Figure 4: C&W accuracy against L2, one panel per common benign accuracy."""
  panels = []
  for level in balance_levels(sweep):
    series = [dict(label=LABELS[d], x=b['cw_curve']['radii'], y=b['cw_curve']['accuracy'],
                   curve=True) for d, b in _at_level(sweep, level).items() if b['cw_curve']]
    if series:
      panels.append(dict(title=f'C&W, benign test accuracy {level:.3f}', series=series,
                         benign_accuracy=level))
  return panels


def _pgn_attack_targets(sweep: Sweep) -> list:
  """FGM-AT / PGD-AT jobs evaluated with the PGN attack, in report order."""
  return [r for r in sorted(sweep.rows, key=_order)
          if r['defense'] in experiments.FIGURE3_DEFENSES and r['job'] in sweep.results and
          _attack_points(sweep.results[r['job']], 'pgn')]


def _pgn_attack_panels(sweep: Sweep) -> list:
  """Figure 3: per defense, its job of the largest eps (the paper's are eps 0.5) under FGM, PGD
  and PGN, white-box."""
  largest = {r['defense']: r for r in _pgn_attack_targets(sweep)}  # sorted by eps
  return [dict(title=f'{_label(r)} (fixed), white-box', benign_accuracy=results['benign_accuracy'],
               series=evaluation.accuracy_vs_l2_series(results, 'whitebox', ('fgm', 'pgd', 'pgn')))
          for r in largest.values() for results in [sweep.results[r['job']]]]


def _notes(report_path: str) -> str:
  """The notes block of the existing report, else an empty one."""
  if os.path.isfile(report_path):
    with open(report_path) as f:
      found = re.search(f'{re.escape(NOTES_BEGIN)}.*?{re.escape(NOTES_END)}', f.read(), re.S)
    if found:
      return found.group(0)
  return (f'{NOTES_BEGIN}\n_No notes yet: text between the two `notes` comments of this file '
          f'survives regeneration._\n{NOTES_END}')


# -- the Markdown report ---------------------------------------------------------------------
def _table(header: list, rows: list) -> list:
  return (['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)] +
          ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows])


def _values(values) -> str:
  return ', '.join('all' if v is None else f'{v:g}' for v in sorted(
      set(values), key=lambda v: -1 if v is None else v))


def _scale(sweep: Sweep) -> list:
  """How these jobs differ from the paper's setting: configs, data, evaluation."""
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
  datasets = ', '.join(sorted({c.dataset for c in configs}))
  if provenances and all(p.startswith('official') for p in provenances):
    lines.append(f'Data: the official {datasets} files (MD5 verified by the evaluations).')
  else:
    recorded = (f'not the official files (the evaluations record: {"; ".join(provenances)})'
                if provenances else 'provenance not recorded by these evaluations')
    lines.append(f'Data: {datasets}, {recorded}. On this project\'s machines that is CIFAR-10 '
                 'rebuilt offline from `../shared/data`: exact labels, exact pixels for the '
                 'first 1,017 images of every batch and JPEG-smoothed pixels (PSNR 30 dB) for '
                 'the rest, so the models learn a slightly smoothed CIFAR-10 while the first '
                 '1,000 test images, the ones evaluated, are exact.')
  evaluated = [r for r in sweep.rows if r['num_examples']]
  if evaluated:
    lines += ['', f'Evaluation: each job\'s EMA classifier on the first '
              f'{_values(r["num_examples"] for r in evaluated)} test images; C&W L2 (rho_cw), '
              f'DeepFool, and FGM / MIM / PGD ({_values(r["pgd_steps"] for r in evaluated)} '
              f'steps) at L2 eps {_values(experiments.EVAL_SETTINGS["eps_list"])}. Benign '
              '"test acc" is on the whole test split, "benign acc" on the evaluated images.']
  return lines


def recorded_hours(sweep: Sweep) -> dict:
  """Wall-clock hours the jobs' files record: training (every epoch's ``epoch_seconds``),
  evaluation (``seconds`` of the last evaluate call, partial results it reused not counted) and
  C&W at the epoch snapshots (``experiments.progress``)."""
  seconds = dict(
      training=sum(e.get('epoch_seconds') or 0 for rows in sweep.epochs.values() for e in rows),
      evaluation=sum(r.get('seconds') or 0 for r in sweep.results.values()),
      progress=sum(p.get('seconds') or 0 for rows in sweep.progress.values() for p in rows))
  return {k: v / 3600 for k, v in seconds.items()}


def _jobs(sweep: Sweep) -> list:
  every = sweep.rows + sweep.ablation
  counts = collections.Counter(r['status'] for r in every)
  pending = [f'{r["job"]} (training, epoch {r["epochs"]} of {sweep.configs[r["job"]].epochs})'
             if r['status'] == 'training' else f'{r["job"]} (trained, evaluation pending)'
             for r in every if r['status'] != 'evaluated']
  lines = ['## Jobs', '', f'{len(every)} jobs in `{sweep.root}`: ' +
           ', '.join(f'{n} {s}' for s, n in sorted(counts.items())) + '.']
  if pending:
    lines += ['', f'Pending: {"; ".join(pending)}. `python -m tf_pgn.experiments run '
              f'--sweep=<sweep> {sweep.run_flags}` goes on with them.']
  hours = recorded_hours(sweep)
  return lines + ['', 'Time the jobs record: ' + ', '.join(f'{k} {v:.2f} h' for k, v in
                                                          hours.items()) +
                  f', total {sum(hours.values()):.2f} h (wall clock; work redone after an '
                  'interruption is not counted).']


def _verdicts(verdicts: list) -> list:
  lines = ['## Verdicts', ''] + _table(
      ['#', 'claim (paper)', 'verdict', 'why'],
      [(i + 1, f'{claim} ({where})', f'**{v.verdict}**', v.why)
       for i, ((claim, where, _, _), v) in enumerate(zip(CLAIMS, verdicts))])
  lines += ['', 'Rules (computed by `tf_pgn/report.py` from the numbers below):', '']
  return lines + [f'{i + 1}. {rule}.' for i, (_, _, rule, _) in enumerate(CLAIMS)]


def _accuracies(row: dict, eps: float) -> str:
  return ' / '.join(_fmt(row[f'{a}_eps{eps:g}_acc']) for a in experiments.BUDGET_ATTACKS)


def _table2(sweep: Sweep) -> list:
  """Table 2's jobs at the main width, and Figure 5's points of the paper beside them."""
  width = _main_width(sweep.rows)
  found = {}
  for job in experiments.SWEEPS['table2']:
    found[job] = next((r for r in sweep.rows if (r['defense'], r['hparam_value'], r['width']) ==
                       (job.defense, job.hparam_value, width)), None)
  eps = experiments.EVAL_SETTINGS['eps_list']
  rows = []
  for job, r in found.items():
    label = LABELS[job.defense] + (f' {LABELS[job.hparam_name]}={job.hparam_value:g}'
                                   if job.hparam_name else '')
    if r is None:
      rows.append([label, 'not started'] + ['-'] * (5 + len(eps)))
      continue
    rows.append([label, r['status'], _fmt(r['test_acc']), _fmt(r['benign_accuracy']),
                 f'{_fmt(r["rho_cw_mean"])} / {_fmt(r["rho_cw_median"])}',
                 _fmt(r['rho_deepfool_mean'])] + [_accuracies(r, e) for e in eps] +
                [_fmt(r['train_seconds_per_epoch'], 0)])
  lines = ['## Table 2: defenses at the paper\'s eps 0.02 and c_L 50', '',
           f'Width {width:g}; `python -m tf_pgn.experiments run --sweep=table2 '
           f'{sweep.run_flags}`.', ''] + _table(
               ['defense', 'status', 'test acc', 'benign acc', 'rho_cw mean / median',
                'DeepFool rho'] + [f'FGM / MIM / PGD acc, eps {e:g}' for e in eps] +
               ['s/epoch'], rows)
  dataset = sweep.rows[0]['dataset']
  paper = PAPER_FIGURE5.get(dataset, ())
  ours = {job.defense: r for job, r in found.items() if r and r['status'] == 'evaluated'}
  lines += ['', f'The paper\'s Figure 5 ({dataset}, read off by eye: full width, 200 epochs) '
            'beside the Table 2 jobs:', ''] + _table(
                ['defense', 'paper: benign acc / rho_cw', 'ours: test acc / rho_cw'],
                [(LABELS[d], '; '.join(f'{a:.3f} / {rho:.2f}' for p, a, rho in paper if p == d)
                  or '-', f'{_fmt(ours[d]["test_acc"])} / {_fmt(ours[d]["rho_cw_mean"])}'
                  if ours.get(d) else '-') for d in _DEFENSES])
  return lines


def _image(figures: dict, name: str, report_path: str, alt: str) -> list:
  if name not in figures:
    return []
  return ['', f'![{alt}]({os.path.relpath(figures[name], os.path.dirname(report_path) or ".")})']


def _order(row: dict) -> tuple:
  return (_DEFENSES.index(row['defense']), row['hparam_value'] or 0.0, row['width'], row['seed'],
          row['job'])


def _curves(sweep: Sweep, figures: dict, report_path: str) -> list:
  rows = [(r['job'], r['status'], _label(r), f'{r["width"]:g}', _fmt(r['test_acc']),
           _fmt(r['benign_accuracy']), f'{_fmt(r["rho_cw_mean"])} / {_fmt(r["rho_cw_median"])}',
           _fmt(r['cw_success_rate']), _fmt(r[f'pgd_eps{experiments.STRONG_PGD_EPS:g}_acc']),
           r['failed_checks'] or '-') for r in sorted(sweep.rows, key=_order)]
  lines = ['## Robustness curves (Figure 5 left)', '',
           'Every job, by defense and hyper-parameter; `python -m tf_pgn.experiments run '
           f'--sweep=robustness_curve {sweep.run_flags}` trains the curves.', ''] + _table(
               ['job', 'status', 'defense', 'width', 'test acc', 'benign acc',
                'rho_cw mean / median', 'C&W success',
                f'PGD eps {experiments.STRONG_PGD_EPS:g} acc', 'failed checks'], rows)
  return lines + _image(figures, 'robustness_curves', report_path,
                        'benign accuracy against rho_cw')


def _balanced_section(sweep: Sweep, figures: dict, report_path: str) -> list:
  lines = ['## Balanced comparison (Table 2, Figure 4)', '']
  levels = balance_levels(sweep)
  if not levels:
    return lines + ['The FGM-AT, PGD-AT and PGN curves share no benign accuracy yet: '
                    f'{_run_cmd(sweep, "robustness_curve")} widens them.']
  eps = experiments.EVAL_SETTINGS['eps_list']
  lines += ['The paper balances the defenses by choosing eps and c_L so that each reaches the '
            'same benign accuracy. With a few jobs per robustness curve we interpolate instead: '
            'at each common benign test accuracy (the top of the curves\' overlap, and its '
            'middle and bottom when it spans more than 2 points), every metric, and the C&W '
            'accuracy at every radius, is interpolated linearly between the two jobs of the '
            'curve around it ("from jobs" gives the weights). The naive network appears where '
            f'its own accuracy is within {ACC_TOL:g}. An interpolated row estimates a model '
            'nobody trained; it is a reading of the curves, not a measurement.', '']
  rows = []
  for level in levels:
    for d, b in _at_level(sweep, level).items():
      rows.append([f'{level:.3f}', LABELS[d], b['jobs'],
                   f'{_fmt(b["rho_cw_mean"])} / {_fmt(b["rho_cw_median"])}',
                   _fmt(b['rho_deepfool_mean'])] + [_accuracies(b, e) for e in eps])
  lines += _table(['benign test acc', 'defense', 'from jobs', 'rho_cw mean / median',
                   'DeepFool rho'] + [f'FGM / MIM / PGD acc, eps {e:g}' for e in eps], rows)
  return lines + _image(figures, 'balanced_cw', report_path,
                        'C&W accuracy against L2 at common benign accuracies')


def _pgn_attack_section(sweep: Sweep, figures: dict, report_path: str) -> list:
  lines = ['## PGN as an attack (Figure 3)', '']
  targets = _pgn_attack_targets(sweep)
  if not targets:
    return lines + [pgn_attack_stronger(sweep).why]
  lines += ['White-box accuracy of fixed FGM-AT and PGD-AT classifiers: FGM and PGD at L2 eps '
            '(PGD steps as in the evaluation), PGN as a fresh generator trained against the '
            'fixed classifier for each c_L (`evaluate.py --attacks=pgn`), placed at the mean L2 '
            'of its perturbations. The figure shows, per defense, the job of the largest eps.',
            '']
  rows = []
  for r in targets:
    results = sweep.results[r['job']]
    cells = [', '.join(f'{e:g}: {a:.3f}' for e, a in sorted(
        (e['eps'], e['whitebox']['accuracy']) for e in results['attacks'].values()
        if e['attack'] == attack)) for attack in ('fgm', 'pgd')]
    cells.append(', '.join(f'c_L {c:g} (L2 {l2:.3f}): {a:.3f}'
                           for l2, a, c in _attack_points(results, 'pgn')))
    rows.append([r['job'], _fmt(results['benign_accuracy'])] + cells)
  lines += _table(['job', 'benign acc', 'FGM: eps: acc', 'PGD: eps: acc',
                   'PGN: c_L (mean L2): acc'], rows)
  return lines + _image(figures, 'pgn_attack', report_path,
                        'accuracy against L2 of FGM, PGD and PGN on fixed classifiers')


def _through_adv_section(sweep: Sweep) -> list:
  lines = ['## F differentiating through x_adv', '',
           'With `--pgn_grad_through_adv` the classifier\'s update also differentiates through '
           'x_adv = x + G(grad_x F, x, y), and so through G\'s input gradient (double '
           'backprop), as the authors\' code does; by default x_adv is a constant for F, as in '
           'FGM- and PGD-AT. Each ablation job beside the job that differs only in the flag; '
           f'`python -m tf_pgn.experiments run --sweep=through_adv {sweep.run_flags}` trains '
           'them.', '']
  if not sweep.ablation:
    return lines + ['No ablation job yet.']
  twins = [(next((o for o in sweep.rows if all(o[k] == r[k] for k in (
      'defense', 'hparam_value', 'width', 'gen_width', 'seed'))), None), r)
           for r in sweep.ablation]  # (the same job without the flag or None, the ablation job)
  eps = experiments.STRONG_PGD_EPS
  pgd = f'pgd_eps{eps:g}_acc'
  lines += _table(
      ['job', 'through x_adv', 'status', 'test acc', 'rho_cw mean / median',
       f'PGD eps {eps:g} acc', 's/epoch'],
      [(r['job'], flag, r['status'], _fmt(r['test_acc']),
        f'{_fmt(r["rho_cw_mean"])} / {_fmt(r["rho_cw_median"])}', _fmt(r[pgd]),
        _fmt(r['train_seconds_per_epoch'], 0))
       for pair in twins for r, flag in zip(pair, ('off', 'on')) if r])
  curves = _curve_rows(sweep)
  effects = []
  for off, on in twins:
    if not off or None in (off['rho_cw_mean'], on['rho_cw_mean'], off['test_acc'],
                           on['test_acc']):
      continue
    effects.append(
        f'{_label(on)} at width {on["width"]:g}: the flag changes test acc by '
        f'{on["test_acc"] - off["test_acc"]:+.3f}, rho_cw mean by '
        f'{on["rho_cw_mean"] - off["rho_cw_mean"]:+.3f}' +
        (f', PGD eps {eps:g} acc by {on[pgd] - off[pgd]:+.3f}'
         if None not in (on[pgd], off[pgd]) else '') + '.')
    at = {d: b for d in ('fgm', 'pgd', 'pgn') if curves[d] and curves[d][0]['width'] == on['width']
          and (b := balanced(sweep, curves[d], on['test_acc']))}
    if at:
      effects.append(
          f'At its test acc {on["test_acc"]:.3f} the curves above interpolate to rho_cw / '
          f'PGD eps {eps:g} acc of ' + ', '.join(
              f'{LABELS[d]}{" (flag off)" * (d == "pgn")} {_fmt(b["rho_cw_mean"])} / '
              f'{_fmt(b[pgd])}' for d, b in at.items()) +
          f'; with the flag: {_fmt(on["rho_cw_mean"])} / {_fmt(on[pgd])}.')
  steps = (sweep.bench or {}).get('steps', {})
  if 'pgn' in steps and 'pgn:through' in steps:
    pgn, through = steps['pgn']['ms_per_step'], steps['pgn:through']['ms_per_step']
    effects.append(f'Step time (bench.json, one process, round-robin): PGN {pgn:.1f} ms, with '
                   f'the flag {through:.1f} ms ({through / pgn:.2f}x); the s/epoch column '
                   'compares jobs run at different times and loads.')
  return lines + [line for effect in effects for line in ('', effect)]


def _capacity(sweep: Sweep) -> list:
  pgn = sorted((r for r in sweep.rows if r['defense'] == 'pgn'),
               key=lambda r: (r['hparam_value'], r['width']))
  lines = ['## Capacity (Figure 5 right)', '',
           f'PGN by classifier width; `python -m tf_pgn.experiments run --sweep=capacity '
           f'{sweep.run_flags}`.', '']
  if not pgn:
    return lines + ['No PGN job yet.']
  return lines + _table(
      ['job', 'status', 'c_L', 'width', 'generator width', 'test acc', 'rho_cw mean / median'],
      [(r['job'], r['status'], f'{r["hparam_value"]:g}', f'{r["width"]:g}',
        f'{r["gen_width"]:g}', _fmt(r['test_acc']),
        f'{_fmt(r["rho_cw_mean"])} / {_fmt(r["rho_cw_median"])}') for r in pgn])


def _progress(sweep: Sweep, figures: dict, report_path: str) -> list:
  jobs = [r['job'] for r in sorted(sweep.rows, key=_order) if sweep.epochs[r['job']]]
  lines = ['## Training progress (Figure 2 right)', '']
  if not jobs:
    return lines + ['No epoch finished yet.']
  cfg = sweep.configs[jobs[0]]
  measured = sorted({p['num_examples'] for j in jobs for p in sweep.progress.get(j, [])})
  lines += [f'Per epoch: benign test accuracy of the EMA classifier / accuracy under the '
            f'robustness probe (PGD-L2 eps {cfg.probe_eps:g}, {cfg.probe_steps} steps, first '
            f'{cfg.probe_size} test images) / rho_cw at the epoch snapshot (C&W as in the '
            f'evaluation, first {_values(measured) if measured else "-"} test images; `python '
            f'-m tf_pgn.experiments progress {sweep.run_flags}` measures the FGM-AT and PGN '
            'jobs\' snapshots; "-" where not measured).']
  lines += _image(figures, 'training_progress', report_path, 'accuracy and probe by epoch')
  epochs = sorted({e['epoch'] for j in jobs for e in sweep.epochs[j]})
  cells = {}
  for j in jobs:
    key = _probe_key(sweep.epochs[j])
    rho = {p['epoch']: p['rho_cw_mean'] for p in sweep.progress.get(j, [])}
    for e in sweep.epochs[j]:
      cells[j, e['epoch']] = (f'{e["test_acc"]:.3f} / {_fmt(e.get(key))} / '
                              f'{_fmt(rho.get(e["epoch"]))}')
  return lines + [''] + _table(['epoch'] + jobs,
                               [[n] + [cells.get((j, n), '-') for j in jobs] for n in epochs])


def _speed(sweep: Sweep) -> list:
  by = collections.defaultdict(list)
  for r in sweep.rows:
    if r['train_seconds_per_epoch'] is not None:
      by[r['defense'], r['width']].append(r['train_seconds_per_epoch'])
  lines = ['## Speed (section 4.4)', '', 'Seconds per epoch of the jobs (wall clock, mean over '
           'epochs not resumed mid-way; several jobs may have shared the machine):', '']
  if by:
    lines += _table(['defense', 'width', 'jobs', 's/epoch (median)'],
                    [(LABELS[d], f'{w:g}', len(by[d, w]), f'{statistics.median(by[d, w]):.0f}')
                     for d, w in sorted(by, key=lambda k: (_DEFENSES.index(k[0]), k[1]))])
  else:
    lines.append('No epoch timed yet.')
  bench = sweep.bench
  if not bench:
    return lines + ['', f'No `{os.path.join(sweep.root, "bench.json")}` yet: `python -m '
                    f'tf_pgn.experiments speed {sweep.run_flags}` times every train step in one '
                    'process.']
  xla = 'on' if bench['jit_compile'] else 'off'
  lines += ['', f'`bench.json`: train steps in one process (width {bench["width"]:g}, batch '
            f'{bench["batch_size"]}, {bench["device"]}, XLA {xla}):', '']
  lines += _table(['step', 'ms/step', 'images/s'],
                  [(s['defense'], f'{s["ms_per_step"]:.1f}', f'{s["images_per_second"]:.1f}')
                   for s in bench['steps'].values()])
  ratios = [f'{k} {bench[k]:.2f}' for k in ('pgn_over_fgm_time', 'pgd10_over_pgn_time')
            if k in bench]
  return lines + (['', f'Ratios: {", ".join(ratios)}.'] if ratios else [])


def _cifar100(sweep: Sweep) -> list:
  lines = ['## CIFAR-100', '']
  if sweep.rows[0]['dataset'] == 'cifar100':
    return lines + ['This report is the CIFAR-100 column.']
  return lines + ['The CIFAR-100 column awaits a machine with the data (this one has none). '
                  'Given the official `cifar-100-python.tar.gz` in DIR, the same commands make '
                  'it:', '',
                  '    python -m tf_pgn.experiments run --sweep=table2 --dataset=cifar100 '
                  '--data_dir=DIR',
                  '    python -m tf_pgn.experiments report --dataset=cifar100 '
                  '--report=docs/REPRODUCTION_cifar100.md']


def write_report(root: str, out: str = 'results',
                 report_path: str = os.path.join('docs', 'REPRODUCTION.md'),
                 command: str = 'python -m tf_pgn.experiments report', run_flags: str | None = None,
                 data_dir: str | None = None) -> str:
  """Copies ``root``'s small outputs and figures into ``<out>/<root name>/`` and rewrites
  ``report_path`` (keeping its notes block); ``command`` is what the report says made it,
  ``run_flags`` what its commands pass to reach this root. Returns ``report_path``.

  Raises:
    ExperimentError: ``root`` holds no job, or mixes datasets.
  """
  sweep = load(root, run_flags, data_dir)
  folder = os.path.join(out, os.path.basename(os.path.normpath(root)))
  figures = _write_outputs(sweep, folder)
  verdicts = [fn(sweep) for _, _, _, fn in CLAIMS]
  lines = [f'# Reproduction report: {os.path.basename(os.path.normpath(root))}', '',
           f'Generated by `{command}` from the jobs in `{root}`; rerunning it rewrites this '
           f'file but for the notes block. Per-job configs, metrics and evaluations, the summary '
           f'and the figures: `{folder}/`.', '']
  lines += _scale(sweep) + ['', '## Notes', '', _notes(report_path), ''] + _jobs(sweep)
  for section in (_verdicts(verdicts), _table2(sweep), _curves(sweep, figures, report_path),
                  _balanced_section(sweep, figures, report_path),
                  _pgn_attack_section(sweep, figures, report_path), _capacity(sweep),
                  _through_adv_section(sweep), _progress(sweep, figures, report_path),
                  _speed(sweep), _cifar100(sweep)):
    lines += [''] + section
  write_text_atomic(report_path, '\n'.join(lines) + '\n')
  return report_path
