"""The study's jobs (Figures 2-5, Table 2 of the PGN paper) and running them.

A job trains one defense into ``<root>/<job>`` (``trainer.train``) and evaluates its EMA
classifier into ``<root>/<job>/eval`` (``evaluation.evaluate``). A finished job (export and
eval/results.json with every attack of its settings) is skipped; an interrupted one resumes, as
the trainer and the evaluation do. ``run_progress`` runs C&W at the jobs' epoch snapshots
(Figure 2 right), ``run_autoattack`` the AutoAttack-level evaluation into
``<root>/<job>/eval_autoattack``, ``run_figure3`` Figure 3's other PGN attacks into
``<root>/<job>/eval_pgn_<variant>``.
"""
import dataclasses
import os
import shutil
import time
import traceback

from tf_pgn import locks
from tf_pgn.config import TrainConfig, make_config
from tf_pgn.io_utils import write_text_atomic
from tf_pgn.study import results as results_lib
from tf_pgn.study.protocol import (AUTOATTACK_DIR, AUTOATTACK_POINTS, AUTOATTACK_SETTINGS,
                                   BALL_C_L, CAPACITY_WIDTHS, EPS_VALUES, EVAL_SETTINGS,
                                   EXTRA_SEEDS, FIGURE3_DEFENSES, FIGURE3_EPS, FIGURE3_PGN,
                                   FIGURE3_PGN_VARIANTS, FIGURE3_TARGET_EPS, HPARAMS, LEVER_C_L,
                                   LEVER_GEN_LR, LEVER_PGN_EPS, LEVER_VARIANT,
                                   LONG_SCHEDULE_EPOCHS, LONG_SCHEDULE_POINTS,
                                   LONG_SCHEDULE_PRECISION, LONG_SCHEDULE_WIDTH, MIDDLE_C_L,
                                   PGN_CURVES, PGN_EVAL_PREFIX, PROGRESS_DEFENSES,
                                   PROGRESS_EXAMPLES, SEED_POINTS, TABLE2, VARIANT_FIELDS,
                                   ExperimentError, SameAs, variant_name)

__all__ = ['SWEEPS', 'Job', 'autoattack_jobs', 'eval_settings', 'evaluate_snapshots',
           'figure3_jobs', 'run_autoattack', 'run_figure3', 'run_progress', 'run_sweep',
           'select_jobs', 'sweep_jobs']


@dataclasses.dataclass(frozen=True)
class Job:
  """One training run of a sweep; width and seed None mean the preset's, epochs None the
  preset's schedule (a longer one is named ``_e<epochs>``); ``variant`` holds (field, value)
  pairs of VARIANT_FIELDS (a PGN variant or ablation); ``precision`` the train step's
  (``--mixed_precision``, named ``_bf16`` in bfloat16)."""
  defense: str
  hparam_name: str | None = None
  hparam_value: float | None = None
  width: float | None = None
  seed: int | None = None
  variant: tuple = ()
  epochs: int | None = None
  precision: str = 'float32'

  @property
  def name(self) -> str:
    hparam = f'_{self.hparam_name}{self.hparam_value:g}' if self.hparam_name else ''
    variant = variant_name(dict(self.variant))
    return (f'{self.defense}{hparam}_w{self.width:g}_s{self.seed}' + (variant and f'_{variant}') +
            ('_bf16' if self.precision == 'bfloat16' else '') +
            (f'_e{self.epochs}' if self.epochs else ''))

  def train_config(self, preset: str, dataset: str, **overrides) -> TrainConfig:
    """The preset's config for this job; ``overrides`` replace other fields of the preset. The
    variant's fields are always given in full (the paper's value where the variant has none),
    so a job means the same run whatever TrainConfig's defaults are; so is its precision."""
    hparam = {self.hparam_name: self.hparam_value} if self.hparam_name else {}
    variant = {name: paper for name, (paper, _) in VARIANT_FIELDS.items()
               if not isinstance(paper, SameAs)}
    variant.update(self.variant)
    cfg = make_config(preset, **{**overrides, **variant}, dataset=dataset, defense=self.defense,
                      width=self.width, seed=self.seed, epochs=self.epochs,
                      mixed_precision=self.precision, **hparam)
    # A field whose paper value is another field's (gen_lr: lr) takes it, unless the job sets it.
    return dataclasses.replace(cfg, **{name: getattr(cfg, paper)
                                       for name, (paper, _) in VARIANT_FIELDS.items()
                                       if isinstance(paper, SameAs) and name not in variant})

  def eval_settings(self) -> dict:
    return eval_settings(self)


def _job(defense: str, value: float | None = None, width: float | None = None,
         seed: int | None = None, epochs: int | None = None, precision: str = 'float32',
         **variant) -> Job:
  return Job(defense, HPARAMS[defense], value, width, seed, tuple(variant.items()), epochs,
             precision)


def _variant_sweeps() -> dict:
  """<variant>_curve and <variant>_capacity of each PGN curve variant but the paper's."""
  sweeps = {}
  for variant, spec in PGN_CURVES.items():
    if variant:
      sweeps[f'{variant}_curve'] = [_job('pgn', c, **spec['fields']) for c in spec['c_l']]
      sweeps[f'{variant}_capacity'] = [_job('pgn', MIDDLE_C_L, w, **spec['fields'])
                                       for w in CAPACITY_WIDTHS]
  return sweeps


# Named sweeps: Table 2 (its eps and c_L; the naive job is shared with the curve), Figure 5 left
# (robustness_curve) and right (capacity), the through-x_adv ablation, each other PGN curve
# variant's curve and capacity, and the seed spread; PGD-AT, the slowest, last in each.
SWEEPS = {
    'table2': [_job(d, v) for d, v in TABLE2],
    'robustness_curve': ([_job('naive')] + [_job('pgn', c) for c in PGN_CURVES['']['c_l']] +
                         [_job(d, e) for d in ('fgm', 'pgd') for e in EPS_VALUES]),
    'capacity': [_job('pgn', MIDDLE_C_L, w) for w in CAPACITY_WIDTHS],
    # The flag that lets F's update differentiate through x_adv (and G's input gradient), which
    # the authors' code does: the curve's middle PGN job with it and without.
    'through_adv': [_job('pgn', MIDDLE_C_L),
                    _job('pgn', MIDDLE_C_L, pgn_grad_through_adv=True)],
    # G given a gradient it can see (e.g. normalized_curve, normalized_capacity).
    **_variant_sweeps(),
    # The other levers on G, each against LEVER_VARIANT's LEVER_C_L job: a zero-initialised
    # output layer (that job is also the first point of its own curve), two G updates per F
    # update, G's learning rate; and G held to the LEVER_PGN_EPS ball, which meets FGM-AT and
    # PGD-AT at equal eps (their seed points).
    'levers': [_job('pgn', LEVER_C_L, **PGN_CURVES[LEVER_VARIANT]['fields'], **lever)
               for lever in (dict(pgn_zero_init=True), dict(pgn_gen_steps=2),
                             dict(gen_lr=LEVER_GEN_LR))] +
              [_job('pgn', BALL_C_L, **PGN_CURVES[LEVER_VARIANT]['fields'],
                    pgn_eps=LEVER_PGN_EPS)],
    # Claim 2 (Figure 2 right) at LONG_SCHEDULE_POINTS: in a root of its own (its jobs are not
    # the preset's curve or capacity points), then `progress` for rho_cw at every epoch.
    'long_schedule': [_job(d, v, LONG_SCHEDULE_WIDTH, epochs=LONG_SCHEDULE_EPOCHS,
                           precision=LONG_SCHEDULE_PRECISION, **PGN_CURVES[variant]['fields'])
                      for d, v, variant in LONG_SCHEDULE_POINTS],
    # SEED_POINTS again with each of EXTRA_SEEDS: the seed spread claim 1 allows.
    'seeds': [_job(d, v, seed=s, **PGN_CURVES[variant]['fields'])
              for d, v, variant in SEED_POINTS for s in EXTRA_SEEDS],
}


def sweep_jobs(sweep: str, preset: str, names=None) -> list:
  """The jobs of ``sweep`` with the preset's width and seed filled in; only ``names`` if given."""
  if sweep not in SWEEPS:
    raise ExperimentError(f'unknown sweep {sweep!r}: use one of {", ".join(SWEEPS)}')
  base = make_config(preset)
  jobs = [dataclasses.replace(j, width=base.width if j.width is None else j.width,
                              seed=base.seed if j.seed is None else j.seed)
          for j in SWEEPS[sweep]]
  return select_jobs(jobs, names, f'sweep {sweep} at preset {preset}')


def select_jobs(jobs: list, names, where: str) -> list:
  """The jobs named ``names`` (all if none); an unknown name is refused, naming ``where``."""
  if not names:
    return jobs
  unknown = sorted(set(names) - {j.name for j in jobs})
  if unknown:
    raise ExperimentError(f'unknown job(s) {", ".join(unknown)} in {where}: choose from '
                          f'{",".join(j.name for j in jobs)}')
  return [j for j in jobs if j.name in names]


def eval_settings(job: Job) -> dict:
  """The evaluation of ``job``: EVAL_SETTINGS, with Figure 3's on the FGM-AT and PGD-AT jobs
  trained at FIGURE3_TARGET_EPS."""
  if job.defense in FIGURE3_DEFENSES and job.hparam_value == FIGURE3_TARGET_EPS:
    return dict(EVAL_SETTINGS, attacks=EVAL_SETTINGS['attacks'] + ('pgn',), eps_list=FIGURE3_EPS,
                **FIGURE3_PGN)
  return dict(EVAL_SETTINGS)


def _evaluated_on(eval_dir: str, eval_cfg) -> bool:
  """Whether ``eval_dir/results.json`` holds every attack and budget of ``eval_cfg`` on as many
  examples, at its norm (results without one are L2's)."""
  try:
    results = results_lib.read_json(os.path.join(eval_dir, 'results.json')) or {}
  except ValueError:
    return False
  return (results.get('num_examples') == eval_cfg.num_examples and
          results.get('norm', 'l2') == eval_cfg.norm and
          set(eval_cfg.result_keys()) <= set(results.get('attacks', {})))


def _finished(run_dir: str, eval_cfg) -> bool:
  """Trained, exported, and evaluated on every attack and budget of ``eval_cfg``: a job whose
  evaluation lacks some (made before they joined the sweep) is evaluated again, which reuses the
  attacks it has."""
  return (os.path.isdir(os.path.join(run_dir, 'export', 'classifier')) and
          _evaluated_on(os.path.join(run_dir, 'eval'), eval_cfg))


# What a job that trains another on (``job.starts_from``) copies of it: the training state and
# the per-epoch records, not its export or final evaluation.
TRAINING_STATE = ('config.json', 'data.json', 'ckpt', 'epochs', 'metrics.jsonl', 'tb', 'progress')


def _start_from(root: str, job, run_dir: str) -> None:
  """Starts ``job``, which trains the job ``job.starts_from`` of ``root`` on to more epochs, from a
  copy of that job's TRAINING_STATE (once: a run directory with checkpoints is left as it is;
  they are moved in last, so an interrupted copy is made again). The learning rate is constant
  and a resumed run reaches the same weights as an uninterrupted one, so the copy is the state a
  run with the longer schedule passes through at the shorter one's end; its epoch records and
  snapshot evaluations are that run's too.

  Raises:
    ExperimentError: the job it continues has not finished training.
  """
  base = os.path.join(root, job.starts_from)
  if os.path.isdir(os.path.join(run_dir, 'ckpt')):
    return
  if not os.path.isdir(os.path.join(base, 'export', 'classifier')):
    raise ExperimentError(f'{job.name} trains {job.starts_from} on: train that job to its end '
                          f'first (--jobs={job.starts_from} in its sweep)')
  partial = run_dir + '.partial'
  shutil.rmtree(partial, ignore_errors=True)
  os.makedirs(partial)
  names = [n for n in TRAINING_STATE if os.path.exists(os.path.join(base, n))]
  for name in names:
    source, target = os.path.join(base, name), os.path.join(partial, name)
    (shutil.copytree if os.path.isdir(source) else shutil.copy2)(source, target)
  os.makedirs(run_dir, exist_ok=True)
  for name in sorted(names, key=lambda n: n == 'ckpt'):  # the checkpoints last
    target = os.path.join(run_dir, name)
    if os.path.isdir(target):
      shutil.rmtree(target)
    os.replace(os.path.join(partial, name), target)
  os.rmdir(partial)


# A piece of work's own failure is recorded here, in the folder it writes, and the loop goes on.
FAILURE_FILE = 'failed.txt'


def _attempt(label: str, folder: str, work) -> bool:
  """Runs ``work()``; True if it finished. An error of its own (a diverged loss, an attack's
  crash: anything but the library's user errors, which every job would meet and which stop the
  loop) is recorded with its traceback in ``folder/FAILURE_FILE``, printed in one line naming
  ``label``, and gives False. Success removes an earlier record."""
  from tf_pgn import errors  # pylint: disable=g-import-not-at-top
  path = os.path.join(folder, FAILURE_FILE)
  try:
    work()
  except errors.USER_ERRORS:
    raise
  except Exception as e:  # pylint: disable=broad-except  (its own: recorded, the loop goes on)
    os.makedirs(folder, exist_ok=True)
    write_text_atomic(path, ''.join(traceback.format_exception(e)))
    message = (str(e).strip().splitlines() or [''])[0]
    print(f'{label}: failed: {type(e).__name__}: {message} (traceback in {path}); going on',
          flush=True)
    return False
  if os.path.exists(path):
    os.remove(path)
  return True


def run_sweep(jobs: list, root: str, preset: str, dataset: str, data_dir: str | None = None,
              num_examples: int = 1000, max_minutes: float | None = None,
              train_overrides: dict | None = None, eval_overrides: dict | None = None) -> dict:
  """Trains and evaluates each job (a ``Job`` or a ``linf.LinfJob``: its ``name``,
  ``train_config``, ``eval_settings`` and, optionally, ``starts_from``) in ``<root>/<job.name>``,
  skipping finished ones and launching none after ``max_minutes``; a job whose ``starts_from``
  names another starts from a copy of its training state (``_start_from``). ``train_overrides``
  replace fields of the preset (not the job's own), ``eval_overrides`` fields of the job's
  ``eval_settings`` (tests: seconds per job). A job that fails with an error of its own (a
  diverged loss, a crash of an attack, a job it continues not trained) is 'failed', its traceback
  in ``<run_dir>/FAILURE_FILE``, and the next job runs (``_attempt``); an error that every job
  would meet (the library's user errors: the data, the flags, a full disk, a held lock) stops the
  sweep.

  Returns {job name: 'skipped' | 'done' | 'failed' | 'not started'}.

  Raises:
    LockError: another process runs a sweep (or progress) on ``root``.
  """
  from tf_pgn import evaluation, trainer  # pylint: disable=g-import-not-at-top
  start, status = time.monotonic(), {}
  with locks.hold(root):  # and each job's run directory and eval/ their own
    for i, job in enumerate(jobs):
      run_dir = os.path.join(root, job.name)
      eval_cfg = evaluation.make_eval_config(**dict(job.eval_settings(), dataset=dataset,
                                                    num_examples=num_examples,
                                                    **(eval_overrides or {})))
      if _finished(run_dir, eval_cfg):
        status[job.name] = 'skipped'
        print(f'[{i + 1}/{len(jobs)}] {job.name}: finished, skipping', flush=True)
        continue
      if max_minutes is not None and time.monotonic() - start >= 60 * max_minutes:
        status[job.name] = 'not started'
        continue
      label = f'[{i + 1}/{len(jobs)}] {job.name}'
      print(f'{label}: training and evaluating in {run_dir}', flush=True)

      def train_and_evaluate(job=job, run_dir=run_dir, eval_cfg=eval_cfg):
        cfg = job.train_config(preset, dataset, **(train_overrides or {}))
        if getattr(job, 'starts_from', None):
          _start_from(root, job, run_dir)
        trainer.train(cfg, run_dir, data_dir)
        evaluation.evaluate(eval_cfg, run_dir, os.path.join(run_dir, 'eval'), data_dir)

      status[job.name] = 'done' if _attempt(label, run_dir, train_and_evaluate) else 'failed'
  left = [name for name, s in status.items() if s == 'not started']
  if left:
    print(f'--max_minutes={max_minutes:g} spent; not started: {", ".join(left)}; rerun the same '
          'command to go on', flush=True)
  return status


def evaluate_snapshots(root: str, plan: dict, dataset: str, data_dir: str | None = None,
                       num_examples: int = PROGRESS_EXAMPLES, every: int = 1) -> dict:
  """Evaluates the epoch snapshots (every ``every``-th and the last: ``results.snapshots``) of
  each job of ``plan`` ({job: evaluation settings}) of ``root`` into ``<job>/progress/epoch-N/``;
  snapshots already evaluated so are skipped (a later call with a smaller ``every`` evaluates only
  the ones left), an
  interrupted evaluation resumes, one that fails with an error of its own is recorded there and
  the others go on (``_attempt``). A probe, not a final evaluation: the soundness check's
  unbounded PGD, as costly as the probe's attack, is left to the job's final evaluation. Returns
  {job: snapshots evaluated by this call}.

  Raises:
    ExperimentError: after the others, naming the snapshots whose evaluation failed.
  """
  from tf_pgn import evaluation  # pylint: disable=g-import-not-at-top
  done, failed = {}, []
  with locks.hold(root):
    for job, settings in plan.items():
      eval_cfg = evaluation.make_eval_config(**dict(settings, dataset=dataset,
                                                    num_examples=num_examples,
                                                    unbounded_check=False))
      done[job] = 0
      for epoch, prefix in results_lib.snapshots(os.path.join(root, job), every):
        out = os.path.join(root, job, 'progress', f'epoch-{epoch}')
        if _evaluated_on(out, eval_cfg):
          continue
        label = f'{job} epoch {epoch}'
        print(f'{label}: {",".join(eval_cfg.attacks)} on {num_examples} images into {out}',
              flush=True)
        if _attempt(label, out, lambda c=eval_cfg, p=prefix, o=out: evaluation.evaluate(
            c, p, o, data_dir)):
          done[job] += 1
        else:
          failed.append(label)
  if failed:
    raise ExperimentError(f'{len(failed)} snapshot evaluation(s) failed: {", ".join(failed)} '
                          f'(the traceback in each one\'s {FAILURE_FILE}); rerun the same '
                          'command to retry them, evaluated snapshots are skipped')
  return done


def run_progress(root: str, dataset: str, data_dir: str | None = None, names=None,
                 num_examples: int = PROGRESS_EXAMPLES, eval_overrides: dict | None = None,
                 every: int = 1) -> dict:
  """C&W (Figure 2 right) at the epoch snapshots (every ``every``-th and the last) of the FGM-AT
  and PGN jobs of ``root`` (or of the jobs ``names``): ``evaluate_snapshots``."""
  jobs = [r['job'] for r in results_lib.collect(root)
          if (r['job'] in names if names else r['defense'] in PROGRESS_DEFENSES)]
  if names and sorted(set(names) - set(jobs)):
    raise ExperimentError(f'no job(s) {", ".join(sorted(set(names) - set(jobs)))} in {root}')
  settings = dict(EVAL_SETTINGS, attacks=('cw',), **(eval_overrides or {}))
  return evaluate_snapshots(root, {job: settings for job in jobs}, dataset, data_dir,
                            num_examples, every)


def _main_jobs(sweep: results_lib.Sweep, points) -> list:
  """The trained jobs of ``points`` (defense, hyper-parameter, variant) at the sweep's main width
  and seed, in that order."""
  width, seed = sweep.main_width(), sweep.main_seed
  return [r['job'] for point in points for r in sweep.rows
          if (r['defense'], r['hparam_value'], r['variant'], r['width'], r['seed']) ==
          tuple(point) + (width, seed) and r['status'] != 'training']


def autoattack_jobs(sweep: results_lib.Sweep) -> list:
  """The trained jobs of AUTOATTACK_POINTS at the sweep's main width and seed, in that order."""
  return _main_jobs(sweep, AUTOATTACK_POINTS)


def figure3_jobs(sweep: results_lib.Sweep) -> list:
  """Figure 3's fixed targets: the trained FGM-AT and PGD-AT jobs at FIGURE3_TARGET_EPS at the
  sweep's main width and seed."""
  return _main_jobs(sweep, [(d, FIGURE3_TARGET_EPS, '') for d in FIGURE3_DEFENSES])


def _evaluate_into(root: str, names, default, folders: dict, dataset: str,
                   data_dir: str | None, num_examples: int, eval_overrides: dict | None) -> dict:
  """Evaluates the jobs ``names`` of ``root`` (default ``default(sweep)``) into each
  ``<job>/<folder>`` of ``folders`` ({folder: evaluation settings}); a folder already evaluated
  so is skipped, an interrupted evaluation resumes, one that fails with an error of its own is
  recorded there and the others go on (``_attempt``). Returns {(job, folder): 'skipped' | 'done'
  | 'failed'}.
  """
  from tf_pgn import evaluation  # pylint: disable=g-import-not-at-top
  configs = {folder: evaluation.make_eval_config(**dict(settings, dataset=dataset,
                                                        num_examples=num_examples,
                                                        **(eval_overrides or {})))
             for folder, settings in folders.items()}
  sweep = results_lib.load(root)
  trained = [r['job'] for r in sweep.rows if r['status'] != 'training']
  jobs = list(names) if names else default(sweep)
  if sorted(set(jobs) - set(trained)):
    raise ExperimentError(f'no trained job(s) {", ".join(sorted(set(jobs) - set(trained)))} in '
                          f'{root}: train them first (`run`) or choose from {",".join(trained)}')
  plan = [(job, folder) for job in jobs for folder in folders]
  status = {}
  with locks.hold(root):
    for i, (job, folder) in enumerate(plan):
      out, eval_cfg = os.path.join(root, job, folder), configs[folder]
      if _evaluated_on(out, eval_cfg):
        status[job, folder] = 'skipped'
        continue
      label = f'[{i + 1}/{len(plan)}] {job}'
      print(f'{label}: {",".join(eval_cfg.attacks)} into {out}', flush=True)
      status[job, folder] = 'done' if _attempt(label, out, lambda c=eval_cfg, j=job, o=out: (
          evaluation.evaluate(c, os.path.join(root, j), o, data_dir))) else 'failed'
  return status


def run_autoattack(root: str, dataset: str, data_dir: str | None = None, names=None,
                   num_examples: int = 1000, eval_overrides: dict | None = None) -> dict:
  """AUTOATTACK_SETTINGS (APGD-CE, APGD-T, Square, their worst case, FMN) on the jobs ``names``
  of ``root`` (default ``autoattack_jobs``) into ``<job>/eval_autoattack``; jobs already
  evaluated so are skipped, an interrupted evaluation resumes. Returns {job: 'skipped' | 'done'}.
  """
  status = _evaluate_into(root, names, autoattack_jobs, {AUTOATTACK_DIR: AUTOATTACK_SETTINGS},
                          dataset, data_dir, num_examples, eval_overrides)
  return {job: s for (job, _), s in status.items()}


def run_figure3(root: str, dataset: str, data_dir: str | None = None, names=None,
                variants=None, num_examples: int = 1000,
                eval_overrides: dict | None = None) -> dict:
  """Figure 3's PGN attack ``variants`` (names of FIGURE3_PGN_VARIANTS, default all) on the jobs
  ``names`` of ``root`` (default ``figure3_jobs``) into ``<job>/eval_pgn_<variant>``; those
  already evaluated are skipped. Returns {(job, variant): 'skipped' | 'done'}."""
  unknown = sorted(set(variants or ()) - set(FIGURE3_PGN_VARIANTS))
  if unknown:
    raise ExperimentError(f'unknown PGN attack variant(s) {", ".join(unknown)}: choose from '
                          f'{",".join(FIGURE3_PGN_VARIANTS)}')
  chosen = variants or list(FIGURE3_PGN_VARIANTS)
  folders = {PGN_EVAL_PREFIX + v: dict(FIGURE3_PGN_VARIANTS[v], attacks=('pgn',))
             for v in chosen}
  status = _evaluate_into(root, names, figure3_jobs, folders, dataset, data_dir, num_examples,
                          eval_overrides)
  return {(job, folder[len(PGN_EVAL_PREFIX):]): s for (job, folder), s in status.items()}
