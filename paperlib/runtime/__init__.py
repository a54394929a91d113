"""How stages run: settings (params.yaml as frozen dataclasses), the tables and files they exchange, audio input,
atomic output and where per-track work runs (this process or Ray).

The bottom layer: imports no other paperlib subpackage."""
