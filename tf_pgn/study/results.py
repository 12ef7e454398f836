"""What a sweep root holds, read into plain data: a summary row per job (``collect``), C&W at its
epoch snapshots (``progress``, Figure 2 right), its PGN attacks of every G input (``pgn_attacks``,
Figure 3), groups of jobs that differ only in the seed, and all of it together (``load``).

A job folder ``<root>/<job>`` holds config.json and metrics.jsonl (``trainer.train``),
``eval/results.json`` (``evaluation.evaluate``), ``progress/epoch-N/results.json``
(``sweeps.run_progress``), on Figure 3's targets ``eval_pgn_<variant>/results.json`` (PGN
attacks with another G input) and, where run, ``eval_autoattack/results.json`` (APGD, Square, the
worst case and FMN: ``sweeps.run_autoattack``).
"""
import collections
import csv
import dataclasses
import io
import json
import os
import re
import shutil
import statistics

from tf_pgn.config import TrainConfig
from tf_pgn.evaluation import PGN_ATTACK_LOSS_TEXT
from tf_pgn.io_utils import read_jsonl, write_json_atomic, write_text_atomic
from tf_pgn.study.protocol import (AUTOATTACK_DIR, AUTOATTACK_KEY, BUDGET_ATTACKS,
                                   CURVE_VARIANTS, EVAL_SETTINGS, HPARAMS, PGN_EVAL_PREFIX,
                                   STRONG_PGD_EPS, VARIANT_FIELDS, ExperimentError, curve_label,
                                   variant_name)

__all__ = ['CW_ACC_KEY', 'SUMMARY_NOTES', 'Sweep', 'collect', 'copy_small_outputs', 'job_row',
           'load', 'mean_std', 'pgn_attack_variant',
           'pgn_attacks', 'progress', 'read_json', 'snapshot_results', 'snapshots',
           'write_summary', 'write_table']

SUMMARY_NOTES = {
    'status': 'evaluated | trained (no eval/results.json yet) | training',
    'test_acc': 'benign accuracy of the EMA classifier on the test split after the last epoch',
    'benign_accuracy': 'benign accuracy on the evaluated examples (the first num_examples)',
    'rho_cw_mean': 'mean L2 of successful C&W perturbations (Eq. 6); median in rho_cw_median',
    '<attack>_eps<e>_acc': 'white-box accuracy under that attack and L2 budget; PGD runs '
                           'pgd_steps steps',
    f'{AUTOATTACK_KEY}_acc': 'white-box accuracy under the AutoAttack-style worst case at that '
                             f'budget, where eval/ or {AUTOATTACK_DIR}/ has it (else null)',
    'train_seconds_per_epoch': 'mean epoch_seconds of metrics.jsonl over epochs not resumed '
                               'mid-way (wall clock: jobs run at different loads compare poorly)',
    'failed_checks': 'soundness checks of the evaluation that did not pass (; separated)',
    'through_adv': 'PGN: F\'s update differentiates through x_adv (--pgn_grad_through_adv)',
    'variant': 'PGN variant or ablation (protocol.variant_name of its config): \'\' for the '
               'paper\'s PGN and the baselines',
}


def mean_std(values: list) -> tuple:
  """(mean, sample std) of the values that are not None; (None, None) without any, std None
  with one."""
  values = [v for v in values if v is not None]
  if not values:
    return None, None
  return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else None


def copy_small_outputs(root: str, out_dir: str, jobs: list, more: tuple = ()) -> None:
  """Each job's config.json, metrics.jsonl, eval results and the files ``more`` (paths inside a
  job's folder) from ``root`` into ``out_dir`` (never checkpoints): what a report is regenerated
  from and what is committed."""
  for job in jobs:
    for rel in ('config.json', 'metrics.jsonl', os.path.join('eval', 'results.json'),
                os.path.join('eval', 'results.md')) + tuple(more):
      src = os.path.join(root, job, rel)
      if os.path.isfile(src):
        dst = os.path.join(out_dir, job, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(src, dst)


def read_json(path: str):
  """The JSON file at ``path``; None if there is none."""
  if not os.path.isfile(path):
    return None
  with open(path) as f:
    return json.load(f)


# -- training progress (Figure 2 right) -------------------------------------------------------
def snapshots(run_dir: str, every: int = 1) -> list:
  """(epoch, checkpoint prefix) of the job's epoch snapshots (``epochs/epoch-N``), by epoch;
  with ``every`` > 1 only those of the epochs it divides and the last one (a thinned trajectory
  that still ends where training ended)."""
  folder = os.path.join(run_dir, 'epochs')
  found = [re.fullmatch(r'epoch-(\d+)\.index', n) for n in
           (os.listdir(folder) if os.path.isdir(folder) else [])]
  every_snapshot = sorted((int(m.group(1)), os.path.join(folder, f'epoch-{m.group(1)}'))
                          for m in found if m)
  return [s for i, s in enumerate(every_snapshot)
          if s[0] % every == 0 or i == len(every_snapshot) - 1]


def snapshot_results(run_dir: str) -> list:
  """(epoch, results.json) of each evaluated epoch snapshot in ``<run_dir>/progress/epoch-N/``
  (``sweeps.evaluate_snapshots``), by epoch."""
  folder = os.path.join(run_dir, 'progress')
  found = [re.fullmatch(r'epoch-(\d+)', n) for n in
           (os.listdir(folder) if os.path.isdir(folder) else [])]
  out = []
  for epoch in sorted(int(m.group(1)) for m in found if m):
    results = read_json(os.path.join(folder, f'epoch-{epoch}', 'results.json'))
    if results is not None:
      out.append((epoch, results))
  return out


# progress(): C&W's accuracy at the strong budget at each snapshot.
CW_ACC_KEY = f'cw_acc_eps{STRONG_PGD_EPS:g}'


def _accuracy_at(curve: dict | None, radius: float):
  """The accuracy of an ``accuracy_vs_l2`` curve at ``radius``, None where it has no such
  radius."""
  if not curve:
    return None
  found = [a for r, a in zip(curve['radii'], curve['accuracy']) if abs(r - radius) < 1e-9]
  return found[0] if found else None


def progress(run_dir: str) -> list:
  """Per evaluated epoch snapshot of the job: epoch, benign_accuracy, rho_cw_mean,
  rho_cw_median, rho_cw_std_error, cw_acc_eps<STRONG_PGD_EPS> (the accuracy when every C&W
  perturbation larger than that L2 radius counts as failed: over all the images, unlike rho_cw's
  mean over the correctly classified ones), num_examples and seconds (``sweeps.run_progress``'s
  results in ``progress/epoch-N/``, which the report's copy keeps without the snapshots), by
  epoch."""
  rows = []
  for epoch, results in snapshot_results(run_dir):
    cw = results['attacks']['cw']['whitebox']
    rows.append({'epoch': epoch, 'benign_accuracy': results['benign_accuracy'],
                 'rho_cw_mean': cw['rho_mean'], 'rho_cw_median': cw['rho_median'],
                 'rho_cw_std_error': cw.get('rho_std_error'),
                 CW_ACC_KEY: _accuracy_at(cw.get('accuracy_vs_l2'), STRONG_PGD_EPS),
                 'num_examples': results['num_examples'], 'seconds': results.get('seconds')})
  return rows


# -- summary ---------------------------------------------------------------------------------
def _accuracy(attacks: dict, key: str):
  return attacks.get(key, {}).get('whitebox', {}).get('accuracy')


def job_row(run_dir: str) -> dict:
  """One summary row from a job's config.json, metrics.jsonl and eval/results.json (and the
  worst case from AUTOATTACK_DIR/results.json where eval/ lacks it)."""
  cfg = TrainConfig.from_dict(read_json(os.path.join(run_dir, 'config.json')))
  epochs = read_jsonl(os.path.join(run_dir, 'metrics.jsonl'))
  results = read_json(os.path.join(run_dir, 'eval', 'results.json')) or {}
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
      variant=variant_name(dataclasses.asdict(cfg)) if cfg.defense == 'pgn' else '',
      epochs=epochs[-1]['epoch'] if epochs else 0,
      test_acc=epochs[-1]['test_acc'] if epochs else None,
      num_examples=results.get('num_examples'), benign_accuracy=results.get('benign_accuracy'),
      rho_cw_mean=cw.get('rho_mean'), rho_cw_median=cw.get('rho_median'),
      cw_success_rate=cw.get('success_rate'),
      rho_deepfool_mean=attacks.get('deepfool', {}).get('whitebox', {}).get('rho_mean'),
      pgd_steps=results.get('attack_settings', {}).get('pgd', {}).get('steps'))
  for eps in EVAL_SETTINGS['eps_list']:
    for name in BUDGET_ATTACKS:
      row[f'{name}_eps{eps:g}_acc'] = _accuracy(attacks, f'{name}_eps{eps:g}')
  strong = (read_json(os.path.join(run_dir, AUTOATTACK_DIR, 'results.json')) or {}).get(
      'attacks', {})
  row[f'{AUTOATTACK_KEY}_acc'] = _accuracy(attacks if AUTOATTACK_KEY in attacks else strong,
                                           AUTOATTACK_KEY)
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
  return [job_row(os.path.join(root, d)) for d in dirs]


def write_summary(root: str, out_dir: str | None = None) -> list:
  """Writes summary.json and summary.csv of ``root``'s jobs (atomically) into ``out_dir``
  (default ``root``); returns the rows."""
  rows = collect(root)
  write_table(out_dir or root, root, rows, SUMMARY_NOTES)
  return rows


def write_table(out_dir: str, root: str, rows: list, notes: dict) -> None:
  """Writes ``rows`` (dicts with the same keys, in column order) as ``out_dir``'s summary.json
  (with the columns, the ``notes`` on them and the ``root`` they were read from) and
  summary.csv, each atomically."""
  columns = list(rows[0]) if rows else []
  write_json_atomic(os.path.join(out_dir, 'summary.json'),  # sorted keys: columns has the order
                    dict(root=root, columns=columns, notes=notes, jobs=rows))
  buffer = io.StringIO()
  writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator='\n')
  writer.writeheader()
  writer.writerows(rows)
  write_text_atomic(os.path.join(out_dir, 'summary.csv'), buffer.getvalue())


# -- PGN as an attack (Figure 3) -------------------------------------------------------------
def pgn_attack_variant(results: dict, entry: dict) -> str:
  """A PGN attack's G input ('raw' where results.json predates the field), its loss where not
  the paper's CE, and its L2 budget: 'raw', 'normalized', 'normalized_margin',
  'normalized_eps0.5', ..."""
  settings = results.get('attack_settings', {}).get('pgn', {})
  loss = next((name for name, text in PGN_ATTACK_LOSS_TEXT.items()
               if text == settings.get('loss')), 'ce')
  return (settings.get('grad_input', 'raw') + ('' if loss == 'ce' else f'_{loss}') +
          (f'_eps{entry["eps"]:g}' if entry.get('eps') is not None else ''))


def pgn_attacks(run_dir: str) -> dict:
  """{attack variant: dict(folder, results, entries)} of the job's PGN attacks: those in eval/
  and in each ``eval_pgn_*/`` folder (folder: its name in the job; entries: results.json's PGN
  entries of that variant). A variant found in two folders is read from the first, eval/ first."""
  folders = ['eval'] + sorted(n for n in (os.listdir(run_dir) if os.path.isdir(run_dir) else [])
                              if n.startswith(PGN_EVAL_PREFIX))
  found = {}
  for folder in folders:
    results = read_json(os.path.join(run_dir, folder, 'results.json')) or {}
    variants = collections.defaultdict(list)
    for entry in results.get('attacks', {}).values():
      if entry['attack'] == 'pgn':
        variants[pgn_attack_variant(results, entry)].append(entry)
    for variant, entries in variants.items():
      found.setdefault(variant, dict(folder=folder, results=results, entries=entries))
  return found


# -- a root ----------------------------------------------------------------------------------
def _most_common(values):
  return collections.Counter(values).most_common(1)[0][0] if values else None


@dataclasses.dataclass
class Sweep:
  """What a sweep root holds: the summary rows of every job (``collect``) and, per job name, its
  config, per-epoch metrics, evaluation results (if evaluated), C&W at its epoch snapshots (if
  measured), PGN attacks by variant (``pgn_attacks``) and AUTOATTACK_DIR results (if run);
  <root>/bench.json if present."""
  root: str
  rows: list
  configs: dict
  epochs: dict
  results: dict
  bench: dict | None
  progress: dict  # job: progress rows
  pgn_attacks: dict  # job: pgn_attacks(job folder), where it has any
  autoattack: dict  # job: its AUTOATTACK_DIR/results.json, where it has one

  @property
  def dataset(self) -> str:
    return self.rows[0]['dataset']

  def main_width(self, rows: list | None = None):
    """The classifier width most of ``rows`` (default: the evaluated jobs', else all) share:
    Figure 5 left compares defenses at one."""
    return _most_common([r['width'] for r in (rows or self.evaluated() or self.rows)])

  @property
  def main_seed(self):
    """The seed most jobs share: the curves' (the seeds sweep adds others for the spread)."""
    return _most_common([r['seed'] for r in self.rows])

  def evaluated(self, rows: list | None = None) -> list:
    return [r for r in (self.rows if rows is None else rows)
            if r['rho_cw_mean'] is not None and r['test_acc'] is not None]

  def curve(self, defense: str, variant: str = '') -> list:
    """A robustness curve (Figure 5 left): the evaluated jobs of the defense and PGN variant at
    the main width and seed, by benign test accuracy."""
    width, seed = self.main_width(), self.main_seed
    return sorted((r for r in self.evaluated() if (r['defense'], r['variant'], r['width'],
                                                   r['seed']) == (defense, variant, width, seed)),
                  key=lambda r: r['test_acc'])

  def curves(self) -> dict:
    """{curve label: its curve} of FGM-AT, PGD-AT and each PGN variant of CURVE_VARIANTS."""
    return {curve_label(dict(defense=d, variant=v)): self.curve(d, v)
            for d, v in [('fgm', ''), ('pgd', '')] + [('pgn', v) for v in CURVE_VARIANTS]}

  def cw_curves(self) -> dict:
    """{job: its C&W accuracy-vs-L2 curve (radii, accuracy)}, where evaluated."""
    return {j: cw['whitebox']['accuracy_vs_l2'] for j, r in self.results.items()
            if (cw := r['attacks'].get('cw')) and 'accuracy_vs_l2' in cw['whitebox']}

  def recorded_hours(self) -> dict:
    """Wall-clock hours the jobs' files record: training (every epoch's ``epoch_seconds``),
    evaluation (``seconds`` of the last evaluate call per folder: eval/, the PGN-attack folders
    and AUTOATTACK_DIR; partial results it reused not counted) and C&W at the epoch snapshots."""
    extra = [a['results'] for attacks in self.pgn_attacks.values() for a in
             {a['folder']: a for a in attacks.values() if a['folder'] != 'eval'}.values()]
    seconds = dict(
        training=sum(e.get('epoch_seconds') or 0 for rows in self.epochs.values() for e in rows),
        evaluation=sum(r.get('seconds') or 0 for r in list(self.results.values()) + extra +
                       list(self.autoattack.values())),
        progress=sum(p.get('seconds') or 0 for rows in self.progress.values() for p in rows))
    return {k: v / 3600 for k, v in seconds.items()}

  @property
  def ablation(self) -> list:
    """The PGN jobs off the robustness curves: a variant not in CURVE_VARIANTS (F through x_adv,
    the levers on G)."""
    return [r for r in self.rows if r['defense'] == 'pgn' and r['variant'] not in CURVE_VARIANTS]

  def twin(self, row: dict) -> tuple:
    """(twin, change) of an ablation ``row``: the curve job whose config differs from its only in
    VARIANT_FIELDS, in the fewest of them (None if there is none), and {field: (twin's value,
    row's value)} of those fields."""
    cfg = dataclasses.asdict(self.configs[row['job']])
    best, change = None, {}
    for other in self.rows:
      if other['variant'] not in CURVE_VARIANTS or other['defense'] != row['defense']:
        continue
      ocfg = dataclasses.asdict(self.configs[other['job']])
      differ = {k for k in cfg if cfg[k] != ocfg[k]}
      if differ and differ <= set(VARIANT_FIELDS) and (best is None or
                                                        len(differ) < len(change)):
        best, change = other, {k: (ocfg[k], cfg[k]) for k in sorted(differ)}
    return best, change

  def seed_groups(self) -> list:
    """Evaluated jobs whose configs differ only in the seed, as dict(name, rows by seed); name
    is the job name with the seed replaced by '*'. In row order. (A job still training has a
    test accuracy of its last epoch, not of the run: it joins its group once evaluated.)"""
    groups = {}
    for r in self.evaluated():
      cfg = dataclasses.asdict(self.configs[r['job']])
      del cfg['seed']
      groups.setdefault(json.dumps(cfg, sort_keys=True), []).append(r)
    return [dict(name=rows[0]['job'].replace(f'_s{rows[0]["seed"]}', '_s*', 1),
                 rows=sorted(rows, key=lambda r: r['seed'])) for rows in groups.values()]


def load(root: str) -> Sweep:
  """Reads ``root``; jobs still training or not yet evaluated are kept (status in their row)."""
  rows = collect(root)
  jobs = [r['job'] for r in rows]
  results = {j: read_json(os.path.join(root, j, 'eval', 'results.json')) for j in jobs}
  attacks = {j: pgn_attacks(os.path.join(root, j)) for j in jobs}
  strong = {j: read_json(os.path.join(root, j, AUTOATTACK_DIR, 'results.json')) for j in jobs}
  return Sweep(root, rows,
               {j: TrainConfig.from_dict(read_json(os.path.join(root, j, 'config.json')))
                for j in jobs},
               {j: read_jsonl(os.path.join(root, j, 'metrics.jsonl')) for j in jobs},
               {j: r for j, r in results.items() if r},
               read_json(os.path.join(root, 'bench.json')),
               {j: progress(os.path.join(root, j)) for j in jobs},
               {j: a for j, a in attacks.items() if a},
               {j: r for j, r in strong.items() if r})
