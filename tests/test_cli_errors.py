"""Each bad input to train.py gives a one-line message naming the problem, and exit code 2."""
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
