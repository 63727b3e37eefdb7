"""Synthetic detection data: five shape classes on cluttered, textured backgrounds.

Every image is IMAGE_SIZE x IMAGE_SIZE RGB. Objects vary in size, aspect,
rotation, colour and outline; they may overlap (each keeps >= MIN_VISIBLE of
its pixels visible) and thin clutter strokes are drawn over them as well.
Ground truth boxes are the tight (amodal) boxes of the shapes' polygons, in
pixels, as float (x0, y0, x1, y1); labels are 1-based (0 is background).

Deterministic: `make_image(np.random.default_rng(seed))` and `make_set(seed, n)`
give the same pixels and boxes on every machine (numpy + Pillow only).
"""

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

IMAGE_SIZE = 128
CLASSES = ["circle", "triangle", "square", "star", "cross"]  # labels 1..5
MIN_VISIBLE = 0.6  # fraction of an object's pixels that stay unoccluded by other objects
SS = 4  # supersampling factor for anti-aliased shape masks


def unit_polygon(kind, rng):
    """Vertices of a shape of radius ~1 centred at the origin, as an (N, 2) array."""
    if kind == "circle":
        t = np.linspace(0, 2 * math.pi, 48, endpoint=False)
        return np.stack([np.cos(t), np.sin(t)], 1)
    if kind == "triangle":
        t = np.array([0.0, 2.0, 4.0]) * math.pi / 3 - math.pi / 2
        return np.stack([np.cos(t), np.sin(t)], 1)
    if kind == "square":
        t = np.arange(4) * math.pi / 2 + math.pi / 4
        return np.stack([np.cos(t), np.sin(t)], 1)
    if kind == "star":
        inner = rng.uniform(0.38, 0.5)
        t = np.arange(10) * math.pi / 5 - math.pi / 2
        r = np.where(np.arange(10) % 2 == 0, 1.0, inner)
        return np.stack([r * np.cos(t), r * np.sin(t)], 1)
    if kind == "cross":
        w = rng.uniform(0.28, 0.4)
        return np.array([[-w, -1], [w, -1], [w, -w], [1, -w], [1, w], [w, w],
                         [w, 1], [-w, 1], [-w, w], [-1, w], [-1, -w], [-w, -w]])
    raise ValueError(kind)


def place_polygon(poly, rng):
    """Random aspect stretch, rotation and radius (log-uniform 8..32 px); centred at 0."""
    aspect = math.exp(rng.uniform(math.log(0.75), math.log(1.33)))
    p = poly * np.array([aspect ** 0.5, aspect ** -0.5])
    a = rng.uniform(0, 2 * math.pi)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    radius = math.exp(rng.uniform(math.log(8.0), math.log(32.0)))
    return p @ rot.T * radius


def polygon_mask(poly):
    """Anti-aliased coverage in [0, 1] of a polygon given in pixel coordinates."""
    big = Image.new("L", (IMAGE_SIZE * SS, IMAGE_SIZE * SS), 0)
    ImageDraw.Draw(big).polygon([(float(x * SS), float(y * SS)) for x, y in poly], fill=255)
    small = big.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


def random_colour(rng):
    return rng.uniform(0, 255, 3)


def background(rng):
    """Gradient + low-frequency colour noise + one texture, as float32 HxWx3."""
    n = IMAGE_SIZE
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / n
    a = rng.uniform(0, 2 * math.pi)
    t = np.clip((xx - 0.5) * math.cos(a) + (yy - 0.5) * math.sin(a) + 0.5, 0, 1)[..., None]
    img = random_colour(rng) * (1 - t) + random_colour(rng) * t
    # Blotchy colour noise: a coarse random grid, smoothly upsampled.
    g = rng.integers(3, 9)
    grid = rng.uniform(-60, 60, (g, g, 3))
    blotch = np.stack([np.asarray(Image.fromarray(grid[..., c].astype(np.float32), "F")
                                  .resize((n, n), Image.BICUBIC)) for c in range(3)], -1)
    img = img + blotch
    texture = rng.integers(0, 4)
    amp = rng.uniform(10, 40)
    if texture == 1:  # stripes at a random angle and period
        b = rng.uniform(0, math.pi)
        period = rng.uniform(4, 16)
        s = np.sin(2 * math.pi * (xx * math.cos(b) + yy * math.sin(b)) * n / period)
        img = img + amp * s[..., None] * rng.uniform(-1, 1, 3)
    elif texture == 2:  # checkerboard
        cell = rng.integers(4, 16)
        ch = ((np.arange(n)[:, None] // cell + np.arange(n)[None, :] // cell) % 2) * 2 - 1
        img = img + amp * ch[..., None] * rng.uniform(-1, 1, 3)
    elif texture == 3:  # fine grain
        img = img + rng.normal(0, amp / 2, (n, n, 1)) * rng.uniform(0.5, 1, 3)
    return img.astype(np.float32)


def clutter(img, rng, count, max_width):
    """Random lines, arcs, polylines and small dots drawn onto a float image."""
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(pil)
    n = IMAGE_SIZE
    for _ in range(count):
        colour = tuple(int(c) for c in random_colour(rng))
        kind = rng.integers(0, 4)
        if kind == 0:
            d.line([tuple(rng.uniform(-10, n + 10, 2)) for _ in range(2)], fill=colour,
                   width=int(rng.integers(1, max_width + 1)))
        elif kind == 1:
            c, r = rng.uniform(0, n, 2), rng.uniform(8, 40)
            start = rng.uniform(0, 360)
            d.arc([c[0] - r, c[1] - r, c[0] + r, c[1] + r], start, start + rng.uniform(30, 160),
                  fill=colour, width=int(rng.integers(1, max_width + 1)))
        elif kind == 2:
            p = rng.uniform(0, n, 2)
            pts = [tuple(p)]
            for _ in range(rng.integers(2, 6)):
                p = p + rng.normal(0, 10, 2)
                pts.append(tuple(p))
            d.line(pts, fill=colour, width=int(rng.integers(1, max_width + 1)))
        else:
            c, r = rng.uniform(0, n, 2), rng.uniform(1, 3.5)
            d.ellipse([c[0] - r, c[1] - r, c[0] + r, c[1] + r], fill=colour)
    return np.asarray(pil, dtype=np.float32)


def make_image(rng):
    """One image (uint8 HxWx3 RGB) and its boxes: list of (label, x0, y0, x1, y1)."""
    img = background(rng)
    img = clutter(img, rng, int(rng.integers(4, 14)), 3)
    if rng.uniform() < 0.5:
        img = np.asarray(Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
                         .filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0))), dtype=np.float32)

    boxes, masks, visible = [], [], []
    wanted = int(rng.integers(1, 7))
    for _ in range(wanted * 8):  # placement attempts
        if len(boxes) == wanted:
            break
        label = int(rng.integers(1, len(CLASSES) + 1))
        poly = place_polygon(unit_polygon(CLASSES[label - 1], rng), rng)
        lo, hi = poly.min(0), poly.max(0)
        centre = rng.uniform(-lo, IMAGE_SIZE - hi)  # keep the whole shape inside
        poly = poly + centre
        mask = polygon_mask(poly)
        solid = mask > 0.5
        # Occlusion check: earlier objects must keep MIN_VISIBLE of their pixels.
        if any((v & ~solid).sum() < MIN_VISIBLE * m.sum() for v, m in zip(visible, masks)):
            continue
        # A colour that stands out from what is underneath.
        under = img[solid].mean(0)
        for _ in range(20):
            colour = random_colour(rng)
            if np.linalg.norm(colour - under) > 110:
                break
        shade = 1 + rng.uniform(0, 0.25) * rng.normal(0, 1, (IMAGE_SIZE, IMAGE_SIZE, 1))
        fill = np.clip(colour * shade, 0, 255)
        img = img * (1 - mask[..., None]) + fill * mask[..., None]
        if rng.uniform() < 0.4:  # outline in a darker or lighter tone
            big = Image.new("L", (IMAGE_SIZE * SS, IMAGE_SIZE * SS), 0)
            pts = [(float(x * SS), float(y * SS)) for x, y in poly]
            ImageDraw.Draw(big).line(pts + [pts[0]], fill=255, width=int(rng.integers(SS, 2 * SS + 1)))
            edge = (np.asarray(big.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BOX), np.float32) / 255) * mask
            tone = colour * rng.uniform(0.3, 0.6) if colour.mean() > 100 else colour + (255 - colour) * 0.6
            img = img * (1 - edge[..., None]) + tone * edge[..., None]
        visible = [v & ~solid for v in visible] + [solid]
        masks.append(solid)
        lo, hi = poly.min(0), poly.max(0)
        boxes.append((label, float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])))

    # Thin strokes over everything: partial occlusion by clutter.
    img = clutter(img, rng, int(rng.integers(0, 5)), 2)
    img = img + rng.normal(0, rng.uniform(0, 8), img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), boxes


def make_set(seed, count):
    """`count` images from one seed: (uint8 array N x H x W x 3, list of box lists)."""
    rng = np.random.default_rng(seed)
    images = np.empty((count, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    labels = []
    for i in range(count):
        images[i], boxes = make_image(rng)
        labels.append(boxes)
    return images, labels


# Seeds of the three disjoint sets.
TRAIN_SEED = 1001
HELDOUT_SEED = 2002
SAMPLE_SEED = 3003
