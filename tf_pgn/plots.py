"""An evaluation's figure in the layout of the PGN paper, drawn with matplotlib's Agg canvas (no
display); the study's figures are ``tf_pgn.study.render.drawing``'s.

Figures 3-4 of the paper plot accuracy against the L2 norm of the perturbation: a minimal-norm
attack (C&W, DeepFool) gives a curve, robust accuracy at every radius; a fixed-budget attack
(FGM, MIM, PGD at an eps; PGN at a c_L) gives one point per budget. The same figure at Linf has
FAB-Linf's curve and the bounded Linf attacks' points.
"""
import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tf_pgn.io_utils import write_bytes_atomic

__all__ = ['accuracy_vs_budget']

_MARKERS = 'osD^v*'  # fixed-budget attacks often coincide: tell them apart
_X_LABELS = {'l2': 'L2 norm of the perturbation (radius, eps, or mean for PGN)',
             'linf': 'Linf norm of the perturbation (radius or eps; 8/255 = 0.031)'}


def accuracy_vs_budget(panels, path: str, norm: str = 'l2') -> None:
  """Writes a PNG with one accuracy-vs-``norm`` panel per entry of ``panels``, side by side.

  Args:
    panels: list of dicts ``title``, ``benign_accuracy`` and ``series``; each series is a dict
      ``label``, ``x`` (norms), ``y`` (accuracies) and ``curve`` (True: a line, as for a
      minimal-norm attack's accuracy at each radius; False: markers joined by a dashed line,
      one per budget).
    path: the PNG to write (atomically).
    norm: 'l2' or 'linf', the norm of every series' ``x``.
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
    ax.set_xlabel(_X_LABELS[norm])
    ax.set_ylabel('accuracy')
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(left=0.0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize='small')
  _save(fig, path)


def _figure(num_panels: int) -> Figure:
  fig = Figure(figsize=(6.0 * num_panels, 4.5), layout='constrained')
  FigureCanvasAgg(fig)
  return fig


def _save(fig: Figure, path: str) -> None:
  buffer = io.BytesIO()
  fig.savefig(buffer, format='png', dpi=120)
  write_bytes_atomic(path, buffer.getvalue())
