"""Images are checked where data is checked, once per file version, and caches are keyed by content.

Unit tests of :mod:`facebench.data.files` (verdicts, the per-file cache, pairs), the readers' listing of entries that
are not files, ``facebench data verify`` on a folder of broken images, the content-keyed fingerprint and image
store, and the cleaning of stale ``.partial`` folders. The end-to-end runs are in test_hostile_data.py.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from fixtures_broken import (
    BROKEN,
    add_broken_entries,
    noise_jpeg,
    png_header,
    replace_in_place,
    same_size_jpeg,
)
from fixtures_utkface import VALID_ALIGNED, write_files
from PIL import Image

import facebench.data.files as files
from facebench.cli import main
from facebench.data.datasets import UTKFACE, load_dataset
from facebench.data.files import MAX_PIXELS, check_images, image_problem, scan_images
from facebench.data.images import image_store
from facebench.data.table import ReadResult, face_table
from facebench.data.utkface import read_utkface
from facebench.errors import UserInputError

# ------------------------------------------------------------------------------------------- broken files


def test_the_broken_files_really_are_broken_for_pil(tmp_path: Path) -> None:
    # the controls: each file fails in PIL as it stands, without facebench's check
    truncated = Image.open(io.BytesIO(BROKEN["30_0_0_20990101000000002.jpg.chip.jpg"][0]))
    with pytest.raises(OSError, match="truncated"):
        truncated.load()
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(png_header(20000, 20000)))
    assert Image.open(io.BytesIO(png_header(8000, 8000))).size == (8000, 8000)  # PIL alone would decode 64 MP
    assert image_problem(io.BytesIO(noise_jpeg(1))) is None


@pytest.mark.parametrize("name", [name for name, (data, _) in BROKEN.items() if data])  # zero bytes: from its size
def test_image_problem_names_each_reason(name: str) -> None:
    data, reason = BROKEN[name]
    assert image_problem(io.BytesIO(data)).startswith(reason)


def test_the_pixel_limit_is_50_megapixels() -> None:
    assert MAX_PIXELS == 50_000_000
    assert image_problem(io.BytesIO(png_header(7071, 7071))).startswith("truncated")  # 49.99 MP: decoded (no data)
    assert image_problem(io.BytesIO(png_header(7072, 7071))).startswith("too large: 7072×7071")


# ------------------------------------------------------------------------------------------- readers


def test_entries_that_are_not_files_are_rejected_by_the_reader_and_never_block_it(tmp_path: Path) -> None:
    folder = tmp_path / "UTKFace"
    write_files(tmp_path, [f"UTKFace/{n}" for n in VALID_ALIGNED])
    expected = add_broken_entries(folder)
    (folder / "nested").mkdir()  # a folder without an image name is still skipped silently
    result = read_utkface(tmp_path)
    assert len(result.table) == len(VALID_ALIGNED) + len(BROKEN)  # the reader parses names; images are checked next
    listed = {r.sample_id.split("/", 1)[1]: r.reason for r in result.rejected}
    assert listed == {name: reason for name, reason in expected.items() if name not in BROKEN}
    assert [r.sample_id for r in result.rejected] == sorted(r.sample_id for r in result.rejected)


def test_the_aifr_readers_name_links_and_folders_too(tmp_path: Path) -> None:
    from facebench.data.agedb import read_agedb
    from facebench.data.fgnet import read_fgnet

    write_files(tmp_path, ["FGNET/images/001A02.JPG", "AgeDB/0_MariaCallas_35_f.jpg"])
    (tmp_path / "FGNET/images/001A05.JPG").symlink_to(tmp_path / "FGNET/images/001A05.JPG")
    (tmp_path / "AgeDB/1_MariaCallas_40_f.jpg").mkdir()
    assert [(r.sample_id, r.reason) for r in read_fgnet(tmp_path).rejected] == [
        ("FGNET/images/001A05.JPG", "symbolic link loop")]
    assert [(r.sample_id, r.reason) for r in read_agedb(tmp_path).rejected] == [
        ("AgeDB/1_MariaCallas_40_f.jpg", "a folder, not an image file")]


# ------------------------------------------------------------------------------------------- data verify


@pytest.fixture()
def broken_tree(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "utk"
    write_files(root, [f"UTKFace/{n}" for n in VALID_ALIGNED])
    return root, add_broken_entries(root / "UTKFace")


def test_data_verify_rejects_every_broken_file_with_its_reason(broken_tree, tmp_path: Path, capsys) -> None:
    root, expected = broken_tree
    cache = tmp_path / "cache"
    assert main(["data", "verify", "utkface", "--root", str(root), "--cache-dir", str(cache), "--json",
                 "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_samples"] == len(VALID_ALIGNED)
    assert summary["n_rejected"] == len(expected)
    reasons = {r["sample_id"]: r["reason"] for r in summary["rejected"]}
    assert set(reasons) == {f"UTKFace/{name}" for name in expected}
    for name, reason in expected.items():
        assert reasons[f"UTKFace/{name}"].startswith(reason)
    assert main(["data", "verify", "utkface", "--root", str(root), "--cache-dir", str(cache), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert f"{len(VALID_ALIGNED)} images accepted, {len(expected)} rejected" in text
    assert "rejected UTKFace/30_0_0_20990101000000001.jpg.chip.jpg: zero-byte file" in text


def test_a_folder_of_only_broken_images_is_one_sentence(tmp_path: Path, capsys) -> None:
    write_files(tmp_path, [f"UTKFace/{n}" for n in VALID_ALIGNED[:2]], content=b"not a jpeg")
    assert main(["data", "verify", "utkface", "--root", str(tmp_path), "--cache-dir", str(tmp_path / "c"),
                 "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"facebench: error: No utkface image under {tmp_path} decodes: all 2 images with valid "
                            "names were rejected, e.g. 'UTKFace/")
    assert error.count("\n") == 1


def test_load_dataset_leaves_broken_images_out_and_lists_them(broken_tree, tmp_path: Path) -> None:
    root, expected = broken_tree
    dataset = load_dataset(UTKFACE, variant="aligned", synthetic_settings=None, data_root=root,
                           cache_dir=tmp_path / "cache", progress=False)
    assert sorted(dataset.table["sample_id"]) == sorted(f"UTKFace/{n}" for n in VALID_ALIGNED)
    assert {r.sample_id for r in dataset.rejected} == {f"UTKFace/{n}" for n in expected}
    store = image_store(dataset.root, list(dataset.table["sample_id"]), 8, tmp_path / "cache", progress=False)
    assert store.shape == (len(VALID_ALIGNED), 3, 8, 8)


def test_a_rejected_image_takes_its_pair_partner_with_it(tmp_path: Path) -> None:
    write_files(tmp_path, ["P/a0.jpg", "P/a1.jpg", "P/b0.jpg"])
    (tmp_path / "P/b1.jpg").write_bytes(b"")
    table = face_table(sample_id=["P/a0.jpg", "P/a1.jpg", "P/b0.jpg", "P/b1.jpg"],
                       pair_id=np.array([0, 0, 1, 1]))
    checked = check_images(ReadResult(table=table, rejected=()), tmp_path, cache_dir=tmp_path / "c", progress=False)
    assert checked.result.table["sample_id"].tolist() == ["P/a0.jpg", "P/a1.jpg"]
    assert [(r.sample_id, r.reason) for r in checked.result.rejected] == [
        ("P/b0.jpg", "the other image of its pair, 'P/b1.jpg', was rejected"), ("P/b1.jpg", "zero-byte file")]


def test_images_inside_an_agedb_pack_are_checked_and_hashed(tmp_path: Path) -> None:
    from facebench.data.agedb import write_agedb_bin

    images = [noise_jpeg(1), noise_jpeg(2), noise_jpeg(3), noise_jpeg(4)[:700]]
    write_agedb_bin(tmp_path / "agedb_30.bin", images, [True, False])
    ids = [f"agedb_30.bin#{k:05d}" for k in range(4)]
    facts = scan_images(tmp_path, ids, cache_dir=tmp_path / "c", progress=False)
    assert [f.problem for f in facts.values()][:3] == [None, None, None]
    assert facts[ids[3]].problem.startswith("truncated")
    assert len({f.digest for f in facts.values()}) == 4


# ------------------------------------------------------------------------------------------- once per file version


class _Counting:
    """Counts the calls of a function of :mod:`facebench.data.files` (patched in)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
        self.calls: list[object] = []
        original = getattr(files, name)

        def counted(*args, **kwargs):
            self.calls.append(args[0])
            return original(*args, **kwargs)

        monkeypatch.setattr(files, name, counted)


def test_verdicts_and_hashes_are_cached_per_file_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "RACY_SECONDS", 0.0)  # trust entries at once: only the stat key decides
    names = [f"UTKFace/{n}" for n in VALID_ALIGNED]
    for i, name in enumerate(names):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(noise_jpeg(i))
    decoded, hashed = _Counting(monkeypatch, "image_problem"), _Counting(monkeypatch, "_hash_file")
    scan_images(tmp_path, names, cache_dir=tmp_path / "c", progress=False)
    assert len(decoded.calls) == len(hashed.calls) == len(names)
    again = scan_images(tmp_path, names, cache_dir=tmp_path / "c", progress=False)
    assert len(decoded.calls) == len(hashed.calls) == len(names)  # nothing read: one stat per file
    time.sleep(0.05)  # past one tick of the filesystem clock, so the rewrite gets a new change time

    target = tmp_path / names[0]
    before = target.stat()
    replacement = same_size_jpeg(noise_jpeg(99), before.st_size)
    with open(target, "r+b") as handle:  # in place: same inode
        handle.write(replacement)
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))  # and the old modification time put back
    after = target.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    third = scan_images(tmp_path, names, cache_dir=tmp_path / "c", progress=False)
    assert hashed.calls[len(names):] == [target] and decoded.calls[len(names):] == [target]
    assert third[names[0]].digest != again[names[0]].digest
    assert all(third[n] == again[n] for n in names[1:])


def test_an_entry_recorded_right_after_a_change_is_rehashed_but_not_decoded_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.jpg").write_bytes(noise_jpeg(5))
    decoded, hashed = _Counting(monkeypatch, "image_problem"), _Counting(monkeypatch, "_hash_file")
    for _ in range(2):  # just written: within RACY_SECONDS of its change time, so never trusted
        scan_images(tmp_path, ["a.jpg"], cache_dir=tmp_path / "c", progress=False)
    assert len(hashed.calls) == 2 and len(decoded.calls) == 1  # same bytes: the verdict is reused


def test_a_damaged_index_is_ignored_and_rebuilt(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(noise_jpeg(5))
    first = scan_images(tmp_path, ["a.jpg"], cache_dir=tmp_path / "c", progress=False)
    (index,) = (tmp_path / "c" / "files").glob("*.json")
    for damage in ("{not json", json.dumps({"version": 1, "files": {"a.jpg": [[1, 2, 3, 4, 5], "x", None, True]}}),
                   json.dumps({"version": 1, "files": {"a.jpg": "junk"}}), "[]"):
        index.write_text(damage)
        assert scan_images(tmp_path, ["a.jpg"], cache_dir=tmp_path / "c", progress=False) == first


# ------------------------------------------------------------------------------------------- content keys


def test_same_size_jpeg_decodes_to_the_other_pixels() -> None:
    original, other = noise_jpeg(1), noise_jpeg(2)
    replaced = same_size_jpeg(other, len(original))
    assert len(replaced) == len(original) and replaced != original
    decoded = np.asarray(Image.open(io.BytesIO(replaced)))
    assert np.abs(decoded.astype(int) - np.asarray(Image.open(io.BytesIO(other))).astype(int)).mean() < 20


def test_replacing_images_under_the_same_names_changes_fingerprint_and_store(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "RACY_SECONDS", 0.0)  # so that only the stat key (with ctime) can notice
    names = [f"UTKFace/{n}" for n in VALID_ALIGNED]
    for i, name in enumerate(names):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(noise_jpeg(i))

    def load():
        dataset = load_dataset(UTKFACE, variant="aligned", synthetic_settings=None, data_root=tmp_path,
                               cache_dir=tmp_path / "cache", progress=False)
        ids = list(dataset.table["sample_id"])
        # the store is keyed by content itself, whatever key its caller passes
        return dataset.fingerprint(), np.array(image_store(dataset.root, ids, 16, tmp_path / "cache", progress=False))

    fingerprint, pixels = load()
    assert load()[0] == fingerprint
    time.sleep(0.05)
    for i, name in enumerate(names):
        replace_in_place(tmp_path / name, noise_jpeg(1000 + i))
    new_fingerprint, new_pixels = load()
    assert new_fingerprint != fingerprint
    assert (np.abs(new_pixels.astype(int) - pixels.astype(int)).reshape(len(names), -1).mean(axis=1) > 10).all()
    assert len(list((tmp_path / "cache" / "images").glob("*.npy"))) == 2


def test_an_image_that_breaks_after_the_read_is_one_sentence(tmp_path: Path) -> None:
    names = [f"UTKFace/{n}" for n in VALID_ALIGNED]
    write_files(tmp_path, names)
    dataset = load_dataset(UTKFACE, variant="aligned", synthetic_settings=None, data_root=tmp_path,
                           cache_dir=tmp_path / "cache", progress=False)
    (tmp_path / names[3]).write_bytes(b"")
    with pytest.raises(UserInputError) as error:
        image_store(dataset.root, names, 8, tmp_path / "cache", progress=False)
    assert str(error.value) == (f"Image '{names[3]}' under {tmp_path} is now rejected (zero-byte file) though it was "
                                "accepted when the dataset was read: it changed during the run; run the same "
                                "command again.")


def test_a_damaged_store_in_the_cache_is_rebuilt(tmp_path: Path) -> None:
    names = [f"UTKFace/{n}" for n in VALID_ALIGNED]
    write_files(tmp_path, names)
    first = np.array(image_store(tmp_path, names, 8, tmp_path / "cache", progress=False))
    (path,) = (tmp_path / "cache" / "images").glob("*.npy")
    path.write_bytes(path.read_bytes()[:200])
    np.testing.assert_array_equal(image_store(tmp_path, names, 8, tmp_path / "cache", progress=False), first)


# ------------------------------------------------------------------------------------------- .partial folders


def test_stale_partial_folders_are_removed_before_the_next_write(tmp_path: Path) -> None:
    from facebench.data.synth import SynthConfig, write_utkface
    from facebench.io import STALE_PARTIAL_SECONDS, _host_tag

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(dead.stdout)
    out = tmp_path / "utk"
    stale = tmp_path / f".utk.{_host_tag()}-{dead_pid}.abc123de.partial"
    ours = tmp_path / f".utk.{_host_tag()}-{os.getpid()}.def456gh.partial"  # a build in progress: kept
    old_style = tmp_path / ".utk.x1y2z3_w.partial"  # an older facebench's, from before owners were named
    recent_old_style = tmp_path / ".utk.q9r8s7tu.partial"
    other = tmp_path / ".utk.v2.x1y2z3ab.partial"  # target utk.v2's: not ours to judge, however old
    for folder in (stale, ours, old_style, recent_old_style, other):
        (folder / "UTKFace").mkdir(parents=True)
    long_ago = time.time() - STALE_PARTIAL_SECONDS - 60
    os.utime(old_style, (long_ago, long_ago))
    os.utime(other, (long_ago, long_ago))
    write_utkface(out, SynthConfig(n=20, seed=0, image_size=32))
    assert (out / "SYNTHETIC.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")) == sorted(
        p.name for p in (ours, recent_old_style, other))


def test_a_killed_synth_leaves_no_partial_folder_after_the_next_start(tmp_path: Path) -> None:
    out = tmp_path / "utk"
    command = [sys.executable, "-m", "facebench", "data", "synth", "utkface", "--out", str(out), "--n", "3000",
               "--size", "64"]
    env = {**os.environ, "FACEBENCH_NO_PROGRESS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    try:
        while not any((tmp_path / name).is_dir() for name in os.listdir(tmp_path) if name.endswith(".partial")):
            assert time.time() < deadline and process.poll() is None, "the write finished before it could be killed"
            time.sleep(0.02)
        time.sleep(0.3)
    finally:
        process.kill()
        process.wait()
    assert not out.exists() and [n for n in os.listdir(tmp_path) if n.endswith(".partial")]
    subprocess.run([*command[:-4], "--n", "20", "--size", "32"], env=env, check=True, capture_output=True)
    assert (out / "SYNTHETIC.json").is_file()
    assert [n for n in os.listdir(tmp_path) if n.endswith(".partial")] == []
