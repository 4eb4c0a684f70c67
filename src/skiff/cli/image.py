"""``skiff image import|load|list``: the node-local store of imported images.

``import PATH`` takes an OCI image layout directory, an OCI archive (a tar of one) or a ``docker save``
archive; ``load -i ARCHIVE`` is the same for archives (docker's spelling).  Images land in
``DATA_DIR/images``.  A kubelet reads the store of the data dir that owns its ``--root-dir`` (the parent of
its ``kubelet`` directory: DATA_DIR/kubelet for ``skiff up``, DATA_DIR/kubelet/NODE for a standalone
kubelet), so ``--data-dir`` here is the same as ``skiff up``'s.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from skiff.kubelet.image_store import ImageImportError, import_image, list_images
from skiff.localcluster.paths import default_data_dir


def register(sub: Any) -> None:
    parser = sub.add_parser("image", help="import and list local images (OCI layouts/archives)")
    actions = parser.add_subparsers(dest="image_command", metavar="ACTION", required=True)
    data_dir = {"default": str(default_data_dir()), "help": "data directory (default: as skiff up)"}
    imp = actions.add_parser("import", help="import an OCI layout directory or image archive")
    imp.add_argument("path", help="OCI layout directory, OCI archive or docker save archive")
    imp.add_argument("--name", default=None, help="reference to record (default: the image's own names)")
    imp.add_argument("--data-dir", **data_dir)
    imp.set_defaults(func=run_import)
    load = actions.add_parser("load", help="import an image archive (like docker load)")
    load.add_argument("-i", "--input", dest="path", metavar="ARCHIVE", required=True, help="the archive")
    load.add_argument("--name", default=None, help="reference to record (default: the image's own names)")
    load.add_argument("--data-dir", **data_dir)
    load.set_defaults(func=run_import)
    listing = actions.add_parser("list", aliases=["ls"], help="list imported images")
    listing.add_argument("--data-dir", **data_dir)
    listing.set_defaults(func=run_list)


async def run_import(args: argparse.Namespace) -> int:
    images_dir = Path(args.data_dir) / "images"
    try:
        image_id, refs = await asyncio.to_thread(import_image, Path(args.path), images_dir, args.name)
    except (ImageImportError, OSError, ValueError, KeyError) as err:
        print(f"skiff image: cannot import {args.path}: {err}", file=sys.stderr)
        return 1
    if not refs:
        print(f"Loaded image ID: {image_id} (no reference: pass --name to make it usable)")
    for ref in refs:
        print(f"Loaded image: {ref} ({image_id})")
    return 0


async def run_list(args: argparse.Namespace) -> int:
    images = await asyncio.to_thread(list_images, Path(args.data_dir) / "images")
    print(f"{'REFERENCE':<50} IMAGE ID")
    for ref, image_id in images:
        print(f"{ref:<50} {image_id}")
    return 0
