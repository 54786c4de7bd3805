"""A deterministic, vectorised procedural face renderer: simple cartoon faces whose age, gender and group are
visible, with capture noise.

:func:`render_faces` turns the table of :func:`facebench.data.synth.population.sample_population` into RGB
images. It works on chunks of faces at once: every per-face parameter is a ``(B, 1, 1)`` array broadcast
against the ``(H, W)`` pixel grid, so there is no Python loop over pixels (only a short per-face loop that
draws each face's noise from its own ``noise_seed``, which makes the output independent of the chunk size).

Coordinates: the image spans [-1, 1] in both directions, ``y`` downwards. Each face is drawn in its own
frame (rolled, scaled and shifted by the pose parameters) centred on the head; lengths are in image units.

What is visible, and what drives it:

* identity: head shape (``face_width``, ``face_height``, ``jaw``), eye spacing/size, nose, mouth, skin
  colour, hair colour and style, iris colour;
* age (true age): child proportions (rounder head, larger eyes lower on the face, smaller nose, mouth and
  chin, sparse baby hair, rosy cheeks), fading out smoothly by 18;
* age (cue age ``18 + (age - 18) * aging_rate``): forehead and frown lines, crow's feet, under-eye lines,
  nasolabial and marionette folds, skin texture and blotches/age spots, narrower eyes, thinner lips, greying
  hair and a receding hairline (scaled by the per-person ``balding``, high for men);
* gender: jaw, brow thickness and arch, lip colour and fullness, hair length (all drawn per person);
* capture: pose (yaw-like shift of the inner features, roll, scale, shift), lighting (direction, shading,
  gradient), sensor noise, background (plain or gradient); the JPEG quality is applied by the writer.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

F32 = np.float32

#: Wrinkle line half-width in image units: lines are about two pixels wide at 64 px.
WRINKLE_HALF_WIDTH = 0.034
#: Darkening of a wrinkle line at full intensity, for a skin of luma :data:`CUE_REFERENCE_LUMA`.
WRINKLE_DARKNESS = 0.62
#: How skin-tone independent the *contrast* of the skin age cues (wrinkles, texture, blotches, age spots) is.
#: The cues are a relative modulation ``M`` of the skin colour designed for a skin of luma
#: :data:`CUE_REFERENCE_LUMA`; each face applies ``skin * max(1 + M * gain, 0)`` with
#: ``gain = (1 - CUE_CONTRAST_ABSOLUTE) + CUE_CONTRAST_ABSOLUTE * CUE_REFERENCE_LUMA / skin_luma``.
#: 0 is purely multiplicative (the absolute contrast of wrinkles scales with skin lightness, so on dark skin
#: they are much fainter: a second, uncontrolled group shift besides ``aging_rate``); 1 gives every skin
#: tone the same absolute luminance change (clipped at black).
CUE_CONTRAST_ABSOLUTE = 1.0
CUE_REFERENCE_LUMA = 0.6
#: Head centre, in image units (slightly above the image centre, like UTKFace's aligned crops).
HEAD_CENTRE_Y = -0.06
#: Low-resolution noise grids (upsampled bilinearly, in image coordinates, so they look the same at any size).
TEXTURE_GRID = 44
BLOTCH_GRID = 9
STREAK_GRID = (5, 36)
GREY_HAIR = (0.80, 0.79, 0.77)
#: Pixels per render chunk for :func:`default_chunk_size`.
CHUNK_PIXELS = 65536

#: Columns :func:`render_faces` reads when present (absent: 0), so tables written before they existed still render.
OPTIONAL_RENDER_COLUMNS: tuple[str, ...] = ("cue_age_offset",)
#: Columns :func:`render_faces` reads.
RENDER_COLUMNS: tuple[str, ...] = (
    "age", "aging_rate", "skin_r", "skin_g", "skin_b", "hair_r", "hair_g", "hair_b", "iris_r", "iris_g",
    "iris_b", "bg_r", "bg_g", "bg_b", "bg2_r", "bg2_g", "bg2_b", "shirt_r", "shirt_g", "shirt_b",
    "face_width", "face_height", "jaw", "eye_spacing", "eye_size", "nose_length", "nose_width",
    "mouth_width", "lip_thickness", "smile", "brow_thickness", "brow_arch", "lip_redness", "hair_length",
    "hair_volume", "fringe", "balding", "grey_onset", "yaw", "roll", "scale", "shift_x", "shift_y",
    "light_azimuth", "light_elevation", "light_strength", "shading", "bg_angle", "sensor_noise", "exposure", "noise_seed",
)


def cue_age(age: np.ndarray, aging_rate: np.ndarray, offset: np.ndarray | float = 0.0) -> np.ndarray:
    """The age that adult skin and hair cues show: ``18 + (age - 18) * aging_rate`` above 18, else the age; plus
    ``offset`` years (the ``offset`` known-answer shift's :attr:`~facebench.data.synth.population.GroupAppearance.cue_age_offset`).

    >>> cue_age(np.array([10, 58]), np.array([0.9, 0.9])).tolist(), cue_age(np.array([30]), 1.0, 10.0).tolist()
    ([10.0, 54.0], [40.0])
    """
    age = np.asarray(age, dtype=float)
    return np.where(age > 18, 18.0 + (age - 18.0) * np.asarray(aging_rate, dtype=float), age) + offset


def _ramp(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0)


def _upsample(coarse: np.ndarray, size: int) -> np.ndarray:
    """Bilinearly upsample ``(B, gy, gx)`` coarse grids spanning the image onto ``(B, size, size)`` pixel centres.

    Plain element-wise numpy (no BLAS), so results do not depend on thread counts or on the batch.
    """

    def taps(grid: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = (np.arange(size) + 0.5) / size * (grid - 1)
        lo = np.clip(np.floor(pos).astype(np.intp), 0, grid - 2)
        return lo, lo + 1, (pos - lo).astype(F32)

    y0, y1, fy = taps(coarse.shape[1])
    x0, x1, fx = taps(coarse.shape[2])
    fy = fy[None, :, None]
    rows = coarse[:, y0, :] * (F32(1.0) - fy) + coarse[:, y1, :] * fy
    return rows[:, :, x0] * (F32(1.0) - fx) + rows[:, :, x1] * fx


def _noise_fields(seeds: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-face noise, each face from its own generator: skin texture, blotches, hair streaks, sensor noise."""
    b = len(seeds)
    tex = np.empty((b, TEXTURE_GRID, TEXTURE_GRID), F32)
    blot = np.empty((b, BLOTCH_GRID, BLOTCH_GRID), F32)
    streak = np.empty((b, *STREAK_GRID), F32)
    sensor = np.empty((b, size, size, 3), F32)
    for i, seed in enumerate(seeds):
        rng = np.random.default_rng(int(seed))
        rng.standard_normal(out=tex[i], dtype=F32)
        rng.standard_normal(out=blot[i], dtype=F32)
        rng.standard_normal(out=streak[i], dtype=F32)
        rng.random(out=sensor[i], dtype=F32)  # uniform: much cheaper than normal
    return _upsample(tex, size), _upsample(blot, size), _upsample(streak, size), sensor


def _soft(d: np.ndarray, edge: float) -> np.ndarray:
    """Coverage of a shape from its (approximate) signed distance ``d`` (negative inside), ``edge`` wide."""
    m = d * F32(-1.0 / edge)
    m += F32(0.5)
    return np.clip(m, 0.0, 1.0, out=m)


def _ellipse_distance(dx: np.ndarray, dy: np.ndarray, rx, ry) -> np.ndarray:
    """Approximate signed distance to the ellipse ``(dx/rx)^2 + (dy/ry)^2 = 1`` (first order, exact on it)."""
    q = dx * (F32(1.0) / rx)
    q *= q
    t = dy * (F32(1.0) / ry)
    t *= t
    q += t
    q -= F32(1.0)
    q *= F32(0.5) * np.minimum(rx, ry)
    return q


def _ellipse(dx: np.ndarray, dy: np.ndarray, rx, ry, edge: float) -> np.ndarray:
    """Soft mask of the ellipse ``(dx/rx)^2 + (dy/ry)^2 <= 1``."""
    return _soft(_ellipse_distance(dx, dy, rx, ry), edge)


def _line(d: np.ndarray, half_width) -> np.ndarray:
    """Triangular line profile: 1 on the line (``d == 0``), 0 beyond ``half_width``."""
    return np.clip(1.0 - np.abs(d) / half_width, 0.0, 1.0)


def _window(x: np.ndarray, lo, hi, soft) -> np.ndarray:
    """Soft indicator of ``lo <= x <= hi`` with ramps ``soft`` wide."""
    return np.clip(np.minimum(x - lo, hi - x) / soft + 0.5, 0.0, 1.0)


def _over(img: list[np.ndarray], mask: np.ndarray, colour) -> None:
    """Composite ``colour`` (per channel: scalar, (B,1,1) or (B,H,W)) over ``img`` with coverage ``mask``."""
    for c in range(3):
        img[c] += (colour[c] - img[c]) * mask


def _render_chunk(p: dict[str, np.ndarray], size: int) -> np.ndarray:
    b = len(p["age"])

    def col(x) -> np.ndarray:
        return np.asarray(x, dtype=F32).reshape(b, 1, 1)

    edge = 2.4 / size  # about 1.2 pixels of anti-aliasing
    hw = F32(WRINKLE_HALF_WIDTH)

    # --- per-face scalars (float64 maths on (B,), then (B,1,1) float32) -----------------------------------
    age = p["age"].astype(float)
    cue = cue_age(age, p["aging_rate"], p["cue_age_offset"])
    child = _ramp(18.0 - age, 0.0, 16.0)
    child = child * child * (3.0 - 2.0 * child)  # smoothstep: 1 at age <= 2, 0 at 18
    k_age = _ramp(cue, 18.0, 75.0)
    w_forehead = _ramp(cue, 24.0, 62.0)
    w_crow = _ramp(cue, 28.0, 68.0)
    w_bag = _ramp(cue, 32.0, 72.0)
    w_naso = _ramp(cue, 20.0, 60.0)
    w_mario = _ramp(cue, 45.0, 80.0)
    grey = 1.0 / (1.0 + np.exp(-(cue - p["grey_onset"]) / 5.0))
    recession = p["balding"] * _ramp(cue, 22.0, 62.0)
    baby_hair = np.clip(0.3 + 0.7 * (age - 1.0) / 4.0, 0.3, 1.0)

    a = p["face_width"] * (1.0 + 0.05 * child)
    bh = p["face_height"] * (1.0 - 0.12 * child)
    jaw = p["jaw"] * (1.0 - 0.5 * child) + 0.10 * child
    eye_y = bh * (-0.02 + 0.15 * child)
    ex = a * p["eye_spacing"] * (1.0 + 0.04 * child)
    ew = a * p["eye_size"] * (1.0 + 0.32 * child)
    eh = ew * (0.48 + 0.18 * child) * (1.0 - 0.22 * k_age)
    brow_y = eye_y - eh - 0.075 * (1.0 - 0.2 * child)
    nose_y = eye_y + bh * p["nose_length"] * (1.0 - 0.38 * child)
    nw = a * p["nose_width"] * (1.0 - 0.25 * child)
    mouth_y = nose_y + bh * 0.21 * (1.0 - 0.3 * child)
    mw = a * p["mouth_width"] * (1.0 - 0.22 * child)
    mh = p["lip_thickness"] * (1.0 - 0.35 * k_age) * (1.0 - 0.15 * child)
    hair_len = p["hair_length"] * np.clip(age / 8.0, 0.15, 1.0)

    skin = np.stack([p["skin_r"], p["skin_g"], p["skin_b"]])  # (3, B)
    hair = np.stack([p["hair_r"], p["hair_g"], p["hair_b"]])
    luma = np.clip(0.299 * skin[0] + 0.587 * skin[1] + 0.114 * skin[2], 0.05, 1.0)
    cue_gain = (1.0 - CUE_CONTRAST_ABSOLUTE) + CUE_CONTRAST_ABSOLUTE * CUE_REFERENCE_LUMA / luma
    lip_red = np.array([0.72, 0.26, 0.30])[:, None]
    lips = (skin * (1.0 - p["lip_redness"]) + lip_red * p["lip_redness"]) * 0.88
    brow = hair * 0.7 * (1.0 - 0.5 * grey) + np.array(GREY_HAIR)[:, None] * 0.5 * grey * 0.8

    az, el = p["light_azimuth"], p["light_elevation"]
    lx, ly, lz = np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)

    # --- pixel grid and face frame --------------------------------------------------------------------------
    g = ((np.arange(size, dtype=F32) + F32(0.5)) * F32(2.0 / size) - F32(1.0))
    u = g.reshape(1, 1, size)
    v = g.reshape(1, size, 1)
    cr, sr, sc = col(np.cos(p["roll"])), col(np.sin(p["roll"])), col(p["scale"])
    uu = u - col(p["shift_x"])
    vv = v - col(p["shift_y"])
    X = (cr * uu + sr * vv) / sc
    Y = (cr * vv - sr * uu) / sc - F32(HEAD_CENTRE_Y)

    A, BH = col(a), col(bh)
    yaw = col(p["yaw"]) * A
    Xf = X - yaw  # inner features shift with yaw
    Xn = X - yaw * F32(1.3)  # the nose shifts most
    aXf = np.abs(Xf)

    tex, blot, streak, sensor = _noise_fields(p["noise_seed"], size)

    # --- background: plain or a linear gradient between two colours -----------------------------------------
    t = np.clip(0.5 + 0.6 * (col(np.cos(p["bg_angle"])) * u + col(np.sin(p["bg_angle"])) * v), 0.0, 1.0)
    img = []
    for ch in "rgb":
        c0, c1 = col(p[f"bg_{ch}"]), col(p[f"bg2_{ch}"])
        img.append((c0 + (c1 - c0) * t).astype(F32))

    # --- shirt, ears, hair behind the head, neck ------------------------------------------------------------
    shirt = [col(p[f"shirt_{ch}"]) for ch in "rgb"]
    _over(img, _ellipse(X, Y - BH - F32(0.62), A * F32(2.0), F32(0.56), edge), shirt)

    skin_c = [col(skin[k]) for k in range(3)]
    ear_y = col((eye_y + nose_y) * 0.5)
    ears = _ellipse(np.abs(X) - A * F32(0.97), Y - ear_y, F32(0.075), BH * F32(0.19), edge)
    _over(img, ears, [s * F32(0.86) for s in skin_c])

    # Hair colour field: greying mixes in grey, per strand (streak noise), hair shading follows the streaks.
    gmix = np.clip(col(grey) + F32(0.3) * streak * col(np.minimum(grey, 1.0 - grey) * 2.0 + 0.05), 0.0, 1.0)
    shine = F32(1.0) + F32(0.1) * streak
    hair_c = [(col(hair[k]) + (F32(GREY_HAIR[k]) - col(hair[k])) * gmix) * shine for k in range(3)]

    vol = col(p["hair_volume"] * (0.4 + 0.6 * baby_hair))
    dome_y = BH * F32(-0.08)
    dy_dome = np.minimum(Y - dome_y, 0.0)
    ah = A * (F32(1.05) + vol)
    bhh = BH * F32(1.0) + vol
    q = (X / ah) ** 2 + (dy_dome / bhh) ** 2
    back = _soft((q - F32(1.0)) * F32(0.5) * ah, edge)
    bottom = BH * (F32(-0.1) + F32(1.65) * col(hair_len)) - F32(0.1) * BH * (X / ah) ** 2
    back *= _soft(Y - bottom, edge * 2)
    top_cut = BH * col(-1.4 + 0.95 * recession)
    back *= _soft(top_cut - Y, edge * 3)
    back *= col(baby_hair)
    _over(img, back, hair_c)

    neck = _soft(np.maximum(np.abs(X) - A * F32(0.5), BH * F32(0.3) - Y), edge)
    _over(img, neck, [s * F32(0.8) for s in skin_c])

    # --- head (skin with texture and wrinkles) --------------------------------------------------------------
    taper = F32(1.0) - col(jaw) * np.clip(Y / BH, 0.0, 1.0) ** 2
    head_d = _ellipse_distance(X / taper, Y, A, BH)
    head = _soft(head_d, edge)

    # Age cues on the skin: a relative modulation M (texture, blotches, minus wrinkles and age spots), then
    # nose shading. Wrinkle field D (>= 0): each kind of line scaled by its intensity.
    dx = aXf - col(ex)
    dy = Y - col(eye_y)
    EW, EH = col(ew), col(eh)
    by0 = col(brow_y)
    # forehead lines: periodic horizontal lines, bent up at the sides, on the forehead only
    period = F32(0.085)
    phase = (Y - by0 + F32(0.045) * (Xf / A) ** 2) / period
    fdist = (phase - np.floor(phase + F32(0.5))) * period
    forehead = _line(fdist, hw) * _window(Y - by0, -0.36 * BH, F32(-0.06), F32(0.04)) * _window(Xf / A, -0.6, 0.6, 0.15)
    D = forehead * col(w_forehead)
    # frown lines between the brows
    frown = _line(aXf - F32(0.045), hw * F32(0.8)) * _window(Y - by0, F32(-0.07), F32(0.06), F32(0.03))
    D += frown * col(0.8 * w_forehead)
    # crow's feet: three short lines fanning out from the outer eye corner
    cdx = dx - EW - F32(0.035)
    r2 = cdx * cdx + dy * dy + F32(1e-6)
    crow_d = np.abs(cdx * dy * (cdx * cdx - dy * dy)) / (r2 * np.sqrt(r2))
    crow = _line(crow_d, hw) * _soft(np.sqrt(r2) - F32(0.15), F32(0.04)) * _soft(np.abs(dy) - F32(1.1) * cdx - F32(0.01), F32(0.02))
    D += crow * col(w_crow)
    # under-eye lines: an arc below each eye
    ring = np.sqrt((dx / (EW * F32(1.08))) ** 2 + (dy / (EH + F32(0.055))) ** 2) - F32(1.0)
    bag = _line(ring * (EH + F32(0.055)), hw * F32(0.8)) * _soft(-dy + F32(0.01), F32(0.02))
    D += bag * col(w_bag)
    # nasolabial folds: from beside the nose wings to beyond the mouth corners, bulging outwards
    x0 = col(nw * 0.95 + 0.025)
    x1 = col(mw + 0.04)
    y0, y1 = col(nose_y - 0.03), col(mouth_y + 0.05)
    tt = (Y - y0) / (y1 - y0)
    xc = x0 + (x1 - x0) * tt + F32(0.12) * tt * (F32(1.0) - tt) * A * F32(0.3)
    naso = _line(np.abs(Xn * F32(0.5) + Xf * F32(0.5)) - xc, hw) * _window(tt, F32(0.0), F32(1.0), F32(0.15))
    D += naso * col(w_naso)
    # marionette lines: from the mouth corners down
    Xm = X - yaw * F32(1.1)
    my = col(mouth_y)
    mt = (Y - my - F32(0.02)) / F32(0.15)
    mario = _line(np.abs(Xm) - (col(mw + 0.015) + F32(0.02) * mt), hw * F32(0.9)) * _window(mt, F32(0.0), F32(1.0), F32(0.2))
    D += mario * col(w_mario)
    D *= F32(WRINKLE_DARKNESS)
    # age spots: the darkest blotches, in older skin
    D += np.clip((blot - F32(1.0)) * F32(1.5), 0.0, 1.0) * col(0.2 * _ramp(cue, 45.0, 85.0))
    M = col(0.02 + 0.06 * k_age) * tex
    M += col(0.012 + 0.025 * k_age) * blot
    M -= D
    M *= col(cue_gain)
    M += F32(1.0)
    skin_mod = np.maximum(M, 0.0, out=M)
    # nose: nostrils, wing creases and a side shadow on the side away from the light
    nyy = Y - col(nose_y)
    NW = col(nw)
    aXn = np.abs(Xn)
    D = _ellipse(aXn - NW * F32(0.42), nyy, NW * F32(0.22), F32(0.016), edge) * F32(0.5)
    wing = np.sqrt(((aXn - NW * F32(0.62)) / (NW * F32(0.42))) ** 2 + ((nyy + F32(0.012)) / F32(0.045)) ** 2)
    D += _line((wing - F32(1.0)) * F32(0.045), F32(0.016)) * _soft(NW * F32(0.62) - aXn, F32(0.02)) * F32(0.2)
    side = col(np.where(lx >= 0, -1.0, 1.0))
    bridge = _line(Xn * side - NW * F32(0.45), F32(0.03)) * _window(Y, col(eye_y + 0.06), col(nose_y - 0.035), F32(0.05))
    D += bridge * col(0.1 + 0.2 * np.abs(lx))
    np.clip(D, 0.0, 0.9, out=D)
    skin_mod *= F32(1.0) - D

    # cheeks: rosy, more in children
    chx = (aXf - A * F32(0.5)) / F32(0.14)
    chy = (Y - col(nose_y - 0.03)) / F32(0.11)
    blush = np.clip(F32(1.0) - chx * chx - chy * chy, 0.0, 1.0) ** 2 * col((0.10 + 0.28 * child) * np.sqrt(luma))
    blush_c = (0.92, 0.42, 0.42)
    face_c = [(skin_c[k] + (F32(blush_c[k]) - skin_c[k]) * blush) * skin_mod for k in range(3)]
    _over(img, head, face_c)

    # --- eyes, brows, mouth ---------------------------------------------------------------------------------
    lash = F32(0.018)
    outline = _ellipse(dx, dy + lash * F32(0.7), EW + lash, EH + lash, edge) * head
    _over(img, outline, (F32(0.09), F32(0.06), F32(0.05)))
    white = _ellipse(dx, dy, EW, EH, edge)
    _over(img, white, (F32(0.93), F32(0.91), F32(0.89)))
    ir = col(np.minimum(eh * 1.05, ew * 0.55))
    gx = yaw * F32(0.2)
    idx = dx - gx * np.sign(Xf)  # both irises look the same way
    iris = _ellipse(idx, dy, ir, ir, edge) * white
    _over(img, iris, [col(p[f"iris_{ch}"]) for ch in "rgb"])
    pupil = _ellipse(idx, dy, ir * F32(0.45), ir * F32(0.45), edge) * white
    _over(img, pupil, (F32(0.03), F32(0.03), F32(0.03)))
    glint = _ellipse(idx + ir * F32(0.35), dy + ir * F32(0.35), ir * F32(0.22), ir * F32(0.22), edge) * white
    _over(img, glint, (F32(0.97), F32(0.97), F32(0.97)))

    bl = EW * F32(1.3)
    bdx = dx - EW * F32(0.1)
    arch = col(p["brow_arch"]) * (F32(1.0) - (bdx / bl) ** 2)
    th = col(p["brow_thickness"] * (1.0 - 0.35 * child)) * (F32(1.0) - F32(0.5) * (bdx / bl) ** 2)
    brow_m = _soft(np.maximum(np.abs(Y - by0 + arch) - th * F32(0.5), np.abs(bdx) - bl), edge) * head
    brow_m *= col(0.92 * (1.0 - 0.35 * child))
    _over(img, brow_m, [col(brow[k]) for k in range(3)])

    smile = col(p["smile"])
    mline = my - smile * F32(0.035) * (Xm / col(mw)) ** 2
    MW, MH = col(mw), col(mh)
    lip_m = _ellipse(Xm, Y - mline - MH * F32(0.15), MW, MH, edge)
    _over(img, lip_m, [col(lips[k]) for k in range(3)])
    mouth_line = _soft(np.maximum(np.abs(Y - mline) - F32(0.009), np.abs(Xm) - MW * F32(0.97)), edge)
    _over(img, mouth_line, [col(lips[k] * 0.45) for k in range(3)])

    # --- hair on the head: above the hairline (receding with age) and at the temples -------------------------
    rec = col(recession)
    xa2 = (X / A) ** 2
    hairline = BH * (col(-0.62 + p["fringe"]) - F32(0.45) * rec + (F32(0.55) - F32(0.95) * rec) * xa2)
    front = _soft(Y - hairline, edge * 1.5)
    temples = _soft(A * F32(0.86) - np.abs(X), edge * 2) * _window(Y, -0.55 * BH, -0.08 * BH, F32(0.03))
    head_grown = _soft(head_d - F32(edge), edge)  # covers the anti-aliased rim of the head
    front = np.maximum(front, temples) * head_grown * col(baby_hair)
    _over(img, front, hair_c)

    # --- lighting: Lambertian shading of the head, a global gradient, then sensor noise ----------------------
    nx = np.clip(X / A, -1.0, 1.0)
    ny = np.clip(Y / BH, -1.0, 1.0)
    nz = np.sqrt(np.clip(F32(1.0) - nx * nx - ny * ny, 0.02, 1.0))
    lam = np.clip(nx * col(lx) + ny * col(ly) + nz * col(lz), 0.0, 1.0)
    sh = col(p["shading"])
    shade = F32(1.0) + head * (F32(1.0) - sh + sh * lam * F32(1.1) - F32(1.0))
    grad = F32(1.0) + col(p["light_strength"]) * (u * col(np.cos(az)) + v * col(np.sin(az)))
    shade *= grad * col(p["exposure"])
    sigma = col(p["sensor_noise"] * np.sqrt(12.0))  # unit-variance uniform noise, centred below
    out = np.empty((b, size, size, 3), np.uint8)
    for k in range(3):
        ch = img[k] * shade + (sensor[..., k] - F32(0.5)) * sigma
        ch *= F32(255.0)
        ch += F32(0.5)
        np.clip(ch, 0.0, 255.0, out=ch)
        out[..., k] = ch
    return out


def default_chunk_size(size: int) -> int:
    """Faces per chunk so one float32 plane of a chunk (~256 KiB) stays in the CPU's L2 cache: much faster
    than large chunks (16 faces at 64 px, 1 at 200 px)."""
    return max(1, CHUNK_PIXELS // (size * size))


def render_faces(population: pd.DataFrame, *, size: int, chunk_size: int | None = None) -> np.ndarray:
    """Render one face per row of ``population`` as a ``(N, size, size, 3)`` uint8 RGB array.

    Deterministic: each face depends only on its own row (noise from its ``noise_seed``), not on the other
    rows or ``chunk_size`` (faces are rendered per chunk to bound memory; ``None`` picks
    :func:`default_chunk_size`).
    """
    if chunk_size is None:
        chunk_size = default_chunk_size(size)
    missing = [c for c in RENDER_COLUMNS if c not in population.columns]
    if missing:
        raise ValueError(f"population table is missing render columns {missing}")
    if size < 8:
        raise ValueError(f"render size must be at least 8 pixels, got {size}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    params = {c: population[c].to_numpy() for c in RENDER_COLUMNS}
    params.update({c: population[c].to_numpy() if c in population.columns else np.zeros(len(population))
                   for c in OPTIONAL_RENDER_COLUMNS})
    params = {c: (v.astype(np.int64) if c == "noise_seed" else v.astype(float)) for c, v in params.items()}
    n = len(population)
    out = np.empty((n, size, size, 3), np.uint8)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        out[start:stop] = _render_chunk({c: v[start:stop] for c, v in params.items()}, size)
    return out
