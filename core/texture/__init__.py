"""Texture stages and their shared tools: rasterization in screen and UV space, projection, fusion."""
