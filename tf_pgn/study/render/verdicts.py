"""The verdict table: each claim of the paper, per PGN variant, with the rule that decides it
(``tf_pgn.study.claims``)."""
from tf_pgn.study import claims
from tf_pgn.study.protocol import (BENCH_PGN_STEPS, BEST_PGN_VARIANT, CURVE_VARIANTS, PGN_CURVES,
                                   curve_label, variant_text)
from tf_pgn.study.render.attack import attack_verdict, attack_verdicts, strongest
from tf_pgn.study.render.common import (Study, baseline_curves, main_seed_rows, md_table,
                                        study_curve)


def _claim2(study: Study, rows: list, sweep_name: str) -> claims.Verdict:
  """Claim 2 on the jobs ``rows`` of ``study``, those of the sweep ``sweep_name``."""
  sweep = study.sweep
  return claims.fgm_trades_robustness(
      [dict(row=r, epochs=sweep.epochs[r['job']], progress=sweep.progress.get(r['job'], []),
            probe_size=sweep.configs[r['job']].probe_size) for r in rows], study.run_flags,
      sweep_name)


def verdicts(study: Study, long_study: Study | None = None) -> list:
  """[(claim number, qualifier or '', Verdict)] of the report's verdict table: claims 1, 4 and 5
  for each PGN curve variant (CURVE_VARIANTS: the paper's PGN first), claim 2 on the paper's
  jobs and, with ``long_study`` (the ``long_schedule`` sweep's root), on its jobs, claim 3 for the
  raw PGN attack and the strongest other attack variant (BEST_PGN_VARIANT's command where none is
  measured)."""
  sweep, flags = study.sweep, study.run_flags
  paper = [r for r in sweep.rows if not r['variant']]
  rows = [(1, variant_text(v), claims.robust_at_equal_accuracy(study_curve(study, 'pgn', v),
                                                               baseline_curves(study), flags))
          for v in CURVE_VARIANTS]
  rows.append((2, '', _claim2(study, paper, 'table2')))
  if long_study:
    long_rows = long_study.sweep.rows
    epochs = '/'.join(sorted({f'{long_study.sweep.configs[r["job"]].epochs}' for r in long_rows}))
    widths = '/'.join(sorted({f'{r["width"]:g}' for r in long_rows}))
    rows.append((2, f'long schedule: {epochs} epochs, width {widths}',
                 _claim2(long_study, long_rows, 'long_schedule')))
  other = (strongest(attack_verdicts(study), ('raw',)) or
           PGN_CURVES[BEST_PGN_VARIANT]['fields'].get('pgn_grad_input', 'raw'))
  rows += [(3, variant_text(v), attack_verdict(study, v)) for v in ('raw', other)]
  rows += [(4, variant_text(v), claims.capacity_moves_curve(
      main_seed_rows(study, 'pgn', v), f'{v}_capacity' if v else 'capacity', flags,
      rho_std=study_curve(study, 'pgn', v).rho_std)) for v in CURVE_VARIANTS]
  rows += [(5, variant_text(v), claims.speed_order(
      sweep.bench, [r for r in sweep.rows if r['variant'] == v or r['defense'] != 'pgn'], flags,
      BENCH_PGN_STEPS[v], curve_label(dict(defense='pgn', variant=v))))
           for v in CURVE_VARIANTS]
  return rows


def verdicts_section(rows: list) -> list:
  """The verdict table of ``rows`` (``verdicts``) and the rules."""
  claim = {n: (text, where, rule) for n, text, where, rule in claims.CLAIMS}
  lines = ['## Verdicts', ''] + md_table(
      ['#', 'claim (paper)', 'verdict', 'why'],
      [(f'{n} ({q})' if q else n, f'{claim[n][0]} ({claim[n][1]})', f'**{v.verdict}**', v.why)
       for n, q, v in rows])
  lines += ['', 'Rules (computed by `tf_pgn/study/claims.py` from the numbers below):', '']
  return lines + [f'{n}. {rule}.' for n, _, _, rule in claims.CLAIMS]
