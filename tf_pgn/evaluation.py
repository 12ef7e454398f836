"""Robustness evaluation of a trained classifier: section 4.2 of the PGN paper and beyond.

Every attack is L2 and runs through the shared runner (``attacks.run_attack``), white-box on the
evaluated model and, given a source model, black-box (crafted on the source, measured on the
evaluated model). Per attack and budget: adversarial accuracy; rho (Eq. 6), the mean and median
L2 norm of the perturbation over successful adversarial examples, and the authors' variant of it
(``*_paper``); for the minimal-norm attacks the accuracy-vs-L2 curve. Soundness checks from
Carlini et al. 2019 ("On Evaluating Adversarial Robustness") flag gradient masking.

An output folder holds ``results.json``, ``results.md`` (Table 2's layout),
``accuracy_vs_l2.png`` (Figures 3-4) and ``partial/<box>_<attack>.json``, one per finished
(attack, budget), which a rerun of the same evaluation reuses. One evaluation at a time writes a
folder (``tf_pgn.locks``).
"""
import contextlib
import dataclasses
import json
import math
import os
import shutil
import time
from typing import Callable

import numpy as np
import tensorflow as tf

from tf_pgn import data as data_lib
from tf_pgn import locks, metrics, plots
from tf_pgn.attacks import carlini_wagner_l2, deepfool_l2, predict, run_attack
from tf_pgn.attacks.gradient import fgm_l2, mim_l2, pgd_l2
from tf_pgn.attacks.pgn_attack import PGNAttack
from tf_pgn.config import GRAD_INPUTS, setting
from tf_pgn.export import SavedModelClassifier, load_classifier
from tf_pgn.io_utils import write_json_atomic, write_text_atomic

__all__ = ['ATTACKS', 'EvalConfig', 'EvalError', 'accuracy_vs_l2_series', 'evaluate',
           'evaluate_model', 'make_eval_config', 'results_markdown', 'soundness_checks']

ATTACKS = ('fgm', 'mim', 'pgd', 'deepfool', 'cw', 'pgn')
MINIMAL_NORM = ('deepfool', 'cw')  # unbounded: reported as accuracy-vs-L2 curves
BOXES = {'whitebox': 'white-box', 'blackbox': 'black-box'}
CURVE_RADII = tuple(round(0.05 * i, 2) for i in range(41))  # 0 to 2 in steps of 0.05
# DeepFool (Moosavi-Dezfooli et al. 2016): linearisation steps and candidate classes.
DEEPFOOL_MAX_ITER = 50
DEEPFOOL_CLASSES = 10
# Soundness: an unbounded attack should fool (almost) every clean-correct example, and a few
# examples of noise are tolerated in the comparisons between accuracies.
SUCCESS_THRESHOLD = 0.99
NOISE_EXAMPLES = 1
_LABELS = {'fgm': 'FGM', 'mim': 'MIM', 'pgd': 'PGD', 'deepfool': 'DeepFool', 'cw': 'C&W',
           'pgn': 'PGN'}
_NOTES = {
    'rho_mean': 'mean L2 norm of x_adv - x over successful adversarial examples: classified '
                'correctly clean and wrongly after the attack (Eq. 6)',
    'rho_mean_paper': "the paper's variant (authors' code): the mean over all adversarial "
                      'examples classified wrongly, clean mistakes (perturbation ~0) included, '
                      'which biases rho down',
    'success_rate': 'n_success / n_clean_correct',
    'blackbox': 'crafted on the source model, measured on the evaluated model',
    'accuracy_vs_l2': 'accuracy when every perturbation larger than the radius counts as a '
                      'failed attack (minimal-norm attacks)',
    'null': 'a mean or median over no examples',
}


_NON_NEGATIVE = ('deepfool_overshoot', 'seed')


class EvalError(ValueError):
  """The evaluation cannot run as asked; the message says why and what to pass instead."""


@dataclasses.dataclass
class EvalConfig:
  """Attack settings of one evaluation; the defaults follow the paper where it has one. Each
  field is a flag of ``evaluate.py`` (``tf_pgn.cli.flags``)."""
  dataset: str = setting('cifar10', 'cifar10 or cifar100.')
  # The first test images (exact pixels here; RobustBench's convention).
  num_examples: int = setting(1000, 'Evaluate on the first N test images.')
  attacks: tuple = setting(ATTACKS, f'Comma list of {",".join(ATTACKS)}.')
  # FGM / MIM / PGD budgets; Table 2 of the paper uses eps = 0.02.
  eps_list: tuple = setting((0.1, 0.25, 0.5, 1.0), 'L2 budgets of FGM, MIM and PGD (Table 2 of '
                            'the paper uses 0.02).')
  pgd_steps: int = setting(20, 'PGD iterations, step 2.5 * eps / steps (Madry et al. 2018).')
  mim_steps: int = setting(10, 'MIM iterations, step eps / steps.')
  deepfool_overshoot: float = setting(0.02, 'DeepFool overshoot.')
  # C&W L2: at most 100 iterations in the paper (section 4.2).
  cw_iterations: int = setting(100, 'C&W Adam steps per search step (100 in the paper).')
  cw_search_steps: int = setting(5, 'C&W binary-search steps over c.')
  cw_lr: float = setting(5e-3, 'C&W Adam learning rate.')
  cw_initial_const: float = setting(1e-2, 'C&W first value of c.')
  # PGN as an attack (Figure 3): a fresh generator against the fixed classifier, one per c_L,
  # trained on the whole training set ("fully trained", section 4.3). Its loss -CE + c_L ||d||^2
  # has its optimum near ||d|| = (slope of CE along d) / (2 c_L). With the normalized gradient
  # input (the default; the paper's raw one is ~1e-6 per pixel and G hardly uses it) c_L 1 to 8
  # span mean L2 ~0.1-0.4 on the cpu preset's eps-0.5 FGM-AT model, inside Figure 3's FGM / PGD
  # budgets; with --pgn_grad_input=raw, c_L 2, 4, 8 reach only L2 0.07, 0.03, 0.01 there and
  # c_L 1 runs away to L2 ~3 within one epoch.
  pgn_c_l_list: tuple = setting((1.0, 2.0, 4.0, 8.0), 'PGN attack: distance weights c_L, one '
                                'generator each.')
  pgn_gen_width: float = setting(0.25, 'PGN attack: generator width multiplier.')
  pgn_lr: float = setting(2e-3, 'PGN attack: Adam learning rate of the generator.')
  pgn_attack_epochs: int = setting(2, 'PGN attack: training epochs.')
  pgn_attack_train_size: int = setting(50000, 'PGN attack: first N training images (50000: '
                                       'all).')
  pgn_batch_size: int = setting(128, 'PGN attack: training batch size.')
  # G's gradient input (models.generator_input_gradient) and an optional hard L2 budget on its
  # perturbation (then each c_L's key carries the eps: pgn_c_l2_eps0.5).
  pgn_grad_input: str = setting('normalized', 'PGN attack: G\'s gradient input: the paper\'s raw '
                                'gradient, or scale-free.', GRAD_INPUTS)
  pgn_eps: float | None = setting(None, 'PGN attack: project x_adv into this L2 ball (none: no '
                                  'budget, c_L alone sets the size).')
  # Soundness check: PGD with a budget no image needs.
  unbounded_eps: float = setting(8.0, 'Soundness check: L2 budget of the unbounded PGD.')
  unbounded_steps: int = setting(50, 'Soundness check: iterations of the unbounded PGD.')
  batch_size: int = setting(256, 'Examples per attack batch.')
  seed: int = setting(1234, 'Seed of the PGN attack generators.')

  def validate(self) -> 'EvalConfig':
    """Raises EvalError with a one-line fix for the first invalid field."""
    if self.dataset not in data_lib.NUM_CLASSES:
      raise EvalError(f'unknown dataset {self.dataset!r}: use one of '
                      f'{", ".join(data_lib.NUM_CLASSES)}')
    unknown = [a for a in self.attacks if a not in ATTACKS]
    if unknown or not self.attacks:
      raise EvalError(f'unknown attack(s) {unknown}: --attacks takes a comma list of '
                      f'{",".join(ATTACKS)}')
    for name in ('eps_list', 'pgn_c_l_list'):
      if not getattr(self, name) or min(getattr(self, name)) <= 0:
        raise EvalError(f'--{name}={",".join(map(str, getattr(self, name)))} needs one or '
                        'more positive values')
    if self.pgn_grad_input not in GRAD_INPUTS:
      raise EvalError(f'unknown --pgn_grad_input={self.pgn_grad_input}: use one of '
                      f'{", ".join(GRAD_INPUTS)}')
    if self.pgn_eps is not None and not self.pgn_eps > 0:
      raise EvalError(f'--pgn_eps={self.pgn_eps} must be positive (omit it for no budget)')
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      if field.type in (int, float) and field.name not in _NON_NEGATIVE and not value > 0:
        raise EvalError(f'--{field.name}={value} must be positive')
    for name in _NON_NEGATIVE:
      if not getattr(self, name) >= 0:
        raise EvalError(f'--{name}={getattr(self, name)} is negative: give a value >= 0')
    return self

  def attack_params(self) -> dict:
    """The fixed settings of each attack (its budgets aside), as reported in results.json."""
    return {
        'fgm': dict(norm='L2'),
        'mim': dict(steps=self.mim_steps, step_size='eps / steps', decay=1.0),
        'pgd': dict(steps=self.pgd_steps, step_size='2.5 * eps / steps', random_start=False),
        'deepfool': dict(overshoot=self.deepfool_overshoot, max_iter=DEEPFOOL_MAX_ITER,
                         num_classes_considered=DEEPFOOL_CLASSES),
        'cw': dict(max_iterations=self.cw_iterations, binary_search_steps=self.cw_search_steps,
                   learning_rate=self.cw_lr, initial_const=self.cw_initial_const,
                   confidence=0.0, abort_early=True),
        'pgn': dict(gen_width=self.pgn_gen_width, lr=self.pgn_lr,
                    epochs=self.pgn_attack_epochs, train_size=self.pgn_attack_train_size,
                    batch_size=self.pgn_batch_size, seed=self.seed,
                    grad_input=self.pgn_grad_input,
                    loss='-CE(F(x_adv), y) + c_L * mean ||x_adv - x||^2'),
        'pgd_unbounded': dict(steps=self.unbounded_steps, step_size='2.5 * eps / steps',
                              random_start=False),
    }


  def settings(self) -> dict:
    """{attack: its budgets}, one dict per budget: {'eps': e}, {'c_l': c}, or {} (minimal-norm)."""
    budgets = [{'eps': float(e)} for e in self.eps_list]
    return dict(fgm=budgets, mim=budgets, pgd=budgets, deepfool=[{}], cw=[{}],
                pgn=[dict(c_l=float(c), **({} if self.pgn_eps is None else
                                           dict(eps=float(self.pgn_eps))))
                     for c in self.pgn_c_l_list],
                pgd_unbounded=[{'eps': float(self.unbounded_eps)}])

  def result_keys(self) -> list:
    """The keys of results.json's ``attacks`` an evaluation with this config writes."""
    settings = self.settings()
    return [_key(name, s) for name in self.attacks for s in settings[name]]


def make_eval_config(**overrides) -> EvalConfig:
  """EvalConfig from flag values (None: the default); comma strings or lists for the lists."""
  fields = {k: v for k, v in overrides.items() if v is not None}
  if isinstance(fields.get('attacks'), str):
    fields['attacks'] = fields['attacks'].split(',')
  if 'attacks' in fields:
    fields['attacks'] = tuple(a.strip().lower() for a in fields['attacks'] if a.strip())
  for name in ('eps_list', 'pgn_c_l_list'):
    if name in fields:
      values = fields[name].split(',') if isinstance(fields[name], str) else fields[name]
      try:
        fields[name] = tuple(float(v) for v in values)
      except ValueError:
        raise EvalError(f'--{name}={",".join(map(str, values))} is not a comma list of '
                        'numbers') from None
  return EvalConfig(**fields).validate()


# -- attacks ---------------------------------------------------------------------------------
@dataclasses.dataclass
class _Attack:
  """An attack, its budgets, and how to get its batch function for ``run_attack``."""
  name: str
  settings: list  # one dict per budget: {'eps': e}, {'c_l': c}, or {} (minimal-norm)
  make: Callable  # (crafting model, setting) -> (attack_fn, extra numbers for the results)


def _budget_attack(name, fn, settings):
  """FGM / MIM / PGD: eps is a tensor argument, so one trace serves every budget."""
  compiled = tf.function(fn, reduce_retracing=True)

  def make(model, setting):
    del model  # run_attack passes the crafting model to the attack
    eps = tf.constant(setting['eps'], tf.float32)
    return (lambda m, x, y: compiled(m, x, y, eps)), {}

  return _Attack(name, settings, make)


def _build_attacks(cfg: EvalConfig, num_classes: int, train_data: Callable | None) -> dict:
  """Every attack of the evaluation, each compiled once (``tf.function``); ``train_data()`` gives
  the PGN attack's float32 training images and labels."""
  def pgd(steps):
    return lambda m, x, y, eps: pgd_l2(m, x, y, eps, 2.5 * eps / steps, steps)

  def make_pgn(model, setting):
    if train_data is None:
      raise EvalError('the pgn attack trains a generator: pass training images (train_data)')
    x, y = train_data()
    attack = PGNAttack(model, num_classes, setting['c_l'], cfg.pgn_gen_width, cfg.pgn_lr,
                       cfg.pgn_batch_size, cfg.seed, cfg.pgn_grad_input, setting.get('eps'),
                       x.shape[1:])
    history = attack.fit(x[:cfg.pgn_attack_train_size], y[:cfg.pgn_attack_train_size],
                         cfg.pgn_attack_epochs, progress_desc=f'train PGN c_L={setting["c_l"]:g}')
    return attack.attack_fn, dict(train_history=history,
                                  train_seconds=sum(h['seconds'] for h in history))

  deepfool = tf.function(lambda m, x, y: deepfool_l2(
      m, x, y, DEEPFOOL_CLASSES, DEEPFOOL_MAX_ITER, cfg.deepfool_overshoot),
                         reduce_retracing=True)
  cw = tf.function(lambda m, x, y: carlini_wagner_l2(
      m, x, y, max_iterations=cfg.cw_iterations, binary_search_steps=cfg.cw_search_steps,
      initial_const=cfg.cw_initial_const, learning_rate=cfg.cw_lr), reduce_retracing=True)
  settings = cfg.settings()
  return {
      'fgm': _budget_attack('fgm', fgm_l2, settings['fgm']),
      'mim': _budget_attack('mim', lambda m, x, y, eps: mim_l2(
          m, x, y, eps, eps / cfg.mim_steps, cfg.mim_steps), settings['mim']),
      'pgd': _budget_attack('pgd', pgd(cfg.pgd_steps), settings['pgd']),
      'deepfool': _Attack('deepfool', settings['deepfool'], lambda model, setting: (deepfool, {})),
      'cw': _Attack('cw', settings['cw'], lambda model, setting: (cw, {})),
      'pgn': _Attack('pgn', settings['pgn'], make_pgn),
      'pgd_unbounded': _budget_attack('pgd_unbounded', pgd(cfg.unbounded_steps),
                                      settings['pgd_unbounded']),
  }


def _key(name: str, setting: dict) -> str:
  return name + ''.join(f'_{k}{v:g}' for k, v in setting.items())


# -- metrics ---------------------------------------------------------------------------------
def _json_safe(obj):
  """numpy scalars to Python numbers, tuples to lists, NaN and infinities to None."""
  if isinstance(obj, dict):
    return {str(k): _json_safe(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_json_safe(v) for v in obj]
  if isinstance(obj, (float, np.floating)):
    return float(obj) if math.isfinite(obj) else None
  if isinstance(obj, np.integer):
    return int(obj)
  return obj


def _summarize(x, x_adv, y, pred_clean, pred_adv, curve: bool) -> dict:
  """The numbers derived from one attack's x_adv (section 4.2, Eq. 6)."""
  norms = metrics.perturbation_norms(x, x_adv)
  n_clean_correct = int(np.sum(pred_clean == y))
  out = dict(accuracy=metrics.accuracy(pred_adv, y), n_correct=int(np.sum(pred_adv == y)),
             n_clean_correct=n_clean_correct, mean_l2=float(norms.mean()),
             max_l2=float(norms.max()), **metrics.rho(x, x_adv, y, pred_clean, pred_adv))
  out['success_rate'] = out['n_success'] / n_clean_correct if n_clean_correct else math.nan
  if curve:
    out['accuracy_vs_l2'] = dict(radii=list(CURVE_RADII), accuracy=metrics.accuracy_vs_l2_curve(
        x, x_adv, y, pred_clean, pred_adv, CURVE_RADII).tolist())
  return out


@dataclasses.dataclass
class _Model:
  model: Callable
  description: str


class _Session:
  """Runs (attack, budget, box) evaluations on fixed examples, reusing finished ones when it has
  a ``partial_dir``."""

  def __init__(self, cfg: EvalConfig, target: _Model, x, y, partial_dir: str | None,
               dataset: str, data: str):
    self.cfg, self.target, self.x, self.y = cfg, target, x, y
    self.partial_dir, self.dataset, self.data = partial_dir, dataset, data
    self.pred_clean = predict(target.model, x, cfg.batch_size).argmax(-1)

  def result(self, attack: _Attack, setting: dict, box: str, crafter: _Model) -> dict:
    """x_adv made on ``crafter``, measured on the target; from partial/ when already done."""
    key = f'{box}_{_key(attack.name, setting)}'
    if self.partial_dir is None:
      return self._measure(attack, setting, crafter, key)
    path = os.path.join(self.partial_dir, f'{key}.json')
    fingerprint = _json_safe(dict(
        target=self.target.description, crafted_on=crafter.description,
        dataset=self.dataset, data=self.data, num_examples=len(self.y), attack=attack.name,
        params=self.cfg.attack_params()[attack.name], setting=setting))
    cached = _read_partial(path, fingerprint)
    if cached is not None:
      print(f'{key}: reusing {path}', flush=True)
      return cached
    # Finished batches of an interrupted run of this very attack are reused (run_attack).
    batches = os.path.join(self.partial_dir, f'{key}.batches')
    if _read_partial(os.path.join(batches, 'fingerprint.json'), fingerprint,
                     'fingerprint') is None:
      shutil.rmtree(batches, ignore_errors=True)
      write_json_atomic(os.path.join(batches, 'fingerprint.json'), dict(fingerprint=fingerprint))
    reused = len([n for n in os.listdir(batches) if n.endswith('.npy')])
    if reused:
      print(f'{key}: resuming after {reused} finished batch(es) in {batches}', flush=True)
    out = self._measure(attack, setting, crafter, key, batches, reused)
    write_json_atomic(path, dict(fingerprint=fingerprint, result=out))
    shutil.rmtree(batches, ignore_errors=True)
    return out

  def _measure(self, attack: _Attack, setting: dict, crafter: _Model, key: str,
               resume_dir: str | None = None, reused: int = 0) -> dict:
    """Runs the attack (after ``reused`` batches saved in ``resume_dir``) and summarizes it."""
    attack_fn, extra = attack.make(crafter.model, setting)
    start = time.perf_counter()
    x_adv = run_attack(attack_fn, crafter.model, self.x, self.y, self.cfg.batch_size,
                       progress_desc=key, resume_dir=resume_dir)
    seconds = time.perf_counter() - start
    attacked = len(self.y) - min(len(self.y), reused * self.cfg.batch_size)
    pred_adv = predict(self.target.model, x_adv, self.cfg.batch_size).argmax(-1)
    out = _json_safe(dict(
        _summarize(self.x, x_adv, self.y, self.pred_clean, pred_adv,
                   attack.name in MINIMAL_NORM),
        seconds=seconds, images_per_second=attacked / seconds if attacked else None,
        resumed_examples=len(self.y) - attacked, **extra))
    print(f'{key}: accuracy={out["accuracy"]:.4f} rho_mean={_fmt(out["rho_mean"])} '
          f'n_success={out["n_success"]} ({seconds:.1f} s for {attacked} images)',
          flush=True)
    return out


def _read_partial(path: str, fingerprint: dict, field: str = 'result'):
  """The cached ``field`` at ``path`` if it was made with the same fingerprint, else None."""
  try:
    with open(path) as f:
      cached = json.load(f)
  except (OSError, ValueError):
    return None
  if not isinstance(cached, dict) or cached.get('fingerprint') != fingerprint:
    return None
  return cached.get(field)


# -- the evaluation --------------------------------------------------------------------------
def _load_model(path: str, dataset: str, flag: str) -> _Model:
  model, num_classes, description = load_classifier(path)
  if num_classes != data_lib.NUM_CLASSES[dataset]:
    raise EvalError(f'{flag}={path} has {num_classes} classes but {dataset} has '
                    f'{data_lib.NUM_CLASSES[dataset]}: pass the --dataset the model was trained on')
  return _Model(model, description)


def evaluate(cfg: EvalConfig, ckpt: str, out_dir: str | None = None,
             data_dir: str | None = None, source_ckpt: str | None = None) -> dict:
  """Evaluates the classifier at ``ckpt`` (run directory or SavedModel) under every attack of
  ``cfg``, black-box too when ``source_ckpt`` is given; writes results.json, results.md and
  accuracy_vs_l2.png to ``out_dir`` (default ``<ckpt>/eval``) and returns the results (JSON-safe:
  equal to what results.json holds).

  Raises:
    ModelLoadError: a path is neither a run directory nor a SavedModel.
    EvalError: a model's number of classes does not match ``cfg.dataset``.
    DataError: the dataset cannot be read.
    LockError: another process evaluates into ``out_dir``.
    WriteError: a result could not be written (a full disk); a rerun reuses the finished ones.
  """
  start = time.perf_counter()
  out_dir = out_dir or os.path.join(ckpt, 'eval')
  target = _load_model(ckpt, cfg.dataset, '--ckpt')
  crafters = {'whitebox': target}
  if source_ckpt:
    crafters['blackbox'] = _load_model(source_ckpt, cfg.dataset, '--source_ckpt')
  with locks.hold(out_dir):
    ds = data_lib.load(cfg.dataset, data_dir)
    test = data_lib.subset(ds.test, cfg.num_examples)
    x, y = data_lib.to_float(test.x), test.y
    if ds.provenance.startswith('unverified'):
      print(f'warning: data {ds.provenance}', flush=True)
    train = data_lib.subset(ds.train, cfg.pgn_attack_train_size)
    results = dict(model=target.description, ckpt=ckpt, dataset=cfg.dataset,
                   num_examples=len(y), num_classes=ds.num_classes, out_dir=out_dir,
                   data=dict(fingerprint=ds.fingerprint, provenance=ds.provenance),
                   **_attack_all(cfg, crafters, x, y, ds.num_classes,
                                 lambda: (data_lib.to_float(train.x), train.y),
                                 os.path.join(out_dir, 'partial'), cfg.dataset, ds.fingerprint))
    if source_ckpt:
      results['source_ckpt'] = source_ckpt
    return _finish(results, start, out_dir)


def evaluate_model(classifier, x, y, attacks=None, eps_list=None, source=None, train_data=None,
                   out_dir: str | None = None, data_name: str = 'data', **settings) -> dict:
  """Evaluates any classifier on images in memory under the attacks of ``tf_pgn.evaluation``:
  ``tf_pgn.evaluate(classifier, x_test, y_test, attacks=['pgd', 'cw'])``.

  Args:
    classifier: a Keras model, a SavedModel (its path, or what ``tf.saved_model.load`` gives) or
      any callable mapping float32 [N, ...] images in [0, 1] to logits [N, K]; called without a
      ``training`` argument (a Keras model runs in inference mode).
    x, y: the images (float32 in [0, 1], any shape) and integer labels; every one is attacked.
    attacks: names of ``ATTACKS`` (default all; ``pgn`` only with ``train_data``).
    eps_list: L2 budgets of FGM, MIM and PGD (default ``EvalConfig``'s).
    source: a classifier (as ``classifier``) for black-box results: crafted on it.
    train_data: (images, labels) the PGN attack's generator trains on.
    out_dir: if given, results.json, results.md, accuracy_vs_l2.png and partial/ (finished
      attacks, reused by a rerun) are written there.
    data_name: what the results call the data.
    **settings: any other ``EvalConfig`` field (pgd_steps, cw_iterations, batch_size, ...).

  Returns:
    The results (JSON-safe): benign accuracy, and per attack and budget accuracy, rho (Eq. 6)
    and the rest, with the soundness checks, as ``evaluate`` gives them for a checkpoint.
  """
  start = time.perf_counter()
  if attacks is None:
    attacks = [a for a in ATTACKS if a != 'pgn' or train_data is not None]
  cfg = make_eval_config(attacks=attacks, eps_list=eps_list, **settings)
  x, y = np.asarray(x, np.float32), np.asarray(y).reshape(-1).astype(np.int32)
  crafters = {'whitebox': _as_model(classifier)}
  if source is not None:
    crafters['blackbox'] = _as_model(source)
  num_classes = predict(crafters['whitebox'].model, x[:1]).shape[-1]
  if len(y) and (y.min() < 0 or y.max() >= num_classes):
    raise EvalError(f'labels span [{y.min()}, {y.max()}] but the classifier has {num_classes} '
                    'classes')
  train = None
  if train_data is not None:
    train = (np.asarray(train_data[0], np.float32),
             np.asarray(train_data[1]).reshape(-1).astype(np.int32))
  with locks.hold(out_dir) if out_dir else contextlib.nullcontext():
    results = dict(model=crafters['whitebox'].description, dataset=data_name,
                   num_examples=len(y), num_classes=num_classes, out_dir=out_dir,
                   **_attack_all(cfg, crafters, x, y, num_classes,
                                 None if train is None else lambda: train,
                                 out_dir and os.path.join(out_dir, 'partial'), data_name,
                                 data_lib.fingerprint(data_lib.Split(x, y))))
    return _finish(results, start, out_dir)


def _as_model(classifier) -> _Model:
  """A ``_Model`` from a Keras model, a SavedModel (path or loaded object) or a callable."""
  if isinstance(classifier, (str, os.PathLike)):
    model, _, description = load_classifier(os.fspath(classifier))
    return _Model(model, description)
  if hasattr(classifier, 'serve'):  # what tf.saved_model.load gives
    return _Model(SavedModelClassifier(classifier), 'a loaded SavedModel')
  if not callable(classifier):
    raise EvalError(f'{type(classifier).__name__} is not a classifier: pass a Keras model, a '
                    'SavedModel or a callable mapping images to logits')
  name = getattr(classifier, 'name', None) or getattr(classifier, '__name__', '')
  return _Model(classifier, f'{type(classifier).__name__} {name}'.strip())


def _attack_all(cfg: EvalConfig, crafters: dict, x, y, num_classes: int,
                train_data: Callable | None, partial_dir: str | None, dataset: str,
                data: str) -> dict:
  """Every attack and budget of ``cfg`` on (x, y), white-box on ``crafters['whitebox']`` and
  black-box from ``crafters['blackbox']`` if given; the results' benign accuracy, settings,
  entries and unbounded PGD (the soundness check's)."""
  target = crafters['whitebox']
  session = _Session(cfg, target, x, y, partial_dir, dataset, data)
  attacks = _build_attacks(cfg, num_classes, train_data)
  params = cfg.attack_params()
  entries = {}
  for name in cfg.attacks:
    for setting in attacks[name].settings:
      entries[_key(name, setting)] = dict(
          attack=name, **setting,
          **{box: session.result(attacks[name], setting, box, crafter)
             for box, crafter in crafters.items()})
  unbounded = attacks['pgd_unbounded']
  results = dict(
      benign_accuracy=metrics.accuracy(session.pred_clean, y),
      attack_settings={name: dict(params[name], budgets=attacks[name].settings)
                       for name in cfg.attacks},
      attacks=entries,
      unbounded_pgd=dict(eps=cfg.unbounded_eps, **params['pgd_unbounded'], **session.result(
          unbounded, unbounded.settings[0], 'whitebox', target)),
      notes=_NOTES)
  if 'blackbox' in crafters:
    results.update(source_model=crafters['blackbox'].description,
                   source_benign_accuracy=metrics.accuracy(
                       predict(crafters['blackbox'].model, x, cfg.batch_size), y))
  return results


def _finish(results: dict, start: float, out_dir: str | None) -> dict:
  """Adds the soundness checks (printed) and the seconds; writes results.json, results.md and
  accuracy_vs_l2.png to ``out_dir`` if given. Returns the JSON-safe results."""
  results['checks'] = soundness_checks(results)
  for check in results['checks']:
    print(f'check {check["name"]}: {"ok" if check["passed"] else "WARNING"}: {check["detail"]}')
  results['seconds'] = time.perf_counter() - start
  results = _json_safe(results)
  if out_dir:
    write_json_atomic(os.path.join(out_dir, 'results.json'), results)
    write_text_atomic(os.path.join(out_dir, 'results.md'), results_markdown(results))
    plots.accuracy_vs_l2(_plot_panels(results), os.path.join(out_dir, 'accuracy_vs_l2.png'))
  return results


# -- checks and reports ----------------------------------------------------------------------
def _success_check(name: str, result: dict, what: str) -> dict:
  rate = result['success_rate']
  passed = rate is not None and rate >= SUCCESS_THRESHOLD
  detail = (f'{what} fools {result["n_success"]} of {result["n_clean_correct"]} clean-correct '
            f'examples ({_fmt(rate)})')
  if not passed:
    detail += (f', below {SUCCESS_THRESHOLD:.0%}: an unbounded attack should fool them all; '
               'suspect gradient masking or a too weak attack')
  return dict(name=name, passed=passed, detail=detail)


def soundness_checks(results: dict) -> list:
  """Checks of Carlini et al. 2019, each ``{name, passed, detail}``:

  1. unbounded attacks (PGD at a huge eps; C&W) fool >= 99% of the clean-correct examples;
  2. accuracy under PGD does not rise with eps (one example of noise allowed);
  3. black-box accuracy is not below white-box accuracy for the same attack and budget (one
     example of noise allowed).
  """
  entries = results['attacks']
  unbounded = results['unbounded_pgd']
  checks = [_success_check('unbounded_pgd_success', unbounded,
                           f'PGD at eps={unbounded["eps"]:g} ({unbounded["steps"]} steps)')]
  if 'cw' in entries:
    cw = results['attack_settings']['cw']
    checks.append(_success_check('cw_success', entries['cw']['whitebox'],
                                 f'C&W ({cw["max_iterations"]} iterations, '
                                 f'{cw["binary_search_steps"]} search steps)'))
  pgd = sorted((e['eps'], e['whitebox']['n_correct']) for e in entries.values()
               if e['attack'] == 'pgd')
  if len(pgd) > 1:
    rises = [f'{a[0]:g} -> {b[0]:g}' for a, b in zip(pgd, pgd[1:]) if b[1] > a[1] + NOISE_EXAMPLES]
    detail = ('correct examples under PGD by eps: ' + ', '.join(f'{e:g}: {n}' for e, n in pgd)
              + f'; must not rise with eps ({NOISE_EXAMPLES} example of noise allowed)')
    checks.append(dict(name='pgd_monotone_in_eps', passed=not rises,
                       detail=detail + (f'; rises at eps {", ".join(rises)}' if rises else '')))
  black = {k: e for k, e in entries.items() if 'blackbox' in e}
  if black:
    stronger = [k for k, e in black.items()
                if e['blackbox']['n_correct'] < e['whitebox']['n_correct'] - NOISE_EXAMPLES]
    detail = (f'black-box accuracy >= white-box accuracy for {len(black) - len(stronger)} of '
              f'{len(black)} attacks and budgets ({NOISE_EXAMPLES} example of noise allowed)')
    if stronger:
      detail += (f'; black-box is stronger for {", ".join(stronger)}: the white-box attack '
                 'is too weak there (gradient masking?)')
    checks.append(dict(name='blackbox_not_stronger', passed=not stronger, detail=detail))
  return checks


def _fmt(value, digits: int = 3) -> str:
  return '-' if value is None or value != value else f'{value:.{digits}f}'


def _label(entry: dict) -> str:
  """The row name: the attack and its budget (PGN: c_L and the white-box mean L2 it gave)."""
  label = _LABELS[entry['attack']]
  if 'eps' in entry:
    return f'{label} (eps={entry["eps"]:g})'
  if 'c_l' in entry:
    return f'{label} (c_L={entry["c_l"]:g}, mean L2 {_fmt(entry["whitebox"]["mean_l2"])})'
  return label


def results_markdown(results: dict) -> str:
  """Table 2's layout: one row per attack and budget; white-box accuracy and rho, black-box
  accuracy; then the soundness checks."""
  source = (f'; black-box examples crafted on {results["source_model"]} (benign accuracy '
            f'{_fmt(results["source_benign_accuracy"])})' if 'source_model' in results else '')
  lines = [
      f'# Robustness of {results["model"]}', '',
      f'{results["dataset"]}, first {results["num_examples"]} test images; benign accuracy '
      f'{_fmt(results["benign_accuracy"])}{source}.', '',
      'All attacks L2. rho: mean / median L2 norm of the perturbation over successful '
      'adversarial examples (clean-correct, then misclassified). rho (paper\'s variant): the '
      "authors' code's mean over all misclassified adversarial examples, clean mistakes "
      'included. DeepFool and C&W are minimal-norm (unbounded) attacks.', '',
      "| attack | white-box acc | rho mean | rho median | rho mean (paper's variant) "
      '| black-box acc |',
      '|---|---:|---:|---:|---:|---:|',
  ]
  for entry in results['attacks'].values():
    wb = entry['whitebox']
    bb = _fmt(entry['blackbox']['accuracy']) if 'blackbox' in entry else '-'
    lines.append(f'| {_label(entry)} | {_fmt(wb["accuracy"])} | {_fmt(wb["rho_mean"])} | '
                 f'{_fmt(wb["rho_median"])} | {_fmt(wb["rho_mean_paper"])} | {bb} |')
  lines += ['', '## Soundness checks', '']
  lines += [f'- {"ok" if c["passed"] else "**WARNING**"} `{c["name"]}`: {c["detail"]}'
            for c in results['checks']]
  return '\n'.join(lines) + '\n'


def accuracy_vs_l2_series(results: dict, box: str = 'whitebox', attacks=None) -> list:
  """The ``plots.accuracy_vs_l2`` series of ``results`` for ``box``, one per attack (all of
  ``results``' by default): a curve for a minimal-norm attack; points at eps for FGM / MIM / PGD
  and at the mean perturbation L2 for PGN (Figure 3)."""
  series = []
  for name in attacks or results['attack_settings']:
    entries = [e for e in results['attacks'].values() if e['attack'] == name and box in e]
    if not entries:
      continue
    if name in MINIMAL_NORM:
      curve = entries[0][box]['accuracy_vs_l2']
      series.append(dict(label=_LABELS[name], x=curve['radii'], y=curve['accuracy'], curve=True))
    else:
      points = sorted((e['eps'] if 'eps' in e else e[box]['mean_l2'], e[box]['accuracy'])
                      for e in entries if 'eps' in e or e[box]['mean_l2'] is not None)
      series.append(dict(label=_LABELS[name], x=[p[0] for p in points],
                         y=[p[1] for p in points], curve=False))
  return series


def _plot_panels(results: dict) -> list:
  """Accuracy vs L2, one panel per box (white-box, black-box) with every attack."""
  return [dict(title=f'{title}, {results["dataset"]}', series=series,
               benign_accuracy=results['benign_accuracy'])
          for box, title in BOXES.items()
          if (series := accuracy_vs_l2_series(results, box))]
