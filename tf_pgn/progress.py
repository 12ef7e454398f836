"""Progress a user can see, on a terminal and off one.

On a terminal: tqdm's bar. Off one (``nohup``, a batch scheduler, output sent to a log file) a
bar's carriage returns would make one unreadable line, and tqdm stays silent; there a line is
printed every ``every_seconds`` instead, by a background thread, so a call that runs for minutes
without returning (an AutoAttack batch) still says how far the job is and that it is alive.
"""
import sys
import threading
import time

from tqdm import tqdm

__all__ = ['DEFAULT_SECONDS', 'Progress']

DEFAULT_SECONDS = 60.0


def _clock(seconds: float) -> str:
  seconds = int(seconds)
  return f'{seconds // 3600}h{seconds // 60 % 60:02d}m' if seconds >= 3600 else (
      f'{seconds // 60}m{seconds % 60:02d}s')


class Progress:
  """How far a loop of ``total`` units is: ``update(n, **postfix)`` after each piece of work,
  ``close()`` (or a ``with`` block) at the end.

  Args:
    desc: what the loop is (``'epoch 3/15'``, ``'autoattack_eps0.0314'``).
    total: units of the whole loop; ``initial`` of them already done (a resumed epoch).
    unit: the units' name.
    every_seconds: off a terminal, a line every this many seconds (0 or None: no lines).
    enabled: False shows nothing (a worker replica).
    terminal: whether the bar can be drawn (default: sys.stderr is a terminal, tqdm's test).
  """

  def __init__(self, desc: str, total: int, initial: int = 0, unit: str = 'it',
               every_seconds: float | None = DEFAULT_SECONDS, enabled: bool = True,
               terminal: bool | None = None):
    self.desc, self.total, self.unit = desc, total, unit
    self.n, self._initial, self._postfix = initial, initial, {}
    self._start = time.perf_counter()
    self._bar = self._thread = None
    self._stop = threading.Event()
    if not enabled:
      return
    if sys.stderr.isatty() if terminal is None else terminal:
      self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=False,
                       mininterval=1.0)
    elif every_seconds:
      self._thread = threading.Thread(target=self._beat, args=(every_seconds,), daemon=True)
      self._thread.start()

  def update(self, n: int = 1, **postfix) -> None:
    """``n`` more units done; ``postfix`` (name=text) shown beside the count."""
    self.n += n
    self._postfix.update(postfix)
    if self._bar is not None:
      self._bar.update(n)
      if postfix:
        self._bar.set_postfix(self._postfix)

  def line(self) -> str:
    """The line printed off a terminal: count, share, elapsed and remaining time, postfix."""
    elapsed = time.perf_counter() - self._start
    done = self.n - self._initial
    share = f' ({100 * self.n / self.total:.0f}%)' if self.total else ''
    left = (f', ~{_clock(elapsed / done * (self.total - self.n))} left'
            if done and self.total else '')
    extra = ''.join(f' {k}={v}' for k, v in self._postfix.items())
    return f'{self.desc}: {self.n}/{self.total} {self.unit}{share}, {_clock(elapsed)}{left}{extra}'

  def _beat(self, every_seconds: float) -> None:
    while not self._stop.wait(every_seconds):
      print(self.line(), flush=True)

  def close(self) -> None:
    self._stop.set()
    if self._thread is not None:
      self._thread.join()
    if self._bar is not None:
      self._bar.close()

  def __enter__(self) -> 'Progress':
    return self

  def __exit__(self, *exc) -> None:
    self.close()
