"""Photo shards: plain tar files of normalized JPEGs, few and large so DVC stays fast."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path


class ShardWriter:
    """Write ``(member, bytes)`` pairs into ``photos-00000.tar``, ``photos-00001.tar``, ..."""

    def __init__(self, folder: Path, shard_size: int, prefix: str = "photos") -> None:
        self.folder, self.shard_size, self.prefix = folder, shard_size, prefix
        self.folder.mkdir(parents=True, exist_ok=True)
        self._tar: tarfile.TarFile | None = None
        self._count = 0
        self._index = -1

    @property
    def shard_name(self) -> str:
        return f"{self.prefix}-{self._index:05d}.tar"

    def write(self, member: str, data: bytes) -> str:
        """Add one file; return the name of the shard that holds it."""
        if self._tar is None or self._count >= self.shard_size:
            self.close()
            self._index += 1
            self._tar = tarfile.open(  # noqa: SIM115 - closed in close()
                self.folder / self.shard_name, "w", format=tarfile.PAX_FORMAT
            )
            self._count = 0
        info = tarfile.TarInfo(member)
        info.size = len(data)
        self._tar.addfile(info, io.BytesIO(data))
        self._count += 1
        return self.shard_name

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
            self._tar = None

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_shard(path: Path) -> Iterator[tuple[str, bytes]]:
    """Yield ``(member, bytes)`` for every file in one shard, in order."""
    with tarfile.open(path) as tar:
        for info in tar:
            if info.isreg():
                handle = tar.extractfile(info)
                assert handle is not None
                yield info.name, handle.read()
