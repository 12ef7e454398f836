"""Evaluate a trained classifier under L2 or Linf attacks, white-box and black-box (section 4.2).

  python evaluate.py --ckpt=runs/c10_pgn --dataset=cifar10 --data_dir=~/.cache/tf_pgn
  python evaluate.py --ckpt=runs/c10_pgn --attacks=cw,deepfool --out=eval/c10_pgn
  python evaluate.py --ckpt=runs/c10_pgn --source_ckpt=runs/c10_naive_2   # black-box transfer
  python evaluate.py --ckpt=runs/c10_pgn --attacks=autoattack --eps_list=0.5   # RobustBench's
  python evaluate.py --ckpt=runs/c10_pgn --norm=linf --attacks=pgd,autoattack --eps_list=8/255
  python evaluate.py --ckpt=runs/c10_pgn --attacks=apgd_ce,apgd_dlr,square,fmn,cw

Writes results.json, results.md, accuracy_vs_l2.png and accuracy_vs_linf.png (of the L2 and the
Linf attacks) to --out (default <ckpt>/eval). Each
finished attack is kept in <out>/partial/; re-running the same command skips it. The command is
``tf_pgn.cli.evaluate`` (installed as ``tf-pgn-evaluate``); this file runs it from a checkout.
"""
from tf_pgn.cli.evaluate import run

if __name__ == '__main__':
  run()
