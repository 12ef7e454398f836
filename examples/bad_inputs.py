"""What a user sees for each bad input to the library: one line that names the input and the fix.

Each case below feeds a tiny Keras classifier (4x4 grayscale images, 3 classes) one mistake a
user makes and prints the error's type and message as a Markdown table row; a case that raises
nothing, or a message of more than one line, prints as such and makes the script exit 1.

  pip install .
  python examples/bad_inputs.py
"""
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # the table alone, not TF's own logs

import keras  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

import tf_pgn  # pylint: disable=wrong-import-position

NUM_CLASSES = 3
SHAPE = (4, 4, 1)


def classifier(softmax: bool = False, name: str = 'tiny') -> keras.Model:
  inputs = keras.Input(SHAPE)
  logits = keras.layers.Dense(NUM_CLASSES, activation='softmax' if softmax else None)(
      keras.layers.Flatten()(inputs))
  return keras.Model(inputs, logits, name=name)


class Subclassed(keras.Model):
  """A subclassed classifier: no input shape until it is first called."""

  def __init__(self):
    super().__init__(name='subclassed')
    self.head = keras.layers.Dense(NUM_CLASSES)

  def call(self, x):
    return self.head(keras.ops.reshape(x, (-1, 16)))


def data(n: int = 16):
  rng = np.random.default_rng(0)
  return rng.uniform(size=(n, *SHAPE)).astype(np.float32), rng.integers(0, NUM_CLASSES, n)


def model(defense=None, net=None, lr: float = 0.1, **kwargs) -> tf_pgn.AdversarialModel:
  adversarial = tf_pgn.AdversarialModel(net or classifier(), defense, seed=0, **kwargs)
  adversarial.compile(classifier_optimizer=keras.optimizers.SGD(lr))
  return adversarial


def fit(adversarial, x, y, **kwargs):
  adversarial.fit(x, y, batch_size=8, epochs=1, verbose=0, **kwargs)


def _nan_pixel():
  x, y = data()
  x[5, 1, 2, 0] = np.nan
  fit(model(), x, y)


def _generator_for_other_images():
  model(tf_pgn.PGN(), generator=tf_pgn.build_generator(NUM_CLASSES, input_shape=(8, 8, 1)))


def _evaluate_one_hot():
  x, y = data()
  tf_pgn.evaluate(classifier(), x, np.eye(NUM_CLASSES)[y], attacks=['fgm'], eps_list=[0.1])


CASES = [
    ('one-hot labels (labels= left sparse)',
     lambda: fit(model(), data()[0], np.eye(NUM_CLASSES)[data()[1]])),
    ('a label outside the classes', lambda: fit(model(), data()[0], np.arange(16) % 4)),
    ('a classifier ending in softmax', lambda: model(net=classifier(softmax=True))),
    ('logits under from_logits=False', lambda: fit(model(from_logits=False), *data())),
    ('images on 0-255 (value_range= left (0, 1))',
     lambda: fit(model(tf_pgn.PGD(0.5)), (data()[0] * 255).astype(np.uint8), data()[1])),
    ('a NaN pixel', _nan_pixel),
    ('images without a channel axis', lambda: fit(model(), data()[0][..., 0], data()[1])),
    ('tf_pgn.PGD(eps=-1.0)', lambda: tf_pgn.PGD(eps=-1.0)),
    ('an unknown norm', lambda: tf_pgn.FGM(0.1, norm='l3')),
    ('ema_decay=1.5', lambda: model(ema_decay=1.5)),
    ('fit(class_weight=...)', lambda: fit(model(), *data(), class_weight={0: 1, 1: 2, 2: 1})),
    ('fit(sample_weight=...)', lambda: fit(model(), *data(), sample_weight=np.ones(16))),
    ('an uncalled subclassed classifier', lambda: model(net=Subclassed())),
    ('a generator for other images', _generator_for_other_images),
    ('a diverging step (SGD at lr=inf)', lambda: fit(model(lr=float('inf')), *data())),
    ('RobustnessProbe(attack="cw")',
     lambda: tf_pgn.RobustnessProbe(*data(), attack='cw', eps=0.5)),
    ('tf_pgn.evaluate on one-hot labels', _evaluate_one_hot),
]


def main() -> int:
  keras.utils.set_random_seed(0)
  print('| bad input | what the user sees |\n|---|---|')
  failures = 0
  for case, make in CASES:
    try:
      make()
    except (ValueError, tf_pgn.DivergedError) as error:  # InputError is a ValueError
      message = str(error)
      ok = '\n' not in message
      shown = message if ok else f'{len(message.splitlines())} lines: {message.splitlines()[0]}'
      print(f'| {case} | `{type(error).__name__}: {shown}` |')
    else:
      ok = False
      print(f'| {case} | nothing: it ran |')
    failures += not ok
  return 1 if failures else 0


if __name__ == '__main__':
  sys.exit(main())
