"""PGN as an attack (Figure 3, claim 3): each PGN attack variant against FGM and PGD at equal
mean L2 on the fixed FGM-AT and PGD-AT classifiers, its verdict, and the command that measures
a variant not yet measured."""
import os

from tf_pgn.study import claims
from tf_pgn.study.claims import Verdict, experiments_command
from tf_pgn.study.protocol import (BUDGET_ATTACKS, FIGURE3_DEFENSES, FIGURE3_PGN_VARIANTS,
                                   PGN_EVAL_PREFIX, variant_text)
from tf_pgn.study.render.common import Study, fmt, image_link, job_order, md_table


def attack_targets(study: Study) -> list:
  """Evaluated FGM-AT / PGD-AT jobs (Figure 3's fixed classifiers), by eps."""
  return [r for r in sorted(study.sweep.rows, key=job_order)
          if r['defense'] in FIGURE3_DEFENSES and r['job'] in study.sweep.results]


def _attack_variants(study: Study) -> list:
  """The PGN attack variants measured on any target, 'raw' first."""
  found = {v for r in attack_targets(study) for v in study.sweep.pgn_attacks.get(r['job'], {})}
  return sorted(found, key=lambda v: (v != 'raw', v))


def _targets(study: Study, variant: str) -> dict:
  """{target job: (its eval results, its PGN entries of ``variant``)} for claims 3."""
  attacks = study.sweep.pgn_attacks
  return {r['job']: (study.sweep.results[r['job']],
                     attacks.get(r['job'], {}).get(variant, {}).get('entries', []))
          for r in attack_targets(study)}


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


def attack_verdict(study: Study, variant: str) -> Verdict:
  """Claim 3 for a PGN attack variant; unmeasured, the command measuring it on the job of the
  largest eps."""
  targets = attack_targets(study)
  command = _pgn_attack_command(study, targets[-1]['job'], variant) if targets else ''
  return claims.pgn_attack_stronger(_targets(study, variant), command, study.run_flags)


def attack_verdicts(study: Study) -> dict:
  """{attack variant: (claim 3's verdict, attack_margin over every target)} of the measured
  variants, 'raw' first."""
  out = {}
  for variant in _attack_variants(study):
    compared = [p for t in _targets(study, variant).values() if t[1]
                for p in claims.pgn_comparisons(*t)[0]]
    out[variant] = (attack_verdict(study, variant), claims.attack_margin(compared))
  return out


def strongest(attack_verdicts: dict, exclude=()) -> str | None:
  """The attack variant whose PGN accuracy lies farthest below FGM's and PGD's."""
  scored = [(m, v) for v, (_, m) in attack_verdicts.items() if m is not None and v not in exclude]
  return max(scored)[1] if scored else None


def pgn_attack_section(study: Study, figures: dict, report_path: str) -> list:
  """Each PGN attack variant against FGM and PGD on the fixed classifiers (Figure 3)."""
  lines = ['## PGN as an attack (Figure 3)', '']
  attack = attack_verdicts(study)
  if not attack:
    return lines + [attack_verdict(study, 'raw').why]
  sweep = study.sweep
  lines += ['White-box accuracy of fixed FGM-AT and PGD-AT classifiers: FGM and PGD at L2 eps '
            '(PGD steps as in the evaluation), PGN as a fresh generator trained against the '
            'fixed classifier for each c_L (`evaluate.py --attacks=pgn`), placed at the mean L2 '
            'of its perturbations. A PGN attack variant is its G input (its loss where not the '
            'paper\'s CE, its L2 budget where it has one): raw in each job\'s eval/, others in '
            f'`{PGN_EVAL_PREFIX}<variant>/` '
            f'({experiments_command("figure3", study.run_flags)}: '
            f'{", ".join(FIGURE3_PGN_VARIANTS)}). The figure shows, on each defense\'s job of '
            'the largest eps, the lead of each variant: the better of FGM\'s and PGD\'s accuracy '
            'at PGN\'s mean L2 minus PGN\'s, which the claim asks to exceed '
            f'{claims.ACC_MARGIN:g}.', '']
  targets = [r for r in attack_targets(study) if r['job'] in sweep.pgn_attacks]
  rows = []
  for r in targets:
    results = sweep.results[r['job']]
    rows.append([r['job'], fmt(results['benign_accuracy'])] + [', '.join(
        f'{e:g}: {a:.3f}' for e, a in sorted((e['eps'], e['whitebox']['accuracy'])
                                             for e in results['attacks'].values()
                                             if e['attack'] == name)) for name in ('fgm', 'pgd')])
  lines += md_table(['job', 'benign acc', 'FGM: eps: acc', 'PGD: eps: acc'], rows)
  for variant, (verdict, margin) in attack.items():
    rows = []
    for job, (results, entries) in _targets(study, variant).items():
      compared, outside = claims.pgn_comparisons(results, entries)
      points = [(p, 'yes' if p['acc'] < min(p['fgm'], p['pgd']) - claims.ACC_MARGIN else 'no')
                for p in compared] + [(p, 'beyond the budgets') for p in outside]
      rows += [(job, f'{p["c_l"]:g}', fmt(p['eps'], 2), f'{p["l2"]:.3f}', f'{p["acc"]:.3f}',
                fmt(p.get('fgm')), fmt(p.get('pgd')), lower)
               for p, lower in sorted(points, key=lambda t: (t[0]['c_l'], t[0]['l2']))]
    folders = sorted({sweep.pgn_attacks[j][variant]['folder'] for j in sweep.pgn_attacks
                      if variant in sweep.pgn_attacks[j]})
    lines += ['', f'### PGN attack, {variant_text(variant)} '
              f'({", ".join(f"{f}/" for f in folders)})', ''] + md_table(
                  ['job', 'c_L', 'PGN eps', 'mean L2', 'PGN acc', 'FGM acc at that L2',
                   'PGD acc at that L2', 'PGN lower than both'], rows)
    lines += ['', f'Claim 3, {variant_text(variant)}: {verdict.verdict}' +
              (f'; the better of FGM and PGD minus PGN\'s accuracy, on average: {margin:+.3f}.'
               if margin is not None else '.')]
  best = strongest(attack)
  if best:
    lines += ['', f'Strongest PGN attack variant: {variant_text(best)} (average margin '
              f'{attack[best][1]:+.3f}).']
  return lines + image_link(figures, 'pgn_attack', report_path,
                            'lead of each PGN attack over FGM and PGD by mean L2 on fixed '
                            'classifiers')
