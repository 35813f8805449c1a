"""Tools that work with runs and run directories, one per module.

- ``lr_find``: exponential learning-rate sweep with a suggestion (also behind ``optim.lr = "auto"``).
- ``cross_validation``: stratified K-fold, one run directory per fold, mean ± std, fold ensemble.
- ``search``: hyperparameter search on Optuna (samplers, pruners, SQLite/journal/PostgreSQL storage).
- ``compare``: config, metric and doctor-finding differences between run directories (text and HTML).
- ``batch_size``: the largest batch that fits in GPU memory.
- ``predict``, ``export``: predictions from a run directory, and exported models.
"""
