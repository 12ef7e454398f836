"""The reproduction report of a sweep root: its numbers beside the PGN paper's claims.

  python -m tf_pgn.experiments report      # results/<root name>/ and docs/REPRODUCTION.md

``write_report`` copies the small outputs of every job of a sweep root (config.json,
metrics.jsonl, and each evaluation's results.json, results.md and accuracy_vs_l2.png, eval/ and
the PGN-attack folders eval_pgn_*/; never checkpoints, SavedModels or TensorBoard logs) into
``<out>/<root name>/`` beside the summary, Figure 5 (robustness curves and capacity), Figure 4
(balanced C&W curves), Figure 3 (PGN as an attack) and Figure 2 right (training progress), and
writes a Markdown report. Its verdict on each claim of the paper is computed by ``claims`` (claims 1, 4
and 5 per PGN curve variant, claim 3 for the raw PGN attack and the strongest other); a claim
without the data it needs is 'not measured yet', with the command that measures it. The
generated text quotes the root and flags as the commands were given, never this machine's paths.
Each run rewrites the report whole, but for the block between NOTES_BEGIN and NOTES_END:
hand-written notes, kept verbatim.

A module per group of sections, each importing only those above it:

  common      the loaded Study, Markdown cells and tables, the curves the claims read
  drawing     how a figure is drawn: shared colours, the legend below, labels that do not collide
  scale       the scale against the paper's, data and evaluation, jobs, CIFAR-100
  attack      PGN as an attack (Figure 3, claim 3)
  verdicts    the verdict table (every claim)
  curves      Table 2, the robustness curves (Figure 5 left), seed spread, balanced comparison
  autoattack  the evaluation at AutoAttack level
  ablation    capacity (Figure 5 right) and the ablations
  progress    training progress (Figure 2 right) and speed (section 4.4)
  figures     the PNGs, one question each
  linf        the Linf study's verdicts (tf_pgn.study.linf)
  linf_report the Linf study's own report (docs/LINF_STUDY.md) and its by-epoch figure
  report      the outputs copied and the sections in order
"""
from tf_pgn.study.render.common import Study
from tf_pgn.study.render.curves import balanced_at
from tf_pgn.study.render.figures import plot_robustness_curves, robustness_curves
from tf_pgn.study.render.report import EVAL_FILES, NOTES_BEGIN, NOTES_END, write_report
from tf_pgn.study.render.verdicts import verdicts

__all__ = ['EVAL_FILES', 'NOTES_BEGIN', 'NOTES_END', 'Study', 'balanced_at',
           'plot_robustness_curves', 'robustness_curves', 'verdicts', 'write_report']
