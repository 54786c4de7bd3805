"""Human 2AFC studies (facebench.study): the manifest and ratings readers refuse bad input in one sentence, the
rating page is blinded and reproducible, the rates and intervals match hand-worked cases and independent
transcriptions (statsmodels' Wilson interval and Fleiss' kappa), and a full round trip in headless Chromium
(clicks, keys, an undo, a reload that resumes, the CSV download) imports exactly the clicked rates."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from markupsafe import escape
from PIL import Image, PngImagePlugin
from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss
from statsmodels.stats.proportion import proportion_confint

from facebench.cli import main
from facebench.errors import UserInputError
from facebench.reports.bias_report import content_security_policy
from facebench.study import (
    RATINGS_HEADER,
    export_study,
    form_pairs,
    import_study,
    key_file_for,
    read_key,
    read_manifest,
    read_ratings,
    study_script,
)

DOMAINS = ("CelebC", "CelebO")
GROUPS = ("female", "male")


def make_manifest(folder: Path, *, per_cell: int = 3, domains=DOMAINS, groups=GROUPS, extra_rows=()) -> Path:
    """Tiny PNGs (8 px) for every domain × group, each carrying a text chunk that names its domain (the page must
    not pass it on), and the manifest listing them."""
    rng = np.random.default_rng(0)
    rows = [",".join(("image", "domain", "group", "source_id"))]
    for domain in domains:
        for group in groups:
            for k in range(per_cell):
                path = folder / "images" / domain / f"{group}_{k}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                info = PngImagePlugin.PngInfo()
                info.add_text("Comment", f"made by the {domain} run")
                Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(path, pnginfo=info)
                rows.append(f"images/{domain}/{group}_{k}.png,{domain},{group},src-{domain}-{group}-{k}")
    manifest = folder / "manifest.csv"
    manifest.write_text("\n".join([*rows, *extra_rows]) + "\n", encoding="utf-8")
    return manifest


def write_ratings(path: Path, key, rater: str, choices: dict[str, str]) -> Path:
    """A ratings file as the page writes it: ``choices`` maps pair code to left/right."""
    lines = [",".join(RATINGS_HEADER)]
    lines += [f"{key.study},{rater},{pair},{side},{1000 + i},2025-01-01T12:00:{i % 60:02d}.000Z"
              for i, (pair, side) in enumerate(choices.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def chosen_domain(key, pair: str, side: str) -> str:
    entry = next(p for p in key.pairs if p.pair == pair)
    return getattr(entry, side).domain


@pytest.fixture
def study(tmp_path: Path):
    manifest = make_manifest(tmp_path / "gen")
    page, key_path = export_study(manifest, tmp_path / "page" / "study.html", seed=3)
    return page, read_key(key_path)


# ------------------------------------------------------------------------------------------ manifest
@pytest.mark.parametrize(("extra", "header", "message"), [
    ([], "image,domain,group", r"line 1 is 'image,domain,group'; expected the header image,domain,group,source_id"),
    (["images/CelebC/female_0.png,CelebC,female"], None, r"line 14 has 3 fields; expected 4"),
    (["images/CelebC/female_0.png,CelebC,,x"], None, r"line 14 has an empty group"),
    (["../secret.png,CelebC,female,x"], None, r"line 14 names image '../secret.png', which is outside the manifest's folder"),
    (["/etc/hostname,CelebC,female,x"], None, r"line 14 names image '/etc/hostname', which is outside"),
    (["images/CelebC/female_0.png,CelebC,female,again"], None, r"line 14 lists image 'images/CelebC/female_0.png' again \(first on line 2\)"),
    (["images/none.png,CelebC,female,x"], None, r"line 14 names image 'images/none.png', which is not a file"),
    (["manifest.csv,CelebC,female,x"], None, r"line 14: image 'manifest.csv' is not an image"),
    (["images/CelebC/female_0.png,CelebC ,female,x"], None, r"line 14: domain 'CelebC ' has spaces around it"),
    (["images/x.png,CelebC," + "g" * 65 + ",x"], None, r"line 14: group 'g+… is longer than 64 characters"),
])
def test_bad_manifests_are_one_sentence_with_file_and_line(tmp_path: Path, extra, header, message) -> None:
    manifest = make_manifest(tmp_path, extra_rows=extra)
    if header is not None:
        manifest.write_text(header + "\n", encoding="utf-8")
    with pytest.raises(UserInputError) as error:
        read_manifest(manifest)
    text = str(error.value)
    assert text.startswith(f"Study manifest {manifest}") and "\n" not in text
    if message is not None:
        assert re.search(message, text), text


def test_manifest_needs_two_domains_and_both_in_every_group(tmp_path: Path) -> None:
    three = make_manifest(tmp_path / "a", domains=("A", "B", "C"))
    with pytest.raises(UserInputError, match=r"names 3 domains \('A', 'B', 'C'\); a 2AFC study compares exactly two"):
        read_manifest(three)
    lopsided = make_manifest(tmp_path / "b")
    (tmp_path / "b" / "images" / "other").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "b" / "images" / "other" / "x.png")
    lopsided.write_text(lopsided.read_text() + "images/other/x.png,CelebC,child,x\n")
    with pytest.raises(UserInputError, match=r"group 'child' has no image of domain 'CelebO'"):
        read_manifest(lopsided)


def test_a_link_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.png"
    Image.new("RGB", (4, 4)).save(outside)
    folder = tmp_path / "gen"
    manifest = make_manifest(folder, extra_rows=["images/link.png,CelebC,female,x"])
    (folder / "images" / "link.png").symlink_to(outside)
    with pytest.raises(UserInputError, match=r"line 14 names image 'images/link.png', which is outside"):
        read_manifest(manifest)


# --------------------------------------------------------------------------------------------- pairing
def test_pairs_are_within_groups_without_replacement_and_split_equally(tmp_path: Path) -> None:
    frame = read_manifest(make_manifest(tmp_path, per_cell=5))
    every = form_pairs(frame, DOMAINS, n_pairs=None, seed=0)
    assert len(every) == 10 and {p.group for p in every} == set(GROUPS)
    for pair in every:
        assert (pair.first.domain, pair.second.domain) == DOMAINS
        assert f"/{pair.group}_" in pair.first.image and f"/{pair.group}_" in pair.second.image
    images = [p.first.image for p in every] + [p.second.image for p in every]
    assert len(set(images)) == len(images) == 20
    seven = form_pairs(frame, DOMAINS, n_pairs=7, seed=0)
    assert [p.group for p in seven].count("female") == 4 and [p.group for p in seven].count("male") == 3
    assert form_pairs(frame, DOMAINS, n_pairs=7, seed=0) == seven != form_pairs(frame, DOMAINS, n_pairs=7, seed=1)
    with pytest.raises(UserInputError, match=r"--pairs 12 asks for 6 pairs of group 'female', which can give only 5"):
        form_pairs(frame, DOMAINS, n_pairs=12, seed=0)


# ---------------------------------------------------------------------------------------------- export
def test_the_page_is_blinded_offline_and_reproducible(tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "gen", per_cell=4)
    page, key_path = export_study(manifest, tmp_path / "one" / "study.html", seed=5, n_pairs=6)
    html = page.read_text(encoding="utf-8")
    key = read_key(key_path)
    assert key_path == key_file_for(page) == tmp_path / "one" / "study.key.json"
    assert len(key.pairs) == 6 and [p.position for p in key.pairs] == list(range(1, 7))
    # Nothing on the page names a domain, an image file or a source; the images are re-encoded without metadata.
    for secret in [*DOMAINS, "images/", "src-", "Comment", *GROUPS]:
        assert secret not in html, secret
    uris = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    assert len(uris) == 12
    for uri in uris:
        image = Image.open(io.BytesIO(base64.b64decode(uri)))
        assert image.format == "PNG" and image.mode == "RGB" and not image.info.get("Comment")
        assert b"CelebC" not in base64.b64decode(uri) and b"CelebO" not in base64.b64decode(uri)
    policy = content_security_policy(study_script())
    assert f'http-equiv="Content-Security-Policy" content="{escape(policy)}"' in html
    assert policy.startswith("default-src 'none'; img-src data:;")
    assert "http://" not in html and "https://" not in html
    # Sides are shuffled: both domains appear on the left.
    assert {p.left.domain for p in key.pairs} == set(DOMAINS)
    # Same manifest and seed: the same page and pairs; another seed: another order.
    again, again_key = export_study(manifest, tmp_path / "two" / "study.html", seed=5, n_pairs=6)
    assert again.read_bytes() == page.read_bytes()
    assert read_key(again_key).pairs == key.pairs
    _, other_key = export_study(manifest, tmp_path / "three" / "study.html", seed=6, n_pairs=6)
    assert read_key(other_key).pairs != key.pairs


def test_export_errors_write_nothing(tmp_path: Path, capsys) -> None:
    manifest = make_manifest(tmp_path / "gen", extra_rows=["../x.png,CelebC,female,x"])
    out = tmp_path / "out" / "study.html"
    assert main(["study", "export", str(manifest), "--out", str(out)]) == 2
    assert "which is outside the manifest's folder" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    good = make_manifest(tmp_path / "gen2")
    assert main(["study", "export", str(good), "--out", str(out), "--pairs", "0"]) == 2
    assert main(["study", "export", str(good), "--out", str(tmp_path / "page.txt")]) == 2
    assert main(["study", "export", str(good), "--out", str(out), "--group-attribute", "<b>"]) == 2
    assert not (tmp_path / "out").exists() and not (tmp_path / "page.txt").exists()


# --------------------------------------------------------------------------------------------- ratings
BAD_ROWS = [
    ("0000000000000000,r1,{pair},left,10,2025-01-01T00:00:00Z", "belongs to study '0000000000000000', not to this key's study"),
    ("{study},=cmd(),{pair},left,10,2025-01-01T00:00:00Z", "has rater id '=cmd()'"),
    ("{study},r1,ffffffffffff,left,10,2025-01-01T00:00:00Z", "rates pair 'ffffffffffff', which the key does not list"),
    ("{study},r1,{pair},middle,10,2025-01-01T00:00:00Z", "has chosen 'middle'; expected left or right"),
    ("{study},r1,{pair},left,-3,2025-01-01T00:00:00Z", "has response_ms '-3'"),
    ("{study},r1,{pair},left,\u00b2,2025-01-01T00:00:00Z", "has response_ms '\u00b2'"),
    ("{study},r1,{pair},left,10,yesterday", "has answered_at 'yesterday', which is not an ISO 8601 time"),
    ("{study},r1,{pair},left,10", "has 5 fields; expected 6"),
    ("{study},r1,{pair},left,10,2025-01-01T00:00:00Z\n{study},r1,{pair},right,10,2025-01-01T00:00:00Z",
     "line 3 rates pair {pair} by rater 'r1' again"),
]


@pytest.mark.parametrize(("row", "message"), BAD_ROWS)
def test_bad_ratings_are_one_sentence_exit_2_and_nothing_written(study, tmp_path: Path, capsys, row, message) -> None:
    page, key = study
    pair = key.pairs[0].pair
    path = tmp_path / "ratings.csv"
    path.write_text(",".join(RATINGS_HEADER) + "\n" + row.format(study=key.study, pair=pair) + "\n")
    with pytest.raises(UserInputError) as error:
        read_ratings([path], key)
    text = str(error.value)
    assert text.startswith(f"Ratings file {path}: line ") and message.format(pair=pair) in text, text
    out = tmp_path / "results"
    assert main(["study", "import", str(key_file_for(page)), str(path), "--out", str(out)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert not out.exists()


def test_ratings_header_empty_files_and_a_rating_repeated_across_files(study, tmp_path: Path) -> None:
    _, key = study
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("rater,pair,chosen\n")
    with pytest.raises(UserInputError, match=r"line 1 is 'rater,pair,chosen'; expected the header study,rater,"):
        read_ratings([wrong], key)
    empty = tmp_path / "empty.csv"
    empty.write_text(",".join(RATINGS_HEADER) + "\n")
    with pytest.raises(UserInputError, match=r"empty.csv has a header but no ratings"):
        read_ratings([empty], key)
    first = write_ratings(tmp_path / "a.csv", key, "r1", {key.pairs[0].pair: "left"})
    second = write_ratings(tmp_path / "b.csv", key, "r1", {key.pairs[0].pair: "right"})
    with pytest.raises(UserInputError, match=rf"b.csv: line 2 rates pair {key.pairs[0].pair} by rater 'r1' again "
                                             rf"\(first at {re.escape(str(first))}: line 2\)"):
        read_ratings([first, second], key)


# -------------------------------------------------------------------------------------------- analysis
def choose(key, rule) -> dict[str, str]:
    """Choices of a scripted rater: ``rule(pair) -> domain`` picked, turned into the side it is on."""
    return {p.pair: ("left" if p.left.domain == rule(p) else "right") for p in key.pairs}


def test_rates_and_intervals_match_hand_counts_and_statsmodels(study, tmp_path: Path) -> None:
    page, key = study
    # Rater a prefers CelebC for women only; rater b always CelebC; rater c alternates by position.
    rules = {"a": lambda p: "CelebC" if p.group == "female" else "CelebO", "b": lambda p: "CelebC",
             "c": lambda p: DOMAINS[p.position % 2]}
    files = [write_ratings(tmp_path / f"{r}.csv", key, r, choose(key, rule)) for r, rule in rules.items()]
    paths = import_study(key_file_for(page), files, tmp_path / "out", n_boot=400)
    results = json.loads(paths["json"].read_text())
    assert results["n_ratings"] == 3 * len(key.pairs) and results["n_raters"] == 3
    rows = {(p["group"], p["domain"]): p for p in results["preference"]}
    for group in ("all", *GROUPS):
        pairs = [p for p in key.pairs if group in ("all", p.group)]
        n = 3 * len(pairs)
        for domain in DOMAINS:
            k = sum(rule(p) == domain for rule in rules.values() for p in pairs)
            row = rows[(group, domain)]
            assert (row["n_chosen"], row["n_ratings"], row["n_raters"]) == (k, n, 3)
            assert row["rate"] == k / n
            assert row["wilson"] == pytest.approx(list(proportion_confint(k, n, alpha=0.05, method="wilson")), abs=1e-12)
            low, high = row["rater_bootstrap"]
            assert 0.0 <= low <= row["rate"] + 1e-12 and row["rate"] - 1e-12 <= high <= 1.0
        assert rows[(group, "CelebC")]["rate"] + rows[(group, "CelebO")]["rate"] == pytest.approx(1.0)
    # Every rater rated every pair: Fleiss' kappa on the pairs × domains table, as statsmodels computes it.
    table = np.array([[sum(rule(p) == d for rule in rules.values()) for d in DOMAINS] for p in key.pairs])
    assert results["agreement"]["statistic"] == "fleiss_kappa"
    assert results["agreement"]["kappa"] == pytest.approx(statsmodels_fleiss(table))
    assert results["agreement"]["n_items"] == len(key.pairs)
    # Per rater: rater b chose CelebC every time.
    b_all = next(r for r in results["per_rater"] if r["rater"] == "b" and r["group"] == "all")
    assert (b_all["rate"], b_all["n_chosen"]) == (1.0, len(key.pairs))
    assert "Fleiss' kappa" in paths["markdown"].read_text() and "Fleiss&#39; kappa" in paths["html"].read_text()


def test_the_rater_bootstrap_sees_raters_as_the_unit(study, tmp_path: Path) -> None:
    """Hand-worked: two raters of opposite taste (one always CelebC, one always CelebO) give a 50 % rate whose
    Wilson interval is narrow (ratings taken as independent) but whose rater-bootstrap interval spans [0, 1]
    (a draw of the same rater twice gives 0 % or 100 %). Two raters of identical taste give a rater interval of
    zero width (every draw is the same)."""
    page, key = study
    opposite = [write_ratings(tmp_path / "x.csv", key, "x", choose(key, lambda p: "CelebC")),
                write_ratings(tmp_path / "y.csv", key, "y", choose(key, lambda p: "CelebO"))]
    results = json.loads(import_study(key_file_for(page), opposite, tmp_path / "o", n_boot=400)["json"].read_text())
    overall = next(p for p in results["preference"] if p["group"] == "all" and p["domain"] == "CelebC")
    assert overall["rate"] == 0.5 and overall["rater_bootstrap"] == [0.0, 1.0]
    assert overall["wilson"][1] - overall["wilson"][0] < 0.5
    assert results["agreement"]["statistic"] == "cohen_kappa"
    same = [write_ratings(tmp_path / f"{r}.csv", key, r, choose(key, lambda p: DOMAINS[p.position % 2]))
            for r in ("s", "t")]
    results = json.loads(import_study(key_file_for(page), same, tmp_path / "s", n_boot=400)["json"].read_text())
    for row in results["preference"]:
        assert row["rater_bootstrap"] == pytest.approx([row["rate"], row["rate"]])
    assert results["agreement"]["kappa"] == pytest.approx(1.0)


def test_one_rater_has_no_rater_interval_and_synthetic_is_said_everywhere(tmp_path: Path) -> None:
    folder = tmp_path / "gen"
    manifest = make_manifest(folder)
    (folder / "SYNTHETIC.json").write_text("{}")
    page, key_path = export_study(manifest, tmp_path / "study.html", seed=0)
    assert "SYNTHETIC DATA" in page.read_text()
    key = read_key(key_path)
    assert key.synthetic
    ratings = write_ratings(tmp_path / "r.csv", key, "solo", choose(key, lambda p: "CelebO"))
    paths = import_study(key_path, [ratings], tmp_path / "out", n_boot=100)
    results = json.loads(paths["json"].read_text())
    assert results["synthetic"] and all(p["rater_bootstrap"] is None for p in results["preference"])
    assert "SYNTHETIC" in paths["markdown"].read_text() and "SYNTHETIC DATA" in paths["html"].read_text()
    assert results["statistics"]["rater_bootstrap"] == "not computed: one rater"


# ------------------------------------------------------------------------------------- in a real browser
@pytest.fixture(scope="module")
def chromium():
    from test_browser import Chromium, chromium_binary

    binary = chromium_binary()
    if binary is None:
        pytest.skip("chromium not found: apt-get install chromium (or set FACEBENCH_CHROMIUM to a Chrome binary)")
    browser = Chromium(binary)
    yield browser
    browser.close()


KEYS = {"f": ("f", "KeyF", 70), "j": ("j", "KeyJ", 74), "u": ("u", "KeyU", 85),
        "ArrowLeft": ("ArrowLeft", "ArrowLeft", 37), "ArrowRight": ("ArrowRight", "ArrowRight", 39)}


def press(browser, name: str) -> None:
    key, code, vk = KEYS[name]
    down = {"type": "keyDown", "key": key, "code": code, "windowsVirtualKeyCode": vk}
    if len(key) == 1:
        down["text"] = key
    browser.send("Input.dispatchKeyEvent", down, session=True)
    browser.send("Input.dispatchKeyEvent", {"type": "keyUp", "key": key, "code": code, "windowsVirtualKeyCode": vk},
                 session=True)


def wait_state(browser, state: str, index: int | None = None) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        now = browser.evaluate("[document.body.dataset.state, document.body.dataset.index]")
        if now[0] == state and (index is None or now[1] == str(index)):
            return
        time.sleep(0.01)
    raise AssertionError(f"page never reached {state} {index}: {now}")


def start(browser, page: Path, rater: str) -> None:
    browser.open(page)
    wait_state(browser, "intro")
    browser.click("#rater")
    browser.send("Input.insertText", {"text": rater}, session=True)
    browser.click("#start")


def answer(browser, index: int, how: str) -> None:
    """Answer pair ``index`` (0-based) by a click on a button or a key press."""
    wait_state(browser, "ready", index)
    if how in ("left", "right"):
        browser.click(f"#choose-{how}")
    else:
        press(browser, how)


def download(browser, folder: Path) -> Path:
    browser.send("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(folder), "eventsEnabled": True})
    browser.click("#download")
    while True:
        event = browser.wait_for("Browser.downloadProgress")
        if event["params"]["state"] != "inProgress":
            assert event["params"]["state"] == "completed", event
            return Path(event["params"]["filePath"])


SIDE_OF = {"left": "left", "right": "right", "f": "left", "j": "right", "ArrowLeft": "left", "ArrowRight": "right"}


def test_a_scripted_rater_round_trip_imports_exactly_the_clicked_rates(chromium, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "gen", per_cell=3)
    page, key_path = export_study(manifest, tmp_path / "page" / "study.html", seed=11, group_attribute="gender")
    key = read_key(key_path)
    n = len(key.pairs)
    assert n == 6
    scripts = {  # what each rater presses for pairs 0..5
        "ann": ["f", "j", "left", "ArrowRight", "right", "ArrowLeft"],
        "bo": ["j", "j", "j", "f", "f", "f"],
        "cy 3": ["left", "left", "j", "ArrowLeft", "right", "f"],
    }
    files = []
    for rater, presses in scripts.items():
        start(chromium, page, rater)
        assert chromium.evaluate("document.getElementById('progress-text').textContent") == f"Pair 1 of {n}"
        for i, how in enumerate(presses[:3]):
            answer(chromium, i, how)
        if rater == "ann":
            # A wrong key, then an undo: the third answer is taken back and given again the other way.
            answer(chromium, 3, "u")
            wait_state(chromium, "ready", 2)
            answer(chromium, 2, "j" if SIDE_OF[presses[2]] == "left" else "f")
            answer(chromium, 3, "u")
            answer(chromium, 2, presses[2])
            # Closing the page mid-way loses nothing: the answers so far are restored for the same rater.
            start(chromium, page, rater)
            wait_state(chromium, "ready", 3)
            assert chromium.evaluate("document.getElementById('progress').value") == 3
        for i, how in enumerate(presses[3:], start=3):
            answer(chromium, i, how)
        wait_state(chromium, "done")
        assert chromium.evaluate("document.body.innerText").count("CelebC") == 0
        folder = tmp_path / "downloads" / rater.replace(" ", "_")
        files.append(download(chromium, folder))
        assert chromium.problems() == []
        rows = list(csv.DictReader(files[-1].open(encoding="utf-8")))
        assert [r["pair"] for r in rows] == [p.pair for p in key.pairs]
        assert [r["chosen"] for r in rows] == [SIDE_OF[h] for h in presses]
        assert {r["rater"] for r in rows} == {rater} and all(int(r["response_ms"]) >= 0 for r in rows)

    out = tmp_path / "results"
    assert main(["study", "import", str(key_path), *map(str, files), "--out", str(out), "--n-boot", "200"]) == 0
    results = json.loads((out / "study.json").read_text())
    for group in ("all", *GROUPS):
        positions = [i for i, p in enumerate(key.pairs) if group in ("all", p.group)]
        for domain in DOMAINS:
            clicked = sum(chosen_domain(key, key.pairs[i].pair, SIDE_OF[presses[i]]) == domain
                          for presses in scripts.values() for i in positions)
            row = next(p for p in results["preference"] if p["group"] == group and p["domain"] == domain)
            assert (row["n_chosen"], row["n_ratings"]) == (clicked, 3 * len(positions))
            assert row["rate"] == clicked / (3 * len(positions))
    # The results page loads cleanly too.
    chromium.open(out / "study.html")
    assert chromium.problems() == []
    assert chromium.evaluate("document.querySelectorAll('table.study tbody tr').length") == 3
    assert chromium.evaluate("document.querySelector('table.study thead th').textContent") == "gender"


def test_a_damaged_key_is_one_sentence(study, tmp_path: Path) -> None:
    page, _ = study
    original = json.loads(key_file_for(page).read_text())
    bad = tmp_path / "key.json"

    def refused(change, message: str) -> None:
        doc = json.loads(json.dumps(original))
        change(doc)
        bad.write_text(json.dumps(doc))
        with pytest.raises(UserInputError, match=message):
            read_key(bad)

    refused(lambda d: d["pairs"][1].update(pair=d["pairs"][0]["pair"]), rf"Study key {bad} lists a pair code twice")
    refused(lambda d: d.pop("domains"), r"required key 'domains' is missing")
    refused(lambda d: d.update(extra=1), r"unknown key 'extra'")
    refused(lambda d: d["pairs"][0]["left"].update(domain=d["pairs"][0]["right"]["domain"]),
            r"does not show one image of each of CelebC, CelebO")
    bad.write_text("{")
    with pytest.raises(UserInputError, match=r"is not valid JSON"):
        read_key(bad)
