"""What every section of the report shares: the loaded study, Markdown cells and tables, and
the robustness curves the claims read."""
import dataclasses
import os

from tf_pgn.study import claims
from tf_pgn.study import results as results_lib
from tf_pgn.study.claims import Curve
from tf_pgn.study.protocol import DEFENSES, STRONG_PGD_EPS, curve_label

PGD_KEY = f'pgd_eps{STRONG_PGD_EPS:g}_acc'
AUTOATTACK_COLUMN = f'AutoAttack-style worst case at eps {STRONG_PGD_EPS:g}'


@dataclasses.dataclass
class Study:
  """A loaded sweep root (``results.load``) and how the report's commands reach it: ``root`` and
  ``run_flags`` as given on the command line (a relative root, ~ in --data_dir)."""
  sweep: results_lib.Sweep
  root: str
  run_flags: str
  data_dir: str | None = None

  @classmethod
  def load(cls, root: str, run_flags: str | None = None, data_dir: str | None = None,
           root_text: str | None = None) -> 'Study':
    root_text = root_text or root
    return cls(results_lib.load(root), root_text, run_flags or f'--root={root_text}', data_dir)


# -- helpers ---------------------------------------------------------------------------------
def fmt(value, digits: int = 3) -> str:
  """A number to ``digits`` decimals, '-' for None."""
  return '-' if value is None else f'{value:.{digits}f}'


def md_table(header: list, rows: list) -> list:
  """A Markdown table's lines."""
  return (['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)] +
          ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows])


def value_list(values) -> str:
  """The distinct values, sorted, 'all' for None."""
  return ', '.join('all' if v is None else f'{v:g}' for v in sorted(
      set(values), key=lambda v: -1 if v is None else v))


def job_order(row: dict) -> tuple:
  """The report's order of jobs: defense, variant, hyper-parameter, width, seed."""
  return (DEFENSES.index(row['defense']), row['variant'], row['hparam_value'] or 0.0,
          row['width'], row['seed'], row['job'])


def image_link(figures: dict, name: str, report_path: str, alt: str) -> list:
  """The figure ``name`` as a Markdown image relative to the report, if drawn."""
  if name not in figures:
    return []
  return ['', f'![{alt}]({os.path.relpath(figures[name], os.path.dirname(report_path) or ".")})']


def rho_cell(row: dict) -> str:
  """rho_cw mean / median."""
  return f'{fmt(row["rho_cw_mean"])} / {fmt(row["rho_cw_median"])}'


def study_curve(study: Study, defense: str, variant: str = '') -> Curve:
  """A robustness curve for the claims, with the sweep that trains it and its seed spread."""
  sweep = study.sweep
  return Curve(curve_label(dict(defense=defense, variant=variant)),
               sweep.curve(defense, variant),
               f'{variant}_curve' if variant else 'robustness_curve',
               claims.curve_spread(sweep.seed_groups(), defense, variant, sweep.main_width()))


def baseline_curves(study: Study) -> list:
  """The FGM-AT and PGD-AT curves."""
  return [study_curve(study, d) for d in ('fgm', 'pgd')]


def main_seed_rows(study: Study, defense: str, variant: str) -> list:
  """The evaluated rows of one defense and variant at the main seed."""
  sweep = study.sweep
  return [r for r in sweep.evaluated() if (r['defense'], r['variant'], r['seed']) ==
          (defense, variant, sweep.main_seed)]
