"""robustmi.saliency: what standard and robust representations look at (paper §4.3, Fig. 4-6).

- :mod:`~robustmi.saliency.targets`: what is differentiated: the DIM / MI loss of an encoder (a batch
  objective), a classifier's cross-entropy or true-class logit, or one neuron's spatially averaged activation.
- :mod:`~robustmi.saliency.methods`: plain input gradient, SmoothGrad and Integrated Gradients
  (:func:`compute_saliency`), written here; no captum.
- :mod:`~robustmi.saliency.alignment`: how image-aligned a map is (rank correlation of ``|s|`` with the
  image's Sobel edge map; fraction of ``|s|`` on the foreground), with caveats.
- :mod:`~robustmi.saliency.plot`: the PNG grid (rows = samples, columns = input then models).
- :mod:`~robustmi.saliency.report`: :func:`saliency_report`, the library side of ``robustmi saliency``.

Example:
    >>> target = classifier_target(model, labels, "ce")  # doctest: +SKIP
    >>> maps = compute_saliency(target, images, "ig", ig_steps=32)  # (B, C, H, W)  # doctest: +SKIP
    >>> alignment_scores(maps, images)["edge_spearman"]  # doctest: +SKIP
"""

from robustmi.saliency.alignment import (
    alignment_scores,
    edge_correlation,
    foreground_fraction,
    foreground_mass,
    saliency_magnitude,
    sobel_edges,
)
from robustmi.saliency.methods import (
    METHODS,
    compute_saliency,
    input_gradient,
    integrated_gradients,
    smoothgrad,
)
from robustmi.saliency.plot import SCALES, save_grid
from robustmi.saliency.report import (
    ALIGNMENT_METRIC,
    CRITIC_FILE,
    RESERVED_NAMES,
    SaliencyConfig,
    build_target,
    pick_samples,
    saliency_report,
)
from robustmi.saliency.targets import (
    TARGETS,
    SaliencyTarget,
    classifier_target,
    is_classifier,
    mi_target,
    neuron_target,
)

__all__ = [
    "ALIGNMENT_METRIC",
    "CRITIC_FILE",
    "METHODS",
    "RESERVED_NAMES",
    "SCALES",
    "TARGETS",
    "SaliencyConfig",
    "SaliencyTarget",
    "alignment_scores",
    "build_target",
    "classifier_target",
    "compute_saliency",
    "edge_correlation",
    "foreground_fraction",
    "foreground_mass",
    "input_gradient",
    "integrated_gradients",
    "is_classifier",
    "mi_target",
    "neuron_target",
    "pick_samples",
    "saliency_magnitude",
    "save_grid",
    "saliency_report",
    "smoothgrad",
    "sobel_edges",
]
