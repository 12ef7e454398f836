"""The bfloat16-against-float32 study: its jobs train the configs they name, and its verdicts
are computed from synthetic run folders."""
import json
import os

import pytest

from tf_pgn.study import precision


def _job(root, name, test_acc, autoattack=None, epochs=6, planned=6):
  folder = os.path.join(root, name)
  os.makedirs(folder)
  with open(os.path.join(folder, 'config.json'), 'w') as f:
    json.dump(dict(epochs=planned, batch_size=128), f)
  with open(os.path.join(folder, 'metrics.jsonl'), 'w') as f:
    f.write(json.dumps(dict(epoch=epochs, test_acc=test_acc)) + '\n')
  if autoattack is not None:
    os.makedirs(os.path.join(folder, 'eval'))
    with open(os.path.join(folder, 'eval', 'results.json'), 'w') as f:
      json.dump(dict(attacks={'autoattack_eps0.5': dict(whitebox=dict(accuracy=autoattack))}), f)


def test_jobs_train_the_configs_they_name():
  names = [j.name for j in precision.PRECISION_JOBS]
  assert len(names) == len(set(names)) == 12
  assert names[:4] == ['fgm_l2_s1234_float32', 'fgm_l2_s1234_bfloat16', 'pgn_linf_s1234_float32',
                       'pgn_linf_s1234_bfloat16']
  cfg = precision.PRECISION_JOBS[3].train_config('cpu', 'cifar10')
  assert (cfg.defense, cfg.norm, cfg.eps, cfg.c_l, cfg.mixed_precision, cfg.width, cfg.epochs) == (
      'pgn', 'linf', 8 / 255, 0.0, 'bfloat16', 0.25, 6)
  assert precision.PRECISION_JOBS[3].eval_settings() == dict(norm='linf', eps_list=(8 / 255,),
                                                             attacks=('autoattack',))


@pytest.fixture
def root(tmp_path):
  root = str(tmp_path)
  for seed, (f32, b16) in zip(precision.SEEDS, [(0.70, 0.705), (0.71, 0.70), (0.72, 0.69)]):
    _job(root, f'fgm_l2_s{seed}_float32', f32, autoattack=0.42)
    _job(root, f'fgm_l2_s{seed}_bfloat16', b16, autoattack=0.40 if seed == 1236 else None)
  return root


def test_verdicts_say_level_within_twice_the_float32_seed_std_and_wait_for_every_seed(root):
  verdicts = {(v['point'], v['measure']): v for v in precision.verdicts(
      precision.precision_rows(root))}
  test_acc = verdicts['fgm_l2', 'test_acc']
  # float32 0.70 / 0.71 / 0.72: std 0.01, tolerance 0.02; bfloat16's mean 0.698: level.
  assert test_acc['float32'][2] == test_acc['bfloat16'][2] == 3
  assert test_acc['tolerance'] == pytest.approx(0.02)
  assert test_acc['diff'] == pytest.approx(-0.035 / 3)
  assert test_acc['verdict'] == 'level'
  assert verdicts['fgm_l2', 'autoattack']['verdict'] == 'undecided'  # one bfloat16 seed
  assert verdicts['pgn_linf', 'test_acc']['verdict'] == 'undecided'  # not run


def test_a_difference_beyond_the_spread_is_named_and_the_report_is_written(root, tmp_path):
  os.remove(os.path.join(root, 'fgm_l2_s1236_bfloat16', 'metrics.jsonl'))
  with open(os.path.join(root, 'fgm_l2_s1236_bfloat16', 'metrics.jsonl'), 'w') as f:
    f.write(json.dumps(dict(epoch=6, test_acc=0.60)) + '\n')
  verdicts = precision.verdicts(precision.precision_rows(root))
  assert verdicts[0]['verdict'] == 'bfloat16 lower'
  report = precision.render_report(root, str(tmp_path / 'out'), str(tmp_path / 'P.md'), 'cmd')
  text = open(report).read()
  assert '| fgm_l2_s1236_bfloat16 | 6/6 | 0.600 | 0.400 |' in text
  assert '| 0.710 ± 0.010 (n=3) | 0.668 ± 0.059 (n=3) | -0.042 | 0.020 | **bfloat16 lower** |' in text
  assert os.path.isfile(tmp_path / 'out' / 'fgm_l2_s1236_bfloat16' / 'eval' / 'results.json')
