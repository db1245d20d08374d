"""DabFusion's networks: `lfae` (stage 1, latent flow auto-encoder) and `unet3d` (stage 2, the denoiser).

Import the submodules directly; this package imports nothing so that loading one model never pulls in the other.
"""
