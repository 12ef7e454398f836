"""Train a CIFAR classifier with one of the paper's defenses (naive, FGM-AT, PGD-AT, PGN).

  tf-pgn-train --dataset=cifar10 --defense=pgn                      # the paper's settings
  tf-pgn-train --dataset=cifar10 --defense=pgd --eps=0.5 --preset=cpu --run_dir=runs/c10_pgd

(``python train.py`` in a checkout.) Re-running the same command on an existing --run_dir
resumes it. Every field of ``TrainConfig`` is a flag; unset flags keep the preset's value.
"""
import os
import sys

from absl import app, flags, logging

from tf_pgn.cli.flags import define_config_flags, define_data_dir_flag, expand, show_in_help
from tf_pgn.config import PRESETS, TrainConfig

FLAGS = flags.FLAGS


def _define_flags() -> tuple:
  """The command's flags (defined when it runs, so that importing this module defines none);
  returns the names of the config's."""
  flags.DEFINE_string('preset', 'paper', f'Named preset: {", ".join(PRESETS)}; flags override '
                      'it.')
  flags.DEFINE_string('run_dir', None, 'Run directory (default runs/<dataset>_<defense>).')
  define_data_dir_flag()
  return define_config_flags(TrainConfig, '(default, --preset=paper: {})')


def main(argv, config_flags: tuple):
  if len(argv) > 1:
    sys.exit(f'train.py: unexpected arguments {argv[1:]}: flags are written --name=value')
  logging.set_verbosity(logging.WARNING)  # TF's SavedModel chatter
  from tf_pgn import errors, config, trainer  # pylint: disable=g-import-not-at-top
  with errors.one_line('train.py'):
    cfg = config.make_config(FLAGS.preset, **{k: getattr(FLAGS, k) for k in config_flags})
    run_dir = expand(FLAGS.run_dir) or os.path.join('runs', f'{cfg.dataset}_{cfg.defense}')
    final = trainer.train(cfg, run_dir, expand(FLAGS.data_dir))
    print(f'done: {run_dir} test_acc={final.get("test_acc", float("nan")):.4f}; classifier '
          f'SavedModel in {os.path.join(run_dir, "export", "classifier")}')


def run():
  """The ``tf-pgn-train`` console script."""
  config_flags = _define_flags()
  show_in_help(('preset', 'run_dir', 'data_dir') + config_flags, __doc__)
  app.run(lambda argv: main(argv, config_flags))
