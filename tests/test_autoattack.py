"""The AutoAttack-style worst case and the masking flags through tf_pgn.evaluation, on a small
trained CIFAR-10 model and on its gradient-masked twin: the same outputs everywhere, a zero input
gradient everywhere (its input passes through ``x - x + stop_gradient(x)``)."""
import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from conftest import record_attacks
from tf_pgn import evaluation
from tf_pgn.attacks import run_attack
from tf_pgn.attacks.apgd import apgd_targeted
from tf_pgn.attacks.common import attack_unbroken
from tf_pgn.metrics import perturbation_norms

N = 64
EPS = 1.0
TINY = dict(num_examples=N, batch_size=32, eps_list=str(EPS),
            attacks='pgd,apgd_ce,apgd_t,fab_t,square,autoattack,fmn', pgd_steps=20,
            apgd_targets=3, fab_targets=3, fab_iterations=20, square_queries=1000, fmn_steps=50,
            unbounded_steps=5)
KEYS = ['pgd_eps1', 'apgd_ce_eps1', 'apgd_t_eps1', 'fab_t_eps1', 'square_eps1', 'autoattack_eps1',
        'fmn']


@pytest.fixture(scope='module')
def evaluated(small_cifar_model, cifar10_dir, tmp_path_factory):
  """{model name: (results, out_dir, raw attack outputs by progress label)}."""
  model, _, _ = small_cifar_model
  models = {'ordinary': model,
            'masked': lambda x: model(x - x + tf.stop_gradient(x))}
  out = {}
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(evaluation.runner, 'load_classifier', lambda path: (models[path], 10, path))
    for name in models:
      raw = record_attacks(mp)
      out_dir = str(tmp_path_factory.mktemp(name))
      results = evaluation.evaluate(evaluation.make_eval_config(**TINY), name, out_dir,
                                    cifar10_dir)
      out[name] = results, out_dir, raw
  return out


def _accuracy(results, key):
  return results['attacks'][key]['whitebox']['accuracy']


def test_the_worst_case_is_at_most_each_of_its_parts(evaluated):
  results, out_dir, _ = evaluated['ordinary']
  assert list(results['attacks']) == KEYS
  acc = {key: _accuracy(results, key) for key in KEYS}
  assert acc['apgd_ce_eps1'] <= acc['pgd_eps1']
  assert acc['apgd_t_eps1'] <= acc['apgd_ce_eps1'] + 1 / N
  for part in ('apgd_ce_eps1', 'apgd_t_eps1', 'fab_t_eps1', 'square_eps1'):
    assert acc['autoattack_eps1'] <= acc[part] + 1 / N, part  # the parts ran on other batches
  assert acc['autoattack_eps1'] <= acc['apgd_ce_eps1']
  worst = results['attacks']['autoattack_eps1']['whitebox']
  assert set(worst['broken_by']) == {'clean', 'apgd_ce', 'apgd_t', 'fab_t', 'square'}
  assert sum(worst['broken_by'].values()) + worst['n_unbroken'] == N
  assert worst['broken_by']['clean'] == N - worst['n_clean_correct']
  assert worst['n_unbroken'] == worst['n_correct']
  assert [worst['broken_by_example'].count(k) for k in worst['broken_by']] == list(
      worst['broken_by'].values())
  # Each part's own seconds (the worst case's cost, part by part), within the whole's.
  seconds = worst['seconds_by_part']
  assert list(seconds) == ['apgd_ce', 'apgd_t', 'fab_t', 'square'], seconds
  assert all(s > 0 for s in seconds.values()) and sum(seconds.values()) <= worst['seconds']
  params = results['attack_settings']['autoattack']
  assert params['order'] == ['apgd_ce', 'apgd_t', 'fab_t', 'square']
  assert params['version'] == 'standard' and params['fab_t']['targets'] == 3
  assert params['apgd_ce']['checkpoints'][:3] == [22, 41, 57]
  assert params['apgd_t']['targets'] == 3 and params['square']['queries'] == 1000
  with open(os.path.join(out_dir, 'results.json')) as f:
    assert json.load(f) == results
  with open(os.path.join(out_dir, 'results.md')) as f:
    table = f.read()
  assert '| AutoAttack (eps=1) |' in table and '| FMN |' in table
  assert '## Worst case per example' in table
  assert re.search(r'- AutoAttack \(eps=1\): robust accuracy [0-9.]+; broken by clean \d+, '
                   r'APGD-CE \d+, APGD-T \d+, FAB-T \d+, Square \d+; unbroken \d+; seconds per '
                   r'part APGD-CE \d+, APGD-T \d+, FAB-T \d+, Square \d+$', table, re.M)


def test_every_attack_output_lies_in_the_box_and_its_budget(evaluated, small_cifar_model):
  _, x, _ = small_cifar_model
  for name, (_, _, raw) in evaluated.items():
    assert {f'whitebox_{k}' for k in KEYS} <= set(raw)
    for label, x_adv in raw.items():
      assert x_adv.shape == x.shape and x_adv.min() >= 0.0 and x_adv.max() <= 1.0, label
      if '_eps' in label:
        eps = float(label.rsplit('_eps', 1)[1])
        assert perturbation_norms(x, x_adv).max() <= eps * (1 + 1e-5), (name, label)


def test_a_masked_model_defeats_the_gradient_attacks_not_square_and_trips_the_flags(evaluated):
  ordinary, masked = (evaluated[name][0] for name in ('ordinary', 'masked'))
  assert masked['benign_accuracy'] == ordinary['benign_accuracy']
  for key in ('pgd_eps1', 'apgd_ce_eps1', 'apgd_t_eps1'):
    assert _accuracy(masked, key) >= masked['benign_accuracy'] - 2 / N, key  # a random start
    assert _accuracy(ordinary, key) < ordinary['benign_accuracy'] - 0.2, key
  assert _accuracy(masked, 'square_eps1') == _accuracy(ordinary, 'square_eps1')
  assert _accuracy(masked, 'square_eps1') < _accuracy(masked, 'apgd_ce_eps1') - 4 / N
  assert masked['attacks']['autoattack_eps1']['whitebox']['broken_by']['square'] > 2
  flags = ('zero_gradients', 'square_not_stronger')
  checks = {name: {c['name']: c for c in r['checks']} for name, r in
            (('ordinary', ordinary), ('masked', masked))}
  for flag in flags:
    assert checks['ordinary'][flag]['passed'], checks['ordinary'][flag]
    assert not checks['masked'][flag]['passed'], checks['masked'][flag]
  assert masked['probes']['zero_gradient']['examples'] == N
  assert ordinary['probes']['zero_gradient']['examples'] == 0
  assert 'suspect gradient masking' in checks['masked']['square_not_stronger']['detail']
  assert 'square broke' in checks['masked']['square_not_stronger']['detail']
  assert all(checks[name]['deterministic_outputs']['passed'] for name in checks)


def test_a_rerun_reuses_the_worst_case_from_partial(evaluated, cifar10_dir, small_cifar_model,
                                                    monkeypatch):
  results, out_dir, _ = evaluated['ordinary']

  def no_attack(*args, **kwargs):
    raise AssertionError('a finished attack ran again')

  monkeypatch.setattr(evaluation.runner, 'run_attack', no_attack)
  monkeypatch.setattr(evaluation.runner, 'load_classifier',
                      lambda path: (small_cifar_model[0], 10, path))
  again = evaluation.evaluate(evaluation.make_eval_config(**TINY), 'ordinary', out_dir,
                              cifar10_dir)
  assert {k: v for k, v in again.items() if k != 'seconds'} == {
      k: v for k, v in results.items() if k != 'seconds'}


def test_a_randomised_classifier_trips_the_determinism_flag(small_cifar_model):
  model, x, y = small_cifar_model
  noisy = lambda images: model(images + tf.random.normal(tf.shape(images), stddev=0.05))
  base = dict(unbounded_pgd=dict(eps=8.0, steps=5, n_success=10, n_clean_correct=10,
                                 success_rate=1.0), attacks={})
  for model_fn, passed in ((model, True), (noisy, False)):
    probes = evaluation.masking_probes(model_fn, x, y, batch_size=32)
    assert probes['repeated_call']['examples'] == 32
    checks = {c['name']: c for c in evaluation.soundness_checks(dict(base, probes=probes))}
    assert checks['deterministic_outputs']['passed'] == passed, checks['deterministic_outputs']


def test_a_killed_worst_case_resumes_with_its_attack_labels(tmp_path):
  x = np.random.default_rng(0).uniform(size=(10, 4, 4, 1)).astype(np.float32)
  y = np.arange(10) % 3

  def attack(model, xb, yb):
    calls.append(1)
    if len(calls) == 3 and kill:
      raise KeyboardInterrupt
    return xb * 0.5, tf.cast(yb, tf.int32) - 1

  calls, kill = [], True
  with pytest.raises(KeyboardInterrupt):
    run_attack(attack, None, x, y, batch_size=4, resume_dir=str(tmp_path), aux=True)
  assert sorted(os.listdir(tmp_path)) == ['00000.npz', '00001.npz']
  calls, kill = [], False
  x_adv, codes = run_attack(attack, None, x, y, batch_size=4, resume_dir=str(tmp_path),
                            aux=True)
  assert len(calls) == 1  # only the batch in progress was attacked again
  np.testing.assert_allclose(x_adv, x * 0.5)
  np.testing.assert_array_equal(codes, y - 1)


@pytest.mark.parametrize('flags,pattern', [
    (dict(square_p_init=1.5), '--square_p_init=1.5 is a share of the pixels'),
    (dict(fmn_gamma_init=1.0), '--fmn_gamma_init=1.0 must lie in (0, 1)'),
    (dict(apgd_iterations=0), '--apgd_iterations=0 must be positive'),
    (dict(attacks='apgd,fabt'), "unknown attack(s) ['apgd', 'fabt']"),
    (dict(fab_iterations=0), '--fab_iterations=0 must be positive'),
])
def test_bad_settings_of_the_new_attacks_are_refused(flags, pattern):
  with pytest.raises(evaluation.EvalError, match=re.escape(pattern)):
    evaluation.make_eval_config(**flags)


def test_a_part_left_no_robust_example_runs_neither_attack_nor_model():
  # A Keras convolution returns its input unchanged on an empty batch, so a model of two convs
  # failed ("input depth must be evenly divisible by filter depth") wherever a part of AutoAttack
  # met a batch that the earlier parts had broken entirely.
  from tf_pgn.models import build_classifier  # pylint: disable=g-import-not-at-top
  model = build_classifier(10, width=0.0625)
  x = tf.random.stateless_uniform([6, 32, 32, 3], seed=[0, 1])
  y = (tf.argmax(model(x), axis=-1, output_type=tf.int32) + 1) % 10  # all misclassified clean
  calls = []

  def attack(m, xs, ys):
    calls.append(1)
    return xs

  x_adv, broken = attack_unbroken(model, x, y, x, attack)
  assert not calls and not np.asarray(broken).any()
  np.testing.assert_array_equal(x_adv, x)
  compiled = tf.function(lambda x, y: apgd_targeted(model, x, y, 8 / 255, norm='linf',
                                                    n_iter=2))
  np.testing.assert_array_equal(compiled(x, y), x)
