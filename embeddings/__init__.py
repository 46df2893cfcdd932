"""Vectors for memories: states (feature hashing, no model), text (MiniLM) and stored resolutions.

Importing this package is cheap: sentence-transformers and torch load on a TextEncoder's first use.
"""

from embeddings.resolution import RESOLUTIONS, reduce, restore, stored_size
from embeddings.state import StateEncoder
from embeddings.text import DEFAULT_TEXT_MODEL, TextEncoder, contents_text

__all__ = [
    "DEFAULT_TEXT_MODEL",
    "RESOLUTIONS",
    "StateEncoder",
    "TextEncoder",
    "contents_text",
    "reduce",
    "restore",
    "stored_size",
]
