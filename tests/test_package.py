"""The package: pip installs it (no dependencies, no network) and it imports from outside the
checkout, with its two console scripts."""
import glob
import os
import shutil
import subprocess
import sys

from conftest import REPO


def test_pip_install_gives_a_package_and_commands_that_work_outside_the_checkout(tmp_path):
  src = tmp_path / 'src'
  shutil.copytree(os.path.join(REPO, 'tf_pgn'), src / 'tf_pgn',
                  ignore=shutil.ignore_patterns('__pycache__'))
  for name in ('pyproject.toml', 'MANIFEST.in', 'requirements.txt', 'README.md'):
    shutil.copy(os.path.join(REPO, name), src / name)
  target = tmp_path / 'site'
  pip = subprocess.run([sys.executable, '-m', 'pip', 'install', '--quiet', '--no-deps',
                        '--no-build-isolation', '--no-index', '--target', str(target), str(src)],
                       capture_output=True, text=True, timeout=300)
  assert pip.returncode == 0, pip.stderr[-3000:]
  env = dict(os.environ, PYTHONPATH=str(target), TF_CPP_MIN_LOG_LEVEL='2')
  imported = subprocess.run(
      [sys.executable, '-c', 'import tf_pgn, tf_pgn.cli.train, tf_pgn.cli.evaluate; '
       'print(tf_pgn.__version__, tf_pgn.__file__, tf_pgn.cli.evaluate.run.__doc__)'],
      cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
  assert imported.returncode == 0, imported.stderr[-3000:]
  version, path, *_ = imported.stdout.split()
  assert version == '0.1.0' and path.startswith(str(target))
  info, = glob.glob(str(target / 'tf_pgn-*.dist-info'))
  with open(os.path.join(info, 'entry_points.txt')) as f:
    entry_points = f.read()
  assert 'tf-pgn-train = tf_pgn.cli.train:run' in entry_points
  assert 'tf-pgn-evaluate = tf_pgn.cli.evaluate:run' in entry_points
  with open(os.path.join(info, 'METADATA')) as f:
    assert 'Requires-Dist: tensorflow==2.21.0' in f.read()
  help_text = subprocess.run([str(target / 'bin' / 'tf-pgn-train'), '--help'], cwd=tmp_path,
                             env=env, capture_output=True, text=True, timeout=120)
  # absl's --help exits 1 after printing the flags.
  assert '--preset' in help_text.stdout and '--pgn_grad_input' in help_text.stdout, (
      help_text.stderr[-3000:])
