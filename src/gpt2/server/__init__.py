"""Serving: an OpenAI-compatible completions API with a batching scheduler, GLTR token ranks, and a web
page (Talk-to-Transformer style writing, GLTR style checking). `gpt2 serve` runs it with uvicorn."""

from gpt2.server.app import create_app
from gpt2.server.scheduler import Scheduler

__all__ = ["Scheduler", "create_app"]
