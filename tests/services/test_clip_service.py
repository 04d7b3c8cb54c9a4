"""The clip and bioclip services end to end through the host, on real onnxruntime."""

import json

import numpy as np
import pytest
from PIL import Image

from services.api import (
    InferenceRequest,
    InvalidInput,
    ServiceSpec,
    ServiceState,
    ServiceUnavailable,
    TaskNotFound,
)
from services.clip.preprocess import ImagePreprocess
from tests.services.conftest import CLIP_LABELS, wait_for_state
from tests.support.tiny_models import image_bytes, write_clip_model


def _req(task, payload, mime="", **meta):
    return InferenceRequest(task, payload, mime, {k: str(v) for k, v in meta.items()})


def _reference_pixels(model, raw: bytes) -> np.ndarray:
    import io

    pre = ImagePreprocess(
        height=model.image_size,
        width=model.image_size,
        resize_mode=model.resize_mode,
        interpolation=model.interpolation,
        mean=model.mean,
        std=model.std,
    )
    return pre.to_tensor(Image.open(io.BytesIO(raw)).convert("RGB"))


async def test_text_and_image_share_model_id_and_dim_and_are_unit_norm(tiny_clip, host_factory):
    host = host_factory([tiny_clip.service_spec()])
    text = await host.infer(_req("semantic_text_embed", b"A photo of a Cat", "text/plain"))
    raw = image_bytes(50, 30, fmt="WEBP")
    image = await host.infer(_req("semantic_image_embed", raw, "image/webp"))
    for result in (text, image):
        assert result.schema == "embedding_v1" and result.mime == "application/json;schema=embedding_v1"
        assert result.final
        assert len(result.data["vector"]) == result.data["dim"] == tiny_clip.dim
        assert abs(np.linalg.norm(result.data["vector"]) - 1.0) < 1e-5
        json.loads(result.to_json_bytes())
    assert text.data["model_id"] == image.data["model_id"] == tiny_clip.name
    # the vectors are the model's: computed independently from the tiny network's weights
    ids = tiny_clip.token_ids("a photo of a cat")  # no "a photo of a" rewriting, lower-cased by the tokenizer
    np.testing.assert_allclose(text.data["vector"], tiny_clip.reference_text_embedding(ids), atol=1e-5)
    np.testing.assert_allclose(
        image.data["vector"],
        tiny_clip.reference_image_embedding(_reference_pixels(tiny_clip, raw)),
        atol=1e-5,
    )


async def test_legacy_aliases_answer_the_same(tiny_clip, host_factory):
    host = host_factory([tiny_clip.service_spec()])
    raw = image_bytes(20, 20)
    a = await host.infer(_req("clip_image_embed", raw, "image/png"))
    b = await host.infer(_req("semantic_image_embed", raw, "image/png"))
    assert a.data == b.data
    t1 = await host.infer(_req("clip_text_embed", b"dog on the beach"))
    t2 = await host.infer(_req("semantic_text_embed", b"dog on the beach"))
    assert t1.data == t2.data


async def test_long_text_is_truncated_keeping_the_end_of_text_token(tiny_clip, host_factory):
    host = host_factory([tiny_clip.service_spec()])
    words = "red blue green tree house city river snow night day"  # 10 words + 2 specials > 8
    result = await host.infer(_req("semantic_text_embed", words.encode()))
    ids = tiny_clip.token_ids(words)
    kept = ids[: tiny_clip.context_length - 1] + [ids[-1]]
    assert kept[-1] == tiny_clip.vocab["<|endoftext|>"]
    np.testing.assert_allclose(result.data["vector"], tiny_clip.reference_text_embedding(kept), atol=1e-5)


async def test_classification_returns_the_planted_nearest_label(tmp_path, host_factory):
    base = write_clip_model(tmp_path / "a")
    probe = host_factory([base.service_spec()])
    raw = image_bytes(64, 48, fmt="JPEG", seed=7)
    vector = np.array((await probe.infer(_req("semantic_image_embed", raw, "image/jpeg"))).data["vector"])
    await probe.stop()
    rng = np.random.default_rng(3)
    others = rng.standard_normal((4, base.dim)).astype(np.float32)
    others -= np.outer(others @ vector, vector)  # orthogonal to the image: cosine 0
    embeddings = np.vstack([others[:2], vector + 0.05 * others[2], others[2:]])  # "bird" is planted
    model = write_clip_model(
        tmp_path / "b", dataset="ImageNet_tiny", labels=CLIP_LABELS, label_embeddings=embeddings
    )
    host = host_factory([model.service_spec()])
    result = await host.infer(_req("clip_classify", raw, "image/jpeg", topK="3.0"))
    labels = result.data["labels"]
    assert result.schema == "labels_v1" and result.data["model_id"] == model.name
    assert [x["label"] for x in labels][0] == "bird"
    assert len(labels) == 3
    scores = [x["score"] for x in labels]
    assert scores == sorted(scores, reverse=True) and 0 < scores[0] <= 1


async def test_bioclip_labels_are_8_slot_paths_and_top_k_aliases_work(tiny_bioclip, host_factory):
    host = host_factory([tiny_bioclip.service_spec()])
    for key in ("top_k", "TopK", "topK", "top-k", "lumen.top_k"):
        result = await host.infer(
            _req("bioclip_classify", image_bytes(30, 30, fmt="WEBP"), "image/webp", **{key: "2"})
        )
        assert len(result.data["labels"]) == 2
    result = await host.infer(_req("bioclip_classify", image_bytes(30, 30), "image/png", top_k=10))
    labels = {x["label"] for x in result.data["labels"]}
    assert labels == {
        "Animalia/Chordata/Aves/Passeriformes/Corvidae/Corvus/corax/Common Raven",
        "Animalia/Chordata/Mammalia/Carnivora/Felidae/Felis/catus/Domestic Cat",
        "Plantae/Tracheophyta/Magnoliopsida/Rosales/Rosaceae/Rosa/canina/*",
        "Fungi/Basidiomycota/*/*/*/Amanita/muscaria/Fly agaric",
    }
    assert abs(sum(x["score"] for x in result.data["labels"]) - 1.0) < 1e-5  # softmax over all labels


async def test_bioclip_offers_only_its_own_task(tiny_clip, tiny_bioclip, host_factory):
    host = host_factory([tiny_clip.service_spec(), tiny_bioclip.service_spec()])
    caps = {c.service_name: c for c in host.capabilities()}
    assert [t.name for t in caps["bioclip"].tasks] == ["bioclip_classify"]
    assert {t.name for t in caps["clip"].tasks} == {
        "semantic_text_embed",
        "semantic_image_embed",
        "clip_classify",
    }
    assert host.resolve("semantic_image_embed", "bioclip")[0] == "clip"  # a wrong hint is tolerated
    assert host.resolve("bioclip_classify", None)[0] == "bioclip"


async def test_clip_without_dataset_has_no_classify_task(tmp_path, host_factory):
    model = write_clip_model(tmp_path)
    host = host_factory([model.service_spec()])
    assert "clip_classify" not in [t.name for t in host.capabilities()[0].tasks]
    with pytest.raises(TaskNotFound, match="clip_classify"):
        await host.infer(_req("clip_classify", image_bytes(), "image/png"))


@pytest.mark.parametrize(
    ("task", "payload", "mime", "meta", "message"),
    [
        ("semantic_text_embed", b"", "text/plain", {}, "text is empty"),
        ("semantic_text_embed", b"   \n ", "text/plain", {}, "text is empty"),
        ("semantic_text_embed", b"x" * 1025, "text/plain", {}, "1025 characters long; at most 1024"),
        ("semantic_text_embed", b"y" * 5000, "text/plain", {}, "5000 bytes; at most 1024 characters"),
        ("semantic_text_embed", b"\xff\xfe", "text/plain", {}, "not valid UTF-8"),
        ("semantic_text_embed", b"cat", "image/png", {}, "does not take 'image/png'"),
        ("semantic_image_embed", b"not an image", "image/jpeg", {}, "not a decodable image"),
        ("semantic_image_embed", b"", "image/jpeg", {}, "image payload is empty"),
        ("semantic_image_embed", b"abc", "text/plain", {}, "does not take 'text/plain'"),
        ("clip_classify", image_bytes(), "image/png", {"top_k": "0"}, "'top_k' must be from 1 to 1000"),
        ("clip_classify", image_bytes(), "image/png", {"top_k": "many"}, "'top_k' must be a number"),
        ("semantic_image_embed", image_bytes(), "image/png", {"model": "nope"}, "'nope' is not a model"),
    ],
)
async def test_bad_input_gives_clear_invalid_input(
    tiny_clip, host_factory, task, payload, mime, meta, message
):
    host = host_factory([tiny_clip.service_spec()])
    with pytest.raises(InvalidInput, match=message):
        await host.infer(_req(task, payload, mime, **meta))


async def test_unknown_task_is_not_found_naming_the_offered_tasks(tiny_clip, host_factory):
    host = host_factory([tiny_clip.service_spec()])
    with pytest.raises(TaskNotFound, match=r"'face_detect'.*tasks offered: .*semantic_image_embed"):
        await host.infer(_req("face_detect", image_bytes(), "image/png"))


async def test_missing_model_folder_and_files_are_failed_with_what_is_missing(tmp_path, host_factory):
    model = write_clip_model(tmp_path / "models", dataset="ImageNet_tiny", labels=CLIP_LABELS)
    missing_dir = model.model_spec(path=tmp_path / "models" / "absent")
    host = host_factory([ServiceSpec(name="clip", models=(missing_dir,))])
    status = host.statuses()[0]
    assert status.state is ServiceState.FAILED and "does not exist" in status.reason
    (model.path / "onnx" / "vision.fp32.onnx").unlink()
    (model.path / "tokenizer.json").unlink()
    host2 = host_factory([model.service_spec()])
    status = host2.statuses()[0]
    assert status.state is ServiceState.FAILED
    assert "onnx/vision.fp32.onnx" in status.reason and "tokenizer.json" in status.reason
    cap = host2.capabilities()[0]
    assert cap.extra["state"] == "failed" and "tokenizer.json" in cap.extra["reason"]
    with pytest.raises(ServiceUnavailable, match="tokenizer.json"):
        await host2.infer(_req("semantic_text_embed", b"cat"))
    # the files arrive (a download finished): the next request loads the model
    write_clip_model(tmp_path / "models", dataset="ImageNet_tiny", labels=CLIP_LABELS)
    result = await host2.infer(_req("semantic_text_embed", b"cat"))
    assert result.data["dim"] == model.dim
    assert host2.statuses()[0].state is ServiceState.READY


async def test_missing_dataset_is_named(tmp_path, host_factory):
    model = write_clip_model(tmp_path, dataset="ImageNet_tiny", labels=CLIP_LABELS)
    (model.path / "ImageNet_tiny.npz").unlink()
    host = host_factory([model.service_spec()])
    assert "ImageNet_tiny.npz" in host.statuses()[0].reason


async def test_bioclip_without_any_dataset_fails_with_a_reason(tmp_path, host_factory):
    model = write_clip_model(tmp_path, name="bio-no-data", kind="bioclip", with_text=False)
    host = host_factory([model.service_spec(service="bioclip")])
    status = host.statuses()[0]
    assert status.state is ServiceState.FAILED and "has no dataset" in status.reason


async def test_static_batch_graph_is_run_item_by_item(tmp_path, host_factory):
    model = write_clip_model(tmp_path, static_batch=True)
    host = host_factory([model.service_spec()], batch_max_wait_ms=50)
    import asyncio

    results = await asyncio.gather(
        *[host.infer(_req("semantic_image_embed", image_bytes(seed=i), "image/png")) for i in range(3)]
    )
    assert all(r.data["dim"] == model.dim for r in results)
    await wait_for_state(host, "clip", ServiceState.READY)


async def test_raw_rgb_input_embeds_like_the_encoded_image(tiny_clip, host_factory):
    import io

    host = host_factory([tiny_clip.service_spec()])
    png = image_bytes(30, 20)
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    meta = {
        "input_format": "rgb_tensor",
        "tensor_width": "30",
        "tensor_height": "20",
        "tensor_channels": "3",
        "tensor_dtype": "uint8",
        "tensor_layout": "HWC",
        "tensor_color_space": "RGB",
    }
    raw = await host.infer(
        InferenceRequest("clip_image_embed", pixels.tobytes(), "application/x.rgb+uint8", meta)
    )
    encoded = await host.infer(_req("clip_image_embed", png, "image/png"))
    assert raw.data["vector"] == pytest.approx(encoded.data["vector"], abs=1e-6)
    assert "application/x.rgb+uint8" in host.capabilities()[0].tasks[1].input_mimes


async def test_a_large_jpeg_is_decoded_smaller_with_nearly_the_same_input_tensor(tiny_clip, host_factory):
    import io

    host = host_factory([tiny_clip.service_spec()])
    await host.infer(_req("semantic_text_embed", b"load it"))
    model = host.model_slots("clip")["default"].instance
    h, w = 1200, 1800  # photo-like: smooth shapes and some sensor noise
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([xx / w * 255, yy / h * 255, 128 + 100 * np.sin(xx / 90) * np.cos(yy / 70)], axis=-1)
    noisy = base + np.random.default_rng(1).normal(0, 6, base.shape)
    out = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB").save(out, "JPEG", quality=92)
    full = model.preprocess.to_tensor(Image.open(io.BytesIO(out.getvalue())).convert("RGB"))
    got = model.prepare_image(out.getvalue(), "image/jpeg")  # decoded at 900 x 600 (>= 2 x 224)
    # one 8-bit level is 1 / 255 / std ~ 0.015 here: on average a small fraction of one
    assert got.shape == full.shape and not np.array_equal(got, full)  # not the full-size decode
    assert float(np.abs(got - full).mean()) < 0.005
    assert float(np.abs(got - full).max()) < 0.1


async def test_an_unloaded_model_says_so_when_used(tiny_clip, host_factory):
    host = host_factory([tiny_clip.service_spec()])
    await host.infer(_req("semantic_text_embed", b"load it"))
    model = host.model_slots("clip")["default"].instance
    tensor = model.prepare_image(image_bytes(), "image/png")
    model.close()
    with pytest.raises(RuntimeError, match="was unloaded"):
        model.encode_images([tensor])
