"""Linf through the evaluation (--norm=linf): APGD-Linf (Croce & Hein 2020) and Square-Linf
(Andriushchenko et al. 2020, Algorithm 2), their starts and budgets, and a Linf evaluation of a
small trained CIFAR-10 model and of its gradient-masked twin (``x - x + stop_gradient(x)``), as
tests/test_autoattack.py does at L2."""
import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from conftest import record_attacks, run_cli
from tf_pgn import evaluation
from tf_pgn.attacks.apgd import apgd, apgd_targeted
from tf_pgn.attacks.square import square
from tf_pgn.cli.flags import define_config_flags
from tf_pgn.metrics import perturbation_norms

N = 64
EPS = 4 / 255  # PGD-20 at Linf leaves about half of the small model's clean accuracy
BOUNDED = ('fgm', 'mim', 'pgd', 'apgd_ce', 'apgd_dlr', 'apgd_t', 'fab_t', 'square', 'autoattack')
LINF = dict(norm='linf', eps_list='4/255', num_examples=N, batch_size=N, pgd_steps=20,
            apgd_targets=2, fab_targets=2, fab_iterations=20, square_queries=300, fmn_steps=10,
            unbounded_steps=5)
KEYS = [f'{a}_eps{EPS:g}' for a in BOUNDED] + ['fmn', 'fab_linf']


def _linear(num_classes=3, masked=False):
  """A linear classifier of 20 inputs; ``masked``: its input gradient is zero everywhere."""
  w = tf.constant(np.random.default_rng(0).normal(size=(20, num_classes)).astype(np.float32))
  if masked:
    return lambda x: tf.matmul(x - x + tf.stop_gradient(x), w)
  return lambda x: tf.matmul(x, w)


def _inputs(shape, seed=1):
  """Inputs in [0.25, 0.75]: a budget of 0.1 never meets the pixel box."""
  return np.random.default_rng(seed).uniform(0.25, 0.75, size=shape).astype(np.float32)


def _assert_in_box_and_budget(x_adv, x, eps, label=''):
  x_adv = np.asarray(x_adv)
  assert x_adv.shape == x.shape and x_adv.min() >= 0.0 and x_adv.max() <= 1.0, label
  assert np.abs(x_adv.astype(np.float64) - x).max() <= eps + 1e-6, label


@pytest.mark.parametrize('norm', ['l2', 'linf'])
def test_apgd_starts_where_the_reference_does(norm):
  # A zero gradient leaves APGD at its start, x + eps * n / ||n||: on the L2 sphere; at Linf a
  # uniform point of the box whose largest pixel is at eps.
  model = _linear(masked=True)
  x = _inputs((6, 20))
  y = tf.argmax(model(x), -1, output_type=tf.int32)
  delta = np.asarray(apgd(model, x, y, 0.1, norm=norm, n_iter=5)) - x
  if norm == 'l2':
    np.testing.assert_allclose(perturbation_norms(x, x + delta), 0.1, rtol=1e-5)
  else:
    np.testing.assert_allclose(np.abs(delta).max(axis=1), 0.1, rtol=1e-5)
    assert np.abs(delta).min() < 0.05 and (delta > 0).any() and (delta < 0).any()


def test_apgd_linf_takes_any_input_shape_and_stays_in_the_box():
  model = _linear()
  x = _inputs((6, 20))
  y = tf.argmax(model(x), -1, output_type=tf.int32)
  for loss in ('ce', 'dlr'):
    x_adv = apgd(model, x, y, 0.1, norm='linf', loss=loss, n_iter=10, restarts=2)
    _assert_in_box_and_budget(x_adv, x, 0.1, loss)
    assert np.mean(np.argmax(model(x_adv), -1) == y) < 1.0, loss  # it moves along sign(g)
  with pytest.raises(ValueError, match="unknown norm 'l1'"):
    apgd_targeted(_linear(4), x, y, 0.1, norm='l1')


def test_square_linf_starts_with_vertical_stripes_of_plus_minus_eps():
  # A model whose margin never falls keeps the start: per example, column and channel one sign.
  x = _inputs((3, 8, 6, 2))
  model = lambda images: tf.zeros([tf.shape(images)[0], 3]) + tf.constant([1.0, 0.0, 0.0])
  delta = np.asarray(square(model, x, np.zeros(3, np.int32), 0.1, norm='linf',
                                   n_queries=20)) - x
  np.testing.assert_allclose(np.abs(delta), 0.1, rtol=1e-5)
  np.testing.assert_array_equal(np.sign(delta), np.broadcast_to(np.sign(delta[:, :1]), x.shape))
  assert len(np.unique(np.sign(delta))) == 2
  with pytest.raises(ValueError, match="unknown norm 'l1' for the Square attack"):
    square(model, x, np.zeros(3, np.int32), 0.1, norm='l1')


@pytest.fixture(scope='module')
def evaluated(small_cifar_model, tmp_path_factory):
  """{model name: (results, out_dir, raw attack outputs by progress label)} of a Linf evaluation
  at 4/255: every bounded attack, FMN and FAB-Linf on the small model; PGD and Square on its
  masked twin."""
  model, x, y = small_cifar_model
  models = {'ordinary': (model, ','.join(BOUNDED) + ',fmn,fab_linf'),
            'masked': (lambda images: model(images - images + tf.stop_gradient(images)),
                       'pgd,square')}
  out = {}
  with pytest.MonkeyPatch.context() as mp:
    for name, (classifier, attacks) in models.items():
      raw = record_attacks(mp)
      out_dir = str(tmp_path_factory.mktemp(name))
      results = evaluation.evaluate_model(classifier, x, y, attacks=attacks, out_dir=out_dir,
                                          **LINF)
      out[name] = results, out_dir, raw
  return out


def _accuracy(results, attack):
  return results['attacks'][f'{attack}_eps{EPS:g}']['whitebox']['accuracy']


def test_apgd_linf_is_as_strong_as_pgd_and_the_worst_case_beats_its_parts(evaluated):
  results, _, _ = evaluated['ordinary']
  assert list(results['attacks']) == KEYS
  acc = {a: _accuracy(results, a) for a in BOUNDED}
  assert acc['pgd'] < results['benign_accuracy'] - 0.1  # the budget matters on this model
  assert acc['apgd_ce'] <= acc['pgd']
  assert acc['apgd_t'] <= acc['apgd_ce'] + 1 / N
  for part in evaluation.AUTOATTACK_PARTS:
    # Alone each part attacks every example; in the worst case those left (other random draws).
    assert acc['autoattack'] <= acc[part] + 1 / N, part
  assert acc['autoattack'] <= acc['apgd_ce']
  worst = results['attacks'][f'autoattack_eps{EPS:g}']['whitebox']
  assert sum(worst['broken_by'].values()) + worst['n_unbroken'] == N


def test_every_linf_output_lies_in_the_box_and_its_budget(evaluated, small_cifar_model):
  _, x, _ = small_cifar_model
  for name, (_, _, raw) in evaluated.items():
    linf = [label for label in raw if label.endswith(f'_eps{EPS:g}')]
    assert len(linf) == {'ordinary': len(BOUNDED), 'masked': 2}[name]
    for label in linf:
      _assert_in_box_and_budget(raw[label], x, EPS, (name, label))
  # Square-Linf's points sit on the corners of the box: every pixel at x +- eps where it fits.
  raw = evaluated['ordinary'][2]
  delta = raw[f'whitebox_square_eps{EPS:g}'].astype(np.float64) - x
  inside = (x >= EPS) & (x <= 1.0 - EPS)
  np.testing.assert_allclose(np.abs(delta[inside]), EPS, atol=1e-6)
  # FMN stays a minimal-norm L2 attack: no Linf budget holds it.
  assert np.abs(raw['whitebox_fmn'] - x).max() > EPS


def test_linf_results_record_the_norm_and_label_the_l2_attacks(evaluated):
  results, out_dir, _ = evaluated['ordinary']
  with open(os.path.join(out_dir, 'results.json')) as f:
    assert json.load(f) == results
  assert results['norm'] == 'linf'
  settings = results['attack_settings']
  assert {a: settings[a]['norm'] for a in settings} == dict(
      {a: 'Linf' for a in BOUNDED}, fmn='L2', fab_linf='Linf')
  assert settings['apgd_ce']['random_start'].startswith('eps * u / ||u||_inf')
  assert results['unbounded_pgd']['norm'] == 'L2'
  assert {c['name']: c for c in results['checks']}['unbounded_pgd_success']['detail'].startswith(
      'PGD L2 at eps=8 (5 steps) fools')
  for key in KEYS:
    wb = results['attacks'][key]['whitebox']
    assert wb['n_success'] == 0 or 0 < wb['linf_mean'] <= wb['max_linf']
    if key not in ('fmn', 'fab_linf'):  # the minimal-norm attacks have no budget
      assert wb['max_linf'] <= EPS + 1e-6, key
  with open(os.path.join(out_dir, 'results.md')) as f:
    table = f.read()
  assert '| PGD (Linf, eps=4/255) |' in table and '| FMN (L2) |' in table
  assert '| AutoAttack (Linf, eps=4/255) |' in table and '| Linf mean |' in table
  assert re.search(r'- AutoAttack \(Linf, eps=4/255\): robust accuracy [0-9.]+; broken by', table)
  assert 'FMN at L2' in table  # the minimal-norm attacks are named L2 in the notes too
  assert '| FAB-Linf |' in table  # its name says its norm
  assert os.path.exists(os.path.join(out_dir, 'accuracy_vs_l2.png'))  # FMN's curve
  assert not os.path.exists(os.path.join(evaluated['masked'][1], 'accuracy_vs_l2.png'))
  for name in ('ordinary', 'masked'):  # the Linf attacks' accuracy at eps (and FAB-Linf's curve)
    assert os.path.exists(os.path.join(evaluated[name][1], 'accuracy_vs_linf.png'))


def test_fab_linf_gives_the_robust_accuracy_at_every_linf_radius(evaluated, small_cifar_model):
  model, x, y = small_cifar_model
  results, _, raw = evaluated['ordinary']
  wb = results['attacks']['fab_linf']['whitebox']
  assert 'accuracy_vs_l2' not in wb
  curve = wb['accuracy_vs_linf']
  assert curve['radii'] == [i / 255 for i in range(33)]
  accuracy = np.array(curve['accuracy'])
  assert accuracy[0] == results['benign_accuracy'] and (np.diff(accuracy) <= 0).all()
  # Recomputed from the attack's own points: clean-correct and not fooled within the radius.
  x_adv = raw['whitebox_fab_linf']
  sizes = np.abs(x_adv.astype(np.float64) - x).reshape(N, -1).max(axis=1)
  clean = np.argmax(model(x), -1) == y
  fooled = np.argmax(model(x_adv), -1) != y
  for r, acc in zip(curve['radii'], accuracy):
    assert acc == np.mean(clean & ~(fooled & (sizes <= r))), r
  np.testing.assert_allclose(wb['linf_mean'], sizes[clean & fooled].mean())
  # The budgeted attacks at 4/255 cannot leave more robust than FAB-Linf's curve says is left
  # to anything, beyond a few examples FAB's iterations missed.
  assert _accuracy(results, 'autoattack') <= accuracy[4] + 3 / N


def test_an_l2_evaluation_with_fab_linf_draws_both_figures(small_cifar_model, tmp_path):
  model, x, y = small_cifar_model
  results = evaluation.evaluate_model(model, x, y, attacks=['fgm', 'fab_linf'], eps_list=[0.5],
                                      out_dir=str(tmp_path), batch_size=N, fab_iterations=10,
                                      unbounded_steps=2)
  assert results['norm'] == 'l2' and results['attack_settings']['fab_linf']['norm'] == 'Linf'
  assert 'linf_mean' in results['attacks']['fab_linf']['whitebox']
  assert 'linf_mean' not in results['attacks']['fgm_eps0.5']['whitebox']
  with open(tmp_path / 'results.md') as f:
    table = f.read()
  assert '| Linf mean |' in table and '| FAB-Linf |' in table and '| FGM (eps=0.5) |' in table
  for figure in ('accuracy_vs_l2.png', 'accuracy_vs_linf.png'):
    assert os.path.exists(tmp_path / figure), figure


def test_square_linf_trips_the_masking_flag_on_the_masked_model_only(evaluated):
  ordinary, masked = (evaluated[name][0] for name in ('ordinary', 'masked'))
  assert masked['benign_accuracy'] == ordinary['benign_accuracy']
  assert _accuracy(masked, 'pgd') == masked['benign_accuracy']  # sign(0) = 0: no step
  assert _accuracy(masked, 'square') == _accuracy(ordinary, 'square')
  checks = {name: {c['name']: c for c in r['checks']} for name, r in
            (('ordinary', ordinary), ('masked', masked))}
  assert checks['ordinary']['square_not_stronger']['passed'], checks['ordinary']
  assert not checks['masked']['square_not_stronger']['passed'], checks['masked']
  assert 'suspect gradient masking' in checks['masked']['square_not_stronger']['detail']


def test_an_l2_partial_result_is_not_reused_at_linf_nor_the_other_way(small_cifar_model,
                                                                     tmp_path, monkeypatch):
  model, x, y = small_cifar_model
  ran = []
  real_run_attack = evaluation.runner.run_attack

  def counted(attack_fn, model, x, y, batch_size, progress_desc, **kwargs):
    ran.append(progress_desc)
    return real_run_attack(attack_fn, model, x, y, batch_size, progress_desc, **kwargs)

  monkeypatch.setattr(evaluation.runner, 'run_attack', counted)

  def evaluate(norm):
    ran.clear()
    return evaluation.evaluate_model(model, x, y, attacks=['fgm'], eps_list=[EPS], norm=norm,
                                     out_dir=str(tmp_path), batch_size=N, unbounded_steps=2)

  attacked = [f'whitebox_fgm_eps{EPS:g}', 'whitebox_pgd_unbounded_eps8']
  l2 = evaluate('l2')
  assert ran == attacked and l2['norm'] == 'l2'
  assert evaluate('l2')['attacks'] == l2['attacks'] and ran == []  # the same norm: reused
  linf = evaluate('linf')
  assert ran == attacked and linf['norm'] == 'linf'  # the L2 results (same files) were not used
  fgm = lambda r: r['attacks'][f'fgm_eps{EPS:g}']['whitebox']
  assert fgm(l2)['max_l2'] <= EPS * (1 + 1e-5) < fgm(linf)['max_l2']
  again = evaluate('l2')
  assert ran == attacked  # nor the Linf ones at L2
  assert fgm(again)['accuracy'] == fgm(l2)['accuracy'] > fgm(linf)['accuracy']
  assert fgm(again)['max_l2'] == fgm(l2)['max_l2']


def test_evaluate_py_takes_linf_and_fractions(tmp_path):
  fv = flags.FlagValues()
  names = define_config_flags(evaluation.EvalConfig, '', flag_values=fv)
  fv(['evaluate.py', '--norm=linf', '--eps_list=8/255,16/255'])
  cfg = evaluation.make_eval_config(**{k: getattr(fv, k) for k in names})
  assert cfg.norm == 'linf' and cfg.eps_list == (8 / 255, 16 / 255)  # bad ones: test_evaluation
  # The command itself: its flags parse, and it stops at the checkpoint (an empty folder).
  proc = run_cli('evaluate.py', f'--ckpt={tmp_path}', '--norm=linf', '--eps_list=8/255',
                 '--attacks=pgd,autoattack', '--num_examples=1000')
  errors = [l for l in proc.stderr.splitlines() if l.startswith('evaluate.py: error:')]
  assert proc.returncode == 2 and len(errors) == 1, proc.stderr[-2000:]
  assert 'is neither a run directory' in errors[0]
