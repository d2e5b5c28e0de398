"""Real small and slow disks for the disk tests: an ext4 file system in a file, on a loop
device, mounted for the test (ENOSPC when full, as any disk); slowed down by the kernel's block
layer (cgroup v1 blkio throttling of the loop device, for the processes put in the group)."""

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests import children

BLKIO = Path("/sys/fs/cgroup/blkio")


def unavailable(slow: bool = False) -> str | None:
    """Why such a disk cannot be made here, or None."""
    if os.geteuid() != 0:
        return "mounting a file system needs root (CI runs as root)"
    if not Path("/dev/loop-control").exists():
        return "no loop devices (/dev/loop-control)"
    if slow and not (BLKIO / "blkio.throttle.write_iops_device").exists():
        return "no cgroup v1 blkio throttling to slow a disk down with"
    return None


@dataclass
class Disk:
    mount: Path
    device: str  # /dev/loopN

    def fill(self) -> Path:
        """Write a file until the file system refuses (ENOSPC); the file."""
        filler = self.mount / "filler"
        with filler.open("wb") as out, contextlib.suppress(OSError):
            while True:
                out.write(b"\0" * (1 << 16))
                out.flush()
                os.fsync(out.fileno())
        return filler

    @contextmanager
    def throttled(self, write_iops: int) -> Iterator[Path]:
        """A blkio cgroup that allows `write_iops` writes per second on this disk; yields its
        cgroup.procs (write a pid in it to slow that process's writes down)."""
        group = BLKIO / f"dimwatch-test-{os.getpid()}"
        group.mkdir()
        try:
            major_minor = (Path("/sys/class/block") / Path(self.device).name / "dev").read_text()
            limit = f"{major_minor.strip()} {write_iops}"
            (group / "blkio.throttle.write_iops_device").write_text(limit)
            yield group / "cgroup.procs"
        finally:
            for pid in (group / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):  # back to the root group, or gone
                    (BLKIO / "cgroup.procs").write_text(pid)
            group.rmdir()


@contextmanager
def small_disk(folder: Path, megabytes: int) -> Iterator[Disk]:
    """An ext4 file system of `megabytes` in folder/disk.img, mounted on folder/mnt (a loop
    device the kernel frees at the unmount)."""
    image, mount = folder / "disk.img", folder / "mnt"
    mount.mkdir(parents=True)
    with image.open("wb") as out:
        out.truncate(megabytes << 20)
    children.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
    children.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
    try:
        source = children.run(
            ["findmnt", "-n", "-o", "SOURCE", str(mount)], capture_output=True, text=True
        )
        yield Disk(mount, source.stdout.strip())
    finally:
        if children.run(["umount", str(mount)], capture_output=True).returncode:
            children.run(["umount", "-l", str(mount)], check=False)  # busy: detach lazily
