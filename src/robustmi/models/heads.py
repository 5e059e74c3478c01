"""Downstream heads and the ``Classifier(encoder, head)`` composition (paper S Table 2; PAPER.md §2.3).

- linear head: ``Linear(in_dim -> num_classes)``.
- MLP head:    ``Linear(in_dim -> 200) -> Dropout(0.1) -> BatchNorm1d -> ReLU -> Linear(200 -> num_classes)``.

A ``Classifier`` is ``head(encoder(x))``; every registered classifier is one, so probes, RV and saliency reach
the representation as ``model.forward_features`` / ``model.encoder`` without branching on the architecture.
"""

from __future__ import annotations

from torch import Tensor, nn

from robustmi.errors import ModelError

HEAD_KINDS = ("linear", "mlp")


class Head(nn.Sequential):
    """A downstream head ``(B, in_dim) -> (B, num_classes)``, built by :func:`create_head`.

    Attributes:
        kind: ``"linear"`` or ``"mlp"``.
        in_dim, num_classes, hidden, dropout: constructor arguments (``hidden``, ``dropout``: MLP only).
    """

    def __init__(
        self, kind: str, in_dim: int, num_classes: int, hidden: int = 200, dropout: float = 0.1
    ) -> None:
        if kind == "linear":
            layers: list[nn.Module] = [nn.Linear(in_dim, num_classes)]
        elif kind == "mlp":
            layers = [
                nn.Linear(in_dim, hidden),
                nn.Dropout(dropout),
                nn.BatchNorm1d(hidden),
                nn.ReLU(),
                nn.Linear(hidden, num_classes),
            ]
        else:
            raise ModelError(f"unknown head {kind!r}; choose one of: {', '.join(HEAD_KINDS)}")
        super().__init__(*layers)
        self.kind, self.in_dim, self.num_classes = kind, in_dim, num_classes
        self.hidden, self.dropout = hidden, dropout

    @property
    def head_spec(self) -> dict:
        """JSON-serialisable constructor arguments, used by ``save_model``."""
        return {
            "kind": self.kind,
            "in_dim": self.in_dim,
            "num_classes": self.num_classes,
            "hidden": self.hidden,
            "dropout": self.dropout,
        }


def create_head(kind: str, in_dim: int, num_classes: int, hidden: int = 200, dropout: float = 0.1) -> Head:
    """Build a downstream head.

    Args:
        kind: ``"linear"`` or ``"mlp"``.
        in_dim: representation size D.
        num_classes: number of outputs.
        hidden: MLP hidden width (paper: 200).
        dropout: MLP dropout probability (paper code: 0.1).

    Returns:
        A :class:`Head` mapping ``(B, in_dim) -> (B, num_classes)``.

    Raises:
        ModelError: unknown kind.
    """
    return Head(kind, int(in_dim), int(num_classes), int(hidden), float(dropout))


def _out_features(head: nn.Module) -> int:
    """Number of classes of a head: its ``num_classes`` or the ``out_features`` of its last Linear."""
    if isinstance(getattr(head, "num_classes", None), int):
        return head.num_classes
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ModelError("cannot tell the head's number of classes; give the head a num_classes attribute")
    return linears[-1].out_features


class Classifier(nn.Module):
    """``head(encoder(x))``: an encoder ``(B, C, H, W) -> (B, D)`` plus a head ``(B, D) -> (B, K)``.

    Args:
        encoder: any module whose ``forward(x)`` is the representation (a registry encoder, a user's
            own encoder, a ``LayerTap``).
        head: a :func:`create_head` head or any module mapping ``(B, D) -> (B, K)``.

    Attributes:
        encoder, head: the two parts.
        num_classes: K.
        feature_dim: D (``encoder.feature_dim``, else the head's ``in_dim``, else None).
    """

    def __init__(self, encoder: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.num_classes = _out_features(head)
        self.feature_dim = getattr(encoder, "feature_dim", None) or getattr(head, "in_dim", None)
        self.in_chans = getattr(encoder, "in_chans", None)
        self.input_size = getattr(encoder, "input_size", None)

    def forward_features(self, x: Tensor) -> Tensor:
        """(B, C, H, W) in [0, 1] -> representation (B, D). Calls ``encoder(x)`` so its hooks fire."""
        return self.encoder(x)

    def forward_head(self, z: Tensor) -> Tensor:
        """(B, D) -> logits (B, K)."""
        return self.head(z)

    def forward_local(self, x: Tensor) -> Tensor:
        """The encoder's local conv map (B, C', h, w), if the encoder has one."""
        if not hasattr(self.encoder, "forward_local"):
            raise ModelError(
                f"encoder {type(self.encoder).__name__} has no forward_local (local feature map)"
            )
        return self.encoder.forward_local(x)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) in [0, 1] -> logits (B, K)."""
        return self.forward_head(self.forward_features(x))
