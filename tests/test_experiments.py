"""The study (tf_pgn.study, command line tf_pgn.experiments) on real CIFAR-10: a two-job sweep end
to end, its skip on rerun, the summary, Figure 5's robustness curves and the report; the report's
verdicts, PGN variants, seeds and PGN-attack folders on synthetic job folders."""
import csv
import dataclasses
import json
import os
import platform
import re
import shutil
import socket

import pytest

import numpy as np
from matplotlib.text import Text

from conftest import cifar100_dict, run_cli, write_cifar100
from tf_pgn import evaluation, trainer
from tf_pgn.data import DataError
from tf_pgn.study import claims, protocol, render, results, sweeps
from tf_pgn.study.render import autoattack, drawing, figures

# The report's verdict rows: claims 1, 4 and 5 per PGN curve variant, 2 once, 3 for two attacks.
NUM_VERDICTS = 3 * len(protocol.CURVE_VARIANTS) + 1 + 2

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
  jobs = sweeps.sweep_jobs('robustness_curve', 'tiny', JOBS)
  status = sweeps.run_sweep(jobs, path, 'tiny', 'cifar10', cifar10_dir, num_examples=16,
                                 train_overrides=TINY_TRAIN, eval_overrides=TINY_EVAL)
  assert status == dict.fromkeys(JOBS, 'done')
  return path


def test_sweeps_name_their_jobs_and_reject_unknown_ones():
  curve = sweeps.sweep_jobs('robustness_curve', 'cpu')
  assert [j.name for j in curve[:4]] == ['naive_w0.25_s1234', 'pgn_c_l0.5_w0.25_s1234',
                                         'pgn_c_l2_w0.25_s1234', 'pgn_c_l8_w0.25_s1234']
  assert len(curve) == 10 and curve[-1].name == 'pgd_eps0.5_w0.25_s1234'
  capacity = sweeps.sweep_jobs('capacity', 'cpu')
  assert [j.name for j in capacity] == ['pgn_c_l8_w0.125_s1234', 'pgn_c_l8_w0.25_s1234',
                                        'pgn_c_l8_w0.5_s1234']
  cfg = capacity[2].train_config('cpu', 'cifar100')
  assert (cfg.dataset, cfg.defense, cfg.c_l, cfg.width, cfg.gen_width, cfg.epochs) == (
      'cifar100', 'pgn', 8.0, 0.5, 0.125, 6)
  assert [j.name for j in sweeps.sweep_jobs('table2', 'cpu')] == [
      'naive_w0.25_s1234', 'fgm_eps0.02_w0.25_s1234', 'pgn_c_l50_w0.25_s1234',
      'pgd_eps0.02_w0.25_s1234']
  with pytest.raises(protocol.ExperimentError, match='unknown job.*naive_w0.25_s1234'):
    sweeps.sweep_jobs('capacity', 'cpu', ['naive_w0.25_s1234'])
  with pytest.raises(protocol.ExperimentError, match='no jobs in'):
    results.collect(os.path.join(os.path.dirname(__file__), 'no_such_root'))


def test_finished_jobs_are_skipped_and_max_minutes_launches_no_more(root, monkeypatch):
  def fail(*args, **kwargs):
    raise AssertionError('a finished or out-of-budget job was launched')

  monkeypatch.setattr(trainer, 'train', fail)
  monkeypatch.setattr(evaluation, 'evaluate', fail)
  jobs = sweeps.sweep_jobs('robustness_curve', 'tiny')
  status = sweeps.run_sweep(jobs, root, 'tiny', 'cifar10', num_examples=16, max_minutes=0)
  assert status == {j.name: 'skipped' if j.name in JOBS else 'not started' for j in jobs}
  assert sorted(d for d in os.listdir(root) if not d.startswith('.')) == JOBS


def test_a_job_evaluated_without_some_attacks_of_its_settings_is_evaluated_again(tmp_path,
                                                                                monkeypatch):
  """FGM-AT / PGD-AT jobs also need Figure 3's PGN attack and budgets: one evaluated before they
  joined the sweep is evaluated again (not retrained from scratch); a naive job is not."""
  _job_dir(tmp_path, 'naive', 0.8, results=_results(0.8, 0.2))
  fgm = _job_dir(tmp_path, 'fgm', 0.7, results=_results(0.7, 0.4), eps=0.5)
  calls = []
  monkeypatch.setattr(trainer, 'train', lambda cfg, run_dir, data_dir: calls.append(
      ('train', os.path.basename(run_dir))))
  monkeypatch.setattr(evaluation, 'evaluate', lambda cfg, run_dir, out, data_dir: calls.append(
      ('evaluate', os.path.basename(run_dir), cfg)))
  jobs = [j for j in sweeps.sweep_jobs('robustness_curve', 'cpu')
          if j.name in ('naive_w0.25_s1234', fgm)]
  assert len(jobs) == 2
  status = sweeps.run_sweep(jobs, str(tmp_path), 'cpu', 'cifar10')
  assert status == {'naive_w0.25_s1234': 'skipped', fgm: 'done'}
  (_, _), (_, name, cfg) = calls
  assert name == fgm and 'pgn' in cfg.attacks and cfg.eps_list == protocol.FIGURE3_EPS
  assert {'pgn_c_l4', 'pgd_eps0.25', 'cw', 'deepfool'} <= set(cfg.result_keys())
  # Figure 3's targets are the eps-0.5 classifiers: the other eps keep the common evaluation.
  other = next(j for j in sweeps.sweep_jobs('robustness_curve', 'cpu')
               if j.defense == 'pgd' and j.hparam_value != protocol.FIGURE3_TARGET_EPS)
  assert sweeps.eval_settings(other) == protocol.EVAL_SETTINGS
  # Its evaluation done, the job counts as finished.
  results = _results(0.7, 0.4)
  results['attacks'].update(dict.fromkeys(cfg.result_keys(), {}))
  (tmp_path / fgm / 'eval' / 'results.json').write_text(json.dumps(results))
  assert sweeps.run_sweep(jobs, str(tmp_path), 'cpu', 'cifar10') == dict.fromkeys(
      (j.name for j in jobs), 'skipped')


def test_a_job_that_fails_is_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch):
  """A job's own error (here a crash in its training) fails that job alone: its traceback in its
  folder, one line, the next job runs; a rerun retries it. A user error stops the sweep."""
  jobs = sweeps.sweep_jobs('table2', 'cpu')[:2]
  broken, fine = (j.name for j in jobs)
  crash = [True]

  def train(cfg, run_dir, data_dir):
    if os.path.basename(run_dir) == broken and crash[0]:
      raise RuntimeError('input depth must be evenly divisible by filter depth: 3 vs 32')

  monkeypatch.setattr(trainer, 'train', train)
  monkeypatch.setattr(evaluation, 'evaluate', lambda cfg, run_dir, out, data_dir: None)
  assert sweeps.run_sweep(jobs, str(tmp_path), 'cpu', 'cifar10') == {broken: 'failed',
                                                                      fine: 'done'}
  record = (tmp_path / broken / sweeps.FAILURE_FILE).read_text()
  assert 'Traceback' in record and 'RuntimeError: input depth must be' in record
  crash[0] = False
  assert sweeps.run_sweep(jobs, str(tmp_path), 'cpu', 'cifar10')[broken] == 'done'
  assert not (tmp_path / broken / sweeps.FAILURE_FILE).exists()

  def no_data(cfg, run_dir, data_dir):
    raise DataError('no CIFAR-10 in /nowhere')

  monkeypatch.setattr(trainer, 'train', no_data)
  with pytest.raises(DataError, match='no CIFAR-10'):
    sweeps.run_sweep(jobs, str(tmp_path / 'other'), 'cpu', 'cifar10')


def test_a_snapshot_whose_evaluation_fails_is_recorded_after_the_others_ran(tmp_path,
                                                                           monkeypatch):
  job = tmp_path / 'pgn_w0.25_s1234'
  (job / 'epochs').mkdir(parents=True)
  for epoch in (1, 2):
    (job / 'epochs' / f'epoch-{epoch}.index').write_text('')
  evaluated = []

  def evaluate(cfg, prefix, out, data_dir):
    if prefix.endswith('epoch-1'):
      raise ValueError('NaN logits')
    evaluated.append(os.path.basename(out))

  monkeypatch.setattr(evaluation, 'evaluate', evaluate)
  with pytest.raises(protocol.ExperimentError, match=r'1 snapshot evaluation\(s\) failed: '
                     r'pgn_w0.25_s1234 epoch 1 \(the traceback'):
    sweeps.evaluate_snapshots(str(tmp_path), {job.name: dict(attacks=('fgm',))}, 'cifar10')
  assert evaluated == ['epoch-2']
  assert 'ValueError: NaN logits' in (job / 'progress' / 'epoch-1' / sweeps.FAILURE_FILE
                                      ).read_text()


def test_a_failed_job_makes_the_command_line_fail_in_one_line_after_the_others(tmp_path):
  # A continued Linf job whose 15-epoch run was never trained fails before any training.
  proc = run_cli('-m', 'tf_pgn.experiments', 'linf', '--linf_sweep=linf_long',
                 f'--root={tmp_path}', '--jobs=pgn_eps16_w0.5_s1234_e25')
  errors = [l for l in proc.stderr.splitlines() if l.startswith('tf_pgn.experiments: error:')]
  assert proc.returncode == 2 and 'Traceback' not in proc.stderr, proc.stderr[-2000:]
  assert errors == ['tf_pgn.experiments: error: 1 job(s) failed: pgn_eps16_w0.5_s1234_e25 (the '
                    'traceback in each one\'s failed.txt); rerun the same command to retry them, '
                    'finished ones are skipped']
  assert ('pgn_eps16_w0.5_s1234_e25: failed: ExperimentError: pgn_eps16_w0.5_s1234_e25 trains '
          'pgn_eps16_w0.5_s1234 on: train that job to its end first' in proc.stdout)


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
  # Figure 5 left: a panel per PGN curve variant, beside the baselines; right: no job at a second
  # width.
  (panel,) = render.robustness_curves(rows)
  assert panel['title'] == 'PGN at width 0.0625'
  naive, curve = panel['series']
  assert (naive['label'], naive['texts']) == ('naive', [''])
  assert curve['label'] == 'PGN (labels: c_L)' and curve['texts'] == ['8']
  assert (curve['x'], curve['y']) == ([pgn['rho_cw_mean']], [pgn['test_acc']])
  assert figures.capacity_curves(rows) == []


def test_progress_runs_cw_on_each_epoch_snapshot_of_fgm_and_pgn_jobs(root, cifar10_dir):
  pgn = os.path.join(root, JOBS[1])
  assert [e for e, _ in results.snapshots(pgn)] == [1]
  done = sweeps.run_progress(root, 'cifar10', cifar10_dir, num_examples=16,
                                  eval_overrides=TINY_EVAL)
  assert done == {JOBS[1]: 1}  # the naive job is not one of PROGRESS_DEFENSES
  (row,) = results.progress(pgn)
  # The last epoch's snapshot is the evaluated classifier: the same C&W gives the same rho.
  with open(os.path.join(pgn, 'eval', 'results.json')) as f:
    final = json.load(f)
  assert row['epoch'] == 1 and row['num_examples'] == 16
  assert row['benign_accuracy'] == final['benign_accuracy']
  assert row['rho_cw_mean'] == pytest.approx(final['attacks']['cw']['whitebox']['rho_mean'],
                                             rel=1e-3)
  assert row['rho_cw_std_error'] > 0
  # C&W's accuracy at eps 0.5 is read off the snapshot's own curve (radius 0.5 is on its grid).
  with open(os.path.join(pgn, 'progress', 'epoch-1', 'results.json')) as f:
    curve = json.load(f)['attacks']['cw']['whitebox']['accuracy_vs_l2']
  assert row[results.CW_ACC_KEY] == curve['accuracy'][curve['radii'].index(0.5)]
  assert 0 <= row[results.CW_ACC_KEY] <= row['benign_accuracy']
  assert sweeps.run_progress(root, 'cifar10', cifar10_dir, num_examples=16,
                                  eval_overrides=TINY_EVAL) == {JOBS[1]: 0}


def test_progress_every_n_thins_the_snapshots_but_keeps_the_last(tmp_path):
  folder = tmp_path / 'epochs'
  folder.mkdir()
  for epoch in range(1, 16):
    (folder / f'epoch-{epoch}.index').write_text('')
  (folder / 'epoch-3.data-00000-of-00001').write_text('')  # not a snapshot's index
  assert [e for e, _ in results.snapshots(str(tmp_path))] == list(range(1, 16))
  thinned = results.snapshots(str(tmp_path), every=4)
  assert [e for e, _ in thinned] == [4, 8, 12, 15]
  assert thinned[-1][1] == os.path.join(str(folder), 'epoch-15')
  assert [e for e, _ in results.snapshots(str(tmp_path), every=5)] == [5, 10, 15]
  assert results.snapshots(str(tmp_path / 'none'), every=2) == []


def test_report_command_line_on_a_real_sweep(root, tmp_path):
  out, path = tmp_path / 'results', tmp_path / 'docs' / 'REPRODUCTION.md'
  proc = run_cli('-m', 'tf_pgn.experiments', 'report', f'--root={root}', f'--out={out}',
                 f'--report={path}')
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.strip().endswith(f'done: {path}')
  folder = out / os.path.basename(root)
  for job in JOBS:
    for name in ('config.json', 'metrics.jsonl', 'eval/results.json', 'eval/results.md',
                 'eval/accuracy_vs_l2.png'):
      assert (folder / job / name).is_file(), name
  assert sorted(p.name for p in (folder / JOBS[0]).rglob('*')) == [
      'accuracy_vs_l2.png', 'config.json', 'eval', 'metrics.jsonl', 'results.json', 'results.md']
  text = path.read_text()
  assert f'python -m tf_pgn.experiments report --root={root}' in text
  assert '![benign accuracy against rho_cw](../results/' in text
  # No FGM-AT / PGD-AT job, no bench.json: claims 1, 4 and 5 for each PGN curve variant, claim 3
  # for two attack variants, and claim 2.
  assert text.count('**not measured yet**') == NUM_VERDICTS
  # The time line sums what the jobs' files record.
  training = sum(json.loads(line)['epoch_seconds'] for job in JOBS
                 for line in open(os.path.join(root, job, 'metrics.jsonl')))
  evaluating = sum(json.load(open(os.path.join(root, job, 'eval', 'results.json')))['seconds']
                   for job in JOBS)
  hours = results.load(root).recorded_hours()
  assert hours['training'] == pytest.approx(training / 3600) and training > 0
  assert hours['evaluation'] == pytest.approx(evaluating / 3600) and evaluating > 0
  assert f'Time the jobs record: training {training / 3600:.2f} h' in text


def test_a_cifar100_sweep_trains_evaluates_and_reports(tmp_path):
  """CIFAR-100 is not on these machines: an archive in its official layout (random images)
  goes through the same run and report commands as CIFAR-10."""
  rng = np.random.default_rng(3)
  write_cifar100(str(tmp_path / 'data'), train=cifar100_dict(256, rng), rng=rng, test_size=128)
  root, job = str(tmp_path / 'cifar100_tiny'), 'pgn_c_l50_w0.0625_s1234'
  status = sweeps.run_sweep(sweeps.sweep_jobs('table2', 'tiny', [job]), root, 'tiny',
                                 'cifar100', str(tmp_path / 'data'), num_examples=16,
                                 eval_overrides=TINY_EVAL)
  assert status == {job: 'done'}
  path = tmp_path / 'REPRODUCTION_cifar100.md'
  proc = run_cli('-m', 'tf_pgn.experiments', 'report', '--dataset=cifar100', f'--root={root}',
                 f'--out={tmp_path / "results"}', f'--report={path}')
  assert proc.returncode == 0, proc.stderr[-2000:]
  (row,) = json.loads((tmp_path / 'results' / 'cifar100_tiny' / 'summary.json').read_text())[
      'jobs']
  assert (row['job'], row['dataset'], row['status']) == (job, 'cifar100', 'evaluated')
  with open(os.path.join(root, job, 'eval', 'results.json')) as f:
    assert json.load(f)['dataset'] == 'cifar100'
  assert '# Reproduction report: cifar100_tiny' in path.read_text()


# -- report verdicts on synthetic job folders ------------------------------------------------
def _results(benign, rho, budgets=None, pgn=(), autoattack=None):
  """eval/results.json's structure: C&W rho, {attack: {eps: accuracy}}, PGN (c_L, L2, acc) with
  the raw G input of a results.json that predates the field, the AutoAttack-style accuracy."""
  budgets = budgets or {a: {0.02: benign, 0.5: benign / 2} for a in ('fgm', 'mim', 'pgd')}
  curve = dict(radii=[0.0, 0.5, 1.0], accuracy=[benign, benign / 2, 0.0])
  attacks = {'cw': dict(attack='cw', whitebox=dict(accuracy=0.0, mean_l2=rho, rho_mean=rho,
                                                   rho_median=rho, success_rate=1.0,
                                                   accuracy_vs_l2=curve)),
             'deepfool': dict(attack='deepfool', whitebox=dict(accuracy=0.0, mean_l2=rho,
                                                               rho_mean=rho))}
  for attack, accs in budgets.items():
    for eps, acc in accs.items():
      attacks[f'{attack}_eps{eps:g}'] = dict(attack=attack, eps=eps,
                                             whitebox=dict(accuracy=acc, mean_l2=eps))
  if autoattack is not None:
    attacks['autoattack_eps0.5'] = dict(attack='autoattack', eps=0.5,
                                        whitebox=dict(accuracy=autoattack, mean_l2=0.5))
  settings = {a: dict(budgets=[{'eps': e} for e in accs], steps=100)
              for a, accs in budgets.items()}
  if autoattack is not None:  # as evaluated before FAB-T joined the worst case
    settings['autoattack'] = dict(budgets=[{'eps': 0.5}], order=['apgd_ce', 'apgd_t', 'square'])
  results = dict(dataset='cifar10', num_examples=1000, benign_accuracy=benign, attacks=attacks,
                 attack_settings=settings, checks=[])
  return _with_pgn(results, pgn)


def _with_pgn(results, pgn, grad_input=None, eps=None):
  """``results`` with PGN attacks (c_L, mean L2, accuracy) of G input ``grad_input`` (None: the
  field absent) and L2 budget ``eps``, keyed as evaluate.py keys them."""
  for c_l, l2, acc in pgn:
    budget = dict(c_l=c_l, **({} if eps is None else dict(eps=eps)))
    key = 'pgn' + ''.join(f'_{k}{v:g}' for k, v in budget.items())
    results['attacks'][key] = dict(attack='pgn', **budget, whitebox=dict(accuracy=acc,
                                                                          mean_l2=l2))
    settings = results['attack_settings'].setdefault('pgn', dict(budgets=[]))
    settings['budgets'].append(budget)
    if grad_input:
      settings['grad_input'] = grad_input
  return results


def _pgn_eval(root, job, folder, benign, pgn, grad_input, eps=None):
  """<job>/<folder>/results.json as `evaluate.py --attacks=pgn --pgn_grad_input=...` writes it."""
  results = _with_pgn(dict(dataset='cifar10', num_examples=1000, benign_accuracy=benign,
                           attacks={}, attack_settings={}, checks=[], seconds=360.0),
                      pgn, grad_input, eps)
  (root / job / folder).mkdir()
  (root / job / folder / 'results.json').write_text(json.dumps(results))
  (root / job / folder / 'results.md').write_text('# PGN attack\n')


def _job_dir(root, defense, test_acc, probe=(0.3, 0.3), results=None, trained=True,
             width=0.25, seed=1234, through_adv=False, grad_input='raw', levers=None, **hparam):
  """A job folder as the trainer and the evaluation leave it, checkpoint and export included;
  ``levers``: other VARIANT_FIELDS."""
  fields = dict(pgn_grad_input=grad_input, pgn_grad_through_adv=through_adv, **(levers or {}))
  variant = tuple((k, v) for k, v in fields.items() if v != protocol.paper_value(k, {}))
  # Every variant field given, as the sweeps' jobs give them (today's defaults are not the paper's).
  job = sweeps.Job(defense, protocol.HPARAMS[defense], hparam and next(iter(hparam.values())),
                   width, seed, variant)
  cfg, name = job.train_config('cpu', 'cifar10'), job.name
  run_dir = root / name
  (run_dir / 'ckpt').mkdir(parents=True)
  (run_dir / 'ckpt' / 'ckpt-1.index').write_bytes(b'weights')
  (run_dir / 'config.json').write_text(cfg.to_json())
  epochs = [dict(epoch=i + 1, test_acc=test_acc - 0.1 * (len(probe) - 1 - i),
                 epoch_seconds=10.0 * (1 + len(name)), resumed_mid_epoch=False,
                 **{'probe_pgd0.5_acc': p}) for i, p in enumerate(probe)]
  (run_dir / 'metrics.jsonl').write_text(''.join(json.dumps(e) + '\n' for e in epochs))
  if trained:
    (run_dir / 'export' / 'classifier').mkdir(parents=True)
    (run_dir / 'export' / 'classifier' / 'saved_model.pb').write_bytes(b'model')
  if results:
    (run_dir / 'eval').mkdir()
    (run_dir / 'eval' / 'results.json').write_text(json.dumps(results))
  return name


def _sweep(root, paper_holds: bool):
  """Figure 5 curves, the seed spread of one job per curve, FGM-AT probe, a PGN attack, capacity
  and bench.json in which each claim of the paper holds clearly (or clearly fails)."""
  root.mkdir()
  _job_dir(root, 'naive', 0.80, results=_results(0.8, 0.2))
  fgm_probe = (0.4, 0.3, 0.2) if paper_holds else (0.2, 0.25, 0.3)
  for eps, acc, rho in ((0.1, 0.78, 0.30), (0.5, 0.70, 0.50)):
    _job_dir(root, 'pgd', acc, results=_results(acc, rho + 0.01), eps=eps)
    pgn = [(0.25, 3.0, 0.1), (1.0, 0.25, 0.30 if paper_holds else 0.65)] if eps == 0.5 else []
    budgets = {'fgm': {0.02: 0.69, 0.5: 0.40}, 'mim': {0.02: 0.69, 0.5: 0.4},
               'pgd': {0.02: 0.69, 0.5: 0.35}}
    _job_dir(root, 'fgm', acc, fgm_probe, _results(acc, rho, budgets, pgn), eps=eps)
  pgn_rho = 0.44 if paper_holds else 0.14
  for c_l, acc, rho in ((8.0, 0.79, pgn_rho), (2.0, 0.72, 0.70 if paper_holds else 0.40)):
    _job_dir(root, 'pgn', acc, results=_results(acc, rho), c_l=c_l)
  for seed, delta in ((1235, 0.005), (1236, -0.005)):  # rho_cw std 0.005 on each curve
    _job_dir(root, 'fgm', 0.78, fgm_probe, _results(0.78, 0.30 + delta), seed=seed, eps=0.1)
    _job_dir(root, 'pgd', 0.78, results=_results(0.78, 0.31 + delta), seed=seed, eps=0.1)
    _job_dir(root, 'pgn', 0.79, results=_results(0.79, pgn_rho + delta), seed=seed, c_l=8.0)
  for width, rho in ((0.125, 0.3), (0.5, 0.6)):
    _job_dir(root, 'pgn', 0.79, results=_results(0.79, rho if paper_holds else 0.9 - rho),
             c_l=8.0, width=width)
  ms = (100.0, 200.0, 400.0) if paper_holds else (400.0, 200.0, 100.0)
  (root / 'bench.json').write_text(json.dumps(dict(
      width=0.25, batch_size=128, device='CPU', jit_compile=False,
      steps={d: dict(defense=d, ms_per_step=t, images_per_second=128e3 / t)
             for d, t in zip(('fgm', 'pgn', 'pgd10'), ms)})))
  return str(root)


def _verdicts(study) -> dict:
  return {(n, q): v for n, q, v in render.verdicts(study)}


PAPER_ROWS = [(1, 'raw G input'), (2, ''), (3, 'raw G input'), (4, 'raw G input'),
              (5, 'raw G input')]


@pytest.mark.parametrize('paper_holds', [True, False])
def test_report_verdicts_follow_their_rules(tmp_path, paper_holds):
  verdicts = _verdicts(render.Study.load(_sweep(tmp_path / 'sweep', paper_holds)))
  expected = 'reproduced' if paper_holds else 'not reproduced'
  assert [verdicts[k].verdict for k in PAPER_ROWS] == [expected] * 5, verdicts
  # Compared at the top (0.78) and bottom (0.72) of the common accuracies, FGM-AT interpolated.
  claim1 = verdicts[1, 'raw G input'].why
  assert 'accuracy 0.720 rho_cw is PGN' in claim1
  assert 'FGM-AT 0.450, PGD-AT 0.460' in claim1 and 'accuracy 0.780' in claim1
  assert 'Seed std of rho_cw: PGN 0.005, FGM-AT 0.005, PGD-AT 0.005' in claim1
  assert 'c_L=0.25 (mean L2 3.000)' in verdicts[3, 'raw G input'].why  # beyond the budgets
  # No normalized PGN job and no eval_pgn_* folder: the best variant's rows say what to run.
  assert '--sweep=normalized_curve' in verdicts[1, 'normalized G input'].why
  assert ('tf_pgn.experiments figure3 --jobs=pgd_eps0.5_w0.25_s1234 --variants=normalized' in
          verdicts[3, 'normalized G input'].why)
  assert '--sweep=normalized_capacity' in verdicts[4, 'normalized G input'].why
  assert {v.verdict for k, v in verdicts.items() if k not in PAPER_ROWS} == {'not measured yet'}
  # Claim 5 for the best variant reads its own bench.json step.
  bench = json.loads((tmp_path / 'sweep' / 'bench.json').read_text())
  bench['steps']['pgn:normalized'] = dict(defense='pgn:normalized', ms_per_step=210.0,
                                          images_per_second=128e3 / 210.0)
  (tmp_path / 'sweep' / 'bench.json').write_text(json.dumps(bench))
  speed = _verdicts(render.Study.load(str(tmp_path / 'sweep')))[5, 'normalized G input']
  assert speed.verdict == expected, speed
  assert f'PGN (normalized) 210, PGD-AT {400 if paper_holds else 100}.' in speed.why


def test_capacity_at_fewer_widths_than_the_sweep_is_at_most_partly(tmp_path):
  root = _sweep(tmp_path / 'sweep', True)
  shutil.rmtree(os.path.join(root, 'pgn_c_l8_w0.5_s1234'))
  verdict = _verdicts(render.Study.load(root))[4, 'raw G input']
  assert verdict.verdict == 'partly', verdict
  assert 'Only 2 of the 3 widths' in verdict.why and '--sweep=capacity' in verdict.why


def test_balancing_interpolates_each_curve_at_common_benign_accuracies(tmp_path):
  study = render.Study.load(_sweep(tmp_path / 'sweep', True))
  sweep = study.sweep
  # Curves at width 0.25: FGM-AT and PGD-AT 0.70-0.78, PGN 0.72-0.79; overlap 0.72-0.78.
  assert claims.balance_levels([sweep.curve(d) for d in ('fgm', 'pgd', 'pgn')]) == pytest.approx(
      [0.78, 0.75, 0.72])
  rows = sweep.curve('fgm')  # the seed-1234 jobs, by test accuracy
  fgm = claims.balanced(rows, 0.75, sweep.cw_curves())
  # 0.75 lies 5/8 of the way from eps 0.5 (acc 0.70, rho 0.50) to eps 0.1 (acc 0.78, rho 0.30).
  assert fgm['rho_cw_mean'] == pytest.approx(0.375)
  assert fgm['pgd_eps0.02_acc'] == pytest.approx(0.69)
  assert fgm['cw_curve']['accuracy'] == pytest.approx([0.75, 0.375, 0.0])
  assert fgm['jobs'] == '0.38 x FGM-AT eps=0.5 (0.700) + 0.62 x FGM-AT eps=0.1 (0.780)'
  assert claims.balanced(rows, 0.65) is None  # beyond the curve by more than ACC_TOL
  # The naive network (0.80) is at none of the levels; its own row joins when it is.
  assert list(render.balanced_at(study, 0.75)) == ['FGM-AT', 'PGD-AT', 'PGN']
  assert render.balanced_at(study, 0.795)['naive']['jobs'] == 'naive (0.800)'


def test_fgm_claim_reads_rho_cw_at_the_epoch_snapshots_before_the_probe(tmp_path):
  root = tmp_path / 'sweep'
  root.mkdir()
  job = _job_dir(root, 'fgm', 0.8, probe=(0.5, 0.4, 0.2), results=_results(0.8, 0.3), eps=0.02)
  assert _verdicts(render.Study.load(str(root)))[2, ''].verdict == 'reproduced'  # probe falls
  # C&W at the snapshots: rho_cw rises 0.30 -> 0.34 (standard errors 0.01): not reproduced.
  for epoch, rho in ((1, 0.30), (2, 0.32), (3, 0.34)):
    (root / job / 'epochs').mkdir(exist_ok=True)
    (root / job / 'epochs' / f'epoch-{epoch}.index').write_bytes(b'')
    results = _results(0.8, rho)
    results['attacks']['cw']['whitebox']['rho_std_error'] = 0.01
    (root / job / 'progress' / f'epoch-{epoch}').mkdir(parents=True)
    (root / job / 'progress' / f'epoch-{epoch}' / 'results.json').write_text(json.dumps(results))
  verdict = _verdicts(render.Study.load(str(root)))[2, '']
  assert verdict.verdict == 'not reproduced', verdict
  assert 'rho_cw 0.340 at epoch 3' in verdict.why and 'a fall of 0.000' in verdict.why


def test_the_long_schedule_root_adds_a_claim2_verdict_and_its_section_and_regenerates(tmp_path):
  main, long = tmp_path / 'sweep', tmp_path / 'runs_long'
  main.mkdir()
  long.mkdir()
  _job_dir(main, 'naive', 0.8, results=_results(0.8, 0.2))
  # FGM-AT's rho_cw at the snapshots peaks at epoch 2 and falls by 0.2 (standard errors 0.01)
  # while its test accuracy rises: reproduced; PGN's holds.
  fgm = _job_dir(long, 'fgm', 0.8, probe=(0.3, 0.4, 0.3), results=_results(0.8, 0.5), eps=0.5)
  pgn = _job_dir(long, 'pgn', 0.7, probe=(0.3, 0.3, 0.3), results=_results(0.7, 0.9), c_l=2.0)
  for job, rhos in ((fgm, (0.6, 0.7, 0.5)), (pgn, (0.9, 0.9, 0.9))):
    for epoch, rho in enumerate(rhos, 1):
      (long / job / 'epochs').mkdir(exist_ok=True)
      (long / job / 'epochs' / f'epoch-{epoch}.index').write_bytes(b'')
      results = _results(0.8, rho)
      results['attacks']['cw']['whitebox']['rho_std_error'] = 0.01
      (long / job / 'progress' / f'epoch-{epoch}').mkdir(parents=True)
      (long / job / 'progress' / f'epoch-{epoch}' / 'results.json').write_text(
          json.dumps(results))
  out, path = tmp_path / 'results', tmp_path / 'docs' / 'R.md'
  render.write_report(str(main), str(out), str(path), long_root=str(long))
  text = path.read_text()
  epochs = json.loads((long / fgm / 'config.json').read_text())['epochs']
  row = next(line for line in text.splitlines()
             if line.startswith(f'| 2 (long schedule: {epochs} epochs, width 0.25) |'))
  assert '**reproduced**' in row and 'rho_cw 0.700 at epoch 2' in row, row
  assert f'{pgn} 0.000' in row  # the others' falls
  assert text.count('| 2 ') >= 2 and '## Claim 2 on a long schedule' in text
  section = text.split('## Claim 2 on a long schedule')[1].split('\n## ')[0]
  assert f'run --sweep=long_schedule --root={long}' in section
  # test acc / probe / rho_cw / C&W's accuracy at eps 0.5 (_results' curve: half the benign 0.8)
  assert '| 2 | 0.700 / 0.400 / 0.700 / 0.400 | 0.600 / 0.300 / 0.900 / 0.400 |' in section
  assert '| 1 | 0.600 / 0.300 / 0.600 / 0.400 |' in section
  assert '](../results/runs_long/training_progress.png)' in section
  copy = out / 'runs_long'
  assert json.loads((copy / 'summary.json').read_text())['root'] == str(long)
  assert (copy / fgm / 'progress' / 'epoch-3' / 'results.json').is_file()
  # From the copy alone, the same report: its commands still name the root it came from.
  shutil.rmtree(long)
  render.write_report(str(main), str(out), str(path), long_root=str(copy))
  assert path.read_text() == text


def test_ablations_stay_off_the_curves_and_are_compared_with_their_twins(tmp_path):
  jobs = sweeps.sweep_jobs('through_adv', 'cpu')
  assert [j.name for j in jobs] == ['pgn_c_l8_w0.25_s1234', 'pgn_c_l8_w0.25_s1234_through_adv']
  assert [j.train_config('cpu', 'cifar10').pgn_grad_through_adv for j in jobs] == [False, True]
  levers = sweeps.sweep_jobs('levers', 'cpu')
  assert [j.name for j in levers] == [
      'pgn_c_l2_w0.25_s1234_normalized_zero_init', 'pgn_c_l2_w0.25_s1234_normalized_gen_steps2',
      'pgn_c_l2_w0.25_s1234_normalized_gen_lr0.004',
      'pgn_c_l0.01_w0.25_s1234_normalized_pgn_eps0.25']
  # G's learning rate: the paper's is the classifier's, at every preset.
  assert [(c.lr, c.gen_lr) for c in (j.train_config('cpu', 'cifar10') for j in levers)] == [
      (2e-3, 2e-3), (2e-3, 2e-3), (2e-3, 4e-3), (2e-3, 2e-3)]
  paper = sweeps.sweep_jobs('table2', 'paper')[2].train_config('paper', 'cifar10', lr=1e-3)
  assert (paper.lr, paper.gen_lr, protocol.variant_name(dataclasses.asdict(paper))) == (
      1e-3, 1e-3, '')
  root = _sweep(tmp_path / 'sweep', True)
  ablation = _job_dir(tmp_path / 'sweep', 'pgn', 0.75, results=_results(0.75, 0.9), c_l=8.0,
                      through_adv=True)
  # A lever on the normalized G input: its twin is the normalized job, not the raw one.
  normalized = _job_dir(tmp_path / 'sweep', 'pgn', 0.72, results=_results(0.72, 0.6), c_l=2.0,
                        grad_input='normalized')
  gen2 = _job_dir(tmp_path / 'sweep', 'pgn', 0.70, results=_results(0.70, 0.65), c_l=2.0,
                  grad_input='normalized', levers=dict(pgn_gen_steps=2))
  gen_lr = _job_dir(tmp_path / 'sweep', 'pgn', 0.71, results=_results(0.71, 0.62), c_l=2.0,
                    grad_input='normalized', levers=dict(gen_lr=4e-3))
  ball = _job_dir(tmp_path / 'sweep', 'pgn', 0.75, results=_results(0.75, 0.5), c_l=0.01,
                  grad_input='normalized', levers=dict(pgn_eps=0.25))
  # Normalized + zero-init is a curve of its own (the lever's job its c_L 2 point), no ablation.
  zero_init = _job_dir(tmp_path / 'sweep', 'pgn', 0.71, results=_results(0.71, 0.7), c_l=2.0,
                       grad_input='normalized', levers=dict(pgn_zero_init=True))
  sweep = results.load(root)
  assert [r['job'] for r in sweep.ablation] == [ball, gen_lr, gen2, ablation]
  assert [r['job'] for r in sweep.curve('pgn', 'normalized_zero_init')] == [zero_init]
  assert sweep.twin(next(r for r in sweep.rows if r['job'] == ball)) == (None, {})
  assert sweep.twin(next(r for r in sweep.rows if r['job'] == gen2))[0]['job'] == normalized
  assert ablation not in [r['job'] for r in sweep.curve('pgn')]
  drawn = {(x, y) for panel in render.robustness_curves(results.collect(root))
           for s in panel['series'] for x, y in zip(s['x'], s['y'])}
  assert (0.44, 0.79) in drawn and (0.9, 0.75) not in drawn
  heading = '## Ablations: one change to PGN at a time'
  section = _section(root, tmp_path, heading)
  assert '| pgn_c_l8_w0.25_s1234 | twin | evaluated | 0.790 | 0.440 / 0.440 |' in section
  assert (f'| {ablation} | --pgn_grad_through_adv | evaluated | 0.750 | 0.900 / 0.900 |'
          in section)
  assert f'| {gen2} | --pgn_gen_steps=2 | evaluated | 0.700 | 0.650 / 0.650 |' in section
  # Two levers on one twin: one row of the twin, the levers right under it.
  jobs = [line.split(' | ')[0][2:] for line in section.splitlines() if line.startswith('| pgn')]
  assert jobs.count(normalized) == 1, jobs
  assert jobs[jobs.index(normalized):jobs.index(normalized) + 3] == [normalized, gen_lr, gen2]
  assert '`--pgn_gen_steps=2`: PGN: generator updates per classifier update.' in section
  # The twin's three seeds (rho_cw 0.44 -+ 0.005) give its spread.
  assert ('PGN c_L=8 at width 0.25: `--pgn_grad_through_adv` changes test acc by -0.040, '
          'rho_cw mean by +0.460, PGD eps 0.5 acc by -0.020. The twin\'s seed spread over 3 '
          'seeds (sample std): test acc 0.000, rho_cw mean 0.005, PGD eps 0.5 acc 0.000.'
          ) in section
  assert ('PGN (normalized) c_L=2 at width 0.25: `--pgn_gen_steps=2` changes test acc by -0.020, '
          'rho_cw mean by +0.050, PGD eps 0.5 acc by -0.010.\n') in section
  # Each curve interpolated linearly at 0.75 between its jobs around it (e.g. PGN: c_L 2 at
  # 0.72 / rho 0.70 and c_L 8 at 0.79 / rho 0.44 give 0.589).
  assert ('PGN (through_adv) c_L=8: at its test acc 0.750 the curves above interpolate to '
          'rho_cw / PGD eps 0.5 acc of FGM-AT 0.375 / 0.350, PGD-AT 0.385 / 0.375, PGN (the '
          'twin\'s) 0.589 / 0.375; with `--pgn_grad_through_adv`: 0.900 / 0.375.') in section
  # A job no curve job differs from in VARIANT_FIELDS only (another c_L): no twin, its changes
  # from the paper's PGN, read against the curves.
  assert (f'| {ball} | --pgn_grad_input=normalized, --pgn_eps=0.25 | evaluated | 0.750 | '
          '0.500 / 0.500 |') in section
  assert ('PGN (normalized_pgn_eps0.25) c_L=0.01: at its test acc 0.750 the curves above '
          'interpolate to rho_cw / PGD eps 0.5 acc of FGM-AT 0.375 / 0.350, PGD-AT 0.385 / 0.375, '
          'PGN 0.589 / 0.375; with `--pgn_grad_input=normalized, --pgn_eps=0.25`: 0.500 / '
          '0.375.') in section
  assert 'Step time' not in section  # bench.json without a pgn:through step
  bench = json.loads((tmp_path / 'sweep' / 'bench.json').read_text())
  for step, ms in (('pgn:through', 300.0), ('pgn:normalized', 210.0),
                   ('pgn:normalized_gen2', 315.0)):
    bench['steps'][step] = dict(defense=step, ms_per_step=ms, images_per_second=128e3 / ms)
  (tmp_path / 'sweep' / 'bench.json').write_text(json.dumps(bench))
  section = _section(root, tmp_path, heading)
  assert 'pgn 200.0 ms, pgn:through (--pgn_grad_through_adv) 300.0 ms (1.50x)' in section
  assert ('pgn:normalized 210.0 ms, pgn:normalized_gen2 (--pgn_gen_steps=2) 315.0 ms (1.50x)'
          in section)


def test_bench_steps_of_the_study_set_the_fields_of_their_pgn_variant():
  proc = run_cli('-c', 'from tf_pgn import bench; from tf_pgn.study import protocol as p; '
                 'print(all(p.variant_name(bench.PGN_VARIANTS.get(s.partition(":")[2], {})) == v '
                 'for v, s in p.BENCH_PGN_STEPS.items()))')
  assert proc.returncode == 0 and proc.stdout.split()[-1] == 'True', proc.stderr[-2000:]


def test_report_marks_missing_data_and_pending_jobs(tmp_path):
  root = tmp_path / 'sweep'
  root.mkdir()
  _job_dir(root, 'naive', 0.8, results=_results(0.8, 0.2))
  _job_dir(root, 'pgd', 0.7, results=_results(0.7, 0.5), eps=0.5)
  _job_dir(root, 'pgn', 0.7, c_l=8.0)  # trained, not evaluated
  fgm = _job_dir(root, 'fgm', 0.7, probe=(), trained=False, eps=0.5)  # no epoch yet
  verdicts = _verdicts(render.Study.load(str(root), '--root=R'))
  assert [v.verdict for v in verdicts.values()] == ['not measured yet'] * NUM_VERDICTS, verdicts
  assert 'run --sweep=robustness_curve --root=R' in verdicts[1, 'raw G input'].why
  claim3 = verdicts[3, 'raw G input'].why
  assert 'evaluate.py --ckpt=' in claim3 and '--attacks=fgm,mim,pgd,pgn' in claim3
  assert 'experiments speed --root=R' in verdicts[5, 'raw G input'].why
  path = tmp_path / 'REPRODUCTION.md'
  render.write_report(str(root), str(tmp_path / 'results'), str(path))
  assert f'{fgm} (training, epoch 0 of 6); pgn_c_l8_w0.25_s1234 (trained' in path.read_text()
  with pytest.raises(protocol.ExperimentError, match='no jobs in'):
    render.write_report(str(tmp_path / 'results'), str(tmp_path / 'x'), str(path))


def _section(root, tmp_path, heading):
  """The report's section under ``heading`` (up to the next section)."""
  path = tmp_path / 'section' / 'R.md'
  render.write_report(root, str(tmp_path / 'section'), str(path))
  text = path.read_text()
  return text[text.index(heading):].split('\n## ')[0]


def test_report_copies_small_files_only_and_keeps_the_notes(tmp_path):
  root = _sweep(tmp_path / 'sweep', True)
  out, path = tmp_path / 'results', tmp_path / 'docs' / 'REPRODUCTION.md'
  render.write_report(root, str(out), str(path))
  folder = out / 'sweep'
  copied = {str(p.relative_to(folder)) for p in folder.rglob('*') if p.is_file()}
  assert {'summary.json', 'summary.csv', 'bench.json', 'robustness_curves.png',
          'training_progress.png', 'balanced_cw.png', 'pgn_attack.png',
          'naive_w0.25_s1234/eval/results.json',
          'naive_w0.25_s1234/metrics.jsonl'} <= copied
  assert not [p for p in copied if 'ckpt' in p or 'export' in p or p.startswith('.tmp')]
  text = path.read_text()
  assert text.count('**reproduced**') == 5 and 'training_progress.png)' in text
  notes = '<!-- notes -->\nThe PGD-AT eps 0.5 job ran twice.\n<!-- /notes -->'
  path.write_text(re.sub('<!-- notes -->.*<!-- /notes -->', notes,
                         text.replace('## Verdicts', '## Stale'), flags=re.S))
  render.write_report(root, str(out), str(path))
  assert path.read_text() == text.replace(text[text.index('<!-- notes -->'):
                                               text.index('<!-- /notes -->') + 15], notes)


def _variant_sweep(root):
  """_sweep (the paper's claims hold) with the normalized PGN curve (one seed), the normalized
  PGN attack and one with an L2 budget on FGM-AT eps 0.5, and an AutoAttack-style result."""
  _sweep(root, True)
  for c_l, acc, rho in ((2.0, 0.71, 0.90), (8.0, 0.76, 0.70), (32.0, 0.79, 0.50)):
    _job_dir(root, 'pgn', acc, results=_results(acc, rho, autoattack=0.2 if c_l == 2 else None),
             c_l=c_l, grad_input='normalized')
  fgm = 'fgm_eps0.5_w0.25_s1234'
  _pgn_eval(root, fgm, 'eval_pgn_normalized', 0.70, [(2.0, 0.3, 0.40), (4.0, 0.1, 0.55)],
            'normalized')
  _pgn_eval(root, fgm, 'eval_pgn_normalized_eps0.5', 0.70, [(2.0, 0.45, 0.30)], 'normalized',
            eps=0.5)
  return str(root)


def test_the_report_judges_the_best_pgn_variant_and_each_pgn_attack_variant(tmp_path):
  root = _variant_sweep(tmp_path / 'sweep')
  study = render.Study.load(root, '--root=R')
  attacks = study.sweep.pgn_attacks['fgm_eps0.5_w0.25_s1234']
  assert {v: a['folder'] for v, a in attacks.items()} == {
      'raw': 'eval', 'normalized': 'eval_pgn_normalized',
      'normalized_eps0.5': 'eval_pgn_normalized_eps0.5'}
  verdicts = _verdicts(study)
  assert [verdicts[k].verdict for k in PAPER_ROWS] == ['reproduced'] * 5
  # The normalized curve (0.71-0.79) beats both baselines, but its seed spread is unmeasured.
  best = verdicts[1, 'normalized G input']
  assert best.verdict == 'partly', best
  assert 'rho_cw is PGN (normalized) 0.567, FGM-AT 0.300, PGD-AT 0.310' in best.why
  assert ('Seed spread not measured on 3 seeds for PGN (normalized) (at most partly): run '
          '`python -m tf_pgn.experiments run --sweep=seeds --root=R`') in best.why
  # Of the other attack variants the normalized one lies farthest below FGM / PGD.
  assert verdicts[3, 'normalized G input'].verdict == 'reproduced'
  assert 'fgm_eps0.5_w0.25_s1234, c_L=4 at mean L2 0.100: PGN 0.550, FGM 0.642, PGD 0.633' in (
      verdicts[3, 'normalized G input'].why)
  assert verdicts[4, 'normalized G input'].verdict == 'not measured yet'
  out, path = tmp_path / 'results', tmp_path / 'R.md'
  render.write_report(root, str(out), str(path), root_text='runs/sweeps/x')
  text = path.read_text()
  for row in ('| 1 (raw G input) | PGN is more robust', '| 1 (normalized G input) | PGN is more',
              '| 3 (normalized G input) |', '| 4 (normalized G input) |'):
    assert row in text, row
  assert '### PGN attack, normalized G input (eval_pgn_normalized/)' in text
  assert 'raw in each job\'s eval/, others in `eval_pgn_<variant>/`' in text
  assert ('| fgm_eps0.5_w0.25_s1234 | 2 | 0.50 | 0.450 | 0.300 | 0.430 | 0.385 | yes |'
          in text)  # the variant with an L2 budget of 0.5
  assert 'Strongest PGN attack variant: raw G input' in text
  assert '| 0.780 | PGN (normalized) | 0.33 x PGN (normalized) c_L=8 (0.760)' in text
  assert '| pgn_c_l2_w0.25_s1234_normalized | evaluated | PGN (normalized) c_L=2 |' in text
  assert '| 0.200 | - |' in text  # the AutoAttack-style column beside PGD-100
  assert ('| fgm_eps0.1_w0.25_s* | 1234, 1235, 1236 | 0.780 ± 0.000 (0.780-0.780) | '
          '0.300 ± 0.005 (0.295-0.305) |') in text
  assert 'PGN (normalized) c_L=2: 1 of 3; PGD-AT eps=0.25: 0 of 3.' in text
  assert '`python -m tf_pgn.experiments run --sweep=normalized_capacity --root=runs/sweeps/x`' in (
      text)
  folder = out / 'sweep' / 'fgm_eps0.5_w0.25_s1234'
  assert {p.name for p in (folder / 'eval_pgn_normalized').iterdir()} == {'results.json',
                                                                          'results.md'}
  summary = json.loads((out / 'sweep' / 'summary.json').read_text())['jobs']
  assert {r['job']: r['autoattack_eps0.5_acc'] for r in summary
          if r['autoattack_eps0.5_acc'] is not None} == {'pgn_c_l2_w0.25_s1234_normalized': 0.2}


def test_generated_text_holds_no_machine_paths(tmp_path):
  """The report quotes the root as given and the data's provenance without its paths; only the
  notes block is free text."""
  root = _sweep(tmp_path / 'sweep', True)
  data = os.path.join(os.path.expanduser('~'), '.cache', 'tf_pgn', 'cifar-10-batches-py')
  for job in os.listdir(root):
    path = os.path.join(root, job, 'eval', 'results.json')
    if os.path.isfile(path):
      results = json.load(open(path))
      results['data'] = dict(fingerprint='f', provenance=(
          f'unverified: {data} is not the official files and has no checksums.md5'))
      json.dump(results, open(path, 'w'))
  path = tmp_path / 'R.md'
  proc = run_cli('-m', 'tf_pgn.experiments', 'report', f'--root={root}', '--data_dir=~/data',
                 f'--out={tmp_path / "results"}', f'--report={path}')
  assert proc.returncode == 0, proc.stderr[-2000:]
  text = path.read_text().replace(str(tmp_path), 'TMP')
  assert 'not the official files and not pinned by checksums' in text
  assert '--data_dir=~/data' in text
  for machine in (os.path.expanduser('~'), socket.gethostname(), platform.processor() or '~~'):
    assert machine not in text, machine


def test_figure_labels_do_not_collide_and_the_legend_is_below_the_panels(tmp_path):
  # Five curves whose first points crowd one corner, as the top of the robustness curves do.
  fig, (ax,) = drawing.figure(1)
  labels = {ax: []}
  for i in range(5):
    look = drawing.style(f'curve {i}', [f'curve {j}' for j in range(5)])
    x, y = [0.37 + 0.004 * i, 0.5 + 0.1 * i], [0.744 + 0.001 * i, 0.70 - 0.01 * i]
    ax.plot(x, y, label=f'curve {i}', **look)
    labels[ax] += [(x[0], y[0], f'{0.02 * (i + 1):g}', look['color']), (x[1], y[1], 'end',
                                                                         look['color'])]
  drawing.legend_below(fig, [ax])
  drawing.label_points(fig, labels)
  renderer = fig.canvas.get_renderer()
  for note in ax.texts:
    note.update_positions(renderer)
  boxes = [Text.get_window_extent(t, renderer) for t in ax.texts]  # without leader lines
  assert len(boxes) == 10
  assert not [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:] if a.overlaps(b)]
  inside = ax.get_window_extent(renderer)
  assert all(inside.contains(b.x0, b.y0) and inside.contains(b.x1, b.y1) for b in boxes)
  assert fig.legends[0].get_window_extent(renderer).y1 <= inside.y0
  drawing.save(fig, str(tmp_path / 'f.png'))
  assert (tmp_path / 'f.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def _linf_run(folder, pgd: list, fgm: list, loss: list, planned: int = 15,
              defense: str = 'fgm') -> None:
  """A Linf study run at 16/255 as `experiments linf_report` copies it: config and metrics."""
  os.makedirs(folder)
  with open(os.path.join(folder, 'config.json'), 'w') as f:
    json.dump(dict(norm='linf', eps=16 / 255, probe_eps=None, defense=defense, seed=1234,
                   width=0.5, epochs=planned, lr=2e-3), f)
  with open(os.path.join(folder, 'metrics.jsonl'), 'w') as f:
    for i, (p, g, l) in enumerate(zip(pgd, fgm, loss)):
      f.write(json.dumps({'epoch': i + 1, 'step': 390 * (i + 1), 'epoch_seconds': 60.0,
                          'resumed_mid_epoch': False, 'test_acc': 0.5, 'train_loss': l,
                          'probe_pgd16_255_acc': p, 'probe_fgm16_255_acc': g}) + '\n')


def test_the_report_regenerates_from_its_own_outputs_with_the_linf_study(tmp_path, monkeypatch):
  """--quote_root: made from the jobs' small outputs in results/<root name>/ themselves (what the
  repository holds), the report names the jobs' root in its commands and summary, leaves those
  outputs byte for byte, and differs from the report made from the jobs only in its first lines;
  --linf_results adds the Linf study's runs, figure and verdicts."""
  monkeypatch.chdir(tmp_path)
  _sweep(tmp_path / 'runs', True)
  render.write_report('runs', 'results', os.path.join('docs', 'R.md'))
  copy = tmp_path / 'results' / 'runs'
  files = {p: p.read_bytes() for p in copy.rglob('*') if p.is_file()}
  _linf_run(os.path.join('linf', 'fgm_eps16_w0.5_s1234'), [0.2, 0.23, 0.03], [0.25, 0.23, 0.03],
            [2.28, 2.13, 431.0])
  # A PGN run trained on past the study's schedule: listed, and its own verdict.
  _linf_run(os.path.join('linf', 'pgn_eps16_w0.5_s1234_e25'), [0.2, 0.22, 0.0], [0.2, 0.22, 0.3],
            [2.0, 2.0, 2.0], planned=25, defense='pgn')
  (tmp_path / 'linf' / 'robust_by_epoch_eps16.png').write_bytes(b'png')
  render.write_report(os.path.join('results', 'runs'), 'results', os.path.join('docs', 'R2.md'),
                      quote_root='runs', linf_dir='linf')
  assert {p: p.read_bytes() for p in copy.rglob('*') if p.is_file()} == files
  assert json.loads((copy / 'summary.json').read_text())['root'] == 'runs'
  made, again = ((tmp_path / 'docs' / n).read_text() for n in ('R.md', 'R2.md'))
  assert 'from the jobs in `runs`;' in made and '## Linf' not in made
  assert ('from the small outputs of the jobs of `runs` (the root the commands below name) in '
          '`results/runs`;') in again
  linf = again[again.index('## Linf'):].split('\n## ')[0]
  assert made.split('\n')[3:] == again.replace(linf + '\n## ', '## ').split('\n')[3:]
  for line in ('[docs/LINF_STUDY.md](LINF_STUDY.md)', '| fgm_eps16_w0.5_s1234 | FGSM-AT | 3 of 15 '
               '| epoch 3 (divergence) |', '](../linf/robust_by_epoch_eps16.png)',
               '| Does FGSM-AT\'s robustness collapse in training (the fixed single-step attack '
               'fails)? | **yes** | 1 of 1 seed(s) collapsed (epoch 3: divergence) |',
               '| Does PGN avoid it? | **undecided** | no PGN run |',
               '| pgn_eps16_w0.5_s1234_e25 | PGN-Linf | 3 of 25 | epoch 3 (catastrophic '
               'overfitting) |', '| Trained on to 25 epochs, does PGN-Linf collapse (PGD-10 probe '
               'or APGD-CE)? | **yes** | seed 1234 (3/25 epochs): PGD-10 probe collapsed at 3'):
    assert line in linf, line
  # The command line quotes the command that regenerates the report, and the root it names.
  proc = run_cli('-m', 'tf_pgn.experiments', 'report', f'--root={copy}', '--quote_root=runs',
                 f'--out={tmp_path / "results"}', f'--report={tmp_path / "R3.md"}',
                 f'--linf_results={tmp_path / "linf"}', '--data_dir=~/data')
  assert proc.returncode == 0, proc.stderr[-2000:]
  text = (tmp_path / 'R3.md').read_text().replace(str(tmp_path), 'TMP')
  assert ('Generated by `python -m tf_pgn.experiments report --root=TMP/results/runs '
          '--quote_root=runs --linf_results=TMP/linf --out=TMP/results --report=TMP/R3.md '
          '--data_dir=~/data` from') in text
  assert ('`python -m tf_pgn.experiments run --sweep=table2 --dataset=cifar10 --preset=cpu '
          '--root=runs --data_dir=~/data`') in text
  assert {p: p.read_bytes() for p in copy.rglob('*') if p.is_file()} == files


def test_autoattack_evaluates_jobs_into_their_own_folder_and_reports_them(root, cifar10_dir,
                                                                           tmp_path):
  tiny = dict(TINY_EVAL, apgd_iterations=5, apgd_targets=2, square_queries=20, fmn_steps=10,
              fab_iterations=5, fab_targets=2)
  done = sweeps.run_autoattack(root, 'cifar10', cifar10_dir, [JOBS[0]], num_examples=16,
                               eval_overrides=tiny)
  assert done == {JOBS[0]: 'done'}
  job = os.path.join(root, JOBS[0])
  with open(os.path.join(job, protocol.AUTOATTACK_DIR, 'results.json')) as f:
    strong = json.load(f)
  assert set(strong['attacks']) == {'autoattack_eps0.5', 'fmn', 'fab'}
  worst = strong['attacks']['autoattack_eps0.5']['whitebox']
  # eval/ is untouched; the summary row takes the worst case from the new folder.
  with open(os.path.join(job, 'eval', 'results.json')) as f:
    assert 'autoattack_eps0.5' not in json.load(f)['attacks']
  assert results.job_row(job)['autoattack_eps0.5_acc'] == worst['accuracy']
  assert results.job_row(os.path.join(root, JOBS[1]))['autoattack_eps0.5_acc'] is None
  assert sweeps.run_autoattack(root, 'cifar10', cifar10_dir, [JOBS[0]], num_examples=16,
                               eval_overrides=tiny) == {JOBS[0]: 'skipped'}
  with pytest.raises(protocol.ExperimentError, match='no trained job'):
    sweeps.run_autoattack(root, 'cifar10', cifar10_dir, ['pgd_eps9_w0.0625_s1234'])
  # The report's row: the accuracy after each part, the first equal to APGD-CE run alone, the
  # last the worst case's; the attacks alone not run ('-').
  alone = evaluation.evaluate(evaluation.make_eval_config(
      **dict(tiny, attacks=['apgd_ce'], eps_list=[0.5], num_examples=16)), job,
      str(tmp_path / 'alone'), cifar10_dir)
  lines = autoattack.autoattack_section(render.Study.load(root))
  accuracies, seconds = [l for l in lines if l.startswith('| naive |')]
  cells = [c.strip() for c in accuracies.strip('|').split('|')]
  parts = len(evaluation.AUTOATTACK_PARTS)
  after = [float(c) for c in cells[4:4 + parts]]
  assert cells[1] == '16' and after == sorted(after, reverse=True)
  assert after[0] == round(alone['attacks']['apgd_ce_eps0.5']['whitebox']['accuracy'], 3)
  assert after[-1] == round(worst['accuracy'], 3)
  assert cells[4 + parts:6 + parts] == ['-', '-']
  seconds = [c.strip() for c in seconds.strip('|').split('|')[1:]]
  assert [c != '-' for c in seconds] == [
      True, True, True, False, False, True, True, True, True]  # the attacks alone not run
  by_part = [float(c) for c in seconds[2].split(' / ')]  # the worst case's, part by part
  assert len(by_part) == parts and sum(by_part) <= float(seconds[1]) + parts
  copy = tmp_path / 'results'
  render.write_report(root, str(copy), str(tmp_path / 'REPORT.md'), 'report', '--root=r')
  copied = {name for name in render.EVAL_FILES
            if (copy / os.path.basename(root) / JOBS[0] / protocol.AUTOATTACK_DIR / name).is_file()}
  assert copied == {'results.json', 'results.md', 'accuracy_vs_l2.png'}  # no attack at Linf
  assert '## Evaluation at AutoAttack level' in (tmp_path / 'REPORT.md').read_text()


def test_autoattack_jobs_are_the_naive_job_and_the_seed_points_at_the_main_seed(tmp_path):
  root = tmp_path / 'sweep'
  root.mkdir()
  naive = _job_dir(root, 'naive', 0.75)
  fgm = _job_dir(root, 'fgm', 0.71, eps=0.25)
  _job_dir(root, 'fgm', 0.71, eps=0.25, seed=1235)
  _job_dir(root, 'fgm', 0.74, eps=0.1)
  pgn = _job_dir(root, 'pgn', 0.70, c_l=2.0, grad_input='normalized')
  _job_dir(root, 'pgd', 0.71, eps=0.25, trained=False)  # still training: not evaluated
  assert sweeps.autoattack_jobs(results.load(str(root))) == [naive, fgm, pgn]


def test_autoattack_rows_name_the_seed_of_a_job_off_the_main_seed(tmp_path):
  root = tmp_path / 'sweep'
  root.mkdir()
  def timed(results):
    for attack in results['attacks'].values():
      attack['whitebox']['seconds'] = 60.0
    return results

  for seed in (1234, 1235):
    job = _job_dir(root, 'pgn', 0.70, seed=seed, c_l=0.5, results=timed(_results(0.7, 0.5)))
    (root / job / protocol.AUTOATTACK_DIR).mkdir()
    strong = timed(_results(0.7, 0.5, autoattack=0.3))
    strong['attacks']['autoattack_eps0.5']['whitebox']['broken_by'] = dict(
        clean=300, apgd_ce=350, apgd_t=40, square=10)
    (root / job / protocol.AUTOATTACK_DIR / 'results.json').write_text(json.dumps(strong))
  lines = autoattack.autoattack_section(render.Study.load(str(root)))
  rows = [l.split('|')[1].strip() for l in lines if l.startswith('| PGN')]
  assert rows == ['PGN c_L=0.5', 'PGN c_L=0.5 seed 1235'] * 2  # accuracies, then seconds


def test_figure3_runs_each_pgn_attack_variant_into_its_folder(root, cifar10_dir, tmp_path):
  tiny = dict(TINY_EVAL, pgn_c_l_list=(0.01,), pgn_gen_width=0.0625, pgn_attack_train_size=128,
              pgn_batch_size=64)
  assert sweeps.run_figure3(root, 'cifar10', cifar10_dir, [JOBS[0]], ['sign'], num_examples=16,
                            eval_overrides=tiny) == {(JOBS[0], 'sign'): 'done'}
  job = os.path.join(root, JOBS[0])
  found = results.pgn_attacks(job)
  assert found['sign']['folder'] == 'eval_pgn_sign'
  assert [e['c_l'] for e in found['sign']['entries']] == [0.01]
  assert sweeps.run_figure3(root, 'cifar10', cifar10_dir, [JOBS[0]], ['sign'], num_examples=16,
                            eval_overrides=tiny) == {(JOBS[0], 'sign'): 'skipped'}
  with pytest.raises(protocol.ExperimentError, match='unknown PGN attack variant'):
    sweeps.run_figure3(root, 'cifar10', cifar10_dir, [JOBS[0]], ['signum'])
  # The default targets: the eps-0.5 FGM-AT and PGD-AT jobs at the main width and seed.
  other = tmp_path / 'sweep'
  other.mkdir()
  fgm = _job_dir(other, 'fgm', 0.66, eps=0.5)
  _job_dir(other, 'fgm', 0.71, eps=0.25)
  _job_dir(other, 'fgm', 0.66, eps=0.5, seed=1235)
  pgd = _job_dir(other, 'pgd', 0.67, eps=0.5)
  assert sweeps.figure3_jobs(results.load(str(other))) == [fgm, pgd]
