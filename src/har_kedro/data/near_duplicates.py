"""Near-duplicate photographs: the same picture re-encoded, resized or lightly cropped.

Byte hashing (``sha256``) only finds identical files. Every kept image therefore also gets a 256-bit
difference hash (``imagehash.dhash`` with ``hash_size=16``) of a small grey thumbnail, computed during
ingestion from the image it already decodes in draft mode (:func:`perceptual_hash`). Two images whose
hashes differ in at most ``max_distance`` bits are near-duplicates; pairs are grouped transitively
(connected components of the pair graph, ``scipy.sparse.csgraph``), so a ~ b ~ c is one group.

Measured on the 600 photographs of the HAR sample (docs/data.md): distinct photographs are at least 61
bits apart; a JPEG re-encode at quality 40 moves a hash by at most 34 bits, a half-size copy by 24 and a
1 % crop on every side by 28. The default threshold is 40.

The search compares all pairs, vectorised in blocks of rows (XOR of 64-bit words and numpy's
``bitwise_count``), with memory bounded by the block: the 79 M pairs of 12,600 images take 1.2 s on
the 2-core development machine (benchmarks/ingestion_near_duplicates.py). It grows with the square of
the image count: at 1 M images (5 x 10^11 pairs) it would take hours, and an index that runs the same
exact range search in native code (e.g. faiss ``IndexBinaryFlat.range_search``) is the tool to use there.
"""

from __future__ import annotations

from collections.abc import Sequence

import imagehash
import numpy as np
from PIL import Image, ImageOps
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from har_kedro.data.image_io import to_rgb

HASH_SIZE = 16  # a (HASH_SIZE + 1) x HASH_SIZE grey thumbnail -> HASH_SIZE**2 = 256 bits
HASH_BITS = HASH_SIZE * HASH_SIZE
DEFAULT_MAX_DISTANCE = 40
_WORDS = HASH_BITS // 64


def perceptual_hash(image: Image.Image) -> str:
    """The 256-bit difference hash of a decoded image as the model sees it (EXIF rotation applied,
    converted like preprocessing converts it), in hex. An image without detail (a blank or nearly
    uniform frame) hashes close to all zeros, so such images are near-duplicates of each other."""
    upright = ImageOps.exif_transpose(image) or image
    return str(imagehash.dhash(to_rgb(upright).convert("L"), hash_size=HASH_SIZE))


def hash_words(hashes: Sequence[str]) -> np.ndarray:
    """``(n, 4)`` uint64 words of hex hashes (what :func:`near_pairs` compares)."""
    if not hashes:
        return np.zeros((0, _WORDS), dtype=np.uint64)
    raw = np.frombuffer(b"".join(bytes.fromhex(h) for h in hashes), dtype=">u8")
    return raw.reshape(len(hashes), _WORDS).astype(np.uint64)


def near_pairs(words: np.ndarray, max_distance: int, block: int = 128) -> np.ndarray:
    """``(m, 2)`` index pairs ``i < j`` whose hashes differ in at most ``max_distance`` bits."""
    found: list[np.ndarray] = []
    n = len(words)
    columns = [np.ascontiguousarray(words[:, k]) for k in range(words.shape[1])]
    for start in range(0, n, block):
        distance = np.zeros((min(block, n - start), n - start), dtype=np.uint16)
        for column in columns:  # one 64-bit word at a time: (block x rest) temporaries only
            distance += np.bitwise_count(column[start : start + block, None] ^ column[None, start:])
        i, j = np.nonzero(distance <= max_distance)
        keep = j > i  # the block against itself and the rows after it: each pair once, no self-pairs
        found.append(np.stack([i[keep] + start, j[keep] + start], axis=1))
    return np.concatenate(found) if found else np.zeros((0, 2), dtype=np.int64)


def hamming(a: str, b: str) -> int:
    """Bits in which two hex hashes differ."""
    return int(np.bitwise_count(hash_words([a]) ^ hash_words([b])).sum())


def components(n: int, pairs: np.ndarray) -> np.ndarray:
    """Component label of each of ``n`` items under the (transitive) pair relation."""
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels
