"""python -m service: serve with settings from DIMWATCH_* environment variables."""

from service.server import run
from service.settings import Settings

if __name__ == "__main__":
    run(Settings())
