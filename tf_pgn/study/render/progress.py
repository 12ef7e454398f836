"""Training progress (Figure 2 right: accuracy, probe and rho_cw by epoch) and speed (section
4.4: seconds per epoch and bench.json's step times)."""
import collections
import os
import statistics

from tf_pgn.study import claims
from tf_pgn.study import results as results_lib
from tf_pgn.study.claims import experiments_command
from tf_pgn.study.protocol import CURVE_VARIANTS, DEFENSES, LABELS, STRONG_PGD_EPS, job_label
from tf_pgn.study.render.common import Study, fmt, image_link, job_order, md_table, value_list


def progress_jobs(study: Study) -> list:
  """The jobs of Figure 2 right: the curves' variants at the main seed, with an epoch done."""
  sweep = study.sweep
  return [r['job'] for r in sorted(sweep.rows, key=job_order) if r['variant'] in CURVE_VARIANTS
          and r['seed'] == sweep.main_seed and sweep.epochs[r['job']]]


def figure_jobs(study: Study) -> tuple:
  """(the jobs of Figure 2 right's plot, which they are): the progress jobs with a probe whose
  epoch snapshots were measured, else the FGM-AT ones, else all."""
  sweep = study.sweep
  jobs = [j for j in progress_jobs(study) if claims.probe_key(sweep.epochs[j])]
  fgm = [j for j in jobs if sweep.configs[j].defense == 'fgm']
  snapshots = [j for j in jobs if sweep.progress.get(j)]
  return ((snapshots, 'the jobs whose snapshots were measured') if snapshots else
          (fgm, 'the FGM-AT jobs') if fgm else (jobs, 'every job'))


def progress_section(study: Study, figures: dict, report_path: str) -> list:
  """Accuracy, probe and rho_cw by epoch of the curves' jobs (Figure 2 right)."""
  sweep = study.sweep
  jobs = progress_jobs(study)
  lines = ['## Training progress (Figure 2 right)', '']
  if not jobs:
    return lines + ['No epoch finished yet.']
  cfg = sweep.configs[jobs[0]]
  measured = sorted({p['num_examples'] for j in jobs for p in sweep.progress.get(j, [])})
  lines += [f'Per epoch: benign test accuracy of the EMA classifier / accuracy under the '
            f'robustness probe (PGD-L2 eps {cfg.probe_budget:g}, {cfg.probe_steps} steps, first '
            f'{cfg.probe_size} test images) / rho_cw at the epoch snapshot (C&W as in the '
            f'evaluation, first {value_list(measured) if measured else "-"} test images; '
            f'{experiments_command("progress", study.run_flags)} measures the FGM-AT and PGN '
            'jobs\' snapshots; "-" where not measured). The seed-'
            f'{sweep.main_seed} jobs of the curves; the figure draws {figure_jobs(study)[1]}.']
  lines += image_link(figures, 'training_progress', report_path,
                      'rho_cw, probe and test accuracy by epoch')
  return lines + [''] + _epoch_table(study, jobs)


def _epoch_table(study: Study, jobs: list, snapshot_keys=('rho_cw_mean',)) -> list:
  """A row per epoch, a column per job: test accuracy / probe accuracy / each of
  ``snapshot_keys`` (of ``results.progress``) at the epoch snapshot ('-' where not measured)."""
  sweep = study.sweep
  epochs = sorted({e['epoch'] for j in jobs for e in sweep.epochs[j]})
  cells = {}
  for j in jobs:
    key = claims.probe_key(sweep.epochs[j])
    snapshot = {p['epoch']: p for p in sweep.progress.get(j, [])}
    for e in sweep.epochs[j]:
      cells[j, e['epoch']] = ' / '.join(
          [f'{e["test_acc"]:.3f}', fmt(e.get(key))] +
          [fmt(snapshot.get(e['epoch'], {}).get(k)) for k in snapshot_keys])
  return md_table(['epoch'] + jobs, [[n] + [cells.get((j, n), '-') for j in jobs] for n in epochs])


def long_schedule_section(study: Study, figures: dict, report_path: str) -> list:
  """Claim 2 where it can be decided: the long schedule's FGM-AT and PGN jobs (``study``, the
  ``long_schedule`` sweep's root), trained for longer than the curves' jobs; each job's final
  evaluation, then accuracy, probe, rho_cw and C&W's accuracy at the strong eps by epoch."""
  sweep = study.sweep
  jobs = progress_jobs(study)
  lines = ['## Claim 2 on a long schedule (Figure 2 right)', '',
           'At the curves\' schedule the test accuracy still rises at the last epoch, so whether '
           'FGM-AT trades robustness away as training goes on cannot show there. The '
           f'`long_schedule` sweep trains FGM-AT and PGN for longer at a wider classifier '
           f'({experiments_command("run --sweep=long_schedule", study.run_flags)}, then '
           f'{experiments_command("progress", study.run_flags)}); claim 2\'s second row above '
           'is judged on these jobs by the same rule.']
  if not jobs:
    return lines + ['', 'No epoch finished yet.']
  rows = {r['job']: r for r in sweep.rows}
  lines += [''] + md_table(
      ['job', 'defense', 'width', 'epochs', 'precision', 'status', 'test acc', 'rho_cw mean',
       f'PGD eps {STRONG_PGD_EPS:g} acc', 'evaluated images', 's/epoch'],
      [(j, job_label(rows[j]), f'{rows[j]["width"]:g}',
        f'{len(sweep.epochs[j])} of {sweep.configs[j].epochs}', sweep.configs[j].mixed_precision,
        rows[j]['status'], fmt(rows[j]['test_acc']), fmt(rows[j]['rho_cw_mean']),
        fmt(rows[j].get(f'pgd_eps{STRONG_PGD_EPS:g}_acc')), rows[j]['num_examples'] or '-',
        fmt(rows[j]['train_seconds_per_epoch'], 0)) for j in jobs])
  cfg = sweep.configs[jobs[0]]
  measured = sorted({p['num_examples'] for j in jobs for p in sweep.progress.get(j, [])})
  lines += ['', f'Per epoch: test accuracy / PGD-{cfg.probe_steps} probe accuracy at L2 eps '
            f'{cfg.probe_budget:g} (first {cfg.probe_size} test images) / rho_cw at the epoch '
            f'snapshot (C&W, first {value_list(measured) if measured else "-"} test images) / '
            f'C&W\'s accuracy at L2 eps {STRONG_PGD_EPS:g} there (a perturbation larger counts '
            'as failed); "-" where not measured. rho_cw is a mean over the images the snapshot '
            'classifies correctly, a set that grows as the accuracy rises; the accuracy at a fixed '
            'eps is over all of them.']
  lines += image_link(figures, 'training_progress', report_path,
                      'rho_cw, probe and test accuracy by epoch, long schedule')
  return lines + [''] + _epoch_table(study, jobs, ('rho_cw_mean', results_lib.CW_ACC_KEY))


def speed_section(study: Study) -> list:
  """Seconds per epoch of the paper's defenses and bench.json's step times."""
  sweep = study.sweep
  by = collections.defaultdict(list)
  for r in sweep.rows:
    if r['train_seconds_per_epoch'] is not None and not r['variant']:
      by[r['defense'], r['width']].append(r['train_seconds_per_epoch'])
  lines = ['## Speed (section 4.4)', '', 'Seconds per epoch of the paper\'s defenses\' jobs (wall '
           'clock, mean over epochs not resumed mid-way; jobs run at different times and loads '
           'compare poorly):', '']
  if by:
    lines += md_table(['defense', 'width', 'jobs', 's/epoch (median)'],
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
  lines += md_table(['step', 'ms/step', 'images/s'],
                    [(s['defense'], f'{s["ms_per_step"]:.1f}', f'{s["images_per_second"]:.1f}')
                     for s in bench['steps'].values()])
  ratios = [f'{k} {bench[k]:.2f}' for k in ('pgn_over_fgm_time', 'pgd10_over_pgn_time')
            if k in bench]
  return lines + (['', f'Ratios: {", ".join(ratios)}.'] if ratios else [])
