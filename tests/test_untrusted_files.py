"""Nothing executes from data: every file facebench reads that could hold a pickle (weights given as ``init:`` or
``model.pretrained``, ``agedb_30.bin``, a predictions ``.npz``) is loaded so that a planted pickle is refused in one
sentence and never runs. Checkpoints have their own tests in test_training.py and test_hostile_data.py."""

from __future__ import annotations

import io
import os
import pickle
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_utkface import jpeg_bytes

from facebench.data.agedb import read_agedb_bin
from facebench.errors import UserInputError


class _Planted:
    """Unpickling this runs ``os.system("touch MARKER")``: the classic planted pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def test_the_planted_pickle_runs_under_a_plain_unpickler(tmp_path: Path) -> None:
    # the control: without the restrictions below, this file would run a shell command
    pickle.loads(pickle.dumps(_Planted(tmp_path / "ran"), protocol=2))
    assert (tmp_path / "ran").exists()


# ------------------------------------------------------------------------------------------- agedb_30.bin


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_agedb_pack_refuses_a_planted_os_system(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "agedb_30.bin"
    path.write_bytes(pickle.dumps(([_Planted(marker), jpeg_bytes()], [True]), protocol=protocol))
    with pytest.raises(UserInputError) as error:
        read_agedb_bin(path)
    assert not marker.exists()
    assert str(error.value) == (f"Verification pack {path} is not an insightface .bin pickle (global 'posix.system' "
                                "is not allowed in a verification pack).")


def _pickle_calling(module: str, name: str, *args: bytes) -> bytes:
    """A protocol-2 pickle whose only content is ``module.name(*args)`` (args as short byte strings)."""
    body = b"".join(b"U" + bytes([len(a)]) + a for a in args)
    return b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n(" + body + b"tR."


@pytest.mark.parametrize("module, name, args, refused", [
    ("builtins", "eval", (b"1",), "global 'builtins.eval'"),
    ("__builtin__", "getattr", (), "global '__builtin__.getattr'"),
    ("numpy", "load", (b"x",), "global 'numpy.load'"),
    ("_codecs", "encode", (b"x", b"rot13"), "_codecs.encode with codec 'rot13'"),
    ("numpy", "dtype", (b"O8",), "numpy dtype 'O8'"),
])
def test_agedb_pack_stand_ins_build_only_the_formats_types(tmp_path: Path, module, name, args, refused) -> None:
    path = tmp_path / "agedb_30.bin"
    path.write_bytes(_pickle_calling(module, name, *args))
    with pytest.raises(UserInputError, match=rf"\({refused} is not allowed in a verification pack\)\.$"):
        read_agedb_bin(path)


def test_agedb_pack_refuses_object_arrays_and_array_subclasses(tmp_path: Path) -> None:
    images = [jpeg_bytes(), jpeg_bytes((1, 2, 3))]
    objects = tmp_path / "objects.bin"
    objects.write_bytes(pickle.dumps((np.array(images, dtype=object), [True]), protocol=2))
    with pytest.raises(UserInputError, match=r"numpy dtype 'O8' is not allowed"):
        read_agedb_bin(objects)
    masked = tmp_path / "masked.bin"
    masked.write_bytes(pickle.dumps((images, np.ma.array([True])), protocol=2))
    with pytest.raises(UserInputError, match=r"global 'numpy.ma.core._mareconstruct' is not allowed"):
        read_agedb_bin(masked)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_agedb_pack_still_reads_uint8_image_arrays_and_bool_labels(tmp_path: Path, protocol: int) -> None:
    images = [jpeg_bytes(), jpeg_bytes((1, 2, 3))]
    path = tmp_path / "agedb_30.bin"
    labels = [np.bool_(True)]
    path.write_bytes(pickle.dumps(([np.frombuffer(b, np.uint8) for b in images], labels), protocol=protocol))
    got, issame = read_agedb_bin(path)
    assert got == images and issame.tolist() == [True]


# ------------------------------------------------------------------------------------------- weights files


def _planted_weights(path: Path, marker: Path) -> Path:
    torch.save({"weight": torch.zeros(2), "hook": _Planted(marker)}, path)
    return path


def test_model_pretrained_weights_never_run_a_planted_pickle(tmp_path: Path) -> None:
    from facebench.baselines.nets import build_backbone

    marker = tmp_path / "ran"
    path = _planted_weights(tmp_path / "weights.pth", marker)
    with pytest.raises(UserInputError) as error:
        build_backbone("resnet18", pretrained=str(path))
    assert not marker.exists()
    assert str(error.value) == (f"model.pretrained: {path} is not a readable torch state dict of tensors "
                                "(UnpicklingError).")
    truncated = tmp_path / "truncated.pth"
    torch.save(torch.nn.Linear(2, 2).state_dict(), truncated)
    truncated.write_bytes(truncated.read_bytes()[:100])
    with pytest.raises(UserInputError, match=r"^model.pretrained: .*truncated.pth is not a readable torch state"):
        build_backbone("resnet18", pretrained=str(truncated))


def test_init_weights_never_run_a_planted_pickle(tmp_path: Path) -> None:
    from facebench.baselines.face_recognition import FaceEmbedder, _load_embedder

    marker = tmp_path / "ran"
    path = _planted_weights(tmp_path / "encoder.pt", marker)
    embedder = FaceEmbedder(backbone="small_cnn", embedding_dim=4)
    with pytest.raises(UserInputError) as error:
        _load_embedder(embedder, str(path), where="baseline arcface: params.init")
    assert not marker.exists()
    assert str(error.value) == (f"baseline arcface: params.init: {path} is not a readable torch state dict of "
                                "tensors (UnpicklingError).")


# ------------------------------------------------------------------------------------------- predictions .npz


def test_predictions_npz_never_unpickles_an_object_array(tmp_path: Path) -> None:
    from facebench.tasks.face_recognition import read_npz_matrix

    marker = tmp_path / "ran"
    buffer = io.BytesIO()
    np.savez(buffer, sample_id=np.array([_Planted(marker)], dtype=object), embedding=np.ones((1, 4)))
    path = tmp_path / "predictions.npz"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(UserInputError, match=r"not a readable \.npz archive \(Object arrays cannot be loaded"):
        read_npz_matrix(path, ("a",), accepted={"embedding": False})
    assert not marker.exists()
