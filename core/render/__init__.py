"""The ground floor of rendering: rasterizer, normals, cameras and projection, UV lookup, texture tiling.

Head models, fits, textures, synthetic data, the evaluation and the learned
stages all draw with these. Nothing here imports another room of ``core``.
"""
