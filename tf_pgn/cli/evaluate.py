"""Evaluate a trained classifier under L2 or Linf attacks, white-box and black-box (section 4.2).

  tf-pgn-evaluate --ckpt=runs/c10_pgn --dataset=cifar10 --data_dir=~/.cache/tf_pgn
  tf-pgn-evaluate --ckpt=runs/c10_pgn --attacks=cw,deepfool --out=eval/c10_pgn
  tf-pgn-evaluate --ckpt=runs/c10_pgn --source_ckpt=runs/c10_naive_2   # black-box transfer
  tf-pgn-evaluate --ckpt=runs/c10_pgn --norm=linf --eps_list=8/255 --attacks=pgd,autoattack

(``python evaluate.py`` in a checkout.) Writes results.json, results.md, accuracy_vs_l2.png (of
the L2 attacks) and accuracy_vs_linf.png (of the Linf ones) to --out (default <ckpt>/eval). Each finished attack is kept in <out>/partial/;
re-running the same command skips it. Every field of ``EvalConfig`` is a flag.
"""
import os
import sys

from absl import app, flags, logging

from tf_pgn.cli.flags import define_config_flags, define_data_dir_flag, expand, show_in_help

FLAGS = flags.FLAGS


def _define_flags() -> tuple:
  """The command's flags (defined when it runs); returns the names of the config's."""
  from tf_pgn.evaluation import EvalConfig  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string('ckpt', None, 'Run directory (runs/NAME) or classifier SavedModel '
                      '(runs/NAME/export/classifier) to evaluate.')
  flags.DEFINE_string('source_ckpt', None, 'Source model for black-box attacks: examples are '
                      'crafted on it and measured on --ckpt.')
  flags.DEFINE_string('out', None, 'Output folder (default <ckpt>/eval).')
  define_data_dir_flag()
  return define_config_flags(EvalConfig, '(default {})')


def main(argv, config_flags: tuple):
  if len(argv) > 1:
    sys.exit(f'evaluate.py: unexpected arguments {argv[1:]}: flags are written --name=value')
  logging.set_verbosity(logging.WARNING)  # TF's SavedModel chatter
  from tf_pgn import errors, evaluation  # pylint: disable=g-import-not-at-top
  with errors.one_line('evaluate.py', extra=(evaluation.EvalError,)):
    if not FLAGS.ckpt:
      raise evaluation.EvalError('--ckpt is required: a run directory or a classifier SavedModel')
    cfg = evaluation.make_eval_config(**{k: getattr(FLAGS, k) for k in config_flags})
    results = evaluation.evaluate(cfg, expand(FLAGS.ckpt), out_dir=expand(FLAGS.out),
                                  data_dir=expand(FLAGS.data_dir),
                                  source_ckpt=expand(FLAGS.source_ckpt))
    print(evaluation.results_markdown(results))
    written = [name for name in ('results.json', 'results.md', 'accuracy_vs_l2.png',
                                 'accuracy_vs_linf.png')
               if os.path.exists(os.path.join(results['out_dir'], name))]
    print(f'done: {", ".join(written)} in {results["out_dir"]}')


def run():
  """The ``tf-pgn-evaluate`` console script."""
  config_flags = _define_flags()
  show_in_help(('ckpt', 'source_ckpt', 'out', 'data_dir') + config_flags, __doc__)
  app.run(lambda argv: main(argv, config_flags))
