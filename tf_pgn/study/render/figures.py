"""The report's figures, one question each, with the few series that answer it:

  robustness_curves  Figure 5 left (claim 1): at equal benign accuracy, is PGN more robust than
                     FGM-AT and PGD-AT? A panel per PGN curve variant beside the baselines.
  capacity           Figure 5 right (claim 4): does a wider classifier move PGN right?
  balanced_cw        Figure 4 (claim 1): C&W accuracy by radius at each common benign accuracy.
  pgn_attack         Figure 3 (claim 3): is PGN a stronger attack than FGM and PGD at its L2?
  training_progress  Figure 2 right (claim 2): does robustness fall as training goes on?
"""
import collections
import os

from tf_pgn.study import claims
from tf_pgn.study.protocol import (CURVE_VARIANTS, LABELS, ExperimentError, curve_label,
                                   job_label, variant_text)
from tf_pgn.study.render import drawing
from tf_pgn.study.render.attack import attack_targets
from tf_pgn.study.render.common import Study, job_order
from tf_pgn.study.render.curves import balanced_at, common_levels
from tf_pgn.study.render.progress import figure_jobs

RHO_AXIS = 'rho_cw: mean L2 of successful C&W perturbations'


def _curve_rows(rows: list) -> list:
  """The summary rows on the robustness curves (ablation jobs are not) with a C&W result, at the
  seed most of them share.

  Raises:
    ExperimentError: none has a C&W result, or the rows mix datasets.
  """
  done = [r for r in rows if r['rho_cw_mean'] is not None and r['test_acc'] is not None and
          r['variant'] in CURVE_VARIANTS]
  if not done:
    raise ExperimentError('no job has a C&W result yet: run the sweep (or finish its '
                          'evaluations) first')
  datasets = sorted({r['dataset'] for r in done})
  if len(datasets) > 1:
    raise ExperimentError(f'the root mixes datasets {", ".join(datasets)}: use one --root each')
  seed = collections.Counter(r['seed'] for r in done).most_common(1)[0][0]
  return [r for r in done if r['seed'] == seed]


def _series(groups: dict, text, order) -> list:
  """A series per {legend label: rows} of ``groups``: rho_cw against test accuracy, the rows in
  ``order``, each point labelled ``text(row)``."""
  series = []
  for label, rows in sorted(groups.items(), key=lambda g: min(job_order(r) for r in g[1])):
    rows = sorted(rows, key=order)
    series.append(dict(label=label, key=curve_label(rows[0]), x=[r['rho_cw_mean'] for r in rows],
                       y=[r['test_acc'] for r in rows], texts=[text(r) for r in rows]))
  return series


def _by_curve(rows: list) -> dict:
  """{legend label: rows} of each curve: its label and what labels its points."""
  groups = collections.defaultdict(list)
  for r in rows:
    groups[curve_label(r) + (f' (labels: {LABELS[r["hparam"]]})' if r['hparam'] else '')].append(r)
  return groups


def robustness_curves(rows: list) -> list:
  """Figure 5 left: a panel per PGN curve variant with jobs at the width most of the curves'
  jobs share, its curve beside FGM-AT's, PGD-AT's and the naive network, each point labelled
  with its eps or c_L (one panel of every curve where no PGN job has a C&W result)."""
  done = _curve_rows(rows)
  width = collections.Counter(r['width'] for r in done).most_common(1)[0][0]
  at = [r for r in done if r['width'] == width]
  variants = [v for v in CURVE_VARIANTS
              if any(r['defense'] == 'pgn' and r['variant'] == v for r in at)]
  shown = {curve_label(dict(defense='pgn', variant=v)) + f' at width {width:g}':
           [r for r in at if r['defense'] != 'pgn' or r['variant'] == v] for v in variants}
  return [dict(title=title, xlabel=RHO_AXIS, ylabel='benign test accuracy',
               series=_series(_by_curve(group), lambda r: f'{r["hparam_value"]:g}'
                              if r['hparam'] else '', lambda r: r['rho_cw_mean']))
          for title, group in (shown or {f'defenses at width {width:g}': at}).items()]


def plot_robustness_curves(rows: list, path: str) -> None:
  """Writes Figure 5 left for the summary rows."""
  drawing.draw(robustness_curves(rows), path)


def capacity_curves(rows: list) -> list:
  """Figure 5 right: per PGN curve variant and c_L, its jobs at two or more classifier widths
  (rho_cw against test accuracy, from the narrowest), each point labelled with its width."""
  pgn = [r for r in _curve_rows(rows) if r['defense'] == 'pgn']
  groups = collections.defaultdict(list)
  for r in pgn:
    groups[r['variant'], r['hparam_value'], r['gen_width']].append(r)
  capacity = [r for group in groups.values() if len({r['width'] for r in group}) > 1
              for r in group]
  if not capacity:
    return []
  gen_widths = sorted({r['gen_width'] for r in capacity})
  groups = collections.defaultdict(list)
  for r in capacity:
    groups[job_label(r) + (f', generator width {r["gen_width"]:g}' if len(gen_widths) > 1
                           else '')].append(r)
  return [dict(title='PGN by classifier width (labels: width)' + (
      f'; generator width {gen_widths[0]:g}' if len(gen_widths) == 1 else ''), xlabel=RHO_AXIS,
               ylabel='benign test accuracy',
               series=_series(groups, lambda r: f'{r["width"]:g}', lambda r: r['width']))]


def _balanced_panels(study: Study) -> list:
  """Figure 4: C&W accuracy against L2, one panel per common benign accuracy."""
  panels = []
  for level in common_levels(study):
    series = [dict(label=label, key=label, x=b['cw_curve']['radii'], y=b['cw_curve']['accuracy'],
                   marker=False) for label, b in balanced_at(study, level).items()
              if b['cw_curve']]
    if series:
      panels.append(dict(title=f'benign test accuracy {level:.3f}', series=series,
                         xlabel='L2 radius', ylabel='accuracy under C&W', ylim=(-0.02, 0.8)))
  return panels


def _pgn_attack_panels(study: Study) -> list:
  """Figure 3: per defense, its job of the largest eps (the paper's are eps 0.5): each PGN attack
  variant's lead at each c_L, the better of FGM's and PGD's accuracy at PGN's mean L2 minus
  PGN's (claims.pgn_comparisons), against that mean L2; the claim's margin shaded."""
  sweep = study.sweep
  largest = {r['defense']: r for r in attack_targets(study) if r['job'] in sweep.pgn_attacks}
  panels = []
  for r in largest.values():
    series = []
    for variant, attack in sweep.pgn_attacks[r['job']].items():
      compared = sorted(claims.pgn_comparisons(sweep.results[r['job']], attack['entries'])[0],
                        key=lambda p: p['l2'])
      series.append(dict(label=f'PGN, {variant_text(variant)}',
                         key=LABELS['pgn'] + (f' ({variant})' if variant != 'raw' else ''),
                         x=[p['l2'] for p in compared],
                         y=[min(p['fgm'], p['pgd']) - p['acc'] for p in compared],
                         linestyle='--'))
    panels.append(dict(title=f'{job_label(r)} (fixed), white-box', series=series,
                       xlabel='mean L2 of the PGN perturbations',
                       ylabel='lead of PGN (accuracy)',
                       band=(-claims.ACC_MARGIN, claims.ACC_MARGIN,
                             f'no win: a lead within {claims.ACC_MARGIN:g}')))
  return panels


def _progress_panels(study: Study) -> list:
  """Figure 2 right: rho_cw at the epoch snapshots, the robustness probe and the benign test
  accuracy by epoch, of ``progress.figure_jobs``."""
  sweep = study.sweep
  jobs, _ = figure_jobs(study)
  rows = {r['job']: r for r in sweep.rows}
  if not jobs:
    return []
  cfg = sweep.configs[jobs[0]]

  def series(points) -> list:
    """A series per job of the (epochs, values) ``points(job)``, where it has any."""
    out = []
    for j in jobs:
      x, y = points(j)
      if x:
        out.append(dict(label=job_label(rows[j]), key=job_label(rows[j]), x=x, y=y,
                        linestyle='-' if rows[j]['defense'] == 'fgm' else '--'))
    return out

  panels = [dict(title='rho_cw at the epoch snapshots', ylabel='rho_cw (C&W)', series=series(
      lambda j: ([p['epoch'] for p in sweep.progress.get(j, [])],
                 [p['rho_cw_mean'] for p in sweep.progress.get(j, [])])))]
  panels += [dict(title=f'robustness probe (first {cfg.probe_size} test images)',
                  ylabel=f'accuracy under PGD-{cfg.probe_steps} at eps {cfg.probe_budget:g}',
                  series=series(lambda j: ([e['epoch'] for e in sweep.epochs[j]],
                                           [e[claims.probe_key(sweep.epochs[j])]
                                            for e in sweep.epochs[j]]))),
             dict(title='benign test accuracy', ylabel='test accuracy',
                  series=series(lambda j: ([e['epoch'] for e in sweep.epochs[j]],
                                           [e['test_acc'] for e in sweep.epochs[j]])))]
  return [dict(p, xlabel='epoch') for p in panels if p['series']]


def write_figures(study: Study, folder: str) -> dict:
  """Draws the figures the study has data for into ``folder``; returns {figure name: path}."""
  sweep = study.sweep
  figures = {}
  if any(r['variant'] in CURVE_VARIANTS for r in sweep.evaluated()):
    for name, panels in (('robustness_curves', robustness_curves(sweep.rows)),
                         ('capacity', capacity_curves(sweep.rows))):
      if panels:
        figures[name] = os.path.join(folder, f'{name}.png')
        drawing.draw(panels, figures[name], panel=(4.4, 3.6) if len(panels) > 1 else (6, 4))
  for name, panels, cols in (('balanced_cw', _balanced_panels(study), 3),
                             ('pgn_attack', _pgn_attack_panels(study), None)):
    if panels:
      figures[name] = os.path.join(folder, f'{name}.png')
      drawing.draw(panels, figures[name], cols)
  return dict(figures, **write_progress_figure(study, folder))


def write_progress_figure(study: Study, folder: str) -> dict:
  """Figure 2 right alone (``_progress_panels``) into ``folder``, if the study has an epoch;
  returns {'training_progress': path} or {}."""
  panels = _progress_panels(study)
  if not panels:
    return {}
  path = os.path.join(folder, 'training_progress.png')
  drawing.draw(panels, path)
  return {'training_progress': path}
