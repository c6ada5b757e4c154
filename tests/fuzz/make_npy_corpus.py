#!/usr/bin/env python3
"""Writes the seed corpus of the .npy fuzz target (tests/fuzz/corpus/npy/). Valid files are
named ok_*, invalid ones bad_*: the replayer (npy_fuzz_replay) checks that the parser agrees.
A few PNG images (bad_png_*: not .npy) seed the target's PNG reader.
Byte layouts follow numpy/lib/format.py; no NumPy needed. Rerun after changing the cases:
    python3 tests/fuzz/make_npy_corpus.py tests/fuzz/corpus/npy
"""
import os
import struct
import sys
import zlib


def npy(dict_text, data=b"", major=1, minor=0, pad=True):
    pre = 10 if major == 1 else 12
    h = dict_text.encode("latin-1")
    if pad:
        padlen = 64 - (pre + len(h) + 1) % 64
        h = h + b" " * padlen + b"\n"
    length = struct.pack("<H", len(h)) if major == 1 else struct.pack("<I", len(h))
    return b"\x93NUMPY" + bytes([major, minor]) + length + h + data


def d(descr, shape, fortran=False):
    shape_text = "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
    return "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, fortran, shape_text)


def f8(*values):
    return struct.pack("<%dd" % len(values), *values)


def f4(*values):
    return struct.pack("<%df" % len(values), *values)


cases = {
    # valid
    "ok_f8_2d.npy": npy(d("<f8", (3, 2)), f8(1, 2, 3, 4, 5, 6)),
    "ok_f4_1d.npy": npy(d("<f4", (4,)), f4(1, -2, 3.5, 1e-30)),
    "ok_f4_3d.npy": npy(d("<f4", (2, 2, 2)), f4(*range(8))),
    "ok_f8_4d.npy": npy(d("<f8", (1, 2, 1, 2)), f8(0.5, -0.25, 8, 1e300)),
    "ok_f8_fortran.npy": npy(d("<f8", (2, 3), True), f8(1, 4, 2, 5, 3, 6)),
    "ok_v2.npy": npy(d("<f8", (2,)), f8(7, 8), major=2),
    "ok_v3.npy": npy(d("<f4", (1, 1)), f4(3), major=3),
    "ok_empty.npy": npy(d("<f8", (0, 5))),
    "ok_nan_payload.npy": npy(d("<f8", (2,)), struct.pack("<Q", 0x7FF8000000000001) + f8(1)),
    "ok_unpadded.npy": npy(d("<f8", (1,)), f8(1), pad=False),
    # invalid
    "bad_magic.npy": b"\x93NUMPX\x01\x00" + npy(d("<f8", (1,)), f8(1))[8:],
    "bad_short.npy": b"\x93NUM",
    "bad_version.npy": npy(d("<f8", (1,)), f8(1), major=4),
    "bad_minor.npy": npy(d("<f8", (1,)), f8(1), minor=1),
    "bad_header_len.npy": b"\x93NUMPY\x01\x00\xff\xff{'descr'",
    "bad_header_huge.npy": b"\x93NUMPY\x02\x00\x00\x00\x00\x10" + b" " * 64,
    "bad_int.npy": npy(d("<i4", (2,)), b"\x01\x00\x00\x00\x02\x00\x00\x00"),
    "bad_big_endian.npy": npy(d(">f8", (1,)), f8(1)),
    "bad_object.npy": npy(d("|O", (1,)), b"\x00" * 8),
    "bad_structured.npy": npy("{'descr': [('x', '<f8')], 'fortran_order': False, 'shape': (1,), }", f8(1)),
    "bad_scalar.npy": npy(d("<f8", ()), f8(1)),
    "bad_not_tuple.npy": npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1), }", f8(1)),
    "bad_negative.npy": npy("{'descr': '<f8', 'fortran_order': False, 'shape': (-1,), }", f8(1)),
    "bad_overflow.npy": npy(d("<f8", (2**62, 4)), f8(1)),
    "bad_dim_too_big.npy": npy(d("<f8", (10**20,)), f8(1)),
    "bad_9d.npy": npy(d("<f8", (1,) * 9), f8(1)),
    "bad_truncated.npy": npy(d("<f8", (3, 2)), f8(1, 2, 3, 4, 5)),
    "bad_trailing.npy": npy(d("<f8", (1,)), f8(1) + b"junk"),
    "bad_missing_key.npy": npy("{'descr': '<f8', 'shape': (1,), }", f8(1)),
    "bad_extra_key.npy": npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), 'x': 0, }", f8(1)),
    "bad_dup_key.npy": npy("{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", f8(1)),
    "bad_fortran_value.npy": npy("{'descr': '<f8', 'fortran_order': 0, 'shape': (1,), }", f8(1)),
    "bad_unterminated.npy": npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1,", f8(1)),
    "bad_not_dict.npy": npy("('descr', '<f8')", f8(1)),
    "bad_nul_in_header.npy": npy("{'descr': '<f8',\x00 'fortran_order': False, 'shape': (1,), }", f8(1)),
    "bad_non_ascii.npy": npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), '\xe9': 1}", f8(1)),
    "bad_text_after.npy": npy(d("<f8", (1,)) + " 1", f8(1)),
    "bad_empty.npy": b"",
    "bad_csv.npy": b"1,2\n3,4\n",
}


# PNG seeds for the target's PNG reader (not .npy files, so bad_* for the .npy parser).
def png(width, height, depth, color, raw):
    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body +
                struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) +
            chunk(b"IEND", b""))


cases["bad_png_gray8.npy"] = png(3, 2, 8, 0, b"".join(b"\0" + bytes([10 * r + c for c in range(3)])
                                                      for r in range(2)))
cases["bad_png_rgb8.npy"] = png(2, 2, 8, 2, b"".join(b"\0" + bytes([255, 0, 0, 0, 255, 0])
                                                     for r in range(2)))
cases["bad_png_gray16.npy"] = png(2, 1, 16, 0, b"\0" + struct.pack(">HH", 0, 65535))

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "npy")
os.makedirs(out, exist_ok=True)
for name, blob in cases.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(blob)
print("wrote %d files to %s" % (len(cases), out))
