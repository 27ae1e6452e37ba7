"""GMug: StyleGAN2 prior in UV space that delights, recovers exposure and white balance, and completes the phone texture."""
