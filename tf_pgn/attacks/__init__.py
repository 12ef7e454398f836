"""L2 attacks: minimal-norm attacks (DeepFool, Carlini & Wagner) and the batched runner."""

from tf_pgn.attacks.cw import carlini_wagner_l2
from tf_pgn.attacks.deepfool import deepfool_l2
from tf_pgn.attacks.runner import predict, run_attack
