"""tf_pgn.study's layers: the claims as pure functions of plain numbers (interpolation, balancing,
the seed-spread rule, Figure 3 per PGN attack variant), the results layer's PGN-attack variants,
and the direction of the imports (the library never imports the study; claims imports neither
the results, the sweeps nor the rendering)."""
import ast
import importlib
import os

import pytest

from tf_pgn.config import make_config
from tf_pgn import evaluation
from tf_pgn.study import claims, protocol, results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(REPO, 'tf_pgn')


def _rows(*points, defense='pgn', variant='', width=0.25):
  """Summary rows (test acc, rho_cw) of one curve, by test accuracy."""
  return [dict(job=f'{defense}{i}', defense=defense, variant=variant, width=width, hparam=None,
               hparam_value=None, test_acc=acc, rho_cw_mean=rho)
          for i, (acc, rho) in enumerate(sorted(points))]


def test_interpolation_and_the_common_accuracies_of_curves():
  points = [(0.0, 1.0), (1.0, 0.0)]
  assert claims.interp(points, 0.25) == pytest.approx(0.75)
  assert claims.interp(points, 1.05, tol=0.1) == 0.0 and claims.interp(points, 1.2, 0.1) is None
  wide, narrow = _rows((0.70, 0.5), (0.78, 0.3)), _rows((0.72, 0.7), (0.79, 0.4))
  assert claims.balance_levels([wide, narrow]) == pytest.approx([0.78, 0.75, 0.72])
  assert claims.balance_levels([wide, _rows((0.775, 0.4), (0.79, 0.3))]) == [0.78]
  assert claims.balance_levels([_rows((0.70, 0.5)), _rows((0.75, 0.5))]) == []
  assert claims.balance_levels([wide, []]) == []
  assert claims.merge_levels([0.78, 0.75, 0.72], [0.7805, 0.74]) == [0.7805, 0.75, 0.74, 0.72]
  at = claims.balanced(wide, 0.75)
  assert at['rho_cw_mean'] == pytest.approx(0.375) and at['cw_curve'] is None


def test_spread_and_the_rule_that_calls_a_difference_only_beyond_it():
  s = claims.spread([0.50, 0.52, None, 0.54])
  assert (s['n'], s['min'], s['max']) == (3, 0.50, 0.54)
  assert s['mean'] == pytest.approx(0.52) and s['std'] == pytest.approx(0.02)
  assert claims.spread([0.5])['std'] is None and claims.spread([])['mean'] is None
  assert claims.more_robust(0.56, 0.50)  # no spread: 2% of 0.50
  assert not claims.more_robust(0.505, 0.50)
  assert not claims.more_robust(0.56, 0.50, 0.03, 0.04)  # 0.06 within 0.03 + 0.04
  assert claims.more_robust(0.56, 0.50, 0.02, 0.03)
  assert claims.more_robust(0.56, 0.50, None, 0.05)  # one spread unknown: 2% only
  groups = [dict(rows=_rows((0.72, 0.50), (0.72, 0.52), (0.72, 0.54), defense='fgm')),
            dict(rows=_rows((0.78, 0.30), (0.78, 0.40), (0.78, 0.50), defense='fgm')),
            dict(rows=_rows((0.72, 0.50), (0.72, 0.90), defense='pgd')),
            dict(rows=_rows((0.72, 0.5), (0.72, 0.6), (0.72, 0.7), defense='fgm', width=0.5))]
  assert claims.curve_spread(groups, 'fgm', '', 0.25) == pytest.approx(0.1)  # the largest
  assert claims.curve_spread(groups, 'pgd', '', 0.25) is None  # 2 seeds < MIN_SEEDS


def test_seed_groups_hold_the_evaluated_jobs_only():
  """A seed still training (its last epoch's test accuracy, no rho_cw) stays out of the spread
  until it is evaluated."""
  rows = [dict(job=f'fgm_eps0.25_w0.25_s{seed}', seed=seed, test_acc=acc, rho_cw_mean=rho)
          for seed, acc, rho in ((1234, 0.71, 0.74), (1235, 0.72, 0.73), (1236, 0.55, None))]
  configs = {r['job']: make_config('cpu', defense='fgm', eps=0.25, seed=r['seed']) for r in rows}
  sweep = results.Sweep('root', rows, configs, {}, {}, None, {}, {}, {})
  (group,) = sweep.seed_groups()
  assert group['name'] == 'fgm_eps0.25_w0.25_s*' and [r['seed'] for r in group['rows']] == [
      1234, 1235]


def test_claim1_wins_only_beyond_the_seed_spread_and_says_when_it_is_unmeasured():
  fgm = claims.Curve('FGM-AT', _rows((0.70, 0.50), (0.78, 0.30), defense='fgm'), rho_std=0.01)
  pgd = claims.Curve('PGD-AT', _rows((0.70, 0.50), (0.78, 0.30), defense='pgd'), rho_std=0.01)
  pgn = _rows((0.70, 0.60), (0.78, 0.36))
  # PGN leads by 0.10 at 0.70, 0.08 at 0.74 and 0.06 at 0.78.
  verdict = claims.robust_at_equal_accuracy(claims.Curve('PGN', pgn, rho_std=0.02), [fgm, pgd])
  assert verdict.verdict == claims.REPRODUCED, verdict
  assert 'Seed std of rho_cw: PGN 0.020, FGM-AT 0.010, PGD-AT 0.010' in verdict.why
  noisy = claims.robust_at_equal_accuracy(claims.Curve('PGN', pgn, rho_std=0.06), [fgm, pgd])
  assert noisy.verdict == claims.PARTLY, noisy  # 0.10 exceeds 0.07, 0.06 and 0.08 do not
  assert 'at benign accuracy 0.700 rho_cw is PGN 0.600, FGM-AT 0.500, PGD-AT 0.500 (PGN ahead ' \
         'of FGM-AT and PGD-AT)' in noisy.why
  unmeasured = claims.robust_at_equal_accuracy(
      claims.Curve('PGN (normalized)', pgn, 'normalized_curve'), [fgm, pgd], '--root=R')
  assert unmeasured.verdict == claims.PARTLY  # every comparison won, the spread unknown
  assert ('Seed spread not measured on 3 seeds for PGN (normalized) (at most partly): run '
          '`python -m tf_pgn.experiments run --sweep=seeds --root=R`') in unmeasured.why
  missing = claims.robust_at_equal_accuracy(
      claims.Curve('PGN (normalized)', [], 'normalized_curve'), [fgm, pgd], '--root=R')
  assert missing.verdict == claims.NOT_MEASURED
  assert 'run `python -m tf_pgn.experiments run --sweep=normalized_curve --root=R`' in missing.why


def _attacked(benign=0.70, fgm=(0.69, 0.40), pgd=(0.69, 0.35)):
  """results.json of a fixed classifier under FGM / PGD at eps 0.02 and 0.5 (mean L2 = eps)."""
  attacks = {f'{a}_eps{e:g}': dict(attack=a, eps=e, whitebox=dict(accuracy=acc, mean_l2=e))
             for a, accs in (('fgm', fgm), ('pgd', pgd)) for e, acc in zip((0.02, 0.5), accs)}
  return dict(benign_accuracy=benign, attacks=attacks)


def _pgn(*points, eps=None):
  return [dict(attack='pgn', c_l=c, **({} if eps is None else dict(eps=eps)),
               whitebox=dict(accuracy=acc, mean_l2=l2)) for c, l2, acc in points]


def test_claim3_compares_each_pgn_attack_variant_at_its_mean_l2():
  results_ = _attacked()
  compared, outside = claims.pgn_comparisons(results_, _pgn((4, 0.26, 0.40), (0.5, 3.0, 0.1)))
  # FGM at L2 0.26: halfway from (0.02, 0.69) to (0.5, 0.40); PGD from 0.69 to 0.35.
  (point,) = compared
  assert point['fgm'] == pytest.approx(0.545) and point['pgd'] == pytest.approx(0.52)
  assert [p['c_l'] for p in outside] == [0.5]
  assert claims.attack_margin(compared) == pytest.approx(0.12)
  assert claims.attack_margin([]) is None
  strong = claims.pgn_attack_stronger({'fgm_eps0.5': (results_, _pgn((4, 0.26, 0.40)))}, 'CMD')
  weak = claims.pgn_attack_stronger({'fgm_eps0.5': (results_, _pgn((4, 0.26, 0.53)))}, 'CMD')
  assert (strong.verdict, weak.verdict) == (claims.REPRODUCED, claims.PARTLY)  # below FGM only
  budget = claims.pgn_attack_stronger({'j': (results_, _pgn((2, 0.45, 0.6), eps=0.5))}, 'CMD')
  assert budget.verdict == claims.NOT_REPRODUCED, budget
  unmeasured = claims.pgn_attack_stronger({'j': (results_, [])}, 'CMD')
  assert unmeasured.verdict == claims.NOT_MEASURED and 'run CMD' in unmeasured.why
  beyond = claims.pgn_attack_stronger({'j': (results_, _pgn((0.5, 3.0, 0.1)))}, 'CMD')
  assert beyond.verdict == claims.NOT_MEASURED and 'j c_L=0.5 (mean L2 3.000)' in beyond.why


def test_claim4_needs_every_width_of_the_capacity_sweep():
  rows = [dict(job=f'w{w}', defense='pgn', variant='normalized', hparam='c_l', hparam_value=8.0,
               gen_width=0.125, width=w, test_acc=0.7, rho_cw_mean=rho)
          for w, rho in ((0.125, 0.3), (0.25, 0.4), (0.5, 0.5))]
  verdict = claims.capacity_moves_curve(rows, rho_std=0.01)
  assert verdict.verdict == claims.REPRODUCED and 'a rise exceeds twice it' in verdict.why
  verdict = claims.capacity_moves_curve(rows[:2], 'normalized_capacity', '--root=R', rho_std=0.01)
  assert verdict.verdict == claims.PARTLY and '--sweep=normalized_capacity --root=R' in verdict.why
  assert verdict.why.startswith('PGN (normalized) c_L=8 (generator width 0.125)')


def test_claim4_calls_a_rise_only_beyond_the_seed_spread():
  rows = [dict(job=f'w{w}', defense='pgn', variant='', hparam='c_l', hparam_value=8.0,
               gen_width=0.125, width=w, test_acc=0.7, rho_cw_mean=rho)
          for w, rho in ((0.125, 0.39), (0.25, 0.42), (0.5, 0.44))]
  # Rises of 0.03 and 0.02: over 2% of rho_cw, inside twice a seed std of 0.085.
  assert claims.capacity_moves_curve(rows, rho_std=0.005).verdict == claims.REPRODUCED
  assert claims.capacity_moves_curve(rows, rho_std=0.085).verdict == claims.NOT_REPRODUCED
  # 0.05 from the narrowest to the widest, beyond twice 0.02; 0.02 per step is not.
  assert claims.capacity_moves_curve(rows, rho_std=0.02).verdict == claims.PARTLY
  unmeasured = claims.capacity_moves_curve(rows, run_flags='--root=R')
  assert unmeasured.verdict == claims.PARTLY, unmeasured
  assert 'Seed spread not measured on 3 seeds' in unmeasured.why
  assert '--sweep=seeds --root=R' in unmeasured.why


def test_pgn_attack_variants_are_named_by_g_input_and_budget(tmp_path):
  assert results.pgn_attack_variant({}, dict(c_l=2.0)) == 'raw'  # results.json before the field
  settings = dict(attack_settings=dict(pgn=dict(grad_input='sign')))
  assert results.pgn_attack_variant(settings, dict(c_l=2.0, eps=0.5)) == 'sign_eps0.5'
  for loss, name in (('ce', 'normalized'), ('margin', 'normalized_margin')):
    settings = dict(attack_settings=dict(pgn=dict(
        grad_input='normalized', loss=evaluation.PGN_ATTACK_LOSS_TEXT[loss])))
    assert results.pgn_attack_variant(settings, dict(c_l=2.0)) == name
  assert all(results.pgn_attack_variant(dict(attack_settings=dict(pgn=dict(
      grad_input=settings['pgn_grad_input'], loss=evaluation.PGN_ATTACK_LOSS_TEXT[
          settings.get('pgn_attack_loss', 'ce')]))), dict(c_l=1.0, eps=settings.get('pgn_eps')))
             == variant for variant, settings in protocol.FIGURE3_PGN_VARIANTS.items())
  assert results.pgn_attacks(str(tmp_path / 'none')) == {}


def test_sweeps_of_the_variants_and_the_seeds():
  from tf_pgn.study import sweeps  # pylint: disable=g-import-not-at-top
  names = lambda sweep: [j.name for j in sweeps.sweep_jobs(sweep, 'cpu')]
  assert names('normalized_curve') == ['pgn_c_l2_w0.25_s1234_normalized',
                                       'pgn_c_l8_w0.25_s1234_normalized',
                                       'pgn_c_l32_w0.25_s1234_normalized']
  assert names('normalized_capacity')[0] == 'pgn_c_l8_w0.125_s1234_normalized'
  # The zero-init lever's job is the first point of its curve: one job, one config.
  curve = sweeps.sweep_jobs('normalized_zero_init_curve', 'cpu')
  assert [j.name for j in curve] == ['pgn_c_l2_w0.25_s1234_normalized_zero_init',
                                     'pgn_c_l8_w0.25_s1234_normalized_zero_init',
                                     'pgn_c_l32_w0.25_s1234_normalized_zero_init']
  lever = next(j for j in sweeps.sweep_jobs('levers', 'cpu') if j.name == curve[0].name)
  assert lever.train_config('cpu', 'cifar10') == curve[0].train_config('cpu', 'cifar10')
  assert names('seeds') == ['fgm_eps0.25_w0.25_s1235', 'fgm_eps0.25_w0.25_s1236',
                            'pgn_c_l0.5_w0.25_s1235', 'pgn_c_l0.5_w0.25_s1236',
                            'pgn_c_l2_w0.25_s1235_normalized', 'pgn_c_l2_w0.25_s1236_normalized',
                            'pgd_eps0.25_w0.25_s1235', 'pgd_eps0.25_w0.25_s1236']
  configs = [j.train_config('cpu', 'cifar10') for j in sweeps.sweep_jobs('seeds', 'cpu')[4:6]]
  assert [(c.seed, c.c_l, c.pgn_grad_input, c.pgn_zero_init) for c in configs] == [
      (1235, 2.0, 'normalized', False), (1236, 2.0, 'normalized', False)]
  # Claim 2's long schedule: its own epochs in its names and configs, snapshots every epoch.
  assert names('long_schedule') == ['fgm_eps0.5_w0.5_s1234_bf16_e15',
                                    'pgn_c_l2_w0.5_s1234_normalized_bf16_e15']
  long = [j.train_config('cpu', 'cifar10') for j in sweeps.sweep_jobs('long_schedule', 'cpu')]
  assert [(c.defense, c.eps if c.defense == 'fgm' else c.c_l, c.width, c.epochs,
           c.snapshot_every_epochs) for c in long] == [('fgm', 0.5, 0.5, 15, 1),
                                                       ('pgn', 2.0, 0.5, 15, 1)]
  assert {c.mixed_precision for c in long} == {'bfloat16'}  # both, so like is compared with like
  # Every other job pins float32, whatever the default.
  assert {j.train_config('cpu', 'cifar10').mixed_precision
          for j in sweeps.sweep_jobs('seeds', 'cpu')} == {'float32'}


# -- the direction of the imports ------------------------------------------------------------
def _modules() -> dict:
  """{module: the tf_pgn modules it imports anywhere in its file} of every module of tf_pgn."""
  found = {}
  for folder, _, files in os.walk(PACKAGE):
    for name in files:
      if name.endswith('.py'):
        path = os.path.join(folder, name)
        parts = os.path.relpath(path, REPO)[:-3].split(os.sep)
        found['.'.join(parts[:-1] if parts[-1] == '__init__' else parts)] = path
  graph = {}
  for module, path in found.items():
    with open(path) as f:
      tree = ast.parse(f.read())
    imported = set()
    for node in ast.walk(tree):
      if isinstance(node, ast.Import):
        imported |= {a.name for a in node.names}
      elif isinstance(node, ast.ImportFrom) and node.module:
        imported |= {f'{node.module}.{a.name}' if f'{node.module}.{a.name}' in found
                     else node.module for a in node.names}
    graph[module] = {m for m in imported if m in found and m != module}
  return graph


def test_the_study_imports_one_way():
  graph = _modules()
  study = {m for m in graph if m.startswith('tf_pgn.study')}
  assert {'tf_pgn.study.protocol', 'tf_pgn.study.claims', 'tf_pgn.study.results',
          'tf_pgn.study.sweeps', 'tf_pgn.study.render'} <= study
  for module in graph:
    importlib.import_module(module)
  # The library never imports the study; tf_pgn.experiments is the study's command line.
  for module in set(graph) - study - {'tf_pgn.experiments'}:
    assert not graph[module] & study, (module, graph[module] & study)
  assert not graph['tf_pgn.study.protocol']
  assert graph['tf_pgn.study.claims'] == {'tf_pgn.study.protocol'}
  layers = ['tf_pgn.study.protocol', 'tf_pgn.study.claims', 'tf_pgn.study.results',
            'tf_pgn.study.sweeps', 'tf_pgn.study.render']
  for i, module in enumerate(layers):  # each imports only layers before it
    assert not graph[module] & set(layers[i + 1:]), (module, graph[module])
  assert not graph['tf_pgn.study.sweeps'] & {'tf_pgn.study.render', 'tf_pgn.study.claims'}
  # The report's sections: each module imports only those before it; the package re-exports.
  render = [f'tf_pgn.study.render.{m}' for m in (
      'common', 'drawing', 'scale', 'attack', 'verdicts', 'curves', 'autoattack', 'ablation',
      'progress', 'figures', 'linf_report', 'linf', 'report')] + ['tf_pgn.study.render']
  assert {m for m in study if m.startswith('tf_pgn.study.render')} == set(render)
  for i, module in enumerate(render):
    assert not graph[module] & set(render[i + 1:]), (module, graph[module])
  for module in set(study) - set(render):
    assert not graph[module] & set(render), (module, graph[module])
  # No cycle anywhere in the package.
  state = {}

  def visit(module, path):
    if state.get(module) == 'done':
      return
    assert state.get(module) != 'open', f'import cycle: {" -> ".join(path + [module])}'
    state[module] = 'open'
    for other in sorted(graph[module]):
      visit(other, path + [module])
    state[module] = 'done'

  for module in sorted(graph):
    visit(module, [])
