"""Soak test: SIGKILL train.py and evaluate.py at random moments, rerun them, compare the results.

  python tests/soak_kills.py --train_kills=20 --eval_kills=10 --seed=18   # the full soak
  python tests/soak_kills.py --train_kills=1 --eval_kills=0 --seed=25     # replays kill seed=25

Each kill is a trial of its own in a fresh folder: the command starts, gets SIGKILL at a moment
drawn from the trial's seed (past its first output into the folder by a uniform fraction of the
time the uninterrupted run took from there to its end) and is rerun to the end. A training (tiny
PGN, ``--deterministic``) must then hold every variable of its newest checkpoint bit-identical to
the uninterrupted run's, export a classifier with identical logits and keep one metrics row per
epoch; an evaluation (FGM and PGD at four eps and DeepFool on ``--eval_examples`` images in
batches of 16: at 256, about half its time goes to attacks past their first batch, the rest to
start-up and tracing) must write a results.json equal to the uninterrupted one but for timings.
Trial k of a kind uses seed ``--seed + k``, printed on its line (``--seed=S`` with one kill
replays it); a run that ends before its kill is not counted. One line per trial; exits 1 on any
difference.

pytest does not collect this file (its name does not match test_*.py); tests/test_faults.py runs
a short version.
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # before TensorFlow loads (comparisons)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=REPO)
TRAIN = ['train.py', '--preset=tiny', '--defense=pgn', '--epochs=3', '--deterministic',
         '--checkpoint_every_steps=2']
EVAL = ['evaluate.py', '--attacks=fgm,pgd,deepfool', '--batch_size=16']
TIMINGS = ('seconds', 'images_per_second', 'resumed_examples', 'out_dir')  # differ by design


class Training:
  """tiny PGN training runs, compared by checkpoint variables, exported logits and metrics."""
  name = 'train'

  def __init__(self, data_dir: str):
    self.data_dir = data_dir

  def command(self, folder: str) -> list:
    return [sys.executable, *TRAIN, f'--run_dir={folder}', f'--data_dir={self.data_dir}']

  def first_output(self, folder: str) -> str:
    return os.path.join(folder, 'config.json')

  def left(self, folder: str) -> str:
    """What a killed run left: its newest checkpoint and whether it exported."""
    try:
      with open(os.path.join(folder, 'ckpt', 'checkpoint')) as f:
        newest = re.search(r'^model_checkpoint_path: "(.*)"', f.read(), re.M).group(1)
    except (OSError, AttributeError):
      newest = 'no checkpoint'
    exported = os.path.isdir(os.path.join(folder, 'export', 'classifier'))
    return newest + (', exported' if exported else '')

  def difference(self, folder: str, reference: str) -> str | None:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from tf_pgn.export import load_saved_model  # pylint: disable=g-import-not-at-top
    from tf_pgn.io_utils import read_jsonl  # pylint: disable=g-import-not-at-top
    paths = [tf.train.latest_checkpoint(os.path.join(d, 'ckpt')) for d in (reference, folder)]
    if os.path.basename(paths[0]) != os.path.basename(paths[1] or ''):
      return f'newest checkpoint {paths[1]}, not {os.path.basename(paths[0])}'
    ref, got = (tf.train.load_checkpoint(p) for p in paths)
    for name in sorted(ref.get_variable_to_shape_map()):
      if name.startswith(('save_counter', '_CHECKPOINTABLE_OBJECT_GRAPH')):  # counts the saves
        continue
      if not np.array_equal(ref.get_tensor(name), got.get_tensor(name)):
        return f'checkpoint variable {name} differs'
    x = np.random.default_rng(0).uniform(size=(8, 32, 32, 3)).astype(np.float32)
    ref, got = (load_saved_model(os.path.join(d, 'export', 'classifier'))(x).numpy()
                for d in (reference, folder))
    if not np.array_equal(ref, got):
      return 'exported logits differ'
    epochs = [row['epoch'] for row in read_jsonl(os.path.join(folder, 'metrics.jsonl'))]
    return None if epochs == [1, 2, 3] else f'metrics.jsonl holds epochs {epochs}'


class Evaluation:
  """Evaluations of one trained model, compared by results.json without its timings."""
  name = 'eval'

  def __init__(self, data_dir: str, ckpt: str, examples: int):
    self.data_dir, self.ckpt, self.examples = data_dir, ckpt, examples

  def command(self, folder: str) -> list:
    return [sys.executable, *EVAL, f'--num_examples={self.examples}', f'--ckpt={self.ckpt}',
            f'--out={folder}', f'--data_dir={self.data_dir}']

  def first_output(self, folder: str) -> str:
    return os.path.join(folder, 'partial')

  def left(self, folder: str) -> str:
    """What a killed run left: finished attacks and batches of the one in progress."""
    partial = os.path.join(folder, 'partial')
    names = os.listdir(partial) if os.path.isdir(partial) else []
    batches = sum(len([n for n in os.listdir(os.path.join(partial, d)) if n.endswith('.npy')])
                  for d in names if d.endswith('.batches'))
    return f'{sum(n.endswith(".json") for n in names)} results, {batches} batches'

  def difference(self, folder: str, reference: str) -> str | None:
    results = [_without_timings(_read_json(os.path.join(d, 'results.json')))
               for d in (reference, folder)]
    return _first_difference(*results)


def _read_json(path: str):
  with open(path) as f:
    return json.load(f)


def _without_timings(obj):
  if isinstance(obj, dict):
    return {k: _without_timings(v) for k, v in obj.items() if k not in TIMINGS}
  if isinstance(obj, list):
    return [_without_timings(v) for v in obj]
  return obj


def _first_difference(ref, got, where: str = 'results') -> str | None:
  """Where two JSON values first differ, or None when equal."""
  if isinstance(ref, dict) and isinstance(got, dict) and ref.keys() == got.keys():
    return next((d for k in ref if (d := _first_difference(ref[k], got[k], f'{where}.{k}'))),
                None)
  if isinstance(ref, list) and isinstance(got, list) and len(ref) == len(got):
    return next((d for i, (a, b) in enumerate(zip(ref, got))
                 if (d := _first_difference(a, b, f'{where}[{i}]'))), None)
  return None if ref == got else f'{where}: {got!r}, not {ref!r}'


def _run_to_end(command: list) -> subprocess.CompletedProcess:
  proc = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=900)
  if proc.returncode:
    raise RuntimeError(f'{" ".join(command[1:])} failed ({proc.returncode}):\n'
                       f'{proc.stderr[-3000:]}')
  return proc


def _start(kind, folder: str, stderr=subprocess.DEVNULL) -> subprocess.Popen:
  """Starts ``kind`` into ``folder`` and waits for its first output there (or its end): the
  start-up before it (imports, data) takes seconds that vary with the machine's load."""
  proc = subprocess.Popen(kind.command(folder), cwd=REPO, env=ENV, stdout=subprocess.DEVNULL,
                          stderr=stderr)
  while proc.poll() is None and not os.path.exists(kind.first_output(folder)):
    time.sleep(0.02)
  return proc


def _timed_reference(kind, folder: str) -> float:
  """Runs ``kind`` uninterrupted into ``folder``; returns the seconds from its first output to
  its end."""
  with tempfile.TemporaryFile('w+') as log:
    proc = _start(kind, folder, log)
    start = time.monotonic()
    proc.wait()
    if proc.returncode:
      log.seek(0)
      raise RuntimeError(f'the uninterrupted {kind.name} run failed ({proc.returncode}):\n'
                         f'{log.read()[-3000:]}')
  return time.monotonic() - start


def _kill(kind, folder: str, after: float) -> bool:
  """Starts ``kind`` into ``folder`` and sends it SIGKILL ``after`` seconds past its first
  output; returns whether the kill landed (False: the run ended first)."""
  proc = _start(kind, folder)
  try:
    proc.wait(timeout=after)
    return False
  except subprocess.TimeoutExpired:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


def soak(kind, kills: int, seed: int, workdir: str) -> int:
  """Runs kill trials of ``kind`` until ``kills`` kills have landed (a run that ends before its
  kill, on a machine faster than during the uninterrupted run, is not counted and the next seed
  drawn); prints a line each; returns how many differed."""
  if not kills:
    return 0
  reference = os.path.join(workdir, f'{kind.name}-uninterrupted')
  shutil.rmtree(reference, ignore_errors=True)  # left by an earlier soak in --workdir
  seconds = _timed_reference(kind, reference)
  print(f'{kind.name}: the uninterrupted run took {seconds:.1f} s from its first output to its '
        'end', flush=True)
  landed = differed = 0
  for trial_seed in range(seed, seed + 3 * kills):
    if landed == kills:
      break
    fraction = random.Random(f'{kind.name}-{trial_seed}').random()
    at = fraction * seconds
    folder = os.path.join(workdir, f'{kind.name}-seed{trial_seed}')
    shutil.rmtree(folder, ignore_errors=True)
    killed = _kill(kind, folder, at)
    left = kind.left(folder)
    try:
      _run_to_end(kind.command(folder))
      difference = kind.difference(folder, reference)
    except Exception as e:  # pylint: disable=broad-except
      difference = f'{type(e).__name__}: {e}'  # a failed rerun or a missing output
    landed += killed
    verdict = 'identical' if difference is None else f'DIFFERENT: {difference}'
    what = (f'{kind.name} kill {landed}/{kills} seed={trial_seed}: killed' if killed else
            f'{kind.name} seed={trial_seed}: not counted, the run ended before its kill')
    print(f'{what} at first output + {at:.2f} s ({fraction:.2f} of the run; left {left}): '
          f'{verdict}', flush=True)
    if difference is None:
      shutil.rmtree(folder, ignore_errors=True)
    else:
      differed += 1
  if landed < kills:
    print(f'{kind.name}: only {landed} of {kills} kills landed in {3 * kills} trials', flush=True)
    differed += kills - landed
  return differed


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--train_kills', type=int, default=20)
  parser.add_argument('--eval_kills', type=int, default=10)
  parser.add_argument('--eval_examples', type=int, default=256,
                      help='test images per evaluation (the test suite passes 64 to be quick)')
  parser.add_argument('--seed', type=int, default=18, help='trial k of a kind uses seed + k')
  parser.add_argument('--data_dir', default=os.environ.get('TF_PGN_DATA_DIR', os.path.expanduser(
      '~/.cache/tf_pgn')), help='folder holding cifar-10-batches-py')
  parser.add_argument('--workdir', help='where the runs go (default: a temporary folder, '
                      'removed unless a run differed)')
  args = parser.parse_args()
  workdir = args.workdir or tempfile.mkdtemp(prefix='soak-kills-')
  os.makedirs(workdir, exist_ok=True)
  training = Training(args.data_dir)
  differed = soak(training, args.train_kills, args.seed, workdir)
  if args.eval_kills:
    model = os.path.join(workdir, 'train-uninterrupted')  # the evaluated model: a tiny PGN run
    if not os.path.isdir(os.path.join(model, 'export', 'classifier')):
      _run_to_end(training.command(model))
    differed += soak(Evaluation(args.data_dir, model, args.eval_examples), args.eval_kills,
                     args.seed, workdir)
  total = args.train_kills + args.eval_kills
  print(f'{total - differed} of {total} kills identical; seed {args.seed}', flush=True)
  if differed:
    print(f'the differing runs are in {workdir}', flush=True)
  elif not args.workdir:
    shutil.rmtree(workdir, ignore_errors=True)
  return 1 if differed else 0


if __name__ == '__main__':
  sys.exit(main())
