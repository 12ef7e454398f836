"""The PGN paper's claims as pure functions of the study's numbers.

Each claim function takes plain data (summary rows of ``results.collect``, results.json dicts,
bench.json) and returns a ``Verdict``: reproduced, partly, not reproduced, or not measured yet
with the command that measures it, by the rule CLAIMS states. Beside them the readings the rules
are made of: interpolation along a curve (``interp``), the balanced comparison at common benign
accuracies (Table 2, Figure 4: ``balance_levels``, ``balanced``), the seed spread (``spread``,
``curve_spread``) and the comparison that claim 1 calls a win (``more_robust``).
"""
import collections
import dataclasses
import math
import statistics

from tf_pgn.study.protocol import (BUDGET_ATTACKS, CAPACITY_WIDTHS, EVAL_SETTINGS, LABELS,
                                   MIN_SEEDS, job_label)

__all__ = ['ACC_MARGIN', 'ACC_TOL', 'BALANCED_METRICS', 'CLAIMS', 'Curve', 'NOT_MEASURED',
           'NOT_REPRODUCED', 'PARTLY', 'REPRODUCED', 'RHO_MARGIN', 'Verdict', 'attack_margin',
           'balance_levels', 'balanced', 'capacity_moves_curve', 'curve_spread',
           'experiments_command', 'fgm_trades_robustness', 'interp', 'merge_levels', 'more_robust',
           'pgn_attack_stronger', 'pgn_comparisons', 'probe_key', 'robust_at_equal_accuracy',
           'run_command', 'speed_order', 'spread']

REPRODUCED, PARTLY, NOT_REPRODUCED, NOT_MEASURED = (
    'reproduced', 'partly', 'not reproduced', 'not measured yet')
# Noise allowances of the rules: benign accuracies this close count as equal (claim 1); rho_cw
# must exceed another by this fraction to count as more robust (claims 1, 4: the standard error
# of a mean over ~800 C&W perturbations is about 2%); attack accuracies this close count as
# equal (claim 3).
ACC_TOL = 0.01
RHO_MARGIN = 0.02
ACC_MARGIN = 0.01
# Common benign accuracies closer than this are one level of the balanced comparison.
LEVEL_TOL = 1e-3


@dataclasses.dataclass(frozen=True)
class Verdict:
  verdict: str  # REPRODUCED, PARTLY, NOT_REPRODUCED or NOT_MEASURED
  why: str  # one sentence with the numbers


@dataclasses.dataclass(frozen=True)
class Curve:
  """A robustness curve (Figure 5 left): its label, its evaluated jobs by benign test accuracy
  (summary rows), the sweep that trains it, and the sample std of rho_cw over the seeds of one of
  its jobs (``curve_spread``; None: not measured on MIN_SEEDS seeds)."""
  label: str
  rows: list
  sweep: str = 'robustness_curve'
  rho_std: float | None = None


def experiments_command(args: str, run_flags: str = '') -> str:
  """``python -m tf_pgn.experiments <args>`` at the root ``run_flags`` reach, in backquotes."""
  return f'`python -m tf_pgn.experiments {args}{" " * bool(run_flags)}{run_flags}`'


def run_command(sweep: str, run_flags: str = '') -> str:
  """The command that runs ``sweep`` (sweeps.SWEEPS) at the root ``run_flags`` reach."""
  return experiments_command(f'run --sweep={sweep}', run_flags)


def _tally(wins: list) -> str:
  return REPRODUCED if all(wins) else NOT_REPRODUCED if not any(wins) else PARTLY


def _most_common(values):
  return collections.Counter(values).most_common(1)[0][0] if values else None


def interp(points: list, x: float, tol: float = 0.0):
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


# -- balancing (Table 2, Figure 4) ----------------------------------------------------------
# The metrics balanced at a common benign accuracy: rho of C&W and DeepFool, accuracies under the
# budget attacks at Table 2's eps and the strong PGD's.
BALANCED_METRICS = ('rho_cw_mean', 'rho_cw_median', 'rho_deepfool_mean') + tuple(
    f'{a}_eps{e:g}_acc' for e in EVAL_SETTINGS['eps_list'] for a in BUDGET_ATTACKS)


def balance_levels(curves: list) -> list:
  """Common benign test accuracies of robustness curves (lists of rows by test accuracy; Figure
  4 has three): the top of their overlap, where Table 2 balances them to the naive network, its
  bottom and its middle when the overlap is wider than 2 points; [] if they do not overlap."""
  if not curves or not all(curves):
    return []
  top = min(rows[-1]['test_acc'] for rows in curves)
  bottom = max(rows[0]['test_acc'] for rows in curves)
  if bottom > top + ACC_TOL:
    return []
  if top - bottom <= 2 * ACC_TOL:
    return [top]
  return [top, (top + bottom) / 2, bottom]


def merge_levels(*levels: list) -> list:
  """The levels of several balanced comparisons, highest first, those within LEVEL_TOL once."""
  merged = []
  for level in sorted((v for vs in levels for v in vs), reverse=True):
    if not merged or merged[-1] - level > LEVEL_TOL:
      merged.append(level)
  return merged


def balanced(rows: list, level: float, cw_curves: dict | None = None) -> dict | None:
  """A curve's metrics at benign test accuracy ``level``: each of BALANCED_METRICS and the C&W
  accuracy-vs-L2 curve (``cw_curves``: job -> its results' ``accuracy_vs_l2``) interpolated
  linearly between the two jobs of the curve (``rows``, by test accuracy) around ``level``; the
  nearest job up to ACC_TOL beyond an end; None farther (a metric the rows lack: None). ``jobs``
  says which jobs with which weights."""
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

  out = {m: mix(lo.get(m), hi.get(m)) for m in BALANCED_METRICS}
  curves = [(cw_curves or {}).get(r['job']) for r in (lo, hi)]
  out['cw_curve'] = curves[0] and curves[1] and dict(
      radii=curves[0]['radii'], accuracy=[mix(a, b) for a, b in zip(curves[0]['accuracy'],
                                                                     curves[1]['accuracy'])])
  out['jobs'] = (f'{job_label(lo)} ({lo["test_acc"]:.3f})' if lo is hi else
                 f'{1 - w:.2f} x {job_label(lo)} ({lo["test_acc"]:.3f}) + {w:.2f} x '
                 f'{job_label(hi)} ({hi["test_acc"]:.3f})')
  return out


# -- seed spread -----------------------------------------------------------------------------
def spread(values: list) -> dict:
  """n, mean, sample std (None below 2 values), min and max of the values that are not None."""
  values = [v for v in values if v is not None]
  return dict(n=len(values), mean=statistics.mean(values) if values else None,
              std=statistics.stdev(values) if len(values) > 1 else None,
              min=min(values, default=None), max=max(values, default=None))


def curve_spread(groups: list, defense: str, variant: str, width: float) -> float | None:
  """The seed spread claims 1 and 4 allow a curve: the largest sample std of rho_cw over its seed
  groups (dicts with ``rows`` of one config but the seed) of the defense and variant at
  ``width`` with MIN_SEEDS or more evaluated seeds; None if there is none."""
  stds = [s['std'] for g in groups if (g['rows'][0]['defense'], g['rows'][0]['variant'],
                                       g['rows'][0]['width']) == (defense, variant, width)
          for s in [spread([r['rho_cw_mean'] for r in g['rows']])] if s['n'] >= MIN_SEEDS]
  return max(stds, default=None)


# -- claim 1 ---------------------------------------------------------------------------------
def more_robust(rho: float, other: float, std: float | None = None,
                other_std: float | None = None) -> bool:
  """Claim 1's win: ``rho`` exceeds ``other`` by more than RHO_MARGIN of it and, where both
  curves' seed spread is measured, by more than the sum of their rho_cw stds."""
  margin = RHO_MARGIN * other
  if std is not None and other_std is not None:
    margin = max(margin, std + other_std)
  return rho - other > margin


def robust_at_equal_accuracy(pgn: Curve, baselines: list, run_flags: str = '') -> Verdict:
  """Claim 1 (Table 2, Figures 4-5): rho_cw of a PGN curve against FGM-AT's and PGD-AT's at the
  common benign accuracies of the curves (``balance_levels``), a win as ``more_robust`` says;
  reproduced only where every curve's seed spread is measured."""
  curves = [pgn] + list(baselines)
  missing = [c for c in curves if not c.rows]
  if missing:
    return Verdict(NOT_MEASURED, f'no evaluated {" / ".join(c.label for c in missing)} job yet: '
                                 f'run {_commands(missing, run_flags)}.')
  levels = balance_levels([c.rows for c in curves])
  if not levels:
    spans = ', '.join(f'{c.label} {c.rows[0]["test_acc"]:.3f}-{c.rows[-1]["test_acc"]:.3f}'
                      for c in curves)
    return Verdict(NOT_MEASURED, f'the benign accuracies ({spans}) do not overlap within '
                                 f'{ACC_TOL:g}: widen the curves with '
                                 f'{_commands(curves, run_flags)}.')
  wins, parts = [], []
  for level in levels:
    rho = [balanced(c.rows, level)['rho_cw_mean'] for c in curves]
    ahead = [c.label for c, r in zip(baselines, rho[1:])
             if more_robust(rho[0], r, pgn.rho_std, c.rho_std)]
    wins += [c.label in ahead for c in baselines]
    parts.append(f'at benign accuracy {level:.3f} rho_cw is ' + ', '.join(
        f'{c.label} {r:.3f}' for c, r in zip(curves, rho)) +
                 f' ({pgn.label} ahead of {" and ".join(ahead) or "neither"})')
  verdict = _tally(wins)
  unmeasured = [c.label for c in curves if c.rho_std is None]
  if unmeasured:
    seeds = _spread_not_measured(', '.join(unmeasured), run_flags)
    verdict = PARTLY if verdict == REPRODUCED else verdict
  else:
    seeds = (' Seed std of rho_cw: ' + ', '.join(f'{c.label} {c.rho_std:.3f}' for c in curves) +
             '; a win exceeds the sum of the two.')
  return Verdict(verdict, f'{"; ".join(parts)}; width {pgn.rows[0]["width"]:g}.{seeds}')


def _spread_not_measured(what: str, run_flags: str) -> str:
  """The sentence a verdict without the seed spread it needs ends with (claims 1 and 4)."""
  return (f' Seed spread not measured on {MIN_SEEDS} seeds for {what} (at most partly): run '
          f'{run_command("seeds", run_flags)}.')


def _commands(curves: list, run_flags: str) -> str:
  return ' and '.join(run_command(s, run_flags) for s in dict.fromkeys(c.sweep for c in curves))


# -- claim 2 ---------------------------------------------------------------------------------
def probe_key(epochs: list):
  """The per-epoch robustness probe's key in metrics.jsonl (``probe_pgd<eps>_acc``)."""
  keys = [k for k in (epochs[-1] if epochs else {}) if k.startswith('probe_pgd')]
  return keys[0] if keys else None


def _probe_fall(epochs: list, probe_size: int):
  """The probe accuracy's fall from its (first) peak epoch to the last one, the test accuracy's
  rise over the same epochs, and the standard error of the fall; None without two epochs."""
  key = probe_key(epochs)
  if key is None or len(epochs) < 2:
    return None
  peak, last = max(epochs, key=lambda e: e[key]), epochs[-1]
  p = peak[key]
  return dict(key=key, peak=peak, last=last, fall=p - last[key],
              rise=last['test_acc'] - peak['test_acc'],
              se=math.sqrt(2 * p * (1 - p) / probe_size))


def _rho_fall(progress: list, epochs: list):
  """As _probe_fall for rho_cw at the epoch snapshots (``results.progress``): its fall from the
  peak epoch to the last, the standard error of that difference from the two means'."""
  test_acc = {e['epoch']: e['test_acc'] for e in epochs}
  rows = [dict(p, rho_cw=p['rho_cw_mean'], test_acc=test_acc[p['epoch']]) for p in progress
          if p['epoch'] in test_acc and p['rho_cw_mean'] is not None and p['rho_cw_std_error']]
  if len(rows) < 2:
    return None
  peak, last = max(rows, key=lambda p: p['rho_cw']), rows[-1]
  return dict(key='rho_cw', peak=peak, last=last, fall=peak['rho_cw'] - last['rho_cw'],
              rise=last['test_acc'] - peak['test_acc'],
              se=math.hypot(peak['rho_cw_std_error'], last['rho_cw_std_error']))


def fgm_trades_robustness(jobs: list, run_flags: str = '', sweep: str = 'table2') -> Verdict:
  """Claim 2 (Figure 2 right): FGM-AT's robustness falls while its benign accuracy rises as
  training goes on: rho_cw at the epoch snapshots where measured, else the per-epoch PGD probe.
  ``jobs``: dicts ``row`` (summary row), ``epochs`` (metrics.jsonl), ``progress``
  (``results.progress``) and ``probe_size`` (the config's); ``sweep`` the one whose run the
  verdict names while no FGM-AT job has finished."""
  falls = []
  for job in jobs:
    if job['row']['status'] != 'training':
      fall = (_rho_fall(job['progress'], job['epochs']) or
              _probe_fall(job['epochs'], job['probe_size']))
      if fall:
        falls.append((job['row'], fall))
  fgm = [(r, f) for r, f in falls if r['defense'] == 'fgm']
  if not fgm:
    return Verdict(NOT_MEASURED, f'no finished FGM-AT training yet: run '
                                 f'{run_command(sweep, run_flags)}.')
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
  others = [f'{r["job"]} {f["fall"]:.3f}' for r, f in falls if r['defense'] != 'fgm']
  verdict = levels[0] if len(set(levels)) == 1 else PARTLY
  return Verdict(verdict, '; '.join(parts) + (f' (falls of the others: {", ".join(others)})'
                                               if others else '') + '.')


# -- claim 3 ---------------------------------------------------------------------------------
def _budget_curve(results: dict, attack: str) -> list:
  """(mean L2 of the perturbations, white-box accuracy) of ``attack`` at each of its budgets,
  from the benign accuracy at 0."""
  return [(0.0, results['benign_accuracy'])] + sorted(
      (e['whitebox']['mean_l2'], e['whitebox']['accuracy']) for e in results['attacks'].values()
      if e['attack'] == attack and e['whitebox']['mean_l2'] is not None)


def pgn_comparisons(results: dict, entries: list) -> tuple:
  """Figure 3 at each PGN attack of ``entries`` (results.json entries of one attack variant) on
  the classifier ``results`` evaluated: (compared, outside), lists of dicts c_l, eps (PGN's L2
  budget or None), l2 (mean L2 of its perturbations) and acc (white-box accuracy), by l2; in
  compared also fgm and pgd: their accuracy interpolated at l2 along their budgets; outside
  holds the points beyond the largest budget measured."""
  compared, outside = [], []
  curves = {a: _budget_curve(results, a) for a in ('fgm', 'pgd')}
  for e in sorted((e for e in entries if e['whitebox']['mean_l2'] is not None),
                  key=lambda e: e['whitebox']['mean_l2']):
    point = dict(c_l=e['c_l'], eps=e.get('eps'), l2=e['whitebox']['mean_l2'],
                 acc=e['whitebox']['accuracy'])
    rivals = {a: interp(c, point['l2']) if len(c) > 1 else None for a, c in curves.items()}
    (outside if None in rivals.values() else compared).append(dict(point, **rivals))
  return compared, outside


def attack_margin(compared: list) -> float | None:
  """How much lower PGN's accuracy is than the better of FGM and PGD at the same mean L2,
  averaged over the compared points (``pgn_comparisons``): the larger, the stronger the PGN
  attack; None with no point."""
  return statistics.mean(min(p['fgm'], p['pgd']) - p['acc'] for p in compared) if compared \
      else None


def pgn_attack_stronger(targets: dict, command: str, run_flags: str = '') -> Verdict:
  """Claim 3 (Figure 3): on fixed FGM-AT / PGD-AT classifiers, PGN as an attack (one attack
  variant) gets a lower accuracy than FGM and PGD at the same mean L2 of the perturbation.
  ``targets``: {evaluated FGM-AT / PGD-AT job: (its eval results, PGN entries of the variant)};
  ``command``: what measures the PGN attack where no job has it."""
  if not targets:
    return Verdict(NOT_MEASURED, 'no evaluated FGM-AT or PGD-AT job yet: run '
                                 f'{run_command("robustness_curve", run_flags)}, then evaluate '
                                 'the PGN attack on them.')
  measured = {job: pgn_comparisons(*t) for job, t in targets.items() if t[1]}
  if not measured:
    return Verdict(NOT_MEASURED, f'no PGN attack on the FGM-AT / PGD-AT jobs yet: run {command} '
                                 '(likewise for the other FGM-AT / PGD-AT jobs).')
  wins, parts, outside = [], [], []
  for job, (compared, beyond) in measured.items():
    outside += [f'{job} c_L={p["c_l"]:g} (mean L2 {p["l2"]:.3f})' for p in beyond]
    for p in compared:
      wins += [p['acc'] < p[a] - ACC_MARGIN for a in ('fgm', 'pgd')]
      parts.append(f'{job}, c_L={p["c_l"]:g} at mean L2 {p["l2"]:.3f}: PGN {p["acc"]:.3f}, FGM '
                   f'{p["fgm"]:.3f}, PGD {p["pgd"]:.3f}')
  if not wins:
    return Verdict(NOT_MEASURED, f'every PGN attack ({", ".join(outside)}) lies outside the '
                                 'L2 range FGM and PGD were measured at: rerun the evaluation '
                                 'with a --pgn_c_l_list whose mean L2 falls within the eps_list.')
  beyond = f' (beyond the budgets, not compared: {", ".join(outside)})' if outside else ''
  return Verdict(_tally(wins), 'white-box accuracy, ' + '; '.join(parts) + beyond + '.')


# -- claim 4 ---------------------------------------------------------------------------------
def capacity_moves_curve(rows: list, sweep: str = 'capacity', run_flags: str = '',
                         widths: tuple = CAPACITY_WIDTHS, rho_std: float | None = None) -> Verdict:
  """Claim 4 (Figure 5 right): a wider classifier gives PGN a larger rho_cw at the same c_L.
  ``rows``: evaluated PGN jobs of one variant and seed; ``sweep`` trains the missing widths;
  ``rho_std``: the variant's seed spread (``curve_spread``), which a rise must exceed as claim
  1's win does (``more_robust``); reproduced only where it is measured."""
  groups = collections.defaultdict(dict)
  for r in rows:
    groups[r['hparam_value'], r['gen_width']][r['width']] = r
  groups = [g for g in groups.values() if len(g) > 1]
  if not groups:
    return Verdict(NOT_MEASURED, 'no PGN setting evaluated at two classifier widths yet: run '
                                 f'{run_command(sweep, run_flags)}.')
  points = sorted(max(groups, key=len).items())
  rho = [r['rho_cw_mean'] for _, r in points]
  rises = [more_robust(b, a, rho_std, rho_std) for a, b in zip(rho, rho[1:])]
  verdict = (REPRODUCED if all(rises) and len(points) >= len(widths) else
             PARTLY if more_robust(rho[-1], rho[0], rho_std, rho_std) else NOT_REPRODUCED)
  row = points[0][1]
  why = f'{job_label(row)} (generator width {row["gen_width"]:g}): ' + ', '.join(
      f'rho_cw {r["rho_cw_mean"]:.3f} at width {w:g} (test acc {r["test_acc"]:.3f})'
      for w, r in points) + '.'
  if len(points) < len(widths):
    why += (f' Only {len(points)} of the {len(widths)} widths the claim needs (at most partly): '
            f'run {run_command(sweep, run_flags)}.')
  if rho_std is None:
    verdict = PARTLY if verdict == REPRODUCED else verdict
    why += _spread_not_measured('this variant', run_flags)
  else:
    why += (f' Seed std of rho_cw {rho_std:.3f} (at this variant\'s seed point, as in claim 1); '
            'a rise exceeds twice it.')
  return Verdict(verdict, why)


# -- claim 5 ---------------------------------------------------------------------------------
def _bench_times(bench: dict | None, pgn_step: str):
  steps = (bench or {}).get('steps', {})
  pgd = 'pgd10' if 'pgd10' in steps else next((k for k in steps if k.startswith('pgd')), None)
  if not ({'fgm', pgn_step} <= steps.keys() and pgd):
    return None
  return {d: steps[k]['ms_per_step'] for d, k in (('fgm', 'fgm'), ('pgn', pgn_step), ('pgd', pgd))}


def _seconds_per_epoch(rows: list) -> tuple:
  """({defense: seconds per epoch}, width): a job's mean over its epochs, the median over the
  defense's jobs at the width most timed jobs share."""
  timed = [r for r in rows if r['train_seconds_per_epoch'] is not None]
  width = _most_common([r['width'] for r in timed])
  by = collections.defaultdict(list)
  for r in timed:
    if r['width'] == width:
      by[r['defense']].append(r['train_seconds_per_epoch'])
  return {d: statistics.median(t) for d, t in by.items()}, width


def speed_order(bench: dict | None, rows: list, run_flags: str = '', pgn_step: str = 'pgn',
                pgn_label: str = LABELS['pgn']) -> Verdict:
  """Claim 5 (section 4.4): training time FGM-AT < PGN < PGD-AT; from bench.json (one process,
  back to back) if it has the three steps (PGN's: ``pgn_step``, the variant judged, named
  ``pgn_label``), else from the jobs' (summary rows of the baselines and that variant) seconds
  per epoch."""
  times = _bench_times(bench, pgn_step)
  if times:
    source = (f'ms per train step in bench.json (width {bench["width"]:g}, batch '
              f'{bench["batch_size"]}, {bench["device"]})')
  else:
    times, width = _seconds_per_epoch(rows)
    source = (f'seconds per epoch at width {width} (wall clock; mean over epochs, median over '
              'jobs)')
  labels = dict(LABELS, pgn=pgn_label)
  missing = [labels[d] for d in ('fgm', 'pgn', 'pgd') if d not in times]
  if missing:
    return Verdict(NOT_MEASURED, f'no time for {" / ".join(missing)} yet: run '
                                 f'{experiments_command("speed", run_flags)}.')
  wins = [times['fgm'] < times['pgn'], times['pgn'] < times['pgd']]
  return Verdict(_tally(wins), f'{source}: FGM-AT {times["fgm"]:.4g}, {pgn_label} '
                               f'{times["pgn"]:.4g}, PGD-AT {times["pgd"]:.4g}.')


# (number, claim, where in the paper, rule); claims 1, 3, 4 and 5 are judged per PGN variant.
CLAIMS = (
    (1, 'PGN is more robust than FGM-AT and PGD-AT at equal benign accuracy',
     'Table 2, Figures 4-5', 'per PGN variant, each curve\'s rho_cw (mean) is interpolated '
     'linearly in benign test accuracy along its robustness curve at the main width and seed (up '
     'to 1 point beyond an end counts as the end) and compared at the common accuracies of the '
     'PGN curve and the two baselines: the highest accuracy all three reach and, if their '
     'overlap is wider than 2 points, its middle and lowest; PGN wins a comparison when its '
     f'rho_cw exceeds the other\'s by more than {RHO_MARGIN:.0%} and by more than the sum of the '
     'two curves\' seed spreads (the sample std of rho_cw over the seeds of one job of each '
     f'curve, the largest such where several; {MIN_SEEDS} seeds or more): reproduced if it wins '
     'all with both spreads measured, partly if it wins some or all but a spread is not '
     'measured, not reproduced if it wins none'),
    (2, 'FGM-AT trades robustness away as training goes on', 'Figure 2 right',
     'per finished FGM-AT job, rho_cw at its epoch snapshots (`experiments progress`; where not '
     'measured, the per-epoch PGD probe accuracy) from its peak epoch to the last: reproduced if '
     'it fell by more than 2 standard errors (of the two means; for the probe sqrt(2 p (1 - p) / '
     'probe_size)) while the test accuracy rose, partly if by more than 1, else not reproduced; '
     'several FGM-AT jobs that disagree give partly'),
    (3, 'PGN is a stronger attack than FGM and PGD on fixed adversarially trained models',
     'Figure 3', 'per PGN attack variant (G input and L2 budget), on each evaluated FGM-AT / '
     'PGD-AT job with its results, each PGN point (its mean L2, accuracy) against FGM\'s and '
     'PGD\'s accuracy interpolated at that mean L2 (from the benign accuracy at 0 up to the '
     'largest budget measured); PGN wins a comparison when its accuracy is lower by more than '
     f'{ACC_MARGIN:g}: reproduced if it wins all, not reproduced if none, partly otherwise; the '
     'strongest variant is the one whose accuracy lies farthest below the better of FGM and PGD, '
     'on average over its compared points'),
    (4, 'More classifier capacity moves the PGN robustness curve right', 'Figure 5 right',
     'per PGN variant, its jobs of one c_L and generator width at two or more classifier widths: '
     f'a rise is rho_cw higher by more than {RHO_MARGIN:.0%} and by more than twice the '
     'variant\'s seed spread (as in rule 1); reproduced if it rises at each wider step, all '
     f'{len(CAPACITY_WIDTHS)} widths of the capacity sweep are measured and the spread is, '
     'partly if it rises only from the narrowest to the widest (or at fewer widths, or without '
     'the spread), else not reproduced'),
    (5, 'Training time: FGM-AT < PGN < PGD-AT', 'section 4.4', 'ms per step of bench.json '
     '(`tf_pgn.experiments speed`, PGD with 10 steps) if present, else seconds per epoch (mean '
     'over epochs, median over jobs) at the main width: reproduced if both inequalities hold, '
     'partly if one, else not reproduced'),
)
