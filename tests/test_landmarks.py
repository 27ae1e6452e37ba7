"""The automatic landmark embedding on the open head: valid, consistent across views, symmetric, anatomical."""


import numpy as np
import pytest

from studio_avatar.core.head.landmarks import embed_landmarks
from studio_avatar.core.head.model import HeadModelError
from studio_avatar.core.head.open_head import build_open_head
from fresh_import import heavy_modules_after_import
from synthetic_head import make_synthetic_head

NOSE_TIP, CHIN = 1, 152
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263           # mediapipe's "left" is the subject's left
RIGHT_IRIS_CENTRE, LEFT_IRIS_CENTRE = 468, 473


class Recorder:
    def __init__(self):
        self.fractions = []

    def update(self, fraction, message=""):
        self.fractions.append(fraction)


@pytest.fixture(scope="module")
def head():
    return build_open_head()


@pytest.fixture(scope="module")
def embedded(head):
    progress = Recorder()
    embedding = embed_landmarks(head, progress=progress)
    points = np.einsum("lk,lkc->lc", embedding.barycentrics, head.template_m[head.faces[embedding.faces]])
    return embedding, points, progress


def test_one_valid_surface_point_per_landmark(head, embedded):
    embedding, _, progress = embedded
    assert embedding.faces.shape == (478,) and embedding.faces.dtype == np.int32
    assert embedding.barycentrics.shape == (478, 3) and embedding.barycentrics.dtype == np.float32
    assert (embedding.faces >= 0).all() and (embedding.faces < len(head.faces)).all()
    assert (embedding.barycentrics >= 0).all()
    assert np.allclose(embedding.barycentrics.sum(1), 1, atol=1e-5)
    assert progress.fractions == sorted(progress.fractions) and progress.fractions[-1] == pytest.approx(1.0)


def test_views_agree(embedded):
    report = embedded[0].report
    assert report["views_detected"] >= 7, report["views"]
    assert report["spread_mm"]["median"] < 3.0
    assert len(report["landmark_spread_mm"]) == 478 and min(report["landmark_views"]) >= 1
    assert report["snap_distance_mm"]["mean"] < 1.0


def test_mirrored_landmarks_land_on_mirrored_points(embedded):
    from mediapipe.python.solutions import face_mesh_connections as mesh

    mirror = embedded[0].report["mirror"]
    table = np.array(mirror["table"])
    assert mirror["mean_error_mm"] < 5.0
    assert mirror["unpaired"] < 48
    for left, right in ((mesh.FACEMESH_LEFT_EYE, mesh.FACEMESH_RIGHT_EYE),
                        (mesh.FACEMESH_LEFT_EYEBROW, mesh.FACEMESH_RIGHT_EYEBROW),
                        (mesh.FACEMESH_LEFT_IRIS, mesh.FACEMESH_RIGHT_IRIS)):
        mapped = {tuple(sorted((table[i], table[j]))) for i, j in left}
        assert mapped == {tuple(sorted(edge)) for edge in right}
    points = embedded[1]
    midline = np.flatnonzero(table == np.arange(478))
    assert len(midline) >= 20 and np.abs(points[midline, 0]).max() < 0.004


def test_landmarks_are_where_anatomy_puts_them(head, embedded):
    embedding, points, _ = embedded
    forward = np.argsort(-points[:, 2])
    assert forward[0] in (1, 4)                                          # the nose tip (4 is just above 1)
    assert points[forward[0], 2] - points[NOSE_TIP, 2] < 0.005
    assert points[:, 1].argmin() == CHIN
    assert points[LEFT_EYE_OUTER, 0] > 0.02 and points[RIGHT_EYE_OUTER, 0] < -0.02
    corners = head.faces[embedding.faces]
    assert head.regions["eye_left"][corners[LEFT_IRIS_CENTRE]].all()
    assert head.regions["eye_right"][corners[RIGHT_IRIS_CENTRE]].all()
    inside = head.regions["eye_left"] | head.regions["eye_right"] | head.regions["teeth"] | head.regions["tongue"]
    assert not inside[corners[:468]].any()                               # only irises on the eyeballs, nothing inside the mouth
    assert head.regions["face"][corners[:468]].any(1).mean() > 0.95


def test_a_head_mediapipe_cannot_see_raises_a_clear_error():
    blank = make_synthetic_head()                    # a sphere; without painted eyes and brows it shows no face
    blank.regions["eye_left"][:] = blank.regions["eye_right"][:] = False
    with pytest.raises(HeadModelError, match=r"mediapipe found the face in only [0-2] of 9 renders of the synthetic head"):
        embed_landmarks(blank)


def test_mediapipe_logs_nothing(head, capfd):
    embed_landmarks(head, views=((-20.0, 0.0), (0.0, 0.0), (20.0, 0.0)))
    err = capfd.readouterr().err
    assert "W0000" not in err and "INFO:" not in err, err


def test_importing_the_modules_stays_light():
    modules = ["studio_avatar.core.head.landmarks", "studio_avatar.core.render.raster", "studio_avatar.core.render.camera"]
    assert heavy_modules_after_import(modules, ("torch", "cv2", "mediapipe")) == []
