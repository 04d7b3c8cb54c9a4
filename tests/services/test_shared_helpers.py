"""Helpers shared by the services: unit vectors, missing weight files, the onnx opener."""

import numpy as np

from services.component_files import missing_files
from services.vectors import l2_normalise


def test_l2_normalise_gives_unit_rows_and_leaves_zero_rows_alone():
    rows = l2_normalise(np.array([[3.0, 4.0], [0.0, 0.0], [1e-14, 0.0]]))
    assert rows.dtype == np.float32
    assert np.allclose(rows[0], [0.6, 0.8])
    assert np.array_equal(rows[1], [0.0, 0.0])
    assert rows[2, 0] < 1e-6  # a degenerate vector is not blown up into a "unit" one
    assert np.allclose(l2_normalise(np.array([0.0, 2.0])), [0.0, 1.0])  # one vector too


def test_face_embeddings_use_the_shared_normalisation():
    import services.face.recognition as recognition

    assert recognition.l2_normalise is l2_normalise


def test_missing_files_lists_the_absent_chosen_files_relative_to_the_folder(tmp_path):
    (tmp_path / "onnx").mkdir()
    present = tmp_path / "onnx" / "detection.onnx"
    present.write_bytes(b"x")
    absent = tmp_path / "onnx" / "recognition.fp16.onnx"
    assert missing_files(tmp_path, (present, None, absent)) == ["onnx/recognition.fp16.onnx"]
    assert missing_files(tmp_path, (present,)) == []


def test_face_and_ocr_open_sessions_with_one_shared_onnx_opener():
    import services.face.resolve as face
    import services.ocr.resolve as ocr
    from services.runtimes.onnx import open_onnx

    assert face.open_onnx is open_onnx and ocr.open_onnx is open_onnx
    assert not hasattr(face, "_onnx") and not hasattr(ocr, "_onnx")
