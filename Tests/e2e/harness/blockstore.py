"""Read-only access to a kubo flatfs block store, with hash verification."""

from __future__ import annotations

import os
from pathlib import Path

from .cid import CID


class BlockNotFound(KeyError):
    """The block store holds no block for the requested CID."""


class BlockCorrupt(ValueError):
    """A stored block does not hash to its CID."""


class BlockStore:
    """Reads blocks from kubo's flatfs directory (``<repo>/blocks``).

    kubo keys each block by the RFC 4648 base32 (upper case, no padding) of
    its multihash and shards with ``next-to-last/2``: the file is
    ``<dir>/<key[-3:-1]>/<key>.data``. CIDv0 and CIDv1 of the same multihash
    therefore share one file.
    """

    def __init__(self, directory: str | os.PathLike, verify: bool = True):
        """Open the flatfs directory; ``verify`` checks every block's hash."""
        self.directory = Path(directory)
        self.verify = verify

    def path_for(self, cid: CID) -> Path:
        """Filesystem path where flatfs stores ``cid``."""
        key = cid.flatfs_key
        return self.directory / key[-3:-1] / f"{key}.data"

    def has(self, cid: CID) -> bool:
        """True if the block is present (identity CIDs are always present)."""
        return cid.hash_code == 0 or self.path_for(cid).is_file()

    def get(self, cid: CID) -> bytes:
        """Return the block bytes for ``cid``, verified against the CID."""
        if cid.hash_code == 0:
            return cid.digest
        try:
            data = self.path_for(cid).read_bytes()
        except FileNotFoundError:
            raise BlockNotFound(str(cid)) from None
        if self.verify and not cid.verify(data):
            raise BlockCorrupt(f"block {cid} does not match its hash")
        return data
