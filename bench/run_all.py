"""Every benchmark, one after the other (`make bench`): python -m bench.run_all [--quick].

The full run takes about two hours on two shared CPU cores (the tracking sweep and real_data
are most of it); --quick takes a few minutes. Results go to bench/out/ (JSON and PNG);
bench/RESULTS.md records the figures of runs that were actually made, with their commands and
machines.
"""

import argparse
import subprocess
import sys
import time

SCRIPTS = [
    "paper_fig3",
    "tracking",
    "baselines",
    "core_speed",
    "rows",
    "service_speed",
    "api_fuzz",
    "real_data",
    "high_dim",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="pass --quick to every script")
    parser.add_argument("--only", nargs="+", choices=SCRIPTS, help="run only these")
    parser.add_argument("--device", default="cpu", help="for the scripts that take --device")
    args = parser.parse_args()
    failed = []
    for name in args.only or SCRIPTS:
        cmd = [sys.executable, "-m", f"bench.{name}"]
        if args.quick:
            cmd.append("--quick")
        if name in ("paper_fig3", "core_speed") and args.device != "cpu":
            cmd += ["--device", args.device]
        print(f"\n=== {' '.join(cmd[1:])}", flush=True)
        start = time.perf_counter()
        code = subprocess.call(cmd)
        print(f"=== {name}: exit {code} after {time.perf_counter() - start:.0f} s", flush=True)
        if code:
            failed.append(name)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
