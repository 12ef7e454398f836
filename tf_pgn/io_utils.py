"""Atomic file writes: a reader sees the old file or the complete new one."""
import json
import os
import tempfile


def write_bytes_atomic(path: str, payload: bytes) -> None:
  directory = os.path.dirname(os.path.abspath(path))
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
