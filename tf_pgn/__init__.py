"""tf-pgn: adversarial training with perturbation generator networks (Lee, Han, Lee 2019).

PGN, FGM-AT, PGD-AT, FGSM-RS and N-FGSM, at L2 or Linf, for any Keras classifier on images in
[0, 1], and the attack suite that measures it:

  import keras, tf_pgn
  model = tf_pgn.AdversarialModel(classifier, defense=tf_pgn.PGN(c_l=8))
  model.compile(classifier_optimizer=keras.optimizers.Adam(1e-3))
  model.fit(train_ds, epochs=10, validation_data=val_ds)
  report = tf_pgn.evaluate(model.ema_classifier, x_test, y_test, attacks=['pgd', 'cw'])

The names below import TensorFlow when first used, so that ``import tf_pgn`` and the command
lines' ``--help`` stay quick.
"""
import importlib

__version__ = '0.1.0'

_EXPORTS = {
    'AdversarialModel': ('tf_pgn.adversarial_model', 'AdversarialModel'),
    'Naive': ('tf_pgn.defenses', 'Naive'),
    'FGM': ('tf_pgn.defenses', 'FGM'),
    'PGD': ('tf_pgn.defenses', 'PGD'),
    'FGSMRS': ('tf_pgn.defenses', 'FGSMRS'),
    'NFGSM': ('tf_pgn.defenses', 'NFGSM'),
    'PGN': ('tf_pgn.defenses', 'PGN'),
    'build_generator': ('tf_pgn.models', 'build_generator'),
    'evaluate': ('tf_pgn.evaluation', 'evaluate_model'),
    'load_saved_model': ('tf_pgn.export', 'load_saved_model'),
    'RobustnessProbe': ('tf_pgn.callbacks', 'RobustnessProbe'),
    'precision_policy': ('tf_pgn.precision', 'precision_policy'),
    'InputError': ('tf_pgn.errors', 'InputError'),
    'DivergedError': ('tf_pgn.errors', 'DivergedError'),
}
__all__ = ['__version__', *_EXPORTS]


def __getattr__(name):
  if name not in _EXPORTS:
    raise AttributeError(f'module tf_pgn has no attribute {name!r}')
  module, attr = _EXPORTS[name]
  return getattr(importlib.import_module(module), attr)


def __dir__():
  return sorted(set(globals()) | set(_EXPORTS))
