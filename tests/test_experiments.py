"""tf_pgn.experiments on real CIFAR-10: a two-job sweep end to end, its skip on rerun, the summary
and Figure 5's robustness curves."""
import csv
import json
import os

import pytest

from conftest import run_cli
from tf_pgn import evaluation, experiments, trainer

JOBS = ['naive_w0.0625_s1234', 'pgn_c_l8_w0.0625_s1234']
# 32 steps at a high learning rate: the tiny preset's 8 leave a constant classifier, which C&W
# cannot fool.
TINY_TRAIN = dict(train_size=1024, lr=5e-3)
# Seconds per attack (as in test_evaluation.py): one batch of 16 images, few steps, and C&W steps
# large enough for a barely trained classifier's flat logits.
TINY_EVAL = dict(batch_size=16, pgd_steps=3, cw_iterations=20, cw_search_steps=3,
                 cw_initial_const=1.0, cw_lr=0.05, unbounded_steps=5)
ACCURACIES = ['benign_accuracy', 'test_acc', 'cw_success_rate', 'fgm_eps0.02_acc',
              'mim_eps0.02_acc', 'pgd_eps0.02_acc', 'fgm_eps0.5_acc', 'mim_eps0.5_acc',
              'pgd_eps0.5_acc']


@pytest.fixture(scope='module')
def root(cifar10_dir, tmp_path_factory):
  """Two jobs of the robustness_curve sweep at the tiny preset, trained and evaluated."""
  path = str(tmp_path_factory.mktemp('sweep'))
  jobs = experiments.sweep_jobs('robustness_curve', 'tiny', JOBS)
  status = experiments.run_sweep(jobs, path, 'tiny', 'cifar10', cifar10_dir, num_examples=16,
                                 train_overrides=TINY_TRAIN, eval_overrides=TINY_EVAL)
  assert status == dict.fromkeys(JOBS, 'done')
  return path


def test_sweeps_name_their_jobs_and_reject_unknown_ones():
  curve = experiments.sweep_jobs('robustness_curve', 'cpu')
  assert [j.name for j in curve[:3]] == ['naive_w0.25_s1234', 'pgn_c_l2_w0.25_s1234',
                                         'pgn_c_l8_w0.25_s1234']
  assert len(curve) == 10 and curve[-1].name == 'pgd_eps0.5_w0.25_s1234'
  capacity = experiments.sweep_jobs('capacity', 'cpu')
  assert [j.name for j in capacity] == ['pgn_c_l8_w0.125_s1234', 'pgn_c_l8_w0.25_s1234',
                                        'pgn_c_l8_w0.5_s1234']
  cfg = capacity[2].train_config('cpu', 'cifar100')
  assert (cfg.dataset, cfg.defense, cfg.c_l, cfg.width, cfg.gen_width, cfg.epochs) == (
      'cifar100', 'pgn', 8.0, 0.5, 0.125, 6)
  assert [j.name for j in experiments.sweep_jobs('table2', 'cpu')] == [
      'naive_w0.25_s1234', 'fgm_eps0.02_w0.25_s1234', 'pgn_c_l50_w0.25_s1234',
      'pgd_eps0.02_w0.25_s1234']
  with pytest.raises(experiments.ExperimentError, match='unknown job.*naive_w0.25_s1234'):
    experiments.sweep_jobs('capacity', 'cpu', ['naive_w0.25_s1234'])
  with pytest.raises(experiments.ExperimentError, match='no jobs in'):
    experiments.collect(os.path.join(os.path.dirname(__file__), 'no_such_root'))


def test_finished_jobs_are_skipped_and_max_minutes_launches_no_more(root, monkeypatch):
  def fail(*args, **kwargs):
    raise AssertionError('a finished or out-of-budget job was launched')

  monkeypatch.setattr(trainer, 'train', fail)
  monkeypatch.setattr(evaluation, 'evaluate', fail)
  jobs = experiments.sweep_jobs('robustness_curve', 'tiny')
  status = experiments.run_sweep(jobs, root, 'tiny', 'cifar10', max_minutes=0)
  assert status == {j.name: 'skipped' if j.name in JOBS else 'not started' for j in jobs}
  assert sorted(d for d in os.listdir(root) if not d.startswith('.')) == JOBS


def test_summarize_and_plot_command_lines(root):
  for command in ('summarize', 'plot'):
    proc = run_cli('-m', 'tf_pgn.experiments', command, f'--root={root}')
    assert proc.returncode == 0, proc.stderr[-2000:]
  with open(os.path.join(root, 'summary.json')) as f:
    summary = json.load(f)
  rows = summary['jobs']
  assert [r['job'] for r in rows] == JOBS
  naive, pgn = rows
  assert (naive['defense'], naive['hparam'], naive['hparam_value']) == ('naive', None, None)
  assert (pgn['defense'], pgn['hparam'], pgn['hparam_value']) == ('pgn', 'c_l', 8.0)
  for row in rows:
    assert row['status'] == 'evaluated' and row['dataset'] == 'cifar10', row
    assert (row['width'], row['seed'], row['epochs'], row['num_examples'], row['pgd_steps']) == (
        0.0625, 1234, 1, 16, 3)
    assert all(0.0 <= row[k] <= 1.0 for k in ACCURACIES), row
    assert row['rho_cw_mean'] > 0 and row['rho_cw_median'] > 0 and row['rho_deepfool_mean'] > 0
    assert row['train_seconds_per_epoch'] > 0
    with open(os.path.join(root, row['job'], 'eval', 'results.json')) as f:
      results = json.load(f)
    assert row['rho_cw_mean'] == results['attacks']['cw']['whitebox']['rho_mean']
    assert row['pgd_eps0.5_acc'] == results['attacks']['pgd_eps0.5']['whitebox']['accuracy']
  with open(os.path.join(root, 'summary.csv')) as f:
    table = list(csv.DictReader(f))
  assert [r['job'] for r in table] == JOBS and list(table[0]) == summary['columns']
  assert table[0]['hparam'] == '' and float(table[1]['rho_cw_mean']) == rows[1]['rho_cw_mean']
  with open(os.path.join(root, 'robustness_curves.png'), 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  (left_title, left), (right_title, right) = experiments.robustness_curves(rows)
  assert 'width 0.0625' in left_title and sorted(left) == ['PGN', 'naive']
  assert 'PGN' in right_title and list(right) == ['width 0.0625']
  assert right['width 0.0625'] == [(pgn['rho_cw_mean'], pgn['test_acc'], 'c_L=8')]
