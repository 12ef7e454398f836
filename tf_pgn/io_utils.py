"""Atomic file writes (a reader sees the old file or the complete new one) and writes that fail
for a reason outside the program (a full disk) reported in one line."""
import contextlib
import errno
import json
import os
import tempfile

# errno of a failed write -> what the user does about it.
_FIXES = {errno.ENOSPC: 'free some space', errno.EDQUOT: 'free some space or raise the quota',
          errno.EACCES: 'make it writable', errno.EPERM: 'make it writable',
          errno.EROFS: 'make it writable', errno.EIO: 'check the disk'}


class WriteError(RuntimeError):
  """A file could not be written (a full disk, a read-only folder); the message names the path,
  the cause and the fix."""


def _failed_write(error: Exception) -> int | None:
  """The errno of the failed write ``error`` reports: an OSError's own, or the one a TensorFlow
  error names in its message (TF wraps ENOSPC in ResourceExhaustedError, '...; No space left on
  device'); None for any other error."""
  if isinstance(error, OSError):
    return error.errno if error.errno in _FIXES else None
  return next((code for code in _FIXES if os.strerror(code) in str(error)), None)


@contextlib.contextmanager
def reporting_write_errors(path: str, cleanup=None):
  """Turns a failed write of ``path`` in the block into a WriteError naming it, the cause and the
  fix, once ``cleanup()`` has removed what the write left half done. Other errors pass unchanged."""
  try:
    yield
  except WriteError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    code = _failed_write(e)
    if code is None:
      raise
    if cleanup:
      cleanup()
    raise WriteError(f'cannot write {path}: {os.strerror(code).lower()}; {_FIXES[code]} and rerun '
                     'the same command: it resumes where it stopped') from None


def write_bytes_atomic(path: str, payload: bytes) -> None:
  """Writes ``payload`` to ``path`` atomically; a failed write leaves no temporary file.

  Raises:
    WriteError: the write failed (a full disk, a read-only folder).
  """
  directory = os.path.dirname(os.path.abspath(path))
  with reporting_write_errors(path):
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.tmp-', dir=directory)
    try:
      with os.fdopen(fd, 'wb') as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
      os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are for everyone to read
      os.replace(tmp, path)
    except BaseException:
      if os.path.exists(tmp):
        os.unlink(tmp)
      raise


def write_text_atomic(path: str, text: str) -> None:
  write_bytes_atomic(path, text.encode('utf-8'))


def write_json_atomic(path: str, obj) -> None:
  write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + '\n')


def read_jsonl(path: str) -> list:
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]
