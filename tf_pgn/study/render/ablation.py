"""PGN's capacity (Figure 5 right) and the ablations: each job off the curves beside its twin,
the one change measured against the seed spread, the curves and the step time."""
import dataclasses

from tf_pgn.config import TrainConfig
from tf_pgn.study import claims
from tf_pgn.study.claims import run_command
from tf_pgn.study.protocol import (BENCH_PGN_STEPS, CURVE_VARIANTS, MIN_SEEDS, STRONG_PGD_EPS,
                                   VARIANT_FIELDS, curve_label, job_label, paper_value)
from tf_pgn.study.render.common import (PGD_KEY, Study, fmt, image_link, job_order, md_table,
                                        rho_cell)


def _flag(field: str, value) -> str:
  """The train.py flag that sets a config field to ``value``."""
  return f'--{field}' if value is True else f'--{field}={value}'


TWIN_MARK = " (the twin's)"


def ablation_section(study: Study) -> list:
  """Each PGN job off the curves beside its twin (``Sweep.twin``): what the one change does to
  test accuracy and robustness, against the twin's seed spread, the curves at its accuracy and
  bench.json's step time."""
  sweep = study.sweep
  pairs, changed = [], {}
  for r in sorted(sweep.ablation, key=job_order):
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
  table = [(job, c, t['status'], fmt(t['test_acc']), rho_cell(t), fmt(t[PGD_KEY]),
            fmt(t['train_seconds_per_epoch'], 0)) for job, (t, c) in rows.items()]
  lines += md_table(['job', 'change', 'status', 'test acc', 'rho_cw mean / median',
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
              f'{name} {fmt(std)}' for (name, _), std in zip(metrics, stds)) + '.'
           if len(seeds) >= MIN_SEEDS else ''))
    at = {label: b for label, rows in curves.items()
          if on['rho_cw_mean'] is not None and rows and rows[0]['width'] == on['width']
          and (b := claims.balanced(rows, on['test_acc'], cw))}
    if at:
      effects.append(
          f'{job_label(on)}: at its test acc {on["test_acc"]:.3f} the curves above interpolate '
          f'to rho_cw / PGD eps {STRONG_PGD_EPS:g} acc of ' + ', '.join(
              f'{label}{TWIN_MARK * (off is not None and label == curve_label(off))} '
              f'{fmt(b["rho_cw_mean"])} / {fmt(b[PGD_KEY])}' for label, b in at.items()) +
          f'; with `{text}`: {fmt(on["rho_cw_mean"])} / {fmt(on[PGD_KEY])}.')
    names = [BENCH_PGN_STEPS.get(row['variant']) for row in (off, on) if row]
    if len(names) == 2 and all(n in steps for n in names):
      before, after = (steps[n]['ms_per_step'] for n in names)
      effects.append(f'Step time (bench.json, one process, round-robin): {names[0]} '
                     f'{before:.1f} ms, {names[1]} ({text}) {after:.1f} ms '
                     f'({after / before:.2f}x); the s/epoch column compares jobs run at '
                     'different times and loads.')
  return lines + [line for effect in effects for line in ('', effect)]


def capacity_section(study: Study, figures: dict, report_path: str) -> list:
  """PGN's jobs by classifier width, per PGN curve variant (Figure 5 right, claim 4)."""
  sweep = study.sweep
  pgn = sorted((r for r in sweep.rows if r['defense'] == 'pgn' and r['variant'] in CURVE_VARIANTS
                and r['seed'] == sweep.main_seed), key=job_order)
  sweeps = ', '.join(run_command(f'{v}_capacity' if v else 'capacity', study.run_flags)
                     for v in CURVE_VARIANTS)
  lines = ['## Capacity (Figure 5 right)', '',
           f'PGN by classifier width, for each PGN curve variant (the paper\'s, '
           f'{", ".join(v for v in CURVE_VARIANTS if v)}); {sweeps}.', '']
  if not pgn:
    return lines + ['No PGN job yet.']
  return lines + md_table(
      ['job', 'status', 'PGN variant', 'c_L', 'width', 'generator width', 'test acc',
       'rho_cw mean / median'],
      [(r['job'], r['status'], r['variant'] or 'raw', f'{r["hparam_value"]:g}', f'{r["width"]:g}',
        f'{r["gen_width"]:g}', fmt(r['test_acc']), rho_cell(r)) for r in pgn]) + image_link(
            figures, 'capacity', report_path,
            'benign accuracy against rho_cw of PGN at each classifier width')
