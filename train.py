"""Train a CIFAR classifier with one of the paper's defenses (naive, FGM-AT, PGD-AT, PGN).

  python train.py --dataset=cifar10 --defense=pgn                      # the paper's settings
  python train.py --dataset=cifar10 --defense=pgd --eps=0.5 --preset=cpu --run_dir=runs/c10_pgd

Re-running the same command on an existing --run_dir resumes it. The command is
``tf_pgn.cli.train`` (installed as ``tf-pgn-train``); this file runs it from a checkout.
"""
from tf_pgn.cli.train import run

if __name__ == '__main__':
  run()
