"""Evaluate a trained classifier under L2 attacks, white-box and black-box (section 4.2).

  python evaluate.py --ckpt=runs/c10_pgn --dataset=cifar10 --data_dir=~/.cache/tf_pgn
  python evaluate.py --ckpt=runs/c10_pgn --attacks=cw,deepfool --out=eval/c10_pgn
  python evaluate.py --ckpt=runs/c10_pgn --source_ckpt=runs/c10_naive_2   # black-box transfer

Writes results.json, results.md and accuracy_vs_l2.png to --out (default <ckpt>/eval). Each
finished attack is kept in <out>/partial/; re-running the same command skips it.
"""
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app, flags, logging  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS
flags.DEFINE_string('ckpt', None, 'Run directory (runs/NAME) or classifier SavedModel '
                    '(runs/NAME/export/classifier) to evaluate.')
flags.DEFINE_string('source_ckpt', None, 'Source model for black-box attacks: examples are '
                    'crafted on it and measured on --ckpt.')
flags.DEFINE_string('out', None, 'Output folder (default <ckpt>/eval).')
flags.DEFINE_string('data_dir', None, 'Folder with the official CIFAR python archive (or set '
                    '$TF_PGN_DATA_DIR); without either, keras.datasets downloads it.')
flags.DEFINE_string('dataset', None, 'cifar10 (default) or cifar100.')
flags.DEFINE_integer('num_examples', None, 'Evaluate on the first N test images (default 1000).')
flags.DEFINE_list('attacks', None, 'Comma list of fgm,mim,pgd,deepfool,cw,pgn (default all).')
flags.DEFINE_list('eps_list', None, 'L2 budgets of FGM, MIM and PGD (default 0.1,0.25,0.5,1.0; '
                  'Table 2 of the paper uses 0.02).')
flags.DEFINE_integer('pgd_steps', None, 'PGD iterations, step 2.5 * eps / steps (default 20).')
flags.DEFINE_integer('cw_iterations', None, 'C&W Adam steps per search step (default 100, as in '
                     'the paper).')
flags.DEFINE_integer('cw_search_steps', None, 'C&W binary-search steps over c (default 5).')
flags.DEFINE_float('cw_lr', None, 'C&W Adam learning rate (default 5e-3).')
flags.DEFINE_float('cw_initial_const', None, 'C&W first value of c (default 1e-2).')
flags.DEFINE_list('pgn_c_l_list', None, 'PGN attack: distance weights c_L, one generator each '
                  '(default 1,2,4,8).')
flags.DEFINE_float('pgn_gen_width', None, 'PGN attack: generator width multiplier (default 0.25).')
flags.DEFINE_float('pgn_lr', None, 'PGN attack: Adam learning rate of the generator (default '
                   '2e-3).')
flags.DEFINE_integer('pgn_attack_epochs', None, 'PGN attack: training epochs (default 2).')
flags.DEFINE_integer('pgn_attack_train_size', None, 'PGN attack: first N training images '
                     '(default 50000: all).')
flags.DEFINE_enum('pgn_grad_input', None, ['raw', 'normalized', 'sign'], 'PGN attack: G\'s '
                  'gradient input: the paper\'s raw gradient, or scale-free (default normalized).')
flags.DEFINE_float('pgn_eps', None, 'PGN attack: project x_adv into this L2 ball (default: no '
                   'budget, c_L alone sets the size).')
flags.DEFINE_integer('batch_size', None, 'Examples per attack batch (default 256).')
flags.DEFINE_integer('seed', None, 'Seed of the PGN attack generators (default 1234).')

_CONFIG_FLAGS = ('dataset', 'num_examples', 'attacks', 'eps_list', 'pgd_steps', 'cw_iterations',
                 'cw_search_steps', 'cw_lr', 'cw_initial_const', 'pgn_c_l_list', 'pgn_gen_width',
                 'pgn_lr', 'pgn_attack_epochs', 'pgn_attack_train_size', 'pgn_grad_input',
                 'pgn_eps', 'batch_size', 'seed')


def _path(value):
  return os.path.expanduser(value) if value else value


def main(argv):
  if len(argv) > 1:
    sys.exit(f'evaluate.py: unexpected arguments {argv[1:]}: flags are written --name=value')
  logging.set_verbosity(logging.WARNING)  # TF's SavedModel chatter
  from tf_pgn import errors, evaluation  # pylint: disable=g-import-not-at-top
  with errors.one_line('evaluate.py', extra=(evaluation.EvalError,)):
    if not FLAGS.ckpt:
      raise evaluation.EvalError('--ckpt is required: a run directory or a classifier SavedModel')
    cfg = evaluation.make_eval_config(**{k: getattr(FLAGS, k) for k in _CONFIG_FLAGS})
    results = evaluation.evaluate(cfg, _path(FLAGS.ckpt), out_dir=_path(FLAGS.out),
                                  data_dir=_path(FLAGS.data_dir),
                                  source_ckpt=_path(FLAGS.source_ckpt))
    print(evaluation.results_markdown(results))
    print(f'done: results.json, results.md and accuracy_vs_l2.png in {results["out_dir"]}')


if __name__ == '__main__':
  app.run(main)
