"""Critics: pair layout against a plain loop, image-critic architecture and shapes, registry contract."""

from __future__ import annotations

import pytest
import torch

from robustmi.errors import ConfigError
from robustmi.mi import ConcatCritic, ImageCritic, SeparableCritic, create_critic, list_critics
from robustmi.mi.image_critic import ResidualBlock1x1, conv_branch


def test_separable_critic_scores_every_pair_like_a_loop():
    torch.manual_seed(0)
    critic = SeparableCritic(6, 3, hidden=16, embed=8)
    x, z = torch.randn(5, 6), torch.randn(5, 3)
    scores = critic(x, z)
    loop = torch.tensor([[float(critic.f(x[i]) @ critic.g(z[j])) for j in range(5)] for i in range(5)])
    assert scores.shape == (5, 5)
    torch.testing.assert_close(scores, loop, atol=1e-5, rtol=1e-5)


def test_quadratic_forms_add_a_term_of_each_variable_alone():
    """T(x_i, z_j) = f(x_i) . g(z_j) + u(x_i) + v(z_j): zero at initialisation, a quadratic form once set,
    and (with the linear path and the offset) exempt from weight decay."""
    torch.manual_seed(0)
    critic = SeparableCritic(3, 2, hidden=8, embed=4, layers=1, linear=True, quadratic=True)
    x, z = torch.randn(5, 3), torch.randn(5, 2)
    assert torch.equal(critic(x, z), torch.zeros(5, 5))
    with torch.no_grad():
        critic.x_quadratic.right.weight.copy_(critic.x_quadratic.left.weight)  # u(x) = |L x|^2
        critic.z_quadratic.right.weight.copy_(-critic.z_quadratic.left.weight)  # v(z) = -|L' z|^2
    u = (critic.x_quadratic.left(x) ** 2).sum(1)  # (5,)
    v = -(critic.z_quadratic.left(z) ** 2).sum(1)  # (5,)
    torch.testing.assert_close(critic(x, z), u[:, None] + v[None, :])
    decayed, free, offset = critic.param_groups(1.0, lr=1e-3)
    assert {id(p) for p in critic.x_quadratic.parameters()} <= {id(p) for p in free["params"]}
    assert decayed["weight_decay"] == 1.0 and free["weight_decay"] == 0.0 and offset["weight_decay"] == 0.0
    assert offset["params"] == [critic.offset] and offset["lr"] == pytest.approx(0.1)  # 100 x, see the class


def test_concat_critic_scores_every_pair_like_a_loop():
    torch.manual_seed(0)
    critic = ConcatCritic(4, 2, hidden=16)
    x, z = torch.randn(3, 4), torch.randn(3, 2)
    loop = torch.tensor([[float(critic.net(torch.cat([x[i], z[j]]))) for j in range(3)] for i in range(3)])
    torch.testing.assert_close(critic(x, z), loop, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "in_chans, size, num_convs, locations", [(1, 28, 3, 9), (1, 28, 2, 49), (3, 32, 3, 16)]
)
def test_image_critic_per_location_scores(in_chans, size, num_convs, locations):
    """Scores (B, B, L), L = locations of the conv map (MNIST: 3x3 after 3 convs, 7x7 after 2; CIFAR: 4x4)."""
    torch.manual_seed(0)
    critic = ImageCritic(in_chans, 10, num_convs=num_convs, width=32)
    x, z = torch.rand(4, in_chans, size, size), torch.randn(4, 10)
    scores = critic(x, z)
    assert scores.shape == (4, 4, locations)
    ex, ez = critic.embed_x(x), critic.embed_z(z)  # (B, E, L), (B, E)
    assert ex.shape == (4, 32, locations) and ez.shape == (4, 32)
    torch.testing.assert_close(scores[1, 2, 5], ex[1, :, 5] @ ez[2] / 32**0.5)  # scaled by sqrt(width)


def test_image_critic_follows_the_paper_architecture():
    """Three 4x4 stride-2 convs 64/128/256 + BN + ReLU, 1x1 residual blocks of the given width + LayerNorm."""
    critic = ImageCritic(1, 64)  # paper defaults: num_convs=3, width=2048
    convs = [m for m in critic.convs if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs] == [
        (64, (4, 4), (2, 2), (1, 1)), (128, (4, 4), (2, 2), (1, 1)), (256, (4, 4), (2, 2), (1, 1))
    ]
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in critic.convs) == 3
    assert critic.x_block.norm.normalized_shape == (2048,)
    assert critic.z_block.main[0].in_channels == 64 and critic.z_block.shortcut.out_channels == 2048
    _, chans = conv_branch(3, 2)
    assert chans == 128  # the authors' two-conv variant


def test_residual_block_identity_shortcut_and_layernorm():
    block = ResidualBlock1x1(3, 8, identity_init=True)
    weight = block.shortcut.weight.view(8, 3)
    torch.testing.assert_close(weight, torch.eye(8, 3))
    y = block(torch.randn(2, 3, 4, 4))
    assert y.shape == (2, 8, 4, 4)
    torch.testing.assert_close(y.mean(dim=1), torch.zeros(2, 4, 4), atol=1e-5, rtol=0)  # LN over channels
    wide_in = ResidualBlock1x1(8, 3, identity_init=True)  # shapes do not allow an identity: default init
    assert not torch.equal(wide_in.shortcut.weight.view(3, 8), torch.eye(3, 8))


def _conv_layout(block: ResidualBlock1x1, x: torch.Tensor) -> torch.Tensor:
    """The block's math written as convolutions on (B, C, h, w) maps: the reference for its row layout."""
    y = block.main(x) + block.shortcut(x)
    return block.norm(y.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


@pytest.mark.parametrize("shape", [(6, 5, 4, 3), (6, 5, 1, 1)])  # an image map; z as a 1x1 map
@pytest.mark.parametrize("train", [True, False])
def test_residual_block_rows_match_the_conv_layout(shape, train):
    """Rows per location are a layout, not a model change: outputs, input and parameter gradients and the
    BatchNorm running statistics equal the conv layout's, in training and in eval mode."""
    torch.manual_seed(0)
    rows, convs = ResidualBlock1x1(5, 12), ResidualBlock1x1(5, 12)
    convs.load_state_dict(rows.state_dict())
    rows.train(train), convs.train(train)
    x = torch.randn(*shape)
    weights = torch.randn(6, 12, *shape[2:])
    outputs, grads = [], []
    for block, forward in ((rows, rows), (convs, lambda t: _conv_layout(convs, t))):
        xg = x.clone().requires_grad_(True)
        out = forward(xg)
        (out * weights).sum().backward()
        outputs.append(out)
        norm = block.main[1]  # the BatchNorm: its running statistics must move alike
        grads.append([xg.grad, norm.running_mean, norm.running_var] + [p.grad for p in block.parameters()])
    torch.testing.assert_close(outputs[0], outputs[1], atol=1e-5, rtol=1e-5)
    for mine, reference in zip(*grads, strict=True):
        torch.testing.assert_close(mine, reference, atol=1e-5, rtol=1e-5)
    assert outputs[0].flatten(2).data_ptr() == outputs[0].data_ptr()  # flattening locations is a view


def test_identity_z_branch_scores_are_z_times_a_projection_of_x():
    """Scalar feature (paper S Table 2): z is its own embedding, x-locations are projected to one channel."""
    torch.manual_seed(0)
    critic = ImageCritic(1, 1, num_convs=2, width=16, z_branch="identity")
    x, z = torch.rand(3, 1, 28, 28), torch.randn(3, 1)
    scores = critic(x, z)  # (3, 3, 49)
    projected = critic.embed_x(x)[:, 0, :]  # (B, 1, L) -> (B, L)
    torch.testing.assert_close(scores, projected[:, None, :] * z[None, :, 0, None])


def test_image_critic_normalises_inputs_with_its_mean_and_std():
    torch.manual_seed(0)
    a = ImageCritic(3, 4, width=8, mean=(0.1, 0.2, 0.3), std=(0.5, 0.5, 0.25))
    torch.manual_seed(0)
    b = ImageCritic(3, 4, width=8, mean=0.0, std=1.0)
    a.eval(), b.eval()  # BatchNorm running statistics: both critics compute the same function of their input
    x, z = torch.rand(2, 3, 32, 32), torch.randn(2, 4)
    mean, std = torch.tensor([0.1, 0.2, 0.3]), torch.tensor([0.5, 0.5, 0.25])
    normalised = (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    torch.testing.assert_close(a(x, z), b(normalised, z))


def test_gradient_reaches_the_input_through_the_x_branch():
    critic = ImageCritic(1, 4, width=8)
    x = torch.rand(3, 1, 28, 28, requires_grad=True)
    critic(x, torch.randn(3, 4)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", list_critics())
def test_every_registered_critic_scores_all_pairs(name):
    """Contract over the registry: forward(x, z) gives (B, B) or (B, B, L) finite scores."""
    kwargs = {"in_chans": 1, "z_dim": 5, "width": 16} if name == "image" else {"x_dim": 7, "z_dim": 5}
    critic = create_critic(name, **kwargs, hidden=None)  # None values are dropped
    x = torch.rand(4, 1, 28, 28) if name == "image" else torch.randn(4, 7)
    scores = critic(x, torch.randn(4, 5))
    assert scores.shape[:2] == (4, 4) and torch.isfinite(scores).all()


def test_create_critic_errors_name_the_fix():
    with pytest.raises(ConfigError, match="separable, concat, image"):
        create_critic("bilinear", x_dim=2, z_dim=2)
    with pytest.raises(ConfigError, match="does not take depth"):
        create_critic("separable", x_dim=2, z_dim=2, depth=3)
    with pytest.raises(ConfigError, match="needs z_dim"):
        create_critic("separable", x_dim=2)


def test_critic_input_errors():
    with pytest.raises(ConfigError, match="batch sizes differ"):
        SeparableCritic(2, 2)(torch.randn(3, 2), torch.randn(4, 2))
    with pytest.raises(ConfigError, match=r"expects x \(B, 2\)"):
        SeparableCritic(2, 2)(torch.randn(3, 5), torch.randn(3, 2))
    critic = ImageCritic(1, 3, width=8)
    with pytest.raises(ConfigError, match="images"):
        critic(torch.rand(2, 3, 28, 28), torch.randn(2, 3))
    with pytest.raises(ConfigError, match="expects z"):
        critic(torch.rand(2, 1, 28, 28), torch.randn(2, 4))
    with pytest.raises(ConfigError, match="batch sizes differ"):
        critic(torch.rand(2, 1, 28, 28), torch.randn(3, 3))
    with pytest.raises(ConfigError, match="z_branch"):
        ImageCritic(1, 3, z_branch="mlp2")
    with pytest.raises(ConfigError, match="one per channel"):
        ImageCritic(3, 3, mean=(0.5, 0.5))
    with pytest.raises(ConfigError, match="positive"):
        ImageCritic(1, 3, std=0.0)
