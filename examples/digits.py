"""PGN and PGD adversarial training of your own Keras CNN on data that is not CIFAR.

scikit-learn's digits (1,797 handwritten digits, 8x8 grayscale, 10 classes; the data ships inside
scikit-learn, no download): a user-defined CNN with batch norm (functional, or subclassed with
``--model=subclassed``) is trained naively (for reference), with PGD-AT and with PGN through
``model.fit`` with Keras callbacks (BackupAndRestore, EarlyStopping, TensorBoard), then attacked
with PGD and C&W by ``tf_pgn.evaluate``.

  pip install . scikit-learn==1.9.1
  python examples/digits.py                      # a few minutes on 2 CPU cores
  python examples/digits.py --model=subclassed   # the same CNN as a subclassed keras.Model
  python examples/digits.py --defenses=pgd,pgn --epochs=1 --train_size=128 --test_size=32 \
      --attack_steps=2 --cw_iterations=2 --eps_list=1                                # tests
"""
import argparse
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits

import tf_pgn


def build_cnn(num_classes: int = 10) -> keras.Model:
  """The user's classifier: any Keras model mapping images in [0, 1] to logits. Batch norm is
  fine (attacks call it in inference mode, the training step in training mode); its momentum is
  0.9 so that the moving statistics keep up with a few hundred steps."""
  inputs = keras.Input((8, 8, 1), name='digit')
  h = inputs
  for filters, stride in ((32, 1), (64, 2), (64, 1)):
    h = keras.layers.Conv2D(filters, 3, strides=stride, padding='same', use_bias=False)(h)
    h = keras.layers.ReLU()(keras.layers.BatchNormalization(momentum=0.9)(h))
  h = keras.layers.GlobalAveragePooling2D()(h)
  return keras.Model(inputs, keras.layers.Dense(num_classes)(h), name='digits_cnn')


class DigitsCNN(keras.Model):
  """The same CNN as a subclassed Keras model (layers in ``__init__``, the forward pass in
  ``call``): it has no input shape until it is called, and AdversarialModel takes it as it is."""

  def __init__(self, num_classes: int = 10):
    super().__init__(name='digits_cnn_subclassed')
    self.blocks = [(keras.layers.Conv2D(filters, 3, strides=stride, padding='same',
                                        use_bias=False),
                    keras.layers.BatchNormalization(momentum=0.9))
                   for filters, stride in ((32, 1), (64, 2), (64, 1))]
    self.pool = keras.layers.GlobalAveragePooling2D()
    self.head = keras.layers.Dense(num_classes)

  def call(self, x, training=False):
    for conv, norm in self.blocks:
      x = keras.activations.relu(norm(conv(x), training=training))
    return self.head(self.pool(x))


MODELS = {'functional': build_cnn, 'subclassed': DigitsCNN}


def load(seed: int, train_size: int | None, test_size: int | None):
  """(train, validation, test) splits of (images [N, 8, 8, 1] in [0, 1], labels): 20% test,
  10% of the rest for validation; the first ``train_size`` / ``test_size`` of theirs."""
  digits = load_digits()
  x = (digits.images / 16.0).astype(np.float32)[..., None]
  y = digits.target.astype(np.int32)
  order = np.random.default_rng(seed).permutation(len(y))
  n_test = len(y) // 5
  n_val = (len(y) - n_test) // 10
  test, val, train = np.split(order, [n_test, n_test + n_val])
  return [(x[idx], y[idx]) for idx in (train[:train_size], val, test[:test_size])]


def train(name: str, defense, splits, args, workdir: str) -> tf_pgn.AdversarialModel:
  """Trains a fresh CNN with ``defense`` through ``model.fit``."""
  keras.utils.set_random_seed(args.seed)
  (x, y), val, _ = splits
  classifier = MODELS[args.model]()
  classifier(x[:1])  # a subclassed model learns its input shape when first called
  model = tf_pgn.AdversarialModel(classifier, defense, ema_decay=args.ema_decay, seed=args.seed)
  model.compile(classifier_optimizer=keras.optimizers.Adam(args.lr),
                generator_optimizer=keras.optimizers.Adam(args.lr))
  train_ds = (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(y), seed=args.seed)
              .batch(args.batch_size, drop_remainder=True))
  val_ds = tf.data.Dataset.from_tensor_slices(val).batch(256)
  folder = os.path.join(workdir, name)
  callbacks = [
      keras.callbacks.BackupAndRestore(os.path.join(folder, 'backup')),  # rerun to resume
      keras.callbacks.EarlyStopping('val_accuracy', patience=args.patience, mode='max'),
      keras.callbacks.TensorBoard(os.path.join(folder, 'tb')),
  ]
  model.fit(train_ds, epochs=args.epochs, validation_data=val_ds, callbacks=callbacks,
            verbose=args.verbose)
  model.export_classifier(os.path.join(folder, 'classifier'))  # SavedModel of the EMA weights
  return model


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--model', choices=sorted(MODELS), default='functional',
                      help='The CNN as a functional or a subclassed Keras model.')
  parser.add_argument('--epochs', type=int, default=40)
  parser.add_argument('--patience', type=int, default=10, help='EarlyStopping on val_accuracy.')
  parser.add_argument('--batch_size', type=int, default=64)
  parser.add_argument('--lr', type=float, default=2e-3)
  parser.add_argument('--ema_decay', type=float, default=0.95, help='EMA of the weights over '
                      'about 20 steps, one epoch.')
  parser.add_argument('--train_size', type=int, default=None, help='First N training images.')
  parser.add_argument('--test_size', type=int, default=None, help='First N test images.')
  parser.add_argument('--defenses', default='naive,pgd,pgn', help='Comma list of naive, pgd, pgn.')
  parser.add_argument('--pgd_eps', type=float, default=1.0, help='PGD-AT L2 budget.')
  parser.add_argument('--c_l', type=float, default=0.25, help='PGN distance weight (Eq. 4).')
  parser.add_argument('--pgn_eps', type=float, default=None, help='PGN: L2 budget of x_adv.')
  parser.add_argument('--eps_list', default='0.5,1.0,1.5', help='Budgets of the PGD attack.')
  parser.add_argument('--attack_steps', type=int, default=20, help='PGD attack iterations.')
  parser.add_argument('--cw_iterations', type=int, default=100)
  parser.add_argument('--cw_lr', type=float, default=0.05, help='C&W Adam step: half the digits\' '
                      'pixels are 0 or 1, where the tanh box needs larger steps than CIFAR\'s '
                      '5e-3 (which fools only ~70%% there).')
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--verbose', type=int, default=2)
  parser.add_argument('--workdir', default=None, help='Backups, TensorBoard logs, SavedModels '
                      '(default a temporary folder).')
  args = parser.parse_args(argv)
  workdir = args.workdir or tempfile.mkdtemp(prefix='tf_pgn_digits_')
  splits = load(args.seed, args.train_size, args.test_size)
  x_test, y_test = splits[2]
  eps_list = [float(e) for e in args.eps_list.split(',')]
  defenses = {
      'naive': ('naive', tf_pgn.Naive()),
      'pgd': (f'PGD-AT eps {args.pgd_eps:g}', tf_pgn.PGD(eps=args.pgd_eps, steps=10)),
      'pgn': (f'PGN c_L {args.c_l:g}' + (f' eps {args.pgn_eps:g}' if args.pgn_eps else ''),
              tf_pgn.PGN(c_l=args.c_l, grad_input='normalized', zero_init=True,
                         eps=args.pgn_eps)),
  }
  rows = []
  for key in args.defenses.split(','):
    name, defense = defenses[key]
    model = train(key, defense, splits, args, workdir)
    report = tf_pgn.evaluate(model.ema_classifier, x_test, y_test, attacks=['pgd', 'cw'],
                             eps_list=eps_list, pgd_steps=args.attack_steps,
                             unbounded_steps=args.attack_steps, cw_iterations=args.cw_iterations,
                             cw_lr=args.cw_lr, data_name='digits')
    attacks = report['attacks']
    rows.append([name, report['benign_accuracy'],
                 *[attacks[f'pgd_eps{e:g}']['whitebox']['accuracy'] for e in eps_list],
                 attacks['cw']['whitebox']['rho_mean']])
  header = ['defense', 'test acc', *[f'PGD {e:g} acc' for e in eps_list], 'rho_cw']
  print(f'\ndigits, {args.model} CNN: {len(splits[0][1])} training, {len(y_test)} test images; '
        f'files in {workdir}')
  print('| ' + ' | '.join(header) + ' |\n|' + '---|' * len(header))
  for row in rows:
    print('| ' + ' | '.join([row[0]] + ['-' if v is None else f'{v:.3f}' for v in row[1:]])
          + ' |')


if __name__ == '__main__':
  main()
