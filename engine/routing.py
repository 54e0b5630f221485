"""`python -m engine.routing evaluate --train TRAIN.csv --test TEST.csv` and `python -m engine.routing train`: the
routing model's command line at the engine's top level, where operators look for it (the model itself lives in
engine/analysers/routing.py, beside the other analysers)."""

from __future__ import annotations

from engine.analysers.routing import main

if __name__ == "__main__":
    raise SystemExit(main(prog="python -m engine.routing"))
