"""Regularizers that pull a CNN's representation toward a target similarity."""

from ml.regularize.similarity import (
    SimilarityHead,
    all_pairs,
    centred_cosine,
    kept_taps,
    paper_pairs,
    similarity_loss,
)

__all__ = ["SimilarityHead", "all_pairs", "centred_cosine", "kept_taps", "paper_pairs",
           "similarity_loss"]
