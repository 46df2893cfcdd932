"""tiermem over the network: a REST API, an MCP endpoint, metrics and a memory explorer.

Install with the ``server`` extra (``pip install 'tiermem[server]'``); ``tiermem serve`` starts it and
``tiermem mcp`` speaks MCP on stdio. Nothing here is imported by the engine itself.
"""
