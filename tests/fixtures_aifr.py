"""Tiny MORPH, CACD (+ CACD-VS), FG-NET and AgeDB trees in the exact real on-disk formats (notes A3-A6).

Real folder and file names, the real CSV header and row shapes (including the three MORPH names whose gender
letter contradicts the CSV), CACD metadata written both as MATLAB v5 (``scipy.io.savemat``, the struct layout
of ``celebrity2000_meta.mat``) and as MATLAB v7.3/HDF5 (``h5py``, the layout of ``celebrity2000.mat``), and
tiny solid-colour JPEGs (no faces).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fixtures_utkface import jpeg_bytes, write_files

from facebench.data.agedb import write_agedb_bin

# ------------------------------------------------------------------------------------------------- MORPH

MORPH_HEADER = "id_num,picture_num,dob,doa,race,gender,facial_hair,age,age_diff,glasses,photo"
MORPH_CSV = "MORPH_nonCommercial/morph_2008_nonCommercial.csv"


@dataclass(frozen=True)
class MorphExpect:
    """What one valid row must read as (``sample_id`` = ``MORPH_nonCommercial/`` + photo)."""

    subject_id: str
    age: int
    gender: str
    race: str
    race_detail: str
    dob: str
    doa: str
    picture_num: int
    age_diff: int | None


#: Valid rows, verbatim, and how each must read. 1- and 2-digit picture numbers in names, a picture number
#: of 12, ages on the day of and the day before a birthday, 29 February, one-digit month/day, every race code.
MORPH_VALID: dict[str, MorphExpect] = {
    "320711,0,03/13/1971,10/12/2005,B,M,,34,,,Album2/320711_00M34.JPG":
        MorphExpect("320711", 34, "male", "black", "black", "1971-03-13", "2005-10-12", 0, None),
    "320711,12,03/13/1971,04/02/2008,B,M,,37,903.0,,Album2/320711_12M37.JPG":
        MorphExpect("320711", 37, "male", "black", "black", "1971-03-13", "2008-04-02", 12, 903),
    "318317,0,02/10/1964,08/09/2005,W,M,,41,,,Album2/318317_00M41.JPG":
        MorphExpect("318317", 41, "male", "white", "white", "1964-02-10", "2005-08-09", 0, None),
    "318317,1,02/10/1964,08/11/2005,W,M,,41,2.0,,Album2/318317_01M41.JPG":
        MorphExpect("318317", 41, "male", "white", "white", "1964-02-10", "2005-08-11", 1, 2),
    "9055,0,06/15/1950,07/01/2004,B,M,,54,,,Album2/009055_0M54.JPG":
        MorphExpect("9055", 54, "male", "black", "black", "1950-06-15", "2004-07-01", 0, None),
    "9055,1,06/15/1950,06/15/2005,B,M,,55,349,,Album2/009055_1M55.JPG":
        MorphExpect("9055", 55, "male", "black", "black", "1950-06-15", "2005-06-15", 1, 349),
    "100001,0,05/20/1980,05/19/2000,H,F,,19,,,Album2/100001_00F19.JPG":
        MorphExpect("100001", 19, "female", "others", "hispanic", "1980-05-20", "2000-05-19", 0, None),
    "100002,0,02/29/1984,02/28/2001,A,F,,16,,,Album2/100002_00F16.JPG":
        MorphExpect("100002", 16, "female", "asian", "asian", "1984-02-29", "2001-02-28", 0, None),
    "100002,1,02/29/1984,03/01/2001,A,F,,17,1.0,,Album2/100002_01F17.JPG":
        MorphExpect("100002", 17, "female", "asian", "asian", "1984-02-29", "2001-03-01", 1, 1),
    "100003,0,1/5/1970,12/31/1999,O,M,,29,,,Album2/100003_0M29.JPG":
        MorphExpect("100003", 29, "male", "others", "other", "1970-01-05", "1999-12-31", 0, None),
    "100004,0,07/04/1976,07/03/1992,W,F,,15,,,Album2/100004_00F15.JPG":
        MorphExpect("100004", 15, "female", "white", "white", "1976-07-04", "1992-07-03", 0, None),
}

#: Rows accepted with the CSV's labels whose file name contradicts them, and the reported conflict. The first
#: three are the release's own (A3); their dates are made up to fit the ages.
MORPH_CONFLICTS: dict[str, str] = {
    "307021,0,01/02/1977,06/01/2005,B,M,,28,,,Album2/307021_00F28.JPG":
        "file name gender 'F' but CSV gender 'M' (CSV kept)",
    "322863,0,03/03/1982,09/09/2005,B,F,,23,,,Album2/322863_00M23.JPG":
        "file name gender 'M' but CSV gender 'F' (CSV kept)",
    "282949,0,11/11/1966,12/12/2004,W,F,,38,,,Album2/282949_00M38.JPG":
        "file name gender 'M' but CSV gender 'F' (CSV kept)",
    "100005,0,04/04/1960,04/05/1990,B,M,,30,,,Album2/100005_00M31.JPG":
        "file name age 31 but CSV age 30 (CSV kept)",
    "100006,2,04/04/1960,04/05/1990,B,M,,30,,,Album2/100007_01M30.JPG":
        "file name id 100007 but CSV id_num 100006; file name picture number 01 but CSV picture_num 2 (CSV kept)",
}

#: Rejected rows and their reason. ``None`` as photo: located by CSV line (``MORPH_CSV:<line>``).
MORPH_MALFORMED: dict[str, tuple[str | None, str]] = {
    "100010,0,03/13/1971,10/12/2005,B,M,,34,,,,Album2/100010_00M34.JPG": (None, "12 fields instead of 11"),
    "100011,0,03/13/1971,10/12/2005,B,M,,34,,Album2/100011_00M34.JPG": (None, "10 fields instead of 11"),
    "100012,0,03/13/1971,10/12/2005,B,M,,35,,,Album2/100012_00M35.JPG":
        ("Album2/100012_00M35.JPG", "age 35 but dob 03/13/1971 and doa 10/12/2005 give 34"),
    "100013,0,03/13/1971,03/12/2005,B,M,,34,,,Album2/100013_00M34.JPG":
        ("Album2/100013_00M34.JPG", "age 34 but dob 03/13/1971 and doa 03/12/2005 give 33"),
    "100014,0,13/01/1970,10/12/2005,B,M,,35,,,Album2/100014_00M35.JPG":
        ("Album2/100014_00M35.JPG", "dob '13/01/1970' not a valid MM/DD/YYYY date"),
    "100015,0,1971-03-13,10/12/2005,B,M,,34,,,Album2/100015_00M34.JPG":
        ("Album2/100015_00M34.JPG", "dob '1971-03-13' not a valid MM/DD/YYYY date"),
    "100016,0,10/12/2005,03/13/1971,B,M,,34,,,Album2/100016_00M34.JPG":
        ("Album2/100016_00M34.JPG", "doa 03/13/1971 before dob 10/12/2005"),
    "100017,0,03/13/1971,10/12/2005,X,M,,34,,,Album2/100017_00M34.JPG":
        ("Album2/100017_00M34.JPG", "race code 'X' not one of B, W, A, H, O"),
    "100018,0,03/13/1971,10/12/2005,,M,,34,,,Album2/100018_00M34.JPG":
        ("Album2/100018_00M34.JPG", "race field empty"),
    "100019,0,03/13/1971,10/12/2005,B,U,,34,,,Album2/100019_00U34.JPG":
        ("Album2/100019_00U34.JPG", "gender code 'U' not M/F"),
    "100020,0,03/13/1971,10/12/2005,B,M,,abc,,,Album2/100020_00M34.JPG":
        ("Album2/100020_00M34.JPG", "age 'abc' not a whole number"),
    "100021,1,03/13/1971,10/12/2005,B,M,,34,2.5,,Album2/100021_01M34.JPG":
        ("Album2/100021_01M34.JPG", "age_diff '2.5' not a whole number of days"),
    "100022,0,03/13/1971,10/12/2005,B,M,,34,,,Album2/100022.JPG":
        (None, "photo 'Album2/100022.JPG' not like Album2/{id_num:06d}_{picture_num}{gender}{age}.JPG"),
    "100023,0,03/13/1971,10/12/2005,B,M,,34,,,../Album2/100023_00M34.JPG":
        (None, "photo '../Album2/100023_00M34.JPG' not like Album2/{id_num:06d}_{picture_num}{gender}{age}.JPG"),
    "100024,0,03/13/1971,10/12/2005,X,U,,34,,,Album2/100024_00M34.JPG":
        ("Album2/100024_00M34.JPG", "race code 'X' not one of B, W, A, H, O; gender code 'U' not M/F"),
    "100025,0,01/01/1850,01/01/1981,W,M,,131,,,Album2/100025_00M131.JPG":
        ("Album2/100025_00M131.JPG", "age 131 above 130"),
    "x100026,0,03/13/1971,10/12/2005,B,M,,34,,,Album2/100026_00M34.JPG":
        ("Album2/100026_00M34.JPG", "id_num 'x100026' not a whole number"),
}

#: Two rows naming the same photo (both rejected) and a valid row whose image file is absent.
MORPH_DUPLICATE_ROWS: tuple[str, ...] = (
    "100030,0,03/13/1971,10/12/2005,B,M,,34,,,Album2/100030_00M34.JPG",
    "100030,1,03/13/1971,10/13/2005,B,M,,34,1,,Album2/100030_00M34.JPG",
)
MORPH_NO_IMAGE_ROW = "100031,0,03/13/1971,10/12/2005,B,M,,34,,,Album2/100031_00M34.JPG"
#: An image in Album2/ that the CSV does not list (ignored).
MORPH_UNLISTED_IMAGE = "Album2/999999_00M20.JPG"


def morph_rows() -> list[str]:
    """Every data row of the fixture CSV, in file order (line ``i + 2`` for row ``i``)."""
    return [*MORPH_VALID, *MORPH_CONFLICTS, *MORPH_MALFORMED, *MORPH_DUPLICATE_ROWS, MORPH_NO_IMAGE_ROW]


def _photo(row: str) -> str:
    return row.rsplit(",", 1)[1]


def write_morph_tree(
    root: str | Path, rows: Sequence[str] | None = None, *, newline: str = "\n", images: bool = True,
    missing: Iterable[str] = (MORPH_NO_IMAGE_ROW,),
) -> Path:
    """``root/MORPH_nonCommercial/`` with the CSV (header + ``rows``, default :func:`morph_rows`) and an
    ``Album2/`` JPEG for each row's photo (except the ``missing`` rows' and malformed photo paths), plus an
    unlisted image and a hidden file. Returns ``root`` (the folder that contains MORPH_nonCommercial/)."""
    root = Path(root)
    rows = morph_rows() if rows is None else list(rows)
    folder = root / "MORPH_nonCommercial"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "morph_2008_nonCommercial.csv").write_bytes(
        (newline.join([MORPH_HEADER, *rows]) + newline).encode("utf-8")
    )
    if images:
        skip = {_photo(r) for r in missing}
        photos = sorted({_photo(r) for r in rows if _photo(r).startswith("Album2/") and _photo(r) not in skip})
        write_files(folder, [*photos, MORPH_UNLISTED_IMAGE, "Album2/.DS_Store"])
    return root


# -------------------------------------------------------------------------------------------------- CACD


@dataclass(frozen=True)
class CACDImage:
    """One entry of ``celebrityImageData`` (``feature`` is empty in the meta file)."""

    name: str
    age: int
    identity: int
    year: int
    rank: int
    lfw: int
    birth: int


#: Metadata entries whose file exists and that must be accepted (names with several underscores, a non-ASCII
#: letter to exercise the UTF-16 names of the v7.3 file).
CACD_VALID: tuple[CACDImage, ...] = (
    CACDImage("53_Robin_Williams_0001.jpg", 53, 1, 2004, 1, 1, 1951),
    CACDImage("54_Robin_Williams_0002.jpg", 54, 1, 2005, 1, 1, 1951),
    CACDImage("62_Robin_Williams_0003.jpg", 62, 1, 2013, 1, 1, 1951),
    CACDImage("23_Katie_Findlay_0013.jpg", 23, 2, 2013, 3, 0, 1990),
    CACDImage("16_Katie_Findlay_0001.jpg", 16, 2, 2006, 3, 0, 1990),
    CACDImage("49_Jean_Claude_Van_Damme_0005.jpg", 49, 3, 2009, 5, 0, 1960),
    CACDImage("24_Zoë_Kravitz_0002.jpg", 24, 4, 2012, 2, 0, 1988),
)

#: Metadata entries that must be rejected, with the reason. The first has a file whose name says 30.
CACD_META_REJECTED: dict[CACDImage, str] = {
    CACDImage("30_Robin_Williams_0004.jpg", 31, 1, 1982, 1, 1, 1951): "file name age 30 but metadata age 31",
    CACDImage("40_Katie_Findlay_0020.jpg", 40, 2, 2030, 3, 0, 1990): "image file missing",
}
#: An entry listed twice in the metadata (both rejected: "listed 2 times in the metadata").
CACD_DUPLICATE = CACDImage("25_Dup_Name_0001.jpg", 25, 5, 2004, 4, 0, 1979)

#: Files in CACD2000/ that the metadata does not list, and the reason they are rejected.
CACD_FILES_UNLISTED: dict[str, str] = {
    "33_Not_Listed_0001.jpg": "not listed in the metadata",
    "Robin_Williams_0001.jpg": "age 'Robin' not a whole number",
    "53_0001.jpg": "2 fields: expected {age}_{Name}_{index:04d}.jpg",
    "53_Robin__Williams_0001.jpg": "empty field: double, leading or trailing underscore",
    "_53_Robin_Williams_0001.jpg": "empty field: double, leading or trailing underscore",
    "53_Robin_Williams_1.jpg": "image index '1' not 4 digits",
    "53_Robin_Williams_0001.JPG": "not a CACD image name: extension is not lower-case '.jpg'",
    "53_Robin Williams_0001.jpg": "space in the name",
    "131_Robin_Williams_0001.jpg": "age 131 above 130",
    "README.txt": "not a CACD image name: does not end in '.jpg'",
}

#: ``celebrityData``: name, identity, birth, rank, lfw per celebrity.
CACD_CELEBRITIES: tuple[tuple[str, int, int, int, int], ...] = (
    ("Robin Williams", 1, 1951, 1, 1),
    ("Katie Findlay", 2, 1990, 3, 0),
    ("Jean Claude Van Damme", 3, 1960, 5, 0),
    ("Zoë Kravitz", 4, 1988, 2, 0),
    ("Dup Name", 5, 1979, 4, 0),
)


def cacd_metadata_entries() -> list[CACDImage]:
    """Every ``celebrityImageData`` entry of the fixture, in file order."""
    return [*CACD_VALID, *CACD_META_REJECTED, CACD_DUPLICATE, CACD_DUPLICATE]


def _column(values: Iterable[int], dtype: str) -> np.ndarray:
    return np.asarray(list(values), dtype=dtype).reshape(-1, 1)


def _cell(strings: Iterable[str]) -> np.ndarray:
    strings = list(strings)
    cell = np.empty((len(strings), 1), dtype=object)
    for i, text in enumerate(strings):
        cell[i, 0] = np.array([text])
    return cell


def write_cacd_meta_v5(path: str | Path, entries: Sequence[CACDImage] | None = None,
                       celebrities: Sequence[tuple[str, int, int, int, int]] = CACD_CELEBRITIES) -> Path:
    """``celebrity2000_meta.mat`` as released: MATLAB v5, 1x1 structs, fields and dtypes in the release's order."""
    import scipy.io

    entries = cacd_metadata_entries() if entries is None else list(entries)
    image_data = {  # insertion order = struct field order
        "age": _column((e.age for e in entries), "uint8"),
        "identity": _column((e.identity for e in entries), "uint16"),
        "year": _column((e.year for e in entries), "uint16"),
        "feature": np.zeros((0, 0), dtype=np.uint8),
        "rank": _column((e.rank for e in entries), "uint8"),
        "lfw": _column((e.lfw for e in entries), "uint8"),
        "birth": _column((e.birth for e in entries), "uint16"),
        "name": _cell(e.name for e in entries),
    }
    celebrity_data = {
        "name": _cell(c[0] for c in celebrities),
        "identity": _column((c[1] for c in celebrities), "uint16"),
        "birth": _column((c[2] for c in celebrities), "uint16"),
        "rank": _column((c[3] for c in celebrities), "uint8"),
        "lfw": _column((c[4] for c in celebrities), "uint8"),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"celebrityData": celebrity_data, "celebrityImageData": image_data})
    return path


_V73_HEADER = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jun  2 10:00:00 2014 HDF5 schema 1.00 ."


def write_cacd_mat_v73(path: str | Path, entries: Sequence[CACDImage] | None = None,
                       celebrities: Sequence[tuple[str, int, int, int, int]] = CACD_CELEBRITIES) -> Path:
    """``celebrity2000.mat`` as released: MATLAB v7.3 = HDF5 with a 512-byte MATLAB header; structs as groups,
    numbers as (1, N) float64, names as (1, N) object references to uint16 (UTF-16) char arrays in ``#refs#``."""
    import h5py

    entries = cacd_metadata_entries() if entries is None else list(entries)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w", userblock_size=512) as handle:
        refs = handle.create_group("#refs#")
        counter = iter(range(10**9))

        def chars(text: str) -> h5py.Reference:
            units = np.frombuffer(text.encode("utf-16-le"), dtype="<u2").reshape(-1, 1)
            dataset = refs.create_dataset(f"r{next(counter)}", data=units)
            dataset.attrs["MATLAB_class"] = np.bytes_("char")
            dataset.attrs["MATLAB_int_decode"] = np.int32(2)
            return dataset.ref

        def struct(name: str, numbers: dict[str, list[float]], names: list[str], extra: dict[str, np.ndarray]) -> None:
            group = handle.create_group(name)
            group.attrs["MATLAB_class"] = np.bytes_("struct")
            for field, values in numbers.items():
                dataset = group.create_dataset(field, data=np.asarray(values, dtype=np.float64).reshape(1, -1))
                dataset.attrs["MATLAB_class"] = np.bytes_("double")
            for field, values in extra.items():
                dataset = group.create_dataset(field, data=values)
                dataset.attrs["MATLAB_class"] = np.bytes_("double")
            references = np.array([chars(n) for n in names], dtype=h5py.ref_dtype).reshape(1, -1)
            dataset = group.create_dataset("name", data=references)
            dataset.attrs["MATLAB_class"] = np.bytes_("cell")

        struct("celebrityData",
               {"identity": [c[1] for c in celebrities], "birth": [c[2] for c in celebrities],
                "rank": [c[3] for c in celebrities], "lfw": [c[4] for c in celebrities]},
               [c[0] for c in celebrities], {})
        struct("celebrityImageData",
               {"age": [e.age for e in entries], "identity": [e.identity for e in entries],
                "year": [e.year for e in entries], "rank": [e.rank for e in entries],
                "lfw": [e.lfw for e in entries], "birth": [e.birth for e in entries]},
               [e.name for e in entries], {"feature": np.zeros((4, len(entries)), dtype=np.float64)})
    header = _V73_HEADER.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"
    with open(path, "r+b") as raw:
        raw.write(header.ljust(512, b"\x00"))
    return path


def write_cacd_tree(root: str | Path, *, meta: str | None = "v5") -> Path:
    """``root/CACD2000/`` with the files of :data:`CACD_VALID`, the first of :data:`CACD_META_REJECTED`, the
    duplicate, :data:`CACD_FILES_UNLISTED` and a hidden file; plus the metadata: ``meta="v5"`` writes
    ``celebrity2000_meta.mat``, ``"v73"`` writes ``celebrity2000.mat``, ``"both"`` both, ``None`` none."""
    root = Path(root)
    names = [e.name for e in CACD_VALID] + ["30_Robin_Williams_0004.jpg", CACD_DUPLICATE.name]
    write_files(root, [f"CACD2000/{n}" for n in (*names, *CACD_FILES_UNLISTED, ".DS_Store")])
    if meta in ("v5", "both"):
        write_cacd_meta_v5(root / "celebrity2000_meta.mat")
    if meta in ("v73", "both"):
        write_cacd_mat_v73(root / "celebrity2000.mat")
    return root


def write_cacd_vs_tree(root: str | Path, *, n_pairs: int = 4000, skip: Iterable[str] = (),
                       extra: Iterable[str] = ()) -> Path:
    """``root/CACD_VS/{pair:04d}_0.jpg`` / ``_1.jpg`` for pairs ``0..n_pairs-1`` (minus ``skip`` names, plus
    ``extra`` names); one tiny JPEG for all (the reader never opens them)."""
    folder = Path(root) / "CACD_VS"
    folder.mkdir(parents=True, exist_ok=True)
    data = jpeg_bytes()
    skip = set(skip)
    names = [f"{i:04d}_{side}.jpg" for i in range(n_pairs) for side in (0, 1)]
    for name in [n for n in names if n not in skip] + list(extra):
        (folder / name).write_bytes(data)
    return Path(root)


# ------------------------------------------------------------------------------------------------ FG-NET

#: Valid names and (subject_id, age, image_suffix or None); lower-case and ``.jpeg`` variants included.
FGNET_VALID: dict[str, tuple[str, int, str | None]] = {
    "001A02.JPG": ("001", 2, None),
    "001A43a.JPG": ("001", 43, "a"),
    "001A43b.JPG": ("001", 43, "b"),
    "078A11.JPG": ("078", 11, None),
    "002a05.jpg": ("002", 5, None),
    "002A10.jpeg": ("002", 10, None),
    "003A00.JPG": ("003", 0, None),
    "082A69.JPG": ("082", 69, None),
    "004a18B.JPG": ("004", 18, "B"),
}

#: Malformed names and the reason.
FGNET_MALFORMED: dict[str, str] = {
    "1A02.JPG": "subject '1' not 3 digits",
    "0001A02.JPG": "subject '0001' not 3 digits",
    "001B02.JPG": "no 'A' between subject and age: expected {subject:03d}A{age:02d}.JPG like 001A02.JPG",
    "001A2.JPG": "age '2' not 2 digits",
    "001A102.JPG": "age '102' not 2 digits",
    "001A02ab.JPG": "suffix 'ab' not one letter",
    "001A021.JPG": "age '021' not 2 digits",
    "001A02.png": "not an FG-NET image name: does not end in '.JPG'",
    "Thumbs.db": "not an FG-NET image name: does not end in '.JPG'",
}


def write_fgnet_tree(root: str | Path, *, malformed: bool = True) -> Path:
    """``root/FGNET/images/`` (+ ``FGNET/points/``, not read); returns ``root`` (the folder holding FGNET/)."""
    root = Path(root)
    names = list(FGNET_VALID) + (list(FGNET_MALFORMED) if malformed else [])
    write_files(root, [f"FGNET/images/{n}" for n in (*names, ".DS_Store")])
    write_files(root, ["FGNET/images/nested/001A03.JPG"])  # subfolders are not descended into
    points = root / "FGNET" / "points"
    points.mkdir(parents=True, exist_ok=True)
    (points / "001a02.pts").write_text("version: 1\nn_points: 68\n{\n}\n", encoding="ascii")
    return root


# ------------------------------------------------------------------------------------------------- AgeDB

#: Valid names and (subject_id, age, gender, gender_code, image_num).
AGEDB_VALID: dict[str, tuple[str, int, str, str, int]] = {
    "0_MariaCallas_35_f.jpg": ("MariaCallas", 35, "female", "f", 0),
    "1_MariaCallas_40_f.jpg": ("MariaCallas", 40, "female", "f", 1),
    "2_AlbertEinstein_70_m.jpg": ("AlbertEinstein", 70, "male", "m", 2),
    "16487_Mary_Ann_Evans_45_f.jpg": ("Mary_Ann_Evans", 45, "female", "f", 16487),
    "12_FritzLang_1_M.JPG": ("FritzLang", 1, "male", "M", 12),
    "13_FritzLang_85_m.jpg": ("FritzLang", 85, "male", "m", 13),
}

#: Malformed names and the reason.
AGEDB_MALFORMED: dict[str, str] = {
    "3_MariaCallas_35_x.jpg": "gender code 'x' not m/f",
    "MariaCallas_35_f.jpg": "3 fields instead of 4: expected {imgnum}_{Name}_{age}_{m|f}.jpg",
    "4_MariaCallas_f.jpg": "3 fields instead of 4: expected {imgnum}_{Name}_{age}_{m|f}.jpg",
    "5_MariaCallas_35_f.png": "not an AgeDB image name: does not end in '.jpg'",
    "6_MariaCallas_abc_f.jpg": "age 'abc' not a whole number",
    "x7_MariaCallas_35_f.jpg": "image number 'x7' not a whole number",
    "8__35_f.jpg": "empty name field",
    "10__Maria_35_f.jpg": "empty field or space in the name",
    "9_Maria Callas_35_f.jpg": "empty field or space in the name",
    "11_MariaCallas_131_f.jpg": "age 131 above 130",
}


def write_agedb_tree(root: str | Path, *, malformed: bool = True) -> Path:
    """``root/AgeDB/`` (flat); returns ``root`` (the folder holding AgeDB/)."""
    root = Path(root)
    names = list(AGEDB_VALID) + (list(AGEDB_MALFORMED) if malformed else [])
    write_files(root, [f"AgeDB/{n}" for n in (*names, ".DS_Store")])
    return root


def agedb_pairs(n_pairs: int) -> tuple[list[bytes], list[bool]]:
    """``2 * n_pairs`` distinct tiny JPEGs and labels alternating in blocks (True first), insightface style."""
    images = [jpeg_bytes((i % 256, (7 * i) % 256, (13 * i) % 256)) for i in range(2 * n_pairs)]
    issame = [(k // 3) % 2 == 0 for k in range(n_pairs)]
    return images, issame


def write_agedb_30_bin(path: str | Path, n_pairs: int = 6) -> Path:
    """A tiny ``agedb_30.bin`` written like the real (Python 2) one."""
    images, issame = agedb_pairs(n_pairs)
    return write_agedb_bin(path, images, issame)
