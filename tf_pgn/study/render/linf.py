"""The Linf study's section (``tf_pgn.study.linf``): where the paper's thesis that a fixed attack
fails is testable, its runs so far and its computed verdicts per eps, read from the small outputs
that ``experiments linf_report`` copies, with its figure and a link to its own report."""
import os

from tf_pgn.study import linf
from tf_pgn.study.render import linf_report
from tf_pgn.study.render.common import md_table

LINF_REPORT = os.path.join('docs', 'LINF_STUDY.md')  # experiments linf_report writes it


def _link(path: str, report_path: str) -> str:
  return os.path.relpath(path, os.path.dirname(report_path) or '.')


def _collapse(row: dict) -> str:
  if row['collapsed_at'] is None:
    return '-'
  return f'epoch {row["collapsed_at"]} ({row["collapse_kind"]})'


def linf_section(linf_dir: str, report_path: str) -> list:
  """The study's runs of ``linf_dir`` per eps (epochs done, collapse), those trained on past its
  schedule included, the figure and the verdicts (the cpu preset's table stays in the Linf
  report)."""
  rows = [r for r in linf.linf_rows(linf_dir) if linf.in_study(r) or linf.is_long(r)]
  lines = ['## Linf: where a fixed attack can fail (section 3.2)', '',
           'Section 3.2 argues that a classifier trained on a fixed attack (FGM) overfits to it '
           'and that PGN\'s adaptive generator does not. At Linf FGSM-AT is known to collapse '
           '(catastrophic overfitting), so the thesis is tested there; '
           f'[{LINF_REPORT}]({_link(LINF_REPORT, report_path)}) has the setting, the collapse '
           'rule and every run (`python -m tf_pgn.experiments linf`, then `linf_report`). Its '
           'verdicts, computed by `tf_pgn/study/linf.py` from the runs\' small outputs in '
           f'`{linf_dir}/`:']
  if not rows:
    return lines + ['', 'No Linf run yet.']
  for levels in sorted({r['eps_levels'] for r in rows}, reverse=True):
    runs = [r for r in rows if r['eps_levels'] == levels]
    lines += ['', f'### Linf eps {levels}/255', ''] + md_table(
        ['job', 'defense', 'epochs done', 'collapsed at'],
        [(r['job'], linf.LABELS[r['defense']], f'{len(r["epochs"])} of {r["epochs_planned"]}',
          _collapse(r)) for r in runs])
    if os.path.isfile(linf_report.figure_path(linf_dir, levels)):
      lines += ['', f'![PGD probe accuracy, FGSM - PGD gap and training loss by epoch, Linf eps '
                f'{levels}/255]({_link(linf_report.figure_path(linf_dir, levels), report_path)})']
    lines += [''] + md_table(['question', 'verdict', 'why'],
                             [(v['question'], f'**{v["verdict"]}**', v['why'])
                              for v in linf.verdicts(rows, levels)])
  return lines
