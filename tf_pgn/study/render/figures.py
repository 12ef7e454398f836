"""The report's figures: Figure 5 (robustness curves), Figure 4 (balanced C&W curves), Figure 3
(PGN as an attack) and Figure 2 right (training progress), from the sections' data."""
import collections
import os

from tf_pgn import evaluation, plots
from tf_pgn.study import claims
from tf_pgn.study.protocol import CURVE_VARIANTS, LABELS, ExperimentError, curve_label, job_label
from tf_pgn.study.render.attack import attack_targets
from tf_pgn.study.render.common import Study
from tf_pgn.study.render.curves import balanced_at, common_levels
from tf_pgn.study.render.progress import progress_jobs


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


def balanced_panels(study: Study) -> list:
  """Figure 4: C&W accuracy against L2, one panel per common benign accuracy."""
  panels = []
  for level in common_levels(study):
    series = [dict(label=label, x=b['cw_curve']['radii'], y=b['cw_curve']['accuracy'],
                   curve=True) for label, b in balanced_at(study, level).items() if b['cw_curve']]
    if series:
      panels.append(dict(title=f'C&W, benign test accuracy {level:.3f}', series=series,
                         benign_accuracy=level))
  return panels


def pgn_attack_panels(study: Study) -> list:
  """Figure 3: per defense, its job of the largest eps (the paper's are eps 0.5) under FGM, PGD
  and each PGN attack variant, white-box; PGN at the mean L2 of its perturbations."""
  sweep = study.sweep
  largest = {r['defense']: r for r in attack_targets(study) if r['job'] in sweep.pgn_attacks}
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


def training_runs(study: Study) -> list:
  """Figure 2 right's runs (plots.training_progress) of the jobs with a probe."""
  sweep = study.sweep
  return [dict(label=job, epoch=[e['epoch'] for e in epochs],
               test_acc=[e['test_acc'] for e in epochs], probe=[e[key] for e in epochs],
               rho_epoch=[p['epoch'] for p in sweep.progress.get(job, [])],
               rho_cw=[p['rho_cw_mean'] for p in sweep.progress.get(job, [])])
          for job in progress_jobs(study)
          for epochs, key in [(sweep.epochs[job], claims.probe_key(sweep.epochs[job]))] if key]


def write_figures(study: Study, folder: str) -> dict:
  """Draws the figures the study has data for into ``folder``; returns {figure name: path}."""
  sweep = study.sweep
  figures = {}
  if any(r['variant'] in CURVE_VARIANTS for r in sweep.evaluated()):
    figures['robustness_curves'] = os.path.join(folder, 'robustness_curves.png')
    plot_robustness_curves(sweep.rows, figures['robustness_curves'])
  for name, panels in (('balanced_cw', balanced_panels(study)),
                       ('pgn_attack', pgn_attack_panels(study))):
    if panels:
      figures[name] = os.path.join(folder, f'{name}.png')
      plots.accuracy_vs_l2(panels, figures[name])
  runs = training_runs(study)
  if runs:
    figures['training_progress'] = os.path.join(folder, 'training_progress.png')
    keys = sorted({claims.probe_key(sweep.epochs[r['label']]) for r in runs})
    plots.training_progress(runs, figures['training_progress'],
                            f'robustness probe: {", ".join(keys)}')
  return figures
