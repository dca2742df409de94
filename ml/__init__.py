"""neuroreg's science: pure PyTorch/NumPy, no web, SQL or queue imports.

Usable from a notebook: ``from ml.train import ClassifierConfig, train_classifier``.
"""
