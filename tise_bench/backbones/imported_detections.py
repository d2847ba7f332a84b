"""Imported detections as the ``detector`` backbone: SOA / CA / O-IS / O-FID on detections made elsewhere.

TISE's object metrics used detectron2's Mask R-CNN R50-FPN; we do not ship it. With
``backbones.detector.imported=<file.json>`` the boxes, classes and scores come from that file (e.g. written by
detectron2 on another machine) instead of a network, so the object metrics run on exactly those detections.
The other ``backbones.detector`` keys (weights, arch, imgsz, conf, iou) are then unused, except ``max_det``
(rows of the fixed-shape array; an image with more boxes is refused, not truncated). It works the same under
``backbones=random`` (the file is never dropped; the detector is then not random).

Output: the same fixed-shape features as :class:`~.detector.DetectorBackbone` — ``detections`` float32
``(max_det, 6)`` rows ``[x1, y1, x2, y2, score, class_id]`` in original image pixels (clipped to the image),
sorted by score descending, unused rows all ``-1``; and ``size`` ``[width, height]`` of the decoded image
(EXIF orientation applied, as detectron2's ``read_image`` does). No score floor is applied: every box in the
file is kept and the metrics apply their own threshold (TISE: 0.5).

Accepted files
--------------
1. ``tise_bench-detections-v1``::

     {"format": "tise_bench-detections-v1",
      "detector": "detectron2 mask_rcnn_R_50_FPN_3x",      # optional, recorded in metrics.json
      "classes": ["person", "bicycle", ...],               # optional; default: the 80 COCO classes in order
      "on_missing": "error",                               # optional: "error" (default) or "empty"
      "images": {
        "<image file>": {"boxes": [[x1, y1, x2, y2], ...],  # original pixels
                         "classes": [0, "dog", ...],        # index into "classes", or a class name
                         "scores": [0.98, ...],
                         "size": [width, height]},          # optional; checked against the image
        ...}}

   Every image should be listed, with empty lists when nothing was detected.

2. COCO results, as detectron2's ``COCOEvaluator`` writes ``coco_instances_results.json``: entries
   ``{"image_id" | "file_name", "category_id", "bbox": [x, y, w, h], "score"}`` with official COCO category ids
   (1..90, mapped to the 80 contiguous classes). detectron2 writes nothing for an image without detections,
   so give the image list with it::

     {"format": "coco-results", "detector": "...",
      "images": [{"id": 397133, "file_name": "000000397133.png", "width": 640, "height": 427}, ...],
      "results": [ ...the list detectron2 wrote... ]}

   (``images`` as in the COCO-format annotation file the model was run on; ``width``/``height`` optional.)
   Listed images without results have zero detections. A bare results list is accepted too when every
   entry carries ``file_name``; images absent from it are then "missing" (see below).

Image keys. A key is a path relative to the samples folder (``"000001.png"``, ``"label_17_dog/12_0.png"``), an
absolute path, or a basename. An image is looked up by the longest trailing part of its path that is a key
(``/runs/m/label_17_dog/12_0.png`` tries the full path, ``runs/m/label_17_dog/12_0.png``, ...,
``12_0.png``). If one key would serve two different image files (basenames repeated across folders), the
run stops and asks for longer keys. Images with identical bytes share one cache entry (features are keyed by
content), so they get the detections of whichever of them is looked up first.

Missing images. An image the file does not list is an error naming the image and the file (TISE's detections
cover every image it scores; O-FID also needs the reference images), unless the file says
``"on_missing": "empty"``: then it has zero detections (it counts as "nothing found" for SOA and CA, exactly
as an image listed with empty lists), and the number of such images is in ``describe()["n_missing"]`` for
the images looked up in this process.

Cache. The namespace is ``imported-<file stem>-<sha256 of the JSON, 16 hex>-imported-max<max_det>-v1``:
another file (or the same file edited) is another namespace. ``describe()`` records ``imported`` (the file),
its sha256 and the ``detector`` named in it, for the comparability fields of ``metrics.json``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..errors import ConfigError, DataError
from ..text.coco_classes import CATEGORY_ID_TO_CLASS, COCO_CLASSES
from .base import ImageBackbone, file_sha256
from .detector import DetectorConfig
from .registry import BuildContext, register_variant

FORMAT = "tise_bench-detections-v1"
COCO_FORMAT = "coco-results"
PADDING = -1.0
SIZE_TOL = 1.0  # pixels a box may stick out of the image (rounding in the producer)


def _norm_key(key: str) -> str:
    k = str(key).replace("\\", "/")
    while k.startswith("./"):
        k = k[2:]
    return k


def _candidates(path: str) -> list[str]:
    """Keys an image path may be listed under, longest first: full path, then shorter trailing parts."""
    p = PurePath(_norm_key(path))
    parts = p.parts
    out = [p.as_posix()]
    start = 1 if p.is_absolute() else 0
    out += ["/".join(parts[i:]) for i in range(start, len(parts))]
    return list(dict.fromkeys(out))


def _kwargs(config: DetectorConfig, ctx: BuildContext) -> dict[str, Any]:
    """The file replaces the network: no weights, no random variant, no device."""
    return dict(path=str(config.imported), max_det=config.max_det, cache_dir=ctx.cache_dir)


@register_variant("detector", selector="imported", kwargs=_kwargs)
class ImportedDetections(ImageBackbone):
    provides = ("detections", "size")
    option = "backbones.detector.imported"  # the config key of the file, in messages
    #: The FeatureBank passes each image's path (``preprocess_meta_for``): the detections are looked up by file.
    needs_source = True

    def __init__(
        self, *, path: str | Path, max_det: int = DetectorConfig.max_det, cache_dir: str | Path = ".cache"
    ) -> None:
        super().__init__()
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise ConfigError(
                f"backbones.detector.imported={path}: no such file. Give a detections JSON "
                f"(format {FORMAT!r} or COCO results; see tise_bench/backbones/imported_detections.py)"
            )
        if max_det < 1:
            raise ConfigError(f"backbones.detector.max_det={max_det} must be >= 1")
        self.max_det = int(max_det)
        self.device = torch.device("cpu")
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise ConfigError(f"backbones.detector.imported={self.path}: not readable JSON ({e})") from e
        self.names: dict[int, str] = dict(enumerate(COCO_CLASSES))
        self.detector = f"unstated (imported from {self.path.name})"  # the file may name it: "detector"
        self.on_missing = "error"
        self.file_format = ""
        self._table: dict[str, np.ndarray] = {}  # key -> (n, 6) rows, score-sorted
        self._sizes: dict[str, tuple[float, float]] = {}
        self._parse(doc)
        self.is_random = False
        self.weights_hash = file_sha256(self.path, cache_dir)  # sha256 of the JSON: part of the namespace
        self.ident = f"imported-{self.path.stem}"
        self.preproc_version = f"imported-max{self.max_det}-v1"
        self._used: dict[str, str] = {}  # key -> the image file it served (ambiguity check)
        self.n_missing = 0

    # ---- parsing -------------------------------------------------------------------------------------------
    def _fail(self, msg: str) -> ConfigError:
        return ConfigError(f"backbones.detector.imported={self.path}: {msg}")

    def _parse(self, doc: object) -> None:
        if isinstance(doc, list):
            self.file_format = COCO_FORMAT + " (bare list)"
            self._parse_coco(doc, None)
            return
        if not isinstance(doc, dict):
            raise self._fail(f'expected a JSON object with "format": {FORMAT!r} or a COCO results list')
        fmt = doc.get("format")
        if fmt not in (FORMAT, COCO_FORMAT):
            raise self._fail(f'"format" is {fmt!r}; expected {FORMAT!r} or {COCO_FORMAT!r}')
        self.file_format = str(fmt)
        if doc.get("detector"):
            self.detector = str(doc["detector"])
        self.on_missing = str(doc.get("on_missing", "error"))
        if self.on_missing not in ("error", "empty"):
            raise self._fail(f'"on_missing" is {self.on_missing!r}; use "error" or "empty"')
        if fmt == COCO_FORMAT:
            if not isinstance(doc.get("results"), list) or not isinstance(doc.get("images"), list):
                raise self._fail(
                    'a "coco-results" file needs "images": [{"id", "file_name"}, ...] and '
                    '"results": [the list detectron2\'s COCOEvaluator wrote]'
                )
            self._parse_coco(doc["results"], doc["images"])
            return
        classes = doc.get("classes")
        if classes is not None:
            if not isinstance(classes, list) or not classes or len(set(map(str, classes))) != len(classes):
                raise self._fail('"classes" must be a non-empty list of distinct class names')
            self.names = {i: str(c) for i, c in enumerate(classes)}
        images = doc.get("images")
        if not isinstance(images, dict):
            raise self._fail('"images" must be an object {"<image file>": {"boxes", "classes", "scores"}}')
        by_name = {n: i for i, n in self.names.items()}
        for key, ent in images.items():
            where = f"images[{key!r}]"
            if not isinstance(ent, dict):
                raise self._fail(f'{where} must be an object with "boxes", "classes", "scores"')
            boxes, cls, scores = ent.get("boxes", []), ent.get("classes", []), ent.get("scores", [])
            if not (isinstance(boxes, list) and isinstance(cls, list) and isinstance(scores, list)) or not (
                len(boxes) == len(cls) == len(scores)
            ):
                raise self._fail(
                    f'{where}: "boxes", "classes" and "scores" must be lists of one length '
                    f"(got {len(boxes) if isinstance(boxes, list) else boxes!r}, "
                    f"{len(cls) if isinstance(cls, list) else cls!r}, "
                    f"{len(scores) if isinstance(scores, list) else scores!r})"
                )
            ids = []
            for c in cls:
                if isinstance(c, str):
                    if c not in by_name:
                        raise self._fail(
                            f'{where}: class {c!r} is not in "classes" '
                            f"({'the 80 COCO classes' if classes is None else 'the file'})"
                        )
                    ids.append(by_name[c])
                elif isinstance(c, (int, float)) and float(c).is_integer() and 0 <= int(c) < len(self.names):
                    ids.append(int(c))
                else:
                    raise self._fail(
                        f"{where}: class {c!r} is neither a class name nor an index 0..{len(self.names) - 1}"
                    )
            rows = [self._row(b, s, i, where) for b, s, i in zip(boxes, scores, ids)]
            self._add(key, rows, ent.get("size"), where)

    def _parse_coco(self, results: list, images: list | None) -> None:
        id_to_file: dict[object, str] = {}
        if images is not None:
            for im in images:
                if not isinstance(im, dict) or "id" not in im or "file_name" not in im:
                    raise self._fail('every entry of "images" needs "id" and "file_name" (as in COCO annotations)')
                id_to_file[im["id"]] = str(im["file_name"])
                size = [im["width"], im["height"]] if "width" in im and "height" in im else None
                self._add(str(im["file_name"]), [], size, f"images[id={im['id']}]")
        rows: dict[str, list] = {}
        for n, r in enumerate(results):
            where = f"results[{n}]"
            if not isinstance(r, dict) or not all(k in r for k in ("category_id", "bbox", "score")):
                raise self._fail(f'{where} needs "category_id", "bbox" [x, y, w, h] and "score"')
            if "file_name" in r:
                key = str(r["file_name"])
            elif r.get("image_id") in id_to_file:
                key = id_to_file[r["image_id"]]
            else:
                raise self._fail(
                    f"{where}: image_id {r.get('image_id')!r} has no file name; wrap the results as "
                    f'{{"format": "{COCO_FORMAT}", "images": [{{"id", "file_name"}}, ...], '
                    f'"results": [...]}} or give "file_name" in every entry'
                )
            cat = r["category_id"]
            if cat not in CATEGORY_ID_TO_CLASS:
                raise self._fail(
                    f"{where}: category_id {cat!r} is not a COCO category id (1..90 with gaps); "
                    f'for other class sets use format {FORMAT!r} with "classes"'
                )
            bbox = r["bbox"]
            if not isinstance(bbox, list) or len(bbox) != 4:
                raise self._fail(f'{where}: "bbox" must be [x, y, width, height]')
            x, y, w, h = (float(v) for v in bbox)
            cls = COCO_CLASSES.index(CATEGORY_ID_TO_CLASS[cat])
            rows.setdefault(key, []).append(self._row([x, y, x + w, y + h], r["score"], cls, where))
        for key, rs in rows.items():
            k = _norm_key(key)
            prior = self._table.get(k)
            self._add(
                key,
                ([list(v) for v in prior] if prior is not None else []) + rs,
                self._sizes.get(k),
                f"results for {key!r}",
                replace=True,
            )

    def _row(self, box: object, score: object, cls: int, where: str) -> list[float]:
        try:
            x1, y1, x2, y2 = (float(v) for v in box)  # type: ignore[attr-defined]  # not iterable -> TypeError below
            s = float(score)  # type: ignore[arg-type]
        except (TypeError, ValueError) as e:
            raise self._fail(f"{where}: a box must be 4 numbers and a score a number ({e})") from e
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2, s)) or x2 < x1 or y2 < y1:
            raise self._fail(f"{where}: box {[x1, y1, x2, y2]} / score {s} is not finite or has x2 < x1 or y2 < y1")
        if not 0.0 <= s <= 1.0:
            raise self._fail(f"{where}: score {s} outside [0, 1]")
        return [x1, y1, x2, y2, s, float(cls)]

    def _add(self, key: str, rows: list, size: object, where: str, replace: bool = False) -> None:
        k = _norm_key(key)
        if k in self._table and not replace:
            raise self._fail(f"{where}: image {key!r} is listed twice")
        arr = np.asarray(rows, dtype=np.float32).reshape(-1, 6)
        arr = arr[np.argsort(-arr[:, 4], kind="stable")]
        if len(arr) > self.max_det:
            raise self._fail(
                f"image {key!r} has {len(arr)} detections, more than {self.option.rsplit('.', 1)[0]}.max_det="
                f"{self.max_det} rows; raise max_det (nothing is dropped silently)"
            )
        self._table[k] = arr
        if size is not None:
            try:
                w, h = (float(v) for v in size)  # type: ignore[attr-defined]  # not iterable -> TypeError below
            except (TypeError, ValueError) as e:
                raise self._fail(f'{where}: "size" must be [width, height] ({e})') from e
            self._sizes[k] = (w, h)

    # ---- lookup ----------------------------------------------------------------------------------------------
    def lookup(self, path: str, width: int, height: int) -> np.ndarray:
        """(max_det, 6) detection rows of the image at ``path`` (decoded size ``width`` × ``height``)."""
        key = next((c for c in _candidates(path) if c in self._table), None)
        if key is None:
            if self.on_missing == "empty":
                self.n_missing += 1
                return np.full((self.max_det, 6), PADDING, dtype=np.float32)
            raise DataError(
                f"image {path} is not in the imported detections {self.path} (looked up as: "
                f"{', '.join(repr(c) for c in _candidates(path)[-3:])}; the file lists {len(self._table)} images, "
                f"e.g. {', '.join(repr(k) for k in list(self._table)[:3])}). Fix: add the image to the file (empty "
                f"lists if nothing was detected), key it by its path relative to the samples folder, or set "
                f'"on_missing": "empty" in the file to count unlisted images as having no detections.'
            )
        served = self._used.setdefault(key, str(path))
        if served != str(path) and Path(served).resolve() != Path(path).resolve():
            raise DataError(
                f"imported detections {self.path}: key {key!r} matches two different images, {served} and {path}. "
                f"Fix: key the images by their path relative to the samples folder (or absolute paths) so that "
                f"each key names one file."
            )
        if key in self._sizes:
            w, h = self._sizes[key]
            if (round(w), round(h)) != (width, height):
                raise DataError(
                    f"imported detections {self.path}: {key!r} was detected at {w:g}x{h:g} pixels but "
                    f"{path} is {width}x{height}; the boxes must be in the pixels of this file"
                )
        rows = self._table[key]
        if len(rows) and (
            rows[:, 0].min() < -SIZE_TOL
            or rows[:, 1].min() < -SIZE_TOL
            or rows[:, 2].max() > width + SIZE_TOL
            or rows[:, 3].max() > height + SIZE_TOL
        ):
            raise DataError(
                f"imported detections {self.path}: boxes of {key!r} reach beyond the image {path} ({width}x{height}: "
                f"x {rows[:, 0].min():g}..{rows[:, 2].max():g}, y {rows[:, 1].min():g}..{rows[:, 3].max():g}); were "
                f"they made on a resized copy? Boxes must be in the pixels of the scored file."
            )
        out = np.full((self.max_det, 6), PADDING, dtype=np.float32)
        out[: len(rows)] = rows
        if len(rows):
            out[: len(rows), [0, 2]] = np.clip(rows[:, [0, 2]], 0, width)
            out[: len(rows), [1, 3]] = np.clip(rows[:, [1, 3]], 0, height)
        return out

    # ---- backbone protocol -----------------------------------------------------------------------------------
    def preprocess(self, img: Image.Image) -> torch.Tensor:
        return torch.zeros(1, dtype=torch.uint8)  # no pixels needed: the detections come from the file

    def preprocess_meta(self, img: Image.Image) -> dict[str, torch.Tensor]:
        raise DataError(
            "imported detections are looked up by image file: the caller must use "
            "preprocess_meta_for(path, img) (FeatureBank does, for backbones with needs_source)"
        )

    def preprocess_meta_for(self, path: str, img: Image.Image) -> dict[str, torch.Tensor]:
        return {
            "dets": torch.from_numpy(self.lookup(str(path), img.width, img.height)),
            "orig_size": torch.tensor([img.width, img.height], dtype=torch.int64),
        }

    def _forward(
        self, batch: torch.Tensor, dets: torch.Tensor | None = None, orig_size: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        if dets is None or orig_size is None:
            raise ValueError("ImportedDetections.forward needs meta from preprocess_meta_for (dets, orig_size)")
        return {"detections": dets.to(torch.float32), "size": orig_size.to(torch.float32)}

    def describe(self) -> dict[str, object]:
        d = super().describe()
        d.update(
            imported=str(self.path),
            imported_sha256=self.weights_hash,
            detector=self.detector,
            format=self.file_format,
            on_missing=self.on_missing,
            n_images_listed=len(self._table),
            n_missing=self.n_missing,
            max_det=self.max_det,
            n_classes=len(self.names),
            conf_floor=None,
            note="detections imported from a file: no network ran",
        )
        return d


# ==== imported instance masks (the GenEval route: backbones.segmenter.imported) ======================================
SEGMENTS_FORMAT = "tise_bench-segments-v1"
SEGMENTS_DOC = "tise_bench/backbones/imported_detections.py (SEGMENTS_FORMAT)"


def rle_counts_from_string(s: str) -> list[int]:
    """COCO's compressed RLE string -> run lengths (cocoapi ``common/maskApi.c`` ``rleFrString``: 6 bits per
    character from ``'0'`` (48), 5 data bits and a continuation bit 0x20, the last chunk's 0x10 bit sign-extends;
    from the fourth count on (index > 2) each value is a difference to the count two before)."""
    cnts: list[int] = []
    p = 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            if p >= len(s):
                raise ValueError("the counts string ends inside a number")
            c = ord(s[p]) - 48
            if not 0 <= c < 64:
                raise ValueError(f"character {s[p]!r} is not an RLE counts character ('0'..'o')")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(cnts) > 2:
            x += cnts[-2]
        cnts.append(x)
    return cnts


def rle_counts_to_string(cnts: list[int]) -> str:
    """maskApi.c ``rleToString``: run lengths -> COCO's compressed counts string (inverse of the above)."""
    out = []
    for i, v in enumerate(cnts):
        x = int(v) - (int(cnts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def rle_encode(mask: np.ndarray) -> dict[str, Any]:
    """A 2-D boolean mask -> compressed COCO RLE ``{"size": [h, w], "counts": str}`` (pycocotools
    ``mask.encode``; pixels in column-major order, runs alternate starting with zeros)."""
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise ValueError(f"a mask is 2-D (h, w), got shape {m.shape}")
    flat = m.ravel(order="F").astype(np.int8)
    edges = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    if flat.size and flat[0]:
        runs = [0, *runs]
    return {"size": [int(m.shape[0]), int(m.shape[1])], "counts": rle_counts_to_string(runs)}


def rle_decode(rle: dict[str, Any]) -> np.ndarray:
    """COCO RLE (compressed string counts, or the uncompressed list of run lengths) -> ``(h, w)`` bool mask.
    ValueError when the runs do not cover exactly h x w pixels."""
    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    cnts = rle_counts_from_string(counts) if isinstance(counts, str) else [int(c) for c in counts]
    if any(c < 0 for c in cnts) or sum(cnts) != h * w:
        raise ValueError(
            f"the runs cover {sum(cnts)} pixels (some negative: {any(c < 0 for c in cnts)}), not h x w = {h * w}"
        )
    values = np.arange(len(cnts)) % 2 == 1
    return np.repeat(values, cnts).reshape((w, h)).T.copy()


class ImportedSegments(ImportedDetections):
    """An instance-segmentation file (``tise_bench-segments-v1``, mmdet's per-class result layout with COCO RLE
    masks), looked up per image like :class:`ImportedDetections` (same keys, ``on_missing``, size and box checks).

    JSON::

      {"format": "tise_bench-segments-v1",
       "detector": "mmdet mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco",   # optional, named in the protocol
       "classes": [...],        # optional; default GenEval's object_names.txt (the 80 COCO classes in order)
       "on_missing": "error",   # or "empty"
       "images": {"<image key>": {"size": [width, height],                     # optional; checked
                                  "bbox": [[[x1, y1, x2, y2, score], ...], ...],  # one list per class: result[0]
                                  "segm": [[<RLE or null>, ...], ...]},          # same shape: result[1]; optional
                  ...}}

    or JSON lines: that object without ``"images"`` on the first line, then one ``{"image": "<image key>",
    "size", "bbox", "segm"}`` per line. An RLE is COCO's ``{"size": [h, w], "counts": "<string>" | [runs]}``
    (pycocotools ``mask.encode`` output, ``counts`` decoded to str) of the full-size mask of the image.

    Rows keep GenEval's order: within a class ``np.argsort(scores)[::-1]`` on float32 scores (as
    evaluate_images.py on mmdet's float32 arrays), then a stable sort by score over all classes.

    Writing it next to GenEval's ``evaluate_images.py`` (its ``inference_detector`` call; ``key`` = the image's
    name in the folder scored here, e.g. ``00012_3.png``)::

      import pycocotools.mask as mu
      bbox, segm = inference_detector(object_detector, filepath)         # as evaluate_image does
      def rle(m):
          r = mu.encode(np.asfortranarray(m.astype(np.uint8)))
          return {"size": [int(v) for v in r["size"]], "counts": r["counts"].decode()}
      out.write(json.dumps({"image": key, "bbox": [b.tolist() for b in bbox],
                            "segm": [[rle(m) for m in ms] for ms in segm]}) + "\n")
    """

    def __init__(
        self,
        *,
        path: str | Path,
        max_det: int = DetectorConfig.max_det,
        classes: tuple[str, ...] = COCO_CLASSES,
        cache_dir: str | Path = ".cache",
        option: str = "backbones.segmenter.imported",
    ) -> None:
        ImageBackbone.__init__(self)
        self.option = option
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise ConfigError(
                f"{option}={path}: no such file. Fix: give an instance-segmentation file (format "
                f"{SEGMENTS_FORMAT!r}, JSON or JSON lines; see {SEGMENTS_DOC})"
            )
        if max_det < 1:
            raise ConfigError(f"{option.rsplit('.', 1)[0]}.max_det={max_det} must be >= 1")
        self.max_det = int(max_det)
        self.device = torch.device("cpu")
        self.names = dict(enumerate(classes))
        self.detector = f"unstated (imported from {self.path.name})"
        self.on_missing = "error"
        self.file_format = SEGMENTS_FORMAT
        self._table = {}
        self._sizes = {}
        self._masks: dict[str, list[dict[str, Any] | None]] = {}  # key -> RLE per row of _table[key]
        self._index: dict[str, int] = {}
        self.has_masks = False
        self._read()
        self._keys = list(self._table)
        self._index = {k: i for i, k in enumerate(self._keys)}
        self.is_random = False
        self.weights_hash = file_sha256(self.path, cache_dir)
        self.ident = f"imported-{self.path.stem}"
        self.preproc_version = f"imported-segments-max{self.max_det}-v1"
        self._used = {}
        self.n_missing = 0

    def _fail(self, msg: str) -> ConfigError:
        fix = "" if "Fix:" in msg else f". Fix: write the entry as format {SEGMENTS_FORMAT!r} describes"
        return ConfigError(f"{self.option}={self.path}: {msg}{fix} (see {SEGMENTS_DOC})")

    def _read(self) -> None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise self._fail(f"not readable ({e})") from e
        try:
            doc = json.loads(text)
            lines = None
        except ValueError:
            doc, lines = None, text.splitlines()
        if lines is None:
            if not isinstance(doc, dict) or not isinstance(doc.get("images"), dict):
                raise self._fail(
                    'expected a JSON object {"format", "images": {"<image key>": {"bbox", "segm"}}} or JSON lines. '
                    "Fix: write the file as described there"
                )
            self._header(doc, "the file")
            for key, ent in doc["images"].items():
                self._entry(str(key), ent, f"images[{key!r}]")
            return
        header = None
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as e:
                raise self._fail(f"line {n} is not JSON ({e}). Fix: one JSON object per line") from e
            if header is None:
                if not isinstance(obj, dict) or "image" in obj:
                    raise self._fail(
                        f'line {n}: the first line must be the header {{"format": "{SEGMENTS_FORMAT}", '
                        f'"detector": ...}}. Fix: add it above the per-image lines'
                    )
                header = obj
                self._header(obj, f"line {n}")
                continue
            if not isinstance(obj, dict) or not isinstance(obj.get("image"), str):
                raise self._fail(f'line {n}: expected {{"image": "<image key>", "bbox": ..., "segm": ...}}')
            self._entry(obj["image"], obj, f"line {n} (image {obj['image']!r})")
        if header is None:
            raise self._fail("the file is empty. Fix: a header line and one line per image")

    def _header(self, doc: dict, where: str) -> None:
        if doc.get("format") != SEGMENTS_FORMAT:
            raise self._fail(f'{where}: "format" is {doc.get("format")!r}. Fix: "format": "{SEGMENTS_FORMAT}"')
        if doc.get("detector"):
            self.detector = str(doc["detector"])
        self.on_missing = str(doc.get("on_missing", "error"))
        if self.on_missing not in ("error", "empty"):
            raise self._fail(f'{where}: "on_missing" is {self.on_missing!r}. Fix: use "error" or "empty"')
        classes = doc.get("classes")
        if classes is not None:
            if not isinstance(classes, list) or not classes or len(set(map(str, classes))) != len(classes):
                raise self._fail(f'{where}: "classes" must be a non-empty list of distinct class names')
            self.names = {i: str(c) for i, c in enumerate(classes)}

    def _entry(self, key: str, ent: object, where: str) -> None:
        nc = len(self.names)
        if not isinstance(ent, dict):
            raise self._fail(f'{where} must be an object with "bbox" (and "segm")')
        bbox, segm = ent.get("bbox"), ent.get("segm")
        if not isinstance(bbox, list) or len(bbox) != nc or not all(isinstance(b, list) for b in bbox):
            got = len(bbox) if isinstance(bbox, list) else type(bbox).__name__
            raise self._fail(
                f'{where}: "bbox" must be {nc} lists (one per class, mmdet\'s result[0]) of [x1, y1, x2, y2, score], '
                f"got {got}. Fix: write [b.tolist() for b in result[0]]"
            )
        if segm is not None and (
            not isinstance(segm, list)
            or len(segm) != nc
            or not all(isinstance(s, list) and len(s) == len(b) for s, b in zip(segm, bbox))
        ):
            raise self._fail(
                f'{where}: "segm" must match "bbox": {nc} lists, one RLE (or null) per box (mmdet\'s result[1]). '
                'Fix: encode each class\'s masks with pycocotools.mask.encode, or leave "segm" out'
            )
        rows: list[list[float]] = []
        rles: list[dict[str, Any] | None] = []
        for c, boxes in enumerate(bbox):
            if not boxes:
                continue
            for j, b in enumerate(boxes):
                if not isinstance(b, list) or len(b) != 5:
                    raise self._fail(
                        f"{where}: bbox[{c}][{j}] must be [x1, y1, x2, y2, score], got {b!r}. Fix: write mmdet's "
                        f"per-class (n, 5) arrays as they are ([b.tolist() for b in result[0]])"
                    )
            try:
                scores = np.asarray([b[4] for b in boxes], dtype=np.float32)
            except (TypeError, ValueError) as e:
                raise self._fail(f"{where}: bbox[{c}]: a score is not a number ({e})") from e
            for j in np.argsort(scores)[::-1].tolist():  # evaluate_images.py's per-class order (ties included)
                rows.append(self._row(boxes[j][:4], boxes[j][4], c, f"{where}: bbox[{c}][{j}]"))
                rles.append(None if segm is None else self._rle(segm[c][j], f"{where}: segm[{c}][{j}]"))
        order = np.argsort(-np.asarray([r[4] for r in rows], dtype=np.float32), kind="stable")
        self._add(key, [rows[i] for i in order], ent.get("size"), where)
        self._masks[_norm_key(key)] = [rles[i] for i in order]
        self.has_masks = self.has_masks or any(r is not None for r in rles)

    def _rle(self, r: object, where: str) -> dict[str, Any] | None:
        if r is None:
            return None
        ok = isinstance(r, dict) and isinstance(r.get("size"), list) and len(r["size"]) == 2
        ok = ok and all(isinstance(v, int) and v > 0 for v in r["size"])  # type: ignore[index]
        counts = r.get("counts") if isinstance(r, dict) else None
        ok = ok and (isinstance(counts, str) or (isinstance(counts, list) and all(isinstance(v, int) for v in counts)))
        if not ok:
            raise self._fail(
                f'{where}: a mask must be COCO RLE {{"size": [h, w], "counts": "<string>" or [runs]}}, got '
                f"{str(r)[:80]}. Fix: pycocotools.mask.encode(np.asfortranarray(mask.astype(np.uint8))) with "
                '"counts" decoded to str'
            )
        return r  # type: ignore[return-value]

    def entry(self, path: str, width: int, height: int) -> tuple[np.ndarray, int]:
        """-> (the (max_det, 6) rows of the image, the index of its file entry for :meth:`mask`, -1 if unlisted)."""
        rows = self.lookup(path, width, height)
        key = next((c for c in _candidates(path) if c in self._table), None)
        return rows, (-1 if key is None else self._index[key])

    def mask(self, index: int, row: int, width: int, height: int, path: str = "") -> np.ndarray | None:
        """The decoded full-size mask of row ``row`` of entry ``index`` (None: no mask for it); DataError when
        it is not an RLE of a ``height`` x ``width`` image."""
        if index < 0:
            return None
        key = self._keys[index]
        rles = self._masks[key]
        if row >= len(rles) or rles[row] is None:
            return None
        rle = rles[row]
        assert rle is not None
        try:
            m = rle_decode(rle)
        except (ValueError, TypeError) as e:
            raise DataError(
                f"imported masks {self.path}: image {key!r}, mask of row {row} is not a valid COCO RLE ({e}). "
                f"Fix: write it with pycocotools.mask.encode on the full-size boolean mask"
            ) from e
        if m.shape != (height, width):
            raise DataError(
                f"imported masks {self.path}: image {key!r} has a {m.shape[1]}x{m.shape[0]} mask (RLE size [h, w] = "
                f"{list(m.shape)}) but the image {path or key} is {width}x{height}. Fix: masks must be full-size "
                f"masks of the scored file (mmdet's result[1] at the original resolution)"
            )
        return m
