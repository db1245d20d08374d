"""Fréchet distance between Gaussians, the statistic behind FID and FVD.

d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)).

tr((S1 S2)^(1/2)) is computed as the sum of square roots of the eigenvalues of the symmetric PSD matrix
S1^(1/2) S2 S1^(1/2), which has the same eigenvalues as S1 S2 (the TF-GAN formulation). It equals the trace of
scipy.linalg.sqrtm(S1 @ S2) but uses two symmetric eigendecompositions: 4-20x faster at FVD's 1024
dimensions, and with no complex round-off to discard when, as usual, there are fewer videos than dimensions
and the covariances are singular (tiny negative eigenvalues from round-off are clipped to 0).

With fewer samples than dimensions (small evaluation sets) there is an exact shortcut in sample space: with
S1 = R1^T R1 and S2 = R2^T R2 (R = centred samples / sqrt(N - 1)), the non-zero eigenvalues of S1 S2 are the
squared singular values of R1 R2^T, so tr((S1 S2)^(1/2)) is the nuclear norm of that small N1 x N2 matrix.
"""

from dataclasses import dataclass

import numpy as np
from scipy import linalg


@dataclass(frozen=True)
class GaussianFit:
    """Mean (D,) and covariance (D, D) of a feature set, and, when fitted from samples, a root of the
    covariance (cov = root.T @ root) for the sample-space shortcut."""

    mean: np.ndarray
    cov: np.ndarray
    root: np.ndarray | None = None  # (N, D): centred samples / sqrt(N - 1)


def gaussian_fit(features: np.ndarray) -> GaussianFit:
    """(N, D) features, N >= 2 -> their mean and unbiased covariance."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"need (N >= 2, D) features to fit a Gaussian, got shape {features.shape}")
    mean = features.mean(axis=0)
    root = (features - mean) / np.sqrt(len(features) - 1)  # (N, D)
    return GaussianFit(mean, root.T @ root, root)


def _psd_sqrt(m: np.ndarray) -> np.ndarray:
    """Square root of a symmetric PSD matrix (negative round-off eigenvalues clipped to 0)."""
    values, vectors = linalg.eigh(m)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def trace_sqrt_product(cov_a: np.ndarray, cov_b: np.ndarray) -> float:
    """tr((A B)^(1/2)) for covariances A, B."""
    root_a = _psd_sqrt(cov_a)
    middle = root_a @ cov_b @ root_a
    middle = 0.5 * (middle + middle.T)  # symmetric up to round-off; make it exactly so for eigvalsh
    return float(np.sum(np.sqrt(np.clip(linalg.eigvalsh(middle), 0.0, None))))


def frechet_distance(a: GaussianFit, b: GaussianFit) -> float:
    """Squared Fréchet (2-Wasserstein) distance between N(a.mean, a.cov) and N(b.mean, b.cov)."""
    if a.mean.shape != b.mean.shape or a.cov.shape != b.cov.shape:
        raise ValueError(f"Gaussians differ in dimension: {a.mean.shape} vs {b.mean.shape}")
    diff = a.mean - b.mean
    if a.root is not None and b.root is not None and len(a.root) + len(b.root) <= len(a.mean):
        cross = np.linalg.svd(a.root @ b.root.T, compute_uv=False).sum()  # nuclear norm of (N1, N2)
    else:
        cross = trace_sqrt_product(a.cov, b.cov)
    return float(diff @ diff + np.trace(a.cov) + np.trace(b.cov) - 2.0 * cross)
