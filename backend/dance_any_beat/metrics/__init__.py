"""Evaluation metrics: beat alignment (BAS, 2D-MM Align), AV-Align, SSIM/PSNR, and FVD/LPIPS given weights."""

from .av_align import audio_peaks, av_align, av_align_from_peaks, video_peaks, video_peaks_from_flow_magnitudes
from .beat_alignment import (
    beat_alignment_from_beats,
    beat_alignment_score,
    keypoint_beat_alignment,
    kinetic_beats,
    motion_beats,
    video_beat_alignment,
)
from .frechet import GaussianFit, frechet_distance, gaussian_fit
from .fvd import fvd, i3d_features, load_i3d
from .image_quality import psnr, ssim
from .lpips import LPIPS, load_lpips, lpips_distance
from .motion import center_pair_track, flow_magnitudes, motion_energy_from_flows, motion_energy_from_frames
from .pose_alignment import landmark_beat_alignment

__all__ = [
    "GaussianFit",
    "LPIPS",
    "audio_peaks",
    "av_align",
    "av_align_from_peaks",
    "beat_alignment_from_beats",
    "beat_alignment_score",
    "center_pair_track",
    "flow_magnitudes",
    "frechet_distance",
    "fvd",
    "gaussian_fit",
    "i3d_features",
    "keypoint_beat_alignment",
    "kinetic_beats",
    "landmark_beat_alignment",
    "load_i3d",
    "load_lpips",
    "lpips_distance",
    "motion_beats",
    "motion_energy_from_flows",
    "motion_energy_from_frames",
    "psnr",
    "ssim",
    "video_beat_alignment",
    "video_peaks",
    "video_peaks_from_flow_magnitudes",
]
