"""Does training in bfloat16 change what a user cares about? The measurement that decides whether
``--mixed_precision=auto`` may be the default.

Two points of the cpu preset, each trained with SEEDS in float32 and in bfloat16
(``--mixed_precision=bfloat16``; the EMA, the probes, the export and the evaluation stay float32):
FGM-AT at L2 eps 0.25 (a seed point of the L2 study) attacked at L2 eps 0.5, and PGN-Linf at 8/255
(the Linf study's PGN at the preset's width) attacked at 8/255; each with AutoAttack on the first
``num_examples`` test images. The verdict per point and measure (test accuracy, AutoAttack
accuracy): bfloat16's seed mean is level with float32's when they differ by at most
max(LEVEL_TOLERANCE, twice float32's seed std).

Layers: reads run folders (config.json, metrics.jsonl, eval/results.json); training and evaluation
go through ``sweeps.run_sweep``.
"""
import dataclasses
import os

from tf_pgn.config import make_config
from tf_pgn.io_utils import read_jsonl, write_text_atomic
from tf_pgn.study.results import copy_small_outputs, mean_std, read_json

__all__ = ['POINTS', 'PRECISION_JOBS', 'PrecisionJob', 'precision_rows', 'render_report',
           'verdicts']

SEEDS = (1234, 1235, 1236)
PRECISIONS = ('float32', 'bfloat16')
# point: (what it is, its training fields beyond the cpu preset, its evaluation's norm and eps).
POINTS = {
    'fgm_l2': ('FGM-AT, L2 eps 0.25; AutoAttack at L2 eps 0.5',
               dict(defense='fgm', norm='l2', eps=0.25), ('l2', 0.5)),
    'pgn_linf': ('PGN-Linf, eps 8/255 (c_L 0, normalized gradient input, zero-initialised G); '
                 'AutoAttack at Linf 8/255',
                 dict(defense='pgn', norm='linf', eps=8 / 255, c_l=0.0,
                      pgn_grad_input='normalized', pgn_zero_init=True), ('linf', 8 / 255)),
}
LEVEL_TOLERANCE = 0.01


@dataclasses.dataclass(frozen=True)
class PrecisionJob:
  """One training run: a point of POINTS, a seed, a precision."""
  point: str
  seed: int
  precision: str

  @property
  def name(self) -> str:
    return f'{self.point}_s{self.seed}_{self.precision}'

  def train_config(self, preset: str, dataset: str, **overrides):
    return make_config(preset, **{**overrides, **POINTS[self.point][1]}, dataset=dataset,
                       seed=self.seed, mixed_precision=self.precision)

  def eval_settings(self) -> dict:
    norm, eps = POINTS[self.point][2]
    return dict(norm=norm, eps_list=(eps,), attacks=('autoattack',))


# Seeds outermost: after each round both precisions of both points have one more seed.
PRECISION_JOBS = [PrecisionJob(point, seed, precision) for seed in SEEDS for point in POINTS
                  for precision in PRECISIONS]


def precision_rows(root: str) -> list:
  """One row per job folder of ``root`` that names a PrecisionJob: its test accuracy (last
  epoch) and AutoAttack accuracy (None until evaluated)."""
  rows = []
  for job in PRECISION_JOBS:
    folder = os.path.join(root, job.name)
    epochs = read_jsonl(os.path.join(folder, 'metrics.jsonl'))
    if not epochs:
      continue
    row, cfg = epochs[-1], read_json(os.path.join(folder, 'config.json')) or {}
    results = read_json(os.path.join(folder, 'eval', 'results.json')) or {}
    autoattack = next((e['whitebox']['accuracy'] for k, e in results.get('attacks', {}).items()
                       if k.startswith('autoattack_eps')), None)
    rows.append(dict(job=job.name, point=job.point, seed=job.seed, precision=job.precision,
                     epochs=row.get('epoch'), epochs_planned=cfg.get('epochs'),
                     test_acc=row.get('test_acc'), autoattack=autoattack))
  return rows


def verdicts(rows: list) -> list:
  """Per point and measure: float32's and bfloat16's seed mean (std), the difference, the
  tolerance and the verdict ('level', 'bfloat16 lower', 'bfloat16 higher', or 'undecided' until
  both precisions have every seed)."""
  out = []
  for point in POINTS:
    for measure in ('test_acc', 'autoattack'):
      by = {p: [r[measure] for r in rows if r['point'] == point and r['precision'] == p and
                r['epochs'] == r['epochs_planned'] and r[measure] is not None]
            for p in PRECISIONS}
      (m32, s32), (m16, s16) = mean_std(by['float32']), mean_std(by['bfloat16'])
      complete = all(len(v) == len(SEEDS) for v in by.values())
      tol = max(LEVEL_TOLERANCE, 2 * s32) if s32 is not None else None
      diff = m16 - m32 if m16 is not None and m32 is not None else None
      verdict = ('undecided' if not complete or tol is None else 'level' if abs(diff) <= tol
                 else 'bfloat16 lower' if diff < 0 else 'bfloat16 higher')
      out.append(dict(point=point, measure=measure, float32=(m32, s32, len(by['float32'])),
                      bfloat16=(m16, s16, len(by['bfloat16'])), diff=diff, tolerance=tol,
                      verdict=verdict))
  return out


def _fmt(value, digits: int = 3) -> str:
  return '-' if value is None else f'{value:.{digits}f}'


def _cell(mean, std, n) -> str:
  if mean is None:
    return '-'
  return f'{mean:.3f}' + (f' ± {std:.3f}' if std is not None else '') + f' (n={n})'


def render_report(root: str, out_dir: str, report_path: str, run_command: str) -> str:
  """Copies the jobs' small outputs into ``out_dir`` and writes the Markdown report (every job,
  then the verdicts; the speed is ``tf_pgn.bench``'s ``:bf16`` rows); returns its path."""
  rows = precision_rows(root)
  copy_small_outputs(root, out_dir, [r['job'] for r in rows])
  lines = ['# bfloat16 against float32 training', '',
           f'Generated by `{run_command}` from the runs in `{root}`. Each point trained with '
           f'seeds {", ".join(map(str, SEEDS))} in float32 and in bfloat16 '
           '(`--mixed_precision=bfloat16`: bfloat16 compute, float32 variables; the EMA, the '
           'probes, the export and the evaluation in float32), the cpu preset otherwise. '
           'bfloat16 is level with float32 where their seed means differ by at most '
           f'max({LEVEL_TOLERANCE:g}, twice float32\'s seed std). The step time of each '
           'precision is `python -m tf_pgn.bench`\'s (`:bf16` rows, one process).', '',
           '| job | epochs | test acc | AutoAttack |', '|---|---:|---:|---:|']
  lines += [f'| {r["job"]} | {r["epochs"]}/{r["epochs_planned"]} | {_fmt(r["test_acc"])} | '
            f'{_fmt(r["autoattack"])} |' for r in rows]
  lines += ['', '| point | measure | float32 | bfloat16 | difference | tolerance | verdict |',
            '|---|---|---:|---:|---:|---:|---|']
  lines += [f'| {POINTS[v["point"]][0]} | {v["measure"]} | {_cell(*v["float32"])} | '
            f'{_cell(*v["bfloat16"])} | {_fmt(v["diff"])} | {_fmt(v["tolerance"])} | '
            f'**{v["verdict"]}** |' for v in verdicts(rows)]
  os.makedirs(os.path.dirname(report_path) or '.', exist_ok=True)
  write_text_atomic(report_path, '\n'.join(lines) + '\n')
  return report_path
