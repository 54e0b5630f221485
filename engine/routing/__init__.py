"""The routing model's command line at the engine's top level, where operators and the benchmark look for it:
`python -m engine.routing evaluate|train` (engine/routing/__main__.py). The model itself lives in
engine/analysers/routing.py, beside the other analysers; this package holds no logic, so the spine stays small."""
