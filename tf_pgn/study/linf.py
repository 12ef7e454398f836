"""The paper's thesis where a fixed attack can fail: catastrophic overfitting at Linf.

Section 3.2 of the PGN paper (CASE 1 / CASE 2, Figure 2 right) argues that a classifier trained on
a fixed attack such as FGM overfits to it and that PGN's adaptive generator does not. At L2 on
this project's scale one FGM step is as strong as PGD-100, so nothing can overfit; at Linf
FGSM-AT is known to collapse ("catastrophic overfitting": Wong, Rice & Kolter 2020; Andriushchenko
& Flammarion 2020; de Jorge et al. 2022): within an epoch its PGD accuracy falls to ~0 while its
FGSM accuracy stays up or rises. This module is that study: its jobs (FGSM-AT, FGSM-RS, N-FGSM,
PGN with a Linf box and PGD-AT, each trained for ``EPOCHS`` at width ``WIDTH`` with the per-epoch
PGD and FGSM probes of ``tf_pgn.trainer``, then evaluated with FGSM, PGD-20 and AutoAttack at
Linf), the rule that says when a run collapsed, the questions it answers with computed verdicts,
and its report (``tf_pgn.study.render.linf_report``).

Layers: this module reads run folders (metrics.jsonl, config.json, eval/results.json) and imports
only tf_pgn.config and tf_pgn.study.results; training and evaluation go through
``sweeps.run_sweep``.
"""
import dataclasses
import math
import os
import statistics

from tf_pgn.config import TrainConfig, budget_label, make_config
from tf_pgn.io_utils import read_jsonl
from tf_pgn.study.results import mean_std, read_json, snapshot_results

__all__ = ['DEFENSES', 'LEVERS', 'LINF_SWEEPS', 'LinfJob', 'SUMMARY_NOTES', 'collapse', 'fmt',
           'in_study', 'is_long', 'lever_runs', 'linf_rows', 'long_runs', 'progress_plan',
           'summary_rows', 'verdicts']

# The regime where the project's FGSM-AT was seen to collapse: the cpu preset's optimiser (Adam
# 2e-3, batch 128, EMA 0.99) at classifier width 0.5 and eps 16/255; 8/255 maps the edge.
WIDTH = 0.5
EPOCHS = 15
# PGN-Linf trained on past the study's schedule (``linf_long``): its strong-probe accuracy was
# falling at epoch EPOCHS, so whether it delays the collapse or avoids it is decided later.
LONG_EPOCHS = 25
SEEDS = (1234, 1235, 1236)
EPS_LEVELS = (16, 8)  # eps in pixel levels of 1/255
# Each defense's fields beyond the preset: FGSM-AT is --defense=fgm at Linf (no random start);
# PGN-Linf is G on -CE alone (c_L 0: the box is the budget), its normalized gradient input and a
# zero-initialised output layer (x_adv = x at the start); PGD-AT is Madry's 7 steps of eps / 4.
DEFENSES = {
    'fgm': dict(defense='fgm'),
    'fgsm_rs': dict(defense='fgsm_rs'),
    'n_fgsm': dict(defense='n_fgsm'),
    'pgn': dict(defense='pgn', c_l=0.0, pgn_grad_input='normalized', pgn_zero_init=True),
    'pgd': dict(defense='pgd', pgd_steps=7),
}
LABELS = {'fgm': 'FGSM-AT', 'fgsm_rs': 'FGSM-RS', 'n_fgsm': 'N-FGSM', 'pgn': 'PGN-Linf',
          'pgd': 'PGD-7-AT'}
CHEAP_FIXES = ('fgsm_rs', 'n_fgsm')
EVAL_ATTACKS = ('fgm', 'pgd', 'autoattack')
EVAL_PGD_STEPS = 20
# A run collapsed at the first epoch where its PGD probe accuracy is below COLLAPSE_FRACTION of its
# best earlier value. The collapse is catastrophic overfitting where the FGSM probe accuracy then
# exceeds the PGD probe accuracy by at least COLLAPSE_GAP (robustness kept against the fixed
# attack, lost to the strong one), a divergence where the training loss is at least
# DIVERGENCE_FACTOR times its lowest earlier epoch mean (the optimisation blew up).
COLLAPSE_FRACTION = 0.25
COLLAPSE_GAP = 0.1
DIVERGENCE_FACTOR = 2.0
# Two accuracies differ when they are further apart than this, or than twice the larger seed std.
LEVEL_TOLERANCE = 0.01
CPU_PRESET = make_config('cpu')
STUDY_LR = CPU_PRESET.lr
# Levers: training fields a job sets beyond its defense's, each named by the suffix it adds to the
# job's name, with what it changes. The paper's Adam rate (section 4.1) for both networks tells
# whether the step size or the attack fails (FGSM-AT's first collapse at 16/255 was a divergence
# at the preset's 2e-3); the generator's two levers tell whether a G that adapts faster to F (two
# G updates per F update, or G's rate twice F's) still collapses. Lever runs are in the tables,
# outside the verdicts on the study's own runs; each lever gets a question of its own.
LEVERS = {
    '_lr0.0005': ('Adam at 5e-4 for both networks (the paper\'s rate)',
                  dict(lr=5e-4, gen_lr=5e-4)),
    '_gen2': ('two generator updates per classifier update', dict(pgn_gen_steps=2)),
    '_glr0.004': ('the generator\'s Adam at 4e-3, twice the classifier\'s',
                  dict(gen_lr=2 * STUDY_LR)),
}
# The strong probe (``experiments linf_progress``): APGD-CE (AutoAttack's first part) at the
# job's eps on the first PROGRESS_EXAMPLES test images at every epoch snapshot of each defense's
# runs, because the trainer's PGD-10 probe can miss a fall that only a stronger attack sees (a
# final PGD-20 accuracy far above AutoAttack's is the sign). The same collapse rule reads it.
PROGRESS_ATTACK = 'apgd_ce'
PROGRESS_LABEL = 'APGD-CE'
PROGRESS_EXAMPLES = 500


@dataclasses.dataclass(frozen=True)
class LinfJob:
  """One training run of the Linf study (``sweeps.run_sweep`` trains and evaluates it); ``lever``
  a key of LEVERS ('' for none); ``precision`` the train step's (``--mixed_precision``; named
  ``_bf16`` in bfloat16; always given, so a job means the same run whatever the default);
  ``continued``: trained on to ``epochs`` from the finished EPOCHS-epoch job of the same setting
  (named ``_e<epochs>``; ``starts_from``)."""
  defense: str
  eps_levels: int
  seed: int
  width: float = WIDTH
  epochs: int = EPOCHS
  lever: str = ''
  precision: str = 'float32'
  continued: bool = False

  @property
  def eps(self) -> float:
    return self.eps_levels / 255.0

  @property
  def name(self) -> str:
    longer = f'_e{self.epochs}' if self.continued else ''
    bf16 = '_bf16' if self.precision == 'bfloat16' else ''
    return (f'{self.defense}_eps{self.eps_levels}_w{self.width:g}_s{self.seed}{self.lever}{bf16}'
            f'{longer}')

  @property
  def starts_from(self) -> str | None:
    """The name of the job a continued job trains on, else None."""
    return (dataclasses.replace(self, epochs=EPOCHS, continued=False).name if self.continued
            else None)

  def train_config(self, preset: str, dataset: str, **overrides):
    lever = LEVERS[self.lever][1] if self.lever else {}
    return make_config(preset, **{**overrides, **lever}, dataset=dataset, norm='linf',
                       eps=self.eps, width=self.width, epochs=self.epochs, seed=self.seed,
                       mixed_precision=self.precision, **DEFENSES[self.defense])

  def eval_settings(self) -> dict:
    return dict(norm='linf', eps_list=(self.eps,), attacks=EVAL_ATTACKS,
                pgd_steps=EVAL_PGD_STEPS)


# PGD-7-AT, the slowest defense, trains in bfloat16: a PGD step takes about a third of its
# float32 time (docs/BENCHMARK.md), and bfloat16 training was measured level with float32
# (docs/PRECISION.md). The others train in float32, as the study's first runs did.
PRECISION = {'pgd': 'bfloat16'}


def _sweep(levels: int, seeds: dict) -> list:
  """Jobs at ``levels``/255, ``seeds[defense]`` each; the two the thesis is decided between
  first, PGD-AT (the slowest) last."""
  order = ('fgm', 'pgn', 'fgsm_rs', 'n_fgsm', 'pgd')

  def job(defense, seed):
    return LinfJob(defense, levels, seed, precision=PRECISION.get(defense, 'float32'))
  first = [job(d, s) for s in SEEDS[:1] for d in order[:2]]
  more = [job(d, s) for s in SEEDS[1:] for d in order[:2] if s in seeds[d]]
  rest = [job(d, s) for d in order[2:] for s in seeds[d]]
  return first + rest[:2] + more + rest[2:]


LINF_SWEEPS = {
    # The regime where FGSM-AT collapses: 3 seeds of FGSM-AT and PGN, one of the others.
    'linf_collapse': _sweep(16, dict(fgm=SEEDS, pgn=SEEDS, fgsm_rs=SEEDS[:1],
                                     n_fgsm=SEEDS[:1], pgd=SEEDS[:1])),
    # The field's standard budget: one seed each.
    'linf_eps8': _sweep(8, {d: SEEDS[:1] for d in DEFENSES}),
    # The library's Linf table (issue: Linf through the library): each defense at 8/255 with the
    # cpu preset's own width and schedule, one seed; outside the study's regime and verdicts.
    'linf_eps8_cpu': [LinfJob(d, 8, SEEDS[0], width=CPU_PRESET.width, epochs=CPU_PRESET.epochs)
                      for d in ('fgm', 'fgsm_rs', 'n_fgsm', 'pgn', 'pgd')],
    # The levers (LEVERS) at 16/255, seed 1234: the learning rate for FGSM-AT and PGN over the
    # study's schedule; the generator's for PGN over LONG_EPOCHS, the schedule on which the
    # study's PGN collapsed.
    'linf_lr': [LinfJob(d, 16, SEEDS[0], lever='_lr0.0005') for d in ('fgm', 'pgn')],
    'linf_gen': [LinfJob('pgn', 16, SEEDS[0], lever=lever, epochs=LONG_EPOCHS)
                 for lever in ('_gen2', '_glr0.004')],
    # PGN-Linf at 16/255 trained on to LONG_EPOCHS from each seed's finished run: does it delay
    # the collapse or avoid it? Outside the EPOCHS-epoch verdicts; a question of its own.
    'linf_long': [LinfJob('pgn', 16, s, epochs=LONG_EPOCHS, continued=True) for s in SEEDS],
}


# -- reading the runs --------------------------------------------------------------------------
def _eval_entry(results: dict, attack: str):
  """The white-box result of ``attack`` (its only budget) in an evaluation's results."""
  for key, entry in (results or {}).get('attacks', {}).items():
    if key.startswith(attack + '_eps') and 'whitebox' in entry:
      return entry['whitebox']
  return None


def _eval_accuracy(results: dict, attack: str):
  """White-box accuracy of ``attack`` (its only budget) in an evaluation's results."""
  return (_eval_entry(results, attack) or {}).get('accuracy')


def progress_settings(eps: float) -> dict:
  """The strong probe's evaluation settings at Linf ``eps`` (PROGRESS_ATTACK)."""
  return dict(norm='linf', eps_list=(eps,), attacks=(PROGRESS_ATTACK,))


def progress_plan(root: str, names=None) -> dict:
  """{job: evaluation settings} of the strong probe for the study's jobs of ``root`` and the
  PGN-Linf runs trained on past EPOCHS (or the Linf jobs ``names``), for
  ``sweeps.evaluate_snapshots``. Raises ValueError naming the jobs of ``names`` that are no Linf
  job of ``root``."""
  rows = linf_rows(root)
  chosen = [r for r in rows if (r['job'] in names if names else in_study(r) or is_long(r))]
  missing = sorted(set(names or ()) - {r['job'] for r in chosen})
  if missing:
    raise ValueError(f'no Linf job(s) {", ".join(missing)} in {root}: choose from '
                     f'{",".join(r["job"] for r in rows)}')
  return {r['job']: progress_settings(r['eps_levels'] / 255.0) for r in chosen}


def _strong_by_epoch(run_dir: str) -> list:
  """[{epoch, accuracy, num_examples}] of the strong probe at the job's evaluated snapshots."""
  return [dict(epoch=epoch, accuracy=_eval_accuracy(results, PROGRESS_ATTACK),
               num_examples=results['num_examples'], seconds=results.get('seconds') or 0.0)
          for epoch, results in snapshot_results(run_dir)
          if _eval_accuracy(results, PROGRESS_ATTACK) is not None]


def strong_collapse(strong: list):
  """The first epoch whose strong-probe accuracy is below COLLAPSE_FRACTION of its best earlier
  value (the collapse rule on APGD-CE), or None."""
  best = 0.0
  for p in strong:
    if best > 0 and p['accuracy'] < COLLAPSE_FRACTION * best:
      return p['epoch']
    best = max(best, p['accuracy'])
  return None


def collapse(epochs: list, pgd_key: str, fgm_key: str) -> tuple:
  """(epoch, kind) of the run's first collapse (module constants), kind one of 'catastrophic
  overfitting', 'divergence' and 'other'; (None, None) if it never collapsed."""
  best, lowest_loss = 0.0, math.inf
  for row in epochs:
    pgd, fgm, loss = row.get(pgd_key), row.get(fgm_key), row.get('train_loss', math.nan)
    if pgd is None or fgm is None:
      continue
    if best > 0 and pgd < COLLAPSE_FRACTION * best:
      kind = ('catastrophic overfitting' if fgm - pgd >= COLLAPSE_GAP else
              'divergence' if loss >= DIVERGENCE_FACTOR * lowest_loss else 'other')
      return row['epoch'], kind
    best, lowest_loss = max(best, pgd), min(lowest_loss, loss)
  return None, None


def linf_rows(root: str) -> list:
  """One row per Linf job folder of ``root``: its config, per-epoch probes, collapse epoch and
  final evaluation."""
  rows = []
  for name in sorted(os.listdir(root) if os.path.isdir(root) else []):
    cfg = read_json(os.path.join(root, name, 'config.json'))
    if not cfg or cfg.get('norm') != 'linf':
      continue
    label = budget_label(cfg['probe_eps'] or cfg['eps'], 'linf')
    pgd_key, fgm_key = f'probe_pgd{label}_acc', f'probe_fgm{label}_acc'
    epochs = read_jsonl(os.path.join(root, name, 'metrics.jsonl'))
    results = read_json(os.path.join(root, name, 'eval', 'results.json'))
    defense = next(d for d, fields in DEFENSES.items() if fields['defense'] == cfg['defense'])
    # A run trained on past EPOCHS records its first EPOCHS epochs' time in the run it continues.
    own = EPOCHS if _continues(name, cfg['epochs']) else 0
    steps = [e['step'] - (epochs[i - 1]['step'] if i else 0) for i, e in enumerate(epochs)]
    whole = [1e3 * e['epoch_seconds'] / n for e, n in zip(epochs, steps)
             if not e['resumed_mid_epoch'] and e['epoch'] > own]
    strong = _strong_by_epoch(os.path.join(root, name))
    rows.append(dict(
        job=name, defense=defense, eps_levels=round(cfg['eps'] * 255), seed=cfg['seed'],
        lr=cfg['lr'], lever=_lever(cfg), width=cfg['width'], epochs_planned=cfg['epochs'],
        precision=TrainConfig.from_dict(cfg).mixed_precision,  # old folders' booleans read
        epochs=[dict(epoch=e['epoch'], test_acc=e['test_acc'], pgd=e.get(pgd_key),
                     fgm=e.get(fgm_key), train_loss=e['train_loss'],
                     pert_l2=e.get('train_pert_l2'), fgm_cos=e.get('train_pert_fgm_cos'))
                for e in epochs],
        ms_per_step=statistics.median(whole) if whole else None,
        **dict(zip(('collapsed_at', 'collapse_kind'), collapse(epochs, pgd_key, fgm_key))),
        strong=strong, strong_collapsed_at=strong_collapse(strong),
        evaluated=results is not None, clean=(results or {}).get('benign_accuracy'),
        fgm_acc=_eval_accuracy(results, 'fgm'), pgd_acc=_eval_accuracy(results, 'pgd'),
        autoattack_acc=_eval_accuracy(results, 'autoattack'),
        autoattack=_eval_entry(results, 'autoattack'),
        num_examples=(results or {}).get('num_examples'),
        seconds=dict(training=sum(e['epoch_seconds'] for e in epochs if e['epoch'] > own),
                     evaluation=(results or {}).get('seconds') or 0.0,
                     probe=sum(p['seconds'] for p in strong if p['epoch'] > own))))
  return rows


# What each column of ``summary_rows`` (the report's summary.json and summary.csv) holds.
SUMMARY_NOTES = {
    'defense': 'FGSM-AT (fgm), FGSM-RS, N-FGSM, PGN-Linf (pgn) or PGD-7-AT (pgd)',
    'lever': 'a key of LEVERS (the training fields the run changes), empty for none',
    'precision': "the train step's compute precision (--mixed_precision)",
    'collapsed_at': 'the first epoch whose PGD-10 probe accuracy fell below COLLAPSE_FRACTION of '
                    'its best earlier value (collapse_kind: catastrophic overfitting, divergence '
                    'or other), empty if none',
    'strong_best': 'the best APGD-CE accuracy over the epoch snapshots (at strong_best_epoch); '
                   'strong_last the last one\'s; strong_fell_at the collapse rule on it',
    'clean': 'final evaluation on the first num_examples test images: benign accuracy; fgm, '
             'pgd (PGD-20) and autoattack the accuracy under each at the job\'s eps',
    'ms_per_step': 'median training step of the run\'s whole epochs, on its machine and load',
}


def summary_rows(rows: list) -> list:
  """One flat row per run of ``linf_rows`` (the columns of SUMMARY_NOTES and the setting)."""
  out = []
  for r in rows:
    best = max(r['strong'], key=lambda p: p['accuracy']) if r['strong'] else {}
    out.append(dict(
        job=r['job'], defense=r['defense'], eps_levels=r['eps_levels'], width=r['width'],
        seed=r['seed'], lever=r['lever'], precision=r['precision'], lr=r['lr'],
        epochs=len(r['epochs']), epochs_planned=r['epochs_planned'],
        collapsed_at=r['collapsed_at'], collapse_kind=r['collapse_kind'],
        strong_best=best.get('accuracy'), strong_best_epoch=best.get('epoch'),
        strong_last=r['strong'][-1]['accuracy'] if r['strong'] else None,
        strong_fell_at=r['strong_collapsed_at'], clean=r['clean'], fgm=r['fgm_acc'],
        pgd=r['pgd_acc'], autoattack=r['autoattack_acc'], num_examples=r['num_examples'],
        ms_per_step=r['ms_per_step']))
  return out


def _lever(cfg: dict) -> str:
  """The key of LEVERS whose fields the run's config holds, '' for none."""
  values = dict(lr=cfg['lr'], gen_lr=cfg.get('gen_lr', cfg['lr']),
                pgn_gen_steps=cfg.get('pgn_gen_steps', 1))
  return next((key for key, (_, fields) in LEVERS.items()
               if all(values[f] == v for f, v in fields.items())), '')


# -- the questions -----------------------------------------------------------------------------
def in_study(row: dict) -> bool:
  """Whether a run is in the study's regime (width WIDTH), not the cpu preset's table or a run
  trained on past the study's schedule."""
  return row['width'] == WIDTH and not is_long(row)


def is_long(row: dict) -> bool:
  """Whether a run continues one of the study's past its schedule (a continued ``LinfJob``,
  named ``_e<epochs>``: ``linf_long``)."""
  return row['width'] == WIDTH and _continues(row['job'], row['epochs_planned'])


def _continues(job: str, epochs: int) -> bool:
  """Whether the job folder ``job`` of an ``epochs``-epoch run is a continued ``LinfJob``."""
  return job.endswith(f'_e{epochs}')


def _runs(rows: list, defense: str, levels: int) -> list:
  """The defense's runs at ``levels``/255 in the study's regime and at its learning rate (no
  lever)."""
  return [r for r in rows if r['defense'] == defense and r['eps_levels'] == levels and
          _own(r) and in_study(r)]


def _own(row: dict) -> bool:
  """Whether a run is trained as the study's own (no lever, the study's learning rate)."""
  return not row['lever'] and row['lr'] == STUDY_LR


def _done(row: dict) -> bool:
  return len(row['epochs']) >= row['epochs_planned'] or row['collapsed_at'] is not None


def _collapses(runs: list) -> str:
  collapsed = [r for r in runs if r['collapsed_at'] is not None]
  training = [r for r in runs if not _done(r)]
  text = f'{len(collapsed)} of {len(runs)} seed(s) collapsed' + (
      ' (' + ', '.join(f'epoch {r["collapsed_at"]}: {r["collapse_kind"]}' for r in collapsed) +
      ')' if collapsed else '')
  return text + (f', {len(training)} still training' if training else '')


def _collapse_verdict(runs: list) -> str:
  """'yes' if most seeds collapsed, 'no' if none did over the whole schedule, else 'undecided'."""
  collapsed = sum(r['collapsed_at'] is not None for r in runs)
  if runs and 2 * collapsed > len(runs):
    return 'yes'
  if runs and not collapsed and all(_done(r) for r in runs):
    return 'no'
  return 'undecided'


def _strong_done(row: dict) -> bool:
  """Whether the strong probe has judged the whole run: it fell, or it covers every epoch of a
  finished run."""
  measured = {p['epoch'] for p in row['strong']}
  return row['strong_collapsed_at'] is not None or (
      _done(row) and all(e['epoch'] in measured for e in row['epochs']))


def _strong_question(fgsm: list, pgn: list, q1: str, q2: str) -> dict:
  """The first and third questions asked again of the strong probe: 'yes' where it gives the
  trainer's probe's answers ``q1``, ``q2``, 'no' where it does not, 'undecided' while either probe
  has not judged enough runs."""
  question = (f'Does the strong probe ({PROGRESS_LABEL} at each epoch snapshot) give the same '
              'answers (FGSM-AT collapses; PGN avoids it)?')
  fs, ps = [r for r in fgsm if r['strong']], [r for r in pgn if r['strong']]
  if not fs or not ps:
    return dict(question=question, verdict='not measured',
                why='needs `experiments linf_progress` on FGSM-AT and PGN runs')
  f_fell = [r for r in fs if r['strong_collapsed_at'] is not None]
  p_fell = [r for r in ps if r['strong_collapsed_at'] is not None]
  s1 = ('yes' if 2 * len(f_fell) > len(fs) else
        'no' if not f_fell and all(map(_strong_done, fs)) else 'undecided')
  s2 = ('no' if p_fell else 'yes' if s1 == 'yes' and all(map(_strong_done, ps)) else
        'undecided')
  verdict = ('undecided' if 'undecided' in (s1, s2, q1, q2) else
             'yes' if (s1, s2) == (q1, q2) else 'no')

  def fell(runs, fallen):
    return f'{len(fallen)} of {len(runs)} fell' + (
        ' (epoch ' + ', '.join(str(r['strong_collapsed_at']) for r in fallen) + ')'
        if fallen else '')

  why = (f'on this probe FGSM-AT collapses: {s1} ({fell(fs, f_fell)}); PGN avoids it: {s2} '
         f'({fell(ps, p_fell)}); PGN-Linf {PROGRESS_LABEL} best -> last: ' +
         '; '.join(f'seed {r["seed"]} {_best_last(r)}' for r in ps))
  return dict(question=question, verdict=verdict, why=why)


def _strong_falls(runs: list) -> str:
  """'k of n run(s)' whose strong probe fell, of those it measured ('not measured' if none)."""
  measured = [r for r in runs if r['strong']]
  fell = [r for r in measured if r['strong_collapsed_at'] is not None]
  return f'{len(fell)} of {len(measured)} run(s)' if measured else 'not measured'


def _best_last(row: dict) -> str:
  """'best (epoch b) -> last (epoch l)' of the run's strong probe."""
  best, last = max(row['strong'], key=lambda p: p['accuracy']), row['strong'][-1]
  return (f'{best["accuracy"]:.3f} (epoch {best["epoch"]}) -> {last["accuracy"]:.3f} '
          f'(epoch {last["epoch"]})')


def long_runs(rows: list, levels: int) -> list:
  """The PGN-Linf runs at ``levels``/255 trained on past EPOCHS at the study's learning rate."""
  return [r for r in rows if is_long(r) and r['defense'] == 'pgn' and
          r['eps_levels'] == levels and _own(r)]


def _fall_question(question: str, runs: list) -> dict:
  """Does the runs' robustness collapse on either probe (the trainer's PGD-10 or the strong one)?
  'yes' if most runs did, 'no' if none did and both probes judged every run to its end, else
  'undecided'."""
  fell = [r for r in runs
          if r['collapsed_at'] is not None or r['strong_collapsed_at'] is not None]
  verdict = ('yes' if 2 * len(fell) > len(runs) else
             'no' if not fell and all(_done(r) and _strong_done(r) for r in runs) else
             'undecided')
  why = '; '.join(
      f'seed {r["seed"]} ({len(r["epochs"])}/{r["epochs_planned"]} epochs): PGD-10 probe '
      f'collapsed at {fmt(r["collapsed_at"])}, {PROGRESS_LABEL} fell at '
      f'{fmt(r["strong_collapsed_at"])}' +
      (f', {PROGRESS_LABEL} {_best_last(r)}' if r['strong'] else '') for r in runs)
  return dict(question=question, verdict=verdict, why=why)


def lever_runs(rows: list, levels: int) -> dict:
  """{(lever, defense): runs} of the lever runs at ``levels``/255 in the study's regime."""
  out = {}
  for r in rows:
    if r['lever'] and r['eps_levels'] == levels and r['width'] == WIDTH:
      out.setdefault((r['lever'], r['defense']), []).append(r)
  return out


def _tolerance(*stds) -> float:
  measured = [s for s in stds if s is not None]
  return max([LEVEL_TOLERANCE] + [2 * s for s in measured])


def _robust_summary(rows: list, defense: str, levels: int) -> dict:
  """Mean (and seed std) of the clean and AutoAttack accuracy over the defense's evaluated,
  uncollapsed runs."""
  runs = [r for r in _runs(rows, defense, levels) if r['evaluated'] and r['collapsed_at'] is None]
  clean, clean_std = mean_std([r['clean'] for r in runs])
  robust, robust_std = mean_std([r['autoattack_acc'] for r in runs])
  steps = [r['ms_per_step'] for r in _runs(rows, defense, levels) if r['ms_per_step']]
  return dict(n=len(runs), clean=clean, clean_std=clean_std, robust=robust,
              robust_std=robust_std, ms_per_step=statistics.median(steps) if steps else None)


def verdicts(rows: list, levels: int) -> list:
  """The study's questions at eps ``levels``/255, each with its computed verdict and why."""
  fgsm, pgn = _runs(rows, 'fgm', levels), _runs(rows, 'pgn', levels)
  out = []
  q1 = _collapse_verdict(fgsm) if fgsm else 'not run'
  out.append(dict(question='Does FGSM-AT\'s robustness collapse in training (the fixed '
                  'single-step attack fails)?',
                  verdict=q1, why=_collapses(fgsm) if fgsm else 'no FGSM-AT run'))
  overfit = [r for r in fgsm if r['collapse_kind'] == 'catastrophic overfitting']
  collapsed = [r for r in fgsm if r['collapsed_at'] is not None]
  out.append(dict(question='Is that collapse catastrophic overfitting (FGSM accuracy kept above '
                  'PGD\'s)?',
                  verdict=('not applicable' if not collapsed else
                           'yes' if 2 * len(overfit) > len(collapsed) else 'no'),
                  why=(f'{len(overfit)} of {len(collapsed)} collapse(s) kept FGSM accuracy '
                       f'{COLLAPSE_GAP:g} above PGD\'s' if collapsed else 'no collapse')))
  if q1 != 'yes':
    q2, why = 'undecided', ('FGSM-AT did not collapse here: there is nothing for PGN to avoid'
                            if q1 == 'no' else 'waits for FGSM-AT\'s verdict')
    why += f'; PGN-Linf: {_collapses(pgn)}' if pgn else ''
  else:
    q2 = {'no': 'yes', 'yes': 'no'}.get(_collapse_verdict(pgn) if pgn else 'not run',
                                         'undecided')
    if pgn and q2 == 'undecided' and any(r['collapsed_at'] is not None for r in pgn):
      q2 = 'no'
    why = f'PGN-Linf: {_collapses(pgn)}' if pgn else 'no PGN run'
  out.append(dict(question='Does PGN avoid it?', verdict=q2, why=why))
  out.append(_strong_question(fgsm, pgn, q1, q2))
  summaries = {d: _robust_summary(rows, d, levels) for d in DEFENSES}
  p = summaries['pgn']
  fixes = {d: s for d, s in summaries.items() if d in CHEAP_FIXES and s['robust'] is not None}
  if p['robust'] is None or not fixes:
    q3, why = 'undecided', 'needs an evaluated, uncollapsed PGN run and cheap-fix run'
  else:
    best = max(fixes, key=lambda d: fixes[d]['robust'])
    f = fixes[best]
    tol = _tolerance(p['robust_std'], f['robust_std'], p['clean_std'], f['clean_std'])
    d_robust, d_clean = p['robust'] - f['robust'], p['clean'] - f['clean']
    if abs(d_clean) > tol:
      q3 = 'not at equal clean accuracy'
    else:
      q3 = ('PGN' if d_robust > tol else LABELS[best] if d_robust < -tol else 'level')
    cost = (f'; ms/step {p["ms_per_step"]:.0f} vs {f["ms_per_step"]:.0f}'
            if p['ms_per_step'] and f['ms_per_step'] else '')
    why = (f'PGN - {LABELS[best]} (the more robust cheap fix): AutoAttack {d_robust:+.3f}, clean '
           f'{d_clean:+.3f}, tolerance {tol:.3f}{cost}; {PROGRESS_LABEL} fell in PGN '
           f'{_strong_falls(pgn)}, {LABELS[best]} {_strong_falls(_runs(rows, best, levels))}')
  out.append(dict(question='Where PGN and the cheap fixes both avoid it, which is more robust '
                  '(AutoAttack) at equal clean accuracy, and at what cost per step?',
                  verdict=q3, why=why))
  g = summaries['pgd']
  level = []
  if g['robust'] is not None:
    for d, s in summaries.items():
      if d != 'pgd' and s['robust'] is not None:
        gap = s['robust'] - g['robust']
        level.append((LABELS[d], gap, abs(gap) <= _tolerance(s['robust_std'], g['robust_std'])))
  q4 = ('undecided' if not level else
        ', '.join(name for name, _, ok in level if ok) or 'none')
  out.append(dict(question='Is any of them level with PGD-AT (AutoAttack)?', verdict=q4,
                  why='; '.join(f'{name} {gap:+.3f}' for name, gap, _ in level) or
                  'needs an evaluated PGD-AT run'))
  long = long_runs(rows, levels)
  if long:
    out.append(_fall_question(f'Trained on to {max(r["epochs_planned"] for r in long)} epochs, '
                              f'does PGN-Linf collapse (PGD-10 probe or {PROGRESS_LABEL})?', long))
  for (lever, defense), runs in sorted(lever_runs(rows, levels).items()):
    out.append(_fall_question(
        f'With {LEVERS[lever][0]} (`{lever}`), does {LABELS[defense]} collapse within '
        f'{max(r["epochs_planned"] for r in runs)} epochs (PGD-10 probe or {PROGRESS_LABEL})?',
        runs))
  return out


def fmt(value, digits: int = 3) -> str:
  """A table cell: '-' for a missing value, ``digits`` decimals for a float."""
  return '-' if value is None or (isinstance(value, float) and math.isnan(value)) else (
      f'{value:.{digits}f}' if isinstance(value, float) else str(value))
