"""Cycles side of the synthetic phone capture: the lit scene, frame renders, the shading bake, H.264 encoding.

``core/synth/phone_capture.py`` samples everything random (identity, motion,
albedo, lights, artifacts) and owns the files; this module only turns that
into Blender data and pixels. It works in a Blender session of its own (the
CLI process): ``SynthScene`` empties the open file first.

Frames: the head sits still at the world origin (Blender's Z-up frame, the
model's frame rotated by ``MODEL_TO_BLENDER``) and the camera moves, so the
world light is fixed to the head, as when a friend walks around someone with
a phone. Each frame sets the mesh's posed vertices (expression, jaw, eyes) and
the camera, renders with Cycles on the CPU into a linear float image and hands
it back as an (H, W, 3) array. Lights: a world HDRI from Blender's bundled
studio lights (rotated, scaled, tinted) plus lamps with blackbody colours.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Sequence

import bpy
import mathutils
import numpy as np

from ..errors import StudioAvatarError
from ..image_io import read_exr
from ..native_stderr import native_stdout_captured
from .head import MODEL_TO_BLENDER
from .lighting import Lighting, apply_lighting, remove_lighting


def model_to_blender_matrix() -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = MODEL_TO_BLENDER
    return out


def _head_mesh(faces: np.ndarray, face_uv: np.ndarray, uv: np.ndarray) -> Any:
    """A smooth-shaded triangle mesh with its UV map; the vertices stay at the origin until ``set_vertices``."""
    faces = np.asarray(faces, np.int64)
    mesh = bpy.data.meshes.new("Synth Head")
    mesh.vertices.add(int(faces.max()) + 1)
    mesh.loops.add(faces.size)
    mesh.polygons.add(len(faces))
    mesh.loops.foreach_set("vertex_index", faces.reshape(-1).astype(np.int32))
    mesh.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    mesh.polygons.foreach_set("loop_total", np.full(len(faces), 3, np.int32))
    layer = mesh.uv_layers.new(name="UVMap")
    layer.data.foreach_set("uv", np.asarray(uv, np.float32)[np.asarray(face_uv, np.int64).reshape(-1)].reshape(-1))
    mesh.update()
    mesh.polygons.foreach_set("use_smooth", np.ones(len(faces), bool))
    return mesh


def _skin_material(albedo_png: Path, roughness: float, specular: float, subsurface: float) -> tuple[Any, Any]:
    """A Principled skin with the sRGB albedo texture: (material, its albedo image texture node)."""
    material = bpy.data.materials.new("Synth Skin")
    material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    bsdf = nodes["Principled BSDF"]
    image = bpy.data.images.load(str(albedo_png), check_existing=False)
    image.colorspace_settings.name = "sRGB"
    texture = nodes.new("ShaderNodeTexImage")
    texture.image = image
    texture.interpolation = "Cubic"
    links.new(texture.outputs["Color"], bsdf.inputs["Base Color"])
    bsdf.inputs["Roughness"].default_value = roughness
    bsdf.inputs["Specular IOR Level"].default_value = specular
    bsdf.inputs["Subsurface Weight"].default_value = subsurface
    bsdf.inputs["Subsurface Radius"].default_value = (0.004, 0.0015, 0.0008)
    bsdf.inputs["Subsurface Scale"].default_value = 1.0
    return material, texture


def _set_up_cycles(scene: Any, width: int, height: int, samples: int, threads: int) -> None:
    """Cycles on the CPU, tuned for many small denoised frames, writing linear 32-bit EXR (``threads`` 0: automatic)."""
    scene.render.engine = "CYCLES"
    cycles = scene.cycles
    cycles.device = "CPU"
    cycles.samples = samples
    cycles.use_adaptive_sampling = True
    cycles.use_denoising = True
    cycles.denoiser = "OPENIMAGEDENOISE"
    cycles.denoising_quality = "FAST"          # ~2x faster than HIGH at 512^2 on 2 cores, same look here
    cycles.denoising_prefilter = "FAST"
    cycles.adaptive_threshold = 0.05
    cycles.max_bounces = 4
    cycles.diffuse_bounces = 1
    cycles.glossy_bounces = 1
    cycles.transmission_bounces = 0
    cycles.volume_bounces = 0
    cycles.caustics_reflective = cycles.caustics_refractive = False
    cycles.seed = 0
    scene.render.use_persistent_data = True
    if threads:
        scene.render.threads_mode = "FIXED"
        scene.render.threads = threads
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = False
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    settings = scene.render.image_settings
    settings.file_format = "OPEN_EXR"
    settings.color_depth = "32"
    settings.exr_codec = "NONE"
    settings.color_management = "FOLLOW_SCENE"


class SynthScene:
    """One Cycles scene with the head mesh; call ``set_vertices`` / ``render`` per frame."""

    def __init__(self, faces: np.ndarray, face_uv: np.ndarray, uv: np.ndarray, albedo_png: Path, lighting: Lighting,
                 width: int, height: int, samples: int, roughness: float = 0.45, specular: float = 0.5,
                 subsurface: float = 0.0, threads: int = 0):
        with native_stdout_captured():
            bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
        self.scene = scene = bpy.context.scene
        self.width, self.height = width, height
        self._tmp = tempfile.TemporaryDirectory(prefix="studio-avatar-synth-")

        self.mesh = _head_mesh(faces, face_uv, uv)
        self.head = bpy.data.objects.new("Synth Head", self.mesh)
        scene.collection.objects.link(self.head)
        self.material, self.texture_node = _skin_material(albedo_png, roughness, specular, subsurface)
        self.mesh.materials.append(self.material)

        self.camera = bpy.data.objects.new("Synth Camera", bpy.data.cameras.new("Synth Camera"))
        scene.collection.objects.link(self.camera)
        scene.camera = self.camera
        self.camera.data.clip_start = 0.01
        self.camera.data.sensor_fit = "HORIZONTAL"
        self._lights: list[Any] = []
        self.set_lighting(lighting)
        _set_up_cycles(scene, width, height, samples, threads)

    # -- lights ----------------------------------------------------------------------------------
    def set_lighting(self, lighting: Lighting) -> None:
        remove_lighting(self.scene, self._lights)
        self._lights = apply_lighting(self.scene, lighting, "Synth")

    # -- per frame -------------------------------------------------------------------------------
    def set_vertices(self, vertices_model_m: np.ndarray) -> None:
        """(V, 3) model-frame vertices of the head (neutral root pose)."""
        verts = np.asarray(vertices_model_m, np.float32) @ MODEL_TO_BLENDER.T
        self.mesh.vertices.foreach_set("co", np.ascontiguousarray(verts).reshape(-1))
        self.mesh.update()

    def set_camera(self, head_to_camera: np.ndarray, focal_px: float, principal_px: Sequence[float]) -> None:
        """Camera of the fit conventions: ``v_cam = R v_model + t`` (4x4 ``head_to_camera``, OpenGL camera axes)."""
        camera_to_model = np.linalg.inv(np.asarray(head_to_camera, np.float64))
        matrix = model_to_blender_matrix() @ camera_to_model       # Blender cameras use OpenGL axes too
        self.camera.matrix_world = mathutils.Matrix(matrix.tolist())
        data = self.camera.data
        data.sensor_width = 36.0
        data.lens = focal_px * data.sensor_width / self.width
        longest = max(self.width, self.height)
        data.shift_x = (self.width / 2 - principal_px[0]) / longest
        data.shift_y = (principal_px[1] - self.height / 2) / longest

    def render(self, alpha: bool = False) -> np.ndarray:
        """(H, W, 3) float32 linear RGB of the current frame; (H, W, 4) with the head's coverage if ``alpha``."""
        path = Path(self._tmp.name) / "frame.exr"
        self.scene.render.filepath = str(path)
        self.scene.render.film_transparent = alpha
        self.scene.render.image_settings.color_mode = "RGBA" if alpha else "RGB"
        with native_stdout_captured():
            bpy.ops.render.render(write_still=True)
        try:
            return read_exr(path, alpha=alpha)
        except OSError as exc:
            raise StudioAvatarError(f"Cycles did not write the frame: {exc}") from None

    # -- ground truth ----------------------------------------------------------------------------
    def bake_irradiance(self, size: int, samples: int) -> np.ndarray:
        """(size, size, 3) float32: the diffuse irradiance (direct + indirect, no colour) in UV space."""
        image = bpy.data.images.new("Synth Irradiance", size, size, float_buffer=True, alpha=False)
        image.colorspace_settings.name = "Non-Color"
        nodes = self.material.node_tree.nodes
        target = nodes.new("ShaderNodeTexImage")
        target.image = image
        nodes.active = target
        for obj in self.scene.collection.objects:
            obj.select_set(obj == self.head)
        bpy.context.view_layer.objects.active = self.head
        cycles = self.scene.cycles
        saved = cycles.samples, cycles.use_denoising, self.scene.render.use_persistent_data
        cycles.samples = samples
        self.scene.render.use_persistent_data = False     # with data kept from a frame render, bakes come out black
        bake = self.scene.render.bake
        bake.use_pass_direct = bake.use_pass_indirect = True
        bake.use_pass_color = False
        bake.margin = max(2, size // 128)
        bake.margin_type = "EXTEND"
        try:
            with native_stdout_captured():
                bpy.ops.object.bake(type="DIFFUSE", pass_filter={"DIRECT", "INDIRECT"}, use_clear=True, margin=bake.margin)
            pixels = np.empty(size * size * 4, np.float32)
            image.pixels.foreach_get(pixels)
        finally:
            cycles.samples, cycles.use_denoising, self.scene.render.use_persistent_data = saved
            nodes.remove(target)
            bpy.data.images.remove(image)
        return np.ascontiguousarray(pixels.reshape(size, size, 4)[::-1, :, :3])   # Blender rows go bottom-up

    def close(self) -> None:
        self._tmp.cleanup()


def encode_h264(frame_files: Sequence[Path], fps: float, size: tuple[int, int], output: Path, quality: str = "MEDIUM") -> None:
    """Encode 8-bit sRGB PNG frames into an H.264 .mp4 with Blender's FFmpeg (OpenCV's wheel has no H.264 encoder).

    quality: Blender's constant rate factor preset (LOSSLESS, PERC_LOSSLESS, HIGH, MEDIUM, LOW, VERYLOW, LOWEST).
    Uses a scene of its own, so the render scene is left alone.
    """
    if not frame_files:
        raise StudioAvatarError("no frames to encode")
    scene = bpy.data.scenes.new("Synth Encode")
    try:
        scene.render.resolution_x, scene.render.resolution_y = size
        scene.render.resolution_percentage = 100
        scene.render.fps = int(round(fps))
        scene.render.fps_base = scene.render.fps / fps
        scene.view_settings.view_transform = "Standard"
        scene.view_settings.look = "None"
        scene.sequencer_colorspace_settings.name = "sRGB"
        editor = scene.sequence_editor_create()
        folder = Path(frame_files[0]).parent
        strip = editor.strips.new_image(name="frames", filepath=str(frame_files[0]), channel=1, frame_start=1)
        for path in frame_files[1:]:
            if Path(path).parent != folder:
                raise StudioAvatarError("the frames to encode must be in one folder")
            strip.elements.append(Path(path).name)
        strip.colorspace_settings.name = "sRGB"
        scene.frame_start, scene.frame_end = 1, len(frame_files)
        render = scene.render
        render.use_sequencer = True
        render.image_settings.file_format = "FFMPEG"
        render.ffmpeg.format = "MPEG4"
        render.ffmpeg.codec = "H264"
        render.ffmpeg.constant_rate_factor = quality
        render.ffmpeg.ffmpeg_preset = "GOOD"
        render.ffmpeg.gopsize = 12
        render.ffmpeg.audio_codec = "NONE"
        render.filepath = str(output)
        with native_stdout_captured():
            bpy.ops.render.render(animation=True, scene=scene.name)
    finally:
        bpy.data.scenes.remove(scene)
    if not Path(output).is_file():
        # Blender appends the frame range to names without an extension it knows; ours end in .mp4
        raise StudioAvatarError(f"Blender's FFmpeg did not write {output}")
