"""A folder of image files + a list file -> a database of Datum records, as Caffe's convert_imageset makes it.

The list file names one image per line, `relative/path.jpg label` (the label is the last field; the path may hold
spaces). Record `i` of the (possibly shuffled) list is stored under the key `%08d_<path>` (`00000003_cat/1.jpg`).

A Datum is built the way Caffe's ReadImageToDatum builds it:
- plain: the image decoded like cv::imread (3 channels BGR, or 1 grey channel), resized when asked, stored as
  channels/height/width/data/label with `encoded: false` written out explicitly;
- encoded: `data` holds a compressed image and only `label` and `encoded: true` accompany it. The file's own bytes
  are stored when no resize is asked and the file's extension matches the encoding (jpeg counts as jpg); otherwise
  the decoded (and resized) image is compressed anew, with Pillow (JPEG quality 95, OpenCV's default).
Images that cannot be read are logged and skipped, as Caffe does; the keys of the others keep their list index.
"""

import io
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from caffelite.data import db
from caffelite.data.image import decode_file_bytes
from caffelite.errors import CaffeliteError, FileFormatError
from caffelite.io.files import read_text_file
from caffelite.proto import caffe_pb2
from caffelite.rng import rng

log = logging.getLogger("caffelite")

# The label is the last field; the path is everything before it, spaces included (Caffe splits at the last space).
# Caffe reads the label with atoi, so "3.0" means 3; a line of one word is a path with label 0. (ImageData's rule.)
_LINE = re.compile(r"^(?P<path>.*\S)\s+(?P<label>[+-]?\d+)(\.\d*)?$")

# The encodings --encode_type accepts (OpenCV's imencode extensions that Pillow writes too) -> Pillow's format.
ENCODINGS = {
    "jpg": "JPEG", "jpeg": "JPEG", "jpe": "JPEG", "png": "PNG", "bmp": "BMP",
    "ppm": "PPM", "pgm": "PPM", "tif": "TIFF", "tiff": "TIFF", "webp": "WEBP",
}
# OpenCV's imencode defaults: JPEG quality 95; PNG at zlib's fastest level; lossless WebP.
_SAVE_OPTIONS = {"JPEG": {"quality": 95}, "PNG": {"compress_level": 1}, "WEBP": {"lossless": True}}
_DEFAULT_SIZE = (0, 0)


@dataclass(frozen=True)
class ImagesetConversion:
    """What convert_imageset wrote."""

    count: int  # records written
    total: int  # images listed
    skipped: tuple  # the list paths of the images that could not be read
    db_path: Path


def read_image_list(list_file, where=""):
    """[(path, label, line number)] from a list file of `path label` lines (blank lines are skipped).

    The label is the last field (paths may hold spaces; a line with one field gets label 0). Undecodable bytes
    are kept (surrogate escapes), so that any path survives into the file name and the database key byte for
    byte. `where` (e.g. a layer's description) starts every error message.
    """
    prefix = f"{where}: " if where else ""
    text = read_text_file(list_file, "image list file", where, errors="surrogateescape")
    entries = []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip()
        if not line:
            continue
        if len(line.split()) == 1:
            entries.append((line, 0, number))
            continue
        match = _LINE.match(line)
        if match is None:
            raise FileFormatError(
                f"{prefix}{list_file}:{number}: expected '<image path> <integer label>', got {line!r}"
            )
        label = int(match["label"])
        if not -(2**31) <= label < 2**31:
            raise FileFormatError(f"{prefix}{list_file}:{number}: label {label} does not fit a Datum's int32 label")
        entries.append((match["path"], label, number))
    if not entries:
        raise FileFormatError(f"{prefix}image list file '{list_file}' lists no images")
    return entries


def read_image_to_datum(filename, label, height=0, width=0, is_color=True, encoding=""):
    """The Datum Caffe's ReadImageToDatum makes of the image file `filename` (see the module docstring).

    Raises CaffeliteError when the file cannot be read or decoded.
    """
    return _read_to_datum(str(filename), label, height, width, is_color, _normalized(encoding))[0]


def convert_imageset(root_folder, list_file, db_path, *, gray=False, shuffle=False, seed=None, backend=db.LMDB,
                     resize_height=0, resize_width=0, check_size=False, encoded=False, encode_type="",
                     progress=None):
    """Convert the images named in `list_file` (relative to `root_folder`) into a new database at `db_path`.

    `shuffle` permutes the list first, with `seed` (an int) or caffelite's generator (Caffe seeds its own from the
    system, so its order is not repeatable; here a seed makes it so). `encode_type` implies `encoded`; with
    `encoded` and no `encode_type`, each file's extension names its encoding. Resizing needs both `resize_height`
    and `resize_width`. `check_size` requires every image to have the first one's shape (for encoded records:
    the shape it decodes to). `progress(done, total)`, when given, is called with 0 before the first image, after
    every batch of 1000 records written, and with the final count at the end (unless just reported).

    The database is built in a temporary sibling directory and renamed into place when complete; an existing
    `db_path` is never overwritten. Returns an ImagesetConversion.
    """
    db_path = Path(db_path)
    db.require_writable_backend(backend, db_path)
    db.check_new_path(db_path)
    size = _resize_to(resize_height, resize_width)
    encode_type = _normalized(encode_type)
    if encode_type and encode_type not in ENCODINGS:
        raise CaffeliteError(_unknown_encoding(encode_type))
    entries = read_image_list(list_file)
    if shuffle:
        generator = rng() if seed is None else np.random.default_rng(seed)
        entries = [entries[i] for i in generator.permutation(len(entries))]
    options = _Options(str(root_folder), size, not gray, check_size, encoded or bool(encode_type), encode_type)
    report = progress or (lambda done, total: None)
    report(0, len(entries))
    with db.staged_build(db_path) as building:
        count, skipped = _write_records(entries, options, building, backend, report, list_file)
    return ImagesetConversion(count=count, total=len(entries), skipped=tuple(skipped), db_path=db_path)


@dataclass(frozen=True)
class _Options:
    root: str
    size: tuple  # (height, width), (0, 0) for no resize
    is_color: bool
    check_size: bool
    encoded: bool
    encode_type: str


def _write_records(entries, options, path, backend, report, list_file):
    count, skipped, first_shape = 0, [], None
    with db.open_writer(path, backend, commit_every=db.COMMIT_EVERY) as writer:
        for line_id, (name, label, number) in enumerate(entries):
            filename = _image_path(options.root, name)
            encoding = _encoding_for(name, options)
            try:
                datum, shape = _read_to_datum(filename, label, *options.size, options.is_color, encoding)
            except CaffeliteError as error:
                log.error("Could not open or find file %s (%s)", filename, error)
                skipped.append(name)
                continue
            if options.check_size:
                first_shape = first_shape or shape
                if shape != first_shape:
                    raise CaffeliteError(
                        f"check_size: image '{filename}' ({list_file}:{number}) is {_dims(shape)} "
                        f"(channels x height x width), but the first image is {_dims(first_shape)}"
                    )
            key = b"%08d_" % line_id + name.encode("utf-8", "surrogateescape")
            writer.put(key, datum.SerializeToString())
            count += 1
            if count % db.COMMIT_EVERY == 0:
                report(count, len(entries))
    if count == 0:
        raise CaffeliteError(f"none of the {len(entries)} images listed in '{list_file}' could be read")
    if count % db.COMMIT_EVERY:
        report(count, len(entries))
    return count, skipped


def _read_to_datum(filename, label, height, width, is_color, encoding):
    """(Datum, decoded image shape) for one image file, following Caffe's ReadImageToDatum."""
    try:
        data = Path(filename).read_bytes()
    except OSError as error:
        raise CaffeliteError(f"cannot read image file '{filename}': {error.strerror or error}") from None
    image = decode_file_bytes(data, filename, height, width, is_color)
    datum = caffe_pb2.Datum()
    if not encoding:
        # Field order on the wire is field-number order; `encoded: false` is written out, as Caffe's CVMatToDatum
        # sets it explicitly.
        datum.channels, datum.height, datum.width = image.shape
        datum.data = image.tobytes()
        datum.label = label
        datum.encoded = False
        return datum, image.shape
    keep_file = (image.shape[0] == 3) == is_color and not (height or width) and _extension_matches(filename, encoding)
    datum.data = data if keep_file else encode_image(image, encoding)
    datum.label = label
    datum.encoded = True
    return datum, image.shape


def encode_image(image, encoding):
    """A (C, H, W) uint8 image (BGR, or 1 grey channel) compressed as `encoding` ('png', 'jpg', ...)."""
    encoding = _normalized(encoding)
    if encoding not in ENCODINGS:
        raise CaffeliteError(_unknown_encoding(encoding))
    pixels = image[0] if image.shape[0] == 1 else image[::-1].transpose(1, 2, 0)  # BGR -> RGB, channels last
    fmt = ENCODINGS[encoding]
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format=fmt, **_SAVE_OPTIONS.get(fmt, {}))
    return buffer.getvalue()


def _encoding_for(name, options):
    """The encoding of one record: --encode_type, else (with --encoded) the file's extension, else none."""
    if options.encode_type or not options.encoded:
        return options.encode_type
    dot = name.rfind(".")
    if dot < 0:
        log.warning("Failed to guess the encoding of '%s'", name)
        if options.size != _DEFAULT_SIZE:
            raise CaffeliteError(f"cannot guess the encoding of '{name}' (no extension) to re-encode it after "
                                 f"resizing; pass --encode_type")
        return _normalized(name)  # Caffe's rule: the whole name, which then matches itself (the file is kept)
    encoding = _normalized(name[dot + 1:])
    if options.size != _DEFAULT_SIZE and encoding not in ENCODINGS:
        raise CaffeliteError(f"cannot re-encode '{name}' after resizing: {_unknown_encoding(encoding)}; "
                             f"pass --encode_type")
    return encoding


def _extension_matches(filename, encoding):
    """Caffe's rule: the text after the last '.' (the whole name if none), case-insensitive; jpeg counts as jpg.

    Only the file's own name is looked at (Caffe looks at the whole path, so a dot in a folder name can count).
    """
    name = os.path.basename(filename)
    dot = name.rfind(".")
    extension = (name[dot + 1:] if dot >= 0 else name).lower()
    return extension == encoding or (encoding == "jpg" and extension == "jpeg")


def _image_path(root, name):
    # Caffe concatenates root and path, so its usage asks for ROOTFOLDER/ with the slash; a root that is a
    # directory named without it is joined with one rather than producing a wrong name for every image.
    if root and not root.endswith(("/", os.sep)) and os.path.isdir(root):
        return root + "/" + name
    return root + name


def _resize_to(height, width):
    height, width = max(0, int(height)), max(0, int(width))
    if (height > 0) != (width > 0):
        raise CaffeliteError(f"set resize_height and resize_width together (got {height} and {width})")
    return height, width


def _normalized(encoding):
    return (encoding or "").lower().lstrip(".")


def _unknown_encoding(encoding):
    return f"unknown image encoding '{encoding}' (known: {', '.join(sorted(ENCODINGS))})"


def _dims(shape):
    return "x".join(str(d) for d in shape)
