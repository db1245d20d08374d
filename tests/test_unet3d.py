"""The stage-2 3D U-Net: shapes for any T and batch, config round trip, gradients, and that each condition
(reference latent, global music, per-frame rhythm, style, classifier-free drop) reaches the output as intended."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from dance_any_beat.models.unet3d import UNet3D, UNet3DConfig, count_parameters

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_config(**overrides) -> UNet3DConfig:
    """2 levels, 8/16 channels: a forward pass in milliseconds."""
    base = dict(
        ref_channels=4,
        base_channels=8,
        channel_mults=(1, 2),
        num_res_blocks=1,
        spatial_attention=(False, True),
        temporal_attention=(True, True),
        attention_heads=2,
        attention_head_dim=8,
        max_relative_distance=4,
        music_global_dim=6,
        music_frame_dim=5,
        num_styles=10,
        cond_dim=32,
        norm_groups=4,
    )
    base.update(overrides)
    return UNet3DConfig(**base)


def make_inputs(cfg: UNet3DConfig, b: int = 2, t: int = 4, hw: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return dict(
        x=torch.randn(b, cfg.in_channels, t, hw, hw, generator=g),
        t=torch.randint(0, 1000, (b,), generator=g),
        ref_latent=torch.randn(b, cfg.ref_channels, hw, hw, generator=g),
        music_global=torch.randn(b, cfg.music_global_dim, generator=g),
        music_frames=torch.randn(b, t, cfg.music_frame_dim, generator=g),
        style=torch.randint(0, cfg.num_styles + 1, (b,), generator=g),
    )


def build(cfg: UNet3DConfig, seed: int = 0) -> UNet3D:
    torch.manual_seed(seed)
    return UNet3D(cfg).eval()


class TestConfig:
    def test_round_trips_through_json(self):
        cfg = tiny_config(temporal_position="sinusoidal", dropout=0.1)
        back = UNet3DConfig(**json.loads(json.dumps(dataclasses.asdict(cfg))))
        assert back == cfg
        assert isinstance(back.channel_mults, tuple)

    def test_default_config_round_trips(self):
        cfg = UNet3DConfig()
        assert UNet3DConfig(**json.loads(json.dumps(dataclasses.asdict(cfg)))) == cfg
        assert cfg.num_frames == 40 and cfg.num_styles == 10 and cfg.p_uncond == 0.1

    def test_cpu_starter_is_small_and_runs_at_32px(self):
        cfg = UNet3DConfig.cpu_starter()
        assert UNet3DConfig(**json.loads(json.dumps(dataclasses.asdict(cfg)))) == cfg
        model = build(cfg)
        assert 1e6 < count_parameters(model) < 3e6
        with torch.no_grad():
            out = model(**make_inputs(cfg, b=1, t=2, hw=32))
        assert out.shape == (1, 3, 2, 32, 32)

    def test_rejects_unknown_temporal_position_listing_valid_ones(self):
        with pytest.raises(ValueError, match="relative, sinusoidal"):
            tiny_config(temporal_position="rotary")

    def test_rejects_attention_flags_of_wrong_length(self):
        with pytest.raises(ValueError, match="one flag per level"):
            tiny_config(spatial_attention=(False, True, True))

    def test_rejects_width_not_divisible_by_groups(self):
        with pytest.raises(ValueError, match="norm_groups"):
            tiny_config(base_channels=6)


class TestUNet3D:
    @pytest.mark.parametrize("b,t", [(1, 1), (1, 7), (3, 4), (2, 12)])
    def test_output_shape_for_any_frames_and_batch(self, b: int, t: int):
        cfg = tiny_config()
        model = build(cfg)
        inputs = make_inputs(cfg, b=b, t=t)
        with torch.no_grad():
            out = model(**inputs)
        assert out.shape == (b, 3, t, 8, 8)
        assert torch.isfinite(out).all()

    @pytest.mark.parametrize("position", ["relative", "sinusoidal"])
    def test_three_levels_at_32px_and_frames_beyond_the_bias_range(self, position: str):
        # T = 11 > 2 * max_relative_distance + 1: offsets beyond the range share a bias
        cfg = tiny_config(
            channel_mults=(1, 1, 2),
            spatial_attention=(False, False, True),
            temporal_attention=(False, True, True),
            temporal_position=position,
        )
        model = build(cfg)
        with torch.no_grad():
            out = model(**make_inputs(cfg, b=1, t=11, hw=32))
        assert out.shape == (1, 3, 11, 32, 32)

    def test_scalar_timestep_broadcasts(self):
        cfg = tiny_config()
        model = build(cfg)
        inputs = make_inputs(cfg)
        with torch.no_grad():
            a = model(**{**inputs, "t": torch.tensor(321)})
            b = model(**{**inputs, "t": torch.tensor([321, 321])})
        torch.testing.assert_close(a, b)

    def test_gradients_reach_every_parameter(self):
        cfg = tiny_config(num_res_blocks=2)
        model = build(cfg).train()
        inputs = make_inputs(cfg, b=4, t=5)
        inputs["style"] = torch.tensor([0, 3, cfg.num_styles, 9])
        drop = torch.tensor([False, True, False, True])
        model(**inputs, drop_music=drop).square().mean().backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
        assert not missing, f"no gradient reached: {missing}"

    def test_gradient_checkpointing_gives_the_same_output_and_gradients(self):
        cfg = tiny_config()
        inputs = make_inputs(cfg)
        grads, outs = [], []
        for ckpt in (False, True):
            model = build(dataclasses.replace(cfg, gradient_checkpointing=ckpt)).train()
            out = model(**inputs)
            out.square().mean().backward()
            outs.append(out.detach())
            grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
        torch.testing.assert_close(outs[0], outs[1])
        torch.testing.assert_close(grads[0], grads[1])

    def test_style_none_means_auto(self):
        cfg = tiny_config()
        model = build(cfg)
        inputs = make_inputs(cfg)
        with torch.no_grad():
            auto = model(**{**inputs, "style": torch.full((2,), cfg.num_styles)})
            none = model(**{**inputs, "style": None})
            other = model(**{**inputs, "style": torch.tensor([1, 2])})
        torch.testing.assert_close(auto, none)
        assert not torch.allclose(auto, other)

    def test_dropped_rows_ignore_their_music_and_leave_other_rows_alone(self):
        cfg = tiny_config()
        model = build(cfg)
        inputs = make_inputs(cfg)
        changed = {**inputs, "music_global": inputs["music_global"] + 1.0, "music_frames": -inputs["music_frames"]}
        drop = torch.tensor([True, False])
        with torch.no_grad():
            a = model(**inputs, drop_music=drop)
            b = model(**changed, drop_music=drop)
            kept = model(**inputs, drop_music=torch.tensor([False, False]))
            no_music = model(**{**inputs, "music_global": None, "music_frames": None})
            all_dropped = model(**inputs, drop_music=torch.tensor([True, True]))
        torch.testing.assert_close(a[0], b[0])  # dropped row: music does not matter
        assert not torch.allclose(a[1], b[1])  # kept row: it does
        torch.testing.assert_close(a[1], kept[1], rtol=1e-5, atol=1e-6)  # rows are independent
        assert not torch.allclose(a[0], kept[0])  # the null embedding differs from the music
        torch.testing.assert_close(no_music, all_dropped)

    def test_reference_latent_matters(self):
        cfg = tiny_config()
        model = build(cfg)
        inputs = make_inputs(cfg)
        with torch.no_grad():
            a = model(**inputs)
            b = model(**{**inputs, "ref_latent": inputs["ref_latent"].flip(-1)})
        assert not torch.allclose(a, b)

    def test_per_frame_features_act_only_on_their_frame_without_temporal_attention(self):
        cfg = tiny_config(temporal_attention=(False, False), mid_attention=False)
        model = build(cfg)
        inputs = make_inputs(cfg, b=1, t=8)
        frames = inputs["music_frames"].clone()
        frames[:, 3] += 2.0
        with torch.no_grad():
            diff = (model(**inputs) - model(**{**inputs, "music_frames": frames})).abs().mean(dim=(0, 1, 3, 4))  # (T,)
        assert diff[3] > 1e-3
        assert torch.all(diff[torch.arange(8) != 3] == 0), f"per-frame change leaked to other frames: {diff}"

    def test_per_frame_features_act_mostly_on_their_frame_with_temporal_attention(self):
        cfg = tiny_config()
        model = build(cfg)
        inputs = make_inputs(cfg, b=1, t=10)
        frames = inputs["music_frames"].clone()
        frames[:, 2] += 2.0
        with torch.no_grad():
            diff = (model(**inputs) - model(**{**inputs, "music_frames": frames})).abs().mean(dim=(0, 1, 3, 4))  # (T,)
        distant = diff[6:].max()
        assert diff[2] > 3 * distant, f"frame 2 changed {diff[2]:.2e}, distant frames up to {distant:.2e}"
        assert distant > 0  # temporal attention does mix frames

    @pytest.mark.parametrize(
        "key,bad,match",
        [
            ("ref_latent", torch.zeros(2, 3, 8, 8), "ref_latent must be"),
            ("music_frames", torch.zeros(2, 3, 5), "music_frames must be"),
            ("style", torch.tensor([0, 11]), "style labels must be in"),
            ("x", torch.zeros(2, 3, 4, 7, 7), "divisible by 2"),
        ],
    )
    def test_bad_inputs_are_named(self, key: str, bad: torch.Tensor, match: str):
        cfg = tiny_config()
        model = build(cfg)
        with pytest.raises(AssertionError, match=match):
            model(**{**make_inputs(cfg), key: bad})

    def test_parameter_count_of_default_config_is_reported(self):
        # not a budget: a guard that the default (GPU) config stays in the tens of millions, not hundreds
        assert 1e6 < count_parameters(UNet3D(UNet3DConfig())) < 1e8
