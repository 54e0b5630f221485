"""`python -m engine.routing evaluate --train TRAIN.csv --test TEST.csv` and `python -m engine.routing train`."""

from __future__ import annotations

from engine.analysers.routing import main

if __name__ == "__main__":
    raise SystemExit(main(prog="python -m engine.routing"))
