"""results.md (Table 2's layout) and the accuracy-vs-budget panels (Figures 3-4 at L2, and the
same at Linf) of an evaluation's results."""
from tf_pgn.evaluation.common import BOXES, NORM_LABELS, fmt
from tf_pgn.evaluation.attack_table import ATTACK_TABLE, MINIMAL_NORM, attack_norm


def _eps_text(eps: float, norm: str) -> str:
  """eps as results.md writes it: at Linf in pixel levels (8/255) where it is a whole number."""
  levels = eps * 255.0
  if norm == 'linf' and abs(levels - round(levels)) < 1e-6:
    return f'{round(levels)}/255'
  return f'{eps:g}'


def _label(entry: dict, norm: str = 'l2') -> str:
  """The row name: the attack and its budget (PGN: c_L and the white-box mean L2 it gave); in a
  Linf evaluation first the norm the attack ran at, unless its name says it (FAB-Linf)."""
  label = ATTACK_TABLE[entry['attack']].label
  runs_at = attack_norm(entry['attack'], norm)
  details = [] if norm == 'l2' or label.endswith(NORM_LABELS[runs_at]) else [NORM_LABELS[runs_at]]
  if 'eps' in entry:
    details.append(f'eps={_eps_text(entry["eps"], runs_at)}')
  elif 'c_l' in entry:
    details.append(f'c_L={entry["c_l"]:g}, mean L2 {fmt(entry["whitebox"]["mean_l2"])}')
  return f'{label} ({", ".join(details)})' if details else label


def results_markdown(results: dict) -> str:
  """Table 2's layout: one row per attack and budget; white-box accuracy and rho (in a Linf
  evaluation also the Linf mean), black-box accuracy; then the soundness checks."""
  norm = results.get('norm', 'l2')  # results from before evaluations had a norm are L2
  source = (f'; black-box examples crafted on {results["source_model"]} (benign accuracy '
            f'{fmt(results["source_benign_accuracy"])})' if 'source_model' in results else '')
  linf = norm == 'linf'
  if linf:
    at_l2 = [ATTACK_TABLE[n].label for n in results['attack_settings']
             if attack_norm(n, norm) == 'l2']
    scope = ('Bounded attacks (eps) at Linf, eps on the [0, 1] pixel scale'
             + (f'; {", ".join(at_l2)} at L2.' if at_l2 else '.'))
  else:
    scope = 'All attacks L2.'
  # The Linf mean: a column of every Linf evaluation and of an L2 one with an attack at Linf.
  linf_column = linf or any('linf_mean' in e['whitebox'] for e in results['attacks'].values())
  lines = [
      f'# Robustness of {results["model"]}', '',
      f'{results["dataset"]}, first {results["num_examples"]} test images; benign accuracy '
      f'{fmt(results["benign_accuracy"])}{source}.', '',
      f'{scope} rho: mean / median L2 norm of the perturbation over successful '
      'adversarial examples (clean-correct, then misclassified). rho (paper\'s variant): the '
      "authors' code's mean over all misclassified adversarial examples, clean mistakes "
      f'included. {", ".join(ATTACK_TABLE[n].label for n in MINIMAL_NORM)} are minimal-norm '
      '(unbounded) attacks.' + (' Linf mean: the mean Linf norm over the examples of rho.'
                                if linf_column else ''), '',
      "| attack | white-box acc | rho mean | rho median | rho mean (paper's variant) "
      f'{"| Linf mean " if linf_column else ""}| black-box acc |',
      '|---|' + '---:|' * (6 if linf_column else 5),
  ]
  for entry in results['attacks'].values():
    wb = entry['whitebox']
    bb = fmt(entry['blackbox']['accuracy']) if 'blackbox' in entry else '-'
    linf_mean = f'{fmt(wb.get("linf_mean"), 4)} | ' if linf_column else ''
    lines.append(f'| {_label(entry, norm)} | {fmt(wb["accuracy"])} | {fmt(wb["rho_mean"])} | '
                 f'{fmt(wb["rho_median"])} | {fmt(wb["rho_mean_paper"])} | {linf_mean}{bb} |')
  worst = [e for e in results['attacks'].values() if 'broken_by' in e['whitebox']]
  if worst:
    lines += ['', '## Worst case per example', '',
              'Which attack broke each example first, on the crafting model (clean: '
              'misclassified without attack).', '']
  for entry in worst:
    wb = entry['whitebox']
    # In run order, whatever order a reread results.json holds the counts in.
    order = ('clean',) + ATTACK_TABLE[entry['attack']].parts
    broken = ', '.join(f'{ATTACK_TABLE[n].label if n in ATTACK_TABLE else n} {wb["broken_by"][n]}'
                       for n in order if n in wb['broken_by'])
    seconds = wb.get('seconds_by_part')  # absent in results made before it was recorded
    cost = ('; seconds per part ' + ', '.join(
        f'{ATTACK_TABLE[n].label} {seconds[n]:.0f}' for n in order if n in seconds)
        if seconds else '')
    lines.append(f'- {_label(entry, norm)}: robust accuracy {fmt(wb["accuracy"])}; broken by '
                 f'{broken}; unbroken {wb["n_unbroken"]}{cost}')
  lines += ['', '## Soundness checks', '']
  lines += [f'- {"ok" if c["passed"] else "**WARNING**"} `{c["name"]}`: {c["detail"]}'
            for c in results['checks']]
  return '\n'.join(lines) + '\n'


def accuracy_after_each_part(worst: dict, num_examples: int, parts) -> list:
  """The robust accuracy left after each of ``parts`` of a worst case's white-box result
  (AutoAttack's report: each part runs on what the earlier ones left), from the examples each
  broke first; None for a part that worst case did not run."""
  left, out = num_examples - worst['broken_by']['clean'], []
  for part in parts:
    if part not in worst['broken_by']:
      out.append(None)
      continue
    left -= worst['broken_by'][part]
    out.append(left / num_examples)
  return out


def accuracy_vs_budget_series(results: dict, curve_norm: str = 'l2', box: str = 'whitebox',
                              attacks=None) -> list:
  """The ``plots.accuracy_vs_budget`` series of ``results`` for ``box``, one per attack that ran
  at ``curve_norm`` (all of ``results``' by default): a curve for a minimal-norm attack (its
  accuracy at each radius); points at eps for the bounded attacks and, at L2, at the mean
  perturbation L2 for PGN (Figure 3)."""
  norm = results.get('norm', 'l2')  # results from before evaluations had a norm are L2
  series = []
  for name in attacks or results['attack_settings']:
    entries = [e for e in results['attacks'].values() if e['attack'] == name and box in e]
    if not entries or attack_norm(name, norm) != curve_norm:
      continue
    label = ATTACK_TABLE[name].label
    if ATTACK_TABLE[name].minimal_norm:
      curve = entries[0][box][f'accuracy_vs_{curve_norm}']
      series.append(dict(label=label, x=curve['radii'], y=curve['accuracy'], curve=True))
    else:
      points = sorted((e['eps'] if 'eps' in e else e[box]['mean_l2'], e[box]['accuracy'])
                      for e in entries if 'eps' in e or e[box]['mean_l2'] is not None)
      series.append(dict(label=label, x=[p[0] for p in points],
                         y=[p[1] for p in points], curve=False))
  return series


def plot_panels(results: dict, curve_norm: str = 'l2') -> list:
  """Accuracy vs the ``curve_norm`` budget, one panel per box (white-box, black-box) with every
  attack that ran at that norm; none where no attack did."""
  return [dict(title=f'{title}, {results["dataset"]}', series=series,
               benign_accuracy=results['benign_accuracy'])
          for box, title in BOXES.items()
          if (series := accuracy_vs_budget_series(results, curve_norm, box))]
