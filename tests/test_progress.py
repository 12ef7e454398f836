"""Progress off a terminal: a line every N seconds, from training, from an attack that runs for
longer than N seconds without returning, and nothing on a worker or with N = 0."""
import time

import numpy as np

from tf_pgn.attacks.runner import run_attack
from tf_pgn.progress import Progress


def test_off_a_terminal_a_line_every_n_seconds_says_count_share_time_and_postfix(capsys):
  with Progress('epoch 2/5', 10, initial=2, unit='step', every_seconds=0.05,
                terminal=False) as bar:
    bar.update(3, loss='2.130')
    time.sleep(0.3)
  lines = capsys.readouterr().out.splitlines()
  assert len(lines) >= 2, lines
  assert lines[-1].startswith('epoch 2/5: 5/10 step (50%), 0m00s, ~0m00s left loss=2.130'), lines
  time.sleep(0.15)  # closed: its thread has stopped
  assert capsys.readouterr().out == ''


def test_no_lines_on_a_worker_or_with_zero_seconds(capsys):
  for kwargs in (dict(enabled=False, every_seconds=0.02), dict(every_seconds=0)):
    with Progress('x', 4, terminal=False, **kwargs) as bar:
      bar.update(1)
      time.sleep(0.1)
  assert capsys.readouterr().out == ''


def test_an_attack_that_does_not_return_for_a_while_still_prints_lines(capsys):
  def slow_attack(model, x, y):
    time.sleep(0.4)
    return x

  x = np.zeros((6, 2, 2, 1), np.float32)
  run_attack(slow_attack, None, x, np.zeros(6, np.int32), batch_size=3,
             progress_desc='autoattack_eps0.0314', progress_seconds=0.1)
  lines = capsys.readouterr().out.splitlines()
  assert any(line.startswith('autoattack_eps0.0314: 0/6 img (0%)') for line in lines), lines
  assert any(line.startswith('autoattack_eps0.0314: 3/6 img (50%)') for line in lines), lines
