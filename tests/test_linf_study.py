"""The Linf study's collapse rule, verdicts and report on synthetic job folders."""
import csv
import json
import os

import pytest

from tf_pgn.io_utils import read_jsonl
from tf_pgn.study import linf
from tf_pgn.study.render import linf_report

PGD, FGM = 'probe_pgd16_255_acc', 'probe_fgm16_255_acc'


def _epochs(pgd: list, fgm: list, loss=None, steps=390) -> list:
  loss = loss or [2.0] * len(pgd)
  return [dict(epoch=i + 1, step=steps * (i + 1), test_acc=0.5, epoch_seconds=0.2 * steps,
               resumed_mid_epoch=False, train_loss=l, train_pert_l2=3.2, **{PGD: p, FGM: f})
          for i, (p, f, l) in enumerate(zip(pgd, fgm, loss))]


def test_a_collapse_is_named_by_its_signature():
  # The width-0.5 run: PGD 0.194 .. 0.226, then 0.000 with FGSM 0.328.
  overfit = _epochs([0.194, 0.204, 0.21, 0.226, 0.192, 0.0], [0.196, 0.208, 0.224, 0.238,
                                                                0.228, 0.328])
  assert linf.collapse(overfit, PGD, FGM) == (6, 'catastrophic overfitting')
  # Both fall while the training loss blows up: a divergence.
  diverged = _epochs([0.2, 0.22, 0.03], [0.25, 0.22, 0.03], loss=[2.28, 2.13, 431.0])
  assert linf.collapse(diverged, PGD, FGM) == (3, 'divergence')
  # Both fall, the loss does not: another kind.
  assert linf.collapse(_epochs([0.3, 0.05], [0.32, 0.08]), PGD, FGM) == (2, 'other')
  # A modest PGD dip with a gap is no collapse.
  assert linf.collapse(_epochs([0.3, 0.2], [0.32, 0.35]), PGD, FGM) == (None, None)


def _job(root, job: linf.LinfJob, pgd, fgm, clean=None, autoattack=None, planned=None):
  folder = os.path.join(root, job.name)
  os.makedirs(folder)
  cfg = dict(norm='linf', eps=job.eps, probe_eps=None, defense=linf.DEFENSES[job.defense][
      'defense'], seed=job.seed, width=job.width, epochs=planned or len(pgd),
             lr=linf.STUDY_LR, gen_lr=linf.STUDY_LR, pgn_gen_steps=1,
             mixed_precision=job.precision)
  cfg.update(linf.LEVERS[job.lever][1] if job.lever else {})
  with open(os.path.join(folder, 'config.json'), 'w') as f:
    json.dump(cfg, f)
  with open(os.path.join(folder, 'metrics.jsonl'), 'w') as f:
    f.write(''.join(json.dumps(r) + '\n' for r in _epochs(pgd, fgm)))
  if clean is not None:
    os.makedirs(os.path.join(folder, 'eval'))
    attacks = {f'autoattack_eps{job.eps:g}': dict(whitebox=dict(accuracy=autoattack))}
    with open(os.path.join(folder, 'eval', 'results.json'), 'w') as f:
      json.dump(dict(benign_accuracy=clean, num_examples=1000, attacks=attacks), f)


@pytest.fixture
def study(tmp_path):
  root = str(tmp_path / 'runs')
  ok = [0.2, 0.22, 0.24]
  for seed in linf.SEEDS:
    _job(root, linf.LinfJob('fgm', 16, seed), [0.2, 0.22, 0.0], [0.21, 0.25, 0.33])
    _job(root, linf.LinfJob('pgn', 16, seed), ok, [0.22, 0.24, 0.26], clean=0.50 + seed * 1e-5,
         autoattack=0.20)
  _job(root, linf.LinfJob('n_fgsm', 16, 1234), ok, ok, clean=0.505, autoattack=0.15)
  _job(root, linf.LinfJob('pgd', 16, 1234), ok, ok, clean=0.48, autoattack=0.205)
  return root


def test_verdicts_are_computed_from_the_runs(study):
  rows = linf.linf_rows(study)
  assert len(rows) == 8
  by_question = {v['question']: v for v in linf.verdicts(rows, 16)}
  q = list(by_question.values())
  assert q[0]['verdict'] == 'yes' and ('3 of 3 seed(s) collapsed (epoch 3: catastrophic '
                                       'overfitting,') in q[0]['why']
  assert q[1]['verdict'] == 'yes'
  assert q[2]['verdict'] == 'yes'
  assert q[3]['verdict'] == 'not measured'  # no strong probe yet
  assert q[4]['verdict'] == 'PGN' and 'AutoAttack +0.050' in q[4]['why']
  assert 'APGD-CE fell in PGN not measured, N-FGSM not measured' in q[4]['why']
  assert q[5]['verdict'] == 'PGN-Linf' and 'N-FGSM -0.055' in q[5]['why']


def test_a_learning_rate_lever_job_stays_out_of_the_verdicts(study):
  lever = linf.LinfJob('pgn', 16, 1234, lever='_lr0.0005')
  assert lever.name == 'pgn_eps16_w0.5_s1234_lr0.0005'
  cfg = lever.train_config('cpu', 'cifar10')
  assert (cfg.lr, cfg.gen_lr) == (5e-4, 5e-4)
  _job(study, lever, [0.2, 0.0], [0.2, 0.3])  # collapses: would make PGN's verdict 'no'
  rows = linf.linf_rows(study)
  assert len(rows) == 9 and [r['lever'] for r in rows].count('_lr0.0005') == 1
  verdicts = linf.verdicts(rows, 16)
  assert verdicts[2]['verdict'] == 'yes'
  assert verdicts[-1]['question'].startswith('With Adam at 5e-4 for both networks')
  assert verdicts[-1]['verdict'] == 'yes' and 'PGD-10 probe collapsed at 2' in verdicts[-1]['why']


def test_the_generator_levers_train_longer_and_get_a_question_each(study, tmp_path):
  jobs = linf.LINF_SWEEPS['linf_gen']
  assert [j.name for j in jobs] == ['pgn_eps16_w0.5_s1234_gen2', 'pgn_eps16_w0.5_s1234_glr0.004']
  assert all(j.epochs == linf.LONG_EPOCHS and not j.continued for j in jobs)
  two_steps, faster = (j.train_config('cpu', 'cifar10') for j in jobs)
  assert (two_steps.pgn_gen_steps, two_steps.gen_lr, two_steps.lr) == (2, 2e-3, 2e-3)
  assert (faster.pgn_gen_steps, faster.gen_lr, faster.lr) == (1, 4e-3, 2e-3)
  _job(study, jobs[0], [0.2, 0.22, 0.24], [0.2, 0.22, 0.26], planned=linf.LONG_EPOCHS)
  _job(study, jobs[1], [0.2, 0.0], [0.2, 0.3], planned=linf.LONG_EPOCHS)
  rows = linf.linf_rows(study)
  assert linf.verdicts(rows, 16)[2]['verdict'] == 'yes'  # the study's own PGN runs alone
  questions = {v['question']: v for v in linf.verdicts(rows, 16)[-2:]}
  gen2 = next(v for q, v in questions.items() if '`_gen2`' in q)
  glr = next(v for q, v in questions.items() if '`_glr0.004`' in q)
  assert 'within 25 epochs' in gen2['question']
  assert gen2['verdict'] == 'undecided' and '(3/25 epochs)' in gen2['why']  # still training
  assert glr['verdict'] == 'yes'
  report = str(tmp_path / 'LINF.md')
  linf_report.render_report(study, str(tmp_path / 'out'), report, 'cmd')
  text = open(report).read()
  assert '| pgn_eps16_w0.5_s1234_gen2 | 3/25 |' in text and glr['question'] in text
  assert os.path.exists(linf_report.figure_path(str(tmp_path / 'out'), 16))


def test_a_bfloat16_job_is_named_so_counts_as_its_defense_and_the_report_says_it(study,
                                                                                 tmp_path):
  job = linf.LinfJob('pgd', 16, 1235, precision='bfloat16')
  assert job.name == 'pgd_eps16_w0.5_s1235_bf16'
  # The study's PGD-AT, its slowest defense, trains in bfloat16; the others in float32.
  for sweep in ('linf_collapse', 'linf_eps8'):
    assert {j.defense: j.precision for j in linf.LINF_SWEEPS[sweep]} == dict(
        fgm='float32', pgn='float32', fgsm_rs='float32', n_fgsm='float32', pgd='bfloat16')
  assert job.train_config('cpu', 'cifar10').mixed_precision == 'bfloat16'
  # A float32 job pins its precision too: it means the same run whatever the default.
  assert linf.LinfJob('pgd', 16, 1234).train_config('cpu', 'cifar10').mixed_precision == 'float32'
  _job(study, job, [0.2, 0.22, 0.24], [0.2, 0.22, 0.24], clean=0.47, autoattack=0.215)
  rows = linf.linf_rows(study)
  assert next(r for r in rows if r['job'] == job.name)['precision'] == 'bfloat16'
  level = linf.verdicts(rows, 16)[5]
  assert 'PGN-Linf -0.010' in level['why']  # against PGD-AT's two seeds' mean 0.210
  report = str(tmp_path / 'LINF.md')
  linf_report.render_report(study, str(tmp_path / 'out'), report, 'cmd')
  assert 'Jobs named `_bf16` computed their train step in bfloat16' in open(report).read()


def test_pgn_that_collapses_once_does_not_avoid_it(study):
  job = linf.LinfJob('pgn', 16, 1236)
  with open(os.path.join(study, job.name, 'metrics.jsonl'), 'w') as f:
    f.write(''.join(json.dumps(r) + '\n' for r in _epochs([0.2, 0.0], [0.2, 0.3])))
  verdicts = linf.verdicts(linf.linf_rows(study), 16)
  assert verdicts[2]['verdict'] == 'no' and '1 of 3 seed(s) collapsed' in verdicts[2]['why']


def test_without_a_collapse_of_fgsm_there_is_nothing_to_avoid(tmp_path):
  root = str(tmp_path)
  _job(root, linf.LinfJob('fgm', 8, 1234), [0.3, 0.32], [0.33, 0.34])
  _job(root, linf.LinfJob('pgn', 8, 1234), [0.3, 0.32], [0.33, 0.34])
  verdicts = linf.verdicts(linf.linf_rows(root), 8)
  assert verdicts[0]['verdict'] == 'no' and verdicts[1]['verdict'] == 'not applicable'
  assert verdicts[2]['verdict'] == 'undecided'


def test_report_and_figure_are_written(study, tmp_path):
  out, report = str(tmp_path / 'out'), str(tmp_path / 'docs' / 'LINF.md')
  # A job of the cpu preset's table: reported on its own, outside the study's verdicts, where its
  # collapse would make PGN's 'no'.
  cpu_job = linf.LINF_SWEEPS['linf_eps8_cpu'][3]
  assert (cpu_job.name, cpu_job.epochs) == ('pgn_eps8_w0.25_s1234', 6)
  _job(study, linf.LinfJob('pgn', 16, 1234, width=0.25, epochs=6), [0.2, 0.0], [0.2, 0.3],
       clean=0.6, autoattack=0.3)
  assert linf.verdicts(linf.linf_rows(study), 16)[2]['verdict'] == 'yes'
  linf_report.render_report(study, out, report, 'cmd')
  text = open(report).read()
  assert '## eps 16/255' in text
  assert '| fgm_eps16_w0.5_s1234 | 3/3 | 3 (catastrophic overfitting) |' in text
  study_part, cpu_part = text.split('## Each Linf defense at the cpu preset')
  assert 'w0.25' not in study_part
  assert ('| pgn_eps16_w0.25_s1234 | 2/2 | 2 (catastrophic overfitting) | 0.600 | - | - | 0.300 | '
          '200 | 3.20 |'
          in cpu_part)
  assert os.path.getsize(os.path.join(out, 'robust_by_epoch_eps16.png')) > 10_000
  # 26 epochs of 78 s each, no evaluation time recorded.
  assert 'The runs above record 0.6 wall-clock hours: 0.6 training (every epoch, once), 0.0' in text
  assert os.path.isfile(os.path.join(out, 'pgn_eps16_w0.5_s1234', 'eval', 'results.json'))


def test_the_generators_closeness_to_fgsm_is_reported_by_epoch_for_runs_that_logged_it(
    study, tmp_path):
  metrics = os.path.join(study, 'pgn_eps16_w0.5_s1236', 'metrics.jsonl')
  rows = [dict(e, train_pert_fgm_cos=c) for e, c in zip(read_jsonl(metrics), (0.41, 0.62, 0.93))]
  with open(metrics, 'w') as f:
    f.write(''.join(json.dumps(r) + '\n' for r in rows))
  report = str(tmp_path / 'LINF.md')
  linf_report.render_report(study, str(tmp_path / 'out'), report, 'cmd')
  text = open(report).read()
  assert "Is the generator's perturbation the fixed attack's?" in text
  assert '| pgn_eps16_w0.5_s1236 | 0.41 | 0.62 | 0.93 |' in text
  assert text.count('| pgn_eps16_w0.5_s1234 |') == 1  # logged nothing: in the runs' table only


def test_autoattack_is_reported_part_by_part(study, tmp_path):
  path = os.path.join(study, 'pgn_eps16_w0.5_s1234', 'eval', 'results.json')
  with open(path) as f:
    results = json.load(f)
  (worst,) = results['attacks'].values()
  worst['whitebox'].update(
      broken_by=dict(clean=500, apgd_ce=250, apgd_t=40, fab_t=3, square=0),
      seconds_by_part=dict(apgd_ce=30.0, apgd_t=120.4, fab_t=180.0, square=240.0))
  with open(path, 'w') as f:
    json.dump(results, f)
  report = str(tmp_path / 'LINF.md')
  linf_report.render_report(study, str(tmp_path / 'out'), report, 'cmd')
  part = open(report).read().split('## AutoAttack part by part')[1].split('##')[0]
  assert ('| job | images | clean | after APGD-CE | after APGD-T | after FAB-T | after Square | '
          'FAB-T broke | seconds APGD-CE / APGD-T / FAB-T / Square |') in part
  assert ('| pgn_eps16_w0.5_s1234 | 1000 | 0.512 | 0.250 | 0.210 | 0.207 | 0.207 | 3 | '
          '30 / 120 / 180 / 240 |') in part
  assert 'pgn_eps16_w0.5_s1235' not in part  # its results do not say which part broke what


def test_jobs_train_the_configs_they_name():
  job = linf.LINF_SWEEPS['linf_collapse'][1]
  cfg = job.train_config('cpu', 'cifar10')
  assert job.name == 'pgn_eps16_w0.5_s1234'
  assert (cfg.norm, cfg.width, cfg.epochs, cfg.c_l, cfg.pgn_budget) == ('linf', 0.5, 15, 0.0,
                                                                        16 / 255)
  assert [j.defense for j in linf.LINF_SWEEPS['linf_collapse']].count('fgm') == 3


def _strong(root, job: linf.LinfJob, accuracies: list) -> None:
  """The strong probe's results at epochs 1.. (``experiments linf_progress``'s layout)."""
  for epoch, accuracy in enumerate(accuracies, 1):
    folder = os.path.join(root, job.name, 'progress', f'epoch-{epoch}')
    os.makedirs(folder)
    attacks = {f'apgd_ce_eps{job.eps:g}': dict(whitebox=dict(accuracy=accuracy))}
    with open(os.path.join(folder, 'results.json'), 'w') as f:
      json.dump(dict(num_examples=500, attacks=attacks), f)


def test_the_strong_probe_is_read_by_epoch_judged_by_the_collapse_rule_and_reported(study,
                                                                                   tmp_path):
  pgn, fgm = linf.LinfJob('pgn', 16, 1234), linf.LinfJob('fgm', 16, 1234)
  _strong(study, pgn, [0.12, 0.2, 0.04])  # falls below 0.25 of its best earlier value at 3
  _strong(study, fgm, [0.1, 0.06])
  rows = {r['job']: r for r in linf.linf_rows(study)}
  assert [p['accuracy'] for p in rows[pgn.name]['strong']] == [0.12, 0.2, 0.04]
  assert rows[pgn.name]['strong_collapsed_at'] == 3
  assert rows[fgm.name]['strong_collapsed_at'] is None  # 0.06 is not below 0.25 * 0.1
  # Asked again of the strong probe: FGSM-AT's one run has not fallen and lacks epoch 3.
  strong = linf.verdicts(list(rows.values()), 16)[3]
  assert strong['verdict'] == 'undecided' and 'FGSM-AT collapses: undecided (0 of 1 fell)' in (
      strong['why'])
  assert 'PGN avoids it: no (1 of 1 fell (epoch 3))' in strong['why']
  # Where it sees FGSM-AT fall and PGN hold, it agrees with the trainer's probe.
  fgm2, pgn2 = linf.LinfJob('fgm', 16, 1235), linf.LinfJob('pgn', 16, 1235)
  _strong(study, fgm2, [0.2, 0.22, 0.01])
  _strong(study, pgn2, [0.18, 0.2, 0.19])
  rows = [r for r in linf.linf_rows(study) if r['job'] in (fgm2.name, pgn2.name)]
  strong = linf.verdicts(rows, 16)[3]
  assert strong['verdict'] == 'yes', strong
  assert 'PGN-Linf APGD-CE best -> last: seed 1235 0.200 (epoch 2) -> 0.190 (epoch 3)' in (
      strong['why'])
  # While the trainer's probe waits for a run, there is nothing to agree with yet.
  pgn3 = linf.LinfJob('pgn', 16, 1236)
  with open(os.path.join(study, pgn3.name, 'metrics.jsonl'), 'w') as f:
    f.write(''.join(json.dumps(r) + '\n' for r in _epochs([0.2], [0.2])))
  rows = [r for r in linf.linf_rows(study) if r['job'] in (fgm2.name, pgn2.name, pgn3.name)]
  assert linf.verdicts(rows, 16)[2]['verdict'] == 'undecided'
  assert linf.verdicts(rows, 16)[3]['verdict'] == 'undecided'
  # A cheap fix's strong probe is named beside PGN's in the comparison.
  n_fgsm = linf.LinfJob('n_fgsm', 16, 1234)
  _strong(study, n_fgsm, [0.2, 0.21, 0.22])
  rows = [r for r in linf.linf_rows(study) if r['job'] in (fgm2.name, pgn2.name, n_fgsm.name)]
  assert 'APGD-CE fell in PGN 0 of 1 run(s), N-FGSM 0 of 1 run(s)' in (
      linf.verdicts(rows, 16)[4]['why'])
  # The plan: every run of the study, each defense's, at its own eps; others by name only.
  plan = linf.progress_plan(study)
  assert sorted(plan) == sorted([f'{d}_eps16_w0.5_s{s}' for d in ('fgm', 'pgn')
                                 for s in linf.SEEDS] + [n_fgsm.name, 'pgd_eps16_w0.5_s1234'])
  assert plan[pgn.name] == dict(norm='linf', eps_list=(16 / 255,), attacks=('apgd_ce',))
  assert list(linf.progress_plan(study, [n_fgsm.name])) == [n_fgsm.name]
  with pytest.raises(ValueError, match='no Linf job.s. nope in .*choose from'):
    linf.progress_plan(study, ['nope'])
  out, report = str(tmp_path / 'out'), str(tmp_path / 'LINF.md')
  linf_report.render_report(study, out, report, 'cmd')
  text = open(report).read()
  assert '| job | 1 | 2 | 3 | best (epoch) | fell |' in text
  assert '| pgn_eps16_w0.5_s1234 | 0.120 | 0.200 | 0.040 | 0.200 (2) | 3 |' in text
  assert '| fgm_eps16_w0.5_s1234 | 0.100 | 0.060 | - | 0.100 (1) | - |' in text
  assert os.path.isfile(os.path.join(out, pgn.name, 'progress', 'epoch-3', 'results.json'))
  # One row per run for a user's own plots, with the strong probe's best, last and fall.
  with open(os.path.join(out, 'summary.csv')) as f:
    summary = {r['job']: r for r in csv.DictReader(f)}
  assert len(summary) == len(linf.linf_rows(study))
  assert {k: summary[pgn.name][k] for k in ('strong_best', 'strong_best_epoch', 'strong_last',
                                            'strong_fell_at', 'collapsed_at', 'precision')} == dict(
      strong_best='0.2', strong_best_epoch='2', strong_last='0.04', strong_fell_at='3',
      collapsed_at='', precision='float32')
  with open(os.path.join(out, 'summary.json')) as f:
    assert set(json.load(f)['notes']) == set(linf.SUMMARY_NOTES)


def test_linf_progress_runs_apgd_ce_on_each_epoch_snapshot(cifar10_dir, tmp_path):
  from tf_pgn import trainer  # pylint: disable=g-import-not-at-top
  from tf_pgn.study import sweeps  # pylint: disable=g-import-not-at-top
  root = str(tmp_path)
  job = linf.LinfJob('pgn', 8, 1234, width=0.0625, epochs=1)
  trainer.train(job.train_config('tiny', 'cifar10', train_size=512, lr=5e-3),
                os.path.join(root, job.name), cifar10_dir)
  (settings,) = linf.progress_plan(root, [job.name]).values()
  tiny = dict(settings, batch_size=16, apgd_iterations=5)
  assert sweeps.evaluate_snapshots(root, {job.name: tiny}, 'cifar10', cifar10_dir,
                                   num_examples=16) == {job.name: 1}
  (row,) = linf.linf_rows(root)
  (point,) = row['strong']
  assert point['epoch'] == 1 and point['num_examples'] == 16
  with open(os.path.join(root, job.name, 'progress', 'epoch-1', 'results.json')) as f:
    results = json.load(f)
  assert results['norm'] == 'linf' and 0 <= point['accuracy'] <= results['benign_accuracy']
  assert 'unbounded_pgd' not in results  # a probe: the final evaluation runs the check
  assert sweeps.evaluate_snapshots(root, {job.name: tiny}, 'cifar10', cifar10_dir,
                                   num_examples=16) == {job.name: 0}


def test_a_run_trained_on_is_reported_apart_with_a_question_of_its_own(study, tmp_path):
  longer = linf.LinfJob('pgn', 16, 1234, epochs=5, continued=True)
  assert (longer.name, longer.starts_from) == ('pgn_eps16_w0.5_s1234_e5', 'pgn_eps16_w0.5_s1234')
  assert [j.name for j in linf.LINF_SWEEPS['linf_long']] == [
      f'pgn_eps16_w0.5_s{s}_e{linf.LONG_EPOCHS}' for s in linf.SEEDS]
  # Its first three epochs are the 3-epoch run's; it collapses later.
  _job(study, longer, [0.2, 0.22, 0.24, 0.21, 0.02], [0.22, 0.24, 0.26, 0.25, 0.3], clean=0.6,
       autoattack=0.01)
  rows = linf.linf_rows(study)
  (row,) = [r for r in rows if linf.is_long(r)]
  assert row['job'] == longer.name and not linf.in_study(row)
  # Its first 15 epochs are the continued run's: their time and steps are not its own.
  assert row['seconds']['training'] == 0 and row['ms_per_step'] is None
  verdicts = linf.verdicts(rows, 16)
  assert verdicts[2]['verdict'] == 'yes'  # PGN avoids it within the study's schedule
  assert verdicts[-1]['question'].startswith('Trained on to 5 epochs, does PGN-Linf collapse')
  assert verdicts[-1]['verdict'] == 'yes'
  assert 'seed 1234 (5/5 epochs): PGD-10 probe collapsed at 5' in verdicts[-1]['why']
  report = str(tmp_path / 'LINF.md')
  linf_report.render_report(study, str(tmp_path / 'out'), report, 'cmd')
  main, longer_part = open(report).read().split('### Trained on past 15 epochs')
  assert longer.name not in main and f'| {longer.name} | 5/5 | 5 (catastrophic overfitting) |' in longer_part
  # Held on the trainer's probe and unprobed by the strong one: undecided.
  with open(os.path.join(study, longer.name, 'metrics.jsonl'), 'w') as f:
    f.write(''.join(json.dumps(r) + '\n' for r in _epochs([0.2] * 5, [0.22] * 5)))
  assert linf.verdicts(linf.linf_rows(study), 16)[-1]['verdict'] == 'undecided'


def test_a_continued_job_trains_on_from_a_copy_to_the_weights_of_a_longer_run(cifar10_dir,
                                                                               tmp_path, capsys):
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tf_pgn import trainer  # pylint: disable=g-import-not-at-top
  from tf_pgn.study import sweeps  # pylint: disable=g-import-not-at-top
  train = dict(train_size=256, lr=5e-3)
  tiny_eval = dict(batch_size=16, attacks=('fgm',), unbounded_steps=3)
  root, straight = str(tmp_path / 'study'), str(tmp_path / 'straight')
  base = linf.LinfJob('pgn', 8, 1234, width=0.0625, epochs=1)
  longer = linf.LinfJob('pgn', 8, 1234, width=0.0625, epochs=2, continued=True)
  assert sweeps.run_sweep([longer], root, 'tiny', 'cifar10', cifar10_dir,
                          train_overrides=train) == {longer.name: 'failed'}
  with open(os.path.join(root, longer.name, sweeps.FAILURE_FILE)) as f:
    assert f'train that job to its end first (--jobs={base.name}' in f.read()
  assert sweeps.run_sweep([base, longer], root, 'tiny', 'cifar10', cifar10_dir, num_examples=16,
                          train_overrides=train, eval_overrides=tiny_eval) == {
                              base.name: 'done', longer.name: 'done'}
  trainer.train(linf.LinfJob('pgn', 8, 1234, width=0.0625, epochs=2).train_config(
      'tiny', 'cifar10', **train), straight, cifar10_dir)
  assert f'resuming {os.path.join(root, longer.name)} at epoch 1' in capsys.readouterr().out
  run = os.path.join(root, longer.name)
  (first,), (again, _) = (read_jsonl(os.path.join(root, j.name, 'metrics.jsonl'))
                          for j in (base, longer))
  assert again == first  # the base's record, its timing included: copied, not retrained
  for epoch in (1, 2):
    a = tf.train.load_checkpoint(os.path.join(run, 'epochs', f'epoch-{epoch}'))
    b = tf.train.load_checkpoint(os.path.join(straight, 'epochs', f'epoch-{epoch}'))
    names = [n for n, _ in tf.train.list_variables(os.path.join(straight, 'epochs',
                                                                f'epoch-{epoch}'))
             if n != '_CHECKPOINTABLE_OBJECT_GRAPH']
    assert names and all(np.array_equal(a.get_tensor(n), b.get_tensor(n)) for n in names)
  with open(os.path.join(run, 'config.json')) as f:
    assert json.load(f)['epochs'] == 2
  assert os.path.isfile(os.path.join(run, 'eval', 'results.json'))  # its own evaluation
  assert not os.path.exists(run + '.partial')
  assert not os.path.exists(os.path.join(run, sweeps.FAILURE_FILE))  # retried and done
