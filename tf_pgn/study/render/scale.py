"""The report's setting: the jobs' scale against the paper's, the data and the evaluation, the
jobs' status and time, and the CIFAR-100 column."""
import collections

from tf_pgn.config import TrainConfig
from tf_pgn.study.claims import run_command
from tf_pgn.study.protocol import AUTOATTACK_KEY, EVAL_SETTINGS
from tf_pgn.study.render.common import AUTOATTACK_COLUMN, Study, md_table, value_list


def _data_provenance(provenances: list) -> str:
  """What the evaluations record of the data, without the paths they record it with."""
  kinds = {'official files (MD5 verified)' if p.startswith('official') else
           'a copy pinned by its own checksums.md5, not the official files'
           if p.startswith('verified') else
           'not the official files and not pinned by checksums (structural checks only)'
           for p in provenances}
  return '; '.join(sorted(kinds)) if kinds else 'provenance not recorded by these evaluations'


def scale_section(study: Study) -> list:
  """How these jobs differ from the paper's setting: configs, data, evaluation."""
  sweep = study.sweep
  paper, configs = TrainConfig(), list(sweep.configs.values())
  fields = (('width', 'classifier width (Table 1 filters x)'),
            ('gen_width', 'generator width (Figure 1 filters x)'), ('epochs', 'epochs'),
            ('batch_size', 'batch size'), ('lr', 'Adam learning rate, classifier'),
            ('gen_lr', 'Adam learning rate, generator'),
            ('ema_decay', 'EMA decay of the evaluated classifier'),
            ('train_size', 'training images (all: 50,000)'))
  lines = ['## Scale: these jobs against the paper', ''] + md_table(
      ['setting', 'paper (section 4.1)', 'these jobs'],
      [(label, value_list([getattr(paper, f)]), value_list(getattr(c, f) for c in configs))
       for f, label in fields]) + ['']
  provenances = sorted({r['data']['provenance'] for r in sweep.results.values() if 'data' in r})
  official = provenances and all(p.startswith('official') for p in provenances)
  lines.append(f'Data: {", ".join(sorted({c.dataset for c in configs}))}, '
               f'{_data_provenance(provenances)}, as the evaluations record it' +
               ('.' if official else '; the discussion is the place to say how the data was '
                'made.'))
  evaluated = [r for r in sweep.rows if r['num_examples']]
  if evaluated:
    worst = any(r[f'{AUTOATTACK_KEY}_acc'] is not None for r in evaluated)
    lines += ['', f'Evaluation: each job\'s EMA classifier on the first '
              f'{value_list(r["num_examples"] for r in evaluated)} test images; C&W L2 (rho_cw), '
              f'DeepFool, and FGM / MIM / PGD ({value_list(r["pgd_steps"] for r in evaluated)} '
              f'steps) at L2 eps {value_list(EVAL_SETTINGS["eps_list"])}' +
              (f'; where run, the {AUTOATTACK_COLUMN}' if worst else '') +
              '. Benign "test acc" is on the whole test split, "benign acc" on the evaluated '
              'images.']
  return lines


def jobs_section(study: Study) -> list:
  """The jobs' status, what is pending, and the time they record."""
  sweep = study.sweep
  counts = collections.Counter(r['status'] for r in sweep.rows)
  pending = [f'{r["job"]} (training, epoch {r["epochs"]} of {sweep.configs[r["job"]].epochs})'
             if r['status'] == 'training' else f'{r["job"]} (trained, evaluation pending)'
             for r in sweep.rows if r['status'] != 'evaluated']
  lines = ['## Jobs', '', f'{len(sweep.rows)} jobs in `{study.root}`: ' +
           ', '.join(f'{n} {s}' for s, n in sorted(counts.items())) + '.']
  if pending:
    lines += ['', f'Pending: {"; ".join(pending)}. {run_command("<sweep>", study.run_flags)} '
              'goes on with them.']
  hours = sweep.recorded_hours()
  return lines + ['', 'Time the jobs record: ' + ', '.join(f'{k} {v:.2f} h' for k, v in
                                                          hours.items()) +
                  f', total {sum(hours.values()):.2f} h (wall clock; work redone after an '
                  'interruption is not counted).']


def cifar100_section(study: Study) -> list:
  """The CIFAR-100 column, or the commands that make it."""
  lines = ['## CIFAR-100', '']
  if study.sweep.dataset == 'cifar100':
    return lines + ['This report is the CIFAR-100 column.']
  return lines + ['This root holds no CIFAR-100 job. Given the official '
                  '`cifar-100-python.tar.gz` in DIR, the same commands make the column:', '',
                  '    python -m tf_pgn.experiments run --sweep=table2 --dataset=cifar100 '
                  '--data_dir=DIR',
                  '    python -m tf_pgn.experiments report --dataset=cifar100 '
                  '--report=docs/REPRODUCTION_cifar100.md']
