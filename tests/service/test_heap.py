"""The server freezes its start-up heap out of the garbage collector's reach (a full collection
of torch's and FastAPI's objects paused every thread for 110-220 ms; service/runtime/pool.py)."""

import sys
from pathlib import Path

from tests import children

# In a child process: what is frozen stays frozen, and the test process builds many apps.
SERVE_AND_COUNT = """
import gc, sys, threading, time
from pathlib import Path
from service.server import bind, build_server
from service.settings import Settings

settings = Settings(data_dir=Path(sys.argv[1]), port=0)
server = build_server(settings)
before = gc.get_freeze_count()
thread = threading.Thread(target=server.run, kwargs={"sockets": [bind(settings)]})
thread.start()
deadline = time.monotonic() + 60
while not server.started and thread.is_alive() and time.monotonic() < deadline:
    time.sleep(0.01)
server.stop()
thread.join(60)
frozen = gc.get_freeze_count()  # (what was frozen stays frozen)
print(before, frozen)
"""


def test_server_freezes_its_start_up_heap(tmp_path: Path) -> None:
    done = children.run(
        [sys.executable, "-c", SERVE_AND_COUNT, str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    before, frozen = map(int, done.stdout.split())
    assert before == 0
    assert frozen > 100_000  # torch, FastAPI, pydantic: the objects alive once it was up
