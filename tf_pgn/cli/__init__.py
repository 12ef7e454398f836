"""The command lines: ``tf-pgn-train`` (``train.py``) and ``tf-pgn-evaluate`` (``evaluate.py``)."""
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # before TensorFlow is imported
