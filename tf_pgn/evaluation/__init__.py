"""Robustness evaluation of a trained classifier: section 4.2 of the PGN paper and beyond.

Every attack runs through the shared runner (``attacks.run_attack``), white-box on the evaluated
model and, given a source model, black-box (crafted on the source, measured on the evaluated
model). Each attack is one entry of ``ATTACK_TABLE``: the paper's FGM, MIM, PGD, DeepFool, C&W and
PGN; APGD-CE, APGD-DLR and APGD-T (Croce & Hein 2020), Square (Andriushchenko et al. 2020), FMN
(Pintor et al. 2021), FAB and FAB-T (Croce & Hein, ICML 2020), FAB-Linf (FAB minimising the Linf
norm); and ``autoattack``, the per-example worst case over APGD-CE, APGD-T, FAB-T and Square run
in turn on the examples still robust (AutoAttack's 'standard' version). The bounded attacks (FGM,
MIM, PGD, APGD, FAB-T, Square, AutoAttack) run at the evaluation's ``norm``: L2 (the paper's) or
Linf (budgets on the [0, 1] pixel scale; RobustBench's CIFAR setting is AutoAttack at 8/255);
DeepFool, C&W, FAB and FMN (minimal-norm) and PGN (an L2 penalty) are L2 at either, FAB-Linf
Linf at either. Per attack and budget: adversarial accuracy; rho (Eq. 6), the mean and median L2
norm of the perturbation over successful adversarial examples, and the authors' variant of it
(``*_paper``); in a Linf evaluation (and for FAB-Linf in any) also the mean Linf norm over the
same examples; for the minimal-norm attacks the accuracy at each radius of their norm
(``accuracy_vs_l2``, ``accuracy_vs_linf``); for the worst case which attack broke each example.
Soundness checks from Carlini et al. 2019 ("On Evaluating Adversarial Robustness") and
AutoAttack's flags flag gradient masking.

An output folder holds ``results.json``, ``results.md`` (Table 2's layout),
``accuracy_vs_l2.png`` (Figures 3-4), ``accuracy_vs_linf.png`` (the same at Linf) and
``partial/<box>_<attack>.json``, one per finished (attack, budget), which a rerun of the same
evaluation reuses. One evaluation at a time writes a folder (``tf_pgn.locks``).

The package by concern, each module importing only those above it: ``common`` (the error, result
keys, labels), ``attack_table`` (``ATTACK_TABLE``), ``config`` (``EvalConfig``), ``checks``
(soundness and masking), ``report`` (results.md and the plots) and ``runner`` (running an
evaluation with its partial results).
"""
from tf_pgn.evaluation.common import EvalError
from tf_pgn.evaluation.attack_table import (ATTACK_TABLE, ATTACKS, AUTOATTACK_PARTS,
                                            DEFAULT_ATTACKS, MINIMAL_NORM, PGN_ATTACK_LOSS_TEXT,
                                            AttackSpec, attack_norm)
from tf_pgn.evaluation.config import EvalConfig, make_eval_config
from tf_pgn.evaluation.checks import masking_probes, soundness_checks
from tf_pgn.evaluation.report import (accuracy_after_each_part, accuracy_vs_budget_series,
                                      results_markdown)
from tf_pgn.evaluation.runner import evaluate, evaluate_model

__all__ = ['ATTACKS', 'ATTACK_TABLE', 'AUTOATTACK_PARTS', 'AttackSpec', 'DEFAULT_ATTACKS',
           'EvalConfig', 'EvalError', 'MINIMAL_NORM', 'PGN_ATTACK_LOSS_TEXT',
           'accuracy_after_each_part', 'accuracy_vs_budget_series', 'attack_norm', 'evaluate',
           'evaluate_model', 'make_eval_config', 'masking_probes', 'results_markdown',
           'soundness_checks']
