"""Figures in the layout of the PGN paper, drawn with matplotlib's Agg canvas (no display).

Figures 3-4 of the paper plot accuracy against the L2 norm of the perturbation: a minimal-norm
attack (C&W, DeepFool) gives a curve, robust accuracy at every radius; a fixed-budget attack
(FGM, MIM, PGD at an eps; PGN at a c_L) gives one point per budget. Figure 5 plots benign
accuracy against rho_cw, Figure 2 (right) accuracy and robustness epoch by epoch.
"""
import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tf_pgn.io_utils import write_bytes_atomic

__all__ = ['accuracy_vs_l2', 'robustness_curves', 'training_progress']

_MARKERS = 'osD^v*'  # fixed-budget attacks often coincide: tell them apart


def accuracy_vs_l2(panels, path: str) -> None:
  """Writes a PNG with one accuracy-vs-L2 panel per entry of ``panels``, side by side.

  Args:
    panels: list of dicts ``title``, ``benign_accuracy`` and ``series``; each series is a dict
      ``label``, ``x`` (L2 norms), ``y`` (accuracies) and ``curve`` (True: a line, as for a
      minimal-norm attack's accuracy at each radius; False: markers joined by a dashed line,
      one per budget).
    path: the PNG to write (atomically).
  """
  fig = _figure(len(panels))
  for i, panel in enumerate(panels):
    ax = fig.add_subplot(1, len(panels), i + 1)
    ax.axhline(panel['benign_accuracy'], color='grey', linestyle=':', label='benign')
    for j, series in enumerate(panel['series']):
      style = (dict(linestyle='-') if series['curve'] else
               dict(linestyle='--', marker=_MARKERS[j % len(_MARKERS)], fillstyle='none'))
      ax.plot(series['x'], series['y'], label=series['label'], **style)
    ax.set_title(panel['title'])
    ax.set_xlabel('L2 norm of the perturbation (radius, eps, or mean for PGN)')
    ax.set_ylabel('accuracy')
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(left=0.0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize='small')
  _save(fig, path)


def robustness_curves(panels, path: str) -> None:
  """Writes Figure 5 (benign accuracy vs rho_cw; outer curves are more robust) as a PNG.

  Args:
    panels: list of (title, curves); curves maps a label to points (rho_cw, accuracy, text).
    path: the PNG to write (atomically).
  """
  fig = _figure(len(panels))
  for i, (title, curves) in enumerate(panels):
    ax = fig.add_subplot(1, len(panels), i + 1)
    for label, points in curves.items():
      ax.plot([p[0] for p in points], [p[1] for p in points], marker='o', label=label)
      for x, y, text in points:
        ax.annotate(text, (x, y), textcoords='offset points', xytext=(4, 4), fontsize='x-small')
    ax.set_title(title)
    ax.set_xlabel('rho_cw: mean L2 of successful C&W perturbations')
    ax.set_ylabel('benign test accuracy')
    ax.grid(alpha=0.3)
    if curves:
      ax.legend(fontsize='small')
  _save(fig, path)


def training_progress(runs, path: str, probe: str) -> None:
  """Writes Figure 2 (right) as a PNG: benign test accuracy, the per-epoch robustness probe and,
  where measured, rho_cw at the epoch snapshots, against the epoch, one line per run.

  Args:
    runs: list of dicts ``label``, ``epoch``, ``test_acc`` and ``probe`` (lists, one entry per
      epoch), and optionally ``rho_epoch`` and ``rho_cw`` (the snapshots' epochs and rho_cw).
    path: the PNG to write (atomically).
    probe: what the probe measures, for its panel's axis.
  """
  panels = [('epoch', 'test_acc', 'benign test accuracy'), ('epoch', 'probe', probe)]
  if any(run.get('rho_cw') for run in runs):
    panels.append(('rho_epoch', 'rho_cw', 'rho_cw (C&W at the epoch snapshots)'))
  fig = _figure(len(panels))
  for i, (x_key, y_key, ylabel) in enumerate(panels):
    ax = fig.add_subplot(1, len(panels), i + 1)
    for j, run in enumerate(runs):
      if run.get(y_key):
        ax.plot(run[x_key], run[y_key], marker=_MARKERS[j % len(_MARKERS)], label=run['label'])
    ax.set_xlabel('epoch')
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if runs:
      ax.legend(fontsize='x-small')
  _save(fig, path)


def _figure(num_panels: int) -> Figure:
  fig = Figure(figsize=(6.0 * num_panels, 4.5), layout='constrained')
  FigureCanvasAgg(fig)
  return fig


def _save(fig: Figure, path: str) -> None:
  buffer = io.BytesIO()
  fig.savefig(buffer, format='png', dpi=120)
  write_bytes_atomic(path, buffer.getvalue())
