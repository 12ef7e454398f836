"""examples/digits.py at a tiny size: a user's Keras CNN (functional, and subclassed) on
scikit-learn's digits, PGD-AT and PGN through model.fit with callbacks, then tf_pgn.evaluate."""
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO


def _run_digits(tmp_path, *args):
  pytest.importorskip('sklearn', reason='examples/digits.py needs scikit-learn '
                      '(requirements-dev.txt)')
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO, 'examples', 'digits.py'), *args, '--epochs=1',
       '--train_size=128', '--test_size=32', '--attack_steps=2', '--cw_iterations=2', '--eps_list=1', '--verbose=0', f'--workdir={tmp_path}'],
      cwd=tmp_path, capture_output=True, text=True, timeout=300,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=REPO))
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc


def test_digits_example_trains_and_evaluates_pgd_at_and_pgn(tmp_path):
  proc = _run_digits(tmp_path, '--defenses=pgd,pgn')
  assert 'digits, functional CNN: 128 training, 32 test images' in proc.stdout
  number = r'(\d\.\d{3}|-)'
  for row in (r'PGD-AT eps 1', r'PGN c_L 0\.25'):
    assert re.search(rf'^\| {row} \| {number} \| {number} \| {number} \|$', proc.stdout, re.M), (
        proc.stdout[-2000:])
  for name in ('pgd', 'pgn'):  # the SavedModel, the TensorBoard logs; the backup deleted at the end
    assert sorted(os.listdir(tmp_path / name)) == ['classifier', 'tb']


def test_digits_example_on_a_subclassed_model(tmp_path):
  proc = _run_digits(tmp_path, '--model=subclassed', '--defenses=pgn')
  assert 'digits, subclassed CNN: 128 training, 32 test images' in proc.stdout
  number = r'(\d\.\d{3}|-)'  # '-': no rho where 2 C&W iterations fool nothing
  assert re.search(rf'^\| PGN c_L 0\.25 \| {number} \| {number} \| {number} \|$', proc.stdout,
                   re.M), proc.stdout[-2000:]
  assert sorted(os.listdir(tmp_path / 'pgn')) == ['classifier', 'tb']


def test_bad_inputs_example_shows_one_line_for_every_case(tmp_path):
  proc = subprocess.run([sys.executable, os.path.join(REPO, 'examples', 'bad_inputs.py')],
                        cwd=tmp_path, capture_output=True, text=True, timeout=300,
                        env=dict(os.environ, PYTHONPATH=REPO))
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  rows = re.findall(r'^\| (.+) \| `(InputError|ValueError|DivergedError): (.+)` \|$',
                    proc.stdout, re.M)
  assert len(rows) == 17, proc.stdout
  assert ('a diverging step (SGD at lr=inf)', 'DivergedError') in [r[:2] for r in rows]
