#!/usr/bin/env python3
"""Unpack the ELF vmlinux from an xz-compressed x86 bzImage: extract-vmlinux.py BZIMAGE OUT.

Debian's 6.1 kernels are built with CONFIG_KERNEL_XZ: the bzImage is a setup stub followed by one
xz stream holding vmlinux. qemu boots that ELF through its PVH entry point, which skips the
in-guest decompression (about 10 s under TCG). Exits 1, writing nothing, when the image holds no
xz stream that decompresses to an ELF file.
"""

import lzma
import os
import sys

XZ_MAGIC = b"\xfd7zXZ\x00"


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, out = sys.argv[1], sys.argv[2]
    with open(src, "rb") as f:
        image = f.read()
    start = image.find(XZ_MAGIC)
    while start >= 0:
        try:
            # One stream only: the decompressor stops at its end and ignores the trailer.
            elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(image[start:])
        except lzma.LZMAError:
            elf = b""
        if elf.startswith(b"\x7fELF"):
            with open(out + ".tmp", "wb") as f:
                f.write(elf)
            os.replace(out + ".tmp", out)
            return
        start = image.find(XZ_MAGIC, start + 1)
    sys.exit(f"extract-vmlinux: no xz-compressed ELF kernel in {src}")


if __name__ == "__main__":
    main()
