"""The report whole: a root's small outputs copied beside the figures, and the sections in
order, with the hand-written notes block kept."""
import os
import re

from tf_pgn.io_utils import write_bytes_atomic, write_json_atomic, write_text_atomic
from tf_pgn.study import results as results_lib
from tf_pgn.study.protocol import AUTOATTACK_DIR
from tf_pgn.study.render import (ablation, attack, autoattack, curves, figures, linf, progress,
                                 scale, verdicts)
from tf_pgn.study.render.common import Study

NOTES_BEGIN, NOTES_END = '<!-- notes -->', '<!-- /notes -->'
# Of each evaluation folder.
EVAL_FILES = ('results.json', 'results.md', 'accuracy_vs_l2.png', 'accuracy_vs_linf.png')
JOB_FILES = ('config.json', 'metrics.jsonl') + tuple(os.path.join('eval', n) for n in EVAL_FILES)


def _notes(report_path: str) -> str:
  """The notes block of the existing report, else an empty one."""
  if os.path.isfile(report_path):
    with open(report_path) as f:
      found = re.search(f'{re.escape(NOTES_BEGIN)}.*?{re.escape(NOTES_END)}', f.read(), re.S)
    if found:
      return found.group(0)
  return (f'{NOTES_BEGIN}\n_No notes yet: text between the two `notes` comments of this file '
          f'survives regeneration._\n{NOTES_END}')


def _copy(src: str, dst: str) -> None:
  """``src``'s bytes to ``dst`` (atomically)."""
  with open(src, 'rb') as f:
    write_bytes_atomic(dst, f.read())


def _copy_outputs(study: Study, folder: str, quote_root: str | None) -> None:
  """The summary (of root ``quote_root`` where given), each job's small files and bench.json
  into ``folder``."""
  sweep = study.sweep
  results_lib.write_summary(sweep.root, folder)
  if quote_root:
    summary = os.path.join(folder, 'summary.json')
    write_json_atomic(summary, dict(results_lib.read_json(summary), root=quote_root))
  for row in sweep.rows:
    job = row['job']
    names = list(JOB_FILES) + [
        os.path.join(a['folder'], n) for a in sweep.pgn_attacks.get(job, {}).values()
        if a['folder'] != 'eval' for n in EVAL_FILES] + [
            os.path.join('progress', f'epoch-{p["epoch"]}', 'results.json')
            for p in sweep.progress.get(job, [])] + (
                [os.path.join(AUTOATTACK_DIR, n) for n in EVAL_FILES]
                if job in sweep.autoattack else [])
    for name in dict.fromkeys(names):
      src = os.path.join(sweep.root, job, name)
      if os.path.isfile(src):
        _copy(src, os.path.join(folder, job, name))
  if sweep.bench:
    _copy(os.path.join(sweep.root, 'bench.json'), os.path.join(folder, 'bench.json'))


def _long_study(long_root: str, out: str, run_flags: str, data_dir: str | None) -> tuple:
  """(Study, {figure: path}) of the long schedule's root ``long_root``: its small outputs are
  copied into ``<out>/<its name>/`` (unless ``long_root`` is that copy) and read from there, its
  commands name the root the copy came from (its summary's), its figure drawn beside them."""
  folder = os.path.join(out, os.path.basename(os.path.normpath(long_root)))
  if os.path.normpath(long_root) != os.path.normpath(folder):
    _copy_outputs(Study.load(long_root), folder, long_root)
  quoted = (results_lib.read_json(os.path.join(folder, 'summary.json')) or {}).get('root',
                                                                                   long_root)
  study = Study.load(folder, re.sub(r'--root=\S+', f'--root={quoted}', run_flags), data_dir,
                     quoted)
  return study, figures.write_progress_figure(study, folder)


def write_report(root: str, out: str = 'results',
                 report_path: str = os.path.join('docs', 'REPRODUCTION.md'),
                 command: str = 'python -m tf_pgn.experiments report', run_flags: str | None = None,
                 data_dir: str | None = None, root_text: str | None = None,
                 quote_root: str | None = None, linf_dir: str | None = None,
                 long_root: str | None = None) -> str:
  """Copies ``root``'s small outputs and figures into ``<out>/<root name>/`` and rewrites
  ``report_path`` (keeping its notes block); ``command`` is what the report says made it,
  ``root_text`` and ``run_flags`` how its commands reach this root (default: ``root``).
  ``quote_root``: where ``root`` is a copy of the small outputs of another root's jobs (such as
  ``<out>/<root name>/`` itself), the root the commands and the summary name. With ``linf_dir``
  (the Linf study's small outputs) the report has the Linf study's section; with ``long_root``
  (the ``long_schedule`` sweep's root, or the copy of its small outputs in ``<out>/``) claim 2's
  second verdict and the long schedule's section (``_long_study``). Returns ``report_path``.

  Raises:
    ExperimentError: ``root`` holds no job, or mixes datasets.
  """
  root_text = root_text or root
  study = Study.load(root, run_flags, data_dir, quote_root or root_text)
  name = os.path.basename(os.path.normpath(root))
  folder = os.path.join(out, name)
  _copy_outputs(study, folder, quote_root)
  drawn = figures.write_figures(study, folder)
  long_study, long_drawn = _long_study(long_root, out, run_flags or f'--root={root_text}',
                                       data_dir) if long_root else (None, {})
  source = (f'the small outputs of the jobs of `{quote_root}` (the root the commands below name) '
            f'in `{root_text}`' if quote_root else f'the jobs in `{root_text}`')
  lines = [f'# Reproduction report: {name}', '',
           f'Generated by `{command}` from {source}; rerunning it rewrites this file but for the '
           'hand-written discussion (the notes block). Per-job configs, metrics and evaluations, '
           f'the summary and the figures: `{folder}/`.', '']
  lines += scale.scale_section(study) + [''] + scale.jobs_section(study) + ['']
  lines += verdicts.verdicts_section(verdicts.verdicts(study, long_study))
  lines += ['', '## Discussion', '', _notes(report_path)]
  for section in (curves.table2_section(study),
                  curves.curves_section(study, drawn, report_path),
                  curves.seeds_section(study), curves.balanced_section(study, drawn, report_path),
                  autoattack.autoattack_section(study),
                  attack.pgn_attack_section(study, drawn, report_path),
                  ablation.capacity_section(study, drawn, report_path),
                  ablation.ablation_section(study),
                  progress.progress_section(study, drawn, report_path),
                  progress.long_schedule_section(long_study, long_drawn, report_path)
                  if long_study else None,
                  linf.linf_section(linf_dir, report_path) if linf_dir else None,
                  progress.speed_section(study), scale.cifar100_section(study)):
    if section:
      lines += [''] + section
  write_text_atomic(report_path, '\n'.join(lines) + '\n')
  return report_path
