"""FaceID network: the torch port of dlib's face recognition ResNet against dlib itself.

The face chips are dlib's own (``dlib.get_face_chip`` from its 68-point
predictor) of open-head renders, a light and a dark skin in three views each;
dlib and the port get the same 150x150 chip.
"""

import re
import shutil

import dlib
import numpy as np
import pytest
import torch

from studio_avatar.core.eval import identity
from studio_avatar.core.gmug import faceid
from studio_avatar.core.head.open_head import get_open_head
from studio_avatar.core.synth.textured_capture import smooth_albedo


@pytest.fixture(scope="module")
def chips():
    """(6, 150, 150, 3) uint8 RGB face chips: two skins, each frontal and at +-30 degrees yaw."""
    head = get_open_head()
    views = identity.studio_views(head, np.zeros(head.num_shape, np.float32))
    predictor, _ = identity.dlib_models()
    out = []
    for seed, skin in ((2, (196, 148, 122)), (5, (110, 72, 52))):
        images = identity.render_views(head, views, smooth_albedo(head, 256, seed=seed, skin_srgb=skin))
        for image, box in zip(images, identity.face_boxes(head, views)):
            image = np.ascontiguousarray(image)
            out.append(dlib.get_face_chip(image, predictor(image, dlib.rectangle(*(int(v) for v in box))), size=150, padding=0.25))
    return np.stack(out)


def as_input(chips):
    return torch.from_numpy(chips).permute(0, 3, 1, 2).float() / 255.0


def test_port_matches_dlibs_descriptors_on_face_chips(chips):
    _, network = identity.dlib_models()
    reference = np.stack([np.asarray(network.compute_face_descriptor(chip), np.float64) for chip in chips])
    with torch.no_grad():
        ours = faceid.load_faceid()(as_input(chips)).double().numpy()
    cosine = (ours * reference).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(reference, axis=1)
    assert cosine.min() > 0.9999, cosine                                   # measured 1 - 1e-12
    assert np.linalg.norm(ours - reference, axis=1).max() < 1e-3           # measured 1.5e-6; dlib's same-person threshold is 0.6
    assert np.allclose(np.linalg.norm(ours, axis=1), np.linalg.norm(reference, axis=1), rtol=1e-4)   # not normalised, like dlib's


def test_gradients_reach_the_input_and_the_network_stays_frozen(chips):
    net = faceid.load_faceid()
    x = as_input(chips[:2]).requires_grad_(True)
    target = net(as_input(chips[3:4])).detach()
    features = net.features(x)
    loss = (net(x) - target).norm(dim=1).mean() + sum(f.square().mean() for f in features)
    loss.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum(dim=(1, 2, 3)).min() > 0
    assert all(not p.requires_grad and p.grad is None for p in net.parameters())
    assert [tuple(f.shape[1:]) for f in features] == [(32, 35, 35), (64, 17, 17), (128, 8, 8), (256, 4, 4), (256, 2, 2)]
    with pytest.raises(AssertionError, match=r"\(N, 3, 150, 150\)"):
        net(torch.zeros(1, 3, 112, 112))


def test_missing_or_damaged_model_file_gives_a_one_line_error(tmp_path, monkeypatch):
    data = open(faceid.model_path(), "rb").read()
    (tmp_path / "truncated.dat").write_bytes(data[: len(data) // 2])
    (tmp_path / "renamed_layer.dat").write_bytes(data.replace(b"con_4", b"con_9", 1))
    cases = {"missing.dat": "cannot read", "truncated.dat": "damaged (truncated", "renamed_layer.dat": "damaged (unexpected layer 'con_9'"}
    for name, message in cases.items():
        with pytest.raises(faceid.FaceIDModelError, match=re.escape(message)) as caught:
            faceid.load_faceid(path=str(tmp_path / name))
        assert "\n" not in str(caught.value) and "pip install" in str(caught.value)
    shutil.copy(faceid.model_path(), tmp_path / "intact.dat")
    assert isinstance(faceid.load_faceid(path=str(tmp_path / "intact.dat")), faceid.FaceIDNet)
    monkeypatch.setattr(faceid.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(faceid.FaceIDModelError, match="needs dlib's face recognition model"):
        faceid.load_faceid()
