import json

import pytest

from services.model_info import (
    ModelInfoError,
    WeightFile,
    load_model_info,
    parse_model_info,
    parse_model_info_bytes,
    select_runtime_files,
    support_files,
)

SEED = {  # the example of seeds/000 (seed dialect)
    "name": "MobileCLIP-L-14",
    "version": "1.0.0",
    "description": "MobileCLIP model for efficient CLIP inference",
    "model_type": "clip",
    "embedding_dim": 768,
    "runtimes": {
        "torch": {"available": True, "files": ["torch/model.pt"]},
        "onnx": {"available": True, "files": ["onnx/text.onnx", "onnx/vision.onnx"]},
        "rknn": {
            "available": True,
            "devices": ["rk3566", "rk3588"],
            "files": {
                "rk3566": ["rknn/rk3566/text.rknn", "rknn/rk3566/vision.rknn"],
                "rk3588": ["rknn/rk3588/text.rknn", "rknn/rk3588/vision.rknn"],
            },
        },
    },
    "datasets": {"ImageNet_10k": "ImageNet_10k.npz"},
    "metadata": {"license": "MIT", "author": "Lumilio Photos", "created_at": "2024-01-01"},
}

PY_DIALECT = {
    "name": "bioclip-2",
    "version": "1.0.0",
    "description": "BioCLIP 2",
    "model_type": "bioclip",
    "source": {"format": "openclip", "repo_id": "imageomics/bioclip-2"},
    "embedding_dim": 768,
    "runtimes": {
        "onnx": {
            "available": True,
            "files": [
                "onnx/text.fp32.onnx",
                "onnx/text.fp16.onnx",
                "onnx/vision.fp32.onnx",
                "onnx/vision.fp16.onnx",
            ],
        },
        "rknn": {
            "available": True,
            "files": ["rknn/rk3588/vision.fp16.rknn", "rknn/rk3576/vision.fp16.rknn"],
        },
        "torch": {"available": False},
    },
    "datasets": {"TreeOfLife-200M": {"labels": "TreeOfLife-200M.json", "embeddings": "TreeOfLife-200M.npy"}},
    "extra_metadata": {"logit_scale": 4.6},
}

HUB_DIALECT = {
    "name": "siglip2-base-patch16-224",
    "version": "1.0.0",
    "description": "SigLIP2",
    "model_type": "siglip",
    "source": {"format": "huggingface", "repo_id": "google/siglip2-base-patch16-224"},
    "runtimes": {
        "onnx": {"available": True, "components": ["text", "vision"], "precisions": ["fp32", "fp16"]}
    },
    "task_metadata": {"embedding_dim": 768, "tasks": {"semantic_text_embed": {"component": "text"}}},
}


def test_seed_dialect():
    info = parse_model_info(SEED)
    assert info.available_runtimes() == ("torch", "onnx", "rknn")
    assert select_runtime_files(info, "onnx") == ["onnx/text.onnx", "onnx/vision.onnx"]
    assert select_runtime_files(info, "rknn", device="rk3588") == [
        "rknn/rk3588/text.rknn",
        "rknn/rk3588/vision.rknn",
    ]
    assert info.dataset("ImageNet_10k").files == ("ImageNet_10k.npz",)
    assert info.embedding_dim == 768


def test_python_dialect_precision_and_device_selection():
    info = parse_model_info(PY_DIALECT)
    assert select_runtime_files(info, "onnx") == ["onnx/text.fp32.onnx", "onnx/vision.fp32.onnx"]
    assert select_runtime_files(info, "onnx", precision="fp16") == [
        "onnx/text.fp16.onnx",
        "onnx/vision.fp16.onnx",
    ]
    assert select_runtime_files(info, "onnx", precision="fp16q8") == [
        "onnx/text.fp16.onnx",
        "onnx/vision.fp16.onnx",
    ]
    # a flat rknn list is grouped per device
    assert info.runtimes["rknn"].devices == ("rk3588", "rk3576")
    assert select_runtime_files(info, "rknn", device="rk3576") == ["rknn/rk3576/vision.fp16.rknn"]
    ds = info.dataset("TreeOfLife200M")  # alias spelling
    assert (ds.labels, ds.embeddings) == ("TreeOfLife-200M.json", "TreeOfLife-200M.npy")
    assert info.task_metadata["logit_scale"] == 4.6


def test_hub_dialect_derives_files():
    info = parse_model_info(HUB_DIALECT)
    assert info.runtimes["onnx"].files == (
        "onnx/text.fp32.onnx",
        "onnx/text.fp16.onnx",
        "onnx/vision.fp32.onnx",
        "onnx/vision.fp16.onnx",
    )
    assert info.embedding_dim == 768
    assert select_runtime_files(info, "onnx", precision="fp16") == [
        "onnx/text.fp16.onnx",
        "onnx/vision.fp16.onnx",
    ]


def test_missing_runtime_lists_what_is_offered():
    info = parse_model_info(PY_DIALECT)
    with pytest.raises(ModelInfoError, match=r"does not offer runtime 'torch'; it offers: onnx, rknn"):
        select_runtime_files(info, "torch")


def test_missing_device_and_precision_list_what_is_offered():
    info = parse_model_info(PY_DIALECT)
    with pytest.raises(ModelInfoError, match=r"no RKNN files for 'rk3566'; devices offered: rk3588, rk3576"):
        select_runtime_files(info, "rknn", device="rk3566")
    with pytest.raises(ModelInfoError, match=r"no int8 onnx file for 'text'; precisions offered: fp32, fp16"):
        select_runtime_files(info, "onnx", precision="int8")
    with pytest.raises(ModelInfoError, match="needs an rknn_device"):
        select_runtime_files(info, "rknn")


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("name"), "name"),
        (lambda d: d.pop("runtimes"), "runtimes"),
        (lambda d: d.update(runtimes={"tensorrt": {}}), "runtimes"),
        (lambda d: d["runtimes"]["onnx"].update(files="onnx/a.onnx"), "runtimes.onnx.files"),
        (lambda d: d["runtimes"]["onnx"]["files"].append("../../etc/passwd"), "runtimes.onnx.files[4]"),
        (lambda d: d["runtimes"]["onnx"].update(available="yes"), "runtimes.onnx.available"),
        (lambda d: d.update(embedding_dim=-3), "embedding_dim"),
        (lambda d: d["datasets"].update(bad=5), "datasets.bad"),
    ],
)
def test_errors_name_the_field(mutate, field):
    data = json.loads(json.dumps(PY_DIALECT))
    mutate(data)
    with pytest.raises(ModelInfoError) as info:
        parse_model_info(data)
    assert info.value.field_path == field
    assert field in str(info.value)


def test_bad_json_and_files(tmp_path):
    with pytest.raises(ModelInfoError, match="not valid JSON"):
        parse_model_info_bytes(b"{nope")
    with pytest.raises(ModelInfoError, match="file not found"):
        load_model_info(tmp_path)
    (tmp_path / "model_info.json").write_text(json.dumps(SEED))
    assert load_model_info(tmp_path).name == "MobileCLIP-L-14"


def test_an_unreadable_model_info_names_the_file_and_the_reason(tmp_path):
    (tmp_path / "model_info.json").mkdir()  # a folder where the file should be
    with pytest.raises(ModelInfoError) as info:
        load_model_info(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'model_info.json'}: cannot read it (")
    assert "Is a directory" in message and "readable file" in message


def test_unknown_keys_are_ignored():
    data = {**HUB_DIALECT, "future_key": {"x": 1}}
    assert parse_model_info(data).name == "siglip2-base-patch16-224"


@pytest.mark.parametrize(
    ("path", "component", "precision"),
    [
        ("onnx/vision.fp16.onnx", "vision", "fp16"),
        ("onnx/text.onnx", "text", None),
        ("rknn/rk3588/detection.int8.rknn", "detection", "int8"),
        ("torch/model.pt", "model", None),
        ("onnx/ch_PP-OCRv4_det_infer.onnx", "ch_PP-OCRv4_det_infer", None),
    ],
)
def test_weight_file_names(path, component, precision):
    wf = WeightFile.parse(path)
    assert (wf.component, wf.precision) == (component, precision)


REPO_PATHS = [
    ".gitattributes",
    "README.md",
    "model_info.json",
    "open_clip_config.json",
    "tokenizer.json",
    "vocab.txt",
    "TreeOfLife-200M.json",
    "TreeOfLife-200M.npy",
    "onnx/vision.fp16.onnx",
    "onnx/text.fp16.onnx",
    "onnx/preprocess.json",
    "rknn/rk3588/vision.fp16.rknn",
    "rknn/rk3588/quant.json",
    "extras/notes.txt",
]


def test_support_files_are_root_and_weight_folder_configs_but_not_datasets():
    info = parse_model_info(PY_DIALECT)
    weights = select_runtime_files(info, "onnx", precision="fp16")
    assert support_files(info, REPO_PATHS, weights) == [
        "open_clip_config.json",
        "tokenizer.json",
        "vocab.txt",
        "onnx/preprocess.json",
    ]


def test_support_files_follow_the_rknn_device_folder():
    info = parse_model_info(PY_DIALECT)
    weights = select_runtime_files(info, "rknn", device="rk3588")
    chosen = support_files(info, REPO_PATHS, weights)
    assert "rknn/rk3588/quant.json" in chosen and "onnx/preprocess.json" not in chosen
    assert "TreeOfLife-200M.json" not in chosen and "extras/notes.txt" not in chosen
