"""The study's command line: the PGN paper's sweeps (Figures 2-5, Table 2) trained, evaluated,
summarized, plotted and reported.

  python -m tf_pgn.experiments run --sweep=robustness_curve --max_minutes=240   # resumable
  python -m tf_pgn.experiments run --sweep=capacity --jobs=pgn_c_l8_w0.5_s1234
  python -m tf_pgn.experiments run --sweep=seeds   # SEED_POINTS with seeds 1235, 1236
  python -m tf_pgn.experiments progress       # C&W at each epoch snapshot (Figure 2 right)
  python -m tf_pgn.experiments progress --progress_every=2   # epochs 2, 4, ... and the last
  python -m tf_pgn.experiments autoattack     # APGD, Square, worst case, FMN at eps 0.5
  python -m tf_pgn.experiments figure3        # other PGN attacks on the eps-0.5 FGM-AT, PGD-AT
  python -m tf_pgn.experiments summarize      # <root>/summary.json, <root>/summary.csv
  python -m tf_pgn.experiments plot           # <root>/robustness_curves.png (Figure 5 left)
  python -m tf_pgn.experiments speed          # tf_pgn.bench at the preset's widths (section 4.4)
  python -m tf_pgn.experiments report         # results/<root name>/, docs/REPRODUCTION.md
  python -m tf_pgn.experiments report --root=results/cifar10_cpu \
      --quote_root=runs/sweeps/cifar10_cpu --data_dir=~/.cache/tf_pgn   # from the repository
  python -m tf_pgn.experiments linf --linf_sweep=linf_collapse   # the Linf study (study/linf.py)
  python -m tf_pgn.experiments linf --linf_sweep=linf_long   # PGN-Linf trained on to 25 epochs
  python -m tf_pgn.experiments linf --linf_sweep=linf_gen    # PGN-Linf with a faster generator
  python -m tf_pgn.experiments linf_progress  # APGD-CE at each epoch snapshot of each run
  python -m tf_pgn.experiments linf_report    # results/<root name>/, docs/LINF_STUDY.md
  python -m tf_pgn.experiments precision      # bfloat16 against float32 (study/precision.py)
  python -m tf_pgn.experiments precision_report   # results/<root name>/, docs/PRECISION.md

The work is done in ``tf_pgn.study`` (protocol, claims, results, sweeps, render: one-way layers).
``--root`` defaults to ``runs/sweeps/<dataset>_<preset>``: one root per dataset and preset, so
that jobs of the same name never mix two settings. A finished job is skipped, an interrupted one
resumes; ``--max_minutes`` stops launching jobs after that long, so that a long sweep runs in parts.
"""
import collections
import os
import subprocess
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app, flags, logging  # pylint: disable=g-import-not-at-top

from tf_pgn.config import make_config
from tf_pgn.study import linf, precision, render, results, sweeps
from tf_pgn.study.render import linf_report
from tf_pgn.study.protocol import (BENCH_STEPS, FIGURE3_PGN_VARIANTS, PROGRESS_EXAMPLES,
                                   ExperimentError)

FLAGS = flags.FLAGS


def _define_flags() -> None:
  """The command line's flags; defined only when run as a program, so that importing the
  module defines none."""
  flags.DEFINE_enum('sweep', 'robustness_curve', list(sweeps.SWEEPS), 'run: which sweep.')
  flags.DEFINE_enum('linf_sweep', 'linf_collapse', list(linf.LINF_SWEEPS), 'linf: which sweep '
                    'of the Linf study.')
  flags.DEFINE_string('dataset', 'cifar10', 'cifar10 or cifar100.')
  flags.DEFINE_string('preset', 'cpu', 'Training preset of every job: paper, cpu or tiny.')
  flags.DEFINE_string('root', None, 'Folder of the sweep\'s jobs (default '
                      'runs/sweeps/<dataset>_<preset>, and <dataset>_<preset>_linf for the Linf '
                      'study).')
  flags.DEFINE_string('data_dir', None, 'Folder with the official CIFAR python archive (or set '
                      '$TF_PGN_DATA_DIR); without either, the official archive is downloaded.')
  flags.DEFINE_integer('num_examples', 1000, 'run, autoattack, figure3: evaluate on the first N '
                       'test images.')
  flags.DEFINE_list('jobs', None, 'run, progress, autoattack, figure3, linf, linf_progress: only '
                    'these jobs (comma list of job names; progress: default every FGM-AT and '
                    'PGN job; linf_progress: every run of the Linf study; autoattack: '
                    'the naive job and the seed points; figure3: the eps-0.5 FGM-AT and PGD-AT '
                    'jobs).')
  flags.DEFINE_list('variants', None, 'figure3: only these PGN attack variants (default: '
                    f'{",".join(FIGURE3_PGN_VARIANTS)}).')
  flags.DEFINE_float('max_minutes', None, 'run: launch no job after this many minutes (finished '
                     'jobs are skipped and cost nothing); rerun to go on.')
  flags.DEFINE_integer('progress_examples', PROGRESS_EXAMPLES, 'progress: C&W on the first N '
                       'test images at each epoch snapshot (linf_progress: APGD-CE, default '
                       f'{linf.PROGRESS_EXAMPLES}).')
  flags.DEFINE_integer('progress_every', 1, 'progress, linf_progress: evaluate the snapshots of '
                       'every N-th epoch and the last one (a later run with a smaller N evaluates '
                       'only those left).', lower_bound=1)
  flags.DEFINE_string('out', 'results', 'report: the small outputs go to <out>/<root name>/.')
  flags.DEFINE_string('report', os.path.join('docs', 'REPRODUCTION.md'), 'report: the Markdown '
                      'report to (re)write; its <!-- notes --> block is kept.')
  flags.DEFINE_string('quote_root', None, 'report: --root holds a copy of the small outputs of '
                      'this root\'s jobs (results/<root name>/ itself: the report regenerates '
                      'from the repository), and the report\'s commands name this root.')
  flags.DEFINE_string('linf_results', os.path.join('results', 'linf'), 'report: the Linf '
                      'study\'s small outputs (linf_report\'s <out>/<root name>/), whose verdicts '
                      'the report shows.')
  flags.DEFINE_string('long_root', None, 'report: the long_schedule sweep\'s root (or the copy '
                      'of its small outputs, <out>/<root name>/), judged for claim 2 beside the '
                      'paper\'s jobs (default <out>/<dataset>_<preset>_long where it exists).')


def _root(suffix: str = '') -> str:
  return os.path.expanduser(FLAGS.root or os.path.join('runs', 'sweeps',
                                                       f'{FLAGS.dataset}_{FLAGS.preset}{suffix}'))


def _train_and_evaluate(jobs: list, root: str, then: str) -> None:
  """Runs ``jobs`` in ``root`` (``sweeps.run_sweep``) and says which command comes ``then``."""
  status = sweeps.run_sweep(jobs, root, FLAGS.preset, FLAGS.dataset,
                            FLAGS.data_dir and os.path.expanduser(FLAGS.data_dir),
                            FLAGS.num_examples, FLAGS.max_minutes)
  counts = ', '.join(f'{n} {s}' for s, n in collections.Counter(status.values()).items())
  print(f'done: {counts} in {root}; then `python -m tf_pgn.experiments {then} --root={root}`')
  _fail_if_any_failed(status)


def _fail_if_any_failed(status: dict) -> None:
  """One line naming the jobs (or job/folder pairs) of ``status`` that failed, if any."""
  failed = [name if isinstance(name, str) else '/'.join(name)
            for name, s in status.items() if s == 'failed']
  if failed:
    raise ExperimentError(f'{len(failed)} job(s) failed: {", ".join(failed)} (the traceback in '
                          f'each one\'s {sweeps.FAILURE_FILE}); rerun the same command to retry '
                          'them, finished ones are skipped')


def _run() -> None:
  _train_and_evaluate(sweeps.sweep_jobs(FLAGS.sweep, FLAGS.preset, FLAGS.jobs), _root(),
                      'summarize')


def _progress() -> None:
  done = sweeps.run_progress(_root(), FLAGS.dataset, FLAGS.data_dir and os.path.expanduser(
      FLAGS.data_dir), FLAGS.jobs, FLAGS.progress_examples, every=FLAGS.progress_every)
  print(f'done: {sum(done.values())} epoch snapshot(s) of {len(done)} job(s) evaluated in '
        f'{_root()}')


def _autoattack() -> None:
  status = sweeps.run_autoattack(_root(), FLAGS.dataset, FLAGS.data_dir and os.path.expanduser(
      FLAGS.data_dir), FLAGS.jobs, FLAGS.num_examples)
  counts = ', '.join(f'{n} {s}' for s, n in collections.Counter(status.values()).items())
  print(f'done: {counts or "no jobs"} in {_root()}')
  _fail_if_any_failed(status)


def _figure3() -> None:
  status = sweeps.run_figure3(_root(), FLAGS.dataset, FLAGS.data_dir and os.path.expanduser(
      FLAGS.data_dir), FLAGS.jobs, FLAGS.variants, FLAGS.num_examples)
  counts = ', '.join(f'{n} {s}' for s, n in collections.Counter(status.values()).items())
  print(f'done: {counts or "no jobs"} (job, PGN attack variant) in {_root()}')
  _fail_if_any_failed(status)


def _summarize() -> None:
  rows = results.write_summary(_root())
  print(f'done: {len(rows)} jobs in {os.path.join(_root(), "summary.json")} and summary.csv')


def _plot() -> None:
  path = os.path.join(_root(), 'robustness_curves.png')
  render.plot_robustness_curves(results.collect(_root()), path)
  print(f'done: {path}')


def _speed() -> None:
  """Section 4.4's speed claim (FGM < PGN < PGD) at the preset's widths and batch size, and
  the PGN variants' step costs (BENCH_STEPS): runs ``python -m tf_pgn.bench`` (whose flags are
  its own) into <root>/bench.json."""
  cfg = make_config(FLAGS.preset)
  cmd = [sys.executable, '-m', 'tf_pgn.bench', f'--width={cfg.width:g}',
         f'--gen_width={cfg.gen_width:g}', f'--batch_size={cfg.batch_size}',
         f'--defenses={",".join(BENCH_STEPS)}',
         f'--out={os.path.join(_root(), "bench.json")}']
  print(' '.join(cmd[1:]), flush=True)
  returncode = subprocess.run(cmd, check=False).returncode
  if returncode:
    sys.exit(returncode)


def _report() -> None:
  """The root's small outputs into <out>/<root name>/ and the report (see tf_pgn.study.render).
  The report quotes the flags as given (a relative --root, ~ in --data_dir), not this machine's
  absolute paths; its commands name --quote_root where given, and its first line the command
  that regenerates it."""
  root = FLAGS.root or _root()
  quoted = FLAGS.quote_root or root
  data_dir = f' --data_dir={FLAGS.data_dir}' if FLAGS.data_dir else ''
  run_flags = f'--dataset={FLAGS.dataset} --preset={FLAGS.preset} --root={quoted}{data_dir}'
  given = [f'--{name}={FLAGS[name].value}' for name in ('dataset', 'preset', 'quote_root',
                                                        'linf_results', 'long_root')
           if not FLAGS[name].using_default_value]
  long_root = FLAGS.long_root or os.path.join(FLAGS.out, f'{FLAGS.dataset}_{FLAGS.preset}_long')
  if not os.path.isdir(long_root):
    if FLAGS.long_root:
      raise ExperimentError(f'--long_root={long_root} is no folder: give the long_schedule '
                            'sweep\'s root (or the copy of its small outputs under --out)')
    long_root = None
  command = ' '.join(['python -m tf_pgn.experiments report', f'--root={root}'] + given +
                     [f'--out={FLAGS.out}', f'--report={FLAGS.report}'])
  path = render.write_report(_root(), FLAGS.out, FLAGS.report, command + data_dir, run_flags,
                             FLAGS.data_dir, root, FLAGS.quote_root, FLAGS.linf_results,
                             long_root)
  print(f'done: {path}')


def _linf() -> None:
  jobs = sweeps.select_jobs(linf.LINF_SWEEPS[FLAGS.linf_sweep], FLAGS.jobs, FLAGS.linf_sweep)
  _train_and_evaluate(jobs, _root('_linf'), 'linf_report')


def _linf_progress() -> None:
  """The Linf study's strong probe (``linf.PROGRESS_ATTACK``) at every epoch snapshot of its
  runs (``linf.progress_plan``; or of --jobs), on the first --progress_examples test images
  (default ``linf.PROGRESS_EXAMPLES``)."""
  root = _root('_linf')
  try:
    plan = linf.progress_plan(root, FLAGS.jobs)
  except ValueError as e:
    raise ExperimentError(str(e)) from None
  examples = (linf.PROGRESS_EXAMPLES if FLAGS['progress_examples'].using_default_value else
              FLAGS.progress_examples)
  done = sweeps.evaluate_snapshots(root, plan, FLAGS.dataset, FLAGS.data_dir and
                                   os.path.expanduser(FLAGS.data_dir), examples,
                                   FLAGS.progress_every)
  print(f'done: {sum(done.values())} epoch snapshot(s) of {len(done)} job(s) evaluated in '
        f'{root}; then `python -m tf_pgn.experiments linf_report --root={root}`')


def _linf_report() -> None:
  root = FLAGS.root or _root('_linf')
  report = os.path.join('docs', 'LINF_STUDY.md')
  command = f'python -m tf_pgn.experiments linf_report --root={root} --out={FLAGS.out}'
  path = linf_report.render_report(root, os.path.join(FLAGS.out, os.path.basename(
      os.path.normpath(root))), report, command)
  print(f'done: {path}')


def _precision() -> None:
  jobs = sweeps.select_jobs(precision.PRECISION_JOBS, FLAGS.jobs, 'the precision study')
  _train_and_evaluate(jobs, _root('_precision'), 'precision_report')


def _precision_report() -> None:
  root = FLAGS.root or _root('_precision')
  command = f'python -m tf_pgn.experiments precision_report --root={root} --out={FLAGS.out}'
  path = precision.render_report(root, os.path.join(FLAGS.out, os.path.basename(
      os.path.normpath(root))), os.path.join('docs', 'PRECISION.md'), command)
  print(f'done: {path}')


COMMANDS = {'run': _run, 'progress': _progress, 'autoattack': _autoattack, 'figure3': _figure3,
            'summarize': _summarize, 'plot': _plot, 'speed': _speed, 'report': _report,
            'linf': _linf, 'linf_progress': _linf_progress, 'linf_report': _linf_report,
            'precision': _precision, 'precision_report': _precision_report}


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
