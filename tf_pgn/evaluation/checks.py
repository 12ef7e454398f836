"""Soundness checks (Carlini et al. 2019, "On Evaluating Adversarial Robustness") and
AutoAttack's masking flags, computed from an evaluation's results."""
import numpy as np
import tensorflow as tf

from tf_pgn.attacks.common import margin, value_and_gradient
from tf_pgn.evaluation.common import fmt
from tf_pgn.evaluation.attack_table import ATTACK_TABLE, attack_norm

# Soundness: an unbounded attack should fool (almost) every clean-correct example, and a few
# examples of noise are tolerated in the comparisons between accuracies.
SUCCESS_THRESHOLD = 0.99
NOISE_EXAMPLES = 1
# Masking flag for Square inside a worst case: the share of the examples it may break after the
# gradient attacks (AutoAttack's check_square_sr, alpha 0.002).
SQUARE_GAIN_TOLERANCE = 0.002
# Masking flag for randomness: the largest change of the L2-normalised logits between two
# identical calls that still counts as none (AutoAttack's check_randomized, alpha 1e-4).
REPEAT_TOLERANCE = 1e-4


def masking_probes(model, x, y, batch_size: int = 256) -> dict:
  """What the masking flags of ``soundness_checks`` read, in the spirit of AutoAttack's checks
  (fra31/auto-attack, ``checks.py``):

  - ``zero_gradient``: the examples whose input gradient of the logit margin ``Z_y - max_{j != y}
    Z_j`` is exactly zero (AutoAttack tests the DLR loss's; both are ratios or differences of
    logits, so unlike CE's gradient they do not vanish when the softmax saturates);
  - ``repeated_call``: the largest L2 change of the L2-normalised logits of the first batch
    between two identical calls, and whether the predictions agree (a randomised classifier).
  """
  gradient = tf.function(lambda xb, yb: value_and_gradient(
      model, xb, lambda logits: margin(logits, tf.cast(yb, tf.int32)))[2], reduce_retracing=True)
  zero = 0
  for start in range(0, len(y), batch_size):
    g = gradient(tf.constant(x[start:start + batch_size]), tf.constant(y[start:start + batch_size]))
    zero += int(tf.reduce_sum(tf.cast(tf.reduce_all(tf.equal(
        tf.reshape(g, [tf.shape(g)[0], -1]), 0.0), axis=-1), tf.int32)))
  first = tf.constant(x[:batch_size])
  calls = [np.asarray(model(first), np.float64) for _ in range(2)]
  unit = [c / (np.linalg.norm(c, axis=-1, keepdims=True) + 1e-10) for c in calls]
  return dict(
      zero_gradient=dict(examples=zero, of=len(y), fraction=zero / len(y), loss='logit margin'),
      repeated_call=dict(examples=len(first), tolerance=REPEAT_TOLERANCE,
                         max_change=float(np.linalg.norm(unit[0] - unit[1], axis=-1).max()),
                         predictions_equal=bool(np.array_equal(calls[0].argmax(-1),
                                                               calls[1].argmax(-1)))))


# -- checks and reports ----------------------------------------------------------------------
def _success_check(name: str, result: dict, what: str) -> dict:
  rate = result['success_rate']
  passed = rate is not None and rate >= SUCCESS_THRESHOLD
  detail = (f'{what} fools {result["n_success"]} of {result["n_clean_correct"]} clean-correct '
            f'examples ({fmt(rate)})')
  if not passed:
    detail += (f', below {SUCCESS_THRESHOLD:.0%}: an unbounded attack should fool them all; '
               'suspect gradient masking or a too weak attack')
  return dict(name=name, passed=passed, detail=detail)


def soundness_checks(results: dict) -> list:
  """Checks of Carlini et al. 2019, each ``{name, passed, detail}``:

  1. unbounded attacks (PGD at a huge eps; C&W) fool >= 99% of the clean-correct examples;
  2. accuracy under PGD does not rise with eps (one example of noise allowed);
  3. black-box accuracy is not below white-box accuracy for the same attack and budget (one
     example of noise allowed);

  and masking flags in the spirit of AutoAttack's (Croce & Hein 2020; ``masking_probes``):

  4. no example has an exactly zero input gradient (``zero_gradients``);
  5. two identical calls give the same outputs (``deterministic_outputs``; else randomness);
  6. Square, which reads no gradient, leaves no lower accuracy than every white-box attack at
     the same norm and eps (one example of noise allowed) and in a worst case breaks at most 0.2%
     of the examples after the gradient attacks (AutoAttack's check_square_sr; at least one
     example) (``square_not_stronger``).
  """
  entries, checks = results['attacks'], []
  unbounded = results.get('unbounded_pgd')  # absent where the evaluation left it out
  if unbounded:
    norm = f' {unbounded["norm"]}' if 'norm' in unbounded else ''  # named in Linf evaluations
    checks.append(_success_check('unbounded_pgd_success', unbounded,
                                 f'PGD{norm} at eps={unbounded["eps"]:g} ({unbounded["steps"]} '
                                 'steps)'))
  if 'cw' in entries:
    cw = results['attack_settings']['cw']
    checks.append(_success_check('cw_success', entries['cw']['whitebox'],
                                 f'C&W ({cw["max_iterations"]} iterations, '
                                 f'{cw["binary_search_steps"]} search steps)'))
  pgd = sorted((e['eps'], e['whitebox']['n_correct']) for e in entries.values()
               if e['attack'] == 'pgd')
  if len(pgd) > 1:
    rises = [f'{a[0]:g} -> {b[0]:g}' for a, b in zip(pgd, pgd[1:]) if b[1] > a[1] + NOISE_EXAMPLES]
    detail = ('correct examples under PGD by eps: ' + ', '.join(f'{e:g}: {n}' for e, n in pgd)
              + f'; must not rise with eps ({NOISE_EXAMPLES} example of noise allowed)')
    checks.append(dict(name='pgd_monotone_in_eps', passed=not rises,
                       detail=detail + (f'; rises at eps {", ".join(rises)}' if rises else '')))
  black = {k: e for k, e in entries.items() if 'blackbox' in e}
  if black:
    stronger = [k for k, e in black.items()
                if e['blackbox']['n_correct'] < e['whitebox']['n_correct'] - NOISE_EXAMPLES]
    detail = (f'black-box accuracy >= white-box accuracy for {len(black) - len(stronger)} of '
              f'{len(black)} attacks and budgets ({NOISE_EXAMPLES} example of noise allowed)')
    if stronger:
      detail += (f'; black-box is stronger for {", ".join(stronger)}: the white-box attack '
                 'is too weak there (gradient masking?)')
    checks.append(dict(name='blackbox_not_stronger', passed=not stronger, detail=detail))
  return checks + _masking_checks(results)


def _masking_checks(results: dict) -> list:
  """Checks 4-6 of ``soundness_checks``."""
  checks = []
  probes = results.get('probes')
  if probes:
    zero = probes['zero_gradient']
    detail = (f'{zero["examples"]} of {zero["of"]} examples have an exactly zero input gradient '
              f'of the {zero["loss"]}')
    if zero['examples']:
      detail += ': gradient attacks cannot move them; suspect gradient masking'
    checks.append(dict(name='zero_gradients', passed=zero['examples'] == 0, detail=detail))
    repeat = probes['repeated_call']
    passed = repeat['predictions_equal'] and repeat['max_change'] <= repeat['tolerance']
    detail = (f'two identical calls on {repeat["examples"]} examples change the normalised '
              f'logits by at most {repeat["max_change"]:.2g} (tolerance {repeat["tolerance"]:g})'
              + ('' if repeat['predictions_equal'] else ' and change predictions'))
    if not passed:
      detail += ': a randomised classifier; attack its expectation (EOT) instead'
    checks.append(dict(name='deterministic_outputs', passed=passed, detail=detail))
  entries = results['attacks']
  norm = results.get('norm', 'l2')  # results from before evaluations had a norm are L2
  white = {}  # eps -> [(n_correct, key)] of the white-box gradient attacks at the same norm
  for key, e in entries.items():
    spec = ATTACK_TABLE.get(e['attack'])
    if ('eps' in e and spec and not spec.gradient_free and not spec.parts and
        attack_norm(e['attack'], norm) == norm):
      white.setdefault(e['eps'], []).append((e['whitebox']['n_correct'], key))
  compared, found = [], []
  for key, e in entries.items():
    spec = ATTACK_TABLE.get(e['attack'])
    if spec and spec.gradient_free and white.get(e.get('eps')):
      n_white, strongest = min(white[e['eps']])
      compared.append(key)
      if e['whitebox']['n_correct'] < n_white - NOISE_EXAMPLES:
        found.append(f'{key} leaves {e["whitebox"]["n_correct"]} correct, {strongest} '
                     f'{n_white}')
    for part in spec.parts if spec else ():
      broken = e['whitebox']['broken_by'][part]
      if ATTACK_TABLE[part].gradient_free:
        compared.append(f'{key} ({part})')
        if broken > max(NOISE_EXAMPLES, SQUARE_GAIN_TOLERANCE * results['num_examples']):
          found.append(f'{part} broke {broken} examples the gradient attacks of {key} left')
  if compared:
    detail = (f'the black-box Square attack is not stronger than the white-box attacks in '
              f'{", ".join(compared)} ({NOISE_EXAMPLES} example of noise allowed)')
    if found:
      detail = (f'Square is stronger: {"; ".join(found)}: suspect gradient masking, or '
                'white-box attacks too weak')
    checks.append(dict(name='square_not_stronger', passed=not found, detail=detail))
  return checks
