"""The evaluation at AutoAttack level: the worst case part by part beside eval/'s PGD and the
minimal-norm attacks, and what each attack cost."""
from tf_pgn import evaluation
from tf_pgn.evaluation import accuracy_after_each_part as after_each
from tf_pgn.study.claims import experiments_command
from tf_pgn.study.protocol import (AUTOATTACK_DIR, AUTOATTACK_KEY, EVAL_SETTINGS, STRONG_PGD_EPS,
                                   job_label)
from tf_pgn.study.render.common import Study, fmt, job_order, md_table

# (column, attack key in results.json) of the AutoAttack-level table: eval/'s PGD and
# minimal-norm attacks, and AUTOATTACK_DIR's attacks run alone where they were.
_EVAL_PGD = (f'PGD-{EVAL_SETTINGS["pgd_steps"]}', f'pgd_eps{STRONG_PGD_EPS:g}')
_ALONE = (('APGD-T alone', f'apgd_t_eps{STRONG_PGD_EPS:g}'),
          ('Square alone', f'square_eps{STRONG_PGD_EPS:g}'))
_RHOS = (('C&W', 'cw', 'eval'), ('FMN', 'fmn', AUTOATTACK_DIR), ('FAB', 'fab', AUTOATTACK_DIR),
         ('DeepFool', 'deepfool', 'eval'))


def _worst_case_parts(results: list) -> list:
  """The parts the evaluations' worst cases ran (as their results.json state them), in
  AutoAttack's order: results made before FAB-T joined it lack FAB-T."""
  ran = {p for r in results for p in r['attack_settings']['autoattack']['order']}
  return [p for p in evaluation.AUTOATTACK_PARTS if p in ran]


def autoattack_section(study: Study) -> list:
  """The AutoAttack-level evaluation (protocol.AUTOATTACK_SETTINGS) of the jobs that have one,
  beside their eval/ PGD and minimal-norm attacks."""
  sweep = study.sweep
  jobs = sorted((r for r in sweep.rows if r['job'] in sweep.autoattack and r['job'] in
                 sweep.results), key=job_order)
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
           'C&W and DeepFool (eval/), FMN and FAB (untargeted).', '']
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
    acc_rows.append((label, n, fmt(results[AUTOATTACK_DIR]['benign_accuracy']),
                     fmt(pgd and pgd['accuracy']),
                     *(fmt(a) for a in after_each(worst, n, part_names)),
                     *(fmt(a and a['accuracy']) for a in alone),
                     ' / '.join(fmt(e and e['rho_mean']) for e in rhos),
                     ', '.join(failed) or '-'))
    by_part = worst.get('seconds_by_part') or {}  # absent in results made before it was kept
    time_rows.append((label, fmt(pgd and pgd['seconds'], 0), fmt(worst['seconds'], 0),
                      ' / '.join(fmt(by_part.get(p), 0) for p in part_names),
                      *(fmt(e and e['seconds'], 0) for e in alone + rhos)))
  lines += md_table(['job', 'images', 'benign acc', _EVAL_PGD[0]] +
                    [f'after {p}' for p in parts] + [c for c, _ in _ALONE] +
                    ['rho C&W / FMN / FAB / DeepFool', 'failed checks'], acc_rows)
  orders = [sweep.autoattack[r['job']]['attack_settings']['autoattack']['order'] for r in jobs]
  without = [row[0] for row, order in zip(acc_rows, orders)
             if 'fab_t' in part_names and 'fab_t' not in order]
  if without:
    lines += ['', 'Evaluated before FAB-T joined the worst case (no "after FAB-T"): '
              f'{", ".join(without)}.']
  lines += ['', 'Seconds per attack (wall clock, on the machine that ran it; the worst case also '
            'part by part, each part on the examples the earlier ones left):', ''] + md_table(
      ['job', _EVAL_PGD[0], 'worst case', ' / '.join(parts)] + [c for c, _ in _ALONE] +
      [c for c, _, _ in _RHOS], time_rows)
  return lines
