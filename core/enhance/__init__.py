"""Detail enhancement: conditional diffusion super-resolution of the albedo, guided by the phone texture's gradient.

``model.py`` owns the network (a diffusers ``UNet2DModel``) and the
conditioning; ``pipeline.py`` the seeded few-step sampler with tiled
inference; ``weights.py`` the shipped weights file.
"""
