"""Each bad input to train.py gives a one-line message naming the problem, and exit code 2."""
import dataclasses
import json
import os
import re

import pytest

from conftest import run_cli
from tf_pgn import config


def _assert_one_line_error(proc, pattern):
  err_lines = [l for l in proc.stderr.splitlines() if l.startswith('train.py: error:')]
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert len(err_lines) == 1 and pattern in err_lines[0], proc.stderr[-2000:]
  assert 'Traceback' not in proc.stderr


@pytest.mark.parametrize('fields,pattern', [
    (dict(dataset='mnist'), "unknown dataset 'mnist'"),
    (dict(defense='trades'), "unknown defense 'trades'"),
    (dict(defense='fgm', eps=-0.5), '--eps=-0.5 is negative'),
    (dict(checkpoint_every_minutes=0.0), '--checkpoint_every_minutes=0.0 must be positive'),
    (dict(snapshot_every_epochs=-1), '--snapshot_every_epochs=-1 is negative'),
    (dict(debug_numerics=True, deterministic=True), '--debug_numerics with --deterministic'),
    (dict(jit_compile=True, distribute='mirrored'), '--jit_compile with --distribute=mirrored'),
    (dict(pgn_grad_input='unit'), 'unknown --pgn_grad_input=unit'),
    (dict(pgn_gen_steps=0), '--pgn_gen_steps=0 must be positive'),
    (dict(pgn_eps=0.0), '--pgn_eps=0.0 must be positive'),
])
def test_bad_config_values_name_the_flag(fields, pattern):
  with pytest.raises(config.ConfigError, match=re.escape(pattern)):
    config.make_config('tiny', **fields)


def test_bad_flags_give_one_line_and_exit_code_2(tmp_path):
  """train.py turns the errors above into one line (one process: each costs a TF import)."""
  proc = run_cli('train.py', '--preset=tiny', f'--run_dir={tmp_path}', '--defense=fgm',
                 '--eps=-0.5')
  _assert_one_line_error(proc, '--eps=-0.5 is negative')
  proc = run_cli('train.py', '--preset=huge', f'--run_dir={tmp_path}')
  _assert_one_line_error(proc, "unknown preset 'huge'")


def test_missing_and_corrupt_data(tmp_path):
  proc = run_cli('train.py', '--preset=tiny', f'--run_dir={tmp_path}/r',
                 f'--data_dir={tmp_path}/nowhere')
  _assert_one_line_error(proc, 'does not exist')
  folder = tmp_path / 'cifar-10-batches-py'
  folder.mkdir()
  for name in ['data_batch_%d' % i for i in range(1, 6)] + ['test_batch']:
    (folder / name).write_bytes(b'\x80\x02}q\x00(')  # a truncated pickle
  proc = run_cli('train.py', '--preset=tiny', f'--run_dir={tmp_path}/r', f'--data_dir={tmp_path}')
  _assert_one_line_error(proc, 'is corrupt')


def test_run_dir_of_another_architecture_is_refused(tmp_path, cifar10_dir):
  run_dir = tmp_path / 'run'
  run_dir.mkdir()
  (run_dir / 'config.json').write_text(json.dumps(dict(
      dataset='cifar10', defense='pgn', width=0.5, gen_width=0.0625)))
  proc = run_cli('train.py', '--preset=tiny', '--defense=pgn', f'--run_dir={run_dir}',
                 f'--data_dir={cifar10_dir}')
  _assert_one_line_error(proc, 'width=0.5 (now 0.0625)')
  assert not os.path.exists(run_dir / 'ckpt')


def test_config_json_written_before_the_pgn_levers_reads_as_the_paper_generator():
  """A run directory from before --pgn_grad_input and the other levers meant the raw gradient,
  one G step and a He-initialised G, whatever today's defaults are."""
  old = json.loads(config.make_config('cpu').to_json())
  for name in config.LEGACY_VALUES:
    del old[name]
  cfg = config.TrainConfig.from_dict(old)
  assert {k: getattr(cfg, k) for k in config.LEGACY_VALUES} == config.LEGACY_VALUES


# The flags each command had before they were made from the config's fields.
_TRAIN_FLAGS = ('dataset', 'defense', 'width', 'gen_width', 'epochs', 'batch_size', 'lr', 'gen_lr',
                'ema_decay', 'train_size', 'test_size', 'augment', 'eps', 'pgd_steps',
                'pgd_step_size', 'c_l', 'adv_coeff', 'pgn_grad_through_adv', 'pgn_grad_input',
                'pgn_gen_steps', 'pgn_zero_init', 'pgn_eps', 'probe_eps', 'probe_size', 'seed',
                'checkpoint_every_steps', 'checkpoint_every_minutes', 'snapshot_every_epochs',
                'jit_compile', 'mixed_precision', 'deterministic', 'debug_numerics', 'distribute',
                'cpu_replicas')
_EVAL_FLAGS = ('dataset', 'num_examples', 'attacks', 'eps_list', 'pgd_steps', 'cw_iterations',
               'cw_search_steps', 'cw_lr', 'cw_initial_const', 'pgn_c_l_list', 'pgn_gen_width',
               'pgn_lr', 'pgn_attack_epochs', 'pgn_attack_train_size', 'pgn_grad_input',
               'pgn_eps', 'batch_size', 'seed')


def test_every_config_field_is_a_flag_of_its_type_with_its_help():
  from absl import flags  # pylint: disable=g-import-not-at-top
  from tf_pgn.cli.flags import define_config_flags  # pylint: disable=g-import-not-at-top
  from tf_pgn.evaluation import EvalConfig, make_eval_config  # pylint: disable=g-import-not-at-top
  parsed = {}
  for cls, old, argv in (
      (config.TrainConfig, _TRAIN_FLAGS, ['--c_l=8', '--noaugment', '--train_size=256',
                                          '--pgn_grad_input=sign', '--distribute=mirrored']),
      (EvalConfig, _EVAL_FLAGS, ['--eps_list=0.1,0.5', '--attacks=cw', '--pgn_eps=0.5'])):
    values = flags.FlagValues()
    names = define_config_flags(cls, '(default {})', values)
    assert set(old) <= set(names) and names == tuple(f.name for f in dataclasses.fields(cls))
    assert all(f.metadata.get('help') for f in dataclasses.fields(cls))
    values(['prog', *argv])
    parsed[cls] = {k: values[k].value for k in names}
  train = config.make_config('cpu', **parsed[config.TrainConfig])
  assert (train.c_l, train.augment, train.train_size, train.pgn_grad_input, train.width,
          train.distribute) == (8.0, False, 256, 'sign', 0.25, 'mirrored')
  evaluation = make_eval_config(**parsed[EvalConfig])
  assert evaluation.eps_list == (0.1, 0.5) and evaluation.attacks == ('cw',)
  assert evaluation.pgn_eps == 0.5 and evaluation.num_examples == 1000
  with pytest.raises(flags.IllegalFlagValueError):
    values = flags.FlagValues()
    define_config_flags(config.TrainConfig, '', values)
    values(['prog', '--distribute=everywhere'])
