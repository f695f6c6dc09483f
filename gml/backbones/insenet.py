"""InSE-Net style backbone: Inception blocks + squeeze-and-excitation over gammatone views.

Input is ``[B, 4, 2, bands, T]`` (views L, R, M, S × reference/coded × bands × frames) for any
``T``; output is a ``[B, out_features]`` feature vector that a distribution head projects to
its parameters. What is from the papers and what is our choice is written down in
``docs/architecture.md``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

#: Named sizes. "paper" is sized to the GML paper's 15.25 M parameters: ``InSENet()`` (shared
#: view branch) plus a 2-output ``LogisticHead`` has 15,283,940 (+0.22 %); with
#: ``shared_views=False`` 24,659,654. The last hidden width 500 makes the 1 → 2 output widening
#: add 501 parameters (0.0033 %, as the paper says). Where the parameters sit and why:
#: docs/architecture.md. "small" is the demo's; "tiny" keeps tests fast.
PRESETS: dict[str, dict] = {
    "paper": {
        "channels": (64, 128, 384, 1024),
        "hidden": (720, 500),
        "dropout": 0.1,
        "stem_stride": 1,
    },
    # The paper's widths and parameter count with the stem striding 2 in time only: the
    # blocks after it see 40 ms frame steps instead of 20 ms, which halves their cost. The
    # 80 ms frames overlap 4x at a 20 ms hop, and the stem's 3-frame kernel still reads every
    # frame, so no frame is skipped (docs/architecture.md).
    "paper-fast": {
        "channels": (64, 128, 384, 1024),
        "hidden": (720, 500),
        "dropout": 0.1,
        "stem_stride": (1, 2),
    },
    "small": {"channels": (16, 32, 48), "hidden": (128, 64), "dropout": 0.0, "stem_stride": 2},
    "tiny": {"channels": (4, 8), "hidden": (16,), "dropout": 0.0, "stem_stride": 2},
}


class SqueezeExcitation(nn.Module):
    """Channel re-weighting from globally pooled statistics (Hu et al., 2018).

    Shape:
        x: ``[N, C, F, T]`` → same shape.
    """

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        inner = max(channels // reduction, 4)
        self.fc = nn.Sequential(
            nn.Linear(channels, inner), nn.ReLU(inplace=True), nn.Linear(inner, channels)
        )

    def forward(self, x: Tensor) -> Tensor:
        return x * self.weights(x)[:, :, None, None]

    def weights(self, x: Tensor) -> Tensor:
        """The channel weights, in (0, 1).

        Shape:
            x: ``[N, C, F, T]`` → ``[N, C]``.
        """
        return torch.sigmoid(self.fc(x.mean(dim=(2, 3))))


class MaxPool3x3(nn.MaxPool2d):
    """3×3 max-pooling, stride 1, padding 1 (the Inception pool path; for inference on CPU,
    :func:`gml.inference.cpu_trunk` computes it as two separable 3-wide maxima).

    Shape:
        x: ``[N, C, F, T]`` → same shape.
    """

    def __init__(self) -> None:
        super().__init__(3, stride=1, padding=1)


def _pair(stride: int | Sequence[int]) -> tuple[int, int]:
    """``2`` → ``(2, 2)``; ``(1, 2)`` stays: a stride in bands and in frames."""
    pair = (stride, stride) if isinstance(stride, int) else tuple(int(s) for s in stride)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"stem_stride must be a positive int or two of them, got {stride!r}")
    return pair


def _conv_bn(c_in: int, c_out: int, kernel: tuple[int, int]) -> nn.Sequential:
    pad = (kernel[0] // 2, kernel[1] // 2)
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, padding=pad, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class InceptionSE(nn.Module):
    """Four parallel paths (1×1; 1×1→3×3; 1×1→3×3→3×3 i.e. a 5×5 field; max-pool→1×1), concat,
    then squeeze-excitation.

    Shape:
        x: ``[N, c_in, F, T]`` → ``[N, c_out, F, T]``.
    """

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        q = max(c_out // 4, 1)
        widths = (c_out - 3 * q, q, q, q)  # sums to c_out exactly
        self.p1 = _conv_bn(c_in, widths[0], (1, 1))
        self.p3 = nn.Sequential(
            _conv_bn(c_in, widths[1], (1, 1)), _conv_bn(widths[1], widths[1], (3, 3))
        )
        self.p5 = nn.Sequential(
            _conv_bn(c_in, widths[2], (1, 1)),
            _conv_bn(widths[2], widths[2], (3, 3)),
            _conv_bn(widths[2], widths[2], (3, 3)),
        )
        self.pp = nn.Sequential(MaxPool3x3(), _conv_bn(c_in, widths[3], (1, 1)))
        self.se = SqueezeExcitation(c_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.se(self.paths(x))

    def paths(self, x: Tensor) -> Tensor:
        """The four paths' outputs, concatenated (before the squeeze-excitation).

        Shape:
            x: ``[N, c_in, F, T]`` → ``[N, c_out, F, T]``.
        """
        return torch.cat([self.p1(x), self.p3(x), self.p5(x), self.pp(x)], dim=1)


class ViewBranch(nn.Module):
    """Convolutional trunk for one view: stem, Inception-SE blocks with 2×2 pooling between.

    For inference on CPU, :func:`gml.inference.cpu_trunk` returns a copy that computes the
    same function with less work (:class:`~gml.backbones.insenet_cpu.CpuViewBranch`).

    Shape:
        x: ``[N, 3, F, T]`` (reference, coded, difference) → ``[N, 2·C_last, F / 2^k]`` after
        pooling over time with mean and max (so any ``T`` works).
    """

    def __init__(
        self,
        channels: Sequence[int],
        in_channels: int = 3,
        stem_stride: int | tuple[int, int] = 1,
    ):
        super().__init__()
        stem = _conv_bn(in_channels, channels[0], (3, 3))
        stem[0].stride = _pair(stem_stride)
        layers: list[nn.Module] = [nn.BatchNorm2d(in_channels), stem]
        c = channels[0]
        for c_out in channels:
            layers += [InceptionSE(c, c_out), nn.MaxPool2d(2, ceil_mode=True)]
            c = c_out
        self.trunk = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type == "cpu":
            # oneDNN's convolutions and pooling are much faster on channels-last tensors on
            # CPU, in training too; the values are the same (a memory layout, not a shortcut)
            x = x.contiguous(memory_format=torch.channels_last)
        return time_pooled(self.trunk(x))


def time_pooled(y: Tensor) -> Tensor:
    """Per band, the mean and the maximum over time, concatenated along channels.

    Shape:
        y: ``[N, C, F, T]`` → ``[N, 2·C, F]``.
    """
    return torch.cat([y.mean(dim=3), y.amax(dim=3)], dim=1)


class InSENet(nn.Module):
    """Inception + squeeze-excitation CNN over the L, R, M, S reference/coded spectrograms.

    Each view's reference, coded and their difference form a 3-channel image
    ``[bands × frames]``; a view branch turns it into a per-band descriptor pooled over time;
    the four descriptors are concatenated and fully connected layers reduce them to
    ``out_features`` (the last hidden layer, which the head projects to its parameters).

    Args:
        preset: Named size from :data:`PRESETS` (``"paper"``: the GML paper's 15.25 M with a
            2-output head; ``"small"``, ``"tiny"``); the other arguments override single fields
            of it.
        channels: Output channels of each Inception-SE block (each followed by 2×2 pooling).
        hidden: Widths of the fully connected layers; the last is ``out_features``.
        shared_views: One branch shared by the four views (True) or one branch per view
            (only the branch is duplicated; "paper" preset with a 2-output head: 15.28 M
            shared, 24.66 M separate).
        dropout: Dropout before each fully connected layer.
        stem_stride: Stride of the stem convolution: one number for bands and frames, or a
            pair ``(bands, frames)``. 2 quarters the cost of everything after it (the small
            presets use it); ``(1, 2)`` halves it and keeps the parameter count (the
            ``"paper-fast"`` preset).
        num_bands: Gammatone bands of the input (32 for the ViSQOL frontend).

    Shape:
        x: ``[B, 4, 2, num_bands, T]`` → ``[B, out_features]``.
    """

    num_views = 4

    def __init__(
        self,
        preset: str = "paper",
        channels: Sequence[int] | None = None,
        hidden: Sequence[int] | None = None,
        shared_views: bool = True,
        dropout: float | None = None,
        stem_stride: int | tuple[int, int] | None = None,
        num_bands: int = 32,
    ):
        super().__init__()
        if preset not in PRESETS:
            raise ValueError(f"unknown InSENet preset {preset!r}; known: {', '.join(PRESETS)}")
        cfg = PRESETS[preset]
        channels = tuple(channels if channels is not None else cfg["channels"])
        hidden = tuple(hidden if hidden is not None else cfg["hidden"])
        dropout = cfg["dropout"] if dropout is None else float(dropout)
        stem_stride = _pair(cfg["stem_stride"] if stem_stride is None else stem_stride)
        if not channels or not hidden:
            raise ValueError("InSENet needs at least one block channel count and one hidden width")
        self.shared_views = bool(shared_views)
        self.num_bands = int(num_bands)
        n_branches = 1 if self.shared_views else self.num_views
        self.branches = nn.ModuleList(
            ViewBranch(channels, stem_stride=stem_stride) for _ in range(n_branches)
        )
        bands_out = -(-self.num_bands // stem_stride[0])
        for _ in channels:
            bands_out = -(-bands_out // 2)  # ceil_mode pooling
        width = self.num_views * 2 * channels[-1] * bands_out
        fc: list[nn.Module] = []
        for h in hidden:
            fc += [nn.Dropout(dropout), nn.Linear(width, h), nn.ReLU(inplace=True)]
            width = h
        self.fc = nn.Sequential(*fc)
        self.out_features = width

    def forward(self, x: Tensor) -> Tensor:
        if (
            x.dim() != 5
            or x.shape[1] != self.num_views
            or x.shape[2] != 2
            or x.shape[3] != self.num_bands
        ):
            raise ValueError(
                f"InSENet expects [B, 4, 2, {self.num_bands}, T] features, got {list(x.shape)}"
            )
        b = x.shape[0]
        ref, cod = x[:, :, 0], x[:, :, 1]
        img = torch.stack([ref, cod, ref - cod], dim=2)  # [B, 4, 3, F, T]
        if self.shared_views:
            desc = self.branches[0](img.flatten(0, 1)).reshape(b, -1)
        else:
            desc = torch.cat(
                [br(img[:, v]).flatten(1) for v, br in enumerate(self.branches)], dim=1
            )
        return self.fc(desc)
