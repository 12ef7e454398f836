"""One-line errors: the library's own (a bad input, a diverged fit) and, for the command lines,
a known problem printed as its message with exit code 2."""
import contextlib
import sys

from tf_pgn.config import ConfigError
from tf_pgn.data import DataError
from tf_pgn.distribute import DistributeError
from tf_pgn.export import ModelLoadError
from tf_pgn.io_utils import WriteError
from tf_pgn.locks import LockError


class InputError(ValueError):
  """A bad input to the library (``AdversarialModel``, ``RobustnessProbe``, ``tf_pgn.inputs``'
  checks): one line that names the input and the fix."""


class DivergedError(RuntimeError):
  """Training made a NaN or Inf loss: one line naming the step (``AdversarialModel.fit``)."""


USER_ERRORS = (ConfigError, DataError, DistributeError, InputError, LockError, ModelLoadError,
               WriteError)


@contextlib.contextmanager
def one_line(program: str, extra: tuple = ()):
  """Turns the library's user-facing errors into ``program: error: message`` and exit code 2."""
  from tf_pgn.trainer import TrainError  # pylint: disable=g-import-not-at-top
  try:
    yield
  except USER_ERRORS + (TrainError,) + extra as e:
    print(f'{program}: error: {e}', file=sys.stderr, flush=True)
    sys.exit(2)
  except KeyboardInterrupt:
    print(f'{program}: interrupted; rerun the same command to resume', file=sys.stderr)
    sys.exit(130)
