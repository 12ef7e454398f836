"""Running an evaluation: the attacks built from the table, the white-box and black-box runs
through the shared runner, the partial results a rerun reuses, and the entry points
``evaluate`` (a checkpoint) and ``evaluate_model`` (a classifier and images in memory)."""
import contextlib
import dataclasses
import functools
import json
import math
import os
import shutil
import time
from typing import Callable

import numpy as np
import tensorflow as tf

from tf_pgn import data as data_lib
from tf_pgn import inputs, locks, metrics, plots
from tf_pgn.attacks import predict, run_attack
from tf_pgn.attacks.runner import finished_batches
from tf_pgn.export import SavedModelClassifier, load_classifier, weights_digest
from tf_pgn.io_utils import write_json_atomic, write_text_atomic
from tf_pgn.evaluation.common import EvalError, fmt, json_safe, result_key
from tf_pgn.evaluation.attack_table import (ATTACK_TABLE, DEFAULT_ATTACKS, AttackContext,
                                            AttackSpec, attack_norm)
from tf_pgn.evaluation.config import EvalConfig, make_eval_config
from tf_pgn.evaluation.checks import masking_probes, soundness_checks
from tf_pgn.evaluation.report import plot_panels, results_markdown

# The radii of a minimal-norm attack's accuracy curve, per the norm it runs at: L2 0 to 2 in
# steps of 0.05; Linf 0 to 32/255 in steps of 1/255 (a pixel level).
CURVE_RADII = {'l2': tuple(round(0.05 * i, 2) for i in range(41)),
               'linf': tuple(i / 255 for i in range(33))}

_NOTES = {
    'rho_mean': 'mean L2 norm of x_adv - x over successful adversarial examples: classified '
                'correctly clean and wrongly after the attack (Eq. 6)',
    'rho_mean_paper': "the paper's variant (authors' code): the mean over all adversarial "
                      'examples classified wrongly, clean mistakes (perturbation ~0) included, '
                      'which biases rho down',
    'success_rate': 'n_success / n_clean_correct',
    'blackbox': 'crafted on the source model, measured on the evaluated model',
    'accuracy_vs_l2': 'accuracy when every perturbation larger than the radius counts as a '
                      'failed attack (minimal-norm attacks; accuracy_vs_linf for one at Linf)',
    'broken_by': 'worst case (autoattack): per attack, the examples it broke first, as the '
                 'crafting model saw them (clean: misclassified without attack); '
                 'broken_by_example names it per example (null: none did)',
    'probes': 'masking flags: examples whose input gradient of the logit margin is exactly zero; '
              'the change of the L2-normalised logits between two identical calls',
    'null': 'a mean or median over no examples',
}
# What a Linf evaluation's results add to the notes.
_LINF_NOTES = {
    'norm': 'the bounded attacks (eps budgets) run at Linf, eps on the [0, 1] pixel scale; the '
            'minimal-norm attacks, PGN and the unbounded PGD of the soundness check at L2; '
            'rho stays the L2 norm',
    'linf_mean': 'mean Linf norm of x_adv - x over the successful adversarial examples of rho',
}

# -- building the attacks --------------------------------------------------------------------
@dataclasses.dataclass
class _Attack:
  """An attack of ATTACK_TABLE, its budgets, and how to get its batch function for run_attack."""
  name: str
  spec: AttackSpec
  settings: list  # one dict per budget: {'eps': e}, {'c_l': c}, or {} (minimal-norm)
  make: Callable  # (crafting model, setting) -> (attack_fn, extra numbers for the results)


def _compile(spec: AttackSpec, cfg: EvalConfig, context: AttackContext) -> Callable:
  """The ``make`` of an attack: its batch function compiled once (``tf.function``); a bounded
  attack's eps is a tensor argument, so one trace serves every budget."""
  if spec.make is not None:
    return spec.make(cfg, context)
  compiled = tf.function(spec.attack(cfg), reduce_retracing=True)
  if spec.minimal_norm:
    return lambda model, setting: (compiled, {})

  def make(model, setting):
    del model  # run_attack passes the crafting model to the attack
    eps = tf.constant(setting['eps'], tf.float32)
    return (lambda m, x, y: compiled(m, x, y, eps)), {}

  return make


def _build_attacks(cfg: EvalConfig, names, context: AttackContext) -> dict:
  """The attacks ``names`` of ATTACK_TABLE, each compiled once."""
  return {name: _Attack(name, ATTACK_TABLE[name], ATTACK_TABLE[name].budgets(cfg),
                        _compile(ATTACK_TABLE[name], cfg, context)) for name in names}


def _summarize(x, x_adv, y, pred_clean, pred_adv, curve_norm: str | None, linf: bool) -> dict:
  """The numbers derived from one attack's x_adv (section 4.2, Eq. 6); with ``linf`` (a Linf
  evaluation or attack) also the mean Linf norm over the successful examples of rho and the
  largest; with ``curve_norm`` (a minimal-norm attack's norm) the accuracy at each of its
  CURVE_RADII (``accuracy_vs_l2`` or ``accuracy_vs_linf``)."""
  norms = metrics.perturbation_norms(x, x_adv)
  n_clean_correct = int(np.sum(pred_clean == y))
  out = dict(accuracy=metrics.accuracy(pred_adv, y), n_correct=int(np.sum(pred_adv == y)),
             n_clean_correct=n_clean_correct, mean_l2=float(norms.mean()),
             max_l2=float(norms.max()), **metrics.rho(x, x_adv, y, pred_clean, pred_adv))
  out['success_rate'] = out['n_success'] / n_clean_correct if n_clean_correct else math.nan
  if linf:
    sizes = metrics.perturbation_norms(x, x_adv, 'linf')
    success = (pred_clean == y) & (pred_adv != y)
    out.update(linf_mean=float(sizes[success].mean()) if success.any() else math.nan,
               max_linf=float(sizes.max()))
  if curve_norm:
    radii = CURVE_RADII[curve_norm]
    out[f'accuracy_vs_{curve_norm}'] = dict(radii=list(radii), accuracy=metrics.accuracy_vs_radius(
        x, x_adv, y, pred_clean, pred_adv, radii, curve_norm).tolist())
  return out


def _broken_by(codes: np.ndarray, parts: tuple) -> dict:
  """A worst case's per-example codes (``attacks.common.worst_case``) as counts and names."""
  names = ('clean',) + tuple(parts)
  return dict(broken_by={name: int(np.sum(codes == i)) for i, name in enumerate(names)},
              n_unbroken=int(np.sum(codes < 0)),
              broken_by_example=[names[c] if c >= 0 else None for c in codes.tolist()])


@dataclasses.dataclass
class _Model:
  """A classifier, what the results call it, and what its partial results are keyed by: the
  digest of its weights, so that a model moved or spelled by another path reuses them and one
  retrained in place does not (the description where it has no weights)."""
  model: Callable
  description: str
  weights_of: Callable | None = None  # the model whose weights identify it (default ``model``)

  @functools.cached_property
  def identity(self) -> str:
    digest = weights_digest(self.weights_of or self.model)
    return f'weights {digest}' if digest else self.description


class _Measurement:
  """Runs (attack, budget, box) evaluations on fixed examples, reusing finished ones when it has
  a ``partial_dir``."""

  def __init__(self, cfg: EvalConfig, target: _Model, x, y, partial_dir: str | None,
               dataset: str, data: str):
    self.cfg, self.target, self.x, self.y = cfg, target, x, y
    self.partial_dir, self.dataset, self.data = partial_dir, dataset, data
    self.params = cfg.attack_params()  # at Linf naming each attack's norm
    self.pred_clean = predict(target.model, x, cfg.batch_size).argmax(-1)

  def result(self, attack: _Attack, setting: dict, box: str, crafter: _Model) -> dict:
    """x_adv made on ``crafter``, measured on the target; from partial/ when already done."""
    key = f'{box}_{result_key(attack.name, setting)}'
    if self.partial_dir is None:
      return self._measure(attack, setting, crafter, key)
    path = os.path.join(self.partial_dir, f'{key}.json')
    fingerprint = json_safe(dict(
        target=self.target.identity, crafted_on=crafter.identity,
        dataset=self.dataset, data=self.data, num_examples=len(self.y), attack=attack.name,
        params=self.params[attack.name], setting=setting))
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
    reused = finished_batches(batches)
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
                       progress_desc=key, resume_dir=resume_dir, aux=bool(attack.spec.parts),
                       progress_seconds=self.cfg.progress_seconds)
    seconds = time.perf_counter() - start
    if attack.spec.parts:
      x_adv, broken_by = x_adv
      extra = dict(extra, **_broken_by(broken_by, attack.spec.parts))
    attacked = len(self.y) - min(len(self.y), reused * self.cfg.batch_size)
    runs_at = attack_norm(attack.name, self.cfg.norm)
    pred_adv = predict(self.target.model, x_adv, self.cfg.batch_size).argmax(-1)
    out = json_safe(dict(
        _summarize(self.x, x_adv, self.y, self.pred_clean, pred_adv,
                   runs_at if attack.spec.minimal_norm else None,
                   'linf' in (self.cfg.norm, runs_at)),
        seconds=seconds, images_per_second=attacked / seconds if attacked else None,
        resumed_examples=len(self.y) - attacked, **extra))
    print(f'{key}: accuracy={out["accuracy"]:.4f} rho_mean={fmt(out["rho_mean"])} '
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
  the figures (accuracy_vs_l2.png, accuracy_vs_linf.png) to ``out_dir`` (default
  ``<ckpt>/eval``) and returns the results (JSON-safe: equal to what results.json holds).

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
                   out_dir: str | None = None, data_name: str = 'data', labels: str = 'sparse',
                   from_logits: bool = True, **settings) -> dict:
  """Evaluates any classifier on images in memory under the attacks of ``tf_pgn.evaluation``:
  ``tf_pgn.evaluate(classifier, x_test, y_test, attacks=['pgd', 'cw'])``.

  Args:
    classifier: a Keras model, a SavedModel (its path, or what ``tf.saved_model.load`` gives) or
      any callable mapping float32 [N, ...] images in [0, 1] to logits [N, K]; called without a
      ``training`` argument (a Keras model runs in inference mode).
    x, y: the images (in [0, 1], any shape: scale 0-255 images by 1 / 255 and give budgets on
      that scale) and their labels; every one is attacked. Bad values (NaN, pixels outside
      [0, 1], labels out of range or of the other form) stop it with a one-line InputError.
    attacks: names of ``ATTACKS`` (default ``DEFAULT_ATTACKS``, the paper's; ``pgn`` only with
      ``train_data``).
    eps_list: budgets of the bounded attacks at ``norm`` (a setting; default 'l2'), numbers or
      fractions such as '8/255' (default ``EvalConfig``'s).
    source: a classifier (as ``classifier``) for black-box results: crafted on it.
    train_data: (images, labels) the PGN attack's generator trains on.
    out_dir: if given, results.json, results.md, the figures (accuracy_vs_l2.png,
      accuracy_vs_linf.png) and partial/ (finished attacks, reused by a rerun) are written
      there.
    data_name: what the results call the data.
    labels: 'sparse' (class ids [N]) or 'categorical' (one-hot rows [N, K]), as Keras' losses.
    from_logits: False for classifiers that output probabilities (attacked on their logarithm).
    **settings: any other ``EvalConfig`` field (pgd_steps, cw_iterations, batch_size, ...).

  Returns:
    The results (JSON-safe): benign accuracy, and per attack and budget accuracy, rho (Eq. 6)
    and the rest, with the soundness checks, as ``evaluate`` gives them for a checkpoint.
  """
  start = time.perf_counter()
  if attacks is None:
    attacks = [a for a in DEFAULT_ATTACKS if a != 'pgn' or train_data is not None]
  cfg = make_eval_config(attacks=attacks, eps_list=eps_list, **settings)
  conventions = inputs.Conventions(labels, from_logits)
  crafters = {'whitebox': _as_model(classifier, conventions)}
  if source is not None:
    crafters['blackbox'] = _as_model(source, conventions)
  with inputs.reported():
    num_classes = predict(crafters['whitebox'].model, np.asarray(x[:1], np.float32)).shape[-1]
  x, y = inputs.check_arrays(x, y, num_classes, conventions)
  train = None
  if train_data is not None:
    train = inputs.check_arrays(*train_data, num_classes, conventions)
  with locks.hold(out_dir) if out_dir else contextlib.nullcontext():
    results = dict(model=crafters['whitebox'].description, dataset=data_name,
                   num_examples=len(y), num_classes=num_classes, out_dir=out_dir,
                   **_attack_all(cfg, crafters, x, y, num_classes,
                                 None if train is None else lambda: train,
                                 out_dir and os.path.join(out_dir, 'partial'), data_name,
                                 data_lib.fingerprint(data_lib.Split(x, y))))
    return _finish(results, start, out_dir)


def _as_model(classifier, conventions=inputs.Conventions()) -> _Model:
  """A ``_Model`` from a Keras model, a SavedModel (path or loaded object) or a callable; one
  that outputs probabilities (``conventions.from_logits`` False) is attacked on their log."""
  if not conventions.from_logits:
    found = _as_model(classifier)
    return _Model(inputs.UnitLogits(found.model, conventions), found.description,
                  found.model)
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
  entries and, if ``cfg.unbounded_check``, the soundness check's unbounded PGD."""
  target = crafters['whitebox']
  measurement = _Measurement(cfg, target, x, y, partial_dir, dataset, data)
  checked = ('pgd_unbounded',) if cfg.unbounded_check else ()
  attacks = _build_attacks(cfg, cfg.attacks + checked, AttackContext(num_classes, train_data))
  params = cfg.attack_params()
  entries = {}
  for name in cfg.attacks:
    for budget in attacks[name].settings:
      entries[result_key(name, budget)] = dict(
          attack=name, **budget,
          **{box: measurement.result(attacks[name], budget, box, crafter)
             for box, crafter in crafters.items()})
  results = dict(
      norm=cfg.norm,
      benign_accuracy=metrics.accuracy(measurement.pred_clean, y),
      attack_settings={name: dict(params[name], budgets=attacks[name].settings)
                       for name in cfg.attacks},
      attacks=entries,
      probes=masking_probes(target.model, x, y, cfg.batch_size),
      notes=_NOTES if cfg.norm == 'l2' else dict(_NOTES, **_LINF_NOTES))
  if cfg.unbounded_check:
    unbounded = attacks['pgd_unbounded']
    results['unbounded_pgd'] = dict(eps=cfg.unbounded_eps, **params['pgd_unbounded'],
                                    **measurement.result(unbounded, unbounded.settings[0],
                                                         'whitebox', target))
  if 'blackbox' in crafters:
    results.update(source_model=crafters['blackbox'].description,
                   source_benign_accuracy=metrics.accuracy(
                       predict(crafters['blackbox'].model, x, cfg.batch_size), y))
  return results


def _finish(results: dict, start: float, out_dir: str | None) -> dict:
  """Adds the soundness checks (printed) and the seconds; writes results.json, results.md,
  accuracy_vs_l2.png (when an attack ran at L2) and accuracy_vs_linf.png (when one ran at Linf)
  to ``out_dir`` if given. Returns the JSON-safe results."""
  results['checks'] = soundness_checks(results)
  for check in results['checks']:
    print(f'check {check["name"]}: {"ok" if check["passed"] else "WARNING"}: {check["detail"]}')
  results['seconds'] = time.perf_counter() - start
  results = json_safe(results)
  if out_dir:
    write_json_atomic(os.path.join(out_dir, 'results.json'), results)
    write_text_atomic(os.path.join(out_dir, 'results.md'), results_markdown(results))
    for norm in CURVE_RADII:
      panels = plot_panels(results, norm)
      figure = os.path.join(out_dir, f'accuracy_vs_{norm}.png')
      if panels:
        plots.accuracy_vs_budget(panels, figure, norm)
      else:  # an earlier evaluation's figure would not show these results
        with contextlib.suppress(FileNotFoundError):
          os.remove(figure)
  return results
