"""How the report's figures are drawn (matplotlib's Agg canvas, no display): a colour and marker
per curve that every figure shares, one legend per figure below its panels and outside the data,
and point labels placed where they overlap no other label and no marker."""
import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

from tf_pgn.io_utils import write_bytes_atomic

# Curves by their label (protocol.curve_label); others take the free ones of _PALETTE in turn.
_STYLES = {'naive': ('#7f7f7f', 'D'), 'FGM-AT': ('#1f77b4', 'o'), 'PGD-AT': ('#2ca02c', 's'),
           'PGN': ('#d62728', '^'), 'PGN (normalized)': ('#ff7f0e', 'v'),
           'PGN (normalized_zero_init)': ('#9467bd', '<')}
_PALETTE = (('#1f77b4', 'o'), ('#ff7f0e', 's'), ('#2ca02c', '^'), ('#d62728', 'v'),
            ('#9467bd', 'D'), ('#8c564b', 'p'), ('#e377c2', 'h'), ('#17becf', '*'),
            ('#bcbd22', 'X'), ('#7f7f7f', 'P'))
LABEL_SIZE = 8
# Where a label may go, as (dx, dy) directions from its point, tried in turn at growing distances.
_DIRECTIONS = ((1, 0.5), (1, -1.2), (-1, 0.5), (-1, -1.2), (0, 1.4), (0, -2), (1.4, 0), (-1.4, 0))
_DISTANCES = (4, 9, 15, 22, 30)  # points


def style(label: str, order: list) -> dict:
  """Colour and marker of the curve ``label`` among ``order`` (the curves of the figure): its own
  where it has one, else the next of _PALETTE that no curve of the figure has."""
  if label in _STYLES:
    color, marker = _STYLES[label]
  else:
    taken = {_STYLES[name][0] for name in order if name in _STYLES}
    free = [s for s in _PALETTE if s[0] not in taken]
    others = [name for name in dict.fromkeys(order) if name not in _STYLES]
    color, marker = free[others.index(label) % len(free)]
  return dict(color=color, marker=marker)


def figure(cols: int, rows: int = 1, panel=(4.0, 3.4)) -> tuple:
  """(figure, axes list) of ``rows`` x ``cols`` panels of ``panel`` inches."""
  fig = Figure(figsize=(panel[0] * cols, panel[1] * rows + 0.6), layout='constrained')
  FigureCanvasAgg(fig)
  axes = [fig.add_subplot(rows, cols, i + 1) for i in range(rows * cols)]
  for ax in axes:
    ax.grid(alpha=0.3)
  return fig, axes


def legend_below(fig: Figure, axes: list) -> None:
  """One legend for every panel's labelled artists, below the panels, in as many columns as fit
  the figure's width."""
  handles = {}
  for ax in axes:
    for handle, label in zip(*ax.get_legend_handles_labels()):
      handles.setdefault(label, handle)
  renderer = fig.canvas.get_renderer()
  for cols in range(len(handles), 0, -1):
    legend = fig.legend(handles.values(), handles.keys(), loc='outside lower center', ncols=cols,
                        fontsize=9, frameon=False)
    if cols == 1 or legend.get_window_extent(renderer).width <= 0.98 * fig.bbox.width:
      break
    legend.remove()


def _box(px: float, py: float, half: float) -> Bbox:
  return Bbox.from_extents(px - half, py - half, px + half, py + half)


def _obstacles(ax, line) -> list:
  """Boxes (pixels) that a label must not cover: the line's markers, and its segments sampled
  every 3 pixels."""
  xy = ax.transData.transform(line.get_xydata())
  boxes = []
  if line.get_marker() not in (None, 'None', '', ' '):
    boxes += [_box(px, py, 4.0) for px, py in xy]
  if line.get_linestyle() not in ('None', '', ' '):
    for (x0, y0), (x1, y1) in zip(xy[:-1], xy[1:]):
      steps = max(1, int(max(abs(x1 - x0), abs(y1 - y0)) / 3))
      boxes += [_box(x0 + (x1 - x0) * i / steps, y0 + (y1 - y0) * i / steps, 1.5)
                for i in range(steps + 1)]
  return boxes


def _aligned(note, offset: tuple) -> None:
  """Moves ``note`` to ``offset`` (points) from its point, aligned away from the point."""
  note.xyann = offset
  note.set_ha('left' if offset[0] > 0 else 'right' if offset[0] < 0 else 'center')
  note.set_va('bottom' if offset[1] > 0 else 'top' if offset[1] < 0 else 'center')


def _fits(note, offset: tuple, renderer, inside: Bbox, blocked: list) -> bool:
  """Whether ``note`` moved to ``offset`` lies inside ``inside`` and overlaps no box of
  ``blocked``."""
  _aligned(note, offset)
  box = note.get_window_extent(renderer)
  return (inside.contains(box.x0, box.y0) and inside.contains(box.x1, box.y1) and
          not any(box.overlaps(b) for b in blocked))


def label_points(fig: Figure, labels: dict) -> None:
  """Freezes the layout and writes each label of ``labels`` ({axes: [(x, y, text, color)]}) next
  to its point, in the first place (_DIRECTIONS at _DISTANCES) that overlaps no label placed
  before it, no marker of the axes and nothing outside them (the nearest place if none does); a
  label away from its point gets a leader line."""
  fig.canvas.draw()
  fig.set_layout_engine('none')
  renderer = fig.canvas.get_renderer()
  places = [(d, (dx * d, dy * d)) for d in _DISTANCES for dx, dy in _DIRECTIONS]
  for ax, items in labels.items():
    inside = ax.get_window_extent(renderer)
    markers = [box for line in ax.get_lines() for box in _obstacles(ax, line)]
    placed = []
    for x, y, text, color in items:
      note = ax.annotate(text, (x, y), xytext=(0, 0), textcoords='offset points',
                         fontsize=LABEL_SIZE, color=color)
      distance, offset = next(((d, o) for d, o in places
                               if _fits(note, o, renderer, inside, placed + markers)), places[0])
      _aligned(note, offset)
      placed.append(note.get_window_extent(renderer))
      if distance > _DISTANCES[0]:
        note.remove()
        note = ax.annotate(text, (x, y), xytext=offset, textcoords='offset points',
                           fontsize=LABEL_SIZE, color=color,
                           arrowprops=dict(arrowstyle='-', color=color, linewidth=0.6,
                                           shrinkA=0, shrinkB=3))
        _aligned(note, offset)


def draw(panels: list, path: str, cols: int | None = None, panel=(4.0, 3.4)) -> None:
  """Writes ``panels`` as a PNG, ``cols`` to a row, one legend below them all.

  Args:
    panels: dicts ``title``, ``xlabel``, ``ylabel``, ``series`` and optionally ``band`` ((low,
      high, label): a grey band across the panel) and ``ylim``; each series a dict ``label`` (in
      the legend), ``key`` (its curve: colour and marker), ``x``, ``y`` and optionally ``texts``
      (a label per point), ``marker`` (False: a line only) and ``linestyle``.
    path: the PNG to write (atomically).
    cols: panels to a row (default all).
    panel: a panel's size in inches.
  """
  cols = cols or len(panels)
  fig, axes = figure(cols, -(-len(panels) // cols), panel)
  order = [s['key'] for p in panels for s in p['series']]
  labels = {}
  for ax, p in zip(axes, panels):
    if 'band' in p:
      low, high, label = p['band']
      ax.axhspan(low, high, color='grey', alpha=0.15, linewidth=0, label=label)
    for s in p['series']:
      look = style(s['key'], order)
      ax.plot(s['x'], s['y'], label=s['label'], color=look['color'],
              linestyle=s.get('linestyle', '-'), linewidth=1.2,
              marker=look['marker'] if s.get('marker', True) else None, markersize=5)
      labels.setdefault(ax, []).extend((x, y, t, look['color'])
                                       for x, y, t in zip(s['x'], s['y'], s.get('texts') or [])
                                       if t)
    ax.set(title=p['title'], xlabel=p['xlabel'], ylabel=p['ylabel'])
    ax.title.set_fontsize('medium')
    if 'ylim' in p:
      ax.set_ylim(*p['ylim'])
  for ax in axes[len(panels):]:
    ax.set_visible(False)
  legend_below(fig, axes[:len(panels)])
  label_points(fig, labels)
  save(fig, path)


def save(fig: Figure, path: str) -> None:
  """The figure as a PNG at ``path`` (atomically)."""
  buffer = io.BytesIO()
  fig.savefig(buffer, format='png', dpi=120)
  write_bytes_atomic(path, buffer.getvalue())
