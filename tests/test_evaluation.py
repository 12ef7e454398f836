"""evaluate.py and tf_pgn.evaluation end to end on a tiny trained classifier and real CIFAR-10.

One evaluation (every attack, white-box on the run directory, black-box from its exported
SavedModel) is shared by the tests of its outputs; a rerun must come from partial/ alone.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO, run_cli
from tf_pgn import data, evaluation
from tf_pgn.attacks import predict
from tf_pgn.attacks.pgn_attack import MARGIN_KAPPA, PGNAttack
from tf_pgn.config import make_config
from tf_pgn.defenses import cross_entropy
from tf_pgn.export import load_classifier, weights_digest
from tf_pgn.trainer import Trainer

# Seconds per attack: one batch, few steps, a PGN budget (c_L) small enough to matter.
N = 16
TINY = dict(num_examples=N, batch_size=N, eps_list='0.25,1.0', pgd_steps=3, cw_iterations=20,
            cw_search_steps=3, cw_initial_const=1.0, pgn_c_l_list='0.01', pgn_gen_width=0.0625,
            pgn_attack_train_size=128, pgn_batch_size=64, unbounded_steps=5)
KEYS = ['fgm_eps0.25', 'fgm_eps1', 'mim_eps0.25', 'mim_eps1', 'pgd_eps0.25', 'pgd_eps1',
        'deepfool', 'cw', 'pgn_c_l0.01']


@pytest.fixture(scope='module')
def run_dir(cifar10_dir, tmp_path_factory):
  """A naive ConvPool-CNN at width 0.125 after 64 steps (about 35% test accuracy)."""
  path = str(tmp_path_factory.mktemp('run'))
  cfg = make_config('tiny', defense='naive', width=0.125, train_size=2048, lr=2e-3,
                    checkpoint_every_steps=1000)
  Trainer(cfg, path, cifar10_dir).run()
  return path


@pytest.fixture(scope='module')
def evaluated(run_dir, cifar10_dir, tmp_path_factory):
  """(results, out_dir, raw attack outputs by progress label) of one full evaluation."""
  out_dir = str(tmp_path_factory.mktemp('eval'))
  raw = {}
  real_run_attack = evaluation.runner.run_attack

  def spy(attack_fn, model, x, y, batch_size, progress_desc, **kwargs):
    def recorded(m, xb, yb):
      raw.setdefault(progress_desc, []).append(np.asarray(attack_fn(m, xb, yb)))
      return raw[progress_desc][-1]
    return real_run_attack(recorded, model, x, y, batch_size, progress_desc, **kwargs)

  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(evaluation.runner, 'run_attack', spy)
    results = evaluation.evaluate(
        evaluation.make_eval_config(**TINY), run_dir, out_dir, cifar10_dir,
        source_ckpt=os.path.join(run_dir, 'export', 'classifier'))
  return results, out_dir, {k: np.concatenate(v) for k, v in raw.items()}


def test_results_json_round_trips_with_every_number(evaluated, run_dir, cifar10_dir):
  results, out_dir, _ = evaluated
  with open(os.path.join(out_dir, 'results.json')) as f:
    assert json.load(f) == results
  assert list(results['attacks']) == KEYS
  assert results['num_examples'] == N and results['dataset'] == 'cifar10'
  assert results['norm'] == 'l2'
  assert results['model'].startswith(run_dir) and 'SavedModel' in results['source_model']
  assert results['attack_settings']['cw']['max_iterations'] == 20
  assert results['attack_settings']['pgd']['budgets'] == [{'eps': 0.25}, {'eps': 1.0}]
  model, _, _ = load_classifier(run_dir)
  test = data.subset(data.load('cifar10', cifar10_dir).test, N)
  expected = np.mean(predict(model, data.to_float(test.x)).argmax(-1) == test.y)
  assert results['benign_accuracy'] == pytest.approx(expected)
  for key, entry in results['attacks'].items():
    for box in ('whitebox', 'blackbox'):
      r = entry[box]
      assert 0.0 <= r['accuracy'] <= 1.0, (key, box)
      assert r['n_correct'] == round(r['accuracy'] * N)
      assert r['seconds'] > 0 and r['images_per_second'] > 0
      for name in ('rho_mean', 'rho_median', 'rho_mean_paper', 'rho_median_paper'):
        assert r[name] is None or r[name] >= 0.0  # NaN became null
      assert ('accuracy_vs_l2' in r) == (entry['attack'] in ('cw', 'deepfool'))
      assert 'linf_mean' not in r  # a Linf evaluation's
  curve = results['attacks']['deepfool']['whitebox']['accuracy_vs_l2']
  assert len(curve['radii']) == 41 and curve['radii'][-1] == 2.0
  assert curve['accuracy'][0] == pytest.approx(results['benign_accuracy'])
  assert results['unbounded_pgd']['steps'] == 5
  names = [c['name'] for c in results['checks']]
  assert names == ['unbounded_pgd_success', 'cw_success', 'pgd_monotone_in_eps',
                   'blackbox_not_stronger', 'zero_gradients', 'deterministic_outputs']
  assert all(isinstance(c['passed'], bool) and c['detail'] for c in results['checks'])


def test_every_attack_output_lies_in_the_box_and_its_budget(evaluated, cifar10_dir):
  _, _, raw = evaluated
  expected = {f'{box}_{key}' for box in ('whitebox', 'blackbox') for key in KEYS}
  assert set(raw) == expected | {'whitebox_pgd_unbounded_eps8'}
  x = data.to_float(data.load('cifar10', cifar10_dir).test.x[:N])
  for label, x_adv in raw.items():
    assert x_adv.shape == x.shape, label
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0, label
    if '_eps' in label:
      eps = float(label.rsplit('_eps', 1)[1])
      norms = np.sqrt(np.sum(np.square(x_adv.astype(np.float64) - x), axis=(1, 2, 3)))
      assert norms.max() <= eps * (1 + 1e-4), label


def test_markdown_table_and_plot_are_written(evaluated):
  results, out_dir, _ = evaluated
  with open(os.path.join(out_dir, 'results.md')) as f:
    table = f.read()
  assert table == evaluation.results_markdown(results)
  rows = [l for l in table.splitlines() if l.startswith('| ') and not l.startswith('| attack')]
  assert len(rows) == len(KEYS)
  assert rows[0].startswith('| FGM (eps=0.25) |') and 'C&W' in table and 'PGN (c_L=0.01' in table
  assert "rho mean (paper's variant)" in table and 'black-box acc' in table
  with open(os.path.join(out_dir, 'accuracy_vs_l2.png'), 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_a_rerun_reuses_every_partial_result(evaluated, run_dir, cifar10_dir, monkeypatch):
  results, out_dir, _ = evaluated
  partial = os.path.join(out_dir, 'partial')
  mtimes = {name: os.stat(os.path.join(partial, name)).st_mtime_ns
            for name in os.listdir(partial)}
  assert len(mtimes) == 2 * len(KEYS) + 1

  def no_attack(*args, **kwargs):
    raise AssertionError('a finished attack ran again')

  monkeypatch.setattr(evaluation.runner, 'run_attack', no_attack)
  monkeypatch.setattr(evaluation.attack_table, 'PGNAttack', no_attack)
  again = evaluation.evaluate(evaluation.make_eval_config(**TINY), run_dir, out_dir, cifar10_dir,
                              source_ckpt=os.path.join(run_dir, 'export', 'classifier'))
  assert {k: v for k, v in again.items() if k != 'seconds'} == {
      k: v for k, v in results.items() if k != 'seconds'}
  assert {name: os.stat(os.path.join(partial, name)).st_mtime_ns
          for name in os.listdir(partial)} == mtimes


class _AttackRan(Exception):
  """Raised by the stand-ins of ``_refuse_attacks``: an attack was not reused."""


def _refuse_attacks(monkeypatch):
  def refuse(*args, **kwargs):
    raise _AttackRan
  monkeypatch.setattr(evaluation.runner, 'run_attack', refuse)
  monkeypatch.setattr(evaluation.attack_table, 'PGNAttack', refuse)


def test_without_the_unbounded_check_no_unbounded_pgd_runs_and_the_other_checks_stay(
    evaluated, run_dir, cifar10_dir, tmp_path, monkeypatch):
  results, out_dir, _ = evaluated
  shutil.copytree(os.path.join(out_dir, 'partial'), tmp_path / 'partial')
  os.remove(tmp_path / 'partial' / 'whitebox_pgd_unbounded_eps8.json')  # would it run: raises
  _refuse_attacks(monkeypatch)
  probe = evaluation.evaluate(evaluation.make_eval_config(**TINY, unbounded_check=False), run_dir,
                              str(tmp_path), cifar10_dir,
                              source_ckpt=os.path.join(run_dir, 'export', 'classifier'))
  assert 'unbounded_pgd' not in probe and probe['attacks'] == results['attacks']
  assert [c['name'] for c in probe['checks']] == [
      c['name'] for c in results['checks'] if c['name'] != 'unbounded_pgd_success']


def test_partial_results_follow_the_weights_not_the_path(evaluated, run_dir, cifar10_dir,
                                                         tmp_path, monkeypatch):
  """The run directory moved (its results with it) reuses every finished attack; a model whose
  weights changed, as a retrain in place gives, reuses none."""
  results, out_dir, _ = evaluated
  moved, moved_out = str(tmp_path / 'moved'), str(tmp_path / 'eval')
  shutil.copytree(run_dir, moved)
  shutil.copytree(out_dir, moved_out)
  with monkeypatch.context() as mp:
    _refuse_attacks(mp)
    again = evaluation.evaluate(evaluation.make_eval_config(**TINY), moved, moved_out,
                                cifar10_dir, source_ckpt=os.path.join(moved, 'export',
                                                                      'classifier'))
  assert again['attacks'] == results['attacks'] and again['model'].startswith(moved)

  model, _, _ = load_classifier(run_dir)
  exported, _, _ = load_classifier(os.path.join(run_dir, 'export', 'classifier'))
  assert weights_digest(model) == weights_digest(exported) is not None
  test = data.subset(data.load('cifar10', cifar10_dir).test, N)
  fgm = lambda: evaluation.evaluate_model(model, data.to_float(test.x), test.y, attacks=['fgm'],
                                          eps_list=[0.25], out_dir=str(tmp_path / 'lib'),
                                          batch_size=N, unbounded_steps=2)
  first = fgm()
  with monkeypatch.context() as mp:
    _refuse_attacks(mp)
    assert fgm()['attacks'] == first['attacks']  # the same weights: reused
    model.weights[0].assign(model.weights[0] + 1e-3)
    with pytest.raises(_AttackRan):
      fgm()


# Evaluates DeepFool on 12 images in 3 batches of 4 and, with argv[1] == 'kill', SIGKILLs itself
# when the third batch starts (two batches saved).
_EVAL_DEEPFOOL = """
import os, signal, sys
from tf_pgn import evaluation
run_dir, out_dir, data_dir, mode = sys.argv[1:5]
if mode == 'kill':
  run_attack = evaluation.runner.run_attack
  def run_attack_and_die(attack_fn, *args, **kwargs):
    calls = []
    def counted(*a):
      calls.append(1)
      if len(calls) == 3:
        os.kill(os.getpid(), signal.SIGKILL)
      return attack_fn(*a)
    return run_attack(counted, *args, **kwargs)
  evaluation.runner.run_attack = run_attack_and_die
cfg = evaluation.make_eval_config(dataset='cifar10', attacks='deepfool', num_examples=12,
                                  batch_size=4, unbounded_steps=2)
evaluation.evaluate(cfg, run_dir, out_dir, data_dir)
"""


def test_evaluate_killed_mid_attack_resumes_after_its_finished_batches(run_dir, cifar10_dir,
                                                                      tmp_path):
  def evaluate(out_dir, mode):
    return subprocess.run([sys.executable, '-c', _EVAL_DEEPFOOL, run_dir, str(out_dir),
                           cifar10_dir, mode], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, PYTHONPATH=REPO))

  killed = evaluate(tmp_path / 'killed', 'kill')
  assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
  assert not os.path.exists(tmp_path / 'killed' / 'results.json')
  batches = tmp_path / 'killed' / 'partial' / 'whitebox_deepfool.batches'
  assert sorted(n for n in os.listdir(batches) if n.endswith('.npy')) == ['00000.npy',
                                                                         '00001.npy']
  rerun = evaluate(tmp_path / 'killed', 'rerun')
  assert rerun.returncode == 0, rerun.stderr[-2000:]
  assert 'whitebox_deepfool: resuming after 2 finished batch(es)' in rerun.stdout
  assert not os.path.exists(batches)  # emptied once the attack finished
  whole = evaluate(tmp_path / 'whole', 'whole')
  assert whole.returncode == 0, whole.stderr[-2000:]
  result = lambda d: json.loads((tmp_path / d / 'results.json').read_text())['attacks'][
      'deepfool']['whitebox']
  resumed, uninterrupted = result('killed'), result('whole')
  assert resumed['resumed_examples'] == 8 and uninterrupted['resumed_examples'] == 0
  for name in ('accuracy', 'n_success', 'rho_mean', 'rho_median', 'accuracy_vs_l2'):
    assert resumed[name] == pytest.approx(uninterrupted[name]), name


def test_pgn_attack_raises_the_loss_on_its_training_data(run_dir, cifar10_dir):
  model, num_classes, _ = load_classifier(os.path.join(run_dir, 'export', 'classifier'))
  train = data.subset(data.load('cifar10', cifar10_dir).train, 256)
  x, y = data.to_float(train.x), train.y
  attack = PGNAttack(model, num_classes, c_l=0.01, gen_width=0.0625, batch_size=32)
  # A zero output layer: the attack starts at x_adv = x (up to the box map's 0.999999).
  x_start = attack.attack_fn(model, tf.constant(x), tf.constant(y)).numpy()
  assert np.abs(x_start - x).max() < 1e-5
  history = attack.fit(x, y, epochs=2)
  assert [h['epoch'] for h in history] == [1, 2]
  x_adv = attack.attack_fn(model, tf.constant(x), tf.constant(y)).numpy()
  assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
  ce = lambda images: float(cross_entropy(y, model(tf.constant(images))))
  accuracy = lambda images: np.mean(predict(model, images).argmax(-1) == y)
  assert ce(x_adv) > ce(x) + 0.01
  assert accuracy(x_adv) <= accuracy(x)


def test_pgn_attack_margin_loss_is_the_clipped_logit_margin(run_dir, cifar10_dir):
  model, num_classes, _ = load_classifier(os.path.join(run_dir, 'export', 'classifier'))
  train = data.subset(data.load('cifar10', cifar10_dir).train, 64)
  x, y = tf.constant(data.to_float(train.x)), tf.constant(train.y)
  attack = PGNAttack(model, num_classes, c_l=0.01, gen_width=0.0625, batch_size=64,
                     loss='margin')
  # A zero output layer: x_adv = x, so the first step's loss is the margin term at x alone.
  logits = predict(model, data.to_float(train.x))
  others = np.where(np.eye(num_classes)[train.y] > 0, -np.inf, logits).max(-1)
  expected = np.maximum(logits[np.arange(len(train.y)), train.y] - others, -MARGIN_KAPPA).mean()
  step = attack.train_step(x, y)
  assert float(step['loss']) == pytest.approx(expected, abs=1e-4)
  assert float(step['sq_l2']) < 1e-8
  with pytest.raises(ValueError, match="unknown PGN attack loss 'dlr'"):
    PGNAttack(model, num_classes, c_l=1.0, loss='dlr')


def test_soundness_checks_flag_masking_rising_accuracy_and_strong_transfer():
  def result(n_correct, n_success=0, n_clean_correct=10):
    return dict(n_correct=n_correct, n_success=n_success, n_clean_correct=n_clean_correct,
                success_rate=n_success / n_clean_correct)

  results = dict(
      unbounded_pgd=dict(eps=8.0, steps=50, **result(1, n_success=9)),
      attacks={
          'pgd_eps0.5': dict(attack='pgd', eps=0.5, whitebox=result(6), blackbox=result(3)),
          'pgd_eps1': dict(attack='pgd', eps=1.0, whitebox=result(7), blackbox=result(7)),
          'pgd_eps2': dict(attack='pgd', eps=2.0, whitebox=result(9), blackbox=result(9)),
      })
  checks = {c['name']: c for c in evaluation.soundness_checks(results)}
  assert not checks['unbounded_pgd_success']['passed']
  assert 'gradient masking' in checks['unbounded_pgd_success']['detail']
  assert not checks['pgd_monotone_in_eps']['passed']  # 7 -> 9 rises by 2 examples, not 6 -> 7
  assert checks['pgd_monotone_in_eps']['detail'].endswith('rises at eps 1 -> 2')
  assert not checks['blackbox_not_stronger']['passed']
  assert 'stronger for pgd_eps0.5' in checks['blackbox_not_stronger']['detail']


@pytest.mark.parametrize('flags,pattern', [
    (dict(attacks='fgm,spsa'), "unknown attack(s) ['spsa']"),
    (dict(eps_list='0.5,big'), '--eps_list=0.5,big is not a comma list of numbers'),
    (dict(eps_list='8/0'), '--eps_list=8/0 is not a comma list of numbers or fractions a/b'),
    (dict(norm='l1'), 'unknown --norm=l1: use one of l2, linf'),
    (dict(norm='linf', eps_list='8/255,8'), '--eps_list=0.0313725,8 at --norm=linf holds 8, the '
                                            'whole pixel range'),
    (dict(num_examples=0), '--num_examples=0 must be positive'),
    (dict(dataset='mnist'), "unknown dataset 'mnist'"),
])
def test_bad_settings_are_refused(flags, pattern):
  with pytest.raises(evaluation.EvalError, match=re.escape(pattern)):
    evaluation.make_eval_config(**flags)


def _assert_one_line_error(proc, pattern):
  err_lines = [l for l in proc.stderr.splitlines() if l.startswith('evaluate.py: error:')]
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert len(err_lines) == 1 and pattern in err_lines[0], proc.stderr[-2000:]
  assert 'Traceback' not in proc.stderr


def test_cli_refuses_a_path_of_neither_kind_and_a_dataset_of_other_classes(run_dir, tmp_path,
                                                                           cifar10_dir):
  proc = run_cli('evaluate.py', f'--ckpt={tmp_path}', f'--data_dir={cifar10_dir}')
  _assert_one_line_error(proc, 'is neither a run directory (with config.json), an epoch '
                               'snapshot of one nor a SavedModel')
  proc = run_cli('evaluate.py', f'--ckpt={run_dir}', '--dataset=cifar100',
                 f'--data_dir={cifar10_dir}', f'--out={tmp_path}/out')
  _assert_one_line_error(proc, 'has 10 classes but cifar100 has 100')
  assert not os.path.exists(tmp_path / 'out')
