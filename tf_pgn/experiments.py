"""Hyper-parameter sweeps behind Figure 5 of the PGN paper: train, evaluate, summarize, plot.

  python -m tf_pgn.experiments run --sweep=robustness_curve --max_minutes=240   # resumable
  python -m tf_pgn.experiments run --sweep=capacity --jobs=pgn_c_l8_w0.5_s1234
  python -m tf_pgn.experiments progress       # C&W at each epoch snapshot (Figure 2 right)
  python -m tf_pgn.experiments summarize      # <root>/summary.json, <root>/summary.csv
  python -m tf_pgn.experiments plot           # <root>/robustness_curves.png (Figure 5)
  python -m tf_pgn.experiments speed          # tf_pgn.bench at the preset's widths (section 4.4)
  python -m tf_pgn.experiments report         # results/<root name>/, docs/REPRODUCTION.md

A job trains one defense into ``<root>/<job>`` (``trainer.train``) and evaluates its EMA
classifier into ``<root>/<job>/eval`` (``evaluation.evaluate``). ``--root`` defaults to
``runs/sweeps/<dataset>_<preset>``: one root per dataset and preset, so that jobs of the same
name never mix two settings. A finished job (export and eval/results.json present) is skipped;
an interrupted one resumes, as the trainer and the evaluation do; ``--max_minutes`` stops
launching jobs after that long, to spread a sweep over several sessions; ``run`` and ``progress``
hold the root's lock (``tf_pgn.locks``), one process per root. ``report``
(``tf_pgn.report``) copies a root's small outputs and writes the paper's claims beside them.
"""
import collections
import csv
import dataclasses
import io
import json
import os
import re
import subprocess
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app, flags, logging  # pylint: disable=g-import-not-at-top

from tf_pgn import locks, plots
from tf_pgn.config import TrainConfig, make_config
from tf_pgn.io_utils import read_jsonl, write_json_atomic, write_text_atomic

__all__ = ['EVAL_SETTINGS', 'LABELS', 'SWEEPS', 'ExperimentError', 'Job', 'collect',
           'eval_settings', 'plot_robustness_curves', 'progress', 'robustness_curves',
           'run_progress', 'run_sweep', 'snapshots', 'sweep_jobs', 'write_summary']

# The hyper-parameter each defense trades benign accuracy against robustness with (Figure 5).
HPARAMS = {'naive': None, 'fgm': 'eps', 'pgd': 'eps', 'pgn': 'c_l'}
# FGM-AT and PGD-AT: L2 budgets around RobustBench's eps = 0.5.
EPS_VALUES = (0.1, 0.25, 0.5)
# PGN: G maximises CE(F(x + d)) - c_L ||d||^2; to first order d = grad CE / (2 c_L), so the mean
# perturbation scales like ||grad CE|| / (2 c_L). The cpu preset's PGN run at the paper's
# c_L = 50 made mean perturbations of L2 0.22, 0.061, 0.045 in epochs 1-3: ||grad CE|| ~ 4.5 and
# falling; 2, 8 and 32 bracketed the FGM / PGD budgets 0.1-0.5 at that gradient. Measured, c_L
# moves PGN far less than eps moves FGM-AT: c_L 2, 8, 50 ended at test accuracy 0.736, 0.739,
# 0.746 (last-epoch mean L2 0.15, 0.09, 0.07) while FGM-AT eps 0.5 ended at 0.661, so the curve
# reaches FGM-AT's and PGD-AT's accuracies only below c_L 2: 0.5 replaced 32 (next to 50).
C_L_VALUES = (0.5, 2.0, 8.0)
# The capacity and through_adv sweeps' PGN setting (its job at the main width is the curve's).
MIDDLE_C_L = 8.0
CAPACITY_WIDTHS = (0.125, 0.25, 0.5)  # classifier filters x width (Table 1); G keeps its width
# Evaluation of every job (section 4.2): C&W gives rho_cw (Figure 5); DeepFool; FGM / MIM / PGD at
# Table 2's eps and at 0.5. One evaluation has one PGD setting, so PGD runs STRONG_PGD_STEPS at
# both budgets: at 0.5 (RobustBench's L2 budget) it is the strong PGD, at 0.02 more than needed.
REFERENCE_EPS = 0.02
STRONG_PGD_EPS = 0.5
STRONG_PGD_STEPS = 100
EVAL_SETTINGS = dict(attacks=('fgm', 'mim', 'pgd', 'deepfool', 'cw'),
                     eps_list=(REFERENCE_EPS, STRONG_PGD_EPS), pgd_steps=STRONG_PGD_STEPS)
BUDGET_ATTACKS = ('fgm', 'mim', 'pgd')
# Figure 3 (section 4.3): on the FGM-AT and PGD-AT jobs trained at eps = 0.5 (the paper's fixed
# targets) PGN attacks too, and FGM / MIM / PGD run at more budgets, so that each attack draws an
# accuracy-vs-mean-L2 curve to read PGN against. (About 25 CPU minutes per job: not on every eps.)
FIGURE3_EPS = (REFERENCE_EPS, 0.1, 0.25, STRONG_PGD_EPS, 1.0)
FIGURE3_DEFENSES = ('fgm', 'pgd')
FIGURE3_TARGET_EPS = STRONG_PGD_EPS
# Figure 2 right: C&W (EVAL_SETTINGS') on the first PROGRESS_EXAMPLES test images at every epoch
# snapshot (trainer: snapshot_every_epochs) of the FGM-AT and PGN jobs.
PROGRESS_EXAMPLES = 200
PROGRESS_DEFENSES = ('fgm', 'pgn')
LABELS = {'naive': 'naive', 'fgm': 'FGM-AT', 'pgd': 'PGD-AT', 'pgn': 'PGN', 'eps': 'eps',
          'c_l': 'c_L'}


class ExperimentError(ValueError):
  """A sweep, job filter or root is unusable; the message says what to pass instead."""


@dataclasses.dataclass(frozen=True)
class Job:
  """One training run of a sweep; width and seed None mean the preset's."""
  defense: str
  hparam_name: str | None = None
  hparam_value: float | None = None
  width: float | None = None
  seed: int | None = None
  through_adv: bool = False  # PGN: F differentiates through x_adv (config.pgn_grad_through_adv)

  @property
  def name(self) -> str:
    hparam = f'_{self.hparam_name}{self.hparam_value:g}' if self.hparam_name else ''
    variant = '_through_adv' if self.through_adv else ''
    return f'{self.defense}{hparam}_w{self.width:g}_s{self.seed}{variant}'

  def train_config(self, preset: str, dataset: str, **overrides) -> TrainConfig:
    """The preset's config for this job; ``overrides`` replace other fields of the preset."""
    hparam = {self.hparam_name: self.hparam_value} if self.hparam_name else {}
    variant = {'pgn_grad_through_adv': True} if self.through_adv else {}
    return make_config(preset, **overrides, dataset=dataset, defense=self.defense,
                       width=self.width, seed=self.seed, **hparam, **variant)


def _job(defense: str, value: float | None = None, width: float | None = None,
         through_adv: bool = False) -> Job:
  return Job(defense, HPARAMS[defense], value, width, through_adv=through_adv)


# Named sweeps: Table 2 (its eps and c_L; the naive job is shared with the curve), Figure 5 left
# (robustness_curve) and right (capacity), and the through-x_adv ablation; PGD-AT, the slowest,
# last in each.
SWEEPS = {
    'table2': [_job('naive'), _job('fgm', REFERENCE_EPS), _job('pgn', 50.0),
               _job('pgd', REFERENCE_EPS)],
    'robustness_curve': ([_job('naive')] + [_job('pgn', c) for c in C_L_VALUES] +
                         [_job(d, e) for d in ('fgm', 'pgd') for e in EPS_VALUES]),
    'capacity': [_job('pgn', MIDDLE_C_L, w) for w in CAPACITY_WIDTHS],
    # The flag that lets F's update differentiate through x_adv (and G's input gradient), which
    # the authors' code does: the curve's middle PGN job with it and without.
    'through_adv': [_job('pgn', MIDDLE_C_L), _job('pgn', MIDDLE_C_L, through_adv=True)],
}


def sweep_jobs(sweep: str, preset: str, names=None) -> list:
  """The jobs of ``sweep`` with the preset's width and seed filled in; only ``names`` if given."""
  if sweep not in SWEEPS:
    raise ExperimentError(f'unknown sweep {sweep!r}: use one of {", ".join(SWEEPS)}')
  base = make_config(preset)
  jobs = [dataclasses.replace(j, width=base.width if j.width is None else j.width,
                              seed=base.seed if j.seed is None else j.seed)
          for j in SWEEPS[sweep]]
  if names:
    unknown = sorted(set(names) - {j.name for j in jobs})
    if unknown:
      raise ExperimentError(f'unknown job(s) {", ".join(unknown)} in sweep {sweep} at preset '
                            f'{preset}: choose from {",".join(j.name for j in jobs)}')
    jobs = [j for j in jobs if j.name in names]
  return jobs


def eval_settings(job: Job) -> dict:
  """The evaluation of ``job``: EVAL_SETTINGS, with Figure 3's on the FGM-AT and PGD-AT jobs
  trained at FIGURE3_TARGET_EPS."""
  if job.defense in FIGURE3_DEFENSES and job.hparam_value == FIGURE3_TARGET_EPS:
    return dict(EVAL_SETTINGS, attacks=EVAL_SETTINGS['attacks'] + ('pgn',), eps_list=FIGURE3_EPS)
  return dict(EVAL_SETTINGS)


def _evaluated_on(eval_dir: str, eval_cfg) -> bool:
  """Whether ``eval_dir/results.json`` holds every attack and budget of ``eval_cfg`` on as many
  examples."""
  try:
    with open(os.path.join(eval_dir, 'results.json')) as f:
      results = json.load(f)
  except (OSError, ValueError):
    return False
  return (results.get('num_examples') == eval_cfg.num_examples and
          set(eval_cfg.result_keys()) <= set(results.get('attacks', {})))


def _finished(run_dir: str, eval_cfg) -> bool:
  """Trained, exported, and evaluated on every attack and budget of ``eval_cfg``: a job whose
  evaluation lacks some (made before they joined the sweep) is evaluated again, which reuses the
  attacks it has."""
  return (os.path.isdir(os.path.join(run_dir, 'export', 'classifier')) and
          _evaluated_on(os.path.join(run_dir, 'eval'), eval_cfg))


def run_sweep(jobs: list, root: str, preset: str, dataset: str, data_dir: str | None = None,
              num_examples: int = 1000, max_minutes: float | None = None,
              train_overrides: dict | None = None, eval_overrides: dict | None = None) -> dict:
  """Trains and evaluates each job in ``<root>/<job.name>``, skipping finished ones and launching
  none after ``max_minutes``. ``train_overrides`` replace fields of the preset (not the job's
  own), ``eval_overrides`` fields of the job's ``eval_settings`` (tests: seconds per job).

  Returns {job name: 'skipped' | 'done' | 'not started'}.

  Raises:
    LockError: another process runs a sweep (or progress) on ``root``.
  """
  from tf_pgn import evaluation, trainer  # pylint: disable=g-import-not-at-top
  start, status = time.monotonic(), {}
  with locks.hold(root):  # and each job's run directory and eval/ their own
    for i, job in enumerate(jobs):
      run_dir = os.path.join(root, job.name)
      eval_cfg = evaluation.make_eval_config(**dict(eval_settings(job), dataset=dataset,
                                                    num_examples=num_examples,
                                                    **(eval_overrides or {})))
      if _finished(run_dir, eval_cfg):
        status[job.name] = 'skipped'
        print(f'[{i + 1}/{len(jobs)}] {job.name}: finished, skipping', flush=True)
        continue
      if max_minutes is not None and time.monotonic() - start >= 60 * max_minutes:
        status[job.name] = 'not started'
        continue
      print(f'[{i + 1}/{len(jobs)}] {job.name}: training and evaluating in {run_dir}', flush=True)
      cfg = job.train_config(preset, dataset, **(train_overrides or {}))
      trainer.train(cfg, run_dir, data_dir)
      evaluation.evaluate(eval_cfg, run_dir, os.path.join(run_dir, 'eval'), data_dir)
      status[job.name] = 'done'
  left = [name for name, s in status.items() if s == 'not started']
  if left:
    print(f'--max_minutes={max_minutes:g} spent; not started: {", ".join(left)}; rerun the same '
          'command to go on', flush=True)
  return status


# -- training progress (Figure 2 right) -------------------------------------------------------
def snapshots(run_dir: str) -> list:
  """(epoch, checkpoint prefix) of the job's epoch snapshots (``epochs/epoch-N``), by epoch."""
  folder = os.path.join(run_dir, 'epochs')
  found = [re.fullmatch(r'epoch-(\d+)\.index', n) for n in
           (os.listdir(folder) if os.path.isdir(folder) else [])]
  return sorted((int(m.group(1)), os.path.join(folder, f'epoch-{m.group(1)}'))
                for m in found if m)


def run_progress(root: str, dataset: str, data_dir: str | None = None, names=None,
                 num_examples: int = PROGRESS_EXAMPLES, eval_overrides: dict | None = None) -> dict:
  """C&W at every epoch snapshot of the FGM-AT and PGN jobs of ``root`` (or of the jobs
  ``names``) into ``<job>/progress/epoch-N/``; snapshots already evaluated are skipped, an
  interrupted evaluation resumes. Returns {job: snapshots evaluated by this call}.

  Raises:
    LockError: another process runs a sweep (or progress) on ``root``.
  """
  from tf_pgn import evaluation  # pylint: disable=g-import-not-at-top
  eval_cfg = evaluation.make_eval_config(**dict(EVAL_SETTINGS, attacks=('cw',), dataset=dataset,
                                                num_examples=num_examples,
                                                **(eval_overrides or {})))
  jobs = [r['job'] for r in collect(root) if (r['job'] in names if names else
                                              r['defense'] in PROGRESS_DEFENSES)]
  if names and sorted(set(names) - set(jobs)):
    raise ExperimentError(f'no job(s) {", ".join(sorted(set(names) - set(jobs)))} in {root}')
  done = {}
  with locks.hold(root):
    for job in jobs:
      done[job] = 0
      for epoch, prefix in snapshots(os.path.join(root, job)):
        out = os.path.join(root, job, 'progress', f'epoch-{epoch}')
        if _evaluated_on(out, eval_cfg):
          continue
        print(f'{job} epoch {epoch}: C&W on {num_examples} images into {out}', flush=True)
        evaluation.evaluate(eval_cfg, prefix, out, data_dir)
        done[job] += 1
  return done


def progress(run_dir: str) -> list:
  """Per evaluated epoch snapshot of the job: epoch, benign_accuracy, rho_cw_mean,
  rho_cw_median, rho_cw_std_error, num_examples and seconds (``run_progress``'s results), by
  epoch."""
  rows = []
  for epoch, _ in snapshots(run_dir):
    try:
      with open(os.path.join(run_dir, 'progress', f'epoch-{epoch}', 'results.json')) as f:
        results = json.load(f)
    except (OSError, ValueError):
      continue
    cw = results['attacks']['cw']['whitebox']
    rows.append(dict(epoch=epoch, benign_accuracy=results['benign_accuracy'],
                     rho_cw_mean=cw['rho_mean'], rho_cw_median=cw['rho_median'],
                     rho_cw_std_error=cw.get('rho_std_error'),
                     num_examples=results['num_examples'], seconds=results.get('seconds')))
  return rows


# -- summary ---------------------------------------------------------------------------------
SUMMARY_NOTES = {
    'status': 'evaluated | trained (no eval/results.json yet) | training',
    'test_acc': 'benign accuracy of the EMA classifier on the test split after the last epoch',
    'benign_accuracy': 'benign accuracy on the evaluated examples (the first num_examples)',
    'rho_cw_mean': 'mean L2 of successful C&W perturbations (Eq. 6); median in rho_cw_median',
    '<attack>_eps<e>_acc': 'white-box accuracy under that attack and L2 budget; PGD runs '
                           'pgd_steps steps',
    'train_seconds_per_epoch': 'mean epoch_seconds of metrics.jsonl over epochs not resumed '
                               'mid-way (wall clock: noisy on a shared machine)',
    'failed_checks': 'soundness checks of the evaluation that did not pass (; separated)',
    'through_adv': 'PGN: F\'s update differentiates through x_adv (--pgn_grad_through_adv)',
}


def _job_row(run_dir: str) -> dict:
  """One summary row from a job's config.json, metrics.jsonl and eval/results.json."""
  with open(os.path.join(run_dir, 'config.json')) as f:
    cfg = TrainConfig.from_dict(json.load(f))
  epochs = read_jsonl(os.path.join(run_dir, 'metrics.jsonl'))
  results_path = os.path.join(run_dir, 'eval', 'results.json')
  results = {}
  if os.path.isfile(results_path):
    with open(results_path) as f:
      results = json.load(f)
  attacks = results.get('attacks', {})
  cw = attacks.get('cw', {}).get('whitebox', {})
  whole = [e['epoch_seconds'] for e in epochs if not e['resumed_mid_epoch']]
  hparam = HPARAMS[cfg.defense]
  row = dict(
      job=os.path.basename(run_dir),
      status=('evaluated' if results else 'trained' if os.path.isdir(
          os.path.join(run_dir, 'export', 'classifier')) else 'training'),
      dataset=cfg.dataset, defense=cfg.defense, hparam=hparam,
      hparam_value=getattr(cfg, hparam) if hparam else None, width=cfg.width,
      gen_width=cfg.gen_width, seed=cfg.seed, through_adv=cfg.pgn_grad_through_adv,
      epochs=epochs[-1]['epoch'] if epochs else 0,
      test_acc=epochs[-1]['test_acc'] if epochs else None,
      num_examples=results.get('num_examples'), benign_accuracy=results.get('benign_accuracy'),
      rho_cw_mean=cw.get('rho_mean'), rho_cw_median=cw.get('rho_median'),
      cw_success_rate=cw.get('success_rate'),
      rho_deepfool_mean=attacks.get('deepfool', {}).get('whitebox', {}).get('rho_mean'),
      pgd_steps=results.get('attack_settings', {}).get('pgd', {}).get('steps'))
  for eps in EVAL_SETTINGS['eps_list']:
    for name in BUDGET_ATTACKS:
      row[f'{name}_eps{eps:g}_acc'] = attacks.get(f'{name}_eps{eps:g}', {}).get(
          'whitebox', {}).get('accuracy')
  row.update(train_seconds_per_epoch=round(sum(whole) / len(whole), 1) if whole else None,
             failed_checks=';'.join(c['name'] for c in results.get('checks', [])
                                    if not c['passed']))
  return row


def collect(root: str) -> list:
  """A summary row per job folder of ``root`` (one holding config.json), sorted by name."""
  dirs = sorted(d for d in (os.listdir(root) if os.path.isdir(root) else [])
                if os.path.isfile(os.path.join(root, d, 'config.json')))
  if not dirs:
    raise ExperimentError(f'no jobs in {root}: run `python -m tf_pgn.experiments run '
                          f'--root={root}` first, or pass the --root a sweep wrote')
  return [_job_row(os.path.join(root, d)) for d in dirs]


def write_summary(root: str, out_dir: str | None = None) -> list:
  """Writes summary.json and summary.csv of ``root``'s jobs (atomically) into ``out_dir``
  (default ``root``); returns the rows."""
  rows = collect(root)
  out_dir = out_dir or root
  write_json_atomic(os.path.join(out_dir, 'summary.json'),  # sorted keys: columns has the order
                    dict(root=root, columns=list(rows[0]), notes=SUMMARY_NOTES, jobs=rows))
  buffer = io.StringIO()
  writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator='\n')
  writer.writeheader()
  writer.writerows(rows)
  write_text_atomic(os.path.join(out_dir, 'summary.csv'), buffer.getvalue())
  return rows


# -- Figure 5 --------------------------------------------------------------------------------
def _curves(rows: list, key: str) -> dict:
  """{label: [(rho_cw, test accuracy, hyper-parameter text), ...] sorted by rho_cw}, one curve per
  value of ``rows[key]`` (defense or width)."""
  curves = collections.defaultdict(list)
  for r in rows:
    label = LABELS[r[key]] if key == 'defense' else f'{key} {r[key]:g}'
    text = f'{LABELS[r["hparam"]]}={r["hparam_value"]:g}' if r['hparam'] else ''
    curves[label].append((r['rho_cw_mean'], r['test_acc'], text))
  return {label: sorted(points) for label, points in curves.items()}


def robustness_curves(rows: list) -> list:
  """Figure 5's two panels as [(title, curves)]: left, one curve per defense at the width most
  jobs share; right, PGN, one curve per classifier width. Ablation jobs (through_adv) are
  not on the curves."""
  done = [r for r in rows if r['rho_cw_mean'] is not None and r['test_acc'] is not None and
          not r['through_adv']]
  if not done:
    raise ExperimentError('no job has a C&W result yet: run the sweep (or finish its '
                          'evaluations) first')
  datasets = sorted({r['dataset'] for r in done})
  if len(datasets) > 1:
    raise ExperimentError(f'the root mixes datasets {", ".join(datasets)}: use one --root each')
  width = collections.Counter(r['width'] for r in done).most_common(1)[0][0]
  return [(f'{datasets[0]}: defenses at width {width:g}',
           _curves([r for r in done if r['width'] == width], 'defense')),
          (f'{datasets[0]}: PGN by classifier width',
           _curves([r for r in done if r['defense'] == 'pgn'], 'width'))]


def plot_robustness_curves(rows: list, path: str) -> None:
  """Writes Figure 5 for the summary rows (see plots.robustness_curves)."""
  plots.robustness_curves(robustness_curves(rows), path)


# -- command line ----------------------------------------------------------------------------
FLAGS = flags.FLAGS


def _define_flags() -> None:
  """The command line's flags; defined only when run as a program, so that importing the
  module (tf_pgn.report does) defines none."""
  flags.DEFINE_enum('sweep', 'robustness_curve', list(SWEEPS), 'run: which sweep.')
  flags.DEFINE_string('dataset', 'cifar10', 'cifar10 or cifar100.')
  flags.DEFINE_string('preset', 'cpu', 'Training preset of every job: paper, cpu or tiny.')
  flags.DEFINE_string('root', None, 'Folder of the sweep\'s jobs (default '
                      'runs/sweeps/<dataset>_<preset>).')
  flags.DEFINE_string('data_dir', None, 'Folder with the official CIFAR python archive (or set '
                      '$TF_PGN_DATA_DIR); without either, keras.datasets downloads it.')
  flags.DEFINE_integer('num_examples', 1000, 'run: evaluate on the first N test images.')
  flags.DEFINE_list('jobs', None, 'run, progress: only these jobs (comma list of job names; '
                    'progress: default every FGM-AT and PGN job).')
  flags.DEFINE_float('max_minutes', None, 'run: launch no job after this many minutes (finished '
                     'jobs are skipped and cost nothing); rerun to go on.')
  flags.DEFINE_integer('progress_examples', PROGRESS_EXAMPLES, 'progress: C&W on the first N '
                       'test images at each epoch snapshot.')
  flags.DEFINE_string('out', 'results', 'report: the small outputs go to <out>/<root name>/.')
  flags.DEFINE_string('report', os.path.join('docs', 'REPRODUCTION.md'), 'report: the Markdown '
                      'report to (re)write; its <!-- notes --> block is kept.')


def _root() -> str:
  return os.path.expanduser(FLAGS.root or os.path.join('runs', 'sweeps',
                                                       f'{FLAGS.dataset}_{FLAGS.preset}'))


def _run() -> None:
  jobs = sweep_jobs(FLAGS.sweep, FLAGS.preset, FLAGS.jobs)
  status = run_sweep(jobs, _root(), FLAGS.preset, FLAGS.dataset,
                     FLAGS.data_dir and os.path.expanduser(FLAGS.data_dir), FLAGS.num_examples,
                     FLAGS.max_minutes)
  counts = ', '.join(f'{n} {s}' for s, n in collections.Counter(status.values()).items())
  print(f'done: {counts} in {_root()}; then `python -m tf_pgn.experiments summarize '
        f'--root={_root()}`')


def _progress() -> None:
  done = run_progress(_root(), FLAGS.dataset, FLAGS.data_dir and os.path.expanduser(
      FLAGS.data_dir), FLAGS.jobs, FLAGS.progress_examples)
  print(f'done: {sum(done.values())} epoch snapshot(s) of {len(done)} job(s) evaluated in '
        f'{_root()}')


def _summarize() -> None:
  rows = write_summary(_root())
  print(f'done: {len(rows)} jobs in {os.path.join(_root(), "summary.json")} and summary.csv')


def _plot() -> None:
  path = os.path.join(_root(), 'robustness_curves.png')
  plot_robustness_curves(collect(_root()), path)
  print(f'done: {path}')


def _speed() -> None:
  """Section 4.4's speed claim (FGM < PGN < PGD) at the preset's widths and batch size, and
  the PGN step's cost with --pgn_grad_through_adv: runs ``python -m tf_pgn.bench`` (whose flags
  are its own) into <root>/bench.json."""
  cfg = make_config(FLAGS.preset)
  cmd = [sys.executable, '-m', 'tf_pgn.bench', f'--width={cfg.width:g}',
         f'--gen_width={cfg.gen_width:g}', f'--batch_size={cfg.batch_size}',
         '--defenses=naive,fgm,pgd7,pgd10,pgn,pgn:through',
         f'--out={os.path.join(_root(), "bench.json")}']
  print(' '.join(cmd[1:]), flush=True)
  returncode = subprocess.run(cmd, check=False).returncode
  if returncode:
    sys.exit(returncode)


def _report() -> None:
  """The root's small outputs into <out>/<root name>/ and the report (see tf_pgn.report)."""
  from tf_pgn import report  # pylint: disable=g-import-not-at-top
  # The report quotes the flags as given (a relative --root, ~ in --data_dir), not this
  # machine's absolute paths.
  root = FLAGS.root or _root()
  run_flags = f'--dataset={FLAGS.dataset} --preset={FLAGS.preset} --root={root}' + (
      f' --data_dir={FLAGS.data_dir}' if FLAGS.data_dir else '')
  command = (f'python -m tf_pgn.experiments report --root={root} --out={FLAGS.out} '
             f'--report={FLAGS.report}')
  path = report.write_report(_root(), FLAGS.out, FLAGS.report, command, run_flags,
                             FLAGS.data_dir)
  print(f'done: {path}')


COMMANDS = {'run': _run, 'progress': _progress, 'summarize': _summarize, 'plot': _plot,
            'speed': _speed, 'report': _report}


def main(argv):
  if len(argv) != 2 or argv[1] not in COMMANDS:
    sys.exit(f'usage: python -m tf_pgn.experiments {{{"|".join(COMMANDS)}}} --flags (got '
             f'{argv[1:]})')
  logging.set_verbosity(logging.WARNING)  # TF's SavedModel chatter
  from tf_pgn import errors  # pylint: disable=g-import-not-at-top
  with errors.one_line('tf_pgn.experiments', extra=(ExperimentError,)):
    COMMANDS[argv[1]]()


if __name__ == '__main__':
  _define_flags()
  app.run(main)
