"""The LLM arm, both sides of its topics: wire types (``messages``), the SLM worker's
pending reranks and deadlines (``arm``, ``follower``), and the LLM worker process
(``worker``) with its backends (``backends``: a local GGUF; ``http_backend``: any
OpenAI-compatible server)."""
