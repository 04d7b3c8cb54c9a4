"""Label sets: every accepted file shape, and errors that name what is wrong."""

import json

import numpy as np
import pytest

from services.api import InferenceRequest, ServiceState, ServiceUnavailable
from services.clip.dataset import DatasetError, LabelSet, label_text, load_label_set, locate_dataset
from services.model_info import parse_model_info
from tests.support.tiny_models import image_bytes, write_clip_model

INFO = parse_model_info(
    {"name": "m", "runtimes": {"onnx": {"available": True, "files": ["onnx/vision.onnx"]}}}
)


def test_label_shapes():
    assert label_text("tabby cat") == "tabby cat"
    assert label_text([["Animalia", "Chordata", "Aves", "", "Corvidae", "Corvus", "corax"], "Raven"]) == (
        "Animalia/Chordata/Aves/*/Corvidae/Corvus/corax/Raven"
    )
    assert label_text({"kingdom": "Plantae", "genus": "Rosa", "common_name": "dog/wild rose"}) == (
        "Plantae/*/*/*/*/Rosa/*/dog-wild rose"
    )
    with pytest.raises(DatasetError, match="label #3 has an unsupported shape int"):
        label_text(7, index=3)


def test_scores_are_a_softmax_sorted_descending():
    emb = np.eye(3, dtype=np.float32)
    labels = LabelSet("t", ["a", "b", "c"], emb * 5)  # rows are normalised
    ranked = labels.top_k(np.array([0.1, 1.0, 0.3]), 3, np.log(100.0))
    assert [x[0] for x in ranked] == ["b", "c", "a"]
    cos = np.array([0.1, 1.0, 0.3]) / np.linalg.norm([0.1, 1.0, 0.3])
    expected = np.exp(100 * cos) / np.exp(100 * cos).sum()
    assert [x[1] for x in ranked] == pytest.approx(sorted(expected, reverse=True), rel=1e-5)
    assert len(labels.top_k(np.ones(3), 50, 1.0)) == 3  # k is capped at the label count


def test_hub_layout_json_npy_transposed_fp16(tmp_path):
    (tmp_path / "datasets").mkdir()
    labels = [{"kingdom": "Animalia", "species": f"s{i}"} for i in range(5)]
    (tmp_path / "datasets" / "TreeOfLife.json").write_text(json.dumps(labels))  # Hub: suffix-stripped name
    emb = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float16)  # [D, N]
    np.save(tmp_path / "datasets" / "TreeOfLife200M.npy", emb)
    files = locate_dataset(tmp_path, INFO, "TreeOfLife-200M")  # alias spelling
    loaded = load_label_set(files)
    assert len(loaded) == 5 and loaded.dim == 4
    assert loaded.labels[2] == "Animalia/*/*/*/*/*/s2/*"
    assert loaded.top_k(emb[:, 3].astype(np.float32), 1, 4.6)[0][0] == loaded.labels[3]


def test_npz_problems_are_named(tmp_path):
    np.savez(tmp_path / "a.npz", names_x=np.array(["x"]), embeddings=np.ones((1, 2)))
    with pytest.raises(DatasetError, match="must hold 'labels' and 'embeddings' arrays.*names_x"):
        load_label_set(locate_dataset(tmp_path, INFO, "a"))
    np.savez(tmp_path / "b.npz", labels=np.array([{"x": 1}], dtype=object), embeddings=np.ones((1, 2)))
    with pytest.raises(DatasetError, match="without pickle"):
        load_label_set(locate_dataset(tmp_path, INFO, "b"))
    np.savez(tmp_path / "c.npz", labels=np.array(["x", "y"]), embeddings=np.ones((3, 4)))
    with pytest.raises(DatasetError, match=r"2 labels but embeddings of shape \(3, 4\)"):
        load_label_set(locate_dataset(tmp_path, INFO, "c"))
    with pytest.raises(DatasetError, match="neither in model_info.json"):
        locate_dataset(tmp_path, INFO, "nope")


async def test_dataset_of_another_dim_fails_the_model_with_the_reason(tmp_path, host_factory):
    model = write_clip_model(
        tmp_path, dataset="ImageNet_tiny", labels=["a", "b"], label_embeddings=np.ones((2, 5))
    )
    host = host_factory([model.service_spec()])
    with pytest.raises(ServiceUnavailable, match="has dim 5 but the model embeds in 8"):
        await host.infer(InferenceRequest("clip_classify", image_bytes(), "image/png"))
    assert host.statuses()[0].state is ServiceState.FAILED
