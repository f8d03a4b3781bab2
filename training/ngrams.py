"""Fit the embedded model's n-gram voice (`inference/ngrams.py`) on the training texts.

A multinomial logistic regression (L-BFGS, L2 penalty `1/c`) over the n-grams found in at least
`min_df` training texts. Deterministic: the same texts give the same coefficients.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from inference.ngrams import NgramFeaturizer, NgramModel, build_vocabulary

__all__ = ["fit_ngram_model"]


def fit_ngram_model(texts: Sequence[str], targets: Sequence[int], *, min_df: int = 2, c: float = 5.0) -> NgramModel:
    """Return the n-gram model fitted on `texts` with class indices `targets`."""
    from scipy.sparse import csr_matrix
    from sklearn.linear_model import LogisticRegression

    featurizer = NgramFeaturizer()
    vocabulary, idf = build_vocabulary(featurizer, texts, min_df)
    classes = int(max(targets)) + 1
    unfitted = NgramModel(vocabulary, idf, np.zeros((classes, len(vocabulary))), np.zeros(classes), featurizer)
    pointers, columns, values = unfitted.features(texts)
    matrix = csr_matrix((values, columns, pointers), shape=(len(texts), len(vocabulary)))
    regression = LogisticRegression(C=c, max_iter=5000).fit(matrix, np.asarray(targets))
    if list(regression.classes_) != list(range(classes)):
        raise ValueError(f"the training texts lack a class: saw {list(regression.classes_)}")
    return NgramModel(vocabulary, idf, regression.coef_, regression.intercept_, featurizer)
