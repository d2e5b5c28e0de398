"""Every process a test starts dies with the test run, however the run ends.

Tests start servers, workers and commands as child processes, and their fixtures stop them. But
a run can end without its fixtures: SIGTERM (`timeout`, a cancelled CI job) ends pytest at once,
SIGKILL too. So every child is started with the kernel's parent-death signal (prctl
PR_SET_PDEATHSIG, `service.cluster.local.die_with_parent`): it is killed when the pytest
process exits, for whatever reason. `service.cluster.local.start` starts nats-server the same
way. And tests/conftest.py makes SIGTERM stop a run as Ctrl-C does, so that fixtures stop and
reap their processes first (a killed child nobody waits for lingers as a defunct entry).

Start processes through `popen` and `run` (tests/test_children.py checks that no test starts one
otherwise), from the main thread: the signal follows the thread that started the child.
"""

import subprocess
from typing import Any

from service.cluster.local import die_with_parent


def popen(args: list[str], **options: Any) -> "subprocess.Popen[Any]":
    """`subprocess.Popen(args, **options)`, the child tied to this process's life."""
    return subprocess.Popen(args, preexec_fn=die_with_parent(), **options)


def run(args: list[str], **options: Any) -> "subprocess.CompletedProcess[Any]":
    """`subprocess.run(args, **options)`, the child tied to this process's life."""
    return subprocess.run(args, preexec_fn=die_with_parent(), **options)
