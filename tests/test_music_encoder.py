"""The music encoder: every part combination, the frozen towers loaded from public checkpoint layouts, the errors.

The pretrained towers are built with random weights and saved in the public files' layouts (LAION-CLAP's
630k-audioset-best.pt, Wav2CLIP.pt), then loaded back through the real loading path; no real weights are needed.
"""

import itertools
import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dance_any_beat.music.beats import RHYTHM_DIM
from dance_any_beat.music.clap_branch import CLIP_SAMPLES, ClapAudioTower
from dance_any_beat.music.encoder import (
    CLAP_SAMPLE_RATE,
    PARTS,
    WAV2CLIP_SAMPLE_RATE,
    MusicEncoder,
    MusicEncoderConfig,
    MusicInputs,
    prepare_audio,
)
from dance_any_beat.music.wav2clip_branch import StftSpectrogram, Wav2ClipTower
from dance_any_beat.weights import MissingWeightsError, WeightsFormatError

B, T = 2, 8
SECONDS = 0.5


def small_config(**kw) -> MusicEncoderConfig:
    base = dict(global_dim=32, frame_dim=16, part_dim=16, adapter_hidden=32, mel_channels=16, mel_blocks=2,
                beats_hidden=16)
    return MusicEncoderConfig(**{**base, **kw})


def audio_batch(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(SECONDS * 44100)) / 44100
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sign(np.sin(2 * np.pi * 4 * t))) / 2
    return (tone + 0.05 * rng.standard_normal((B, len(t)))).astype(np.float32)  # (B, N) at 44.1 kHz


@pytest.fixture(scope="module")
def inputs() -> MusicInputs:
    return prepare_audio(audio_batch(), 44100)  # every rate


@pytest.fixture(scope="module")
def rhythm() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(B, T, RHYTHM_DIM)


# ------------------------------------------------------------------------------ public checkpoint layouts


@pytest.fixture(scope="module")
def clap_original(tmp_path_factory) -> tuple[ClapAudioTower, Path]:
    """A random HTSAT-tiny CLAP saved as 630k-audioset-best.pt is laid out: DDP 'module.' keys, text tower too."""
    torch.manual_seed(0)
    tower = ClapAudioTower()
    with tower.own_weights():
        state = {f"module.{k}": v for k, v in tower.state_dict().items()}
    state["module.text_branch.embeddings.position_ids"] = torch.arange(514)[None]  # LAION-AI/CLAP issue 127
    state["module.text_projection.0.weight"] = torch.randn(512, 768)
    state["module.audio_transform.sequential.0.weight"] = torch.randn(512, 512)
    state["module.logit_scale_a"] = torch.tensor(2.65)
    path = tmp_path_factory.mktemp("clap") / "630k-audioset-best.pt"
    torch.save({"epoch": 45, "name": "random", "state_dict": state}, path)
    return tower, path


@pytest.fixture(scope="module")
def wav2clip_original(tmp_path_factory) -> tuple[Wav2ClipTower, Path]:
    """A random Wav2CLIP saved as Wav2CLIP.pt is laid out: a flat dict, audio_encoder.* and audio_transform.*."""
    torch.manual_seed(0)
    tower = Wav2ClipTower()
    for m in tower.modules():  # non-trivial batch-norm statistics, so loading them is checked too
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    state = tower.public_state_dict()
    state["image_transform.sequential.0.weight"] = torch.randn(512, 512)
    path = tmp_path_factory.mktemp("wav2clip") / "Wav2CLIP.pt"
    torch.save(state, path)
    return tower, path


@pytest.fixture(scope="module")
def full_encoder(clap_original, wav2clip_original) -> MusicEncoder:
    """All four parts, the towers read from the files through the real loading path."""
    config = small_config(parts=("clap", "wav2clip", "mel", "beats"), clap_checkpoint=str(clap_original[1]),
                          wav2clip_checkpoint=str(wav2clip_original[1]))
    torch.manual_seed(2)
    return MusicEncoder(config)


@pytest.fixture(scope="module")
def tower_embeddings(full_encoder, inputs) -> dict[str, torch.Tensor]:
    """The loaded towers' outputs, computed once (as training would cache them)."""
    return full_encoder.frozen_embeddings(inputs)


# ------------------------------------------------------------------------------ config


def test_config_round_trips_through_json_and_rejects_bad_parts():
    config = small_config(parts=("clap", "beats"), clap_checkpoint="/w/630k-audioset-best.pt", mel_fmax=8000.0)
    again = MusicEncoderConfig(**json.loads(json.dumps(asdict(config))))
    assert again == config and again.parts == ("clap", "beats")
    assert again.sample_rates() == {"clap": CLAP_SAMPLE_RATE}
    with pytest.raises(ValueError, match=r"subset of \['clap', 'wav2clip', 'mel', 'beats'\].*'drums'"):
        MusicEncoderConfig(parts=("mel", "drums"))
    with pytest.raises(ValueError, match="non-empty"):
        MusicEncoderConfig(parts=())
    with pytest.raises(ValueError, match="twice"):
        MusicEncoderConfig(parts=("mel", "mel"))


def test_prepare_audio_resamples_to_each_rate():
    x = audio_batch()
    prepared = prepare_audio(x, 44100, MusicEncoderConfig(parts=("wav2clip", "mel", "beats")))
    assert sorted(prepared.waveforms) == [WAV2CLIP_SAMPLE_RATE, 22050]
    for sr, wave in prepared.waveforms.items():
        assert wave.dtype == torch.float32 and wave.shape[0] == B
        assert abs(wave.shape[1] - SECONDS * sr) <= 1
    mono = prepare_audio(x[0], 44100)
    assert sorted(mono.waveforms) == [WAV2CLIP_SAMPLE_RATE, 22050, CLAP_SAMPLE_RATE]
    assert mono.waveforms[22050].shape[0] == 1


# ------------------------------------------------------------------------------ shapes and trainable parts


@pytest.mark.parametrize(
    "parts", [c for n in range(1, len(PARTS) + 1) for c in itertools.combinations(PARTS, n)], ids="+".join
)
def test_output_shapes_for_every_part_combination(parts, full_encoder, tower_embeddings, inputs, rhythm):
    towers = {p: full_encoder.towers[p] for p in parts if p in full_encoder.towers}
    encoder = MusicEncoder(small_config(parts=parts), towers=towers).eval()
    cached = MusicInputs(waveforms=inputs.waveforms, embeddings=tower_embeddings)
    with torch.no_grad():
        out = encoder(cached, rhythm if "beats" in parts else None, n_frames=T)
    assert out.global_.shape == (B, 32) and out.frames.shape == (B, T, 16)
    assert torch.isfinite(out.global_).all() and torch.isfinite(out.frames).all()


def test_mel_and_beats_run_with_no_external_files(tmp_path, monkeypatch, rhythm):
    monkeypatch.setenv("DANCE_ANY_BEAT_CACHE", str(tmp_path))  # no default weights folder either
    config = small_config()
    assert config.parts == ("mel", "beats") and config.clap_checkpoint is None
    torch.manual_seed(0)
    encoder = MusicEncoder(config).eval()
    assert not any(k.startswith("towers.") for k in encoder.state_dict())
    audio = prepare_audio(audio_batch(), 44100, config)
    with torch.no_grad():
        out = encoder(audio, rhythm)
    assert out.global_.shape == (B, 32) and out.frames.shape == (B, T, 16)
    # the checkpoint story: config JSON + state_dict rebuild the same encoder
    again = MusicEncoder(MusicEncoderConfig(**json.loads(json.dumps(asdict(config))))).eval()
    again.load_state_dict(encoder.state_dict(), strict=True)
    with torch.no_grad():
        out2 = again(audio.waveforms, rhythm)  # a plain {rate: (B, N)} dict works too
    torch.testing.assert_close(out2.frames, out.frames)
    # beats alone needs no audio at all
    beats_only = MusicEncoder(small_config(parts=("beats",)))
    assert beats_only(None, rhythm).frames.shape == (B, T, 16)


def test_input_errors_say_what_is_needed(rhythm):
    encoder = MusicEncoder(small_config())
    with pytest.raises(ValueError, match="22050 Hz.*prepare_audio"):
        encoder({16000: torch.zeros(B, 8000)}, rhythm)
    with pytest.raises(ValueError, match="needs rhythm"):
        encoder({22050: torch.zeros(B, 11025)}, None, n_frames=T)
    with pytest.raises(ValueError, match=rf"rhythm must be \(B, T, {RHYTHM_DIM}\)"):
        encoder({22050: torch.zeros(B, 11025)}, torch.zeros(B, T, RHYTHM_DIM + 1))


def test_gradients_reach_adapters_but_not_frozen_towers(full_encoder, inputs, rhythm):
    encoder = full_encoder.train()
    assert not any(t.training for t in encoder.towers.values())  # towers stay in eval mode
    encoder.zero_grad(set_to_none=True)
    out = encoder(inputs, rhythm)
    (out.global_.square().mean() + out.frames.square().mean()).backward()
    for part in ("clap", "wav2clip"):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.adapters[part].parameters())
    assert all(p.grad is None and not p.requires_grad for p in encoder.frozen_parameters())
    trainable = {id(p) for p in encoder.trainable_parameters()}
    assert trainable.isdisjoint(id(p) for p in encoder.frozen_parameters())
    assert len(trainable) == len([p for p in encoder.parameters() if p.requires_grad])
    encoder.eval()


def test_state_dict_leaves_out_frozen_towers(full_encoder):
    state = full_encoder.state_dict()
    assert state and not any(k.startswith("towers.") for k in state)
    assert any(k.startswith("adapters.clap.") for k in state) and any(k.startswith("mel.") for k in state)
    # also inside a bigger model, the way checkpoints are saved
    parent = nn.ModuleDict({"music": full_encoder})
    assert not any(".towers." in k for k in parent.state_dict())
    # loading a state dict without the towers keeps them (strict loading does not miss them)
    before = full_encoder.towers["clap"].audio_projection[0].weight.clone()
    parent.load_state_dict(parent.state_dict(), strict=True)
    torch.testing.assert_close(full_encoder.towers["clap"].audio_projection[0].weight, before, rtol=0, atol=0)
    n_frozen = sum(p.numel() for p in full_encoder.frozen_parameters())
    assert n_frozen > 40_000_000  # HTSAT-tiny + projection (~32 M) and Wav2CLIP (~11.7 M)


# ------------------------------------------------------------------------------ the pretrained towers


def test_clap_tower_loads_public_layout_and_matches_the_original(clap_original, tower_embeddings, inputs):
    original, _ = clap_original
    wave = inputs.waveforms[CLAP_SAMPLE_RATE]  # (B, 24000): 0.5 s at 48 kHz
    # laion_clap's get_audio_embedding_from_data, step by step: int16 round trip, 'repeatpad' to 10 s,
    # audio_branch(...)["embedding"], audio_projection, L2 normalisation
    x = (np.clip(wave.numpy(), -1.0, 1.0) * 32767.0).astype(np.int16)
    x = torch.from_numpy((x / 32767.0).astype(np.float32))
    x = x.repeat(1, CLIP_SAMPLES // x.shape[1])
    x = F.pad(x, (0, CLIP_SAMPLES - x.shape[1]))
    with torch.no_grad():
        emb = original.audio_branch({"waveform": x, "longer": torch.zeros(B, dtype=torch.bool)})["embedding"]
        expected = F.normalize(original.audio_projection(emb), dim=-1)
    got = tower_embeddings["clap"]
    assert got.shape == (B, 512)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got.norm(dim=-1), torch.ones(B))
    assert "torchvision" not in sys.modules and not any(m.startswith("transformers") for m in sys.modules)


def test_wav2clip_tower_loads_public_layout_and_matches_the_original(wav2clip_original, tower_embeddings, inputs):
    original, _ = wav2clip_original
    wave = inputs.waveforms[WAV2CLIP_SAMPLE_RATE]
    with torch.no_grad():
        # wav2clip's own ResNet.forward (it standardises over the batch: one clip at a time) + the head
        expected = torch.cat([original.transform(original.encoder(wave[i : i + 1])) for i in range(B)])
    got = tower_embeddings["wav2clip"]
    assert got.shape == (B, 512)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert "torchaudio" not in sys.modules


def test_stft_spectrogram_matches_torchaudio_formula():
    """torchaudio Spectrogram(n_fft=512, hop_length=353): periodic Hann, centre reflect padding, |STFT|^2."""
    n_fft, hop = 512, 353
    x = np.random.default_rng(0).standard_normal(4000)
    spec = StftSpectrogram(n_fft=n_fft, hop_length=hop)(torch.from_numpy(x)[None, None].float())
    assert spec.shape == (1, 1, n_fft // 2 + 1, 1 + len(x) // hop)
    padded = np.pad(x, n_fft // 2, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    n = np.arange(n_fft)
    dft = np.exp(-2j * np.pi * np.outer(np.arange(n_fft // 2 + 1), n) / n_fft)  # (freq, n)
    frames = np.stack([padded[m * hop : m * hop + n_fft] * window for m in range(spec.shape[-1])], axis=1)
    expected = np.abs(dft @ frames) ** 2  # (freq, frames)
    np.testing.assert_allclose(spec[0, 0].double().numpy(), expected, rtol=1e-3, atol=1e-3 * expected.max())


# ------------------------------------------------------------------------------ missing and wrong weights


@pytest.mark.parametrize(
    ("part", "key", "file_name", "where"),
    [
        ("clap", "music.clap_checkpoint", "630k-audioset-best.pt", ["lukewys/laion_clap", "LAION-AI/CLAP"]),
        ("wav2clip", "music.wav2clip_checkpoint", "Wav2CLIP.pt", ["descriptinc/lyrebird-wav2clip"]),
    ],
)
def test_missing_weights_name_the_file_the_key_and_the_download(tmp_path, monkeypatch, part, key, file_name, where):
    monkeypatch.setenv("DANCE_ANY_BEAT_CACHE", str(tmp_path / "cache"))
    missing = tmp_path / "nowhere" / file_name
    with pytest.raises(MissingWeightsError) as info:
        MusicEncoder(small_config(parts=(part, "beats"), **{f"{part}_checkpoint": str(missing)}))
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError) and info.value.path == missing and info.value.option == key
    for text in [str(missing), key, file_name, *where]:
        assert text in message
    # not configured at all: the default place is named
    with pytest.raises(MissingWeightsError, match=f"{key} is not set") as info:
        MusicEncoder(small_config(parts=(part,)))
    assert str(tmp_path / "cache" / "weights" / file_name) in str(info.value)


def test_wrong_weight_files_are_refused_clearly(tmp_path, wav2clip_original):
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"encoder.layer1.weight": torch.randn(4, 4), "head.bias": torch.randn(4)}}, foreign)
    with pytest.raises(WeightsFormatError, match=r"not LAION-CLAP.*audio_branch\.\*.*encoder\.layer1\.weight"):
        MusicEncoder(small_config(parts=("clap",), clap_checkpoint=str(foreign)))
    with pytest.raises(WeightsFormatError, match=r"not Wav2CLIP weights.*audio_encoder\.\*"):
        MusicEncoder(small_config(parts=("wav2clip",), wav2clip_checkpoint=str(foreign)))

    broken = tmp_path / "Wav2CLIP.pt"
    broken.write_bytes(b"<html>404 Not Found</html>")  # a failed download
    with pytest.raises(WeightsFormatError, match="could not read .*incomplete.*Wav2CLIP.pt"):
        MusicEncoder(small_config(parts=("wav2clip",), wav2clip_checkpoint=str(broken)))

    state = torch.load(wav2clip_original[1], weights_only=True)
    wrong_shape = dict(state, **{"audio_encoder.conv1.weight": torch.randn(32, 1, 7, 7)})
    torch.save({"state_dict": {f"model.{k}": v for k, v in wrong_shape.items()}}, tmp_path / "shape.pt")
    with pytest.raises(WeightsFormatError, match=r"Wav2CLIP weights: .*wrong shapes \(1\): encoder\.conv1\.weight"):
        MusicEncoder(small_config(parts=("wav2clip",), wav2clip_checkpoint=str(tmp_path / "shape.pt")))
    no_head = {k: v for k, v in state.items() if not k.startswith("audio_transform.")}
    torch.save(no_head, tmp_path / "nohead.pt")
    with pytest.raises(WeightsFormatError, match=r"missing keys \(4\): transform\.sequential\.0\.weight"):
        MusicEncoder(small_config(parts=("wav2clip",), wav2clip_checkpoint=str(tmp_path / "nohead.pt")))
