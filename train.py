"""Train a CIFAR classifier with one of the paper's defenses (naive, FGM-AT, PGD-AT, PGN).

  python train.py --dataset=cifar10 --defense=pgn                      # the paper's settings
  python train.py --dataset=cifar10 --defense=pgd --eps=0.5 --preset=cpu --run_dir=runs/c10_pgd

Re-running the same command on an existing --run_dir resumes it.
"""
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app, flags, logging  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS
flags.DEFINE_string('preset', 'paper', 'Named preset: paper, cpu or tiny; flags override it.')
flags.DEFINE_string('run_dir', None, 'Run directory (default runs/<dataset>_<defense>).')
flags.DEFINE_string('data_dir', None, 'Folder with the official CIFAR python archive (or set '
                    '$TF_PGN_DATA_DIR); without either, keras.datasets downloads it.')
flags.DEFINE_string('dataset', None, 'cifar10 or cifar100.')
flags.DEFINE_string('defense', None, 'naive, fgm, pgd or pgn.')
flags.DEFINE_float('width', None, 'Classifier width multiplier (Table 1 filters x width).')
flags.DEFINE_float('gen_width', None, 'Generator width multiplier (Figure 1 channels x width).')
flags.DEFINE_integer('epochs', None, 'Training epochs.')
flags.DEFINE_integer('batch_size', None, 'Batch size.')
flags.DEFINE_float('lr', None, 'Adam learning rate of the classifier.')
flags.DEFINE_float('gen_lr', None, 'Adam learning rate of the generator.')
flags.DEFINE_float('ema_decay', None, 'EMA decay of the classifier weights.')
flags.DEFINE_integer('train_size', None, 'Use the first N training images.')
flags.DEFINE_integer('test_size', None, 'Use the first N test images for per-epoch accuracy.')
flags.DEFINE_bool('augment', None, 'Random flip + shift augmentation.')
flags.DEFINE_float('eps', None, 'L2 budget of FGM/PGD adversarial training.')
flags.DEFINE_integer('pgd_steps', None, 'PGD iterations.')
flags.DEFINE_float('pgd_step_size', None, 'PGD step (default eps / pgd_steps * 5/3).')
flags.DEFINE_float('c_l', None, 'PGN: weight of the squared L2 distance in G\'s loss (Eq. 4).')
flags.DEFINE_float('adv_coeff', None, 'Weight of the adversarial term in F\'s loss.')
flags.DEFINE_bool('pgn_grad_through_adv', None, 'PGN: F\'s update differentiates through x_adv '
                  'and the input gradient, as the authors\' code does (default off).')
flags.DEFINE_enum('pgn_grad_input', None, ['raw', 'normalized', 'sign'], 'PGN: G\'s gradient '
                  'input: the paper\'s raw gradient of the mean true-class probability, or per '
                  'example scaled to unit RMS (normalized) or its sign.')
flags.DEFINE_integer('pgn_gen_steps', None, 'PGN: generator updates per classifier update.')
flags.DEFINE_bool('pgn_zero_init', None, 'PGN: zero G\'s output layer at the start (x_adv = x).')
flags.DEFINE_float('pgn_eps', None, 'PGN: project x_adv into this L2 ball around x (default: no '
                   'budget).')
flags.DEFINE_float('probe_eps', None, 'L2 eps of the per-epoch PGD robustness probe.')
flags.DEFINE_integer('probe_size', None, 'Test images in the per-epoch robustness probe.')
flags.DEFINE_integer('seed', None, 'Random seed (weights, data order, augmentation, PGD).')
flags.DEFINE_integer('checkpoint_every_steps', None, 'Checkpoint interval in steps.')
flags.DEFINE_integer('snapshot_every_epochs', None, 'Keep the EMA classifier of every Nth epoch '
                     'in <run_dir>/epochs/epoch-N (evaluate.py --ckpt takes it; 0: none).')
flags.DEFINE_float('checkpoint_every_minutes', None, 'Also checkpoint when this many minutes '
                   'have passed since the last checkpoint.')
flags.DEFINE_enum('distribute', None, ['none', 'mirrored', 'multi_worker'], 'tf.distribute '
                  'strategy: one device, all local GPUs (or --cpu_replicas logical CPUs), or the '
                  'hosts of $TF_CONFIG.')
flags.DEFINE_integer('cpu_replicas', None, 'Split the CPU into this many logical devices (for '
                     '--distribute=mirrored without GPUs: tests, not speed).')
flags.DEFINE_bool('debug_numerics', None, 'Check every op for NaN/Inf and name the first op that '
                  'makes one (tf.debugging.enable_check_numerics; slow).')
flags.DEFINE_bool('jit_compile', None, 'Compile the train step with XLA.')
flags.DEFINE_bool('mixed_precision', None, 'Compute in bfloat16 with float32 variables (CPUs '
                  'with AVX512-BF16/AMX, Ampere+ GPUs); the EMA and exports stay float32.')
flags.DEFINE_bool('deterministic', None, 'Deterministic ops (bit-identical resume; slower).')

_CONFIG_FLAGS = ('dataset', 'defense', 'width', 'gen_width', 'epochs', 'batch_size', 'lr',
                 'gen_lr', 'ema_decay', 'train_size', 'test_size', 'augment', 'eps', 'pgd_steps',
                 'pgd_step_size', 'c_l', 'adv_coeff', 'pgn_grad_through_adv', 'pgn_grad_input',
                 'pgn_gen_steps', 'pgn_zero_init', 'pgn_eps', 'probe_eps',
                 'probe_size', 'seed', 'checkpoint_every_steps', 'checkpoint_every_minutes',
                 'snapshot_every_epochs', 'jit_compile', 'mixed_precision', 'deterministic',
                 'debug_numerics', 'distribute', 'cpu_replicas')


def main(argv):
  if len(argv) > 1:
    sys.exit(f'train.py: unexpected arguments {argv[1:]}: flags are written --name=value')
  logging.set_verbosity(logging.WARNING)  # TF's SavedModel chatter
  from tf_pgn import errors, config, trainer  # pylint: disable=g-import-not-at-top
  with errors.one_line('train.py'):
    cfg = config.make_config(FLAGS.preset, **{k: getattr(FLAGS, k) for k in _CONFIG_FLAGS})
    run_dir = FLAGS.run_dir or os.path.join('runs', f'{cfg.dataset}_{cfg.defense}')
    final = trainer.train(cfg, run_dir, FLAGS.data_dir)
    print(f'done: {run_dir} test_acc={final.get("test_acc", float("nan")):.4f}; classifier '
          f'SavedModel in {os.path.join(run_dir, "export", "classifier")}')


if __name__ == '__main__':
  app.run(main)
