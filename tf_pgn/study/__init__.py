"""The PGN paper's study at CPU scale, in one-way layers (each imports only those above it):

  protocol  what is measured: hyper-parameters, PGN variants, evaluation settings, labels
  claims    the paper's claims as pure functions of the numbers (interpolation, balancing, seed
            spread, verdict rules)
  results   what a sweep root holds: summary rows, seed groups, per-job files, PGN-attack folders
  sweeps    jobs and running them (train, evaluate, C&W at epoch snapshots)
  render    the Markdown report and its figures

``python -m tf_pgn.experiments`` is the command line over them. The rest of tf_pgn (the library)
never imports the study.
"""
