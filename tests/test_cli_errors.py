"""Each bad input to train.py gives a one-line message naming the problem, and exit code 2."""
import json
import os

import pytest

from conftest import run_cli


def _assert_one_line_error(proc, pattern):
  err_lines = [l for l in proc.stderr.splitlines() if l.startswith('train.py: error:')]
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert len(err_lines) == 1 and pattern in err_lines[0], proc.stderr[-2000:]
  assert 'Traceback' not in proc.stderr


@pytest.mark.parametrize('flags,pattern', [
    (['--dataset=mnist'], "unknown dataset 'mnist'"),
    (['--defense=trades'], "unknown defense 'trades'"),
    (['--defense=fgm', '--eps=-0.5'], '--eps=-0.5 is negative'),
    (['--preset=huge'], "unknown preset 'huge'"),
    (['--checkpoint_every_minutes=0'], '--checkpoint_every_minutes=0.0 must be positive'),
    (['--debug_numerics', '--deterministic'], '--debug_numerics with --deterministic'),
    (['--jit_compile', '--distribute=mirrored'], '--jit_compile with --distribute=mirrored'),
])
def test_bad_flags(tmp_path, flags, pattern):
  proc = run_cli('train.py', '--preset=tiny', f'--run_dir={tmp_path}', *flags)
  _assert_one_line_error(proc, pattern)


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
