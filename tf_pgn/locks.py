"""One writer per folder: an advisory lock on a run directory, an evaluation folder or a sweep root.

``hold(directory)`` takes an exclusive ``fcntl.flock`` on ``<directory>/.lock`` for as long as its
block runs and writes its holder (PID, host, start time, command) into the file. A second process
is refused with a LockError naming the holder. The kernel drops the lock when its holder dies,
however it dies, so a lock left by a killed process is taken over without a question; a holder that
finishes removes the file. Within one process a folder it holds already is held again without a
second lock: flock locks on two open descriptions of one file conflict even in one process.
"""
import contextlib
import fcntl
import json
import os
import shlex
import socket
import sys
import time

from tf_pgn.io_utils import reporting_write_errors

LOCK_NAME = '.lock'
_held = set()  # real paths of the lock files this process holds


class LockError(RuntimeError):
  """Another process holds the folder; the message names it and what to do."""


def _acquire(path: str) -> int | None:
  """A descriptor of ``path`` holding its exclusive lock, or None when another process holds it."""
  while True:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      os.close(fd)
      return None
    # A holder that finished may have removed the file after it was opened here: the lock is then
    # on a file no other process will open, so lock the one now at the path instead.
    try:
      if os.path.samestat(os.fstat(fd), os.stat(path)):
        return fd
    except FileNotFoundError:
      pass
    os.close(fd)


def _holder(path: str) -> str:
  """'PID 1234 on host H (since ...: command)' from a held lock file, as far as it tells."""
  deadline = time.monotonic() + 1.0  # the holder writes its line just after taking the lock
  while True:
    try:
      with open(path) as f:
        info = json.load(f)
      return (f'PID {info["pid"]} on host {info["host"]} (since {info["started"]}: '
              f'{info["command"]})')
    except (OSError, ValueError, KeyError, TypeError):
      if time.monotonic() >= deadline:
        return 'another process'
      time.sleep(0.05)


@contextlib.contextmanager
def hold(directory: str):
  """Holds ``directory`` (made if missing) for the block.

  Raises:
    LockError: another process holds it.
    WriteError: the lock file cannot be written (a full disk).
  """
  os.makedirs(directory, exist_ok=True)
  path = os.path.realpath(os.path.join(directory, LOCK_NAME))
  if path in _held:
    yield
    return
  fd = _acquire(path)
  if fd is None:
    raise LockError(f'{directory} is in use by {_holder(path)}: wait for it to finish or stop it '
                    '(a lock left by a killed process is taken over automatically)')
  try:
    with reporting_write_errors(path):
      os.ftruncate(fd, 0)
      os.write(fd, json.dumps(dict(
          pid=os.getpid(), host=socket.gethostname(), started=time.strftime('%Y-%m-%d %H:%M:%S'),
          command=shlex.join(sys.argv))).encode() + b'\n')
    _held.add(path)
    yield
  finally:
    _held.discard(path)
    # Removed while still locked: a process that opened it meanwhile retries (_acquire).
    with contextlib.suppress(FileNotFoundError):
      os.unlink(path)
    os.close(fd)
