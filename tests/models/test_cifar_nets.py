"""CIFAR-style ResNet/VGG/DenseNet: known parameter counts, feature sizes, local maps, 1-channel inputs."""

import pytest
import torch
from torch import nn

from robustmi.models import Classifier, create_model

# Parameter counts of the common CIFAR-10 implementations of these nets (3x3 stem, no max-pool, linear head;
# VGG16 here has bias-free convs, which are followed by BN: 14,728,266 - 4,224 conv biases).
KNOWN = {
    "resnet18": (11_173_962, 512),
    "resnet50": (23_520_842, 2048),
    "vgg16": (14_724_042, 512),
    "densenet121": (6_956_298, 1024),
}


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_full_width_parameter_count_and_feature_dim(name):
    model = create_model(name)
    count, dim = KNOWN[name]
    assert sum(p.numel() for p in model.parameters()) == count
    assert model.feature_dim == dim and model.encoder.feature_dim == dim
    assert isinstance(model, Classifier) and model.head[0].in_features == dim


def test_resnet18_layout():
    encoder = create_model("resnet18").encoder
    assert encoder.stem[0].kernel_size == (3, 3) and encoder.stem[0].stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in encoder.modules())
    assert [len(s) for s in (encoder.layer1, encoder.layer2, encoder.layer3, encoder.layer4)] == [2, 2, 2, 2]
    depths = create_model("resnet50").encoder
    assert [len(s) for s in (depths.layer1, depths.layer2, depths.layer3, depths.layer4)] == [3, 4, 6, 3]


def test_vgg16_has_13_bn_convs():
    convs = [m for m in create_model("vgg16", width=0.125).modules() if isinstance(m, nn.Conv2d)]
    bns = [m for m in create_model("vgg16", width=0.125).modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(convs) == 13 and len(bns) == 13


def test_densenet121_growth_and_blocks():
    encoder = create_model("densenet121").encoder
    dense_blocks = [m for m in encoder.blocks if type(m) is nn.Sequential]  # transitions are a subclass
    assert [len(b) for b in dense_blocks] == [6, 12, 24, 16]
    assert encoder.stem.out_channels == 64 and dense_blocks[0][0].conv2.out_channels == 32


@pytest.mark.parametrize(
    "name, local_28, local_32",
    [("resnet18", 4, 4), ("vgg16", 1, 1), ("densenet121", 3, 4)],
)
def test_local_map_sizes(name, local_28, local_32):
    model = create_model(name, width=0.125, in_chans=1).eval()
    assert model.forward_local(torch.rand(2, 1, 28, 28)).shape[-1] == local_28
    assert model.forward_local(torch.rand(2, 1, 32, 32)).shape[-1] == local_32


def test_width_scales_features():
    assert create_model("resnet18", width=0.25).feature_dim == 128
    assert create_model("densenet121", width=0.25).feature_dim == 256


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(KNOWN))
def test_full_width_forward_and_gradient(name):
    model = create_model(name, in_chans=1, input_size=28, num_classes=10)
    x = torch.rand(2, 1, 28, 28, requires_grad=True)
    out = model(x)
    assert out.shape == (2, 10)
    out.sum().backward()
    assert x.grad.abs().sum() > 0
    assert model.eval().forward_features(torch.rand(2, 1, 32, 32)).shape == (2, KNOWN[name][1])
