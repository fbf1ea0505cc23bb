"""Training: ``train.py`` carries out a command's plan (``plan.py``), each run filed in its
results folder (``results.py``, the boundary with scripts/; ``archive.py`` packs folders for
committing). ``cli/`` reads the command line, ``fit/`` trains one job with Lightning,
``members/`` trains seeds, γ and rates of one configuration as one batched job."""
