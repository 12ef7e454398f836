"""Fault injection: kill -9 during a step, a checkpoint write or the export; a corrupt checkpoint;
two processes on one folder; a full disk; kills at random moments (tests/soak_kills.py)."""
import contextlib
import errno
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO, run_cli
from tf_pgn import evaluation, locks
from tf_pgn.config import make_config
from tf_pgn.export import load_saved_model
from tf_pgn.io_utils import WriteError, read_jsonl
from tf_pgn.study import sweeps
from tf_pgn.trainer import Trainer

_ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=REPO)
_TRAIN = ['train.py', '--preset=tiny', '--defense=pgn', '--epochs=3', '--deterministic',
          '--checkpoint_every_steps=2']


def _train_cmd(run_dir, data_dir):
  return [sys.executable, *_TRAIN, f'--run_dir={run_dir}', f'--data_dir={data_dir}']


def _logits(run_dir):
  serve = load_saved_model(os.path.join(run_dir, 'export', 'classifier'))
  x = np.random.default_rng(0).uniform(size=(8, 32, 32, 3)).astype(np.float32)
  return serve(x).numpy()


# Runs train.py's training in-process after arming a SIGKILL at one moment (argv[1]):
#   checkpoint_write: ckpt-10's files are written (its data file cut short, as by a kill inside the
#     write) but the checkpoint state file does not list it yet;
#   export: the classifier is exported and the generator's SavedModel is written to its temporary
#     folder, not yet renamed into place.
_KILL_AT = """
import os, signal, sys
import keras
import tensorflow as tf
from tf_pgn import config, trainer
where, run_dir, data_dir = sys.argv[1:4]

def die():
  os.kill(os.getpid(), signal.SIGKILL)

if where == 'checkpoint_write':
  record_state = tf.train.CheckpointManager._record_state
  def record_state_or_die(self):
    if self._latest_checkpoint.endswith('ckpt-10'):
      data = tf.io.gfile.glob(self._latest_checkpoint + '.data-*')[0]
      with open(data, 'r+b') as f:
        f.truncate(os.path.getsize(data) // 2)
      die()
    record_state(self)
  tf.train.CheckpointManager._record_state = record_state_or_die
if where == 'export':
  export = keras.Model.export
  def export_or_die(self, path, **kwargs):
    export(self, path, **kwargs)
    if self.name == 'generator':
      die()
  keras.Model.export = export_or_die
cfg = config.make_config('tiny', defense='pgn', epochs=3, deterministic=True,
                         checkpoint_every_steps=2)
trainer.train(cfg, run_dir, data_dir)
"""


@pytest.fixture(scope='module')
def reference_run(cifar10_dir, tmp_path_factory):
  """The run directory every interrupted run must end equal to (not to be written by tests)."""
  ref = str(tmp_path_factory.mktemp('faults') / 'ref')
  subprocess.run(_train_cmd(ref, cifar10_dir), cwd=REPO, env=_ENV, check=True,
                 capture_output=True, timeout=300)
  return ref


@pytest.fixture(scope='module')
def uninterrupted(reference_run):
  """Logits of the uninterrupted run."""
  return _logits(reference_run)


def _rerun_matches(run_dir, data_dir, reference):
  rerun = subprocess.run(_train_cmd(run_dir, data_dir), cwd=REPO, env=_ENV, capture_output=True,
                         text=True, timeout=300)
  assert rerun.returncode == 0, rerun.stderr[-2000:]
  assert 'resuming' in rerun.stdout
  np.testing.assert_array_equal(reference, _logits(run_dir))
  return rerun


def test_kill_9_mid_training_then_rerun_matches_uninterrupted(cifar10_dir, tmp_path,
                                                               uninterrupted):
  killed = str(tmp_path / 'killed')
  proc = subprocess.Popen(_train_cmd(killed, cifar10_dir), cwd=REPO, env=_ENV,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 240
  while time.time() < deadline and not glob.glob(os.path.join(killed, 'ckpt', 'ckpt-6.index')):
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)  # during epoch 1 (8 steps per epoch), after a checkpoint
  proc.wait()
  assert proc.returncode == -signal.SIGKILL
  assert not os.path.exists(os.path.join(killed, 'export'))
  _rerun_matches(killed, cifar10_dir, uninterrupted)


@pytest.mark.parametrize('where', ['checkpoint_write', 'export'])
def test_kill_9_while_writing_then_rerun_matches_uninterrupted(cifar10_dir, tmp_path,
                                                                uninterrupted, where):
  killed = str(tmp_path / 'killed')
  proc = subprocess.run([sys.executable, '-c', _KILL_AT, where, killed, cifar10_dir], cwd=REPO,
                        env=_ENV, capture_output=True, text=True, timeout=300)
  assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
  state = tf.train.get_checkpoint_state(os.path.join(killed, 'ckpt'))
  if where == 'checkpoint_write':  # ckpt-10 is on disk, half written, and not listed
    assert state.model_checkpoint_path.endswith('ckpt-8')
    assert glob.glob(os.path.join(killed, 'ckpt', 'ckpt-10.data-*'))
  else:  # training finished; the generator's export sits in a temporary folder
    names = os.listdir(os.path.join(killed, 'export'))
    assert 'classifier' in names and 'generator' not in names
    assert any(n.startswith('.export-') for n in names)
  _rerun_matches(killed, cifar10_dir, uninterrupted)
  assert sorted(os.listdir(os.path.join(killed, 'export'))) == ['classifier', 'generator']


def test_corrupt_latest_checkpoint_falls_back_to_the_previous(cifar10_dir, tmp_path, capsys):
  cfg = make_config('tiny', defense='naive', epochs=1, checkpoint_every_steps=3)
  Trainer(cfg, str(tmp_path), cifar10_dir).run()
  newest = sorted(glob.glob(str(tmp_path / 'ckpt' / 'ckpt-*.data-*')),
                  key=lambda p: int(p.split('ckpt-')[1].split('.')[0]))[-1]
  with open(newest, 'r+b') as f:
    f.truncate(16)
  resumed = Trainer(cfg, str(tmp_path), cifar10_dir)
  assert resumed.restore()
  assert int(resumed.step.numpy()) == 6
  assert 'unreadable' in capsys.readouterr().out


# -- a full disk --------------------------------------------------------------------------------
_NO_SPACE = os.strerror(errno.ENOSPC)


def _assert_one_line_error(proc, program, text):
  errors = [l for l in proc.stderr.splitlines() if l.startswith(f'{program}: error:')]
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert len(errors) == 1 and text in errors[0], proc.stderr[-2000:]
  assert 'Traceback' not in proc.stderr


def _fail_replacing(monkeypatch, target):
  """os.replace fails with ENOSPC when it would put ``target`` in place."""
  replace = os.replace

  def replace_or_fail(src, dst):
    if os.path.abspath(dst) == os.path.abspath(target):
      raise OSError(errno.ENOSPC, _NO_SPACE, src)
    replace(src, dst)
  monkeypatch.setattr(os, 'replace', replace_or_fail)


def _fail_checkpoint(monkeypatch, trainer, number):
  """The trainer's save of checkpoint ``number`` writes part of TF's temporary folder, then
  fails as SaveV2 does on a full disk."""
  save = trainer.save_manager.save

  def save_or_fail(checkpoint_number):
    if checkpoint_number != number:
      return save(checkpoint_number=checkpoint_number)
    temp = os.path.join(trainer.save_manager.directory, f'ckpt-{number}_temp')
    os.makedirs(temp)
    with open(os.path.join(temp, 'part-00000-of-00001.data-00000-of-00001'), 'wb') as f:
      f.write(b'\0' * 1000)
    raise tf.errors.ResourceExhaustedError(None, None, f'{temp}/part-00000-of-00001.index.'
                                           f'tempstate1; {_NO_SPACE} [Op:SaveV2]')
  monkeypatch.setattr(trainer.save_manager, 'save', save_or_fail)


def _fail_snapshot(monkeypatch):
  """The epoch snapshot's checkpoint is written, then its write fails as on a full disk."""
  write = tf.train.Checkpoint.write

  def write_and_fail(self, file_prefix, **kwargs):
    write(self, file_prefix, **kwargs)
    raise tf.errors.ResourceExhaustedError(None, None, f'{file_prefix}; {_NO_SPACE}')
  monkeypatch.setattr(tf.train.Checkpoint, 'write', write_and_fail)


def _fail_export(monkeypatch):
  """The SavedModel is written into its temporary folder, then the write fails with ENOSPC."""
  export = keras.Model.export

  def export_and_fail(self, path, **kwargs):
    export(self, path, **kwargs)
    raise OSError(errno.ENOSPC, _NO_SPACE, os.path.join(path, 'saved_model.pb'))
  monkeypatch.setattr(keras.Model, 'export', export_and_fail)


def _leftovers(folder):
  """What a failed write must not leave in ``folder``: temporary files and folders, the lock."""
  return [p for p in glob.glob(os.path.join(folder, '**'), recursive=True)
          if re.search(r'_temp|\.tmp-|\.export-|\.old-|\.lock', os.path.basename(p))]


# where -> (what the message names, inside the run directory; the step the rerun resumes at)
_FULL_DISK = {'checkpoint': ('ckpt/ckpt-6', 3), 'metrics': ('metrics.jsonl', 6),
              'snapshot': ('epochs/epoch-1', 6), 'export': ('export/classifier', 8)}


@pytest.mark.parametrize('where', sorted(_FULL_DISK))
def test_a_write_that_fails_for_want_of_space_keeps_the_last_checkpoint_and_a_rerun_resumes(
    cifar10_dir, tmp_path, capsys, where):
  run_dir = str(tmp_path / 'run')
  cfg = make_config('tiny', defense='naive', epochs=1, checkpoint_every_steps=3)
  trainer = Trainer(cfg, run_dir, cifar10_dir)  # checkpoints at steps 3, 6 and 8 (epoch end)
  path, resumes_at = _FULL_DISK[where]
  with pytest.MonkeyPatch.context() as patch:
    if where == 'checkpoint':
      _fail_checkpoint(patch, trainer, 6)
    elif where == 'metrics':
      _fail_replacing(patch, os.path.join(run_dir, 'metrics.jsonl'))
    elif where == 'snapshot':
      _fail_snapshot(patch)
    else:
      _fail_export(patch)
    with pytest.raises(WriteError) as failed:
      trainer.run()
  assert str(failed.value).startswith(
      f'cannot write {os.path.join(run_dir, path)}: no space left on device; free some space '
      'and rerun the same command')
  assert not _leftovers(run_dir)
  assert tf.train.latest_checkpoint(os.path.join(run_dir, 'ckpt')).endswith(f'ckpt-{resumes_at}')
  capsys.readouterr()
  Trainer(cfg, run_dir, cifar10_dir).run()
  assert f'resuming {run_dir} at epoch {int(resumes_at == 8)}, step {resumes_at}' in (
      capsys.readouterr().out)
  assert [r['epoch'] for r in read_jsonl(os.path.join(run_dir, 'metrics.jsonl'))] == [1]
  assert os.path.isdir(os.path.join(run_dir, 'export', 'classifier'))
  assert os.path.isfile(os.path.join(run_dir, 'epochs', 'epoch-1.index'))


def test_an_evaluation_result_that_fails_to_write_is_reported_and_a_rerun_reuses_the_rest(
    reference_run, cifar10_dir, tmp_path, capsys):
  cfg = evaluation.make_eval_config(attacks='fgm', eps_list='0.5', num_examples=16,
                                    batch_size=16, unbounded_steps=2)
  out = str(tmp_path / 'eval')
  with pytest.MonkeyPatch.context() as patch:
    _fail_replacing(patch, os.path.join(out, 'results.json'))
    with pytest.raises(WriteError, match=re.escape(
        f'cannot write {out}/results.json: no space left on device; free some space')):
      evaluation.evaluate(cfg, reference_run, out, cifar10_dir)
  assert sorted(os.listdir(out)) == ['partial']  # no temporary file, no lock
  capsys.readouterr()
  evaluation.evaluate(cfg, reference_run, out, cifar10_dir)
  assert capsys.readouterr().out.count(': reusing ') == 2  # FGM and the unbounded PGD
  assert os.path.isfile(os.path.join(out, 'results.json'))


def _mount_tmpfs(path, size, remount=False):
  """(Re)mounts a tmpfs of ``size`` ('3m') at ``path``; skips the test where that is not
  permitted."""
  options = ('remount,' if remount else '') + f'size={size}'
  try:
    proc = subprocess.run(['mount', '-t', 'tmpfs', '-o', options, 'tmpfs', path],
                          capture_output=True, text=True)
  except OSError as e:
    pytest.skip(f'cannot run mount ({e}); the injected full-disk tests cover the code')
  if proc.returncode:
    pytest.skip(f'cannot mount a tmpfs here ({proc.stderr.strip()}); the injected full-disk '
                'tests cover the code')


@pytest.fixture
def small_disk(tmp_path):
  """A folder to mount a small tmpfs on (``_mount_tmpfs``), unmounted at the end."""
  path = str(tmp_path / 'disk')
  os.makedirs(path)
  yield path
  if os.path.ismount(path):
    subprocess.run(['umount', path], check=False)


def test_train_py_on_a_full_disk_says_so_in_one_line_and_resumes_once_space_is_freed(
    cifar10_dir, small_disk, uninterrupted):
  _mount_tmpfs(small_disk, '3m')  # room for three checkpoints, not a fourth
  run_dir = os.path.join(small_disk, 'run')
  full = subprocess.run(_train_cmd(run_dir, cifar10_dir), cwd=REPO, env=_ENV,
                        capture_output=True, text=True, timeout=300)
  _assert_one_line_error(full, 'train.py', 'no space left on device; free some space and rerun '
                         'the same command')
  assert re.search(f'cannot write {re.escape(run_dir)}/ckpt/ckpt-\\d+: ', full.stderr)
  assert not _leftovers(run_dir)
  kept = tf.train.latest_checkpoint(os.path.join(run_dir, 'ckpt'))
  tf.train.load_checkpoint(kept).get_variable_to_shape_map()  # complete and readable
  _mount_tmpfs(small_disk, '64m', remount=True)
  rerun = _rerun_matches(run_dir, cifar10_dir, uninterrupted)
  assert f'step {kept.rsplit("-", 1)[1]}' in rerun.stdout


def test_evaluate_py_on_a_full_disk_says_so_in_one_line_and_resumes_once_space_is_freed(
    reference_run, cifar10_dir, small_disk):
  _mount_tmpfs(small_disk, '512k')  # two batches of 16 images (196 KB each), not a third
  out = os.path.join(small_disk, 'eval')
  command = ['evaluate.py', f'--ckpt={reference_run}', f'--out={out}', '--attacks=fgm',
             '--eps_list=0.5', '--num_examples=48', '--batch_size=16', f'--data_dir={cifar10_dir}']
  full = run_cli(*command)
  _assert_one_line_error(full, 'evaluate.py', f'cannot write {out}/partial/whitebox_fgm_eps0.5.'
                         'batches/00002.npy: no space left on device; free some space')
  assert not _leftovers(out)
  _mount_tmpfs(small_disk, '64m', remount=True)
  rerun = run_cli(*command)
  assert rerun.returncode == 0, rerun.stderr[-2000:]
  assert 'whitebox_fgm_eps0.5: resuming after 2 finished batch(es)' in rerun.stdout


# -- two processes on one folder ----------------------------------------------------------------
def _wait_for(path, proc, seconds=240):
  deadline = time.time() + seconds
  while not os.path.exists(path):
    assert proc.poll() is None and time.time() < deadline, f'no {path}'
    time.sleep(0.05)


_HOLD = """
import sys, time
from tf_pgn import locks
with locks.hold(sys.argv[1]):
  print('held', flush=True)
  time.sleep(600)
"""


@contextlib.contextmanager
def _held_by_another_process(directory):
  """``directory``'s lock held by a process of its own, killed (SIGKILL) at the end; yields its
  PID."""
  with subprocess.Popen([sys.executable, '-c', _HOLD, directory], cwd=REPO, env=_ENV,
                        stdout=subprocess.PIPE, text=True) as proc:
    try:
      assert proc.stdout.readline() == 'held\n'
      yield proc.pid
    finally:
      proc.kill()


def test_a_second_train_py_on_a_run_directory_is_refused_until_the_first_dies(cifar10_dir,
                                                                              tmp_path):
  run_dir = str(tmp_path / 'run')
  command = [sys.executable, 'train.py', '--preset=tiny', '--defense=pgn',
             f'--run_dir={run_dir}', f'--data_dir={cifar10_dir}']
  first = subprocess.Popen(command + ['--epochs=100'], cwd=REPO, env=_ENV,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  try:
    _wait_for(os.path.join(run_dir, 'config.json'), first)
    second = subprocess.run(command + ['--epochs=1'], cwd=REPO, env=_ENV, capture_output=True,
                            text=True, timeout=300)
    assert first.poll() is None  # the first still trains
  finally:
    first.kill()
    first.wait()
  _assert_one_line_error(second, 'train.py', f'{run_dir} is in use by PID {first.pid} on host '
                         f'{socket.gethostname()}')
  third = subprocess.run(command + ['--epochs=1'], cwd=REPO, env=_ENV, capture_output=True,
                         text=True, timeout=300)  # takes over the killed process's lock
  assert third.returncode == 0, third.stderr[-2000:]
  assert 'resuming' in third.stdout
  assert not os.path.exists(os.path.join(run_dir, locks.LOCK_NAME))  # gone with its holder


def test_evaluation_and_sweeps_refuse_a_folder_another_process_holds(reference_run, cifar10_dir,
                                                                     tmp_path):
  out = str(tmp_path / 'eval')
  with _held_by_another_process(out) as pid:
    proc = run_cli('evaluate.py', f'--ckpt={reference_run}', f'--out={out}', '--attacks=fgm',
                   '--eps_list=0.5', '--num_examples=16', '--batch_size=16',
                   f'--data_dir={cifar10_dir}')
    _assert_one_line_error(proc, 'evaluate.py', f'{out} is in use by PID {pid} on host '
                           f'{socket.gethostname()}')
  assert not os.path.exists(os.path.join(out, 'partial'))
  root = str(tmp_path / 'root')
  shutil.copytree(reference_run, os.path.join(root, 'pgn_c_l50_w0.0625_s1234'))
  jobs = sweeps.sweep_jobs('table2', 'tiny')
  with _held_by_another_process(root) as pid:
    with pytest.raises(locks.LockError, match=f'{re.escape(root)} is in use by PID {pid} '):
      sweeps.run_sweep(jobs, root, 'tiny', 'cifar10', cifar10_dir, max_minutes=0)
    with pytest.raises(locks.LockError, match=f'PID {pid} '):
      sweeps.run_progress(root, 'cifar10', cifar10_dir)
  # The holder was killed: its lock is taken over.
  status = sweeps.run_sweep(jobs, root, 'tiny', 'cifar10', cifar10_dir, max_minutes=0)
  assert set(status.values()) == {'not started'}


def test_a_folder_this_process_holds_is_held_again_and_a_dead_holders_lock_taken_over(
    tmp_path):
  lock = tmp_path / locks.LOCK_NAME
  lock.write_text(json.dumps(dict(pid=999999, host='gone', started='then', command='killed')))
  with locks.hold(str(tmp_path)):
    assert json.loads(lock.read_text())['pid'] == os.getpid()
    with locks.hold(str(tmp_path / '.')):  # the same folder by another name: no self-deadlock
      pass
    assert lock.exists()
  assert not lock.exists()


# -- kills at random moments --------------------------------------------------------------------
def test_soak_script_a_few_random_kills_of_training_and_evaluation_change_nothing(cifar10_dir,
                                                                                 tmp_path):
  """tests/soak_kills.py in short (README: the full soak); it prints a line per kill."""
  proc = subprocess.run([sys.executable, os.path.join('tests', 'soak_kills.py'),
                         '--train_kills=2', '--eval_kills=1', '--eval_examples=64', '--seed=1',
                         f'--data_dir={cifar10_dir}', f'--workdir={tmp_path}'], cwd=REPO,
                        env=_ENV, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  kills = [l for l in proc.stdout.splitlines() if re.match(r'(train|eval) kill \d', l)]
  assert len(kills) == 3 and all(l.endswith(': identical') for l in kills), proc.stdout
